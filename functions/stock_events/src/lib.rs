//! Stock table stream → alert state and SNS alerts (LOW_STOCK, OUT_OF_STOCK, BACK_IN_STOCK), one per
//! crossing, damped by the quiet period, never lost: a failed publish is retried from the claim it
//! left on the item. Then, apart from the alerts: shoppers' back-in-stock e-mails
//! (`shared::back_in_stock`).

use shared::alerts::AlertPolicy;
use shared::back_in_stock::{self, ShopperMail};
use shared::events::StockItemChanged;
use shared::pipeline::{self, StockRecordOutcome};
use shared::store::{AlertPublisher, AlertStore, Mailer, ShardStore, StockReader, SubscriptionStore};
use shared::{time, InventoryError};

/// The handler: one stock change, settled against the item's alert state.
pub async fn handler(
    (store, publisher, policy, shoppers): &(
        impl AlertStore + StockReader + ShardStore,
        impl AlertPublisher,
        AlertPolicy,
        ShopperMail<impl SubscriptionStore, impl Mailer>,
    ),
    change: StockItemChanged,
) -> Result<StockRecordOutcome, InventoryError> {
    let outcome = pipeline::on_stock_change(store, publisher, *policy, &change, time::now()).await?;
    // After the alerts, so a failing mail retries the record without holding the alert back; the
    // alert step is idempotent, and so is this one (each subscription is mailed at most once).
    back_in_stock::on_stock_change(store, shoppers, &change, time::now()).await?;
    Ok(outcome)
}
