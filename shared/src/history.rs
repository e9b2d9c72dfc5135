//! The audit trail: one entry per change of a stock item's figures, derived from the stock table's
//! stream (the API functions only write stock and hold records, with `last_change` on the item).

use serde::{Deserialize, Serialize};

use crate::domain::{LastChange, ProductId, StockLevel, WarehouseId};
use crate::time::{rfc3339, EpochSeconds};

/// A stock item's figures before or after a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Figures {
    pub stock_count: i64,
    pub reserved_count: i64,
    pub available: i64,
    pub threshold_level: i64,
}

impl Figures {
    fn of(level: &StockLevel) -> Self {
        Self {
            stock_count: level.stock_count,
            reserved_count: level.reserved_count,
            available: level.available_count,
            threshold_level: level.threshold_level,
        }
    }
}

/// One audit entry. `entry_id` sorts by time and is derived from the stream record alone, so a
/// replayed record writes the same entry again instead of a second one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub product_id: ProductId,
    pub entry_id: String,
    pub warehouse_id: WarehouseId,
    pub time: String,
    #[serde(flatten)]
    pub change: LastChange,
    /// `None` when the change created the item.
    pub before: Option<Figures>,
    pub after: Figures,
    /// For a sharded item: the shard whose figures `before` and `after` are (0: the main item).
    /// Shards change independently, so a change's entry shows its own shard; the change itself
    /// (after − before) is exact, and the item's total is what GET shows.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub shard: Option<u32>,
    /// When DynamoDB TTL removes the entry (epoch seconds): the retention period.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub expires_at: Option<EpochSeconds>,
}

/// The entry for one stream record of the stock table, or `None` when the record changed none of
/// the figures (the stream consumer's own alert-state writes) or carries no `last_change`.
pub fn entry_for_change(
    old: Option<&StockLevel>,
    new: &StockLevel,
    sequence_number: &str,
    recorded_at: EpochSeconds,
    retention_seconds: i64,
) -> Option<HistoryEntry> {
    let after = Figures::of(new);
    let before = old.map(Figures::of);
    if before == Some(after) {
        return None;
    }
    let change = new.last_change.clone()?;
    // The writer's time, shown; the stream's (whole seconds) only for an item written without one.
    let time = if new.last_updated.is_empty() { rfc3339(recorded_at) } else { new.last_updated.clone() };
    Some(HistoryEntry {
        product_id: new.product_id.clone(),
        // Ordered as the stream ordered the writes, not by the writer's clock: a write retried past
        // a second boundary (throttling, a conflict, a lost answer) carries the time its handler
        // started, earlier than writes that landed before it (found by `make chaos`). The stream's
        // time first keeps a product's entries in order across its warehouses; sequence numbers
        // (unique, fixed-width digits on AWS) order the writes within a second.
        entry_id: format!("{}#{sequence_number:0>40}", rfc3339(recorded_at)),
        warehouse_id: new.warehouse_id.clone(),
        time,
        change,
        before,
        after,
        shard: new.is_sharded().then(|| new.shard.unwrap_or(0)),
        expires_at: Some(recorded_at + retention_seconds),
    })
}

/// A page of a product's history, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryPage {
    pub items: Vec<HistoryEntry>,
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ChangeKind;

    fn level(stock: i64, reserved: i64, threshold: i64, change: Option<LastChange>) -> StockLevel {
        StockLevel {
            product_id: ProductId::parse("P-1").unwrap(),
            warehouse_id: WarehouseId::parse("main").unwrap(),
            stock_count: stock,
            reserved_count: reserved,
            available_count: stock - reserved,
            threshold_level: threshold,
            max_per_cart: None,
            status: None,
            version: 1,
            sequence: 0,
            last_updated: "2026-11-26T10:00:00Z".into(),
            pending_alert: None,
            last_change: change,
            reconcile_look: None,
            reconciled_through: None,
            damping: None,
            sharding: None,
            shard: None,
            shard_figures: Vec::new(),
        }
    }

    fn hold() -> LastChange {
        LastChange { kind: ChangeKind::Hold, actor: "shopper".into(), reason: None, reservation_id: Some("r-1".into()) }
    }

    #[test]
    fn a_hold_is_recorded_with_before_and_after() {
        let entry =
            entry_for_change(Some(&level(10, 0, 2, None)), &level(10, 3, 2, Some(hold())), "42", 90, 9).unwrap();
        assert_eq!(entry.before.unwrap().available, 10);
        assert_eq!((entry.after.reserved_count, entry.after.available), (3, 7));
        assert_eq!(entry.change, hold());
        assert_eq!(entry.entry_id, format!("1970-01-01T00:01:30Z#{:0>40}", 42), "ordered by the stream");
        assert_eq!(entry.time, "2026-11-26T10:00:00Z", "shown with the writer's time");
        assert_eq!(entry.expires_at, Some(99));
    }

    #[test]
    fn the_same_record_gives_the_same_entry() {
        let (old, new) = (level(10, 0, 2, None), level(10, 3, 2, Some(hold())));
        assert_eq!(entry_for_change(Some(&old), &new, "7", 1, 1), entry_for_change(Some(&old), &new, "7", 1, 1));
    }

    #[test]
    fn a_created_item_has_no_before() {
        let set = LastChange {
            kind: ChangeKind::Set,
            actor: "admin".into(),
            reason: Some("new".into()),
            reservation_id: None,
        };
        assert_eq!(entry_for_change(None, &level(5, 0, 1, Some(set)), "1", 1, 1).unwrap().before, None);
    }

    #[test]
    fn writes_that_change_no_figure_are_not_history() {
        // The stream consumer writes the alert state on the item; the figures stay the same.
        let mut alerted = level(10, 3, 2, Some(hold()));
        alerted.status = Some(crate::domain::StockStatus::LowStock);
        assert_eq!(entry_for_change(Some(&level(10, 3, 2, Some(hold()))), &alerted, "9", 1, 1), None);
    }
}
