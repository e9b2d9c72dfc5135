//! The daily digest of low and out-of-stock items.

use lambda_runtime::Error;
use send_digest::DigestStores;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let (stock, publisher) = shared::entrypoint::stores_with_publisher().await?;
    let sales = shared::entrypoint::history_store().await?;
    let log = shared::entrypoint::digest_log().await?;
    let stores = &DigestStores { stock, sales, log, publisher };
    // A manual invoke may send `{}`; the scheduled event is ignored too.
    shared::entrypoint::serve_json(stores, |stores, _: serde_json::Value| async move {
        Ok::<_, Error>(send_digest::handler(stores).await?)
    })
    .await
}
