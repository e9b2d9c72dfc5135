//! DELETE /inventory/{productId}/reservations/{reservationId}: the holder ends the hold.

use lambda_runtime::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let store = shared::entrypoint::dynamo_store().await?;
    shared::entrypoint::serve_http(&store, |store, request| async move {
        release_reservation::handler(store, &request).await
    })
    .await
}
