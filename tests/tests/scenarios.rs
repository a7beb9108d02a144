//! The benchmark's scenarios (`make bench`), small: the quota model's regression tests.
//!
//! With KMS's quotas enforced by the twin and latency on every call, each scenario must end
//! with no ThrottlingException and nothing dead-lettered, can never beat its floor (if it did,
//! the floor or the twin's quotas would be wrong), and each everyday job costs exactly the
//! KMS calls the design says. The real binaries run, as in the e2e tests.

use integration_tests::bins::bin_dir;
use integration_tests::scenarios::{api_economy, Bench, Measured, LATENCY};
use kms_replicator::Op;

fn bench() -> Bench {
    Bench {
        bin_dir: bin_dir().to_path_buf(),
        latency: LATENCY,
    }
}

fn within_the_model(what: &str, m: &Measured) {
    assert_eq!(m.throttles, 0, "{what}: throttled");
    within_the_floor(what, m);
}

/// What holds even where several sandboxes share a quota: each starts at the whole of it, so
/// the first windows may be throttled (each throttled call is sent again), never dead-lettered.
fn within_the_floor(what: &str, m: &Measured) {
    assert_eq!(m.dead_letters, 0, "{what}: dead-lettered");
    assert!(
        m.wall >= m.floor.time(),
        "{what}: {:?} beat the floor {:?} ({})",
        m.wall,
        m.floor.time(),
        m.floor.why
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_everyday_job_costs_exactly_the_designs_minimum_of_kms_calls() {
    for regions in [1, 3] {
        for (job, counted, minimum) in api_economy(regions).await {
            assert_eq!(
                counted.total(),
                minimum,
                "{job} in {regions} Regions: {:?}",
                counted.by_operation()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_key_fans_out_to_ten_regions_within_the_replicate_key_quota() {
    let m = bench().fan_out(10, 2, 2, 1).await;
    within_the_model("fan-out", &m);
    // Ten ReplicateKey in us-east-1 at 5/s: the second five wait a window.
    assert_eq!(m.charges.count(Op::ReplicateKey), 10);
    assert!(m.floor.quota >= std::time::Duration::from_secs(1), "{m:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_tagged_keys_stays_within_the_quotas_with_nothing_dead_lettered() {
    let m = bench().burst(12).await;
    within_the_floor("burst", &m);
    assert!(
        m.throttles * 10 <= m.charges.total(),
        "{} of {} calls throttled",
        m.throttles,
        m.charges.total()
    );
    // 24 accepted, and any refused one sent again.
    let sent = m.charges.count(Op::ReplicateKey);
    assert!((24..=24 + m.throttles).contains(&sent), "{sent}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweeps_stay_within_the_quotas_and_repair_exactly_the_drift() {
    let (in_sync, drift) = bench().sweep(40, 10).await;
    within_the_model("in-sync sweep", &in_sync);
    within_the_model("drift sweep", &drift);
    let writes = [
        Op::PutKeyPolicy,
        Op::TagResource,
        Op::UpdateKeyDescription,
        Op::CreateAlias,
    ];
    assert_eq!(
        writes
            .iter()
            .map(|op| in_sync.charges.count(*op))
            .sum::<usize>(),
        0
    );
    // One write for each of the four drifted keys.
    for op in writes {
        assert_eq!(drift.charges.count(op), 1, "{op}");
    }
    let rss = drift.peak_rss_kib.expect("reconcile's memory is readable");
    assert!(rss < 128 * 1024, "{rss} KiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_failover_stays_within_the_update_primary_region_quota() {
    let m = bench().bulk_failover(7).await;
    within_the_model("bulk failover", &m);
    // Counted in both Regions.
    assert_eq!(m.charges.count(Op::UpdatePrimaryRegion), 14);
}
