//! Failover: promoting a replica to primary with UpdatePrimaryRegion, for an on-call person.
//!
//! The pure parts live here: the request and its validation, the report a person reads, the
//! sentences that explain a failure, the polling schedule, the replication tag's update and
//! the audit events. The failover function makes the calls.

use crate::audit::{FAILOVER_FAILED, PRIMARY_REGION_UPDATED};
use crate::config::{Config, ConfigError};
use crate::port::{AuditEvent, ErrorKind, KmsError};
use crate::region::is_region_name;
use crate::report::SyncReport;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::time::Duration;

/// What the on-call person sends. `key` (one key) and `from` (every managed key whose primary
/// is in that Region) exclude each other.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FailoverRequest {
    /// Key id, key ARN, alias name or alias ARN.
    #[serde(default)]
    pub key: Option<String>,
    /// Where to look `key` up when it is not an ARN.
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub from: Option<String>,
    pub to: String,
    #[serde(default)]
    pub dry_run: bool,
}

/// Shown with every input error.
pub const USAGE: &str = r#"expected {"key":"<key id, key ARN or alias/name>","to":"<Region>"} (optional "region":"<where to look the key up>") or {"from":"<Region>","to":"<Region>"}, each with an optional "dryRun":true"#;

/// Which keys a request is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One key. `region` is where to look it up: the ARN's Region or the request's `region`;
    /// `None` means the managed Regions in order, then the target Region.
    Key { key: String, region: Option<String> },
    /// Every managed primary whose Region is `from`.
    Region { from: String },
}

/// A validated request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailoverPlan {
    pub target: Target,
    pub to: String,
    pub dry_run: bool,
}

fn region_field(field: &str, value: &str) -> Result<String, String> {
    let v = value.trim();
    if is_region_name(v) {
        Ok(v.to_string())
    } else {
        Err(format!("\"{field}\": '{value}' is not an AWS Region name"))
    }
}

/// Validates the invocation payload. Every error says what is wrong and what is expected.
pub fn parse_request(input: &Value, cfg: &Config) -> Result<FailoverPlan, String> {
    if !input.is_object() {
        return Err(format!("the input is not a JSON object; {USAGE}"));
    }
    let req: FailoverRequest =
        serde_json::from_value(input.clone()).map_err(|e| format!("{e}; {USAGE}"))?;
    let to = region_field("to", &req.to)?;
    if !cfg.is_allowed(&to) {
        return Err(format!(
            "\"to\": Region {to} is not in ALLOWED_REGIONS ({}); the replicator never writes \
             outside them",
            cfg.allowed_regions.join(" ")
        ));
    }
    let target = match (req.key, req.from) {
        (Some(_), Some(_)) => {
            return Err(format!(
                "give either \"key\" (one key) or \"from\" (every managed key whose primary is \
                 in that Region), not both; {USAGE}"
            ))
        }
        (None, None) => {
            return Err(format!(
                "give \"key\" (one key) or \"from\" (every managed key whose primary is in that \
                 Region); {USAGE}"
            ))
        }
        (None, Some(from)) => {
            if req.region.is_some() {
                return Err(format!("\"region\" only goes with \"key\"; {USAGE}"));
            }
            let from = region_field("from", &from)?;
            if from == to {
                return Err(format!(
                    "\"from\" and \"to\" are both {to}: there is nothing to promote"
                ));
            }
            Target::Region { from }
        }
        (Some(key), None) => {
            let key = key.trim().to_string();
            if key.is_empty() {
                return Err(format!("\"key\" is empty; {USAGE}"));
            }
            let given = req
                .region
                .as_deref()
                .map(|r| region_field("region", r))
                .transpose()?;
            let region = if key.starts_with("arn:") {
                let arn = crate::arn::parse_kms_arn(&key)
                    .filter(|a| a.resource.starts_with("key/") || a.resource.starts_with("alias/"))
                    .ok_or_else(|| format!("\"key\": '{key}' is not a KMS key or alias ARN"))?;
                let arn_region = region_field("key", arn.region)?;
                if let Some(g) = given.filter(|g| *g != arn_region) {
                    return Err(format!(
                        "\"key\" is an ARN in {arn_region} but \"region\" says {g}; give one"
                    ));
                }
                Some(arn_region)
            } else {
                given
            };
            Target::Key { key, region }
        }
    };
    Ok(FailoverPlan {
        target,
        to,
        dry_run: req.dry_run,
    })
}

/// The handler's settings besides [`Config`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailoverSettings {
    /// How long to wait for the target Region to report the key as PRIMARY and Enabled.
    pub wait: Duration,
    /// The first pause between two DescribeKey polls; it doubles up to `max_poll`.
    pub first_poll: Duration,
    pub max_poll: Duration,
    /// UpdatePrimaryRegion calls allowed per `window` across a batch (the KMS quota is 5 per
    /// second, and each call counts in both Regions).
    pub calls_per_window: usize,
    /// A second, plus a margin for the distance between this clock and KMS's.
    pub window: Duration,
    /// Keys handled at once in bulk mode.
    pub concurrency: usize,
}

impl Default for FailoverSettings {
    fn default() -> Self {
        FailoverSettings {
            wait: Duration::from_secs(120),
            first_poll: Duration::from_millis(250),
            max_poll: Duration::from_secs(5),
            calls_per_window: 5,
            window: Duration::from_millis(1050),
            concurrency: 10,
        }
    }
}

impl FailoverSettings {
    pub fn from_env() -> Result<FailoverSettings, ConfigError> {
        FailoverSettings::from_lookup(|k| std::env::var(k).ok())
    }

    /// `FAILOVER_WAIT_SECONDS` (default 120): the bound on the wait for the new primary.
    pub fn from_lookup(
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<FailoverSettings, ConfigError> {
        let mut s = FailoverSettings::default();
        if let Some(raw) = get("FAILOVER_WAIT_SECONDS").map(|v| v.trim().to_string()) {
            if !raw.is_empty() {
                let secs: u64 = raw.parse().ok().filter(|n| (1..=900).contains(n)).ok_or_else(|| {
                    ConfigError(format!(
                        "FAILOVER_WAIT_SECONDS must be a whole number of seconds from 1 to 900, not '{raw}'"
                    ))
                })?;
                s.wait = Duration::from_secs(secs);
            }
        }
        Ok(s)
    }
}

/// The pauses between polls: `first`, doubling, capped at `cap`.
pub fn poll_delays(first: Duration, cap: Duration) -> impl Iterator<Item = Duration> {
    std::iter::successors(Some(first.min(cap)), move |d| Some((*d * 2).min(cap)))
}

/// The replication tag's value with `region` added, or `None` when it already lists it.
/// Before a promotion the old primary's Region is added, so that after it the new primary's
/// tag still lists every Region the key lives in: otherwise sync would stop managing the old
/// primary, or schedule its deletion under `RemovalPolicy=ScheduleDeletion`. A primary's own
/// Region in its tag is ignored, so the value is right before and after the promotion.
pub fn tag_value_with(value: &str, region: &str) -> Option<String> {
    let listed = value
        .split(|c: char| c.is_whitespace() || c == ',')
        .any(|n| n.eq_ignore_ascii_case(region));
    if listed {
        return None;
    }
    let v = value.trim();
    Some(if v.is_empty() {
        region.to_string()
    } else {
        format!("{v} {region}")
    })
}

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

/// One check, before or after the promotion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub passed: bool,
    pub detail: String,
    /// Set on failed checks that stop the promotion.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<Cause>,
}

impl Check {
    pub fn pass(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            name,
            passed: true,
            detail: detail.into(),
            cause: None,
        }
    }

    pub fn fail(name: &'static str, detail: impl Into<String>, cause: Cause) -> Check {
        Check {
            name,
            passed: false,
            detail: detail.into(),
            cause: Some(cause),
        }
    }

    /// A failed check that does not undo a promotion already made: a warning.
    pub fn warn(name: &'static str, detail: impl Into<String>) -> Check {
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

fn keys_word(n: usize) -> &'static str {
    if n == 1 {
        "key"
    } else {
        "keys"
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
            keys_word(n)
        )
    } else {
        let promoted = keys.iter().filter(|k| k.outcome.is_promoted()).count();
        let warned = count("promoted_with_warnings");
        if warned > 0 {
            parts.push(format!("{warned} with failed post-checks"));
        }
        format!("{promoted} of {n} {} promoted to {to}", keys_word(n))
    };
    for (name, text) in [
        ("already_primary", "already primary there"),
        ("skipped", "skipped (no replica there)"),
        ("failed", if dry_run { "would fail" } else { "failed" }),
        ("timed_out", "still updating when the wait ended"),
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

    fn cfg() -> Config {
        Config::new(&["us-east-1", "us-west-2", "eu-west-1"])
    }

    fn parse(v: Value) -> Result<FailoverPlan, String> {
        parse_request(&v, &cfg())
    }

    #[test]
    fn a_key_and_a_target_make_a_single_key_plan() {
        let p = parse(json!({"key": "alias/payments", "to": "us-west-2"})).unwrap();
        assert_eq!(
            p,
            FailoverPlan {
                target: Target::Key {
                    key: "alias/payments".into(),
                    region: None
                },
                to: "us-west-2".into(),
                dry_run: false
            }
        );
        let p = parse(
            json!({"key": "mrk-1", "region": "us-east-1", "to": "us-west-2", "dryRun": true}),
        )
        .unwrap();
        assert!(p.dry_run);
        assert_eq!(
            p.target,
            Target::Key {
                key: "mrk-1".into(),
                region: Some("us-east-1".into())
            }
        );
    }

    #[test]
    fn an_arn_names_the_region_to_look_in() {
        let p = parse(
            json!({"key": "arn:aws:kms:eu-west-1:111122223333:key/mrk-1", "to": "us-west-2"}),
        )
        .unwrap();
        assert_eq!(
            p.target,
            Target::Key {
                key: "arn:aws:kms:eu-west-1:111122223333:key/mrk-1".into(),
                region: Some("eu-west-1".into())
            }
        );
        let e = parse(
            json!({"key": "arn:aws:kms:eu-west-1:111122223333:key/mrk-1",
                             "region": "us-east-1", "to": "us-west-2"}),
        )
        .unwrap_err();
        assert!(e.contains("but \"region\" says us-east-1"), "{e}");
        let e = parse(json!({"key": "arn:aws:s3:::bucket", "to": "us-west-2"})).unwrap_err();
        assert!(e.contains("not a KMS key or alias ARN"), "{e}");
    }

    #[test]
    fn a_source_region_makes_a_bulk_plan() {
        let p = parse(json!({"from": "us-east-1", "to": "us-west-2"})).unwrap();
        assert_eq!(
            p.target,
            Target::Region {
                from: "us-east-1".into()
            }
        );
    }

    #[test]
    fn invalid_requests_are_refused_with_a_reason() {
        let cases = [
            (json!("alias/payments"), "not a JSON object"),
            (
                json!({"key": "k", "to": "us-west-2", "force": true}),
                "unknown field `force`",
            ),
            (json!({"key": "k"}), "missing field `to`"),
            (
                json!({"key": "k", "from": "us-east-1", "to": "us-west-2"}),
                "not both",
            ),
            (json!({"to": "us-west-2"}), "give \"key\""),
            (
                json!({"from": "us-west-2", "to": "us-west-2"}),
                "both us-west-2",
            ),
            (
                json!({"key": "k", "to": "us-west"}),
                "not an AWS Region name",
            ),
            (
                json!({"from": "Virginia", "to": "us-west-2"}),
                "\"from\": 'Virginia'",
            ),
            (
                json!({"key": "k", "to": "ap-south-1"}),
                "not in ALLOWED_REGIONS",
            ),
            (json!({"key": " ", "to": "us-west-2"}), "\"key\" is empty"),
            (
                json!({"from": "us-east-1", "region": "us-east-1", "to": "us-west-2"}),
                "only goes with",
            ),
            (
                json!({"key": "k", "to": "us-west-2", "dryRun": "yes"}),
                "invalid type",
            ),
        ];
        for (input, expected) in cases {
            let e = parse(input.clone()).unwrap_err();
            assert!(e.contains(expected), "{input}: {e}");
        }
    }

    #[test]
    fn polls_start_short_and_are_capped() {
        let d: Vec<u64> = poll_delays(Duration::from_millis(250), Duration::from_secs(5))
            .take(7)
            .map(|d| d.as_millis() as u64)
            .collect();
        assert_eq!(d, vec![250, 500, 1000, 2000, 4000, 5000, 5000]);
    }

    #[test]
    fn the_old_primary_region_is_added_to_the_tag_once() {
        assert_eq!(
            tag_value_with("us-west-2 eu-west-1", "us-east-1").as_deref(),
            Some("us-west-2 eu-west-1 us-east-1")
        );
        assert_eq!(tag_value_with("us-west-2, US-EAST-1", "us-east-1"), None);
        assert_eq!(
            tag_value_with(" ", "us-east-1").as_deref(),
            Some("us-east-1")
        );
    }

    #[test]
    fn settings_read_the_wait_bound_and_refuse_nonsense() {
        let s = FailoverSettings::from_lookup(|_| None).unwrap();
        assert_eq!(s.wait, Duration::from_secs(120));
        let s =
            FailoverSettings::from_lookup(|k| (k == "FAILOVER_WAIT_SECONDS").then(|| "30".into()))
                .unwrap();
        assert_eq!(s.wait, Duration::from_secs(30));
        for bad in ["0", "-1", "2m", "901"] {
            let e = FailoverSettings::from_lookup(|_| Some(bad.into())).unwrap_err();
            assert!(e.0.contains("FAILOVER_WAIT_SECONDS"), "{bad}");
        }
    }

    fn key(outcome: KeyOutcome) -> KeyReport {
        let mut k = KeyReport::new("mrk-1");
        k.outcome = outcome;
        k
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
            KmsError::new(kind, "UpdatePrimaryRegion", region, code, "m")
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
