//! What every function's `main` does: the SDK clients and stores once per cold start (a missing
//! setting fails there), then per invocation: an HTTP request parsed → use case → response, with one
//! structured log line per request; or a stream batch turned into domain events → use case.

use std::any::Any;
use std::future::{poll_fn, Future};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::task::Poll;
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use aws_lambda_events::dynamodb::{Event as StreamEvent, EventRecord as StreamRecord};
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use futures::future::LocalBoxFuture;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde::Serialize;

use crate::api::{self, Request};
use crate::back_in_stock::{EmailAddress, EmailLinks, ShopperMail};
use crate::config::Config;
use crate::error::InventoryError;
use crate::events::FromStreamRecord;
use crate::events::StockItemChanged;
use crate::live::{BatchFailure, Reply, SocketEvent, SocketResponse};
use crate::metrics::{self, Metric};
use crate::store::digest::DynamoDigestLog;
use crate::store::dynamo::DynamoStore;
use crate::store::history::DynamoHistory;
use crate::store::live::{ApiGatewayPusher, DynamoConnections, EventBridgeFeed};
use crate::store::ses::SesMailer;
use crate::store::sns::SnsPublisher;
use crate::store::subscriptions::DynamoSubscriptions;

/// A future made here, boxed. An async body is compiled where it is polled, so an `async fn` of this
/// crate awaited by a function's `main` would be compiled again in each of the fourteen binaries, with
/// everything it awaits (lambda_runtime, hyper, the SDK's request machinery): that was most of the
/// release build. So the builders and the runtime loops below are plain functions returning a boxed
/// future, and each `serve_*` is a thin generic shim that boxes its handler and calls one of those
/// loops; the store traits box their futures the same way (`async_trait`, see `store`).
type Boxed<'a, T> = LocalBoxFuture<'a, T>;

/// The SDK config every function uses: bounded time per attempt and per operation, so a slow
/// DynamoDB answer becomes a retry or a 503 within the API's time budget instead of a hung request.
pub async fn aws_sdk_config() -> aws_config::SdkConfig {
    // rustls with ring (see the workspace's Cargo.toml for why not the SDK's default client).
    let https = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(https)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(1))
                .operation_attempt_timeout(Duration::from_secs(2))
                .operation_timeout(Duration::from_secs(5))
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .load()
        .await
}

/// The DynamoDB store, built once per cold start from the environment; a missing setting fails
/// here, at init, with its name.
#[inline(never)]
pub fn dynamo_store() -> Boxed<'static, Result<DynamoStore, Error>> {
    Box::pin(async { Ok(stores().await?.0) })
}

/// The DynamoDB store and the alerts publisher (`ALERTS_TOPIC_ARN`), sharing one SDK config.
#[inline(never)]
pub fn stores_with_publisher() -> Boxed<'static, Result<(DynamoStore, SnsPublisher), Error>> {
    Box::pin(async {
        let topic = crate::config::required("ALERTS_TOPIC_ARN")?;
        let (store, sdk_config) = stores().await?;
        Ok((store, SnsPublisher::new(aws_sdk_sns::Client::new(&sdk_config), topic)))
    })
}

/// The audit trail's store (`HISTORY_TABLE`).
#[inline(never)]
pub fn history_store() -> Boxed<'static, Result<DynamoHistory, Error>> {
    Box::pin(async {
        let table = crate::config::required("HISTORY_TABLE")?;
        Ok(DynamoHistory::new(aws_sdk_dynamodb::Client::new(&aws_sdk_config().await), table))
    })
}

/// The daily digest's log, in the requests table (`REQUESTS_TABLE`).
#[inline(never)]
pub fn digest_log() -> Boxed<'static, Result<DynamoDigestLog, Error>> {
    Box::pin(async {
        let table = crate::config::required("REQUESTS_TABLE")?;
        Ok(DynamoDigestLog::new(aws_sdk_dynamodb::Client::new(&aws_sdk_config().await), table))
    })
}

/// Back-in-stock sign-ups and e-mails (`SUBSCRIPTIONS_TABLE`, `SHOPPER_EMAIL_FROM`, `PUBLIC_API_URL`,
/// and the requests table for the carts' sign-up counts). The SES client makes one attempt per mail,
/// never an SDK retry: a shopper gets each e-mail at most once (see `back_in_stock`).
#[inline(never)]
pub fn shopper_mail() -> Boxed<'static, Result<ShopperMail<DynamoSubscriptions, SesMailer>, Error>> {
    Box::pin(async {
        let table = crate::config::required("SUBSCRIPTIONS_TABLE")?;
        let from = EmailAddress::parse(&crate::config::required("SHOPPER_EMAIL_FROM")?)
            .map_err(|err| format!("SHOPPER_EMAIL_FROM: {err}"))?;
        let api_url = crate::config::required("PUBLIC_API_URL")?;
        let requests_table = Config::from_env()?.requests_table;
        let sdk_config = aws_sdk_config().await;
        let ses_config =
            aws_sdk_sesv2::config::Builder::from(&sdk_config).retry_config(RetryConfig::disabled()).build();
        Ok(ShopperMail {
            subscriptions: DynamoSubscriptions::new(aws_sdk_dynamodb::Client::new(&sdk_config), table, requests_table),
            mailer: SesMailer::new(aws_sdk_sesv2::Client::from_conf(ses_config), from),
            links: EmailLinks { api_url },
        })
    })
}

/// The live connections table (`CONNECTIONS_TABLE`).
#[inline(never)]
pub fn live_connections() -> Boxed<'static, Result<DynamoConnections, Error>> {
    Box::pin(async {
        let table = crate::config::required("CONNECTIONS_TABLE")?;
        Ok(DynamoConnections::new(aws_sdk_dynamodb::Client::new(&aws_sdk_config().await), table))
    })
}

/// The broadcaster's parts: the stock store, the connections table, the pusher on the live API's
/// `@connections` endpoint (`LIVE_CONNECTIONS_ENDPOINT`: `https://<api>.execute-api.<region>.amazonaws.com/<stage>`)
/// and the change feed's bus (`EVENT_BUS_NAME`).
#[inline(never)]
pub fn live_broadcaster(
) -> Boxed<'static, Result<(DynamoStore, DynamoConnections, ApiGatewayPusher, EventBridgeFeed), Error>> {
    Box::pin(async {
        let connections_table = crate::config::required("CONNECTIONS_TABLE")?;
        let endpoint = crate::config::required("LIVE_CONNECTIONS_ENDPOINT")?;
        let bus = crate::config::required("EVENT_BUS_NAME")?;
        let (store, sdk_config) = stores().await?;
        // One attempt per push: a page that misses one re-fetches when it reconnects, and a retry
        // would hold the batch behind a slow subscriber.
        let push_config = aws_sdk_apigatewaymanagement::config::Builder::from(&sdk_config)
            .endpoint_url(endpoint)
            .retry_config(RetryConfig::disabled())
            .build();
        Ok((
            store,
            DynamoConnections::new(aws_sdk_dynamodb::Client::new(&sdk_config), connections_table),
            ApiGatewayPusher::new(aws_sdk_apigatewaymanagement::Client::from_conf(push_config)),
            EventBridgeFeed::new(aws_sdk_eventbridge::Client::new(&sdk_config), bus),
        ))
    })
}

/// The live socket's token verifier: the user pool's keys (`JWKS_URL`), its issuer
/// (`TOKEN_ISSUER`) and our app client (`USER_POOL_CLIENT_ID`). Keys that cannot be fetched now
/// do not stop the function: a shopper's socket needs none.
#[inline(never)]
pub fn token_verifier() -> Boxed<'static, Result<crate::tokens::TokenVerifier, Error>> {
    Box::pin(async {
        let jwks_url = crate::config::required("JWKS_URL")?;
        let issuer = crate::config::required("TOKEN_ISSUER")?;
        let client_id = crate::config::required("USER_POOL_CLIENT_ID")?;
        Ok(crate::tokens::TokenVerifier::new(&jwks_url, &issuer, &client_id).await)
    })
}

async fn stores() -> Result<(DynamoStore, aws_config::SdkConfig), Error> {
    let config = Config::from_env()?;
    let sdk_config = aws_sdk_config().await;
    Ok((DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk_config), config), sdk_config))
}

/// Runs a DynamoDB-stream consumer: each record is turned into the domain event `E` (a record that
/// is none is skipped) and handed to `handle_event`. Records are handled in order; at the first that
/// fails, its sequence number is reported as the batch item failure and the rest are left for the
/// retry, so changes to one item are never applied out of order (the event source mapping must have
/// `ReportBatchItemFailures`; it bisects, retries and finally sends the record to the DLQ).
pub async fn serve_stream<'a, S, E, R, F, Fut>(state: &'a S, handle_event: F) -> Result<(), Error>
where
    S: Sync,
    E: FromStreamRecord + 'a,
    R: std::fmt::Debug,
    F: Fn(&'a S, E) -> Fut + 'a,
    Fut: Future<Output = Result<R, InventoryError>> + 'a,
{
    let handle_record = move |record: &StreamRecord| -> Boxed<'a, Result<(), InventoryError>> {
        let sequence = record.change.sequence_number.clone();
        match E::from_record(record) {
            Ok(Some(domain_event)) => {
                let handled = handle_event(state, domain_event);
                Box::pin(async move {
                    let outcome = handled.await?;
                    tracing::debug!(?outcome, sequence, "record handled");
                    Ok(())
                })
            }
            Ok(None) => {
                tracing::debug!(sequence, "record skipped: no domain event");
                Box::pin(std::future::ready(Ok(())))
            }
            Err(err) => Box::pin(std::future::ready(Err(err))),
        }
    };
    run_stream(&handle_record).await
}

#[inline(never)]
fn run_stream<'h, 'a: 'h>(
    handle_record: &'h (dyn Fn(&StreamRecord) -> Boxed<'a, Result<(), InventoryError>> + 'h),
) -> Boxed<'h, Result<(), Error>> {
    run_stream_batches(Box::new(move |batch: StreamEvent| -> Boxed<'h, DynamoDbEventResponse> {
        Box::pin(async move {
            for record in &batch.records {
                if let Err(err) = handle_record(record).await {
                    let sequence = record.change.sequence_number.clone();
                    tracing::error!(error = %err, detail = ?err, sequence, event_id = record.event_id,
                                    "record failed; reporting it for retry");
                    return batch_failure(sequence);
                }
            }
            DynamoDbEventResponse::default()
        })
    }))
}

/// The loop of every stream consumer: each batch's lag as a metric, then `handle_batch`'s answer.
fn run_stream_batches<'h>(
    handle_batch: Box<dyn Fn(StreamEvent) -> Boxed<'h, DynamoDbEventResponse> + 'h>,
) -> Boxed<'h, Result<(), Error>> {
    Box::pin(async move {
        // Names the consumer on its stream-lag metric; read once per cold start, not per batch.
        let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default();
        let (function, handle_batch) = (function.as_str(), &handle_batch);
        lambda_runtime::run(service_fn(move |event: LambdaEvent<StreamEvent>| async move {
            emit_stream_lag(function, &event.payload);
            Ok::<_, Error>(handle_batch(event.payload).await)
        }))
        .await
    })
}

fn emit_stream_lag(function: &str, batch: &StreamEvent) {
    let now = crate::time::now();
    if let Some(lag) = batch.records.iter().map(|r| now - r.change.approximate_creation_date_time.timestamp()).max() {
        metrics::emit(&[(Metric::StreamLagSeconds, lag.max(0) as f64)], None, &[("function", function)]);
    }
}

/// The answer that has the record `sequence` and every later one delivered again.
fn batch_failure(sequence: Option<String>) -> DynamoDbEventResponse {
    let mut failure = DynamoDbBatchItemFailure::default();
    failure.item_identifier = sequence;
    let mut response = DynamoDbEventResponse::default();
    response.batch_item_failures = vec![failure];
    response
}

/// Runs a stock-stream consumer that handles each batch as a whole (the broadcaster coalesces a
/// product's changes): the records up to the first that is not a valid change go to `handle_batch`,
/// and that one is reported as failed (retried, then dead-lettered for the operators, like the other
/// consumers do). A failure names the record to redeliver from (it and the rest come again).
pub async fn serve_stock_batches<'a, S, R, F, Fut>(state: &'a S, handle_batch: F) -> Result<(), Error>
where
    S: Sync,
    R: std::fmt::Debug,
    F: Fn(&'a S, Vec<StockItemChanged>) -> Fut + 'a,
    Fut: Future<Output = Result<R, BatchFailure>> + 'a,
{
    let handle_batch = move |changes: Vec<StockItemChanged>| -> Boxed<'a, Result<(), BatchFailure>> {
        let handled = handle_batch(state, changes);
        Box::pin(async move {
            let outcome = handled.await?;
            tracing::info!(?outcome, "batch handled");
            Ok(())
        })
    };
    run_stock_batches(&handle_batch).await
}

#[inline(never)]
fn run_stock_batches<'h, 'a: 'h>(
    handle_batch: &'h (dyn Fn(Vec<StockItemChanged>) -> Boxed<'a, Result<(), BatchFailure>> + 'h),
) -> Boxed<'h, Result<(), Error>> {
    run_stream_batches(Box::new(move |batch: StreamEvent| -> Boxed<'h, DynamoDbEventResponse> {
        Box::pin(async move {
            let mut changes = Vec::new();
            let mut malformed = None;
            for record in &batch.records {
                match StockItemChanged::from_record(record) {
                    Ok(Some(change)) => changes.push(change),
                    Ok(None) => {}
                    Err(err) => {
                        tracing::error!(error = %err, sequence = record.change.sequence_number, "record failed; reporting it for retry");
                        malformed = record.change.sequence_number.clone();
                        break;
                    }
                }
            }
            match handle_batch(changes).await {
                Ok(()) => malformed.map(|sequence| batch_failure(Some(sequence))).unwrap_or_default(),
                Err(BatchFailure { sequence, error }) => {
                    tracing::error!(error = %error, detail = ?error, sequence, "batch failed; reporting it for retry");
                    batch_failure(Some(sequence))
                }
            }
        })
    }))
}

/// Runs the live WebSocket API's function: each event to `handler`; a reply goes back on the
/// socket. A refused message is answered on the socket with the error (the page can tell what was
/// wrong); a failed `$connect` refuses the connection.
pub async fn serve_websocket<'a, S, F, Fut>(state: &'a S, handler: F) -> Result<(), Error>
where
    S: Sync,
    F: Fn(&'a S, SocketEvent) -> Fut + 'a,
    Fut: Future<Output = Result<Option<Reply>, InventoryError>> + 'a,
{
    let handler = move |event: SocketEvent| -> Boxed<'a, Result<Option<Reply>, InventoryError>> {
        Box::pin(handler(state, event))
    };
    run_websocket(&handler).await
}

#[inline(never)]
fn run_websocket<'h, 'a: 'h>(
    handler: &'h (dyn Fn(SocketEvent) -> Boxed<'a, Result<Option<Reply>, InventoryError>> + 'h),
) -> Boxed<'h, Result<(), Error>> {
    Box::pin(async move {
        lambda_runtime::run(service_fn(move |event: LambdaEvent<SocketEvent>| {
            let route = event.payload.request_context.route_key.clone();
            let connection = event.payload.request_context.connection_id.clone();
            let request_id =
                event.payload.request_context.request_id.clone().unwrap_or_else(|| event.context.request_id.clone());
            let started = Instant::now();
            let outcome = unless_panicked(move || handler(event.payload));
            async move {
                let (status, reply) = match outcome.await {
                    Ok(reply) => (200, reply),
                    Err(err) => {
                        if err.status() >= 500 {
                            tracing::error!(error = %err, detail = ?err, route, "live event failed");
                        }
                        let status = if route == "$connect" { err.status() } else { 200 };
                        (status, Some(Reply::error(&err)))
                    }
                };
                tracing::info!(
                    route,
                    connection,
                    status,
                    latency_ms = started.elapsed().as_millis() as u64,
                    api_request_id = request_id,
                    "live event"
                );
                let body = reply.map(|r| serde_json::to_string(&r)).transpose()?;
                Ok::<_, Error>(SocketResponse { status_code: status, body })
            }
        }))
        .await
    })
}

/// Runs an API Gateway (HTTP API, payload 2.0) function until the runtime stops it. `state` (the
/// store and settings, built once per cold start) lives in `main` for as long as this runs.
pub async fn serve_http<'a, S, T, F, Fut>(state: &'a S, handler: F) -> Result<(), Error>
where
    S: Sync,
    T: Serialize,
    F: Fn(&'a S, Request) -> Fut + 'a,
    Fut: Future<Output = Result<(u16, T), InventoryError>> + 'a,
{
    let handler = move |request: Request| -> Boxed<'a, Result<(u16, String), InventoryError>> {
        let handled = handler(state, request);
        Box::pin(async move {
            let (status, body) = handled.await?;
            Ok((status, api::body_text(&body)?))
        })
    };
    run_http(&handler).await
}

#[inline(never)]
fn run_http<'h, 'a: 'h>(
    handler: &'h (dyn Fn(Request) -> Boxed<'a, Result<(u16, String), InventoryError>> + 'h),
) -> Boxed<'h, Result<(), Error>> {
    Box::pin(async move {
        lambda_runtime::run(service_fn(move |event: LambdaEvent<Request>| {
            let request_id = api::request_id(&event.payload, &event.context.request_id);
            let route = event.payload.route_key.clone().unwrap_or_default();
            let started = Instant::now();
            let outcome = unless_panicked(move || handler(event.payload));
            async move {
                let response = api::respond_with_text(outcome.await, &request_id);
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
    })
}

/// Runs a function invoked with plain JSON (a schedule, a manual invoke, the live API's
/// authorizer): the event is parsed as `E` and the handler's answer `R` goes back as JSON. A
/// handler error fails the invocation (the schedule's retry policy and alarms take it from there).
pub async fn serve_json<'a, S, E, R, F, Fut>(state: &'a S, handler: F) -> Result<(), Error>
where
    S: Sync,
    E: serde::de::DeserializeOwned,
    R: Serialize,
    F: Fn(&'a S, E) -> Fut + 'a,
    Fut: Future<Output = Result<R, Error>> + 'a,
{
    let handler = move |event: serde_json::Value| -> Boxed<'a, Result<serde_json::Value, Error>> {
        // With the path to the offending field, as the runtime's own parsing would name it.
        match serde_path_to_error::deserialize::<_, E>(event) {
            Ok(event) => {
                let handled = handler(state, event);
                Box::pin(async move { Ok(serde_json::to_value(handled.await?)?) })
            }
            Err(err) => Box::pin(std::future::ready(Err(Error::from(format!("unreadable event: {err}"))))),
        }
    };
    run_json(&handler).await
}

#[inline(never)]
fn run_json<'h, 'a: 'h>(
    handler: &'h (dyn Fn(serde_json::Value) -> Boxed<'a, Result<serde_json::Value, Error>> + 'h),
) -> Boxed<'h, Result<(), Error>> {
    Box::pin(async move {
        lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| handler(event.payload))).await
    })
}

/// The handler's outcome, with a panic (calling the handler or polling its future) turned into an
/// internal error: the caller gets the documented 500 with its request id, the panic is logged as
/// the request's error, and the process goes on serving. This needs `panic = "unwind"`, the
/// release profile's setting (Cargo.toml); tests/test_panic.py checks it on the built binary.
fn unless_panicked<'a, T: 'a>(
    start: impl FnOnce() -> Boxed<'a, Result<T, InventoryError>>,
) -> impl Future<Output = Result<T, InventoryError>> + 'a {
    let mut started = catch_unwind(AssertUnwindSafe(start));
    poll_fn(move |cx| match &mut started {
        Ok(future) => match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(poll) => poll,
            Err(panic) => Poll::Ready(Err(panicked(&*panic))),
        },
        Err(panic) => Poll::Ready(Err(panicked(&**panic))),
    })
}

fn panicked(panic: &(dyn Any + Send)) -> InventoryError {
    let message = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)");
    InventoryError::internal(format!("handler panicked: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detail(outcome: Result<(), InventoryError>) -> String {
        match outcome {
            Err(InventoryError::Internal { detail }) => detail,
            other => panic!("expected an internal error, got {other:?}"),
        }
    }

    async fn panics_in_the_future(n: u32) -> Result<(), InventoryError> {
        panic!("in the future {n}")
    }

    #[tokio::test]
    async fn a_panicking_handler_is_an_internal_error() {
        assert_eq!(
            detail(unless_panicked(|| Box::pin(panics_in_the_future(1))).await),
            "handler panicked: in the future 1"
        );
        let at_once = unless_panicked(|| -> Boxed<'static, Result<(), InventoryError>> { panic!("at once") });
        assert_eq!(detail(at_once.await), "handler panicked: at once");
        assert_eq!(unless_panicked(|| Box::pin(async { Ok::<_, InventoryError>(7) })).await.unwrap(), 7);
    }
}
