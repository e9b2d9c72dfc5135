//! The in-memory adapter: every store trait, with DynamoDB's conditional semantics — each write or
//! transaction checks all its conditions first and changes nothing when one fails, answering what
//! the DynamoDB adapter answers then. It also plays the two streams (every write of a stock item
//! is kept as a [`StockItemChanged`]; [`MemoryStore::reap_ttl`] deletes lapsed records as TTL
//! does and returns their [`HoldRecordRemoved`] events), so the use cases are tested end to end
//! in `cargo test` without AWS. It never replaces the integration tests against the real stack.
//! A sharded item (see `sharding`) is one counter here, its sum: the split is the DynamoDB adapter's.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use super::{
    AdminOutcome, AlertPublisher, AlertStore, DeletedHoldOutcome, DigestClaim, DigestLog, DigestPublisher, EndOutcome,
    ExpiryStore, HistoryStore, HoldStore, PlaceOutcome, ReconcileStore, SalesHistory, ShardStore, StockAdmin,
    StockPage, StockReader,
};
use crate::admin::{StockChange, StockUpdate};
use crate::alerts::{Alert, AlertDecision};
use crate::digest::Digest;
use crate::domain::{
    ChangeKind, CounterLook, LastChange, ProductId, StockLevel, WarehouseId, RECONCILER_ACTOR, TTL_ACTOR,
};
use crate::error::InventoryError;
use crate::events::{HoldRecordRemoved, StockItemChanged};
use crate::history::HistoryEntry;
use crate::holds::{CounterDelta, Reservation, ReservationId, ReservationState, Transition};
use crate::limits::{DEFAULT_THRESHOLD, ENDED_HOLD_RETENTION_SECONDS, MAX_HOLDS_PER_CART, MAX_STOCK};
use crate::requests::RequestRecord;
use crate::time::{rfc3339, EpochSeconds};

type ItemKey = (ProductId, WarehouseId);

/// A hold's record, with the TTL attribute the DynamoDB record carries.
#[derive(Debug, Clone)]
struct HoldRecord {
    hold: Reservation,
    purge_at: EpochSeconds,
}

/// A cart's counts (the DynamoDB adapter keeps them in the requests table).
#[derive(Debug, Clone, Default)]
struct Cart {
    holds: i64,
    units: HashMap<ProductId, i64>,
}

#[derive(Debug, Default)]
struct Tables {
    stock: BTreeMap<ItemKey, StockLevel>,
    holds: HashMap<ReservationId, HoldRecord>,
    requests: HashMap<String, RequestRecord>,
    carts: HashMap<String, Cart>,
    history: BTreeMap<(ProductId, String), HistoryEntry>,
    /// The daily digest's log (in the requests table on AWS): day → (run id, claimed at, sent).
    digests: HashMap<String, (String, EpochSeconds, bool)>,
    /// The stock table's stream, not yet taken.
    stock_stream: Vec<StockItemChanged>,
    stream_sequence: u64,
}

/// Every table of the service, in memory. Each call takes the lock once: a transaction is atomic.
#[derive(Debug, Default)]
pub struct MemoryStore {
    tables: Mutex<Tables>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Yields to the runtime first, so concurrent use cases interleave between their store calls
    /// as they do against DynamoDB, then takes the tables.
    async fn tables(&self) -> MutexGuard<'_, Tables> {
        tokio::task::yield_now().await;
        self.tables.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn now_tables(&self) -> MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The stock items written since the last call, in order, as the stock stream delivers them.
    pub fn take_stock_changes(&self) -> Vec<StockItemChanged> {
        std::mem::take(&mut self.now_tables().stock_stream)
    }

    /// What DynamoDB TTL does at `now`: deletes every hold record whose `purge_at` has passed and
    /// returns the removals as the reservations stream delivers them.
    pub fn reap_ttl(&self, now: EpochSeconds) -> Vec<HoldRecordRemoved> {
        let mut tables = self.now_tables();
        let due: Vec<ReservationId> =
            tables.holds.iter().filter(|(_, record)| record.purge_at <= now).map(|(id, _)| id.clone()).collect();
        due.into_iter()
            .filter_map(|id| tables.holds.remove(&id))
            .map(|record| HoldRecordRemoved { hold: record.hold, deleted_at: now })
            .collect()
    }

    /// The item as stored now (tests' view of the table).
    pub fn item(&self, product: &ProductId, warehouse: &WarehouseId) -> Option<StockLevel> {
        self.now_tables().stock.get(&(product.clone(), warehouse.clone())).cloned()
    }

    /// Every hold on record now (tests' view of the table).
    pub fn holds(&self) -> Vec<Reservation> {
        self.now_tables().holds.values().map(|record| record.hold.clone()).collect()
    }

    /// A cart's ACTIVE holds and its units of `product`, as its record counts them.
    pub fn cart_counts(&self, cart: &str, product: &ProductId) -> (i64, i64) {
        let tables = self.now_tables();
        tables.carts.get(cart).map_or((0, 0), |c| (c.holds, c.units.get(product).copied().unwrap_or(0)))
    }

    /// Sets an item's counters behind the service's back (as a bug or a lost stream record would):
    /// for the reconciler's tests. Bumps `sequence` like any write of the figures.
    pub fn corrupt_reserved(&self, product: &ProductId, warehouse: &WarehouseId, reserved: i64) {
        let mut tables = self.now_tables();
        let key = (product.clone(), warehouse.clone());
        if let Some(mut level) = tables.stock.get(&key).cloned() {
            level.reserved_count = reserved;
            level.available_count = level.stock_count - reserved;
            level.sequence += 1;
            tables.write_stock(level);
        }
    }
}

impl Tables {
    /// Writes a stock item and puts the change on the stock stream.
    fn write_stock(&mut self, new: StockLevel) {
        let key = (new.product_id.clone(), new.warehouse_id.clone());
        let old = self.stock.insert(key, new.clone());
        self.stream_sequence += 1;
        self.stock_stream.push(StockItemChanged {
            old,
            recorded_at: crate::time::now(),
            sequence: format!("{:020}", self.stream_sequence),
            new,
        });
    }

    /// The counters a hold transition moves, with the write's bookkeeping (as `counters_update`).
    fn move_counters(level: &StockLevel, delta: CounterDelta, change: LastChange, now: EpochSeconds) -> StockLevel {
        let mut level = level.clone();
        level.stock_count += delta.stock;
        level.reserved_count += delta.reserved;
        level.available_count += delta.available;
        if delta.stock != 0 {
            level.version += 1;
        }
        level.sequence += 1;
        level.last_updated = rfc3339(now);
        level.last_change = Some(change);
        level
    }

    fn cart_room(&self, hold: &Reservation, max_per_cart: i64) -> Result<(), PlaceOutcome> {
        let Some(cart) = hold.cart.as_ref().and_then(|cart| self.carts.get(cart.as_str())) else { return Ok(()) };
        if cart.holds >= MAX_HOLDS_PER_CART {
            return Err(PlaceOutcome::CartHoldsFull);
        }
        let in_cart = cart.units.get(&hold.product_id).copied().unwrap_or(0);
        if in_cart > max_per_cart - hold.quantity.units() {
            return Err(PlaceOutcome::CartUnitsFull { in_cart });
        }
        Ok(())
    }

    fn count_in_cart(&mut self, hold: &Reservation, sign: i64) {
        let Some(cart) = &hold.cart else { return };
        let cart = self.carts.entry(cart.as_str().to_owned()).or_default();
        cart.holds += sign;
        *cart.units.entry(hold.product_id.clone()).or_default() += sign * hold.quantity.units();
    }
}

fn change(kind: ChangeKind, actor: &str, reason: Option<String>, hold: Option<&ReservationId>) -> LastChange {
    LastChange { kind, actor: actor.to_owned(), reason, reservation_id: hold.map(ToString::to_string) }
}

fn key_of(hold: &Reservation) -> ItemKey {
    (hold.product_id.clone(), hold.warehouse_id.clone())
}

#[async_trait::async_trait]
impl StockReader for MemoryStore {
    async fn stock_levels(
        &self,
        product: &ProductId,
        warehouse: Option<&WarehouseId>,
    ) -> Result<Vec<StockLevel>, InventoryError> {
        let tables = self.tables().await;
        Ok(tables
            .stock
            .values()
            .filter(|l| &l.product_id == product && warehouse.is_none_or(|w| &l.warehouse_id == w))
            .cloned()
            .collect())
    }
}

#[async_trait::async_trait]
impl HoldStore for MemoryStore {
    async fn place_hold(
        &self,
        hold: &Reservation,
        max_per_cart: i64,
        request: Option<&RequestRecord>,
        actor: &str,
    ) -> Result<PlaceOutcome, InventoryError> {
        let mut tables = self.tables().await;
        // Every condition of the transaction, in the order the DynamoDB adapter reads the reasons.
        if let Some(earlier) = request.and_then(|r| tables.requests.get(&r.request_key)) {
            return Ok(PlaceOutcome::AlreadyRequested(Box::new(earlier.clone())));
        }
        if let Err(full) = tables.cart_room(hold, max_per_cart) {
            return Ok(full);
        }
        if tables.holds.contains_key(&hold.reservation_id) {
            return Err(InventoryError::internal(format!("reservation id {} collided", hold.reservation_id)));
        }
        let Some(level) = tables.stock.get(&key_of(hold)) else { return Ok(PlaceOutcome::NoStockItem) };
        if level.available_count < hold.quantity.units() {
            return Ok(PlaceOutcome::Insufficient { available: level.available_count });
        }
        let placed = change(ChangeKind::Hold, actor, None, Some(&hold.reservation_id));
        let level = Tables::move_counters(level, CounterDelta::place(hold.quantity.units()), placed, hold.created_at);
        tables.write_stock(level);
        tables.holds.insert(hold.reservation_id.clone(), HoldRecord { hold: hold.clone(), purge_at: hold.expires_at });
        tables.count_in_cart(hold, 1);
        if let Some(request) = request {
            tables.requests.insert(request.request_key.clone(), request.clone());
        }
        Ok(PlaceOutcome::Placed)
    }

    async fn reservation(&self, id: &ReservationId) -> Result<Option<Reservation>, InventoryError> {
        Ok(self.tables().await.holds.get(id).map(|record| record.hold.clone()))
    }

    async fn end_hold(
        &self,
        hold: &Reservation,
        transition: Transition,
        actor: &str,
        owner: Option<&str>,
        now: EpochSeconds,
    ) -> Result<EndOutcome, InventoryError> {
        let mut tables = self.tables().await;
        let current = tables.holds.get(&hold.reservation_id).map(|record| record.hold.clone());
        let still_holding = current.as_ref().is_some_and(|current| {
            current.state == ReservationState::Active
                && (transition != Transition::Commit || current.expires_at > now)
                && owner.is_none_or(|owner| current.owner.as_deref().is_none_or(|bound| bound == owner))
        });
        if !still_holding {
            return Ok(EndOutcome::NotActive(current));
        }
        let Some(level) = tables.stock.get(&key_of(hold)) else {
            return Err(InventoryError::internal(format!(
                "hold {} refers to a missing stock item",
                hold.reservation_id
            )));
        };
        if transition == Transition::Commit && level.stock_count < hold.quantity.units() {
            return Ok(EndOutcome::StockShort { stock_count: level.stock_count });
        }
        let ended_change = change(transition.change_kind(), actor, None, Some(&hold.reservation_id));
        let level = Tables::move_counters(level, transition.counters(hold.quantity.units()), ended_change, now);
        tables.write_stock(level);
        let mut ended = hold.clone();
        ended.state = transition.target();
        ended.ended_at = Some(now);
        ended.ended_by = Some(actor.to_owned());
        ended.owner = owner.map(str::to_owned).or(ended.owner);
        tables.holds.insert(
            hold.reservation_id.clone(),
            HoldRecord { hold: ended.clone(), purge_at: now + ENDED_HOLD_RETENTION_SECONDS },
        );
        tables.count_in_cart(hold, -1);
        Ok(EndOutcome::Ended(ended))
    }
}

#[async_trait::async_trait]
impl ExpiryStore for MemoryStore {
    async fn expire_deleted_hold(
        &self,
        hold: &Reservation,
        deleted_at: EpochSeconds,
        now: EpochSeconds,
    ) -> Result<DeletedHoldOutcome, InventoryError> {
        let mut tables = self.tables().await;
        if tables.holds.contains_key(&hold.reservation_id) {
            return Ok(DeletedHoldOutcome::AlreadyReleased);
        }
        let Some(level) = tables.stock.get(&key_of(hold)).cloned() else {
            return Err(InventoryError::internal(format!(
                "expired hold {} refers to a missing stock item",
                hold.reservation_id
            )));
        };
        let mut expired = hold.clone();
        expired.state = ReservationState::Expired;
        expired.ended_at = Some(now);
        expired.ended_by = Some(TTL_ACTOR.to_owned());
        tables.holds.insert(
            hold.reservation_id.clone(),
            HoldRecord { hold: expired, purge_at: now + ENDED_HOLD_RETENTION_SECONDS },
        );
        tables.count_in_cart(hold, -1);
        if level.reconciled_through.is_some_and(|through| through >= deleted_at) {
            return Ok(DeletedHoldOutcome::AccountedByReconciler);
        }
        let expired_change = change(ChangeKind::Expired, TTL_ACTOR, None, Some(&hold.reservation_id));
        tables.write_stock(Tables::move_counters(
            &level,
            Transition::Expire.counters(hold.quantity.units()),
            expired_change,
            now,
        ));
        Ok(DeletedHoldOutcome::Released)
    }

    async fn lapsed_holds(&self, now: EpochSeconds, limit: usize) -> Result<Vec<ReservationId>, InventoryError> {
        let tables = self.tables().await;
        let mut due: Vec<&Reservation> = tables
            .holds
            .values()
            .map(|record| &record.hold)
            .filter(|hold| hold.state == ReservationState::Active && hold.expires_at <= now)
            .collect();
        due.sort_by_key(|hold| hold.expires_at);
        Ok(due.into_iter().take(limit).map(|hold| hold.reservation_id.clone()).collect())
    }
}

#[async_trait::async_trait]
impl AlertStore for MemoryStore {
    async fn stock_level(
        &self,
        product: &ProductId,
        warehouse: &WarehouseId,
    ) -> Result<Option<StockLevel>, InventoryError> {
        Ok(self.tables().await.stock.get(&(product.clone(), warehouse.clone())).cloned())
    }

    async fn record_alert_state(
        &self,
        level: &StockLevel,
        decision: &AlertDecision,
        pending_alert: Option<&str>,
    ) -> Result<bool, InventoryError> {
        let mut tables = self.tables().await;
        let Some(current) = tables.stock.get(&(level.product_id.clone(), level.warehouse_id.clone())) else {
            return Ok(false);
        };
        if current.sequence != level.sequence
            || current.status != level.status
            || current.damping.map(|d| d.revision) != level.damping.map(|d| d.revision)
            || current.pending_alert.is_some()
        {
            return Ok(false);
        }
        let mut claimed = current.clone();
        claimed.status = Some(decision.status);
        claimed.damping = Some(decision.damping);
        if let Some(json) = pending_alert {
            claimed.pending_alert = Some(json.to_owned());
        }
        tables.write_stock(claimed);
        Ok(true)
    }

    async fn finish_alert(&self, level: &StockLevel, pending_alert: &str) -> Result<(), InventoryError> {
        let mut tables = self.tables().await;
        let key = (level.product_id.clone(), level.warehouse_id.clone());
        if let Some(current) =
            tables.stock.get(&key).filter(|item| item.pending_alert.as_deref() == Some(pending_alert))
        {
            let mut finished = current.clone();
            finished.pending_alert = None;
            tables.write_stock(finished);
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl StockAdmin for MemoryStore {
    async fn update_stock(
        &self,
        product: &ProductId,
        update: &StockUpdate,
        request: &RequestRecord,
        actor: &str,
        now: EpochSeconds,
    ) -> Result<AdminOutcome, InventoryError> {
        let mut tables = self.tables().await;
        let key = (product.clone(), update.warehouse_id.clone());
        let current = tables.stock.get(&key).cloned();
        if let Some(earlier) = tables.requests.get(&request.request_key) {
            return Ok(AdminOutcome::Replayed { same_request: earlier.fingerprint == request.fingerprint, current });
        }
        let stock = current.as_ref().map(|c| c.stock_count);
        let allowed = match update.change {
            Some(StockChange::Adjust(delta)) if delta < 0 => stock.is_some_and(|s| s >= -delta),
            Some(StockChange::Adjust(delta)) => stock.is_none_or(|s| s <= MAX_STOCK - delta),
            _ => true,
        } && match update.expected_version {
            Some(0) => current.is_none(),
            Some(expected) => current.as_ref().is_some_and(|c| c.version == expected),
            None => true,
        };
        if !allowed {
            return Ok(AdminOutcome::Refused(current));
        }
        let mut level = current.unwrap_or_else(|| StockLevel {
            product_id: product.clone(),
            warehouse_id: update.warehouse_id.clone(),
            stock_count: 0,
            reserved_count: 0,
            available_count: 0,
            threshold_level: DEFAULT_THRESHOLD,
            max_per_cart: None,
            status: None,
            version: 0,
            sequence: 0,
            last_updated: String::new(),
            pending_alert: None,
            last_change: None,
            reconcile_look: None,
            reconciled_through: None,
            damping: None,
            sharding: None,
            shard: None,
            shard_figures: Vec::new(),
        });
        match update.change {
            Some(StockChange::Set(count)) => {
                level.stock_count = count;
                level.available_count = count - level.reserved_count;
            }
            Some(StockChange::Adjust(delta)) => {
                level.stock_count += delta;
                level.available_count += delta;
            }
            None => {}
        }
        if let Some(threshold) = update.threshold_level {
            level.threshold_level = threshold;
        }
        if let Some(most) = update.max_per_cart {
            level.max_per_cart = Some(most);
        }
        if let Some(count) = update.shards {
            level.sharding = Some(crate::sharding::relayout(level.sharding, count));
        }
        level.version += 1;
        level.sequence += 1;
        level.last_updated = rfc3339(now);
        level.last_change = Some(change(update.kind(), actor, update.reason.clone(), None));
        tables.write_stock(level.clone());
        tables.requests.insert(request.request_key.clone(), request.clone());
        Ok(AdminOutcome::Updated(level))
    }

    async fn scan_stock(
        &self,
        after: Option<&(ProductId, WarehouseId)>,
        limit: usize,
    ) -> Result<StockPage, InventoryError> {
        let tables = self.tables().await;
        let items: Vec<StockLevel> = tables
            .stock
            .iter()
            .filter(|(key, _)| after.is_none_or(|after| *key > after))
            .take(limit)
            .map(|(_, level)| level.clone())
            .collect();
        // As DynamoDB: a full page has a last key, even when nothing follows it.
        let last_key = (items.len() == limit)
            .then(|| items.last().map(|l| (l.product_id.clone(), l.warehouse_id.clone())))
            .flatten();
        Ok(StockPage { items, last_key })
    }
}

#[async_trait::async_trait]
impl ReconcileStore for MemoryStore {
    async fn active_units(&self, product: &ProductId, warehouse: &WarehouseId) -> Result<i64, InventoryError> {
        let tables = self.tables().await;
        Ok(tables
            .holds
            .values()
            .map(|record| &record.hold)
            .filter(|hold| {
                hold.state == ReservationState::Active && &hold.product_id == product && &hold.warehouse_id == warehouse
            })
            .map(|hold| hold.quantity.units())
            .sum())
    }

    async fn keep_look(&self, level: &StockLevel, look: Option<CounterLook>) -> Result<bool, InventoryError> {
        let mut tables = self.tables().await;
        let key = (level.product_id.clone(), level.warehouse_id.clone());
        let Some(current) = tables.stock.get(&key).filter(|c| c.sequence == level.sequence) else { return Ok(false) };
        // Not a write of the figures: the stream sees it, but `sequence` stays.
        let mut kept = current.clone();
        kept.reconcile_look = look;
        tables.write_stock(kept);
        Ok(true)
    }

    async fn repair_counters(
        &self,
        level: &StockLevel,
        look: CounterLook,
        active_units: i64,
        now: EpochSeconds,
    ) -> Result<Option<StockLevel>, InventoryError> {
        let mut tables = self.tables().await;
        let key = (level.product_id.clone(), level.warehouse_id.clone());
        let Some(current) = tables.stock.get(&key) else { return Ok(None) };
        let unchanged = current.sequence == level.sequence
            && current.reconcile_look.is_some_and(|kept| kept.at == look.at && kept.active_units == active_units)
            && current.reconciled_through.is_none_or(|through| through <= look.at)
            && (current.stock_count, current.reserved_count, current.available_count)
                == (level.stock_count, level.reserved_count, level.available_count);
        if !unchanged {
            return Ok(None);
        }
        let reason = format!(
            "reserved_count was {} (available {}); the ACTIVE holds on record take {active_units}",
            level.reserved_count, level.available_count
        );
        let mut repaired = current.clone();
        repaired.reserved_count = active_units;
        repaired.available_count = repaired.stock_count - active_units;
        repaired.sequence += 1;
        repaired.last_updated = rfc3339(now);
        repaired.last_change = Some(change(ChangeKind::Reconciled, RECONCILER_ACTOR, Some(reason), None));
        repaired.reconciled_through = Some(look.at);
        repaired.reconcile_look = None;
        tables.write_stock(repaired.clone());
        Ok(Some(repaired))
    }
}

#[async_trait::async_trait]
impl HistoryStore for MemoryStore {
    async fn record_entry(&self, entry: &HistoryEntry) -> Result<(), InventoryError> {
        let mut tables = self.tables().await;
        tables.history.insert((entry.product_id.clone(), entry.entry_id.clone()), entry.clone());
        Ok(())
    }

    async fn entries(
        &self,
        product: &ProductId,
        before: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<HistoryEntry>, Option<String>), InventoryError> {
        let tables = self.tables().await;
        let entries: Vec<HistoryEntry> = tables
            .history
            .iter()
            .rev()
            .filter(|((p, id), _)| p == product && before.is_none_or(|before| id.as_str() < before))
            .take(limit)
            .map(|(_, entry)| entry.clone())
            .collect();
        let last = (entries.len() == limit).then(|| entries.last().map(|e| e.entry_id.clone())).flatten();
        Ok((entries, last))
    }
}

#[async_trait::async_trait]
impl SalesHistory for MemoryStore {
    async fn units_sold_since(
        &self,
        product: &ProductId,
        since: EpochSeconds,
    ) -> Result<BTreeMap<WarehouseId, i64>, InventoryError> {
        let tables = self.tables().await;
        let since = rfc3339(since);
        let mut sold = BTreeMap::new();
        // As the Query: the product's entries with an id from `since` on (ids start with the time).
        for (_, entry) in tables.history.range((product.clone(), since)..) {
            if &entry.product_id != product {
                break;
            }
            if entry.change.kind == ChangeKind::Committed {
                let units = entry.before.map_or(0, |before| before.stock_count - entry.after.stock_count);
                *sold.entry(entry.warehouse_id.clone()).or_insert(0) += units.max(0);
            }
        }
        Ok(sold)
    }
}

#[async_trait::async_trait]
impl DigestLog for MemoryStore {
    async fn claim_digest(
        &self,
        day: &str,
        run_id: &str,
        now: EpochSeconds,
        stale_before: EpochSeconds,
    ) -> Result<DigestClaim, InventoryError> {
        let mut tables = self.tables().await;
        match tables.digests.get(day) {
            Some((_, _, true)) => return Ok(DigestClaim::Done),
            Some((_, claimed_at, false)) if *claimed_at >= stale_before => return Ok(DigestClaim::InFlight),
            _ => {}
        }
        tables.digests.insert(day.to_owned(), (run_id.to_owned(), now, false));
        Ok(DigestClaim::Claimed)
    }

    async fn confirm_digest(
        &self,
        day: &str,
        run_id: &str,
        _items: usize,
        _now: EpochSeconds,
    ) -> Result<(), InventoryError> {
        let mut tables = self.tables().await;
        if let Some(mark) = tables.digests.get_mut(day).filter(|(run, _, _)| run == run_id) {
            mark.2 = true;
        }
        Ok(())
    }

    async fn release_digest(&self, day: &str, run_id: &str) -> Result<(), InventoryError> {
        let mut tables = self.tables().await;
        if tables.digests.get(day).is_some_and(|(run, _, sent)| run == run_id && !sent) {
            tables.digests.remove(day);
        }
        Ok(())
    }
}

impl MemoryStore {
    /// A run that died holding the day's digest claim, made at `claimed_at` (for the digest's tests).
    pub fn leave_digest_claimed(&self, day: &str, claimed_at: EpochSeconds) {
        self.now_tables().digests.insert(day.to_owned(), ("a run that died".to_owned(), claimed_at, false));
    }
}

/// An alerts publisher that keeps what it was given, and can be made to fail the next publishes
/// (as SNS does when it throttles or is down).
#[derive(Debug, Default)]
pub struct MemoryPublisher {
    sent: Mutex<Vec<Alert>>,
    digests: Mutex<Vec<Digest>>,
    failures_left: AtomicUsize,
}

impl MemoryPublisher {
    pub fn new() -> Self {
        Self::default()
    }

    /// The alerts published so far, in order.
    pub fn sent(&self) -> Vec<Alert> {
        self.sent.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// The next `count` publishes fail.
    pub fn fail_next(&self, count: usize) {
        self.failures_left.store(count, Ordering::SeqCst);
    }
}

#[async_trait::async_trait]
impl AlertPublisher for MemoryPublisher {
    async fn publish(&self, alert: &Alert) -> Result<(), InventoryError> {
        tokio::task::yield_now().await;
        let failing = self.failures_left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
        if failing {
            return Err(InventoryError::Unavailable { detail: "SNS Publish failed (test double)".into() });
        }
        self.sent.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(alert.clone());
        Ok(())
    }
}

impl MemoryPublisher {
    /// The digests published so far, in order.
    pub fn digests(&self) -> Vec<Digest> {
        self.digests.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }
}

#[async_trait::async_trait]
impl DigestPublisher for MemoryPublisher {
    async fn publish_digest(&self, digest: &Digest) -> Result<(), InventoryError> {
        tokio::task::yield_now().await;
        let failing = self.failures_left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
        if failing {
            return Err(InventoryError::Unavailable { detail: "SNS Publish failed (test double)".into() });
        }
        self.digests.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(digest.clone());
        Ok(())
    }
}

/// A sharded item is kept here as one counter, its sum (what everything above the store sees): the
/// split over shards is the DynamoDB adapter's, tested against DynamoDB. Nothing to move.
#[async_trait::async_trait]
impl ShardStore for MemoryStore {
    async fn move_units(
        &self,
        _level: &StockLevel,
        _plan: crate::sharding::Rebalance,
        _now: EpochSeconds,
    ) -> Result<bool, InventoryError> {
        Ok(false)
    }
}
