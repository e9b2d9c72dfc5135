//! The scheduled backstop (EventBridge): releases holds past expiry that TTL has not deleted yet,
//! repairs alert states the stream consumer missed and sends their alerts. Returns what it fixed.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use shared::pipeline::{self, BackstopReport};
use shared::{entrypoint, time};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let (store, publisher) = entrypoint::stores_with_publisher().await?;
    let (store, publisher) = (&store, &publisher);
    // The schedule's event carries nothing we need; a manual invoke may send `{}`.
    lambda_runtime::run(service_fn(|_: LambdaEvent<serde_json::Value>| async move {
        Ok::<BackstopReport, Error>(pipeline::backstop(store, publisher, time::now()).await?)
    }))
    .await
}
