//! The DynamoDB adapter: the stock, reservations and requests tables. Every state change is one
//! conditional write or one transaction; a failed condition comes back as an outcome (with the item
//! as it was, ReturnValuesOnConditionCheckFailure = ALL_OLD), never as a half-done change.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, Put, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
    Update,
};
use aws_sdk_dynamodb::Client;

use super::{
    AdminOutcome, AlertStore, DeletedHoldOutcome, EndOutcome, ExpiryStore, HoldStore, PlaceOutcome, ReconcileStore,
    StockAdmin, StockPage, StockReader,
};
use crate::admin::{StockChange, StockUpdate};
use crate::alerts::AlertDecision;
use crate::config::Config;
use crate::domain::{
    ChangeKind, CounterLook, ProductId, StockLevel, StockStatus, WarehouseId, RECONCILER_ACTOR, TTL_ACTOR,
};
use crate::error::InventoryError;
use crate::holds::{CounterDelta, Quantity, Reservation, ReservationId, ReservationState, Transition};
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

/// What must hold on the stock item for a hold's counters to move.
#[derive(Debug, Clone, Copy)]
enum CounterGuard {
    /// The item exists (releasing units back).
    ItemExists,
    /// Enough units for sale (placing a hold).
    AvailableAtLeast(Quantity),
    /// Enough units on the shelf (checkout; an admin may have counted fewer since the hold).
    StockAtLeast(Quantity),
    /// The item exists and no reconciler repair has counted a hold deleted at this time already.
    NotReconciledSince(EpochSeconds),
}

/// The DynamoDB tables of the service.
#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    config: Config,
}

impl DynamoStore {
    pub fn new(client: Client, config: Config) -> Self {
        Self { client, config }
    }

    fn stock_key(product: &ProductId, warehouse: &WarehouseId) -> HashMap<String, AttributeValue> {
        HashMap::from([
            (attr::PRODUCT_ID.to_owned(), s(product.as_str())),
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

    /// The counters update every hold transition makes on the stock item, under `guard`.
    fn counters_update(
        &self,
        hold: &Reservation,
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
            .set_key(Some(Self::stock_key(&hold.product_id, &hold.warehouse_id)))
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
            (Some(q), _) => update.expression_attribute_values(":quantity", n(q.units())),
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
    async fn stock_levels(
        &self,
        product: &ProductId,
        warehouse: Option<&WarehouseId>,
    ) -> Result<Vec<StockLevel>, InventoryError> {
        if let Some(warehouse) = warehouse {
            // One item: a strongly consistent GetItem (what a conditional write will see).
            let key = Self::stock_key(product, warehouse);
            let level = self.get_consistent(&self.config.stock_table, key, "stock").await?;
            return Ok(level.into_iter().collect());
        }
        let items = self
            .client
            .query()
            .table_name(&self.config.stock_table)
            .key_condition_expression(format!("{} = :product", attr::PRODUCT_ID))
            .expression_attribute_values(":product", s(product.as_str()))
            // GET must show what a reserve would see: never a stale replica.
            .consistent_read(true);
        let items = all_items(items).await?;
        serde_dynamo::from_items(items).map_err(|err| InventoryError::internal(format!("malformed stock item: {err}")))
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
        // No read first: the condition is the check. available_count moves in the same expression
        // as reserved_count, so "enough for sale" and "take it" are one atomic step.
        let take_units = self.counters_update(
            hold,
            CounterDelta::place(hold.quantity),
            CounterGuard::AvailableAtLeast(hold.quantity),
            change_record(ChangeKind::Hold, actor, None, Some(&hold.reservation_id)),
            hold.created_at,
        );

        let mut record: HashMap<String, AttributeValue> = serde_dynamo::to_item(hold)
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
        let mut items = vec![
            TransactWriteItem::builder().update(take_units).build(),
            TransactWriteItem::builder().put(create_hold).build(),
            TransactWriteItem::builder().update(count_in_cart).build(),
        ];
        if let Some(request) = request {
            items.push(TransactWriteItem::builder().put(self.record_request(request)?).build());
        }
        let Some(reasons) = self.transact(items).await? else {
            return Ok(PlaceOutcome::Placed);
        };
        // A recorded request wins over everything else: a retry must see its own hold.
        if let Some(earlier) = old_item(reasons.get(3)) {
            return Ok(PlaceOutcome::AlreadyRequested(Box::new(item_of(earlier, "request")?)));
        }
        if reasons.get(2).and_then(|r| r.code()) == Some("ConditionalCheckFailed") {
            let cart = old_item(reasons.get(2));
            let holds = cart.map_or(0, |cart| number(cart, "holds"));
            return Ok(if holds >= MAX_HOLDS_PER_CART {
                PlaceOutcome::CartHoldsFull
            } else {
                PlaceOutcome::CartUnitsFull { in_cart: cart.map_or(0, |cart| number(cart, &units_in_cart(hold))) }
            });
        }
        if reasons.get(1).and_then(|r| r.code()) == Some("ConditionalCheckFailed") {
            return Err(InventoryError::internal(format!("reservation id {} collided", hold.reservation_id)));
        }
        Ok(match old_item(reasons.first()) {
            Some(stock) => PlaceOutcome::Insufficient { available: number(stock, attr::AVAILABLE_COUNT) },
            None => PlaceOutcome::NoStockItem,
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
        let (still_holding, guard) = match transition {
            // A checkout after expiry is refused even before TTL or the sweeper act, and sells only
            // units that are on the shelf.
            Transition::Commit => ("#state = :active AND expires_at > :now", CounterGuard::StockAtLeast(hold.quantity)),
            Transition::Release | Transition::Expire => ("#state = :active", CounterGuard::ItemExists),
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
        let move_counters = self.counters_update(
            hold,
            transition.counters(hold.quantity),
            guard,
            change_record(transition.change_kind(), actor, None, Some(&hold.reservation_id)),
            now,
        );
        let mut items = vec![
            TransactWriteItem::builder().update(leave_active).build(),
            TransactWriteItem::builder().update(move_counters).build(),
        ];
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
        match old_item(reasons.get(1)) {
            Some(stock) => Ok(EndOutcome::StockShort { stock_count: number(stock, attr::STOCK_COUNT) }),
            None => Err(InventoryError::internal(format!(
                "hold {} refers to a missing stock item {}/{}",
                hold.reservation_id, hold.product_id, hold.warehouse_id
            ))),
        }
    }
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
        let mut threshold = match update.threshold_level {
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
            threshold.push_str(", max_per_cart = :max_per_cart");
        }
        match update.expected_version {
            // Version 0 is "no such item yet": an admin adding an item must not overwrite one.
            Some(0) => conditions.push("attribute_not_exists(product_id)"),
            Some(expected) => {
                values.insert(":expected".to_owned(), n(expected));
                conditions.push("version = :expected");
            }
            None => {}
        }
        let expression = format!(
            "SET {counters}, reserved_count = if_not_exists(reserved_count, :zero), {threshold}, \
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

    async fn scan_stock(
        &self,
        after: Option<&(ProductId, WarehouseId)>,
        limit: usize,
    ) -> Result<StockPage, InventoryError> {
        let output = self
            .client
            .scan()
            .table_name(&self.config.stock_table)
            .set_exclusive_start_key(after.map(|(product, warehouse)| Self::stock_key(product, warehouse)))
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .consistent_read(true)
            .send()
            .await
            .map_err(InventoryError::from_sdk)?;
        // One malformed item must not stop the admin list or the backstop: skip it, loudly.
        let mut items = Vec::with_capacity(output.items().len());
        for item in output.items() {
            match serde_dynamo::from_item::<_, StockLevel>(item.clone()) {
                Ok(level) => items.push(level),
                Err(err) => tracing::error!(key = ?(item.get(attr::PRODUCT_ID), item.get(attr::WAREHOUSE_ID)),
                                            error = %err, "skipping a malformed stock item"),
            }
        }
        let last_key = match output.last_evaluated_key() {
            Some(key) => Some((
                ProductId::parse(key.get(attr::PRODUCT_ID).and_then(|v| v.as_s().ok()).map_or("", String::as_str))?,
                WarehouseId::parse(key.get(attr::WAREHOUSE_ID).and_then(|v| v.as_s().ok()).map_or("", String::as_str))?,
            )),
            None => None,
        };
        Ok(StockPage { items, last_key })
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
        let release = self.counters_update(
            hold,
            Transition::Expire.counters(hold.quantity),
            CounterGuard::NotReconciledSince(deleted_at),
            change_record(ChangeKind::Expired, TTL_ACTOR, None, Some(&hold.reservation_id)),
            now,
        );
        let free_cart = self.cart_update(hold, CartChange::Remove, now);
        let cart_item = || free_cart.clone().map(|update| TransactWriteItem::builder().update(update).build());
        let mut items = vec![
            TransactWriteItem::builder().put(restore.clone()).build(),
            TransactWriteItem::builder().update(release).build(),
        ];
        items.extend(cart_item());
        let Some(reasons) = self.transact(items).await? else { return Ok(DeletedHoldOutcome::Released) };
        if reasons.first().and_then(|r| r.code()) == Some("ConditionalCheckFailed") {
            return Ok(DeletedHoldOutcome::AlreadyReleased);
        }
        if old_item(reasons.get(1)).is_none() {
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
        let update = self
            .client
            .update_item()
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
        Ok(conditional_update(update.send().await)?.is_ok())
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
        let result = self
            .client
            .update_item()
            .table_name(&self.config.stock_table)
            .set_key(Some(Self::stock_key(&level.product_id, &level.warehouse_id)))
            .update_expression(
                "SET reserved_count = :active, available_count = stock_count - :active, \
                 #sequence = if_not_exists(#sequence, :zero) + :one, last_updated = :now, last_change = :change, \
                 reconciled_through = :look_at REMOVE reconcile_look",
            )
            .condition_expression(format!(
                "{} AND reconcile_look.#at = :look_at AND reconcile_look.active_units = :active \
                 AND (attribute_not_exists(reconciled_through) OR reconciled_through <= :look_at) \
                 AND stock_count = :stock AND reserved_count = :reserved AND available_count = :available",
                unchanged_since(level)
            ))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_names("#sequence", "sequence")
            .expression_attribute_names("#at", "at")
            .expression_attribute_values(":active", n(active_units))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":now", s(&crate::time::rfc3339(now)))
            .expression_attribute_values(
                ":change",
                change_record(ChangeKind::Reconciled, RECONCILER_ACTOR, Some(&reason), None),
            )
            // Holds deleted by TTL before the first look are not in the sum: their units are
            // accounted for by this repair, and a late stream record must not return them again.
            .expression_attribute_values(":look_at", n(look.at))
            .expression_attribute_values(":stock", n(level.stock_count))
            .expression_attribute_values(":reserved", n(level.reserved_count))
            .expression_attribute_values(":available", n(level.available_count))
            .return_values(ReturnValue::AllNew);
        let result = with_sequence(result, level).send().await;
        match conditional_update(result)? {
            Ok(output) => Ok(Some(item_of(
                output.attributes().ok_or_else(|| InventoryError::internal("UpdateItem returned no attributes"))?,
                "stock",
            )?)),
            Err(_) => Ok(None),
        }
    }
}

/// The condition that the item is still at the `sequence` it was read at; an item written before
/// `sequence` existed (read as 0) has none.
fn unchanged_since(level: &StockLevel) -> &'static str {
    if level.sequence == 0 {
        "attribute_not_exists(#sequence)"
    } else {
        "#sequence = :sequence"
    }
}

/// The `:sequence` value `unchanged_since` compares with, where it compares with one (DynamoDB
/// refuses a value the expressions do not use).
fn with_sequence(
    update: aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder,
    level: &StockLevel,
) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
    if level.sequence == 0 {
        update
    } else {
        update.expression_attribute_values(":sequence", n(level.sequence))
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
        self.get_consistent(&self.config.stock_table, Self::stock_key(product, warehouse), "stock").await
    }

    async fn record_alert_state(
        &self,
        level: &StockLevel,
        decision: &AlertDecision,
        pending_alert: Option<&str>,
    ) -> Result<bool, InventoryError> {
        let mut update = self
            .client
            .update_item()
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
        let mut condition = format!(
            "attribute_exists(product_id) AND {} AND attribute_not_exists(pending_alert)",
            unchanged_since(level)
        );
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
        update = with_sequence(update.expression_attribute_names("#sequence", "sequence"), level);
        update = match pending_alert {
            Some(json) => update
                .update_expression("SET #status = :to, #damping = :damping, pending_alert = :alert")
                .expression_attribute_values(":alert", s(json)),
            None => update.update_expression("SET #status = :to, #damping = :damping"),
        };
        Ok(conditional_update(update.condition_expression(condition).send().await)?.is_ok())
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
