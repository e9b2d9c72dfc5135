//! POST /inventory/{productId}/reserve `{quantity, warehouse_id?}` + optional Idempotency-Key:
//! "Add to cart" holds units for HOLD_SECONDS.

use lambda_runtime::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let hold_seconds = shared::config::hold_seconds()?;
    let store = shared::entrypoint::dynamo_store().await?;
    shared::entrypoint::serve_http(store, move |store, request| async move {
        reserve_inventory::reserve(store, &request, hold_seconds).await
    })
    .await
}
