//! Stock table stream → alert state and SNS alerts (LOW_STOCK, OUT_OF_STOCK, BACK_IN_STOCK), one per
//! crossing, damped by the quiet period, never lost: a failed publish is retried from the claim it
//! left on the item.

use shared::alerts::AlertPolicy;
use shared::events::StockItemChanged;
use shared::pipeline::{self, StockRecordOutcome};
use shared::store::{AlertPublisher, AlertStore};
use shared::{time, InventoryError};

/// The handler: one stock change, settled against the item's alert state.
pub async fn handler(
    (store, publisher, policy): &(impl AlertStore, impl AlertPublisher, AlertPolicy),
    change: StockItemChanged,
) -> Result<StockRecordOutcome, InventoryError> {
    pipeline::on_stock_change(store, publisher, *policy, &change, time::now()).await
}
