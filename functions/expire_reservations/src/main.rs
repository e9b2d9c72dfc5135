//! Reservations table stream (TTL deletes only) → lapsed holds back on sale.

use lambda_runtime::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let store = shared::entrypoint::dynamo_store().await?;
    shared::entrypoint::serve_stream(&store, expire_reservations::handler).await
}
