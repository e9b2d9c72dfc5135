//! GET /inventory/{productId}/history[?cursor=&limit=]: who changed a product's stock, when, why,
//! and the figures before and after (admins only), newest first.

use lambda_runtime::Error;
use shared::api::{self, Request};
use shared::domain::ProductId;
use shared::history::HistoryPage;
use shared::store::HistoryStore;
use shared::{auth, service, InventoryError};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let store = shared::entrypoint::history_store().await?;
    shared::entrypoint::serve_http(store, |store, request| async move { history(store, &request).await }).await
}

async fn history(store: &impl HistoryStore, request: &Request) -> Result<(u16, HistoryPage), InventoryError> {
    auth::require_admin(auth::signed_in(request)?)?;
    let product = ProductId::parse(api::path_param(request, "productId")?)?;
    let query = api::query_params(request, &["cursor", "limit"])?;
    service::product_history(store, &product, query.single("cursor")?, api::page_limit(&query)?).await
}
