//! `make bench`: every benchmark scenario (`integration_tests::scenarios`) at full size, with
//! the release binaries, KMS's quotas enforced by the twin and 20 ms on every KMS call. Prints
//! one Markdown table; with `--docs` it also replaces the table in docs/performance.md.
//!
//! `cargo bench -p integration-tests --bench replicator -- [--quick] [--docs]`; `--quick`
//! runs each scenario small, to try the harness in a minute (its figures are not the published
//! table's).

use integration_tests::scenarios::{self, Bench, Charges, Measured, LATENCY, UPDATING_FOR};
use kms_replicator::config::RemovalPolicy;
use kms_replicator::Op;
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestRunner};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The safety test's model of people, events and invariants, timed here as it is.
#[path = "../tests/random_histories.rs"]
#[allow(dead_code)]
mod random_histories;

struct Sizes {
    cold_starts: usize,
    /// (Regions, the replicate function's reserved concurrency).
    fan_out: &'static [(usize, u32)],
    fan_out_runs: usize,
    burst: usize,
    /// Keys tagged one after another for the end-to-end latency.
    latency_keys: usize,
    sweep: usize,
    failover: usize,
    histories: u32,
}

const FULL: Sizes = Sizes {
    cold_starts: 20,
    fan_out: &[(1, 2), (3, 2), (5, 2), (10, 2), (10, 1)],
    fan_out_runs: 5,
    burst: 500,
    latency_keys: 100,
    sweep: 10_000,
    failover: 100,
    histories: 1000,
};

const QUICK: Sizes = Sizes {
    cold_starts: 5,
    fan_out: &[(1, 2), (10, 2), (10, 1)],
    fan_out_runs: 1,
    burst: 20,
    latency_keys: 10,
    sweep: 300,
    failover: 10,
    histories: 50,
};

/// One row of the table.
struct Row {
    scenario: String,
    figure: String,
    floor: String,
    ratio: String,
    goal: &'static str,
}

fn secs(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn timed_row(scenario: String, m: &Measured, extra: &str, goal: &'static str) -> Row {
    let f = &m.floor;
    let mut floor = format!(
        "{}: {} rounds x {}",
        secs(f.time()),
        f.rounds,
        secs(f.latency)
    );
    if !f.quota.is_zero() {
        let _ = write!(floor, " + {} for {}", secs(f.quota), f.why);
    }
    if !f.wait.is_zero() {
        let _ = write!(floor, " + {} Updating", secs(f.wait));
    }
    Row {
        scenario,
        figure: format!("{}; {} throttles{extra}", secs(m.wall), m.throttles),
        floor,
        ratio: format!("{:.2}", m.ratio()),
        goal,
    }
}

fn ops(c: &Charges) -> String {
    c.by_operation()
        .iter()
        .map(|(op, n)| format!("{n} {op}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpu}, {cores} cores, {}", std::env::consts::ARCH)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    // `--only fan-out` (or cold-start, economy, latency, burst, sweep, failover, histories): one
    // kind.
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1).cloned());
    let run = |kind: &str| only.as_deref().is_none_or(|o| o == kind);
    let sizes = if quick { QUICK } else { FULL };
    // Benchmarks run from target/release/deps/; the functions are in target/release/.
    let bin_dir: PathBuf = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent()?.parent().map(PathBuf::from))
        .expect("target/release");
    let bench = Bench {
        bin_dir,
        latency: LATENCY,
    };
    let started = Instant::now();
    let mut rows = Vec::new();

    for f in ["replicate", "reconcile", "failover"]
        .into_iter()
        .filter(|_| run("cold-start"))
    {
        let runs: Vec<(Duration, u64)> = (0..sizes.cold_starts)
            .map(|_| bench.cold_start(f))
            .collect();
        let t = median(runs.iter().map(|r| r.0).collect());
        let rss = runs.iter().map(|r| r.1).max().unwrap_or(0);
        eprintln!("cold start {f}: {t:?}, {rss} KiB");
        rows.push(Row {
            scenario: format!("cold start: `{f}`"),
            figure: format!(
                "{:.1} ms to the first request for work (median of {}); peak RSS {}",
                t.as_secs_f64() * 1000.0,
                sizes.cold_starts,
                mib(rss)
            ),
            floor: String::new(),
            ratio: String::new(),
            goal: "<= 15 ms; < 30 MB",
        });
    }

    for &(r, reserved) in sizes.fan_out.iter().filter(|_| run("fan-out")) {
        let m = bench.fan_out(r, 2, reserved, sizes.fan_out_runs).await;
        eprintln!(
            "fan-out {r} ({reserved}): {:?} / {:?}",
            m.wall,
            m.floor.time()
        );
        let regions = if r == 1 {
            "1 Region".into()
        } else {
            format!("{r} Regions")
        };
        rows.push(timed_row(
            format!(
                "fan-out: one new key, 2 aliases, to {regions}, reserved concurrency {reserved}"
            ),
            &m,
            // The CreateKey requests KMS counts for each ReplicateKey are not calls.
            &format!(
                "; {} calls (median of {})",
                m.charges.total() - m.charges.count(Op::CreateKey),
                sizes.fan_out_runs
            ),
            "<= 1.2 at 10 Regions",
        ));
    }

    let economy = if run("economy") {
        scenarios::api_economy(3).await
    } else {
        Vec::new()
    };
    for (job, counted, minimum) in economy {
        let n = counted.total();
        eprintln!("economy {job}: {n} (minimum {minimum}): {}", ops(&counted));
        rows.push(Row {
            scenario: format!("API economy: {job}"),
            figure: format!("{n} calls: {}", ops(&counted)),
            floor: format!("{minimum} calls"),
            ratio: format!("{:.2}", n as f64 / minimum as f64),
            goal: "exactly the minimum",
        });
    }

    if run("latency") {
        // `--event-delay-ms N`: CloudTrail's delay before EventBridge has the event (AWS states
        // no bound); 500 ms unless given.
        let delay = args
            .iter()
            .position(|a| a == "--event-delay-ms")
            .and_then(|i| args.get(i + 1)?.parse::<u64>().ok())
            .map_or(Duration::from_millis(500), Duration::from_millis);
        let l = bench.latency(sizes.latency_keys, delay).await;
        let floor = delay + LATENCY * scenarios::NEW_KEY_ROUNDS;
        eprintln!(
            "latency: p50 {:?}, p99 {:?} / {floor:?}",
            l.percentile(50),
            l.percentile(99)
        );
        rows.push(Row {
            scenario: format!(
                "latency: a person's TagResource to both replicas `Enabled` with 2 aliases, {} keys one after another, events {} after the call",
                l.each.len(),
                secs(delay)
            ),
            figure: format!(
                "p50 {}, p99 {}; {} throttles; {} dead letters",
                secs(l.percentile(50)),
                secs(l.percentile(99)),
                l.throttles,
                l.dead_letters
            ),
            floor: format!(
                "{}: {} delivery + {} rounds x {}",
                secs(floor),
                secs(delay),
                scenarios::NEW_KEY_ROUNDS,
                secs(LATENCY)
            ),
            ratio: format!(
                "{:.2}",
                l.percentile(50).as_secs_f64() / floor.as_secs_f64()
            ),
            goal: "reported (p50)",
        });
    }

    if run("burst") {
        let m = bench.burst(sizes.burst).await;
        eprintln!("burst: {:?} / {:?}", m.wall, m.floor.time());
        rows.push(timed_row(
            format!("burst: {} keys tagged at once, 2 Regions each", sizes.burst),
            &m,
            &format!("; {} dead letters", m.dead_letters),
            "<= 1.2; 0 dead letters",
        ));
    }

    // `SWEEP_KEYS=N` sweeps N keys instead (a 3,000-key run takes a quarter of the time, for
    // trying a change; the published row is the default size).
    let sweep_keys = std::env::var("SWEEP_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(sizes.sweep);
    let sweeps = if run("sweep") {
        let (in_sync, drift) = bench.sweep(sweep_keys, 10).await;
        vec![("in sync", in_sync), ("10% drifted", drift)]
    } else {
        Vec::new()
    };
    for (what, m) in &sweeps {
        eprintln!("sweep {what}: {:?} / {:?}", m.wall, m.floor.time());
        let rss = m.peak_rss_kib.map(mib).unwrap_or_else(|| "unknown".into());
        rows.push(timed_row(
            format!("sweep: {sweep_keys} keys x 3 Regions, {what}"),
            m,
            &format!("; {} calls; peak RSS {rss}", m.charges.total()),
            "<= 1.1; 0 throttles; fits 128 MB",
        ));
    }

    if run("failover") {
        let m = bench.bulk_failover(sizes.failover).await;
        eprintln!(
            "failover: {:?} / {:?}: {}",
            m.wall,
            m.floor.time(),
            ops(&m.charges)
        );
        rows.push(timed_row(
            format!(
                "bulk failover: {} keys, us-east-1 to us-west-2",
                sizes.failover
            ),
            &m,
            &format!("; {} calls", m.charges.total()),
            "<= 1.2",
        ));
    }

    if run("histories") {
        // Each history runs on a runtime of its own, so not on this one's thread.
        let n = sizes.histories;
        let (n, took) = std::thread::spawn(move || histories(n))
            .join()
            .expect("the histories ran");
        eprintln!("histories: {n} in {took:?}");
        rows.push(Row {
            scenario: "safety checker: random histories".into(),
            figure: format!(
                "{:.0} histories/s ({n} in {})",
                n as f64 / took.as_secs_f64(),
                secs(took)
            ),
            floor: String::new(),
            ratio: String::new(),
            goal: "reported",
        });
    }

    let table = render(&rows, quick);
    println!("{table}");
    eprintln!(
        "the benchmark took {:.0} s",
        started.elapsed().as_secs_f64()
    );
    if args.iter().any(|a| a == "--docs") && !quick && only.is_none() {
        let page = scenarios::performance_page();
        scenarios::splice(&page, &table).expect("the performance page updated");
        eprintln!("{} updated", page.display());
    }
}

/// Times `n` random histories of the safety test (each: up to 40 steps by people, events
/// delivered late, twice or never, the invariants checked after every step).
fn histories(n: u32) -> (u32, Duration) {
    let mut runner = TestRunner::new(RunnerConfig {
        cases: n,
        failure_persistence: None,
        ..RunnerConfig::default()
    });
    let strategy = (
        prop::collection::vec(random_histories::step(), 1..40),
        any::<bool>(),
    );
    let started = Instant::now();
    runner
        .run(&strategy, |(steps, schedule_deletion)| {
            let removal = if schedule_deletion {
                RemovalPolicy::ScheduleDeletion {
                    pending_window_days: 7,
                }
            } else {
                RemovalPolicy::Retain
            };
            random_histories::run_history(&steps, removal).map_err(TestCaseError::fail)
        })
        .expect("every history keeps the invariants");
    (n, started.elapsed())
}

fn render(rows: &[Row], quick: bool) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "`make bench`{} on {}: the release binaries against the twin over HTTP, KMS's request \
         quotas enforced (beyond them ThrottlingException), {} on every KMS call, `Updating` \
         for {} after UpdatePrimaryRegion.\n",
        if quick { " --quick" } else { "" },
        machine(),
        secs(LATENCY),
        secs(UPDATING_FOR),
    );
    let _ = writeln!(t, "| scenario | figure | floor | ratio | goal |");
    let _ = writeln!(t, "|---|---|---|---|---|");
    for r in rows {
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} |",
            r.scenario, r.figure, r.floor, r.ratio, r.goal
        );
    }
    t
}
