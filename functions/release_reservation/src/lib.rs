//! DELETE /inventory/{productId}/reservations/{reservationId} + Cart-Token: the shopper removes the
//! item from the cart and the units go back on sale. Only the hold's cart (or its signed-in owner)
//! may; to anyone else the hold does not exist. A repeat is harmless.

use shared::api::{self, Request};
use shared::domain::ProductId;
use shared::holds::{ReservationId, ReservationView, Transition};
use shared::store::HoldStore;
use shared::{auth, service, time, InventoryError};

/// The handler: parse, call the use case, map the result (`main` serves it; the benches call it).
pub async fn handler(store: &impl HoldStore, request: &Request) -> Result<(u16, ReservationView), InventoryError> {
    let product = ProductId::parse(api::path_param(request, "productId")?)?;
    let id = ReservationId::parse(api::path_param(request, "reservationId")?)?;
    api::query_params(request, &[])?;
    let proof = auth::holder_proof(request)?;
    let actor = auth::Caller::from_request(request).map_or_else(|| auth::ANONYMOUS_ACTOR.to_owned(), |c| c.actor());
    service::end_hold(store, &product, &id, Transition::Release, &proof, &actor, time::now()).await
}
