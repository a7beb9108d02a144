//! Information before the promotion, never a blocker: whether applications already use the
//! replica being promoted (one never used usually means nothing in that Region is configured
//! for it yet) and whether the old primary is still in use (it goes on serving after the
//! promotion, as a replica). KMS tracks each key of a multi-Region set on its own.

use crate::report::{Check, CheckName, KeyReport};
use crate::Failover;
use kms_replicator::usage::KeyUsage;
use std::time::Duration;

/// How long each read may take: a Region in trouble must not hold up the failover.
const READ_BOUND: Duration = Duration::from_secs(3);

impl Failover<'_> {
    /// Reads the last use of the key in `to` and, when its Region answered the checks, in
    /// `p` (the primary's Region), at once, and records one passed check that reports both.
    pub(crate) async fn check_key_use(&self, r: &mut KeyReport, p: &str, id: &str, to: &str) {
        let primary_answers = r
            .checks
            .iter()
            .any(|c| c.name == CheckName::PrimaryRegionAnswers && c.passed);
        let read = |region: String| async move {
            match tokio::time::timeout(READ_BOUND, self.kms.get_key_last_usage(&region, id)).await {
                Ok(Ok(u)) => Ok(u),
                Ok(Err(e)) => Err(format!("{}: {}", e.code, e.message)),
                Err(_) => Err(format!("no answer within {}s", READ_BOUND.as_secs())),
            }
        };
        let (target, primary) = tokio::join!(read(to.to_string()), async {
            if primary_answers {
                Some(read(p.to_string()).await)
            } else {
                None
            }
        });
        let mut detail = format!("the replica in {to}: {}", said(&target));
        if matches!(&target, Ok(u) if u.last_use.is_none()) {
            detail.push_str(&format!(
                " (applications in {to} may not be configured for it yet)"
            ));
        }
        match primary {
            Some(primary) => detail.push_str(&format!(
                "; the primary in {p}: {} (it keeps serving as a replica)",
                said(&primary)
            )),
            None => detail.push_str(&format!("; the primary in {p}: not read (no answer)")),
        }
        r.checks.push(Check::pass(CheckName::KeyUse, detail));
    }
}

fn said(read: &Result<KeyUsage, String>) -> String {
    match read {
        Ok(u) => u.describe(),
        Err(e) => format!("last use unknown ({e})"),
    }
}
