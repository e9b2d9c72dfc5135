//! GET /inventory/{productId}[?warehouse_id=]: a product's availability, totals and per warehouse.

use shared::api::{self, Request};
use shared::domain::{ProductAvailability, ProductId, WarehouseId};
use shared::store::StockReader;
use shared::InventoryError;

/// The handler: parse, call the use case, map the result (`main` serves it; the benches call it).
pub async fn get_inventory(
    store: &impl StockReader,
    request: &Request,
) -> Result<(u16, ProductAvailability), InventoryError> {
    let product = ProductId::parse(api::path_param(request, "productId")?)?;
    let warehouse =
        api::query_params(request, &["warehouse_id"])?.single("warehouse_id")?.map(WarehouseId::parse).transpose()?;
    let levels = store.stock_levels(&product, warehouse.as_ref()).await?;
    let not_found = || InventoryError::ProductNotFound {
        message: match &warehouse {
            Some(warehouse) => {
                format!("product {product} has no stock record in warehouse {warehouse}")
            }
            None => format!("product {product} not found"),
        },
    };
    let view = ProductAvailability::from_levels(product.clone(), &levels).ok_or_else(not_found)?;
    Ok((200, view))
}
