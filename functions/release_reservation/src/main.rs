//! DELETE /inventory/{productId}/reservations/{reservationId}: the shopper removes the item from
//! the cart and the units go back on sale. The reservation id is the capability; a repeat is harmless.

use lambda_runtime::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let store = shared::entrypoint::dynamo_store().await?;
    shared::entrypoint::serve_http(store, |store, request| async move {
        release_reservation::release(store, &request).await
    })
    .await
}
