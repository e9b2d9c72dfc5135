//! Low-stock alerts: when a change of the counters is a crossing worth an e-mail, and what the
//! e-mail says. Pure rules; the stream consumer and the backstop apply them.
//!
//! The stock item's stored `status` is the *alert state*: the status last announced. A crossing is
//! decided by comparing the counters with that state, not with the previous image, so a missed or
//! repeated stream record can neither lose nor double an alert.
//!
//! Hysteresis: holds that expire and are retaken around the threshold (or around zero) must not
//! re-alert. Once an item has been announced low or out of stock, it is announced again only when it
//! recovers — `available` above its threshold by the band (20 % of the threshold, at least 1 unit),
//! BACK_IN_STOCK — or, from low, when it runs out (OUT_OF_STOCK).
//!
//! Damping (`decide`): hysteresis stops a wobble of a unit or two; a cart of six units added and
//! removed four times still crosses the threshold eight times. After an alert, crossings caused by
//! holds coming and going wait for the quiet period to end, and then one alert says where the item
//! stands, folding the crossings in between; a recovery caused by holds lapsing or released is
//! announced only once it has lasted a quiet period. Never delayed: OUT_OF_STOCK, and any crossing
//! caused by the shelf itself (an admin's count, delivery or write-down, threshold, a checkout, a
//! reconciler repair). The scheduled backstop sends what has become due.
//!
//! Crossings are of *available* (what can still be sold), the figure the shop shows: with every
//! unit in a cart the product page says "Out of stock" and sales stop, whatever is on the shelf.
//! Each alert also says what is on the shelf, so a manager tells "sold" from "in carts".

use serde::{Deserialize, Serialize};

use crate::domain::{AlertDamping, ChangeKind, ProductId, StockLevel, StockStatus, WarehouseId};
use crate::time::{rfc3339, EpochSeconds};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AlertType {
    LowStock,
    OutOfStock,
    BackInStock,
}

impl AlertType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LowStock => "LOW_STOCK",
            Self::OutOfStock => "OUT_OF_STOCK",
            Self::BackInStock => "BACK_IN_STOCK",
        }
    }
}

/// The margin past a boundary the counters must move before the alert state follows them back.
pub fn hysteresis_band(threshold: i64) -> i64 {
    (threshold / 5).max(1)
}

/// A change of alert state: the state to record and the alert to send, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crossing {
    pub to: StockStatus,
    pub alert: Option<AlertType>,
}

/// Where the alert state should go, given the state last recorded (`None`: never recorded, as for a
/// new item) and the counters now. `None`: stay.
pub fn crossing(recorded: Option<StockStatus>, available: i64, threshold: i64) -> Option<Crossing> {
    use StockStatus::*;
    let band = hysteresis_band(threshold);
    let level = StockStatus::for_levels(available, threshold);
    let recovered = available > threshold + band;
    let announce = |to, alert| Some(Crossing { to, alert: Some(alert) });
    match (recorded.unwrap_or(InStock), level) {
        (InStock, LowStock) => announce(LowStock, AlertType::LowStock),
        (InStock | LowStock, OutOfStock) => announce(OutOfStock, AlertType::OutOfStock),
        (LowStock | OutOfStock, _) if recovered => announce(InStock, AlertType::BackInStock),
        // A new item that starts in stock: record the state, nothing to announce.
        (InStock, InStock) if recorded.is_none() => Some(Crossing { to: InStock, alert: None }),
        _ => None,
    }
}

/// Why the counters moved, as damping sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// Holds placed, released or lapsed: the shelf did not change. Also the writes that cannot move
    /// `available` (a checkout sells units already held; a cart limit): a crossing seen after one
    /// was made by an earlier hold.
    Holds,
    /// The shelf changed (an admin's count, delivery or write-down, threshold, a reconciler
    /// repair): news, announced at once.
    Shelf,
}

impl Cause {
    /// The cause of an item's last change (a kind this version does not know counts as the shelf:
    /// announced at once rather than held).
    pub fn of(level: &StockLevel) -> Self {
        match level.last_change.as_ref().map(|change| change.kind) {
            Some(ChangeKind::Hold | ChangeKind::Released | ChangeKind::Expired | ChangeKind::Committed)
            // Units moved between shards, or the shards changed: the shelf's total did not move.
            | Some(ChangeKind::Limit | ChangeKind::Rebalanced | ChangeKind::Sharding) => Self::Holds,
            _ => Self::Shelf,
        }
    }
}

/// How alerts are damped (the template's AlertQuietSeconds; 0 turns damping off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertPolicy {
    pub quiet_seconds: i64,
}

/// The alert state to record: the state announced, damping's memory, and the alert to send now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertDecision {
    pub status: StockStatus,
    pub damping: AlertDamping,
    /// The alert to send now, and how many crossings it stands for (more than one: folded).
    pub alert: Option<(AlertType, u32)>,
    /// A crossing waits for the quiet period: when it becomes due.
    pub held_until: Option<EpochSeconds>,
}

/// Where the item's alert state should go at `now`, given its counters, what damping kept, and
/// why the counters moved (`cause`: the stream record's change, or, where a reread found the item
/// moved on, the shelf if either was): `None` if nothing changes. A crossing of the announced state
/// (`crossing`) is announced now if it is OUT_OF_STOCK, caused by the shelf, or (caused by holds)
/// outside a quiet period — a recovery only once it has lasted one; otherwise it is held, and the
/// backstop announces it once due if the counters still call for it then, as one alert folding
/// every crossing in between.
pub fn decide(level: &StockLevel, cause: Cause, policy: AlertPolicy, now: EpochSeconds) -> Option<AlertDecision> {
    let (available, threshold) = (level.available_count, level.threshold_level);
    let announced = level.status.unwrap_or(StockStatus::InStock);
    let kept = level.damping;
    let mut damping = kept.unwrap_or(AlertDamping {
        observed: announced,
        observed_since: now,
        crossings: 0,
        quiet_until: 0,
        revision: 0,
        shelf_version: 0,
    });
    if cause == Cause::Shelf && level.version > damping.shelf_version {
        damping.shelf_version = level.version;
    }
    // The counters' own state, as if every crossing were announced: what the next alert folds.
    if let Some(observed) = crossing(kept.map(|d| d.observed).or(level.status), available, threshold) {
        if observed.to != damping.observed {
            damping.observed_since = now;
        }
        damping.observed = observed.to;
        damping.crossings += u32::from(observed.alert.is_some());
    }
    let Some(announce) = crossing(level.status, available, threshold) else {
        // Back at the announced state. Once the quiet period is over, the crossings in between were
        // folded into nothing: the next alert does not count them.
        if damping.observed == announced && now >= damping.quiet_until {
            damping.crossings = 0;
        }
        return unchanged(level, kept, damping, None);
    };
    let since_observed = if damping.observed == announce.to { damping.observed_since } else { now };
    let due = match announce.alert {
        None | Some(AlertType::OutOfStock) => now,
        Some(_) if cause == Cause::Shelf => now,
        Some(AlertType::BackInStock) => (since_observed + policy.quiet_seconds).max(damping.quiet_until),
        Some(AlertType::LowStock) => damping.quiet_until,
    };
    if due > now {
        return unchanged(level, kept, damping, Some(due));
    }
    let revision = damping.revision + 1;
    let Some(kind) = announce.alert else {
        // A new item's first state, nothing to announce.
        return Some(AlertDecision {
            status: announce.to,
            damping: AlertDamping { revision, ..damping },
            alert: None,
            held_until: None,
        });
    };
    Some(AlertDecision {
        status: announce.to,
        damping: AlertDamping {
            observed: announce.to,
            observed_since: since_observed,
            crossings: 0,
            quiet_until: now + policy.quiet_seconds,
            revision,
            shelf_version: damping.shelf_version,
        },
        alert: Some((kind, damping.crossings.max(1))),
        held_until: None,
    })
}

/// The decision that only damping's memory moves (the announced state stays), if it moved.
fn unchanged(
    level: &StockLevel,
    kept: Option<AlertDamping>,
    damping: AlertDamping,
    held_until: Option<EpochSeconds>,
) -> Option<AlertDecision> {
    (Some(damping) != kept).then(|| AlertDecision {
        status: level.status.unwrap_or(StockStatus::InStock),
        damping: AlertDamping { revision: damping.revision + 1, ..damping },
        alert: None,
        held_until,
    })
}

/// The message published to the alerts topic: a readable e-mail and a machine-readable body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// Stable per crossing: a subscriber drops a rare duplicate delivery by it.
    pub alert_id: String,
    #[serde(rename = "type")]
    pub kind: AlertType,
    pub product_id: ProductId,
    pub warehouse_id: WarehouseId,
    /// Left to sell (on the shelf, less what is held in carts): the figure the alert is about.
    pub available: i64,
    /// On the shelf.
    pub stock_count: i64,
    /// In carts.
    pub reserved_count: i64,
    pub threshold_level: i64,
    /// Crossings this alert stands for: more than 1 when a quiet period folded them into it.
    #[serde(default = "one")]
    pub crossings: u32,
    /// The kind of the change that led to it (`hold`, `released`, `expired`, `set`, `adjust`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<ChangeKind>,
    pub at: String,
}

fn one() -> u32 {
    1
}

impl Alert {
    pub fn new(alert_id: String, (kind, crossings): (AlertType, u32), level: &StockLevel, at: EpochSeconds) -> Self {
        Self {
            alert_id,
            kind,
            product_id: level.product_id.clone(),
            warehouse_id: level.warehouse_id.clone(),
            available: level.available_count,
            stock_count: level.stock_count,
            reserved_count: level.reserved_count,
            threshold_level: level.threshold_level,
            crossings,
            cause: level.last_change.as_ref().map(|change| change.kind),
            at: rfc3339(at),
        }
    }

    /// SNS subjects are ASCII, single-line, under 100 characters: e-mail clients show it as is.
    /// Both figures: what can be sold decides the alert, what is on the shelf tells sold from held.
    pub fn subject(&self) -> String {
        let (product, warehouse) = (&self.product_id, &self.warehouse_id);
        let figures = format!("{} left to sell, {} on the shelf", self.available.max(0), self.stock_count.max(0));
        let kind = match self.kind {
            AlertType::LowStock => "Low stock",
            AlertType::OutOfStock => "Out of stock",
            AlertType::BackInStock => "Back in stock",
        };
        let folded = if self.crossings > 1 { format!(" ({} changes folded)", self.crossings) } else { String::new() };
        let subject = format!("{kind}: {product} at {warehouse} - {figures}{folded}");
        subject.chars().take(99).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AlertType as A;
    use StockStatus as S;

    /// Runs a sequence of available counts through the alert state and collects the alerts sent.
    fn alerts_for(start: Option<StockStatus>, threshold: i64, availables: &[i64]) -> Vec<AlertType> {
        let mut state = start;
        let mut sent = Vec::new();
        for &available in availables {
            if let Some(c) = crossing(state, available, threshold) {
                state = Some(c.to);
                sent.extend(c.alert);
            }
        }
        sent
    }

    #[test]
    fn one_alert_per_crossing() {
        assert_eq!(alerts_for(Some(S::InStock), 5, &[10, 6, 5, 4, 3]), [A::LowStock]);
        assert_eq!(alerts_for(Some(S::InStock), 5, &[6, 5, 0, 0]), [A::LowStock, A::OutOfStock]);
        assert_eq!(alerts_for(Some(S::InStock), 5, &[6, 0]), [A::OutOfStock]);
        assert_eq!(alerts_for(Some(S::OutOfStock), 5, &[0, 50]), [A::BackInStock]);
    }

    #[test]
    fn holds_expiring_and_retaken_around_the_threshold_do_not_re_alert() {
        // Threshold 10, band 2: wobbling between 9 and 12 after going low stays quiet.
        assert_eq!(alerts_for(Some(S::InStock), 10, &[11, 10, 11, 12, 9, 12, 10, 11, 12]), [A::LowStock]);
        // Only clearing threshold + band counts as recovery.
        assert_eq!(alerts_for(Some(S::InStock), 10, &[10, 12, 13, 12, 10]), [A::LowStock, A::BackInStock, A::LowStock]);
    }

    #[test]
    fn wobbling_at_zero_alerts_out_of_stock_once() {
        // A unit coming back and going again is not a new outage.
        assert_eq!(alerts_for(Some(S::LowStock), 5, &[0, 1, 0, 1, 0, 3, 0]), [A::OutOfStock]);
        // Partly restocked (still low) and sold out again: still the same outage.
        assert_eq!(alerts_for(Some(S::OutOfStock), 20, &[10, 24, 0]), Vec::<A>::new());
        // Recovered past threshold + band (20 + 4): a new outage is news again.
        assert_eq!(alerts_for(Some(S::OutOfStock), 20, &[25, 0]), [A::BackInStock, A::OutOfStock]);
        assert_eq!(hysteresis_band(5), 1);
        assert_eq!(hysteresis_band(20), 4);
    }

    #[test]
    fn new_items_announce_only_if_short() {
        assert_eq!(crossing(None, 50, 5), Some(Crossing { to: S::InStock, alert: None }));
        assert_eq!(crossing(None, 2, 5), Some(Crossing { to: S::LowStock, alert: Some(A::LowStock) }));
        assert_eq!(crossing(None, 0, 5), Some(Crossing { to: S::OutOfStock, alert: Some(A::OutOfStock) }));
    }

    #[test]
    fn a_settled_state_stays() {
        for (state, available) in
            [(S::InStock, 50), (S::LowStock, 3), (S::OutOfStock, 0), (S::LowStock, 6), (S::OutOfStock, 3)]
        {
            assert_eq!(crossing(Some(state), available, 5), None, "{state:?} at {available}");
        }
    }

    fn level(available: i64, threshold: i64) -> StockLevel {
        StockLevel {
            product_id: ProductId::parse("SKU-42").unwrap(),
            warehouse_id: WarehouseId::parse("main").unwrap(),
            stock_count: 5,
            reserved_count: 5 - available,
            available_count: available,
            threshold_level: threshold,
            max_per_cart: None,
            status: None,
            version: 1,
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
        }
    }

    const QUIET: AlertPolicy = AlertPolicy { quiet_seconds: 900 };

    /// Drives `decide` as the pipeline does: each change `(time, available, kind)` is settled when
    /// it happens, and the backstop settles the item every minute in between and up to `until`.
    /// Returns the alerts sent: (time, type, crossings it stands for).
    fn damped(threshold: i64, changes: &[(EpochSeconds, i64, ChangeKind)], until: EpochSeconds) -> Vec<(i64, A, u32)> {
        let mut item = level(50, threshold);
        item.status = Some(S::InStock);
        let mut sent = Vec::new();
        let mut settle = |item: &mut StockLevel, now| {
            if let Some(decision) = decide(item, Cause::of(item), QUIET, now) {
                item.status = Some(decision.status);
                item.damping = Some(decision.damping);
                sent.extend(decision.alert.map(|(kind, crossings)| (now, kind, crossings)));
            }
        };
        let mut changes = changes.iter().peekable();
        for now in 0..=until {
            while let Some(&&(at, available, kind)) = changes.peek().filter(|change| change.0 == now) {
                let _ = at;
                item.available_count = available;
                item.last_change =
                    Some(crate::domain::LastChange { kind, actor: "t".into(), reason: None, reservation_id: None });
                settle(&mut item, now);
                changes.next();
            }
            if now % 60 == 0 {
                settle(&mut item, now);
            }
        }
        sent
    }

    use ChangeKind::{Adjust, Committed, Expired, Hold, Released};

    #[test]
    fn a_cart_added_and_removed_four_times_sends_one_alert_then_where_it_stands() {
        // Stock 10, threshold 5: a cart of 6 comes and goes four times in a few seconds.
        let churn: Vec<_> = (0..4).flat_map(|i| [(100 + 2 * i, 4, Hold), (101 + 2 * i, 10, Released)]).collect();
        let sent = damped(5, &[vec![(0, 10, Adjust)], churn].concat(), 3000);
        // LOW_STOCK at once; the recovery is announced once it has lasted the quiet period (from the
        // last release at 107), folding the seven crossings since the LOW_STOCK.
        assert_eq!(sent, [(100, A::LowStock, 1), (1020, A::BackInStock, 7)]);
    }

    #[test]
    fn churn_that_ends_where_it_was_announced_sends_nothing_more() {
        let mut changes = vec![(100, 4, Hold)];
        changes.extend((0..10).flat_map(|i| [(200 + 10 * i, 10, Released), (205 + 10 * i, 4, Hold)]));
        assert_eq!(damped(5, &changes, 5000), [(100, A::LowStock, 1)]);
    }

    #[test]
    fn out_of_stock_is_never_delayed() {
        // Low at 100, back at 110 (held), out at 120: in the quiet period, and sent at once.
        let sent = damped(5, &[(100, 4, Hold), (110, 10, Released), (120, 0, Hold)], 3000);
        assert_eq!(sent, [(100, A::LowStock, 1), (120, A::OutOfStock, 2)]);
    }

    #[test]
    fn a_change_of_the_shelf_is_announced_at_once() {
        // Low, then a delivery recovers it inside the quiet period: news, at once.
        let sent = damped(5, &[(100, 4, Hold), (130, 30, Adjust)], 3000);
        assert_eq!(sent, [(100, A::LowStock, 1), (130, A::BackInStock, 1)]);
    }

    #[test]
    fn a_recovery_from_lapsed_holds_waits_a_quiet_period_even_long_after_the_last_alert() {
        let sent = damped(5, &[(100, 4, Hold), (5000, 10, Expired)], 7000);
        assert_eq!(sent, [(100, A::LowStock, 1), (5940, A::BackInStock, 1)]);
        // Retaken before it lasted: nothing at all.
        assert_eq!(damped(5, &[(100, 4, Hold), (5000, 10, Expired), (5600, 4, Hold)], 9000), [(100, A::LowStock, 1)]);
    }

    #[test]
    fn a_low_crossing_inside_the_quiet_period_waits_for_its_end() {
        // Back in stock by a delivery at 100 (alert, quiet until 1000); a hold takes it low at 200.
        let sent = damped(5, &[(50, 4, Adjust), (100, 30, Adjust), (200, 3, Hold)], 3000);
        assert_eq!(sent, [(50, A::LowStock, 1), (100, A::BackInStock, 1), (1020, A::LowStock, 1)]);
    }

    #[test]
    fn a_checkout_after_a_held_crossing_does_not_make_it_shelf_news() {
        // A checkout sells units already held: it cannot move `available`, nor hurry a held alert.
        let sent = damped(5, &[(100, 4, Hold), (110, 10, Released), (130, 10, Committed)], 3000);
        assert_eq!(sent, [(100, A::LowStock, 1), (1020, A::BackInStock, 1)]);
    }

    #[test]
    fn crossings_folded_into_nothing_are_not_counted_by_a_later_alert() {
        // Ten churns that end where they were announced, long ago; a week later a delivery.
        let mut changes = vec![(100, 4, Hold)];
        changes.extend((0..10).flat_map(|i| [(200 + 10 * i, 10, Released), (205 + 10 * i, 4, Hold)]));
        changes.push((9000, 30, Adjust));
        assert_eq!(damped(5, &changes, 9100), [(100, A::LowStock, 1), (9000, A::BackInStock, 1)]);
    }

    #[test]
    fn without_a_quiet_period_every_crossing_is_announced() {
        let mut item = level(50, 5);
        item.status = Some(S::LowStock);
        item.last_change =
            Some(crate::domain::LastChange { kind: Released, actor: "t".into(), reason: None, reservation_id: None });
        let decision = decide(&item, Cause::Holds, AlertPolicy { quiet_seconds: 0 }, 10).unwrap();
        assert_eq!((decision.status, decision.alert), (S::InStock, Some((A::BackInStock, 1))));
        assert_eq!(
            decide(&level(50, 5), Cause::Shelf, QUIET, 10).map(|d| (d.status, d.alert)),
            Some((S::InStock, None))
        );
    }

    #[test]
    fn subjects_read_well_and_stay_ascii() {
        let level = level(3, 5);
        let low = Alert::new("a1".into(), (A::LowStock, 1), &level, 0);
        assert_eq!(low.subject(), "Low stock: SKU-42 at main - 3 left to sell, 5 on the shelf");
        let out = Alert::new("a2".into(), (A::OutOfStock, 3), &level, 0);
        assert_eq!(out.subject(), "Out of stock: SKU-42 at main - 3 left to sell, 5 on the shelf (3 changes folded)");
        assert!(low.subject().is_ascii());
        let body = serde_json::to_value(&low).unwrap();
        assert_eq!(body["type"], "LOW_STOCK");
        assert_eq!((body["alert_id"].as_str(), body["crossings"].as_u64()), (Some("a1"), Some(1)));
        assert_eq!(body["at"], "1970-01-01T00:00:00Z");
        let old: Alert = serde_json::from_str(
            r#"{"alert_id":"a","type":"LOW_STOCK","product_id":"P","warehouse_id":"w","available":1,
                "stock_count":1,"reserved_count":0,"threshold_level":5,"at":"x"}"#,
        )
        .unwrap();
        assert_eq!((old.crossings, old.cause), (1, None), "an alert claimed by the previous version still reads");
    }
}
