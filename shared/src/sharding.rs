//! Sharded stock: one product's stock in one warehouse split over up to [`MAX_SHARDS`] items with
//! distinct partition keys, so a flash sale on one SKU is not capped by one partition's write rate
//! (about 1,000 write units a second on DynamoDB; a hold writes its shard in a transaction, 2 units).
//! Shard 0 is the main item (it also carries the threshold, the admin version and the alert state);
//! shard k ≥ 1 is an item keyed `"<product>#k"` (`#` is in no product id) with counters only.
//!
//! Pure rules here; the DynamoDB adapter applies them, each as one transaction:
//! - a hold takes its units from one shard picked from its id ([`shard_for`]: a retry lands on the
//!   same shard); when that shard is short, from several ([`plan_spill`]), read together first, so a
//!   hold is refused only when all shards together cannot cover it;
//! - commit, release and expiry return what the hold recorded taking, where it took it;
//! - an admin write sets the total and spreads the units for sale evenly ([`plan_admin`]);
//! - the rebalancer moves units from the richest shard to one that runs low ([`plan_rebalance`]);
//!   every move takes from one item what it gives to another in the same transaction, so a read of
//!   all shards (TransactGetItems) sums right at any moment.

use crate::domain::{ShardFigures, ShardLayout, StockLevel};
use crate::holds::{ReservationId, ShardTake};
pub use crate::limits::MAX_SHARDS;

/// The shard a hold tries first: fixed by its id, so every retry of the same hold asks the same one.
pub fn shard_for(id: &ReservationId, count: u32) -> u32 {
    (id.spread() % u128::from(count.max(1))) as u32
}

/// The item read whole: the main item's meta with every shard's figures summed. `version` and
/// `sequence` are sums too: each write of a shard raises its own by one, so the sums change with
/// every write of any shard and never go back.
pub fn aggregate(mut main: StockLevel, shards: Vec<ShardFigures>) -> StockLevel {
    let sum = |f: fn(&ShardFigures) -> i64| shards.iter().map(f).sum::<i64>();
    main.stock_count = sum(|s| s.stock_count);
    main.reserved_count = sum(|s| s.reserved_count);
    main.available_count = sum(|s| s.available_count);
    main.version = sum(|s| s.version);
    main.sequence = sum(|s| s.sequence);
    main.shard_figures = shards;
    main
}

/// The figures of an item read whole, one entry per shard (an unsharded item is one shard).
pub fn figures_of(level: &StockLevel) -> Vec<ShardFigures> {
    if level.shard_figures.is_empty() {
        vec![ShardFigures {
            index: 0,
            stock_count: level.stock_count,
            reserved_count: level.reserved_count,
            available_count: level.available_count,
            version: level.version,
            sequence: level.sequence,
        }]
    } else {
        level.shard_figures.clone()
    }
}

/// Where a hold of `quantity` takes its units when its own shard (`first`) is short: `first` as far
/// as it goes, then the shards with the most for sale (fewest items in the transaction). `Err` with
/// the units for sale in all shards together when they cannot cover it: the only refusal.
pub fn plan_spill(shards: &[ShardFigures], first: u32, quantity: i64) -> Result<Vec<ShardTake>, i64> {
    let total: i64 = shards.iter().map(|s| s.available_count).sum();
    if total < quantity {
        return Err(total);
    }
    let mut order: Vec<&ShardFigures> = shards.iter().filter(|s| s.available_count > 0).collect();
    order.sort_by_key(|s| (s.index != first, std::cmp::Reverse(s.available_count), s.index));
    let mut takes = Vec::new();
    let mut left = quantity;
    for shard in order {
        if left == 0 {
            break;
        }
        let units = shard.available_count.min(left);
        takes.push(ShardTake { shard: shard.index, units });
        left -= units;
    }
    // Only when a shard below zero (written down under its holds) hides units the sum counts.
    if left > 0 {
        return Err(total);
    }
    Ok(takes)
}

/// An admin write to a sharded item: the change of each shard's `stock_count` (index 0 to
/// `layout.span - 1`) that makes the total `total_stock` and spreads the units for sale evenly over
/// the `layout.count` shards holds are taken from; shards above the count keep only their holds'
/// units. Each shard's reserved units stay where they are (its holds will return them there). A
/// count below the units held (a write-down under the holds) leaves each shard's shelf between zero
/// and its own holds' units, so a checkout's guard on its shard's shelf still sells no unit the
/// item does not have.
pub fn plan_admin(shards: &[ShardFigures], layout: ShardLayout, total_stock: i64) -> Vec<i64> {
    let reserved = |k: u32| shards.iter().find(|s| s.index == k).map_or(0, |s| s.reserved_count.max(0));
    let stock = |k: u32| shards.iter().find(|s| s.index == k).map_or(0, |s| s.stock_count);
    let all_reserved: i64 = (0..layout.span.max(layout.count)).map(reserved).sum();
    let for_sale = total_stock - all_reserved;
    let count = i64::from(layout.count.max(1));
    let mut shelf_left = total_stock;
    (0..layout.span.max(layout.count))
        .map(|k| {
            let shelf = if for_sale >= 0 {
                let share = if k < layout.count {
                    for_sale.div_euclid(count) + i64::from(i64::from(k) < for_sale.rem_euclid(count))
                } else {
                    0
                };
                reserved(k) + share
            } else {
                // Fewer on the shelf than held: each shard keeps at most its own holds' units.
                let kept = reserved(k).min(shelf_left.max(0));
                shelf_left -= kept;
                kept
            };
            shelf - stock(k)
        })
        .collect()
}

/// A move of units for sale from one shard to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rebalance {
    pub from: u32,
    pub to: u32,
    pub units: i64,
}

/// What the rebalancer does about an item read whole, if anything: units a shard above the count
/// got back (a released hold) go to the poorest active shard; otherwise a shard holding less than a
/// quarter of its fair share (the low-water mark) gets half the difference from the richest.
pub fn plan_rebalance(shards: &[ShardFigures], count: u32) -> Option<Rebalance> {
    let active: Vec<&ShardFigures> = shards.iter().filter(|s| s.index < count).collect();
    let poorest = active.iter().min_by_key(|s| (s.available_count, s.index))?;
    if let Some(left) = shards.iter().find(|s| s.index >= count && s.available_count > 0) {
        return Some(Rebalance { from: left.index, to: poorest.index, units: left.available_count });
    }
    let richest = active.iter().max_by_key(|s| (s.available_count, std::cmp::Reverse(s.index)))?;
    let for_sale: i64 = active.iter().map(|s| s.available_count.max(0)).sum();
    let low_water = (for_sale / (4 * i64::from(count.max(1)))).max(1);
    let units = (richest.available_count - poorest.available_count) / 2;
    (poorest.available_count < low_water && units > 0).then_some(Rebalance {
        from: richest.index,
        to: poorest.index,
        units,
    })
}

/// The layout after an admin asks for `count` shards: shards above it stay readable (span) until
/// their holds have ended.
pub fn relayout(current: Option<ShardLayout>, count: u32) -> ShardLayout {
    let span = current.map_or(1, |layout| layout.span.max(layout.count));
    ShardLayout { count, span: span.max(count) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shards(available: &[i64]) -> Vec<ShardFigures> {
        available
            .iter()
            .enumerate()
            .map(|(k, &a)| ShardFigures {
                index: k as u32,
                stock_count: a + 1,
                reserved_count: 1,
                available_count: a,
                version: 1,
                sequence: 3,
            })
            .collect()
    }

    #[test]
    fn a_hold_and_its_retries_ask_one_shard() {
        let id = ReservationId::random();
        assert_eq!(shard_for(&id, 8), shard_for(&id, 8));
        assert!(shard_for(&id, 8) < 8);
        assert_eq!(shard_for(&id, 1), 0);
        // Ids spread over every shard.
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..400 {
            seen.insert(shard_for(&ReservationId::random(), 8));
        }
        assert_eq!(seen.len(), 8);
    }

    #[test]
    fn a_spill_takes_its_own_shard_first_then_the_richest() {
        let takes = plan_spill(&shards(&[1, 0, 5, 2]), 0, 4).unwrap();
        assert_eq!(takes, vec![ShardTake { shard: 0, units: 1 }, ShardTake { shard: 2, units: 3 }]);
        // Its own shard is empty: the richest first, then the next.
        let takes = plan_spill(&shards(&[1, 0, 5, 2]), 1, 6).unwrap();
        assert_eq!(takes, vec![ShardTake { shard: 2, units: 5 }, ShardTake { shard: 3, units: 1 }]);
    }

    #[test]
    fn a_spill_is_refused_only_when_all_shards_together_are_short() {
        assert_eq!(plan_spill(&shards(&[1, 1, 1, 1]), 2, 4).map(|t| t.len()), Ok(4));
        assert_eq!(plan_spill(&shards(&[1, 1, 1, 1]), 2, 5), Err(4));
        // A shard below zero counts against the sum, as it does on the product page.
        assert_eq!(plan_spill(&shards(&[3, -2, 1]), 0, 3), Err(2));
    }

    #[test]
    fn an_admin_write_sets_the_total_and_spreads_what_is_for_sale() {
        let now = shards(&[1, 0, 5, 2]); // stock 2, 1, 6, 3 = 12; reserved 4
        let layout = ShardLayout { count: 4, span: 4 };
        let deltas = plan_admin(&now, layout, 22);
        let after: Vec<i64> = now.iter().zip(&deltas).map(|(s, d)| s.stock_count + d - s.reserved_count).collect();
        assert_eq!(after, vec![5, 5, 4, 4]);
        assert_eq!(now.iter().map(|s| s.stock_count).sum::<i64>() + deltas.iter().sum::<i64>(), 22);
    }

    #[test]
    fn lowering_the_count_moves_the_units_for_sale_off_the_shards_above_it() {
        let now = shards(&[1, 0, 5, 2]);
        let deltas = plan_admin(&now, relayout(Some(ShardLayout { count: 4, span: 4 }), 2), 12);
        assert_eq!(deltas.len(), 4);
        let after: Vec<i64> = now.iter().zip(&deltas).map(|(s, d)| s.stock_count + d - s.reserved_count).collect();
        assert_eq!(after, vec![4, 4, 0, 0]);
    }

    #[test]
    fn raising_the_count_fills_new_shards() {
        let now = shards(&[7]);
        let layout = relayout(None, 4);
        assert_eq!(layout, ShardLayout { count: 4, span: 4 });
        // Stock 8 with 1 reserved on shard 0: 7 for sale over 4 shards, shard 0 keeps its hold's unit.
        let deltas = plan_admin(&now, layout, 8);
        assert_eq!(deltas, vec![-5, 2, 2, 1]);
    }

    #[test]
    fn a_write_down_below_the_holds_never_takes_a_shelf_below_zero() {
        let now = shards(&[0, 0]); // stock 1+1, reserved 1+1
        let deltas = plan_admin(&now, ShardLayout { count: 2, span: 2 }, 1);
        assert_eq!(deltas, vec![0, -1]);
        // Nothing left: every shelf at zero, none below (a checkout's guard on its shard refuses).
        let mut held = shards(&[0, 0, 0]);
        held[1].reserved_count = 2;
        held[1].stock_count = 2;
        let deltas = plan_admin(&held, ShardLayout { count: 4, span: 4 }, 0);
        let after: Vec<i64> = (0..4).map(|k| held.get(k).map_or(0, |s| s.stock_count) + deltas[k]).collect();
        assert_eq!(after, vec![0, 0, 0, 0]);
        let deltas = plan_admin(&held, ShardLayout { count: 4, span: 4 }, 3);
        let after: Vec<i64> = (0..4).map(|k| held.get(k).map_or(0, |s| s.stock_count) + deltas[k]).collect();
        assert_eq!(after, vec![1, 2, 0, 0], "shelves within their holds, summing to the count");
    }

    #[test]
    fn the_rebalancer_fills_a_low_shard_from_the_richest_without_changing_the_total() {
        assert_eq!(plan_rebalance(&shards(&[40, 0, 30, 30]), 4), Some(Rebalance { from: 0, to: 1, units: 20 }));
        // Nothing to do while every shard has a fair part, or when no move helps.
        assert_eq!(plan_rebalance(&shards(&[10, 8, 9, 12]), 4), None);
        assert_eq!(plan_rebalance(&shards(&[1, 0, 1, 1]), 4), None);
        assert_eq!(plan_rebalance(&shards(&[0, 0]), 2), None);
    }

    #[test]
    fn units_back_on_a_shard_above_the_count_are_moved_down() {
        assert_eq!(plan_rebalance(&shards(&[5, 3, 2]), 2), Some(Rebalance { from: 2, to: 1, units: 2 }));
    }

    #[test]
    fn a_read_of_all_shards_sums_them() {
        let main: StockLevel = serde_json::from_value(serde_json::json!({
            "product_id": "P-1", "warehouse_id": "main", "stock_count": 2, "reserved_count": 1,
            "available_count": 1, "threshold_level": 5, "sharding": {"count": 3, "span": 3}
        }))
        .unwrap();
        let whole = aggregate(main, shards(&[1, 2, 3]));
        assert_eq!((whole.stock_count, whole.reserved_count, whole.available_count), (9, 3, 6));
        assert_eq!((whole.version, whole.sequence), (3, 9));
        assert_eq!(figures_of(&whole).len(), 3);
    }
}
