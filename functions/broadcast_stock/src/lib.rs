//! Stock table stream → everything that follows a change without deciding anything: the audit trail
//! (one history entry per change of an item's figures, with who made it and why), the live pages
//! (each changed product's availability pushed to every connection watching it) and the change feed
//! (every change on the EventBridge bus). One function for the three, so the stock stream has two
//! readers (this and the alerts), as AWS advises for a DynamoDB stream's shards.

use shared::events::StockItemChanged;
use shared::live::{self, BatchFailure, BroadcastReport};
use shared::pipeline;
use shared::store::{ChangeFeed, HistoryStore, LiveConnectionStore, LivePusher, StockReader};

/// The audit trail and how long its entries are kept (`HISTORY_RETENTION_DAYS`).
pub struct AuditTrail<S> {
    pub store: S,
    pub retention_seconds: i64,
}

/// What the function writes to and reads from.
pub struct Followers<T, S, C, P, F> {
    pub trail: AuditTrail<T>,
    pub stock: S,
    pub connections: C,
    pub pusher: P,
    pub feed: F,
}

/// What a batch came to: history entries written, and the broadcast.
#[derive(Debug)]
pub struct Followed {
    pub history_entries: usize,
    pub broadcast: BroadcastReport,
}

/// The handler: the batch's changes to the audit trail (in order, up to the first that fails), and
/// broadcast. Each part is safe to repeat (an entry is rewritten, a push is versioned, a feed event
/// carries its change id), so a failure of either redelivers from the earlier record either left.
pub async fn handler(
    followers: &Followers<
        impl HistoryStore,
        impl StockReader,
        impl LiveConnectionStore,
        impl LivePusher,
        impl ChangeFeed,
    >,
    changes: Vec<StockItemChanged>,
) -> Result<Followed, BatchFailure> {
    let mut history_entries = 0;
    let mut trail_failure = None;
    for change in &changes {
        match pipeline::on_history_change(&followers.trail.store, change, followers.trail.retention_seconds).await {
            Ok(written) => history_entries += usize::from(written),
            Err(error) => {
                trail_failure = Some(BatchFailure { sequence: change.sequence.clone(), error });
                break;
            }
        }
    }
    let broadcast =
        live::broadcast(&followers.stock, &followers.connections, &followers.pusher, &followers.feed, &changes).await;
    let position = |sequence: &str| changes.iter().position(|c| c.sequence == sequence);
    match (trail_failure, broadcast) {
        (None, Ok(broadcast)) => Ok(Followed { history_entries, broadcast }),
        (Some(failure), Ok(_)) | (None, Err(failure)) => Err(failure),
        (Some(trail), Err(pushed)) => {
            Err(if position(&trail.sequence) <= position(&pushed.sequence) { trail } else { pushed })
        }
    }
}
