//! Looking up the key a single-key request names: an ARN names its Region; otherwise the
//! request's `region`; otherwise the managed Regions in order, then the target Region. A
//! replica found anywhere leads to its primary, since DescribeKey names the primary's Region.

use crate::report::{is_outage, Cause, Check, CheckName, KeyOutcome, KeyReport};
use crate::Failover;
use kms_replicator::error::FunctionError;
use kms_replicator::model::KeyInfo;
use kms_replicator::port::{ErrorKind, KmsError};

/// A single key looked up.
pub(crate) enum Found {
    Key {
        info: KeyInfo,
        /// Errors of Regions that did not answer on the way.
        unanswered: Vec<KmsError>,
    },
    /// A Region did not answer or refused, and the key was found nowhere else: the report.
    NotLookedUp(KeyReport),
}

impl Failover<'_> {
    /// Finds the key a single-key request names. `Err` is an invalid input: not found in any
    /// Region, and every Region answered.
    pub(crate) async fn find_key(
        &self,
        key: &str,
        region: Option<&str>,
        to: &str,
    ) -> Result<Found, FunctionError> {
        let regions: Vec<String> = match region {
            Some(r) => vec![r.to_string()],
            None => {
                let mut v = self.config.managed_regions.clone();
                if !v.iter().any(|r| r == to) {
                    v.push(to.to_string());
                }
                v
            }
        };
        let mut errors = Vec::new();
        for r in &regions {
            match self.kms.describe_key(r, key).await {
                Ok(info) => {
                    let unanswered = errors.into_iter().filter(is_outage).collect();
                    return Ok(Found::Key { info, unanswered });
                }
                Err(e) if e.kind == ErrorKind::NotFound => {}
                Err(e) => errors.push(e),
            }
        }
        let looked = regions.join(", ");
        if errors.is_empty() {
            let how = if region.is_some() {
                "the Region the request names"
            } else {
                "the managed Regions, then the target Region; give \"region\" or the key's ARN \
                 to name another"
            };
            return Err(FunctionError::InvalidInput(format!(
                "key '{key}' not found in {looked} ({how})"
            )));
        }
        Ok(Found::NotLookedUp(not_looked_up(key, &looked, &errors)))
    }
}

/// The report of a key that could not be looked up: one failed check per Region that did not
/// answer or refused.
fn not_looked_up(key: &str, looked: &str, errors: &[KmsError]) -> KeyReport {
    let mut report = KeyReport::new(key);
    for e in errors {
        let detail = if is_outage(e) {
            format!(
                "KMS in {} did not answer, even after the SDK's retries ({e}). If that is \
                 the key's primary Region, replicas remain usable for cryptography in \
                 their own Regions, and promotion needs that Region's KMS endpoint. To \
                 look the key up elsewhere, give \"region\" or the key's ARN in a Region \
                 that answers",
                e.region
            )
        } else {
            format!("DescribeKey refused in {}: {e}", e.region)
        };
        report
            .checks
            .push(Check::fail(CheckName::KeyFound, detail, Cause::of(e)));
    }
    let first = &report.checks[0];
    report.outcome = KeyOutcome::Failed {
        reason: format!(
            "the key could not be looked up in {looked}: {}. Nothing was changed.",
            first.detail
        ),
        cause: first.cause.unwrap_or(Cause::Other),
    };
    report
}
