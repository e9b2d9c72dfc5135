//! The daily digest (`digest`) through the in-memory store: which items it lists, with which figures,
//! in which order (sales paces made by real holds and checkouts, recorded in the audit trail by the
//! history use case), nothing sent when nothing is low, and one digest a day whatever runs again.

mod support;

use shared::digest::{self, DigestOutcome, LEASE_SECONDS};
use shared::domain::StockStatus;
use shared::holds::{ReservationId, Transition};
use shared::pipeline;
use shared::service;
use shared::store::memory::{MemoryPublisher, MemoryStore};
use support::*;

const DAY: i64 = 24 * 3600;

/// Delivers the stock stream to the audit trail as the stream would have recorded it at `at`.
async fn record_history(store: &MemoryStore, at: i64) {
    for mut change in store.take_stock_changes() {
        change.recorded_at = at;
        pipeline::on_history_change(store, &change, 365 * DAY).await.unwrap();
    }
}

/// A shopper holds `quantity` of the item at `at` and checks it out; the audit trail records both.
async fn sell(store: &MemoryStore, product_id: &str, warehouse_id: &str, quantity: i64, at: i64, shopper: u32) {
    let (_, view) = service::reserve(
        store,
        product(product_id),
        ask(quantity, Some(warehouse_id)),
        None,
        &holder(shopper),
        HOLD_SECONDS,
        at,
    )
    .await
    .unwrap();
    let id = ReservationId::parse(&view.reservation_id).unwrap();
    let proof = signed_in_proof(shopper, &format!("buyer-{shopper}"));
    service::end_hold(store, &product(product_id), &id, Transition::Commit, &proof, "user:buyer", at + 1)
        .await
        .unwrap();
    record_history(store, at).await;
}

/// Puts an item on the shelf (as an admin does) and records it in the audit trail, a month ago.
async fn stock(store: &MemoryStore, product_id: &str, warehouse_id: &str, count: i64, threshold: i64) {
    shelve(store, product_id, warehouse_id, count, threshold).await;
    record_history(store, T0 - 30 * DAY).await;
}

async fn run(store: &MemoryStore, publisher: &MemoryPublisher, now: i64) -> DigestOutcome {
    digest::send_daily_digest(store, store, store, publisher, now).await.unwrap().outcome
}

#[tokio::test]
async fn lists_every_low_item_with_its_figures_soonest_to_run_out_first() {
    let (store, publisher) = (MemoryStore::new(), MemoryPublisher::new());
    // Sold out this week: out of stock, first whatever its pace.
    stock(&store, "SKU-OUT", "main", 4, 2).await;
    sell(&store, "SKU-OUT", "main", 4, T0 - 2 * DAY, 1).await;
    // 7 sold in 7 days, 1 a day, 3 left: 3 days.
    stock(&store, "SKU-FAST", "main", 10, 5).await;
    for (n, ago) in (1..=7).zip([6, 5, 5, 3, 2, 1, 0]) {
        sell(&store, "SKU-FAST", "main", 1, T0 - ago * DAY - 60, 10 + n).await;
    }
    // 1 sold in 7 days, 5 left: 35 days.
    stock(&store, "SKU-SLOW", "main", 6, 5).await;
    sell(&store, "SKU-SLOW", "main", 1, T0 - 4 * DAY, 2).await;
    // Low, no sale in 7 days: last, by product and warehouse.
    stock(&store, "SKU-IDLE", "main", 2, 5).await;
    stock(&store, "SKU-SLOW", "east", 1, 2).await;
    stock(&store, "SKU-OLD", "main", 10, 8).await;
    sell(&store, "SKU-OLD", "main", 5, T0 - 8 * DAY, 3).await; // sold, but 8 days ago
    stock(&store, "SKU-HELD", "main", 6, 5).await;
    service::reserve(&store, product("SKU-HELD"), ask(2, None), None, &holder(4), HOLD_SECONDS, T0 - 60).await.unwrap();
    // In stock: not in the digest, however fast they sell.
    stock(&store, "SKU-FINE", "main", 50, 5).await;
    sell(&store, "SKU-FINE", "main", 20, T0 - DAY, 5).await;
    stock(&store, "SKU-FAST", "east", 3, 1).await;

    assert_eq!(run(&store, &publisher, T0).await, DigestOutcome::Sent);
    let digests = publisher.digests();
    assert_eq!(digests.len(), 1);
    let sent = &digests[0];
    let order: Vec<String> = sent.lines.iter().map(|l| format!("{}/{}", l.product_id, l.warehouse_id)).collect();
    assert_eq!(
        order,
        [
            "SKU-OUT/main",
            "SKU-FAST/main",
            "SKU-SLOW/main",
            "SKU-HELD/main",
            "SKU-IDLE/main",
            "SKU-OLD/main",
            "SKU-SLOW/east"
        ]
    );
    let figures: Vec<_> = sent
        .lines
        .iter()
        .map(|l| (l.status, l.available, l.stock_count, l.reserved_count, l.threshold_level, l.sold, l.days_left()))
        .collect();
    assert_eq!(
        figures,
        [
            (StockStatus::OutOfStock, 0, 0, 0, 2, 4, Some(0.0)),
            (StockStatus::LowStock, 3, 3, 0, 5, 7, Some(3.0)),
            (StockStatus::LowStock, 5, 5, 0, 5, 1, Some(35.0)),
            (StockStatus::LowStock, 4, 6, 2, 5, 0, None),
            (StockStatus::LowStock, 2, 2, 0, 5, 0, None),
            (StockStatus::LowStock, 5, 5, 0, 8, 0, None),
            (StockStatus::LowStock, 1, 1, 0, 2, 0, None),
        ]
    );
    assert_eq!((sent.out_of_stock, sent.low), (1, 6));
    assert_eq!(sent.subject(), format!("Daily stock digest {}: 1 out of stock, 6 low", digest::day_of(T0)));
    let text = sent.text();
    let fast = text.lines().find(|l| l.contains("SKU-FAST")).unwrap();
    let cells: Vec<&str> = fast.split('|').map(str::trim).collect();
    assert_eq!(cells, ["2", "SKU-FAST", "main", "LOW", "3", "3", "0", "5", "7", "1.0", "3.0"]);
    let idle = text.lines().find(|l| l.contains("SKU-IDLE")).unwrap();
    assert!(idle.ends_with("0.0 |         -"), "no sales: no days left\n{text}");
}

#[tokio::test]
async fn nothing_low_sends_nothing_and_the_day_is_done() {
    let (store, publisher) = (MemoryStore::new(), MemoryPublisher::new());
    stock(&store, "SKU-1", "main", 10, 5).await;
    assert_eq!(run(&store, &publisher, T0).await, DigestOutcome::NothingLow);
    assert!(publisher.digests().is_empty(), "no mail when there is nothing to do");
    sell(&store, "SKU-1", "main", 6, T0 + 60, 1).await; // low later that day: its alert tells of it
    assert_eq!(run(&store, &publisher, T0 + 120).await, DigestOutcome::AlreadySent);
    assert!(publisher.digests().is_empty());
    assert_eq!(run(&store, &publisher, T0 + DAY).await, DigestOutcome::Sent, "the next day's lists it");
    assert_eq!(publisher.digests()[0].lines[0].sold, 6);
}

#[tokio::test]
async fn one_digest_a_day_however_often_it_runs() {
    let (store, publisher) = (MemoryStore::new(), MemoryPublisher::new());
    stock(&store, "SKU-1", "main", 3, 5).await;
    let runs =
        futures::future::join_all((0..4).map(|_| digest::send_daily_digest(&store, &store, &store, &publisher, T0)));
    let outcomes: Vec<_> = runs.await.into_iter().map(|r| r.map(|report| report.outcome)).collect();
    assert_eq!(outcomes.iter().filter(|o| matches!(o, Ok(DigestOutcome::Sent))).count(), 1, "{outcomes:?}");
    // The others found the day sent, or claimed by the run in flight (an error: Lambda retries them).
    assert!(outcomes.iter().all(|o| matches!(o, Ok(DigestOutcome::Sent | DigestOutcome::AlreadySent) | Err(_))));
    assert_eq!(run(&store, &publisher, T0 + 3600).await, DigestOutcome::AlreadySent);
    assert_eq!(publisher.digests().len(), 1);
    assert_eq!(run(&store, &publisher, T0 + DAY).await, DigestOutcome::Sent);
    let days: Vec<String> = publisher.digests().iter().map(|d| d.day.clone()).collect();
    assert_eq!(days, [digest::day_of(T0), digest::day_of(T0 + DAY)]);
}

#[tokio::test]
async fn a_failed_publish_is_sent_by_the_retry_once() {
    let (store, publisher) = (MemoryStore::new(), MemoryPublisher::new());
    stock(&store, "SKU-1", "main", 0, 5).await;
    publisher.fail_next(1);
    let failed = digest::send_daily_digest(&store, &store, &store, &publisher, T0).await.unwrap_err();
    assert_eq!(failed.code(), "SERVICE_UNAVAILABLE", "the run fails, so Lambda retries it");
    assert_eq!(run(&store, &publisher, T0 + 60).await, DigestOutcome::Sent);
    assert_eq!(run(&store, &publisher, T0 + 180).await, DigestOutcome::AlreadySent);
    assert_eq!(publisher.digests().len(), 1);
}

#[tokio::test]
async fn a_claim_left_by_a_run_that_died_is_taken_over_after_the_lease() {
    let (store, publisher) = (MemoryStore::new(), MemoryPublisher::new());
    stock(&store, "SKU-1", "main", 1, 5).await;
    store.leave_digest_claimed(&digest::day_of(T0), T0);
    let in_flight = digest::send_daily_digest(&store, &store, &store, &publisher, T0 + LEASE_SECONDS).await;
    assert_eq!(in_flight.unwrap_err().code(), "SERVICE_UNAVAILABLE", "it may still be sending: retry later");
    assert!(publisher.digests().is_empty());
    assert_eq!(run(&store, &publisher, T0 + LEASE_SECONDS + 1).await, DigestOutcome::Sent);
    assert_eq!(publisher.digests().len(), 1);
}
