//! The live WebSocket API's routes: connect, disconnect, subscribe, unsubscribe.

use lambda_runtime::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let store = shared::entrypoint::live_connections().await?;
    shared::entrypoint::serve_websocket(&store, live_connections::handler).await
}
