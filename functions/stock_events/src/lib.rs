//! Stock table stream → alert state and SNS alerts (LOW_STOCK, OUT_OF_STOCK, BACK_IN_STOCK), one per
//! crossing, damped by the quiet period, never lost: a failed publish is retried from the claim it
//! left on the item. Then, apart from the alerts: shoppers' back-in-stock e-mails
//! (`shared::back_in_stock`).

use shared::alerts::AlertPolicy;
use shared::back_in_stock::{self, ShopperMail};
use shared::events::StockItemChanged;
use shared::live::BatchFailure;
use shared::pipeline::{self, StockRecordOutcome};
use shared::store::{AlertPublisher, AlertStore, Mailer, ShardStore, StockReader, SubscriptionStore};
use shared::{time, InventoryError};

/// The handler: each stock change in order, settled against its item's alert state. A sharded item
/// is judged whole (all its shards read together), so once per batch, at its last record: a sale's
/// holds must not each read every shard. A failure redelivers from the record that failed.
pub async fn handler(
    (store, publisher, policy, shoppers): &(
        impl AlertStore + StockReader + ShardStore,
        impl AlertPublisher,
        AlertPolicy,
        ShopperMail<impl SubscriptionStore, impl Mailer>,
    ),
    changes: Vec<StockItemChanged>,
) -> Result<Vec<StockRecordOutcome>, BatchFailure> {
    let mut outcomes = Vec::with_capacity(changes.len());
    for (index, change) in changes.iter().enumerate() {
        let judged_later = change.new.is_sharded() && changes[index + 1..].iter().any(|later| same_item(later, change));
        let settled = async {
            let outcome = if judged_later {
                StockRecordOutcome::Ignored
            } else {
                pipeline::on_stock_change(store, publisher, *policy, change, time::now()).await?
            };
            // After the alerts, so a failing mail retries the record without holding the alert back; the
            // alert step is idempotent, and so is this one (each subscription is mailed at most once).
            back_in_stock::on_stock_change(store, shoppers, change, time::now()).await?;
            Ok::<_, InventoryError>(outcome)
        };
        match settled.await {
            Ok(outcome) => outcomes.push(outcome),
            Err(error) => return Err(BatchFailure { sequence: change.sequence.clone(), error }),
        }
    }
    Ok(outcomes)
}

fn same_item(a: &StockItemChanged, b: &StockItemChanged) -> bool {
    a.new.product_id == b.new.product_id && a.new.warehouse_id == b.new.warehouse_id
}
