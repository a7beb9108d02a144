//! The heart of the replicator: `sync`, level-triggered and idempotent.
//!
//! Events are hints, not instructions. Whatever the trigger, sync reads the primary's state,
//! derives what each target Region should hold, reads what is there, and makes the minimal
//! writes. A second run over the same state makes no write, which is what keeps the system
//! correct under duplicate, reordered or lost events and under its own feedback.

use crate::config::{Config, RemovalPolicy};
use crate::desired::{desired_replica, plan_replica, ObservedReplica, PrimaryState};
use crate::model::{is_aws_managed_alias, KeyInfo, KeyState, MultiRegionKeyType};
use crate::policy_diff::policy_diff;
use crate::port::{ErrorKind, Kms, KmsError, ReplicaSpec};
use crate::region::select_regions;
use crate::report::{Action, Outcome, RegionReport, SyncReport};
use futures::future::join_all;
use std::collections::HashMap;
use tracing::{debug, info};

/// A sentence a person can act on, for a KMS error met while syncing.
pub fn explain(e: &KmsError) -> String {
    let detail = format!("{} {}: {}", e.operation, e.code, e.message);
    match (e.kind, e.operation) {
        (ErrorKind::MalformedPolicy, "PutKeyPolicy" | "ReplicateKey") => format!(
            "the primary's key policy would lock the replicator out of the replica in {} \
             (KMS's lockout safety check: the policy must let the replicator's role call \
             PutKeyPolicy); the replicator never bypasses that check, so add its role to the \
             primary's policy ({detail})",
            e.region
        ),
        (ErrorKind::Disabled, "ReplicateKey") => {
            format!("the primary key is disabled; enable it to create replicas ({detail})")
        }
        (ErrorKind::AccessDenied, _) => format!(
            "access denied in {}: the replicator's IAM role or the key policy does not allow \
             {} ({detail})",
            e.region, e.operation
        ),
        (ErrorKind::Unreachable, _) => {
            format!("KMS in {} did not answer ({detail})", e.region)
        }
        (ErrorKind::Throttling, _) => format!("throttled by KMS in {} ({detail})", e.region),
        (ErrorKind::UnsupportedOperation, _) => {
            format!("KMS does not support this for the key ({detail})")
        }
        _ => detail,
    }
}

fn failed(e: &KmsError) -> Outcome {
    Outcome::failed(explain(e), e.is_retryable())
}

/// The aliases of whole Regions, read once (ListAliases without a key): Region -> key id ->
/// alias names. A sweep reads each Region's aliases once instead of once per key and Region.
pub type AliasIndex = HashMap<String, HashMap<String, Vec<String>>>;

/// Builds an [`AliasIndex`] entry from a Region's ListAliases answer.
pub fn index_aliases(entries: Vec<crate::model::AliasEntry>) -> HashMap<String, Vec<String>> {
    let mut by_key: HashMap<String, Vec<String>> = HashMap::new();
    for a in entries {
        if let Some(k) = a.target_key_id {
            by_key.entry(k).or_default().push(a.name);
        }
    }
    by_key
}

pub struct Syncer<'a> {
    kms: &'a dyn Kms,
    cfg: &'a Config,
    aliases: Option<&'a AliasIndex>,
}

impl<'a> Syncer<'a> {
    pub fn new(kms: &'a dyn Kms, cfg: &'a Config) -> Syncer<'a> {
        Syncer {
            kms,
            cfg,
            aliases: None,
        }
    }

    /// Takes the aliases of the Regions in `index` from it rather than asking KMS per key.
    /// The index is a snapshot: use it to find keys in sync cheaply, and sync without it
    /// before writing.
    pub fn with_alias_index(mut self, index: &'a AliasIndex) -> Syncer<'a> {
        self.aliases = Some(index);
        self
    }

    /// Syncs the multi-Region key that `key` (id, ARN or alias) names in `region`: the key
    /// itself when it is a primary, its primary when it is a replica.
    pub async fn sync(&self, region: &str, key: &str, dry_run: bool) -> SyncReport {
        let mut report = self.sync_inner(region, key, dry_run).await;
        report.dry_run = dry_run;
        report
    }

    async fn sync_inner(&self, region: &str, key: &str, dry_run: bool) -> SyncReport {
        // Multi-Region key ids start with "mrk-": any other id is a single-Region key, known
        // without a call (alias names still need DescribeKey).
        let id = crate::arn::key_id_of(key);
        if !id.starts_with("mrk-") && !id.starts_with("alias/") {
            return SyncReport::key_level(
                key,
                Outcome::skipped(
                    "single-Region key: KMS can only replicate multi-Region keys (ids start \
                     with mrk-), and a key cannot be converted",
                ),
            );
        }
        let info = match self.kms.describe_key(region, key).await {
            Ok(i) => i,
            Err(e) if e.kind == ErrorKind::NotFound => {
                return SyncReport::key_level(
                    key,
                    Outcome::skipped(format!("key {key} not found in {region}")),
                )
            }
            Err(e) => return SyncReport::key_level(key, failed(&e)),
        };
        self.sync_info(key, info, dry_run).await
    }

    /// Like [`Syncer::sync`], for a key the caller has just described: saves the DescribeKey
    /// that sync starts with. `requested` is how the caller named the key.
    pub async fn sync_described(
        &self,
        requested: &str,
        info: KeyInfo,
        dry_run: bool,
    ) -> SyncReport {
        let mut report = self.sync_info(requested, info, dry_run).await;
        report.dry_run = dry_run;
        report
    }

    async fn sync_info(&self, key: &str, info: KeyInfo, dry_run: bool) -> SyncReport {
        let Some(mr) = info.multi_region.clone() else {
            let mut r = SyncReport::key_level(
                key,
                Outcome::skipped(
                    "single-Region key: KMS can only replicate multi-Region keys, and a key \
                     cannot be converted",
                ),
            );
            r.key_id = Some(info.key_id);
            r.primary_region = Some(info.region);
            return r;
        };
        let primary = if mr.key_type == MultiRegionKeyType::Primary {
            info
        } else {
            match self
                .kms
                .describe_key(&mr.primary_region, &info.key_id)
                .await
            {
                Ok(p) => p,
                Err(e) => return SyncReport::key_level(key, failed(&e)),
            }
        };
        let mut report = SyncReport::key_level(key, Outcome::InSync);
        report.key_id = Some(primary.key_id.clone());
        report.primary_region = Some(primary.region.clone());
        if !primary.is_primary() {
            // During UpdatePrimaryRegion, DescribeKey may show both keys as replicas.
            report.outcome = Outcome::failed(
                format!(
                    "{} in {} is not reported as the primary: a primary Region update is in \
                     progress",
                    primary.key_id, primary.region
                ),
                true,
            );
            return report;
        }
        if primary.state.is_pending_deletion() {
            report.outcome = Outcome::skipped(format!("the primary is {}", primary.state));
            return report;
        }
        if primary.state.is_transient() {
            report.outcome = Outcome::failed(
                format!("the primary is {}; retry shortly", primary.state),
                true,
            );
            return report;
        }
        let state = match self.read_primary(primary).await {
            Ok(s) => s,
            Err(e) => {
                report.outcome = failed(&e);
                return report;
            }
        };
        let tag_value = state
            .tags
            .iter()
            .find(|t| t.key == self.cfg.tag_key)
            .map(|t| t.value.clone());
        report.managed = tag_value.is_some();
        if tag_value.is_none() && self.cfg.removal == RemovalPolicy::Retain {
            report.outcome = Outcome::skipped(format!(
                "no {} tag: the key is not managed",
                self.cfg.tag_key
            ));
            return report;
        }
        let sel = select_regions(
            tag_value.as_deref().unwrap_or(""),
            &state.info.region,
            &self.cfg.allowed_regions,
        );
        let existing: Vec<String> = state
            .info
            .multi_region
            .as_ref()
            .map(|m| m.replica_regions.clone())
            .unwrap_or_default();

        let mut tasks = Vec::new();
        for target in &sel.targets {
            let exists = existing.contains(target);
            tasks.push(futures::future::Either::Left(
                self.sync_region(&state, target, exists, dry_run),
            ));
        }
        for region in &existing {
            let listed =
                sel.targets.contains(region) || sel.rejected.iter().any(|p| p.name() == region);
            if listed {
                continue;
            }
            if let RemovalPolicy::ScheduleDeletion {
                pending_window_days,
            } = self.cfg.removal
            {
                if self.cfg.is_allowed(region) {
                    tasks.push(futures::future::Either::Right(self.remove_replica(
                        &state,
                        region,
                        pending_window_days,
                        dry_run,
                    )));
                }
            }
        }
        let mut regions: Vec<RegionReport> = join_all(tasks).await.into_iter().flatten().collect();
        for problem in &sel.rejected {
            regions.push(RegionReport::new(
                problem.name(),
                Outcome::skipped(problem.reason()),
            ));
        }
        report.outcome = SyncReport::summarise(&regions, dry_run);
        report.regions = regions;
        report
    }

    /// The four reads every sync starts with: the primary's policy, tags and aliases, beside the
    /// DescribeKey answer the caller already has.
    pub async fn read_primary(&self, info: KeyInfo) -> Result<PrimaryState, KmsError> {
        let (region, id) = (info.region.as_str(), info.key_id.as_str());
        let (policy, tags, aliases) = tokio::join!(
            self.kms.get_key_policy(region, id),
            self.kms.list_resource_tags(region, id),
            self.key_aliases(region, id),
        );
        let aliases = aliases?
            .into_iter()
            .filter(|n| !is_aws_managed_alias(n))
            .collect();
        Ok(PrimaryState {
            policy: policy?,
            tags: tags?,
            aliases,
            info,
        })
    }

    async fn observe(&self, region: &str, key_id: &str) -> Result<ObservedReplica, KmsError> {
        let (info, policy, tags, aliases) = tokio::join!(
            self.kms.describe_key(region, key_id),
            self.kms.get_key_policy(region, key_id),
            self.kms.list_resource_tags(region, key_id),
            self.key_aliases(region, key_id),
        );
        let info = info?;
        Ok(ObservedReplica {
            state: info.state,
            policy: policy?,
            description: info.description,
            tags: tags?,
            aliases: aliases?,
        })
    }

    /// The alias names of one key in one Region: from the alias index when it covers the
    /// Region, from ListAliases otherwise.
    async fn key_aliases(&self, region: &str, key_id: &str) -> Result<Vec<String>, KmsError> {
        if let Some(by_key) = self.aliases.and_then(|index| index.get(region)) {
            return Ok(by_key.get(key_id).cloned().unwrap_or_default());
        }
        Ok(self
            .kms
            .list_aliases(region, Some(key_id))
            .await?
            .into_iter()
            .map(|a| a.name)
            .collect())
    }

    async fn sync_region(
        &self,
        primary: &PrimaryState,
        target: &str,
        exists: bool,
        dry_run: bool,
    ) -> Option<RegionReport> {
        let key_id = primary.info.key_id.as_str();
        let desired = match desired_replica(self.cfg, primary, target) {
            Ok(d) => d,
            Err(e) => {
                return Some(RegionReport::new(
                    target,
                    Outcome::failed(e.to_string(), false),
                ))
            }
        };
        let mut report = RegionReport::new(target, Outcome::InSync);
        report.rewrites = desired.rewrites.clone();
        if !exists {
            let mut plan = vec![Action::ReplicateKey {
                policy: desired.policy.clone(),
                description: desired.description.clone(),
                tags: desired.tags.clone(),
            }];
            plan.extend(
                desired
                    .aliases
                    .iter()
                    .map(|a| Action::CreateAlias { alias: a.clone() }),
            );
            if dry_run {
                report.outcome = Outcome::Planned;
                report.actions = plan;
                return Some(report);
            }
            let spec = ReplicaSpec {
                policy: desired.policy.clone(),
                description: desired.description.clone(),
                tags: desired.tags.clone(),
            };
            match self
                .kms
                .replicate_key(&primary.info.region, key_id, target, &spec)
                .await
            {
                Ok(_) => {
                    let problems = self.apply(target, key_id, primary, plan, &mut report).await;
                    report.outcome = match problems {
                        None => Outcome::Created,
                        Some(f) => f,
                    };
                    return Some(report);
                }
                // Another sync got there first, or the primary's replica list lagged: converge
                // the replica that exists.
                Err(e) if e.kind == ErrorKind::AlreadyExists => {
                    debug!(
                        region = target,
                        key_id, "replica already exists; converging it"
                    );
                }
                Err(e) => {
                    report.outcome = failed(&e);
                    return Some(report);
                }
            }
        }
        let observed = match self.observe(target, key_id).await {
            Ok(o) => o,
            Err(e) => {
                report.outcome = failed(&e);
                return Some(report);
            }
        };
        // A `Creating` replica can be managed already; only `Updating` refuses management calls.
        if observed.state == KeyState::Updating {
            report.outcome = Outcome::failed(
                format!(
                    "the replica in {target} is {}; retry shortly",
                    observed.state
                ),
                true,
            );
            return Some(report);
        }
        let plan = plan_replica(&desired, &observed);
        if plan.is_empty() {
            return Some(report);
        }
        if let Some(policy) = desired.policy.as_deref() {
            if plan.iter().any(|a| a.op() == "PutKeyPolicy") {
                report.policy_diff = policy_diff(&observed.policy, policy);
            }
        }
        if dry_run {
            report.outcome = Outcome::Planned;
            report.actions = plan;
            return Some(report);
        }
        report.outcome = match self.apply(target, key_id, primary, plan, &mut report).await {
            None if report.actions.is_empty() => Outcome::InSync,
            None => Outcome::Updated,
            Some(f) => f,
        };
        Some(report)
    }

    /// Makes the writes in order. A failed write does not stop the independent ones after it.
    /// Returns the failure outcome, if any write failed.
    async fn apply(
        &self,
        region: &str,
        key_id: &str,
        primary: &PrimaryState,
        plan: Vec<Action>,
        report: &mut RegionReport,
    ) -> Option<Outcome> {
        let mut problems: Vec<(String, bool)> = Vec::new();
        for action in plan {
            match self.apply_one(region, key_id, primary, action).await {
                Ok(Some(done)) => report.actions.push(done),
                Ok(None) => {}
                Err(problem) => problems.push(problem),
            }
        }
        if problems.is_empty() {
            return None;
        }
        let retryable = problems.iter().any(|(_, r)| *r);
        let reason = problems
            .into_iter()
            .map(|(p, _)| p)
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
        primary: &PrimaryState,
        action: Action,
    ) -> Result<Option<Action>, (String, bool)> {
        let kms = self.kms;
        let result = match &action {
            // Made by the caller, which needs its result first.
            Action::ReplicateKey { .. } => Ok(()),
            Action::CancelKeyDeletion => kms.cancel_key_deletion(region, key_id).await,
            Action::EnableKey => kms.enable_key(region, key_id).await,
            Action::PutKeyPolicy { policy } => kms.put_key_policy(region, key_id, policy).await,
            Action::UpdateKeyDescription { description } => {
                kms.update_key_description(region, key_id, description)
                    .await
            }
            Action::TagResource { tags } => kms.tag_resource(region, key_id, tags).await,
            Action::UntagResource { keys } => kms.untag_resource(region, key_id, keys).await,
            Action::CreateAlias { alias } => match kms.create_alias(region, alias, key_id).await {
                Err(e) if e.kind == ErrorKind::AlreadyExists => {
                    return self.claim_alias(region, alias, key_id, primary).await;
                }
                other => other,
            },
            Action::UpdateAlias { alias, .. } => kms.update_alias(region, alias, key_id).await,
            Action::DeleteAlias { alias } => kms.delete_alias(region, alias).await,
            Action::ScheduleKeyDeletion {
                pending_window_days,
            } => {
                kms.schedule_key_deletion(region, key_id, *pending_window_days)
                    .await
            }
        };
        result
            .map(|()| Some(action))
            .map_err(|e| (explain(&e), e.is_retryable()))
    }

    /// CreateAlias found the name taken in `region`. If it already points at our replica,
    /// nothing is left to do. If it points at a replica of another key whose primary lives in
    /// the same Region as ours, the alias moved on the primary side: re-point it. Anything
    /// else is a conflict with an unrelated key, reported and never stolen.
    async fn claim_alias(
        &self,
        region: &str,
        alias: &str,
        key_id: &str,
        primary: &PrimaryState,
    ) -> Result<Option<Action>, (String, bool)> {
        let holder = self
            .kms
            .describe_key(region, alias)
            .await
            .map_err(|e| (explain(&e), e.is_retryable()))?;
        if holder.key_id == key_id {
            return Ok(None);
        }
        let moved = matches!(&holder.multi_region, Some(m)
            if m.key_type == MultiRegionKeyType::Replica && m.primary_region == primary.info.region);
        if !moved {
            return Err((
                format!(
                    "alias conflict: {alias} in {region} belongs to an unrelated key ({}); it \
                     is left as it is",
                    holder.key_id
                ),
                false,
            ));
        }
        self.kms
            .update_alias(region, alias, key_id)
            .await
            .map_err(|e| (explain(&e), e.is_retryable()))?;
        Ok(Some(Action::UpdateAlias {
            alias: alias.to_string(),
            from_key: holder.key_id,
        }))
    }

    /// A replica whose Region left the tag, under `RemovalPolicy=ScheduleDeletion`. Only
    /// replicas that carry the replication tag (made or adopted by the replicator) are deleted.
    async fn remove_replica(
        &self,
        primary: &PrimaryState,
        region: &str,
        pending_window_days: i32,
        dry_run: bool,
    ) -> Option<RegionReport> {
        let key_id = primary.info.key_id.as_str();
        let (info, tags) = tokio::join!(
            self.kms.describe_key(region, key_id),
            self.kms.list_resource_tags(region, key_id)
        );
        let (info, tags) = match (info, tags) {
            (Ok(i), Ok(t)) => (i, t),
            (Err(e), _) | (_, Err(e)) => {
                return Some(RegionReport::new(region, failed(&e)));
            }
        };
        if info.state.is_pending_deletion() || !tags.iter().any(|t| t.key == self.cfg.tag_key) {
            return None;
        }
        let action = Action::ScheduleKeyDeletion {
            pending_window_days,
        };
        let mut report = RegionReport::new(region, Outcome::Planned);
        if dry_run {
            report.actions.push(action);
            return Some(report);
        }
        info!(
            region,
            key_id, "scheduling deletion of a replica whose Region left the tag"
        );
        report.outcome = match self
            .apply(region, key_id, primary, vec![action], &mut report)
            .await
        {
            None => Outcome::Updated,
            Some(f) => f,
        };
        Some(report)
    }
}
