//! The fat part of the service: everything the Lambda crates share.
//!
//! - [`domain`]: identifiers, stock levels and status rules — pure, no I/O.
//! - [`error`]: the one error enum and its HTTP mapping.
//! - [`store`]: store traits (one per capability) and the DynamoDB implementation.
//! - [`api`]: API Gateway HTTP API (payload 2.0) request parsing and response building.
//! - [`config`] and [`telemetry`]: what every `main` does once per cold start.

pub mod api;
pub mod config;
pub mod domain;
pub mod error;
pub mod limits;
pub mod store;
pub mod telemetry;

pub use error::InventoryError;
