//! Outcomes: what a sync did (or would do) for each key and Region, and their rendering
//! as `terraform plan`-style lines.

use crate::metrics::MetricSet;
use crate::model::Tag;
use crate::op::Op;
use crate::policy::Rewrite;
use crate::policy_diff::PolicyChange;
use crate::port::ReplicaSpec;
use serde::Serialize;
use serde_json::Value;
use tracing::{debug, info};

/// The result for one key, or for one Region of a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// A replica was created.
    Created,
    /// An existing replica was brought in line with the primary.
    Updated,
    /// Nothing to do.
    InSync,
    /// Dry run: these changes would be made.
    Planned,
    /// Left alone on purpose.
    Skipped { reason: String },
    /// Could not be done. Retryable failures make the Lambda invocation fail, so it is retried.
    Failed { reason: String, retryable: bool },
}

impl Outcome {
    pub fn skipped(reason: impl Into<String>) -> Outcome {
        Outcome::Skipped {
            reason: reason.into(),
        }
    }

    pub fn failed(reason: impl Into<String>, retryable: bool) -> Outcome {
        Outcome::Failed {
            reason: reason.into(),
            retryable,
        }
    }

    pub fn is_retryable_failure(&self) -> bool {
        matches!(
            self,
            Outcome::Failed {
                retryable: true,
                ..
            }
        )
    }

    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Updated => "updated",
            Outcome::InSync => "in_sync",
            Outcome::Planned => "planned",
            Outcome::Skipped { .. } => "skipped",
            Outcome::Failed { .. } => "failed",
        }
    }
}

/// One write, made or planned, in one Region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "op")]
pub enum Action {
    ReplicateKey(ReplicaSpec),
    CancelKeyDeletion,
    EnableKey,
    PutKeyPolicy {
        #[serde(skip)]
        policy: String,
    },
    UpdateKeyDescription {
        description: String,
    },
    TagResource {
        tags: Vec<Tag>,
    },
    UntagResource {
        keys: Vec<String>,
    },
    CreateAlias {
        alias: String,
    },
    /// Re-point an alias held by another replica of the same primary Region (the alias moved).
    UpdateAlias {
        alias: String,
        from_key: String,
    },
    ScheduleKeyDeletion {
        pending_window_days: i32,
    },
}

impl Action {
    pub fn op(&self) -> Op {
        match self {
            Action::ReplicateKey(_) => Op::ReplicateKey,
            Action::CancelKeyDeletion => Op::CancelKeyDeletion,
            Action::EnableKey => Op::EnableKey,
            Action::PutKeyPolicy { .. } => Op::PutKeyPolicy,
            Action::UpdateKeyDescription { .. } => Op::UpdateKeyDescription,
            Action::TagResource { .. } => Op::TagResource,
            Action::UntagResource { .. } => Op::UntagResource,
            Action::CreateAlias { .. } => Op::CreateAlias,
            Action::UpdateAlias { .. } => Op::UpdateAlias,
            Action::ScheduleKeyDeletion { .. } => Op::ScheduleKeyDeletion,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegionReport {
    pub region: String,
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Writes made (or, in a dry run, planned), in order.
    pub actions: Vec<Action>,
    /// Policy rewrites in the policy sent to this Region.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rewrites: Vec<Rewrite>,
    /// With a PutKeyPolicy: how the replica's policy differs from the one it should have.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub policy_diff: Vec<PolicyChange>,
    /// What a person did that the tag contradicts (a deletion they scheduled, a key they
    /// disabled): left as it is, and reported on every sync until a person resolves it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<String>,
    /// Facts worth knowing that need no action (aliases made by hand in this Region, a former
    /// primary kept managed).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The replica carries a hold (`kms-replicator:hold`): nothing was written to it, and
    /// every sync says so.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub held: bool,
}

impl RegionReport {
    pub fn new(region: &str, outcome: Outcome) -> RegionReport {
        RegionReport {
            region: region.to_string(),
            outcome,
            actions: Vec::new(),
            rewrites: Vec::new(),
            policy_diff: Vec::new(),
            conflicts: Vec::new(),
            notes: Vec::new(),
            held: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    /// The key reference the trigger named.
    pub requested: String,
    pub key_id: Option<String>,
    pub primary_region: Option<String>,
    /// Whether the primary carries the replication tag.
    pub managed: bool,
    #[serde(flatten)]
    pub outcome: Outcome,
    pub regions: Vec<RegionReport>,
    pub dry_run: bool,
}

impl SyncReport {
    /// A report that ends before any Region is looked at.
    pub fn key_level(requested: &str, outcome: Outcome) -> SyncReport {
        SyncReport {
            requested: requested.to_string(),
            key_id: None,
            primary_region: None,
            managed: false,
            outcome,
            regions: Vec::new(),
            dry_run: false,
        }
    }

    pub fn is_retryable_failure(&self) -> bool {
        self.outcome.is_retryable_failure()
            || self
                .regions
                .iter()
                .any(|r| r.outcome.is_retryable_failure())
    }

    /// The sync's CloudWatch metrics (Embedded Metric Format), for `function`: one key synced,
    /// the writes made, the Regions (or the key) that failed, the conflicts reported.
    pub fn metrics(&self, namespace: &str, function: &str, duration_ms: u128) -> MetricSet {
        let failures = self
            .regions
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Failed { .. }))
            .count()
            .max(usize::from(
                self.regions.is_empty() && matches!(self.outcome, Outcome::Failed { .. }),
            ));
        MetricSet::new(namespace)
            .dimension("Function", function)
            .count("KeysSynced", usize::from(self.managed))
            .count("Writes", if self.dry_run { 0 } else { self.write_count() })
            .count("Failures", failures)
            .count("Conflicts", self.conflict_count())
            .millis("SyncDuration", duration_ms)
    }

    /// Conflicts with what people did, across Regions.
    pub fn conflict_count(&self) -> usize {
        self.regions.iter().map(|r| r.conflicts.len()).sum()
    }

    /// Number of writes made (or planned) across Regions.
    pub fn write_count(&self) -> usize {
        self.regions.iter().map(|r| r.actions.len()).sum()
    }

    /// The key's overall outcome from its Regions' outcomes: the worst one wins.
    pub fn summarise(regions: &[RegionReport], dry_run: bool) -> Outcome {
        let mut out = Outcome::InSync;
        for r in regions {
            out = match (&out, &r.outcome) {
                (
                    Outcome::Failed {
                        retryable: true, ..
                    },
                    _,
                ) => out,
                (_, Outcome::Failed { reason, retryable }) => {
                    Outcome::failed(format!("{}: {reason}", r.region), *retryable)
                }
                (Outcome::Failed { .. }, _) => out,
                (_, Outcome::Created) => Outcome::Created,
                (Outcome::Created, _) => out,
                (_, Outcome::Updated) => Outcome::Updated,
                (_, Outcome::Planned) if dry_run => Outcome::Planned,
                _ => out,
            };
        }
        out
    }
}

/// Longest value shown in a summary line; the JSON report has the whole value.
const MAX_SHOWN: usize = 160;

fn shown(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() <= MAX_SHOWN {
        s
    } else {
        let cut: String = s.chars().take(MAX_SHOWN).collect();
        format!("{cut}…")
    }
}

/// One line per change of `report`, in the style of `terraform plan`: `+` creates, `~`
/// changes, `-` removes, `!` failed, `#` skipped on purpose. Policy changes follow their
/// PutKeyPolicy line, indented. Keys and Regions in sync produce no line.
pub fn change_lines(report: &SyncReport) -> Vec<String> {
    let key = match (&report.key_id, &report.primary_region) {
        (Some(id), Some(r)) => format!("{id} ({r})"),
        (Some(id), None) => id.clone(),
        _ => report.requested.clone(),
    };
    let mut lines = Vec::new();
    if report.regions.is_empty() {
        match &report.outcome {
            Outcome::Failed { reason, .. } => lines.push(format!("! {key}: failed: {reason}")),
            Outcome::Skipped { reason } if report.managed => {
                lines.push(format!("# {key}: skipped: {reason}"))
            }
            _ => {}
        }
        return lines;
    }
    for r in &report.regions {
        let at = format!("{key} -> {}", r.region);
        for action in &r.actions {
            let line = match action {
                Action::ReplicateKey(ReplicaSpec {
                    policy,
                    description,
                    tags,
                }) => {
                    let policy = match policy {
                        None => "KMS's default policy".to_string(),
                        Some(_) if r.rewrites.is_empty() => "the primary's policy".to_string(),
                        Some(_) => format!(
                            "the primary's policy with {} Region rewrite(s)",
                            r.rewrites.len()
                        ),
                    };
                    format!(
                        "+ {at}: create replica ({policy}, {} tag(s), description {:?})",
                        tags.len(),
                        description
                    )
                }
                Action::CancelKeyDeletion => {
                    format!("~ {at}: cancel the replica's scheduled deletion")
                }
                Action::EnableKey => format!("~ {at}: enable the replica"),
                Action::PutKeyPolicy { .. } => {
                    let mut s = format!("~ {at}: update key policy");
                    if !r.policy_diff.is_empty() {
                        s.push_str(&format!(" ({} difference(s))", r.policy_diff.len()));
                    }
                    for c in &r.policy_diff {
                        s.push_str(&match (&c.from, &c.to) {
                            (Some(f), Some(t)) => {
                                format!("\n    ~ {}: {} -> {}", c.path, shown(f), shown(t))
                            }
                            (None, Some(t)) => format!("\n    + {}: {}", c.path, shown(t)),
                            (Some(f), None) => format!("\n    - {}: {}", c.path, shown(f)),
                            (None, None) => format!("\n    ~ {}", c.path),
                        });
                    }
                    s
                }
                Action::UpdateKeyDescription { description } => {
                    format!("~ {at}: set description {description:?}")
                }
                Action::TagResource { tags } => format!(
                    "~ {at}: tag {}",
                    tags.iter()
                        .map(|t| format!("{}={:?}", t.key, t.value))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                Action::UntagResource { keys } => {
                    format!("- {at}: untag {}", keys.join(", "))
                }
                Action::CreateAlias { alias } => format!("+ {at}: create alias {alias}"),
                Action::UpdateAlias { alias, from_key } => {
                    format!("~ {at}: re-point alias {alias} (from {from_key})")
                }
                Action::ScheduleKeyDeletion {
                    pending_window_days,
                } => format!(
                    "- {at}: schedule the replica's deletion ({pending_window_days}-day window)"
                ),
            };
            lines.push(line);
        }
        match &r.outcome {
            Outcome::Failed { reason, .. } => lines.push(format!("! {at}: failed: {reason}")),
            Outcome::Skipped { reason } => lines.push(format!("# {at}: skipped: {reason}")),
            _ => {}
        }
        lines.extend(r.conflicts.iter().map(|c| format!("! {at}: conflict: {c}")));
    }
    lines
}
/// The structured log lines of one sync, as both functions write them: a key in sync is one
/// debug line (a sweep meets thousands); otherwise one line per Region, or one for the key when
/// no Region was reached.
pub fn log_report(report: &SyncReport) {
    let key_id = report.key_id.as_deref().unwrap_or(&report.requested);
    let primary = report.primary_region.as_deref().unwrap_or("");
    if report.outcome == Outcome::InSync {
        debug!(key_id, primary_region = primary, "in sync");
        return;
    }
    if report.regions.is_empty() {
        info!(key_id, primary_region = primary, outcome = report.outcome.name(),
              detail = ?report.outcome, "key outcome");
    }
    for r in &report.regions {
        let actions: Vec<&str> = r.actions.iter().map(|a| a.op().name()).collect();
        info!(key_id, primary_region = primary, region = %r.region, outcome = r.outcome.name(),
              detail = ?r.outcome, actions = ?actions, rewrites = r.rewrites.len(), "region outcome");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_planned_replica_is_reported_without_its_policy() {
        let action = Action::ReplicateKey(ReplicaSpec {
            policy: Some("{\"Version\":\"2012-10-17\"}".into()),
            description: "payments".into(),
            tags: vec![Tag::new("team", "payments")],
        });
        assert_eq!(
            serde_json::to_value(&action).unwrap(),
            json!({"op": "ReplicateKey", "description": "payments",
                   "tags": [{"key": "team", "value": "payments"}]})
        );
    }

    #[test]
    fn a_syncs_metrics_count_its_writes_failures_and_conflicts() {
        let mut west = RegionReport::new("us-west-2", Outcome::Updated);
        west.actions.push(Action::EnableKey);
        west.conflicts.push("disabled by a person".into());
        let eu = RegionReport::new("eu-west-1", Outcome::failed("timed out", true));
        let mut r = SyncReport::key_level("mrk-1", Outcome::Updated);
        r.managed = true;
        r.regions = vec![west, eu];
        let doc = r.metrics("KmsReplicator", "replicate", 42).to_json(0);
        assert_eq!(doc["Function"], "replicate");
        assert_eq!(doc["KeysSynced"], 1.0);
        assert_eq!(doc["Writes"], 1.0);
        assert_eq!(doc["Failures"], 1.0);
        assert_eq!(doc["Conflicts"], 1.0);
        assert_eq!(doc["SyncDuration"], 42.0);
    }
}
