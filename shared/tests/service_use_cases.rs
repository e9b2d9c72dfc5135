//! The API's use cases (`service`) through the in-memory store: reserve, end a hold, admin changes,
//! the list and the history. Each test asserts what changed and, for a refusal, that nothing did.

mod support;

use futures::future::join_all;
use shared::admin::StockUpdate;
use shared::domain::{ChangeKind, StockItemView, StockStatus};
use shared::holds::{HolderProof, IdempotencyKey, ReservationId, ReservationView, ReserveRequest, Transition};
use shared::limits::{DEFAULT_MAX_PER_CART, MAX_HOLDS_PER_CART};
use shared::service;
use shared::store::memory::MemoryStore;
use support::*;

fn key(text: &str) -> IdempotencyKey {
    IdempotencyKey::parse(&format!("{text:-<16}")).unwrap()
}

fn id(view: &ReservationView) -> ReservationId {
    ReservationId::parse(&view.reservation_id).unwrap()
}

type Answer = Result<(u16, ReservationView), shared::InventoryError>;

async fn reserve(store: &MemoryStore, quantity: i64, warehouse: Option<&str>, shopper: u32) -> Answer {
    reserve_as(store, "SKU-1", ask(quantity, warehouse), None, shopper, HOLD_SECONDS, T0).await
}

/// A reserve with every argument: product, body, Idempotency-Key, cart, hold length and clock.
async fn reserve_as(
    store: &MemoryStore,
    sku: &str,
    body: ReserveRequest,
    idempotency_key: Option<&str>,
    shopper: u32,
    hold_seconds: i64,
    now: i64,
) -> Answer {
    let key = idempotency_key.map(key);
    service::reserve(store, product(sku), body, key, &holder(shopper), hold_seconds, now).await
}

/// An admin change of SKU-1, with an optional Idempotency-Key.
async fn change(
    store: &MemoryStore,
    update: StockUpdate,
    idempotency_key: Option<&str>,
) -> Result<(u16, StockItemView), shared::InventoryError> {
    let key = idempotency_key.map(key);
    service::update_stock(store, &product("SKU-1"), &update, key.as_ref(), &admin(), T0).await
}

/// Ends the hold `view` shows, proving `proof`, at `now`.
async fn end(
    store: &MemoryStore,
    view: &ReservationView,
    transition: Transition,
    proof: HolderProof,
    now: i64,
) -> Answer {
    service::end_hold(store, &view.product_id, &id(view), transition, &proof, "shopper", now).await
}

#[tokio::test]
async fn a_hold_in_a_named_warehouse_takes_units_off_sale_and_counts_in_the_cart() {
    let store = MemoryStore::new();
    shelve(&store, "SKU-1", "main", 10, 2).await;
    let (status, view) = reserve(&store, 3, Some("main"), 1).await.unwrap();
    assert_eq!((status, view.quantity, view.warehouse_id.as_str()), (201, 3, "main"));
    assert_eq!(counts(&store, "SKU-1", "main"), (10, 3, 7));
    assert_eq!(store.cart_counts(holder(1).cart.as_str(), &product("SKU-1")), (1, 3));
    let level = item(&store, "SKU-1", "main");
    assert_eq!(level.version, 1, "a hold is not a change of the shelf");
    assert_eq!(level.last_change.unwrap().kind, ChangeKind::Hold);
}

#[tokio::test]
async fn without_a_warehouse_the_one_with_most_for_sale_that_covers_the_whole_hold() {
    let store = MemoryStore::new();
    shelve(&store, "SKU-1", "east", 3, 0).await;
    shelve(&store, "SKU-1", "west", 5, 0).await;
    let (_, view) = reserve(&store, 4, None, 1).await.unwrap();
    assert_eq!(view.warehouse_id.as_str(), "west");
    // 3 left in each: a hold of 4 is never split over two warehouses.
    let refused = reserve(&store, 4, None, 2).await.unwrap_err();
    assert_eq!(refused.code(), "INSUFFICIENT_STOCK");
    assert_eq!((counts(&store, "SKU-1", "east"), counts(&store, "SKU-1", "west")), ((3, 0, 3), (5, 4, 1)));
}

#[tokio::test]
async fn a_refused_hold_changes_nothing() {
    let store = MemoryStore::new();
    shelve(&store, "SKU-1", "main", 2, 0).await;
    let before = item(&store, "SKU-1", "main");
    let refused = reserve(&store, 3, Some("main"), 1).await.unwrap_err();
    assert!(matches!(refused, shared::InventoryError::InsufficientStock { available: 2, .. }), "{refused:?}");
    assert_eq!(item(&store, "SKU-1", "main"), before);
    assert!(store.holds().is_empty());
    assert_eq!(store.cart_counts(holder(1).cart.as_str(), &product("SKU-1")), (0, 0));
    assert_eq!(reserve(&store, 1, Some("north"), 1).await.unwrap_err().code(), "PRODUCT_NOT_FOUND");
    let unknown = reserve_as(&store, "SKU-9", ask(1, None), None, 1, HOLD_SECONDS, T0).await;
    assert_eq!(unknown.unwrap_err().code(), "PRODUCT_NOT_FOUND");
}

#[tokio::test]
async fn concurrent_shoppers_are_refused_exactly_when_the_units_run_out() {
    // The store serialises each call (as DynamoDB does each item); what is tested is the use case
    // between its read and its conditional write: the fallback and the refusal, never an oversell.
    let store = MemoryStore::new();
    shelve(&store, "SKU-1", "main", 20, 0).await;
    shelve(&store, "SKU-1", "east", 5, 0).await;
    let attempts =
        (0..60).map(|shopper| reserve(&store, 1, if shopper % 2 == 0 { Some("main") } else { None }, shopper));
    let answers = join_all(attempts).await;
    let granted = answers.iter().filter(|a| a.is_ok()).count();
    let refusals: Vec<_> = answers.iter().filter_map(|a| a.as_ref().err()).collect();
    assert_eq!(granted, 25, "exactly the units on the shelves");
    assert!(refusals.iter().all(|e| e.code() == "INSUFFICIENT_STOCK"), "{refusals:?}");
    assert_eq!((counts(&store, "SKU-1", "main"), counts(&store, "SKU-1", "east")), ((20, 20, 0), (5, 5, 0)));
    assert_eq!(store.holds().len(), 25);
}

#[tokio::test]
async fn a_keyed_retry_answers_the_same_hold_and_never_places_a_second() {
    let store = MemoryStore::new();
    shelve(&store, "SKU-1", "main", 10, 0).await;
    let place = |body, shopper| reserve_as(&store, "SKU-1", body, Some("retry-me"), shopper, HOLD_SECONDS, T0);
    let (first_status, first) = place(ask(2, None), 1).await.unwrap();
    let (again_status, again) = place(ask(2, None), 1).await.unwrap();
    assert_eq!((first_status, again_status), (201, 200));
    assert_eq!(first.reservation_id, again.reservation_id);
    assert_eq!(counts(&store, "SKU-1", "main"), (10, 2, 8), "applied once");
    assert_eq!(place(ask(3, None), 1).await.unwrap_err().code(), "IDEMPOTENCY_KEY_REUSED");
    // The same key from another cart is another request.
    assert_ne!(place(ask(2, None), 2).await.unwrap().1.reservation_id, first.reservation_id);
    assert_eq!(counts(&store, "SKU-1", "main"), (10, 4, 6));
}

#[tokio::test]
async fn a_keyed_retry_after_the_hold_lapsed_and_was_deleted_answers_expired_and_takes_nothing() {
    let store = MemoryStore::new();
    shelve(&store, "SKU-1", "main", 10, 0).await;
    let place = |now| reserve_as(&store, "SKU-1", ask(2, None), Some("lapse"), 1, 60, now);
    let (_, placed) = place(T0).await.unwrap();
    // TTL deleted the record and its stream record is not handled yet: the answer comes from the
    // copy of the hold kept with the request.
    let deleted = store.reap_ttl(T0 + 61);
    assert!(store.holds().is_empty());
    let (status, retried) = place(T0 + 62).await.unwrap();
    assert_eq!((status, &retried.reservation_id, retried.status.as_str()), (200, &placed.reservation_id, "EXPIRED"));
    assert_eq!((counts(&store, "SKU-1", "main"), store.holds().len()), ((10, 2, 8), 0), "no second hold");
    for removed in deleted {
        shared::pipeline::on_hold_removed(&store, &removed, T0 + 63).await.unwrap();
    }
    let (_, after) = place(T0 + 64).await.unwrap();
    assert_eq!((after.reservation_id, after.status.as_str()), (placed.reservation_id, "EXPIRED"));
    assert_eq!(counts(&store, "SKU-1", "main"), (10, 0, 10), "the units came back once; the retries took none");
}

#[tokio::test]
async fn a_cart_holds_at_most_its_limits() {
    let store = MemoryStore::new();
    shelve(&store, "SKU-1", "main", 1_000, 0).await;
    let most = DEFAULT_MAX_PER_CART;
    assert_eq!(reserve(&store, most + 1, None, 1).await.unwrap_err().code(), "CART_UNITS_LIMIT");
    reserve(&store, most - 1, None, 1).await.unwrap();
    let over = reserve(&store, 2, None, 1).await.unwrap_err();
    assert!(matches!(over, shared::InventoryError::CartUnitsLimit { limit, .. } if limit == most), "{over:?}");
    for n in 0..MAX_HOLDS_PER_CART {
        shelve(&store, &format!("SKU-C{n}"), "main", 5, 0).await;
    }
    for n in 0..MAX_HOLDS_PER_CART {
        reserve_as(&store, &format!("SKU-C{n}"), ask(1, None), None, 2, HOLD_SECONDS, T0).await.unwrap();
    }
    let full = reserve(&store, 1, None, 2).await;
    assert_eq!(full.unwrap_err().code(), "CART_HOLDS_LIMIT");
    assert_eq!(counts(&store, "SKU-1", "main"), (1_000, most - 1, 1_000 - most + 1), "refusals took nothing");
}

#[tokio::test]
async fn each_transition_moves_the_counters_once_and_a_repeat_changes_nothing() {
    let store = MemoryStore::new();
    shelve(&store, "SKU-1", "main", 10, 0).await;
    let (_, sold) = reserve(&store, 3, None, 1).await.unwrap();
    let (_, released) = reserve(&store, 2, None, 2).await.unwrap();
    let (_, committed) = end(&store, &sold, Transition::Commit, signed_in_proof(1, "sub-1"), T0 + 5).await.unwrap();
    assert_eq!(committed.status.as_str(), "COMMITTED");
    assert_eq!(counts(&store, "SKU-1", "main"), (7, 2, 5));
    assert_eq!(item(&store, "SKU-1", "main").version, 2, "a sale changes the shelf's version");
    end(&store, &released, Transition::Release, proof(2), T0 + 5).await.unwrap();
    assert_eq!(counts(&store, "SKU-1", "main"), (7, 0, 7));
    let after = item(&store, "SKU-1", "main");
    let repeat_sale = end(&store, &sold, Transition::Commit, signed_in_proof(1, "sub-1"), T0 + 6).await.unwrap();
    let repeat_release = end(&store, &released, Transition::Release, proof(2), T0 + 6).await.unwrap();
    assert_eq!((repeat_sale.0, repeat_release.0), (200, 200));
    let undo_sale = end(&store, &sold, Transition::Release, proof(1), T0 + 6).await.unwrap_err();
    let buy_released =
        end(&store, &released, Transition::Commit, signed_in_proof(2, "sub-2"), T0 + 6).await.unwrap_err();
    assert_eq!((undo_sale.code(), buy_released.code()), ("RESERVATION_COMMITTED", "RESERVATION_RELEASED"));
    assert_eq!(item(&store, "SKU-1", "main"), after, "repeats and refusals changed nothing");
    assert_eq!(store.cart_counts(holder(1).cart.as_str(), &product("SKU-1")), (0, 0));
}

#[tokio::test]
async fn only_the_holder_ends_a_hold() {
    let store = MemoryStore::new();
    shelve(&store, "SKU-1", "main", 10, 0).await;
    let (_, held) = reserve(&store, 3, None, 1).await.unwrap();
    let stranger_release = end(&store, &held, Transition::Release, proof(2), T0).await.unwrap_err();
    let stranger_buy = end(&store, &held, Transition::Commit, signed_in_proof(2, "sub-2"), T0).await.unwrap_err();
    let mut elsewhere = held.clone();
    elsewhere.product_id = product("SKU-2");
    let wrong_product = end(&store, &elsewhere, Transition::Release, proof(1), T0).await.unwrap_err();
    for refused in [stranger_release, stranger_buy, wrong_product] {
        assert_eq!(refused.code(), "RESERVATION_NOT_FOUND");
    }
    assert_eq!(counts(&store, "SKU-1", "main"), (10, 3, 7));
    // Checked out by one user, it is theirs: another signed-in user with the cart token gets 404.
    end(&store, &held, Transition::Commit, signed_in_proof(1, "sub-1"), T0).await.unwrap();
    let other_user = end(&store, &held, Transition::Commit, signed_in_proof(1, "sub-other"), T0).await.unwrap_err();
    assert_eq!(other_user.code(), "RESERVATION_NOT_FOUND");
}

#[tokio::test]
async fn a_checkout_after_expiry_or_short_of_shelf_stock_is_refused_and_changes_nothing() {
    let store = MemoryStore::new();
    shelve(&store, "SKU-1", "main", 10, 0).await;
    let (_, late) = reserve(&store, 3, None, 1).await.unwrap();
    let (_, short) = reserve(&store, 4, None, 2).await.unwrap();
    let expired = end(&store, &late, Transition::Commit, signed_in_proof(1, "u"), T0 + HOLD_SECONDS + 1).await;
    assert_eq!(expired.unwrap_err().code(), "RESERVATION_EXPIRED");
    // An admin counts fewer on the shelf than is held.
    change(&store, set_stock("main", 2, None), None).await.unwrap();
    let before = item(&store, "SKU-1", "main");
    let short = end(&store, &short, Transition::Commit, signed_in_proof(2, "v"), T0).await;
    assert_eq!(short.unwrap_err().code(), "INSUFFICIENT_STOCK");
    assert_eq!(item(&store, "SKU-1", "main"), before);
}

#[tokio::test]
async fn admin_set_adjust_and_compare_and_set() {
    let store = MemoryStore::new();
    let (created, view) = change(&store, set_stock("main", 10, Some(3)), None).await.unwrap();
    assert_eq!((created, view.warehouse.version), (201, 1));
    let (status, _) = change(&store, adjust("main", 5, Some(1)), None).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(counts(&store, "SKU-1", "main"), (15, 0, 15));
    let stale = change(&store, adjust("main", 5, Some(1)), None).await;
    assert!(
        matches!(stale, Err(shared::InventoryError::VersionConflict { current_version: Some(2), .. })),
        "{stale:?}"
    );
    let below = change(&store, adjust("main", -16, None), None).await;
    assert_eq!(below.unwrap_err().code(), "STOCK_BELOW_ZERO");
    let above = change(&store, adjust("main", shared::limits::MAX_STOCK, None), None);
    assert_eq!(above.await.unwrap_err().code(), "STOCK_ABOVE_LIMIT");
    let not_new = change(&store, adjust("main", 1, Some(0)), None).await;
    assert_eq!(not_new.unwrap_err().code(), "VERSION_CONFLICT");
    assert_eq!((counts(&store, "SKU-1", "main"), item(&store, "SKU-1", "main").version), ((15, 0, 15), 2));
}

#[tokio::test]
async fn holds_coming_and_going_leave_an_admin_view_valid_but_a_sale_does_not() {
    let store = MemoryStore::new();
    shelve(&store, "SKU-1", "main", 10, 0).await;
    let seen = item(&store, "SKU-1", "main").version;
    let (_, held) = reserve(&store, 2, None, 1).await.unwrap();
    end(&store, &held, Transition::Release, proof(1), T0).await.unwrap();
    change(&store, adjust("main", 1, Some(seen)), None).await.expect("carts do not make a view stale");
    let seen = item(&store, "SKU-1", "main").version;
    let (_, sold) = reserve(&store, 2, None, 1).await.unwrap();
    end(&store, &sold, Transition::Commit, signed_in_proof(1, "u"), T0).await.unwrap();
    let stale = change(&store, adjust("main", 1, Some(seen)), None);
    assert_eq!(stale.await.unwrap_err().code(), "VERSION_CONFLICT", "the view predates a sale");
    assert_eq!(counts(&store, "SKU-1", "main"), (9, 0, 9));
}

#[tokio::test]
async fn a_keyed_admin_change_applies_once() {
    let store = MemoryStore::new();
    shelve(&store, "SKU-1", "main", 10, 0).await;
    let keyed = |delta| change(&store, adjust("main", delta, None), Some("delivery"));
    assert_eq!(keyed(5).await.unwrap().0, 200);
    assert_eq!(keyed(5).await.unwrap().0, 200);
    assert_eq!(counts(&store, "SKU-1", "main"), (15, 0, 15), "the retry changed nothing");
    assert_eq!(keyed(6).await.unwrap_err().code(), "IDEMPOTENCY_KEY_REUSED");
    assert_eq!(counts(&store, "SKU-1", "main"), (15, 0, 15));
}

#[tokio::test]
async fn the_admin_list_pages_through_everything_and_filters_by_computed_status() {
    let store = MemoryStore::new();
    for n in 0..7 {
        shelve(&store, &format!("SKU-{n}"), "main", n, 2).await;
    }
    let (mut seen, mut cursor) = (Vec::new(), None);
    loop {
        let (_, page) = service::list_stock(&store, None, cursor.as_deref(), 3).await.unwrap();
        seen.extend(page.items.iter().map(|i| i.product_id.to_string()));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, (0..7).map(|n| format!("SKU-{n}")).collect::<Vec<_>>());
    let (_, low) = service::list_stock(&store, Some(StockStatus::LowStock), None, 50).await.unwrap();
    assert_eq!(low.items.iter().map(|i| i.product_id.to_string()).collect::<Vec<_>>(), ["SKU-1", "SKU-2"]);
    assert_eq!(service::list_stock(&store, None, Some("not-a-cursor"), 3).await.unwrap_err().code(), "INVALID_INPUT");
}

#[tokio::test]
async fn availability_sums_the_warehouses_as_a_reserve_sees_them() {
    let store = MemoryStore::new();
    shelve(&store, "SKU-1", "east", 4, 1).await;
    shelve(&store, "SKU-1", "west", 6, 1).await;
    reserve(&store, 5, None, 1).await.unwrap();
    let (_, view) = service::product_availability(&store, product("SKU-1"), None).await.unwrap();
    assert_eq!((view.totals.stock_count, view.totals.reserved_count, view.totals.available), (10, 5, 5));
    assert_eq!(view.warehouses.len(), 2);
    let (_, east) = service::product_availability(&store, product("SKU-1"), Some(warehouse("east"))).await.unwrap();
    assert_eq!(east.totals.available, 4);
    let missing = service::product_availability(&store, product("SKU-1"), Some(warehouse("north"))).await;
    assert_eq!(missing.unwrap_err().code(), "PRODUCT_NOT_FOUND");
}

/// A store in which, just before the first hold is placed, another shopper takes the last unit
/// in `east` and a hold in `west` is released: the race behind a 409 found by make chaos.
struct RacingStore {
    inner: MemoryStore,
    race: std::sync::Mutex<Option<ReservationView>>,
}

#[async_trait::async_trait]
impl shared::store::StockReader for RacingStore {
    async fn stock_levels(
        &self,
        product: &shared::domain::ProductId,
        warehouse: Option<&shared::domain::WarehouseId>,
    ) -> Result<Vec<shared::domain::StockLevel>, shared::InventoryError> {
        self.inner.stock_levels(product, warehouse).await
    }
}

#[async_trait::async_trait]
impl shared::store::HoldStore for RacingStore {
    async fn place_hold(
        &self,
        hold: &shared::holds::Reservation,
        max_per_cart: i64,
        request: Option<&shared::requests::RequestRecord>,
        actor: &str,
    ) -> Result<shared::store::PlaceOutcome, shared::InventoryError> {
        let racing = self.race.lock().unwrap().take();
        if let Some(west_hold) = racing {
            reserve_as(&self.inner, "SKU-1", ask(1, Some("east")), None, 8, HOLD_SECONDS, T0).await.unwrap();
            end(&self.inner, &west_hold, Transition::Release, proof(9), T0).await.unwrap();
        }
        self.inner.place_hold(hold, max_per_cart, request, actor).await
    }

    async fn reservation(
        &self,
        id: &ReservationId,
    ) -> Result<Option<shared::holds::Reservation>, shared::InventoryError> {
        self.inner.reservation(id).await
    }

    async fn end_hold(
        &self,
        hold: &shared::holds::Reservation,
        transition: Transition,
        actor: &str,
        owner: Option<&str>,
        now: i64,
    ) -> Result<shared::store::EndOutcome, shared::InventoryError> {
        self.inner.end_hold(hold, transition, actor, owner, now).await
    }
}

#[tokio::test]
async fn a_hold_without_a_warehouse_is_refused_only_when_no_warehouse_has_the_units() {
    let inner = MemoryStore::new();
    shelve(&inner, "SKU-1", "east", 1, 0).await;
    shelve(&inner, "SKU-1", "west", 1, 0).await;
    let (_, west_hold) = reserve_as(&inner, "SKU-1", ask(1, Some("west")), None, 9, HOLD_SECONDS, T0).await.unwrap();
    let store = RacingStore { inner, race: std::sync::Mutex::new(Some(west_hold)) };
    // Read: only east covers it; then east's unit is taken and west's comes back before the write.
    let (status, view) =
        service::reserve(&store, product("SKU-1"), ask(1, None), None, &holder(1), HOLD_SECONDS, T0).await.unwrap();
    assert_eq!((status, view.warehouse_id.as_str()), (201, "west"), "placed where the units are now");
    assert_eq!((counts(&store.inner, "SKU-1", "east"), counts(&store.inner, "SKU-1", "west")), ((1, 1, 0), (1, 1, 0)));
}
