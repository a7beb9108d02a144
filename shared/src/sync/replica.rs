//! Bringing one replica in line with its primary: create it, or observe it, plan and apply
//! the writes, and settle alias names that another key holds.

use super::{failed, Syncer};
use crate::desired::{
    desired_replica, plan_replica, DesiredReplica, ObservedReplica, PrimaryState,
    PRIMARY_HISTORY_TAG,
};
use crate::explain::explain;
use crate::hold::{held_reason, hold};
use crate::marker::DELETION_MARKER_TAG;
use crate::model::{KeyInfo, KeyState, MultiRegionKeyType, Tag};
use crate::op::Op;
use crate::policy_diff::policy_diff;
use crate::port::{ErrorKind, KmsError};
use crate::promotion::{newer_policy_at, Held};
use crate::report::{Action, Outcome, RegionReport};
use futures::StreamExt;
use tracing::debug;

/// Alias writes of one replica in flight at once: KMS's CreateAlias and UpdateAlias quota is 5
/// per second per Region (the rate limiter holds every call to it in any case).
const ALIASES_AT_ONCE: usize = 5;

/// Why one write was not made.
pub(super) struct WriteFailure {
    reason: String,
    retryable: bool,
    /// The Region did not answer: its other writes would wait out their timeouts too.
    unreachable: bool,
}

impl From<KmsError> for WriteFailure {
    fn from(e: KmsError) -> WriteFailure {
        WriteFailure {
            reason: explain(&e),
            retryable: e.is_retryable(),
            unreachable: e.kind == ErrorKind::Unreachable,
        }
    }
}

impl Syncer<'_> {
    /// Brings the replica in `target` in line with `primary`: creates it when `exists` is
    /// false, otherwise observes it and makes the writes its plan needs (only plans them, in a
    /// dry run).
    pub(super) async fn sync_region(
        &self,
        primary: &PrimaryState,
        target: &str,
        exists: bool,
        dry_run: bool,
    ) -> Option<RegionReport> {
        let desired = match desired_replica(self.cfg, primary, target) {
            Ok(d) => d,
            Err(e) => {
                return Some(
                    self.sync_without_policy(primary, target, exists, dry_run, e)
                        .await,
                )
            }
        };
        let mut report = RegionReport::new(target, Outcome::InSync);
        report.rewrites = desired.rewrites.clone();
        if !exists && self.create(primary, &desired, dry_run, &mut report).await {
            return Some(report);
        }
        self.converge(primary, &desired, dry_run, &mut report).await;
        Some(report)
    }

    /// Creates the replica, then its aliases. Returns false when it turned out to exist
    /// already, so that the caller converges it; otherwise the report's outcome is set.
    async fn create(
        &self,
        primary: &PrimaryState,
        desired: &DesiredReplica,
        dry_run: bool,
        report: &mut RegionReport,
    ) -> bool {
        let (key_id, target) = (primary.info.key_id.as_str(), desired.region.as_str());
        if desired.policy.is_none() {
            report.notes.push(
                "POLICY_MODE=off: the new replica gets KMS's default key policy, which gives \
                 the whole account (through IAM) full use of the key; set its policy yourself"
                    .into(),
            );
        }
        let spec = desired.replica_spec();
        let mut plan = vec![Action::ReplicateKey(spec.clone())];
        plan.extend(
            desired
                .aliases
                .iter()
                .map(|a| Action::CreateAlias { alias: a.clone() }),
        );
        if dry_run {
            report.outcome = Outcome::Planned;
            report.actions = plan;
            return true;
        }
        match self
            .kms
            .replicate_key(&primary.info.region, key_id, target, &spec)
            .await
        {
            Ok(_) => {
                report.outcome = match self.apply(target, key_id, plan, false, report).await {
                    None => Outcome::Created,
                    Some(f) => f,
                };
                // KMS copies no imported material: the new replica will be PendingImport
                // (it is Creating now), and no event will come when it is. Say so at once.
                if primary.info.imported_material {
                    report
                        .conflicts
                        .push(super::material::pending_import(target, key_id));
                }
                true
            }
            // Another sync got there first, or the primary's replica list lagged: converge
            // the replica that exists.
            Err(e) if e.kind == ErrorKind::AlreadyExists => {
                debug!(
                    region = target,
                    key_id, "replica already exists; converging it"
                );
                false
            }
            Err(e) => {
                report.outcome = super::refused::replicate_failed(&e, target, &self.cfg.tag_key);
                true
            }
        }
    }

    /// Observes the replica that exists, plans the writes that bring it in line and makes
    /// them. Sets the report's outcome.
    pub(super) async fn converge(
        &self,
        primary: &PrimaryState,
        desired: &DesiredReplica,
        dry_run: bool,
        report: &mut RegionReport,
    ) {
        let (key_id, target) = (primary.info.key_id.as_str(), desired.region.as_str());
        let (info, observed) = match self.observe(target, key_id).await {
            Ok(seen) => seen,
            Err(e) => {
                report.outcome = failed(&e);
                return;
            }
        };
        if let Some(value) = hold(&observed.tags) {
            report.outcome = Outcome::skipped(held_reason(target, value, false));
            report.held = true;
            return;
        }
        // A `Creating` replica can be managed already; only `Updating` refuses management calls.
        if observed.state == KeyState::Updating {
            report.outcome = Outcome::failed(
                format!(
                    "the replica in {target} is {}; retry shortly",
                    observed.state
                ),
                true,
            );
            return;
        }
        let writes_policy = desired
            .policy
            .as_deref()
            .is_some_and(|p| !crate::policy::same_policy(p, &observed.policy));
        if writes_policy {
            // It held the primary: the primary's history says so, or its own (which may know
            // of a promotion record the primary's tags never recorded).
            let known = primary.primary_history().contains(target)
                || super::history::lists_region(&observed.tags, target);
            let held = if known {
                Held::Known
            } else if self.keep_edited_policies {
                Held::Assumed
            } else {
                Held::No
            };
            let conflict = newer_policy_at(primary, target, &observed, held);
            if let Some(reason) = conflict {
                report.conflicts.push(reason.clone());
                report.outcome = Outcome::skipped(reason);
                // Nothing is written but what only protects: the restore of a deletion the
                // replicator itself scheduled (a Region that held the primary is never
                // deleted), its marker's removal, and the Regions that held the primary, so
                // that the next sync, without the record that proved them, still sees the
                // conflict. (KMS refuses tags on a key pending deletion.)
                let mut writes = protective_writes(desired, &observed);
                let restored = writes
                    .iter()
                    .any(|a| matches!(a, Action::CancelKeyDeletion));
                let taggable = restored || !observed.state.is_pending_deletion();
                if let (Some(history), true) = (history_only(desired, &observed), taggable) {
                    writes.push(history);
                }
                if !dry_run && !writes.is_empty() {
                    if let Some(f) = self.apply(target, key_id, writes, true, report).await {
                        report.notes.push(format!(
                            "the restore or the history tag was not written: {f:?}"
                        ));
                    }
                }
                return;
            }
        }
        let plan = plan_replica(desired, &observed);
        report.conflicts = plan.conflicts;
        if observed.state == KeyState::PendingImport {
            report
                .conflicts
                .push(super::material::pending_import(target, key_id));
        } else if let Some(drift) = super::material::drift(&primary.info, &info) {
            report.conflicts.push(drift);
        }
        report.notes.extend(plan.extra_aliases.iter().map(|a| {
            format!("{a} exists only here (made for this Region, not on the primary); kept")
        }));
        if plan.actions.is_empty() {
            if observed.state.is_pending_deletion() {
                report.outcome = Outcome::skipped(format!(
                    "the replica is {} by someone other than the replicator",
                    observed.state
                ));
            }
            return;
        }
        if let Some(policy) = desired.policy.as_deref() {
            if plan.actions.iter().any(|a| a.op() == Op::PutKeyPolicy) {
                report.policy_diff = policy_diff(&observed.policy, policy);
            }
        }
        if dry_run {
            report.outcome = Outcome::Planned;
            report.actions = plan.actions;
            return;
        }
        report.outcome = match self.apply(target, key_id, plan.actions, true, report).await {
            None if report.actions.is_empty() => Outcome::InSync,
            None => Outcome::Updated,
            Some(f) => f,
        };
    }

    /// Makes the writes in order, then the alias writes concurrently (at most
    /// [`ALIASES_AT_ONCE`], reported in plan order). A failed write does not stop the independent ones after it,
    /// but a failed restore step (CancelKeyDeletion, EnableKey) stops the plan, so that the
    /// deletion marker is removed only after the restore it records. With `existing`, an
    /// alias name is looked up before it is created, so that a name held by another key costs
    /// a read on every later sync rather than a refused write. Returns the failure outcome,
    /// if any write failed.
    pub(super) async fn apply(
        &self,
        region: &str,
        key_id: &str,
        plan: Vec<Action>,
        existing: bool,
        report: &mut RegionReport,
    ) -> Option<Outcome> {
        let mut problems: Vec<WriteFailure> = Vec::new();
        // The aliases depend on nothing but the replica itself and on none of each other:
        // they go out together, after the other writes (a restore comes first).
        let (aliases, plan): (Vec<Action>, Vec<Action>) = plan
            .into_iter()
            .partition(|a| matches!(a, Action::CreateAlias { .. } | Action::UpdateAlias { .. }));
        let mut stopped = false;
        let mut policy_failed = false;
        for action in plan {
            // The digest tag says which policy the replica holds: never without that policy.
            let Some(action) = without_digest_if(policy_failed, action) else {
                continue;
            };
            let is_policy = matches!(action, Action::PutKeyPolicy { .. });
            let restore = matches!(action, Action::CancelKeyDeletion | Action::EnableKey);
            match self.apply_one(region, key_id, action, existing).await {
                Ok(Some(done)) => report.actions.push(done),
                Ok(None) => {}
                Err(problem) => {
                    policy_failed |= is_policy;
                    // A Region that did not answer one write would make each of the others
                    // wait out its own timeout: the retry (or the sweep) makes them later.
                    stopped = restore || problem.unreachable;
                    problems.push(problem);
                    if stopped {
                        break;
                    }
                }
            }
        }
        if !stopped {
            let results: Vec<_> = futures::stream::iter(aliases)
                .map(|action| self.apply_one(region, key_id, action, existing))
                .buffered(ALIASES_AT_ONCE)
                .collect()
                .await;
            for result in results {
                match result {
                    Ok(Some(done)) => report.actions.push(done),
                    Ok(None) => {}
                    Err(problem) => problems.push(problem),
                }
            }
        }
        if problems.is_empty() {
            return None;
        }
        let retryable = problems.iter().any(|p| p.retryable);
        let reason = problems
            .into_iter()
            .map(|p| p.reason)
            .collect::<Vec<_>>()
            .join("; ");
        Some(Outcome::failed(reason, retryable))
    }

    /// One write. `Ok(Some(action))` is the write made, `Ok(None)` means nothing was needed
    /// after all, `Err` is a reason and whether it is retryable.
    async fn apply_one(
        &self,
        region: &str,
        key_id: &str,
        action: Action,
        existing: bool,
    ) -> Result<Option<Action>, WriteFailure> {
        let kms = self.kms;
        let result = match &action {
            // Made by the caller, which needs its result first.
            Action::ReplicateKey(_) => Ok(()),
            Action::CancelKeyDeletion => kms.cancel_key_deletion(region, key_id).await,
            Action::EnableKey => kms.enable_key(region, key_id).await,
            Action::PutKeyPolicy { policy } => kms.put_key_policy(region, key_id, policy).await,
            Action::UpdateKeyDescription { description } => {
                kms.update_key_description(region, key_id, description)
                    .await
            }
            Action::TagResource { tags } => kms.tag_resource(region, key_id, tags).await,
            Action::UntagResource { keys } => kms.untag_resource(region, key_id, keys).await,
            Action::CreateAlias { alias } if existing => {
                match kms.describe_key(region, alias).await {
                    Err(e) if e.kind == ErrorKind::NotFound => {
                        kms.create_alias(region, alias, key_id).await
                    }
                    Err(e) => Err(e),
                    Ok(holder) => return self.claim_alias(region, alias, key_id, holder).await,
                }
            }
            Action::CreateAlias { alias } => match kms.create_alias(region, alias, key_id).await {
                Err(e) if e.kind == ErrorKind::AlreadyExists => {
                    let holder = kms.describe_key(region, alias).await?;
                    return self.claim_alias(region, alias, key_id, holder).await;
                }
                other => other,
            },
            Action::UpdateAlias { alias, .. } => kms.update_alias(region, alias, key_id).await,
            Action::ScheduleKeyDeletion {
                pending_window_days,
            } => {
                kms.schedule_key_deletion(region, key_id, *pending_window_days)
                    .await
            }
        };
        result.map(|()| Some(action)).map_err(WriteFailure::from)
    }

    /// The name is taken in `region`, by `holder`. If it already points at our replica,
    /// nothing is left to do. Otherwise it is a conflict, reported and never taken (I3): the
    /// holder is another team's key, or a replica of another key this replicator manages, and
    /// moving an alias between two managed keys is a person's decision in each Region, not
    /// something one edit at the primary applies everywhere at once. The report says which
    /// and gives the command that moves it.
    async fn claim_alias(
        &self,
        region: &str,
        alias: &str,
        key_id: &str,
        holder: KeyInfo,
    ) -> Result<Option<Action>, WriteFailure> {
        if holder.key_id == key_id {
            return Ok(None);
        }
        let conflict = |detail: &str| {
            Err(WriteFailure {
                reason: format!(
                    "alias conflict: {alias} in {region} belongs to another key ({}), {detail}; \
                     it is left as it is",
                    holder.key_id
                ),
                retryable: false,
                unreachable: false,
            })
        };
        let holder_primary_region = match &holder.multi_region {
            Some(m) if m.key_type == MultiRegionKeyType::Replica => m.primary_region.clone(),
            _ => return conflict("which is not a replica of a managed key"),
        };
        let managed = self
            .kms
            .list_resource_tags(&holder_primary_region, &holder.key_id)
            .await
            .map_err(WriteFailure::from)?
            .iter()
            .any(|t: &Tag| t.key == self.cfg.tag_key && !t.value.trim().is_empty());
        if !managed {
            return conflict("a key this replicator does not manage");
        }
        conflict(&format!(
            "a replica of another managed key: moving an alias between managed keys is left to \
             a person in each Region (aws kms update-alias --region {region} --alias-name \
             {alias} --target-key-id {key_id})"
        ))
    }
}

/// Of the writes that bring `observed` in line, those that only protect: the restore of a
/// deletion the replicator scheduled itself and the removal of its marker.
fn protective_writes(desired: &DesiredReplica, observed: &ObservedReplica) -> Vec<Action> {
    plan_replica(desired, observed)
        .actions
        .into_iter()
        .filter_map(|a| match a {
            Action::CancelKeyDeletion | Action::EnableKey => Some(a),
            Action::UntagResource { keys } => {
                let keys: Vec<String> = keys
                    .into_iter()
                    .filter(|k| k == DELETION_MARKER_TAG)
                    .collect();
                (!keys.is_empty()).then_some(Action::UntagResource { keys })
            }
            _ => None,
        })
        .collect()
}

/// A TagResource of the history tag alone, when the replica lacks Regions the desired history
/// lists (the Regions that held the primary only ever grow).
fn history_only(desired: &DesiredReplica, observed: &ObservedReplica) -> Option<Action> {
    let listed = |tags: &[Tag]| -> std::collections::BTreeSet<String> {
        tags.iter()
            .filter(|t| t.key == PRIMARY_HISTORY_TAG)
            .flat_map(|t| t.value.split_whitespace().map(str::to_string))
            .collect()
    };
    let have = listed(&observed.tags);
    let mut all = have.clone();
    all.extend(listed(&desired.tags));
    (all != have).then(|| Action::TagResource {
        tags: vec![Tag::new(
            PRIMARY_HISTORY_TAG,
            all.into_iter().collect::<Vec<_>>().join(" "),
        )],
    })
}

/// `action` without the policy digest tag when `policy_failed` (`None` when nothing is left).
fn without_digest_if(policy_failed: bool, action: Action) -> Option<Action> {
    match action {
        Action::TagResource { tags } if policy_failed => {
            let tags: Vec<Tag> = tags
                .into_iter()
                .filter(|t| t.key != crate::digest_tag::POLICY_DIGEST_TAG)
                .collect();
            (!tags.is_empty()).then_some(Action::TagResource { tags })
        }
        other => Some(other),
    }
}
