//! Idempotency records: what a request did, kept for two days in the requests table and written in
//! the same transaction as the change itself. A retry — the client's, or the SDK's own after an
//! answer was lost — finds the record and changes nothing a second time.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::admin::StockUpdate;
use crate::domain::ProductId;
use crate::holds::{IdempotencyKey, Reservation};
use crate::time::EpochSeconds;

/// How long a request is remembered: a retry within this time is answered, never applied again.
/// Longer than the longest hold (24 h), so a retry of a lapsed hold's request still finds it.
pub const REQUEST_RETENTION_SECONDS: i64 = 2 * 24 * 3600;

/// One request as the requests table keeps it (`purge_at` is the table's TTL attribute).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    pub request_key: String,
    /// What a retry must repeat exactly; a different request under the same key is refused (422).
    pub fingerprint: String,
    /// For a hold: the hold as placed, so a retry is answered even after its record is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<Reservation>,
    pub created_at: EpochSeconds,
    pub purge_at: EpochSeconds,
}

impl RequestRecord {
    fn new(request_key: String, fingerprint: String, hold: Option<Reservation>, now: EpochSeconds) -> Self {
        Self { request_key, fingerprint, hold, created_at: now, purge_at: now + REQUEST_RETENTION_SECONDS }
    }

    /// A reserve with an Idempotency-Key. The key is the client's, scoped to its cart and the
    /// product: the same key from another cart is another request, never the first one's hold.
    // Keys are joined with '\n', which no id or key may contain, so two scopes never collide.
    pub fn for_hold(key: &IdempotencyKey, hold: &Reservation, now: EpochSeconds) -> Self {
        let cart = hold.cart.as_ref().map_or("", |cart| cart.as_str());
        let request_key = format!("hold\n{cart}\n{}\n{}", hold.product_id, key.as_str());
        Self::new(request_key, hold.request_fingerprint.clone(), Some(hold.clone()), now)
    }

    /// An admin change, scoped to the admin and the product. Without a client key the write still
    /// gets a record of its own (a random key), so the SDK's retry of a write whose answer was lost
    /// finds it and cannot apply the change twice.
    pub fn for_admin(
        product: &ProductId,
        actor: &str,
        key: Option<&IdempotencyKey>,
        update: &StockUpdate,
        now: EpochSeconds,
    ) -> Self {
        let key = key.map_or_else(|| format!("server:{}", Uuid::new_v4()), |key| key.as_str().to_owned());
        Self::new(format!("admin\n{actor}\n{product}\n{key}"), update.fingerprint(), None, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::StockChange;
    use crate::domain::WarehouseId;
    use crate::holds::{Quantity, ReservationId, ReserveRequest};

    fn update(change: StockChange) -> StockUpdate {
        StockUpdate {
            warehouse_id: WarehouseId::parse("main").unwrap(),
            change: Some(change),
            threshold_level: None,
            max_per_cart: None,
            reason: None,
            expected_version: None,
            shards: None,
        }
    }

    #[test]
    fn admin_requests_are_scoped_to_admin_and_product() {
        let key = IdempotencyKey::parse("0b0e4c8e-5d3c-4a8e-9d47-2f1f0c7a9e11").unwrap();
        let sku1 = ProductId::parse("SKU-1").unwrap();
        let sku2 = ProductId::parse("SKU-2").unwrap();
        let set = update(StockChange::Set(5));
        let record = |product, actor| RequestRecord::for_admin(product, actor, Some(&key), &set, 100).request_key;
        assert_eq!(record(&sku1, "user:a"), record(&sku1, "user:a"));
        assert_ne!(record(&sku1, "user:a"), record(&sku2, "user:a"));
        assert_ne!(record(&sku1, "user:a"), record(&sku1, "user:b"));
        // Without a key every write is a request of its own.
        let unkeyed = || RequestRecord::for_admin(&sku1, "user:a", None, &set, 100).request_key;
        assert_ne!(unkeyed(), unkeyed());
        assert_eq!(
            RequestRecord::for_admin(&sku1, "user:a", None, &set, 100).purge_at,
            100 + REQUEST_RETENTION_SECONDS
        );
    }

    #[test]
    fn a_hold_request_keeps_the_hold() {
        let key = IdempotencyKey::parse("0b0e4c8e-5d3c-4a8e-9d47-2f1f0c7a9e11").unwrap();
        let request = ReserveRequest { quantity: Quantity::new(2).unwrap(), warehouse_id: None };
        let hold = Reservation::new(
            ReservationId::random(),
            ProductId::parse("SKU-1").unwrap(),
            WarehouseId::parse("main").unwrap(),
            &request,
            100,
            900,
        );
        let record = RequestRecord::for_hold(&key, &hold, 100);
        assert_eq!(record.hold.as_ref(), Some(&hold));
        assert_eq!(record.fingerprint, request.fingerprint());
        let item: serde_dynamo::Item = serde_dynamo::to_item(&record).unwrap();
        assert_eq!(serde_dynamo::from_item::<_, RequestRecord>(item).unwrap(), record);
    }
}
