//! Back-in-stock sign-ups through the in-memory stores: double opt-in, one e-mail per confirmed
//! subscriber when the product comes back (never twice: redelivered records, concurrent consumers,
//! a second restock), unsubscribe, lapsed sign-ups, refused input, the per-cart limit.

mod support;

use shared::back_in_stock::{
    self, BackInStockOutcome, EmailAddress, EmailLinks, ShopperMail, SubscriptionState, SubscriptionToken,
    CONFIRMED_SECONDS, MAX_SIGN_UPS_PER_CART, PENDING_SECONDS, RESEND_AFTER_SECONDS,
};
use shared::events::StockItemChanged;
use shared::store::memory::MemoryStore;
use shared::store::memory_shoppers::{Failure, MemoryMailer, MemorySubscriptions};
use shared::InventoryError;
use support::*;

type Shoppers = ShopperMail<MemorySubscriptions, MemoryMailer>;

fn shoppers() -> Shoppers {
    ShopperMail {
        subscriptions: MemorySubscriptions::new(),
        mailer: MemoryMailer::new(),
        links: EmailLinks { api_url: "https://api.example/v1".into() },
    }
}

fn email(name: &str) -> EmailAddress {
    EmailAddress::parse(&format!("{name}@example.com")).unwrap()
}

/// The token of the link in the last e-mail to `to`.
fn link_token(shoppers: &Shoppers, to: &str, kind: &str) -> SubscriptionToken {
    let mail = shoppers.mailer.sent().into_iter().rev().find(|m| m.to.as_str() == to).expect("a mail");
    let marker = format!("/back-in-stock/{kind}?token=");
    let start = mail.text.find(&marker).expect("the link") + marker.len();
    let token: String = mail.text[start..].chars().take_while(|c| !c.is_whitespace()).collect();
    SubscriptionToken::parse(&token).unwrap()
}

fn mails_to(shoppers: &Shoppers, to: &str) -> Vec<String> {
    shoppers.mailer.sent().into_iter().filter(|m| m.to.as_str() == to).map(|m| m.subject).collect()
}

async fn sign_up(store: &MemoryStore, shoppers: &Shoppers, name: &str, cart_n: u32) -> Result<u16, InventoryError> {
    back_in_stock::sign_up(store, shoppers, product("SKU-1"), email(name), &cart(cart_n).cart(), T0)
        .await
        .map(|(status, _)| status)
}

async fn confirmed(store: &MemoryStore, shoppers: &Shoppers, name: &str) {
    // A cart of the subscriber's own (a cart may sign up only so often).
    let own_cart = name.bytes().fold(100, |n, b| n * 31 + u32::from(b)) % 1_000_000;
    assert_eq!(sign_up(store, shoppers, name, own_cart).await.unwrap(), 202);
    let token = link_token(shoppers, &format!("{name}@example.com"), "confirm");
    let (status, view) = back_in_stock::confirm(&shoppers.subscriptions, &token, T0 + 60).await.unwrap();
    assert_eq!((status, view.status), (200, "CONFIRMED"));
}

/// Delivers the stock stream to the shoppers' consumer; returns each record's outcome.
async fn deliver(store: &MemoryStore, shoppers: &Shoppers) -> (Vec<StockItemChanged>, Vec<BackInStockOutcome>) {
    let changes = store.take_stock_changes();
    let mut outcomes = Vec::new();
    for change in &changes {
        outcomes.push(back_in_stock::on_stock_change(store, shoppers, change, T0 + 120).await.unwrap());
    }
    (changes, outcomes)
}

#[tokio::test]
async fn confirmed_subscribers_get_one_mail_when_the_product_is_back_and_nobody_else_does() {
    let (store, shoppers) = (MemoryStore::new(), shoppers());
    shelve(&store, "SKU-1", "main", 0, 0).await;
    confirmed(&store, &shoppers, "ada").await;
    confirmed(&store, &shoppers, "bob").await;
    assert_eq!(sign_up(&store, &shoppers, "cy", 2).await.unwrap(), 202); // never confirms
    confirmed(&store, &shoppers, "dee").await;
    let dee = link_token(&shoppers, "dee@example.com", "unsubscribe");
    assert_eq!(back_in_stock::unsubscribe(&shoppers.subscriptions, &dee).await.unwrap().0, 200);
    store.take_stock_changes();

    shelve(&store, "SKU-1", "main", 5, 0).await;
    let (records, outcomes) = deliver(&store, &shoppers).await;
    assert_eq!(outcomes, [BackInStockOutcome::Notified { sent: 2 }]);
    for name in ["ada", "bob"] {
        assert_eq!(
            mails_to(&shoppers, &format!("{name}@example.com")),
            ["Confirm: e-mail me when SKU-1 is back in stock", "SKU-1 is back in stock"]
        );
    }
    assert_eq!(mails_to(&shoppers, "cy@example.com").len(), 1);
    assert_eq!(mails_to(&shoppers, "dee@example.com").len(), 1);
    // The notified subscriptions ended; only the unconfirmed sign-up is kept (until its TTL).
    let left = shoppers.subscriptions.all();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].state, SubscriptionState::Pending);

    // The same record delivered again, and two consumers at once: nothing more is sent.
    let again = back_in_stock::on_stock_change(&store, &shoppers, &records[0], T0 + 130).await.unwrap();
    assert_eq!(again, BackInStockOutcome::Notified { sent: 0 });
    let mail_count = shoppers.mailer.sent().len();
    // Sold out and back again.
    shelve(&store, "SKU-1", "main", 0, 0).await;
    shelve(&store, "SKU-1", "main", 3, 0).await;
    let (_, outcomes) = deliver(&store, &shoppers).await;
    assert_eq!(outcomes, [BackInStockOutcome::NotBack, BackInStockOutcome::Notified { sent: 0 }]);
    assert_eq!(shoppers.mailer.sent().len(), mail_count);
}

#[tokio::test]
async fn two_consumers_racing_mail_each_subscriber_once() {
    let (store, shoppers) = (MemoryStore::new(), shoppers());
    shelve(&store, "SKU-1", "main", 0, 0).await;
    for name in ["a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9", "b1", "b2", "b3"] {
        confirmed(&store, &shoppers, name).await;
    }
    store.take_stock_changes();
    shelve(&store, "SKU-1", "main", 5, 0).await;
    let [record] = <[StockItemChanged; 1]>::try_from(store.take_stock_changes()).unwrap();
    let (first, second) = tokio::join!(
        back_in_stock::on_stock_change(&store, &shoppers, &record, T0 + 120),
        back_in_stock::on_stock_change(&store, &shoppers, &record, T0 + 120),
    );
    let sent = |outcome: BackInStockOutcome| match outcome {
        BackInStockOutcome::Notified { sent } => sent,
        other => panic!("{other:?}"),
    };
    assert_eq!(sent(first.unwrap()) + sent(second.unwrap()), 12);
    let notified = shoppers.mailer.sent().into_iter().filter(|m| !m.subject.starts_with("Confirm")).count();
    assert_eq!(notified, 12);
    assert!(shoppers.subscriptions.all().is_empty());
}

#[tokio::test]
async fn a_product_is_back_only_when_its_total_goes_from_none_to_some() {
    let (store, shoppers) = (MemoryStore::new(), shoppers());
    shelve(&store, "SKU-1", "main", 0, 0).await;
    shelve(&store, "SKU-1", "east", 0, 0).await;
    confirmed(&store, &shoppers, "ada").await;
    store.take_stock_changes();
    // More units in a warehouse that already had some is no news; a hold taking the last unit and
    // its release is (the product was out and is back).
    shelve(&store, "SKU-1", "east", 2, 0).await;
    let (_, outcomes) = deliver(&store, &shoppers).await;
    assert_eq!(outcomes, [BackInStockOutcome::Notified { sent: 1 }]);
    shelve(&store, "SKU-1", "east", 4, 0).await;
    let (_, outcomes) = deliver(&store, &shoppers).await;
    assert_eq!(outcomes, [BackInStockOutcome::NotBack]);
}

#[tokio::test]
async fn a_refused_mail_is_sent_on_the_retry_and_an_unknown_one_never_again() {
    let (store, shoppers) = (MemoryStore::new(), shoppers());
    shelve(&store, "SKU-1", "main", 0, 0).await;
    confirmed(&store, &shoppers, "ada").await;
    store.take_stock_changes();
    shelve(&store, "SKU-1", "main", 5, 0).await;
    let [record] = <[StockItemChanged; 1]>::try_from(store.take_stock_changes()).unwrap();

    // SES refused it (throttled): the record fails, the subscription is CONFIRMED again.
    shoppers.mailer.fail_next(1, Failure::NotSent);
    let err = back_in_stock::on_stock_change(&store, &shoppers, &record, T0 + 120).await.unwrap_err();
    assert_eq!(err.status(), 503);
    let [waiting] = <[_; 1]>::try_from(shoppers.subscriptions.all()).unwrap();
    assert_eq!(waiting.state, SubscriptionState::Confirmed);
    assert_eq!(waiting.expires_at, T0 + 60 + CONFIRMED_SECONDS, "its own expiry is back");
    // The retry sends it.
    let retried = back_in_stock::on_stock_change(&store, &shoppers, &record, T0 + 125).await.unwrap();
    assert_eq!(retried, BackInStockOutcome::Notified { sent: 1 });
    assert_eq!(mails_to(&shoppers, "ada@example.com").len(), 2);

    // A mail whose fate is unknown (SES took it, the answer was lost) is never sent again.
    shelve(&store, "SKU-1", "main", 0, 0).await;
    confirmed(&store, &shoppers, "bob").await;
    shelve(&store, "SKU-1", "main", 5, 0).await;
    let changes = store.take_stock_changes();
    shoppers.mailer.fail_next(1, Failure::MaybeSent);
    for change in &changes {
        back_in_stock::on_stock_change(&store, &shoppers, change, T0 + 200).await.unwrap();
        back_in_stock::on_stock_change(&store, &shoppers, change, T0 + 201).await.unwrap();
    }
    assert_eq!(mails_to(&shoppers, "bob@example.com").len(), 2, "confirmation + at most one more");
    let [stuck] = <[_; 1]>::try_from(shoppers.subscriptions.all()).unwrap();
    assert_eq!(stuck.state, SubscriptionState::Sending);
    assert_eq!(shoppers.subscriptions.reap_ttl(T0 + 200 + back_in_stock::SENDING_SECONDS), 1, "TTL removes it");
}

#[tokio::test]
async fn confirming_twice_is_once_and_a_lapsed_or_replaced_link_is_not_found() {
    let (store, shoppers) = (MemoryStore::new(), shoppers());
    shelve(&store, "SKU-1", "main", 0, 0).await;
    assert_eq!(sign_up(&store, &shoppers, "ada", 1).await.unwrap(), 202);
    let token = link_token(&shoppers, "ada@example.com", "confirm");
    for at in [T0 + 10, T0 + 20] {
        let (status, view) = back_in_stock::confirm(&shoppers.subscriptions, &token, at).await.unwrap();
        assert_eq!((status, view.status), (200, "CONFIRMED"));
    }
    // A sign-up again while confirmed: the same answer, no mail, nothing changed.
    assert_eq!(sign_up(&store, &shoppers, "ada", 2).await.unwrap(), 202);
    assert_eq!(mails_to(&shoppers, "ada@example.com").len(), 1);

    // A pending sign-up's link lapses after a day (even before TTL deletes it).
    assert_eq!(sign_up(&store, &shoppers, "bob", 1).await.unwrap(), 202);
    let late = link_token(&shoppers, "bob@example.com", "confirm");
    let err = back_in_stock::confirm(&shoppers.subscriptions, &late, T0 + PENDING_SECONDS).await.unwrap_err();
    assert_eq!(err.code(), "SUBSCRIPTION_NOT_FOUND");
    assert_eq!(shoppers.subscriptions.reap_ttl(T0 + PENDING_SECONDS), 1);

    // Signing up again within 15 minutes mails nothing more; later, a new link replaces the old.
    let cy_cart = cart(3).cart();
    let at = |t| back_in_stock::sign_up(&store, &shoppers, product("SKU-1"), email("cy"), &cy_cart, t);
    at(T0).await.unwrap();
    at(T0 + 60).await.unwrap();
    assert_eq!(mails_to(&shoppers, "cy@example.com").len(), 1);
    let old = link_token(&shoppers, "cy@example.com", "confirm");
    at(T0 + RESEND_AFTER_SECONDS + 1).await.unwrap();
    assert_eq!(mails_to(&shoppers, "cy@example.com").len(), 2);
    let err = back_in_stock::confirm(&shoppers.subscriptions, &old, T0 + RESEND_AFTER_SECONDS + 2).await.unwrap_err();
    assert_eq!(err.status(), 404);
    let new = link_token(&shoppers, "cy@example.com", "confirm");
    assert!(back_in_stock::confirm(&shoppers.subscriptions, &new, T0 + RESEND_AFTER_SECONDS + 2).await.is_ok());
}

#[tokio::test]
async fn unsubscribing_deletes_the_address_and_answers_the_same_twice() {
    let (store, shoppers) = (MemoryStore::new(), shoppers());
    shelve(&store, "SKU-1", "main", 0, 0).await;
    assert_eq!(sign_up(&store, &shoppers, "ada", 1).await.unwrap(), 202);
    let token = link_token(&shoppers, "ada@example.com", "unsubscribe");
    for _ in 0..2 {
        let (status, view) = back_in_stock::unsubscribe(&shoppers.subscriptions, &token).await.unwrap();
        assert_eq!((status, view.status), (200, "UNSUBSCRIBED"));
    }
    assert!(shoppers.subscriptions.all().is_empty());
    let err = back_in_stock::confirm(&shoppers.subscriptions, &token, T0 + 5).await.unwrap_err();
    assert_eq!(err.code(), "SUBSCRIPTION_NOT_FOUND");
}

#[tokio::test]
async fn bad_sign_ups_are_refused_and_change_nothing() {
    let (store, shoppers) = (MemoryStore::new(), shoppers());
    shelve(&store, "SKU-1", "main", 0, 0).await;
    shelve(&store, "SKU-2", "main", 4, 0).await;
    let ada_cart = cart(1).cart();
    let sign = |product_id: &'static str| {
        back_in_stock::sign_up(&store, &shoppers, product(product_id), email("ada"), &ada_cart, T0)
    };
    let err = sign("SKU-404").await.unwrap_err();
    assert_eq!(err.code(), "PRODUCT_NOT_FOUND");
    let err = sign("SKU-2").await.unwrap_err();
    assert_eq!((err.code(), err.status()), ("PRODUCT_IN_STOCK", 409));
    assert!(EmailAddress::parse("a@example.com\r\nBcc: b@example.com").is_err());
    assert!(shoppers.subscriptions.all().is_empty());
    assert!(shoppers.mailer.sent().is_empty());

    // SES refusing the address: 400, nothing kept.
    shoppers.mailer.fail_next(1, Failure::Rejected);
    let err = sign_up(&store, &shoppers, "ada", 1).await.unwrap_err();
    assert_eq!(err.status(), 400);
    assert!(shoppers.subscriptions.all().is_empty());
    // SES refusing for now: 503, nothing kept, so the retry mails at once.
    shoppers.mailer.fail_next(1, Failure::NotSent);
    assert_eq!(sign_up(&store, &shoppers, "ada", 1).await.unwrap_err().status(), 503);
    assert!(shoppers.subscriptions.all().is_empty());
    assert_eq!(sign_up(&store, &shoppers, "ada", 1).await.unwrap(), 202);
    assert_eq!(mails_to(&shoppers, "ada@example.com").len(), 1);
}

#[tokio::test]
async fn a_cart_may_sign_up_so_many_times_an_hour() {
    let (store, shoppers) = (MemoryStore::new(), shoppers());
    shelve(&store, "SKU-1", "main", 0, 0).await;
    for n in 0..MAX_SIGN_UPS_PER_CART {
        assert_eq!(sign_up(&store, &shoppers, &format!("s{n}"), 7).await.unwrap(), 202);
    }
    let err = sign_up(&store, &shoppers, "one-more", 7).await.unwrap_err();
    assert_eq!((err.code(), err.status()), ("TOO_MANY_SIGN_UPS", 429));
    assert_eq!(shoppers.subscriptions.all().len() as i64, MAX_SIGN_UPS_PER_CART);
    assert_eq!(sign_up(&store, &shoppers, "one-more", 8).await.unwrap(), 202, "another cart");
    let cart_7 = cart(7).cart();
    let next_hour = back_in_stock::sign_up(
        &store,
        &shoppers,
        product("SKU-1"),
        email("later"),
        &cart_7,
        T0 + back_in_stock::SIGN_UP_WINDOW_SECONDS,
    );
    assert_eq!(next_hour.await.unwrap().0, 202);
}

#[test]
fn the_e_mails_say_what_and_when_and_carry_their_links() {
    let links = EmailLinks { api_url: "https://abc.execute-api.eu-west-1.amazonaws.com/v1/".into() };
    let to = email("ada");
    let token = SubscriptionToken::new(shared::back_in_stock::SubscriptionKey::of(&product("SKU-1"), &to));
    let confirmation = back_in_stock::confirmation_email(&to, &token, &links);
    assert!(confirmation.text.contains(&format!(
        "https://abc.execute-api.eu-west-1.amazonaws.com/v1/back-in-stock/confirm?token={}",
        token.expose()
    )));
    assert_eq!(confirmation.unsubscribe_url, links.unsubscribe(&token));
    assert!(!confirmation.text.contains("ada@example.com"), "the address is not repeated in the body");
    let news = back_in_stock::back_in_stock_email(&to, &token, &links);
    assert_eq!(news.subject, "SKU-1 is back in stock");
    assert!(news.text.contains("only e-mail") && news.text.contains(&news.unsubscribe_url));
    println!("--- {}\n{}\n--- {}\n{}", confirmation.subject, confirmation.text, news.subject, news.text);
}
