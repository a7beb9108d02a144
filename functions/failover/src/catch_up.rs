//! Before a promotion: the target replica is brought up to the primary's current policy
//! (rewritten for the target Region), aliases, tags and description. After the promotion the
//! new primary is the source every replica mirrors, the old primary included: a target that
//! missed a change (a write that kept failing, a CloudTrail record still on its way) would
//! otherwise carry its older policy into every Region, and a Deny just added would be gone
//! everywhere. If the target cannot be brought up to date, the key is not promoted.

use crate::report::{Cause, Check, CheckName, KeyReport};
use crate::request::Promotion;
use crate::Failover;
use kms_replicator::desired::PrimaryState;
use kms_replicator::report::{Action, Outcome};
use kms_replicator::Syncer;

impl Failover<'_> {
    /// Syncs the replica in `to` from `old` (the primary as just read). Returns false, with a
    /// blocking check, when a write it needs failed. Keys the replicator does not manage are
    /// left as they are; a dry run only says what would be written.
    pub(crate) async fn catch_up(
        &self,
        r: &mut KeyReport,
        old: &PrimaryState,
        to: &str,
        promotion: &Promotion,
    ) -> bool {
        if old.replication_tag(&self.config.tag_key).is_none() {
            return true;
        }
        let p = old.info.region.as_str();
        let report = Syncer::new(self.kms, self.config)
            .keeping_edited_policies()
            .sync_replica(old, to, promotion.dry_run)
            .await;
        let writes = names(&report.actions);
        let check = match &report.outcome {
            // The target holds a policy newer than the primary's: promoting it as it is, or
            // overwriting it, could each lose an edit; a person decides.
            Outcome::Skipped { reason } | Outcome::Failed { reason, .. } => Check::fail(
                CheckName::TargetUpToDate,
                format!(
                    "the replica in {to} could not be brought up to the primary's current \
                     policy, aliases, tags and description: {reason}. Promoting it would make \
                     its older state the one mirrored to every Region, {p} included, so the \
                     key was not promoted. Fix the cause and run the failover again. Nothing \
                     was promoted."
                ),
                Cause::TargetNotUpToDate,
            ),
            Outcome::Planned => Check::pass(
                CheckName::TargetUpToDate,
                format!("would bring the replica in {to} up to the primary in {p}: {writes}"),
            ),
            _ if report.actions.is_empty() => Check::pass(
                CheckName::TargetUpToDate,
                format!("the replica in {to} already mirrors the primary in {p}"),
            ),
            _ => Check::pass(
                CheckName::TargetUpToDate,
                format!("brought the replica in {to} up to the primary in {p}: {writes}"),
            ),
        };
        let passed = check.passed;
        r.checks.push(check);
        passed
    }
}

/// The writes of a plan, by operation name: `PutKeyPolicy, TagResource`.
fn names(actions: &[Action]) -> String {
    if actions.is_empty() {
        return "no write".into();
    }
    actions
        .iter()
        .map(|a| a.op().name())
        .collect::<Vec<_>>()
        .join(", ")
}
