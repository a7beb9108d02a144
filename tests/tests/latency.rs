//! The benchmark's end-to-end latency scenario, small: a person's TagResource reaches every
//! replica through the local pipeline (trail, bus with a CloudTrail-to-EventBridge delay, the
//! replicate binary), never faster than the delay plus the design's rounds, with no throttle
//! and nothing dead-lettered.

use integration_tests::bins::bin_dir;
use integration_tests::scenarios::{Bench, LATENCY, NEW_KEY_ROUNDS};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tagged_key_is_replicated_after_the_delivery_delay_and_the_designs_rounds() {
    let bench = Bench {
        bin_dir: bin_dir().to_path_buf(),
        latency: LATENCY,
    };
    let delay = Duration::from_millis(300);
    let l = bench.latency(3, delay).await;
    eprintln!(
        "latency with a {delay:?} delivery delay (debug build): {:?}",
        l.each
    );
    assert_eq!(l.each.len(), 3);
    assert_eq!((l.throttles, l.dead_letters), (0, 0), "{l:?}");
    let floor = delay + LATENCY * NEW_KEY_ROUNDS;
    assert!(l.each[0] >= floor, "{l:?} beat the floor {floor:?}");
    assert!(l.percentile(50) <= l.percentile(99));
    assert_eq!(l.percentile(99), l.each[2]);
}
