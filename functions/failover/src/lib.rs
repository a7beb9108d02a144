//! The failover function: an on-call person invokes it to promote the replica of one key, or
//! of every managed key whose primary is in one Region, with UpdatePrimaryRegion. It checks
//! before (multi-Region, replica in the target, both keys Enabled, the primary's Region
//! answers), promotes, waits until the target reports PRIMARY and Enabled, checks after
//! (aliases, policy) and runs sync from the new primary. The answer is a per-key report.
//!
//! Looking a key up: an ARN names its Region; otherwise the request's `region`; otherwise the
//! managed Regions in order, then the target Region. A replica found anywhere leads to its
//! primary, since DescribeKey names the primary's Region.

mod limiter;
mod report;
mod request;

pub use limiter::CallWindow;
pub use report::{
    audit_events, explain, summarise, Cause, Check, FailoverReport, KeyOutcome, KeyReport,
};
pub use request::{
    parse_request, poll_delays, tag_value_with, FailoverPlan, FailoverRequest, FailoverSettings,
    Target, USAGE,
};

use futures::StreamExt;
use kms_replicator::desired::{desired_replica, PrimaryState};
use kms_replicator::discover::managed_primaries;
use kms_replicator::error::FunctionError;
use kms_replicator::model::{is_aws_managed_alias, KeyInfo, KeyState, MultiRegionKeyType, Tag};
use kms_replicator::policy::same_policy;
use kms_replicator::port::{ErrorKind, KmsError};
use kms_replicator::report::Outcome;
use kms_replicator::{AuditSink, Config, Kms, Syncer};
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

/// What the handler needs, built once per cold start.
pub struct Failover<'a> {
    pub kms: &'a dyn Kms,
    pub audit: &'a dyn AuditSink,
    pub config: &'a Config,
    pub settings: FailoverSettings,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn plural<'s>(n: usize, one: &'s str, many: &'s str) -> &'s str {
    if n == 1 {
        one
    } else {
        many
    }
}

fn is_unreachable(e: &KmsError) -> bool {
    matches!(e.kind, ErrorKind::Unreachable | ErrorKind::Internal)
}

fn key_type(k: &KeyInfo) -> &'static str {
    match k.multi_region.as_ref().map(|m| m.key_type) {
        Some(MultiRegionKeyType::Primary) => "PRIMARY",
        Some(MultiRegionKeyType::Replica) => "REPLICA",
        None => "single-Region",
    }
}

/// Ends a key's report on its first blocking check.
fn stop(r: &mut KeyReport) {
    if let Some(c) = r.blocking_failure() {
        r.outcome = KeyOutcome::Failed {
            reason: c.detail.clone(),
            cause: c.cause.unwrap_or(Cause::Other),
        };
    }
}

impl Failover<'_> {
    /// Handles one invocation. Returns the report, even when keys failed: it is the answer
    /// for a person. Only an invalid input is an error.
    pub async fn handle(&self, input: &Value) -> Result<Value, FunctionError> {
        let report = self.run(input).await?;
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

    /// Validates the input, then checks, promotes and reports.
    pub async fn run(&self, input: &Value) -> Result<FailoverReport, FunctionError> {
        let plan = parse_request(input, self.config).map_err(|e| {
            warn!(error = %e, "rejecting invalid failover input");
            FunctionError::InvalidInput(e)
        })?;
        let started = Instant::now();
        let limiter = CallWindow::new(self.settings.calls_per_window, self.settings.window);
        let mut from = None;
        let mut error = None;
        let keys = match &plan.target {
            Target::Key { key, region } => {
                let report = match self.find_key(key, region.as_deref(), &plan.to).await? {
                    Found::Key { info, unanswered } => {
                        self.fail_over(key, info, &plan, &limiter, &unanswered)
                            .await
                    }
                    Found::NotLookedUp(report) => report,
                };
                vec![report]
            }
            Target::Region { from: source } => {
                from = Some(source.clone());
                match managed_primaries(self.kms, self.config, source).await {
                    Ok(primaries) => {
                        let (plan, limiter) = (&plan, &limiter);
                        futures::stream::iter(primaries)
                            .map(|info| self.fail_over_listed(info, plan, limiter))
                            .buffered(self.settings.concurrency.max(1))
                            .collect()
                            .await
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

    /// A key found by bulk discovery: skipped when it has no replica in the target Region.
    async fn fail_over_listed(
        &self,
        info: KeyInfo,
        plan: &FailoverPlan,
        limiter: &CallWindow,
    ) -> KeyReport {
        let has_replica = info
            .multi_region
            .as_ref()
            .is_some_and(|m| m.replica_regions.iter().any(|r| r == &plan.to));
        if has_replica {
            return self
                .fail_over(&info.key_id.clone(), info, plan, limiter, &[])
                .await;
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

    /// Checks, promotes, waits and checks again, for one key found in some Region.
    /// `unanswered` are the Regions that did not answer while the key was looked up: they are
    /// not asked again, since each attempt costs the SDK's retries.
    async fn fail_over(
        &self,
        requested: &str,
        found: KeyInfo,
        plan: &FailoverPlan,
        limiter: &CallWindow,
        unanswered: &[KmsError],
    ) -> KeyReport {
        let started = Instant::now();
        let mut r = KeyReport::new(requested);
        self.fail_over_inner(&mut r, found, plan, limiter, unanswered)
            .await;
        r.duration_ms = millis(started.elapsed());
        let failed: Vec<&str> = r
            .checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.name)
            .collect();
        info!(key_id = r.key_id.as_deref().unwrap_or(requested),
              before = r.primary_region_before.as_deref().unwrap_or(""),
              after = r.primary_region_after.as_deref().unwrap_or("unknown"),
              outcome = r.outcome.name(), detail = ?r.outcome, failed_checks = ?failed,
              duration_ms = r.duration_ms, "key failover outcome");
        r
    }

    async fn fail_over_inner(
        &self,
        r: &mut KeyReport,
        found: KeyInfo,
        plan: &FailoverPlan,
        limiter: &CallWindow,
        unanswered: &[KmsError],
    ) {
        let to = plan.to.as_str();
        let id = found.key_id.clone();
        r.key_id = Some(id.clone());
        let Some(mr) = found.multi_region.clone() else {
            r.primary_region_before = Some(found.region.clone());
            r.primary_region_after = Some(found.region.clone());
            r.checks.push(Check::fail(
                MULTI_REGION,
                format!(
                    "{} is a single-Region key: it has no replicas, and a single-Region key \
                     cannot become multi-Region. Nothing was changed.",
                    found.arn
                ),
                Cause::NotMultiRegion,
            ));
            return stop(r);
        };
        r.checks.push(Check::pass(
            MULTI_REGION,
            format!("{id} is a multi-Region key"),
        ));
        let p = mr.primary_region.clone();
        r.primary_region_before = Some(p.clone());
        r.primary_region_after = Some(p.clone());

        // Before: the primary, in its own Region.
        let described = match unanswered.iter().find(|e| e.region == p) {
            Some(e) => Err(e.clone()),
            None => self.kms.describe_key(&p, &id).await,
        };
        let primary = match described {
            Ok(k) => {
                r.checks.push(Check::pass(
                    PRIMARY_REGION_ANSWERS,
                    format!("KMS in {p} answered"),
                ));
                Some(k)
            }
            Err(e) => {
                r.checks.push(Check::fail(
                    PRIMARY_REGION_ANSWERS,
                    explain(&e, &p, to),
                    Cause::of(&e),
                ));
                None
            }
        };
        if let Some(k) = &primary {
            if !k.is_primary() {
                r.checks.push(Check::fail(
                    IS_PRIMARY,
                    format!(
                        "the key in {p} is reported as {} and {}, not as the primary: a primary \
                         Region update is probably in progress. Describe the key in a few \
                         seconds and run this again. Nothing was changed.",
                        key_type(k),
                        k.state
                    ),
                    Cause::NotPrimary,
                ));
            } else if p == to {
                r.checks.push(Check::pass(
                    IS_PRIMARY,
                    format!("the primary is already in {to}"),
                ));
                r.outcome = KeyOutcome::AlreadyPrimary;
                return;
            } else {
                r.checks.push(Check::pass(
                    IS_PRIMARY,
                    format!("the key in {p} is the primary"),
                ));
                r.checks.push(if k.state == KeyState::Enabled {
                    Check::pass(PRIMARY_ENABLED, "Enabled")
                } else {
                    Check::fail(
                        PRIMARY_ENABLED,
                        format!(
                            "the primary in {p} is {}: UpdatePrimaryRegion needs both keys \
                             Enabled. Nothing was changed.",
                            k.state
                        ),
                        Cause::KeyState,
                    )
                });
            }
        }

        // Before: the replica, in the target Region.
        match self.kms.describe_key(to, &id).await {
            Ok(k) => {
                r.checks.push(Check::pass(
                    REPLICA_IN_TARGET,
                    format!("{} is a {} of the key", k.arn, key_type(&k)),
                ));
                r.checks.push(if k.state == KeyState::Enabled {
                    Check::pass(
                        REPLICA_ENABLED,
                        format!("Enabled: it serves cryptographic requests in {to}"),
                    )
                } else {
                    Check::fail(
                        REPLICA_ENABLED,
                        format!(
                            "the replica in {to} is {}: UpdatePrimaryRegion needs both keys \
                             Enabled. Nothing was changed.",
                            k.state
                        ),
                        Cause::KeyState,
                    )
                });
            }
            Err(e) if e.kind == ErrorKind::NotFound => r.checks.push(Check::fail(
                REPLICA_IN_TARGET,
                format!(
                    "no replica of {id} in {to}: UpdatePrimaryRegion promotes an existing \
                     replica and never creates one. Add {to} to the key's {} tag first. \
                     Nothing was changed.",
                    self.config.tag_key
                ),
                Cause::NoReplica,
            )),
            Err(e) => r.checks.push(Check::fail(
                REPLICA_IN_TARGET,
                explain(&e, &p, to),
                Cause::of(&e),
            )),
        }
        let Some(primary) = primary.filter(|_| r.blocking_failure().is_none()) else {
            return stop(r);
        };

        // Before: what the checks after the promotion compare with.
        let old = match self.read_primary(primary).await {
            Ok(s) => {
                r.checks.push(Check::pass(
                    PRIMARY_SETTINGS_READ,
                    format!(
                        "policy, {} tags and {} aliases read in {p}",
                        s.tags.len(),
                        s.aliases.len()
                    ),
                ));
                s
            }
            Err(e) => {
                r.checks.push(Check::fail(
                    PRIMARY_SETTINGS_READ,
                    explain(&e, &p, to),
                    Cause::of(&e),
                ));
                return stop(r);
            }
        };
        if !self.keep_old_region_in_tag(r, &old, to, plan.dry_run).await {
            return stop(r);
        }
        if plan.dry_run {
            r.outcome = KeyOutcome::DryRunOk;
            return;
        }

        // The promotion, in the primary's Region.
        limiter.acquire().await;
        match self.kms.update_primary_region(&p, &id, to).await {
            Ok(()) => r.checks.push(Check::pass(
                UPDATE_PRIMARY_REGION,
                format!("UpdatePrimaryRegion accepted in {p}"),
            )),
            Err(e) => {
                // No answer does not prove the request was lost: look at the target.
                let under_way = is_unreachable(&e)
                    && matches!(self.kms.describe_key(to, &id).await,
                                Ok(k) if k.state == KeyState::Updating || k.is_primary());
                if !under_way {
                    r.checks.push(Check::fail(
                        UPDATE_PRIMARY_REGION,
                        explain(&e, &p, to),
                        Cause::of(&e),
                    ));
                    return stop(r);
                }
                r.checks.push(Check::pass(
                    UPDATE_PRIMARY_REGION,
                    format!("no answer from KMS in {p} ({e}), but {to} shows the update under way"),
                ));
            }
        }

        // The wait.
        match self.wait_for_primary(to, &id).await {
            Ok((waited, polls)) => {
                r.checks.push(Check::pass(
                    NEW_PRIMARY_REPORTED,
                    format!(
                        "{to} reports the key as PRIMARY and Enabled after {} ms ({polls} \
                         DescribeKey {})",
                        millis(waited),
                        plural(polls, "call", "calls")
                    ),
                ));
                r.primary_region_after = Some(to.to_string());
            }
            Err(last) => {
                let reason = format!(
                    "UpdatePrimaryRegion was accepted in {p}, but {to} did not report the key \
                     as PRIMARY and Enabled within {} ms (last seen: {last}). KMS is probably \
                     still updating: check with `aws kms describe-key --region {to} --key-id \
                     {id}` and do not run the failover again until it settles. Aliases, \
                     policy and sync were not checked.",
                    millis(self.settings.wait)
                );
                r.checks
                    .push(Check::warn(NEW_PRIMARY_REPORTED, reason.clone()));
                r.primary_region_after = None;
                r.outcome = KeyOutcome::TimedOut { reason };
                return;
            }
        }

        // After: aliases and policy in the new primary's Region, then sync from there.
        let after_start = r.checks.len();
        r.checks.push(self.check_aliases(&old, to, &id).await);
        r.checks.push(self.check_policy(&old, to, &id).await);
        let managed = old.tags.iter().any(|t| t.key == self.config.tag_key);
        if managed {
            let report = Syncer::new(self.kms, self.config)
                .sync(to, &id, false)
                .await;
            r.checks.push(match &report.outcome {
                Outcome::Failed { reason, .. } => Check::warn(
                    SYNC_FROM_NEW_PRIMARY,
                    format!(
                        "sync from the new primary in {to} failed: {reason}. The reconcile \
                         sweep retries it."
                    ),
                ),
                o => Check::pass(
                    SYNC_FROM_NEW_PRIMARY,
                    format!(
                        "sync from {to}: {} ({} {})",
                        o.name(),
                        report.write_count(),
                        plural(report.write_count(), "write", "writes")
                    ),
                ),
            });
            r.sync = Some(report);
        } else {
            r.checks.push(Check::pass(
                SYNC_FROM_NEW_PRIMARY,
                format!(
                    "no {} tag: the key is not managed, nothing to sync",
                    self.config.tag_key
                ),
            ));
        }
        let warnings: Vec<String> = r.checks[after_start..]
            .iter()
            .filter(|c| !c.passed)
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect();
        r.outcome = if warnings.is_empty() {
            KeyOutcome::Promoted
        } else {
            KeyOutcome::PromotedWithWarnings {
                reason: warnings.join("; "),
            }
        };
    }

    async fn read_primary(&self, info: KeyInfo) -> Result<PrimaryState, KmsError> {
        let (region, id) = (info.region.clone(), info.key_id.clone());
        let (policy, tags, aliases) = tokio::join!(
            self.kms.get_key_policy(&region, &id),
            self.kms.list_resource_tags(&region, &id),
            self.kms.list_aliases(&region, Some(&id)),
        );
        Ok(PrimaryState {
            info,
            policy: policy?,
            tags: tags?,
            aliases: aliases?
                .into_iter()
                .map(|a| a.name)
                .filter(|n| !is_aws_managed_alias(n))
                .collect(),
        })
    }

    /// The new primary's replication tag must list the old primary's Region, or sync from
    /// the new primary would stop managing it (or schedule its deletion). The tag is set on
    /// both keys before the promotion: a primary's own Region in its tag is ignored, so the
    /// value is right on both sides of it. Returns false when the promotion must not go on.
    async fn keep_old_region_in_tag(
        &self,
        r: &mut KeyReport,
        old: &PrimaryState,
        to: &str,
        dry_run: bool,
    ) -> bool {
        let tag_key = &self.config.tag_key;
        let (p, id) = (old.info.region.as_str(), old.info.key_id.as_str());
        let Some(value) = old
            .tags
            .iter()
            .find(|t| &t.key == tag_key)
            .map(|t| t.value.clone())
        else {
            r.checks.push(Check::pass(
                REPLICATION_TAG,
                format!("no {tag_key} tag: the key is not managed by the replicator"),
            ));
            return true;
        };
        let Some(new_value) = tag_value_with(&value, p) else {
            r.checks.push(Check::pass(
                REPLICATION_TAG,
                format!(
                    "'{value}' lists {p}: after the promotion {p} stays a managed replica Region"
                ),
            ));
            return true;
        };
        if dry_run {
            r.checks.push(Check::pass(
                REPLICATION_TAG,
                format!(
                    "would be set to '{new_value}' on the key in {p} and in {to} before the \
                     promotion, so that {p} stays a managed replica Region after it"
                ),
            ));
            return true;
        }
        let tag = [Tag::new(tag_key.clone(), new_value.clone())];
        for region in [p, to] {
            if let Err(e) = self.kms.tag_resource(region, id, &tag).await {
                r.checks.push(Check::fail(
                    REPLICATION_TAG,
                    format!(
                        "could not add {p} to the {tag_key} tag in {region} ({e}); without it \
                         the new primary would stop managing {p}, or schedule its deletion. \
                         Nothing was promoted."
                    ),
                    Cause::TagUpdate,
                ));
                return false;
            }
        }
        r.checks.push(Check::pass(
            REPLICATION_TAG,
            format!(
                "set to '{new_value}' on the key in {p} and in {to}, so that {p} stays a \
                 managed replica Region after the promotion"
            ),
        ));
        true
    }

    /// Polls DescribeKey in `to` with backoff until the key is PRIMARY and Enabled there.
    /// Returns how long it took and how many polls, or what was last seen at the deadline.
    async fn wait_for_primary(&self, to: &str, id: &str) -> Result<(Duration, usize), String> {
        let started = Instant::now();
        let deadline = started + self.settings.wait;
        let mut delays = poll_delays(self.settings.first_poll, self.settings.max_poll);
        let mut polls = 0;
        loop {
            polls += 1;
            let last = match tokio::time::timeout_at(deadline, self.kms.describe_key(to, id)).await
            {
                Ok(Ok(k)) if k.is_primary() && k.state == KeyState::Enabled => {
                    return Ok((started.elapsed(), polls))
                }
                Ok(Ok(k)) => format!("{} and {}", key_type(&k), k.state),
                Ok(Err(e)) => format!("DescribeKey failed: {e}"),
                Err(_) => "DescribeKey did not answer".to_string(),
            };
            let now = Instant::now();
            if now >= deadline {
                return Err(last);
            }
            let pause = delays.next().unwrap_or(self.settings.max_poll);
            tokio::time::sleep(pause.min(deadline - now)).await;
        }
    }

    async fn check_aliases(&self, old: &PrimaryState, to: &str, id: &str) -> Check {
        let p = &old.info.region;
        match self.kms.list_aliases(to, Some(id)).await {
            Ok(list) => {
                let have: Vec<String> = list.into_iter().map(|a| a.name).collect();
                let missing: Vec<&str> = old
                    .aliases
                    .iter()
                    .filter(|a| !have.contains(a))
                    .map(String::as_str)
                    .collect();
                if missing.is_empty() && old.aliases.is_empty() {
                    Check::pass(
                        ALIASES_IN_NEW_PRIMARY_REGION,
                        format!("the key had no aliases in {p}"),
                    )
                } else if missing.is_empty() {
                    Check::pass(
                        ALIASES_IN_NEW_PRIMARY_REGION,
                        format!(
                            "{} point to the new primary in {to}",
                            old.aliases.join(", ")
                        ),
                    )
                } else {
                    Check::warn(
                        ALIASES_IN_NEW_PRIMARY_REGION,
                        format!(
                            "{} had these aliases in {p} but not in {to}: {}. Applications that \
                             use them in {to} fail; create them with `aws kms create-alias \
                             --region {to} --alias-name <alias> --target-key-id {id}`",
                            id,
                            missing.join(", ")
                        ),
                    )
                }
            }
            Err(e) => Check::warn(
                ALIASES_IN_NEW_PRIMARY_REGION,
                format!("could not list the aliases in {to}: {e}"),
            ),
        }
    }

    async fn check_policy(&self, old: &PrimaryState, to: &str, id: &str) -> Check {
        let p = &old.info.region;
        let actual = match self.kms.get_key_policy(to, id).await {
            Ok(policy) => policy,
            Err(e) => {
                return Check::warn(
                    POLICY_IN_NEW_PRIMARY_REGION,
                    format!("could not read the key policy in {to}: {e}"),
                )
            }
        };
        match desired_replica(self.config, old, to).map(|d| d.policy) {
            Ok(None) => Check::pass(
                POLICY_IN_NEW_PRIMARY_REGION,
                format!("readable in {to}; policies are not managed (POLICY_MODE=off)"),
            ),
            Ok(Some(want)) if same_policy(&want, &actual) => Check::pass(
                POLICY_IN_NEW_PRIMARY_REGION,
                format!("matches the policy of the old primary in {p}, mirrored for {to}"),
            ),
            Ok(Some(_)) => Check::warn(
                POLICY_IN_NEW_PRIMARY_REGION,
                format!(
                    "differs from the policy of the old primary in {p} mirrored for {to}. The \
                     new primary's policy is now the one mirrored to every replica: review it \
                     with `aws kms get-key-policy --region {to} --key-id {id} --policy-name \
                     default`"
                ),
            ),
            Err(e) => Check::warn(POLICY_IN_NEW_PRIMARY_REGION, e.to_string()),
        }
    }
}
