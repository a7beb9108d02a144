//! What an invocation asks for: the EventBridge schedule or a direct request (`dryRun`, `keys`
//! or `regions`), validated before anything is read or written; and where a scheduled sweep
//! starts in its list of keys ([`rotation`]).

use aws_lambda_events::eventbridge::EventBridgeEvent;
use kms_replicator::region::is_region_name;
use kms_replicator::Config;
use serde::Deserialize;
use serde_json::Value;

/// What started the run: the schedule or a direct invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// The EventBridge schedule: its event id, and the scheduled time in seconds since the
    /// epoch when the event carries one.
    Schedule { event_id: String, time: Option<u64> },
    /// `aws lambda invoke` by a person or a tool.
    Direct,
}

/// Which keys the run covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every managed primary in these Regions.
    Regions(Vec<String>),
    /// Only these keys (ids, ARNs or alias names); their primaries must be in a managed Region.
    Keys(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub trigger: Invocation,
    pub dry_run: bool,
    pub scope: Scope,
}

/// The body of a direct invocation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct DirectRequest {
    #[serde(default)]
    dry_run: bool,
    keys: Option<Vec<String>>,
    regions: Option<Vec<String>>,
}

/// What is wrong with an invocation's input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("the payload is {kind}, not a JSON object; {usage}", usage = USAGE)]
    NotAnObject { kind: &'static str },
    /// The body does not deserialise (unknown field, wrong type...).
    #[error("{0}; {usage}", usage = USAGE)]
    Invalid(String),
    #[error("give either keys or regions, not both; {usage}", usage = USAGE)]
    KeysAndRegions,
    #[error("regions is empty: name at least one Region, or leave it out")]
    NoRegions,
    #[error("'{region}' is not a Region name (like us-west-2); managed Regions: {managed}")]
    NotARegionName { region: String, managed: String },
    #[error("Region {region} is not managed by this deployment (MANAGED_REGIONS: {managed})")]
    RegionNotManaged { region: String, managed: String },
    #[error("keys is empty: name at least one key, or leave it out")]
    NoKeys,
    #[error("'{0}' is not a KMS key or alias ARN")]
    NotAKmsArn(String),
    #[error("'{key}' names '{region}', not a Region")]
    ArnRegionInvalid { key: String, region: String },
    #[error(
        "'{key}' is in {region}, which this deployment does not manage (MANAGED_REGIONS: \
         {managed})"
    )]
    KeyRegionNotManaged {
        key: String,
        region: String,
        managed: String,
    },
    #[error("'alias/' names no alias")]
    EmptyAlias,
    #[error("'{0}' is not a key id, key ARN or alias name (alias/...)")]
    NotAKey(String),
}

const USAGE: &str = r#"expected {"dryRun": true|false} with at most one of "keys": ["<key id, key ARN or alias>", ...] and "regions": ["<managed Region>", ...]"#;

/// Reads the invocation payload: the EventBridge Scheduled Event, or a direct request. Any
/// problem is an error that says what is wrong, found before anything is read or written.
pub fn parse_request(event: &Value, cfg: &Config) -> Result<Request, RequestError> {
    // The schedule's event, in the runtime's typed EventBridge envelope; anything else is a
    // direct request.
    let schedule = serde_json::from_value::<EventBridgeEvent<Value>>(event.clone())
        .ok()
        .filter(|e| e.source == "aws.events" && e.detail_type == "Scheduled Event");
    if let Some(e) = schedule {
        let event_id = e.id.unwrap_or_default();
        let time = e.time.and_then(|t| u64::try_from(t.timestamp()).ok());
        return Ok(Request {
            trigger: Invocation::Schedule { event_id, time },
            dry_run: false,
            scope: Scope::Regions(cfg.managed_regions.clone()),
        });
    }
    let body = match event {
        Value::Null => Value::Object(Default::default()),
        Value::Object(_) => event.clone(),
        other => {
            return Err(RequestError::NotAnObject {
                kind: kind_of(other),
            })
        }
    };
    let req: DirectRequest =
        serde_json::from_value(body).map_err(|e| RequestError::Invalid(e.to_string()))?;
    let scope = match (req.keys, req.regions) {
        (Some(_), Some(_)) => {
            return Err(RequestError::KeysAndRegions);
        }
        (Some(keys), None) => Scope::Keys(check_keys(keys, cfg)?),
        (None, Some(regions)) => Scope::Regions(check_regions(regions, cfg)?),
        (None, None) => Scope::Regions(cfg.managed_regions.clone()),
    };
    Ok(Request {
        trigger: Invocation::Direct,
        dry_run: req.dry_run,
        scope,
    })
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn managed_list(cfg: &Config) -> String {
    cfg.managed_regions.join(" ")
}

fn check_regions(regions: Vec<String>, cfg: &Config) -> Result<Vec<String>, RequestError> {
    if regions.is_empty() {
        return Err(RequestError::NoRegions);
    }
    let mut out: Vec<String> = Vec::new();
    for r in regions {
        let r = r.trim().to_string();
        if !is_region_name(&r) {
            return Err(RequestError::NotARegionName {
                region: r,
                managed: managed_list(cfg),
            });
        }
        if !cfg.managed_regions.contains(&r) {
            return Err(RequestError::RegionNotManaged {
                region: r,
                managed: managed_list(cfg),
            });
        }
        if !out.contains(&r) {
            out.push(r);
        }
    }
    Ok(out)
}

fn check_keys(keys: Vec<String>, cfg: &Config) -> Result<Vec<String>, RequestError> {
    if keys.is_empty() {
        return Err(RequestError::NoKeys);
    }
    let mut out: Vec<String> = Vec::new();
    for k in keys {
        let k = k.trim().to_string();
        if let Some(arn) = kms_replicator::arn::parse_kms_arn(&k) {
            let named = arn
                .resource
                .strip_prefix("key/")
                .or_else(|| arn.resource.strip_prefix("alias/"))
                .is_some_and(|rest| !rest.is_empty());
            if !named {
                return Err(RequestError::NotAKmsArn(k));
            }
            if !is_region_name(arn.region) {
                return Err(RequestError::ArnRegionInvalid {
                    region: arn.region.to_string(),
                    key: k,
                });
            }
            if !cfg.managed_regions.iter().any(|r| r == arn.region) {
                return Err(RequestError::KeyRegionNotManaged {
                    region: arn.region.to_string(),
                    key: k,
                    managed: managed_list(cfg),
                });
            }
        } else if k.starts_with("arn:") {
            return Err(RequestError::NotAKmsArn(k));
        } else if let Some(name) = k.strip_prefix("alias/") {
            if name.is_empty() {
                return Err(RequestError::EmptyAlias);
            }
        } else if k.is_empty()
            || k.len() > 64
            || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(RequestError::NotAKey(k));
        }
        if !out.contains(&k) {
            out.push(k);
        }
    }
    Ok(out)
}

/// Where a scheduled sweep starts in the sorted list of `n` keys, for a run scheduled at
/// `minute` (minutes since the epoch).
///
/// A sweep that meets its deadline leaves the keys after its stopping point for later runs.
/// Lambda keeps no state between runs, so rather than persisting a cursor, the start moves by
/// `(φ - 1) / 60` of the list per minute of schedule (φ the golden ratio, in 64-bit fixed
/// point): hourly runs start `(φ - 1) * n` keys apart, a Weyl sequence whose starting points
/// spread evenly over the list however many runs there have been. Whatever a run's capacity
/// `k`, every key comes within the reach of a run every few `n / k` runs.
pub fn rotation(n: usize, minute: u64) -> usize {
    if n == 0 {
        return 0;
    }
    const STEP_PER_MINUTE: u64 = 0x02A3_0ED4_2885_8211; // (φ - 1) / 60 * 2^64
    let frac = minute.wrapping_mul(STEP_PER_MINUTE);
    ((frac as u128 * n as u128) >> 64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg() -> Config {
        Config::new(&["us-east-1", "us-west-2", "eu-west-1"])
    }

    #[test]
    fn rotation_stays_in_range_and_moves_between_runs() {
        for n in [1, 2, 7, 1000] {
            for run in 0..500u64 {
                assert!(rotation(n, run) < n);
            }
        }
        assert_eq!(rotation(0, 5), 0);
        assert_ne!(rotation(1000, 28_000_000), rotation(1000, 28_000_060));
    }

    /// An hourly schedule whose every run reaches only `k` of `n` keys still reaches every
    /// key, and soon: the property that lets a stateless sweep skip a persisted cursor.
    #[test]
    fn every_key_is_reached_within_a_few_runs_when_each_run_only_covers_a_tenth() {
        let (n, k) = (1000usize, 100usize);
        let first_minute = 29_000_000u64; // around 2025
        let mut last_seen = vec![None::<usize>; n];
        let mut worst_gap = 0;
        for run in 0..500usize {
            let start = rotation(n, first_minute + 60 * run as u64);
            for i in 0..k {
                let key = (start + i) % n;
                if let Some(prev) = last_seen[key] {
                    worst_gap = worst_gap.max(run - prev);
                } else {
                    worst_gap = worst_gap.max(run + 1);
                }
                last_seen[key] = Some(run);
            }
        }
        assert!(last_seen.iter().all(Option::is_some));
        assert!(worst_gap <= 2 * n / k, "worst gap {worst_gap} runs");
    }

    #[test]
    fn a_scheduled_event_sweeps_every_managed_region() {
        let event = serde_json::json!({
            "version": "0", "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
            "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": "2015-10-08T16:53:06Z", "region": "us-east-1",
            "resources": ["arn:aws:events:us-east-1:123456789012:rule/my-scheduled-rule"],
            "detail": {}
        });
        let r = parse_request(&event, &cfg()).unwrap();
        assert!(!r.dry_run);
        assert_eq!(r.scope, Scope::Regions(cfg().managed_regions));
        assert_eq!(
            r.trigger,
            Invocation::Schedule {
                event_id: "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa".into(),
                time: Some(1_444_323_186)
            }
        );
    }

    #[test]
    fn direct_requests_are_read_and_checked() {
        let c = cfg();
        let r = parse_request(&json!({"dryRun": true}), &c).unwrap();
        assert!(r.dry_run && r.trigger == Invocation::Direct);
        let r = parse_request(&json!({"regions": ["us-west-2", "us-west-2"]}), &c).unwrap();
        assert_eq!(r.scope, Scope::Regions(vec!["us-west-2".into()]));
        let r = parse_request(
            &json!({"keys": ["alias/payments", "mrk-1234abcd12ab34cd56ef1234567890ab",
                             "arn:aws:kms:us-east-1:111122223333:key/mrk-1"]}),
            &c,
        )
        .unwrap();
        assert!(matches!(r.scope, Scope::Keys(k) if k.len() == 3));
        assert!(parse_request(&Value::Null, &c).is_ok());
    }
}
