//! The in-use guard: under `RemovalPolicy=ScheduleDeletion`, a replica whose Region left the
//! tag is deleted only if KMS says it was not used within `IN_USE_WINDOW_DAYS`. Deleting a
//! replica that applications in its Region still decrypt with leaves them unable to decrypt
//! there once the waiting period ends; so a replica used within the window, or one KMS cannot
//! vouch for (tracking began after the window did), is kept and reported as a conflict.

use super::{failed, Syncer};
use crate::report::{Outcome, RegionReport};
use crate::usage::{now_ms, Verdict};
use tracing::warn;

impl Syncer<'_> {
    /// `None` when the replica in `region` may be deleted (the guard is off, or KMS says it
    /// was idle for the whole window); otherwise the report that keeps it.
    pub(super) async fn in_use_guard(&self, region: &str, key_id: &str) -> Option<RegionReport> {
        let days = self.cfg.in_use_window_days;
        if days == 0 {
            return None;
        }
        let usage = match self.kms.get_key_last_usage(region, key_id).await {
            Ok(u) => u,
            Err(e) if e.is_retryable() => return Some(RegionReport::new(region, failed(&e))),
            Err(e) => {
                return Some(kept(
                    region,
                    format!(
                        "the replicator could not read its last use ({}: {}), so it may be in \
                         use",
                        e.code, e.message
                    ),
                    days,
                ))
            }
        };
        let why = match usage.verdict(now_ms(), days) {
            Verdict::Idle { .. } => return None,
            Verdict::InUse(last) => format!(
                "it was used within the last {days} days: {}",
                last.describe()
            ),
            Verdict::Unknown { reason } => format!("it may be in use: {reason}"),
        };
        Some(kept(region, why, days))
    }
}

/// The report of a replica the guard keeps: skipped, with a conflict that says why and what a
/// person can do (the conflict is published as a `Replication Conflict` on every sync).
fn kept(region: &str, why: String, days: u32) -> RegionReport {
    warn!(
        region,
        why, "in-use guard: replica not scheduled for deletion"
    );
    let mut report = RegionReport::new(
        region,
        Outcome::skipped(format!(
            "{region} left the replication tag, but its replica is not scheduled for deletion \
             because it is or may be in use"
        )),
    );
    report.conflicts.push(format!(
        "the replica in {region} is not scheduled for deletion: {why}. Applications in \
         {region} would lose the use of it when the deletion completes. Find who uses it \
         (the CloudTrail event above, or `aws kms get-key-last-usage --region {region} --key-id \
         <key>`), move them to another key or Region, and the replicator deletes it once it has \
         been unused for {days} days; to keep it, add {region} back to the tag; to delete it \
         regardless, deploy with InUseWindowDays=0"
    ));
    report
}
