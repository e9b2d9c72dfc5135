//! The audit trail's DynamoDB adapter (`HISTORY_TABLE`).

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::Client;

use super::dynamo::{attr, item_of, s};
use super::{HistoryStore, SalesHistory};
use crate::domain::{ChangeKind, ProductId, WarehouseId};
use crate::error::InventoryError;
use crate::history::{Figures, HistoryEntry};
use crate::time::{rfc3339, EpochSeconds};

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

#[async_trait::async_trait]
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

/// What the digest reads of a `committed` entry.
#[derive(serde::Deserialize)]
struct Sale {
    warehouse_id: WarehouseId,
    before: Option<Figures>,
    after: Figures,
}

#[async_trait::async_trait]
impl SalesHistory for DynamoHistory {
    async fn units_sold_since(
        &self,
        product: &ProductId,
        since: EpochSeconds,
    ) -> Result<BTreeMap<WarehouseId, i64>, InventoryError> {
        // One Query per product, all its warehouses: the entry ids from `since` on (they start with
        // the stream's time), checkouts only, and only the attributes a sale needs.
        let pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("product_id = :product AND entry_id >= :since")
            .filter_expression("#kind = :committed")
            .projection_expression("warehouse_id, #before, #after")
            .expression_attribute_names("#kind", "kind")
            .expression_attribute_names("#before", "before")
            .expression_attribute_names("#after", "after")
            .expression_attribute_values(":product", s(product.as_str()))
            .expression_attribute_values(":since", s(&rfc3339(since)))
            .expression_attribute_values(":committed", s(ChangeKind::Committed.as_str()))
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(InventoryError::from_sdk)?;
        let mut sold = BTreeMap::new();
        for item in &pages {
            let sale: Sale = item_of(item, "history")?;
            let units = sale.before.map_or(0, |before| before.stock_count - sale.after.stock_count);
            *sold.entry(sale.warehouse_id).or_insert(0) += units.max(0);
        }
        Ok(sold)
    }
}
