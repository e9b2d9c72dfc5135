//! The DynamoDB adapter: the stock, reservations and requests tables. Every state change is one
//! conditional write or one transaction; a failed condition comes back as an outcome (with the item
//! as it was, ReturnValuesOnConditionCheckFailure = ALL_OLD), never as a half-done change.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;

use super::{
    AdminOutcome, AlertStore, DeletedHoldOutcome, EndOutcome, ExpiryStore, HoldStore, PlaceOutcome, ReconcileStore,
    ShardStore, StockAdmin, StockPage, StockReader,
};
use crate::admin::{StockChange, StockUpdate};
use crate::alerts::AlertDecision;
use crate::config::Config;
use crate::domain::{
    ChangeKind, CounterLook, ProductId, ShardFigures, StockLevel, StockStatus, WarehouseId, RECONCILER_ACTOR, TTL_ACTOR,
};
use crate::error::InventoryError;
use crate::holds::{CounterDelta, Reservation, ReservationId, ReservationState, ShardTake, Transition};
use crate::limits::{DEFAULT_THRESHOLD, ENDED_HOLD_RETENTION_SECONDS, MAX_HOLDS_PER_CART, MAX_STOCK};
use crate::requests::{RequestRecord, REQUEST_RETENTION_SECONDS};
use crate::time::EpochSeconds;

/// DynamoDB attribute names that code uses to build keys or read items. The rest appear only in
/// the update expressions below and as serde field names of the item structs.
pub mod attr {
    pub const PRODUCT_ID: &str = "product_id";
    pub const WAREHOUSE_ID: &str = "warehouse_id";
    pub const STOCK_COUNT: &str = "stock_count";
    pub const AVAILABLE_COUNT: &str = "available_count";
    /// The alert state: the status last announced (see `alerts`).
    pub const STATUS: &str = "status";
    /// The alert state's damping memory (`domain::AlertDamping`).
    pub const DAMPING: &str = "damping";
    pub const RESERVATION_ID: &str = "reservation_id";
    pub const STATE: &str = "state";
    /// The reservations table's TTL attribute.
    pub const PURGE_AT: &str = "purge_at";
    /// Keys of the sparse `active-by-expiry` index: present only while a hold is ACTIVE.
    pub const SWEEP_SHARD: &str = "sweep_shard";
    pub const SWEEP_DUE_AT: &str = "sweep_due_at";
    /// Key of the sparse `active-by-item` index: "<product>#<warehouse>", present only while ACTIVE.
    pub const ACTIVE_ITEM: &str = "active_item";
    pub const QUANTITY: &str = "quantity";
}

/// The sparse index the backstop queries for lapsed holds, and how many partitions it spreads over
/// (one partition key value would be a hot key during a sale).
pub const ACTIVE_BY_EXPIRY_INDEX: &str = "active-by-expiry";
pub const SWEEP_SHARDS: u8 = 4;

/// The sparse index the reconciler sums an item's ACTIVE holds from (projects `quantity`).
pub const ACTIVE_BY_ITEM_INDEX: &str = "active-by-item";

/// What must hold on a stock item (or shard) for a hold's counters to move there.
#[derive(Debug, Clone, Copy)]
enum CounterGuard {
    /// The item exists (releasing units back).
    ItemExists,
    /// Enough units for sale (placing a hold).
    AvailableAtLeast(i64),
    /// Enough units on the shelf (checkout; an admin may have counted fewer since the hold).
    StockAtLeast(i64),
    /// The item exists and no reconciler repair has counted a hold deleted at this time already.
    NotReconciledSince(EpochSeconds),
}

/// How long a function instance trusts the shard count it read for an item before reading it again.
/// A stale count is safe (any shard within the span may be taken from; a short one spills), it only
/// spreads new holds over the old number of shards meanwhile.
const LAYOUT_TTL: Duration = Duration::from_secs(2);

/// A sharded reserve reads all shards again and retries when another hold took units between its
/// read and its write, at most this often; then it answers 503 with Retry-After (contention only).
const SPILL_ATTEMPTS: usize = 4;

/// Shard counts of items, and when each was read.
type ShardCounts = Arc<Mutex<HashMap<(ProductId, WarehouseId), (u32, Instant)>>>;

/// The items holds of a product (in a warehouse, or in any) may go to, when one of them is sharded,
/// and when they were read.
type HoldTargets = Arc<Mutex<HashMap<(ProductId, Option<WarehouseId>), (Vec<StockLevel>, Instant)>>>;

/// The DynamoDB tables of the service.
#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    config: Config,
    /// Shard counts of items this instance placed holds on, and when each was read.
    layouts: ShardCounts,
    /// What holds of a sharded item read (its main item), kept for [`LAYOUT_TTL`].
    targets: HoldTargets,
}

impl DynamoStore {
    pub fn new(client: Client, config: Config) -> Self {
        Self { client, config, layouts: Arc::default(), targets: Arc::default() }
    }

    fn stock_key(product: &ProductId, warehouse: &WarehouseId) -> HashMap<String, AttributeValue> {
        Self::shard_key(product, warehouse, 0)
    }

    /// The key of shard `shard` of an item: the main item for 0, else `"<product>#<shard>"`.
    fn shard_key(product: &ProductId, warehouse: &WarehouseId, shard: u32) -> HashMap<String, AttributeValue> {
        let product = if shard == 0 { product.to_string() } else { format!("{product}#{shard}") };
        HashMap::from([
            (attr::PRODUCT_ID.to_owned(), s(&product)),
            (attr::WAREHOUSE_ID.to_owned(), s(warehouse.as_str())),
        ])
    }

    fn reservation_key(id: &ReservationId) -> HashMap<String, AttributeValue> {
        HashMap::from([(attr::RESERVATION_ID.to_owned(), s(&id.to_string()))])
    }

    /// One item, strongly consistent (what a conditional write will see), as `T`.
    async fn get_consistent<T: serde::de::DeserializeOwned>(
        &self,
        table: &str,
        key: HashMap<String, AttributeValue>,
        what: &str,
    ) -> Result<Option<T>, InventoryError> {
        let found = self
            .client
            .get_item()
            .table_name(table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(InventoryError::from_sdk)?;
        found.item().map(|item| item_of(item, what)).transpose()
    }

    /// The counters update every hold transition makes on one shard of the stock item (0: the main
    /// item), under `guard`.
    fn counters_update(
        &self,
        hold: &Reservation,
        shard: u32,
        delta: CounterDelta,
        guard: CounterGuard,
        change: AttributeValue,
        now: EpochSeconds,
    ) -> Update {
        let (condition, quantity) = match guard {
            CounterGuard::ItemExists => ("attribute_exists(product_id)", None),
            CounterGuard::AvailableAtLeast(q) => ("available_count >= :quantity", Some(q)),
            CounterGuard::StockAtLeast(q) => ("stock_count >= :quantity", Some(q)),
            CounterGuard::NotReconciledSince(_) => (
                "attribute_exists(product_id) AND \
                 (attribute_not_exists(reconciled_through) OR reconciled_through < :deleted_at)",
                None,
            ),
        };
        // A change of the shelf count is a new version (an admin's compare-and-set from an older
        // view must fail); every write of the figures is a new sequence.
        let version = if delta.stock != 0 { ", version = if_not_exists(version, :zero) + :one" } else { "" };
        let update = Update::builder()
            .table_name(&self.config.stock_table)
            .set_key(Some(Self::shard_key(&hold.product_id, &hold.warehouse_id, shard)))
            .update_expression(format!(
                "SET stock_count = stock_count + :stock, reserved_count = reserved_count + :reserved, \
                 available_count = available_count + :available, last_updated = :now, last_change = :change, \
                 #sequence = if_not_exists(#sequence, :zero) + :one{version}"
            ))
            .condition_expression(condition)
            // SEQUENCE is a DynamoDB reserved word.
            .expression_attribute_names("#sequence", "sequence")
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":stock", n(delta.stock))
            .expression_attribute_values(":reserved", n(delta.reserved))
            .expression_attribute_values(":available", n(delta.available))
            .expression_attribute_values(":now", s(&crate::time::rfc3339(now)))
            .expression_attribute_values(":change", change)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        let update = match (quantity, guard) {
            (Some(q), _) => update.expression_attribute_values(":quantity", n(q)),
            (None, CounterGuard::NotReconciledSince(deleted_at)) => {
                update.expression_attribute_values(":deleted_at", n(deleted_at))
            }
            (None, _) => update,
        };
        update.build().expect("table, key and update expression are set")
    }

    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<Option<Vec<CancellationReason>>, InventoryError> {
        transact(&self.client, items).await
    }
}

/// Runs a transaction, retrying a few times when DynamoDB cancels it only because another
/// transaction held one of its items (TransactionConflict, common on a hot item in a sale).
/// Returns the cancellation reasons when a condition failed.
pub(super) async fn transact(
    client: &Client,
    items: Vec<TransactWriteItem>,
) -> Result<Option<Vec<CancellationReason>>, InventoryError> {
    const ATTEMPTS: u32 = 4;
    for attempt in 1..=ATTEMPTS {
        match client.transact_write_items().set_transact_items(Some(items.clone())).send().await {
            Ok(_) => return Ok(None),
            Err(SdkError::ServiceError(service)) => match service.into_err() {
                TransactWriteItemsError::TransactionCanceledException(cancelled) => {
                    let reasons = cancelled.cancellation_reasons().to_vec();
                    let condition_failed = reasons.iter().any(|r| r.code() == Some("ConditionalCheckFailed"));
                    let conflict = reasons.iter().any(|r| r.code() == Some("TransactionConflict"));
                    // A conflict on any item may have failed another's condition on a stale
                    // view (e.g. the same request still in flight): try again first.
                    if conflict && attempt < ATTEMPTS {
                        tracing::debug!(attempt, "transaction conflict, retrying");
                        tokio::time::sleep(Duration::from_millis(fastrand::u64(5..=25) * u64::from(attempt))).await;
                        continue;
                    }
                    if condition_failed {
                        return Ok(Some(reasons));
                    }
                    let detail =
                        format!("transaction cancelled: {:?}", reasons.iter().map(|r| r.code()).collect::<Vec<_>>());
                    // Contention and throttling pass; anything else (a ValidationError) is ours.
                    let passing = ["None", "TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"];
                    if reasons.iter().all(|r| r.code().is_none_or(|code| passing.contains(&code))) {
                        return Err(InventoryError::Unavailable { detail });
                    }
                    return Err(InventoryError::internal(detail));
                }
                other => return Err(InventoryError::from_service_error(other)),
            },
            Err(err) => return Err(InventoryError::from_sdk(err)),
        }
    }
    unreachable!("the last attempt returns")
}

impl DynamoStore {
    /// The item read whole, strongly consistent: the main item, and for a sharded one every shard
    /// in one TransactGetItems (serializable with the transactions that move units between shards,
    /// so the sums are right at any moment).
    async fn read_whole(
        &self,
        product: &ProductId,
        warehouse: &WarehouseId,
    ) -> Result<Option<StockLevel>, InventoryError> {
        let mut main: Option<StockLevel> =
            self.get_consistent(&self.config.stock_table, Self::stock_key(product, warehouse), "stock").await?;
        // Bounded: the span changes only by an admin's write.
        for _ in 0..3 {
            let Some(level) = main else { return Ok(None) };
            let span = level.shard_span();
            if span <= 1 {
                return Ok(Some(level));
            }
            let keys = (0..span).map(|k| Self::shard_key(product, warehouse, k)).collect();
            let items = self.transact_get(keys).await?;
            let Some(Some(read)) = items.first() else { return Ok(None) };
            let read: StockLevel = item_of(read, "stock")?;
            if read.shard_span() != span {
                main = Some(read);
                continue;
            }
            let shards = items.iter().zip(0..span).map(|(item, k)| shard_figures(item.as_ref(), k)).collect();
            // The item changed when any of its shards last did (RFC 3339 UTC sorts as text).
            let last_updated = items
                .iter()
                .flatten()
                .filter_map(|item| item.get("last_updated").and_then(|v| v.as_s().ok()))
                .max()
                .cloned()
                .unwrap_or_default();
            let mut whole = crate::sharding::aggregate(read, shards);
            whole.last_updated = last_updated;
            return Ok(Some(whole));
        }
        Err(InventoryError::Unavailable { detail: format!("the shards of {product}/{warehouse} kept changing") })
    }

    /// The product's main items (every warehouse's, or just `warehouse`'s), strongly consistent;
    /// for a sharded one, only its shard 0's figures.
    async fn main_items(
        &self,
        product: &ProductId,
        warehouse: Option<&WarehouseId>,
    ) -> Result<Vec<StockLevel>, InventoryError> {
        if let Some(warehouse) = warehouse {
            let key = Self::stock_key(product, warehouse);
            return Ok(self.get_consistent(&self.config.stock_table, key, "stock").await?.into_iter().collect());
        }
        let items = self
            .client
            .query()
            .table_name(&self.config.stock_table)
            .key_condition_expression(format!("{} = :product", attr::PRODUCT_ID))
            .expression_attribute_values(":product", s(product.as_str()))
            .consistent_read(true);
        serde_dynamo::from_items(all_items(items).await?)
            .map_err(|err| InventoryError::internal(format!("malformed stock item: {err}")))
    }

    /// TransactGetItems, retried while a transaction writing one of the items cancels it.
    async fn transact_get(
        &self,
        keys: Vec<HashMap<String, AttributeValue>>,
    ) -> Result<Vec<Option<HashMap<String, AttributeValue>>>, InventoryError> {
        use aws_sdk_dynamodb::operation::transact_get_items::TransactGetItemsError;
        use aws_sdk_dynamodb::types::{Get, TransactGetItem};
        let gets: Vec<TransactGetItem> = keys
            .into_iter()
            .map(|key| {
                let get = Get::builder().table_name(&self.config.stock_table).set_key(Some(key));
                TransactGetItem::builder().get(get.build().expect("table and key are set")).build()
            })
            .collect();
        const ATTEMPTS: u64 = 6;
        for attempt in 1..=ATTEMPTS {
            match self.client.transact_get_items().set_transact_items(Some(gets.clone())).send().await {
                Ok(output) => {
                    return Ok(output
                        .responses()
                        .iter()
                        .map(|response| response.item().filter(|item| !item.is_empty()).cloned())
                        .collect())
                }
                Err(SdkError::ServiceError(service)) => match service.into_err() {
                    TransactGetItemsError::TransactionCanceledException(_) if attempt < ATTEMPTS => {
                        tokio::time::sleep(Duration::from_millis(fastrand::u64(5..=25) * attempt)).await;
                    }
                    TransactGetItemsError::TransactionCanceledException(cancelled) => {
                        return Err(InventoryError::Unavailable {
                            detail: format!("reading the shards was cancelled: {:?}", cancelled.cancellation_reasons()),
                        })
                    }
                    other => return Err(InventoryError::from_service_error(other)),
                },
                Err(err) => return Err(InventoryError::from_sdk(err)),
            }
        }
        unreachable!("the last attempt returns")
    }

    /// The shard count holds of an item spread over, as this instance last read it (at most
    /// [`LAYOUT_TTL`] ago), else read now.
    async fn shard_count(&self, product: &ProductId, warehouse: &WarehouseId) -> Result<u32, InventoryError> {
        let key = (product.clone(), warehouse.clone());
        let cached = self.layouts.lock().ok().and_then(|layouts| layouts.get(&key).copied());
        if let Some((count, read_at)) = cached {
            if read_at.elapsed() < LAYOUT_TTL {
                return Ok(count);
            }
        }
        let main: Option<StockLevel> =
            self.get_consistent(&self.config.stock_table, Self::stock_key(product, warehouse), "stock").await?;
        let count = main.map_or(1, |level| level.shard_count());
        self.remember_shard_count(product, warehouse, count);
        Ok(count)
    }

    fn remember_shard_count(&self, product: &ProductId, warehouse: &WarehouseId, count: u32) {
        if let Ok(mut layouts) = self.layouts.lock() {
            layouts.insert((product.clone(), warehouse.clone()), (count, Instant::now()));
        }
    }

    /// ConditionChecks that shards 1.. of `level` (read whole) are still at the `sequence` they were
    /// read at: with the main item's own condition, "nothing changed since the read".
    fn shards_unchanged(&self, level: &StockLevel) -> Vec<TransactWriteItem> {
        use aws_sdk_dynamodb::types::ConditionCheck;
        level
            .shard_figures
            .iter()
            .filter(|shard| shard.index > 0)
            .map(|shard| {
                let check = ConditionCheck::builder()
                    .table_name(&self.config.stock_table)
                    .set_key(Some(Self::shard_key(&level.product_id, &level.warehouse_id, shard.index)))
                    .condition_expression("#sequence = :sequence")
                    .expression_attribute_names("#sequence", "sequence")
                    .expression_attribute_values(":sequence", n(shard.sequence));
                TransactWriteItem::builder()
                    .condition_check(check.build().expect("table, key and condition are set"))
                    .build()
            })
            .collect()
    }

    /// A write of the main item conditional on the item as `level` read it: one UpdateItem for an
    /// item of one shard, with `check_shards` a transaction with a check of every other shard for a
    /// sharded one.
    /// `false`: a condition failed (nothing was written).
    async fn write_main(&self, update: Update, level: &StockLevel, check_shards: bool) -> Result<bool, InventoryError> {
        if check_shards && level.shard_figures.len() > 1 {
            let mut items = vec![TransactWriteItem::builder().update(update).build()];
            items.extend(self.shards_unchanged(level));
            return Ok(self.transact(items).await?.is_none());
        }
        let result = self
            .client
            .update_item()
            .table_name(update.table_name())
            .set_key(Some(update.key().clone()))
            .update_expression(update.update_expression())
            .set_condition_expression(update.condition_expression().map(str::to_owned))
            .set_expression_attribute_names(update.expression_attribute_names().cloned())
            .set_expression_attribute_values(update.expression_attribute_values().cloned())
            .send()
            .await;
        Ok(conditional_update(result)?.is_ok())
    }
}

/// The main item's own `sequence` (for a sharded item read whole, `level.sequence` is the sum).
fn own_sequence(level: &StockLevel) -> i64 {
    level.shard_figures.first().map_or(level.sequence, |main| main.sequence)
}

/// One shard's figures from its item (absent: an empty shard).
fn shard_figures(item: Option<&HashMap<String, AttributeValue>>, index: u32) -> ShardFigures {
    let figure = |name| item.map_or(0, |item| number(item, name));
    ShardFigures {
        index,
        stock_count: figure(attr::STOCK_COUNT),
        reserved_count: figure("reserved_count"),
        available_count: figure(attr::AVAILABLE_COUNT),
        version: figure("version"),
        sequence: figure("sequence"),
    }
}

/// Whether a main item is split over more than itself (`sharding.span` > 1).
fn spans_shards(item: &HashMap<String, AttributeValue>) -> bool {
    item.get("sharding").and_then(|v| v.as_m().ok()).is_some_and(|layout| number(layout, "span") > 1)
}

/// Whether a scanned or streamed stock item is a shard (k ≥ 1) rather than a main item.
pub fn is_shard_item(item: &HashMap<String, AttributeValue>) -> bool {
    item.get(attr::PRODUCT_ID).and_then(|v| v.as_s().ok()).is_some_and(|id| id.contains('#'))
}

impl DynamoStore {
    /// The Put that records a request, unless it was recorded before (then the transaction is
    /// cancelled, and the earlier record comes back with the cancellation reasons).
    fn record_request(&self, request: &RequestRecord) -> Result<Put, InventoryError> {
        let item = serde_dynamo::to_item(request)
            .map_err(|err| InventoryError::internal(format!("serialising a request record: {err}")))?;
        Ok(Put::builder()
            .table_name(&self.config.requests_table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(request_key)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .expect("table and item are set"))
    }
}

/// How a hold changes its cart's counts.
#[derive(Debug, Clone, Copy)]
enum CartChange {
    /// A new hold, if the cart stays within its limits.
    Add { max_per_cart: i64 },
    /// A hold ended: its room is the cart's again.
    Remove,
}

impl DynamoStore {
    /// The update of the hold's cart record (in the requests table: the number of ACTIVE holds and
    /// the units per product), made in the same transaction as the hold's own change, so the counts
    /// move exactly when the hold does. `None` for a hold from before carts existed.
    fn cart_update(&self, hold: &Reservation, change: CartChange, now: EpochSeconds) -> Option<Update> {
        let cart = hold.cart.as_ref()?;
        let update = Update::builder()
            .table_name(&self.config.requests_table)
            .key("request_key", s(&format!("cart\n{}", cart.as_str())))
            .expression_attribute_names("#units", units_in_cart(hold))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":quantity", n(hold.quantity.units()));
        let update = match change {
            CartChange::Add { max_per_cart } => update
                .update_expression(
                    "SET holds = if_not_exists(holds, :zero) + :one, \
                     #units = if_not_exists(#units, :zero) + :quantity, purge_at = :purge",
                )
                .condition_expression(
                    "(attribute_not_exists(holds) OR holds < :max_holds) \
                     AND (attribute_not_exists(#units) OR #units <= :room)",
                )
                .expression_attribute_values(":zero", n(0))
                .expression_attribute_values(":max_holds", n(MAX_HOLDS_PER_CART))
                .expression_attribute_values(":room", n(max_per_cart - hold.quantity.units()))
                // The cart is forgotten a while after its last hold could have ended.
                .expression_attribute_values(":purge", n(now + REQUEST_RETENTION_SECONDS))
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld),
            // Unconditional: a cart record already forgotten starts again from zero.
            CartChange::Remove => update.update_expression(
                "SET holds = if_not_exists(holds, :one) - :one, #units = if_not_exists(#units, :quantity) - :quantity",
            ),
        };
        Some(update.build().expect("table, key and update expression are set"))
    }
}

/// The cart record's attribute counting a product's units.
fn units_in_cart(hold: &Reservation) -> String {
    format!("units:{}", hold.product_id)
}

/// Every item a query finds, across all its pages.
async fn all_items(
    query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
) -> Result<Vec<HashMap<String, AttributeValue>>, InventoryError> {
    query.into_paginator().items().send().collect::<Result<Vec<_>, _>>().await.map_err(InventoryError::from_sdk)
}

/// The `active-by-item` index key of a product in a warehouse ('#' is in no id).
fn active_item(product: &ProductId, warehouse: &WarehouseId) -> String {
    format!("{product}#{warehouse}")
}

/// An UpdateItem whose condition may fail: its output, or the item as it was (`None` when DynamoDB
/// returned none: the item did not exist, or ALL_OLD was not asked for).
fn conditional_update<T, R: std::fmt::Debug>(
    result: Result<T, SdkError<UpdateItemError, R>>,
) -> Result<Result<T, Option<StockLevel>>, InventoryError> {
    match result {
        Ok(output) => Ok(Ok(output)),
        Err(SdkError::ServiceError(service)) => match service.into_err() {
            UpdateItemError::ConditionalCheckFailedException(failed) => {
                let current = failed.item().filter(|i| !i.is_empty()).map(|item| item_of(item, "stock")).transpose()?;
                Ok(Err(current))
            }
            other => Err(InventoryError::from_service_error(other)),
        },
        Err(err) => Err(InventoryError::from_sdk(err)),
    }
}

fn status_value(status: StockStatus) -> AttributeValue {
    s(match status {
        StockStatus::InStock => "IN_STOCK",
        StockStatus::LowStock => "LOW_STOCK",
        StockStatus::OutOfStock => "OUT_OF_STOCK",
    })
}

pub(super) fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

pub(super) fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// What the last write to a stock item was and who made it (`last_change`), for the audit trail.
fn change_record(
    kind: ChangeKind,
    actor: &str,
    reason: Option<&str>,
    reservation: Option<&ReservationId>,
) -> AttributeValue {
    let mut fields = HashMap::from([("kind".to_owned(), s(kind.as_str())), ("actor".to_owned(), s(actor))]);
    if let Some(reason) = reason {
        fields.insert("reason".to_owned(), s(reason));
    }
    if let Some(id) = reservation {
        fields.insert(attr::RESERVATION_ID.to_owned(), s(&id.to_string()));
    }
    AttributeValue::M(fields)
}

pub(super) fn item_of<T: serde::de::DeserializeOwned>(
    item: &HashMap<String, AttributeValue>,
    what: &str,
) -> Result<T, InventoryError> {
    serde_dynamo::from_item(item.clone())
        .map_err(|err| InventoryError::internal(format!("malformed {what} item: {err}")))
}

/// The old item a failed condition returned (ReturnValuesOnConditionCheckFailure = ALL_OLD).
fn old_item(reason: Option<&CancellationReason>) -> Option<&HashMap<String, AttributeValue>> {
    reason.and_then(|r| r.item()).filter(|item| !item.is_empty())
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> i64 {
    item.get(name).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// The hold's sweep partition, from its random id.
fn sweep_shard(id: &ReservationId) -> String {
    let first = id.to_string().as_bytes().first().copied().unwrap_or(0);
    format!("ACTIVE#{}", first % SWEEP_SHARDS)
}

#[async_trait::async_trait]
impl StockReader for DynamoStore {
    async fn hold_targets(
        &self,
        product: &ProductId,
        warehouse: Option<&WarehouseId>,
    ) -> Result<Vec<StockLevel>, InventoryError> {
        let key = (product.clone(), warehouse.cloned());
        let cached = self.targets.lock().ok().and_then(|targets| targets.get(&key).cloned());
        if let Some((levels, read_at)) = cached {
            if read_at.elapsed() < LAYOUT_TTL {
                return Ok(levels);
            }
        }
        // The main items only: an item of one shard is read as always.
        let levels = self.main_items(product, warehouse).await?;
        let levels: Vec<StockLevel> = levels
            .into_iter()
            .map(|mut level| {
                self.remember_shard_count(&level.product_id, &level.warehouse_id, level.shard_count());
                if level.is_sharded() {
                    level.available_count = super::MAY_COVER;
                }
                level
            })
            .collect();
        if levels.iter().any(StockLevel::is_sharded) {
            if let Ok(mut targets) = self.targets.lock() {
                targets.insert(key, (levels.clone(), Instant::now()));
            }
        }
        Ok(levels)
    }

    async fn stock_levels(
        &self,
        product: &ProductId,
        warehouse: Option<&WarehouseId>,
    ) -> Result<Vec<StockLevel>, InventoryError> {
        // GET must show what a reserve would see: strongly consistent, never a stale replica.
        let mut levels = Vec::new();
        for level in self.main_items(product, warehouse).await? {
            // A sharded warehouse is read again whole: its main item holds one shard's figures.
            if level.is_sharded() {
                levels.extend(self.read_whole(product, &level.warehouse_id).await?);
            } else {
                levels.push(level);
            }
        }
        Ok(levels)
    }
}

/// What one attempt to place a hold on given shards came to.
enum Placement {
    /// Placed, or answered without a change for a reason other than the shards' units.
    Done(PlaceOutcome),
    /// The one shard asked had too few units for sale (`sharded`: the item has other shards).
    Short { available: i64, sharded: bool },
    /// The one shard asked does not exist.
    NoItem,
    /// One of several shards moved since it was read.
    Moved,
}

impl DynamoStore {
    /// One transaction: the hold's units off each shard in `takes` (each conditional on its own
    /// units for sale), the hold's record (with `takes` as its allocation if the item is sharded),
    /// its cart's counts and the request's record.
    async fn try_place(
        &self,
        hold: &Reservation,
        takes: &[ShardTake],
        sharded: bool,
        max_per_cart: i64,
        request: Option<&RequestRecord>,
        actor: &str,
    ) -> Result<Placement, InventoryError> {
        // No read first: the condition is the check. available_count moves in the same expression
        // as reserved_count, so "enough for sale" and "take it" are one atomic step.
        let mut items: Vec<TransactWriteItem> = takes
            .iter()
            .map(|take| {
                let update = self.counters_update(
                    hold,
                    take.shard,
                    CounterDelta::place(take.units),
                    CounterGuard::AvailableAtLeast(take.units),
                    change_record(ChangeKind::Hold, actor, None, Some(&hold.reservation_id)),
                    hold.created_at,
                );
                TransactWriteItem::builder().update(update).build()
            })
            .collect();
        let mut placed = hold.clone();
        placed.allocation = if sharded { takes.to_vec() } else { Vec::new() };
        let mut record: HashMap<String, AttributeValue> = serde_dynamo::to_item(&placed)
            .map_err(|err| InventoryError::internal(format!("serialising a hold: {err}")))?;
        record.insert(attr::PURGE_AT.to_owned(), n(hold.expires_at));
        record.insert(attr::SWEEP_SHARD.to_owned(), s(&sweep_shard(&hold.reservation_id)));
        record.insert(attr::SWEEP_DUE_AT.to_owned(), n(hold.expires_at));
        record.insert(attr::ACTIVE_ITEM.to_owned(), s(&active_item(&hold.product_id, &hold.warehouse_id)));
        // Ids are random and never reused; the condition only guards against a collision.
        let create_hold = Put::builder()
            .table_name(&self.config.reservations_table)
            .set_item(Some(record))
            .condition_expression("attribute_not_exists(reservation_id)")
            .build()
            .expect("table and item are set");
        let count_in_cart = self
            .cart_update(hold, CartChange::Add { max_per_cart }, hold.created_at)
            .ok_or_else(|| InventoryError::internal("a new hold without a cart"))?;
        let shards = items.len();
        items.push(TransactWriteItem::builder().put(create_hold).build());
        items.push(TransactWriteItem::builder().update(count_in_cart).build());
        if let Some(request) = request {
            items.push(TransactWriteItem::builder().put(self.record_request(request)?).build());
        }
        let Some(reasons) = self.transact(items).await? else {
            return Ok(Placement::Done(PlaceOutcome::Placed));
        };
        let failed = |index: usize| reasons.get(index).and_then(|r| r.code()) == Some("ConditionalCheckFailed");
        // A recorded request wins over everything else: a retry must see its own hold.
        if let Some(earlier) = old_item(reasons.get(shards + 2)) {
            return Ok(Placement::Done(PlaceOutcome::AlreadyRequested(Box::new(item_of(earlier, "request")?))));
        }
        if failed(shards + 1) {
            let cart = old_item(reasons.get(shards + 1));
            let holds = cart.map_or(0, |cart| number(cart, "holds"));
            return Ok(Placement::Done(if holds >= MAX_HOLDS_PER_CART {
                PlaceOutcome::CartHoldsFull
            } else {
                PlaceOutcome::CartUnitsFull { in_cart: cart.map_or(0, |cart| number(cart, &units_in_cart(hold))) }
            }));
        }
        if failed(shards) {
            return Err(InventoryError::internal(format!("reservation id {} collided", hold.reservation_id)));
        }
        if shards > 1 {
            return Ok(Placement::Moved);
        }
        Ok(match old_item(reasons.first()) {
            Some(stock) => Placement::Short {
                available: number(stock, attr::AVAILABLE_COUNT),
                sharded: is_shard_item(stock) || spans_shards(stock),
            },
            None => Placement::NoItem,
        })
    }
}

#[async_trait::async_trait]
impl HoldStore for DynamoStore {
    async fn place_hold(
        &self,
        hold: &Reservation,
        max_per_cart: i64,
        request: Option<&RequestRecord>,
        actor: &str,
    ) -> Result<PlaceOutcome, InventoryError> {
        let (product, warehouse) = (&hold.product_id, &hold.warehouse_id);
        let count = self.shard_count(product, warehouse).await?;
        // The fast path: one shard, picked from the hold's id, in the same single transaction as an
        // item of one shard.
        let first = crate::sharding::shard_for(&hold.reservation_id, count);
        let takes = vec![ShardTake { shard: first, units: hold.quantity.units() }];
        match self.try_place(hold, &takes, count > 1, max_per_cart, request, actor).await? {
            Placement::Done(outcome) => return Ok(outcome),
            Placement::Short { available, sharded: false } if first == 0 => {
                return Ok(PlaceOutcome::Insufficient { available })
            }
            Placement::NoItem if first == 0 => return Ok(PlaceOutcome::NoStockItem),
            Placement::Short { .. } | Placement::NoItem | Placement::Moved => {}
        }
        // The spill: that shard is short (or gone with a lowered count). Read every shard together;
        // refuse only if all of them cannot cover the hold, else take from several at once, each
        // conditional on its own count.
        for _ in 0..SPILL_ATTEMPTS {
            let Some(whole) = self.read_whole(product, warehouse).await? else { return Ok(PlaceOutcome::NoStockItem) };
            self.remember_shard_count(product, warehouse, whole.shard_count());
            let takes =
                match crate::sharding::plan_spill(&crate::sharding::figures_of(&whole), first, hold.quantity.units()) {
                    Ok(takes) => takes,
                    Err(available) => return Ok(PlaceOutcome::Insufficient { available }),
                };
            let sharded = whole.is_sharded();
            match self.try_place(hold, &takes, sharded, max_per_cart, request, actor).await? {
                Placement::Done(outcome) => {
                    if outcome == PlaceOutcome::Placed && takes.len() > 1 {
                        tracing::info!(product_id = %product, warehouse_id = %warehouse, reservation_id = %hold.reservation_id,
                                       ?takes, "hold spilled over shards");
                        crate::metrics::count(
                            crate::metrics::Metric::HoldsSpilled,
                            &[("product_id", product.as_str())],
                        );
                    }
                    return Ok(outcome);
                }
                // Another hold took units between the read and the write: read again.
                Placement::Short { .. } | Placement::Moved | Placement::NoItem => {}
            }
        }
        Err(InventoryError::Unavailable {
            detail: format!("the shards of {product}/{warehouse} kept changing under the hold"),
        })
    }

    async fn reservation(&self, id: &ReservationId) -> Result<Option<Reservation>, InventoryError> {
        self.get_consistent(&self.config.reservations_table, Self::reservation_key(id), "reservation").await
    }

    async fn end_hold(
        &self,
        hold: &Reservation,
        transition: Transition,
        actor: &str,
        owner: Option<&str>,
        now: EpochSeconds,
    ) -> Result<EndOutcome, InventoryError> {
        let target = transition.target();
        let still_holding = match transition {
            // A checkout after expiry is refused even before TTL or the sweeper act.
            Transition::Commit => "#state = :active AND expires_at > :now",
            Transition::Release | Transition::Expire => "#state = :active",
        };
        // A checkout binds the hold to its buyer, unless another user owns it already.
        let (bind_owner, owner_free) = match owner {
            // OWNER is a DynamoDB reserved word.
            Some(_) => (", #owner = :owner", " AND (attribute_not_exists(#owner) OR #owner = :owner)"),
            None => ("", ""),
        };
        // Leaving ACTIVE drops the index keys and keeps the record for audit until purge_at.
        let leave_active = Update::builder()
            .table_name(&self.config.reservations_table)
            .set_key(Some(Self::reservation_key(&hold.reservation_id)))
            .update_expression(format!(
                "SET #state = :target, ended_at = :now, ended_by = :actor, purge_at = :purge{bind_owner} \
                 REMOVE sweep_shard, sweep_due_at, active_item"
            ))
            .condition_expression(format!("{still_holding}{owner_free}"))
            .set_expression_attribute_values(owner.map(|owner| HashMap::from([(":owner".to_owned(), s(owner))])))
            .set_expression_attribute_names(owner.map(|_| HashMap::from([("#owner".to_owned(), "owner".to_owned())])))
            .expression_attribute_names("#state", attr::STATE)
            .expression_attribute_values(":target", s(target.as_str()))
            .expression_attribute_values(":active", s(ReservationState::Active.as_str()))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":actor", s(actor))
            .expression_attribute_values(":purge", n(now + ENDED_HOLD_RETENTION_SECONDS))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .expect("table, key and update expression are set");
        // Each shard gets back exactly what the hold took there; a checkout sells only units that
        // are on that shard's shelf.
        let takes = hold.takes();
        let mut items = vec![TransactWriteItem::builder().update(leave_active).build()];
        items.extend(takes.iter().map(|take| {
            let guard = match transition {
                Transition::Commit => CounterGuard::StockAtLeast(take.units),
                Transition::Release | Transition::Expire => CounterGuard::ItemExists,
            };
            let change = change_record(transition.change_kind(), actor, None, Some(&hold.reservation_id));
            let update = self.counters_update(hold, take.shard, transition.counters(take.units), guard, change, now);
            TransactWriteItem::builder().update(update).build()
        }));
        if let Some(free_cart) = self.cart_update(hold, CartChange::Remove, now) {
            items.push(TransactWriteItem::builder().update(free_cart).build());
        }
        let Some(reasons) = self.transact(items).await? else {
            let mut ended = hold.clone();
            ended.state = target;
            ended.ended_at = Some(now);
            ended.ended_by = Some(actor.to_owned());
            ended.owner = owner.map(str::to_owned).or(ended.owner);
            return Ok(EndOutcome::Ended(ended));
        };
        if reasons.first().and_then(|r| r.code()) == Some("ConditionalCheckFailed") {
            let current = old_item(reasons.first()).map(|item| item_of(item, "reservation")).transpose()?;
            return Ok(EndOutcome::NotActive(current));
        }
        let short = reasons
            .iter()
            .skip(1)
            .take(takes.len())
            .find(|r| r.code() == Some("ConditionalCheckFailed"))
            .map(|r| old_item(Some(r)));
        match short {
            Some(Some(stock)) => Ok(EndOutcome::StockShort { stock_count: number(stock, attr::STOCK_COUNT) }),
            _ => Err(InventoryError::internal(format!(
                "hold {} refers to a missing stock item {}/{}",
                hold.reservation_id, hold.product_id, hold.warehouse_id
            ))),
        }
    }
}

impl DynamoStore {
    /// An admin write to an item of one shard: one conditional update (no read), with the request's
    /// record.
    async fn update_single(
        &self,
        product: &ProductId,
        update: &StockUpdate,
        request: &RequestRecord,
        actor: &str,
        now: EpochSeconds,
    ) -> Result<AdminOutcome, InventoryError> {
        let mut values = HashMap::from([
            (":zero".to_owned(), n(0)),
            (":one".to_owned(), n(1)),
            (":now".to_owned(), s(&crate::time::rfc3339(now))),
            (":change".to_owned(), change_record(update.kind(), actor, update.reason.as_deref(), None)),
        ]);
        let mut conditions = Vec::new();
        // Each counter is set exactly once per expression; a new item starts from zero.
        let counters = match update.change {
            Some(StockChange::Set(count)) => {
                values.insert(":count".to_owned(), n(count));
                "stock_count = :count, available_count = :count - if_not_exists(reserved_count, :zero)"
            }
            Some(StockChange::Adjust(delta)) => {
                values.insert(":delta".to_owned(), n(delta));
                if delta < 0 {
                    values.insert(":taken".to_owned(), n(-delta));
                    conditions.push("stock_count >= :taken");
                } else {
                    values.insert(":room".to_owned(), n(MAX_STOCK - delta));
                    conditions.push("(attribute_not_exists(stock_count) OR stock_count <= :room)");
                }
                "stock_count = if_not_exists(stock_count, :zero) + :delta, \
                 available_count = if_not_exists(available_count, :zero) + :delta"
            }
            None => "stock_count = if_not_exists(stock_count, :zero), available_count = if_not_exists(available_count, :zero)",
        };
        let meta = meta_assignments(update, &mut values);
        match update.expected_version {
            // Version 0 is "no such item yet": an admin adding an item must not overwrite one.
            Some(0) => conditions.push("attribute_not_exists(product_id)"),
            Some(expected) => {
                values.insert(":expected".to_owned(), n(expected));
                conditions.push("version = :expected");
            }
            None => {}
        }
        // Only an item of one shard: one split over more (since it was read) takes `update_sharded`.
        conditions.push("(attribute_not_exists(sharding) OR sharding.#span <= :one)");
        let expression = format!(
            "SET {counters}, reserved_count = if_not_exists(reserved_count, :zero), {meta}, \
             version = if_not_exists(version, :zero) + :one, #sequence = if_not_exists(#sequence, :zero) + :one, \
             last_updated = :now, last_change = :change"
        );
        let key = Self::stock_key(product, &update.warehouse_id);
        let change = Update::builder()
            .table_name(&self.config.stock_table)
            .set_key(Some(key.clone()))
            .update_expression(expression)
            .set_condition_expression((!conditions.is_empty()).then(|| conditions.join(" AND ")))
            .expression_attribute_names("#sequence", "sequence")
            .expression_attribute_names("#span", "span")
            .set_expression_attribute_values(Some(values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .expect("table, key and update expression are set");
        // One transaction with the request's record: a retry of a write whose answer was lost (the
        // SDK's own, or the client's with its Idempotency-Key) finds the record and changes nothing.
        let reasons = self
            .transact(vec![
                TransactWriteItem::builder().update(change).build(),
                TransactWriteItem::builder().put(self.record_request(request)?).build(),
            ])
            .await?;
        let current = || self.get_consistent::<StockLevel>(&self.config.stock_table, key.clone(), "stock");
        let Some(reasons) = reasons else {
            let level = current().await?.ok_or_else(|| InventoryError::internal("stock item gone after a write"))?;
            return Ok(AdminOutcome::Updated(level));
        };
        if let Some(earlier) = old_item(reasons.get(1)) {
            let earlier: RequestRecord = item_of(earlier, "request")?;
            return Ok(AdminOutcome::Replayed {
                same_request: earlier.fingerprint == request.fingerprint,
                current: current().await?,
            });
        }
        let refused = old_item(reasons.first()).map(|item| item_of(item, "stock")).transpose()?;
        Ok(AdminOutcome::Refused(refused))
    }

    /// An admin write to a sharded item (or one that becomes sharded): all shards read together,
    /// the new total spread over them (`sharding::plan_admin`), and every shard written or checked
    /// in one transaction conditional on the `version` each was read at — holds do not change a
    /// version, so a storm of holds does not stand in its way; a checkout or another admin write
    /// does, and then it reads again (or, with `expected_version`, is refused as on one item).
    async fn update_sharded(
        &self,
        product: &ProductId,
        update: &StockUpdate,
        request: &RequestRecord,
        actor: &str,
        now: EpochSeconds,
    ) -> Result<AdminOutcome, InventoryError> {
        use aws_sdk_dynamodb::types::ConditionCheck;
        let warehouse = &update.warehouse_id;
        for _ in 0..SPILL_ATTEMPTS {
            let current = self.read_whole(product, warehouse).await?;
            let version = current.as_ref().map_or(0, |level| level.version);
            if update.expected_version.is_some_and(|expected| expected != version) {
                return Ok(AdminOutcome::Refused(current));
            }
            let stock = current.as_ref().map_or(0, |level| level.stock_count);
            let total = match update.change {
                Some(StockChange::Set(count)) => count,
                Some(StockChange::Adjust(delta)) if stock + delta < 0 || stock + delta > MAX_STOCK => {
                    return Ok(AdminOutcome::Refused(current))
                }
                Some(StockChange::Adjust(delta)) => stock + delta,
                None => stock,
            };
            let layout = crate::sharding::relayout(
                current.as_ref().and_then(|level| level.sharding),
                update.shards.unwrap_or_else(|| current.as_ref().map_or(1, StockLevel::shard_count)),
            );
            let figures = current.as_ref().map(crate::sharding::figures_of).unwrap_or_default();
            let deltas = crate::sharding::plan_admin(&figures, layout, total);
            let read_span = current.as_ref().map_or(0, StockLevel::shard_span);
            let mut items = Vec::new();
            for (k, delta) in (0..layout.span).zip(deltas) {
                let read = figures.iter().find(|shard| shard.index == k);
                let version_was = read.map_or(0, |shard| shard.version);
                let mut values = HashMap::from([
                    (":zero".to_owned(), n(0)),
                    (":one".to_owned(), n(1)),
                    (":delta".to_owned(), n(delta)),
                    (":now".to_owned(), s(&crate::time::rfc3339(now))),
                    (":change".to_owned(), change_record(update.kind(), actor, update.reason.as_deref(), None)),
                ]);
                let mut unchanged = if version_was == 0 {
                    "attribute_exists(product_id) AND (attribute_not_exists(version) OR version = :zero)".to_owned()
                } else {
                    values.insert(":version".to_owned(), n(version_was));
                    "version = :version".to_owned()
                };
                // Units taken off a shard must still be for sale there: holds go on while the admin
                // writes (they do not change a version), and a shard taken below zero by a plan made
                // before them would let the other shards sell its units twice. Only a write-down under
                // the holds plans a shard below zero; then nothing may have been taken meanwhile.
                if delta < 0 {
                    let for_sale = read.map_or(0, |shard| shard.available_count);
                    let floor = if for_sale + delta >= 0 { -delta } else { for_sale };
                    values.insert(":floor".to_owned(), n(floor));
                    unchanged.push_str(" AND available_count >= :floor");
                }
                let key = Self::shard_key(product, warehouse, k);
                let item = if k == 0 {
                    let meta = meta_assignments(update, &mut values);
                    values.insert(":layout".to_owned(), to_attribute(&layout)?);
                    let condition =
                        if current.is_none() { "attribute_not_exists(product_id)".to_owned() } else { unchanged };
                    let main = Update::builder()
                        .table_name(&self.config.stock_table)
                        .set_key(Some(key))
                        .update_expression(format!(
                            "SET stock_count = if_not_exists(stock_count, :zero) + :delta, \
                             available_count = if_not_exists(available_count, :zero) + :delta, \
                             reserved_count = if_not_exists(reserved_count, :zero), {meta}, sharding = :layout, \
                             version = if_not_exists(version, :zero) + :one, \
                             #sequence = if_not_exists(#sequence, :zero) + :one, last_updated = :now, last_change = :change"
                        ))
                        .condition_expression(condition)
                        .expression_attribute_names("#sequence", "sequence")
                        .set_expression_attribute_values(Some(values))
                        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
                    TransactWriteItem::builder().update(main.build().expect("table, key and update expression are set"))
                } else if k >= read_span {
                    // A new shard: created with its share.
                    let shard = Put::builder()
                        .table_name(&self.config.stock_table)
                        .set_item(Some(
                            key.into_iter()
                                .chain([
                                    ("shard".to_owned(), n(i64::from(k))),
                                    (attr::STOCK_COUNT.to_owned(), n(delta)),
                                    ("reserved_count".to_owned(), n(0)),
                                    (attr::AVAILABLE_COUNT.to_owned(), n(delta)),
                                    ("version".to_owned(), n(0)),
                                    ("sequence".to_owned(), n(1)),
                                    ("last_updated".to_owned(), s(&crate::time::rfc3339(now))),
                                    (
                                        "last_change".to_owned(),
                                        change_record(update.kind(), actor, update.reason.as_deref(), None),
                                    ),
                                ])
                                .collect(),
                        ))
                        .condition_expression("attribute_not_exists(product_id)");
                    TransactWriteItem::builder().put(shard.build().expect("table and item are set"))
                } else if delta != 0 {
                    let shard = Update::builder()
                        .table_name(&self.config.stock_table)
                        .set_key(Some(key))
                        .update_expression(
                            "SET stock_count = stock_count + :delta, available_count = available_count + :delta, \
                             #sequence = #sequence + :one, last_updated = :now, last_change = :change",
                        )
                        .condition_expression(unchanged)
                        .expression_attribute_names("#sequence", "sequence")
                        .set_expression_attribute_values(Some(values));
                    let shard = shard.build().expect("table, key and update expression are set");
                    // :zero only where the condition uses it (DynamoDB refuses unused values).
                    TransactWriteItem::builder().update(without_unused_values(shard))
                } else {
                    let mut check = ConditionCheck::builder()
                        .table_name(&self.config.stock_table)
                        .set_key(Some(key))
                        .condition_expression(&unchanged);
                    check = if version_was == 0 {
                        check.expression_attribute_values(":zero", n(0))
                    } else {
                        check.expression_attribute_values(":version", n(version_was))
                    };
                    TransactWriteItem::builder()
                        .condition_check(check.build().expect("table, key and condition are set"))
                };
                items.push(item.build());
            }
            let shards = items.len();
            items.push(TransactWriteItem::builder().put(self.record_request(request)?).build());
            let Some(reasons) = self.transact(items).await? else {
                let level = self
                    .read_whole(product, warehouse)
                    .await?
                    .ok_or_else(|| InventoryError::internal("stock item gone after a write"))?;
                self.remember_shard_count(product, warehouse, layout.count);
                return Ok(AdminOutcome::Updated(level));
            };
            if let Some(earlier) = old_item(reasons.get(shards)) {
                let earlier: RequestRecord = item_of(earlier, "request")?;
                return Ok(AdminOutcome::Replayed {
                    same_request: earlier.fingerprint == request.fingerprint,
                    current: self.read_whole(product, warehouse).await?,
                });
            }
            // A checkout, another admin write or a hold on a shard losing units moved something since
            // the read: read again (a version that is no longer the expected one is refused there).
        }
        Err(InventoryError::Unavailable { detail: format!("the shards of {product}/{warehouse} kept changing") })
    }
}

/// The admin's threshold and most-per-cart assignments (a new item gets the default threshold).
fn meta_assignments(update: &StockUpdate, values: &mut HashMap<String, AttributeValue>) -> String {
    let mut meta = match update.threshold_level {
        Some(threshold) => {
            values.insert(":threshold".to_owned(), n(threshold));
            "threshold_level = :threshold".to_owned()
        }
        None => {
            values.insert(":default_threshold".to_owned(), n(DEFAULT_THRESHOLD));
            "threshold_level = if_not_exists(threshold_level, :default_threshold)".to_owned()
        }
    };
    if let Some(most) = update.max_per_cart {
        values.insert(":max_per_cart".to_owned(), n(most));
        meta.push_str(", max_per_cart = :max_per_cart");
    }
    meta
}

/// The update without the values its expressions do not use (DynamoDB refuses those).
fn without_unused_values(update: Update) -> Update {
    let used = format!("{} {}", update.update_expression(), update.condition_expression().unwrap_or_default());
    let values = update
        .expression_attribute_values()
        .cloned()
        .map(|values| values.into_iter().filter(|(name, _)| used.contains(name.as_str())).collect::<HashMap<_, _>>());
    let mut builder = Update::builder()
        .table_name(update.table_name())
        .set_key(Some(update.key().clone()))
        .update_expression(update.update_expression())
        .set_condition_expression(update.condition_expression().map(str::to_owned))
        .set_expression_attribute_names(update.expression_attribute_names().cloned())
        .set_expression_attribute_values(values);
    if let Some(returned) = update.return_values_on_condition_check_failure() {
        builder = builder.return_values_on_condition_check_failure(returned.clone());
    }
    builder.build().expect("copied from a built update")
}

#[async_trait::async_trait]
impl StockAdmin for DynamoStore {
    async fn update_stock(
        &self,
        product: &ProductId,
        update: &StockUpdate,
        request: &RequestRecord,
        actor: &str,
        now: EpochSeconds,
    ) -> Result<AdminOutcome, InventoryError> {
        let key = Self::stock_key(product, &update.warehouse_id);
        let current: Option<StockLevel> = self.get_consistent(&self.config.stock_table, key, "stock").await?;
        if update.shards.is_none() && !current.as_ref().is_some_and(StockLevel::is_sharded) {
            match self.update_single(product, update, request, actor, now).await? {
                // Sharded between the read and the write: the write is for the sharded path.
                AdminOutcome::Refused(Some(level)) if level.is_sharded() => {}
                outcome => return Ok(outcome),
            }
        }
        self.update_sharded(product, update, request, actor, now).await
    }

    async fn scan_stock(
        &self,
        after: Option<&(ProductId, WarehouseId)>,
        limit: usize,
    ) -> Result<StockPage, InventoryError> {
        let mut start = after.map(|(product, warehouse)| Self::stock_key(product, warehouse));
        let mut items = Vec::new();
        // Shard items are not items of the list: skipped, and a page never ends on one (its key is
        // no product id), so the scan goes on, one item at a time, to the next main item.
        let mut want = limit;
        loop {
            let output = self
                .client
                .scan()
                .table_name(&self.config.stock_table)
                .set_exclusive_start_key(start.take())
                .limit(i32::try_from(want).unwrap_or(i32::MAX))
                .consistent_read(true)
                .send()
                .await
                .map_err(InventoryError::from_sdk)?;
            // One malformed item must not stop the admin list or the backstop: skip it, loudly.
            for item in output.items().iter().filter(|item| !is_shard_item(item)) {
                match serde_dynamo::from_item::<_, StockLevel>(item.clone()) {
                    // Its shards read together may keep being cancelled while a sale writes them: one
                    // such item must not stop the page either.
                    Ok(level) if level.is_sharded() => {
                        match self.read_whole(&level.product_id, &level.warehouse_id).await {
                            Ok(whole) => items.extend(whole),
                            Err(err) => {
                                tracing::error!(product_id = %level.product_id, warehouse_id = %level.warehouse_id,
                                                        error = %err, "skipping a sharded item its shards could not be read")
                            }
                        }
                    }
                    Ok(level) => items.push(level),
                    Err(err) => tracing::error!(key = ?(item.get(attr::PRODUCT_ID), item.get(attr::WAREHOUSE_ID)),
                                                error = %err, "skipping a malformed stock item"),
                }
            }
            match output.last_evaluated_key() {
                Some(key) if is_shard_item(key) => {
                    start = Some(key.clone());
                    want = 1;
                }
                Some(key) => {
                    let last_key = (
                        ProductId::parse(
                            key.get(attr::PRODUCT_ID).and_then(|v| v.as_s().ok()).map_or("", String::as_str),
                        )?,
                        WarehouseId::parse(
                            key.get(attr::WAREHOUSE_ID).and_then(|v| v.as_s().ok()).map_or("", String::as_str),
                        )?,
                    );
                    return Ok(StockPage { items, last_key: Some(last_key) });
                }
                None => return Ok(StockPage { items, last_key: None }),
            }
        }
    }
}

#[async_trait::async_trait]
impl ExpiryStore for DynamoStore {
    async fn expire_deleted_hold(
        &self,
        hold: &Reservation,
        deleted_at: EpochSeconds,
        now: EpochSeconds,
    ) -> Result<DeletedHoldOutcome, InventoryError> {
        let mut expired = hold.clone();
        expired.state = ReservationState::Expired;
        expired.ended_at = Some(now);
        expired.ended_by = Some(TTL_ACTOR.to_owned());
        let mut record: HashMap<String, AttributeValue> = serde_dynamo::to_item(&expired)
            .map_err(|err| InventoryError::internal(format!("serialising a hold: {err}")))?;
        record.insert(attr::PURGE_AT.to_owned(), n(now + ENDED_HOLD_RETENTION_SECONDS));
        let restore = Put::builder()
            .table_name(&self.config.reservations_table)
            .set_item(Some(record))
            .condition_expression("attribute_not_exists(reservation_id)")
            .build()
            .expect("table and item are set");
        // Each shard gets back what the hold took there; the main item's condition (its own update,
        // or a check when the hold took nothing from it) says no repair counted this deletion yet.
        let takes = hold.takes();
        let change = || change_record(ChangeKind::Expired, TTL_ACTOR, None, Some(&hold.reservation_id));
        let mut items = vec![TransactWriteItem::builder().put(restore.clone()).build()];
        items.extend(takes.iter().map(|take| {
            let guard =
                if take.shard == 0 { CounterGuard::NotReconciledSince(deleted_at) } else { CounterGuard::ItemExists };
            let update =
                self.counters_update(hold, take.shard, Transition::Expire.counters(take.units), guard, change(), now);
            TransactWriteItem::builder().update(update).build()
        }));
        let main_index = match takes.iter().position(|take| take.shard == 0) {
            Some(index) => index + 1,
            None => {
                let check = aws_sdk_dynamodb::types::ConditionCheck::builder()
                    .table_name(&self.config.stock_table)
                    .set_key(Some(Self::stock_key(&hold.product_id, &hold.warehouse_id)))
                    .condition_expression(
                        "attribute_exists(product_id) AND \
                         (attribute_not_exists(reconciled_through) OR reconciled_through < :deleted_at)",
                    )
                    .expression_attribute_values(":deleted_at", n(deleted_at))
                    .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
                items.push(
                    TransactWriteItem::builder()
                        .condition_check(check.build().expect("table, key and condition are set"))
                        .build(),
                );
                items.len() - 1
            }
        };
        let free_cart = self.cart_update(hold, CartChange::Remove, now);
        let cart_item = || free_cart.clone().map(|update| TransactWriteItem::builder().update(update).build());
        items.extend(cart_item());
        let Some(reasons) = self.transact(items).await? else { return Ok(DeletedHoldOutcome::Released) };
        let failed = |index: usize| reasons.get(index).and_then(|r| r.code()) == Some("ConditionalCheckFailed");
        if failed(0) {
            return Ok(DeletedHoldOutcome::AlreadyReleased);
        }
        let shard_gone = (1..=takes.len()).any(|index| failed(index) && old_item(reasons.get(index)).is_none());
        if shard_gone || old_item(reasons.get(main_index)).is_none() {
            return Err(InventoryError::internal(format!(
                "expired hold {} refers to a missing stock item {}/{}",
                hold.reservation_id, hold.product_id, hold.warehouse_id
            )));
        }
        // The reconciler counted this deletion already: keep the audit record and give the cart its
        // room, move no stock counter.
        let mut items = vec![TransactWriteItem::builder().put(restore).build()];
        items.extend(cart_item());
        match self.transact(items).await? {
            None => Ok(DeletedHoldOutcome::AccountedByReconciler),
            Some(_) => Ok(DeletedHoldOutcome::AlreadyReleased),
        }
    }

    async fn lapsed_holds(&self, now: EpochSeconds, limit: usize) -> Result<Vec<ReservationId>, InventoryError> {
        // Every partition is read at once, each up to `limit`; the oldest `limit` of them all are
        // released first, so a busy partition cannot starve the others.
        let per_shard = (0..SWEEP_SHARDS).map(|shard| async move {
            let mut due = self
                .client
                .query()
                .table_name(&self.config.reservations_table)
                .index_name(ACTIVE_BY_EXPIRY_INDEX)
                .key_condition_expression("sweep_shard = :shard AND sweep_due_at <= :now")
                .expression_attribute_values(":shard", s(&format!("ACTIVE#{shard}")))
                .expression_attribute_values(":now", n(now))
                .into_paginator()
                .items()
                .send();
            let mut found = Vec::new();
            while found.len() < limit {
                let Some(item) = due.next().await else { break };
                let item = item.map_err(InventoryError::from_sdk)?;
                if let Some(id) = item.get(attr::RESERVATION_ID).and_then(|v| v.as_s().ok()) {
                    found.push((number(&item, attr::SWEEP_DUE_AT), ReservationId::parse(id)?));
                }
            }
            Ok::<_, InventoryError>(found)
        });
        let mut due: Vec<(EpochSeconds, ReservationId)> =
            futures::future::try_join_all(per_shard).await?.into_iter().flatten().collect();
        due.sort_by_key(|(due_at, _)| *due_at);
        Ok(due.into_iter().take(limit).map(|(_, id)| id).collect())
    }
}

#[async_trait::async_trait]
impl ReconcileStore for DynamoStore {
    async fn active_units(&self, product: &ProductId, warehouse: &WarehouseId) -> Result<i64, InventoryError> {
        let holds = self
            .client
            .query()
            .table_name(&self.config.reservations_table)
            .index_name(ACTIVE_BY_ITEM_INDEX)
            .key_condition_expression("active_item = :item")
            .expression_attribute_values(":item", s(&active_item(product, warehouse)));
        let holds = all_items(holds).await?;
        Ok(holds.iter().map(|hold| number(hold, attr::QUANTITY)).sum())
    }

    async fn keep_look(&self, level: &StockLevel, look: Option<CounterLook>) -> Result<bool, InventoryError> {
        let update = Update::builder()
            .table_name(&self.config.stock_table)
            .set_key(Some(Self::stock_key(&level.product_id, &level.warehouse_id)))
            .condition_expression(format!("attribute_exists(product_id) AND {}", unchanged_since(level)))
            .expression_attribute_names("#sequence", "sequence");
        let update = with_sequence(update, level);
        let update = match look {
            Some(look) => update
                .update_expression("SET reconcile_look = :look")
                .expression_attribute_values(":look", to_attribute(&look)?),
            None => update.update_expression("REMOVE reconcile_look"),
        };
        self.write_main(update.build().expect("table, key and update expression are set"), level, true).await
    }

    async fn repair_counters(
        &self,
        level: &StockLevel,
        look: CounterLook,
        active_units: i64,
        now: EpochSeconds,
    ) -> Result<Option<StockLevel>, InventoryError> {
        let reason = format!(
            "reserved_count was {} (available {}); the ACTIVE holds on record take {active_units}",
            level.reserved_count, level.available_count
        );
        // What the holds on record take from each shard (all from the main item, unsharded).
        let by_shard = if level.is_sharded() {
            let by_shard = self.active_units_by_shard(&level.product_id, &level.warehouse_id).await?;
            if by_shard.values().sum::<i64>() != active_units {
                return Ok(None); // the index moved since the looks: judged again next run
            }
            by_shard
        } else {
            HashMap::from([(0, active_units)])
        };
        let mut updates = Vec::new();
        for shard in crate::sharding::figures_of(level) {
            let active = by_shard.get(&shard.index).copied().unwrap_or(0);
            let (extra_set, main_condition) = if shard.index == 0 {
                (
                    // Holds deleted by TTL before the first look are not in the sum: their units are
                    // accounted for by this repair, and a late stream record must not return them again.
                    ", reconciled_through = :look_at REMOVE reconcile_look",
                    format!(
                        "{} AND reconcile_look.#at = :look_at AND reconcile_look.active_units = :all_active \
                         AND (attribute_not_exists(reconciled_through) OR reconciled_through <= :look_at) AND ",
                        unchanged_since(level)
                    ),
                )
            } else {
                ("", "#sequence = :shard_sequence AND ".to_owned())
            };
            let update = Update::builder()
                .table_name(&self.config.stock_table)
                .set_key(Some(Self::shard_key(&level.product_id, &level.warehouse_id, shard.index)))
                .update_expression(format!(
                    "SET reserved_count = :active, available_count = stock_count - :active, \
                     #sequence = if_not_exists(#sequence, :zero) + :one, last_updated = :now, last_change = :change{extra_set}"
                ))
                .condition_expression(format!(
                    "{main_condition}stock_count = :stock AND reserved_count = :reserved AND available_count = :available"
                ))
                .expression_attribute_names("#sequence", "sequence")
                .expression_attribute_values(":zero", n(0))
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":active", n(active))
                .expression_attribute_values(":now", s(&crate::time::rfc3339(now)))
                .expression_attribute_values(
                    ":change",
                    change_record(ChangeKind::Reconciled, RECONCILER_ACTOR, Some(&reason), None),
                )
                .expression_attribute_values(":stock", n(shard.stock_count))
                .expression_attribute_values(":reserved", n(shard.reserved_count))
                .expression_attribute_values(":available", n(shard.available_count));
            let update = if shard.index == 0 {
                with_sequence(update, level)
                    .expression_attribute_names("#at", "at")
                    .expression_attribute_values(":look_at", n(look.at))
                    .expression_attribute_values(":all_active", n(active_units))
            } else {
                update.expression_attribute_values(":shard_sequence", n(shard.sequence))
            };
            updates.push(update.build().expect("table, key and update expression are set"));
        }
        let repaired = if updates.len() == 1 {
            let update = updates.pop().expect("one update");
            self.write_main(update, level, true).await?
        } else {
            let items = updates.into_iter().map(|update| TransactWriteItem::builder().update(update).build()).collect();
            self.transact(items).await?.is_none()
        };
        if !repaired {
            return Ok(None);
        }
        self.read_whole(&level.product_id, &level.warehouse_id).await
    }
}

impl DynamoStore {
    /// Units the item's ACTIVE holds take from each of its shards: the holds from the `active-by-item`
    /// index, their allocations from their records (the index does not project them; reading them is
    /// for repairs of sharded items only, which are rare).
    async fn active_units_by_shard(
        &self,
        product: &ProductId,
        warehouse: &WarehouseId,
    ) -> Result<HashMap<u32, i64>, InventoryError> {
        use aws_sdk_dynamodb::types::KeysAndAttributes;
        let holds = self
            .client
            .query()
            .table_name(&self.config.reservations_table)
            .index_name(ACTIVE_BY_ITEM_INDEX)
            .key_condition_expression("active_item = :item")
            .expression_attribute_values(":item", s(&active_item(product, warehouse)));
        let keys: Vec<HashMap<String, AttributeValue>> = all_items(holds)
            .await?
            .iter()
            .filter_map(|hold| hold.get(attr::RESERVATION_ID).cloned())
            .map(|id| HashMap::from([(attr::RESERVATION_ID.to_owned(), id)]))
            .collect();
        let mut by_shard = HashMap::new();
        for chunk in keys.chunks(100) {
            let mut wanted = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(chunk.to_vec()))
                    .consistent_read(true)
                    .build()
                    .expect("keys are set"),
            );
            // Bounded: DynamoDB hands back what it could not read (throttling) to ask again.
            for _ in 0..8 {
                let Some(batch) = wanted.take() else { break };
                let output = self
                    .client
                    .batch_get_item()
                    .request_items(&self.config.reservations_table, batch)
                    .send()
                    .await
                    .map_err(InventoryError::from_sdk)?;
                for hold in
                    output.responses().and_then(|r| r.get(&self.config.reservations_table)).into_iter().flatten()
                {
                    // Only holds still ACTIVE: one that ended since the query gave its units back.
                    if hold.get(attr::STATE).and_then(|v| v.as_s().ok()).map(String::as_str) != Some("ACTIVE") {
                        continue;
                    }
                    let hold: Reservation = item_of(hold, "reservation")?;
                    for take in hold.takes() {
                        *by_shard.entry(take.shard).or_insert(0) += take.units;
                    }
                }
                wanted = output
                    .unprocessed_keys()
                    .and_then(|left| left.get(&self.config.reservations_table))
                    .filter(|left| !left.keys().is_empty())
                    .cloned();
            }
            if wanted.is_some() {
                return Err(InventoryError::Unavailable {
                    detail: "reading the holds' allocations was throttled".into(),
                });
            }
        }
        Ok(by_shard)
    }
}

/// The condition that the (main) item is still at the `sequence` it was read at; an item written
/// before `sequence` existed (read as 0) has none.
fn unchanged_since(level: &StockLevel) -> &'static str {
    if own_sequence(level) == 0 {
        "attribute_not_exists(#sequence)"
    } else {
        "#sequence = :sequence"
    }
}

/// The `:sequence` value `unchanged_since` compares with, where it compares with one (DynamoDB
/// refuses a value the expressions do not use).
fn with_sequence(
    update: aws_sdk_dynamodb::types::builders::UpdateBuilder,
    level: &StockLevel,
) -> aws_sdk_dynamodb::types::builders::UpdateBuilder {
    match own_sequence(level) {
        0 => update,
        sequence => update.expression_attribute_values(":sequence", n(sequence)),
    }
}

fn to_attribute<T: serde::Serialize>(value: &T) -> Result<AttributeValue, InventoryError> {
    serde_dynamo::to_attribute_value(value).map_err(|err| InventoryError::internal(format!("serialising: {err}")))
}

#[async_trait::async_trait]
impl AlertStore for DynamoStore {
    async fn stock_level(
        &self,
        product: &ProductId,
        warehouse: &WarehouseId,
    ) -> Result<Option<StockLevel>, InventoryError> {
        self.read_whole(product, warehouse).await
    }

    async fn record_alert_state(
        &self,
        level: &StockLevel,
        decision: &AlertDecision,
        pending_alert: Option<&str>,
    ) -> Result<bool, InventoryError> {
        let mut update = Update::builder()
            .table_name(&self.config.stock_table)
            .set_key(Some(Self::stock_key(&level.product_id, &level.warehouse_id)))
            .expression_attribute_names("#status", attr::STATUS)
            .expression_attribute_names("#damping", attr::DAMPING)
            .expression_attribute_values(":to", status_value(decision.status))
            .expression_attribute_values(":damping", to_attribute(&decision.damping)?);
        // Only from the figures as they are (a stale stream image must not announce a state the item
        // has left, even if the alert state came back to what the image shows), from the alert state
        // as read (a racing consumer or backstop decided first), and never over an alert claimed but
        // not yet confirmed: that one goes out first.
        //
        // A sharded item is read whole just before (a stream record of one shard is not its figures),
        // and its figures move with every hold on any shard: the alert state's own condition
        // serialises the claims, and the next record of any shard settles it again.
        let sharded = level.is_sharded();
        let mut condition = if sharded {
            "attribute_exists(product_id) AND attribute_not_exists(pending_alert)".to_owned()
        } else {
            format!(
                "attribute_exists(product_id) AND {} AND attribute_not_exists(pending_alert)",
                unchanged_since(level)
            )
        };
        update = match level.status {
            Some(recorded) => {
                condition.push_str(" AND #status = :recorded");
                update.expression_attribute_values(":recorded", status_value(recorded))
            }
            None => {
                condition.push_str(" AND attribute_not_exists(#status)");
                update
            }
        };
        update = match &level.damping {
            Some(kept) if kept.revision > 0 => {
                condition.push_str(" AND #damping.#revision = :revision");
                update
                    .expression_attribute_names("#revision", "revision")
                    .expression_attribute_values(":revision", n(kept.revision))
            }
            Some(_) => {
                condition.push_str(" AND attribute_exists(#damping) AND attribute_not_exists(#damping.#revision)");
                update.expression_attribute_names("#revision", "revision")
            }
            None => {
                condition.push_str(" AND attribute_not_exists(#damping)");
                update
            }
        };
        if !sharded {
            update = with_sequence(update.expression_attribute_names("#sequence", "sequence"), level);
        }
        update = match pending_alert {
            Some(json) => update
                .update_expression("SET #status = :to, #damping = :damping, pending_alert = :alert")
                .expression_attribute_values(":alert", s(json)),
            None => update.update_expression("SET #status = :to, #damping = :damping"),
        };
        let update = update.condition_expression(condition).build().expect("table, key and update expression are set");
        self.write_main(update, level, false).await
    }

    async fn finish_alert(&self, level: &StockLevel, pending_alert: &str) -> Result<(), InventoryError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.config.stock_table)
            .set_key(Some(Self::stock_key(&level.product_id, &level.warehouse_id)))
            .update_expression("REMOVE pending_alert")
            .condition_expression("pending_alert = :alert")
            .expression_attribute_values(":alert", s(pending_alert))
            .send()
            .await;
        // A failed condition: a racing delivery or the backstop finished it already.
        let _finished_or_already_finished = conditional_update(result)?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl ShardStore for DynamoStore {
    async fn move_units(
        &self,
        level: &StockLevel,
        plan: crate::sharding::Rebalance,
        now: EpochSeconds,
    ) -> Result<bool, InventoryError> {
        let reason = format!("{} units from shard {} to shard {}", plan.units, plan.from, plan.to);
        let change = change_record(ChangeKind::Rebalanced, crate::domain::REBALANCER_ACTOR, Some(&reason), None);
        // The shelf's version does not move: the item's total is the same, so an admin's view of it
        // stays current.
        let step = |shard: u32, units: i64, condition: &str| {
            Update::builder()
                .table_name(&self.config.stock_table)
                .set_key(Some(Self::shard_key(&level.product_id, &level.warehouse_id, shard)))
                .update_expression(
                    "SET stock_count = stock_count + :units, available_count = available_count + :units, \
                     #sequence = if_not_exists(#sequence, :zero) + :one, last_updated = :now, last_change = :change",
                )
                .condition_expression(condition)
                .expression_attribute_names("#sequence", "sequence")
                .expression_attribute_values(":units", n(units))
                .expression_attribute_values(":zero", n(0))
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":now", s(&crate::time::rfc3339(now)))
                .expression_attribute_values(":change", change.clone())
        };
        let give = step(plan.from, -plan.units, "available_count >= :taken")
            .expression_attribute_values(":taken", n(plan.units))
            .build()
            .expect("table, key and update expression are set");
        let take = step(plan.to, plan.units, "attribute_exists(product_id)")
            .build()
            .expect("table, key and update expression are set");
        let moved = self
            .transact(vec![
                TransactWriteItem::builder().update(give).build(),
                TransactWriteItem::builder().update(take).build(),
            ])
            .await?
            .is_none();
        if moved {
            tracing::info!(product_id = %level.product_id, warehouse_id = %level.warehouse_id, from = plan.from,
                           to = plan.to, units = plan.units, "units moved between shards");
            crate::metrics::count(
                crate::metrics::Metric::ShardRebalances,
                &[("product_id", level.product_id.as_str())],
            );
        }
        Ok(moved)
    }
}
