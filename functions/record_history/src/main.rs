//! Stock table stream → the audit trail: one history entry per change of an item's figures, with
//! who made it and why. Replayed records rewrite the same entries.

use lambda_runtime::Error;
use shared::{config, entrypoint, pipeline};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let retention_seconds = config::history_retention_seconds()?;
    let store = entrypoint::history_store().await?;
    entrypoint::serve_stream(store, move |store, record| async move {
        pipeline::on_history_record(store, &record, retention_seconds).await
    })
    .await
}
