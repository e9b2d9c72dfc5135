//! PUT /inventory/{productId}, behind the JWT authorizer:
//! `{reservation_id}` + Cart-Token — checkout: a signed-in user who holds the hold (its cart token,
//! or its owner) commits it (sold, exactly once) and it is theirs from then on;
//! `{stock_count | adjust_by, threshold_level?, warehouse_id?, reason?, expected_version?}` + optional
//! Idempotency-Key — admin.

use serde::Serialize;
use shared::admin::PutRequest;
use shared::api::{self, Request};
use shared::domain::{ProductId, StockItemView};
use shared::holds::{IdempotencyKey, ReservationView, Transition};
use shared::store::{HoldStore, StockAdmin};
use shared::{auth, service, time, InventoryError};

/// What a PUT answers: the hold after checkout, or the stock item after an admin change.
#[derive(Serialize)]
#[serde(untagged)]
pub enum Updated {
    Checkout(ReservationView),
    Stock(StockItemView),
}

/// The handler: parse, call the use case, map the result (`main` serves it; the benches call it).
pub async fn handler(
    store: &(impl HoldStore + StockAdmin),
    request: &Request,
) -> Result<(u16, Updated), InventoryError> {
    let product = ProductId::parse(api::path_param(request, "productId")?)?;
    api::query_params(request, &[])?;
    let caller = auth::signed_in(request)?;
    // Read for checkout; a malformed Cart-Token is refused on an admin write too, never ignored.
    let proof = auth::holder_proof(request)?;
    match PutRequest::from_json(api::json_body(request)?)? {
        PutRequest::Checkout(id) => {
            let (status, view) =
                service::end_hold(store, &product, &id, Transition::Commit, &proof, &caller.actor(), time::now())
                    .await?;
            Ok((status, Updated::Checkout(view)))
        }
        PutRequest::Admin(update) => {
            let admin = auth::require_admin(caller)?;
            let key = api::header(request, "idempotency-key")?.map(IdempotencyKey::parse).transpose()?;
            let (status, view) =
                service::update_stock(store, &product, &update, key.as_ref(), &admin, time::now()).await?;
            Ok((status, Updated::Stock(view)))
        }
    }
}
