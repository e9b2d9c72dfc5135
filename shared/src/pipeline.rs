//! The event-driven side: what the stream consumers and the scheduled backstop do. Every step is
//! conditional, so duplicate deliveries, retries and a backstop racing the consumers change nothing
//! twice.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use serde::Serialize;
use uuid::Uuid;

use crate::alerts::{crossing, decide, Alert, AlertDecision, AlertPolicy, AlertType, Cause};
use crate::domain::{ChangeKind, BACKSTOP_ACTOR};
use crate::domain::{StockLevel, StockStatus};
use crate::error::InventoryError;
use crate::events::{HoldRecordRemoved, StockItemChanged};
use crate::history::entry_for_change;
use crate::holds::{Reservation, ReservationId, ReservationState, Transition};
use crate::metrics::{self, Metric};
use crate::reconcile::{self, Verdict};
use crate::store::{
    AlertPublisher, AlertStore, DeletedHoldOutcome, EndOutcome, ExpiryStore, HistoryStore, HoldStore, ReconcileStore,
    ShardStore, StockAdmin,
};
use crate::time::{rfc3339, EpochSeconds};

/// What one stock-stream record came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StockRecordOutcome {
    /// The write did not move the counters or the threshold (e.g. our own status write).
    Ignored,
    /// The alerts published, in order (usually none or one).
    Settled(Vec<AlertType>),
}

/// Stock stream: a change of the counters or threshold may be a crossing worth an alert. A record
/// of a sharded item holds one shard's figures: the item is read whole and settled from that (with
/// what the record says changed it), and the rebalancer looks whether a shard runs low.
pub async fn on_stock_change(
    store: &(impl AlertStore + ShardStore),
    publisher: &impl AlertPublisher,
    policy: AlertPolicy,
    change: &StockItemChanged,
    now: EpochSeconds,
) -> Result<StockRecordOutcome, InventoryError> {
    let figures = |level: &StockLevel| (level.available_count, level.threshold_level);
    if change.old.as_ref().map(figures) == Some(figures(&change.new)) {
        return Ok(StockRecordOutcome::Ignored);
    }
    if !change.new.is_sharded() {
        return settle_alert(store, publisher, policy, change.new.clone(), now).await.map(StockRecordOutcome::Settled);
    }
    let Some(mut whole) = store.stock_level(&change.new.product_id, &change.new.warehouse_id).await? else {
        return Ok(StockRecordOutcome::Ignored);
    };
    whole.last_change = change.new.last_change.clone();
    // Best effort: a move that keeps losing to holds is tried again on the item's next record, and
    // must not hold back its alerts or fail the record.
    if let Err(err) = rebalance(store, &whole, now).await {
        tracing::warn!(product_id = %whole.product_id, warehouse_id = %whole.warehouse_id, error = %err,
                       "rebalancing the shards failed; the next change tries again");
    }
    settle_alert(store, publisher, policy, whole, now).await.map(StockRecordOutcome::Settled)
}

/// The rebalancer: moves units from the richest shard of a sharded item (read whole) to one that
/// runs low, or off a shard above the count, when `sharding::plan_rebalance` says so. A move that
/// loses to a hold changes nothing; the next record looks again.
pub async fn rebalance(store: &impl ShardStore, whole: &StockLevel, now: EpochSeconds) -> Result<bool, InventoryError> {
    match crate::sharding::plan_rebalance(&crate::sharding::figures_of(whole), whole.shard_count()) {
        Some(plan) => store.move_units(whole, plan, now).await,
        None => Ok(false),
    }
}

/// Stock stream → the audit trail: one entry per change of an item's figures, with who and why
/// from the item's `last_change`. Returns whether the record made an entry.
pub async fn on_history_change(
    store: &impl HistoryStore,
    change: &StockItemChanged,
    retention_seconds: i64,
) -> Result<bool, InventoryError> {
    let Some(entry) =
        entry_for_change(change.old.as_ref(), &change.new, &change.sequence, change.recorded_at, retention_seconds)
    else {
        return Ok(false);
    };
    store.record_entry(&entry).await?;
    tracing::info!(product_id = %entry.product_id, warehouse_id = %entry.warehouse_id, kind = entry.change.kind.as_str(),
                   actor = entry.change.actor, entry_id = entry.entry_id, "history entry recorded");
    metrics::count(
        Metric::HistoryEntries,
        &[("product_id", entry.product_id.as_str()), ("kind", entry.change.kind.as_str())],
    );
    Ok(true)
}

/// Brings the item's alert state in line with its counters (`alerts::decide`): records a crossing
/// and publishes its alert exactly once, or holds it for the quiet period, and publishes an alert
/// that was claimed earlier but never confirmed — before anything new is claimed, so a claim never
/// overwrites an unsent alert (a LOW_STOCK whose publish kept failing still goes out, before the
/// OUT_OF_STOCK that followed it). `level` may be stale (a stream image): when the claim loses to a
/// newer state, the item is read afresh and settled from that. Returns the alerts published.
pub async fn settle_alert(
    store: &impl AlertStore,
    publisher: &impl AlertPublisher,
    policy: AlertPolicy,
    mut level: StockLevel,
    now: EpochSeconds,
) -> Result<Vec<AlertType>, InventoryError> {
    const CLAIMS: usize = 3;
    let mut sent = Vec::new();
    let mut claims = 0;
    // The record's own change, if it changed the shelf: still news when a reread finds holds came
    // after it (a write-down's crossing is not held because a hold followed), unless the alert state
    // has judged that shelf change already (a repeated or overtaken record).
    let shelf_change = (Cause::of(&level) == Cause::Shelf)
        .then(|| level.last_change.as_ref().map(|change| (level.version, change.kind)))
        .flatten();
    // Bounded: each pass publishes and confirms a pending alert, or claims, or loses a claim.
    for _ in 0..2 * CLAIMS {
        if level.pending_alert.is_some() {
            let (published, current) = publish_pending(store, publisher, &level).await?;
            sent.extend(published);
            let Some(current) = current else { return Ok(sent) };
            level = current;
            continue;
        }
        let judged = level.damping.map_or(0, |damping| damping.shelf_version);
        let (cause, kind) = match shelf_change {
            Some((version, kind)) if version > judged => (Cause::Shelf, Some(kind)),
            _ => (Cause::of(&level), level.last_change.as_ref().map(|change| change.kind)),
        };
        let Some(decision) = decide(&level, cause, policy, now) else {
            return Ok(sent);
        };
        if claims == CLAIMS {
            break;
        }
        claims += 1;
        let alert = decision
            .alert
            .map(|alert| Alert { cause: kind, ..Alert::new(Uuid::new_v4().to_string(), alert, &level, now) });
        let json = alert
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| InventoryError::internal(e.to_string()))?;
        if store.record_alert_state(&level, &decision, json.as_deref()).await? {
            log_decision(&level, &decision, cause);
            if let (Some(alert), Some(json)) = (alert, json) {
                publish(store, publisher, &level, &alert, &json).await?;
                sent.push(alert.kind);
            }
            return Ok(sent);
        }
        match store.stock_level(&level.product_id, &level.warehouse_id).await? {
            Some(current) => level = current,
            None => return Ok(sent),
        }
    }
    Err(InventoryError::Unavailable {
        detail: format!("alert state of {}/{} kept changing", level.product_id, level.warehouse_id),
    })
}

/// Every change of the alert state is logged: a state announced, a crossing held, folded away.
fn log_decision(level: &StockLevel, decision: &AlertDecision, cause: Cause) {
    let (product_id, warehouse_id) = (&level.product_id, &level.warehouse_id);
    let available = level.available_count;
    let observed = decision.damping.observed;
    let crossings = decision.damping.crossings;
    if decision.status != level.status.unwrap_or(StockStatus::InStock) || level.status.is_none() {
        tracing::info!(%product_id, %warehouse_id, from = ?level.status, to = ?decision.status, available,
                       alert = ?decision.alert, ?cause, "alert state changed");
    } else if let Some(due) = decision.held_until {
        tracing::info!(%product_id, %warehouse_id, announced = ?level.status, ?observed, available, crossings,
                       held_until = due, ?cause, "crossing held for the quiet period");
    } else {
        tracing::info!(%product_id, %warehouse_id, announced = ?level.status, ?observed, available, crossings,
                       "counters back at the announced state: crossing folded away");
    }
}

/// Publishes `alert` and confirms it, matching the claim's stored text exactly (`json`).
async fn publish(
    store: &impl AlertStore,
    publisher: &impl AlertPublisher,
    level: &StockLevel,
    alert: &Alert,
    json: &str,
) -> Result<(), InventoryError> {
    publisher.publish(alert).await?;
    store.finish_alert(level, json).await?;
    tracing::info!(alert_id = %alert.alert_id, alert_type = alert.kind.as_str(), product_id = %alert.product_id,
                   warehouse_id = %alert.warehouse_id, available = alert.available, subject = %alert.subject(), "alert published");
    metrics::count(
        Metric::AlertsPublished,
        &[("alert_type", alert.kind.as_str()), ("product_id", alert.product_id.as_str())],
    );
    Ok(())
}

/// Publishes the alert `level` has pending, if the item still has it pending now (`level` may be a
/// stream image taken while the alert was in flight: one confirmed since must not go out twice).
/// Returns what it published and the item as it is after (`None`: the item is gone).
async fn publish_pending(
    store: &impl AlertStore,
    publisher: &impl AlertPublisher,
    level: &StockLevel,
) -> Result<(Option<AlertType>, Option<StockLevel>), InventoryError> {
    let current = store.stock_level(&level.product_id, &level.warehouse_id).await?;
    let Some(mut current) = current else { return Ok((None, None)) };
    let Some(pending) =
        current.pending_alert.clone().filter(|now_pending| Some(now_pending) == level.pending_alert.as_ref())
    else {
        return Ok((None, Some(current)));
    };
    current.pending_alert = None;
    let alert: Alert = match serde_json::from_str(&pending) {
        Ok(alert) => alert,
        Err(err) => {
            // It can never be sent, and it must not block the item's next alerts: dropped, loudly.
            tracing::error!(product_id = %level.product_id, warehouse_id = %level.warehouse_id, error = %err,
                            "dropping a malformed pending alert");
            store.finish_alert(level, &pending).await?;
            return Ok((None, Some(current)));
        }
    };
    tracing::info!(alert_id = %alert.alert_id, "publishing an alert that was claimed but not confirmed");
    publish(store, publisher, level, &alert, &pending).await?;
    Ok((Some(alert.kind), Some(current)))
}

/// What one reservations-stream record came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiryOutcome {
    /// Not a TTL delete of an ACTIVE hold.
    Ignored,
    Released,
    /// Released before (a repeated delivery, or the backstop got there first).
    AlreadyReleased,
    /// The reconciler had counted it already (a record that came back late, e.g. redriven).
    AccountedByReconciler,
}

/// Reservations stream: a hold that DynamoDB TTL deleted while ACTIVE goes back on sale, once.
pub async fn on_hold_removed(
    store: &impl ExpiryStore,
    removed: &HoldRecordRemoved,
    now: EpochSeconds,
) -> Result<ExpiryOutcome, InventoryError> {
    let HoldRecordRemoved { hold, deleted_at } = removed;
    // An ended hold reaching its retention has nothing to release.
    if hold.state != ReservationState::Active {
        return Ok(ExpiryOutcome::Ignored);
    }
    let deleted_at = *deleted_at;
    match store.expire_deleted_hold(hold, deleted_at, now).await? {
        DeletedHoldOutcome::Released => {
            hold_expired(hold, "ttl", now);
            Ok(ExpiryOutcome::Released)
        }
        DeletedHoldOutcome::AlreadyReleased => Ok(ExpiryOutcome::AlreadyReleased),
        DeletedHoldOutcome::AccountedByReconciler => {
            tracing::warn!(reservation_id = %hold.reservation_id, product_id = %hold.product_id,
                           warehouse_id = %hold.warehouse_id, deleted_at, transition = "EXPIRED",
                           "a lapsed hold's late record: the reconciler had returned its units already");
            Ok(ExpiryOutcome::AccountedByReconciler)
        }
    }
}

/// What a backstop run fixed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BackstopReport {
    pub holds_released: usize,
    /// Lapsed holds left for the next run (this run's limit or time budget was reached).
    pub holds_deferred: usize,
    pub statuses_repaired: usize,
    /// Alerts the stream had not sent: missed crossings, and claimed alerts whose publish failed.
    pub alerts_sent: usize,
    /// Alerts held by a quiet period, sent now that they are due (damping's work, not a repair).
    pub held_alerts_sent: usize,
    pub items_checked: usize,
    /// Items whose counters disagreed with their holds at a first look (judged again next run).
    pub counters_watched: usize,
    /// Items whose counters the reconciler set from their holds (the same disagreement, twice).
    pub counters_repaired: usize,
    /// Holds or items it could not handle (logged with the reason); the next run tries again.
    pub failures: usize,
}

/// Holds released per run at most, and the time a run spends releasing; the next run takes the rest.
const SWEEP_LIMIT: usize = 20_000;
const SWEEP_BUDGET: Duration = Duration::from_secs(30);
/// Store calls a backstop run keeps in flight at once.
const CONCURRENCY: usize = 16;

/// The scheduled backstop: releases holds past expiry that TTL has not deleted yet (TTL may take
/// days on AWS), then, item by item, repairs alert states that disagree with the counters, sends
/// what was missed or claimed but not published, and reconciles counters with the holds on record.
/// Safe to run twice at once. One hold or item it cannot handle is logged and counted, never
/// allowed to stop the rest.
pub async fn backstop(
    store: &(impl HoldStore + ExpiryStore + StockAdmin + AlertStore + ReconcileStore),
    publisher: &impl AlertPublisher,
    policy: AlertPolicy,
    clock: &(impl Fn() -> EpochSeconds + Sync),
) -> Result<BackstopReport, InventoryError> {
    let now = clock();
    let mut report = BackstopReport::default();
    release_lapsed_holds(store, now, &mut report).await?;
    let mut after = None;
    loop {
        let page = store.scan_stock(after.as_ref(), 100).await?;
        let checks = stream::iter(page.items).map(|level| check_item(store, publisher, policy, level, now, clock));
        for check in checks.buffer_unordered(CONCURRENCY).collect::<Vec<_>>().await {
            report.items_checked += 1;
            match check {
                Ok(checked) => {
                    report.statuses_repaired += usize::from(checked.status_repaired);
                    report.alerts_sent += checked.alerts_sent;
                    report.held_alerts_sent += checked.held_alerts_sent;
                    report.counters_watched += usize::from(checked.counters == Some(CounterCheck::Watched));
                    report.counters_repaired += usize::from(checked.counters == Some(CounterCheck::Repaired));
                }
                Err(()) => report.failures += 1,
            }
        }
        after = page.last_key;
        if after.is_none() {
            break;
        }
    }
    tracing::info!(?report, "backstop run finished");
    // Zero in a healthy system (the stream did it all); reported every run so an alarm sees the zeros.
    metrics::emit(&[(Metric::BackstopRepairs, (report.statuses_repaired + report.alerts_sent) as f64)], None, &[]);
    Ok(report)
}

/// Releases the lapsed holds from the sweep index. The holds are read concurrently; each item's
/// holds are released one after another (at once they would only collide on the item, which
/// DynamoDB answers with TransactionConflict), different items concurrently.
async fn release_lapsed_holds(
    store: &(impl HoldStore + ExpiryStore),
    now: EpochSeconds,
    report: &mut BackstopReport,
) -> Result<(), InventoryError> {
    let started = Instant::now();
    let lapsed = store.lapsed_holds(now, SWEEP_LIMIT).await?;
    let read = stream::iter(lapsed).map(|id| async move { (store.reservation(&id).await, id) });
    let mut by_item: BTreeMap<_, Vec<Reservation>> = BTreeMap::new();
    for (found, id) in read.buffer_unordered(CONCURRENCY).collect::<Vec<_>>().await {
        match found {
            // Still ACTIVE and past expiry: the index is eventually consistent and may lag behind.
            Ok(Some(hold)) if hold.state == ReservationState::Active && hold.is_past_expiry(now) => {
                by_item.entry((hold.product_id.clone(), hold.warehouse_id.clone())).or_default().push(hold);
            }
            Ok(_) => {}
            Err(err) => backstop_failed_on(&id, &err, report),
        }
    }
    let releases = stream::iter(by_item.into_values()).map(|holds| async move {
        let mut outcomes = Vec::with_capacity(holds.len());
        for hold in holds {
            if started.elapsed() > SWEEP_BUDGET {
                outcomes.push((hold.reservation_id, Ok(None)));
                continue;
            }
            let ended = store.end_hold(&hold, Transition::Expire, BACKSTOP_ACTOR, None, now).await;
            if matches!(ended, Ok(EndOutcome::Ended(_))) {
                hold_expired(&hold, "backstop", now);
            }
            outcomes.push((hold.reservation_id, ended.map(|ended| Some(matches!(ended, EndOutcome::Ended(_))))));
        }
        outcomes
    });
    for (id, outcome) in releases.buffer_unordered(CONCURRENCY).collect::<Vec<_>>().await.into_iter().flatten() {
        match outcome {
            Ok(Some(released)) => report.holds_released += usize::from(released),
            Ok(None) => report.holds_deferred += 1,
            Err(err) => backstop_failed_on(&id, &err, report),
        }
    }
    Ok(())
}

fn backstop_failed_on(id: &ReservationId, err: &InventoryError, report: &mut BackstopReport) {
    tracing::error!(reservation_id = %id, error = %err, detail = ?err, "backstop could not release a hold");
    report.failures += 1;
}

/// What the reconciler did to one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CounterCheck {
    Watched,
    Repaired,
}

struct ItemChecked {
    status_repaired: bool,
    alerts_sent: usize,
    held_alerts_sent: usize,
    counters: Option<CounterCheck>,
}

/// One item: its alert state, then its counters against its holds. Failures are logged here.
async fn check_item(
    store: &(impl AlertStore + ReconcileStore),
    publisher: &impl AlertPublisher,
    policy: AlertPolicy,
    level: StockLevel,
    now: EpochSeconds,
    clock: &impl Fn() -> EpochSeconds,
) -> Result<ItemChecked, ()> {
    let (product, warehouse, recorded) = (level.product_id.clone(), level.warehouse_id.clone(), level.status);
    // A crossing the stream did not record (of the counters' own state), or an announcement the
    // stream should have made and did not: repaired here. Not repairs: an alert a quiet period held
    // — a hold's crossing the stream recorded and left unannounced — sent now that it is due; and an
    // item whose hold this run released a moment ago (the stream has not had its turn yet).
    let released_by_this_run = level.last_change.as_ref().is_some_and(|change| {
        change.kind == ChangeKind::Expired && change.actor == BACKSTOP_ACTOR && level.last_updated >= rfc3339(now)
    });
    let observed = level.damping.map(|damping| damping.observed).or(level.status);
    let missed = crossing(observed, level.available_count, level.threshold_level).is_some();
    let cause = Cause::of(&level);
    let due = level.pending_alert.is_none().then(|| decide(&level, cause, policy, now)).flatten().and_then(|d| d.alert);
    let held_due = !missed
        && due.is_some_and(|(kind, _)| kind != AlertType::OutOfStock)
        && cause == Cause::Holds
        && level.damping.is_some_and(|damping| Some(damping.observed) != level.status);
    let status_repaired = !released_by_this_run && (missed || (due.is_some() && !held_due));
    let (alerts_sent, held_alerts_sent) = match settle_alert(store, publisher, policy, level.clone(), now).await {
        Ok(sent) if held_due => (0, sent.len()),
        Ok(sent) => (sent.len(), 0),
        Err(err) => {
            tracing::error!(product_id = %product, warehouse_id = %warehouse, error = %err, detail = ?err,
                            "backstop could not settle an alert state");
            return Err(());
        }
    };
    if status_repaired {
        tracing::warn!(product_id = %product, warehouse_id = %warehouse, recorded = ?recorded,
                       "backstop repaired an alert state the stream had not");
    }
    let counters = reconcile_item(store, level, clock).await.map_err(|err| {
        tracing::error!(product_id = %product, warehouse_id = %warehouse, error = %err, detail = ?err,
                        "reconciler could not check an item");
    })?;
    Ok(ItemChecked { status_repaired, alerts_sent, held_alerts_sent, counters })
}

/// Compares the item's counters with its ACTIVE holds and repairs a disagreement that two looks
/// agree on (see `reconcile`).
async fn reconcile_item(
    store: &impl ReconcileStore,
    level: StockLevel,
    clock: &impl Fn() -> EpochSeconds,
) -> Result<Option<CounterCheck>, InventoryError> {
    let active_units = store.active_units(&level.product_id, &level.warehouse_id).await?;
    // The look's time is taken after the holds were summed, not at the run's start: a hold TTL
    // deleted before it is surely not in the sum, which `reconciled_through` relies on.
    let now = clock();
    match reconcile::judge(&level, active_units, now) {
        Verdict::Consistent { drop_look: false } | Verdict::Wait => Ok(None),
        Verdict::Consistent { drop_look: true } => {
            store.keep_look(&level, None).await?;
            Ok(None)
        }
        Verdict::FirstLook(look) => {
            tracing::info!(product_id = %level.product_id, warehouse_id = %level.warehouse_id,
                           reserved_count = level.reserved_count, available_count = level.available_count,
                           active_units, "counters disagree with the holds on record; looking again next run");
            Ok(store.keep_look(&level, Some(look)).await?.then_some(CounterCheck::Watched))
        }
        Verdict::Repair { look, active_units } => {
            let Some(repaired) = store.repair_counters(&level, look, active_units, now).await? else {
                return Ok(None); // it changed meanwhile: in flight, not drift
            };
            tracing::warn!(product_id = %level.product_id, warehouse_id = %level.warehouse_id,
                           before_reserved = level.reserved_count, before_available = level.available_count,
                           after_reserved = repaired.reserved_count, after_available = repaired.available_count,
                           transition = "RECONCILED", "reconciler repaired counters that drifted from the holds");
            metrics::count(
                Metric::CounterRepairs,
                &[("product_id", level.product_id.as_str()), ("warehouse_id", level.warehouse_id.as_str())],
            );
            Ok(Some(CounterCheck::Repaired))
        }
    }
}

/// The log line and metrics of a lapsed hold back on sale; `path` is "ttl" or "backstop".
fn hold_expired(hold: &Reservation, path: &str, now: EpochSeconds) {
    let lag = now - hold.expires_at;
    tracing::info!(reservation_id = %hold.reservation_id, product_id = %hold.product_id, warehouse_id = %hold.warehouse_id,
                   quantity = hold.quantity.units(), transition = "EXPIRED", path, lag_seconds = lag, "hold expired");
    metrics::emit(
        &[(Metric::Expiries, 1.0), (Metric::ReleaseLagSeconds, lag as f64)],
        Some(path),
        &[("product_id", hold.product_id.as_str()), ("reservation_id", &hold.reservation_id.to_string())],
    );
}
