//! The one error type of the service, and the one place that decides its HTTP status and code.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InventoryError {
    /// The client sent something we refuse; nothing was changed.
    #[error("{message}")]
    InvalidInput {
        field: &'static str,
        message: String,
    },

    #[error("{message}")]
    ProductNotFound { message: String },

    /// DynamoDB throttled us or did not answer in time; the client may retry.
    #[error("the inventory store is busy; retry shortly")]
    Unavailable { detail: String },

    /// A bug or an unexpected answer from AWS. The detail is logged, never sent to the client.
    #[error("internal error")]
    Internal { detail: String },
}

/// Seconds a client should wait before retrying a 503.
pub const RETRY_AFTER_SECONDS: u32 = 1;

impl InventoryError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::InvalidInput {
            field,
            message: message.into(),
        }
    }

    pub fn internal(detail: impl Into<String>) -> Self {
        Self::Internal {
            detail: detail.into(),
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            Self::InvalidInput { .. } => 400,
            Self::ProductNotFound { .. } => 404,
            Self::Unavailable { .. } => 503,
            Self::Internal { .. } => 500,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidInput { .. } => "INVALID_INPUT",
            Self::ProductNotFound { .. } => "PRODUCT_NOT_FOUND",
            Self::Unavailable { .. } => "SERVICE_UNAVAILABLE",
            Self::Internal { .. } => "INTERNAL_ERROR",
        }
    }

    /// Classifies an AWS SDK failure: throttling, timeouts and transport trouble are retryable
    /// (503); anything else is ours to fix (500).
    pub fn from_sdk<E, R>(err: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        const RETRYABLE_CODES: &[&str] = &[
            "ThrottlingException",
            "ProvisionedThroughputExceededException",
            "RequestLimitExceeded",
            "InternalServerError",
            "ServiceUnavailable",
            "TransactionInProgressException",
        ];
        let detail = format!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(&err));
        let retryable = match &err {
            SdkError::TimeoutError(_)
            | SdkError::DispatchFailure(_)
            | SdkError::ResponseError(_) => true,
            SdkError::ServiceError(service) => service
                .err()
                .code()
                .is_some_and(|code| RETRYABLE_CODES.contains(&code)),
            _ => false,
        };
        if retryable {
            Self::Unavailable { detail }
        } else {
            Self::Internal { detail }
        }
    }
}
