//! Live stock on the pages: WebSocket connections (API Gateway's WebSocket API), what each one
//! watches, and the pushes the broadcaster sends when a product's figures change — plus the change
//! feed for other systems (EventBridge), made from the same stream records.
//!
//! A push is the product's `GET /inventory/{id}` body with `"type": "stock"`; its `sequence` (the
//! sum of the product's items' write counters, which only grows) lets a page drop a push older than
//! what it shows, so it never goes backwards whatever order pushes and GETs arrive in.

use std::collections::BTreeSet;
use std::fmt;

use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};

use crate::alerts::Alert;
use crate::domain::{ChangeKind, ProductAvailability, ProductId};
use crate::error::InventoryError;
use crate::events::StockItemChanged;
use crate::store::{ChangeFeed, LiveConnectionStore, LivePusher, PushOutcome, StockReader};
use crate::time::EpochSeconds;

/// Most topics one connection may watch (a product page watches one; the admin panel everything).
pub const MAX_TOPICS_PER_CONNECTION: usize = 50;
/// API Gateway closes a WebSocket connection after 2 hours; its records lapse (TTL) then.
pub const CONNECTION_SECONDS: i64 = 2 * 3600;
/// Pushes in flight at once per batch: a slow subscriber holds one slot, never the others.
pub const PUSH_CONCURRENCY: usize = 32;
/// A frame this function accepts from a page (API Gateway allows 128 KB; a subscribe is tiny).
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024;

/// API Gateway's id of a WebSocket connection (checked at the edge: it goes into keys and URLs).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ConnectionId(String);

impl ConnectionId {
    pub fn parse(raw: &str) -> Result<Self, InventoryError> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || "+/=_-".contains(c);
        if raw.is_empty() || raw.len() > 128 || !raw.chars().all(allowed) {
            return Err(InventoryError::invalid("connection_id", "not an API Gateway connection id"));
        }
        Ok(Self(raw.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ConnectionId {
    type Error = InventoryError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<ConnectionId> for String {
    fn from(id: ConnectionId) -> Self {
        id.0
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who opened a connection, as the `$connect` authorizer found them (never what the page says).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "viewer", rename_all = "lowercase")]
pub enum Viewer {
    /// No token: a product page.
    Shopper,
    /// A verified member of the admin group (`sub` of the token).
    Admin { user: String },
}

impl Viewer {
    /// The authorizer's context on the `$connect` event (`viewer`, `user`); no context is a shopper.
    pub fn from_authorizer_context(context: Option<&serde_json::Value>) -> Self {
        let field = |name: &str| context.and_then(|c| c.get(name)).and_then(|v| v.as_str());
        match (field("viewer"), field("user")) {
            (Some("admin"), Some(user)) if !user.is_empty() => Self::Admin { user: user.to_owned() },
            _ => Self::Shopper,
        }
    }
}

/// What a connection watches: one product, or (admins only) every product.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Topic {
    Product(ProductId),
    AllProducts,
}

/// How a topic is keyed in the connections table (`*` cannot be a product id).
pub const ALL_PRODUCTS_KEY: &str = "*";

impl Topic {
    pub fn key(&self) -> &str {
        match self {
            Self::Product(product) => product.as_str(),
            Self::AllProducts => ALL_PRODUCTS_KEY,
        }
    }

    pub fn from_key(key: &str) -> Result<Self, InventoryError> {
        if key == ALL_PRODUCTS_KEY {
            Ok(Self::AllProducts)
        } else {
            ProductId::parse(key).map(Self::Product)
        }
    }
}

/// A page's message on its socket (`$request.body.action` selects the route).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "action", rename_all = "lowercase", deny_unknown_fields)]
pub enum ClientMessage {
    Subscribe {
        #[serde(default)]
        products: Vec<ProductId>,
        #[serde(default)]
        all_products: bool,
    },
    Unsubscribe {
        #[serde(default)]
        products: Vec<ProductId>,
        #[serde(default)]
        all_products: bool,
    },
}

impl ClientMessage {
    /// Parses a frame; every refusal names what is wrong.
    pub fn parse(frame: &str) -> Result<Self, InventoryError> {
        if frame.len() > MAX_MESSAGE_BYTES {
            return Err(InventoryError::PayloadTooLarge { limit: MAX_MESSAGE_BYTES });
        }
        let mut deserializer = serde_json::Deserializer::from_str(frame);
        serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
            let path = err.path().to_string();
            let inner = err.into_inner();
            let message = if path == "." {
                format!(
                    "a message is {{\"action\": \"subscribe\" | \"unsubscribe\", \"products\": [product ids]}}: {inner}"
                )
            } else {
                format!("{path}: {inner}")
            };
            InventoryError::invalid("message", message)
        })
    }

    /// The topics the message names, at least one and at most [`MAX_TOPICS_PER_CONNECTION`].
    fn topics(products: &[ProductId], all_products: bool) -> Result<BTreeSet<Topic>, InventoryError> {
        let mut topics: BTreeSet<Topic> = products.iter().cloned().map(Topic::Product).collect();
        if all_products {
            topics.insert(Topic::AllProducts);
        }
        if topics.is_empty() {
            return Err(InventoryError::invalid("products", "products: name at least one product id"));
        }
        if topics.len() > MAX_TOPICS_PER_CONNECTION {
            return Err(too_many());
        }
        Ok(topics)
    }
}

fn too_many() -> InventoryError {
    InventoryError::invalid(
        "products",
        format!("products: a connection may watch at most {MAX_TOPICS_PER_CONNECTION} products"),
    )
}

/// What the function answers on the socket to a page's message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Reply {
    /// The topics the connection watches now.
    Subscribed {
        products: Vec<String>,
    },
    Unsubscribed {
        products: Vec<String>,
    },
    /// The message was refused; nothing changed.
    Error {
        error: &'static str,
        message: String,
    },
}

impl Reply {
    pub fn error(err: &InventoryError) -> Self {
        // Internal details are logged, never sent (as for HTTP answers).
        let message = if err.status() >= 500 { "something went wrong; reconnect".to_owned() } else { err.to_string() };
        Self::Error { error: err.code(), message }
    }
}

/// What subscribing came to, in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscribeOutcome {
    /// Every topic the connection watches now.
    Watching(BTreeSet<Topic>),
    /// The connection would watch more than the limit: nothing changed.
    TooMany,
    /// The connection is closed (or was never recorded): nothing changed.
    NoConnection,
}

/// `$connect`: records the connection (it lapses with API Gateway's 2-hour limit).
pub async fn connect(
    store: &impl LiveConnectionStore,
    connection: &ConnectionId,
    viewer: &Viewer,
    now: EpochSeconds,
) -> Result<(), InventoryError> {
    store.open_connection(connection, viewer, now + CONNECTION_SECONDS).await?;
    tracing::info!(connection = %connection, viewer = ?viewer, "live connection opened");
    Ok(())
}

/// A page's subscribe or unsubscribe. Only an admin's connection may watch every product.
pub async fn on_message(
    store: &impl LiveConnectionStore,
    connection: &ConnectionId,
    message: ClientMessage,
) -> Result<Reply, InventoryError> {
    let names = |topics: BTreeSet<Topic>| topics.iter().map(|t| t.key().to_owned()).collect();
    match message {
        ClientMessage::Subscribe { products, all_products } => {
            let topics = ClientMessage::topics(&products, all_products)?;
            let Some(viewer) = store.viewer(connection).await? else { return Err(gone(connection)) };
            if topics.contains(&Topic::AllProducts) && !matches!(viewer, Viewer::Admin { .. }) {
                return Err(InventoryError::Forbidden {
                    message: "watching every product needs a signed-in admin's connection".into(),
                });
            }
            match store.subscribe(connection, &topics, MAX_TOPICS_PER_CONNECTION).await? {
                SubscribeOutcome::Watching(now) => {
                    tracing::info!(connection = %connection, watching = now.len(), "live subscription");
                    Ok(Reply::Subscribed { products: names(now) })
                }
                SubscribeOutcome::TooMany => Err(too_many()),
                SubscribeOutcome::NoConnection => Err(gone(connection)),
            }
        }
        ClientMessage::Unsubscribe { products, all_products } => {
            let topics = ClientMessage::topics(&products, all_products)?;
            match store.unsubscribe(connection, &topics).await? {
                SubscribeOutcome::Watching(now) => Ok(Reply::Unsubscribed { products: names(now) }),
                SubscribeOutcome::TooMany => Err(InventoryError::internal("unsubscribing cannot add topics")),
                SubscribeOutcome::NoConnection => Err(gone(connection)),
            }
        }
    }
}

fn gone(connection: &ConnectionId) -> InventoryError {
    InventoryError::invalid("connection", format!("connection {connection} is closed; reconnect"))
}

/// `$disconnect` (or a push answered 410): forgets the connection and what it watched.
pub async fn disconnect(store: &impl LiveConnectionStore, connection: &ConnectionId) -> Result<(), InventoryError> {
    store.close_connection(connection).await?;
    tracing::info!(connection = %connection, "live connection closed");
    Ok(())
}

/// A push: the product's GET body, typed for the page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StockPush<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(flatten)]
    pub availability: &'a ProductAvailability,
}

/// A change feed entry (EventBridge `detail-type` and `detail`), see docs/EVENTS.md.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeedEvent {
    #[serde(skip)]
    pub detail_type: &'static str,
    /// The stream record's sequence number: the same change delivered twice has the same one.
    pub change_id: String,
    pub product_id: ProductId,
    pub warehouse_id: crate::domain::WarehouseId,
    /// The item's write counter after the change: only grows, so a consumer drops an event older
    /// than one it has (EventBridge does not keep order).
    pub sequence: i64,
    pub stock_count: i64,
    pub reserved_count: i64,
    pub available: i64,
    pub status: crate::domain::StockStatus,
    /// What changed the item (`hold`, `committed`, `set`, …).
    pub change: ChangeKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reservation_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantity: Option<i64>,
    /// AlertRaised only: the alert as the manager receives it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert: Option<Alert>,
    pub recorded_at: EpochSeconds,
    /// For a sharded item: the shard whose figures (and write counter) these are; the item's
    /// total is what GET shows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<u32>,
}

impl FeedEvent {
    /// The feed's entries for one stream record: StockChanged when the figures moved, with
    /// HoldPlaced/HoldEnded for a hold's transition, and AlertRaised when an alert was claimed.
    pub fn for_change(change: &StockItemChanged) -> Vec<Self> {
        let (new, last) = (&change.new, change.new.last_change.as_ref());
        let base = |detail_type| Self {
            detail_type,
            change_id: change.sequence.clone(),
            product_id: new.product_id.clone(),
            warehouse_id: new.warehouse_id.clone(),
            sequence: new.sequence,
            stock_count: new.stock_count,
            reserved_count: new.reserved_count,
            available: new.available_count,
            status: crate::domain::StockStatus::for_levels(new.available_count, new.threshold_level),
            change: last.map_or(ChangeKind::Unknown, |l| l.kind),
            reservation_id: None,
            quantity: None,
            alert: None,
            recorded_at: change.recorded_at,
            shard: new.is_sharded().then(|| new.shard.unwrap_or(0)),
        };
        let mut events = Vec::new();
        if figures_changed(change) {
            events.push(base("StockChanged"));
            let hold_event = match last.map(|l| l.kind) {
                Some(ChangeKind::Hold) => Some("HoldPlaced"),
                Some(ChangeKind::Committed | ChangeKind::Released | ChangeKind::Expired) => Some("HoldEnded"),
                _ => None,
            };
            if let Some(detail_type) = hold_event {
                // A hold moves `reserved_count` by exactly its units, whichever way.
                let reserved_before = change.old.as_ref().map_or(0, |old| old.reserved_count);
                events.push(Self {
                    reservation_id: last.and_then(|l| l.reservation_id.clone()),
                    quantity: Some((new.reserved_count - reserved_before).abs()),
                    ..base(detail_type)
                });
            }
        }
        // An alert is claimed by writing it as pending; the record that writes it is the news.
        let claimed = new
            .pending_alert
            .as_deref()
            .filter(|p| change.old.as_ref().and_then(|o| o.pending_alert.as_deref()) != Some(*p));
        if let Some(alert) = claimed.and_then(|raw| serde_json::from_str::<Alert>(raw).ok()) {
            events.push(Self { alert: Some(alert), ..base("AlertRaised") });
        }
        events
    }
}

/// Whether the record changed the figures a page shows (not only the alert state on the item).
pub fn figures_changed(change: &StockItemChanged) -> bool {
    change.old.as_ref().is_none_or(|old| old.sequence != change.new.sequence)
}

/// What one batch of stock changes came to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BroadcastReport {
    pub products: usize,
    pub delivered: usize,
    /// Connections that were gone (410): forgotten.
    pub gone: usize,
    /// Pushes that failed otherwise (logged; the page re-fetches when it reconnects).
    pub failed: usize,
    pub feed_events: usize,
}

/// A batch that failed at the record with this sequence number: it and the records after it are
/// delivered again (pushes are versioned and feed entries carry `change_id`, so repeats are harmless).
#[derive(Debug)]
pub struct BatchFailure {
    pub sequence: String,
    pub error: InventoryError,
}

/// The broadcaster: per product whose figures the batch changed (each once, coalesced), its
/// availability as GET computes it, pushed to every connection watching it or everything; then the
/// batch's changes to the change feed. A gone connection (410) is forgotten; one whose push failed
/// otherwise is hung up on (API Gateway closes it), so its page reconnects and re-fetches rather
/// than show figures it missed. Only a store or feed error fails the batch, from the first record
/// either did not finish; pushes and the feed are independent, so neither holds the other back.
pub async fn broadcast(
    stock: &impl StockReader,
    connections: &impl LiveConnectionStore,
    pusher: &impl LivePusher,
    feed: &impl ChangeFeed,
    changes: &[StockItemChanged],
) -> Result<BroadcastReport, BatchFailure> {
    let mut report = BroadcastReport::default();
    let pushed = push_changed_products(stock, connections, pusher, changes, &mut report).await;
    let events: Vec<(usize, FeedEvent)> = changes
        .iter()
        .enumerate()
        .flat_map(|(index, change)| FeedEvent::for_change(change).into_iter().map(move |e| (index, e)))
        .collect();
    let fed = feed.publish(&events).await;
    if fed.is_ok() {
        report.feed_events = events.len();
    }
    // Redeliver from the earlier of the two failures (records before it are done for both).
    match (pushed, fed) {
        (Ok(()), Ok(())) => Ok(report),
        (Err((index, error)), Ok(())) | (Ok(()), Err((index, error))) => {
            Err(BatchFailure { sequence: changes[index].sequence.clone(), error })
        }
        (Err((pushed_at, push_error)), Err((fed_at, feed_error))) => {
            let (index, error) = if pushed_at <= fed_at { (pushed_at, push_error) } else { (fed_at, feed_error) };
            Err(BatchFailure { sequence: changes[index].sequence.clone(), error })
        }
    }
}

/// The pushes of a batch; on a store error, the index of the first record of the product it failed at.
async fn push_changed_products(
    stock: &impl StockReader,
    connections: &impl LiveConnectionStore,
    pusher: &impl LivePusher,
    changes: &[StockItemChanged],
    report: &mut BroadcastReport,
) -> Result<(), (usize, InventoryError)> {
    // Each product once, in the order of its first change; on a failure, redeliver from there.
    let mut products: Vec<(&ProductId, usize)> = Vec::new();
    for (index, change) in changes.iter().enumerate().filter(|(_, c)| figures_changed(c)) {
        if !products.iter().any(|(p, _)| *p == &change.new.product_id) {
            products.push((&change.new.product_id, index));
        }
    }
    let mut everything: Option<Vec<ConnectionId>> = None;
    for (product, first) in products {
        let fail = |error| (first, error);
        let levels = stock.stock_levels(product, None).await.map_err(fail)?;
        let Some(availability) = ProductAvailability::from_levels(product.clone(), &levels) else { continue };
        if everything.is_none() {
            everything = Some(connections.subscribers(&Topic::AllProducts).await.map_err(fail)?);
        }
        let mut watching = connections.subscribers(&Topic::Product(product.clone())).await.map_err(fail)?;
        watching.extend(everything.iter().flatten().cloned());
        watching.sort();
        watching.dedup();
        let body = serde_json::to_string(&StockPush { kind: "stock", availability: &availability })
            .map_err(|err| fail(InventoryError::internal(format!("serialising a push: {err}"))))?;
        let outcomes: Vec<(ConnectionId, PushOutcome)> = stream::iter(watching)
            .map(|connection| {
                let body = body.as_str();
                async move {
                    let outcome = pusher.push(&connection, body).await;
                    (connection, outcome)
                }
            })
            .buffer_unordered(PUSH_CONCURRENCY)
            .collect()
            .await;
        report.products += 1;
        let mut cleanups = Vec::new();
        for (connection, outcome) in outcomes {
            match outcome {
                PushOutcome::Delivered => report.delivered += 1,
                PushOutcome::Gone => {
                    report.gone += 1;
                    cleanups.push((connection, None));
                }
                PushOutcome::Failed(reason) => {
                    report.failed += 1;
                    cleanups.push((connection, Some(reason)));
                }
            }
        }
        // Best effort, concurrently: a connection's records lapse with TTL anyway.
        stream::iter(cleanups)
            .for_each_concurrent(PUSH_CONCURRENCY, |(connection, failed)| async move {
                match failed {
                    None => {
                        if let Err(err) = disconnect(connections, &connection).await {
                            tracing::warn!(connection = %connection, error = %err, "forgetting a gone connection failed");
                        }
                    }
                    Some(reason) => {
                        tracing::warn!(connection = %connection, product = %product, reason,
                                       "push failed; hanging up so the page reconnects and re-fetches");
                        pusher.hang_up(&connection).await;
                    }
                }
            })
            .await;
        tracing::info!(product = %product, sequence = availability.sequence, available = availability.totals.available,
                       "stock pushed");
    }
    Ok(())
}

/// An API Gateway WebSocket event (`$connect`, `$disconnect` or a page's message), the fields used.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SocketEvent {
    pub request_context: SocketContext,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub is_base64_encoded: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SocketContext {
    pub route_key: String,
    pub connection_id: String,
    #[serde(default)]
    pub request_id: Option<String>,
    /// The `$connect` authorizer's context (`viewer`, `user`).
    #[serde(default)]
    pub authorizer: Option<serde_json::Value>,
}

/// What the function answers API Gateway for a WebSocket event: the body goes back on the socket
/// (the route's response), a status other than 2xx on `$connect` refuses the connection.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SocketResponse {
    pub status_code: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}
