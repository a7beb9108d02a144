//! Sweep benchmark on the in-memory KMS twin.
//!
//! `cargo bench -p reconcile --bench sweep -- [keys] [runs]` (defaults 2000 and 5) makes `keys`
//! multi-Region keys, half with their primary in us-east-1 and half in us-west-2, each with one
//! replica in the other Region and one alias, brings them in sync, then sweeps them `runs`
//! times. It prints the median sweep time with no rate limit and no latency (the cost of the
//! code itself), the KMS calls per key, and the least time those calls take on AWS under the
//! rate limiter's defaults: for each (Region, operation), calls / limit.

use kms_replicator::limit::{Quotas, RateLimitedKms, DEFAULT_READ_RATE};
use kms_replicator::model::Tag;
use kms_replicator::{Config, Kms};
use reconcile::{Reconciler, Settings};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use twin::{Twin, ADMIN_USER};

const REGIONS: [&str; 2] = ["us-east-1", "us-west-2"];

async fn sweep(twin: &Twin, cfg: &Config, payload: &Value) -> Value {
    let kms = RateLimitedKms::new(twin.clone(), Quotas::unlimited());
    let settings = Settings::default();
    let r = Reconciler {
        kms: &kms,
        tags: &kms,
        audit: twin,
        config: cfg,
        settings: &settings,
        limiter: None,
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(900);
    r.handle(payload, deadline).await.expect("sweep")
}

/// The least time the counted calls take under `quotas`: the busiest (Region, operation).
fn floor(calls: &BTreeMap<(String, &'static str), usize>, quotas: &Quotas) -> (Duration, String) {
    let mut worst = (Duration::ZERO, String::new());
    for ((region, op), n) in calls {
        if let Some(limit) = quotas.limit(op) {
            let t = Duration::from_secs_f64(*n as f64 / limit as f64);
            if t > worst.0 {
                worst = (t, format!("{op} in {region}: {n} calls at {limit}/s"));
            }
        }
    }
    worst
}

fn count(twin: &Twin) -> BTreeMap<(String, &'static str), usize> {
    let mut by = BTreeMap::new();
    for c in twin.calls() {
        *by.entry((c.region, c.op)).or_default() += 1;
    }
    by
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .filter_map(|a| a.parse().ok())
        .collect();
    let keys = args.first().copied().unwrap_or(2000);
    let runs = args.get(1).copied().unwrap_or(5).max(1);

    let twin = Twin::new();
    let cfg = Config::new(&REGIONS);
    let admin = twin.with_caller(ADMIN_USER);
    let mut made = Vec::new();
    for i in 0..keys {
        let (home, away) = (REGIONS[i % 2], REGIONS[(i + 1) % 2]);
        let key = admin
            .create_key(
                home,
                true,
                None,
                &format!("key {i}"),
                &[Tag::new("replicate-to", away), Tag::new("team", "bench")],
            )
            .key_id;
        admin
            .create_alias(home, &format!("alias/bench-{i}"), &key)
            .await
            .expect("alias");
        made.push((away, key));
    }
    let scheduled = json!({"source": "aws.events", "detail-type": "Scheduled Event",
                           "id": "bench", "time": "2025-01-01T00:00:00Z", "detail": {}});
    let started = Instant::now();
    let first = sweep(&twin, &cfg, &scheduled).await;
    println!(
        "setup: {keys} keys replicated in {:?} ({} repaired)",
        started.elapsed(),
        first["counts"]["repaired"]
    );

    let mut times = Vec::new();
    let mut calls = BTreeMap::new();
    for _ in 0..runs {
        twin.reset_calls();
        let started = Instant::now();
        let out = sweep(&twin, &cfg, &scheduled).await;
        times.push(started.elapsed());
        assert_eq!(out["counts"]["inSync"], keys, "{}", out["summary"]);
        calls = count(&twin);
    }
    times.sort();
    let median = times[times.len() / 2];
    let total: usize = calls.values().sum();
    println!(
        "in-sync sweep of {keys} keys (1 primary + 1 replica each), {runs} runs: median {median:?} \
         (min {:?}, max {:?}), no rate limit, no latency",
        times[0],
        times[times.len() - 1]
    );
    println!(
        "KMS calls: {total} in all, {:.2} per key",
        total as f64 / keys as f64
    );
    for ((region, op), n) in &calls {
        println!("  {region} {op}: {n}");
    }
    let (t, why) = floor(&calls, &Quotas::kms(DEFAULT_READ_RATE));
    println!(
        "least time on AWS at the default limits (reads {DEFAULT_READ_RATE}/s per operation \
         and Region): {:.1} s ({why})",
        t.as_secs_f64()
    );
    let (t, why) = floor(&calls, &Quotas::kms(u32::MAX));
    println!(
        "least time on AWS with reads at their full KMS quotas: {:.1} s ({why})",
        t.as_secs_f64()
    );

    // Drift: 1% of the replicas deleted.
    let missing = (keys / 100).max(1);
    for (away, id) in made.iter().take(missing) {
        twin.purge_key(away, id);
    }
    twin.reset_calls();
    let started = Instant::now();
    let out = sweep(&twin, &cfg, &scheduled).await;
    let took = started.elapsed();
    let calls = count(&twin);
    let (t, why) = floor(&calls, &Quotas::kms(DEFAULT_READ_RATE));
    println!(
        "repair sweep, {missing} replicas missing: {took:?} with no limit, {} repaired; least \
         time on AWS at the default limits: {:.1} s ({why})",
        out["counts"]["repaired"],
        t.as_secs_f64()
    );
}
