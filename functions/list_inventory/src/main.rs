//! GET /inventory: every product and warehouse, for the admin panel.

use lambda_runtime::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let store = shared::entrypoint::dynamo_store().await?;
    shared::entrypoint::serve_http(
        &store,
        |store, request| async move { list_inventory::handler(store, &request).await },
    )
    .await
}
