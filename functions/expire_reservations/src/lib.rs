//! Reservations table stream (TTL deletes only) → each lapsed hold's units back on sale, exactly once.

use shared::events::HoldRecordRemoved;
use shared::pipeline::{self, ExpiryOutcome};
use shared::store::ExpiryStore;
use shared::{time, InventoryError};

/// The handler: one removed hold record; an ACTIVE hold that TTL deleted goes back on sale.
pub async fn handler(store: &impl ExpiryStore, removed: HoldRecordRemoved) -> Result<ExpiryOutcome, InventoryError> {
    pipeline::on_hold_removed(store, &removed, time::now()).await
}
