//! Business rules with no I/O: identifiers, stock levels, status.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::InventoryError;
use crate::limits::{ID_PUNCTUATION, MAX_ID_LEN};

/// Checks an id once at the edge; past this point an id is known to be safe for keys, URLs and logs.
fn validate_id(field: &'static str, raw: &str) -> Result<String, InventoryError> {
    let invalid = |why: String| InventoryError::InvalidInput { field, message: why };
    if raw.is_empty() {
        return Err(invalid(format!("{field} must not be empty")));
    }
    if raw.len() > MAX_ID_LEN {
        return Err(invalid(format!("{field} must be at most {MAX_ID_LEN} characters")));
    }
    if let Some(bad) = raw.chars().find(|c| !(c.is_ascii_alphanumeric() || ID_PUNCTUATION.contains(c))) {
        let shown = if bad.is_control() || bad.is_whitespace() { format!("{:?}", bad) } else { format!("'{bad}'") };
        return Err(invalid(format!(
            "{field} may contain only letters, digits and {}; found {shown}",
            ID_PUNCTUATION.iter().map(|c| format!("'{c}'")).collect::<Vec<_>>().join(" ")
        )));
    }
    Ok(raw.to_owned())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn parse(raw: &str) -> Result<Self, InventoryError> {
                validate_id($field, raw).map(Self)
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                Self::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(
    /// A product's id (SKU), e.g. `SKU-42`.
    ProductId,
    "product_id"
);
id_type!(
    /// A warehouse's id, e.g. `main`; `default` for a shop with one.
    WarehouseId,
    "warehouse_id"
);

/// What a shopper can be told about an item. Computed from *available* units: reserved units are
/// not for sale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StockStatus {
    InStock,
    LowStock,
    OutOfStock,
}

impl StockStatus {
    /// available ≤ 0 → OUT_OF_STOCK; available ≤ threshold → LOW_STOCK; else IN_STOCK.
    pub fn for_levels(available: i64, threshold: i64) -> Self {
        if available <= 0 {
            Self::OutOfStock
        } else if available <= threshold {
            Self::LowStock
        } else {
            Self::InStock
        }
    }
}

/// What kind of write changed an item's figures, as the audit trail names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// Admin: the count on the shelf.
    Set,
    /// Admin: a movement of stock (delivery, write-down).
    Adjust,
    /// Admin: the low-stock threshold only.
    Threshold,
    /// Admin: the most units per cart only.
    Limit,
    /// A hold placed.
    Hold,
    /// A hold checked out (sold).
    Committed,
    /// A hold released by its holder.
    Released,
    /// A hold that lapsed (TTL or the backstop).
    Expired,
    /// The reconciler set the counters from the holds on record.
    Reconciled,
    /// Admin: the number of shards the item's stock is split over.
    Sharding,
    /// The rebalancer moved units between two shards of an item (its total is unchanged).
    Rebalanced,
    /// A kind this version does not know (written by a newer or older one): the item stays readable.
    #[serde(other)]
    Unknown,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Set => "set",
            Self::Adjust => "adjust",
            Self::Threshold => "threshold",
            Self::Limit => "limit",
            Self::Hold => "hold",
            Self::Committed => "committed",
            Self::Released => "released",
            Self::Expired => "expired",
            Self::Reconciled => "reconciled",
            Self::Sharding => "sharding",
            Self::Rebalanced => "rebalanced",
            Self::Unknown => "unknown",
        }
    }
}

/// What the last write to a stock item was and who made it: written with every change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastChange {
    pub kind: ChangeKind,
    /// The signed-in admin or shopper, `shopper` (anonymous), or one of the system actors below.
    pub actor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservation_id: Option<String>,
}

/// How audit records name DynamoDB TTL, the scheduled backstop and the reconciler's repairs.
pub const TTL_ACTOR: &str = "system:ttl";
pub const BACKSTOP_ACTOR: &str = "system:backstop";
pub const RECONCILER_ACTOR: &str = "system:reconciler";
pub const REBALANCER_ACTOR: &str = "system:rebalancer";

/// The reconciler's first look at counters that disagreed with the item's holds, kept on the item
/// until the second (see `reconcile`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterLook {
    /// The item's `sequence` when it was seen.
    pub sequence: i64,
    /// Units held by the ACTIVE holds on record then.
    pub active_units: i64,
    pub at: crate::time::EpochSeconds,
}

/// The counters of one product in one warehouse, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockLevel {
    pub product_id: ProductId,
    pub warehouse_id: WarehouseId,
    pub stock_count: i64,
    pub reserved_count: i64,
    pub available_count: i64,
    /// On a shard item (k ≥ 1) absent: the item's threshold is on its main item.
    #[serde(default)]
    pub threshold_level: i64,
    /// Most units of this product one cart may hold at once (admin-set; `None`: the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_per_cart: Option<i64>,
    /// The status the stream consumer last recorded (alert state); never shown as the truth.
    #[serde(default)]
    pub status: Option<StockStatus>,
    /// The shelf's version: changes with every change of `stock_count` or the threshold (admin
    /// writes and checkouts), not with holds, so an admin's compare-and-set from a view is refused
    /// after a sale, but not because carts came and went.
    #[serde(default)]
    pub version: i64,
    /// Grows by one with every write of the figures (holds included): tells whether an item
    /// changed between two reads, e.g. the reconciler's two looks.
    #[serde(default)]
    pub sequence: i64,
    #[serde(default)]
    pub last_updated: String,
    /// An alert claimed by a status change but not yet confirmed published (JSON of `alerts::Alert`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_alert: Option<String>,
    /// Who made the last change of the figures, and why: the audit trail reads it from the stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_change: Option<LastChange>,
    /// The reconciler's first look at counters that disagreed with the item's holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconcile_look: Option<CounterLook>,
    /// Holds deleted by TTL up to this time (epoch seconds) are accounted for by the last repair:
    /// their late stream records must not return their units again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconciled_through: Option<crate::time::EpochSeconds>,
    /// What alert damping keeps between changes (see `alerts::decide`); `None` until the first one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub damping: Option<AlertDamping>,
    /// On the main item: how its stock is split over shard items (see `sharding`); `None`: one item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sharding: Option<ShardLayout>,
    /// Set only on a stock-stream image of a shard item (k ≥ 1): which shard the record is of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<u32>,
    /// A sharded item read whole: each shard's own figures (index 0 is the main item), which the
    /// figures above sum. Empty for an item of one shard, and for a stream image.
    #[serde(skip)]
    pub shard_figures: Vec<ShardFigures>,
}

/// How one product's stock in one warehouse is split over items with distinct partition keys, so a
/// flash sale is not capped by one partition's write rate (see `sharding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardLayout {
    /// Holds are taken from shards `0..count` (shard 0 is the main item).
    pub count: u32,
    /// Shard items that exist and that reads sum: at least `count` (shards left above a lowered
    /// count keep the units of their holds until those end, and hand back what comes back).
    pub span: u32,
}

/// One shard's counters, as read together with the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShardFigures {
    pub index: u32,
    pub stock_count: i64,
    pub reserved_count: i64,
    pub available_count: i64,
    pub version: i64,
    pub sequence: i64,
}

/// The alert state's memory between changes: where the counters stand (which may differ from the
/// state last announced, `StockLevel::status`, while a crossing waits out a quiet period), since
/// when, how many crossings the next alert folds in, and when the quiet period ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertDamping {
    /// The state the counters are in, through the same hysteresis as the announced one: what every
    /// crossing would have announced without damping.
    pub observed: StockStatus,
    /// When the counters entered `observed` (epoch seconds).
    pub observed_since: crate::time::EpochSeconds,
    /// Crossings of `observed` since the last alert; the next alert says how many it stands for.
    pub crossings: u32,
    /// The end of the quiet period after the last alert (epoch seconds).
    pub quiet_until: crate::time::EpochSeconds,
    /// Grows with every write of the alert state: what a write of it is conditioned on (not the
    /// whole map, which a later version may extend).
    #[serde(default)]
    pub revision: i64,
    /// The shelf's `version` the alert state last judged a change of the shelf at: a stream record
    /// of an older shelf change (repeated, or overtaken by holds) is no longer news.
    #[serde(default)]
    pub shelf_version: i64,
}

/// The figures a shopper or admin sees for a product, or for one of its warehouses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Availability {
    pub stock_count: i64,
    pub reserved_count: i64,
    pub available: i64,
    pub threshold_level: i64,
    pub status: StockStatus,
    pub last_updated: String,
}

impl Availability {
    fn of(level: &StockLevel) -> Self {
        Self {
            stock_count: level.stock_count,
            reserved_count: level.reserved_count,
            available: level.available_count,
            threshold_level: level.threshold_level,
            status: StockStatus::for_levels(level.available_count, level.threshold_level),
            last_updated: level.last_updated.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WarehouseAvailability {
    pub warehouse_id: WarehouseId,
    #[serde(flatten)]
    pub figures: Availability,
    /// Most units of the product one cart may hold at once.
    pub max_per_cart: i64,
    /// For an admin's `expected_version`.
    pub version: i64,
    /// The item's write counter: grows with every change of its figures (the admin panel drops a
    /// push or a list row older than the row it shows).
    pub sequence: i64,
    /// The shards its stock is split over (1–32; see `sharding`).
    pub shards: u32,
}

impl WarehouseAvailability {
    pub fn of(level: &StockLevel) -> Self {
        Self {
            warehouse_id: level.warehouse_id.clone(),
            figures: Availability::of(level),
            max_per_cart: level.max_per_cart(),
            version: level.version,
            sequence: level.sequence,
            shards: level.shard_count(),
        }
    }
}

impl StockLevel {
    /// Most units of this product one cart may hold at once.
    pub fn max_per_cart(&self) -> i64 {
        self.max_per_cart.unwrap_or(crate::limits::DEFAULT_MAX_PER_CART)
    }

    /// The shards holds are taken from (1: today's single item).
    pub fn shard_count(&self) -> u32 {
        self.sharding.map_or(1, |layout| layout.count)
    }

    /// The shard items reads sum (1: the main item only).
    pub fn shard_span(&self) -> u32 {
        self.sharding.map_or(1, |layout| layout.span.max(layout.count))
    }

    /// Whether this is (a record of) an item split over more than one stock item: its figures here
    /// are then one shard's, unless read whole (`shard_figures`).
    pub fn is_sharded(&self) -> bool {
        self.shard.is_some() || self.shard_span() > 1
    }
}

/// One product in one warehouse, as the admin list and admin writes answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StockItemView {
    pub product_id: ProductId,
    #[serde(flatten)]
    pub warehouse: WarehouseAvailability,
}

impl From<&StockLevel> for StockItemView {
    fn from(level: &StockLevel) -> Self {
        Self { product_id: level.product_id.clone(), warehouse: WarehouseAvailability::of(level) }
    }
}

/// `GET /inventory/{productId}`: totals over the warehouses, and each warehouse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProductAvailability {
    pub product_id: ProductId,
    #[serde(flatten)]
    pub totals: Availability,
    pub warehouses: Vec<WarehouseAvailability>,
    /// Grows with every change of the product's figures (the sum of its items' write counters):
    /// a live page drops a push older than what it shows.
    pub sequence: i64,
}

impl ProductAvailability {
    /// Sums the warehouses' counters (and thresholds: the product is low when all its warehouses
    /// together are at or under their combined threshold) and computes status from the sums.
    /// `None` when there is no warehouse, i.e. the product is unknown.
    pub fn from_levels(product_id: ProductId, levels: &[StockLevel]) -> Option<Self> {
        if levels.is_empty() {
            return None;
        }
        let sum = |f: fn(&StockLevel) -> i64| levels.iter().map(f).sum::<i64>();
        let available = sum(|l| l.available_count);
        let threshold_level = sum(|l| l.threshold_level);
        let totals = Availability {
            stock_count: sum(|l| l.stock_count),
            reserved_count: sum(|l| l.reserved_count),
            available,
            threshold_level,
            status: StockStatus::for_levels(available, threshold_level),
            // RFC 3339 UTC timestamps of one format order lexically.
            last_updated: levels.iter().map(|l| l.last_updated.as_str()).max().unwrap_or_default().to_owned(),
        };
        let warehouses = levels.iter().map(WarehouseAvailability::of).collect();
        Some(Self { product_id, totals, warehouses, sequence: sum(|l| l.sequence) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(warehouse: &str, stock: i64, reserved: i64, threshold: i64, updated: &str) -> StockLevel {
        StockLevel {
            product_id: ProductId::parse("SKU-1").unwrap(),
            warehouse_id: WarehouseId::parse(warehouse).unwrap(),
            stock_count: stock,
            reserved_count: reserved,
            available_count: stock - reserved,
            threshold_level: threshold,
            max_per_cart: None,
            status: None,
            version: 3,
            sequence: 0,
            last_updated: updated.into(),
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

    #[test]
    fn status_boundaries() {
        assert_eq!(StockStatus::for_levels(-1, 5), StockStatus::OutOfStock);
        assert_eq!(StockStatus::for_levels(0, 5), StockStatus::OutOfStock);
        assert_eq!(StockStatus::for_levels(1, 5), StockStatus::LowStock);
        assert_eq!(StockStatus::for_levels(5, 5), StockStatus::LowStock);
        assert_eq!(StockStatus::for_levels(6, 5), StockStatus::InStock);
        // A zero threshold never reports LOW_STOCK, only out of stock.
        assert_eq!(StockStatus::for_levels(1, 0), StockStatus::InStock);
        assert_eq!(StockStatus::for_levels(0, 0), StockStatus::OutOfStock);
    }

    #[test]
    fn status_serialises_as_the_api_names_it() {
        assert_eq!(serde_json::to_string(&StockStatus::LowStock).unwrap(), "\"LOW_STOCK\"");
        assert_eq!(serde_json::to_string(&StockStatus::OutOfStock).unwrap(), "\"OUT_OF_STOCK\"");
    }

    #[test]
    fn ids_accept_the_documented_alphabet() {
        for ok in ["SKU-42", "a", "main", "eu.west:1_b", &"x".repeat(MAX_ID_LEN)] {
            assert_eq!(ProductId::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn ids_refuse_empty_long_and_unsafe_input() {
        let too_long = "x".repeat(MAX_ID_LEN + 1);
        for bad in ["", too_long.as_str(), "a b", "a/b", "a\u{0}b", "tab\t", "é", "a%20", "<script>"] {
            let err = ProductId::parse(bad).unwrap_err();
            assert!(matches!(err, InventoryError::InvalidInput { field: "product_id", .. }), "{bad:?} gave {err:?}");
        }
        let err = WarehouseId::parse("a\u{7}").unwrap_err();
        assert_eq!(
            err.to_string(),
            "warehouse_id may contain only letters, digits and '-' '_' '.' ':'; found '\\u{7}'"
        );
    }

    #[test]
    fn ids_validate_when_deserialised() {
        assert!(serde_json::from_str::<WarehouseId>("\"main\"").is_ok());
        assert!(serde_json::from_str::<WarehouseId>("\"ma in\"").is_err());
    }

    #[test]
    fn totals_sum_warehouses_and_status_uses_available() {
        let levels = [level("main", 10, 7, 3, "2026-01-01T00:00:00Z"), level("east", 2, 2, 2, "2026-01-02T00:00:00Z")];
        let view = ProductAvailability::from_levels(ProductId::parse("SKU-1").unwrap(), &levels).unwrap();
        assert_eq!(view.totals.stock_count, 12);
        assert_eq!(view.totals.reserved_count, 9);
        assert_eq!(view.totals.available, 3);
        assert_eq!(view.totals.threshold_level, 5);
        assert_eq!(view.totals.status, StockStatus::LowStock);
        assert_eq!(view.totals.last_updated, "2026-01-02T00:00:00Z");
        assert_eq!(view.warehouses[0].figures.status, StockStatus::LowStock);
        assert_eq!(view.warehouses[1].figures.status, StockStatus::OutOfStock);
    }

    #[test]
    fn stored_status_is_not_trusted() {
        let mut stale = level("main", 10, 0, 3, "t");
        stale.status = Some(StockStatus::OutOfStock);
        let view = ProductAvailability::from_levels(ProductId::parse("SKU-1").unwrap(), &[stale]).unwrap();
        assert_eq!(view.totals.status, StockStatus::InStock);
    }

    #[test]
    fn no_warehouses_means_unknown_product() {
        assert!(ProductAvailability::from_levels(ProductId::parse("SKU-1").unwrap(), &[]).is_none());
    }

    #[test]
    fn response_shape_matches_the_contract() {
        let view = ProductAvailability::from_levels(ProductId::parse("SKU-1").unwrap(), &[level("main", 7, 2, 5, "t")])
            .unwrap();
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "product_id": "SKU-1", "stock_count": 7, "reserved_count": 2, "available": 5,
                "threshold_level": 5, "status": "LOW_STOCK", "last_updated": "t",
                "warehouses": [{"warehouse_id": "main", "stock_count": 7, "reserved_count": 2, "available": 5,
                                "threshold_level": 5, "status": "LOW_STOCK", "last_updated": "t",
                                "max_per_cart": crate::limits::DEFAULT_MAX_PER_CART, "version": 3, "sequence": 0,
                                "shards": 1}],
                "sequence": 0
            })
        );
    }
}
