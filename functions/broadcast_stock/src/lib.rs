//! Stock table stream → live pages and the change feed: per batch, each changed product's
//! availability (as GET computes it) pushed to every connection watching it, and every change to
//! the EventBridge bus (`shared::live::broadcast`).

use shared::events::StockItemChanged;
use shared::live::{self, BatchFailure, BroadcastReport};
use shared::store::{ChangeFeed, LiveConnectionStore, LivePusher, StockReader};

/// The handler: one batch of stock changes, broadcast.
pub async fn handler(
    (store, connections, pusher, feed): &(impl StockReader, impl LiveConnectionStore, impl LivePusher, impl ChangeFeed),
    changes: Vec<StockItemChanged>,
) -> Result<BroadcastReport, BatchFailure> {
    live::broadcast(store, connections, pusher, feed, &changes).await
}
