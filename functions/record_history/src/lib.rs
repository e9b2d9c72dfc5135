//! Stock table stream → the audit trail: one history entry per change of an item's figures, with
//! who made it and why. Replayed records rewrite the same entries.

use shared::events::StockItemChanged;
use shared::pipeline;
use shared::store::HistoryStore;
use shared::InventoryError;

/// The audit trail and how long its entries are kept (`HISTORY_RETENTION_DAYS`).
pub struct AuditTrail<S> {
    pub store: S,
    pub retention_seconds: i64,
}

/// The handler: one stock change → at most one history entry (whether it made one).
pub async fn handler(trail: &AuditTrail<impl HistoryStore>, change: StockItemChanged) -> Result<bool, InventoryError> {
    pipeline::on_history_change(&trail.store, &change, trail.retention_seconds).await
}
