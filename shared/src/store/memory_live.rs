//! In-memory live connections, pusher and change feed, with the adapters' semantics (`live`), for
//! the use-case tests: a closed connection's subscribe changes nothing, a connection never watches
//! more than the limit, a push to a gone connection answers Gone.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard};

use super::{ChangeFeed, LiveConnectionStore, LivePusher, PushOutcome};
use crate::error::InventoryError;
use crate::live::{ConnectionId, FeedEvent, SubscribeOutcome, Topic, Viewer};
use crate::time::EpochSeconds;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A connection's record: who opened it, what it watches, when it lapses.
type ConnectionRecord = (Viewer, BTreeSet<Topic>, EpochSeconds);

#[derive(Debug, Default)]
pub struct MemoryConnections {
    connections: Mutex<BTreeMap<ConnectionId, ConnectionRecord>>,
}

impl MemoryConnections {
    pub fn new() -> Self {
        Self::default()
    }

    /// What the connection watches (`None`: it is closed).
    pub fn topics(&self, connection: &ConnectionId) -> Option<BTreeSet<Topic>> {
        lock(&self.connections).get(connection).map(|(_, topics, _)| topics.clone())
    }
}

#[async_trait::async_trait]
impl LiveConnectionStore for MemoryConnections {
    async fn open_connection(
        &self,
        connection: &ConnectionId,
        viewer: &Viewer,
        expires_at: EpochSeconds,
    ) -> Result<(), InventoryError> {
        tokio::task::yield_now().await;
        lock(&self.connections).insert(connection.clone(), (viewer.clone(), BTreeSet::new(), expires_at));
        Ok(())
    }

    async fn viewer(&self, connection: &ConnectionId) -> Result<Option<Viewer>, InventoryError> {
        tokio::task::yield_now().await;
        Ok(lock(&self.connections).get(connection).map(|(viewer, _, _)| viewer.clone()))
    }

    async fn subscribe(
        &self,
        connection: &ConnectionId,
        topics: &BTreeSet<Topic>,
        limit: usize,
    ) -> Result<SubscribeOutcome, InventoryError> {
        tokio::task::yield_now().await;
        let mut connections = lock(&self.connections);
        let Some((_, watching, _)) = connections.get_mut(connection) else { return Ok(SubscribeOutcome::NoConnection) };
        let after: BTreeSet<Topic> = watching.union(topics).cloned().collect();
        if after.len() > limit {
            return Ok(SubscribeOutcome::TooMany);
        }
        *watching = after.clone();
        Ok(SubscribeOutcome::Watching(after))
    }

    async fn unsubscribe(
        &self,
        connection: &ConnectionId,
        topics: &BTreeSet<Topic>,
    ) -> Result<SubscribeOutcome, InventoryError> {
        tokio::task::yield_now().await;
        let mut connections = lock(&self.connections);
        let Some((_, watching, _)) = connections.get_mut(connection) else { return Ok(SubscribeOutcome::NoConnection) };
        watching.retain(|t| !topics.contains(t));
        Ok(SubscribeOutcome::Watching(watching.clone()))
    }

    async fn close_connection(&self, connection: &ConnectionId) -> Result<(), InventoryError> {
        tokio::task::yield_now().await;
        lock(&self.connections).remove(connection);
        Ok(())
    }

    async fn subscribers(&self, topic: &Topic) -> Result<Vec<ConnectionId>, InventoryError> {
        tokio::task::yield_now().await;
        Ok(lock(&self.connections)
            .iter()
            .filter(|(_, (_, topics, _))| topics.contains(topic))
            .map(|(id, _)| id.clone())
            .collect())
    }
}

/// Records pushes and hang-ups; connections marked gone answer Gone, those marked failing Failed.
#[derive(Debug, Default)]
pub struct RecordingPusher {
    pub pushed: Mutex<Vec<(ConnectionId, serde_json::Value)>>,
    pub gone: Mutex<BTreeSet<ConnectionId>>,
    pub failing: Mutex<BTreeSet<ConnectionId>>,
    pub hung_up: Mutex<Vec<ConnectionId>>,
}

impl RecordingPusher {
    /// The pushes delivered so far, as (connection, parsed body).
    pub fn delivered(&self) -> Vec<(ConnectionId, serde_json::Value)> {
        lock(&self.pushed).clone()
    }
}

#[async_trait::async_trait]
impl LivePusher for RecordingPusher {
    async fn push(&self, connection: &ConnectionId, body: &str) -> PushOutcome {
        tokio::task::yield_now().await;
        if lock(&self.gone).contains(connection) {
            return PushOutcome::Gone;
        }
        if lock(&self.failing).contains(connection) {
            return PushOutcome::Failed("throttled".into());
        }
        let value = serde_json::from_str(body).unwrap_or(serde_json::Value::Null);
        lock(&self.pushed).push((connection.clone(), value));
        PushOutcome::Delivered
    }

    async fn hang_up(&self, connection: &ConnectionId) {
        tokio::task::yield_now().await;
        lock(&self.hung_up).push(connection.clone());
    }
}

/// Records the feed's events; refuses every one while `refusing`.
#[derive(Debug, Default)]
pub struct MemoryFeed {
    pub events: Mutex<Vec<FeedEvent>>,
    pub refusing: Mutex<bool>,
}

#[async_trait::async_trait]
impl ChangeFeed for MemoryFeed {
    async fn publish(&self, events: &[(usize, FeedEvent)]) -> Result<(), (usize, InventoryError)> {
        tokio::task::yield_now().await;
        if let (true, Some((first, _))) = (*lock(&self.refusing), events.first()) {
            return Err((*first, InventoryError::Unavailable { detail: "the feed refused".into() }));
        }
        lock(&self.events).extend(events.iter().map(|(_, e)| e.clone()));
        Ok(())
    }
}
