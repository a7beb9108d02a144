//! The procedure for one key, as its steps: the checks before the promotion, the replication
//! tag's update, the promotion itself, the wait for the new primary, and the checks after it
//! (`post_checks`).
//! Each step adds its checks to the key's report; a step that ends the procedure says so by
//! returning `None` (or `false`) with the report's outcome already set.

use crate::report::{
    explain, is_outage, millis, plural, Cause, Check, CheckName, KeyOutcome, KeyReport,
};
use crate::request::Promotion;
use crate::settings::poll_delays;
use crate::Failover;
use kms_replicator::desired::{PrimaryState, PRIMARY_HISTORY_TAG};
use kms_replicator::model::{KeyInfo, KeyState, MultiRegionKeyType, Tag};
use kms_replicator::port::{ErrorKind, KmsError};
use kms_replicator::Syncer;
use std::time::Duration;
use tokio::time::Instant;
use tracing::info;

/// The key's role as DescribeKey reports it, for a person.
fn key_type(k: &KeyInfo) -> &'static str {
    match k.multi_region.as_ref().map(|m| m.key_type) {
        Some(MultiRegionKeyType::Primary) => "PRIMARY",
        Some(MultiRegionKeyType::Replica) => "REPLICA",
        None => "single-Region",
    }
}

/// The replication tag's value with `region` added, or `None` when it already lists it.
/// Before a promotion the old primary's Region is added, so that after it the new primary's
/// tag still lists every Region the key lives in: otherwise sync would stop managing the old
/// primary, or schedule its deletion under `RemovalPolicy=ScheduleDeletion`. A primary's own
/// Region in its tag is ignored, so the value is right before and after the promotion.
fn tag_value_with(value: &str, region: &str) -> Option<String> {
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
    /// Checks, promotes, waits and checks again, for one key found in some Region.
    /// `unanswered` are the Regions that did not answer while the key was looked up: they are
    /// not asked again, since each attempt costs the SDK's retries.
    pub(crate) async fn fail_over(
        &self,
        requested: &str,
        found: KeyInfo,
        promotion: &Promotion,
        unanswered: &[KmsError],
    ) -> KeyReport {
        let started = Instant::now();
        let mut r = KeyReport::new(requested);
        self.procedure(&mut r, found, promotion, unanswered).await;
        r.duration_ms = millis(started.elapsed());
        let failed: Vec<&str> = r
            .checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.name.as_str())
            .collect();
        info!(key_id = r.key_id.as_deref().unwrap_or(requested),
              before = r.primary_region_before.as_deref().unwrap_or(""),
              after = r.primary_region_after.as_deref().unwrap_or("unknown"),
              outcome = r.outcome.name(), detail = ?r.outcome, failed_checks = ?failed,
              duration_ms = r.duration_ms, "key failover outcome");
        r
    }

    /// The steps, in order; each one that ends the procedure has set the report's outcome.
    async fn procedure(
        &self,
        r: &mut KeyReport,
        found: KeyInfo,
        promotion: &Promotion,
        unanswered: &[KmsError],
    ) {
        let to = promotion.to.as_str();
        let Some(primary) = self.pre_checks(r, found, to, unanswered).await else {
            return;
        };
        let (p, id) = (primary.region.clone(), primary.key_id.clone());
        self.check_key_use(r, &p, &id, to).await;
        let Some(old) = self.read_old_primary(r, primary, to).await else {
            return;
        };
        if !self.catch_up(r, &old, to, promotion).await {
            return stop(r);
        }
        if !self.retag(r, &old, to, promotion).await {
            return stop(r);
        }
        if promotion.dry_run {
            r.outcome = KeyOutcome::DryRunOk;
            return;
        }
        if !self.promote(r, &old, to).await {
            return stop(r);
        }
        let Some(new) = self
            .wait_for_new_primary(r, &old, to, promotion.deadline)
            .await
        else {
            return;
        };
        self.post_checks(r, &old, new, promotion.deadline).await;
    }

    /// Before: the key is multi-Region, its primary answers in its own Region, is the primary
    /// and Enabled, and the target Region holds an Enabled replica. Returns the primary's
    /// DescribeKey answer when every check passed.
    async fn pre_checks(
        &self,
        r: &mut KeyReport,
        found: KeyInfo,
        to: &str,
        unanswered: &[KmsError],
    ) -> Option<KeyInfo> {
        let id = found.key_id.clone();
        r.key_id = Some(id.clone());
        let Some(mr) = found.multi_region.clone() else {
            r.primary_region_before = Some(found.region.clone());
            r.primary_region_after = Some(found.region.clone());
            r.checks.push(Check::fail(
                CheckName::MultiRegion,
                format!(
                    "{} is a single-Region key: it has no replicas, and a single-Region key \
                     cannot become multi-Region. Nothing was changed.",
                    found.arn
                ),
                Cause::NotMultiRegion,
            ));
            stop(r);
            return None;
        };
        r.checks.push(Check::pass(
            CheckName::MultiRegion,
            format!("{id} is a multi-Region key"),
        ));
        let p = mr.primary_region.clone();
        r.primary_region_before = Some(p.clone());
        r.primary_region_after = Some(p.clone());

        let primary = self.check_primary(r, &p, &id, to, unanswered).await;
        if r.outcome == KeyOutcome::AlreadyPrimary {
            return None;
        }
        self.check_replica(r, &p, &id, to).await;
        let primary = primary.filter(|_| r.blocking_failure().is_none());
        if primary.is_none() {
            stop(r);
        }
        primary
    }

    /// The primary, in its own Region `p`. Sets the outcome when the primary is already in
    /// the target Region.
    async fn check_primary(
        &self,
        r: &mut KeyReport,
        p: &str,
        id: &str,
        to: &str,
        unanswered: &[KmsError],
    ) -> Option<KeyInfo> {
        let described = match unanswered.iter().find(|e| e.region == p) {
            Some(e) => Err(e.clone()),
            None => self.kms.describe_key(p, id).await,
        };
        let k = match described {
            Ok(k) => {
                r.checks.push(Check::pass(
                    CheckName::PrimaryRegionAnswers,
                    format!("KMS in {p} answered"),
                ));
                k
            }
            Err(e) => {
                r.checks.push(Check::fail(
                    CheckName::PrimaryRegionAnswers,
                    explain(&e, p, to),
                    Cause::of(&e),
                ));
                return None;
            }
        };
        if !k.is_primary() {
            r.checks.push(Check::fail(
                CheckName::IsPrimary,
                format!(
                    "the key in {p} is reported as {} and {}, not as the primary: a primary \
                     Region update is probably in progress. Describe the key in a few \
                     seconds and run this again. Nothing was changed.",
                    key_type(&k),
                    k.state
                ),
                Cause::NotPrimary,
            ));
        } else if p == to {
            r.checks.push(Check::pass(
                CheckName::IsPrimary,
                format!("the primary is already in {to}"),
            ));
            r.outcome = KeyOutcome::AlreadyPrimary;
        } else {
            r.checks.push(Check::pass(
                CheckName::IsPrimary,
                format!("the key in {p} is the primary"),
            ));
            r.checks.push(if k.state == KeyState::Enabled {
                Check::pass(CheckName::PrimaryEnabled, "Enabled")
            } else {
                Check::fail(
                    CheckName::PrimaryEnabled,
                    format!(
                        "the primary in {p} is {}: UpdatePrimaryRegion needs both keys \
                         Enabled. Nothing was changed.",
                        k.state
                    ),
                    Cause::KeyState,
                )
            });
        }
        Some(k)
    }

    /// The replica, in the target Region.
    async fn check_replica(&self, r: &mut KeyReport, p: &str, id: &str, to: &str) {
        match self.kms.describe_key(to, id).await {
            Ok(k) => {
                r.checks.push(Check::pass(
                    CheckName::ReplicaInTarget,
                    format!("{} is a {} of the key", k.arn, key_type(&k)),
                ));
                r.checks.push(if k.state == KeyState::Enabled {
                    Check::pass(
                        CheckName::ReplicaEnabled,
                        format!("Enabled: it serves cryptographic requests in {to}"),
                    )
                } else {
                    Check::fail(
                        CheckName::ReplicaEnabled,
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
                CheckName::ReplicaInTarget,
                format!(
                    "no replica of {id} in {to}: UpdatePrimaryRegion promotes an existing \
                     replica and never creates one. Add {to} to the key's {} tag first. \
                     Nothing was changed.",
                    self.config.tag_key
                ),
                Cause::NoReplica,
            )),
            Err(e) => r.checks.push(Check::fail(
                CheckName::ReplicaInTarget,
                explain(&e, p, to),
                Cause::of(&e),
            )),
        }
    }

    /// Before: what the checks after the promotion compare with.
    async fn read_old_primary(
        &self,
        r: &mut KeyReport,
        primary: KeyInfo,
        to: &str,
    ) -> Option<PrimaryState> {
        let p = primary.region.clone();
        match Syncer::new(self.kms, self.config)
            .read_primary(primary)
            .await
        {
            Ok(s) => {
                r.checks.push(Check::pass(
                    CheckName::PrimarySettingsRead,
                    format!(
                        "policy, {} tags and {} aliases read in {p}",
                        s.tags.len(),
                        s.aliases.len()
                    ),
                ));
                Some(s)
            }
            Err(e) => {
                r.checks.push(Check::fail(
                    CheckName::PrimarySettingsRead,
                    explain(&e, &p, to),
                    Cause::of(&e),
                ));
                stop(r);
                None
            }
        }
    }

    /// The new primary's replication tag must list the old primary's Region, or sync from
    /// the new primary would stop managing it (or schedule its deletion). The tag is set on
    /// both keys before the promotion: a primary's own Region in its tag is ignored, so the
    /// value is right on both sides of it. Returns false when the promotion must not go on.
    async fn retag(
        &self,
        r: &mut KeyReport,
        old: &PrimaryState,
        to: &str,
        promotion: &Promotion,
    ) -> bool {
        let dry_run = promotion.dry_run;
        let tag_key = &self.config.tag_key;
        let (p, id) = (old.info.region.as_str(), old.info.key_id.as_str());
        let Some(value) = old
            .tags
            .iter()
            .find(|t| &t.key == tag_key)
            .map(|t| t.value.clone())
        else {
            if !promotion.include_unmanaged {
                r.checks.push(Check::fail(
                    CheckName::ReplicationTag,
                    format!(
                        "no {tag_key} tag: this replicator does not manage the key, so the \
                         failover function leaves it alone. To promote it anyway, send the same \
                         request with \"includeUnmanaged\": true. Nothing was changed."
                    ),
                    Cause::NotManaged,
                ));
                return false;
            }
            r.checks.push(Check::pass(
                CheckName::ReplicationTag,
                format!("no {tag_key} tag: the key is not managed by the replicator (promoted on request)"),
            ));
            return true;
        };
        // The history tag records that the key in the old primary's Region held the primary,
        // so that no later sync deletes it, whatever happens to the replication tag.
        let history = old.primary_history_value();
        let mut tags = vec![Tag::new(PRIMARY_HISTORY_TAG, history.clone())];
        let new_value = tag_value_with(&value, p);
        if let Some(v) = &new_value {
            tags.push(Tag::new(tag_key.clone(), v.clone()));
        }
        let what = match &new_value {
            Some(v) => format!("{tag_key} '{v}' and {PRIMARY_HISTORY_TAG} '{history}'"),
            None => format!("{PRIMARY_HISTORY_TAG} '{history}' ('{value}' lists {p} already)"),
        };
        if dry_run {
            r.checks.push(Check::pass(
                CheckName::ReplicationTag,
                format!(
                    "would set {what} on the key in {p} and in {to} before the promotion, so \
                     that {p} stays a managed replica Region after it"
                ),
            ));
            return true;
        }
        for region in [p, to] {
            if let Err(e) = self.kms.tag_resource(region, id, &tags).await {
                r.checks.push(Check::fail(
                    CheckName::ReplicationTag,
                    format!(
                        "could not set {what} in {region} ({e}); without it the new primary \
                         could stop managing {p}. Nothing was promoted."
                    ),
                    Cause::TagUpdate,
                ));
                return false;
            }
        }
        r.checks.push(Check::pass(
            CheckName::ReplicationTag,
            format!(
                "set {what} on the key in {p} and in {to}, so that {p} stays a managed \
                 replica Region after the promotion"
            ),
        ));
        true
    }

    /// Polls DescribeKey in `to` with backoff until the key is PRIMARY and Enabled there.
    /// Returns how long it took, how many polls and the last answer, or what was last seen at
    /// the deadline.
    async fn wait_for_primary(
        &self,
        to: &str,
        id: &str,
        invocation_deadline: Option<Instant>,
    ) -> Result<(Duration, usize, KeyInfo), (String, Duration, bool)> {
        let started = Instant::now();
        // FAILOVER_WAIT_SECONDS, but never past the invocation's deadline less half the
        // margin: the report must still go out.
        let own = started + self.settings.wait;
        let deadline = invocation_deadline
            .map(|d| {
                d.checked_sub(self.settings.deadline_margin / 2)
                    .unwrap_or(d)
            })
            .map_or(own, |d| d.min(own));
        let cut_short = deadline < own;
        let mut delays = poll_delays(self.settings.first_poll, self.settings.max_poll);
        let mut polls = 0;
        loop {
            polls += 1;
            let last = match tokio::time::timeout_at(deadline, self.kms.describe_key(to, id)).await
            {
                Ok(Ok(k)) if k.is_primary() && k.state == KeyState::Enabled => {
                    return Ok((started.elapsed(), polls, k))
                }
                Ok(Ok(k)) => format!("{} and {}", key_type(&k), k.state),
                Ok(Err(e)) => format!("DescribeKey failed: {e}"),
                Err(_) => "DescribeKey did not answer".to_string(),
            };
            let now = Instant::now();
            if now >= deadline {
                return Err((last, started.elapsed(), cut_short));
            }
            let pause = delays.next().unwrap_or(self.settings.max_poll);
            tokio::time::sleep(pause.min(deadline - now)).await;
        }
    }

    /// The promotion, in the primary's Region. Returns false when it was refused.
    async fn promote(&self, r: &mut KeyReport, old: &PrimaryState, to: &str) -> bool {
        let (p, id) = (old.info.region.as_str(), old.info.key_id.as_str());
        match self.kms.update_primary_region(p, id, to).await {
            Ok(()) => r.checks.push(Check::pass(
                CheckName::UpdatePrimaryRegion,
                format!("UpdatePrimaryRegion accepted in {p}"),
            )),
            Err(e) => {
                // No answer does not prove the request was lost: look at the target.
                let under_way = is_outage(&e)
                    && matches!(self.kms.describe_key(to, id).await,
                                Ok(k) if k.state == KeyState::Updating || k.is_primary());
                if !under_way {
                    r.checks.push(Check::fail(
                        CheckName::UpdatePrimaryRegion,
                        explain(&e, p, to),
                        Cause::of(&e),
                    ));
                    return false;
                }
                r.checks.push(Check::pass(
                    CheckName::UpdatePrimaryRegion,
                    format!("no answer from KMS in {p} ({e}), but {to} shows the update under way"),
                ));
            }
        }
        true
    }

    /// The wait for `to` to report the key as PRIMARY and Enabled. Returns its DescribeKey
    /// answer, or `None`, with the outcome set, when the wait ended first.
    async fn wait_for_new_primary(
        &self,
        r: &mut KeyReport,
        old: &PrimaryState,
        to: &str,
        invocation_deadline: Option<Instant>,
    ) -> Option<KeyInfo> {
        let (p, id) = (old.info.region.as_str(), old.info.key_id.as_str());
        match self.wait_for_primary(to, id, invocation_deadline).await {
            Ok((waited, polls, new)) => {
                r.checks.push(Check::pass(
                    CheckName::NewPrimaryReported,
                    format!(
                        "{to} reports the key as PRIMARY and Enabled after {} ms ({polls} \
                         DescribeKey {})",
                        millis(waited),
                        plural(polls, "call", "calls")
                    ),
                ));
                r.primary_region_after = Some(to.to_string());
                Some(new)
            }
            Err((last, waited, cut_short)) => {
                let bound = if cut_short {
                    "the wait ended early to report before the invocation's deadline"
                } else {
                    "FAILOVER_WAIT_SECONDS"
                };
                let reason = format!(
                    "UpdatePrimaryRegion was accepted in {p}, but {to} did not report the key \
                     as PRIMARY and Enabled within {} ms ({bound}; last seen: {last}). KMS is \
                     probably still updating: check with `aws kms describe-key --region {to} \
                     --key-id {id}` and do not run the failover again until it settles. \
                     Aliases, policy and sync were not checked.",
                    millis(if cut_short {
                        waited
                    } else {
                        self.settings.wait
                    })
                );
                r.checks
                    .push(Check::warn(CheckName::NewPrimaryReported, reason.clone()));
                r.primary_region_after = None;
                r.outcome = KeyOutcome::TimedOut { reason };
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
