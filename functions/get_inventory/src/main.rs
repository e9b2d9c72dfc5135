//! GET /inventory/{productId}[?warehouse_id=]: a product's availability, totals and per warehouse.

use lambda_runtime::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let store = shared::entrypoint::dynamo_store().await?;
    shared::entrypoint::serve_http(
        &store,
        |store, request| async move { get_inventory::handler(store, &request).await },
    )
    .await
}
