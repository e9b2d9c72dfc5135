//! Back-in-stock sign-up, confirmation and unsubscribe for shoppers.

use lambda_runtime::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let stock = shared::entrypoint::dynamo_store().await?;
    let shoppers = shared::entrypoint::shopper_mail().await?;
    let state = (stock, shoppers);
    shared::entrypoint::serve_http(&state, |(stock, shoppers), request| async move {
        back_in_stock::handler(stock, shoppers, &request).await
    })
    .await
}
