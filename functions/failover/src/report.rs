//! What a failover tells a person: the checks before and after a promotion and their names,
//! why a key was not promoted, each key's outcome, the report of one invocation and its one-line summary, the sentences that explain
//! a KMS error, and the audit events published for it. Pure: no calls.

use kms_replicator::audit::{FAILOVER_FAILED, PRIMARY_REGION_UPDATED};
use kms_replicator::port::{AuditEvent, ErrorKind, KmsError};
use kms_replicator::report::SyncReport;
use serde::Serialize;
use serde_json::json;
use std::time::Duration;

/// Why a key was not promoted, for people and for tooling that reads the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// A Region's KMS endpoint did not answer (or answered with server errors) after retries.
    RegionUnreachable,
    AccessDenied,
    /// Disabled, pending deletion, creating, updating...
    KeyState,
    NoReplica,
    NotMultiRegion,
    NotPrimary,
    Throttled,
    /// The replication tag could not be updated before the promotion.
    TagUpdate,
    /// The key carries no replication tag, and the request did not include unmanaged keys.
    NotManaged,
    /// The target replica could not be brought up to the primary's policy, aliases, tags and
    /// description before the promotion.
    TargetNotUpToDate,
    Other,
}

impl Cause {
    pub fn of(e: &KmsError) -> Cause {
        match e.kind {
            ErrorKind::Unreachable | ErrorKind::Internal => Cause::RegionUnreachable,
            ErrorKind::AccessDenied => Cause::AccessDenied,
            ErrorKind::Disabled | ErrorKind::InvalidState => Cause::KeyState,
            ErrorKind::NotFound => Cause::NoReplica,
            ErrorKind::UnsupportedOperation => Cause::NotPrimary,
            ErrorKind::Throttling => Cause::Throttled,
            _ => Cause::Other,
        }
    }
}

/// KMS in the error's Region gave no answer, or only server errors, even after the SDK's
/// retries: an outage as far as a failover can tell, and not a refusal. (A write that got no
/// answer at all is what the shared sync calls unreachable.)
pub(crate) fn is_outage(e: &KmsError) -> bool {
    Cause::of(e) == Cause::RegionUnreachable
}

/// The checks, in the order they run. Reports carry them by these names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckName {
    KeyFound,
    MultiRegion,
    PrimaryRegionAnswers,
    IsPrimary,
    PrimaryEnabled,
    ReplicaInTarget,
    ReplicaEnabled,
    /// Information: the last use of the replica being promoted and of the primary.
    KeyUse,
    PrimarySettingsRead,
    ReplicationTag,
    TargetUpToDate,
    UpdatePrimaryRegion,
    NewPrimaryReported,
    AliasesInNewPrimaryRegion,
    PolicyInNewPrimaryRegion,
    SyncFromNewPrimary,
}

impl CheckName {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckName::KeyFound => "key_found",
            CheckName::MultiRegion => "multi_region",
            CheckName::PrimaryRegionAnswers => "primary_region_answers",
            CheckName::IsPrimary => "is_primary",
            CheckName::PrimaryEnabled => "primary_enabled",
            CheckName::ReplicaInTarget => "replica_in_target",
            CheckName::ReplicaEnabled => "replica_enabled",
            CheckName::KeyUse => "key_use",
            CheckName::PrimarySettingsRead => "primary_settings_read",
            CheckName::ReplicationTag => "replication_tag",
            CheckName::TargetUpToDate => "target_up_to_date",
            CheckName::UpdatePrimaryRegion => "update_primary_region",
            CheckName::NewPrimaryReported => "new_primary_reported",
            CheckName::AliasesInNewPrimaryRegion => "aliases_in_new_primary_region",
            CheckName::PolicyInNewPrimaryRegion => "policy_in_new_primary_region",
            CheckName::SyncFromNewPrimary => "sync_from_new_primary",
        }
    }
}

impl std::fmt::Display for CheckName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One check, before or after the promotion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: CheckName,
    pub passed: bool,
    pub detail: String,
    /// Set on failed checks that stop the promotion.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<Cause>,
}

impl Check {
    pub fn pass(name: CheckName, detail: impl Into<String>) -> Check {
        Check {
            name,
            passed: true,
            detail: detail.into(),
            cause: None,
        }
    }

    pub fn fail(name: CheckName, detail: impl Into<String>, cause: Cause) -> Check {
        Check {
            name,
            passed: false,
            detail: detail.into(),
            cause: Some(cause),
        }
    }

    /// A failed check that does not undo a promotion already made: a warning.
    pub fn warn(name: CheckName, detail: impl Into<String>) -> Check {
        Check {
            name,
            passed: false,
            detail: detail.into(),
            cause: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum KeyOutcome {
    /// The target Region holds the primary, and every check after the promotion passed.
    Promoted,
    /// The target Region holds the primary, but a check after the promotion failed.
    PromotedWithWarnings { reason: String },
    /// Dry run: every check passed, nothing was written.
    DryRunOk,
    /// The key's primary is already in the target Region: nothing to do.
    AlreadyPrimary,
    /// Left alone on purpose (bulk mode: no replica in the target Region).
    Skipped { reason: String },
    /// Not promoted.
    Failed { reason: String, cause: Cause },
    /// KMS accepted the call, but the target did not report PRIMARY and Enabled in time.
    TimedOut { reason: String },
    /// Not started: the invocation's deadline was too close. Nothing was changed.
    NotStarted { reason: String },
}

impl KeyOutcome {
    pub fn name(&self) -> &'static str {
        match self {
            KeyOutcome::Promoted => "promoted",
            KeyOutcome::PromotedWithWarnings { .. } => "promoted_with_warnings",
            KeyOutcome::DryRunOk => "dry_run_ok",
            KeyOutcome::AlreadyPrimary => "already_primary",
            KeyOutcome::Skipped { .. } => "skipped",
            KeyOutcome::Failed { .. } => "failed",
            KeyOutcome::TimedOut { .. } => "timed_out",
            KeyOutcome::NotStarted { .. } => "not_started",
        }
    }

    pub fn is_promoted(&self) -> bool {
        matches!(
            self,
            KeyOutcome::Promoted | KeyOutcome::PromotedWithWarnings { .. }
        )
    }
}

/// What happened to one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyReport {
    /// The key as the request named it (the key id in bulk mode).
    pub requested: String,
    pub key_id: Option<String>,
    pub primary_region_before: Option<String>,
    /// `None` when it is not known (the update was still in progress at the end).
    pub primary_region_after: Option<String>,
    #[serde(flatten)]
    pub outcome: KeyOutcome,
    pub checks: Vec<Check>,
    pub duration_ms: u64,
    /// The sync run from the new primary after the promotion.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync: Option<SyncReport>,
}

impl KeyReport {
    pub fn new(requested: &str) -> KeyReport {
        KeyReport {
            requested: requested.to_string(),
            key_id: None,
            primary_region_before: None,
            primary_region_after: None,
            outcome: KeyOutcome::DryRunOk,
            checks: Vec::new(),
            duration_ms: 0,
            sync: None,
        }
    }

    /// The first failed check that stops the promotion.
    pub fn blocking_failure(&self) -> Option<&Check> {
        self.checks.iter().find(|c| !c.passed && c.cause.is_some())
    }
}

/// The answer to one invocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FailoverReport {
    pub summary: String,
    pub to: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    pub dry_run: bool,
    pub duration_ms: u64,
    /// Set when the keys could not even be listed (bulk mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub keys: Vec<KeyReport>,
}

impl FailoverReport {
    /// The run's CloudWatch metrics (Embedded Metric Format).
    pub fn metrics(&self, namespace: &str) -> kms_replicator::metrics::MetricSet {
        let count = |name: &str| {
            self.keys
                .iter()
                .filter(|k| k.outcome.name() == name)
                .count()
        };
        kms_replicator::metrics::MetricSet::new(namespace)
            .dimension("Function", "failover")
            .count(
                "KeysPromoted",
                self.keys.iter().filter(|k| k.outcome.is_promoted()).count(),
            )
            .count(
                "KeysFailed",
                count("failed") + usize::from(self.error.is_some()),
            )
            .count("KeysTimedOut", count("timed_out"))
            .count("KeysNotStarted", count("not_started"))
            .millis("FailoverDuration", u128::from(self.duration_ms))
            .property("dryRun", self.dry_run)
    }
}

/// A duration as the reports give it, in whole milliseconds.
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `one` or `many`, as `n` says: "1 key", "2 keys".
pub(crate) fn plural<'s>(n: usize, one: &'s str, many: &'s str) -> &'s str {
    if n == 1 {
        one
    } else {
        many
    }
}

/// One line for a person: "2 of 3 keys promoted to us-west-2; 1 failed".
pub fn summarise(keys: &[KeyReport], to: &str, dry_run: bool) -> String {
    let n = keys.len();
    let count = |name: &str| keys.iter().filter(|k| k.outcome.name() == name).count();
    let mut parts = Vec::new();
    let head = if dry_run {
        format!(
            "dry run: {} of {n} {} can be promoted to {to}",
            count("dry_run_ok"),
            plural(n, "key", "keys")
        )
    } else {
        let promoted = keys.iter().filter(|k| k.outcome.is_promoted()).count();
        let warned = count("promoted_with_warnings");
        if warned > 0 {
            parts.push(format!("{warned} with failed post-checks"));
        }
        format!(
            "{promoted} of {n} {} promoted to {to}",
            plural(n, "key", "keys")
        )
    };
    for (name, text) in [
        ("already_primary", "already primary there"),
        ("skipped", "skipped (no replica there)"),
        ("failed", if dry_run { "would fail" } else { "failed" }),
        ("timed_out", "still updating when the wait ended"),
        (
            "not_started",
            "not started before the invocation's deadline (run again for those)",
        ),
    ] {
        let c = count(name);
        if c > 0 {
            parts.push(format!("{c} {text}"));
        }
    }
    std::iter::once(head)
        .chain(parts)
        .collect::<Vec<_>>()
        .join("; ")
}

/// A sentence a person can act on, for a KMS error met during a failover. `primary` is the
/// key's primary Region, `to` the target Region.
pub fn explain(e: &KmsError, primary: &str, to: &str) -> String {
    let detail = format!("{} in {}: {}: {}", e.operation, e.region, e.code, e.message);
    match e.kind {
        ErrorKind::Unreachable | ErrorKind::Internal if e.region == primary => format!(
            "KMS in {primary} did not answer, even after the SDK's retries ({detail}). \
             Nothing was changed. Replicas of the key remain usable for cryptography \
             (Encrypt, Decrypt, GenerateDataKey...) in their own Regions, {to} included, so \
             applications there keep working. Promotion needs the primary Region's KMS \
             endpoint: UpdatePrimaryRegion can only be called in {primary}, the current \
             primary's Region. Run this again when KMS in {primary} answers."
        ),
        ErrorKind::Unreachable | ErrorKind::Internal => format!(
            "KMS in {} did not answer, even after the SDK's retries ({detail}); the replica \
             there could not be checked or promoted. Nothing was changed.",
            e.region
        ),
        ErrorKind::AccessDenied => format!(
            "access denied ({detail}): a permission problem, not an outage. The failover \
             function's role needs kms:UpdatePrimaryRegion on the key in both {primary} and \
             {to} (and the key policies there must allow it; a kms:PrimaryRegion condition \
             may exclude {to}). Nothing was changed."
        ),
        ErrorKind::Disabled => format!(
            "a key is disabled ({detail}): UpdatePrimaryRegion needs both the primary and the \
             replica Enabled. Enable it (aws kms enable-key --region {} --key-id <key id>) and \
             run this again. Nothing was changed.",
            e.region
        ),
        ErrorKind::InvalidState => format!(
            "the key's state does not allow UpdatePrimaryRegion ({detail}): both keys must be \
             Enabled. A key that is creating or updating settles within seconds; one pending \
             deletion must first be restored (CancelKeyDeletion, then EnableKey). Nothing was \
             changed."
        ),
        ErrorKind::NotFound => format!(
            "no replica of the key in {to} ({detail}): UpdatePrimaryRegion promotes an \
             existing replica and never creates one. Add {to} to the key's replication tag \
             first. Nothing was changed."
        ),
        ErrorKind::UnsupportedOperation => format!(
            "the key in {primary} is not a multi-Region primary key ({detail}). If a primary \
             Region update was just made it may still be propagating: describe the key and \
             run this again in a few seconds. Nothing was changed."
        ),
        ErrorKind::Throttling => format!(
            "throttled by KMS in {} ({detail}): UpdatePrimaryRegion allows 5 requests per \
             second, counted in both Regions. Nothing was changed; run this again.",
            e.region
        ),
        _ => format!("{detail}. Nothing was changed."),
    }
}

/// One audit event per key promoted, failed or timed out, and one for a bulk run whose keys
/// could not be listed. Dry runs publish nothing.
pub fn audit_events(report: &FailoverReport) -> Vec<AuditEvent> {
    if report.dry_run {
        return Vec::new();
    }
    let mut events = Vec::new();
    if let Some(error) = &report.error {
        events.push(AuditEvent {
            detail_type: FAILOVER_FAILED.into(),
            detail: json!({"from": report.from, "to": report.to, "error": error}),
        });
    }
    for k in &report.keys {
        let detail_type = match &k.outcome {
            KeyOutcome::Promoted | KeyOutcome::PromotedWithWarnings { .. } => {
                PRIMARY_REGION_UPDATED
            }
            KeyOutcome::Failed { .. } | KeyOutcome::TimedOut { .. } => FAILOVER_FAILED,
            _ => continue,
        };
        let mut detail = serde_json::to_value(k).unwrap_or_else(|_| json!({}));
        if let Some(obj) = detail.as_object_mut() {
            // The sync's own outcome is enough here; its details are in the function's answer.
            let sync = k.sync.as_ref().map(|s| s.outcome.name());
            obj.insert("sync".into(), json!(sync));
            obj.insert("to".into(), json!(report.to));
        }
        events.push(AuditEvent {
            detail_type: detail_type.into(),
            detail,
        });
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(outcome: KeyOutcome) -> KeyReport {
        let mut k = KeyReport::new("mrk-1");
        k.outcome = outcome;
        k
    }

    #[test]
    fn check_names_are_reported_by_their_snake_case_names() {
        let names = [
            (CheckName::KeyFound, "key_found"),
            (CheckName::MultiRegion, "multi_region"),
            (CheckName::PrimaryRegionAnswers, "primary_region_answers"),
            (CheckName::IsPrimary, "is_primary"),
            (CheckName::PrimaryEnabled, "primary_enabled"),
            (CheckName::ReplicaInTarget, "replica_in_target"),
            (CheckName::ReplicaEnabled, "replica_enabled"),
            (CheckName::PrimarySettingsRead, "primary_settings_read"),
            (CheckName::ReplicationTag, "replication_tag"),
            (CheckName::UpdatePrimaryRegion, "update_primary_region"),
            (CheckName::NewPrimaryReported, "new_primary_reported"),
            (
                CheckName::AliasesInNewPrimaryRegion,
                "aliases_in_new_primary_region",
            ),
            (
                CheckName::PolicyInNewPrimaryRegion,
                "policy_in_new_primary_region",
            ),
            (CheckName::SyncFromNewPrimary, "sync_from_new_primary"),
        ];
        for (name, text) in names {
            assert_eq!(name.as_str(), text);
            assert_eq!(serde_json::to_value(name).unwrap(), json!(text));
        }
    }

    #[test]
    fn the_summary_counts_every_outcome() {
        let keys = vec![
            key(KeyOutcome::Promoted),
            key(KeyOutcome::Promoted),
            key(KeyOutcome::Failed {
                reason: "x".into(),
                cause: Cause::KeyState,
            }),
        ];
        assert_eq!(
            summarise(&keys, "us-west-2", false),
            "2 of 3 keys promoted to us-west-2; 1 failed"
        );
        let keys = vec![
            key(KeyOutcome::PromotedWithWarnings { reason: "x".into() }),
            key(KeyOutcome::TimedOut { reason: "x".into() }),
            key(KeyOutcome::AlreadyPrimary),
            key(KeyOutcome::Skipped { reason: "x".into() }),
        ];
        assert_eq!(
            summarise(&keys, "us-west-2", false),
            "1 of 4 keys promoted to us-west-2; 1 with failed post-checks; 1 already primary \
             there; 1 skipped (no replica there); 1 still updating when the wait ended"
        );
        assert_eq!(
            summarise(&[key(KeyOutcome::DryRunOk)], "us-west-2", true),
            "dry run: 1 of 1 key can be promoted to us-west-2"
        );
    }

    #[test]
    fn an_unreachable_primary_region_is_told_apart_from_permissions_and_key_states() {
        let e = |kind, code: &str, region: &str| {
            KmsError::new(
                kind,
                kms_replicator::Op::UpdatePrimaryRegion,
                region,
                code,
                "m",
            )
        };
        let down = explain(
            &e(ErrorKind::Unreachable, "DispatchFailure", "us-east-1"),
            "us-east-1",
            "us-west-2",
        );
        assert!(down.contains("remain usable for cryptography"), "{down}");
        assert!(down.contains("can only be called in us-east-1"), "{down}");
        let denied = explain(
            &e(
                ErrorKind::AccessDenied,
                "AccessDeniedException",
                "us-east-1",
            ),
            "us-east-1",
            "us-west-2",
        );
        assert!(
            denied.contains("permission problem, not an outage"),
            "{denied}"
        );
        assert!(!denied.contains("did not answer"));
        let disabled = explain(
            &e(ErrorKind::Disabled, "DisabledException", "us-east-1"),
            "us-east-1",
            "us-west-2",
        );
        assert!(disabled.contains("both the primary and the replica Enabled"));
        assert_eq!(
            Cause::of(&e(ErrorKind::Internal, "KMSInternalException", "us-east-1")),
            Cause::RegionUnreachable
        );
    }

    #[test]
    fn audit_events_name_promotions_and_failures_and_dry_runs_publish_nothing() {
        let mut report = FailoverReport {
            summary: String::new(),
            to: "us-west-2".into(),
            from: None,
            dry_run: false,
            duration_ms: 1,
            error: None,
            keys: vec![
                key(KeyOutcome::Promoted),
                key(KeyOutcome::TimedOut { reason: "x".into() }),
                key(KeyOutcome::AlreadyPrimary),
            ],
        };
        let events = audit_events(&report);
        let types: Vec<&str> = events.iter().map(|e| e.detail_type.as_str()).collect();
        assert_eq!(types, vec!["Primary Region Updated", "Failover Failed"]);
        assert_eq!(events[1].detail["outcome"], "timed_out");
        assert_eq!(events[0].detail["to"], "us-west-2");
        report.keys.clear();
        report.from = Some("us-east-1".into());
        report.error = Some("KMS in us-east-1 did not answer".into());
        let events = audit_events(&report);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].detail_type, "Failover Failed");
        assert_eq!(events[0].detail["from"], "us-east-1");
        report.dry_run = true;
        assert!(audit_events(&report).is_empty());
    }
}
