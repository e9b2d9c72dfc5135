//! The event-driven use cases (`pipeline`) through the in-memory store, which plays both streams:
//! alerts (one per crossing, never lost when SNS fails, never twice when a record comes twice),
//! lapsed holds back on sale exactly once (TTL, backstop, late records), the audit trail, and the
//! reconciler repairing drift only when two looks agree.

mod support;

use shared::alerts::{AlertPolicy, AlertType};
use shared::domain::ChangeKind;
use shared::events::{HoldRecordRemoved, StockItemChanged};
use shared::holds::{ReservationId, Transition};
use shared::pipeline::{self, ExpiryOutcome};
use shared::service;
use shared::store::memory::{MemoryPublisher, MemoryStore};
use shared::store::HistoryStore;
use support::*;

/// Delivers the stock stream to the alerts consumer until it is drained (the consumer's own writes
/// come back on the stream, as on AWS). Returns every record delivered.
async fn run_alerts(store: &MemoryStore, publisher: &MemoryPublisher, now: i64) -> Vec<StockItemChanged> {
    run_alerts_under(NO_DAMPING, store, publisher, now).await
}

async fn run_alerts_under(
    policy: AlertPolicy,
    store: &MemoryStore,
    publisher: &MemoryPublisher,
    now: i64,
) -> Vec<StockItemChanged> {
    let mut delivered = Vec::new();
    loop {
        let changes = store.take_stock_changes();
        if changes.is_empty() {
            return delivered;
        }
        for change in changes {
            pipeline::on_stock_change(store, publisher, policy, &change, now).await.unwrap();
            delivered.push(change);
        }
    }
}

fn kinds(publisher: &MemoryPublisher) -> Vec<AlertType> {
    publisher.sent().iter().map(|a| a.kind).collect()
}

async fn hold(store: &MemoryStore, quantity: i64, shopper: u32) -> ReservationId {
    let (_, view) =
        service::reserve(store, product("SKU-1"), ask(quantity, None), None, &holder(shopper), HOLD_SECONDS, T0)
            .await
            .unwrap();
    ReservationId::parse(&view.reservation_id).unwrap()
}

async fn release(store: &MemoryStore, id: &ReservationId, shopper: u32) {
    service::end_hold(store, &product("SKU-1"), id, Transition::Release, &proof(shopper), "s", T0).await.unwrap();
}

#[tokio::test]
async fn each_crossing_is_alerted_once_and_a_redelivered_record_alerts_nothing() {
    let (store, publisher) = (MemoryStore::new(), MemoryPublisher::new());
    shelve(&store, "SKU-1", "main", 10, 5).await;
    run_alerts(&store, &publisher, T0).await;
    assert!(publisher.sent().is_empty(), "a new item in stock is not news");
    let held = hold(&store, 6, 1).await;
    let delivered = run_alerts(&store, &publisher, T0).await;
    assert_eq!(kinds(&publisher), [AlertType::LowStock]);
    for change in &delivered {
        pipeline::on_stock_change(&store, &publisher, NO_DAMPING, change, T0).await.unwrap();
    }
    assert_eq!(kinds(&publisher), [AlertType::LowStock], "redelivery alerted again");
    let rest = hold(&store, 4, 2).await;
    run_alerts(&store, &publisher, T0).await;
    release(&store, &held, 1).await; // 6 for sale: not past the threshold's band yet
    run_alerts(&store, &publisher, T0).await;
    assert_eq!(kinds(&publisher), [AlertType::LowStock, AlertType::OutOfStock]);
    release(&store, &rest, 2).await;
    run_alerts(&store, &publisher, T0).await;
    assert_eq!(kinds(&publisher), [AlertType::LowStock, AlertType::OutOfStock, AlertType::BackInStock]);
    let alert = &publisher.sent()[1];
    assert_eq!((alert.available, alert.product_id.as_str()), (0, "SKU-1"));
    assert!(item(&store, "SKU-1", "main").pending_alert.is_none(), "every alert confirmed");
}

#[tokio::test]
async fn an_alert_whose_publish_failed_is_sent_later_exactly_once() {
    let (store, publisher) = (MemoryStore::new(), MemoryPublisher::new());
    shelve(&store, "SKU-1", "main", 10, 5).await;
    run_alerts(&store, &publisher, T0).await;
    hold(&store, 6, 1).await;
    publisher.fail_next(1);
    let changes = store.take_stock_changes();
    let failed = pipeline::on_stock_change(&store, &publisher, NO_DAMPING, &changes[0], T0).await;
    assert_eq!(failed.unwrap_err().code(), "SERVICE_UNAVAILABLE", "the stream retries the record");
    assert!(item(&store, "SKU-1", "main").pending_alert.is_some(), "the claim stays on the item");
    // The stream's retry of the same record publishes the pending alert, and only that.
    pipeline::on_stock_change(&store, &publisher, NO_DAMPING, &changes[0], T0).await.unwrap();
    run_alerts(&store, &publisher, T0).await;
    let report = pipeline::backstop(&store, &publisher, NO_DAMPING, &|| T0).await.unwrap();
    assert_eq!((kinds(&publisher), report.alerts_sent), (vec![AlertType::LowStock], 0));
}

#[tokio::test]
async fn an_unsent_alert_is_never_overwritten_by_the_next_crossing() {
    let (store, publisher) = (MemoryStore::new(), MemoryPublisher::new());
    shelve(&store, "SKU-1", "main", 10, 5).await;
    run_alerts(&store, &publisher, T0).await;
    hold(&store, 6, 1).await;
    publisher.fail_next(usize::MAX); // SNS is down: LOW_STOCK is claimed, never confirmed
    for change in store.take_stock_changes() {
        assert!(pipeline::on_stock_change(&store, &publisher, NO_DAMPING, &change, T0).await.is_err());
    }
    hold(&store, 4, 2).await; // then the item runs out while SNS is still down
    store.take_stock_changes(); // and the stream gives up on those records (DLQ)
    let down = pipeline::backstop(&store, &publisher, NO_DAMPING, &|| T0).await.unwrap();
    assert_eq!((down.failures, publisher.sent().len()), (1, 0));
    publisher.fail_next(0); // SNS is back
    let report = pipeline::backstop(&store, &publisher, NO_DAMPING, &|| T0 + 60).await.unwrap();
    assert_eq!(kinds(&publisher), [AlertType::LowStock, AlertType::OutOfStock], "both, in order, once each");
    assert_eq!(report.alerts_sent, 2);
    pipeline::backstop(&store, &publisher, NO_DAMPING, &|| T0 + 120).await.unwrap();
    run_alerts(&store, &publisher, T0 + 120).await;
    assert_eq!(publisher.sent().len(), 2);
}

/// The manager's inbox of issue 17: stock 10, threshold 5; a shopper adds 6 to the cart and removes
/// them, four times in a few seconds. Undamped that was five e-mails; damped it is the LOW_STOCK,
/// then, once the recovery has lasted the quiet period, one BACK_IN_STOCK sent by the backstop that
/// folds the crossings in between — and nothing twice when records come again.
#[tokio::test]
async fn a_churning_cart_sends_one_alert_per_quiet_period_and_the_last_state() {
    let (store, publisher) = (MemoryStore::new(), MemoryPublisher::new());
    shelve(&store, "SKU-1", "main", 10, 5).await;
    run_alerts_under(QUIET, &store, &publisher, T0).await;
    let mut delivered = Vec::new();
    for round in 0..4 {
        let held = hold(&store, 6, 1).await;
        delivered.extend(run_alerts_under(QUIET, &store, &publisher, T0 + 2 * round).await);
        release(&store, &held, 1).await;
        delivered.extend(run_alerts_under(QUIET, &store, &publisher, T0 + 2 * round + 1).await);
    }
    assert_eq!(kinds(&publisher), [AlertType::LowStock]);
    assert_eq!(
        item(&store, "SKU-1", "main").status,
        Some(shared::domain::StockStatus::LowStock),
        "held, not announced"
    );
    let early = pipeline::backstop(&store, &publisher, QUIET, &|| T0 + 600).await.unwrap();
    assert_eq!((early.alerts_sent, early.held_alerts_sent, publisher.sent().len()), (0, 0, 1), "not due yet");
    let due = pipeline::backstop(&store, &publisher, QUIET, &|| T0 + 7 + 900).await.unwrap();
    assert_eq!(
        (due.held_alerts_sent, due.alerts_sent, due.statuses_repaired),
        (1, 0, 0),
        "damping's work, not a repair"
    );
    assert_eq!(kinds(&publisher), [AlertType::LowStock, AlertType::BackInStock]);
    let folded = &publisher.sent()[1];
    assert_eq!((folded.crossings, folded.available, folded.stock_count), (7, 10, 10));
    assert_eq!(folded.subject(), "Back in stock: SKU-1 at main - 10 left to sell, 10 on the shelf (7 changes folded)");
    for change in &delivered {
        pipeline::on_stock_change(&store, &publisher, QUIET, change, T0 + 2000).await.unwrap();
    }
    pipeline::backstop(&store, &publisher, QUIET, &|| T0 + 3000).await.unwrap();
    assert_eq!(publisher.sent().len(), 2, "redelivered records and later runs send nothing more");
}

#[tokio::test]
async fn damped_alerts_survive_sns_failing_and_reach_the_manager_once_each() {
    let (store, publisher) = (MemoryStore::new(), MemoryPublisher::new());
    shelve(&store, "SKU-1", "main", 10, 5).await;
    run_alerts_under(QUIET, &store, &publisher, T0).await;
    publisher.fail_next(usize::MAX); // SNS down from here
    let first = hold(&store, 6, 1).await; // LOW_STOCK: claimed, not sent
    for change in store.take_stock_changes() {
        assert!(pipeline::on_stock_change(&store, &publisher, QUIET, &change, T0).await.is_err());
    }
    hold(&store, 4, 2).await; // OUT_OF_STOCK, never delayed: waits behind the unsent LOW_STOCK
    store.take_stock_changes(); // the stream gave up (DLQ)
    pipeline::backstop(&store, &publisher, QUIET, &|| T0 + 60).await.unwrap();
    assert!(publisher.sent().is_empty());
    publisher.fail_next(0); // SNS is back
    pipeline::backstop(&store, &publisher, QUIET, &|| T0 + 120).await.unwrap();
    assert_eq!(kinds(&publisher), [AlertType::LowStock, AlertType::OutOfStock], "both, in order, once each");
    release(&store, &first, 1).await; // 6 for sale: low again, by a hold released
    run_alerts_under(QUIET, &store, &publisher, T0 + 130).await;
    pipeline::backstop(&store, &publisher, QUIET, &|| T0 + 2000).await.unwrap();
    pipeline::backstop(&store, &publisher, QUIET, &|| T0 + 2060).await.unwrap();
    // From OUT_OF_STOCK, 6 left is still the same outage by the hysteresis: nothing more.
    assert_eq!(kinds(&publisher), [AlertType::LowStock, AlertType::OutOfStock]);
    assert!(item(&store, "SKU-1", "main").pending_alert.is_none());
}

/// A write-down crosses to LOW_STOCK inside a quiet period, and a hold lands before the consumer
/// reads the write-down's record: the reread item's last change is the hold, but the crossing is
/// the shelf's, and announced at once.
#[tokio::test]
async fn a_write_down_followed_by_a_hold_is_still_announced_at_once() {
    let (store, publisher) = (MemoryStore::new(), MemoryPublisher::new());
    shelve(&store, "SKU-1", "main", 3, 5).await; // created low: LOW_STOCK
    run_alerts_under(QUIET, &store, &publisher, T0).await;
    let delivery = adjust("main", 27, None);
    service::update_stock(&store, &product("SKU-1"), &delivery, None, &admin(), T0).await.unwrap();
    run_alerts_under(QUIET, &store, &publisher, T0 + 10).await; // BACK_IN_STOCK; quiet until T0 + 910
    let write_down = adjust("main", -26, None);
    service::update_stock(&store, &product("SKU-1"), &write_down, None, &admin(), T0).await.unwrap();
    hold(&store, 1, 1).await;
    let changes = store.take_stock_changes();
    pipeline::on_stock_change(&store, &publisher, QUIET, &changes[0], T0 + 20).await.unwrap();
    assert_eq!(kinds(&publisher), [AlertType::LowStock, AlertType::BackInStock, AlertType::LowStock]);
    assert_eq!(publisher.sent()[2].available, 3);
}

/// Found by the chaos checker: a repeated (or late) record of a delivery the alert state had judged
/// already must not hurry a crossing that holds made since, inside the quiet period.
#[tokio::test]
async fn a_repeated_record_of_an_old_shelf_change_does_not_hurry_a_held_crossing() {
    let (store, publisher) = (MemoryStore::new(), MemoryPublisher::new());
    shelve(&store, "SKU-1", "main", 3, 5).await; // created low: LOW_STOCK
    run_alerts_under(QUIET, &store, &publisher, T0).await;
    let delivery = adjust("main", 7, None);
    service::update_stock(&store, &product("SKU-1"), &delivery, None, &admin(), T0).await.unwrap();
    // BACK_IN_STOCK at once (the alerts' clock a little behind the writes': the quiet period ends at
    // T0 + 800, before the hold below lapses at T0 + 900).
    let delivered = run_alerts_under(QUIET, &store, &publisher, T0 - 100).await;
    assert_eq!(kinds(&publisher), [AlertType::LowStock, AlertType::BackInStock]);
    hold(&store, 6, 1).await; // 4 left: LOW_STOCK by a hold, held until T0 + 800
    run_alerts_under(QUIET, &store, &publisher, T0 + 20).await;
    for change in &delivered {
        pipeline::on_stock_change(&store, &publisher, QUIET, change, T0 + 30).await.unwrap();
    }
    assert_eq!(kinds(&publisher), [AlertType::LowStock, AlertType::BackInStock], "the old delivery is not news");
    pipeline::backstop(&store, &publisher, QUIET, &|| T0 + 801).await.unwrap();
    assert_eq!(kinds(&publisher), [AlertType::LowStock, AlertType::BackInStock, AlertType::LowStock]);
    assert_eq!(publisher.sent()[2].cause, Some(ChangeKind::Hold));
}

#[tokio::test]
async fn a_lagging_consumer_never_announces_a_state_the_item_has_left() {
    // Found by make chaos: a stale stream image re-announced BACK_IN_STOCK "12 available" while the
    // item had 0, because the alert state had come back to what the image showed.
    let (store, publisher) = (MemoryStore::new(), MemoryPublisher::new());
    shelve(&store, "SKU-1", "main", 12, 5).await;
    pipeline::backstop(&store, &publisher, NO_DAMPING, &|| T0).await.unwrap();
    let first = hold(&store, 12, 1).await;
    pipeline::backstop(&store, &publisher, NO_DAMPING, &|| T0).await.unwrap(); // OUT_OF_STOCK
    store.take_stock_changes();
    release(&store, &first, 1).await;
    let lagging: Vec<_> = store.take_stock_changes(); // the release's image: 12 for sale, state OUT
    pipeline::backstop(&store, &publisher, NO_DAMPING, &|| T0).await.unwrap(); // BACK_IN_STOCK
    hold(&store, 12, 2).await;
    pipeline::backstop(&store, &publisher, NO_DAMPING, &|| T0).await.unwrap(); // OUT_OF_STOCK again
    for change in &lagging {
        pipeline::on_stock_change(&store, &publisher, NO_DAMPING, change, T0).await.unwrap();
    }
    assert_eq!(kinds(&publisher), [AlertType::OutOfStock, AlertType::BackInStock, AlertType::OutOfStock]);
    assert_eq!(item(&store, "SKU-1", "main").status, Some(shared::domain::StockStatus::OutOfStock));
}

#[tokio::test]
async fn the_backstop_sends_what_the_stream_never_delivered() {
    let (store, publisher) = (MemoryStore::new(), MemoryPublisher::new());
    shelve(&store, "SKU-1", "main", 10, 5).await;
    hold(&store, 10, 1).await;
    store.take_stock_changes(); // the stream lost them all
    let report = pipeline::backstop(&store, &publisher, NO_DAMPING, &|| T0).await.unwrap();
    assert_eq!((kinds(&publisher), report.alerts_sent, report.statuses_repaired), (vec![AlertType::OutOfStock], 1, 1));
    let again = pipeline::backstop(&store, &publisher, NO_DAMPING, &|| T0).await.unwrap();
    assert_eq!((publisher.sent().len(), again.alerts_sent), (1, 0), "a second run sends nothing");
}

#[tokio::test]
async fn a_lapsed_hold_comes_back_on_sale_once_by_ttl_whatever_is_delivered_twice() {
    let store = MemoryStore::new();
    shelve(&store, "SKU-1", "main", 10, 0).await;
    hold(&store, 4, 1).await;
    assert!(store.reap_ttl(T0 + HOLD_SECONDS - 1).is_empty(), "not before its time");
    let removed = store.reap_ttl(T0 + HOLD_SECONDS);
    assert_eq!(removed.len(), 1);
    let now = T0 + HOLD_SECONDS + 1;
    assert_eq!(pipeline::on_hold_removed(&store, &removed[0], now).await.unwrap(), ExpiryOutcome::Released);
    assert_eq!(pipeline::on_hold_removed(&store, &removed[0], now).await.unwrap(), ExpiryOutcome::AlreadyReleased);
    assert_eq!(counts(&store, "SKU-1", "main"), (10, 0, 10));
    assert_eq!(store.cart_counts(holder(1).cart.as_str(), &product("SKU-1")), (0, 0), "the cart has room again");
    let kept = &store.holds()[0];
    assert_eq!((kept.state.as_str(), kept.ended_by.as_deref()), ("EXPIRED", Some("system:ttl")));
    // The EXPIRED record reaching its own retention is not a hold to release.
    let purged = store.reap_ttl(now + shared::limits::ENDED_HOLD_RETENTION_SECONDS);
    assert_eq!(pipeline::on_hold_removed(&store, &purged[0], now).await.unwrap(), ExpiryOutcome::Ignored);
    assert_eq!(counts(&store, "SKU-1", "main"), (10, 0, 10));
}

#[tokio::test]
async fn the_backstop_releases_lapsed_holds_ttl_has_not_deleted_and_a_racing_ttl_record_changes_nothing() {
    let (store, publisher) = (MemoryStore::new(), MemoryPublisher::new());
    shelve(&store, "SKU-1", "main", 10, 0).await;
    for shopper in 0..5 {
        hold(&store, 1, shopper).await;
    }
    // The TTL record of one of them, read before the backstop got to it (a race on AWS).
    let racing = HoldRecordRemoved { hold: store.holds()[0].clone(), deleted_at: T0 + HOLD_SECONDS };
    let early = pipeline::backstop(&store, &publisher, NO_DAMPING, &|| T0 + 10).await.unwrap();
    assert_eq!(early.holds_released, 0);
    let report = pipeline::backstop(&store, &publisher, NO_DAMPING, &|| T0 + HOLD_SECONDS + 1).await.unwrap();
    assert_eq!((report.holds_released, report.failures), (5, 0));
    assert_eq!(counts(&store, "SKU-1", "main"), (10, 0, 10));
    assert!(store
        .holds()
        .iter()
        .all(|h| h.state.as_str() == "EXPIRED" && h.ended_by.as_deref() == Some("system:backstop")));
    let outcome = pipeline::on_hold_removed(&store, &racing, T0 + HOLD_SECONDS + 2).await.unwrap();
    assert_eq!(outcome, ExpiryOutcome::AlreadyReleased);
    assert_eq!(counts(&store, "SKU-1", "main"), (10, 0, 10), "units came back once");
    let again = pipeline::backstop(&store, &publisher, NO_DAMPING, &|| T0 + HOLD_SECONDS + 60).await.unwrap();
    assert_eq!(again.holds_released, 0);
}

#[tokio::test]
async fn the_reconciler_repairs_drift_only_when_two_looks_agree() {
    let (store, publisher) = (MemoryStore::new(), MemoryPublisher::new());
    shelve(&store, "SKU-1", "main", 10, 0).await;
    hold(&store, 2, 1).await;
    store.corrupt_reserved(&product("SKU-1"), &warehouse("main"), 5); // 3 units leaked
    let first = pipeline::backstop(&store, &publisher, NO_DAMPING, &|| T0).await.unwrap();
    assert_eq!((first.counters_watched, first.counters_repaired), (1, 0));
    assert_eq!(counts(&store, "SKU-1", "main"), (10, 5, 5), "one look repairs nothing");
    let too_soon = pipeline::backstop(&store, &publisher, NO_DAMPING, &|| T0 + 3).await.unwrap();
    assert_eq!(too_soon.counters_repaired, 0);
    let second = pipeline::backstop(&store, &publisher, NO_DAMPING, &|| T0 + 11).await.unwrap();
    assert_eq!(second.counters_repaired, 1);
    assert_eq!(counts(&store, "SKU-1", "main"), (10, 2, 8));
    let repaired = item(&store, "SKU-1", "main").last_change.unwrap();
    assert_eq!((repaired.kind, repaired.actor.as_str()), (ChangeKind::Reconciled, "system:reconciler"));
    let quiet = pipeline::backstop(&store, &publisher, NO_DAMPING, &|| T0 + 30).await.unwrap();
    assert_eq!((quiet.counters_watched, quiet.counters_repaired), (0, 0));
}

#[tokio::test]
async fn a_change_between_the_looks_is_in_flight_not_drift() {
    let (store, publisher) = (MemoryStore::new(), MemoryPublisher::new());
    shelve(&store, "SKU-1", "main", 10, 0).await;
    store.corrupt_reserved(&product("SKU-1"), &warehouse("main"), 1);
    pipeline::backstop(&store, &publisher, NO_DAMPING, &|| T0).await.unwrap();
    hold(&store, 2, 1).await; // the item moves: the first look no longer counts
    let second = pipeline::backstop(&store, &publisher, NO_DAMPING, &|| T0 + 11).await.unwrap();
    assert_eq!((second.counters_watched, second.counters_repaired), (1, 0));
    let third = pipeline::backstop(&store, &publisher, NO_DAMPING, &|| T0 + 22).await.unwrap();
    assert_eq!(third.counters_repaired, 1);
    assert_eq!(counts(&store, "SKU-1", "main"), (10, 2, 8));
}

#[tokio::test]
async fn a_late_ttl_record_after_a_repair_does_not_return_units_twice() {
    let (store, publisher) = (MemoryStore::new(), MemoryPublisher::new());
    shelve(&store, "SKU-1", "main", 10, 0).await;
    hold(&store, 3, 1).await;
    // TTL deletes the hold; its stream record is delayed (a paused consumer, a DLQ redrive).
    let late = store.reap_ttl(T0 + HOLD_SECONDS);
    let now = T0 + HOLD_SECONDS + 5;
    pipeline::backstop(&store, &publisher, NO_DAMPING, &|| now).await.unwrap();
    let repaired = pipeline::backstop(&store, &publisher, NO_DAMPING, &|| now + 11).await.unwrap();
    assert_eq!(repaired.counters_repaired, 1);
    assert_eq!(counts(&store, "SKU-1", "main"), (10, 0, 10));
    let outcome = pipeline::on_hold_removed(&store, &late[0], now + 20).await.unwrap();
    assert_eq!(outcome, ExpiryOutcome::AccountedByReconciler);
    assert_eq!(counts(&store, "SKU-1", "main"), (10, 0, 10), "units returned once");
    assert_eq!(store.holds()[0].state.as_str(), "EXPIRED", "kept for audit");
}

#[tokio::test]
async fn every_change_of_the_figures_is_one_history_entry_even_when_delivered_twice() {
    let store = MemoryStore::new();
    shelve(&store, "SKU-1", "main", 10, 0).await;
    let held = hold(&store, 2, 1).await;
    release(&store, &held, 1).await;
    let changes = store.take_stock_changes();
    for change in changes.iter().chain(changes.iter()) {
        pipeline::on_history_change(&store, change, 3600).await.unwrap();
    }
    let (entries, _) = store.entries(&product("SKU-1"), None, 50).await.unwrap();
    let kinds: Vec<_> = entries.iter().map(|e| e.change.kind).collect();
    assert_eq!(kinds, [ChangeKind::Released, ChangeKind::Hold, ChangeKind::Set], "newest first, once each");
    let (_, page) = service::product_history(&store, &product("SKU-1"), None, 2).await.unwrap();
    let (_, rest) = service::product_history(&store, &product("SKU-1"), page.next_cursor.as_deref(), 2).await.unwrap();
    assert_eq!((page.items.len(), rest.items.len()), (2, 1));
    assert_eq!(rest.items[0].change.kind, ChangeKind::Set);
}

/// A record of one shard of a sharded item carries that shard's figures only: the consumer judges
/// the item from all of it (read whole), never from the shard, and the alert names the product.
#[tokio::test]
async fn a_shard_record_is_judged_on_the_whole_item() {
    let (store, publisher) = (MemoryStore::new(), MemoryPublisher::new());
    shelve(&store, "SKU-1", "main", 10, 5).await;
    hold(&store, 6, 1).await; // 4 for sale in all
    store.take_stock_changes();
    let mut whole = item(&store, "SKU-1", "main");
    whole.sharding = Some(shared::domain::ShardLayout { count: 4, span: 4 });
    // Shard 3 went from 1 unit for sale to none: alone it says "out of stock", the item is low.
    let shard = |available| shared::domain::StockLevel {
        shard: Some(3),
        stock_count: 1,
        reserved_count: 1 - available,
        available_count: available,
        threshold_level: 0,
        ..whole.clone()
    };
    let change = StockItemChanged { old: Some(shard(1)), new: shard(0), sequence: "9".into(), recorded_at: T0 };
    pipeline::on_stock_change(&store, &publisher, NO_DAMPING, &change, T0).await.unwrap();
    let sent = publisher.sent();
    assert_eq!(kinds(&publisher), [AlertType::LowStock]);
    assert_eq!((sent[0].available, sent[0].stock_count, sent[0].product_id.as_str()), (4, 10, "SKU-1"));
}
