//! How DynamoDB's answers become domain outcomes and HTTP statuses, with the SDK's HTTP answered
//! in-process (aws-smithy-mocks): throttling and timeouts that real AWS produces and the local AWS
//! cannot be made to.

use aws_sdk_dynamodb::error::ErrorMetadata;
use aws_sdk_dynamodb::operation::query::QueryError;
use aws_sdk_dynamodb::operation::transact_write_items::{TransactWriteItemsError, TransactWriteItemsOutput};
use aws_sdk_dynamodb::types::error::{ProvisionedThroughputExceededException, TransactionCanceledException};
use aws_sdk_dynamodb::types::{AttributeValue, CancellationReason};
use aws_sdk_dynamodb::Client;
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use shared::api::respond;
use shared::config::Config;
use shared::domain::{ProductId, WarehouseId};
use shared::holds::{Quantity, Reservation, ReservationId, ReserveRequest};
use shared::store::{DynamoStore, HoldStore, PlaceOutcome, StockReader};
use shared::InventoryError;

fn store(client: Client) -> DynamoStore {
    DynamoStore::new(client, Config { stock_table: "stock".into(), reservations_table: "holds".into() })
}

fn hold() -> Reservation {
    let request = ReserveRequest { quantity: Quantity::new(2).unwrap(), warehouse_id: None };
    Reservation::new(
        ReservationId::random(),
        ProductId::parse("SKU-1").unwrap(),
        WarehouseId::parse("main").unwrap(),
        &request,
        1_000,
        900,
    )
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
    let client = mock_client!(aws_sdk_dynamodb, [&rule]);
    assert_eq!(
        store(client).place_hold(&hold(), "shopper").await.unwrap(),
        PlaceOutcome::Insufficient { available: 1 }
    );
}

#[tokio::test]
async fn a_failed_stock_condition_without_an_item_means_no_stock_record() {
    let rule = mock!(Client::transact_write_items)
        .then_error(|| cancelled(vec![reason("ConditionalCheckFailed"), reason("None")]));
    let client = mock_client!(aws_sdk_dynamodb, [&rule]);
    assert_eq!(store(client).place_hold(&hold(), "shopper").await.unwrap(), PlaceOutcome::NoStockItem);
}

#[tokio::test]
async fn an_existing_hold_wins_over_insufficient_stock() {
    let existing = hold();
    let item: std::collections::HashMap<String, AttributeValue> = serde_dynamo::to_item(&existing).unwrap();
    let rule = mock!(Client::transact_write_items).then_error(move || {
        let hold = CancellationReason::builder().code("ConditionalCheckFailed").set_item(Some(item.clone())).build();
        cancelled(vec![reason("ConditionalCheckFailed"), hold])
    });
    let client = mock_client!(aws_sdk_dynamodb, [&rule]);
    assert_eq!(
        store(client).place_hold(&existing, "shopper").await.unwrap(),
        PlaceOutcome::AlreadyPlaced(existing.clone())
    );
}

#[tokio::test]
async fn transaction_conflicts_are_retried_then_succeed() {
    let conflict_twice_then_ok = mock!(Client::transact_write_items)
        .sequence()
        .error(|| cancelled(vec![reason("TransactionConflict"), reason("None")]))
        .times(2)
        .output(|| TransactWriteItemsOutput::builder().build())
        .build();
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&conflict_twice_then_ok]);
    assert_eq!(store(client).place_hold(&hold(), "shopper").await.unwrap(), PlaceOutcome::Placed);
    assert_eq!(conflict_twice_then_ok.num_calls(), 3);
}

#[tokio::test]
async fn transaction_conflicts_that_persist_become_503() {
    let conflict = mock!(Client::transact_write_items)
        .then_error(|| cancelled(vec![reason("TransactionConflict"), reason("None")]));
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&conflict]);
    let err = store(client).place_hold(&hold(), "shopper").await.unwrap_err();
    assert_eq!(err.status(), 503);
    assert_eq!(conflict.num_calls(), 4);
}
