//! Configuration, read once from the environment at cold start.

use crate::region::parse_region_list;
use serde::Serialize;
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
    pub audit_bus: String,
    pub audit_source: String,
    /// Callers (IAM role ARNs) whose CloudTrail events are skipped: the replicator's own roles.
    pub ignore_callers: Vec<String>,
    /// The IAM path of the replicator's roles in every Region and account: calls made by a
    /// session of a role under it are skipped too. `None`: no path is ignored.
    pub ignore_role_path: Option<String>,
}

/// The IAM path the template gives the replicator's roles.
pub const DEFAULT_ROLE_PATH: &str = "/kms-replicator/";

#[derive(Debug, Error, PartialEq, Eq)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

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
            audit_bus: "default".into(),
            audit_source: "kms-replicator".into(),
            ignore_callers: Vec::new(),
            ignore_role_path: Some(DEFAULT_ROLE_PATH.into()),
        }
    }

    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the variables through `get`, so that tests need not touch the process environment.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let var = |k: &str| {
            get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let allowed_raw = var("ALLOWED_REGIONS").ok_or_else(|| {
            ConfigError(
                "ALLOWED_REGIONS is required: the Regions replicas may be written to".into(),
            )
        })?;
        let allowed_regions = parse_region_list(&allowed_raw)
            .map_err(|e| ConfigError(format!("ALLOWED_REGIONS: {e}")))?;
        let managed_regions = match var("MANAGED_REGIONS") {
            Some(raw) => {
                parse_region_list(&raw).map_err(|e| ConfigError(format!("MANAGED_REGIONS: {e}")))?
            }
            None => allowed_regions.clone(),
        };
        let policy_mode = match var("POLICY_MODE").as_deref().unwrap_or("rewrite") {
            "rewrite" => PolicyMode::Rewrite,
            "verbatim" => PolicyMode::Verbatim,
            "off" => PolicyMode::Off,
            other => {
                return Err(ConfigError(format!(
                    "POLICY_MODE must be rewrite, verbatim or off, not '{other}'"
                )))
            }
        };
        let removal = match var("REMOVAL_POLICY").as_deref().unwrap_or("Retain") {
            "Retain" => RemovalPolicy::Retain,
            "ScheduleDeletion" => {
                let days = match var("PENDING_WINDOW_DAYS") {
                    None => 30,
                    Some(raw) => raw.parse::<i32>().map_err(|_| {
                        ConfigError(format!("PENDING_WINDOW_DAYS must be a number, not '{raw}'"))
                    })?,
                };
                if !(7..=30).contains(&days) {
                    return Err(ConfigError(format!(
                        "PENDING_WINDOW_DAYS must be between 7 and 30, not {days}"
                    )));
                }
                RemovalPolicy::ScheduleDeletion {
                    pending_window_days: days,
                }
            }
            other => {
                return Err(ConfigError(format!(
                    "REMOVAL_POLICY must be Retain or ScheduleDeletion, not '{other}'"
                )))
            }
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
                    return Err(ConfigError(format!(
                        "IGNORE_CALLER_ROLE_PATH must be an IAM path other than '/' (such as \
                         /kms-replicator/), or empty for none, not '{v}'"
                    )));
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
            audit_bus: var("AUDIT_EVENT_BUS").unwrap_or_else(|| "default".into()),
            audit_source: var("AUDIT_SOURCE").unwrap_or_else(|| "kms-replicator".into()),
            ignore_callers,
            ignore_role_path,
        })
    }

    pub fn is_allowed(&self, region: &str) -> bool {
        self.allowed_regions.iter().any(|r| r == region)
    }
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
        assert!(err.0.contains("ALLOWED_REGIONS"));
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
        assert!(err.0.contains("between 7 and 30"));
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
            assert!(err.0.contains("IGNORE_CALLER_ROLE_PATH"), "{bad}: {err}");
        }
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
