//! The reconcile function's own settings, from its environment (the replication settings are
//! in [`Config`](kms_replicator::Config)).

use kms_replicator::config::{whole_number, ConfigError};
use kms_replicator::limit::DEFAULT_READ_RATE;
use std::time::Duration;

/// The function's own settings (the replication settings are in [`Config`]).
///
/// [`Config`]: kms_replicator::Config
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Keys synced at the same time.
    pub concurrency: usize,
    /// No key is started later than this before the invocation's deadline; keys still
    /// running at half of it are abandoned, so the report always goes out in time.
    pub deadline_margin: Duration,
    /// Requests per second allowed for each read operation, per Region.
    pub read_rate: u32,
    /// How long after a key's creation a repair of it counts as one events should have made
    /// (CloudTrail's delivery delay; [`crate::missed`]).
    pub event_delay: Duration,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            concurrency: 16,
            deadline_margin: Duration::from_secs(10),
            read_rate: DEFAULT_READ_RATE,
            event_delay: Duration::from_secs(900),
        }
    }
}

impl Settings {
    pub fn from_env() -> Result<Settings, ConfigError> {
        Settings::from_lookup(|k| std::env::var(k).ok())
    }

    /// `RECONCILE_CONCURRENCY`, `RECONCILE_DEADLINE_MARGIN_SECONDS`, `RECONCILE_READ_RATE`;
    /// each optional.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Settings, ConfigError> {
        let mut s = Settings::default();
        if let Some(n) = whole_number(&get, "RECONCILE_CONCURRENCY", 1..=64, "")? {
            s.concurrency = n as usize;
        }
        if let Some(n) = whole_number(
            &get,
            "RECONCILE_DEADLINE_MARGIN_SECONDS",
            1..=300,
            "seconds",
        )? {
            s.deadline_margin = Duration::from_secs(n);
        }
        if let Some(n) = whole_number(&get, "RECONCILE_READ_RATE", 1..=2000, "")? {
            s.read_rate = n as u32;
        }
        if let Some(n) = whole_number(&get, "EVENT_DELIVERY_DELAY_SECONDS", 0..=86_400, "seconds")?
        {
            s.event_delay = Duration::from_secs(n);
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_default_when_unset_and_refuse_values_out_of_range() {
        assert_eq!(
            Settings::from_lookup(|_| None).unwrap(),
            Settings::default()
        );
        let s = Settings::from_lookup(|k| (k == "RECONCILE_CONCURRENCY").then(|| " 4 ".into()))
            .unwrap();
        assert_eq!(s.concurrency, 4);
        let e = Settings::from_lookup(|k| (k == "RECONCILE_READ_RATE").then(|| "0".into()))
            .unwrap_err();
        assert_eq!(e.variable, "RECONCILE_READ_RATE");
        assert_eq!(e.value.as_deref(), Some("0"));
        assert!(e.to_string().contains("between 1 and 2000"), "{e}");
    }
}
