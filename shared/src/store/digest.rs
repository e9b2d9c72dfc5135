//! The daily digest's log in DynamoDB: one record per day in the requests table (the service's
//! table of "this was done once" records, with its TTL), key `digest\n<day>` ('\n' is in no other
//! kind of key's first part, so it never meets a request or cart record).

use std::collections::HashMap;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use aws_sdk_dynamodb::Client;

use super::dynamo::s;
use super::{DigestClaim, DigestLog};
use crate::error::InventoryError;
use crate::requests::REQUEST_RETENTION_SECONDS;
use crate::time::EpochSeconds;

const CLAIMED: &str = "claimed";
const SENT: &str = "sent";

/// The digest log in the requests table (`REQUESTS_TABLE`).
#[derive(Clone, Debug)]
pub struct DynamoDigestLog {
    client: Client,
    table: String,
}

impl DynamoDigestLog {
    pub fn new(client: Client, table: String) -> Self {
        Self { client, table }
    }

    fn key(day: &str) -> HashMap<String, AttributeValue> {
        HashMap::from([("request_key".to_owned(), s(&format!("digest\n{day}")))])
    }
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// A failed condition's error (the caller answers it as an outcome); anything else as an error.
fn condition_failed<E, R>(err: SdkError<E, R>) -> Result<Option<E>, InventoryError>
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match err {
        SdkError::ServiceError(service) if service.err().code() == Some("ConditionalCheckFailedException") => {
            Ok(Some(service.into_err()))
        }
        other => Err(InventoryError::from_sdk(other)),
    }
}

#[async_trait::async_trait]
impl DigestLog for DynamoDigestLog {
    async fn claim_digest(
        &self,
        day: &str,
        run_id: &str,
        now: EpochSeconds,
        stale_before: EpochSeconds,
    ) -> Result<DigestClaim, InventoryError> {
        let mut item = Self::key(day);
        item.extend([
            ("state".to_owned(), s(CLAIMED)),
            ("run_id".to_owned(), s(run_id)),
            ("claimed_at".to_owned(), n(now)),
            ("purge_at".to_owned(), n(now + REQUEST_RETENTION_SECONDS)),
        ]);
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(
                "attribute_not_exists(request_key) OR (#state = :claimed AND claimed_at < :stale_before)",
            )
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":claimed", s(CLAIMED))
            .expression_attribute_values(":stale_before", n(stale_before))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let failed = match put {
            Ok(_) => return Ok(DigestClaim::Claimed),
            Err(err) => condition_failed(err)?,
        };
        use aws_sdk_dynamodb::operation::put_item::PutItemError;
        let state = match failed {
            Some(PutItemError::ConditionalCheckFailedException(failed)) => {
                failed.item().and_then(|item| item.get("state")).and_then(|v| v.as_s().ok()).cloned()
            }
            _ => None,
        };
        Ok(if state.as_deref() == Some(SENT) { DigestClaim::Done } else { DigestClaim::InFlight })
    }

    async fn confirm_digest(
        &self,
        day: &str,
        run_id: &str,
        items: usize,
        now: EpochSeconds,
    ) -> Result<(), InventoryError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(day)))
            .update_expression("SET #state = :sent, sent_at = :now, #items = :items")
            .condition_expression("run_id = :run")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#items", "items") // a reserved word
            .expression_attribute_values(":sent", s(SENT))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":items", n(i64::try_from(items).unwrap_or(i64::MAX)))
            .expression_attribute_values(":run", s(run_id))
            .send()
            .await;
        if let Err(err) = result {
            condition_failed(err)?;
            tracing::warn!(day, run_id, "the digest's claim was taken over before it was confirmed");
        }
        Ok(())
    }

    async fn release_digest(&self, day: &str, run_id: &str) -> Result<(), InventoryError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(day)))
            .condition_expression("run_id = :run AND #state = :claimed")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":run", s(run_id))
            .expression_attribute_values(":claimed", s(CLAIMED))
            .send()
            .await;
        if let Err(err) = result {
            condition_failed(err)?;
        }
        Ok(())
    }
}
