//! POST /inventory/{productId}/reserve `{quantity, warehouse_id?}` + optional Idempotency-Key:
//! "Add to cart" holds units for HOLD_SECONDS.

use shared::api::{self, Request};
use shared::domain::ProductId;
use shared::holds::{IdempotencyKey, ReservationView, ReserveRequest};
use shared::store::{HoldStore, StockReader};
use shared::{auth, service, time, InventoryError};

/// The handler: parse, call the use case, map the result (`main` serves it; the benches call it).
pub async fn reserve(
    store: &(impl StockReader + HoldStore),
    request: &Request,
    hold_seconds: i64,
) -> Result<(u16, ReservationView), InventoryError> {
    let product = ProductId::parse(api::path_param(request, "productId")?)?;
    api::query_params(request, &[])?;
    let key = api::header(request, "idempotency-key")?.map(IdempotencyKey::parse).transpose()?;
    let body: ReserveRequest = api::json_body(request)?;
    service::reserve(store, product, body, key, auth::ANONYMOUS_ACTOR, hold_seconds, time::now()).await
}
