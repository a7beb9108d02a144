//! The reconcile function: the safety net under the event-driven path, and its `terraform
//! plan`.
//!
//! On its schedule it finds every managed primary (a multi-Region key carrying the replication
//! tag) in the swept Regions and runs the same `sync` as the replicate function on each, so
//! that lost events, hand edits of replicas and keys tagged before the stack existed are all
//! repaired. Invoked directly with `{"dryRun": true}` it returns the plan instead, writing
//! nothing; `keys` or `regions` narrow either.
//!
//! Cost at account scale: discovery is one paginated GetResources per Region (no call per
//! key), each Region's aliases are read once, and a key in sync then costs 3 reads per Region
//! it lives in. Only keys whose cheap check shows drift are synced again from fresh reads
//! before anything is written. Every call goes through the per-Region, per-operation rate
//! limiter the caller passes in (`kms_replicator::limit`), with at most `concurrency` keys in
//! flight, and the sweep stops starting keys `deadline_margin` before the invocation's
//! deadline.

use futures::stream::{FuturesUnordered, StreamExt};
use kms_replicator::audit::{audit_events, AuditContext, REPLICATION_SKIPPED};
use kms_replicator::discover::{tagged_candidates, Discovery};
use kms_replicator::error::FunctionError;
use kms_replicator::limit::{LimiterStats, DEFAULT_READ_RATE};
use kms_replicator::metrics::MetricSet;
use kms_replicator::model::MultiRegionKeyType;
use kms_replicator::port::{ErrorKind, KmsError};
use kms_replicator::region::is_region_name;
use kms_replicator::report::change_lines;
use kms_replicator::report::{Outcome, SyncReport};
use kms_replicator::sync::{index_aliases, AliasIndex};
use kms_replicator::{AuditSink, Config, Kms, Syncer, TagIndex};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::Duration;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

/// How many not-started and interrupted key ids a response lists at most.
const MAX_LISTED: usize = 100;
/// How many key reports and summary lines a response carries at most: a synchronous Lambda
/// response is limited to 6 MB. The logs have a line for every key.
const MAX_KEYS_SHOWN: usize = 1000;
const MAX_LINES_SHOWN: usize = 3000;

/// The function's own settings (the replication settings are in [`Config`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Keys synced at the same time.
    pub concurrency: usize,
    /// No key is started later than this before the invocation's deadline; keys still
    /// running at half of it are abandoned, so the report always goes out in time.
    pub deadline_margin: Duration,
    /// Requests per second allowed for each read operation, per Region.
    pub read_rate: u32,
    /// CloudWatch namespace of the metrics.
    pub metrics_namespace: String,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            concurrency: 16,
            deadline_margin: Duration::from_secs(10),
            read_rate: DEFAULT_READ_RATE,
            metrics_namespace: "KmsReplicator".into(),
        }
    }
}

impl Settings {
    pub fn from_env() -> Result<Settings, String> {
        Settings::from_lookup(|k| std::env::var(k).ok())
    }

    /// `RECONCILE_CONCURRENCY`, `RECONCILE_DEADLINE_MARGIN_SECONDS`, `RECONCILE_READ_RATE`,
    /// `METRICS_NAMESPACE`; each optional.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Settings, String> {
        let mut s = Settings::default();
        let number = |name: &str, min: u64, max: u64| -> Result<Option<u64>, String> {
            match get(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
            {
                None => Ok(None),
                Some(raw) => match raw.parse::<u64>() {
                    Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
                    _ => Err(format!(
                        "{name} must be a whole number from {min} to {max}, not '{raw}'"
                    )),
                },
            }
        };
        if let Some(n) = number("RECONCILE_CONCURRENCY", 1, 64)? {
            s.concurrency = n as usize;
        }
        if let Some(n) = number("RECONCILE_DEADLINE_MARGIN_SECONDS", 1, 300)? {
            s.deadline_margin = Duration::from_secs(n);
        }
        if let Some(n) = number("RECONCILE_READ_RATE", 1, 2000)? {
            s.read_rate = n as u32;
        }
        if let Some(ns) = get("METRICS_NAMESPACE").filter(|v| !v.trim().is_empty()) {
            s.metrics_namespace = ns.trim().to_string();
        }
        Ok(s)
    }
}

/// What started the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// The EventBridge schedule: its event id, and the scheduled time in seconds since the
    /// epoch when the event carries one.
    Schedule { event_id: String, time: Option<u64> },
    /// `aws lambda invoke` by a person or a tool.
    Direct,
}

/// Which keys the run covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every managed primary in these Regions.
    Regions(Vec<String>),
    /// Only these keys (ids, ARNs or alias names); their primaries must be in a managed Region.
    Keys(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub trigger: Trigger,
    pub dry_run: bool,
    pub scope: Scope,
}

/// The body of a direct invocation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct DirectRequest {
    #[serde(default)]
    dry_run: bool,
    keys: Option<Vec<String>>,
    regions: Option<Vec<String>>,
}

const USAGE: &str = r#"expected {"dryRun": true|false} with at most one of "keys": ["<key id, key ARN or alias>", ...] and "regions": ["<managed Region>", ...]"#;

/// Reads the invocation payload: the EventBridge Scheduled Event, or a direct request. Any
/// problem is an error that says what is wrong, found before anything is read or written.
pub fn parse_request(event: &Value, cfg: &Config) -> Result<Request, String> {
    if event.get("source").and_then(Value::as_str) == Some("aws.events")
        && event.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event")
    {
        let event_id = event
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let time = event
            .get("time")
            .and_then(Value::as_str)
            .and_then(|t| humantime::parse_rfc3339(t).ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs());
        return Ok(Request {
            trigger: Trigger::Schedule { event_id, time },
            dry_run: false,
            scope: Scope::Regions(cfg.managed_regions.clone()),
        });
    }
    let body = match event {
        Value::Null => Value::Object(Default::default()),
        Value::Object(_) => event.clone(),
        other => {
            return Err(format!(
                "the payload is {}, not a JSON object; {USAGE}",
                kind_of(other)
            ))
        }
    };
    let req: DirectRequest = serde_json::from_value(body).map_err(|e| format!("{e}; {USAGE}"))?;
    let scope = match (req.keys, req.regions) {
        (Some(_), Some(_)) => {
            return Err(format!("give either keys or regions, not both; {USAGE}"));
        }
        (Some(keys), None) => Scope::Keys(check_keys(keys, cfg)?),
        (None, Some(regions)) => Scope::Regions(check_regions(regions, cfg)?),
        (None, None) => Scope::Regions(cfg.managed_regions.clone()),
    };
    Ok(Request {
        trigger: Trigger::Direct,
        dry_run: req.dry_run,
        scope,
    })
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn managed_list(cfg: &Config) -> String {
    cfg.managed_regions.join(" ")
}

fn check_regions(regions: Vec<String>, cfg: &Config) -> Result<Vec<String>, String> {
    if regions.is_empty() {
        return Err("regions is empty: name at least one Region, or leave it out".into());
    }
    let mut out: Vec<String> = Vec::new();
    for r in regions {
        let r = r.trim().to_string();
        if !is_region_name(&r) {
            return Err(format!(
                "'{r}' is not a Region name (like us-west-2); managed Regions: {}",
                managed_list(cfg)
            ));
        }
        if !cfg.managed_regions.contains(&r) {
            return Err(format!(
                "Region {r} is not managed by this deployment (MANAGED_REGIONS: {})",
                managed_list(cfg)
            ));
        }
        if !out.contains(&r) {
            out.push(r);
        }
    }
    Ok(out)
}

fn check_keys(keys: Vec<String>, cfg: &Config) -> Result<Vec<String>, String> {
    if keys.is_empty() {
        return Err("keys is empty: name at least one key, or leave it out".into());
    }
    let mut out: Vec<String> = Vec::new();
    for k in keys {
        let k = k.trim().to_string();
        if let Some(arn) = kms_replicator::arn::parse_kms_arn(&k) {
            let named = arn
                .resource
                .strip_prefix("key/")
                .or_else(|| arn.resource.strip_prefix("alias/"))
                .is_some_and(|rest| !rest.is_empty());
            if !named {
                return Err(format!("'{k}' is not a KMS key or alias ARN"));
            }
            if !is_region_name(arn.region) {
                return Err(format!("'{k}' names '{}', not a Region", arn.region));
            }
            if !cfg.managed_regions.iter().any(|r| r == arn.region) {
                return Err(format!(
                    "'{k}' is in {}, which this deployment does not manage (MANAGED_REGIONS: {})",
                    arn.region,
                    managed_list(cfg)
                ));
            }
        } else if k.starts_with("arn:") {
            return Err(format!("'{k}' is not a KMS key or alias ARN"));
        } else if let Some(name) = k.strip_prefix("alias/") {
            if name.is_empty() {
                return Err("'alias/' names no alias".into());
            }
        } else if k.is_empty()
            || k.len() > 64
            || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(format!(
                "'{k}' is not a key id, key ARN or alias name (alias/...)"
            ));
        }
        if !out.contains(&k) {
            out.push(k);
        }
    }
    Ok(out)
}

/// Where a scheduled sweep starts in the sorted list of `n` keys, for a run scheduled at
/// `minute` (minutes since the epoch).
///
/// A sweep that meets its deadline leaves the keys after its stopping point for later runs.
/// Lambda keeps no state between runs, so rather than persisting a cursor, the start moves by
/// `(φ - 1) / 60` of the list per minute of schedule (φ the golden ratio, in 64-bit fixed
/// point): hourly runs start `(φ - 1) * n` keys apart, a Weyl sequence whose starting points
/// spread evenly over the list however many runs there have been. Whatever a run's capacity
/// `k`, every key comes within the reach of a run every few `n / k` runs.
pub fn rotation(n: usize, minute: u64) -> usize {
    if n == 0 {
        return 0;
    }
    const STEP_PER_MINUTE: u64 = 0x02A3_0ED4_2885_8211; // (φ - 1) / 60 * 2^64
    let frac = minute.wrapping_mul(STEP_PER_MINUTE);
    ((frac as u128 * n as u128) >> 64) as usize
}

/// One unit of work: a key to describe, and the Regions to look for it in, in order.
#[derive(Debug, Clone)]
struct Work {
    requested: String,
    key: String,
    regions: Vec<String>,
}

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
            .millis("RateLimitWait", self.rate_limit_wait.as_millis())
            .millis("SweepDuration", self.duration.as_millis())
            .property("complete", self.complete())
    }
}

/// What the handler needs, built once per cold start.
pub struct Reconciler<'a> {
    /// Wrap it in `kms_replicator::limit::RateLimitedKms` to stay within the KMS quotas.
    pub kms: &'a dyn Kms,
    pub tags: &'a dyn TagIndex,
    pub audit: &'a dyn AuditSink,
    pub config: &'a Config,
    pub settings: &'a Settings,
    /// The limiter's counters, for the metrics.
    pub limiter: Option<&'a dyn LimiterStats>,
}

impl Reconciler<'_> {
    /// Handles one invocation that must answer by `deadline`. Returns the run's report; an
    /// error for bad input (before any call), or, for a real (not dry) run, when some key
    /// failed in a way worth retrying, so that the run shows up in the function's errors.
    pub async fn handle(&self, event: &Value, deadline: Instant) -> Result<Value, FunctionError> {
        let request = parse_request(event, self.config).map_err(|e| {
            warn!(error = %e, "rejecting the invocation's input");
            FunctionError::InvalidInput(e)
        })?;
        let sweep = self.run(&request, deadline).await;
        sweep.metrics(&self.settings.metrics_namespace).emit();
        let c = sweep.counts();
        info!(
            dry_run = sweep.dry_run,
            complete = sweep.complete(),
            scanned = c.scanned,
            in_sync = c.in_sync,
            repaired = c.repaired,
            planned = c.planned,
            failed = c.failed,
            remaining = c.remaining,
            duration_ms = sweep.duration.as_millis() as u64,
            "reconcile finished"
        );
        let body = sweep.to_json();
        if !sweep.dry_run && sweep.retryable_failures() > 0 {
            // The header and the failures; the whole report is in the logs.
            let summary = sweep.summary();
            let mut lines = summary.lines();
            let header = lines.next().unwrap_or_default();
            let failures: Vec<&str> = lines.filter(|l| l.starts_with('!')).take(50).collect();
            return Err(FunctionError::Retryable(format!(
                "{} key(s) or Region(s) failed in a way worth retrying; the next sweep retries \
                 them. {header}\n{}",
                sweep.retryable_failures(),
                failures.join("\n")
            )));
        }
        Ok(body)
    }

    /// The run itself: discovery, then every key with bounded concurrency until done or until
    /// the deadline margin.
    pub async fn run(&self, request: &Request, deadline: Instant) -> Sweep {
        let started = Instant::now();
        let (throttles0, waited0) = self
            .limiter
            .map(|l| (l.throttles(), l.waited()))
            .unwrap_or_default();
        let margin = self.settings.deadline_margin;
        let stop_starting = deadline.checked_sub(margin).unwrap_or(started);
        let hard_stop = deadline.checked_sub(margin / 2).unwrap_or(started);

        let (regions, mut work, index, discovery) = match &request.scope {
            Scope::Regions(regions) => {
                let d = tokio::time::timeout_at(stop_starting, self.discover(regions)).await;
                let (work, index, discovery) = d.unwrap_or_else(|_| {
                    let failed = regions
                        .iter()
                        .map(|r| {
                            KmsError::new(
                                ErrorKind::Unreachable,
                                "GetResources",
                                r,
                                "DeadlineReached",
                                "discovery did not finish before the deadline margin",
                            )
                        })
                        .collect();
                    let d = Discovery {
                        failed,
                        ..Discovery::default()
                    };
                    (Vec::new(), None, d)
                });
                (regions.clone(), work, index, discovery)
            }
            Scope::Keys(keys) => {
                let regions = self.config.managed_regions.clone();
                let work = keys
                    .iter()
                    .map(|k| Work {
                        requested: k.clone(),
                        key: k.clone(),
                        regions: match kms_replicator::arn::region_of(k) {
                            Some(r) => vec![r.to_string()],
                            None => regions.clone(),
                        },
                    })
                    .collect();
                (regions, work, None, Discovery::default())
            }
        };
        if let Trigger::Schedule {
            time: Some(secs), ..
        } = request.trigger
        {
            let start = rotation(work.len(), secs / 60);
            work.rotate_left(start);
        }
        let mut reports: Vec<SyncReport> = discovery
            .single_region
            .iter()
            .map(|k| {
                let mut r = SyncReport::key_level(
                    &k.arn,
                    Outcome::skipped(
                        "single-Region key: it carries the replication tag, but KMS can only \
                         replicate multi-Region keys and a key cannot be converted",
                    ),
                );
                r.managed = true;
                r.dry_run = request.dry_run;
                r
            })
            .collect();

        let ctx = AuditContext {
            trigger_event: Some(match &request.trigger {
                Trigger::Schedule { .. } => "Scheduled Event".to_string(),
                Trigger::Direct => "Reconcile".to_string(),
            }),
            trigger_event_id: match &request.trigger {
                Trigger::Schedule { event_id, .. } => Some(event_id.clone()),
                Trigger::Direct => None,
            },
            trigger_region: None,
        };
        let mut pending = work.into_iter();
        let mut in_flight = FuturesUnordered::new();
        let mut running: HashSet<String> = HashSet::new();
        let mut interrupted = Vec::new();
        loop {
            while in_flight.len() < self.settings.concurrency.max(1)
                && Instant::now() < stop_starting
            {
                let Some(w) = pending.next() else { break };
                running.insert(w.requested.clone());
                let (regions, index, ctx) = (&regions, index.as_ref(), &ctx);
                in_flight.push(async move {
                    let report = self.process(&w, regions, index, request.dry_run).await;
                    self.publish(&report, ctx).await;
                    (w.requested, report)
                });
            }
            if in_flight.is_empty() {
                break;
            }
            tokio::select! {
                Some((requested, report)) = in_flight.next() => {
                    running.remove(&requested);
                    log_report(&report);
                    reports.push(report);
                }
                _ = tokio::time::sleep_until(hard_stop) => {
                    interrupted.extend(running.drain());
                    interrupted.sort();
                    warn!(count = interrupted.len(), "deadline: abandoning keys in flight");
                    break;
                }
            }
        }
        drop(in_flight);
        let not_started: Vec<String> = pending.map(|w| w.requested).collect();
        if !not_started.is_empty() {
            warn!(
                count = not_started.len(),
                "deadline: keys left for the next run"
            );
        }
        reports.sort_by(|a, b| {
            let key = |r: &SyncReport| r.key_id.clone().unwrap_or_else(|| r.requested.clone());
            key(a).cmp(&key(b))
        });
        let (throttles1, waited1) = self
            .limiter
            .map(|l| (l.throttles(), l.waited()))
            .unwrap_or_default();
        Sweep {
            dry_run: request.dry_run,
            regions,
            reports,
            not_started,
            interrupted,
            discovery_errors: discovery.failed,
            duration: started.elapsed(),
            throttles: throttles1.saturating_sub(throttles0),
            rate_limit_wait: waited1.saturating_sub(waited0),
        }
    }

    /// The tag index of each swept Region and the aliases of every Region the sweep reads,
    /// concurrently.
    async fn discover(&self, regions: &[String]) -> (Vec<Work>, Option<AliasIndex>, Discovery) {
        let mut alias_regions: Vec<String> = regions.to_vec();
        for r in &self.config.allowed_regions {
            if !alias_regions.contains(r) {
                alias_regions.push(r.clone());
            }
        }
        let (discovery, aliases) = tokio::join!(
            tagged_candidates(self.tags, &self.config.tag_key, regions),
            futures::future::join_all(alias_regions.iter().map(|r| self.kms.list_aliases(r, None))),
        );
        let mut index = AliasIndex::new();
        for (region, answer) in alias_regions.iter().zip(aliases) {
            match answer {
                Ok(entries) => {
                    index.insert(region.clone(), index_aliases(entries));
                }
                // Keys in that Region fall back to one ListAliases each.
                Err(e) => warn!(region = %region, error = %e, "aliases not indexed"),
            }
        }
        let work = discovery
            .candidates
            .iter()
            .map(|c| Work {
                requested: c.key_id.clone(),
                key: c.key_id.clone(),
                regions: vec![c.region.clone()],
            })
            .collect();
        debug!(candidates = discovery.candidates.len(), "tag index read");
        (work, Some(index), discovery)
    }

    /// One key: describe it where it most likely is the primary, check it cheaply against
    /// the alias index, and sync it from fresh reads only if that shows something to do.
    async fn process(
        &self,
        w: &Work,
        sweep_regions: &[String],
        index: Option<&AliasIndex>,
        dry_run: bool,
    ) -> SyncReport {
        let mut last_error = None;
        let mut info = None;
        for region in &w.regions {
            match self.kms.describe_key(region, &w.key).await {
                Ok(i) => {
                    info = Some(i);
                    break;
                }
                Err(e) if e.kind == ErrorKind::NotFound => {}
                Err(e) => {
                    last_error = Some(e);
                    break;
                }
            }
        }
        let Some(info) = info else {
            let outcome = match last_error {
                Some(e) => Outcome::failed(kms_replicator::explain::explain(&e), e.is_retryable()),
                None => Outcome::skipped(format!("{} not found in {}", w.key, w.regions.join(" "))),
            };
            let mut r = SyncReport::key_level(&w.requested, outcome);
            r.dry_run = dry_run;
            return r;
        };
        if let Some(mr) = &info.multi_region {
            if mr.key_type == MultiRegionKeyType::Replica
                && !sweep_regions.contains(&mr.primary_region)
            {
                let mut r = SyncReport::key_level(
                    &w.requested,
                    Outcome::skipped(format!(
                        "a replica whose primary is in {}, which this run does not cover",
                        mr.primary_region
                    )),
                );
                r.key_id = Some(info.key_id.clone());
                r.primary_region = Some(mr.primary_region.clone());
                r.dry_run = dry_run;
                return r;
            }
        }
        if let Some(index) = index {
            let quick = Syncer::new(self.kms, self.config)
                .with_alias_index(index)
                .sync_described(&w.requested, info.clone(), true)
                .await;
            if is_clean(&quick) {
                let mut r = quick;
                r.dry_run = dry_run;
                return r;
            }
        }
        Syncer::new(self.kms, self.config)
            .sync_described(&w.requested, info, dry_run)
            .await
    }

    /// The key's audit events, as the replicate function publishes them, less "Replication
    /// Skipped": a sweep would repeat those every run for as long as the cause stands (the
    /// plan and the logs show them).
    async fn publish(&self, report: &SyncReport, ctx: &AuditContext) {
        let mut events = audit_events(report, ctx);
        events.retain(|e| e.detail_type != REPLICATION_SKIPPED);
        if events.is_empty() {
            return;
        }
        if let Err(e) = self.audit.publish(&events).await {
            error!(error = %e, count = events.len(), "audit events not published");
        }
    }
}

/// Nothing to write and nothing failed.
fn is_clean(r: &SyncReport) -> bool {
    matches!(r.outcome, Outcome::InSync | Outcome::Skipped { .. })
        && r.regions.iter().all(|g| {
            g.actions.is_empty() && matches!(g.outcome, Outcome::InSync | Outcome::Skipped { .. })
        })
}

/// One log line per key that is not in sync (keys in sync at debug level).
fn log_report(report: &SyncReport) {
    let key_id = report.key_id.as_deref().unwrap_or(&report.requested);
    let primary = report.primary_region.as_deref().unwrap_or("");
    if report.outcome == Outcome::InSync {
        debug!(key_id, primary_region = primary, "in sync");
        return;
    }
    if report.regions.is_empty() {
        info!(key_id, primary_region = primary, outcome = report.outcome.name(),
              detail = ?report.outcome, "key outcome");
    }
    for r in &report.regions {
        let actions: Vec<&str> = r.actions.iter().map(|a| a.op()).collect();
        info!(key_id, primary_region = primary, region = %r.region, outcome = r.outcome.name(),
              detail = ?r.outcome, actions = ?actions, "region outcome");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        Config::new(&["us-east-1", "us-west-2", "eu-west-1"])
    }

    #[test]
    fn rotation_stays_in_range_and_moves_between_runs() {
        for n in [1, 2, 7, 1000] {
            for run in 0..500u64 {
                assert!(rotation(n, run) < n);
            }
        }
        assert_eq!(rotation(0, 5), 0);
        assert_ne!(rotation(1000, 28_000_000), rotation(1000, 28_000_060));
    }

    /// An hourly schedule whose every run reaches only `k` of `n` keys still reaches every
    /// key, and soon: the property that lets a stateless sweep skip a persisted cursor.
    #[test]
    fn every_key_is_reached_within_a_few_runs_when_each_run_only_covers_a_tenth() {
        let (n, k) = (1000usize, 100usize);
        let first_minute = 29_000_000u64; // around 2025
        let mut last_seen = vec![None::<usize>; n];
        let mut worst_gap = 0;
        for run in 0..500usize {
            let start = rotation(n, first_minute + 60 * run as u64);
            for i in 0..k {
                let key = (start + i) % n;
                if let Some(prev) = last_seen[key] {
                    worst_gap = worst_gap.max(run - prev);
                } else {
                    worst_gap = worst_gap.max(run + 1);
                }
                last_seen[key] = Some(run);
            }
        }
        assert!(last_seen.iter().all(Option::is_some));
        assert!(worst_gap <= 2 * n / k, "worst gap {worst_gap} runs");
    }

    #[test]
    fn a_scheduled_event_sweeps_every_managed_region() {
        let event = serde_json::json!({
            "version": "0", "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
            "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": "2015-10-08T16:53:06Z", "region": "us-east-1",
            "resources": ["arn:aws:events:us-east-1:123456789012:rule/my-scheduled-rule"],
            "detail": {}
        });
        let r = parse_request(&event, &cfg()).unwrap();
        assert!(!r.dry_run);
        assert_eq!(r.scope, Scope::Regions(cfg().managed_regions));
        assert_eq!(
            r.trigger,
            Trigger::Schedule {
                event_id: "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa".into(),
                time: Some(1_444_323_186)
            }
        );
    }

    #[test]
    fn direct_requests_are_read_and_checked() {
        let c = cfg();
        let r = parse_request(&json!({"dryRun": true}), &c).unwrap();
        assert!(r.dry_run && r.trigger == Trigger::Direct);
        let r = parse_request(&json!({"regions": ["us-west-2", "us-west-2"]}), &c).unwrap();
        assert_eq!(r.scope, Scope::Regions(vec!["us-west-2".into()]));
        let r = parse_request(
            &json!({"keys": ["alias/payments", "mrk-1234abcd12ab34cd56ef1234567890ab",
                             "arn:aws:kms:us-east-1:111122223333:key/mrk-1"]}),
            &c,
        )
        .unwrap();
        assert!(matches!(r.scope, Scope::Keys(k) if k.len() == 3));
        assert!(parse_request(&Value::Null, &c).is_ok());
    }
}
