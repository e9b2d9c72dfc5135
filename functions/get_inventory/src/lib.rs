//! GET /inventory/{productId}[?warehouse_id=]: a product's availability, totals and per warehouse.

use shared::api::{self, Request};
use shared::domain::{ProductAvailability, ProductId, WarehouseId};
use shared::store::StockReader;
use shared::{service, InventoryError};

/// The handler: parse, call the use case, map the result (`main` serves it; the benches call it).
pub async fn handler(
    store: &impl StockReader,
    request: &Request,
) -> Result<(u16, ProductAvailability), InventoryError> {
    let product = ProductId::parse(api::path_param(request, "productId")?)?;
    let warehouse =
        api::query_params(request, &["warehouse_id"])?.single("warehouse_id")?.map(WarehouseId::parse).transpose()?;
    service::product_availability(store, product, warehouse).await
}
