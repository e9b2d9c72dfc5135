//! Stock table stream → alert state and SNS alerts.

use lambda_runtime::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let stores = shared::entrypoint::stores_with_publisher().await?;
    shared::entrypoint::serve_stream(&stores, stock_events::handler).await
}
