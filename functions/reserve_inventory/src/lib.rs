//! POST /inventory/{productId}/reserve `{quantity, warehouse_id?}` + Cart-Token + optional
//! Idempotency-Key: "Add to cart" holds units for HOLD_SECONDS, for that cart.

use shared::api::{self, Request};
use shared::domain::ProductId;
use shared::holds::{IdempotencyKey, ReservationView, ReserveRequest};
use shared::store::{HoldStore, StockReader};
use shared::{auth, service, time, InventoryError};

/// The handler: parse, call the use case, map the result (`main` serves it; the benches call it).
pub async fn handler(
    store: &(impl StockReader + HoldStore),
    request: &Request,
    settings: &HoldSettings,
) -> Result<(u16, ReservationView), InventoryError> {
    let product = ProductId::parse(api::path_param(request, "productId")?)?;
    api::query_params(request, &[])?;
    let key = api::header(request, "idempotency-key")?.map(IdempotencyKey::parse).transpose()?;
    let body: ReserveRequest = api::json_body(request)?;
    let holder = auth::holder(request, settings.require_sign_in)?;
    service::reserve(store, product, body, key, &holder, settings.hold_seconds, time::now()).await
}

/// How holds are placed: how long they last, and whether they need a signed-in shopper.
#[derive(Debug, Clone, Copy)]
pub struct HoldSettings {
    pub hold_seconds: i64,
    pub require_sign_in: bool,
}

impl HoldSettings {
    /// From HOLD_SECONDS and HOLDS_REQUIRE_SIGN_IN; a missing or malformed one fails the cold start.
    pub fn from_env() -> Result<Self, shared::config::SettingError> {
        Ok(Self {
            hold_seconds: shared::config::hold_seconds()?,
            require_sign_in: shared::config::holds_require_sign_in()?,
        })
    }
}
