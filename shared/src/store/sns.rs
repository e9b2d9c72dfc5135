//! The SNS adapter: alerts to the topic inventory managers subscribe to.

use aws_sdk_sns::types::MessageAttributeValue;

use super::{AlertPublisher, DigestPublisher};
use crate::alerts::Alert;
use crate::digest::Digest;
use crate::error::InventoryError;

/// Publishes alerts to the SNS topic, with message attributes for subscription filter policies.
#[derive(Clone, Debug)]
pub struct SnsPublisher {
    client: aws_sdk_sns::Client,
    topic_arn: String,
}

impl SnsPublisher {
    pub fn new(client: aws_sdk_sns::Client, topic_arn: String) -> Self {
        Self { client, topic_arn }
    }
}

/// The message attribute `kind` says which of the two a message is, so each subscription's filter
/// policy chooses what it gets (the template's `AlertEmailDigest`).
pub const KIND_ALERT: &str = "alert";
pub const KIND_DIGEST: &str = "digest";

fn attribute(value: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder().data_type("String").string_value(value).build().expect("data type is set")
}

#[async_trait::async_trait]
impl AlertPublisher for SnsPublisher {
    async fn publish(&self, alert: &Alert) -> Result<(), InventoryError> {
        let body = serde_json::to_string(alert).map_err(|err| InventoryError::internal(err.to_string()))?;
        self.client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(alert.subject())
            .message(body)
            .message_attributes("kind", attribute(KIND_ALERT))
            .message_attributes("type", attribute(alert.kind.as_str()))
            .message_attributes("product_id", attribute(alert.product_id.as_str()))
            .message_attributes("warehouse_id", attribute(alert.warehouse_id.as_str()))
            .message_attributes("alert_id", attribute(&alert.alert_id))
            .send()
            .await
            .map_err(InventoryError::from_sdk)?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl DigestPublisher for SnsPublisher {
    /// The digest as plain text (what an e-mail subscriber reads), `kind` = `digest`.
    async fn publish_digest(&self, digest: &Digest) -> Result<(), InventoryError> {
        self.client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(digest.subject())
            .message(digest.text())
            .message_attributes("kind", attribute(KIND_DIGEST))
            .message_attributes("digest_id", attribute(&digest.day))
            .message_attributes("out_of_stock", number(digest.out_of_stock))
            .message_attributes("low_stock", number(digest.low))
            .send()
            .await
            .map_err(InventoryError::from_sdk)?;
        Ok(())
    }
}

fn number(value: usize) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("Number")
        .string_value(value.to_string())
        .build()
        .expect("data type is set")
}
