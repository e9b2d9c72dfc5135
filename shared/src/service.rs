//! The use cases: what each API operation does, in terms of the domain rules and the store traits.
//! Handlers parse a request, call one of these and map the result; nothing here knows HTTP.

use base64::Engine;
use serde::Serialize;

use crate::admin::{StockChange, StockUpdate};
use crate::auth::Caller;
use crate::domain::{ProductAvailability, ProductId, StockItemView, StockLevel, StockStatus, WarehouseId};
use crate::error::InventoryError;
use crate::history::HistoryPage;
use crate::holds::{
    Holder, HolderProof, IdempotencyKey, Reservation, ReservationId, ReservationState, ReservationView, ReserveRequest,
    Transition,
};
use crate::limits::{MAX_HOLDS_PER_CART, MAX_STOCK};
use crate::metrics::{self, Metric};
use crate::requests::RequestRecord;
use crate::store::{AdminOutcome, EndOutcome, HistoryStore, HoldStore, PlaceOutcome, StockAdmin, StockReader};
use crate::time::EpochSeconds;

/// A product's availability, in total and per warehouse (or only in `warehouse`), as a reserve would
/// see it (strongly consistent).
pub async fn product_availability(
    store: &impl StockReader,
    product: ProductId,
    warehouse: Option<WarehouseId>,
) -> Result<(u16, ProductAvailability), InventoryError> {
    let levels = store.stock_levels(&product, warehouse.as_ref()).await?;
    let message = match &warehouse {
        Some(warehouse) => format!("product {product} has no stock record in warehouse {warehouse}"),
        None => format!("product {product} not found"),
    };
    let view = ProductAvailability::from_levels(product, &levels).ok_or(InventoryError::ProductNotFound { message })?;
    Ok((200, view))
}

/// Places a hold for `holder`. With a warehouse, only there; without, in the warehouse with the most
/// units for sale that can cover the whole quantity (a hold is never split), falling back to the next
/// if a concurrent hold took the units first. The cart may hold at most [`MAX_HOLDS_PER_CART`] holds
/// and the item's `max_per_cart` units of the product. With an Idempotency-Key (scoped to the cart),
/// a retry answers 200 with the hold it placed, in the state it is in now (never a second hold, also
/// after the first one lapsed); the same key with a different body is 422.
pub async fn reserve(
    store: &(impl StockReader + HoldStore),
    product: ProductId,
    request: ReserveRequest,
    key: Option<IdempotencyKey>,
    holder: &Holder,
    hold_seconds: i64,
    now: EpochSeconds,
) -> Result<(u16, ReservationView), InventoryError> {
    let counted = product.clone();
    let placed = place_hold(store, product, request, key, holder, hold_seconds, now).await;
    // Every refusal for want of units or of room in the cart is counted once, here.
    if let Err(
        InventoryError::InsufficientStock { .. }
        | InventoryError::CartHoldsLimit { .. }
        | InventoryError::CartUnitsLimit { .. },
    ) = &placed
    {
        metrics::count(Metric::HoldsRefused, &[("product_id", counted.as_str())]);
    }
    placed
}

async fn place_hold(
    store: &(impl StockReader + HoldStore),
    product: ProductId,
    request: ReserveRequest,
    key: Option<IdempotencyKey>,
    holder: &Holder,
    hold_seconds: i64,
    now: EpochSeconds,
) -> Result<(u16, ReservationView), InventoryError> {
    let id = ReservationId::random();
    let quantity = request.quantity.units();
    for _ in 0..PLACE_ROUNDS {
        // One read: the warehouses to try and the item's units per cart. Whether the units are for
        // sale is decided by the transaction's condition, not by this read.
        let mut levels = store.hold_targets(&product, request.warehouse_id.as_ref()).await?;
        if levels.is_empty() {
            return Err(InventoryError::ProductNotFound {
                message: match &request.warehouse_id {
                    Some(warehouse) => format!("product {product} has no stock record in warehouse {warehouse}"),
                    None => format!("product {product} not found"),
                },
            });
        }
        levels.sort_by_key(|level| std::cmp::Reverse(level.available_count));
        let covering = levels.iter().filter(|l| l.available_count >= quantity).count();
        // None covers it by this read: still try the best one, so that an Idempotency-Key retry finds
        // its hold and a read that just went stale does not refuse a hold that fits.
        levels.truncate(covering.max(1));
        let mut most_available = 0;
        for level in levels {
            let warehouse = level.warehouse_id.clone();
            let max_per_cart = level.max_per_cart();
            if quantity > max_per_cart {
                // The cart's record counts only what it holds: a hold larger than the limit is refused here.
                return Err(InventoryError::CartUnitsLimit {
                    limit: max_per_cart,
                    message: format!("a cart may hold at most {max_per_cart} of {product}; {quantity} were asked"),
                });
            }
            let mut hold =
                Reservation::new(id.clone(), product.clone(), warehouse.clone(), &request, now, hold_seconds);
            hold.cart = Some(holder.cart.clone());
            hold.owner = holder.user.clone();
            let recorded = key.as_ref().map(|key| RequestRecord::for_hold(key, &hold, now));
            match store.place_hold(&hold, max_per_cart, recorded.as_ref(), &holder.actor).await? {
                PlaceOutcome::Placed => {
                    tracing::info!(reservation_id = %id, product_id = %product, warehouse_id = %warehouse, quantity,
                                   expires_at = hold.expires_at, transition = "PLACED", "hold placed");
                    metrics::count(
                        Metric::HoldsGranted,
                        &[("product_id", product.as_str()), ("reservation_id", &id.to_string())],
                    );
                    return Ok((201, hold.view()));
                }
                PlaceOutcome::AlreadyRequested(earlier) => {
                    return earlier_hold(store, *earlier, &request, now).await.map(|view| (200, view));
                }
                PlaceOutcome::Insufficient { available } => most_available = most_available.max(available),
                PlaceOutcome::NoStockItem if request.warehouse_id.is_some() => {
                    return Err(InventoryError::ProductNotFound {
                        message: format!("product {product} has no stock record in warehouse {warehouse}"),
                    });
                }
                PlaceOutcome::NoStockItem => {}
                PlaceOutcome::CartHoldsFull => {
                    return Err(InventoryError::CartHoldsLimit {
                        limit: MAX_HOLDS_PER_CART,
                        message: format!(
                            "your cart has {MAX_HOLDS_PER_CART} items on hold, the most a cart may; check out or remove one first"
                        ),
                    });
                }
                PlaceOutcome::CartUnitsFull { in_cart } => {
                    return Err(InventoryError::CartUnitsLimit {
                        limit: max_per_cart,
                        message: format!(
                            "a cart may hold at most {max_per_cart} of {product}; yours holds {in_cart}, and {quantity} more were asked"
                        ),
                    });
                }
            }
        }
        // A refusal is true at one instant: the read that saw no warehouse cover the hold (or, for one
        // named warehouse, the transaction's own condition). When warehouses that covered it by the
        // read were all taken meanwhile, another may have units again by now: read again (found by
        // `make chaos`: a 409 while another warehouse had the units).
        if covering == 0 || request.warehouse_id.is_some() {
            return Err(insufficient(&product, &request, quantity, most_available));
        }
    }
    // Every round lost its race for the units it saw: contention, not a shortage.
    Err(InventoryError::Unavailable {
        detail: format!("holds on {product} kept taking the units this one was about to take; retry"),
    })
}

/// Rounds of read-then-try a hold without a warehouse makes before it answers 503 (contention).
const PLACE_ROUNDS: usize = 3;

fn insufficient(product: &ProductId, request: &ReserveRequest, quantity: i64, most_available: i64) -> InventoryError {
    let most_available = most_available.max(0);
    InventoryError::InsufficientStock {
        available: most_available,
        message: match &request.warehouse_id {
            Some(warehouse) => {
                format!("not enough {product} in {warehouse}: {most_available} available, {quantity} asked")
            }
            None => {
                format!("not enough {product}: at most {most_available} available in one warehouse, {quantity} asked")
            }
        },
    }
}

/// The hold an earlier request with the same Idempotency-Key placed, as it is now.
async fn earlier_hold(
    store: &impl HoldStore,
    earlier: RequestRecord,
    request: &ReserveRequest,
    now: EpochSeconds,
) -> Result<ReservationView, InventoryError> {
    let placed = earlier.hold.filter(|_| earlier.fingerprint == request.fingerprint()).ok_or_else(|| {
        InventoryError::IdempotencyKeyReused {
            message: "this Idempotency-Key was used for a different request; use a new key for a new hold".into(),
        }
    })?;
    // TTL deletes a lapsed hold's record (its units come back through the stream): then the copy
    // kept with the request tells what it was.
    let mut hold = store.reservation(&placed.reservation_id).await?.unwrap_or(placed);
    if hold.state == ReservationState::Active && hold.is_past_expiry(now) {
        hold.state = ReservationState::Expired; // lapsed; no checkout will take it any more
    }
    tracing::info!(reservation_id = %hold.reservation_id, state = hold.state.as_str(),
                   "idempotent retry answered with the earlier hold");
    Ok(hold.view())
}

/// Commits (checkout) or releases a hold, exactly once; a repeat answers with the hold as it is.
/// Only its holder may: the caller shows the hold's cart token or is its signed-in owner, and a
/// checkout (by a signed-in user, `proof.user`) binds the hold to that user. To anyone else the hold
/// does not exist (404), so an answer never tells a stranger whether an id is real.
pub async fn end_hold(
    store: &impl HoldStore,
    product: &ProductId,
    id: &ReservationId,
    transition: Transition,
    proof: &HolderProof,
    actor: &str,
    now: EpochSeconds,
) -> Result<(u16, ReservationView), InventoryError> {
    let not_found = || InventoryError::ReservationNotFound { message: format!("no hold {id} for product {product}") };
    let may_end = |hold: &Reservation| {
        let buyer_free = transition != Transition::Commit || hold.owner.is_none() || hold.owner == proof.user;
        &hold.product_id == product && hold.is_held_by(proof) && buyer_free
    };
    let hold = store.reservation(id).await?.filter(|hold| may_end(hold)).ok_or_else(not_found)?;
    if !transition.check(&hold, now)? {
        return Ok((200, hold.view()));
    }
    let buyer = if transition == Transition::Commit { proof.user.as_deref() } else { None };
    match store.end_hold(&hold, transition, actor, buyer, now).await? {
        EndOutcome::Ended(ended) => {
            tracing::info!(reservation_id = %id, product_id = %product, warehouse_id = %ended.warehouse_id,
                           quantity = ended.quantity.units(), transition = ended.state.as_str(), actor, "hold ended");
            let metric = if transition == Transition::Commit { Metric::Commits } else { Metric::Releases };
            metrics::count(metric, &[("product_id", product.as_str()), ("reservation_id", &id.to_string())]);
            Ok((200, ended.view()))
        }
        // Another user checked it out first: to this one it does not exist.
        EndOutcome::NotActive(Some(current)) if !may_end(&current) => Err(not_found()),
        EndOutcome::NotActive(Some(current)) => match transition.check(&current, now)? {
            false => Ok((200, current.view())),
            // Still ACTIVE, yet the condition failed: the store's clock saw it expire.
            true => Err(InventoryError::ReservationExpired { message: format!("hold {id} expired; add the item to the cart again") }),
        },
        EndOutcome::NotActive(None) => Err(not_found()),
        EndOutcome::StockShort { stock_count } => Err(InventoryError::InsufficientStock {
            available: stock_count.max(0),
            message: format!(
                "only {} of {product} are on the shelf now, fewer than this hold's {}; the hold stays until released or expired",
                stock_count.max(0),
                hold.quantity.units()
            ),
        }),
    }
}

/// Sets or adjusts stock, or changes the threshold, creating the item when new; exactly once: a
/// retry with the same Idempotency-Key (and the SDK's own retry of a write whose answer was lost)
/// answers 200 with the item as it is and changes nothing; the same key with another change is 422.
pub async fn update_stock(
    store: &impl StockAdmin,
    product: &ProductId,
    update: &StockUpdate,
    key: Option<&IdempotencyKey>,
    caller: &Caller,
    now: EpochSeconds,
) -> Result<(u16, StockItemView), InventoryError> {
    let actor = caller.actor();
    let request = RequestRecord::for_admin(product, &actor, key, update, now);
    match store.update_stock(product, update, &request, &actor, now).await? {
        AdminOutcome::Updated(level) => {
            tracing::info!(product_id = %product, warehouse_id = %update.warehouse_id, kind = update.kind().as_str(),
                           actor, stock_count = level.stock_count, version = level.version, "stock changed");
            let created = level.version == 1;
            Ok((if created { 201 } else { 200 }, StockItemView::from(&level)))
        }
        AdminOutcome::Refused(current) => Err(refusal(product, update, current.as_ref())),
        AdminOutcome::Replayed { same_request: false, .. } => Err(InventoryError::IdempotencyKeyReused {
            message: "this Idempotency-Key was used for a different change; use a new key for a new change".into(),
        }),
        AdminOutcome::Replayed { same_request: true, current } => {
            let level = current.ok_or_else(|| InventoryError::internal("stock item gone after a recorded write"))?;
            tracing::info!(product_id = %product, warehouse_id = %update.warehouse_id, kind = update.kind().as_str(), actor,
                           "admin write retried: answered with the item, nothing changed");
            Ok((200, StockItemView::from(&level)))
        }
    }
}

/// Which of the update's conditions the item as it is fails.
fn refusal(product: &ProductId, update: &StockUpdate, current: Option<&StockLevel>) -> InventoryError {
    let where_ = format!("{product} in {}", update.warehouse_id);
    if let Some(expected) = update.expected_version {
        if current.map_or(0, |c| c.version) != expected {
            return InventoryError::VersionConflict {
                current_version: current.map(|c| c.version),
                message: format!("{where_} changed since version {expected}; reload and apply your change again"),
            };
        }
    }
    let stock_count = current.map_or(0, |c| c.stock_count);
    match update.change {
        Some(StockChange::Adjust(delta)) if delta < 0 => InventoryError::StockBelowZero {
            stock_count,
            message: format!("{where_} has {stock_count} on hand; adjusting by {delta} would go below zero"),
        },
        Some(StockChange::Adjust(delta)) => InventoryError::StockAboveLimit {
            stock_count,
            message: format!("{where_} has {stock_count} on hand; adjusting by {delta} would exceed {MAX_STOCK}"),
        },
        _ => InventoryError::internal(format!("admin update of {where_} refused for no known reason")),
    }
}

/// An admin list page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StockList {
    pub items: Vec<StockItemView>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// Pages through every product and warehouse, optionally only those whose status (computed from
/// the counters, like GET) is `status`. A filtered page may hold fewer than `limit` items.
pub async fn list_stock(
    store: &impl StockAdmin,
    status: Option<StockStatus>,
    cursor: Option<&str>,
    limit: usize,
) -> Result<(u16, StockList), InventoryError> {
    // Bounded work per request: a sparse filter over a big table returns a cursor, not a timeout.
    const MAX_SCAN_PAGES: usize = 10;
    let mut after = cursor.map(decode_cursor).transpose()?;
    let mut items = Vec::new();
    for _ in 0..MAX_SCAN_PAGES {
        let page = store.scan_stock(after.as_ref(), limit).await?;
        let mut stopped_early = false;
        for level in &page.items {
            after = Some((level.product_id.clone(), level.warehouse_id.clone()));
            if status
                .is_none_or(|wanted| StockStatus::for_levels(level.available_count, level.threshold_level) == wanted)
            {
                items.push(StockItemView::from(level));
                if items.len() == limit {
                    stopped_early = true;
                    break;
                }
            }
        }
        if !stopped_early {
            after = page.last_key;
        }
        if stopped_early || after.is_none() {
            break;
        }
    }
    Ok((200, StockList { items, next_cursor: after.as_ref().map(encode_cursor) }))
}

/// A page's position, opaque to clients (base64url of the last key's text).
fn opaque_cursor(text: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

fn invalid_cursor() -> InventoryError {
    InventoryError::invalid("cursor", "cursor is not one this API returned")
}

fn cursor_text(cursor: &str) -> Result<String, InventoryError> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid_cursor())?;
    String::from_utf8(bytes).map_err(|_| invalid_cursor())
}

fn encode_cursor((product, warehouse): &(ProductId, WarehouseId)) -> String {
    opaque_cursor(&format!("{product}\n{warehouse}"))
}

fn decode_cursor(cursor: &str) -> Result<(ProductId, WarehouseId), InventoryError> {
    let text = cursor_text(cursor)?;
    let (product, warehouse) = text.split_once('\n').ok_or_else(invalid_cursor)?;
    Ok((
        ProductId::parse(product).map_err(|_| invalid_cursor())?,
        WarehouseId::parse(warehouse).map_err(|_| invalid_cursor())?,
    ))
}

/// `GET /inventory/{productId}/history`: the product's audit entries, newest first. A product
/// without entries has an empty history (entries outlive neither their retention nor a rename).
pub async fn product_history(
    store: &impl HistoryStore,
    product: &ProductId,
    cursor: Option<&str>,
    limit: usize,
) -> Result<(u16, HistoryPage), InventoryError> {
    let before = match cursor {
        None => None,
        // An entry id: "<rfc3339>#<digits>", as `history::entry_for_change` makes them.
        Some(cursor) => Some(cursor_text(cursor).ok().filter(|id| is_entry_id(id)).ok_or_else(invalid_cursor)?),
    };
    let (items, last) = store.entries(product, before.as_deref(), limit).await?;
    Ok((200, HistoryPage { items, next_cursor: last.as_deref().map(opaque_cursor) }))
}

fn is_entry_id(id: &str) -> bool {
    id.split_once('#').is_some_and(|(time, sequence)| {
        !time.is_empty()
            && time.len() <= 40
            && time.bytes().all(|b| b.is_ascii_graphic())
            && !sequence.is_empty()
            && sequence.len() <= 64
            && sequence.bytes().all(|b| b.is_ascii_digit())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_cursors_are_entry_ids() {
        assert!(is_entry_id("2026-11-26T10:00:00Z#0000000042"));
        for forged in ["", "#1", "2026#", "2026#12a", "a b#1", "2026-11-26T10:00:00Z"] {
            assert!(!is_entry_id(forged), "{forged:?}");
        }
    }

    #[test]
    fn cursor_round_trips_and_refuses_forgeries() {
        let key = (ProductId::parse("SKU-1").unwrap(), WarehouseId::parse("main").unwrap());
        assert_eq!(decode_cursor(&encode_cursor(&key)).unwrap(), key);
        for bad in ["", "%%%", "U0tVLTE", "YSBiCmM"] {
            assert_eq!(decode_cursor(bad).unwrap_err().code(), "INVALID_INPUT", "{bad}");
        }
    }
}
