//! Stock table stream → alert state and SNS alerts, and shoppers' back-in-stock e-mails.

use lambda_runtime::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let (store, publisher) = shared::entrypoint::stores_with_publisher().await?;
    let shoppers = shared::entrypoint::shopper_mail().await?;
    let state = (store, publisher, shared::config::alert_policy()?, shoppers);
    shared::entrypoint::serve_stock_batches(&state, stock_events::handler).await
}
