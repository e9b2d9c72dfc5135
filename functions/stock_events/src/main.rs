//! Stock table stream → alert state and SNS alerts.

use lambda_runtime::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let (store, publisher) = shared::entrypoint::stores_with_publisher().await?;
    let state = (store, publisher, shared::config::alert_policy()?);
    shared::entrypoint::serve_stream(&state, stock_events::handler).await
}
