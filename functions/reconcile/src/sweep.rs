//! The run: the [`Reconciler`] handles an invocation, discovers the managed primaries, syncs
//! each with bounded concurrency until done or until the deadline margin, and publishes the
//! keys' audit events.

use crate::listing::{self, Work};
use crate::report::Sweep;
use crate::request::{parse_request, rotation, Invocation, Request, Scope};
use crate::settings::Settings;
use futures::stream::{FuturesUnordered, StreamExt};
use kms_replicator::audit::{audit_events, AuditContext, REPLICATION_SKIPPED};
use kms_replicator::discover::Discovery;
use kms_replicator::error::FunctionError;
use kms_replicator::limit::LimiterStats;
use kms_replicator::model::MultiRegionKeyType;
use kms_replicator::port::{ErrorKind, KmsError};
use kms_replicator::report::{log_report, Outcome, SyncReport};
use kms_replicator::sync::{index_aliases, AliasIndex};
use kms_replicator::Op;
use kms_replicator::{AuditSink, Config, Kms, Syncer, TagIndex};
use serde_json::Value;
use std::collections::HashSet;
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{error, info, warn};

/// What a run covers: its Regions, and what discovery met on the way.
struct Found {
    regions: Vec<String>,
    discovery: Discovery,
}

/// What the sweep loop waits for next.
enum Next {
    Done((String, SyncReport, Option<u64>)),
    Work(Option<Work>),
    Abandon,
}

/// Where a run's keys ended.
struct Synced {
    reports: Vec<SyncReport>,
    /// Abandoned while in flight.
    interrupted: Vec<String>,
    /// Repairs events should have made, per primary Region.
    missed: crate::missed::Missed,
    not_started: Vec<String>,
}

/// When a run stops starting keys (the deadline less the margin) and when it abandons the
/// keys still in flight (less half of it), so that the report always goes out in time.
/// `None`: no deadline.
#[derive(Debug, Clone, Copy)]
struct Stops {
    start_until: Option<Instant>,
    abandon_at: Option<Instant>,
}

impl Stops {
    fn new(deadline: Option<Instant>, margin: Duration, started: Instant) -> Stops {
        let before = |m: Duration| deadline.map(|d| d.checked_sub(m).unwrap_or(started));
        Stops {
            start_until: before(margin),
            abandon_at: before(margin / 2),
        }
    }

    fn may_start(&self) -> bool {
        self.start_until.is_none_or(|t| Instant::now() < t)
    }

    /// Ends when the keys in flight must be abandoned; never without a deadline.
    async fn abandon(&self) {
        match self.abandon_at {
            Some(t) => tokio::time::sleep_until(t).await,
            None => std::future::pending().await,
        }
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
    /// Handles one invocation that must answer by `deadline` (the Lambda invocation's; `None`
    /// for none). Returns the run's report; an error for bad input (before any call), or, for
    /// a real (not dry) run, when some key failed in a way worth retrying, so that the run
    /// shows up in the function's errors.
    pub async fn handle(
        &self,
        event: &Value,
        deadline: Option<Instant>,
    ) -> Result<Value, FunctionError> {
        let request = parse_request(event, self.config).map_err(|e| {
            warn!(error = %e, "rejecting the invocation's input");
            FunctionError::InvalidInput(e.to_string())
        })?;
        let sweep = self.run(&request, deadline).await;
        sweep.metrics(&self.config.metrics_namespace).emit();
        crate::missed::emit(&self.config.metrics_namespace, &sweep.events_missed);
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
        let mut body = sweep.to_json();
        if sweep.dry_run {
            let (text, value) = crate::key_use::key_use(self.kms, &sweep).await;
            let summary = body["summary"].as_str().unwrap_or_default().to_string();
            body["summary"] = Value::String(format!("{summary}\n{text}"));
            body["keyUse"] = value;
        }
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

    /// The run itself: the keys to sync, then every one of them with bounded concurrency
    /// until done or until the deadline margin. Discovery hands keys over as it finds them
    /// (the first pages' while later pages are listed), so syncing starts with the first page.
    async fn run(&self, request: &Request, deadline: Option<Instant>) -> Sweep {
        let started = Instant::now();
        let (throttles_before, waited_before) = self.limiter_counts();
        let stops = Stops::new(deadline, self.settings.deadline_margin, started);
        let rotate_minute = match request.trigger {
            Invocation::Schedule {
                time: Some(secs), ..
            } => Some(secs / 60),
            _ => None,
        };
        let ctx = audit_context(&request.trigger);
        let dry_run = request.dry_run;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (found, mut synced) =
            tokio::join!(self.find_work(request, stops, rotate_minute, tx), async {
                let index = match &request.scope {
                    Scope::Regions(regions) => Some(self.alias_index(regions).await),
                    Scope::Keys(_) => None,
                };
                let regions = self.scope_regions(request);
                self.sync_all(&mut rx, &regions, index.as_ref(), &ctx, dry_run, stops)
                    .await
            });
        let Found {
            regions, discovery, ..
        } = found;
        rx.close();
        while let Ok(w) = rx.try_recv() {
            synced.not_started.push(w.requested);
        }
        if !synced.not_started.is_empty() {
            warn!(
                count = synced.not_started.len(),
                "deadline: keys left for the next run"
            );
        }
        let mut reports = single_region_reports(&discovery, dry_run);
        reports.append(&mut synced.reports);
        reports.sort_by(|a, b| {
            let key = |r: &SyncReport| r.key_id.clone().unwrap_or_else(|| r.requested.clone());
            key(a).cmp(&key(b))
        });
        let (throttles_after, waited_after) = self.limiter_counts();
        Sweep {
            dry_run,
            regions,
            reports,
            not_started: synced.not_started,
            interrupted: synced.interrupted,
            events_missed: synced.missed,
            discovery_errors: discovery.failed,
            duration: started.elapsed(),
            throttles: throttles_after.saturating_sub(throttles_before),
            rate_limit_wait: waited_after.saturating_sub(waited_before),
        }
    }

    /// The Regions a run covers.
    fn scope_regions(&self, request: &Request) -> Vec<String> {
        match &request.scope {
            Scope::Regions(regions) => regions.clone(),
            Scope::Keys(_) => self.config.managed_regions.clone(),
        }
    }

    /// The limiter's throttles and waits so far.
    fn limiter_counts(&self) -> (usize, Duration) {
        self.limiter
            .map(|l| (l.throttles(), l.waited()))
            .unwrap_or_default()
    }

    /// The keys the request names, or those discovery finds in its Regions, sent to `tx` as
    /// they are found ([`crate::listing`]); the rest of a scheduled sweep's in its rotated
    /// order. Discovery still running when keys may no longer start counts as failed in every
    /// Region.
    async fn find_work(
        &self,
        request: &Request,
        stops: Stops,
        rotate_minute: Option<u64>,
        tx: mpsc::UnboundedSender<Work>,
    ) -> Found {
        match &request.scope {
            Scope::Regions(regions) => {
                let listing = listing::discover(self.tags, &self.config.tag_key, regions, &tx);
                let discovered = match stops.start_until {
                    Some(t) => tokio::time::timeout_at(t, listing).await.ok(),
                    None => Some(listing.await),
                };
                let discovery = match discovered {
                    Some((discovery, rest)) => {
                        let mut rest = rest;
                        if let Some(minute) = rotate_minute {
                            let start = rotation(rest.len(), minute);
                            rest.rotate_left(start);
                        }
                        for w in rest {
                            let _ = tx.send(w);
                        }
                        discovery
                    }
                    None => discovery_cut_short(regions),
                };
                Found {
                    regions: regions.clone(),
                    discovery,
                }
            }
            Scope::Keys(keys) => {
                let regions = self.config.managed_regions.clone();
                for k in keys {
                    let _ = tx.send(Work {
                        requested: k.clone(),
                        key: k.clone(),
                        regions: match kms_replicator::arn::region_of(k) {
                            Some(r) => vec![r.to_string()],
                            None => regions.clone(),
                        },
                    });
                }
                Found {
                    regions,
                    discovery: Discovery::default(),
                }
            }
        }
    }

    /// Syncs the keys from `work` in the order they come, at most `concurrency` at once, each
    /// one's audit events published as it ends, until the sender is done and nothing is left,
    /// or until `stops` says so. What is still in `work` then was not started.
    async fn sync_all(
        &self,
        work: &mut mpsc::UnboundedReceiver<Work>,
        regions: &[String],
        index: Option<&AliasIndex>,
        ctx: &AuditContext,
        dry_run: bool,
        stops: Stops,
    ) -> Synced {
        let mut in_flight = FuturesUnordered::new();
        let mut running: HashSet<String> = HashSet::new();
        let mut reports = Vec::new();
        let mut interrupted = Vec::new();
        let mut missed = crate::missed::Missed::new();
        let concurrency = self.settings.concurrency.max(1);
        let mut open = true;
        loop {
            let room = in_flight.len() < concurrency && stops.may_start();
            if in_flight.is_empty() && !(open && room) {
                break;
            }
            let next = tokio::select! {
                Some(done) = in_flight.next() => Next::Done(done),
                w = work.recv(), if open && room => Next::Work(w),
                _ = stops.abandon() => Next::Abandon,
            };
            match next {
                Next::Work(None) => open = false,
                Next::Work(Some(w)) => {
                    running.insert(w.requested.clone());
                    in_flight.push(async move {
                        let (report, created) = self.process(&w, regions, index, dry_run).await;
                        self.publish(&report, ctx).await;
                        (w.requested, report, created)
                    });
                }
                Next::Done((requested, report, created)) => {
                    running.remove(&requested);
                    let delay = self.settings.event_delay;
                    if let Some(r) =
                        crate::missed::missed_region(&report, created, delay, SystemTime::now())
                    {
                        *missed.entry(r).or_default() += 1;
                    }
                    log_report(&report);
                    reports.push(report);
                }
                Next::Abandon => {
                    interrupted.extend(running.drain());
                    interrupted.sort();
                    warn!(
                        count = interrupted.len(),
                        "deadline: abandoning keys in flight"
                    );
                    break;
                }
            }
        }
        Synced {
            reports,
            interrupted,
            not_started: Vec::new(),
            missed,
        }
    }

    /// The aliases of every Region the sweep reads (the swept Regions and the allowed ones),
    /// concurrently; a Region whose aliases could not be read is left out (its keys fall back
    /// to one ListAliases each).
    async fn alias_index(&self, regions: &[String]) -> AliasIndex {
        let mut alias_regions: Vec<String> = regions.to_vec();
        for r in &self.config.allowed_regions {
            if !alias_regions.contains(r) {
                alias_regions.push(r.clone());
            }
        }
        let aliases =
            futures::future::join_all(alias_regions.iter().map(|r| self.kms.list_aliases(r, None)))
                .await;
        let mut index = AliasIndex::new();
        for (region, answer) in alias_regions.iter().zip(aliases) {
            match answer {
                Ok(entries) => {
                    index.insert(region.clone(), index_aliases(entries));
                }
                Err(e) => warn!(region = %region, error = %e, "aliases not indexed"),
            }
        }
        index
    }

    /// One key: describe it where it most likely is the primary, check it cheaply against
    /// the alias index, and sync it from fresh reads only if that shows something to do.
    /// Returns the report and the primary's creation date (for [`crate::missed`]).
    async fn process(
        &self,
        w: &Work,
        sweep_regions: &[String],
        index: Option<&AliasIndex>,
        dry_run: bool,
    ) -> (SyncReport, Option<u64>) {
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
            return (r, None);
        };
        let created = info.creation_date;
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
                return (r, created);
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
                return (r, created);
            }
        }
        let report = Syncer::new(self.kms, self.config)
            .sync_described(&w.requested, info, dry_run)
            .await;
        (report, created)
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

/// Discovery that did not finish before the deadline margin: failed in every Region.
fn discovery_cut_short(regions: &[String]) -> Discovery {
    let failed = regions
        .iter()
        .map(|r| {
            KmsError::new(
                ErrorKind::Unreachable,
                Op::GetResources,
                r,
                "DeadlineReached",
                "discovery did not finish before the deadline margin",
            )
        })
        .collect();
    Discovery {
        failed,
        ..Discovery::default()
    }
}

/// Tagged keys that discovery knows from their ids to be single-Region: reported, never synced.
fn single_region_reports(discovery: &Discovery, dry_run: bool) -> Vec<SyncReport> {
    discovery
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
            r.dry_run = dry_run;
            r
        })
        .collect()
}

/// What the keys' audit events say triggered them.
fn audit_context(trigger: &Invocation) -> AuditContext {
    AuditContext {
        trigger_event: Some(match trigger {
            Invocation::Schedule { .. } => "Scheduled Event".to_string(),
            Invocation::Direct => "Reconcile".to_string(),
        }),
        trigger_event_id: match trigger {
            Invocation::Schedule { event_id, .. } => Some(event_id.clone()),
            Invocation::Direct => None,
        },
        trigger_region: None,
    }
}
