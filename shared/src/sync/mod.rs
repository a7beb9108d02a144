//! The heart of the replicator: `sync`, level-triggered and idempotent.
//!
//! Events are hints, not instructions. Whatever the trigger, sync reads the primary's state,
//! derives what each target Region should hold, reads what is there, and makes the minimal
//! writes. A second run over the same state makes no write, which is what keeps the system
//! correct under duplicate, reordered or lost events and under its own feedback. After
//! writing, it reads the primary again and repeats (bounded) if the primary changed, so that
//! of two concurrent syncs the one that read an older primary never has the last word.
//!
//! What it never does, whatever the history (docs/safety.md): delete a replica
//! that was ever the primary or that the tag still lists, undo a deletion or a disable that a
//! person made, take an alias from a key it does not manage, or send a policy that widens
//! access or that KMS must refuse.

mod history;
mod in_use;
mod material;
mod partial;
mod refused;
mod removal;
mod replica;

use crate::config::{Config, Consent, DEFAULT_ROLE_PATH};
use crate::consent::{consent_statement, consented, Consented};
use crate::desired::{ObservedReplica, PrimaryState};
use crate::explain::explain;
use crate::model::{is_aws_managed_alias, KeyInfo, MultiRegionKeyType};
use crate::port::{ErrorKind, Kms, KmsError};
use crate::region::select_regions;
use crate::report::{Outcome, RegionReport, SyncReport};
use futures::future::join_all;
use std::collections::HashMap;
use tracing::{debug, warn};

/// How many times one sync goes round when the primary keeps changing under it. Past that
/// the sync fails as retryable, and the Lambda retry (or the next sweep) finishes the work.
pub const MAX_ROUNDS: usize = 3;

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
    held_primary: &'a [String],
    keep_edited_policies: bool,
}

impl<'a> Syncer<'a> {
    pub fn new(kms: &'a dyn Kms, cfg: &'a Config) -> Syncer<'a> {
        Syncer {
            kms,
            cfg,
            aliases: None,
            held_primary: &[],
            keep_edited_policies: false,
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
        if let Some(outcome) = primary_not_ready(&primary) {
            report.outcome = outcome;
            return report;
        }
        match self.read_primary(primary).await {
            Ok(state) => self.sync_rounds(report, state, dry_run).await,
            Err(e) => {
                report.outcome = failed(&e);
                report
            }
        }
    }

    /// Like [`Syncer::sync_described`], for a primary whose policy, tags and aliases the
    /// caller has just read with [`Syncer::read_primary`] (the failover's checks of the new
    /// primary): saves those reads too.
    pub async fn sync_read(&self, requested: &str, state: PrimaryState) -> SyncReport {
        let mut report = SyncReport::key_level(requested, Outcome::InSync);
        report.key_id = Some(state.info.key_id.clone());
        report.primary_region = Some(state.info.region.clone());
        if let Some(outcome) = primary_not_ready(&state.info) {
            report.outcome = outcome;
            return report;
        }
        self.sync_rounds(report, state, false).await
    }

    /// Brings the replica of `primary` in `target` in line with it, whatever the replication
    /// tag says, in one round: the failover function's step before a promotion, so that the
    /// new primary starts from the newest state. `primary` is what [`Syncer::read_primary`]
    /// read.
    pub async fn sync_replica(
        &self,
        primary: &PrimaryState,
        target: &str,
        dry_run: bool,
    ) -> RegionReport {
        self.sync_region(primary, target, true, dry_run)
            .await
            .unwrap_or_else(|| RegionReport::new(target, Outcome::InSync))
    }

    /// The rounds of writes from the primary's `state`, each followed by a read of the primary
    /// again, until it did not change meanwhile (at most [`MAX_ROUNDS`]).
    async fn sync_rounds(
        &self,
        mut report: SyncReport,
        mut state: PrimaryState,
        dry_run: bool,
    ) -> SyncReport {
        let mut merged: Vec<RegionReport> = Vec::new();
        for round in 1..=MAX_ROUNDS {
            let Some(tag_value) = state.replication_tag(&self.cfg.tag_key).map(str::to_string)
            else {
                report.managed = false;
                report.outcome = Outcome::skipped(format!(
                    "no {} tag, or an empty one: the key is not managed, and nothing is \
                     written or deleted",
                    self.cfg.tag_key
                ));
                return report;
            };
            report.managed = true;
            if let Some(value) = crate::hold::hold(&state.tags) {
                report.outcome =
                    Outcome::skipped(crate::hold::held_reason(&state.info.region, value, true));
                return report;
            }
            let consent = match self.consent(&state, &tag_value) {
                Ok(c) => c,
                Err(outcome) => {
                    report.outcome = outcome;
                    return report;
                }
            };
            let regions = self
                .sync_round(&state, &tag_value, consent.as_ref(), dry_run)
                .await;
            let wrote = regions.iter().any(|r| !r.actions.is_empty());
            merge_round(&mut merged, regions);
            if dry_run || !wrote {
                break;
            }
            // I6: the newest state wins. Another sync may have read a newer primary and
            // written before us; if the primary is not what we mirrored, go round again.
            match self.reread_primary(&state).await {
                Ok(None) => break,
                Ok(Some(newer)) if round < MAX_ROUNDS => {
                    debug!(key_id = %newer.info.key_id, round, "the primary changed during sync");
                    state = newer;
                }
                Ok(Some(_)) => {
                    warn!(key_id = %state.info.key_id, "the primary kept changing during sync");
                    report.regions = merged;
                    report.outcome = Outcome::failed(
                        format!(
                            "the primary changed during each of {MAX_ROUNDS} rounds of this \
                             sync; retrying mirrors the newest state"
                        ),
                        true,
                    );
                    return report;
                }
                Err(e) => {
                    report.regions = merged;
                    report.outcome = failed(&e);
                    return report;
                }
            }
        }
        report.outcome = SyncReport::summarise(&merged, dry_run);
        report.regions = merged;
        report
    }

    /// One pass over every Region of the key: the tag's targets, the replicas older than the
    /// primary (kept managed whatever the tag says), and the Regions that left the tag.
    async fn sync_round(
        &self,
        state: &PrimaryState,
        tag_value: &str,
        consent: Option<&Consented>,
        dry_run: bool,
    ) -> Vec<RegionReport> {
        let mut sel = select_regions(tag_value, &state.info.region, &self.cfg.allowed_regions);
        // Consent=key-policy: a Region the key's consent statement does not list is reported,
        // never written to.
        let mut unconsented = Vec::new();
        if let Some(c) = consent {
            sel.targets.retain(|r| {
                let ok = c.allows(r);
                if !ok {
                    unconsented.push(r.clone());
                }
                ok
            });
        }
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
                self.sync_region(state, target, exists, dry_run),
            ));
        }
        for region in &existing {
            // A Region the tag lists but the key's policy does not consent to is still listed:
            // left alone, never removed.
            let listed = sel.targets.contains(region)
                || unconsented.contains(region)
                || sel.rejected.iter().any(|p| p.name() == region);
            if !listed && self.cfg.is_allowed(region) {
                tasks.push(futures::future::Either::Right(
                    self.unlisted_replica(state, region, dry_run),
                ));
            }
        }
        let mut regions: Vec<RegionReport> = join_all(tasks).await.into_iter().flatten().collect();
        for problem in &sel.rejected {
            regions.push(RegionReport::new(
                problem.name(),
                Outcome::skipped(problem.reason()),
            ));
        }
        for region in unconsented {
            let reason = format!(
                "Consent=key-policy: the key's policy does not consent to replication into \
                 {region} (its kms:ReplicateKey statement for the replicator lists other \
                 Regions in kms:ReplicaRegion); add {region} there to replicate it"
            );
            regions.push(RegionReport::new(&region, Outcome::skipped(reason)));
        }
        regions
    }

    /// With `Consent=key-policy`, what the primary's own policy consents to (`Ok(None)` with
    /// `Consent=tag`); a key without consent gets a skipped outcome that shows the statement to
    /// add, and nothing is written.
    fn consent(&self, state: &PrimaryState, tag_value: &str) -> Result<Option<Consented>, Outcome> {
        if self.cfg.consent != Consent::KeyPolicy {
            return Ok(None);
        }
        let path = self
            .cfg
            .ignore_role_path
            .as_deref()
            .unwrap_or(DEFAULT_ROLE_PATH);
        match consented(&state.policy, path) {
            Consented::No => {
                let sel = select_regions(tag_value, &state.info.region, &self.cfg.allowed_regions);
                let regions: Vec<&str> = sel.targets.iter().map(String::as_str).collect();
                Err(Outcome::skipped(format!(
                    "Consent=key-policy: the key's policy does not grant the replicator's roles \
                     kms:ReplicateKey, so the key is not replicated and nothing is written. \
                     Its administrators consent by adding this statement to the primary's \
                     key policy: {}",
                    consent_statement(&self.cfg.ignore_callers, &regions)
                )))
            }
            c => Ok(Some(c)),
        }
    }

    /// DescribeKey, GetKeyPolicy, ListResourceTags and ListAliases of the primary again:
    /// `Some` with the new state when it differs from `seen`.
    async fn reread_primary(&self, seen: &PrimaryState) -> Result<Option<PrimaryState>, KmsError> {
        let info = self
            .kms
            .describe_key(&seen.info.region, &seen.info.key_id)
            .await?;
        if !info.is_primary() {
            // Promoted elsewhere meanwhile: that Region's events and the sweep take over.
            return Ok(None);
        }
        let now = self.read_primary_fresh(info).await?;
        Ok((!now.same_content(seen)).then_some(now))
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
        let mut tags = tags?;
        history::add_to_history(&mut tags, self.held_primary);
        Ok(PrimaryState {
            policy: policy?,
            tags,
            aliases,
            info,
        })
    }

    /// Like [`Syncer::read_primary`], never from the alias index (a snapshot).
    async fn read_primary_fresh(&self, info: KeyInfo) -> Result<PrimaryState, KmsError> {
        Syncer {
            aliases: None,
            ..*self
        }
        .read_primary(info)
        .await
    }

    async fn observe(
        &self,
        region: &str,
        key_id: &str,
    ) -> Result<(KeyInfo, ObservedReplica), KmsError> {
        let (info, policy, tags, aliases) = tokio::join!(
            self.kms.describe_key(region, key_id),
            self.kms.get_key_policy(region, key_id),
            self.kms.list_resource_tags(region, key_id),
            self.key_aliases(region, key_id),
        );
        let info = info?;
        let observed = ObservedReplica {
            state: info.state,
            policy: policy?,
            description: info.description.clone(),
            tags: tags?,
            aliases: aliases?,
            deletion_date: info.deletion_date,
            read_at_ms: crate::marker::now_ms(),
        };
        Ok((info, observed))
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
}

/// Why a sync cannot go on from this primary now, if it cannot.
fn primary_not_ready(primary: &KeyInfo) -> Option<Outcome> {
    if !primary.is_primary() {
        // During UpdatePrimaryRegion, DescribeKey may show both keys as replicas.
        return Some(Outcome::failed(
            format!(
                "{} in {} is not reported as the primary: a primary Region update is in \
                 progress",
                primary.key_id, primary.region
            ),
            true,
        ));
    }
    if primary.state.is_pending_deletion() {
        return Some(Outcome::skipped(format!(
            "the primary is {}",
            primary.state
        )));
    }
    if primary.state.is_transient() {
        return Some(Outcome::failed(
            format!("the primary is {}; retry shortly", primary.state),
            true,
        ));
    }
    None
}

/// Folds one round's Region reports into those of the rounds before: writes accumulate, and
/// the latest round says where each Region stands, except that a Region changed in an
/// earlier round and in sync now is reported as changed.
fn merge_round(merged: &mut Vec<RegionReport>, round: Vec<RegionReport>) {
    for mut r in round {
        match merged.iter_mut().find(|m| m.region == r.region) {
            None => merged.push(r),
            Some(m) => {
                let mut actions = std::mem::take(&mut m.actions);
                actions.append(&mut r.actions);
                if r.outcome == Outcome::InSync
                    && matches!(m.outcome, Outcome::Created | Outcome::Updated)
                {
                    r.outcome = m.outcome.clone();
                } else if r.outcome == Outcome::InSync && !actions.is_empty() {
                    r.outcome = Outcome::Updated;
                }
                if r.policy_diff.is_empty() {
                    r.policy_diff = std::mem::take(&mut m.policy_diff);
                }
                r.actions = actions;
                *m = r;
            }
        }
    }
}
