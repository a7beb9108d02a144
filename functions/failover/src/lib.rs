//! The failover function: an on-call person invokes it to promote the replica of one key, or
//! of every managed key whose primary is in one Region, with UpdatePrimaryRegion. It checks
//! before (multi-Region, replica in the target, both keys Enabled, the primary's Region
//! answers), promotes, waits until the target reports PRIMARY and Enabled, checks after
//! (aliases, policy) and runs sync from the new primary. The answer is a per-key report.
//!
//! Looking a key up: an ARN names its Region; otherwise the request's `region`; otherwise the
//! managed Regions in order, then the target Region. A replica found anywhere leads to its
//! primary, since DescribeKey names the primary's Region.
//!
//! [`request`](parse_request) validates the input and holds the settings, [`report`](KeyReport)
//! what a person reads and the audit events; both are pure. The procedure for one key is in
//! `steps`, one function per step. UpdatePrimaryRegion calls stay within their quota through
//! the shared rate limiter ([`quotas`]).

mod post_checks;
mod report;
mod request;
mod steps;

pub use report::{
    audit_events, explain, summarise, Cause, Check, FailoverReport, KeyOutcome, KeyReport,
};
pub use request::{
    parse_request, poll_delays, tag_value_with, FailoverPlan, FailoverRequest, FailoverSettings,
    RequestError, Target, USAGE,
};

use futures::StreamExt;
use kms_replicator::discover::managed_primaries;
use kms_replicator::error::FunctionError;
use kms_replicator::limit::{Quotas, DEFAULT_READ_RATE};
use kms_replicator::model::{KeyInfo, MultiRegionKeyType};
use kms_replicator::port::{ErrorKind, KmsError};
use kms_replicator::{AuditSink, Config, Kms};
use serde_json::Value;
use std::time::Duration;
use tokio::time::Instant;
use tracing::{error, info, warn};

// Check names, in the order they run.
pub const KEY_FOUND: &str = "key_found";
pub const MULTI_REGION: &str = "multi_region";
pub const PRIMARY_REGION_ANSWERS: &str = "primary_region_answers";
pub const IS_PRIMARY: &str = "is_primary";
pub const PRIMARY_ENABLED: &str = "primary_enabled";
pub const REPLICA_IN_TARGET: &str = "replica_in_target";
pub const REPLICA_ENABLED: &str = "replica_enabled";
pub const PRIMARY_SETTINGS_READ: &str = "primary_settings_read";
pub const REPLICATION_TAG: &str = "replication_tag";
pub const UPDATE_PRIMARY_REGION: &str = "update_primary_region";
pub const NEW_PRIMARY_REPORTED: &str = "new_primary_reported";
pub const ALIASES_IN_NEW_PRIMARY_REGION: &str = "aliases_in_new_primary_region";
pub const POLICY_IN_NEW_PRIMARY_REGION: &str = "policy_in_new_primary_region";
pub const SYNC_FROM_NEW_PRIMARY: &str = "sync_from_new_primary";

/// A single key looked up.
enum Found {
    Key {
        info: KeyInfo,
        /// Errors of Regions that did not answer on the way.
        unanswered: Vec<KmsError>,
    },
    /// A Region did not answer or refused, and the key was found nowhere else: the report.
    NotLookedUp(KeyReport),
}

/// The request quotas the function keeps across every key of a batch: each write at its KMS
/// quota (UpdatePrimaryRegion 5 per second, counted in both Regions; TagResource, which
/// every key's promotion and sync make in both Regions, 10 per second), each read at
/// [`DEFAULT_READ_RATE`]. Wrap the [`Kms`] in a [`kms_replicator::limit::RateLimitedKms`]
/// with these, one per process.
pub fn quotas() -> Quotas {
    Quotas::kms(DEFAULT_READ_RATE)
}

/// What the handler needs, built once per cold start.
pub struct Failover<'a> {
    /// Rate limited with [`quotas`], so that a bulk failover stays within the
    /// UpdatePrimaryRegion quota.
    pub kms: &'a dyn Kms,
    pub audit: &'a dyn AuditSink,
    pub config: &'a Config,
    pub settings: FailoverSettings,
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

pub(crate) fn plural<'s>(n: usize, one: &'s str, many: &'s str) -> &'s str {
    if n == 1 {
        one
    } else {
        many
    }
}

/// A key bulk discovery listed but could not read: another team's key whose policy denies
/// the failover role is skipped; any other error is a failure of that key alone.
fn unreadable_key(id: &str, e: &KmsError, source: &str, to: &str) -> KeyReport {
    let mut r = KeyReport::new(id);
    r.key_id = Some(id.to_string());
    r.primary_region_before = Some(source.to_string());
    let detail = explain(e, source, to);
    r.checks
        .push(Check::fail(KEY_FOUND, detail.clone(), Cause::of(e)));
    r.outcome = if e.kind == ErrorKind::AccessDenied {
        KeyOutcome::Skipped {
            reason: format!(
                "the failover role may not read this key in {source} (another team's key?): \
                 {detail}"
            ),
        }
    } else {
        KeyOutcome::Failed {
            reason: format!("the key could not be read in {source}: {detail}"),
            cause: Cause::of(e),
        }
    };
    r
}

pub(crate) fn is_unreachable(e: &KmsError) -> bool {
    matches!(e.kind, ErrorKind::Unreachable | ErrorKind::Internal)
}

pub(crate) fn key_type(k: &KeyInfo) -> &'static str {
    match k.multi_region.as_ref().map(|m| m.key_type) {
        Some(MultiRegionKeyType::Primary) => "PRIMARY",
        Some(MultiRegionKeyType::Replica) => "REPLICA",
        None => "single-Region",
    }
}

impl Failover<'_> {
    /// Handles one invocation with no deadline (tests and tools); see [`Failover::handle_until`].
    pub async fn handle(&self, input: &Value) -> Result<Value, FunctionError> {
        self.handle_until(input, None).await
    }

    /// Handles one invocation. Returns the report, even when keys failed: it is the answer
    /// for a person. Only an invalid input is an error. With a `deadline` (the Lambda
    /// invocation's), keys are not started too close to it, waits end before it, and the
    /// report and audit events of what was done go out in time.
    pub async fn handle_until(
        &self,
        input: &Value,
        deadline: Option<Instant>,
    ) -> Result<Value, FunctionError> {
        let report = self.run_until(input, deadline).await?;
        report.metrics(&kms_replicator::metrics::namespace()).emit();
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

    /// Validates the input, then checks, promotes and reports (no deadline).
    pub async fn run(&self, input: &Value) -> Result<FailoverReport, FunctionError> {
        self.run_until(input, None).await
    }

    /// Validates the input, then checks, promotes and reports, within `deadline`.
    pub async fn run_until(
        &self,
        input: &Value,
        deadline: Option<Instant>,
    ) -> Result<FailoverReport, FunctionError> {
        let mut plan = parse_request(input, self.config).map_err(|e| {
            warn!(error = %e, "rejecting invalid failover input");
            FunctionError::InvalidInput(e.to_string())
        })?;
        plan.deadline = deadline;
        let started = Instant::now();
        let mut from = None;
        let mut error = None;
        let keys = match &plan.target {
            Target::Key { key, region } => {
                let report = match self.find_key(key, region.as_deref(), &plan.to).await? {
                    Found::Key { info, unanswered } => {
                        self.fail_over(key, info, &plan, &unanswered).await
                    }
                    Found::NotLookedUp(report) => report,
                };
                vec![report]
            }
            Target::Region { from: source } => {
                from = Some(source.clone());
                match managed_primaries(self.kms, self.config, source).await {
                    Ok(found) => {
                        let plan = &plan;
                        let mut keys: Vec<KeyReport> = futures::stream::iter(found.primaries)
                            .map(|info| self.fail_over_listed(info, plan))
                            .buffered(self.settings.concurrency.max(1))
                            .collect()
                            .await;
                        keys.extend(
                            found
                                .unreadable
                                .iter()
                                .map(|(id, e)| unreadable_key(id, e, source, &plan.to)),
                        );
                        keys
                    }
                    Err(e) => {
                        error = Some(format!(
                            "the managed keys in {source} could not be listed, so none was \
                             promoted: {}",
                            explain(&e, source, &plan.to)
                        ));
                        Vec::new()
                    }
                }
            }
        };
        let summary = match (&error, &from) {
            (Some(e), _) => format!("0 keys promoted to {}: {e}", plan.to),
            (None, Some(f)) if keys.is_empty() => format!(
                "no managed key (with the {} tag) has its primary in {f}: nothing to promote",
                self.config.tag_key
            ),
            _ => summarise(&keys, &plan.to, plan.dry_run),
        };
        Ok(FailoverReport {
            summary,
            to: plan.to.clone(),
            from,
            dry_run: plan.dry_run,
            duration_ms: millis(started.elapsed()),
            error,
            keys,
        })
    }

    /// Finds the key a single-key request names. `Err` is an invalid input: not found in any
    /// Region, and every Region answered.
    async fn find_key(
        &self,
        key: &str,
        region: Option<&str>,
        to: &str,
    ) -> Result<Found, FunctionError> {
        let regions: Vec<String> = match region {
            Some(r) => vec![r.to_string()],
            None => {
                let mut v = self.config.managed_regions.clone();
                if !v.iter().any(|r| r == to) {
                    v.push(to.to_string());
                }
                v
            }
        };
        let mut errors = Vec::new();
        for r in &regions {
            match self.kms.describe_key(r, key).await {
                Ok(info) => {
                    let unanswered = errors.into_iter().filter(is_unreachable).collect();
                    return Ok(Found::Key { info, unanswered });
                }
                Err(e) if e.kind == ErrorKind::NotFound => {}
                Err(e) => errors.push(e),
            }
        }
        let looked = regions.join(", ");
        if errors.is_empty() {
            let how = if region.is_some() {
                "the Region the request names"
            } else {
                "the managed Regions, then the target Region; give \"region\" or the key's ARN \
                 to name another"
            };
            return Err(FunctionError::InvalidInput(format!(
                "key '{key}' not found in {looked} ({how})"
            )));
        }
        let mut report = KeyReport::new(key);
        for e in &errors {
            let detail = if is_unreachable(e) {
                format!(
                    "KMS in {} did not answer, even after the SDK's retries ({e}). If that is \
                     the key's primary Region, replicas remain usable for cryptography in \
                     their own Regions, and promotion needs that Region's KMS endpoint. To \
                     look the key up elsewhere, give \"region\" or the key's ARN in a Region \
                     that answers",
                    e.region
                )
            } else {
                format!("DescribeKey refused in {}: {e}", e.region)
            };
            report
                .checks
                .push(Check::fail(KEY_FOUND, detail, Cause::of(e)));
        }
        let first = &report.checks[0];
        report.outcome = KeyOutcome::Failed {
            reason: format!(
                "the key could not be looked up in {looked}: {}. Nothing was changed.",
                first.detail
            ),
            cause: first.cause.unwrap_or(Cause::Other),
        };
        Ok(Found::NotLookedUp(report))
    }

    /// A key found by bulk discovery: skipped when it has no replica in the target Region,
    /// not started when the invocation's deadline is too close.
    async fn fail_over_listed(&self, info: KeyInfo, plan: &FailoverPlan) -> KeyReport {
        if let Some(deadline) = plan.deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if left <= self.settings.deadline_margin {
                let mut r = KeyReport::new(&info.key_id);
                r.key_id = Some(info.key_id.clone());
                r.primary_region_before = Some(info.region.clone());
                r.primary_region_after = Some(info.region.clone());
                r.outcome = KeyOutcome::NotStarted {
                    reason: format!(
                        "not started: {} ms were left before the invocation's deadline, less \
                         than the {} s needed to promote, check and report a key. Nothing was \
                         changed; run the same request again to promote the keys not started",
                        millis(left),
                        self.settings.deadline_margin.as_secs()
                    ),
                };
                return r;
            }
        }
        let has_replica = info
            .multi_region
            .as_ref()
            .is_some_and(|m| m.replica_regions.iter().any(|r| r == &plan.to));
        if has_replica {
            return self.fail_over(&info.key_id.clone(), info, plan, &[]).await;
        }
        let mut r = KeyReport::new(&info.key_id);
        r.key_id = Some(info.key_id.clone());
        r.primary_region_before = Some(info.region.clone());
        r.primary_region_after = Some(info.region.clone());
        r.checks.push(Check::warn(
            REPLICA_IN_TARGET,
            format!("the primary lists no replica in {}", plan.to),
        ));
        r.outcome = KeyOutcome::Skipped {
            reason: format!(
                "no replica in {}: add {} to the key's {} tag to create one",
                plan.to, plan.to, self.config.tag_key
            ),
        };
        info!(key_id = %info.key_id, outcome = "skipped", to = %plan.to, "no replica in the target Region");
        r
    }
}
