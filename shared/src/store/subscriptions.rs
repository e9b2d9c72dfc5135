//! The back-in-stock subscriptions' DynamoDB adapter (`SUBSCRIPTIONS_TABLE`: `product_id` +
//! `subscriber`, TTL on `expires_at`), and the carts' sign-up counts in the requests table. Every
//! change is one conditional write; a failed condition is an outcome, never an error.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use aws_sdk_dynamodb::Client;

use super::dynamo::{item_of, s};
use super::{ConfirmOutcome, SubscriptionStore};
use crate::back_in_stock::{Subscription, SubscriptionKey, SubscriptionState, SIGN_UP_WINDOW_SECONDS};
use crate::domain::ProductId;
use crate::error::InventoryError;
use crate::holds::CartId;
use crate::time::EpochSeconds;

#[derive(Clone, Debug)]
pub struct DynamoSubscriptions {
    client: Client,
    table: String,
    requests_table: String,
}

impl DynamoSubscriptions {
    pub fn new(client: Client, table: String, requests_table: String) -> Self {
        Self { client, table, requests_table }
    }

    fn key(key: &SubscriptionKey) -> HashMap<String, AttributeValue> {
        HashMap::from([
            ("product_id".to_owned(), s(key.product_id.as_str())),
            ("subscriber".to_owned(), s(&key.subscriber)),
        ])
    }
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn state(value: SubscriptionState) -> AttributeValue {
    s(match value {
        SubscriptionState::Pending => "PENDING",
        SubscriptionState::Confirmed => "CONFIRMED",
        SubscriptionState::Sending => "SENDING",
    })
}

/// A conditional write's output, or `None` when its condition failed.
fn applied<T, E, R>(result: Result<T, SdkError<E, R>>) -> Result<Option<T>, InventoryError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match result {
        Ok(output) => Ok(Some(output)),
        Err(err) if err.as_service_error().and_then(|e| e.code()) == Some("ConditionalCheckFailedException") => {
            Ok(None)
        }
        Err(err) => Err(InventoryError::from_sdk(err)),
    }
}

#[async_trait::async_trait]
impl SubscriptionStore for DynamoSubscriptions {
    async fn count_sign_up(
        &self,
        cart: &CartId,
        window: i64,
        limit: i64,
        _now: EpochSeconds,
    ) -> Result<bool, InventoryError> {
        // One record per cart and clock hour; kept an hour past its window (TTL lags, the key does not).
        let written = self
            .client
            .update_item()
            .table_name(&self.requests_table)
            .key("request_key", s(&format!("back-in-stock\n{}\n{window}", cart.as_str())))
            .update_expression("SET sign_ups = if_not_exists(sign_ups, :zero) + :one, purge_at = :purge")
            .condition_expression("attribute_not_exists(sign_ups) OR sign_ups < :limit")
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":limit", n(limit))
            .expression_attribute_values(":purge", n((window + 2) * SIGN_UP_WINDOW_SECONDS))
            .send()
            .await;
        Ok(applied(written)?.is_some())
    }

    async fn start_sign_up(&self, pending: &Subscription, resend_before: EpochSeconds) -> Result<bool, InventoryError> {
        let item = serde_dynamo::to_item(pending)
            .map_err(|err| InventoryError::internal(format!("serialising a subscription: {err}")))?;
        let written = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(
                "attribute_not_exists(product_id) OR expires_at <= :now \
                 OR (#state = :pending AND (attribute_not_exists(mailed_at) OR mailed_at < :resend_before))",
            )
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":now", n(pending.created_at))
            .expression_attribute_values(":pending", state(SubscriptionState::Pending))
            .expression_attribute_values(":resend_before", n(resend_before))
            .send()
            .await;
        Ok(applied(written)?.is_some())
    }

    async fn drop_sign_up(&self, pending: &Subscription) -> Result<(), InventoryError> {
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(&pending.key())))
            .condition_expression("token_hash = :token AND #state = :pending")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":token", s(&pending.token_hash))
            .expression_attribute_values(":pending", state(SubscriptionState::Pending))
            .send()
            .await;
        applied(deleted).map(drop)
    }

    async fn confirm(
        &self,
        key: &SubscriptionKey,
        token_hash: &str,
        now: EpochSeconds,
        expires_at: EpochSeconds,
    ) -> Result<ConfirmOutcome, InventoryError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(key)))
            .update_expression("SET #state = :confirmed, expires_at = :expires REMOVE mailed_at")
            .condition_expression("token_hash = :token AND #state = :pending AND expires_at > :now")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":confirmed", state(SubscriptionState::Confirmed))
            .expression_attribute_values(":pending", state(SubscriptionState::Pending))
            .expression_attribute_values(":token", s(token_hash))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":expires", n(expires_at))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(ConfirmOutcome::Confirmed),
            Err(SdkError::ServiceError(service)) => match service.into_err() {
                UpdateItemError::ConditionalCheckFailedException(failed) => {
                    let old = failed.item().filter(|item| !item.is_empty());
                    let current = old.map(|item| item_of::<Subscription>(item, "subscription")).transpose()?;
                    Ok(match current {
                        Some(sub)
                            if sub.token_hash == token_hash
                                && sub.state != SubscriptionState::Pending
                                && sub.expires_at > now =>
                        {
                            ConfirmOutcome::AlreadyConfirmed
                        }
                        _ => ConfirmOutcome::NotFound,
                    })
                }
                other => Err(InventoryError::from_service_error(other)),
            },
            Err(other) => Err(InventoryError::from_sdk(other)),
        }
    }

    async fn unsubscribe(&self, key: &SubscriptionKey, token_hash: &str) -> Result<bool, InventoryError> {
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(key)))
            .condition_expression("token_hash = :token")
            .expression_attribute_values(":token", s(token_hash))
            .send()
            .await;
        Ok(applied(deleted)?.is_some())
    }

    async fn confirmed(&self, product: &ProductId, now: EpochSeconds) -> Result<Vec<Subscription>, InventoryError> {
        let items: Vec<HashMap<String, AttributeValue>> = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression("product_id = :product")
            .filter_expression("#state = :confirmed AND expires_at > :now")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":product", s(product.as_str()))
            .expression_attribute_values(":confirmed", state(SubscriptionState::Confirmed))
            .expression_attribute_values(":now", n(now))
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(InventoryError::from_sdk)?;
        items.iter().map(|item| item_of(item, "subscription")).collect()
    }

    async fn claim_notification(
        &self,
        subscription: &Subscription,
        expires_at: EpochSeconds,
    ) -> Result<Option<Subscription>, InventoryError> {
        let claimed = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(&subscription.key())))
            .update_expression("SET #state = :sending, confirmed_until = expires_at, expires_at = :expires")
            .condition_expression("#state = :confirmed AND token_hash = :token")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":sending", state(SubscriptionState::Sending))
            .expression_attribute_values(":confirmed", state(SubscriptionState::Confirmed))
            .expression_attribute_values(":token", s(&subscription.token_hash))
            .expression_attribute_values(":expires", n(expires_at))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        applied(claimed)?
            .map(|output| {
                output
                    .attributes()
                    .map(|item| item_of(item, "subscription"))
                    .unwrap_or_else(|| Err(InventoryError::internal("UpdateItem returned no attributes")))
            })
            .transpose()
    }

    async fn end_subscription(&self, claimed: &Subscription) -> Result<(), InventoryError> {
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(&claimed.key())))
            .condition_expression("#state = :sending AND token_hash = :token")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":sending", state(SubscriptionState::Sending))
            .expression_attribute_values(":token", s(&claimed.token_hash))
            .send()
            .await;
        applied(deleted).map(drop)
    }

    async fn release_notification(&self, claimed: &Subscription) -> Result<(), InventoryError> {
        let released = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(&claimed.key())))
            .update_expression("SET #state = :confirmed, expires_at = confirmed_until REMOVE confirmed_until")
            .condition_expression("#state = :sending AND token_hash = :token AND attribute_exists(confirmed_until)")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":sending", state(SubscriptionState::Sending))
            .expression_attribute_values(":confirmed", state(SubscriptionState::Confirmed))
            .expression_attribute_values(":token", s(&claimed.token_hash))
            .send()
            .await;
        applied(released).map(drop)
    }
}
