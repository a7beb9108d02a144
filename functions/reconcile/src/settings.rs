//! The reconcile function's own settings, from its environment (the replication settings are
//! in [`Config`](kms_replicator::Config)).

use kms_replicator::limit::DEFAULT_READ_RATE;
use std::time::Duration;

/// A setting whose value is out of its range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name} must be a whole number from {min} to {max}, not '{raw}'")]
pub struct SettingsError {
    pub name: String,
    pub min: u64,
    pub max: u64,
    pub raw: String,
}

/// The function's own settings (the replication settings are in [`Config`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Keys synced at the same time.
    pub concurrency: usize,
    /// No key is started later than this before the invocation's deadline; keys still
    /// running at half of it are abandoned, so the report always goes out in time.
    pub deadline_margin: Duration,
    /// Requests per second allowed for each read operation, per Region.
    pub read_rate: u32,
    /// CloudWatch namespace of the metrics.
    pub metrics_namespace: String,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            concurrency: 16,
            deadline_margin: Duration::from_secs(10),
            read_rate: DEFAULT_READ_RATE,
            metrics_namespace: "KmsReplicator".into(),
        }
    }
}

impl Settings {
    pub fn from_env() -> Result<Settings, SettingsError> {
        Settings::from_lookup(|k| std::env::var(k).ok())
    }

    /// `RECONCILE_CONCURRENCY`, `RECONCILE_DEADLINE_MARGIN_SECONDS`, `RECONCILE_READ_RATE`,
    /// `METRICS_NAMESPACE`; each optional.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Settings, SettingsError> {
        let mut s = Settings::default();
        let number = |name: &str, min: u64, max: u64| -> Result<Option<u64>, SettingsError> {
            match get(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
            {
                None => Ok(None),
                Some(raw) => match raw.parse::<u64>() {
                    Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
                    _ => Err(SettingsError {
                        name: name.to_string(),
                        min,
                        max,
                        raw,
                    }),
                },
            }
        };
        if let Some(n) = number("RECONCILE_CONCURRENCY", 1, 64)? {
            s.concurrency = n as usize;
        }
        if let Some(n) = number("RECONCILE_DEADLINE_MARGIN_SECONDS", 1, 300)? {
            s.deadline_margin = Duration::from_secs(n);
        }
        if let Some(n) = number("RECONCILE_READ_RATE", 1, 2000)? {
            s.read_rate = n as u32;
        }
        if let Some(ns) = get("METRICS_NAMESPACE").filter(|v| !v.trim().is_empty()) {
            s.metrics_namespace = ns.trim().to_string();
        }
        Ok(s)
    }
}
