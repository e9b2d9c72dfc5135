//! GET /inventory/{productId}/history: the audit trail of a product (admins only).

use lambda_runtime::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let store = shared::entrypoint::history_store().await?;
    shared::entrypoint::serve_http(&store, |store, request| async move { get_history::handler(store, &request).await })
        .await
}
