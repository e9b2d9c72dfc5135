//! Stream records as domain events. The entrypoint turns each DynamoDB stream record into one of
//! these before a use case sees it, so `pipeline` never reads the stream's wire format, and the
//! use cases can be driven directly in tests.

use aws_lambda_events::dynamodb::EventRecord;

use crate::domain::StockLevel;
use crate::error::InventoryError;
use crate::holds::Reservation;
use crate::time::EpochSeconds;

/// The identity AWS puts on a stream record of a TTL delete.
pub const TTL_PRINCIPAL: &str = "dynamodb.amazonaws.com";

/// A domain event read from a stream record; `None` for a record that is not one (e.g. a delete of
/// a stock item, or a hold record written rather than removed).
pub trait FromStreamRecord: Sized {
    fn from_record(record: &EventRecord) -> Result<Option<Self>, InventoryError>;
}

/// A stock item written (stock table stream): its figures before and after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockItemChanged {
    /// `None` when the write created the item.
    pub old: Option<StockLevel>,
    pub new: StockLevel,
    /// The stream's sequence number: unique within the stream, ordered per item.
    pub sequence: String,
    /// When the change was made (the stream's clock, whole seconds).
    pub recorded_at: EpochSeconds,
}

impl FromStreamRecord for StockItemChanged {
    fn from_record(record: &EventRecord) -> Result<Option<Self>, InventoryError> {
        // Items are never deleted by the service; a hand-made delete is not a stock change.
        let Some(new) = stock_image(&record.change.new_image)? else { return Ok(None) };
        Ok(Some(Self {
            old: stock_image(&record.change.old_image)?,
            new,
            sequence: record.change.sequence_number.clone().unwrap_or_default(),
            recorded_at: record.change.approximate_creation_date_time.timestamp(),
        }))
    }
}

/// A hold's record deleted by DynamoDB TTL (reservations table stream). Any other record — a write,
/// or someone's DeleteItem — is not this event; the event source mapping lets only TTL deletes
/// through, and that is checked again here, before the image is read, because a filter is
/// configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldRecordRemoved {
    /// The hold as it was when deleted.
    pub hold: Reservation,
    pub deleted_at: EpochSeconds,
}

impl FromStreamRecord for HoldRecordRemoved {
    fn from_record(record: &EventRecord) -> Result<Option<Self>, InventoryError> {
        let by_ttl = record
            .user_identity
            .as_ref()
            .is_some_and(|who| who.type_ == "Service" && who.principal_id == TTL_PRINCIPAL);
        if record.event_name != "REMOVE" || !by_ttl {
            return Ok(None);
        }
        let Some(hold) = image(&record.change.old_image, "reservation")? else { return Ok(None) };
        Ok(Some(Self { hold, deleted_at: record.change.approximate_creation_date_time.timestamp() }))
    }
}

/// A stock item's image; a shard item's (`"<product>#<k>"`, see `sharding`) as its product's, with
/// `shard` saying which.
fn stock_image(item: &serde_dynamo::Item) -> Result<Option<StockLevel>, InventoryError> {
    use serde_dynamo::AttributeValue;
    let shard_of = match item.get("product_id") {
        Some(AttributeValue::S(id)) => {
            id.split_once('#').map(|(product, shard)| (product.to_owned(), shard.to_owned()))
        }
        _ => None,
    };
    let Some((product, shard)) = shard_of else { return image(item, "stock") };
    let mut item = item.clone();
    item.insert("product_id".into(), AttributeValue::S(product));
    item.insert("shard".into(), AttributeValue::N(shard));
    image(&item, "stock")
}

fn image<T: serde::de::DeserializeOwned>(item: &serde_dynamo::Item, what: &str) -> Result<Option<T>, InventoryError> {
    if item.is_empty() {
        return Ok(None);
    }
    serde_dynamo::from_item(item.clone())
        .map(Some)
        .map_err(|err| InventoryError::internal(format!("malformed {what} image: {err}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(json: serde_json::Value) -> EventRecord {
        serde_json::from_value(json).expect("a stream record")
    }

    fn hold_image() -> serde_json::Value {
        serde_json::json!({
            "reservation_id": {"S": "0b6f4f8e-3c1e-4d8e-9a53-2f1c8e9f0a11"}, "product_id": {"S": "SKU-1"},
            "warehouse_id": {"S": "main"}, "quantity": {"N": "2"}, "state": {"S": "ACTIVE"},
            "created_at": {"N": "100"}, "expires_at": {"N": "1000"}, "request_fingerprint": {"S": "quantity=2"}
        })
    }

    fn removal(user_identity: serde_json::Value) -> EventRecord {
        record(serde_json::json!({
            "eventID": "1", "eventName": "REMOVE", "eventSource": "aws:dynamodb", "awsRegion": "eu-west-1",
            "userIdentity": user_identity,
            "dynamodb": {"ApproximateCreationDateTime": 1200.0, "Keys": {}, "OldImage": hold_image(),
                         "SequenceNumber": "5", "SizeBytes": 1, "StreamViewType": "NEW_AND_OLD_IMAGES"}
        }))
    }

    fn by_ttl() -> serde_json::Value {
        serde_json::json!({"type": "Service", "principalId": TTL_PRINCIPAL})
    }

    #[test]
    fn a_shard_item_is_read_as_its_product_with_its_shard() {
        let change = record(serde_json::json!({
            "eventID": "1", "eventName": "MODIFY", "eventSource": "aws:dynamodb", "awsRegion": "eu-west-1",
            "dynamodb": {"ApproximateCreationDateTime": 1200.0, "Keys": {}, "SequenceNumber": "7", "SizeBytes": 1,
                         "StreamViewType": "NEW_AND_OLD_IMAGES",
                         "NewImage": {"product_id": {"S": "SKU-1#3"}, "warehouse_id": {"S": "main"}, "shard": {"N": "3"},
                                      "stock_count": {"N": "4"}, "reserved_count": {"N": "1"}, "available_count": {"N": "3"},
                                      "version": {"N": "0"}, "sequence": {"N": "2"}}}
        }));
        let change = StockItemChanged::from_record(&change).unwrap().unwrap();
        assert_eq!(
            (change.new.product_id.as_str(), change.new.shard, change.new.available_count),
            ("SKU-1", Some(3), 3)
        );
        assert!(change.new.is_sharded() && change.old.is_none());
    }

    #[test]
    fn only_a_ttl_delete_is_a_hold_removed() {
        let removed = HoldRecordRemoved::from_record(&removal(by_ttl())).unwrap().unwrap();
        assert_eq!((removed.deleted_at, removed.hold.quantity.units()), (1200, 2));
        assert_eq!(HoldRecordRemoved::from_record(&removal(serde_json::Value::Null)).unwrap(), None);
    }

    #[test]
    fn a_malformed_ttl_image_is_an_error_and_a_hand_made_delete_is_no_event_at_all() {
        let malformed = |user_identity| {
            let mut record = removal(user_identity);
            record.change.old_image.insert("quantity".into(), serde_dynamo::AttributeValue::S("two".into()));
            record
        };
        assert!(HoldRecordRemoved::from_record(&malformed(by_ttl())).is_err());
        assert_eq!(HoldRecordRemoved::from_record(&malformed(serde_json::Value::Null)).unwrap(), None);
    }
}
