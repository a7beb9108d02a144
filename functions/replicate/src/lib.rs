//! The replicate function: an EventBridge event carrying a CloudTrail record of a KMS write
//! becomes one `sync` of the multi-Region key it touched.

use kms_replicator::audit::{audit_events, AuditContext};
use kms_replicator::config::{whole_number, ConfigError};
use kms_replicator::error::FunctionError;
use kms_replicator::event::{parse_event_ignoring, Intake};
use kms_replicator::limit::{Quotas, DEFAULT_READ_RATE};
use kms_replicator::metrics::MetricSet;
use kms_replicator::pipeline::{EVENTS_HANDLED, SOURCE_REGION};
use kms_replicator::report::log_report;
use kms_replicator::{AuditSink, Config, Kms, Syncer};
use serde_json::{json, Value};
use tokio::time::Instant;
use tracing::{error, info, warn};

/// What the handler needs, built once per cold start.
pub struct Replicator<'a> {
    pub kms: &'a dyn Kms,
    pub audit: &'a dyn AuditSink,
    pub config: &'a Config,
}

impl Replicator<'_> {
    /// Handles one event. Returns the sync report (or why the event was ignored); returns an
    /// error when the event is malformed or a retryable failure means it should be retried.
    /// One sync needs no bound of its own beside the SDK's call timeouts, so the invocation's
    /// `deadline` is not consulted.
    pub async fn handle(
        &self,
        event: &Value,
        _deadline: Option<Instant>,
    ) -> Result<Value, FunctionError> {
        self.event_arrived(event);
        if let Some(reason) = self.other_account(event) {
            info!(%reason, "event ignored");
            return Ok(json!({"action": "ignored", "reason": reason}));
        }
        let intake = parse_event_ignoring(
            event,
            &self.config.tag_key,
            &self.config.ignore_callers,
            self.config.ignore_role_path.as_deref(),
        )
        .map_err(|e| {
            warn!(error = %e, "rejecting malformed event");
            FunctionError::InvalidInput(e.to_string())
        })?;
        let trigger = match intake {
            Intake::Ignore { reason } => {
                let event_id = event.get("id").and_then(|v| v.as_str()).unwrap_or("");
                info!(event_id, %reason, "event ignored");
                return Ok(json!({"action": "ignored", "reason": reason}));
            }
            Intake::Sync(t) => t,
        };
        info!(event = %trigger.event_name, event_id = %trigger.event_id, region = %trigger.region,
              key = %trigger.key, "syncing the key this event touched");
        let started = std::time::Instant::now();
        let report = Syncer::new(self.kms, self.config)
            .with_held_primary(&trigger.held_primary)
            .sync(&trigger.region, &trigger.key, false)
            .await;
        log_report(&report);
        report
            .metrics(
                &self.config.metrics_namespace,
                "replicate",
                started.elapsed().as_millis(),
            )
            .emit();
        let ctx = AuditContext {
            trigger_event: Some(trigger.event_name.clone()),
            trigger_event_id: Some(trigger.event_id.clone()),
            trigger_region: Some(trigger.region.clone()),
        };
        let events = audit_events(&report, &ctx);
        if !events.is_empty() {
            // The writes are done and logged; a lost audit event is logged loudly rather than
            // retried, since a retry would find nothing left to do and report nothing.
            if let Err(e) = self.audit.publish(&events).await {
                error!(error = %e, count = events.len(), "audit events not published");
            }
        }
        if report.is_retryable_failure() {
            return Err(FunctionError::Retryable(
                serde_json::to_string(&report).unwrap_or_else(|_| format!("{report:?}")),
            ));
        }
        Ok(json!({"action": "synced", "report": report}))
    }
}

impl Replicator<'_> {
    /// Counts a KMS event from its Region (`EventsHandled`, dimension `SourceRegion`): the
    /// reconcile function's `{"check":"pipeline"}` reads the last one back, and its absence is
    /// how a Region whose events stopped shows.
    fn event_arrived(&self, event: &Value) {
        let from_kms = event.get("source").and_then(Value::as_str) == Some("aws.kms");
        if let Some(region) = event
            .get("region")
            .and_then(Value::as_str)
            .filter(|_| from_kms)
        {
            MetricSet::new(&self.config.metrics_namespace)
                .dimension(SOURCE_REGION, region)
                .count(EVENTS_HANDLED, 1)
                .emit();
        }
    }

    /// Why an event of another account than the stack's is not acted on (the rules match the
    /// stack's account only; this holds if a rule is ever widened by hand).
    fn other_account(&self, event: &Value) -> Option<String> {
        let own = self.config.account.as_deref()?;
        let account = event.get("account").and_then(Value::as_str)?;
        (account != own).then(|| {
            format!(
                "the event is from account {account}, not this stack's account {own}: \
                 ReplicateKey works within one account"
            )
        })
    }
}

/// This process's KMS quotas: the whole of every quota while KMS does not throttle (one
/// sandbox fanning a key out to ten Regions is not slowed by the others it might have), and
/// at least 1/N of each under throttling, N being `REPLICATE_RESERVED_CONCURRENCY` (the
/// function's reserved concurrency, default 2; 0 means none is reserved and counts as 1), so
/// that a burst of tagged keys settles with every sandbox within its share instead of being
/// throttled into the dead-letter queue.
pub fn process_quotas(get: impl Fn(&str) -> Option<String>) -> Result<Quotas, ConfigError> {
    let n = whole_number(get, "REPLICATE_RESERVED_CONCURRENCY", 0..=1000, "")?.unwrap_or(2);
    // At most 1000, so it fits.
    Ok(Quotas::kms(DEFAULT_READ_RATE).at_least_shares_of(n as u32))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kms_replicator::Op;

    #[test]
    fn each_reserved_sandbox_may_use_the_whole_quota_and_keeps_at_least_its_share() {
        let q = |v: Option<&str>| process_quotas(|_| v.map(str::to_string));
        assert_eq!(q(None).unwrap().limit(Op::ReplicateKey), Some(5));
        assert_eq!(q(None).unwrap().floor(Op::ReplicateKey), Some(2));
        assert_eq!(q(Some("1")).unwrap().floor(Op::ReplicateKey), Some(5));
        assert_eq!(q(Some("0")).unwrap().floor(Op::ReplicateKey), Some(5));
        assert_eq!(q(Some("5")).unwrap().limit(Op::TagResource), Some(10));
        assert_eq!(q(Some("5")).unwrap().floor(Op::TagResource), Some(2));
        assert!(q(Some("many"))
            .unwrap_err()
            .to_string()
            .contains("REPLICATE_RESERVED_CONCURRENCY"));
    }
}
