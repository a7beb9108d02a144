//! The knobs that make the twin fail or wait as AWS can: latency, one-shot faults, whole-Region
//! outages, stalled endpoints, per-operation rate limits and an unavailable audit bus; and
//! how a call meets them (the request path, `request.rs`, asks here).

use crate::state::{err, Fault, Stall, State, Twin};
use kms_replicator::op::Op;
use kms_replicator::port::{ErrorKind, KmsResult};
use std::time::{Duration, Instant};
use tokio::sync::watch;

impl Twin {
    /// Every call waits this long before it is served.
    pub fn set_latency(&self, d: Duration) {
        self.lock().latency = d;
    }

    /// The next `times` calls of `op` (any when `None`) in `region` (any when `None`) fail
    /// with the AWS error `code`.
    pub fn inject_fault(&self, region: Option<&str>, op: Option<Op>, code: &str, times: usize) {
        let kind = ErrorKind::from_code(code, None);
        self.lock().faults.push(Fault {
            region: region.map(str::to_string),
            op,
            kind,
            code: code.to_string(),
            remaining: times,
        });
    }

    /// Ends every fault [`inject_fault`](Self::inject_fault) set, used up or not.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// A Region whose KMS endpoint does not answer at all.
    pub fn set_region_down(&self, region: &str, down: bool) {
        let mut s = self.lock();
        s.down.retain(|r| r != region);
        if down {
            s.down.push(region.to_string());
        }
    }

    /// An opt-in Region the account has not enabled (`enabled: false`), or has enabled again.
    /// While it is not enabled, every call to its endpoint answers UnrecognizedClientException
    /// (the security token is not valid there), and ReplicateKey into it answers
    /// UnsupportedOperationException (an inference: the KMS API Reference says only that the
    /// account must be enabled in the replica's Region).
    pub fn set_region_enabled(&self, region: &str, enabled: bool) {
        let mut s = self.lock();
        s.not_enabled.retain(|r| r != region);
        if !enabled {
            s.not_enabled.push(region.to_string());
        }
    }

    /// KMS in `region` does not offer `spec` (a key spec such as `HMAC_256`, or a family:
    /// `HMAC`, `RSA`, `ECC`): CreateKey there and ReplicateKey into it answer
    /// UnsupportedOperationException, as KMS does for HMAC keys in a Region without HMAC (KMS
    /// API Reference, ReplicateKey).
    pub fn set_key_spec_unavailable(&self, region: &str, spec: &str) {
        self.lock()
            .unavailable_specs
            .push((region.to_string(), spec.to_string()));
    }

    /// A Regional endpoint that accepts requests and then stalls: from now on, calls of `op`
    /// (any when `None`) in `region` (any when `None`) are recorded, then wait `delay` before
    /// they are served (the answer is late, and a write is still applied), or, with `None`,
    /// are never answered: they wait until the stall is cleared and then fail as
    /// `Unreachable` without effect (over HTTP the connection is closed without an answer).
    /// Unlike [`set_region_down`](Self::set_region_down) the caller learns nothing until its
    /// own timeout. A second stall for the same Region and operation replaces the first.
    pub fn set_stall(&self, region: Option<&str>, op: Option<Op>, delay: Option<Duration>) {
        let stall = Stall {
            region: region.map(str::to_string),
            op,
            delay,
        };
        let mut s = self.lock();
        s.stalls
            .retain(|t| !(t.region == stall.region && t.op == stall.op));
        s.stalls.push(stall);
        s.stalls_changed.send_modify(|g| *g += 1);
    }

    /// Ends the stall set for exactly this Region and operation (`None` as given to
    /// [`set_stall`](Self::set_stall)); calls waiting on it that would never be answered fail
    /// as `Unreachable`.
    pub fn clear_stall(&self, region: Option<&str>, op: Option<Op>) {
        let mut s = self.lock();
        s.stalls
            .retain(|t| !(t.region.as_deref() == region && t.op == op));
        s.stalls_changed.send_modify(|g| *g += 1);
    }

    /// Ends every stall.
    pub fn clear_stalls(&self) {
        let mut s = self.lock();
        s.stalls.clear();
        s.stalls_changed.send_modify(|g| *g += 1);
    }

    /// At most `per_second` calls of `op` per Region per second, like the KMS request quotas.
    pub fn set_rate_limit(&self, op: Op, per_second: u32) {
        self.lock().rate_limits.insert(op, per_second);
    }

    /// No rate limit any more (a test setting up state between two measured runs).
    pub fn clear_rate_limits(&self) {
        self.lock().rate_limits.clear();
    }

    /// How many calls were refused with ThrottlingException.
    pub fn throttled_count(&self) -> usize {
        self.lock().throttled
    }

    /// Makes PutEvents fail, to test what happens when the audit bus is unavailable.
    pub fn set_audit_down(&self, down: bool) {
        self.lock().audit_down = down;
    }
}

impl Stall {
    pub(crate) fn matches(&self, region: &str, op: Op) -> bool {
        self.region.as_deref().is_none_or(|r| r == region) && self.op.is_none_or(|o| o == op)
    }
}

impl State {
    /// Whether the Region's KMS endpoint is down ([`Twin::set_region_down`]).
    pub(crate) fn is_down(&self, region: &str) -> bool {
        self.down.iter().any(|r| r == region)
    }

    /// Whether the Region is an opt-in Region the account has not enabled.
    pub(crate) fn is_not_enabled(&self, region: &str) -> bool {
        self.not_enabled.iter().any(|r| r == region)
    }

    /// UnsupportedOperationException, for `op` answered in `answering`, when KMS in `region`
    /// does not offer the key's spec.
    pub(crate) fn offers_spec(
        &self,
        op: Op,
        region: &str,
        kind: &crate::kinds::KeyKind,
    ) -> KmsResult<()> {
        self.offers_spec_answered_in(op, region, region, kind)
    }

    pub(crate) fn offers_spec_answered_in(
        &self,
        op: Op,
        answering: &str,
        region: &str,
        kind: &crate::kinds::KeyKind,
    ) -> KmsResult<()> {
        let refused = self
            .unavailable_specs
            .iter()
            .any(|(r, spec)| r == region && kind.is_of(spec));
        if refused {
            return Err(err(
                ErrorKind::UnsupportedOperation,
                op,
                answering,
                "UnsupportedOperationException",
                format!("KeySpec {} is not supported in {region}", kind.spec),
            ));
        }
        Ok(())
    }

    /// The stall a call of `op` in `region` meets (the last one set that matches), with a
    /// receiver that wakes when the stalls change.
    pub(crate) fn stall_for(&self, region: &str, op: Op) -> Option<(Stall, watch::Receiver<u64>)> {
        let stall = self
            .stalls
            .iter()
            .rev()
            .find(|t| t.matches(region, op))
            .cloned();
        stall.map(|t| (t, self.stalls_changed.subscribe()))
    }

    /// Fails the call with the first injected fault that still applies to it, and uses it up.
    pub(crate) fn take_fault(&mut self, region: &str, op: Op) -> KmsResult<()> {
        if let Some(f) = self.faults.iter_mut().find(|f| {
            f.remaining > 0
                && f.region.as_deref().is_none_or(|r| r == region)
                && f.op.is_none_or(|o| o == op)
        }) {
            f.remaining -= 1;
            let (kind, code) = (f.kind, f.code.clone());
            return Err(err(kind, op, region, &code, "injected fault"));
        }
        Ok(())
    }

    /// Counts one request of `op` against the Region's rate limit, if one is set.
    pub(crate) fn charge(&mut self, region: &str, op: Op) -> KmsResult<()> {
        let Some(&limit) = self.rate_limits.get(&op) else {
            return Ok(());
        };
        let now = Instant::now();
        let bucket = self.buckets.entry((region.to_string(), op)).or_default();
        match bucket.window_start {
            Some(start) if now.duration_since(start) < Duration::from_secs(1) => {}
            _ => {
                bucket.window_start = Some(now);
                bucket.used = 0;
            }
        }
        bucket.used += 1;
        if bucket.used > limit {
            self.throttled += 1;
            return Err(err(
                ErrorKind::Throttling,
                op,
                region,
                "ThrottlingException",
                "Rate exceeded",
            ));
        }
        Ok(())
    }
}
