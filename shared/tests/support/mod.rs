//! What the use-case tests share: ids, carts, an admin, and a product put on the shelf through the
//! admin use case itself (never by writing the store behind the service's back).

#![allow(dead_code)] // each test file uses its own part of this

use shared::admin::{StockChange, StockUpdate};
use shared::alerts::AlertPolicy;
use shared::auth::Caller;
use shared::domain::{ProductId, StockLevel, WarehouseId};
use shared::holds::{CartToken, Holder, HolderProof, Quantity, ReserveRequest};
use shared::service;
use shared::store::memory::MemoryStore;
use shared::time::EpochSeconds;

/// A fixed clock: the tests move it by hand.
pub const T0: EpochSeconds = 1_800_000_000;
pub const HOLD_SECONDS: i64 = 900;
/// Alerts as soon as the counters cross (the quiet period off): the tests of one alert per crossing.
pub const NO_DAMPING: AlertPolicy = AlertPolicy { quiet_seconds: 0 };
/// The template's default quiet period: the tests of damping.
pub const QUIET: AlertPolicy = AlertPolicy { quiet_seconds: 900 };

pub fn product(id: &str) -> ProductId {
    ProductId::parse(id).unwrap()
}

pub fn warehouse(id: &str) -> WarehouseId {
    WarehouseId::parse(id).unwrap()
}

/// The token of cart `n` (each test shopper has their own).
pub fn cart(n: u32) -> CartToken {
    CartToken::parse(&format!("test-cart-token-{n:0>12}")).unwrap()
}

pub fn holder(n: u32) -> Holder {
    Holder { cart: cart(n).cart(), user: None, actor: "shopper".into() }
}

pub fn proof(n: u32) -> HolderProof {
    HolderProof { cart: Some(cart(n).cart()), user: None }
}

/// Cart `n`'s proof, signed in as `user` (checkout needs a signed-in user).
pub fn signed_in_proof(n: u32, user: &str) -> HolderProof {
    HolderProof { cart: Some(cart(n).cart()), user: Some(user.into()) }
}

pub fn admin() -> Caller {
    Caller { subject: "admin-sub".into(), username: Some("ada".into()), groups: vec!["inventory-admins".into()] }
}

pub fn ask(quantity: i64, warehouse_id: Option<&str>) -> ReserveRequest {
    ReserveRequest { quantity: Quantity::new(quantity).unwrap(), warehouse_id: warehouse_id.map(warehouse) }
}

pub fn set_stock(warehouse_id: &str, count: i64, threshold: Option<i64>) -> StockUpdate {
    StockUpdate {
        warehouse_id: warehouse(warehouse_id),
        change: Some(StockChange::Set(count)),
        threshold_level: threshold,
        max_per_cart: None,
        reason: None,
        expected_version: None,
        shards: None,
    }
}

pub fn adjust(warehouse_id: &str, delta: i64, expected_version: Option<i64>) -> StockUpdate {
    StockUpdate { change: Some(StockChange::Adjust(delta)), expected_version, ..set_stock(warehouse_id, 0, None) }
}

/// Puts `count` of `product_id` on the shelf in `warehouse_id` with `threshold`, as an admin does.
pub async fn shelve(store: &MemoryStore, product_id: &str, warehouse_id: &str, count: i64, threshold: i64) {
    service::update_stock(
        store,
        &product(product_id),
        &set_stock(warehouse_id, count, Some(threshold)),
        None,
        &admin(),
        T0,
    )
    .await
    .unwrap();
}

/// The item as stored, and that its counters agree with each other.
pub fn item(store: &MemoryStore, product_id: &str, warehouse_id: &str) -> StockLevel {
    let level = store.item(&product(product_id), &warehouse(warehouse_id)).expect("the item exists");
    assert_eq!(level.available_count, level.stock_count - level.reserved_count, "available = stock - reserved");
    level
}

/// (stock, reserved, available) of an item.
pub fn counts(store: &MemoryStore, product_id: &str, warehouse_id: &str) -> (i64, i64, i64) {
    let level = item(store, product_id, warehouse_id);
    (level.stock_count, level.reserved_count, level.available_count)
}
