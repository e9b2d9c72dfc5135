//! A test-only function (tests/test_panic.py creates it next to the stack; the template never
//! deploys it). It runs through `shared::entrypoint::serve_http` exactly as the API functions do
//! and is built by the same `cargo build --release --workspace --all-targets`, so with the same profile. Its
//! handler panics on `/panic`; any other path answers which process served it and how many
//! requests that process has seen, so the test can tell that a panic left the process serving.

use std::sync::atomic::{AtomicU64, Ordering};

use lambda_runtime::Error;
use serde::Serialize;
use shared::api::Request;
use shared::InventoryError;

#[derive(Serialize)]
struct Served {
    pid: u32,
    requests: u64,
}

static REQUESTS: AtomicU64 = AtomicU64::new(0);

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    shared::entrypoint::serve_http(&(), |_, request| async move { probe(&request).await }).await
}

async fn probe(request: &Request) -> Result<(u16, Served), InventoryError> {
    let requests = REQUESTS.fetch_add(1, Ordering::SeqCst) + 1;
    // An await first, so the panic happens while the runtime polls the handler's future.
    tokio::task::yield_now().await;
    if request.raw_path.as_deref() == Some("/panic") {
        panic!("panic_probe: request {requests} panics on purpose");
    }
    Ok((200, Served { pid: std::process::id(), requests }))
}
