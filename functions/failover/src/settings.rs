//! The function's settings besides [`Config`](kms_replicator::Config): the wait bound, the
//! polling schedule, the concurrency of a bulk failover, the deadline margin, and the request
//! quotas it keeps. Pure: no calls.

use kms_replicator::config::{whole_number, ConfigError};
use kms_replicator::limit::{Quotas, DEFAULT_READ_RATE};
use std::time::Duration;

/// The request quotas the function keeps across every key of a batch: each write at its KMS
/// quota (UpdatePrimaryRegion 5 per second, counted in both Regions; TagResource, which
/// every key's promotion and sync make in both Regions, 10 per second), each read at
/// [`DEFAULT_READ_RATE`]. Wrap the [`Kms`](kms_replicator::Kms) in a
/// [`RateLimitedKms`](kms_replicator::limit::RateLimitedKms) with these, one per process.
pub fn quotas() -> Quotas {
    Quotas::kms(DEFAULT_READ_RATE)
}

/// The handler's settings besides the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailoverSettings {
    /// How long to wait for the target Region to report the key as PRIMARY and Enabled.
    pub wait: Duration,
    /// The first pause between two DescribeKey polls; it doubles up to `max_poll` (1 s: the
    /// `Updating` state lasts seconds, and a longer pause would be pure wait).
    pub first_poll: Duration,
    pub max_poll: Duration,
    /// Keys handled at once in bulk mode: enough that the promotions, each waiting seconds
    /// for `Updating` to end, keep UpdatePrimaryRegion at its quota (5 per second).
    pub concurrency: usize,
    /// No key is started this close to the invocation's deadline, and a wait for a new
    /// primary ends half of it before the deadline: time left to check, report and publish
    /// the audit events. A Lambda that hits its timeout reports nothing at all.
    pub deadline_margin: Duration,
}

impl Default for FailoverSettings {
    fn default() -> Self {
        FailoverSettings {
            wait: Duration::from_secs(120),
            first_poll: Duration::from_millis(250),
            max_poll: Duration::from_secs(1),
            concurrency: 20,
            deadline_margin: Duration::from_secs(20),
        }
    }
}

impl FailoverSettings {
    pub fn from_env() -> Result<FailoverSettings, ConfigError> {
        FailoverSettings::from_lookup(|k| std::env::var(k).ok())
    }

    /// `FAILOVER_WAIT_SECONDS` (default 120): the bound on the wait for the new primary.
    pub fn from_lookup(
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<FailoverSettings, ConfigError> {
        let mut s = FailoverSettings::default();
        if let Some(secs) = whole_number(get, "FAILOVER_WAIT_SECONDS", 1..=900, "seconds")? {
            s.wait = Duration::from_secs(secs);
        }
        Ok(s)
    }
}

/// The pauses between polls: `first`, doubling, capped at `cap`.
pub fn poll_delays(first: Duration, cap: Duration) -> impl Iterator<Item = Duration> {
    std::iter::successors(Some(first.min(cap)), move |d| Some((*d * 2).min(cap)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_start_short_and_are_capped() {
        let d: Vec<u64> = poll_delays(Duration::from_millis(250), Duration::from_secs(5))
            .take(7)
            .map(|d| d.as_millis() as u64)
            .collect();
        assert_eq!(d, vec![250, 500, 1000, 2000, 4000, 5000, 5000]);
    }

    #[test]
    fn settings_read_the_wait_bound_and_refuse_nonsense() {
        let s = FailoverSettings::from_lookup(|_| None).unwrap();
        assert_eq!(s.wait, Duration::from_secs(120));
        let s =
            FailoverSettings::from_lookup(|k| (k == "FAILOVER_WAIT_SECONDS").then(|| "30".into()))
                .unwrap();
        assert_eq!(s.wait, Duration::from_secs(30));
        for bad in ["0", "-1", "2m", "901"] {
            let e = FailoverSettings::from_lookup(|_| Some(bad.into())).unwrap_err();
            assert!(e.to_string().contains("FAILOVER_WAIT_SECONDS"), "{bad}");
        }
    }
}
