//! How DynamoDB's answers become domain outcomes and HTTP statuses, with the SDK's HTTP answered
//! in-process (aws-smithy-mocks): throttling and timeouts that real AWS produces and the local AWS
//! cannot be made to.

use aws_sdk_dynamodb::error::ErrorMetadata;
use std::collections::HashMap;

use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
use aws_sdk_dynamodb::operation::query::QueryError;
use aws_sdk_dynamodb::operation::transact_write_items::{TransactWriteItemsError, TransactWriteItemsOutput};
use aws_sdk_dynamodb::types::error::{ProvisionedThroughputExceededException, TransactionCanceledException};
use aws_sdk_dynamodb::types::{AttributeValue, CancellationReason};
use aws_sdk_dynamodb::Client;
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use shared::admin::{StockChange, StockUpdate};
use shared::api::respond;
use shared::config::Config;
use shared::domain::{ProductId, WarehouseId};
use shared::holds::{CartToken, IdempotencyKey, Quantity, Reservation, ReservationId, ReserveRequest};
use shared::requests::RequestRecord;
use shared::store::dynamo::DynamoStore;
use shared::store::{AdminOutcome, HoldStore, PlaceOutcome, StockAdmin, StockReader};
use shared::InventoryError;

fn store(client: Client) -> DynamoStore {
    DynamoStore::new(
        client,
        Config { stock_table: "stock".into(), reservations_table: "holds".into(), requests_table: "requests".into() },
    )
}

fn hold() -> Reservation {
    let request = ReserveRequest { quantity: Quantity::new(2).unwrap(), warehouse_id: None };
    let mut hold = Reservation::new(
        ReservationId::random(),
        ProductId::parse("SKU-1").unwrap(),
        WarehouseId::parse("main").unwrap(),
        &request,
        1_000,
        900,
    );
    hold.cart = Some(CartToken::parse("a-cart-token-of-at-least-22-chars").unwrap().cart());
    hold
}

/// A reserve first reads the item's shard count (an item of one shard here: the main item).
fn one_shard() -> aws_smithy_mocks::Rule {
    mock!(Client::get_item).then_output(|| GetItemOutput::builder().set_item(Some(stock_item(10, 1))).build())
}

fn cancelled(reasons: Vec<CancellationReason>) -> TransactWriteItemsError {
    TransactWriteItemsError::TransactionCanceledException(
        TransactionCanceledException::builder().set_cancellation_reasons(Some(reasons)).build(),
    )
}

fn reason(code: &str) -> CancellationReason {
    CancellationReason::builder().code(code).build()
}

#[tokio::test]
async fn throttling_becomes_503_with_retry_after() {
    let throttled = mock!(Client::query).then_error(|| {
        QueryError::ProvisionedThroughputExceededException(
            ProvisionedThroughputExceededException::builder()
                .message("slow down")
                .meta(ErrorMetadata::builder().code("ProvisionedThroughputExceededException").build())
                .build(),
        )
    });
    // The SDK retries throttling itself; every attempt is throttled here.
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&throttled], |c| c
        .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::standard().with_max_attempts(2)));
    let err = store(client).stock_levels(&ProductId::parse("SKU-1").unwrap(), None).await.unwrap_err();
    assert!(matches!(err, InventoryError::Unavailable { .. }), "{err:?}");
    let response = respond::<()>(Err(err), "req-1");
    assert_eq!(response.status_code, 503);
    assert_eq!(response.headers["retry-after"], "1");
}

#[tokio::test]
async fn a_failed_stock_condition_is_insufficient_stock_with_what_is_available() {
    let rule = mock!(Client::transact_write_items).then_error(|| {
        let stock = CancellationReason::builder()
            .code("ConditionalCheckFailed")
            .item("available_count", AttributeValue::N("1".into()))
            .build();
        cancelled(vec![stock, reason("None")])
    });
    let layout = one_shard();
    let client = mock_client!(aws_sdk_dynamodb, [&layout, &rule]);
    assert_eq!(
        store(client).place_hold(&hold(), 20, None, "shopper").await.unwrap(),
        PlaceOutcome::Insufficient { available: 1 }
    );
}

#[tokio::test]
async fn a_failed_stock_condition_without_an_item_means_no_stock_record() {
    let rule = mock!(Client::transact_write_items)
        .then_error(|| cancelled(vec![reason("ConditionalCheckFailed"), reason("None")]));
    let layout = one_shard();
    let client = mock_client!(aws_sdk_dynamodb, [&layout, &rule]);
    assert_eq!(store(client).place_hold(&hold(), 20, None, "shopper").await.unwrap(), PlaceOutcome::NoStockItem);
}

fn idempotency_key() -> IdempotencyKey {
    IdempotencyKey::parse("0b0e4c8e-5d3c-4a8e-9d47-2f1f0c7a9e11").unwrap()
}

#[tokio::test]
async fn an_earlier_request_wins_over_insufficient_stock() {
    let earlier = RequestRecord::for_hold(&idempotency_key(), &hold(), 1_000);
    let item: HashMap<String, AttributeValue> = serde_dynamo::to_item(&earlier).unwrap();
    let rule = mock!(Client::transact_write_items).then_error(move || {
        let request = CancellationReason::builder().code("ConditionalCheckFailed").set_item(Some(item.clone())).build();
        cancelled(vec![reason("ConditionalCheckFailed"), reason("None"), reason("None"), request])
    });
    let layout = one_shard();
    let client = mock_client!(aws_sdk_dynamodb, [&layout, &rule]);
    let retry = hold();
    let request = RequestRecord::for_hold(&idempotency_key(), &retry, 1_001);
    assert_eq!(
        store(client).place_hold(&retry, 20, Some(&request), "shopper").await.unwrap(),
        PlaceOutcome::AlreadyRequested(Box::new(earlier))
    );
}

fn stock_item(stock: i64, version: i64) -> HashMap<String, AttributeValue> {
    let n = |v: i64| AttributeValue::N(v.to_string());
    HashMap::from([
        ("product_id".to_owned(), AttributeValue::S("SKU-1".into())),
        ("warehouse_id".to_owned(), AttributeValue::S("main".into())),
        ("stock_count".to_owned(), n(stock)),
        ("reserved_count".to_owned(), n(0)),
        ("available_count".to_owned(), n(stock)),
        ("threshold_level".to_owned(), n(5)),
        ("version".to_owned(), n(version)),
    ])
}

/// The fault that double-applies a plain write: the adjustment is applied, its answer is lost (a
/// 500), and the SDK retries. The retry finds the write's own request record and changes nothing.
#[tokio::test]
async fn an_admin_write_whose_answer_was_lost_is_not_applied_again() {
    let update = StockUpdate {
        warehouse_id: WarehouseId::parse("main").unwrap(),
        change: Some(StockChange::Adjust(5)),
        threshold_level: None,
        max_per_cart: None,
        reason: None,
        expected_version: None,
        shards: None,
    };
    let product = ProductId::parse("SKU-1").unwrap();
    let request = RequestRecord::for_admin(&product, "user:a", None, &update, 1_000);
    let recorded: HashMap<String, AttributeValue> = serde_dynamo::to_item(&request).unwrap();
    let applied_then_lost = mock!(Client::transact_write_items)
        .sequence()
        .http_status(500, Some(r#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError"}"#.into()))
        .error(move || {
            let mine =
                CancellationReason::builder().code("ConditionalCheckFailed").set_item(Some(recorded.clone())).build();
            cancelled(vec![reason("None"), mine])
        })
        .build();
    let read =
        mock!(Client::get_item).then_output(|| GetItemOutput::builder().set_item(Some(stock_item(15, 2))).build());
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&applied_then_lost, &read], |c| c
        .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::standard().with_max_attempts(3)));
    let outcome = store(client).update_stock(&product, &update, &request, "user:a", 1_000).await.unwrap();
    assert_eq!(applied_then_lost.num_calls(), 2, "the SDK retried the write once");
    match outcome {
        AdminOutcome::Replayed { same_request: true, current: Some(level) } => assert_eq!(level.stock_count, 15),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn transaction_conflicts_are_retried_then_succeed() {
    let conflict_twice_then_ok = mock!(Client::transact_write_items)
        .sequence()
        .error(|| cancelled(vec![reason("TransactionConflict"), reason("None")]))
        .times(2)
        .output(|| TransactWriteItemsOutput::builder().build())
        .build();
    let layout = one_shard();
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&layout, &conflict_twice_then_ok]);
    assert_eq!(store(client).place_hold(&hold(), 20, None, "shopper").await.unwrap(), PlaceOutcome::Placed);
    assert_eq!(conflict_twice_then_ok.num_calls(), 3);
}

#[tokio::test]
async fn transaction_conflicts_that_persist_become_503() {
    let conflict = mock!(Client::transact_write_items)
        .then_error(|| cancelled(vec![reason("TransactionConflict"), reason("None")]));
    let layout = one_shard();
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&layout, &conflict]);
    let err = store(client).place_hold(&hold(), 20, None, "shopper").await.unwrap_err();
    assert_eq!(err.status(), 503);
    assert_eq!(conflict.num_calls(), 4);
}

/// The cart's condition failed: its record (ALL_OLD) tells which limit.
#[tokio::test]
async fn a_full_cart_is_told_apart_from_a_cart_at_its_units_limit() {
    let cart_failed = |holds: i64, units: i64| {
        let rule = mock!(Client::transact_write_items).then_error(move || {
            let cart = CancellationReason::builder()
                .code("ConditionalCheckFailed")
                .item("holds", AttributeValue::N(holds.to_string()))
                .item("units:SKU-1", AttributeValue::N(units.to_string()))
                .build();
            cancelled(vec![reason("None"), reason("None"), cart])
        });
        let layout = one_shard();
        (mock_client!(aws_sdk_dynamodb, [&layout, &rule]), (layout, rule))
    };
    let (client, _rule) = cart_failed(20, 2);
    assert_eq!(store(client).place_hold(&hold(), 20, None, "shopper").await.unwrap(), PlaceOutcome::CartHoldsFull);
    let (client, _rule) = cart_failed(3, 19);
    assert_eq!(
        store(client).place_hold(&hold(), 20, None, "shopper").await.unwrap(),
        PlaceOutcome::CartUnitsFull { in_cart: 19 }
    );
}
