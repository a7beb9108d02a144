//! A Region whose policy cannot be mirrored (the rewrite would exceed KMS's size limit): the
//! policy is reported, and the replica still gets the primary's aliases, tags and
//! description, so that one policy does not stop everything else in that Region.

use super::Syncer;
use crate::config::{Config, PolicyMode};
use crate::desired::{desired_replica, DesiredError, PrimaryState};
use crate::report::{Outcome, RegionReport};

impl Syncer<'_> {
    /// The replica in `target` gets everything but the policy; the report's outcome is the
    /// policy's failure (with any other write's failure beside it). A replica that does not
    /// exist is not created: without its policy it would get KMS's default key policy, which
    /// gives the whole account full use of the key.
    pub(super) async fn sync_without_policy(
        &self,
        primary: &PrimaryState,
        target: &str,
        exists: bool,
        dry_run: bool,
        error: DesiredError,
    ) -> RegionReport {
        let reason = error.to_string();
        let mut report = RegionReport::new(target, Outcome::failed(reason.clone(), false));
        if !exists {
            report.notes.push(format!(
                "the replica in {target} is not created until its policy can be mirrored"
            ));
            return report;
        }
        let cfg = Config {
            policy_mode: PolicyMode::Off,
            ..self.cfg.clone()
        };
        let Ok(desired) = desired_replica(&cfg, primary, target) else {
            return report;
        };
        let others = Syncer { cfg: &cfg, ..*self };
        others
            .converge(primary, &desired, dry_run, &mut report)
            .await;
        report.notes.push(format!(
            "the policy of {target} is not mirrored (reported); its aliases, tags and \
             description are"
        ));
        report.outcome = match report.outcome {
            Outcome::Failed {
                reason: other,
                retryable,
            } => Outcome::failed(format!("{reason}; {other}"), retryable),
            _ => Outcome::failed(reason, false),
        };
        report
    }
}
