//! Stock table stream → pushes to the live pages, and the change feed.

use lambda_runtime::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let parts = shared::entrypoint::live_broadcaster().await?;
    shared::entrypoint::serve_stock_batches(&parts, broadcast_stock::handler).await
}
