//! Handler CPU (docs/BENCHMARKS.md, table 2): each API handler's whole work for one request — parse,
//! validate, use case, DynamoDB call(s), response — with the SDK's HTTP answered in process by
//! aws-smithy-mocks, against the bare SDK call(s) the handler makes, answered the same way. The
//! difference is what our code adds over the SDK.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
use aws_sdk_dynamodb::operation::query::QueryOutput;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsOutput;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use criterion::{criterion_group, criterion_main, Criterion};
use shared::api::{respond, Request};
use shared::config::Config;
use shared::domain::{ProductId, WarehouseId};
use shared::holds::{CartToken, Quantity, Reservation, ReservationId, ReserveRequest};
use shared::store::dynamo::DynamoStore;

const PRODUCT: &str = "SKU-1001";
const CART_TOKEN: &str = "bench-cart-token-0123456789abcdefghijklmno";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime")
}

fn store(client: Client) -> DynamoStore {
    DynamoStore::new(
        client,
        Config { stock_table: "stock".into(), reservations_table: "holds".into(), requests_table: "requests".into() },
    )
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn stock_item(warehouse: &str, stock: i64, reserved: i64, threshold: i64) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("product_id".to_owned(), s(PRODUCT)),
        ("warehouse_id".to_owned(), s(warehouse)),
        ("stock_count".to_owned(), n(stock)),
        ("reserved_count".to_owned(), n(reserved)),
        ("available_count".to_owned(), n(stock - reserved)),
        ("threshold_level".to_owned(), n(threshold)),
        ("version".to_owned(), n(3)),
        ("last_updated".to_owned(), s("2026-11-26T10:00:00Z")),
    ])
}

fn active_hold() -> Reservation {
    let request = ReserveRequest { quantity: Quantity::new(2).expect("2 units"), warehouse_id: None };
    let product = ProductId::parse(PRODUCT).expect("an id");
    let now = shared::time::now();
    let mut hold = Reservation::new(
        ReservationId::random(),
        product,
        WarehouseId::parse("main").expect("an id"),
        &request,
        now,
        900,
    );
    hold.cart = Some(CartToken::parse(CART_TOKEN).expect("a cart token").cart());
    hold
}

/// An HTTP API (payload 2.0) request as API Gateway hands it to the function.
fn request(method: &str, path_params: serde_json::Value, body: Option<&str>, admin: bool) -> Request {
    let mut event = serde_json::json!({
        "version": "2.0", "routeKey": "bench", "rawPath": "/bench", "rawQueryString": "",
        "headers": {"idempotency-key": "0b0e4c8e-5d3c-4a8e-9d47-2f1f0c7a9e11", "content-type": "application/json",
                    "cart-token": CART_TOKEN},
        "pathParameters": path_params, "body": body, "isBase64Encoded": false,
        "requestContext": {"requestId": "bench", "http": {"method": method, "path": "/bench"}},
    });
    if admin {
        event["requestContext"]["authorizer"] = serde_json::json!({"jwt": {"claims": {
            "sub": "7a1c", "cognito:groups": "[inventory-admins]"}, "scopes": []}});
    }
    serde_json::from_value(event).expect("a payload 2.0 event")
}

fn bench_get_inventory(c: &mut Criterion) {
    let rt = runtime();
    let query = mock!(Client::query).then_output(|| {
        QueryOutput::builder().items(stock_item("main", 40, 2, 10)).items(stock_item("east", 12, 0, 5)).count(2).build()
    });
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&query]);
    let store = store(client.clone());
    let get = request("GET", serde_json::json!({"productId": PRODUCT}), None, false);
    let mut group = c.benchmark_group("get_inventory");
    group.bench_function("handler", |b| {
        b.iter(|| rt.block_on(async { respond(get_inventory::handler(&store, &get).await, "bench") }))
    });
    group.bench_function("bare SDK", |b| {
        b.iter(|| {
            rt.block_on(
                client
                    .query()
                    .table_name("stock")
                    .key_condition_expression("product_id = :product")
                    .expression_attribute_values(":product", s(PRODUCT))
                    .consistent_read(true)
                    .send(),
            )
            .is_ok()
        })
    });
    group.finish();
}

/// The strongly consistent read of the item a hold starts with (its units per cart).
fn item_read(client: &Client) -> aws_sdk_dynamodb::operation::get_item::builders::GetItemFluentBuilder {
    client
        .get_item()
        .table_name("stock")
        .key("product_id", s(PRODUCT))
        .key("warehouse_id", s("main"))
        .consistent_read(true)
}

/// The writes of a hold, as one transaction: counters conditional on enough for sale, the hold, its cart.
fn hold_transaction(
    client: &Client,
) -> aws_sdk_dynamodb::operation::transact_write_items::builders::TransactWriteItemsFluentBuilder {
    let hold = active_hold();
    let update = Update::builder()
        .table_name("stock")
        .key("product_id", s(PRODUCT))
        .key("warehouse_id", s("main"))
        .update_expression("SET reserved_count = reserved_count + :q, available_count = available_count - :q")
        .condition_expression("available_count >= :q")
        .expression_attribute_values(":q", n(2))
        .build()
        .expect("an update");
    let put = Put::builder()
        .table_name("holds")
        .set_item(Some(serde_dynamo::to_item(&hold).expect("a hold item")))
        .condition_expression("attribute_not_exists(reservation_id)")
        .build()
        .expect("a put");
    let cart = Update::builder()
        .table_name("requests")
        .key("request_key", s("cart\nbench"))
        .update_expression("SET holds = if_not_exists(holds, :zero) + :one")
        .condition_expression("attribute_not_exists(holds) OR holds < :max")
        .expression_attribute_values(":zero", n(0))
        .expression_attribute_values(":one", n(1))
        .expression_attribute_values(":max", n(20))
        .build()
        .expect("an update");
    client
        .transact_write_items()
        .transact_items(TransactWriteItem::builder().update(update).build())
        .transact_items(TransactWriteItem::builder().put(put).build())
        .transact_items(TransactWriteItem::builder().update(cart).build())
}

fn bench_reserve(c: &mut Criterion) {
    let rt = runtime();
    let transaction = mock!(Client::transact_write_items).then_output(|| TransactWriteItemsOutput::builder().build());
    let read = mock!(Client::get_item)
        .then_output(|| GetItemOutput::builder().set_item(Some(stock_item("main", 40, 2, 10))).build());
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&transaction, &read]);
    let store = store(client.clone());
    let settings = reserve_inventory::HoldSettings { hold_seconds: 900, require_sign_in: false };
    let reserve = request(
        "POST",
        serde_json::json!({"productId": PRODUCT}),
        Some(r#"{"quantity": 2, "warehouse_id": "main"}"#),
        false,
    );
    let mut group = c.benchmark_group("reserve_inventory");
    group.bench_function("handler", |b| {
        b.iter(|| {
            rt.block_on(async { respond(reserve_inventory::handler(&store, &reserve, &settings).await, "bench") })
        })
    });
    group.bench_function("bare SDK", |b| {
        b.iter(|| {
            rt.block_on(async {
                (item_read(&client).send().await.is_ok(), hold_transaction(&client).send().await.is_ok())
            })
        })
    });
    group.finish();
}

fn bench_release(c: &mut Criterion) {
    let rt = runtime();
    let hold = active_hold();
    let item = serde_dynamo::to_item::<_, HashMap<String, AttributeValue>>(&hold).expect("a hold item");
    let get_item = {
        let item = item.clone();
        mock!(Client::get_item).then_output(move || GetItemOutput::builder().set_item(Some(item.clone())).build())
    };
    let transaction = mock!(Client::transact_write_items).then_output(|| TransactWriteItemsOutput::builder().build());
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&get_item, &transaction]);
    let store = store(client.clone());
    let release = request(
        "DELETE",
        serde_json::json!({"productId": PRODUCT, "reservationId": hold.reservation_id.to_string()}),
        None,
        false,
    );
    let mut group = c.benchmark_group("release_reservation");
    group.bench_function("handler", |b| {
        b.iter(|| rt.block_on(async { respond(release_reservation::handler(&store, &release).await, "bench") }))
    });
    group.bench_function("bare SDK", |b| {
        b.iter(|| {
            rt.block_on(async {
                let key = HashMap::from([("reservation_id".to_owned(), s(&hold.reservation_id.to_string()))]);
                let read = client.get_item().table_name("holds").set_key(Some(key)).consistent_read(true).send().await;
                (read.is_ok(), hold_transaction(&client).send().await.is_ok())
            })
        })
    });
    group.finish();
}

fn bench_admin_update(c: &mut Criterion) {
    let rt = runtime();
    let transaction = mock!(Client::transact_write_items).then_output(|| TransactWriteItemsOutput::builder().build());
    let get_item = mock!(Client::get_item)
        .then_output(|| GetItemOutput::builder().set_item(Some(stock_item("main", 90, 2, 10))).build());
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&transaction, &get_item]);
    let store = store(client.clone());
    let restock = request(
        "PUT",
        serde_json::json!({"productId": PRODUCT}),
        Some(r#"{"warehouse_id": "main", "adjust_by": 50, "reason": "delivery"}"#),
        true,
    );
    let mut group = c.benchmark_group("update_inventory (admin adjust)");
    group.bench_function("handler", |b| {
        b.iter(|| rt.block_on(async { respond(update_inventory::handler(&store, &restock).await, "bench") }))
    });
    group.bench_function("bare SDK", |b| {
        b.iter(|| {
            rt.block_on(async {
                // The change and its request record in one transaction, then the item as it is now.
                let update = Update::builder()
                    .table_name("stock")
                    .key("product_id", s(PRODUCT))
                    .key("warehouse_id", s("main"))
                    .update_expression("SET stock_count = stock_count + :d, available_count = available_count + :d")
                    .expression_attribute_values(":d", n(50))
                    .build()
                    .expect("an update");
                let record = Put::builder()
                    .table_name("requests")
                    .item("request_key", s("admin\nuser:7a1c\nSKU-1001\nkey"))
                    .condition_expression("attribute_not_exists(request_key)")
                    .build()
                    .expect("a put");
                let written = client
                    .transact_write_items()
                    .transact_items(TransactWriteItem::builder().update(update).build())
                    .transact_items(TransactWriteItem::builder().put(record).build())
                    .send()
                    .await;
                let key =
                    HashMap::from([("product_id".to_owned(), s(PRODUCT)), ("warehouse_id".to_owned(), s("main"))]);
                let read = client.get_item().table_name("stock").set_key(Some(key)).consistent_read(true).send().await;
                (written.is_ok(), read.is_ok())
            })
        })
    });
    group.finish();
}

criterion_group!(handlers, bench_get_inventory, bench_reserve, bench_release, bench_admin_update);
criterion_main!(handlers);
