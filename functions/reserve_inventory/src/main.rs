//! POST /inventory/{productId}/reserve: "Add to cart" holds units for the cart.

use lambda_runtime::Error;
use reserve_inventory::HoldSettings;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let settings = HoldSettings::from_env()?;
    let store = shared::entrypoint::dynamo_store().await?;
    let settings = &settings;
    shared::entrypoint::serve_http(&store, |store, request| async move {
        reserve_inventory::handler(store, &request, settings).await
    })
    .await
}
