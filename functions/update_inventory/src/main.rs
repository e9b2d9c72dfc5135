//! PUT /inventory/{productId}: checkout, or an admin change of stock (behind the JWT authorizer).

use lambda_runtime::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let store = shared::entrypoint::dynamo_store().await?;
    shared::entrypoint::serve_http(
        &store,
        |store, request| async move { update_inventory::handler(store, &request).await },
    )
    .await
}
