//! POST /inventory/{productId}/reserve `{quantity, warehouse_id?}` + Cart-Token + optional
//! Idempotency-Key: "Add to cart" holds units for HOLD_SECONDS, for that cart.

use lambda_runtime::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let settings = reserve_inventory::HoldSettings::from_env()?;
    let store = shared::entrypoint::dynamo_store().await?;
    shared::entrypoint::serve_http(store, move |store, request| async move {
        reserve_inventory::reserve(store, &request, &settings).await
    })
    .await
}
