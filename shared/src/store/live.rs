//! Live stock's adapters: the connections table (`CONNECTIONS_TABLE`: `connection_id` + `entry`,
//! TTL on `expires_at`, the sparse index `by-topic` on `topic`), API Gateway's `@connections` API
//! for pushes, and the EventBridge bus of the change feed.

use std::collections::{BTreeSet, HashMap};

use aws_sdk_apigatewaymanagement::operation::post_to_connection::PostToConnectionError;
use aws_sdk_apigatewaymanagement::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;

use super::dynamo::{n, s, transact};
use super::{ChangeFeed, LiveConnectionStore, LivePusher, PushOutcome};
use crate::error::InventoryError;
use crate::live::{ConnectionId, FeedEvent, SubscribeOutcome, Topic, Viewer};
use crate::time::EpochSeconds;

/// The index that finds a topic's connections (only topic records have `topic`).
pub const BY_TOPIC_INDEX: &str = "by-topic";
/// `entry` of a connection's own record; its topics' records are `topic#<key>`.
const CONNECTION_ENTRY: &str = "connection";

#[derive(Clone, Debug)]
pub struct DynamoConnections {
    client: Client,
    table: String,
}

/// A connection's own record, as read for a change of its topics.
struct ConnectionRecord {
    viewer: Viewer,
    topics: BTreeSet<Topic>,
    revision: i64,
    expires_at: EpochSeconds,
}

impl DynamoConnections {
    pub fn new(client: Client, table: String) -> Self {
        Self { client, table }
    }

    fn key(connection: &ConnectionId, entry: &str) -> HashMap<String, AttributeValue> {
        HashMap::from([("connection_id".to_owned(), s(connection.as_str())), ("entry".to_owned(), s(entry))])
    }

    fn topic_entry(topic: &Topic) -> String {
        format!("topic#{}", topic.key())
    }

    async fn record(&self, connection: &ConnectionId) -> Result<Option<ConnectionRecord>, InventoryError> {
        let found = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(connection, CONNECTION_ENTRY)))
            .consistent_read(true)
            .send()
            .await
            .map_err(InventoryError::from_sdk)?;
        let Some(item) = found.item() else { return Ok(None) };
        let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
        let number = |name: &str| item.get(name).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok());
        let viewer = match (text("viewer").as_deref(), text("user")) {
            (Some("admin"), Some(user)) => Viewer::Admin { user },
            _ => Viewer::Shopper,
        };
        let topics = item
            .get("topics")
            .and_then(|v| v.as_l().ok())
            .map(|list| list.iter().filter_map(|v| v.as_s().ok()).filter_map(|k| Topic::from_key(k).ok()).collect())
            .unwrap_or_default();
        Ok(Some(ConnectionRecord {
            viewer,
            topics,
            revision: number("revision").unwrap_or(0),
            expires_at: number("expires_at").unwrap_or(0),
        }))
    }

    /// The connection's record set to `topics` (if still at `record`'s revision), with `changes`.
    async fn write_topics(
        &self,
        connection: &ConnectionId,
        record: &ConnectionRecord,
        topics: &BTreeSet<Topic>,
        changes: Vec<TransactWriteItem>,
    ) -> Result<bool, InventoryError> {
        let listed = AttributeValue::L(topics.iter().map(|t| s(t.key())).collect());
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(Self::key(connection, CONNECTION_ENTRY)))
            .update_expression("SET topics = :topics, revision = :next")
            .condition_expression("revision = :seen")
            .expression_attribute_values(":topics", listed)
            .expression_attribute_values(":next", n(record.revision + 1))
            .expression_attribute_values(":seen", n(record.revision))
            .build()
            .map_err(|err| InventoryError::internal(format!("building an update: {err}")))?;
        let mut items = vec![TransactWriteItem::builder().update(update).build()];
        items.extend(changes);
        Ok(transact(&self.client, items).await?.is_none())
    }

    fn delete(&self, connection: &ConnectionId, entry: &str) -> Result<TransactWriteItem, InventoryError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(Self::key(connection, entry)))
            .build()
            .map_err(|err| InventoryError::internal(format!("building a delete: {err}")))?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }
}

/// Attempts at a change of a connection's topics that another message changed first.
const TOPIC_ATTEMPTS: u32 = 5;

#[async_trait::async_trait]
impl LiveConnectionStore for DynamoConnections {
    async fn open_connection(
        &self,
        connection: &ConnectionId,
        viewer: &Viewer,
        expires_at: EpochSeconds,
    ) -> Result<(), InventoryError> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(Self::key(connection, CONNECTION_ENTRY)))
            .item("topics", AttributeValue::L(Vec::new()))
            .item("revision", n(0))
            .item("expires_at", n(expires_at));
        put = match viewer {
            Viewer::Shopper => put.item("viewer", s("shopper")),
            Viewer::Admin { user } => put.item("viewer", s("admin")).item("user", s(user)),
        };
        put.send().await.map_err(InventoryError::from_sdk)?;
        Ok(())
    }

    async fn viewer(&self, connection: &ConnectionId) -> Result<Option<Viewer>, InventoryError> {
        Ok(self.record(connection).await?.map(|r| r.viewer))
    }

    async fn subscribe(
        &self,
        connection: &ConnectionId,
        topics: &BTreeSet<Topic>,
        limit: usize,
    ) -> Result<SubscribeOutcome, InventoryError> {
        for _ in 0..TOPIC_ATTEMPTS {
            let Some(record) = self.record(connection).await? else { return Ok(SubscribeOutcome::NoConnection) };
            let watching: BTreeSet<Topic> = record.topics.union(topics).cloned().collect();
            if watching.len() > limit {
                return Ok(SubscribeOutcome::TooMany);
            }
            if watching == record.topics {
                return Ok(SubscribeOutcome::Watching(watching));
            }
            let mut puts = Vec::new();
            for topic in watching.difference(&record.topics) {
                let put = Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(Self::key(connection, &Self::topic_entry(topic))))
                    .item("topic", s(topic.key()))
                    .item("expires_at", n(record.expires_at))
                    .build()
                    .map_err(|err| InventoryError::internal(format!("building a put: {err}")))?;
                puts.push(TransactWriteItem::builder().put(put).build());
            }
            if self.write_topics(connection, &record, &watching, puts).await? {
                return Ok(SubscribeOutcome::Watching(watching));
            }
        }
        Err(InventoryError::Unavailable { detail: "a connection's topics kept changing under a subscribe".into() })
    }

    async fn unsubscribe(
        &self,
        connection: &ConnectionId,
        topics: &BTreeSet<Topic>,
    ) -> Result<SubscribeOutcome, InventoryError> {
        for _ in 0..TOPIC_ATTEMPTS {
            let Some(record) = self.record(connection).await? else { return Ok(SubscribeOutcome::NoConnection) };
            let watching: BTreeSet<Topic> = record.topics.difference(topics).cloned().collect();
            if watching == record.topics {
                return Ok(SubscribeOutcome::Watching(watching));
            }
            let deletes = record
                .topics
                .intersection(topics)
                .map(|topic| self.delete(connection, &Self::topic_entry(topic)))
                .collect::<Result<Vec<_>, _>>()?;
            if self.write_topics(connection, &record, &watching, deletes).await? {
                return Ok(SubscribeOutcome::Watching(watching));
            }
        }
        Err(InventoryError::Unavailable { detail: "a connection's topics kept changing under an unsubscribe".into() })
    }

    async fn close_connection(&self, connection: &ConnectionId) -> Result<(), InventoryError> {
        for _ in 0..TOPIC_ATTEMPTS {
            let Some(record) = self.record(connection).await? else { return Ok(()) };
            // The connection's record goes only at the revision read, so a subscribe that lands in
            // between makes this read again and delete its topic too (none is left behind).
            let delete = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(Self::key(connection, CONNECTION_ENTRY)))
                .condition_expression("revision = :seen")
                .expression_attribute_values(":seen", n(record.revision))
                .build()
                .map_err(|err| InventoryError::internal(format!("building a delete: {err}")))?;
            let mut deletes = vec![TransactWriteItem::builder().delete(delete).build()];
            for topic in &record.topics {
                deletes.push(self.delete(connection, &Self::topic_entry(topic))?);
            }
            if transact(&self.client, deletes).await?.is_none() {
                return Ok(());
            }
        }
        Err(InventoryError::Unavailable { detail: "a connection's topics kept changing under a close".into() })
    }

    async fn subscribers(&self, topic: &Topic) -> Result<Vec<ConnectionId>, InventoryError> {
        let pages = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(BY_TOPIC_INDEX)
            .key_condition_expression("topic = :topic")
            .expression_attribute_values(":topic", s(topic.key()))
            .into_paginator()
            .items()
            .send()
            .collect::<Vec<_>>()
            .await;
        let mut connections = Vec::new();
        for item in pages {
            let item = item.map_err(InventoryError::from_sdk)?;
            let id = item.get("connection_id").and_then(|v| v.as_s().ok()).map(|raw| ConnectionId::parse(raw));
            match id {
                Some(Ok(id)) => connections.push(id),
                _ => tracing::warn!(?item, "a topic record without a valid connection id"),
            }
        }
        Ok(connections)
    }
}

/// Pushes through API Gateway's `@connections` API of the live WebSocket API's stage.
#[derive(Clone, Debug)]
pub struct ApiGatewayPusher {
    client: aws_sdk_apigatewaymanagement::Client,
}

impl ApiGatewayPusher {
    pub fn new(client: aws_sdk_apigatewaymanagement::Client) -> Self {
        Self { client }
    }
}

#[async_trait::async_trait]
impl LivePusher for ApiGatewayPusher {
    async fn push(&self, connection: &ConnectionId, body: &str) -> PushOutcome {
        let sent = self
            .client
            .post_to_connection()
            .connection_id(connection.as_str())
            .data(Blob::new(body.as_bytes().to_vec()))
            .send()
            .await;
        match sent {
            Ok(_) => PushOutcome::Delivered,
            Err(err) => match err.as_service_error() {
                Some(PostToConnectionError::GoneException(_)) => PushOutcome::Gone,
                _ => PushOutcome::Failed(format!("{}", aws_sdk_apigatewaymanagement::error::DisplayErrorContext(&err))),
            },
        }
    }

    async fn hang_up(&self, connection: &ConnectionId) {
        if let Err(err) = self.client.delete_connection().connection_id(connection.as_str()).send().await {
            tracing::warn!(connection = %connection, error = %aws_sdk_apigatewaymanagement::error::DisplayErrorContext(&err),
                           "hanging up on a connection failed");
        }
    }
}

/// The change feed on an EventBridge bus (`source` = `inventory`).
#[derive(Clone, Debug)]
pub struct EventBridgeFeed {
    client: aws_sdk_eventbridge::Client,
    bus: String,
}

/// The feed's `source` on every event.
pub const FEED_SOURCE: &str = "inventory";
/// PutEvents takes at most 10 entries a call.
const PUT_EVENTS_BATCH: usize = 10;

impl EventBridgeFeed {
    pub fn new(client: aws_sdk_eventbridge::Client, bus: String) -> Self {
        Self { client, bus }
    }
}

#[async_trait::async_trait]
impl ChangeFeed for EventBridgeFeed {
    async fn publish(&self, events: &[(usize, FeedEvent)]) -> Result<(), (usize, InventoryError)> {
        for chunk in events.chunks(PUT_EVENTS_BATCH) {
            let first = chunk[0].0;
            let mut entries = Vec::new();
            for (record, event) in chunk {
                let detail = serde_json::to_string(event)
                    .map_err(|err| (*record, InventoryError::internal(format!("serialising a feed event: {err}"))))?;
                entries.push(
                    PutEventsRequestEntry::builder()
                        .event_bus_name(&self.bus)
                        .source(FEED_SOURCE)
                        .detail_type(event.detail_type)
                        .detail(detail)
                        .build(),
                );
            }
            let sent = self
                .client
                .put_events()
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|err| (first, InventoryError::from_sdk(err)))?;
            // Entries answer in order; the first one refused is where the retry starts.
            if let Some(position) = sent.entries().iter().position(|e| e.error_code().is_some()) {
                let refused = &sent.entries()[position];
                let detail = format!(
                    "EventBridge refused a feed event: {} {}",
                    refused.error_code().unwrap_or_default(),
                    refused.error_message().unwrap_or_default()
                );
                return Err((chunk[position].0, InventoryError::Unavailable { detail }));
            }
        }
        Ok(())
    }
}
