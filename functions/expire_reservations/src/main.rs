//! Reservations table stream (TTL deletes only) → each lapsed hold's units back on sale, exactly once.

use lambda_runtime::Error;
use shared::{entrypoint, pipeline, time};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let store = entrypoint::dynamo_store().await?;
    entrypoint::serve_stream(store, |store, record| async move {
        pipeline::on_reservation_record(store, &record, time::now()).await
    })
    .await
}
