//! The audit trail's DynamoDB adapter (`HISTORY_TABLE`).

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;

use super::dynamo::{attr, item_of, s};
use super::HistoryStore;
use crate::domain::ProductId;
use crate::error::InventoryError;
use crate::history::HistoryEntry;

/// The audit trail in DynamoDB: `product_id` + `entry_id`, TTL on `expires_at` (the retention).
#[derive(Clone, Debug)]
pub struct DynamoHistory {
    client: Client,
    table: String,
}

impl DynamoHistory {
    pub fn new(client: Client, table: String) -> Self {
        Self { client, table }
    }
}

impl HistoryStore for DynamoHistory {
    async fn record_entry(&self, entry: &HistoryEntry) -> Result<(), InventoryError> {
        let item = serde_dynamo::to_item(entry)
            .map_err(|err| InventoryError::internal(format!("serialising a history entry: {err}")))?;
        // A plain put: the key comes from the stream record, so a replay overwrites the same entry.
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(InventoryError::from_sdk)?;
        Ok(())
    }

    async fn entries(
        &self,
        product: &ProductId,
        before: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<HistoryEntry>, Option<String>), InventoryError> {
        let start = before.map(|entry_id| {
            HashMap::from([(attr::PRODUCT_ID.to_owned(), s(product.as_str())), ("entry_id".to_owned(), s(entry_id))])
        });
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("product_id = :product")
            .expression_attribute_values(":product", s(product.as_str()))
            .scan_index_forward(false)
            .set_exclusive_start_key(start)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(InventoryError::from_sdk)?;
        let entries = output.items().iter().map(|item| item_of(item, "history")).collect::<Result<Vec<_>, _>>()?;
        let last = output.last_evaluated_key().and_then(|key| key.get("entry_id")).and_then(|v| v.as_s().ok()).cloned();
        Ok((entries, last))
    }
}
