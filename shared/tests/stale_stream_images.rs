//! A stream image can be older than the item it shows: an alert that was pending when the image was
//! taken may have been published and confirmed since. Such an image must not publish it again.
//! (Found in CI: a wobbling-stock test got the same LOW_STOCK alert twice.)

use std::sync::atomic::{AtomicUsize, Ordering};

use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
use aws_sdk_dynamodb::operation::update_item::UpdateItemOutput;
use aws_sdk_dynamodb::Client;
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use shared::alerts::{Alert, AlertPolicy, AlertType};
use shared::config::Config;
use shared::domain::{ProductId, StockLevel, StockStatus, WarehouseId};
use shared::pipeline::settle_alert;
use shared::store::dynamo::DynamoStore;
use shared::store::AlertPublisher;
use shared::InventoryError;

#[derive(Default)]
struct CountingPublisher(AtomicUsize);

#[async_trait::async_trait]
impl AlertPublisher for CountingPublisher {
    async fn publish(&self, _alert: &Alert) -> Result<(), InventoryError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

fn low(pending: Option<&Alert>) -> StockLevel {
    StockLevel {
        product_id: ProductId::parse("SKU-1").unwrap(),
        warehouse_id: WarehouseId::parse("main").unwrap(),
        stock_count: 20,
        reserved_count: 14,
        available_count: 6,
        threshold_level: 10,
        max_per_cart: None,
        status: Some(StockStatus::LowStock),
        version: 1,
        sequence: 0,
        last_updated: "2026-11-26T10:00:00Z".into(),
        pending_alert: pending.map(|alert| serde_json::to_string(alert).unwrap()),
        last_change: None,
        reconcile_look: None,
        reconciled_through: None,
        damping: None,
        sharding: None,
        shard: None,
        shard_figures: Vec::new(),
    }
}

fn store_holding(item: StockLevel) -> DynamoStore {
    let get = mock!(Client::get_item)
        .then_output(move || GetItemOutput::builder().set_item(Some(serde_dynamo::to_item(&item).unwrap())).build());
    let finish = mock!(Client::update_item).then_output(|| UpdateItemOutput::builder().build());
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&get, &finish]);
    DynamoStore::new(
        client,
        Config { stock_table: "stock".into(), reservations_table: "holds".into(), requests_table: "requests".into() },
    )
}

fn alert() -> Alert {
    Alert::new("a-1".into(), (AlertType::LowStock, 1), &low(None), 0)
}

#[tokio::test]
async fn an_alert_confirmed_since_the_image_was_taken_is_not_published_again() {
    let publisher = CountingPublisher::default();
    let store = store_holding(low(None)); // the item now: published and confirmed
    let sent =
        settle_alert(&store, &publisher, AlertPolicy { quiet_seconds: 0 }, low(Some(&alert())), 0).await.unwrap();
    assert_eq!((sent, publisher.0.load(Ordering::SeqCst)), (vec![], 0));
}

#[tokio::test]
async fn an_alert_still_pending_is_published() {
    let publisher = CountingPublisher::default();
    let store = store_holding(low(Some(&alert()))); // claimed, never confirmed
    let sent =
        settle_alert(&store, &publisher, AlertPolicy { quiet_seconds: 0 }, low(Some(&alert())), 0).await.unwrap();
    assert_eq!((sent, publisher.0.load(Ordering::SeqCst)), (vec![AlertType::LowStock], 1));
}
