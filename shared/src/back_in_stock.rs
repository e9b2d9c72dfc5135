//! Back-in-stock e-mails for shoppers: "Email me when it's back" on the page of a product that is out
//! of stock. Double opt-in: a sign-up stores the address as PENDING and mails a confirmation link;
//! the link makes the subscription CONFIRMED. When the product's total available units (over its
//! warehouses) go from none to some, every confirmed subscriber gets one e-mail, and the
//! subscription ends (its address is deleted). Every mail has an unsubscribe link that deletes it.
//!
//! Privacy: an address lives only in its subscription item of the subscriptions table, with a TTL
//! (a day while pending, 90 days once confirmed), and is deleted on notification or unsubscribe.
//! It is never logged, never in an error message, never in a URL; [`EmailAddress`] prints as
//! `EmailAddress(…)`. The links carry a random secret whose SHA-256 alone is stored.
//!
//! At most once per subscription: the stock consumer claims a subscription (CONFIRMED → SENDING,
//! one conditional write) before it sends, so a redelivered record or a second consumer finds no
//! CONFIRMED subscription to mail. The window between SES accepting a mail and the subscription's
//! deletion can only leave a SENDING item behind (its TTL removes it within a day); a mail whose
//! fate is unknown (a timeout) is never sent again. We chose losing a mail in a crash over mailing
//! twice: the requirement is at most once. A mail SES refused outright was not sent: its claim is
//! handed back (SENDING → CONFIRMED) and the stream record fails, so the retry mails exactly the
//! subscribers still waiting.

use std::fmt;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::ProductId;
use crate::error::InventoryError;
use crate::events::StockItemChanged;
use crate::holds::CartId;
use crate::store::{ConfirmOutcome, Mailer, StockReader, SubscriptionStore};
use crate::time::EpochSeconds;

/// Longest address accepted (RFC 5321's path limit, less the angle brackets).
pub const MAX_EMAIL_LEN: usize = 254;

/// How long an unconfirmed sign-up (and its address) is kept: the confirmation link's lifetime.
pub const PENDING_SECONDS: i64 = 24 * 3600;
/// How long a confirmed subscription waits for the product to come back before it lapses.
pub const CONFIRMED_SECONDS: i64 = 90 * 24 * 3600;
/// How long a subscription claimed for its e-mail is kept if the consumer dies before deleting it.
pub const SENDING_SECONDS: i64 = 24 * 3600;
/// A second sign-up of the same address for the same product mails a new confirmation link only
/// this long after the last one, so the route cannot be used to flood someone's inbox.
pub const RESEND_AFTER_SECONDS: i64 = 15 * 60;

/// Sign-ups one cart may make per clock hour (counted in the requests table).
pub const MAX_SIGN_UPS_PER_CART: i64 = 10;
pub const SIGN_UP_WINDOW_SECONDS: i64 = 3600;

/// E-mails sent at once to one product's subscribers (SES SendEmail takes one personalised
/// message per call: each carries its own unsubscribe link).
pub const SEND_CONCURRENCY: usize = 10;
/// Time one stream record may spend mailing before it leaves the rest to its retry (the function
/// times out at 10 s).
pub const SEND_BUDGET: Duration = Duration::from_secs(6);

/// An e-mail address, checked once at the edge: plain ASCII `local@domain`, no quoting, no
/// comments, no IP literals, no whitespace or control characters (so nothing can inject a header),
/// at most [`MAX_EMAIL_LEN`] characters. Exactly the `email` pattern of docs/openapi.yaml (the
/// fuzzer holds us to it), so the finer limits of RFC 5321 (64 before the @, 63 per domain label)
/// are left to SES, whose refusal of an address answers 400 too. Stored in lower case: one
/// subscription per mailbox.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct EmailAddress(String);

/// Characters of a dot-atom local part besides letters and digits (RFC 5322 atext).
const LOCAL_PUNCTUATION: &str = "!#$%&'*+/=?^_`{|}~-.";

impl EmailAddress {
    /// The messages never repeat the address: they are logged as the request's refusal reason.
    pub fn parse(raw: &str) -> Result<Self, InventoryError> {
        let invalid = |why: &str| InventoryError::invalid("email", format!("email: {why}"));
        if raw.is_empty() {
            return Err(invalid("must not be empty"));
        }
        if raw.len() > MAX_EMAIL_LEN {
            return Err(invalid(&format!("must be at most {MAX_EMAIL_LEN} characters")));
        }
        if raw.chars().any(|c| !c.is_ascii() || c.is_ascii_control() || c.is_whitespace()) {
            return Err(invalid("must be plain ASCII without spaces or line breaks"));
        }
        let Some((local, domain)) = raw.split_once('@') else {
            return Err(invalid("must be an address like name@example.com"));
        };
        let local_ok = !local.is_empty()
            && local.chars().all(|c| c.is_ascii_alphanumeric() || LOCAL_PUNCTUATION.contains(c))
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..");
        if !local_ok {
            return Err(invalid("the part before @ has a character or dot we do not accept"));
        }
        let labels: Vec<&str> = domain.split('.').collect();
        let label_ok = |label: &&str| {
            !label.is_empty()
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        };
        let top_ok = labels.last().is_some_and(|top| top.len() >= 2 && top.chars().all(|c| c.is_ascii_alphabetic()));
        if labels.len() < 2 || !labels.iter().all(label_ok) || !top_ok {
            return Err(invalid("the part after @ must be a domain name like example.com"));
        }
        Ok(Self(raw.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

// Never printed: not in a debug dump of a subscription, an e-mail or an error.
impl fmt::Debug for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EmailAddress(…)")
    }
}

impl<'de> Deserialize<'de> for EmailAddress {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes()).iter().map(|byte| format!("{byte:02x}")).collect()
}

fn is_hex64(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Which subscription: the product and a pseudonym of the address (SHA-256 of product and address,
/// so a second sign-up of the same mailbox finds the first).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriptionKey {
    pub product_id: ProductId,
    pub subscriber: String,
}

impl SubscriptionKey {
    pub fn of(product: &ProductId, email: &EmailAddress) -> Self {
        Self { product_id: product.clone(), subscriber: sha256_hex(&format!("{product}\n{}", email.as_str())) }
    }
}

/// What an e-mail link carries: `<product>.<subscriber>.<secret>` (a product id may contain dots,
/// the other two are 64 hex digits). The secret is 244 random bits (two v4 UUIDs, from the OS's
/// generator); only its SHA-256 is stored, so the table cannot be used to forge a link.
#[derive(Clone, PartialEq, Eq)]
pub struct SubscriptionToken {
    pub key: SubscriptionKey,
    secret: String,
}

impl SubscriptionToken {
    pub fn new(key: SubscriptionKey) -> Self {
        Self { key, secret: format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple()) }
    }

    pub fn parse(raw: &str) -> Result<Self, InventoryError> {
        let invalid =
            || InventoryError::invalid("token", "token: not a link we sent (copy the whole link from the e-mail)");
        let mut parts = raw.rsplitn(3, '.');
        let (Some(secret), Some(subscriber), Some(product)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(invalid());
        };
        if !is_hex64(secret) || !is_hex64(subscriber) {
            return Err(invalid());
        }
        let product_id = ProductId::parse(product).map_err(|_| invalid())?;
        Ok(Self { key: SubscriptionKey { product_id, subscriber: subscriber.to_owned() }, secret: secret.to_owned() })
    }

    /// What the table keeps instead of the secret.
    pub fn hash(&self) -> String {
        sha256_hex(&self.secret)
    }

    /// The token as links carry it (letters, digits, '-', '_', '.', ':': nothing to escape in a query).
    pub fn expose(&self) -> String {
        format!("{}.{}.{}", self.key.product_id, self.key.subscriber, self.secret)
    }
}

impl fmt::Debug for SubscriptionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SubscriptionToken({}, …)", self.key.product_id)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SubscriptionState {
    /// Signed up, confirmation mail sent, not confirmed yet.
    Pending,
    /// Confirmed: waits for the product to come back.
    Confirmed,
    /// Claimed by the stock consumer for its one e-mail (deleted once SES took it).
    Sending,
}

/// A subscription as the subscriptions table keeps it (`expires_at` is the TTL attribute).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    pub product_id: ProductId,
    pub subscriber: String,
    pub email: EmailAddress,
    pub state: SubscriptionState,
    pub token_hash: String,
    pub created_at: EpochSeconds,
    /// When the last confirmation mail was claimed (PENDING only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailed_at: Option<EpochSeconds>,
    pub expires_at: EpochSeconds,
    /// While SENDING: the confirmed subscription's own expiry, put back if its e-mail is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed_until: Option<EpochSeconds>,
}

impl Subscription {
    pub fn key(&self) -> SubscriptionKey {
        SubscriptionKey { product_id: self.product_id.clone(), subscriber: self.subscriber.clone() }
    }
}

/// One e-mail to one shopper. Plain text, with the unsubscribe link also as a List-Unsubscribe
/// header (mail clients show their own "Unsubscribe" button for it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub to: EmailAddress,
    pub subject: String,
    pub text: String,
    pub unsubscribe_url: String,
}

/// Why a mail did not go out. `NotSent`: SES refused it for now (throttled, paused, misconfigured:
/// safe to try again later); `Rejected`: SES will never take this mail (the address); `MaybeSent`:
/// no answer, SES may have sent it (never tried again: at most once).
#[derive(Debug)]
pub enum MailFailure {
    NotSent(InventoryError),
    Rejected(InventoryError),
    MaybeSent(InventoryError),
}

/// Where the e-mails' links point: the API's public base URL (`PUBLIC_API_URL`, the stage's URL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailLinks {
    pub api_url: String,
}

impl EmailLinks {
    pub fn confirm(&self, token: &SubscriptionToken) -> String {
        format!("{}/back-in-stock/confirm?token={}", self.api_url.trim_end_matches('/'), token.expose())
    }

    pub fn unsubscribe(&self, token: &SubscriptionToken) -> String {
        format!("{}/back-in-stock/unsubscribe?token={}", self.api_url.trim_end_matches('/'), token.expose())
    }
}

/// The first e-mail: asks to confirm. Sent at sign-up.
pub fn confirmation_email(to: &EmailAddress, token: &SubscriptionToken, links: &EmailLinks) -> Email {
    let product = &token.key.product_id;
    let unsubscribe_url = links.unsubscribe(token);
    let text = format!(
        "Hello,\n\n\
         someone - we hope you - asked us to e-mail this address once when {product} is back in stock.\n\n\
         To confirm, open this link within 24 hours:\n{confirm}\n\n\
         If you did not ask, ignore this e-mail: without confirmation we delete your address within a day.\n\
         To delete it now: {unsubscribe_url}\n",
        confirm = links.confirm(token),
    );
    Email {
        to: to.clone(),
        subject: format!("Confirm: e-mail me when {product} is back in stock"),
        text,
        unsubscribe_url,
    }
}

/// The second and last e-mail: the product is back. Sent once, when it comes back.
pub fn back_in_stock_email(to: &EmailAddress, token: &SubscriptionToken, links: &EmailLinks) -> Email {
    let product = &token.key.product_id;
    let unsubscribe_url = links.unsubscribe(token);
    let text = format!(
        "Hello,\n\n\
         {product} is back in stock. Stock is limited and not held for you: first come, first served.\n\n\
         This is the only e-mail you get about it: your sign-up has ended and we have deleted your address.\n\
         Unsubscribe (nothing more is sent either way): {unsubscribe_url}\n"
    );
    Email { to: to.clone(), subject: format!("{product} is back in stock"), text, unsubscribe_url }
}

/// The state the shopper's routes and the stock consumer use: the subscriptions, the mailer and
/// where the links point.
#[derive(Debug, Clone)]
pub struct ShopperMail<S, M> {
    pub subscriptions: S,
    pub mailer: M,
    pub links: EmailLinks,
}

/// The answer of the three routes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubscriptionView {
    pub product_id: ProductId,
    /// PENDING_CONFIRMATION (sign-up), CONFIRMED, UNSUBSCRIBED.
    pub status: &'static str,
    pub message: String,
}

/// Total units for sale of a product over its warehouses; `None` if it has no stock item.
async fn total_available(stock: &impl StockReader, product: &ProductId) -> Result<Option<i64>, InventoryError> {
    let levels = stock.stock_levels(product, None).await?;
    Ok((!levels.is_empty()).then(|| levels.iter().map(|level| level.available_count.max(0)).sum()))
}

/// POST /inventory/{productId}/back-in-stock: signs `email` up for `product`, for the cart `cart`.
/// The answer is the same (202) whether the address is new, pending or confirmed, so the route
/// does not tell who subscribed to what. A product that is not out of stock is refused (409): the
/// shopper can buy it now, and a sign-up would wait for the next time it runs out and comes back.
pub async fn sign_up(
    stock: &impl StockReader,
    shoppers: &ShopperMail<impl SubscriptionStore, impl Mailer>,
    product: ProductId,
    email: EmailAddress,
    cart: &CartId,
    now: EpochSeconds,
) -> Result<(u16, SubscriptionView), InventoryError> {
    match total_available(stock, &product).await? {
        None => return Err(InventoryError::ProductNotFound { message: format!("product {product} not found") }),
        Some(available) if available > 0 => {
            return Err(InventoryError::ProductInStock {
                available,
                message: format!("{product} is in stock now ({available} available): add it to your cart"),
            })
        }
        Some(_) => {}
    }
    let window = now.div_euclid(SIGN_UP_WINDOW_SECONDS);
    if !shoppers.subscriptions.count_sign_up(cart, window, MAX_SIGN_UPS_PER_CART, now).await? {
        return Err(InventoryError::TooManySignUps {
            limit: MAX_SIGN_UPS_PER_CART,
            message: format!("this cart made {MAX_SIGN_UPS_PER_CART} sign-ups this hour; try again later"),
        });
    }
    let token = SubscriptionToken::new(SubscriptionKey::of(&product, &email));
    let pending = Subscription {
        product_id: product.clone(),
        subscriber: token.key.subscriber.clone(),
        email,
        state: SubscriptionState::Pending,
        token_hash: token.hash(),
        created_at: now,
        mailed_at: Some(now),
        expires_at: now + PENDING_SECONDS,
        confirmed_until: None,
    };
    let view = SubscriptionView {
        product_id: product.clone(),
        status: "PENDING_CONFIRMATION",
        message: format!(
            "Check your inbox to confirm: we will e-mail you once when {product} is back in stock \
             (the link in our e-mail works for 24 hours)."
        ),
    };
    if !shoppers.subscriptions.start_sign_up(&pending, now - RESEND_AFTER_SECONDS).await? {
        tracing::info!(product_id = %product, "sign-up of a subscribed or recently mailed address: nothing sent");
        return Ok((202, view));
    }
    match shoppers.mailer.send(&confirmation_email(&pending.email, &token, &shoppers.links)).await {
        Ok(()) => {
            tracing::info!(product_id = %product, "back-in-stock sign-up: confirmation e-mail sent");
            Ok((202, view))
        }
        // Not sent: forget the sign-up, so the shopper's retry mails a link at once.
        Err(MailFailure::NotSent(err)) => {
            shoppers.subscriptions.drop_sign_up(&pending).await?;
            Err(err)
        }
        // SES will not mail this address: nothing is kept, and the shopper is told.
        Err(MailFailure::Rejected(err)) => {
            shoppers.subscriptions.drop_sign_up(&pending).await?;
            tracing::info!(product_id = %product, error = %err, "back-in-stock sign-up: SES refused the address");
            Err(InventoryError::invalid("email", "email: this address cannot receive our e-mail"))
        }
        // Perhaps sent: keep it (a retry within RESEND_AFTER_SECONDS sends nothing more).
        Err(MailFailure::MaybeSent(err)) => Err(err),
    }
}

/// GET /back-in-stock/confirm?token=: the confirmation link. Confirming twice is the same as once.
pub async fn confirm(
    subscriptions: &impl SubscriptionStore,
    token: &SubscriptionToken,
    now: EpochSeconds,
) -> Result<(u16, SubscriptionView), InventoryError> {
    let product = &token.key.product_id;
    match subscriptions.confirm(&token.key, &token.hash(), now, now + CONFIRMED_SECONDS).await? {
        ConfirmOutcome::Confirmed | ConfirmOutcome::AlreadyConfirmed => {
            tracing::info!(product_id = %product, "back-in-stock subscription confirmed");
            Ok((
                200,
                SubscriptionView {
                    product_id: product.clone(),
                    status: "CONFIRMED",
                    message: format!(
                        "Confirmed: we will e-mail you once when {product} is back in stock (if that is not within \
                         90 days, we delete your address). Every e-mail has a link to unsubscribe."
                    ),
                },
            ))
        }
        ConfirmOutcome::NotFound => Err(InventoryError::SubscriptionNotFound {
            message: "this link has expired or was replaced by a newer one; sign up again on the product's page"
                .to_owned(),
        }),
    }
}

/// GET /back-in-stock/unsubscribe?token=: deletes the subscription and its address. The answer is
/// the same whether there was one (idempotent: a second click, or a link from the e-mail after the
/// product came back, finds nothing and still answers that nothing will be sent).
pub async fn unsubscribe(
    subscriptions: &impl SubscriptionStore,
    token: &SubscriptionToken,
) -> Result<(u16, SubscriptionView), InventoryError> {
    let product = &token.key.product_id;
    let deleted = subscriptions.unsubscribe(&token.key, &token.hash()).await?;
    tracing::info!(product_id = %product, deleted, "back-in-stock unsubscribe");
    Ok((
        200,
        SubscriptionView {
            product_id: product.clone(),
            status: "UNSUBSCRIBED",
            message: format!("Unsubscribed: we will not e-mail you about {product}, and we keep no address for it."),
        },
    ))
}

/// What one stock-stream record came to for the shoppers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackInStockOutcome {
    /// The record is not an item going from none available to some, or (with someone waiting)
    /// the product as a whole has none available now.
    NotBack,
    /// The product is back: the e-mails sent now (0 when every subscriber was mailed before).
    Notified { sent: usize },
}

/// Stock stream: an item whose available units went from none to some may have brought its product
/// back. Reads the product's confirmed subscriptions and, if there are any, its warehouses (both
/// strongly consistent); if units are for sale, mails each subscriber once, at most
/// [`SEND_CONCURRENCY`] at a time.
pub async fn on_stock_change(
    stock: &impl StockReader,
    shoppers: &ShopperMail<impl SubscriptionStore, impl Mailer>,
    change: &StockItemChanged,
    now: EpochSeconds,
) -> Result<BackInStockOutcome, InventoryError> {
    let before = change.old.as_ref().map_or(0, |old| old.available_count);
    if before > 0 || change.new.available_count <= 0 {
        return Ok(BackInStockOutcome::NotBack);
    }
    let product = &change.new.product_id;
    // Whom to mail first: most restocks have nobody waiting, and then the stock is not read again.
    let waiting = shoppers.subscriptions.confirmed(product, now).await?;
    if waiting.is_empty() {
        return Ok(BackInStockOutcome::Notified { sent: 0 });
    }
    if total_available(stock, product).await?.unwrap_or(0) <= 0 {
        return Ok(BackInStockOutcome::NotBack);
    }
    let started = Instant::now();
    let results: Vec<Result<Sent, InventoryError>> = stream::iter(waiting)
        .map(|subscription| notify_one(shoppers, subscription, started, now))
        .buffer_unordered(SEND_CONCURRENCY)
        .collect()
        .await;
    let sent = results.iter().filter(|r| matches!(r, Ok(Sent::Mailed))).count();
    let left = results.iter().filter(|r| matches!(r, Ok(Sent::Later) | Err(_))).count();
    tracing::info!(product_id = %product, sent, left, "back-in-stock e-mails");
    if let Some(Err(err)) = results.into_iter().find(Result::is_err) {
        return Err(err);
    }
    if left > 0 {
        return Err(InventoryError::Unavailable {
            detail: format!("{left} back-in-stock e-mails of {product} left for the record's retry"),
        });
    }
    Ok(BackInStockOutcome::Notified { sent })
}

enum Sent {
    Mailed,
    /// Someone else claimed it first (a concurrent delivery), or it was unsubscribed meanwhile.
    NotOurs,
    /// Its e-mail fate is unknown: never tried again.
    Unknown,
    /// Out of time, or SES refused it: still CONFIRMED, for the record's retry.
    Later,
}

async fn notify_one(
    shoppers: &ShopperMail<impl SubscriptionStore, impl Mailer>,
    subscription: Subscription,
    started: Instant,
    now: EpochSeconds,
) -> Result<Sent, InventoryError> {
    if started.elapsed() > SEND_BUDGET {
        return Ok(Sent::Later);
    }
    let store = &shoppers.subscriptions;
    // The claim comes first: whoever wins it is the only one to mail this subscription.
    let Some(claimed) = store.claim_notification(&subscription, now + SENDING_SECONDS).await? else {
        return Ok(Sent::NotOurs);
    };
    // The token is rebuilt from the key only to address the unsubscribe link; its secret is new
    // and unknown to the table, so the link answers "unsubscribed" (the subscription ends anyway).
    let token = SubscriptionToken::new(claimed.key());
    match shoppers.mailer.send(&back_in_stock_email(&claimed.email, &token, &shoppers.links)).await {
        Ok(()) => {
            store.end_subscription(&claimed).await?;
            Ok(Sent::Mailed)
        }
        // SES will never take it: the subscription ends without its e-mail.
        Err(MailFailure::Rejected(err)) => {
            tracing::warn!(product_id = %claimed.product_id, error = %err, "back-in-stock e-mail refused for good");
            store.end_subscription(&claimed).await?;
            Ok(Sent::Unknown)
        }
        Err(MailFailure::NotSent(err)) => {
            tracing::warn!(product_id = %claimed.product_id, error = %err, detail = ?err,
                           "back-in-stock e-mail refused; handed back for the retry");
            store.release_notification(&claimed).await?;
            Ok(Sent::Later)
        }
        Err(MailFailure::MaybeSent(err)) => {
            tracing::warn!(product_id = %claimed.product_id, error = %err, detail = ?err,
                           "back-in-stock e-mail may not have been sent; not retried (at most once)");
            Ok(Sent::Unknown)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked_and_never_printed() {
        let email = EmailAddress::parse("Ada.Lovelace+shop@Example.co.uk").unwrap();
        assert_eq!(email.as_str(), "ada.lovelace+shop@example.co.uk");
        assert_eq!(format!("{email:?}"), "EmailAddress(…)");
        let too_long = format!("{}@{}.com", "a".repeat(60), "b".repeat(200));
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a@b",
            "a@b.c",
            "a@@b.com",
            "a b@example.com",
            "a@example.com\r\nBcc: x@evil.com",
            "a@example.com\n",
            " a@example.com",
            ".a@example.com",
            "a..b@example.com",
            "a.@example.com",
            "\"quoted\"@example.com",
            "a@[127.0.0.1]",
            "a@-example.com",
            "a@example.123",
            "ä@example.com",
            "a@exämple.com",
            "a,b@example.com",
            "a<b>@example.com",
            too_long.as_str(),
        ] {
            let err = EmailAddress::parse(bad).unwrap_err();
            assert_eq!(err.status(), 400, "{bad:?}");
            if bad.len() > 3 {
                assert!(!err.to_string().contains(bad), "the message repeats {bad:?}");
            }
        }
    }

    /// The product page checks the length with the same number (frontend/src/limits.ts).
    #[test]
    fn the_frontend_uses_this_limit() {
        let frontend = include_str!("../../frontend/src/limits.ts");
        assert!(frontend.lines().any(|line| line == format!("export const MAX_EMAIL_LEN = {MAX_EMAIL_LEN};")));
    }

    #[test]
    fn a_token_round_trips_and_keeps_its_secret() {
        let key = SubscriptionKey::of(&ProductId::parse("SKU.1:a").unwrap(), &EmailAddress::parse("a@b.co").unwrap());
        let token = SubscriptionToken::new(key.clone());
        let parsed = SubscriptionToken::parse(&token.expose()).unwrap();
        assert_eq!(parsed, token);
        assert_eq!(parsed.key, key);
        assert_ne!(token.hash(), token.secret);
        assert!(!format!("{token:?}").contains(&token.secret));
        for bad in ["", "x", "SKU-1.abc.def", &format!("SKU 1.{}.{}", "a".repeat(64), "b".repeat(64))] {
            assert_eq!(SubscriptionToken::parse(bad).unwrap_err().status(), 400, "{bad:?}");
        }
    }
}
