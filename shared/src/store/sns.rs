//! The SNS adapter: alerts to the topic inventory managers subscribe to.

use aws_sdk_sns::types::MessageAttributeValue;

use super::AlertPublisher;
use crate::alerts::Alert;
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

impl AlertPublisher for SnsPublisher {
    async fn publish(&self, alert: &Alert) -> Result<(), InventoryError> {
        let attribute = |value: &str| {
            MessageAttributeValue::builder().data_type("String").string_value(value).build().expect("data type is set")
        };
        let body = serde_json::to_string(alert).map_err(|err| InventoryError::internal(err.to_string()))?;
        self.client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(alert.subject())
            .message(body)
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
