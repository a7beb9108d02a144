//! What a run did or would do ([`Sweep`]): its counts, the plan a person reads, the JSON
//! answer and the CloudWatch metrics.

use kms_replicator::metrics::MetricSet;
use kms_replicator::port::{ErrorKind, KmsError};
use kms_replicator::report::{change_lines, Outcome, SyncReport};
use serde_json::{json, Value};
use std::time::Duration;

/// How many not-started and interrupted key ids a response lists at most.
const MAX_LISTED: usize = 100;
/// How many key reports and summary lines a response carries at most: a synchronous Lambda
/// response is limited to 6 MB. The logs have a line for every key.
const MAX_KEYS_SHOWN: usize = 1000;
const MAX_LINES_SHOWN: usize = 3000;

/// Everything a run did or would do.
#[derive(Debug, Clone)]
pub struct Sweep {
    pub dry_run: bool,
    /// The Regions whose primaries the run covers.
    pub regions: Vec<String>,
    /// One per key looked at, sorted by key id.
    pub reports: Vec<SyncReport>,
    /// Keys not started before the deadline margin.
    pub not_started: Vec<String>,
    /// Keys abandoned while in flight at the deadline (their writes so far stand; the next
    /// run completes them).
    pub interrupted: Vec<String>,
    /// Keys repaired that events should already have fixed, per primary Region
    /// ([`crate::missed`]).
    pub events_missed: crate::missed::Missed,
    /// Regions whose tag index could not be read.
    pub discovery_errors: Vec<KmsError>,
    pub duration: Duration,
    pub throttles: usize,
    pub rate_limit_wait: Duration,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub scanned: usize,
    pub in_sync: usize,
    pub repaired: usize,
    pub planned: usize,
    pub failed: usize,
    pub skipped: usize,
    pub remaining: usize,
}

impl Sweep {
    pub fn complete(&self) -> bool {
        self.not_started.is_empty() && self.interrupted.is_empty()
    }

    pub fn counts(&self) -> Counts {
        let mut c = Counts {
            scanned: self.reports.len(),
            remaining: self.not_started.len() + self.interrupted.len(),
            ..Counts::default()
        };
        for r in &self.reports {
            match r.outcome {
                Outcome::InSync => c.in_sync += 1,
                Outcome::Created | Outcome::Updated => c.repaired += 1,
                Outcome::Planned => c.planned += 1,
                Outcome::Failed { .. } => c.failed += 1,
                Outcome::Skipped { .. } => c.skipped += 1,
            }
        }
        c
    }

    /// The plan (or, after a real run, what was done): a header, then one line per change.
    pub fn summary(&self) -> String {
        let c = self.counts();
        let changes: Vec<String> = self.reports.iter().flat_map(change_lines).collect();
        let verb = if self.dry_run { "Plan" } else { "Applied" };
        let touched = if self.dry_run { c.planned } else { c.repaired };
        let mut out = format!(
            "{verb}: {} change(s) to {touched} key(s); {} key(s) in sync, {} failed, {} skipped; \
             Regions {}.",
            changes
                .iter()
                .filter(|l| !l.starts_with('!') && !l.starts_with('#'))
                .count(),
            c.in_sync,
            c.failed,
            c.skipped,
            self.regions.join(" ")
        );
        if !self.complete() {
            out.push_str(&format!(
                " Stopped at the deadline: {} key(s) left for the next run.",
                c.remaining
            ));
        }
        for e in &self.discovery_errors {
            out.push_str(&format!(
                "\n! {}: keys not listed: {} {}: {}",
                e.region, e.operation, e.code, e.message
            ));
        }
        let total = changes.len();
        for line in changes.into_iter().take(MAX_LINES_SHOWN) {
            out.push('\n');
            out.push_str(&line);
        }
        if total > MAX_LINES_SHOWN {
            out.push_str(&format!(
                "\n... and {} more line(s): see \"keys\" and the function's logs",
                total - MAX_LINES_SHOWN
            ));
        }
        out
    }

    /// Keys with something to say (changed, planned, failed, skipped while managed); keys in
    /// sync are counted only, so that a sweep of thousands stays a small answer.
    pub fn notable(&self) -> Vec<&SyncReport> {
        self.reports
            .iter()
            .filter(|r| match r.outcome {
                Outcome::InSync => false,
                Outcome::Skipped { .. } => r.managed,
                _ => true,
            })
            .collect()
    }

    pub fn retryable_failures(&self) -> usize {
        self.reports
            .iter()
            .filter(|r| r.is_retryable_failure())
            .count()
            + self
                .discovery_errors
                .iter()
                .filter(|e| e.is_retryable())
                .count()
    }

    pub fn to_json(&self) -> Value {
        let c = self.counts();
        json!({
            "action": if self.dry_run { "planned" } else { "reconciled" },
            "dryRun": self.dry_run,
            "complete": self.complete(),
            "regions": self.regions,
            "counts": {
                "scanned": c.scanned,
                "inSync": c.in_sync,
                "repaired": c.repaired,
                "planned": c.planned,
                "failed": c.failed,
                "skipped": c.skipped,
                "remaining": c.remaining,
            },
            "summary": self.summary(),
            "keys": self.notable().into_iter().take(MAX_KEYS_SHOWN).collect::<Vec<_>>(),
            "remaining": {
                "notStarted": self.not_started.iter().take(MAX_LISTED).collect::<Vec<_>>(),
                "interrupted": self.interrupted.iter().take(MAX_LISTED).collect::<Vec<_>>(),
            },
            "discoveryErrors": self.discovery_errors.iter().map(|e| json!({
                "region": e.region, "operation": e.operation, "code": e.code,
                "message": e.message, "retryable": e.is_retryable(),
            })).collect::<Vec<_>>(),
            "durationMs": self.duration.as_millis() as u64,
            "eventsMissed": self.events_missed,
        })
    }

    /// The run's CloudWatch metrics (Embedded Metric Format).
    pub fn metrics(&self, namespace: &str) -> MetricSet {
        let c = self.counts();
        let throttles = self.throttles
            + self
                .discovery_errors
                .iter()
                .filter(|e| e.kind == ErrorKind::Throttling)
                .count();
        MetricSet::new(namespace)
            .dimension("Function", "reconcile")
            .dimension("Mode", if self.dry_run { "plan" } else { "sweep" })
            .count("KeysScanned", c.scanned)
            .count("KeysInSync", c.in_sync)
            .count("KeysRepaired", c.repaired)
            .count("KeysPlanned", c.planned)
            .count("KeysFailed", c.failed)
            .count("KeysSkipped", c.skipped)
            .count("KeysRemaining", c.remaining)
            .count("DiscoveryErrors", self.discovery_errors.len())
            .count("Throttles", throttles)
            .count("EventsMissed", self.events_missed.values().sum())
            .millis("RateLimitWait", self.rate_limit_wait.as_millis())
            .millis("SweepDuration", self.duration.as_millis())
            .property("complete", self.complete())
    }
}
