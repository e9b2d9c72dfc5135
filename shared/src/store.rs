//! Persistence. One trait per capability, so a handler depends only on what it uses, and one
//! DynamoDB implementation of them all.

use std::collections::HashMap;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use crate::config::Config;
use crate::domain::{ProductId, StockLevel, WarehouseId};
use crate::error::InventoryError;

/// DynamoDB attribute names, written once.
pub mod attr {
    pub const PRODUCT_ID: &str = "product_id";
    pub const WAREHOUSE_ID: &str = "warehouse_id";
}

/// Reads the stock counters of a product.
pub trait StockReader {
    /// Every warehouse's counters for the product (or just `warehouse`'s), strongly consistent,
    /// ordered by warehouse id. Empty when there are none.
    fn stock_levels(
        &self,
        product: &ProductId,
        warehouse: Option<&WarehouseId>,
    ) -> impl std::future::Future<Output = Result<Vec<StockLevel>, InventoryError>> + Send;
}

/// The SDK config every function uses: bounded time per attempt and per operation, so a slow
/// DynamoDB answer becomes a retry or a 503 within the API's time budget instead of a hung request.
pub async fn aws_sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(1))
                .operation_attempt_timeout(Duration::from_secs(2))
                .operation_timeout(Duration::from_secs(5))
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .load()
        .await
}

/// The DynamoDB tables of the service.
#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    config: Config,
}

impl DynamoStore {
    pub fn new(client: Client, config: Config) -> Self {
        Self { client, config }
    }
}

impl StockReader for DynamoStore {
    async fn stock_levels(
        &self,
        product: &ProductId,
        warehouse: Option<&WarehouseId>,
    ) -> Result<Vec<StockLevel>, InventoryError> {
        let mut key_condition = format!("{} = :product", attr::PRODUCT_ID);
        let mut values = HashMap::from([(
            ":product".to_owned(),
            AttributeValue::S(product.to_string()),
        )]);
        if let Some(warehouse) = warehouse {
            key_condition.push_str(&format!(" AND {} = :warehouse", attr::WAREHOUSE_ID));
            values.insert(
                ":warehouse".to_owned(),
                AttributeValue::S(warehouse.to_string()),
            );
        }
        let items = self
            .client
            .query()
            .table_name(&self.config.stock_table)
            .key_condition_expression(key_condition)
            .set_expression_attribute_values(Some(values))
            // GET must show what a reserve would see: never a stale replica.
            .consistent_read(true)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(InventoryError::from_sdk)?;
        serde_dynamo::from_items(items)
            .map_err(|err| InventoryError::internal(format!("malformed stock item: {err}")))
    }
}
