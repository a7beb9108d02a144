//! One promotion: the key a request names, or every managed primary of a Region (several at
//! once, none started too close to the invocation's deadline), each through the steps, and
//! the report of them all.

use crate::lookup::Found;
use crate::report::{
    explain, millis, summarise, Cause, Check, CheckName, FailoverReport, KeyOutcome, KeyReport,
};
use crate::request::{Promotion, Target};
use crate::Failover;
use futures::StreamExt;
use kms_replicator::discover::managed_primaries;
use kms_replicator::error::FunctionError;
use kms_replicator::model::KeyInfo;
use kms_replicator::port::{ErrorKind, KmsError};
use tokio::time::Instant;
use tracing::info;

impl Failover<'_> {
    /// Checks, promotes and reports every key of `promotion`. `Err` is an invalid input: a
    /// single key found in no Region.
    pub(crate) async fn run(&self, promotion: &Promotion) -> Result<FailoverReport, FunctionError> {
        let started = Instant::now();
        let to = &promotion.to;
        let (from, keys, error) = match &promotion.target {
            Target::Key { key, region } => {
                let report = match self.find_key(key, region.as_deref(), to).await? {
                    Found::Key { info, unanswered } => {
                        self.fail_over(key, info, promotion, &unanswered).await
                    }
                    Found::NotLookedUp(report) => report,
                };
                (None, vec![report], None)
            }
            Target::Region { from } => {
                let (keys, error) = self.fail_over_region(from, promotion).await;
                (Some(from.clone()), keys, error)
            }
        };
        let summary = match (&error, &from) {
            (Some(e), _) => format!("0 keys promoted to {to}: {e}"),
            (None, Some(f)) if keys.is_empty() => format!(
                "no managed key (with the {} tag) has its primary in {f}: nothing to promote",
                self.config.tag_key
            ),
            _ => summarise(&keys, to, promotion.dry_run),
        };
        Ok(FailoverReport {
            summary,
            to: to.clone(),
            from,
            dry_run: promotion.dry_run,
            duration_ms: millis(started.elapsed()),
            error,
            keys,
        })
    }

    /// Every managed primary in `source`, at most `concurrency` at once, then the keys
    /// discovery listed but could not read. The error says why no key could be listed.
    async fn fail_over_region(
        &self,
        source: &str,
        promotion: &Promotion,
    ) -> (Vec<KeyReport>, Option<String>) {
        let to = &promotion.to;
        match managed_primaries(self.kms, self.config, source).await {
            Ok(found) => {
                let mut keys: Vec<KeyReport> = futures::stream::iter(found.primaries)
                    .map(|info| self.fail_over_listed(info, promotion))
                    .buffered(self.settings.concurrency.max(1))
                    .collect()
                    .await;
                keys.extend(
                    found
                        .unreadable
                        .iter()
                        .map(|(id, e)| unreadable_key(id, e, source, to)),
                );
                (keys, None)
            }
            Err(e) => {
                let error = format!(
                    "the managed keys in {source} could not be listed, so none was promoted: {}",
                    explain(&e, source, to)
                );
                (Vec::new(), Some(error))
            }
        }
    }

    /// A key found by bulk discovery: skipped when it has no replica in the target Region,
    /// not started when the invocation's deadline is too close.
    async fn fail_over_listed(&self, info: KeyInfo, promotion: &Promotion) -> KeyReport {
        if let Some(deadline) = promotion.deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if left <= self.settings.deadline_margin {
                let mut r = KeyReport::new(&info.key_id);
                r.key_id = Some(info.key_id.clone());
                r.primary_region_before = Some(info.region.clone());
                r.primary_region_after = Some(info.region.clone());
                r.outcome = KeyOutcome::NotStarted {
                    reason: format!(
                        "not started: {} ms were left before the invocation's deadline, less \
                         than the {} s needed to promote, check and report a key. Nothing was \
                         changed; run the same request again to promote the keys not started",
                        millis(left),
                        self.settings.deadline_margin.as_secs()
                    ),
                };
                return r;
            }
        }
        let to = &promotion.to;
        let has_replica = info
            .multi_region
            .as_ref()
            .is_some_and(|m| m.replica_regions.iter().any(|r| r == to));
        if has_replica {
            return self
                .fail_over(&info.key_id.clone(), info, promotion, &[])
                .await;
        }
        let mut r = KeyReport::new(&info.key_id);
        r.key_id = Some(info.key_id.clone());
        r.primary_region_before = Some(info.region.clone());
        r.primary_region_after = Some(info.region.clone());
        r.checks.push(Check::warn(
            CheckName::ReplicaInTarget,
            format!("the primary lists no replica in {to}"),
        ));
        r.outcome = KeyOutcome::Skipped {
            reason: format!(
                "no replica in {to}: add {to} to the key's {} tag to create one",
                self.config.tag_key
            ),
        };
        info!(key_id = %info.key_id, outcome = "skipped", to = %to, "no replica in the target Region");
        r
    }
}

/// A key bulk discovery listed but could not read: another team's key whose policy denies
/// the failover role is skipped; any other error is a failure of that key alone.
fn unreadable_key(id: &str, e: &KmsError, source: &str, to: &str) -> KeyReport {
    let mut r = KeyReport::new(id);
    r.key_id = Some(id.to_string());
    r.primary_region_before = Some(source.to_string());
    let detail = explain(e, source, to);
    r.checks.push(Check::fail(
        CheckName::KeyFound,
        detail.clone(),
        Cause::of(e),
    ));
    r.outcome = if e.kind == ErrorKind::AccessDenied {
        KeyOutcome::Skipped {
            reason: format!(
                "the failover role may not read this key in {source} (another team's key?): \
                 {detail}"
            ),
        }
    } else {
        KeyOutcome::Failed {
            reason: format!("the key could not be read in {source}: {detail}"),
            cause: Cause::of(e),
        }
    };
    r
}
