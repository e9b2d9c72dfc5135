//! PUT /inventory/{productId}, behind the JWT authorizer:
//! `{reservation_id}` — checkout: any signed-in user commits the hold (sold, exactly once);
//! `{stock_count | adjust_by, threshold_level?, warehouse_id?, reason?, expected_version?}` — admin.

use lambda_runtime::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let store = shared::entrypoint::dynamo_store().await?;
    shared::entrypoint::serve_http(
        store,
        |store, request| async move { update_inventory::update(store, &request).await },
    )
    .await
}
