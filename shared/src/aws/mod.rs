//! Adapters from the ports to the AWS SDK.

mod eventbridge;
mod kms;
mod tagging;

pub use eventbridge::{audit_sink, EventBridgeAudit};
pub use kms::AwsKms;
pub use tagging::AwsTagIndex;

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
