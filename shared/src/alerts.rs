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

use serde::{Deserialize, Serialize};

use crate::domain::{ProductId, StockLevel, StockStatus, WarehouseId};
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

/// The message published to the alerts topic: a readable e-mail and a machine-readable body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// Stable per crossing: a subscriber drops a rare duplicate delivery by it.
    pub alert_id: String,
    #[serde(rename = "type")]
    pub kind: AlertType,
    pub product_id: ProductId,
    pub warehouse_id: WarehouseId,
    pub available: i64,
    pub stock_count: i64,
    pub reserved_count: i64,
    pub threshold_level: i64,
    pub at: String,
}

impl Alert {
    pub fn new(alert_id: String, kind: AlertType, level: &StockLevel, at: EpochSeconds) -> Self {
        Self {
            alert_id,
            kind,
            product_id: level.product_id.clone(),
            warehouse_id: level.warehouse_id.clone(),
            available: level.available_count,
            stock_count: level.stock_count,
            reserved_count: level.reserved_count,
            threshold_level: level.threshold_level,
            at: rfc3339(at),
        }
    }

    /// SNS subjects are ASCII, single-line, under 100 characters: e-mail clients show it as is.
    pub fn subject(&self) -> String {
        let (product, warehouse) = (&self.product_id, &self.warehouse_id);
        let available = self.available.max(0);
        let subject = match self.kind {
            AlertType::LowStock => {
                format!("Low stock: {product} at {warehouse} - {available} left (threshold {})", self.threshold_level)
            }
            AlertType::OutOfStock => format!("Out of stock: {product} at {warehouse}"),
            AlertType::BackInStock => format!("Back in stock: {product} at {warehouse} - {available} available"),
        };
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

    #[test]
    fn subjects_read_well_and_stay_ascii() {
        let level = StockLevel {
            product_id: ProductId::parse("SKU-42").unwrap(),
            warehouse_id: WarehouseId::parse("main").unwrap(),
            stock_count: 5,
            reserved_count: 2,
            available_count: 3,
            threshold_level: 5,
            max_per_cart: None,
            status: None,
            version: 1,
            sequence: 0,
            last_updated: String::new(),
            pending_alert: None,
            last_change: None,
            reconcile_look: None,
            reconciled_through: None,
        };
        let low = Alert::new("a1".into(), A::LowStock, &level, 0);
        assert_eq!(low.subject(), "Low stock: SKU-42 at main - 3 left (threshold 5)");
        assert_eq!(Alert::new("a2".into(), A::OutOfStock, &level, 0).subject(), "Out of stock: SKU-42 at main");
        assert!(low.subject().is_ascii());
        let body = serde_json::to_value(&low).unwrap();
        assert_eq!(body["type"], "LOW_STOCK");
        assert_eq!(body["alert_id"], "a1");
        assert_eq!(body["at"], "1970-01-01T00:00:00Z");
    }
}
