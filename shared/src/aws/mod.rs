//! Adapters from the ports to the AWS SDK.

mod eventbridge;
mod kms;
mod tagging;

pub use eventbridge::EventBridgeAudit;
pub use kms::AwsKms;
pub use tagging::AwsTagIndex;

use crate::port::ErrorKind;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The SDK clients of one service, one per Region, each made on first use by a factory (all
/// from one `SdkConfig` in production; tests pass mocked clients this way).
pub(crate) struct RegionalClients<C> {
    factory: Arc<dyn Fn(&str) -> C + Send + Sync>,
    clients: Arc<Mutex<HashMap<String, C>>>,
}

impl<C> Clone for RegionalClients<C> {
    fn clone(&self) -> Self {
        RegionalClients {
            factory: self.factory.clone(),
            clients: self.clients.clone(),
        }
    }
}

impl<C: Clone> RegionalClients<C> {
    pub(crate) fn new(factory: impl Fn(&str) -> C + Send + Sync + 'static) -> Self {
        RegionalClients {
            factory: Arc::new(factory),
            clients: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    pub(crate) fn get(&self, region: &str) -> C {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        clients
            .entry(region.to_string())
            .or_insert_with(|| (self.factory)(region))
            .clone()
    }
}

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
