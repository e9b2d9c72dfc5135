//! The scheduled backstop (EventBridge): releases holds past expiry that TTL has not deleted yet,
//! repairs alert states the stream consumer missed and sends their alerts, sends the alerts a quiet
//! period held once they are due, and reconciles counters with the holds on record. Returns what it
//! did.

use shared::alerts::AlertPolicy;
use shared::pipeline::{self, BackstopReport};
use shared::store::{AlertPublisher, AlertStore, ExpiryStore, HoldStore, ReconcileStore, StockAdmin};
use shared::{time, InventoryError};

/// The handler: one backstop run (the schedule's event carries nothing it needs).
pub async fn handler(
    (store, publisher, policy): &(
        impl HoldStore + ExpiryStore + StockAdmin + AlertStore + ReconcileStore,
        impl AlertPublisher,
        AlertPolicy,
    ),
) -> Result<BackstopReport, InventoryError> {
    pipeline::backstop(store, publisher, *policy, &time::now).await
}
