//! The on-call person's request and the function's settings: validating the invocation
//! payload into a [`FailoverPlan`], the wait bound, the polling schedule and the replication
//! tag's update before a promotion. Pure: no calls.

use kms_replicator::config::{Config, ConfigError};
use kms_replicator::region::is_region_name;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;

/// What the on-call person sends. `key` (one key) and `from` (every managed key whose primary
/// is in that Region) exclude each other.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FailoverRequest {
    /// Key id, key ARN, alias name or alias ARN.
    #[serde(default)]
    pub key: Option<String>,
    /// Where to look `key` up when it is not an ARN.
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub from: Option<String>,
    pub to: String,
    #[serde(default)]
    pub dry_run: bool,
    /// Promote a key even though it does not carry the replication tag (not managed by this
    /// replicator). Off by default: the function acts on the keys the replicator manages.
    #[serde(default)]
    pub include_unmanaged: bool,
}

/// Shown with every input error.
pub const USAGE: &str = r#"expected {"key":"<key id, key ARN or alias/name>","to":"<Region>"} (optional "region":"<where to look the key up>") or {"from":"<Region>","to":"<Region>"}, each with an optional "dryRun":true; a key without the replication tag also needs "includeUnmanaged":true"#;

/// What is wrong with a request. Every message says what is wrong and what is expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("the input is not a JSON object; {usage}", usage = USAGE)]
    NotAnObject,
    /// The input does not deserialise (unknown field, wrong type, missing `to`...).
    #[error("{0}; {usage}", usage = USAGE)]
    Invalid(String),
    #[error("\"{field}\": '{value}' is not an AWS Region name")]
    NotARegion { field: &'static str, value: String },
    #[error(
        "\"to\": Region {to} is not in ALLOWED_REGIONS ({allowed}); the replicator never writes \
         outside them"
    )]
    NotAllowed { to: String, allowed: String },
    #[error(
        "give either \"key\" (one key) or \"from\" (every managed key whose primary is in that \
         Region), not both; {usage}",
        usage = USAGE
    )]
    KeyAndFrom,
    #[error(
        "give \"key\" (one key) or \"from\" (every managed key whose primary is in that \
         Region); {usage}",
        usage = USAGE
    )]
    NeitherKeyNorFrom,
    #[error("\"region\" only goes with \"key\"; {usage}", usage = USAGE)]
    RegionWithoutKey,
    #[error("\"from\" and \"to\" are both {0}: there is nothing to promote")]
    SameRegion(String),
    #[error("\"key\" is empty; {usage}", usage = USAGE)]
    EmptyKey,
    #[error("\"key\": '{0}' is not a KMS key or alias ARN")]
    NotAKmsArn(String),
    #[error("\"key\" is an ARN in {arn_region} but \"region\" says {given}; give one")]
    RegionMismatch { arn_region: String, given: String },
}

/// Which keys a request is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One key. `region` is where to look it up: the ARN's Region or the request's `region`;
    /// `None` means the managed Regions in order, then the target Region.
    Key { key: String, region: Option<String> },
    /// Every managed primary whose Region is `from`.
    Region { from: String },
}

/// A validated request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailoverPlan {
    pub target: Target,
    pub to: String,
    pub dry_run: bool,
    /// Whether a key without the replication tag may be promoted (single-key requests).
    pub include_unmanaged: bool,
    /// The invocation's deadline, when it has one: no key is started within
    /// `FailoverSettings::deadline_margin` of it, and waits end before it.
    pub deadline: Option<tokio::time::Instant>,
}

fn region_field(field: &'static str, value: &str) -> Result<String, RequestError> {
    let v = value.trim();
    if is_region_name(v) {
        Ok(v.to_string())
    } else {
        Err(RequestError::NotARegion {
            field,
            value: value.to_string(),
        })
    }
}

/// Validates the invocation payload. Every error says what is wrong and what is expected.
pub fn parse_request(input: &Value, cfg: &Config) -> Result<FailoverPlan, RequestError> {
    if !input.is_object() {
        return Err(RequestError::NotAnObject);
    }
    let req: FailoverRequest =
        serde_json::from_value(input.clone()).map_err(|e| RequestError::Invalid(e.to_string()))?;
    let to = region_field("to", &req.to)?;
    if !cfg.is_allowed(&to) {
        return Err(RequestError::NotAllowed {
            to,
            allowed: cfg.allowed_regions.join(" "),
        });
    }
    let target = match (req.key, req.from) {
        (Some(_), Some(_)) => return Err(RequestError::KeyAndFrom),
        (None, None) => return Err(RequestError::NeitherKeyNorFrom),
        (None, Some(from)) => {
            if req.region.is_some() {
                return Err(RequestError::RegionWithoutKey);
            }
            let from = region_field("from", &from)?;
            if from == to {
                return Err(RequestError::SameRegion(to));
            }
            Target::Region { from }
        }
        (Some(key), None) => {
            let key = key.trim().to_string();
            if key.is_empty() {
                return Err(RequestError::EmptyKey);
            }
            let given = req
                .region
                .as_deref()
                .map(|r| region_field("region", r))
                .transpose()?;
            let region = if key.starts_with("arn:") {
                let arn = kms_replicator::arn::parse_kms_arn(&key)
                    .filter(|a| a.resource.starts_with("key/") || a.resource.starts_with("alias/"))
                    .ok_or_else(|| RequestError::NotAKmsArn(key.clone()))?;
                let arn_region = region_field("key", arn.region)?;
                if let Some(g) = given.filter(|g| *g != arn_region) {
                    return Err(RequestError::RegionMismatch {
                        arn_region,
                        given: g,
                    });
                }
                Some(arn_region)
            } else {
                given
            };
            Target::Key { key, region }
        }
    };
    Ok(FailoverPlan {
        target,
        to,
        dry_run: req.dry_run,
        include_unmanaged: req.include_unmanaged,
        deadline: None,
    })
}

/// The handler's settings besides [`Config`].
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
        if let Some(raw) = get("FAILOVER_WAIT_SECONDS").map(|v| v.trim().to_string()) {
            if !raw.is_empty() {
                let secs: u64 = raw.parse().ok().filter(|n| (1..=900).contains(n)).ok_or_else(|| {
                    ConfigError(format!(
                        "FAILOVER_WAIT_SECONDS must be a whole number of seconds from 1 to 900, not '{raw}'"
                    ))
                })?;
                s.wait = Duration::from_secs(secs);
            }
        }
        Ok(s)
    }
}

/// The pauses between polls: `first`, doubling, capped at `cap`.
pub fn poll_delays(first: Duration, cap: Duration) -> impl Iterator<Item = Duration> {
    std::iter::successors(Some(first.min(cap)), move |d| Some((*d * 2).min(cap)))
}

/// The replication tag's value with `region` added, or `None` when it already lists it.
/// Before a promotion the old primary's Region is added, so that after it the new primary's
/// tag still lists every Region the key lives in: otherwise sync would stop managing the old
/// primary, or schedule its deletion under `RemovalPolicy=ScheduleDeletion`. A primary's own
/// Region in its tag is ignored, so the value is right before and after the promotion.
pub fn tag_value_with(value: &str, region: &str) -> Option<String> {
    let listed = value
        .split(|c: char| c.is_whitespace() || c == ',')
        .any(|n| n.eq_ignore_ascii_case(region));
    if listed {
        return None;
    }
    let v = value.trim();
    Some(if v.is_empty() {
        region.to_string()
    } else {
        format!("{v} {region}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg() -> Config {
        Config::new(&["us-east-1", "us-west-2", "eu-west-1"])
    }

    fn parse(v: Value) -> Result<FailoverPlan, String> {
        parse_request(&v, &cfg()).map_err(|e| e.to_string())
    }

    #[test]
    fn a_key_and_a_target_make_a_single_key_plan() {
        let p = parse(json!({"key": "alias/payments", "to": "us-west-2"})).unwrap();
        assert_eq!(
            p,
            FailoverPlan {
                target: Target::Key {
                    key: "alias/payments".into(),
                    region: None
                },
                to: "us-west-2".into(),
                dry_run: false,
                include_unmanaged: false,
                deadline: None
            }
        );
        let p = parse(
            json!({"key": "mrk-1", "region": "us-east-1", "to": "us-west-2", "dryRun": true}),
        )
        .unwrap();
        assert!(p.dry_run);
        assert_eq!(
            p.target,
            Target::Key {
                key: "mrk-1".into(),
                region: Some("us-east-1".into())
            }
        );
    }

    #[test]
    fn an_arn_names_the_region_to_look_in() {
        let p = parse(
            json!({"key": "arn:aws:kms:eu-west-1:111122223333:key/mrk-1", "to": "us-west-2"}),
        )
        .unwrap();
        assert_eq!(
            p.target,
            Target::Key {
                key: "arn:aws:kms:eu-west-1:111122223333:key/mrk-1".into(),
                region: Some("eu-west-1".into())
            }
        );
        let e = parse(
            json!({"key": "arn:aws:kms:eu-west-1:111122223333:key/mrk-1",
                             "region": "us-east-1", "to": "us-west-2"}),
        )
        .unwrap_err();
        assert!(e.contains("but \"region\" says us-east-1"), "{e}");
        let e = parse(json!({"key": "arn:aws:s3:::bucket", "to": "us-west-2"})).unwrap_err();
        assert!(e.contains("not a KMS key or alias ARN"), "{e}");
    }

    #[test]
    fn a_source_region_makes_a_bulk_plan() {
        let p = parse(json!({"from": "us-east-1", "to": "us-west-2"})).unwrap();
        assert_eq!(
            p.target,
            Target::Region {
                from: "us-east-1".into()
            }
        );
    }

    #[test]
    fn invalid_requests_are_refused_with_a_reason() {
        let cases = [
            (json!("alias/payments"), "not a JSON object"),
            (
                json!({"key": "k", "to": "us-west-2", "force": true}),
                "unknown field `force`",
            ),
            (json!({"key": "k"}), "missing field `to`"),
            (
                json!({"key": "k", "from": "us-east-1", "to": "us-west-2"}),
                "not both",
            ),
            (json!({"to": "us-west-2"}), "give \"key\""),
            (
                json!({"from": "us-west-2", "to": "us-west-2"}),
                "both us-west-2",
            ),
            (
                json!({"key": "k", "to": "us-west"}),
                "not an AWS Region name",
            ),
            (
                json!({"from": "Virginia", "to": "us-west-2"}),
                "\"from\": 'Virginia'",
            ),
            (
                json!({"key": "k", "to": "ap-south-1"}),
                "not in ALLOWED_REGIONS",
            ),
            (json!({"key": " ", "to": "us-west-2"}), "\"key\" is empty"),
            (
                json!({"from": "us-east-1", "region": "us-east-1", "to": "us-west-2"}),
                "only goes with",
            ),
            (
                json!({"key": "k", "to": "us-west-2", "dryRun": "yes"}),
                "invalid type",
            ),
        ];
        for (input, expected) in cases {
            let e = parse(input.clone()).unwrap_err();
            assert!(e.contains(expected), "{input}: {e}");
        }
    }

    #[test]
    fn polls_start_short_and_are_capped() {
        let d: Vec<u64> = poll_delays(Duration::from_millis(250), Duration::from_secs(5))
            .take(7)
            .map(|d| d.as_millis() as u64)
            .collect();
        assert_eq!(d, vec![250, 500, 1000, 2000, 4000, 5000, 5000]);
    }

    #[test]
    fn the_old_primary_region_is_added_to_the_tag_once() {
        assert_eq!(
            tag_value_with("us-west-2 eu-west-1", "us-east-1").as_deref(),
            Some("us-west-2 eu-west-1 us-east-1")
        );
        assert_eq!(tag_value_with("us-west-2, US-EAST-1", "us-east-1"), None);
        assert_eq!(
            tag_value_with(" ", "us-east-1").as_deref(),
            Some("us-east-1")
        );
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
            assert!(e.0.contains("FAILOVER_WAIT_SECONDS"), "{bad}");
        }
    }
}
