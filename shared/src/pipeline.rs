//! The event path, watched: what must hold in each managed Region for a person's KMS call to
//! reach the replicate function, and the pure judgement of what the probes found.
//!
//! A KMS call reaches the replicate function only if, in the Region of the call, a CloudTrail
//! trail logs management write events (EventBridge receives `AWS API Call via CloudTrail`
//! events only with such a trail), and, outside the home Region, the forwarder's rule is
//! enabled and targets the home Region's default bus; in the home Region the stack's own rule
//! must be enabled. The reconcile function checks all of it on `{"check":"pipeline"}`
//! ([`PipelineProbe`] reads, [`assess`] judges), and reports the time of the last event the
//! replicate function handled from each Region (its `EventsHandled` metric, read back).

use async_trait::async_trait;
use serde_json::{json, Value};
use std::time::SystemTime;

/// The metric the replicate function emits for each event it acts on, with the dimension
/// [`SOURCE_REGION`]: the Region the event came from (its record's `awsRegion`).
pub const EVENTS_HANDLED: &str = "EventsHandled";
/// The dimension of [`EVENTS_HANDLED`] and [`EVENTS_MISSED`].
pub const SOURCE_REGION: &str = "SourceRegion";
/// The metric the sweep emits: keys it repaired that events from the Region should already
/// have fixed.
pub const EVENTS_MISSED: &str = "EventsMissed";

/// A trail that applies to a Region, as DescribeTrails, GetTrailStatus and GetEventSelectors
/// describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrailState {
    pub name: String,
    pub logging: bool,
    /// Its event selectors record management write events of KMS.
    pub kms_management_writes: bool,
}

/// An EventBridge rule on a Region's default bus, with its targets' ARNs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleState {
    pub name: String,
    pub enabled: bool,
    pub targets: Vec<String>,
}

/// What a probe could not read: the call and AWS's answer.
pub type ProbeResult<T> = Result<T, String>;

/// Read-only calls, per Region, that show whether the event path is in place.
#[async_trait]
pub trait PipelineProbe: Send + Sync {
    /// The trails that apply to `region` (its own and multi-Region trails of other Regions).
    async fn trails(&self, region: &str) -> ProbeResult<Vec<TrailState>>;
    /// The rules on `region`'s default bus that match KMS's CloudTrail events (`aws.kms` in
    /// their pattern), with their targets.
    async fn kms_rules(&self, region: &str) -> ProbeResult<Vec<RuleState>>;
    /// The last time the replicate function handled an event from `region`, as far back as
    /// the metric is kept (`None`: none found).
    async fn last_event(&self, region: &str) -> ProbeResult<Option<SystemTime>>;
}

/// What the health check says about one Region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionHealth {
    pub region: String,
    /// The trail logging KMS management writes there, if any.
    pub trail: Option<String>,
    /// The rule that carries the Region's events to the replicate function: the stack's own
    /// rule in the home Region, the forwarder elsewhere.
    pub rule: Option<String>,
    pub last_event: Option<SystemTime>,
    /// What is wrong, each as a sentence that says what to do; empty when all is in place.
    pub problems: Vec<String>,
}

impl RegionHealth {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    pub fn to_json(&self) -> Value {
        json!({
            "region": self.region,
            "ok": self.ok(),
            "trail": self.trail,
            "rule": self.rule,
            "lastEventHandled": self.last_event.map(|t| humantime::format_rfc3339_seconds(t).to_string()),
            "problems": self.problems,
        })
    }
}

/// Where the event path leads: the home Region and the ARN of its default bus, and the home
/// rule's name.
#[derive(Debug, Clone)]
pub struct Home {
    pub region: String,
    pub bus_arn: String,
    pub rule_name: String,
}

/// Judges what the probes read in `region`. A probe that failed is a problem too (the check
/// cannot vouch for what it could not read).
pub fn assess(
    region: &str,
    home: &Home,
    trails: ProbeResult<Vec<TrailState>>,
    rules: ProbeResult<Vec<RuleState>>,
    last_event: ProbeResult<Option<SystemTime>>,
) -> RegionHealth {
    let mut problems = Vec::new();
    let trail = match trails {
        Ok(trails) => {
            let good = trails.iter().find(|t| t.logging && t.kms_management_writes);
            if good.is_none() {
                problems.push(no_trail(region, &trails));
            }
            good.map(|t| t.name.clone())
        }
        Err(e) => {
            problems.push(format!("the trails of {region} could not be read: {e}"));
            None
        }
    };
    let rule = match rules {
        Ok(rules) if region == home.region => home_rule(region, home, &rules, &mut problems),
        Ok(rules) => forwarder(region, home, &rules, &mut problems),
        Err(e) => {
            problems.push(format!(
                "the EventBridge rules of {region} could not be read: {e}"
            ));
            None
        }
    };
    let last_event = last_event.unwrap_or_else(|e| {
        problems.push(format!(
            "the last event handled from {region} could not be read: {e}"
        ));
        None
    });
    RegionHealth {
        region: region.to_string(),
        trail,
        rule,
        last_event,
        problems,
    }
}

fn no_trail(region: &str, trails: &[TrailState]) -> String {
    let stopped: Vec<&str> = trails
        .iter()
        .filter(|t| !t.logging)
        .map(|t| t.name.as_str())
        .collect();
    let mut s = format!(
        "no trail logs KMS management write events in {region}: EventBridge receives no \
         CloudTrail event from it; create a multi-Region trail that logs management events"
    );
    if !stopped.is_empty() {
        s.push_str(&format!(" (not logging: {})", stopped.join(", ")));
    }
    s
}

fn home_rule(
    region: &str,
    home: &Home,
    rules: &[RuleState],
    problems: &mut Vec<String>,
) -> Option<String> {
    // `!Ref` of a rule is its name (`bus|name` on a bus other than the default).
    let wanted = home.rule_name.rsplit('|').next().unwrap_or_default();
    match rules.iter().find(|r| r.name == wanted) {
        Some(r) if r.enabled => Some(r.name.clone()),
        Some(r) => {
            problems.push(format!(
                "the rule {} in {region} is disabled: no event reaches the replicate function; \
                 enable it (aws events enable-rule --name {})",
                r.name, r.name
            ));
            None
        }
        None => {
            problems.push(format!(
                "the rule {} is missing in {region}: redeploy the stack",
                home.rule_name
            ));
            None
        }
    }
}

fn forwarder(
    region: &str,
    home: &Home,
    rules: &[RuleState],
    problems: &mut Vec<String>,
) -> Option<String> {
    let to_home: Vec<&RuleState> = rules
        .iter()
        .filter(|r| r.targets.iter().any(|t| t == &home.bus_arn))
        .collect();
    if let Some(r) = to_home.iter().find(|r| r.enabled) {
        return Some(r.name.clone());
    }
    problems.push(match to_home.first() {
        Some(r) => format!(
            "the forwarder rule {} in {region} is disabled: events from {region} do not reach \
             the replicator; enable it",
            r.name
        ),
        None => format!(
            "no forwarder in {region}: no rule there sends KMS events to {}; deploy \
             forwarder.yaml in {region}",
            home.bus_arn
        ),
    });
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn home() -> Home {
        Home {
            region: "us-east-1".into(),
            bus_arn: "arn:aws:events:us-east-1:111122223333:event-bus/default".into(),
            rule_name: "kms-replicator-KmsApiCallRule-1ABC".into(),
        }
    }

    fn trail(logging: bool) -> Vec<TrailState> {
        vec![TrailState {
            name: "management".into(),
            logging,
            kms_management_writes: true,
        }]
    }

    fn forwarder_rule(enabled: bool) -> Vec<RuleState> {
        vec![RuleState {
            name: "fwd-KmsApiCallForwardRule-9XYZ".into(),
            enabled,
            targets: vec![home().bus_arn],
        }]
    }

    #[test]
    fn a_region_with_a_logging_trail_and_an_enabled_forwarder_is_healthy() {
        let h = assess(
            "eu-west-1",
            &home(),
            Ok(trail(true)),
            Ok(forwarder_rule(true)),
            Ok(None),
        );
        assert!(h.ok(), "{:?}", h.problems);
        assert_eq!(h.rule.as_deref(), Some("fwd-KmsApiCallForwardRule-9XYZ"));
        assert_eq!(h.to_json()["lastEventHandled"], Value::Null);
    }

    #[test]
    fn each_break_in_the_path_is_named_with_what_to_do() {
        let h = assess("eu-west-1", &home(), Ok(trail(true)), Ok(vec![]), Ok(None));
        assert_eq!(h.problems.len(), 1);
        assert!(h.problems[0].starts_with("no forwarder in eu-west-1"));
        assert!(h.problems[0].contains("forwarder.yaml"));

        let h = assess(
            "eu-west-1",
            &home(),
            Ok(trail(false)),
            Ok(forwarder_rule(false)),
            Ok(None),
        );
        assert_eq!(h.problems.len(), 2, "{:?}", h.problems);
        assert!(h.problems[0].contains("not logging: management"));
        assert!(h.problems[1].contains("is disabled"));

        let mut other = forwarder_rule(true);
        other[0].targets = vec!["arn:aws:events:eu-west-1:111122223333:event-bus/other".into()];
        let h = assess("eu-west-1", &home(), Ok(trail(true)), Ok(other), Ok(None));
        assert!(h.problems[0].starts_with("no forwarder in eu-west-1"));
    }

    #[test]
    fn the_home_region_needs_the_stacks_own_rule_enabled() {
        let rule = |enabled| {
            vec![RuleState {
                name: home().rule_name,
                enabled,
                targets: vec!["arn:aws:lambda:us-east-1:111122223333:function:replicate".into()],
            }]
        };
        let h = assess(
            "us-east-1",
            &home(),
            Ok(trail(true)),
            Ok(rule(true)),
            Ok(None),
        );
        assert!(h.ok(), "{:?}", h.problems);
        let h = assess(
            "us-east-1",
            &home(),
            Ok(trail(true)),
            Ok(rule(false)),
            Ok(None),
        );
        assert!(h.problems[0].contains("enable-rule"));
    }

    #[test]
    fn what_could_not_be_read_is_a_problem_not_a_pass() {
        let h = assess(
            "eu-west-1",
            &home(),
            Err("AccessDeniedException".into()),
            Err("AccessDeniedException".into()),
            Err("AccessDenied".into()),
        );
        assert_eq!(h.problems.len(), 3);
        assert!(!h.ok());
    }
}
