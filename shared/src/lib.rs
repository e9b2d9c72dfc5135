//! The fat part of the service: everything the Lambda crates share.
//!
//! - [`domain`], [`holds`], [`admin`]: identifiers, stock levels, status, holds and their
//!   transitions, admin changes — pure rules, no I/O.
//! - [`requests`]: idempotency records, so a retried write is answered, never applied twice.
//! - [`reconcile`]: when counters that disagree with their holds are drift to repair.
//! - [`sharding`]: one item's stock split over several partition keys for flash sales.
//! - [`history`]: the audit trail's entries, derived from stock-table stream records.
//! - [`digest`]: the daily digest of low and out-of-stock items, soonest to run out first.
//! - [`metrics`]: CloudWatch embedded-metric-format lines for the operations dashboard and alarms.
//! - [`auth`]: the caller, from claims API Gateway has verified.
//! - [`error`]: the one error enum and its HTTP mapping.
//! - [`events`]: stream records turned into domain events at the entrypoint.
//! - [`service`], [`pipeline`]: the use cases (API; streams and backstop), written against the store traits.
//! - [`back_in_stock`]: shoppers' back-in-stock sign-ups and e-mails (double opt-in, at most once).
//! - [`live`]: live stock on the pages (WebSocket connections, what they watch, the broadcaster's
//!   pushes) and the change feed's events; [`tokens`]: Cognito tokens verified for its authorizer.
//! - [`store`]: the store traits (ports, one per capability) and their adapters: DynamoDB, SNS, in memory.
//! - [`api`]: API Gateway HTTP API (payload 2.0) request parsing and response building.
//! - [`config`], [`telemetry`], [`entrypoint`]: what every `main` does once per cold start.

pub mod admin;
pub mod alerts;
pub mod api;
pub mod auth;
pub mod back_in_stock;
pub mod config;
pub mod digest;
pub mod domain;
pub mod entrypoint;
pub mod error;
pub mod events;
pub mod history;
pub mod holds;
pub mod limits;
pub mod live;
pub mod metrics;
pub mod pipeline;
pub mod reconcile;
pub mod requests;
pub mod service;
pub mod sharding;
pub mod store;
pub mod telemetry;
pub mod time;
pub mod tokens;

pub use error::InventoryError;
