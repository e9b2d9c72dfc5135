//! The reconciler's rules: when an item's counters disagree with the holds on record, and when that
//! disagreement is real drift to repair rather than a change in flight. Pure; the backstop applies
//! them with conditional writes.
//!
//! The holds are summed from a global secondary index, which is eventually consistent, and a hold
//! deleted by TTL leaves the index before its stream record returns its units. So one look proves
//! nothing: a difference is repaired only when a second look, at least [`LOOK_GAP_SECONDS`] later,
//! sees the item unchanged (same `sequence`: no hold, checkout, release, expiry or admin write in
//! between) and the same sum of holds. The repair itself is conditional on the figures it read.

use crate::domain::{CounterLook, StockLevel};
use crate::time::EpochSeconds;

/// Least time between the two looks: far above the index's usual lag (well under a second).
pub const LOOK_GAP_SECONDS: i64 = 10;

/// What to do about one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The counters agree with the holds; a look left from earlier is dropped.
    Consistent { drop_look: bool },
    /// They disagree: remember this look and judge again next run.
    FirstLook(CounterLook),
    /// They disagree as they did at the first look, too recently to be sure.
    Wait,
    /// The same disagreement on an unchanged item, twice: set the counters from the holds.
    Repair { look: CounterLook, active_units: i64 },
}

/// Judges `level` (read now, strongly consistent) against the units its ACTIVE holds take.
pub fn judge(level: &StockLevel, active_units: i64, now: EpochSeconds) -> Verdict {
    let agrees =
        level.reserved_count == active_units && level.available_count == level.stock_count - level.reserved_count;
    if agrees {
        return Verdict::Consistent { drop_look: level.reconcile_look.is_some() };
    }
    match level.reconcile_look {
        Some(look) if look.sequence == level.sequence && look.active_units == active_units => {
            if now - look.at >= LOOK_GAP_SECONDS {
                Verdict::Repair { look, active_units }
            } else {
                Verdict::Wait
            }
        }
        _ => Verdict::FirstLook(CounterLook { sequence: level.sequence, active_units, at: now }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ProductId, WarehouseId};

    fn level(stock: i64, reserved: i64, available: i64, sequence: i64, look: Option<CounterLook>) -> StockLevel {
        StockLevel {
            product_id: ProductId::parse("P-1").unwrap(),
            warehouse_id: WarehouseId::parse("main").unwrap(),
            stock_count: stock,
            reserved_count: reserved,
            available_count: available,
            threshold_level: 0,
            max_per_cart: None,
            status: None,
            version: 1,
            sequence,
            last_updated: String::new(),
            pending_alert: None,
            last_change: None,
            reconcile_look: look,
            reconciled_through: None,
            damping: None,
            sharding: None,
            shard: None,
            shard_figures: Vec::new(),
        }
    }

    #[test]
    fn agreeing_counters_need_nothing() {
        assert_eq!(judge(&level(10, 3, 7, 5, None), 3, 100), Verdict::Consistent { drop_look: false });
        let old = CounterLook { sequence: 4, active_units: 1, at: 50 };
        assert_eq!(judge(&level(10, 3, 7, 5, Some(old)), 3, 100), Verdict::Consistent { drop_look: true });
    }

    #[test]
    fn a_first_disagreement_is_only_remembered() {
        let seen = judge(&level(10, 4, 6, 5, None), 2, 100);
        assert_eq!(seen, Verdict::FirstLook(CounterLook { sequence: 5, active_units: 2, at: 100 }));
        // available out of line with stock - reserved is drift too.
        assert!(matches!(judge(&level(10, 2, 7, 5, None), 2, 100), Verdict::FirstLook(_)));
    }

    #[test]
    fn the_same_disagreement_on_an_unchanged_item_is_repaired_after_the_gap() {
        let look = CounterLook { sequence: 5, active_units: 2, at: 100 };
        let drifted = level(10, 4, 6, 5, Some(look));
        assert_eq!(judge(&drifted, 2, 100 + LOOK_GAP_SECONDS - 1), Verdict::Wait);
        assert_eq!(judge(&drifted, 2, 100 + LOOK_GAP_SECONDS), Verdict::Repair { look, active_units: 2 });
    }

    #[test]
    fn a_change_in_between_starts_over() {
        let look = CounterLook { sequence: 5, active_units: 2, at: 100 };
        // A hold placed or ended since (sequence moved): in flight, not drift.
        assert_eq!(
            judge(&level(10, 5, 5, 6, Some(look)), 3, 200),
            Verdict::FirstLook(CounterLook { sequence: 6, active_units: 3, at: 200 })
        );
        // A hold left the index since (e.g. deleted by TTL, its units still on their way back).
        assert_eq!(
            judge(&level(10, 4, 6, 5, Some(look)), 1, 200),
            Verdict::FirstLook(CounterLook { sequence: 5, active_units: 1, at: 200 })
        );
    }
}
