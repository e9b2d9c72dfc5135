//! The live WebSocket API's `$connect` authorizer: shoppers without a token, admins with one.

use lambda_runtime::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let verifier = shared::entrypoint::token_verifier().await?;
    shared::entrypoint::serve_json(&verifier, |verifier, event: authorize_live::AuthorizerEvent| async move {
        Ok::<_, Error>(authorize_live::handler(verifier, &event).await)
    })
    .await
}
