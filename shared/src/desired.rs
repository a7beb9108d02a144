//! The pure decisions of a sync: what a replica in a Region should hold, given its primary
//! ([`desired_replica`]), and the minimal writes that get it there from what it holds now
//! ([`plan_replica`]), with what people did to the replica respected. No I/O: [`crate::sync`]
//! reads the state and applies the plan.

use crate::config::{Config, PolicyMode, RemovalPolicy};
use crate::marker::restore_evidence;
use crate::model::{is_aws_managed_alias, KeyInfo, KeyState, Tag};
use crate::policy::{check_size, rewrite_policy, same_policy, PolicyError, Rewrite};
use crate::port::ReplicaSpec;
use crate::report::Action;
use std::collections::{BTreeMap, BTreeSet};
use thiserror::Error;

/// The tag the replicator writes on a replica just before it schedules that replica's
/// deletion; what it records and what a restore requires besides it are in [`crate::marker`].
pub use crate::marker::DELETION_MARKER_TAG;

/// The tag the replicator keeps on every replica (and the failover function on both keys
/// of a promotion): the Regions that have held the primary, space-separated. A replica whose
/// Region is listed was the primary once and is never deleted by the replicator, whoever
/// changed the primary Region since. KMS itself keeps no such history.
pub const PRIMARY_HISTORY_TAG: &str = "kms-replicator:primary-regions";

/// Tags the replicator owns, and the hold a person sets on one key: never mirrored from the
/// primary as they are.
pub fn is_replicator_tag(key: &str) -> bool {
    key == DELETION_MARKER_TAG
        || key == PRIMARY_HISTORY_TAG
        || key == crate::digest_tag::POLICY_DIGEST_TAG
        || key == crate::hold::HOLD_TAG
}

/// Why no desired state can be derived for a Region.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum DesiredError {
    #[error("cannot mirror the primary's policy: {0}")]
    Policy(#[from] PolicyError),
}

/// What the primary looks like: the 4 reads every sync starts with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrimaryState {
    pub info: KeyInfo,
    pub policy: String,
    pub tags: Vec<Tag>,
    pub aliases: Vec<String>,
}

impl PrimaryState {
    /// The replication tag's value, when the tag is present and names anything at all. An
    /// absent or blank tag means "not managed": it never leads to a write, let alone a deletion.
    pub fn replication_tag(&self, tag_key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|t| t.key == tag_key)
            .map(|t| t.value.as_str())
            .filter(|v| !v.trim().is_empty())
    }

    /// The Regions that have held this key's primary: those its history tag lists, and its
    /// own.
    pub fn primary_history(&self) -> std::collections::BTreeSet<String> {
        let mut regions: std::collections::BTreeSet<String> = self
            .tags
            .iter()
            .filter(|t| t.key == PRIMARY_HISTORY_TAG)
            .flat_map(|t| t.value.split_whitespace().map(str::to_string))
            .collect();
        regions.insert(self.info.region.clone());
        regions
    }

    /// The history tag's value as it should be written.
    pub fn primary_history_value(&self) -> String {
        self.primary_history()
            .into_iter()
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Whether `other` describes the same primary content as `self` (the check that a sync
    /// wrote the newest state, not a stale one): what replicas mirror, with the formatting of
    /// the policy and the order of tags and aliases left aside. The list of replica Regions is
    /// not content: it grows with every replica a sync creates.
    pub fn same_content(&self, other: &PrimaryState) -> bool {
        let sorted = |v: &[Tag]| {
            let mut v = v.to_vec();
            v.sort();
            v
        };
        let names = |v: &[String]| {
            let mut v = v.to_vec();
            v.sort();
            v
        };
        self.info.key_id == other.info.key_id
            && self.info.region == other.info.region
            && self.info.description == other.info.description
            && same_policy(&self.policy, &other.policy)
            && sorted(&self.tags) == sorted(&other.tags)
            && names(&self.aliases) == names(&other.aliases)
    }
}

/// What one target Region should hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredReplica {
    pub region: String,
    /// `None` when policies are not managed (`POLICY_MODE=off`).
    pub policy: Option<String>,
    pub rewrites: Vec<Rewrite>,
    pub description: String,
    pub tags: Vec<Tag>,
    pub aliases: Vec<String>,
    /// The waiting period of the deletions the replicator schedules (`None` with
    /// `RemovalPolicy=Retain`): only a deletion made with it can be the replicator's own.
    pub removal_window_days: Option<i32>,
}

impl DesiredReplica {
    /// What ReplicateKey sends to create the replica.
    pub fn replica_spec(&self) -> ReplicaSpec {
        ReplicaSpec {
            policy: self.policy.clone(),
            description: self.description.clone(),
            tags: self.tags.clone(),
        }
    }
}

/// What a replica looks like now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedReplica {
    pub state: KeyState,
    pub policy: String,
    pub description: String,
    pub tags: Vec<Tag>,
    pub aliases: Vec<String>,
    /// DescribeKey's `DeletionDate` (milliseconds since the Unix epoch), set only while the
    /// key is `PendingDeletion`.
    pub deletion_date: Option<u64>,
    /// When the replica was read, in milliseconds since the Unix epoch.
    pub read_at_ms: u64,
}

impl ObservedReplica {
    /// The state recorded by the replicator's deletion marker, if it left one.
    pub fn deletion_marker(&self) -> Option<&str> {
        self.tags
            .iter()
            .find(|t| t.key == DELETION_MARKER_TAG)
            .map(|t| t.value.as_str())
    }
}

/// The writes for one replica, and what is reported without a write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicaPlan {
    pub actions: Vec<Action>,
    /// What a person did that the tag contradicts; nothing is written to undo it.
    pub conflicts: Vec<String>,
    /// Aliases the replica has and the primary lacks: made by people for that Region, kept.
    pub extra_aliases: Vec<String>,
}

/// The desired state of a replica in `region`, derived from the primary (a pure function).
pub fn desired_replica(
    cfg: &Config,
    primary: &PrimaryState,
    region: &str,
) -> Result<DesiredReplica, DesiredError> {
    let (policy, rewrites) = match cfg.policy_mode {
        PolicyMode::Off => (None, Vec::new()),
        PolicyMode::Verbatim => {
            check_size(&primary.policy)?;
            (Some(primary.policy.clone()), Vec::new())
        }
        PolicyMode::Rewrite => {
            let (p, r) = rewrite_policy(&primary.policy, &primary.info.region, region)?;
            (Some(p), r)
        }
    };
    let mut tags: Vec<Tag> = primary
        .tags
        .iter()
        .filter(|t| !is_replicator_tag(&t.key))
        .cloned()
        .collect();
    tags.push(Tag::new(
        PRIMARY_HISTORY_TAG,
        primary.primary_history_value(),
    ));
    if let Some(p) = &policy {
        tags.push(digest_tag(primary, region, p));
    }
    tags.sort();
    Ok(DesiredReplica {
        region: region.to_string(),
        policy,
        rewrites,
        description: primary.info.description.clone(),
        tags,
        aliases: primary.aliases.clone(),
        removal_window_days: match cfg.removal {
            RemovalPolicy::Retain => None,
            RemovalPolicy::ScheduleDeletion {
                pending_window_days,
            } => Some(pending_window_days),
        },
    })
}

/// The minimal writes that turn `observed` into `desired` (a pure function).
///
/// - A replica pending deletion is restored (CancelKeyDeletion, then EnableKey when it was
///   enabled before) only on evidence that the replicator scheduled that deletion itself:
///   its marker, agreeing with the key's DeletionDate ([`crate::marker::restore_evidence`]).
///   A deletion scheduled by anyone else, or a marker alone, is a conflict: nothing is written.
/// - A disabled replica is never enabled: EnableKey comes only right after the replicator's
///   own CancelKeyDeletion, in the same plan. A key a person disabled stays disabled (a
///   conflict), while its policy, tags and description are still mirrored, so that a
///   revocation reaches it too.
/// - Missing aliases are created (if the name turns out to be held by another key, the sync
///   sorts it out); aliases the primary lacks are kept and reported, never deleted.
pub fn plan_replica(desired: &DesiredReplica, observed: &ObservedReplica) -> ReplicaPlan {
    let mut plan = ReplicaPlan::default();
    let marker = observed.deletion_marker();
    let region = &desired.region;
    if observed.state.is_pending_deletion() {
        let evidence = restore_evidence(
            marker,
            observed.state,
            observed.deletion_date,
            desired.removal_window_days,
            observed.read_at_ms,
        );
        let before = match evidence {
            Ok(before) => before,
            Err(why) => {
                plan.conflicts.push(format!(
                    "the replica in {region} is {} and {}: it is left as it is. To keep the \
                     Region, cancel the deletion and enable the key (aws kms \
                     cancel-key-deletion, then aws kms enable-key, in {region}); to let it go, \
                     remove {region} from the replication tag",
                    observed.state,
                    why.describe()
                ));
                return plan;
            }
        };
        plan.actions.push(Action::CancelKeyDeletion);
        if before != KeyState::Disabled {
            plan.actions.push(Action::EnableKey);
        }
    } else if observed.state == KeyState::Disabled {
        let marked = if marker.is_some() {
            " (it carries a deletion marker, but a marker on a key that is not pending \
             deletion restores nothing: if the replicator's own restore stopped after \
             cancelling the deletion, enable the key yourself)"
        } else {
            ""
        };
        plan.conflicts.push(format!(
            "the replica in {region} is Disabled and the replicator did not disable it: it \
             stays disabled (enable it yourself to use it in {region}){marked}; its policy, \
             tags and description are still kept in sync"
        ));
    }
    if let Some(policy) = &desired.policy {
        if !same_policy(policy, &observed.policy) {
            plan.actions.push(Action::PutKeyPolicy {
                policy: policy.clone(),
            });
        }
    }
    if desired.description != observed.description {
        plan.actions.push(Action::UpdateKeyDescription {
            description: desired.description.clone(),
        });
    }
    let (to_set, to_remove) = tag_changes(
        &with_observed_history(&desired.tags, &observed.tags),
        &observed.tags,
    );
    if !to_set.is_empty() {
        plan.actions.push(Action::TagResource { tags: to_set });
    }
    // Removing the marker comes last, after the restore it records has been made.
    if !to_remove.is_empty() {
        plan.actions.push(Action::UntagResource { keys: to_remove });
    }
    for alias in &desired.aliases {
        if !observed.aliases.contains(alias) {
            plan.actions.push(Action::CreateAlias {
                alias: alias.clone(),
            });
        }
    }
    plan.extra_aliases = observed
        .aliases
        .iter()
        .filter(|a| !desired.aliases.contains(a) && !is_aws_managed_alias(a))
        .cloned()
        .collect();
    plan
}

/// `desired` with the history tag a replica already carries merged in: the Regions that held
/// the primary only ever grow, so a Region a record once proved stays listed (and protected)
/// even when the primary's own tags never recorded it.
fn with_observed_history(desired: &[Tag], observed: &[Tag]) -> Vec<Tag> {
    let mut regions: BTreeSet<&str> = BTreeSet::new();
    for t in desired.iter().chain(observed) {
        if t.key == PRIMARY_HISTORY_TAG {
            regions.extend(t.value.split_whitespace());
        }
    }
    let mut tags: Vec<Tag> = desired
        .iter()
        .filter(|t| t.key != PRIMARY_HISTORY_TAG)
        .cloned()
        .collect();
    if !regions.is_empty() {
        let value = regions.into_iter().collect::<Vec<_>>().join(" ");
        tags.push(Tag::new(PRIMARY_HISTORY_TAG, value));
    }
    tags
}

/// Tags to set (new or changed values) and tag keys to remove.
fn tag_changes(desired: &[Tag], observed: &[Tag]) -> (Vec<Tag>, Vec<String>) {
    let have: BTreeMap<&str, &str> = observed
        .iter()
        .map(|t| (t.key.as_str(), t.value.as_str()))
        .collect();
    let want: BTreeMap<&str, &str> = desired
        .iter()
        .map(|t| (t.key.as_str(), t.value.as_str()))
        .collect();
    let to_set = want
        .iter()
        .filter(|(k, v)| have.get(*k) != Some(*v))
        .map(|(k, v)| Tag::new(*k, *v))
        .collect();
    // A hold is a person's, on this key only: never removed by the replicator.
    let to_remove = have
        .keys()
        .filter(|k| !want.contains_key(*k) && **k != crate::hold::HOLD_TAG)
        .map(|k| k.to_string())
        .collect();
    (to_set, to_remove)
}

/// Whether a replica that left the tag must still be managed: one created no later than the
/// current primary was the primary once, or existed before it became one (a primary-Region
/// change made by anyone, the failover function, the console or the CLI). Such a replica is
/// never deleted by the replicator. An unknown creation date is treated as older (safe).
pub fn predates_primary(primary: &KeyInfo, replica: &KeyInfo) -> bool {
    match (primary.creation_date, replica.creation_date) {
        (Some(p), Some(r)) => r <= p,
        _ => true,
    }
}

/// The digest tag the replica in `region` carries once it holds `mirrored`, the policy of
/// `primary` rewritten for it ([`crate::digest_tag`]).
pub fn digest_tag(primary: &PrimaryState, region: &str, mirrored: &str) -> Tag {
    crate::digest_tag::tag(
        &primary.info.region,
        &primary.policy,
        &primary.tags,
        primary.primary_history().contains(region),
        mirrored,
    )
}

#[cfg(test)]
mod tests;
