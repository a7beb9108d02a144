//! The checks after a promotion: aliases and policy in the new primary's Region, then sync
//! from the new primary, within the invocation's deadline.

use crate::report::{plural, Check, CheckName, KeyOutcome, KeyReport};
use crate::Failover;
use kms_replicator::desired::{desired_replica, PrimaryState};
use kms_replicator::model::KeyInfo;
use kms_replicator::policy::same_policy;
use kms_replicator::port::KmsError;
use kms_replicator::report::Outcome;
use kms_replicator::Syncer;
use tokio::time::Instant;

impl Failover<'_> {
    fn check_aliases(
        &self,
        old: &PrimaryState,
        to: &str,
        new: Result<&PrimaryState, &KmsError>,
    ) -> Check {
        let (p, id) = (&old.info.region, &old.info.key_id);
        match new {
            Ok(new) => {
                let have = &new.aliases;
                let missing: Vec<&str> = old
                    .aliases
                    .iter()
                    .filter(|a| !have.contains(a))
                    .map(String::as_str)
                    .collect();
                if missing.is_empty() && old.aliases.is_empty() {
                    Check::pass(
                        CheckName::AliasesInNewPrimaryRegion,
                        format!("the key had no aliases in {p}"),
                    )
                } else if missing.is_empty() {
                    Check::pass(
                        CheckName::AliasesInNewPrimaryRegion,
                        format!(
                            "{} point to the new primary in {to}",
                            old.aliases.join(", ")
                        ),
                    )
                } else {
                    Check::warn(
                        CheckName::AliasesInNewPrimaryRegion,
                        format!(
                            "{} had these aliases in {p} but not in {to}: {}. Applications that \
                             use them in {to} fail; create them with `aws kms create-alias \
                             --region {to} --alias-name <alias> --target-key-id {id}`",
                            id,
                            missing.join(", ")
                        ),
                    )
                }
            }
            Err(e) => Check::warn(
                CheckName::AliasesInNewPrimaryRegion,
                format!("could not list the aliases in {to}: {e}"),
            ),
        }
    }

    fn check_policy(
        &self,
        old: &PrimaryState,
        to: &str,
        new: Result<&PrimaryState, &KmsError>,
    ) -> Check {
        let (p, id) = (&old.info.region, &old.info.key_id);
        let actual = match new {
            Ok(new) => &new.policy,
            Err(e) => {
                return Check::warn(
                    CheckName::PolicyInNewPrimaryRegion,
                    format!("could not read the key policy in {to}: {e}"),
                )
            }
        };
        match desired_replica(self.config, old, to).map(|d| d.policy) {
            Ok(None) => Check::pass(
                CheckName::PolicyInNewPrimaryRegion,
                format!("readable in {to}; policies are not managed (POLICY_MODE=off)"),
            ),
            Ok(Some(want)) if same_policy(&want, actual) => Check::pass(
                CheckName::PolicyInNewPrimaryRegion,
                format!("matches the policy of the old primary in {p}, mirrored for {to}"),
            ),
            Ok(Some(_)) => Check::warn(
                CheckName::PolicyInNewPrimaryRegion,
                format!(
                    "differs from the policy of the old primary in {p} mirrored for {to}. The \
                     new primary's policy is now the one mirrored to every replica: review it \
                     with `aws kms get-key-policy --region {to} --key-id {id} --policy-name \
                     default`"
                ),
            ),
            Err(e) => Check::warn(CheckName::PolicyInNewPrimaryRegion, e.to_string()),
        }
    }

    /// After: aliases and policy in the new primary's Region, then sync from there. `new` is
    /// the new primary's DescribeKey answer; its policy, tags and aliases are read once, for
    /// the checks and the sync. Sets the outcome: promoted, with warnings when a check failed.
    pub(crate) async fn post_checks(
        &self,
        r: &mut KeyReport,
        old: &PrimaryState,
        new: KeyInfo,
        invocation_deadline: Option<Instant>,
    ) {
        let (id, to) = (old.info.key_id.clone(), new.region.clone());
        let (id, to) = (id.as_str(), to.as_str());
        let after_start = r.checks.len();
        let sync = Syncer::new(self.kms, self.config);
        let read = sync.read_primary(new).await;
        r.checks.push(self.check_aliases(old, to, read.as_ref()));
        r.checks.push(self.check_policy(old, to, read.as_ref()));
        let managed = old.tags.iter().any(|t| t.key == self.config.tag_key);
        // The sync touches every replica Region, and one of them may be the Region in trouble:
        // it gets what is left before the invocation's deadline, less half the margin.
        let sync_deadline = invocation_deadline.map(|d| {
            d.checked_sub(self.settings.deadline_margin / 2)
                .unwrap_or(d)
        });
        let sync = async {
            match read {
                Ok(state) => sync.sync_read(id, state).await,
                // The sync reads again, and says what failed.
                Err(_) => sync.sync(to, id, false).await,
            }
        };
        let report = match (managed, sync_deadline) {
            (false, _) => None,
            (true, None) => Some(sync.await),
            (true, Some(d)) => tokio::time::timeout_at(d, sync).await.ok(),
        };
        if managed && report.is_none() {
            r.checks.push(Check::warn(
                CheckName::SyncFromNewPrimary,
                format!(
                    "sync from the new primary in {to} did not finish before the invocation's \
                     deadline (a replica Region is slow or not answering); the writes it made \
                     stand, and the reconcile sweep (or the next change) completes it"
                ),
            ));
        } else if let Some(report) = report {
            r.checks.push(match &report.outcome {
                Outcome::Failed { reason, .. } => Check::warn(
                    CheckName::SyncFromNewPrimary,
                    format!(
                        "sync from the new primary in {to} failed: {reason}. The reconcile \
                         sweep retries it."
                    ),
                ),
                o => Check::pass(
                    CheckName::SyncFromNewPrimary,
                    format!(
                        "sync from {to}: {} ({} {})",
                        o.name(),
                        report.write_count(),
                        plural(report.write_count(), "write", "writes")
                    ),
                ),
            });
            r.sync = Some(report);
        } else {
            r.checks.push(Check::pass(
                CheckName::SyncFromNewPrimary,
                format!(
                    "no {} tag: the key is not managed, nothing to sync",
                    self.config.tag_key
                ),
            ));
        }
        let warnings: Vec<String> = r.checks[after_start..]
            .iter()
            .filter(|c| !c.passed)
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect();
        r.outcome = if warnings.is_empty() {
            KeyOutcome::Promoted
        } else {
            KeyOutcome::PromotedWithWarnings {
                reason: warnings.join("; "),
            }
        };
    }
}
