//! Stock table stream → the audit trail, the live pages and the change feed.

use broadcast_stock::{AuditTrail, Followers};
use lambda_runtime::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let retention_seconds = shared::config::history_retention_seconds()?;
    let trail = AuditTrail { store: shared::entrypoint::history_store().await?, retention_seconds };
    let (stock, connections, pusher, feed) = shared::entrypoint::live_broadcaster().await?;
    let followers = Followers { trail, stock, connections, pusher, feed };
    shared::entrypoint::serve_stock_batches(&followers, broadcast_stock::handler).await
}
