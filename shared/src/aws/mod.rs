//! Adapters from the ports to the AWS SDK.

mod eventbridge;
mod kms;
mod tagging;

pub use eventbridge::EventBridgeAudit;
pub use kms::AwsKms;
pub use tagging::AwsTagIndex;

use crate::port::ErrorKind;

/// Classifies an AWS error code (and HTTP status, when known) the way the domain needs it.
pub fn error_kind(code: &str, status: Option<u16>) -> ErrorKind {
    match code {
        "NotFoundException" => ErrorKind::NotFound,
        "AlreadyExistsException" => ErrorKind::AlreadyExists,
        "KMSInvalidStateException" => ErrorKind::InvalidState,
        "DisabledException" => ErrorKind::Disabled,
        "UnsupportedOperationException" => ErrorKind::UnsupportedOperation,
        "MalformedPolicyDocumentException" => ErrorKind::MalformedPolicy,
        "AccessDeniedException" => ErrorKind::AccessDenied,
        "ThrottlingException"
        // The Resource Groups Tagging API's name for it.
        | "ThrottledException"
        | "Throttling"
        | "TooManyRequestsException"
        | "RequestLimitExceeded" => ErrorKind::Throttling,
        "KMSInternalException"
        | "InternalServiceException"
        | "DependencyTimeoutException"
        | "InternalFailure"
        | "ServiceUnavailable"
        | "InternalServerError" => ErrorKind::Internal,
        "DispatchFailure" | "TimeoutError" => ErrorKind::Unreachable,
        _ if status.is_some_and(|s| s >= 500) => ErrorKind::Internal,
        _ => ErrorKind::Other,
    }
}
