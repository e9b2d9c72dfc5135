//! Stock table stream → alert state and SNS alerts (LOW_STOCK, OUT_OF_STOCK, BACK_IN_STOCK), one per
//! crossing, never lost: a failed publish is retried from the claim it left on the item.

use lambda_runtime::Error;
use shared::{entrypoint, pipeline, time};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let stores = entrypoint::stores_with_publisher().await?;
    entrypoint::serve_stream(stores, |(store, publisher), record| async move {
        pipeline::on_stock_record(store, publisher, &record, time::now()).await
    })
    .await
}
