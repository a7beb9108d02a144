//! The error a function returns to Lambda, and the invocation's deadline. Returning an error
//! is how a function asks for a retry: Lambda retries asynchronous invocations, and after the
//! last one the event goes to the dead-letter destination, so nothing is lost.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum FunctionError {
    /// Worth retrying: throttling, server faults, keys in a transient state.
    #[error("retryable: {0}")]
    Retryable(String),
    /// The input itself is wrong; retrying will not help, but the event is kept (DLQ).
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

impl From<FunctionError> for lambda_runtime::Diagnostic {
    fn from(e: FunctionError) -> Self {
        let error_type = match e {
            FunctionError::Retryable(_) => "Retryable",
            FunctionError::InvalidInput(_) => "InvalidInput",
        };
        lambda_runtime::Diagnostic {
            error_type: error_type.into(),
            error_message: e.to_string(),
        }
    }
}

/// The invocation's deadline as an Instant: Lambda gives it in milliseconds since the epoch.
pub fn deadline_instant(deadline_ms: u64) -> tokio::time::Instant {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    tokio::time::Instant::now()
        + std::time::Duration::from_millis(deadline_ms.saturating_sub(now_ms))
}
