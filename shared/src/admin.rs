//! What an admin may change on a stock item, and the checkout body that shares its route.

use serde::Deserialize;

use crate::domain::{ChangeKind, WarehouseId};
use crate::error::InventoryError;
use crate::holds::ReservationId;
use crate::limits::{DEFAULT_WAREHOUSE, MAX_HOLD_QUANTITY, MAX_JSON_INTEGER, MAX_REASON_LEN, MAX_SHARDS, MAX_STOCK};

/// `PUT /inventory/{productId}` carries either a checkout or an admin change; the fields decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutRequest {
    Checkout(ReservationId),
    Admin(StockUpdate),
}

impl PutRequest {
    pub fn from_json(body: serde_json::Value) -> Result<Self, InventoryError> {
        let fields =
            body.as_object().ok_or_else(|| InventoryError::invalid("body", "request body must be a JSON object"))?;
        if fields.contains_key("reservation_id") {
            let checkout: CheckoutBody = from_value(body)?;
            Ok(Self::Checkout(checkout.reservation_id))
        } else {
            let admin: AdminBody = from_value(body)?;
            admin.validate().map(Self::Admin)
        }
    }
}

fn from_value<T: serde::de::DeserializeOwned>(body: serde_json::Value) -> Result<T, InventoryError> {
    serde_path_to_error::deserialize(body).map_err(|err| {
        let path = err.path().to_string();
        let message = err.into_inner().to_string();
        let message = if path == "." { format!("request body: {message}") } else { format!("{path}: {message}") };
        InventoryError::invalid("body", message)
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckoutBody {
    reservation_id: ReservationId,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdminBody {
    stock_count: Option<i64>,
    adjust_by: Option<i64>,
    threshold_level: Option<i64>,
    max_per_cart: Option<i64>,
    warehouse_id: Option<WarehouseId>,
    reason: Option<String>,
    expected_version: Option<i64>,
    shards: Option<i64>,
}

/// A change of on-hand stock: the count on the shelf (set) or a movement (adjust).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StockChange {
    Set(i64),
    Adjust(i64),
}

impl StockChange {
    pub fn kind(self) -> ChangeKind {
        match self {
            Self::Set(_) => ChangeKind::Set,
            Self::Adjust(_) => ChangeKind::Adjust,
        }
    }
}

/// A validated admin change of one product in one warehouse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockUpdate {
    pub warehouse_id: WarehouseId,
    pub change: Option<StockChange>,
    pub threshold_level: Option<i64>,
    /// Most units of the product one cart may hold at once.
    pub max_per_cart: Option<i64>,
    pub reason: Option<String>,
    /// Compare-and-swap: apply only if the item's version is this one.
    pub expected_version: Option<i64>,
    /// The shards to split the item's stock over from now on (see `sharding`).
    pub shards: Option<u32>,
}

impl StockUpdate {
    /// What the audit record calls this change.
    pub fn kind(&self) -> ChangeKind {
        match (self.change, self.threshold_level, self.max_per_cart) {
            (Some(change), _, _) => change.kind(),
            (None, Some(_), _) => ChangeKind::Threshold,
            (None, None, Some(_)) => ChangeKind::Limit,
            (None, None, None) => ChangeKind::Sharding,
        }
    }

    /// What a retry with the same Idempotency-Key must repeat exactly.
    pub fn fingerprint(&self) -> String {
        format!(
            "warehouse={};change={:?};threshold={:?};max_per_cart={:?};reason={:?};expected_version={:?}{}",
            self.warehouse_id,
            self.change,
            self.threshold_level,
            self.max_per_cart,
            self.reason,
            self.expected_version,
            // Absent from the fingerprints of requests made before shards existed.
            self.shards.map(|n| format!(";shards={n}")).unwrap_or_default()
        )
    }
}

impl AdminBody {
    fn validate(self) -> Result<StockUpdate, InventoryError> {
        let change = match (self.stock_count, self.adjust_by) {
            (Some(_), Some(_)) => {
                return Err(InventoryError::invalid("body", "give stock_count (set) or adjust_by (adjust), not both"))
            }
            (Some(count), None) if !(0..=MAX_STOCK).contains(&count) => {
                return Err(InventoryError::invalid(
                    "stock_count",
                    format!("stock_count must be from 0 to {MAX_STOCK}"),
                ))
            }
            (Some(count), None) => Some(StockChange::Set(count)),
            (None, Some(delta)) if delta == 0 || delta.abs() > MAX_STOCK => {
                return Err(InventoryError::invalid(
                    "adjust_by",
                    format!("adjust_by must be a non-zero whole number from -{MAX_STOCK} to {MAX_STOCK}"),
                ))
            }
            (None, Some(delta)) => Some(StockChange::Adjust(delta)),
            (None, None) => None,
        };
        if let Some(threshold) = self.threshold_level {
            if !(0..=MAX_STOCK).contains(&threshold) {
                return Err(InventoryError::invalid(
                    "threshold_level",
                    format!("threshold_level must be from 0 to {MAX_STOCK}"),
                ));
            }
        }
        if let Some(most) = self.max_per_cart {
            if !(1..=MAX_HOLD_QUANTITY).contains(&most) {
                return Err(InventoryError::invalid(
                    "max_per_cart",
                    format!("max_per_cart must be from 1 to {MAX_HOLD_QUANTITY}"),
                ));
            }
        }
        let shards = match self.shards {
            Some(n) if !(1..=i64::from(MAX_SHARDS)).contains(&n) => {
                return Err(InventoryError::invalid("shards", format!("shards must be from 1 to {MAX_SHARDS}")))
            }
            Some(n) => u32::try_from(n).ok(),
            None => None,
        };
        if change.is_none() && self.threshold_level.is_none() && self.max_per_cart.is_none() && shards.is_none() {
            return Err(InventoryError::invalid(
                "body",
                "nothing to change: give stock_count, adjust_by, threshold_level, max_per_cart or shards (or reservation_id to check out)",
            ));
        }
        if let Some(version) = self.expected_version {
            if !(0..=MAX_JSON_INTEGER).contains(&version) {
                return Err(InventoryError::invalid(
                    "expected_version",
                    "expected_version must be a version returned by GET, or 0 for an item that must not exist yet",
                ));
            }
        }
        let reason = self.reason.map(|r| r.trim().to_owned()).filter(|r| !r.is_empty());
        if let Some(reason) = &reason {
            if reason.chars().count() > MAX_REASON_LEN || reason.chars().any(char::is_control) {
                return Err(InventoryError::invalid(
                    "reason",
                    format!("reason must be at most {MAX_REASON_LEN} characters, without control characters"),
                ));
            }
        }
        let warehouse_id = match self.warehouse_id {
            Some(warehouse) => warehouse,
            None => WarehouseId::parse(DEFAULT_WAREHOUSE)?,
        };
        Ok(StockUpdate {
            warehouse_id,
            change,
            threshold_level: self.threshold_level,
            max_per_cart: self.max_per_cart,
            reason,
            expected_version: self.expected_version,
            shards,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(body: serde_json::Value) -> Result<PutRequest, InventoryError> {
        PutRequest::from_json(body)
    }

    fn admin(body: serde_json::Value) -> StockUpdate {
        match parse(body).unwrap() {
            PutRequest::Admin(update) => update,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn checkout_body_is_just_a_reservation_id() {
        let id = "0b0e4c8e-5d3c-4a8e-9d47-2f1f0c7a9e11";
        assert!(matches!(parse(json!({"reservation_id": id})).unwrap(), PutRequest::Checkout(_)));
        assert!(parse(json!({"reservation_id": "nope"})).is_err());
        assert!(parse(json!({"reservation_id": id, "stock_count": 3})).is_err());
    }

    #[test]
    fn set_adjust_and_threshold() {
        assert_eq!(admin(json!({"stock_count": 40})).change, Some(StockChange::Set(40)));
        let update = admin(json!({"adjust_by": -3, "reason": " write-off ", "warehouse_id": "east"}));
        assert_eq!(update.change, Some(StockChange::Adjust(-3)));
        assert_eq!(update.reason.as_deref(), Some("write-off"));
        assert_eq!(update.warehouse_id.as_str(), "east");
        let update = admin(json!({"threshold_level": 7}));
        assert_eq!((update.change, update.threshold_level, update.kind()), (None, Some(7), ChangeKind::Threshold));
        assert_eq!(admin(json!({"stock_count": 0})).warehouse_id.as_str(), "default");
        let update = admin(json!({"max_per_cart": 2}));
        assert_eq!((update.max_per_cart, update.kind()), (Some(2), ChangeKind::Limit));
        let update = admin(json!({"shards": 8}));
        assert_eq!((update.shards, update.kind()), (Some(8), ChangeKind::Sharding));
        assert_eq!(admin(json!({"stock_count": 5, "shards": 2})).kind(), ChangeKind::Set);
    }

    #[test]
    fn refuses_what_makes_no_sense() {
        for body in [
            json!({}),
            json!({"stock_count": 1, "adjust_by": 1}),
            json!({"stock_count": -1}),
            json!({"stock_count": 1.5}),
            json!({"stock_count": "5"}),
            json!({"stock_count": MAX_STOCK + 1}),
            json!({"adjust_by": 0}),
            json!({"adjust_by": -MAX_STOCK - 1}),
            json!({"threshold_level": -1}),
            json!({"max_per_cart": 0}),
            json!({"max_per_cart": MAX_HOLD_QUANTITY + 1}),
            json!({"shards": 0}),
            json!({"shards": 33}),
            json!({"shards": 2.5}),
            json!({"stock_count": 1, "expected_version": -1}),
            json!({"stock_count": 1, "expected_version": MAX_JSON_INTEGER + 1}),
            json!({"stock_count": 1, "reason": "x".repeat(MAX_REASON_LEN + 1)}),
            json!({"stock_count": 1, "reason": "line\nbreak"}),
            json!({"stock_count": 1, "colour": "red"}),
            json!({"stock_count": 1, "warehouse_id": ""}),
            json!([]),
            json!("stock"),
        ] {
            assert!(parse(body.clone()).is_err(), "{body} was accepted");
        }
    }

    #[test]
    fn errors_name_the_field() {
        let err = parse(json!({"stock_count": "5"})).unwrap_err();
        assert!(err.to_string().starts_with("stock_count: invalid type"), "{err}");
        let err = parse(json!({"stock_count": 1, "colour": "red"})).unwrap_err();
        assert!(err.to_string().contains("unknown field `colour`"), "{err}");
    }
}
