//! The failover function: an on-call person invokes it to promote the replica of one key, or
//! of every managed key whose primary is in one Region, with UpdatePrimaryRegion. It checks
//! before (multi-Region, replica in the target, both keys Enabled, the primary's Region
//! answers), promotes, waits until the target reports PRIMARY and Enabled, checks after
//! (aliases, policy) and runs sync from the new primary. The answer is a per-key report.
//!
//! Layout:
//!
//! - [`request`](parse_request) validates the input into a [`Promotion`]; pure.
//! - [`settings`](FailoverSettings) holds the wait bound, the polling schedule, the bulk
//!   concurrency and the request [`quotas`]: UpdatePrimaryRegion calls stay within their
//!   quota through the shared rate limiter; pure.
//! - `run` handles one promotion: the key it names, or every managed key of a Region, each
//!   through the steps, into one [`FailoverReport`].
//! - `lookup` finds the key a single-key request names, in the Regions it may be in.
//! - `steps` is the procedure for one key, one function per step; `catch_up` brings the
//!   target replica up to date before the promotion; `post_checks` holds the checks after it;
//!   `key_use` reports the last use of both keys (information).
//! - [`report`](KeyReport) is what a person reads: the checks and their names, each key's
//!   outcome, the summary, the sentences that explain a KMS error, the audit events; pure.

mod catch_up;
mod key_use;
mod lookup;
mod post_checks;
mod report;
mod request;
mod run;
mod settings;
mod steps;

pub use report::{
    audit_events, explain, summarise, Cause, Check, CheckName, FailoverReport, KeyOutcome,
    KeyReport,
};
pub use request::{parse_request, FailoverRequest, Promotion, RequestError, Target, USAGE};
pub use settings::{poll_delays, quotas, FailoverSettings};

use kms_replicator::error::FunctionError;
use kms_replicator::{AuditSink, Config, Kms};
use serde_json::Value;
use tokio::time::Instant;
use tracing::{error, info, warn};

/// What the handler needs, built once per cold start.
pub struct Failover<'a> {
    /// Rate limited with [`quotas`], so that a bulk failover stays within the
    /// UpdatePrimaryRegion quota.
    pub kms: &'a dyn Kms,
    pub audit: &'a dyn AuditSink,
    pub config: &'a Config,
    pub settings: FailoverSettings,
}

impl Failover<'_> {
    /// Handles one invocation. Returns the report, even when keys failed: it is the answer
    /// for a person. Only an invalid input is an error. With a `deadline` (the Lambda
    /// invocation's), keys are not started too close to it, waits end before it, and the
    /// report and audit events of what was done go out in time.
    pub async fn handle(
        &self,
        input: &Value,
        deadline: Option<Instant>,
    ) -> Result<Value, FunctionError> {
        let mut promotion = parse_request(input, self.config).map_err(|e| {
            warn!(error = %e, "rejecting invalid failover input");
            FunctionError::InvalidInput(e.to_string())
        })?;
        promotion.deadline = deadline;
        let report = self.run(&promotion).await?;
        report.metrics(&self.config.metrics_namespace).emit();
        info!(summary = %report.summary, to = %report.to, dry_run = report.dry_run,
              duration_ms = report.duration_ms, "failover finished");
        let events = audit_events(&report);
        if !events.is_empty() {
            if let Err(e) = self.audit.publish(&events).await {
                error!(error = %e, count = events.len(), "audit events not published");
            }
        }
        serde_json::to_value(&report)
            .map_err(|e| FunctionError::Retryable(format!("report not serialisable: {e}")))
    }
}
