//! Stock table stream → the audit trail.

use lambda_runtime::Error;
use record_history::AuditTrail;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let retention_seconds = shared::config::history_retention_seconds()?;
    let trail = AuditTrail { store: shared::entrypoint::history_store().await?, retention_seconds };
    shared::entrypoint::serve_stream(&trail, record_history::handler).await
}
