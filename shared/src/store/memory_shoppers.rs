//! In-memory back-in-stock subscriptions and mailer, with the DynamoDB adapter's conditional
//! semantics (`subscriptions`), for the use-case tests. TTL is played by [`MemorySubscriptions::reap_ttl`].

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use super::{ConfirmOutcome, Mailer, SubscriptionStore};
use crate::back_in_stock::{Email, MailFailure, Subscription, SubscriptionKey, SubscriptionState};
use crate::domain::ProductId;
use crate::error::InventoryError;
use crate::holds::CartId;
use crate::time::EpochSeconds;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Debug, Default)]
pub struct MemorySubscriptions {
    items: Mutex<BTreeMap<SubscriptionKey, Subscription>>,
    sign_ups: Mutex<HashMap<(String, i64), i64>>,
}

impl MemorySubscriptions {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every subscription stored, in key order.
    pub fn all(&self) -> Vec<Subscription> {
        lock(&self.items).values().cloned().collect()
    }

    /// Deletes the items lapsed at `now`, as DynamoDB TTL does (late, but here on demand).
    pub fn reap_ttl(&self, now: EpochSeconds) -> usize {
        let mut items = lock(&self.items);
        let before = items.len();
        items.retain(|_, sub| sub.expires_at > now);
        before - items.len()
    }

    async fn items(&self) -> MutexGuard<'_, BTreeMap<SubscriptionKey, Subscription>> {
        tokio::task::yield_now().await;
        lock(&self.items)
    }
}

#[async_trait::async_trait]
impl SubscriptionStore for MemorySubscriptions {
    async fn count_sign_up(
        &self,
        cart: &CartId,
        window: i64,
        limit: i64,
        _now: EpochSeconds,
    ) -> Result<bool, InventoryError> {
        tokio::task::yield_now().await;
        let mut counts = lock(&self.sign_ups);
        let count = counts.entry((cart.as_str().to_owned(), window)).or_default();
        if *count >= limit {
            return Ok(false);
        }
        *count += 1;
        Ok(true)
    }

    async fn start_sign_up(&self, pending: &Subscription, resend_before: EpochSeconds) -> Result<bool, InventoryError> {
        let mut items = self.items().await;
        let replaceable = match items.get(&pending.key()) {
            None => true,
            Some(old) => {
                old.expires_at <= pending.created_at
                    || (old.state == SubscriptionState::Pending && old.mailed_at.is_none_or(|at| at < resend_before))
            }
        };
        if replaceable {
            items.insert(pending.key(), pending.clone());
        }
        Ok(replaceable)
    }

    async fn drop_sign_up(&self, pending: &Subscription) -> Result<(), InventoryError> {
        let mut items = self.items().await;
        if items
            .get(&pending.key())
            .is_some_and(|old| old.token_hash == pending.token_hash && old.state == SubscriptionState::Pending)
        {
            items.remove(&pending.key());
        }
        Ok(())
    }

    async fn confirm(
        &self,
        key: &SubscriptionKey,
        token_hash: &str,
        now: EpochSeconds,
        expires_at: EpochSeconds,
    ) -> Result<ConfirmOutcome, InventoryError> {
        let mut items = self.items().await;
        let Some(sub) = items.get_mut(key).filter(|sub| sub.token_hash == token_hash && sub.expires_at > now) else {
            return Ok(ConfirmOutcome::NotFound);
        };
        if sub.state != SubscriptionState::Pending {
            return Ok(ConfirmOutcome::AlreadyConfirmed);
        }
        sub.state = SubscriptionState::Confirmed;
        sub.expires_at = expires_at;
        sub.mailed_at = None;
        Ok(ConfirmOutcome::Confirmed)
    }

    async fn unsubscribe(&self, key: &SubscriptionKey, token_hash: &str) -> Result<bool, InventoryError> {
        let mut items = self.items().await;
        if items.get(key).is_some_and(|sub| sub.token_hash == token_hash) {
            items.remove(key);
            return Ok(true);
        }
        Ok(false)
    }

    async fn confirmed(&self, product: &ProductId, now: EpochSeconds) -> Result<Vec<Subscription>, InventoryError> {
        let items = self.items().await;
        Ok(items
            .values()
            .filter(|sub| {
                &sub.product_id == product && sub.state == SubscriptionState::Confirmed && sub.expires_at > now
            })
            .cloned()
            .collect())
    }

    async fn claim_notification(
        &self,
        subscription: &Subscription,
        expires_at: EpochSeconds,
    ) -> Result<Option<Subscription>, InventoryError> {
        let mut items = self.items().await;
        let Some(sub) = items
            .get_mut(&subscription.key())
            .filter(|sub| sub.state == SubscriptionState::Confirmed && sub.token_hash == subscription.token_hash)
        else {
            return Ok(None);
        };
        sub.state = SubscriptionState::Sending;
        sub.confirmed_until = Some(sub.expires_at);
        sub.expires_at = expires_at;
        Ok(Some(sub.clone()))
    }

    async fn end_subscription(&self, claimed: &Subscription) -> Result<(), InventoryError> {
        let mut items = self.items().await;
        if items
            .get(&claimed.key())
            .is_some_and(|sub| sub.state == SubscriptionState::Sending && sub.token_hash == claimed.token_hash)
        {
            items.remove(&claimed.key());
        }
        Ok(())
    }

    async fn release_notification(&self, claimed: &Subscription) -> Result<(), InventoryError> {
        let mut items = self.items().await;
        if let Some(sub) = items
            .get_mut(&claimed.key())
            .filter(|sub| sub.state == SubscriptionState::Sending && sub.token_hash == claimed.token_hash)
        {
            if let Some(until) = sub.confirmed_until.take() {
                sub.state = SubscriptionState::Confirmed;
                sub.expires_at = until;
            }
        }
        Ok(())
    }
}

/// How the next sends fail (see [`MemoryMailer::fail_next`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    NotSent,
    Rejected,
    MaybeSent,
}

/// Keeps every e-mail "sent"; can be told to fail the next sends.
#[derive(Debug, Default)]
pub struct MemoryMailer {
    sent: Mutex<Vec<Email>>,
    failures: Mutex<Vec<Failure>>,
}

impl MemoryMailer {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn sent(&self) -> Vec<Email> {
        lock(&self.sent).clone()
    }

    /// The next `count` sends fail with `how` (a `MaybeSent` one is recorded as sent: SES took it).
    pub fn fail_next(&self, count: usize, how: Failure) {
        lock(&self.failures).extend(std::iter::repeat_n(how, count));
    }
}

#[async_trait::async_trait]
impl Mailer for MemoryMailer {
    async fn send(&self, email: &Email) -> Result<(), MailFailure> {
        tokio::task::yield_now().await;
        let failure = {
            let mut failures = lock(&self.failures);
            (!failures.is_empty()).then(|| failures.remove(0))
        };
        let err = || InventoryError::Unavailable { detail: "test mailer told to fail".into() };
        match failure {
            None => {
                lock(&self.sent).push(email.clone());
                Ok(())
            }
            Some(Failure::NotSent) => Err(MailFailure::NotSent(err())),
            Some(Failure::Rejected) => Err(MailFailure::Rejected(err())),
            Some(Failure::MaybeSent) => {
                lock(&self.sent).push(email.clone());
                Err(MailFailure::MaybeSent(err()))
            }
        }
    }
}
