//! Repairs that events should already have made: the sweep's signal that a Region's events
//! are not reaching the replicate function.
//!
//! Every change the replicator mirrors is a KMS call that CloudTrail puts on EventBridge, and
//! the replicate function syncs the key within seconds of it. So when a real (not dry) sweep
//! has to create or update a replica of a key whose primary is older than the delivery delay
//! (`EVENT_DELIVERY_DELAY_SECONDS`, 15 minutes unless set), the events about that key did not
//! arrive: the sweep counts the key under the primary's Region, emits `EventsMissed` with the
//! dimension `SourceRegion` and logs "events from <Region> are not reaching the replicator".
//! A key created within the delay is not counted: its own events may still be on their way.

use kms_replicator::metrics::MetricSet;
use kms_replicator::pipeline::{EVENTS_MISSED, SOURCE_REGION};
use kms_replicator::report::{Outcome, SyncReport};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing::warn;

/// Keys repaired by the sweep that events should have fixed, per primary Region.
pub type Missed = BTreeMap<String, usize>;

/// Whether the sync of `report` wrote to a replica (a real run that created or updated one).
pub fn repaired(report: &SyncReport) -> bool {
    let wrote = |o: &Outcome| matches!(o, Outcome::Created | Outcome::Updated);
    !report.dry_run && (wrote(&report.outcome) || report.regions.iter().any(|r| wrote(&r.outcome)))
}

/// Whether a key created at `creation_ms` (DescribeKey's `CreationDate`, ms since the epoch)
/// is older than `delay` at `now`. A key without a creation date counts as old.
pub fn older_than(creation_ms: Option<u64>, delay: Duration, now: SystemTime) -> bool {
    let Some(ms) = creation_ms else { return true };
    let created = UNIX_EPOCH + Duration::from_millis(ms);
    now.duration_since(created).is_ok_and(|age| age >= delay)
}

/// The Region to blame for `report`, when it is a repair events should have made.
pub fn missed_region(
    report: &SyncReport,
    creation_ms: Option<u64>,
    delay: Duration,
    now: SystemTime,
) -> Option<String> {
    if !repaired(report) || !older_than(creation_ms, delay, now) {
        return None;
    }
    report.primary_region.clone()
}

/// One EMF record per Region with a miss, and the log line that says what to check.
pub fn emit(namespace: &str, missed: &Missed) {
    for (region, keys) in missed {
        warn!(
            region = %region,
            keys,
            "events from {region} are not reaching the replicator: check its trail and \
             forwarder (docs/runbook.md, section 7); this sweep repaired {keys} key(s) that \
             events should have fixed"
        );
        record(namespace, region, *keys).emit();
    }
}

/// The EMF record of `keys` missed in `region`.
pub fn record(namespace: &str, region: &str, keys: usize) -> MetricSet {
    MetricSet::new(namespace)
        .dimension(SOURCE_REGION, region)
        .count(EVENTS_MISSED, keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kms_replicator::report::RegionReport;

    fn report(outcome: Outcome, dry_run: bool) -> SyncReport {
        let mut r = SyncReport::key_level("mrk-1", Outcome::InSync);
        r.primary_region = Some("eu-west-1".into());
        r.regions.push(RegionReport::new("us-west-2", outcome));
        r.dry_run = dry_run;
        r
    }

    #[test]
    fn only_a_real_repair_of_a_key_older_than_the_delay_counts() {
        let now = UNIX_EPOCH + Duration::from_secs(10_000);
        let old = Some(1_000_000); // 9,000 s before now
        let young = Some(9_500_000); // 500 s before now
        let delay = Duration::from_secs(900);
        let created = report(Outcome::Created, false);
        assert_eq!(
            missed_region(&created, old, delay, now).as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(missed_region(&created, young, delay, now), None);
        assert_eq!(
            missed_region(&created, None, delay, now).as_deref(),
            Some("eu-west-1")
        );
        assert!(missed_region(&report(Outcome::Updated, false), old, delay, now).is_some());
        assert!(missed_region(&report(Outcome::InSync, false), old, delay, now).is_none());
        assert!(missed_region(&report(Outcome::Planned, true), old, delay, now).is_none());
        assert!(missed_region(&report(Outcome::Created, true), old, delay, now).is_none());
    }

    #[test]
    fn the_record_names_the_region() {
        let doc = record("KmsReplicator", "eu-west-1", 3).to_json(1);
        assert_eq!(doc["SourceRegion"], "eu-west-1");
        assert_eq!(doc["EventsMissed"], 3.0);
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0][0],
            "SourceRegion"
        );
    }
}
