//! The benchmark's scenarios (`make bench`, `tests/benches/replicator.rs`), small enough to
//! also run as the quota model's regression tests (`tests/tests/scenarios.rs`).
//!
//! Each scenario runs the real function binaries against the twin over HTTP (the local
//! cloud), with KMS's request quotas enforced by the twin (beyond them ThrottlingException,
//! as KMS answers) and a fixed latency on every KMS call. It returns what it measured beside
//! the floor: the least time that the KMS quotas and the dependent call rounds allow. No run
//! can beat its floor; the ratio says how close to it the replicator gets.

use crate::bins::root;
use crate::{config, seed_primary, PRIMARY_REGION};
use kms_replicator::limit::Quotas;
use kms_replicator::model::{KeyState, MultiRegionKeyType, Tag};
use kms_replicator::Kms as _;
use kms_replicator::{Config, Op};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use twin::{Call, Twin, ADMIN_USER, FAILOVER_ROLE, FUNCTION_ROLES, RECONCILE_ROLE, REPLICATE_ROLE};
use twin_server::{LocalCloud, LocalCloudBuilder};

mod latency;
pub use latency::Latencies;

/// The latency injected on every KMS call: Lambda to KMS in the same Region.
pub const LATENCY: Duration = Duration::from_millis(20);

/// KMS counts requests per second.
const WINDOW: Duration = Duration::from_secs(1);

/// How long both keys stay `Updating` after UpdatePrimaryRegion in the failover scenario.
/// AWS says "a few more seconds" and publishes no figure.
pub const UPDATING_FOR: Duration = Duration::from_secs(2);

/// Ten Regions a key can be replicated to from us-east-1, all in the allow-list below.
pub const TARGETS: [&str; 10] = [
    "us-west-2",
    "eu-west-1",
    "ap-southeast-2",
    "us-east-2",
    "us-west-1",
    "eu-central-1",
    "eu-west-2",
    "ap-northeast-1",
    "ap-south-1",
    "ca-central-1",
];

/// From now on the twin throttles every operation beyond its KMS quota, as KMS does.
pub fn enforce_kms_quotas(twin: &Twin) {
    for &op in Op::ALL {
        if let Some(n) = op.kms_quota() {
            twin.set_rate_limit(op, n);
        }
    }
}

/// The requests KMS counted, per (Region, operation), including the ones a call adds
/// elsewhere (a ReplicateKey is also two CreateKey requests in the replica's Region), and
/// which of them come in indivisible units (those two CreateKey requests).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Charges(
    pub BTreeMap<(String, Op), usize>,
    BTreeMap<(String, Op), usize>,
);

impl Charges {
    pub fn of(calls: &[Call]) -> Charges {
        let mut c = Charges::default();
        for call in calls {
            c.add(&call.region, call.op, 1);
        }
        c
    }

    pub fn add(&mut self, region: &str, op: Op, n: usize) {
        *self.0.entry((region.to_string(), op)).or_default() += n;
    }

    /// `n` requests of `op` that arrive `unit` at a time, counted in one window together
    /// (ReplicateKey's two CreateKey requests in the replica's Region): a window of quota
    /// `q` then admits only `q / unit` units, rounded down.
    pub fn add_in_units(&mut self, region: &str, op: Op, n: usize, unit: usize) {
        self.add(region, op, n);
        self.1.insert((region.to_string(), op), unit.max(1));
    }

    /// Calls of `op` in every Region.
    pub fn count(&self, op: Op) -> usize {
        self.0
            .iter()
            .filter(|((_, o), _)| *o == op)
            .map(|(_, n)| n)
            .sum()
    }

    pub fn total(&self) -> usize {
        self.0.values().sum()
    }

    /// The least time KMS takes to accept these requests when each (Region, operation)
    /// allows `limit(op)` per second: the busiest pair sends a full second's worth, waits a
    /// window, and so on; its last batch goes out `ceil(n / limit) - 1` windows after its
    /// first (for requests in units, `ceil(units / (limit / unit)) - 1`). Returns that time
    /// and which pair sets it.
    pub fn quota_time(&self, limit: impl Fn(Op) -> Option<u32>) -> (Duration, String) {
        let mut worst = (
            Duration::ZERO,
            String::from("no operation beyond its quota"),
        );
        for (pair, n) in &self.0 {
            let (region, op) = pair;
            let Some(q) = limit(*op) else { continue };
            let unit = self.1.get(pair).copied().unwrap_or(1);
            let per_window = (q as usize / unit).max(1);
            let windows = n.div_ceil(unit).div_ceil(per_window).saturating_sub(1) as u32;
            let t = WINDOW * windows;
            if t > worst.0 {
                worst = if unit > 1 {
                    let units = n.div_ceil(unit);
                    (
                        t,
                        format!(
                            "{n} {op} in {region}, {unit} at a time: {units} at {per_window}/s (a {q}/s quota holds {per_window} of them)"
                        ),
                    )
                } else {
                    (t, format!("{n} {op} in {region} at {q}/s"))
                };
            }
        }
        worst
    }

    /// Operation: calls, in all Regions, most first.
    pub fn by_operation(&self) -> Vec<(Op, usize)> {
        let mut by: BTreeMap<Op, usize> = BTreeMap::new();
        for ((_, op), n) in &self.0 {
            *by.entry(*op).or_default() += n;
        }
        let mut v: Vec<_> = by.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }
}

/// KMS's own quota for `op` (writes and reads): the account's limit per Region.
pub fn kms_quota(op: Op) -> Option<u32> {
    Quotas::kms(u32::MAX).limit(op)
}

/// The least time a scenario can take: `rounds` calls that each wait for the one before
/// (each costs the latency), plus the windows the busiest quota needs, plus waits KMS
/// imposes (the `Updating` state).
#[derive(Debug, Clone)]
pub struct Floor {
    pub rounds: u32,
    pub latency: Duration,
    pub quota: Duration,
    pub wait: Duration,
    /// Which (Region, operation) sets the quota time.
    pub why: String,
}

impl Floor {
    pub fn time(&self) -> Duration {
        self.latency * self.rounds + self.quota + self.wait
    }
}

/// What one timed scenario measured.
#[derive(Debug, Clone)]
pub struct Measured {
    pub wall: Duration,
    pub floor: Floor,
    pub charges: Charges,
    /// ThrottlingException answers the twin gave.
    pub throttles: usize,
    /// Events whose every attempt failed (they would be in the dead-letter queue).
    pub dead_letters: usize,
    /// The function process's peak resident memory (VmHWM), KiB.
    pub peak_rss_kib: Option<u64>,
}

impl Measured {
    pub fn ratio(&self) -> f64 {
        self.wall.as_secs_f64() / self.floor.time().as_secs_f64()
    }
}

/// Where the benchmark finds the binaries, and the latency it injects.
#[derive(Debug, Clone)]
pub struct Bench {
    pub bin_dir: PathBuf,
    pub latency: Duration,
}

impl Bench {
    fn binary(&self, name: &str) -> PathBuf {
        let p = self.bin_dir.join(name);
        assert!(p.is_file(), "{} was not built", p.display());
        p
    }

    /// A local cloud with `function` and the deployment's defaults, invocations of up to
    /// `timeout`.
    async fn cloud(
        &self,
        function: &str,
        timeout: Duration,
        allowed: &str,
        configure: impl FnOnce(LocalCloudBuilder) -> LocalCloudBuilder,
    ) -> LocalCloud {
        configure(
            LocalCloud::builder()
                .function(function, self.binary(function))
                .env("ALLOWED_REGIONS", allowed)
                .env("IGNORE_CALLER_ARNS", &FUNCTION_ROLES.join(" "))
                .timeout(timeout),
        )
        .start()
        .await
        .expect("local cloud starts")
    }

    /// Cold start of `function`: from the process's start to its first request for work
    /// (`GET /runtime/invocation/next`), and its peak resident memory at that moment.
    pub fn cold_start(&self, function: &str) -> (Duration, u64) {
        let binary = self.binary(function);
        let listener = TcpListener::bind("127.0.0.1:0").expect("loopback port");
        let api = listener.local_addr().expect("address").to_string();
        let started = Instant::now();
        let mut child = Command::new(&binary)
            .env_clear()
            .envs(lambda_env(function, &api))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the function starts");
        let (stream, _) = listener
            .accept()
            .expect("the function calls the Runtime API");
        let mut line = String::new();
        BufReader::new(&stream)
            .read_line(&mut line)
            .expect("request line");
        let took = started.elapsed();
        let rss = peak_rss_kib(child.id()).unwrap_or(0);
        let _ = child.kill();
        let _ = child.wait();
        assert!(
            line.starts_with("GET /2018-06-01/runtime/invocation/next"),
            "{function}'s first request: {line}"
        );
        (took, rss)
    }

    /// One new key in us-east-1 with `aliases` aliases, tagged for the first `regions` of
    /// [`TARGETS`], handed to the replicate function deployed with `reserved` reserved
    /// concurrency (each sandbox keeps that share of the quotas): `runs` times, a new key
    /// each time. The figure is the median time of the invocation.
    pub async fn fan_out(
        &self,
        regions: usize,
        aliases: usize,
        reserved: u32,
        runs: usize,
    ) -> Measured {
        let allowed = format!("{PRIMARY_REGION} {}", TARGETS.join(" "));
        let cloud = self
            .cloud("replicate", Duration::from_secs(60), &allowed, |b| {
                b.function_env(
                    "replicate",
                    "REPLICATE_RESERVED_CONCURRENCY",
                    &reserved.to_string(),
                )
            })
            .await;
        let twin = cloud.twin().clone();
        let targets = TARGETS[..regions].join(" ");
        // The first invocation starts the process and its SDK clients: not measured.
        let warm = tagged_key(&cloud, &TARGETS.join(" "), aliases, "warm-up").await;
        twin.set_latency(self.latency);
        enforce_kms_quotas(&twin);
        cloud.invoke("replicate", &warm).await.expect("warm-up");
        let mut walls = Vec::new();
        let mut charges = Charges::default();
        for run in 0..runs {
            // The limiter holds each permit one window after its answer.
            tokio::time::sleep(WINDOW + Duration::from_millis(100)).await;
            twin.set_latency(Duration::ZERO);
            let event = tagged_key(&cloud, &targets, aliases, &format!("run {run}")).await;
            twin.set_latency(self.latency);
            twin.reset_calls();
            let started = Instant::now();
            cloud.invoke("replicate", &event).await.expect("replicate");
            walls.push(started.elapsed());
            charges = Charges::of(&twin.calls());
            let key = crate::requested_key(&event);
            let key = key.as_str();
            for r in &TARGETS[..regions] {
                assert!(twin.key(r, key).is_some(), "no replica of {key} in {r}");
            }
        }
        // Each ReplicateKey is also two CreateKey requests in its replica's Region.
        for r in &TARGETS[..regions] {
            charges.add_in_units(r, Op::CreateKey, 2, 2);
        }
        walls.sort();
        let (quota, why) = charges.quota_time(kms_quota);
        Measured {
            wall: walls[walls.len() / 2],
            floor: Floor {
                rounds: NEW_KEY_ROUNDS,
                latency: self.latency,
                quota,
                wait: Duration::ZERO,
                why,
            },
            throttles: twin.throttled_count(),
            dead_letters: 0,
            peak_rss_kib: peak_of(&cloud, "replicate"),
            charges,
        }
    }

    /// `keys` keys in us-east-1 tagged at once for us-west-2 and eu-west-1; their TagResource
    /// events reach the replicate function as EventBridge invokes it (asynchronously, with
    /// retries and a dead-letter queue), with its default reserved concurrency of 2. The
    /// figure is the time until every replica exists.
    pub async fn burst(&self, keys: usize) -> Measured {
        let cloud = self
            .cloud(
                "replicate",
                Duration::from_secs(60),
                "us-east-1 us-west-2 eu-west-1",
                |b| {
                    b.concurrency(2)
                        .function_env("replicate", "REPLICATE_RESERVED_CONCURRENCY", "2")
                        .retry_delay(Duration::from_secs(1))
                },
            )
            .await;
        let twin = cloud.twin().clone();
        let mut events = Vec::new();
        for i in 0..keys {
            events.push(tagged_key(&cloud, "us-west-2 eu-west-1", 0, &format!("burst {i}")).await);
        }
        twin.set_latency(self.latency);
        enforce_kms_quotas(&twin);
        twin.reset_calls();
        let ids: Vec<String> = events.iter().map(crate::requested_key).collect();
        let started = Instant::now();
        for e in events {
            cloud.invoke_async("replicate", e).expect("replicate");
        }
        let mut waiting: Vec<(&str, &str)> = ids
            .iter()
            .flat_map(|id| [("us-west-2", id.as_str()), ("eu-west-1", id.as_str())])
            .collect();
        while !waiting.is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
            waiting.retain(|(r, id)| twin.key(r, id).is_none());
            if let Some(dead) = cloud.dead_letters().first() {
                panic!("an event was dead-lettered: {dead}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(60 + 2 * keys as u64),
                "{} replicas still missing",
                waiting.len()
            );
        }
        let wall = started.elapsed();
        cloud
            .settle(Duration::from_secs(120))
            .await
            .expect("the burst settles");
        let mut charges = Charges::of(&twin.calls());
        // Each ReplicateKey is two CreateKey requests in its replica's Region, counted
        // together: 5 a second there admit 2 replicas a second, not 2.5.
        for r in ["us-west-2", "eu-west-1"] {
            charges.add_in_units(r, Op::CreateKey, 2 * keys, 2);
        }
        let (quota, why) = charges.quota_time(kms_quota);
        Measured {
            wall,
            // The first key's reads before its ReplicateKey, and nothing after the last one.
            floor: Floor {
                rounds: 3,
                latency: self.latency,
                quota,
                wait: Duration::ZERO,
                why,
            },
            throttles: twin.throttled_count(),
            dead_letters: cloud.dead_letters().len(),
            peak_rss_kib: peak_of(&cloud, "replicate"),
            charges,
        }
    }

    /// `keys` managed keys, primaries spread over three Regions, each replicated to the other
    /// two with one alias, in sync. Returns a scheduled sweep of them all, then a second
    /// sweep after people changed one replica of every `1 / drift` key (its policy, a tag,
    /// its description or an alias, in turn).
    pub async fn sweep(&self, keys: usize, drift_every: usize) -> (Measured, Measured) {
        const REGIONS: [&str; 3] = ["us-east-1", "us-west-2", "eu-west-1"];
        let cloud = self
            .cloud(
                "reconcile",
                Duration::from_secs(900),
                &REGIONS.join(" "),
                // `RECONCILE_CONCURRENCY=N cargo bench ... -- --only sweep` measures another
                // number of keys in flight than the default.
                |b| match std::env::var("RECONCILE_CONCURRENCY") {
                    Ok(n) => b.function_env("reconcile", "RECONCILE_CONCURRENCY", &n),
                    Err(_) => b,
                },
            )
            .await;
        let twin = cloud.twin().clone();
        let admin = twin.with_caller(ADMIN_USER);
        let mut made = Vec::new();
        for i in 0..keys {
            let home = REGIONS[i % 3];
            let others = format!("{} {}", REGIONS[(i + 1) % 3], REGIONS[(i + 2) % 3]);
            let key = admin
                .create_key(
                    home,
                    true,
                    None,
                    &format!("key {i}"),
                    &[Tag::new("replicate-to", &others), Tag::new("team", "bench")],
                )
                .key_id;
            admin
                .create_alias(home, &format!("alias/bench-{i}"), &key)
                .await
                .expect("alias");
            made.push((REGIONS[(i + 1) % 3], key));
        }
        // In sync, with no latency and no limit: the starting point, not measured.
        let cfg = Config::new(&REGIONS);
        let unlimited = kms_replicator::limit::RateLimitedKms::new(
            crate::as_function(&twin, &cfg, RECONCILE_ROLE),
            Quotas::unlimited(),
        );
        let settings = reconcile::Settings::default();
        let setup = reconcile::Reconciler {
            kms: &unlimited,
            tags: &unlimited,
            audit: &twin,
            config: &cfg,
            settings: &settings,
            limiter: None,
        };
        let far = tokio::time::Instant::now() + Duration::from_secs(3600);
        let out = setup
            .handle(&scheduled(), Some(far))
            .await
            .expect("setup sweep");
        assert_eq!(out["counts"]["repaired"], keys, "{}", out["summary"]);
        twin.take_trail();

        twin.set_latency(self.latency);
        enforce_kms_quotas(&twin);
        let in_sync = self.timed_sweep(&cloud, keys, 0).await;

        let mut drifted = 0;
        twin.set_latency(Duration::ZERO);
        twin.clear_rate_limits();
        // The keys have the default policy; a person's own policy on a replica is drift.
        let policy = crate::primary_policy(&twin.account());
        for (i, (away, key)) in made.iter().enumerate().step_by(drift_every.max(1)) {
            let edit = match i / drift_every.max(1) % 4 {
                0 => admin.put_key_policy(away, key, &policy).await,
                1 => admin.untag_resource(away, key, &["team".into()]).await,
                2 => admin.update_key_description(away, key, "edited").await,
                _ => admin.delete_alias(away, &format!("alias/bench-{i}")).await,
            };
            edit.expect("a person's edit");
            drifted += 1;
        }
        twin.take_trail();
        twin.set_latency(self.latency);
        enforce_kms_quotas(&twin);
        tokio::time::sleep(WINDOW).await;
        let repaired = self.timed_sweep(&cloud, keys, drifted).await;
        (in_sync, repaired)
    }

    async fn timed_sweep(&self, cloud: &LocalCloud, keys: usize, drifted: usize) -> Measured {
        let twin = cloud.twin();
        twin.reset_calls();
        let throttled = twin.throttled_count();
        let started = Instant::now();
        let out = cloud
            .invoke("reconcile", &scheduled())
            .await
            .expect("sweep");
        let wall = started.elapsed();
        eprintln!("{}", timeline(&twin.calls(), started, wall));
        assert_eq!(out["counts"]["repaired"], drifted, "{}", out["summary"]);
        assert_eq!(
            out["counts"]["inSync"],
            keys - drifted,
            "{}",
            out["summary"]
        );
        let charges = Charges::of(&twin.calls());
        let settings = reconcile::Settings::default();
        let limits = Quotas::kms(settings.read_rate);
        let (quota, why) = charges.quota_time(|op| limits.limit(op));
        Measured {
            wall,
            // GetResources, then a key's DescribeKey, its other reads, its replicas' reads,
            // and when it repairs, the write and the primary read again (two rounds).
            floor: Floor {
                rounds: if drifted > 0 { 6 } else { 4 },
                latency: self.latency,
                quota,
                wait: Duration::ZERO,
                why,
            },
            throttles: twin.throttled_count() - throttled,
            dead_letters: 0,
            peak_rss_kib: peak_of(cloud, "reconcile"),
            charges,
        }
    }

    /// `keys` managed keys in us-east-1 replicated to us-west-2, all promoted to us-west-2 by
    /// one bulk failover invocation; both keys stay `Updating` for [`UPDATING_FOR`].
    pub async fn bulk_failover(&self, keys: usize) -> Measured {
        let (from, to) = ("us-east-1", "us-west-2");
        let cloud = self
            .cloud(
                "failover",
                Duration::from_secs(300),
                "us-east-1 us-west-2",
                |b| b,
            )
            .await;
        let twin = cloud.twin().clone();
        let mut cfg = Config::new(&[from, to]);
        cfg.ignore_callers = FUNCTION_ROLES.map(String::from).to_vec();
        // Replicated in process, with no latency and no limit: the starting point.
        let kms = crate::as_function(&twin, &cfg, REPLICATE_ROLE);
        let replicator = replicate::Replicator {
            kms: &kms,
            audit: &twin,
            config: &cfg,
        };
        let mut ids = Vec::new();
        for i in 0..keys {
            let e = tagged_key(&cloud, to, 1, &format!("failover {i}")).await;
            replicator.handle(&e, None).await.expect("replicated");
            ids.push(crate::requested_key(&e));
        }
        twin.take_trail();
        twin.set_latency(self.latency);
        twin.set_updating_for(UPDATING_FOR);
        enforce_kms_quotas(&twin);
        twin.reset_calls();
        let started = Instant::now();
        let out = cloud
            .invoke("failover", &json!({"from": from, "to": to}))
            .await
            .expect("failover");
        let wall = started.elapsed();
        for id in &ids {
            let k = twin.key(to, id).expect("the replica");
            assert_eq!(
                (k.multi_region, k.state),
                (Some(MultiRegionKeyType::Primary), KeyState::Enabled),
                "{id}: {}",
                out["summary"]
            );
        }
        let mut charges = Charges::of(&twin.calls());
        // Counted in the new primary's Region too.
        charges.add(
            to,
            Op::UpdatePrimaryRegion,
            charges.count(Op::UpdatePrimaryRegion),
        );
        let (quota, why) = charges.quota_time(kms_quota);
        Measured {
            wall,
            // Find the keys, check both, promote; after the wait, check the new primary and
            // sync from it.
            floor: Floor {
                rounds: 6,
                latency: self.latency,
                quota,
                wait: UPDATING_FOR,
                why,
            },
            throttles: twin.throttled_count(),
            dead_letters: 0,
            peak_rss_kib: peak_of(&cloud, "failover"),
            charges,
        }
    }
}

/// The dependent rounds of a new key's sync as the design has them: DescribeKey; the
/// primary's policy, tags and aliases; ReplicateKey; the aliases; and the primary read again
/// (DescribeKey, then the other three).
pub const NEW_KEY_ROUNDS: u32 = 6;

/// The EventBridge Scheduler event that starts a sweep.
pub fn scheduled() -> Value {
    json!({"source": "aws.events", "detail-type": "Scheduled Event", "id": "bench",
           "time": "2025-01-01T00:00:00Z", "detail": {}})
}

/// A person's new multi-Region key in us-east-1 with `aliases` aliases, then tagged for
/// `regions`: returns the TagResource event EventBridge would deliver. The cloud's bus routes
/// the twin's trail every 50 ms, so the record is looked for in what it routed too.
pub async fn tagged_key(cloud: &LocalCloud, regions: &str, aliases: usize, name: &str) -> Value {
    let twin = cloud.twin();
    let admin = twin.with_caller(ADMIN_USER);
    let policy = crate::primary_policy(&twin.account());
    let key = admin.create_key(PRIMARY_REGION, true, Some(&policy), name, &[]);
    for a in 0..aliases {
        let alias = format!("alias/{}-{a}", name.replace(' ', "-"));
        admin
            .create_alias(PRIMARY_REGION, &alias, &key.key_id)
            .await
            .expect("alias");
    }
    admin
        .tag_resource(
            PRIMARY_REGION,
            &key.key_id,
            &[Tag::new("replicate-to", regions)],
        )
        .await
        .expect("tag");
    let is_it = |e: &Value| {
        e["detail"]["eventName"] == "TagResource"
            && e["detail"]["requestParameters"]["keyId"] == key.key_id.as_str()
    };
    twin.take_trail()
        .into_iter()
        .rfind(is_it)
        .or_else(|| cloud.deliveries().into_iter().map(|d| d.event).rfind(is_it))
        .expect("the TagResource record")
}

/// What Lambda sets for a function, pointed at the Runtime API `api`, with credentials (as
/// Lambda gives them) and the deployment's settings: nothing from this machine.
fn lambda_env(function: &str, api: &str) -> Vec<(String, String)> {
    let mut env = twin_server::lambda::runtime_env(function, api, "bench");
    env.extend(
        [
            ("AWS_ACCESS_KEY_ID", "bench"),
            ("AWS_SECRET_ACCESS_KEY", "bench"),
            ("AWS_SESSION_TOKEN", "bench"),
            ("ALLOWED_REGIONS", "us-east-1 us-west-2 eu-west-1"),
            ("IGNORE_CALLER_ARNS", &FUNCTION_ROLES.join(" ")),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    env
}

/// A process's peak resident set (VmHWM in `/proc/<pid>/status`), KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The largest peak resident set among `function`'s running sandboxes.
fn peak_of(cloud: &LocalCloud, function: &str) -> Option<u64> {
    cloud
        .function(function)?
        .pids()
        .into_iter()
        .filter_map(peak_rss_kib)
        .max()
}

/// API economy: the KMS calls of each everyday job, counted on the in-process twin with the
/// replicate and failover handlers (no latency, no limits: counts do not depend on them).
/// Each row is (job, calls counted, the design's minimum, the calls by operation).
pub async fn api_economy(regions: usize) -> Vec<(String, Charges, usize)> {
    let twin = Twin::new();
    let mut cfg = config();
    cfg.allowed_regions = std::iter::once(PRIMARY_REGION)
        .chain(TARGETS.iter().copied())
        .map(str::to_string)
        .collect();
    cfg.ignore_callers = FUNCTION_ROLES.map(String::from).to_vec();
    let as_replicate = crate::as_function(&twin, &cfg, REPLICATE_ROLE);
    let handler = replicate::Replicator {
        kms: &as_replicate,
        audit: &twin,
        config: &cfg,
    };
    let aliases = 2;
    let targets = TARGETS[..regions].join(" ");
    let key = seed_primary(&twin).await;
    let admin = twin.with_caller(ADMIN_USER);
    admin
        .tag_resource(PRIMARY_REGION, &key, &[Tag::new("replicate-to", &targets)])
        .await
        .expect("tag");
    let mut rows = Vec::new();
    let (r, a) = (regions, aliases);
    let mut measure = |job: String, minimum: usize, calls: Vec<Call>| {
        rows.push((job, Charges::of(&calls), minimum));
    };

    // A person's event for the key, as EventBridge would deliver it.
    let last_event = |twin: &Twin| twin.take_trail().pop().expect("the person's record");
    let event = last_event(&twin);
    twin.reset_calls();
    handler.handle(&event, None).await.expect("new key");
    // 4 primary reads, R ReplicateKey, R x A CreateAlias, the 4 reads again.
    measure(
        format!("new key, {r} Regions, {a} aliases"),
        8 + r * (1 + a),
        twin.calls(),
    );
    twin.take_trail();

    twin.reset_calls();
    handler.handle(&event, None).await.expect("steady state");
    // 4 primary reads and the same 4 of each replica; nothing written, nothing read again.
    measure("steady-state sync".into(), 4 + 4 * r, twin.calls());

    let mut policy: Value =
        serde_json::from_str(&twin.key(PRIMARY_REGION, &key).expect("primary").policy)
            .expect("JSON policy");
    policy["Statement"][0]["Sid"] = json!("Edited by a person");
    let policy = policy.to_string();
    admin
        .put_key_policy(PRIMARY_REGION, &key, &policy)
        .await
        .expect("policy");
    let event = last_event(&twin);
    twin.reset_calls();
    handler.handle(&event, None).await.expect("policy change");
    // The reads, one PutKeyPolicy per Region and one TagResource (the digest of the policy it
    // now mirrors, shared/src/promotion.rs), the primary's 4 reads again.
    measure("one policy change".into(), 8 + 4 * r + 2 * r, twin.calls());
    twin.take_trail();

    admin
        .create_alias(PRIMARY_REGION, "alias/payments-new", &key)
        .await
        .expect("alias");
    let event = last_event(&twin);
    twin.reset_calls();
    handler.handle(&event, None).await.expect("alias change");
    // The reads; in each Region the name looked up (DescribeKey) and created; the primary's
    // 4 reads again. The lookup is the design's: a name another key holds must cost a read
    // (2,000/s) on each later sync, not a refused CreateAlias (5/s).
    measure("one alias added".into(), 8 + 4 * r + 2 * r, twin.calls());
    twin.take_trail();

    let as_failover = twin.with_caller(FAILOVER_ROLE);
    let failover = failover::Failover {
        kms: &as_failover,
        audit: &twin,
        config: &cfg,
        settings: failover::FailoverSettings::default(),
    };
    twin.reset_calls();
    let out = failover
        .handle(
            &json!({"key": key, "region": PRIMARY_REGION, "to": TARGETS[0]}),
            None,
        )
        .await
        .expect("failover");
    assert!(
        twin.key(TARGETS[0], &key).expect("replica").multi_region
            == Some(MultiRegionKeyType::Primary),
        "{}",
        out["summary"]
    );
    // Find the key (DescribeKey); the pre-checks describe the primary again (bulk discovery
    // may be minutes old) and the target; the old primary's policy, tags and aliases; the
    // target's 4 reads, to bring it up to date first (in sync here: no write); the
    // primary-history tag on both keys; UpdatePrimaryRegion; one DescribeKey once the new
    // primary settled; its policy, tags and aliases, read once for the checks and the sync;
    // each replica's 4 reads (the old primary is one), its tags mirrored (1 TagResource);
    // the new primary's 4 reads again; the last use of the target and of the old primary
    // (2 GetKeyLastUsage, information for the report).
    measure(
        "one failover".into(),
        1 + 2 + 3 + 4 + 2 + 1 + 1 + 3 + 5 * r + 4 + 2,
        twin.calls(),
    );
    rows
}

/// The docs page where the benchmark's table goes (`make bench`).
pub fn performance_page() -> PathBuf {
    root().join("docs").join("performance.md")
}

/// Replaces what lies between `<!-- bench:start -->` and `<!-- bench:end -->` in `path`.
pub fn splice(path: &Path, table: &str) -> std::io::Result<()> {
    const START: &str = "<!-- bench:start -->";
    const END: &str = "<!-- bench:end -->";
    let text = std::fs::read_to_string(path)?;
    let (Some(a), Some(b)) = (text.find(START), text.find(END)) else {
        return Err(std::io::Error::other(format!(
            "{} has no {START} ... {END} section",
            path.display()
        )));
    };
    let out = format!("{}{START}\n{table}{}", &text[..a], &text[b..]);
    std::fs::write(path, out)
}

/// Where a run's time went, per (Region, operation): when its first and last call came, how
/// many calls and the rate between the first and the last, busiest first (for reading a
/// sweep's figure against its floor).
pub fn timeline(calls: &[Call], started: Instant, wall: Duration) -> String {
    let mut by: BTreeMap<(String, Op), (Duration, Duration, usize)> = BTreeMap::new();
    for c in calls.iter().filter(|c| c.at >= started) {
        let t = c.at.saturating_duration_since(started);
        let e = by.entry((c.region.clone(), c.op)).or_insert((t, t, 0));
        e.0 = e.0.min(t);
        e.1 = e.1.max(t);
        e.2 += 1;
    }
    let mut rows: Vec<_> = by.into_iter().collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.1 .2));
    let mut out = format!("timeline of {:.1} s:", wall.as_secs_f64());
    for ((region, op), (first, last, n)) in rows.iter().take(12) {
        let span = (*last - *first).as_secs_f64();
        let rate = if span > 0.0 {
            format!(" ({:.1}/s between)", (n - 1) as f64 / span)
        } else {
            String::new()
        };
        out.push_str(&format!(
            "\n  {n:>6} {op} in {region}: first at {:.2} s, last at {:.2} s{rate}",
            first.as_secs_f64(),
            last.as_secs_f64(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeline_puts_the_busiest_pair_first_with_its_span_and_rate() {
        let started = Instant::now();
        let call = |region: &str, op, ms| Call {
            region: region.into(),
            op,
            caller: String::new(),
            at: started + Duration::from_millis(ms),
        };
        let before = Call {
            at: started - Duration::from_millis(5),
            ..call("us-east-1", Op::ListAliases, 0)
        };
        let calls = [
            before,
            call("us-east-1", Op::ListAliases, 100),
            call("eu-west-1", Op::DescribeKey, 1000),
            call("eu-west-1", Op::DescribeKey, 1500),
            call("eu-west-1", Op::DescribeKey, 2000),
        ];
        let t = timeline(&calls, started, Duration::from_secs(2));
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "timeline of 2.0 s:");
        // 3 calls one second apart from first to last: 2 a second between.
        assert_eq!(
            lines[1].trim(),
            "3 DescribeKey in eu-west-1: first at 1.00 s, last at 2.00 s (2.0/s between)"
        );
        // The call before the start is not counted; one call has no rate.
        assert_eq!(
            lines[2].trim(),
            "1 ListAliases in us-east-1: first at 0.10 s, last at 0.10 s"
        );
        assert_eq!(lines.len(), 3);
    }

    #[test]
    fn requests_in_units_fill_a_window_only_with_whole_units() {
        let mut c = Charges::default();
        c.add("us-east-1", Op::ReplicateKey, 1000);
        c.add_in_units("us-west-2", Op::CreateKey, 1000, 2);
        let (t, why) = c.quota_time(|_| Some(5));
        // 1000 ReplicateKey at 5 a window: 199 windows after the first. 500 pairs of
        // CreateKey at 2 pairs a window (a third would be the 6th request): 249.
        assert_eq!(t, WINDOW * 249, "{why}");
        assert!(why.contains("500 at 2/s"), "{why}");
        let mut single = Charges::default();
        single.add("us-west-2", Op::CreateKey, 1000);
        assert_eq!(single.quota_time(|_| Some(5)).0, WINDOW * 199);
    }
}
