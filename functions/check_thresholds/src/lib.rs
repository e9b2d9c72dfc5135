//! The scheduled backstop (EventBridge): releases holds past expiry that TTL has not deleted yet,
//! repairs alert states the stream consumer missed and sends their alerts, and reconciles counters
//! with the holds on record. Returns what it fixed.

use shared::pipeline::{self, BackstopReport};
use shared::store::{AlertPublisher, AlertStore, ExpiryStore, HoldStore, ReconcileStore, StockAdmin};
use shared::{time, InventoryError};

/// The handler: one backstop run (the schedule's event carries nothing it needs).
pub async fn handler(
    (store, publisher): &(impl HoldStore + ExpiryStore + StockAdmin + AlertStore + ReconcileStore, impl AlertPublisher),
) -> Result<BackstopReport, InventoryError> {
    pipeline::backstop(store, publisher, &time::now).await
}
