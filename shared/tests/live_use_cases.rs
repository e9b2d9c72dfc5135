//! Live stock through the in-memory stores: what a page may watch, what the broadcaster pushes to
//! whom (the GET body, once per product per batch, never backwards), gone and failing subscribers,
//! and the change feed's events; a failing store or feed fails the batch at the right record.

mod support;

use std::collections::BTreeSet;

use shared::domain::{ProductId, StockLevel, WarehouseId};
use shared::events::StockItemChanged;
use shared::holds::{ReservationId, Transition};
use shared::live::{
    self, BroadcastReport, ClientMessage, ConnectionId, Reply, Topic, Viewer, MAX_TOPICS_PER_CONNECTION,
};
use shared::store::memory::MemoryStore;
use shared::store::memory_live::{MemoryConnections, MemoryFeed, RecordingPusher};
use shared::store::StockReader;
use shared::{service, InventoryError};
use support::*;

fn connection(name: &str) -> ConnectionId {
    ConnectionId::parse(name).unwrap()
}

fn admin_viewer() -> Viewer {
    Viewer::Admin { user: "admin-sub".into() }
}

async fn open(connections: &MemoryConnections, name: &str, viewer: Viewer) -> ConnectionId {
    let id = connection(name);
    live::connect(connections, &id, &viewer, T0).await.unwrap();
    id
}

async fn send(connections: &MemoryConnections, id: &ConnectionId, frame: &str) -> Result<Reply, InventoryError> {
    live::on_message(connections, id, ClientMessage::parse(frame)?).await
}

fn watching(products: &[&str]) -> Reply {
    let mut names: Vec<String> = products.iter().map(|p| p.to_string()).collect();
    names.sort();
    Reply::Subscribed { products: names }
}

/// A hold of `units` by cart `n` on SKU-1 in `main`; its id.
async fn hold(store: &MemoryStore, n: u32, units: i64) -> ReservationId {
    let (_, view) =
        service::reserve(store, product("SKU-1"), ask(units, Some("main")), None, &holder(n), HOLD_SECONDS, T0)
            .await
            .unwrap();
    ReservationId::parse(&view.reservation_id).unwrap()
}

async fn broadcast_all(
    store: &MemoryStore,
    connections: &MemoryConnections,
    pusher: &RecordingPusher,
    feed: &MemoryFeed,
) -> BroadcastReport {
    let changes = store.take_stock_changes();
    live::broadcast(store, connections, pusher, feed, &changes).await.unwrap()
}

#[tokio::test]
async fn a_page_watches_what_it_subscribes_to_and_no_more_than_the_limit() {
    let connections = MemoryConnections::new();
    let page = open(&connections, "page1", Viewer::Shopper).await;
    assert_eq!(
        send(&connections, &page, r#"{"action":"subscribe","products":["SKU-1"]}"#).await,
        Ok(watching(&["SKU-1"]))
    );
    // Subscribing again is the same answer; a second product adds to the first.
    assert_eq!(
        send(&connections, &page, r#"{"action":"subscribe","products":["SKU-1"]}"#).await,
        Ok(watching(&["SKU-1"]))
    );
    assert_eq!(
        send(&connections, &page, r#"{"action":"subscribe","products":["SKU-2"]}"#).await,
        Ok(watching(&["SKU-1", "SKU-2"]))
    );
    assert_eq!(
        send(&connections, &page, r#"{"action":"unsubscribe","products":["SKU-1"]}"#).await,
        Ok(Reply::Unsubscribed { products: vec!["SKU-2".into()] })
    );

    // Up to the limit, and not one more: the refused message changes nothing.
    let many: Vec<String> = (0..MAX_TOPICS_PER_CONNECTION - 1).map(|i| format!("\"P-{i}\"")).collect();
    let frame = format!(r#"{{"action":"subscribe","products":[{}]}}"#, many.join(","));
    assert!(
        matches!(send(&connections, &page, &frame).await, Ok(Reply::Subscribed { products }) if products.len() == 50)
    );
    let err = send(&connections, &page, r#"{"action":"subscribe","products":["SKU-9"]}"#).await.unwrap_err();
    assert!(err.to_string().contains("at most 50"), "{err}");
    assert_eq!(connections.topics(&page).unwrap().len(), MAX_TOPICS_PER_CONNECTION);
    assert!(!connections.topics(&page).unwrap().contains(&Topic::Product(product("SKU-9"))));
}

#[tokio::test]
async fn only_an_admin_connection_watches_every_product() {
    let connections = MemoryConnections::new();
    let shopper = open(&connections, "shopper", Viewer::Shopper).await;
    let err = send(&connections, &shopper, r#"{"action":"subscribe","all_products":true}"#).await.unwrap_err();
    assert!(matches!(err, InventoryError::Forbidden { .. }), "{err:?}");
    assert_eq!(connections.topics(&shopper), Some(BTreeSet::new()));
    let admin = open(&connections, "admin", admin_viewer()).await;
    assert_eq!(send(&connections, &admin, r#"{"action":"subscribe","all_products":true}"#).await, Ok(watching(&["*"])));
}

#[tokio::test]
async fn a_closed_connection_subscribes_to_nothing() {
    let connections = MemoryConnections::new();
    let page = open(&connections, "page1", Viewer::Shopper).await;
    live::disconnect(&connections, &page).await.unwrap();
    live::disconnect(&connections, &page).await.unwrap(); // a second $disconnect finds nothing
    let err = send(&connections, &page, r#"{"action":"subscribe","products":["SKU-1"]}"#).await.unwrap_err();
    assert!(err.to_string().contains("closed"), "{err}");
    assert_eq!(connections.topics(&page), None);
}

#[test]
fn bad_messages_are_refused_with_what_is_wrong() {
    let refused = |frame: &str| ClientMessage::parse(frame).unwrap_err().to_string();
    assert!(refused("not json").contains("action"));
    assert!(refused(r#"{"action":"dance"}"#).contains("unknown variant"));
    assert!(refused(r#"{"products":["SKU-1"]}"#).contains("action"));
    assert!(refused(r#"{"action":"subscribe","products":["a b"]}"#).contains("product_id may contain only"));
    assert!(refused(r#"{"action":"subscribe","products":"SKU-1"}"#).contains("products"));
    assert!(refused(r#"{"action":"subscribe","products":["SKU-1"],"extra":1}"#).contains("unknown field"));
    assert!(
        refused(&format!(r#"{{"action":"subscribe","products":["{}"]}}"#, "x".repeat(9000))).contains("larger than")
    );
    // Well-formed but empty: the use case refuses it.
    assert!(ClientMessage::parse(r#"{"action":"subscribe","products":[]}"#).is_ok());
    assert!(ConnectionId::parse("a/b c").is_err());
    assert!(ConnectionId::parse("L0SM9cOFvHcCIhw=").is_ok());
}

#[tokio::test]
async fn an_empty_subscription_is_refused() {
    let connections = MemoryConnections::new();
    let page = open(&connections, "page1", Viewer::Shopper).await;
    let err = send(&connections, &page, r#"{"action":"subscribe","products":[]}"#).await.unwrap_err();
    assert!(matches!(err, InventoryError::InvalidInput { field: "products", .. }), "{err:?}");
}

#[tokio::test]
async fn a_change_is_pushed_as_the_get_body_to_every_page_watching_that_product_only() {
    let store = MemoryStore::new();
    shelve(&store, "SKU-1", "main", 10, 3).await;
    shelve(&store, "SKU-2", "main", 10, 3).await;
    let (connections, pusher, feed) = (MemoryConnections::new(), RecordingPusher::default(), MemoryFeed::default());
    let one = open(&connections, "one", Viewer::Shopper).await;
    let two = open(&connections, "two", Viewer::Shopper).await;
    let other = open(&connections, "other", Viewer::Shopper).await;
    for page in [&one, &two] {
        send(&connections, page, r#"{"action":"subscribe","products":["SKU-1"]}"#).await.unwrap();
    }
    send(&connections, &other, r#"{"action":"subscribe","products":["SKU-2"]}"#).await.unwrap();
    store.take_stock_changes();

    hold(&store, 1, 4).await;
    let report = broadcast_all(&store, &connections, &pusher, &feed).await;
    assert_eq!((report.products, report.delivered, report.gone, report.failed), (1, 2, 0, 0));

    let (_, get) = service::product_availability(&store, product("SKU-1"), None).await.unwrap();
    let mut expected = serde_json::to_value(&get).unwrap();
    expected["type"] = "stock".into();
    let pushed = pusher.delivered();
    assert_eq!(pushed.iter().map(|(c, _)| c.clone()).collect::<BTreeSet<_>>(), BTreeSet::from([one, two]));
    for (_, body) in &pushed {
        assert_eq!(body, &expected);
        assert_eq!(body["available"], 6);
    }
}

#[tokio::test]
async fn a_batch_pushes_each_product_once_with_its_latest_figures_and_the_sequence_only_grows() {
    let store = MemoryStore::new();
    shelve(&store, "SKU-1", "main", 10, 3).await;
    let (connections, pusher, feed) = (MemoryConnections::new(), RecordingPusher::default(), MemoryFeed::default());
    let page = open(&connections, "page", Viewer::Shopper).await;
    send(&connections, &page, r#"{"action":"subscribe","products":["SKU-1"]}"#).await.unwrap();
    let first = broadcast_all(&store, &connections, &pusher, &feed).await;
    assert_eq!(first.delivered, 1);

    for n in 1..=3 {
        hold(&store, n, 1).await;
    }
    let report = broadcast_all(&store, &connections, &pusher, &feed).await;
    assert_eq!((report.products, report.delivered), (1, 1), "three changes, one push");
    let sequences: Vec<i64> = pusher.delivered().iter().map(|(_, b)| b["sequence"].as_i64().unwrap()).collect();
    assert!(sequences.windows(2).all(|w| w[0] < w[1]), "{sequences:?}");
    assert_eq!(pusher.delivered().last().unwrap().1["available"], 7);
}

#[tokio::test]
async fn an_admin_watching_everything_gets_every_product_and_a_page_watching_both_gets_one_push() {
    let store = MemoryStore::new();
    shelve(&store, "SKU-1", "main", 10, 3).await;
    shelve(&store, "SKU-2", "east", 5, 1).await;
    let (connections, pusher, feed) = (MemoryConnections::new(), RecordingPusher::default(), MemoryFeed::default());
    let admin = open(&connections, "admin", admin_viewer()).await;
    send(&connections, &admin, r#"{"action":"subscribe","all_products":true,"products":["SKU-1"]}"#).await.unwrap();
    let report = broadcast_all(&store, &connections, &pusher, &feed).await;
    assert_eq!((report.products, report.delivered), (2, 2), "each product once, though watched twice");
    let products: BTreeSet<String> =
        pusher.delivered().iter().map(|(_, b)| b["product_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(products, BTreeSet::from(["SKU-1".to_owned(), "SKU-2".to_owned()]));
}

#[tokio::test]
async fn a_gone_connection_is_forgotten_and_a_failing_one_never_holds_back_the_others() {
    let store = MemoryStore::new();
    shelve(&store, "SKU-1", "main", 10, 3).await;
    let (connections, pusher, feed) = (MemoryConnections::new(), RecordingPusher::default(), MemoryFeed::default());
    let mut pages = Vec::new();
    for name in ["gone", "slow", "fine1", "fine2"] {
        let page = open(&connections, name, Viewer::Shopper).await;
        send(&connections, &page, r#"{"action":"subscribe","products":["SKU-1"]}"#).await.unwrap();
        pages.push(page);
    }
    pusher.gone.lock().unwrap().insert(connection("gone"));
    pusher.failing.lock().unwrap().insert(connection("slow"));
    let report = broadcast_all(&store, &connections, &pusher, &feed).await;
    assert_eq!((report.delivered, report.gone, report.failed), (2, 1, 1));
    assert_eq!(connections.topics(&connection("gone")), None, "forgotten");
    // The page behind a failed push missed a change: hung up on, it reconnects and re-fetches.
    assert_eq!(*pusher.hung_up.lock().unwrap(), [connection("slow")]);
}

#[tokio::test]
async fn an_alert_state_write_pushes_nothing_and_feeds_no_stock_change() {
    let store = MemoryStore::new();
    shelve(&store, "SKU-1", "main", 10, 3).await;
    let (connections, pusher, feed) = (MemoryConnections::new(), RecordingPusher::default(), MemoryFeed::default());
    let page = open(&connections, "page", Viewer::Shopper).await;
    send(&connections, &page, r#"{"action":"subscribe","products":["SKU-1"]}"#).await.unwrap();
    let shelved = store.take_stock_changes().pop().unwrap();
    // The same figures written again with only the alert state changed (what stock_events writes).
    let mut alert_state = shelved.new.clone();
    alert_state.status = Some(shared::domain::StockStatus::InStock);
    let change =
        StockItemChanged { old: Some(shelved.new.clone()), new: alert_state, sequence: "9".into(), recorded_at: T0 };
    let report = live::broadcast(&store, &connections, &pusher, &feed, &[change]).await.unwrap();
    assert_eq!((report.products, report.delivered, report.feed_events), (0, 0, 0));
}

#[tokio::test]
async fn the_feed_gets_each_change_with_the_hold_transitions_and_alerts_named() {
    let store = MemoryStore::new();
    shelve(&store, "SKU-1", "main", 10, 3).await;
    let (connections, pusher, feed) = (MemoryConnections::new(), RecordingPusher::default(), MemoryFeed::default());
    store.take_stock_changes();
    let id = hold(&store, 1, 8).await;
    service::end_hold(&store, &product("SKU-1"), &id, Transition::Release, &proof(1), "shopper", T0 + 1).await.unwrap();
    broadcast_all(&store, &connections, &pusher, &feed).await;
    let kinds: Vec<&str> = feed.events.lock().unwrap().iter().map(|e| e.detail_type).collect();
    assert_eq!(kinds, ["StockChanged", "HoldPlaced", "StockChanged", "HoldEnded"]);
    let events = feed.events.lock().unwrap().clone();
    assert_eq!(events[1].reservation_id.as_deref(), Some(id.to_string().as_str()));
    assert_eq!((events[1].quantity, events[1].available), (Some(8), 2));
    assert_eq!((events[3].quantity, events[3].available), (Some(8), 10));
    assert_ne!(events[0].change_id, events[2].change_id, "each change has its own id");
    assert!(events[0].sequence < events[2].sequence, "the item's sequence orders the events");

    // The alert the stream consumer claims on the item is raised on the feed once.
    let policy = NO_DAMPING;
    hold(&store, 2, 8).await;
    let changes = store.take_stock_changes();
    let publisher = shared::store::memory::MemoryPublisher::new();
    publisher.fail_next(1); // left claimed (pending) on the item, as when SNS is down
    for change in &changes {
        let _ = shared::pipeline::on_stock_change(&store, &publisher, policy, change, T0 + 2).await;
    }
    let claimed = store.take_stock_changes();
    live::broadcast(&store, &connections, &pusher, &feed, &claimed).await.unwrap();
    let raised: Vec<_> =
        feed.events.lock().unwrap().iter().filter(|e| e.detail_type == "AlertRaised").cloned().collect();
    assert_eq!(raised.len(), 1, "{raised:?}");
    assert!(raised[0].alert.is_some());
}

/// A stock reader that fails for one product (DynamoDB throttling it, say).
struct FailingFor<'a>(&'a MemoryStore, &'static str);

#[async_trait::async_trait]
impl StockReader for FailingFor<'_> {
    async fn stock_levels(
        &self,
        product: &ProductId,
        warehouse: Option<&WarehouseId>,
    ) -> Result<Vec<StockLevel>, InventoryError> {
        if product.as_str() == self.1 {
            return Err(InventoryError::Unavailable { detail: "throttled".into() });
        }
        self.0.stock_levels(product, warehouse).await
    }
}

#[tokio::test]
async fn a_failing_store_or_feed_fails_the_batch_at_the_first_record_not_done() {
    let store = MemoryStore::new();
    shelve(&store, "SKU-1", "main", 10, 3).await;
    shelve(&store, "SKU-2", "main", 10, 3).await;
    let changes = store.take_stock_changes();
    let (connections, pusher, feed) = (MemoryConnections::new(), RecordingPusher::default(), MemoryFeed::default());
    let page = open(&connections, "page", Viewer::Shopper).await;
    send(&connections, &page, r#"{"action":"subscribe","products":["SKU-1","SKU-2"]}"#).await.unwrap();

    let failed =
        live::broadcast(&FailingFor(&store, "SKU-2"), &connections, &pusher, &feed, &changes).await.unwrap_err();
    let first_of_sku2 = changes.iter().find(|c| c.new.product_id.as_str() == "SKU-2").unwrap();
    assert_eq!(failed.sequence, first_of_sku2.sequence);
    assert_eq!(pusher.delivered().len(), 1, "SKU-1 was pushed before");

    // The feed failing at its first event holds no page back: both products are pushed, and the
    // batch comes again from its first record (for the feed; the pushes repeat harmlessly).
    *feed.refusing.lock().unwrap() = true;
    let failed = live::broadcast(&store, &connections, &pusher, &feed, &changes).await.unwrap_err();
    assert_eq!(failed.sequence, changes[0].sequence);
    assert_eq!(pusher.delivered().len(), 3);
    // Both failing: from the earlier of the two records.
    let failed =
        live::broadcast(&FailingFor(&store, "SKU-2"), &connections, &pusher, &feed, &changes).await.unwrap_err();
    assert_eq!(failed.sequence, changes[0].sequence);
}
