//! How a KMS request fails on the wire: an AWS error body with its status, or no answer.

use kms_replicator::port::{ErrorKind, KmsError};
use serde_json::Value;

/// How a request failed, as the HTTP layer must answer it.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// An AWS error body: `{"__type": code, "message": message}` with this status.
    Aws {
        status: u16,
        code: String,
        message: String,
    },
    /// The Region's endpoint does not answer: the connection is closed without a response.
    NoAnswer,
}

impl ApiError {
    pub fn aws(status: u16, code: &str, message: impl Into<String>) -> ApiError {
        ApiError::Aws {
            status,
            code: code.to_string(),
            message: message.into(),
        }
    }

    pub(super) fn validation(message: impl Into<String>) -> ApiError {
        ApiError::aws(400, "ValidationException", message)
    }
}

impl From<KmsError> for ApiError {
    fn from(e: KmsError) -> ApiError {
        match e.kind {
            ErrorKind::Unreachable => ApiError::NoAnswer,
            ErrorKind::Internal => ApiError::aws(500, &e.code, e.message),
            _ => ApiError::aws(400, &e.code, e.message),
        }
    }
}

pub(super) type ApiResult = Result<Value, ApiError>;
