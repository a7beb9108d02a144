//! The audit port on aws-sdk-eventbridge.

use super::timeouts::{error_chain, seconds};
use crate::config::Config;
use crate::port::{AuditError, AuditEvent, AuditSink};
use async_trait::async_trait;
use aws_sdk_eventbridge::error::{DisplayErrorContext, SdkError};
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;

/// PutEvents takes at most 10 entries per call.
const MAX_ENTRIES: usize = 10;

pub struct EventBridgeAudit {
    client: Client,
    bus: String,
    source: String,
}

impl EventBridgeAudit {
    pub fn new(client: Client, bus: &str, source: &str) -> EventBridgeAudit {
        EventBridgeAudit {
            client,
            bus: bus.to_string(),
            source: source.to_string(),
        }
    }

    fn fail<E>(&self, e: SdkError<E>) -> AuditError
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        if !matches!(e, SdkError::TimeoutError(_)) {
            return AuditError(DisplayErrorContext(&e).to_string());
        }
        let detail = error_chain(&e);
        let conf = self.client.config();
        let region = conf.region().map(|r| r.as_ref()).unwrap_or("its Region");
        let within = conf
            .timeout_config()
            .and_then(|t| t.operation_timeout())
            .map(|d| format!("within {}", seconds(d)))
            .unwrap_or_else(|| "in time".to_string());
        AuditError(format!(
            "EventBridge in {region} did not answer PutEvents {within} (the endpoint may be \
             impaired) [{detail}]"
        ))
    }
}

/// The audit sink every function publishes to: the bus and source of `config`
/// (`AUDIT_EVENT_BUS`, `AUDIT_SOURCE`), through an EventBridge client of `sdk`, whose
/// timeouts bound PutEvents like every other call (see [`load_sdk_config`](super::load_sdk_config)).
pub fn audit_sink(sdk: &aws_config::SdkConfig, config: &Config) -> EventBridgeAudit {
    EventBridgeAudit::new(Client::new(sdk), &config.audit_bus, &config.audit_source)
}

#[async_trait]
impl AuditSink for EventBridgeAudit {
    async fn publish(&self, events: &[AuditEvent]) -> Result<(), AuditError> {
        for chunk in events.chunks(MAX_ENTRIES) {
            let entries = chunk
                .iter()
                .map(|e| {
                    PutEventsRequestEntry::builder()
                        .event_bus_name(&self.bus)
                        .source(&self.source)
                        .detail_type(&e.detail_type)
                        .detail(e.detail.to_string())
                        .build()
                })
                .collect();
            let out = self
                .client
                .put_events()
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| self.fail(e))?;
            if out.failed_entry_count() > 0 {
                let first = out
                    .entries()
                    .iter()
                    .find(|e| e.error_code().is_some())
                    .map(|e| {
                        format!(
                            "{}: {}",
                            e.error_code().unwrap_or_default(),
                            e.error_message().unwrap_or_default()
                        )
                    })
                    .unwrap_or_default();
                return Err(AuditError(format!(
                    "{} of {} entries rejected ({first})",
                    out.failed_entry_count(),
                    chunk.len()
                )));
            }
        }
        Ok(())
    }
}
