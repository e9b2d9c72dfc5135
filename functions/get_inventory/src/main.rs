//! GET /inventory/{productId}[?warehouse_id=]: a product's availability, totals and per warehouse.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use shared::api::{self, Request, Response};
use shared::config::Config;
use shared::domain::{ProductAvailability, ProductId, WarehouseId};
use shared::store::{self, DynamoStore, StockReader};
use shared::InventoryError;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let config = Config::from_env()?;
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&store::aws_sdk_config().await),
        config,
    );
    lambda_runtime::run(service_fn(|event: LambdaEvent<Request>| {
        let store = &store;
        async move {
            let request_id = api::request_id(&event.payload, &event.context.request_id);
            Ok::<Response, Error>(api::respond(
                get_inventory(store, &event.payload).await,
                &request_id,
            ))
        }
    }))
    .await
}

#[tracing::instrument(skip_all, fields(product_id = request.path_parameters.get("productId")))]
async fn get_inventory(
    store: &impl StockReader,
    request: &Request,
) -> Result<(u16, ProductAvailability), InventoryError> {
    let product = ProductId::parse(api::path_param(request, "productId")?)?;
    let warehouse = api::query_params(request, &["warehouse_id"])?
        .single("warehouse_id")?
        .map(WarehouseId::parse)
        .transpose()?;
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
