//! The end-to-end latency a person sees: from their TagResource to every replica `Enabled`
//! with its aliases, through the local pipeline (the twin's trail, the bus and its rule, the
//! replicate binary as Lambda runs it) with a CloudTrail-to-EventBridge delay on every event.

use super::{enforce_kms_quotas, Bench, WINDOW};
use crate::{primary_policy, PRIMARY_REGION};
use kms_replicator::model::{KeyState, Tag};
use kms_replicator::Kms as _;
use std::time::{Duration, Instant};
use twin::ADMIN_USER;

/// The Regions each key is tagged for, and its aliases.
const TARGETS: [&str; 2] = ["us-west-2", "eu-west-1"];
const ALIASES: usize = 2;

/// What the latency scenario measured.
#[derive(Debug, Clone)]
pub struct Latencies {
    /// Each key's time from the TagResource answer to its last replica ready, sorted.
    pub each: Vec<Duration>,
    pub delay: Duration,
    pub throttles: usize,
    pub dead_letters: usize,
}

impl Latencies {
    /// The `p`-th percentile (nearest rank).
    pub fn percentile(&self, p: usize) -> Duration {
        let n = self.each.len();
        if n == 0 {
            return Duration::ZERO;
        }
        let rank = (p * n).div_ceil(100).clamp(1, n);
        self.each[rank - 1]
    }
}

impl Bench {
    /// `keys` keys, one after the other (a window apart, as people tag them), each tagged for
    /// two Regions with two aliases; events reach the replicate function `delay` after the
    /// call, with the default reserved concurrency and KMS's quotas enforced.
    pub async fn latency(&self, keys: usize, delay: Duration) -> Latencies {
        let allowed = format!("{PRIMARY_REGION} {}", TARGETS.join(" "));
        let cloud = self
            .cloud("replicate", Duration::from_secs(60), &allowed, |b| {
                b.template(crate::bins::root().join("template.yaml"))
                    .delivery_delay(delay)
                    .function_env("replicate", "REPLICATE_RESERVED_CONCURRENCY", "2")
            })
            .await;
        let twin = cloud.twin().clone();
        enforce_kms_quotas(&twin);
        let admin = twin.with_caller(ADMIN_USER);
        let policy = primary_policy(&twin.account());
        let mut each = Vec::new();
        for k in 0..=keys {
            twin.set_latency(Duration::ZERO);
            let key = admin.create_key(PRIMARY_REGION, true, Some(&policy), "latency", &[]);
            let aliases: Vec<String> = (0..ALIASES)
                .map(|a| format!("alias/latency-{k}-{a}"))
                .collect();
            for a in &aliases {
                admin
                    .create_alias(PRIMARY_REGION, a, &key.key_id)
                    .await
                    .expect("alias");
            }
            // Made before the key was tagged: not this measurement's events.
            twin.take_trail();
            twin.set_latency(self.latency);
            let started = Instant::now();
            admin
                .tag_resource(
                    PRIMARY_REGION,
                    &key.key_id,
                    &[Tag::new("replicate-to", TARGETS.join(" "))],
                )
                .await
                .expect("tag");
            let ready = || {
                TARGETS.iter().all(|r| {
                    let held = twin.aliases(r);
                    twin.key(r, &key.key_id)
                        .is_some_and(|k| k.state == KeyState::Enabled)
                        && aliases.iter().all(|a| held.get(a) == Some(&key.key_id))
                })
            };
            while !ready() {
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "{} not replicated within a minute",
                    key.key_id
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            // The first key starts the process and its SDK clients: not measured.
            if k > 0 {
                each.push(started.elapsed());
            }
            // The limiter holds each permit one window after its answer.
            tokio::time::sleep(WINDOW + Duration::from_millis(100)).await;
        }
        each.sort();
        Latencies {
            each,
            delay,
            throttles: twin.throttled_count(),
            dead_letters: cloud.dead_letters().len(),
        }
    }
}
