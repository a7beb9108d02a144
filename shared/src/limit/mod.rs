//! Staying within the KMS request quotas: a [`Kms`] (and [`TagIndex`]) wrapper that waits for
//! a per-Region, per-operation permit before each call, and adapts to what KMS answers.
//!
//! KMS counts requests per account, Region and operation, over all principals, and answers
//! ThrottlingException beyond the quota. Here each (Region, operation) pair holds a
//! [bucket](bucket) of permits; a call takes one before it is sent and gives it back one
//! window (1 s) after its answer arrived. Every call that reached KMS within any window of
//! that length therefore held a permit at the same moment, so this process sends at most the
//! bucket's capacity per window, whatever the latency and however the tasks are scheduled.
//! A limit that is this process's own cap, below KMS's quota (the reads), gives its permit
//! back one window after the request was sent instead, so that slow answers do not lower the
//! rate it carries ([`Quotas::own_cap`]). Waiting callers are served first come, first served.
//!
//! The capacity starts at the whole quota, so that one sandbox working alone (one tagged key
//! fanning out to ten Regions) is never slowed by a share it does not need. Other sandboxes,
//! the sweep and people use the same quotas; when KMS says so with a ThrottlingException the
//! bucket halves (down to its floor, the quota divided by the sandboxes that may run at once)
//! and grows back one permit at a time while KMS stays quiet. The throttled call is not
//! lost: the limiter waits one window and sends it again under a new permit, up to
//! [`THROTTLED_ATTEMPTS`] times (a refused request did nothing, so sending it again is safe).
//! The SDK's clients leave throttled calls to this retry ([`crate::aws`]), so that each
//! request that reaches KMS held a permit.
//!
//! Operations with extra costs are charged as KMS counts them: a ReplicateKey is one request in
//! the primary's Region and two CreateKey requests in the replica's Region; an
//! UpdatePrimaryRegion is one request in each of the two Regions.

mod bucket;

pub use bucket::RAISE_AFTER;
use bucket::{Bucket, Taken};

use crate::model::{AliasEntry, KeyInfo, Tag};
use crate::op::Op;
use crate::port::{ErrorKind, Kms, KmsResult, ReplicaSpec, TagIndex, TaggedKey};
use crate::usage::KeyUsage;
use async_trait::async_trait;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// GetResources of the Resource Groups Tagging API. AWS publishes no per-operation figure for
/// it; a sweep makes one paginated call per Region, so a low limit costs nothing.
pub const GET_RESOURCES_RATE: u32 = 5;

/// The default cap on each read operation: far below the read quotas, so that a sweep leaves
/// almost all of them to the account's other users.
pub const DEFAULT_READ_RATE: u32 = 50;

/// How many times a call KMS refuses with ThrottlingException is sent in all, one window
/// apart, before the throttle is the call's answer (GetResources, whose pages have already
/// been handed on, is sent once).
pub const THROTTLED_ATTEMPTS: u32 = 5;

/// Requests allowed per window for each operation; operations not listed are not limited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quotas {
    limits: HashMap<Op, u32>,
    /// Operations whose limit here is this process's own cap, below KMS's quota: their
    /// permits go back one window after the request was sent (see [`Quotas::own_cap`]).
    own_caps: HashSet<Op>,
    window: Duration,
    /// Under throttling a bucket shrinks to no less than its limit divided by this.
    shares: u32,
}

impl Quotas {
    /// No limit at all (tests and tools that set up state).
    pub fn unlimited() -> Quotas {
        Quotas {
            limits: HashMap::new(),
            own_caps: HashSet::new(),
            window: Duration::from_secs(1),
            shares: 1,
        }
    }

    /// Every write at its KMS quota, every read at `read_rate` per second or its quota if that
    /// is lower, GetResources at [`GET_RESOURCES_RATE`], a read without a published quota
    /// (GetKeyLastUsage) at `read_rate`.
    pub fn kms(read_rate: u32) -> Quotas {
        let mut q = Quotas::unlimited();
        for &op in Op::ALL {
            let limit = match op.kms_quota() {
                Some(n) if op.is_write() => n,
                Some(n) => read_rate.min(n),
                None if op == Op::GetResources => GET_RESOURCES_RATE,
                None => read_rate,
            };
            q = q.with(op, limit);
            if op.kms_quota().is_some_and(|n| limit < n) {
                q.own_caps.insert(op);
            }
        }
        q
    }

    /// Sets the limit of `op` (at least 1), counted as strictly as a KMS quota.
    pub fn with(mut self, op: Op, per_window: u32) -> Quotas {
        self.limits.insert(op, per_window.max(1));
        self.own_caps.remove(&op);
        self
    }

    /// Whether the limit of `op` is this process's own cap, below KMS's published quota (the
    /// reads under [`Quotas::kms`]'s `read_rate`). Such a permit goes back one window after
    /// its request was *sent*, so the process sends at most the limit in any window, which
    /// is what the cap promises. A limit at KMS's quota keeps its permit until one window
    /// after the *answer*: the request reached KMS at some moment in between, and two
    /// requests of one permit must never land within one of KMS's windows. For an own cap,
    /// answers that bunch up only matter against a quota many times higher (DescribeKey:
    /// 50 a second here, 2,000 at KMS), and a slow answer no longer lowers the rate a bucket
    /// carries.
    pub fn own_cap(&self, op: Op) -> bool {
        self.own_caps.contains(&op)
    }

    /// When up to `processes` run at once (a function's reserved concurrency), each keeps at
    /// least its share of every limit under throttling: the limit divided by `processes`,
    /// rounded down, at least 1. When all are at their floor their sum is within the
    /// account's quota (except where a quota is below `processes`), so a burst settles
    /// without throttles. Below throttling each process may use the whole limit.
    pub fn at_least_shares_of(mut self, processes: u32) -> Quotas {
        self.shares = processes.max(1);
        self
    }

    /// The least a bucket of `op` shrinks to under throttling.
    pub fn floor(&self, op: Op) -> Option<u32> {
        self.limit(op).map(|l| (l / self.shares).max(1))
    }

    /// The window the limits count over (1 s, as KMS counts).
    pub fn window(&self) -> Duration {
        self.window
    }

    pub fn limit(&self, op: Op) -> Option<u32> {
        self.limits.get(&op).copied()
    }
}

/// What a limiter saw, for the metrics. Counters are totals since the limiter was built.
pub trait LimiterStats: Send + Sync {
    /// ThrottlingException answers, each followed by another attempt unless it was the last
    /// of [`THROTTLED_ATTEMPTS`].
    fn throttles(&self) -> usize;
    /// Time callers spent waiting for permits, summed over callers.
    fn waited(&self) -> Duration;
}

type BucketKey = (String, Op);

/// A [`Kms`] and [`TagIndex`] that waits for a permit of the call's (Region, operation) before
/// delegating to `inner`. Share one per process: the permits are what keep the quotas.
pub struct RateLimitedKms<K> {
    inner: K,
    quotas: Quotas,
    buckets: Mutex<HashMap<BucketKey, Arc<Bucket>>>,
    throttles: AtomicUsize,
    waited_us: AtomicU64,
}

impl<K> RateLimitedKms<K> {
    pub fn new(inner: K, quotas: Quotas) -> RateLimitedKms<K> {
        RateLimitedKms {
            inner,
            quotas,
            buckets: Mutex::new(HashMap::new()),
            throttles: AtomicUsize::new(0),
            waited_us: AtomicU64::new(0),
        }
    }

    /// The bucket of (`region`, `op`), made at the operation's limit and floor on first use;
    /// `None` when the operation is not limited.
    fn bucket(&self, region: &str, op: Op) -> Option<Arc<Bucket>> {
        let (limit, floor) = (self.quotas.limit(op)?, self.quotas.floor(op)?);
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        Some(
            buckets
                .entry((region.to_string(), op))
                .or_insert_with(|| Arc::new(Bucket::new(limit, floor)))
                .clone(),
        )
    }

    /// The capacity of the (Region, operation) bucket now, if the operation is limited.
    pub fn capacity(&self, region: &str, op: Op) -> Option<u32> {
        self.bucket(region, op).map(|b| b.capacity())
    }

    /// Takes `n` permits of each (Region, operation), always in the same global order so that
    /// two callers needing the same two buckets cannot hold one each and wait forever.
    async fn acquire(&self, charges: &[(&str, Op, u32)]) -> Held {
        let mut charges = charges.to_vec();
        charges.sort();
        let started = Instant::now();
        let mut taken = Vec::with_capacity(charges.len());
        for (region, op, n) in charges {
            if let Some(bucket) = self.bucket(region, op) {
                let permits = bucket.take(n).await;
                taken.push((bucket, permits, self.quotas.own_cap(op)));
            }
        }
        let waited = started.elapsed().as_micros() as u64;
        self.waited_us.fetch_add(waited, Ordering::Relaxed);
        Held {
            taken,
            window: self.quotas.window,
            sent: Instant::now(),
        }
    }

    /// [`call_with`](Self::call_with) up to [`THROTTLED_ATTEMPTS`] attempts.
    async fn call<T, F, Fut>(&self, charges: &[(&str, Op, u32)], call: F) -> KmsResult<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = KmsResult<T>>,
    {
        self.call_with(charges, THROTTLED_ATTEMPTS, call).await
    }

    /// Runs `call` under the permits of `charges`, and keeps the permits for one window after
    /// the answer (or after the call was abandoned, since the request may have gone out). A
    /// ThrottlingException cuts the buckets charged and, up to `attempts` in all, sends the
    /// call again one window later under new permits.
    async fn call_with<T, F, Fut>(
        &self,
        charges: &[(&str, Op, u32)],
        attempts: u32,
        call: F,
    ) -> KmsResult<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = KmsResult<T>>,
    {
        let mut attempt = 1;
        loop {
            let held = self.acquire(charges).await;
            let out = call().await;
            match &out {
                Err(e) if e.kind == ErrorKind::Throttling => {
                    self.throttles.fetch_add(1, Ordering::Relaxed);
                    for (bucket, _, _) in &held.taken {
                        bucket.throttled(self.quotas.window);
                    }
                }
                _ => return out,
            }
            drop(held);
            if attempt >= attempts {
                return out;
            }
            attempt += 1;
            tokio::time::sleep(self.quotas.window).await;
        }
    }
}

/// Permits that go back one window after they are dropped (after the answer), or for an
/// own cap ([`Quotas::own_cap`]) one window after the request was sent.
struct Held {
    /// Each bucket, its permits, and whether its limit is an own cap.
    taken: Vec<(Arc<Bucket>, Taken, bool)>,
    window: Duration,
    /// When the permits were all taken: the request goes out at once.
    sent: Instant,
}

impl Drop for Held {
    fn drop(&mut self) {
        let taken = std::mem::take(&mut self.taken);
        if taken.is_empty() {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let after_answer = Instant::now() + self.window;
            let after_send = self.sent + self.window;
            for (bucket, permits, own_cap) in taken {
                let at = if own_cap { after_send } else { after_answer };
                rt.spawn(async move {
                    tokio::time::sleep_until(at).await;
                    bucket.give_back(permits);
                });
            }
        }
    }
}

impl<K: Send + Sync> LimiterStats for RateLimitedKms<K> {
    fn throttles(&self) -> usize {
        self.throttles.load(Ordering::Relaxed)
    }

    fn waited(&self) -> Duration {
        Duration::from_micros(self.waited_us.load(Ordering::Relaxed))
    }
}

#[async_trait]
impl<K: Kms> Kms for RateLimitedKms<K> {
    async fn describe_key(&self, region: &str, key: &str) -> KmsResult<KeyInfo> {
        self.call(&[(region, Op::DescribeKey, 1)], || {
            self.inner.describe_key(region, key)
        })
        .await
    }

    async fn get_key_last_usage(&self, region: &str, key_id: &str) -> KmsResult<KeyUsage> {
        self.call(&[(region, Op::GetKeyLastUsage, 1)], || {
            self.inner.get_key_last_usage(region, key_id)
        })
        .await
    }

    async fn get_key_policy(&self, region: &str, key_id: &str) -> KmsResult<String> {
        self.call(&[(region, Op::GetKeyPolicy, 1)], || {
            self.inner.get_key_policy(region, key_id)
        })
        .await
    }

    async fn list_resource_tags(&self, region: &str, key_id: &str) -> KmsResult<Vec<Tag>> {
        self.call(&[(region, Op::ListResourceTags, 1)], || {
            self.inner.list_resource_tags(region, key_id)
        })
        .await
    }

    async fn list_aliases(&self, region: &str, key_id: Option<&str>) -> KmsResult<Vec<AliasEntry>> {
        self.call(&[(region, Op::ListAliases, 1)], || {
            self.inner.list_aliases(region, key_id)
        })
        .await
    }

    async fn replicate_key(
        &self,
        primary_region: &str,
        key_id: &str,
        replica_region: &str,
        spec: &ReplicaSpec,
    ) -> KmsResult<KeyInfo> {
        self.call(
            &[
                (primary_region, Op::ReplicateKey, 1),
                (replica_region, Op::CreateKey, 2),
            ],
            || {
                self.inner
                    .replicate_key(primary_region, key_id, replica_region, spec)
            },
        )
        .await
    }

    async fn put_key_policy(&self, region: &str, key_id: &str, policy: &str) -> KmsResult<()> {
        self.call(&[(region, Op::PutKeyPolicy, 1)], || {
            self.inner.put_key_policy(region, key_id, policy)
        })
        .await
    }

    async fn create_alias(&self, region: &str, alias: &str, key_id: &str) -> KmsResult<()> {
        self.call(&[(region, Op::CreateAlias, 1)], || {
            self.inner.create_alias(region, alias, key_id)
        })
        .await
    }

    async fn tag_resource(&self, region: &str, key_id: &str, tags: &[Tag]) -> KmsResult<()> {
        self.call(&[(region, Op::TagResource, 1)], || {
            self.inner.tag_resource(region, key_id, tags)
        })
        .await
    }

    async fn untag_resource(&self, region: &str, key_id: &str, keys: &[String]) -> KmsResult<()> {
        self.call(&[(region, Op::UntagResource, 1)], || {
            self.inner.untag_resource(region, key_id, keys)
        })
        .await
    }

    async fn update_key_description(
        &self,
        region: &str,
        key_id: &str,
        description: &str,
    ) -> KmsResult<()> {
        self.call(&[(region, Op::UpdateKeyDescription, 1)], || {
            self.inner
                .update_key_description(region, key_id, description)
        })
        .await
    }

    async fn schedule_key_deletion(
        &self,
        region: &str,
        key_id: &str,
        pending_window_days: i32,
    ) -> KmsResult<()> {
        self.call(&[(region, Op::ScheduleKeyDeletion, 1)], || {
            self.inner
                .schedule_key_deletion(region, key_id, pending_window_days)
        })
        .await
    }

    async fn cancel_key_deletion(&self, region: &str, key_id: &str) -> KmsResult<()> {
        self.call(&[(region, Op::CancelKeyDeletion, 1)], || {
            self.inner.cancel_key_deletion(region, key_id)
        })
        .await
    }

    async fn enable_key(&self, region: &str, key_id: &str) -> KmsResult<()> {
        self.call(&[(region, Op::EnableKey, 1)], || {
            self.inner.enable_key(region, key_id)
        })
        .await
    }

    async fn list_keys(&self, region: &str) -> KmsResult<Vec<String>> {
        self.call(&[(region, Op::ListKeys, 1)], || {
            self.inner.list_keys(region)
        })
        .await
    }

    async fn update_primary_region(
        &self,
        region: &str,
        key_id: &str,
        new_primary_region: &str,
    ) -> KmsResult<()> {
        self.call(
            &[
                (region, Op::UpdatePrimaryRegion, 1),
                (new_primary_region, Op::UpdatePrimaryRegion, 1),
            ],
            || {
                self.inner
                    .update_primary_region(region, key_id, new_primary_region)
            },
        )
        .await
    }
}

#[async_trait]
impl<K: TagIndex> TagIndex for RateLimitedKms<K> {
    async fn tagged_keys(&self, region: &str, tag_key: &str) -> KmsResult<Vec<TaggedKey>> {
        self.call(&[(region, Op::GetResources, 1)], || {
            self.inner.tagged_keys(region, tag_key)
        })
        .await
    }

    async fn tagged_keys_paged(
        &self,
        region: &str,
        tag_key: &str,
        page: &(dyn for<'k> Fn(&'k [TaggedKey]) + Send + Sync),
    ) -> KmsResult<Vec<TaggedKey>> {
        self.call_with(&[(region, Op::GetResources, 1)], 1, || {
            self.inner.tagged_keys_paged(region, tag_key, page)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_divides_every_floor_never_reaches_zero_and_leaves_the_limits() {
        let q = Quotas::kms(50).at_least_shares_of(2);
        assert_eq!(q.limit(Op::ReplicateKey), Some(5));
        assert_eq!(q.floor(Op::ReplicateKey), Some(2));
        assert_eq!(q.floor(Op::PutKeyPolicy), Some(7));
        assert_eq!(q.floor(Op::DescribeKey), Some(25));
        assert_eq!(
            Quotas::kms(50)
                .at_least_shares_of(10)
                .floor(Op::CreateAlias),
            Some(1)
        );
        assert_eq!(Quotas::kms(50).at_least_shares_of(0), Quotas::kms(50));
        assert_eq!(Quotas::unlimited().floor(Op::DescribeKey), None);
    }

    #[test]
    fn reads_are_capped_at_the_read_rate_or_their_quota_and_writes_sit_at_their_quota() {
        let q = Quotas::kms(50);
        assert_eq!(q.limit(Op::DescribeKey), Some(50));
        assert_eq!(q.limit(Op::ReplicateKey), Some(5));
        assert_eq!(q.limit(Op::TagResource), Some(10));
        assert_eq!(q.limit(Op::PutKeyPolicy), Some(15));
        let q = Quotas::kms(u32::MAX);
        assert_eq!(q.limit(Op::GetKeyPolicy), Some(1000));
        assert_eq!(q.limit(Op::ListAliases), Some(500));
        assert_eq!(Quotas::unlimited().limit(Op::DescribeKey), None);
    }
}
