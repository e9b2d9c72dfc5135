//! The live WebSocket API's `$connect` authorizer: shoppers without a token, admins with one.

use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let verifier = shared::entrypoint::token_verifier().await?;
    let verifier = &verifier;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<authorize_live::AuthorizerEvent>| async move {
        Ok::<_, Error>(authorize_live::handler(verifier, &event.payload).await)
    }))
    .await
}
