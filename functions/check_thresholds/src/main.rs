//! The scheduled backstop and reconciler.

use lambda_runtime::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let (store, publisher) = shared::entrypoint::stores_with_publisher().await?;
    let stores = &(store, publisher, shared::config::alert_policy()?);
    // A manual invoke may send `{}`; the scheduled event is ignored too.
    shared::entrypoint::serve_json(stores, |stores, _: serde_json::Value| async move {
        Ok::<_, Error>(check_thresholds::handler(stores).await?)
    })
    .await
}
