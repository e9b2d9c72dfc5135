//! The one error type of the service, and the one place that decides its HTTP status and code.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InventoryError {
    /// The client sent something we refuse; nothing was changed.
    #[error("{message}")]
    InvalidInput { field: &'static str, message: String },

    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },

    /// No verified identity reached the function (API Gateway's authorizer normally answers first).
    #[error("sign in to do this")]
    Unauthorized,

    #[error("{message}")]
    Forbidden { message: String },

    #[error("{message}")]
    ProductNotFound { message: String },

    #[error("{message}")]
    ReservationNotFound { message: String },

    /// Not enough units for sale to cover the hold (in any one warehouse, when none was named).
    #[error("{message}")]
    InsufficientStock { available: i64, message: String },

    #[error("{message}")]
    ReservationExpired { message: String },

    #[error("{message}")]
    ReservationReleased { message: String },

    #[error("{message}")]
    ReservationCommitted { message: String },

    /// The cart has as many ACTIVE holds as one cart may.
    #[error("{message}")]
    CartHoldsLimit { limit: i64, message: String },

    /// The cart would hold more units of the product than one cart may.
    #[error("{message}")]
    CartUnitsLimit { limit: i64, message: String },

    /// The same Idempotency-Key came with a different request body.
    #[error("{message}")]
    IdempotencyKeyReused { message: String },

    /// An admin's expected_version is not the item's version: someone else changed it first.
    #[error("{message}")]
    VersionConflict { current_version: Option<i64>, message: String },

    /// An adjustment would take stock on hand below zero.
    #[error("{message}")]
    StockBelowZero { stock_count: i64, message: String },

    /// An adjustment would take stock on hand above the most one item may hold.
    #[error("{message}")]
    StockAboveLimit { stock_count: i64, message: String },

    /// Back-in-stock sign-up for a product that has units for sale now.
    #[error("{message}")]
    ProductInStock { available: i64, message: String },

    /// The cart made as many back-in-stock sign-ups this hour as one cart may.
    #[error("{message}")]
    TooManySignUps { limit: i64, message: String },

    /// A back-in-stock link whose subscription is gone (lapsed, replaced or ended).
    #[error("{message}")]
    SubscriptionNotFound { message: String },

    /// DynamoDB throttled us or did not answer in time; the client may retry.
    #[error("the inventory store is busy; retry shortly")]
    Unavailable { detail: String },

    /// A bug or an unexpected answer from AWS. The detail is logged, never sent to the client.
    #[error("internal error")]
    Internal { detail: String },
}

/// DynamoDB error codes that mean "busy or briefly broken, try again": a 503 for the client.
const RETRYABLE_CODES: &[&str] = &[
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionInProgressException",
    "TransactionConflictException",
];

/// Seconds a client should wait before retrying a 503.
pub const RETRY_AFTER_SECONDS: u32 = 1;

impl InventoryError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::InvalidInput { field, message: message.into() }
    }

    pub fn internal(detail: impl Into<String>) -> Self {
        Self::Internal { detail: detail.into() }
    }

    pub fn status(&self) -> u16 {
        match self {
            Self::InvalidInput { .. } => 400,
            Self::Unauthorized => 401,
            Self::Forbidden { .. } => 403,
            Self::ProductNotFound { .. } | Self::ReservationNotFound { .. } | Self::SubscriptionNotFound { .. } => 404,
            Self::InsufficientStock { .. }
            | Self::ReservationReleased { .. }
            | Self::ReservationCommitted { .. }
            | Self::VersionConflict { .. }
            | Self::CartHoldsLimit { .. }
            | Self::CartUnitsLimit { .. }
            | Self::StockBelowZero { .. }
            | Self::StockAboveLimit { .. }
            | Self::ProductInStock { .. } => 409,
            Self::ReservationExpired { .. } => 410,
            Self::PayloadTooLarge { .. } => 413,
            Self::IdempotencyKeyReused { .. } => 422,
            Self::TooManySignUps { .. } => 429,
            Self::Unavailable { .. } => 503,
            Self::Internal { .. } => 500,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidInput { .. } => "INVALID_INPUT",
            Self::PayloadTooLarge { .. } => "PAYLOAD_TOO_LARGE",
            Self::Unauthorized => "UNAUTHORIZED",
            Self::Forbidden { .. } => "FORBIDDEN",
            Self::ProductNotFound { .. } => "PRODUCT_NOT_FOUND",
            Self::ReservationNotFound { .. } => "RESERVATION_NOT_FOUND",
            Self::InsufficientStock { .. } => "INSUFFICIENT_STOCK",
            Self::ReservationExpired { .. } => "RESERVATION_EXPIRED",
            Self::ReservationReleased { .. } => "RESERVATION_RELEASED",
            Self::ReservationCommitted { .. } => "RESERVATION_COMMITTED",
            Self::IdempotencyKeyReused { .. } => "IDEMPOTENCY_KEY_REUSED",
            Self::VersionConflict { .. } => "VERSION_CONFLICT",
            Self::CartHoldsLimit { .. } => "CART_HOLDS_LIMIT",
            Self::CartUnitsLimit { .. } => "CART_UNITS_LIMIT",
            Self::StockBelowZero { .. } => "STOCK_BELOW_ZERO",
            Self::StockAboveLimit { .. } => "STOCK_ABOVE_LIMIT",
            Self::ProductInStock { .. } => "PRODUCT_IN_STOCK",
            Self::TooManySignUps { .. } => "TOO_MANY_SIGN_UPS",
            Self::SubscriptionNotFound { .. } => "SUBSCRIPTION_NOT_FOUND",
            Self::Unavailable { .. } => "SERVICE_UNAVAILABLE",
            Self::Internal { .. } => "INTERNAL_ERROR",
        }
    }

    /// Figures a client needs to act on the error, added to the error object.
    pub fn details(&self) -> Option<(&'static str, serde_json::Value)> {
        match self {
            Self::InsufficientStock { available, .. } | Self::ProductInStock { available, .. } => {
                Some(("available", (*available).into()))
            }
            Self::VersionConflict { current_version, .. } => Some(("current_version", (*current_version).into())),
            Self::StockBelowZero { stock_count, .. } | Self::StockAboveLimit { stock_count, .. } => {
                Some(("stock_count", (*stock_count).into()))
            }
            Self::InvalidInput { field, .. } => Some(("field", (*field).into())),
            Self::CartHoldsLimit { limit, .. }
            | Self::CartUnitsLimit { limit, .. }
            | Self::TooManySignUps { limit, .. } => Some(("limit", (*limit).into())),
            _ => None,
        }
    }

    /// Classifies an error DynamoDB answered (the request reached it).
    pub fn from_service_error<E: ProvideErrorMetadata + std::fmt::Display>(err: E) -> Self {
        let detail = format!("{}: {err}", err.code().unwrap_or("unknown"));
        if err.code().is_some_and(|code| RETRYABLE_CODES.contains(&code)) {
            Self::Unavailable { detail }
        } else {
            Self::Internal { detail }
        }
    }

    /// Classifies an AWS SDK failure: throttling, timeouts and transport trouble are retryable
    /// (503); anything else is ours to fix (500).
    pub fn from_sdk<E, R>(err: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        match err {
            SdkError::ServiceError(service) => Self::from_service_error(service.into_err()),
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
                Self::Unavailable { detail: format!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(&err)) }
            }
            other => Self::Internal { detail: format!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(&other)) },
        }
    }
}
