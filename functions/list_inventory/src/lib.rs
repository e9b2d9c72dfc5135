//! GET /inventory[?status=&cursor=&limit=]: every product and warehouse, for the admin panel.

use shared::api::{self, Request};
use shared::domain::StockStatus;
use shared::service::{self, StockList};
use shared::store::StockAdmin;
use shared::{auth, InventoryError};

/// The handler: parse, call the use case, map the result.
pub async fn handler(store: &impl StockAdmin, request: &Request) -> Result<(u16, StockList), InventoryError> {
    auth::require_admin(auth::signed_in(request)?)?;
    let query = api::query_params(request, &["status", "cursor", "limit"])?;
    let status = query
        .single("status")?
        .map(|raw| {
            serde_json::from_value::<StockStatus>(raw.into())
                .map_err(|_| InventoryError::invalid("status", "status must be IN_STOCK, LOW_STOCK or OUT_OF_STOCK"))
        })
        .transpose()?;
    service::list_stock(store, status, query.single("cursor")?, api::page_limit(&query)?).await
}
