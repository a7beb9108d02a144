//! Configuration, read once from the environment at cold start.

use crate::region::parse_region_list;
use serde::Serialize;
use std::ops::RangeInclusive;
use thiserror::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyMode {
    /// Mirror the primary's policy with its Region tokens rewritten for the target Region.
    Rewrite,
    /// Mirror the primary's policy unchanged.
    Verbatim,
    /// Leave replica policies alone (new replicas get KMS's default policy).
    Off,
}

/// Who consents to a key's replication (`CONSENT`; docs/security-model.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Consent {
    /// `tag`: the replication tag is both the request and the consent.
    Tag,
    /// `key-policy`: a key is managed only when its own policy grants the replicator's roles
    /// `kms:ReplicateKey`, and only in the Regions that statement's `kms:ReplicaRegion` lists.
    KeyPolicy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum RemovalPolicy {
    /// Stop managing a replica whose Region left the tag; touch nothing.
    Retain,
    /// Schedule deletion of such a replica.
    ScheduleDeletion { pending_window_days: i32 },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Config {
    pub tag_key: String,
    /// The only Regions ever written to (a data-residency guardrail).
    pub allowed_regions: Vec<String>,
    /// Regions the reconcile sweep scans for primaries.
    pub managed_regions: Vec<String>,
    pub policy_mode: PolicyMode,
    pub removal: RemovalPolicy,
    /// Under `ScheduleDeletion`, a replica used within this many days is not deleted (the
    /// in-use guard, `IN_USE_WINDOW_DAYS`); 0 turns the guard off.
    pub in_use_window_days: u32,
    pub audit_bus: String,
    pub audit_source: String,
    /// Callers (IAM role ARNs) whose CloudTrail events are skipped: the replicator's own roles.
    pub ignore_callers: Vec<String>,
    /// The IAM path of the replicator's roles in every Region and account: calls made by a
    /// session of a role under it are skipped too. `None`: no path is ignored.
    pub ignore_role_path: Option<String>,
    /// The CloudWatch namespace of every function's metrics.
    pub metrics_namespace: String,
    /// The stack's own account (`ACCOUNT_ID`): CloudTrail events of any other account are
    /// ignored. `None`: not checked.
    pub account: Option<String>,
    pub consent: Consent,
}

/// The in-use guard's window unless `IN_USE_WINDOW_DAYS` says otherwise.
pub const DEFAULT_IN_USE_WINDOW_DAYS: u32 = 30;

/// The IAM path the template gives the replicator's roles.
pub const DEFAULT_ROLE_PATH: &str = "/kms-replicator/";

/// The CloudWatch namespace of the functions' metrics unless `METRICS_NAMESPACE` names another.
pub const DEFAULT_METRICS_NAMESPACE: &str = "KmsReplicator";

/// A variable of the environment that is missing or holds a value it may not: the function
/// stops at cold start, before any invocation, with a message that names the variable, what
/// it holds and what it must hold.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("configuration: {}", self.sentence())]
pub struct ConfigError {
    pub variable: &'static str,
    /// What the variable holds; `None` when it is not set.
    pub value: Option<String>,
    /// What it must hold, as a person reads it: "a whole number between 1 and 64".
    pub expected: String,
}

impl ConfigError {
    /// A required variable that is not set.
    pub fn missing(variable: &'static str, expected: impl Into<String>) -> ConfigError {
        ConfigError {
            variable,
            value: None,
            expected: expected.into(),
        }
    }

    /// A variable whose `value` is not one it may hold.
    pub fn invalid(
        variable: &'static str,
        value: impl Into<String>,
        expected: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            variable,
            value: Some(value.into()),
            expected: expected.into(),
        }
    }

    fn sentence(&self) -> String {
        match &self.value {
            None => format!("{} is required: {}", self.variable, self.expected),
            Some(v) => format!("{} must be {}, not '{v}'", self.variable, self.expected),
        }
    }
}

/// The value of `variable`, trimmed; `None` when it is not set or blank.
pub fn value_of(get: impl Fn(&str) -> Option<String>, variable: &str) -> Option<String> {
    get(variable)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The whole number in `variable`, within `range`; `None` when it is not set or blank. `unit`
/// is what it counts ("seconds"), or empty.
pub fn whole_number(
    get: impl Fn(&str) -> Option<String>,
    variable: &'static str,
    range: RangeInclusive<u64>,
    unit: &str,
) -> Result<Option<u64>, ConfigError> {
    let Some(raw) = value_of(get, variable) else {
        return Ok(None);
    };
    match raw.parse::<u64>() {
        Ok(n) if range.contains(&n) => Ok(Some(n)),
        _ => {
            let (min, max) = (range.start(), range.end());
            let of = if unit.is_empty() {
                String::new()
            } else {
                format!(" of {unit}")
            };
            Err(ConfigError::invalid(
                variable,
                raw,
                format!("a whole number{of} between {min} and {max}"),
            ))
        }
    }
}

impl Config {
    /// A configuration for the given allowed Regions, everything else at its default.
    pub fn new(allowed_regions: &[&str]) -> Config {
        let allowed: Vec<String> = allowed_regions.iter().map(|s| s.to_string()).collect();
        Config {
            tag_key: "replicate-to".into(),
            managed_regions: allowed.clone(),
            allowed_regions: allowed,
            policy_mode: PolicyMode::Rewrite,
            removal: RemovalPolicy::Retain,
            in_use_window_days: DEFAULT_IN_USE_WINDOW_DAYS,
            audit_bus: "default".into(),
            audit_source: "kms-replicator".into(),
            ignore_callers: Vec::new(),
            ignore_role_path: Some(DEFAULT_ROLE_PATH.into()),
            metrics_namespace: DEFAULT_METRICS_NAMESPACE.into(),
            account: None,
            consent: Consent::Tag,
        }
    }

    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the variables through `get`, so that tests need not touch the process environment.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let var = |k: &str| value_of(&get, k);
        let allowed_raw = var("ALLOWED_REGIONS").ok_or_else(|| {
            ConfigError::missing("ALLOWED_REGIONS", "the Regions replicas may be written to")
        })?;
        let allowed_regions = region_list("ALLOWED_REGIONS", &allowed_raw)?;
        let managed_regions = match var("MANAGED_REGIONS") {
            Some(raw) => region_list("MANAGED_REGIONS", &raw)?,
            None => allowed_regions.clone(),
        };
        let policy_mode = match var("POLICY_MODE").as_deref().unwrap_or("rewrite") {
            "rewrite" => PolicyMode::Rewrite,
            "verbatim" => PolicyMode::Verbatim,
            "off" => PolicyMode::Off,
            other => {
                return Err(ConfigError::invalid(
                    "POLICY_MODE",
                    other,
                    "rewrite, verbatim or off",
                ))
            }
        };
        let removal = match var("REMOVAL_POLICY").as_deref().unwrap_or("Retain") {
            "Retain" => RemovalPolicy::Retain,
            "ScheduleDeletion" => {
                let days = whole_number(&get, "PENDING_WINDOW_DAYS", 7..=30, "days")?;
                RemovalPolicy::ScheduleDeletion {
                    // At most 30, so it fits.
                    pending_window_days: days.map_or(30, |d| d as i32),
                }
            }
            other => {
                return Err(ConfigError::invalid(
                    "REMOVAL_POLICY",
                    other,
                    "Retain or ScheduleDeletion",
                ))
            }
        };
        let consent = match var("CONSENT").as_deref().unwrap_or("tag") {
            "tag" => Consent::Tag,
            "key-policy" => Consent::KeyPolicy,
            other => return Err(ConfigError::invalid("CONSENT", other, "tag or key-policy")),
        };
        let tag_key = var("REPLICATION_TAG_KEY").unwrap_or_else(|| "replicate-to".into());
        let ignore_callers = var("IGNORE_CALLER_ARNS")
            .map(|s| s.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default();
        // Absent: the template's path; empty: none.
        let ignore_role_path = match get("IGNORE_CALLER_ROLE_PATH").map(|v| v.trim().to_string()) {
            None => Some(DEFAULT_ROLE_PATH.to_string()),
            Some(v) if v.is_empty() => None,
            Some(v) => {
                let valid = v.len() > 1
                    && v.starts_with('/')
                    && v.ends_with('/')
                    && !v.contains("//")
                    && v.chars().all(|c| c.is_ascii_graphic());
                if !valid {
                    return Err(ConfigError::invalid(
                        "IGNORE_CALLER_ROLE_PATH",
                        v,
                        "an IAM path other than '/' (such as /kms-replicator/), or empty for none",
                    ));
                }
                Some(v)
            }
        };
        Ok(Config {
            tag_key,
            allowed_regions,
            managed_regions,
            policy_mode,
            removal,
            in_use_window_days: whole_number(&get, "IN_USE_WINDOW_DAYS", 0..=3650, "days")?
                .map_or(DEFAULT_IN_USE_WINDOW_DAYS, |d| d as u32),
            audit_bus: var("AUDIT_EVENT_BUS").unwrap_or_else(|| "default".into()),
            audit_source: var("AUDIT_SOURCE").unwrap_or_else(|| "kms-replicator".into()),
            ignore_callers,
            ignore_role_path,
            metrics_namespace: var("METRICS_NAMESPACE")
                .unwrap_or_else(|| DEFAULT_METRICS_NAMESPACE.into()),
            account: var("ACCOUNT_ID"),
            consent,
        })
    }

    pub fn is_allowed(&self, region: &str) -> bool {
        self.allowed_regions.iter().any(|r| r == region)
    }
}

fn region_list(variable: &'static str, raw: &str) -> Result<Vec<String>, ConfigError> {
    parse_region_list(raw).map_err(|e| {
        ConfigError::invalid(
            variable,
            raw,
            format!("AWS Region names separated by spaces or commas ({e})"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_apply_when_only_allowed_regions_is_set() {
        let c = Config::from_lookup(lookup(&[("ALLOWED_REGIONS", "us-east-1 us-west-2")])).unwrap();
        assert_eq!(c.tag_key, "replicate-to");
        assert_eq!(c.managed_regions, c.allowed_regions);
        assert_eq!(c.policy_mode, PolicyMode::Rewrite);
        assert_eq!(c.removal, RemovalPolicy::Retain);
        assert_eq!(c.audit_bus, "default");
    }

    #[test]
    fn missing_allowed_regions_fails_fast() {
        let err = Config::from_lookup(lookup(&[])).unwrap_err();
        assert!(err.to_string().contains("ALLOWED_REGIONS"));
    }

    #[test]
    fn removal_policy_reads_its_pending_window_and_bounds_it() {
        let c = Config::from_lookup(lookup(&[
            ("ALLOWED_REGIONS", "us-east-1"),
            ("REMOVAL_POLICY", "ScheduleDeletion"),
            ("PENDING_WINDOW_DAYS", "7"),
        ]))
        .unwrap();
        assert_eq!(
            c.removal,
            RemovalPolicy::ScheduleDeletion {
                pending_window_days: 7
            }
        );
        let err = Config::from_lookup(lookup(&[
            ("ALLOWED_REGIONS", "us-east-1"),
            ("REMOVAL_POLICY", "ScheduleDeletion"),
            ("PENDING_WINDOW_DAYS", "3"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("between 7 and 30"));
    }

    #[test]
    fn the_in_use_window_defaults_to_30_days_and_0_turns_the_guard_off() {
        let base = ("ALLOWED_REGIONS", "us-east-1");
        let c = Config::from_lookup(lookup(&[base])).unwrap();
        assert_eq!(c.in_use_window_days, 30);
        let c = Config::from_lookup(lookup(&[base, ("IN_USE_WINDOW_DAYS", "0")])).unwrap();
        assert_eq!(c.in_use_window_days, 0);
        let err = Config::from_lookup(lookup(&[base, ("IN_USE_WINDOW_DAYS", "-1")])).unwrap_err();
        assert!(err.to_string().contains("IN_USE_WINDOW_DAYS"), "{err}");
    }

    #[test]
    fn the_ignored_role_path_defaults_to_the_templates_and_empty_means_none() {
        let c = Config::from_lookup(lookup(&[("ALLOWED_REGIONS", "us-east-1")])).unwrap();
        assert_eq!(c.ignore_role_path.as_deref(), Some("/kms-replicator/"));
        let c = Config::from_lookup(lookup(&[
            ("ALLOWED_REGIONS", "us-east-1"),
            ("IGNORE_CALLER_ROLE_PATH", ""),
        ]))
        .unwrap();
        assert_eq!(c.ignore_role_path, None);
        let c = Config::from_lookup(lookup(&[
            ("ALLOWED_REGIONS", "us-east-1"),
            ("IGNORE_CALLER_ROLE_PATH", "/team/kms/"),
        ]))
        .unwrap();
        assert_eq!(c.ignore_role_path.as_deref(), Some("/team/kms/"));
        // "/" is the path of every role without one: it would ignore nearly everybody.
        for bad in [
            "/",
            "kms-replicator",
            "/kms-replicator",
            "kms-replicator/",
            "/a//b/",
        ] {
            let err = Config::from_lookup(lookup(&[
                ("ALLOWED_REGIONS", "us-east-1"),
                ("IGNORE_CALLER_ROLE_PATH", bad),
            ]))
            .unwrap_err();
            assert!(
                err.to_string().contains("IGNORE_CALLER_ROLE_PATH"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn a_whole_number_is_read_within_its_range_and_refused_naming_what_it_must_be() {
        let get = lookup(&[
            ("N", " 12 "),
            ("BLANK", " "),
            ("BIG", "301"),
            ("WORD", "ten"),
        ]);
        assert_eq!(whole_number(&get, "N", 1..=300, "seconds"), Ok(Some(12)));
        assert_eq!(whole_number(&get, "BLANK", 1..=300, "seconds"), Ok(None));
        assert_eq!(whole_number(&get, "UNSET", 1..=300, "seconds"), Ok(None));
        let e = whole_number(&get, "BIG", 1..=300, "seconds").unwrap_err();
        assert_eq!(
            e.to_string(),
            "configuration: BIG must be a whole number of seconds between 1 and 300, not '301'"
        );
        let e = whole_number(&get, "WORD", 0..=9, "").unwrap_err();
        assert_eq!(e.expected, "a whole number between 0 and 9");
        assert_eq!(e.value.as_deref(), Some("ten"));
    }

    #[test]
    fn the_metrics_namespace_defaults_to_kms_replicator() {
        let c = Config::from_lookup(lookup(&[("ALLOWED_REGIONS", "us-east-1")])).unwrap();
        assert_eq!(c.metrics_namespace, "KmsReplicator");
        let c = Config::from_lookup(lookup(&[
            ("ALLOWED_REGIONS", "us-east-1"),
            ("METRICS_NAMESPACE", " Team/Kms "),
        ]))
        .unwrap();
        assert_eq!(c.metrics_namespace, "Team/Kms");
    }

    #[test]
    fn unknown_modes_are_rejected() {
        assert!(Config::from_lookup(lookup(&[
            ("ALLOWED_REGIONS", "us-east-1"),
            ("POLICY_MODE", "merge")
        ]))
        .is_err());
    }
}
