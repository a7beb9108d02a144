//! The shared limiter against the twin's enforced KMS quotas: no caller pattern exceeds a
//! quota, and the twin really throttles the same burst without it.

use kms_replicator::limit::{LimiterStats, Quotas, RateLimitedKms};
use kms_replicator::port::{Kms, ReplicaSpec};
use kms_replicator::Op;
use std::sync::Arc;
use std::time::{Duration, Instant};
use twin::{Twin, OPERATOR_ROLE};

fn max_in_any_window(times: &[std::time::Instant], window: Duration) -> usize {
    let mut best = 0;
    for (i, start) in times.iter().enumerate() {
        let n = times[i..]
            .iter()
            .take_while(|t| t.duration_since(*start) < window)
            .count();
        best = best.max(n);
    }
    best
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_never_exceed_the_limit_in_any_one_second_window() {
    let twin = Twin::new().with_caller(OPERATOR_ROLE);
    twin.set_rate_limit(Op::UpdateKeyDescription, 5);
    let key = twin.create_key("us-east-1", true, None, "", &[]).key_id;
    let kms = Arc::new(RateLimitedKms::new(twin.clone(), Quotas::kms(50)));
    let started = Instant::now();
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let (kms, key) = (kms.clone(), key.clone());
            tokio::spawn(async move {
                kms.update_key_description("us-east-1", &key, &format!("d{i}"))
                    .await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let elapsed = started.elapsed();

    assert_eq!(twin.throttled_count(), 0);
    let times: Vec<_> = twin
        .calls()
        .iter()
        .filter(|c| c.op == "UpdateKeyDescription")
        .map(|c| c.at)
        .collect();
    assert_eq!(times.len(), 12);
    assert!(max_in_any_window(&times, Duration::from_secs(1)) <= 5);
    // 12 calls at 5 per second: two full windows of waiting, not more.
    assert!(elapsed >= Duration::from_secs(2), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
    assert!(kms.waited() > Duration::ZERO);
}

#[tokio::test]
async fn replicate_key_is_charged_two_create_key_requests_in_the_replica_region() {
    let twin = Twin::new().with_caller(OPERATOR_ROLE);
    twin.set_rate_limit(Op::CreateKey, 5);
    let kms = RateLimitedKms::new(twin.clone(), Quotas::kms(50));
    let started = Instant::now();
    // 4 replicas into one Region: 8 CreateKey requests there, so one must wait a window.
    for _ in 0..4 {
        let key = twin.create_key("us-east-1", true, None, "", &[]).key_id;
        kms.replicate_key("us-east-1", &key, "us-west-2", &ReplicaSpec::default())
            .await
            .unwrap();
    }
    assert_eq!(twin.throttled_count(), 0);
    assert!(started.elapsed() >= Duration::from_secs(1));
}

#[tokio::test]
async fn without_the_limiter_the_twin_throttles_the_same_burst() {
    let twin = Twin::new().with_caller(OPERATOR_ROLE);
    twin.set_rate_limit(Op::CreateKey, 5);
    let mut errors = 0;
    for _ in 0..4 {
        let key = twin.create_key("us-east-1", true, None, "", &[]).key_id;
        if twin
            .replicate_key("us-east-1", &key, "us-west-2", &ReplicaSpec::default())
            .await
            .is_err()
        {
            errors += 1;
        }
    }
    assert!(errors > 0 && twin.throttled_count() > 0);
}

#[tokio::test]
async fn throttling_that_still_gets_through_is_counted() {
    let twin = Twin::new().with_caller(OPERATOR_ROLE);
    twin.inject_fault(None, Some(Op::DescribeKey), "ThrottlingException", 2);
    let kms = RateLimitedKms::new(twin.clone(), Quotas::unlimited());
    for _ in 0..3 {
        let _ = kms.describe_key("us-east-1", "mrk-x").await;
    }
    assert_eq!(kms.throttles(), 2);
}

#[tokio::test]
async fn a_throttled_call_is_sent_again_under_a_new_permit_and_succeeds() {
    let twin = Twin::new().with_caller(OPERATOR_ROLE);
    let key = twin.create_key("us-east-1", true, None, "", &[]).key_id;
    twin.inject_fault(
        None,
        Some(Op::UpdateKeyDescription),
        "ThrottlingException",
        2,
    );
    let kms = RateLimitedKms::new(twin.clone(), Quotas::kms(50).at_least_shares_of(5));
    let started = Instant::now();
    kms.update_key_description("us-east-1", &key, "after two throttles")
        .await
        .unwrap();
    assert_eq!(
        twin.key("us-east-1", &key).unwrap().description,
        "after two throttles"
    );
    assert_eq!(kms.throttles(), 2);
    // One window between attempts.
    assert!(started.elapsed() >= Duration::from_secs(2));
    // The bucket halved once per throttled window: 5 -> 2 -> 1.
    assert_eq!(kms.capacity("us-east-1", Op::UpdateKeyDescription), Some(1));
}

#[tokio::test]
async fn a_call_throttled_at_every_attempt_fails_with_the_throttle() {
    let twin = Twin::new().with_caller(OPERATOR_ROLE);
    let key = twin.create_key("us-east-1", true, None, "", &[]).key_id;
    twin.inject_fault(None, Some(Op::DescribeKey), "ThrottlingException", 100);
    let kms = RateLimitedKms::new(twin.clone(), Quotas::kms(50));
    let err = kms.describe_key("us-east-1", &key).await.unwrap_err();
    assert_eq!(err.code, "ThrottlingException");
    assert_eq!(
        kms.throttles(),
        kms_replicator::limit::THROTTLED_ATTEMPTS as usize
    );
}

/// Two sandboxes that each start at the whole quota share one: KMS throttles them at first,
/// both halve, and every call still succeeds; afterwards each sits at or above its floor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_at_the_whole_quota_settle_into_it_and_lose_no_call() {
    let twin = Twin::new().with_caller(OPERATOR_ROLE);
    twin.set_rate_limit(Op::UpdateKeyDescription, 6);
    let key = twin.create_key("us-east-1", true, None, "", &[]).key_id;
    let quotas = Quotas::kms(50)
        .with(Op::UpdateKeyDescription, 6)
        .at_least_shares_of(2);
    let sandboxes: Vec<_> = (0..2)
        .map(|_| Arc::new(RateLimitedKms::new(twin.clone(), quotas.clone())))
        .collect();
    let mut tasks = Vec::new();
    for kms in &sandboxes {
        for i in 0..24 {
            let (kms, key) = (kms.clone(), key.clone());
            tasks.push(tokio::spawn(async move {
                kms.update_key_description("us-east-1", &key, &format!("d{i}"))
                    .await
            }));
        }
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let throttles: usize = sandboxes.iter().map(|k| k.throttles()).sum();
    assert_eq!(throttles, twin.throttled_count());
    assert!(
        throttles > 0,
        "two processes at the whole quota overrun it at first"
    );
    for kms in &sandboxes {
        let c = kms.capacity("us-east-1", Op::UpdateKeyDescription).unwrap();
        assert!((3..6).contains(&c), "{c}");
    }
}

/// Ten calls of one operation at a limit of 5, each answered after 400 ms: the elapsed time.
async fn ten_slow_calls(quotas: Quotas, op: Op) -> Duration {
    let twin = Twin::new().with_caller(OPERATOR_ROLE);
    let key = twin.create_key("us-east-1", true, None, "", &[]).key_id;
    twin.set_latency(Duration::from_millis(400));
    let kms = Arc::new(RateLimitedKms::new(twin.clone(), quotas));
    let started = Instant::now();
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let (kms, key) = (kms.clone(), key.clone());
            tokio::spawn(async move {
                match op {
                    Op::DescribeKey => kms.describe_key("us-east-1", &key).await.map(|_| ()),
                    _ => {
                        kms.update_key_description("us-east-1", &key, &format!("d{i}"))
                            .await
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_own_cap_sends_its_rate_however_slow_the_answers_and_a_kms_quota_waits_for_them() {
    // DescribeKey at 5 a second is this process's own cap (KMS allows 2,000): the second five
    // go out one second after the first five were sent, and are answered 400 ms later.
    let quotas = Quotas::kms(5);
    assert!(quotas.own_cap(Op::DescribeKey));
    let own = ten_slow_calls(quotas, Op::DescribeKey).await;
    assert!(own >= Duration::from_millis(1400), "{own:?}");
    assert!(own < Duration::from_millis(1800), "{own:?}");
    // UpdateKeyDescription at 5 is KMS's quota: the second five wait one second after the
    // first five's answers.
    let quotas = Quotas::kms(5);
    assert!(!quotas.own_cap(Op::UpdateKeyDescription));
    let strict = ten_slow_calls(quotas, Op::UpdateKeyDescription).await;
    assert!(strict >= Duration::from_millis(1800), "{strict:?}");
    // A limit set by hand counts as strictly as a quota.
    assert!(!Quotas::kms(5)
        .with(Op::DescribeKey, 5)
        .own_cap(Op::DescribeKey));
}
