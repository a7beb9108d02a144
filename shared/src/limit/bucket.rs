//! One (Region, operation) pair's permits, with a capacity that adapts to what KMS answers.
//!
//! A bucket starts at the operation's whole quota: a sandbox working alone (the common case:
//! one tagged key) never waits for a share it does not need. When KMS answers
//! ThrottlingException, other callers in the account (other sandboxes of the function, the
//! sweep, people) are using the same quota, so the capacity halves, at most once per window
//! (one throttled window is one signal, however many calls it refused), never below the
//! floor. After [`RAISE_AFTER`] (plus a random part of as much again) without a throttle it
//! grows back by one permit, and again after each further interval, up to the quota: additive
//! increase, multiplicative decrease, as TCP shares a link. The random part keeps sandboxes
//! that were cut by the same throttle from growing back in the same second: one takes the
//! permit the quota has left, and only the other's raise overruns it.
//!
//! The floor is the quota divided by the number of sandboxes that may run at once (the
//! function's reserved concurrency): when every sandbox is at its floor their sum is within
//! the quota, so a burst converges to no throttling at all instead of oscillating.

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// How long a bucket below its quota goes without a throttle, at least, before it takes one
/// more permit (at most twice as long: each interval adds a random part).
pub const RAISE_AFTER: Duration = Duration::from_secs(15);

/// A random duration below `max`, from the standard library's randomly seeded hasher (a
/// spread between processes, not cryptography).
fn jitter(max: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let r = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    Duration::from_millis(r % (max.as_millis() as u64).max(1))
}

pub(super) struct Bucket {
    permits: Arc<Semaphore>,
    state: Mutex<State>,
}

struct State {
    quota: u32,
    floor: u32,
    /// The capacity now: permits available plus held, less `owed`.
    capacity: u32,
    /// Permits to keep back as held ones come home, because the capacity was cut while they
    /// were out.
    owed: u32,
    last_cut: Option<Instant>,
    /// The last throttle or raise: the next raise waits `calm_for` from it.
    calm_since: Instant,
    /// [`RAISE_AFTER`] and a random part of as much again, drawn at each throttle and raise.
    calm_for: Duration,
}

impl Bucket {
    pub(super) fn new(quota: u32, floor: u32) -> Bucket {
        let quota = quota.max(1);
        Bucket {
            permits: Arc::new(Semaphore::new(quota as usize)),
            state: Mutex::new(State {
                quota,
                floor: floor.clamp(1, quota),
                capacity: quota,
                owed: 0,
                last_cut: None,
                calm_since: Instant::now(),
                calm_for: RAISE_AFTER + jitter(RAISE_AFTER),
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The capacity now, in permits per window.
    pub(super) fn capacity(&self) -> u32 {
        self.state().capacity
    }

    /// Waits for `n` permits (at most the floor, so that a cut can never leave a caller
    /// waiting for more permits than the bucket will ever hold).
    pub(super) async fn take(&self, n: u32) -> Taken {
        let n = {
            let mut s = self.state();
            self.raise_if_calm(&mut s);
            n.clamp(1, s.floor)
        };
        let permit = self
            .permits
            .clone()
            .acquire_many_owned(n)
            .await
            .expect("limiter semaphores are never closed");
        Taken { permit }
    }

    /// Gives `taken` back (called one window after the answer): permits owed to a cut are
    /// kept back, the rest can be taken again.
    pub(super) fn give_back(&self, taken: Taken) {
        let n = taken.permit.num_permits() as u32;
        taken.permit.forget();
        let mut s = self.state();
        let kept = n.min(s.owed);
        s.owed -= kept;
        self.permits.add_permits((n - kept) as usize);
    }

    /// KMS refused a call of this bucket with ThrottlingException: halves the capacity,
    /// unless it was already cut within the last window or sits at the floor. Returns whether
    /// it was cut.
    pub(super) fn throttled(&self, window: Duration) -> bool {
        let now = Instant::now();
        let mut s = self.state();
        s.calm_since = now;
        s.calm_for = RAISE_AFTER + jitter(RAISE_AFTER);
        if s.last_cut.is_some_and(|at| now.duration_since(at) < window) || s.capacity <= s.floor {
            return false;
        }
        let cut = s.capacity - (s.capacity / 2).max(s.floor);
        s.capacity -= cut;
        s.last_cut = Some(now);
        let forgotten = self.permits.forget_permits(cut as usize) as u32;
        s.owed += cut - forgotten;
        true
    }

    fn raise_if_calm(&self, s: &mut State) {
        let now = Instant::now();
        if s.capacity >= s.quota || now.duration_since(s.calm_since) < s.calm_for {
            return;
        }
        s.capacity += 1;
        s.calm_since = now;
        s.calm_for = RAISE_AFTER + jitter(RAISE_AFTER);
        if s.owed > 0 {
            s.owed -= 1;
        } else {
            self.permits.add_permits(1);
        }
    }
}

/// Permits taken from a [`Bucket`], to hand back with [`Bucket::give_back`].
pub(super) struct Taken {
    permit: OwnedSemaphorePermit,
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Duration = Duration::from_secs(1);

    fn available(b: &Bucket) -> usize {
        b.permits.available_permits()
    }

    #[tokio::test(start_paused = true)]
    async fn a_bucket_starts_at_the_whole_quota() {
        let b = Bucket::new(5, 2);
        assert_eq!(b.capacity(), 5);
        let mut taken = Vec::new();
        for _ in 0..5 {
            taken.push(b.take(1).await);
        }
        assert_eq!(available(&b), 0);
        for t in taken {
            b.give_back(t);
        }
        assert_eq!(available(&b), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttle_halves_the_capacity_once_per_window_and_never_below_the_floor() {
        let b = Bucket::new(10, 2);
        assert!(b.throttled(W));
        assert_eq!(b.capacity(), 5);
        assert!(
            !b.throttled(W),
            "a second throttle in the same window is the same signal"
        );
        assert_eq!(b.capacity(), 5);
        tokio::time::advance(W).await;
        assert!(b.throttled(W));
        assert_eq!(b.capacity(), 2, "5 halves to 2, the floor");
        tokio::time::advance(W).await;
        assert!(!b.throttled(W));
        assert_eq!(b.capacity(), 2);
        assert_eq!(available(&b), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn permits_out_during_a_cut_are_kept_back_when_they_come_home() {
        let b = Bucket::new(8, 1);
        let taken: Vec<_> = futures_all(&b, 6).await;
        assert_eq!(available(&b), 2);
        assert!(b.throttled(W));
        // Capacity 4: both free permits forgotten, two of the six held are owed.
        assert_eq!(available(&b), 0);
        for t in taken {
            b.give_back(t);
        }
        assert_eq!(available(&b), 4);
        assert_eq!(b.capacity(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_calm_bucket_grows_back_one_permit_per_interval_up_to_the_quota() {
        let b = Bucket::new(4, 1);
        assert!(b.throttled(W));
        assert_eq!(b.capacity(), 2);
        tokio::time::advance(RAISE_AFTER - Duration::from_millis(1)).await;
        b.give_back(b.take(1).await);
        assert_eq!(b.capacity(), 2, "not yet calm for long enough");
        tokio::time::advance(RAISE_AFTER + Duration::from_millis(1)).await;
        b.give_back(b.take(1).await);
        assert_eq!(b.capacity(), 3, "calm for twice the least interval");
        b.give_back(b.take(1).await);
        assert_eq!(b.capacity(), 3, "one permit per interval");
        for _ in 0..3 {
            tokio::time::advance(2 * RAISE_AFTER).await;
            b.give_back(b.take(1).await);
        }
        assert_eq!(b.capacity(), 4, "never above the quota");
        assert_eq!(available(&b), 4);
    }

    #[test]
    fn the_random_part_of_an_interval_stays_below_its_bound_and_varies() {
        let drawn: std::collections::BTreeSet<Duration> =
            (0..50).map(|_| jitter(RAISE_AFTER)).collect();
        assert!(drawn.iter().all(|d| *d < RAISE_AFTER));
        assert!(drawn.len() > 1, "{drawn:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttle_restarts_the_calm_interval() {
        let b = Bucket::new(4, 1);
        assert!(b.throttled(W));
        tokio::time::advance(RAISE_AFTER - W).await;
        assert!(b.throttled(W), "2 halves to 1");
        tokio::time::advance(RAISE_AFTER - W).await;
        b.give_back(b.take(1).await);
        assert_eq!(b.capacity(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_for_more_than_the_floor_takes_the_floor() {
        let b = Bucket::new(5, 2);
        let t = b.take(5).await;
        assert_eq!(t.permit.num_permits(), 2);
    }

    async fn futures_all(b: &Bucket, n: usize) -> Vec<Taken> {
        let mut v = Vec::new();
        for _ in 0..n {
            v.push(b.take(1).await);
        }
        v
    }
}
