//! GET /inventory/{productId}/history[?cursor=&limit=]: who changed a product's stock, when, why,
//! and the figures before and after (admins only), newest first.

use shared::api::{self, Request};
use shared::domain::ProductId;
use shared::history::HistoryPage;
use shared::store::HistoryStore;
use shared::{auth, service, InventoryError};

/// The handler: parse, call the use case, map the result.
pub async fn handler(store: &impl HistoryStore, request: &Request) -> Result<(u16, HistoryPage), InventoryError> {
    auth::require_admin(auth::signed_in(request)?)?;
    let product = ProductId::parse(api::path_param(request, "productId")?)?;
    let query = api::query_params(request, &["cursor", "limit"])?;
    service::product_history(store, &product, query.single("cursor")?, api::page_limit(&query)?).await
}
