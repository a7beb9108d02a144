//! The pure decisions of a sync: what a replica in a Region should hold, given its primary
//! ([`desired_replica`]), and the minimal writes that get it there from what it holds now
//! ([`plan_replica`]). No I/O: [`crate::sync`] reads the state and applies the plan.

use crate::config::{Config, PolicyMode};
use crate::model::{is_aws_managed_alias, KeyInfo, KeyState, Tag};
use crate::policy::{rewrite_policy, same_policy, PolicyError, Rewrite};
use crate::report::Action;
use std::collections::BTreeMap;
use thiserror::Error;

/// Why no desired state can be derived for a Region.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum DesiredError {
    #[error("cannot mirror the primary's policy: {0}")]
    Policy(#[from] PolicyError),
}

/// What the primary looks like: the 4 reads every sync starts with.
#[derive(Debug, Clone)]
pub struct PrimaryState {
    pub info: KeyInfo,
    pub policy: String,
    pub tags: Vec<Tag>,
    pub aliases: Vec<String>,
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
}

/// What a replica looks like now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedReplica {
    pub state: KeyState,
    pub policy: String,
    pub description: String,
    pub tags: Vec<Tag>,
    pub aliases: Vec<String>,
}

/// The desired state of a replica in `region`, derived from the primary (a pure function).
pub fn desired_replica(
    cfg: &Config,
    primary: &PrimaryState,
    region: &str,
) -> Result<DesiredReplica, DesiredError> {
    let (policy, rewrites) = match cfg.policy_mode {
        PolicyMode::Off => (None, Vec::new()),
        PolicyMode::Verbatim => (Some(primary.policy.clone()), Vec::new()),
        PolicyMode::Rewrite => {
            let (p, r) = rewrite_policy(&primary.policy, &primary.info.region, region)?;
            (Some(p), r)
        }
    };
    let mut tags = primary.tags.clone();
    tags.sort();
    Ok(DesiredReplica {
        region: region.to_string(),
        policy,
        rewrites,
        description: primary.info.description.clone(),
        tags,
        aliases: primary.aliases.clone(),
    })
}

/// The minimal writes that turn `observed` into `desired` (a pure function). Aliases that are
/// missing are created; if the name turns out to be held by another key, `apply` sorts it out.
pub fn plan_replica(desired: &DesiredReplica, observed: &ObservedReplica) -> Vec<Action> {
    let mut plan = Vec::new();
    if observed.state.is_pending_deletion() {
        // CancelKeyDeletion leaves the key Disabled.
        plan.push(Action::CancelKeyDeletion);
        plan.push(Action::EnableKey);
    }
    if let Some(policy) = &desired.policy {
        if !same_policy(policy, &observed.policy) {
            plan.push(Action::PutKeyPolicy {
                policy: policy.clone(),
            });
        }
    }
    if desired.description != observed.description {
        plan.push(Action::UpdateKeyDescription {
            description: desired.description.clone(),
        });
    }
    let have: BTreeMap<&str, &str> = observed
        .tags
        .iter()
        .map(|t| (t.key.as_str(), t.value.as_str()))
        .collect();
    let want: BTreeMap<&str, &str> = desired
        .tags
        .iter()
        .map(|t| (t.key.as_str(), t.value.as_str()))
        .collect();
    let to_set: Vec<Tag> = want
        .iter()
        .filter(|(k, v)| have.get(*k) != Some(*v))
        .map(|(k, v)| Tag::new(*k, *v))
        .collect();
    let to_remove: Vec<String> = have
        .keys()
        .filter(|k| !want.contains_key(*k))
        .map(|k| k.to_string())
        .collect();
    if !to_set.is_empty() {
        plan.push(Action::TagResource { tags: to_set });
    }
    if !to_remove.is_empty() {
        plan.push(Action::UntagResource { keys: to_remove });
    }
    for alias in &desired.aliases {
        if !observed.aliases.contains(alias) {
            plan.push(Action::CreateAlias {
                alias: alias.clone(),
            });
        }
    }
    for alias in &observed.aliases {
        if !desired.aliases.contains(alias) && !is_aws_managed_alias(alias) {
            plan.push(Action::DeleteAlias {
                alias: alias.clone(),
            });
        }
    }
    plan
}
