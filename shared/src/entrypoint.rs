//! What every HTTP function's `main` does: one store per cold start, then per invocation parse →
//! use case → response, with one structured log line per request.

use std::future::Future;
use std::time::Instant;

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde::Serialize;

use crate::api::{self, Request};
use crate::config::Config;
use crate::error::InventoryError;
use crate::store::{aws_sdk_config, DynamoStore};

/// The DynamoDB store, built once per cold start from the environment; a missing setting fails
/// here, at init, with its name.
pub async fn dynamo_store() -> Result<DynamoStore, Error> {
    let config = Config::from_env()?;
    Ok(DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws_sdk_config().await), config))
}

/// Runs an API Gateway (HTTP API, payload 2.0) function until the runtime stops it.
pub async fn serve_http<S, T, F, Fut>(store: S, handler: F) -> Result<(), Error>
where
    S: Sync + 'static,
    T: Serialize,
    F: Fn(&'static S, Request) -> Fut,
    Fut: Future<Output = Result<(u16, T), InventoryError>>,
{
    // The store lives as long as the process: one client and connection pool for all invocations.
    let store: &'static S = Box::leak(Box::new(store));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Request>| {
        let request_id = api::request_id(&event.payload, &event.context.request_id);
        let route = event.payload.route_key.clone().unwrap_or_default();
        let started = Instant::now();
        // Boxed: the use-case future nests the SDK's and is too deep to lay out inline in `main`.
        let outcome = Box::pin(handler(store, event.payload));
        async move {
            let response = api::respond(outcome.await, &request_id);
            tracing::info!(
                route,
                status = response.status_code,
                latency_ms = started.elapsed().as_millis() as u64,
                api_request_id = request_id,
                "request"
            );
            Ok::<_, Error>(response)
        }
    }))
    .await
}
