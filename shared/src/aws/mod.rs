//! Adapters from the ports to the AWS SDK.

mod eventbridge;
mod kms;
mod pipeline;
pub mod retry;
mod tagging;
pub mod timeouts;

pub use eventbridge::{audit_sink, EventBridgeAudit};
pub use kms::AwsKms;
pub use pipeline::{AwsPipelineProbe, LAST_EVENT_LOOKBACK};
pub use tagging::AwsTagIndex;
pub use timeouts::CallTimeouts;

use crate::config::ConfigError;
use aws_config::SdkConfig;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The SDK configuration every function uses, for every AWS call it makes (KMS, the Tagging
/// API and EventBridge): credentials, Region, retries and `AWS_ENDPOINT_URL` from the
/// environment as `aws_config::load_from_env` reads them, plus the bounds of
/// [`CallTimeouts`] (operation 10 s, attempt 3 s, connect 2 s unless
/// `AWS_CALL_TIMEOUT_SECONDS`, `AWS_ATTEMPT_TIMEOUT_SECONDS` or `AWS_CONNECT_TIMEOUT_SECONDS`
/// say otherwise), so that a Region that accepts connections and then stalls fails its own
/// calls in bounded time instead of holding the invocation until Lambda's timeout.
///
/// A malformed variable is an error at cold start that names it.
pub async fn load_sdk_config() -> Result<SdkConfig, ConfigError> {
    let timeouts = CallTimeouts::from_env()?;
    tracing::info!(
        operation_timeout_ms = timeouts.operation.as_millis() as u64,
        attempt_timeout_ms = timeouts.attempt.as_millis() as u64,
        connect_timeout_ms = timeouts.connect.as_millis() as u64,
        "AWS calls are bounded"
    );
    Ok(sdk_config_with(timeouts).await)
}

/// [`load_sdk_config`] with the given bounds instead of the environment's.
pub async fn sdk_config_with(timeouts: CallTimeouts) -> SdkConfig {
    aws_config::from_env()
        .timeout_config(timeouts.sdk())
        .load()
        .await
}

/// How long a call may take in all, as the SDK configuration says (for messages).
pub(crate) fn call_budget(sdk: &SdkConfig) -> Option<Duration> {
    sdk.timeout_config().and_then(|t| t.operation_timeout())
}

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
