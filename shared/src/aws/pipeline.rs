//! The pipeline probe on the AWS SDK: CloudTrail (DescribeTrails, GetTrailStatus,
//! GetEventSelectors) and EventBridge (ListRules, ListTargetsByRule) in each Region, CloudWatch
//! (GetMetricData) in the home Region. Read-only calls, made only on `{"check":"pipeline"}`.

use super::RegionalClients;
use crate::pipeline::{
    PipelineProbe, ProbeResult, RuleState, TrailState, EVENTS_HANDLED, SOURCE_REGION,
};
use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_cloudtrail::types::{AdvancedEventSelector, EventSelector, ReadWriteType};
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat, ScanBy};
use aws_smithy_types::DateTime;
use std::time::{Duration, SystemTime};

/// How far back the last handled event is looked for: CloudWatch keeps one-minute data points
/// for 15 days.
pub const LAST_EVENT_LOOKBACK: Duration = Duration::from_secs(14 * 24 * 3600);
/// The resolution of the last event's time.
const PERIOD_SECONDS: i32 = 60;

#[derive(Clone)]
pub struct AwsPipelineProbe {
    cloudtrail: RegionalClients<aws_sdk_cloudtrail::Client>,
    events: RegionalClients<aws_sdk_eventbridge::Client>,
    cloudwatch: aws_sdk_cloudwatch::Client,
    namespace: String,
}

impl AwsPipelineProbe {
    /// Clients of `sdk`; CloudWatch in the SDK configuration's Region (the home Region, where
    /// the replicate function's metrics are).
    pub fn new(sdk: &SdkConfig, namespace: &str) -> AwsPipelineProbe {
        let (ct, eb) = (sdk.clone(), sdk.clone());
        AwsPipelineProbe::with_clients(
            move |r| {
                let conf = aws_sdk_cloudtrail::config::Builder::from(&ct)
                    .region(aws_sdk_cloudtrail::config::Region::new(r.to_string()))
                    .build();
                aws_sdk_cloudtrail::Client::from_conf(conf)
            },
            move |r| {
                let conf = aws_sdk_eventbridge::config::Builder::from(&eb)
                    .region(aws_sdk_eventbridge::config::Region::new(r.to_string()))
                    .build();
                aws_sdk_eventbridge::Client::from_conf(conf)
            },
            aws_sdk_cloudwatch::Client::new(sdk),
            namespace,
        )
    }

    /// Builds the probe from client factories (tests pass mocked clients this way).
    pub fn with_clients(
        cloudtrail: impl Fn(&str) -> aws_sdk_cloudtrail::Client + Send + Sync + 'static,
        events: impl Fn(&str) -> aws_sdk_eventbridge::Client + Send + Sync + 'static,
        cloudwatch: aws_sdk_cloudwatch::Client,
        namespace: &str,
    ) -> AwsPipelineProbe {
        AwsPipelineProbe {
            cloudtrail: RegionalClients::new(cloudtrail),
            events: RegionalClients::new(events),
            cloudwatch,
            namespace: namespace.to_string(),
        }
    }
}

fn describe<E: std::error::Error>(op: &str, e: E) -> String {
    let mut msg = format!("{op}: {e}");
    let mut source = e.source();
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    msg
}

#[async_trait]
impl PipelineProbe for AwsPipelineProbe {
    async fn trails(&self, region: &str) -> ProbeResult<Vec<TrailState>> {
        let cloudtrail = self.cloudtrail.get(region);
        let listed = cloudtrail
            .describe_trails()
            .include_shadow_trails(true)
            .send()
            .await
            .map_err(|e| describe("cloudtrail:DescribeTrails", e))?;
        let mut out = Vec::new();
        for t in listed.trail_list() {
            let Some(arn) = t.trail_arn() else { continue };
            let status = cloudtrail
                .get_trail_status()
                .name(arn)
                .send()
                .await
                .map_err(|e| describe("cloudtrail:GetTrailStatus", e))?;
            let selectors = cloudtrail
                .get_event_selectors()
                .trail_name(arn)
                .send()
                .await
                .map_err(|e| describe("cloudtrail:GetEventSelectors", e))?;
            out.push(TrailState {
                name: t.name().unwrap_or(arn).to_string(),
                logging: status.is_logging().unwrap_or(false),
                kms_management_writes: selectors
                    .event_selectors()
                    .iter()
                    .any(basic_logs_kms_writes)
                    || selectors
                        .advanced_event_selectors()
                        .iter()
                        .any(advanced_logs_kms_writes),
            });
        }
        Ok(out)
    }

    async fn kms_rules(&self, region: &str) -> ProbeResult<Vec<RuleState>> {
        let events = self.events.get(region);
        let mut rules = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = events
                .list_rules()
                .event_bus_name("default")
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| describe("events:ListRules", e))?;
            for r in page.rules() {
                let matches_kms = r.event_pattern().is_some_and(|p| p.contains("aws.kms"));
                let Some(name) = r.name().filter(|_| matches_kms) else {
                    continue;
                };
                let targets = events
                    .list_targets_by_rule()
                    .rule(name)
                    .event_bus_name("default")
                    .send()
                    .await
                    .map_err(|e| describe("events:ListTargetsByRule", e))?;
                rules.push(RuleState {
                    name: name.to_string(),
                    enabled: r.state().map(|s| s.as_str()) == Some("ENABLED"),
                    targets: targets
                        .targets()
                        .iter()
                        .map(|t| t.arn().to_string())
                        .collect(),
                });
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        Ok(rules)
    }

    async fn last_event(&self, region: &str) -> ProbeResult<Option<SystemTime>> {
        let now = SystemTime::now();
        let metric = Metric::builder()
            .namespace(&self.namespace)
            .metric_name(EVENTS_HANDLED)
            .dimensions(
                Dimension::builder()
                    .name(SOURCE_REGION)
                    .value(region)
                    .build(),
            )
            .build();
        let query = MetricDataQuery::builder()
            .id("handled")
            .metric_stat(
                MetricStat::builder()
                    .metric(metric)
                    .period(PERIOD_SECONDS)
                    .stat("Sum")
                    .build(),
            )
            .build();
        let answer = self
            .cloudwatch
            .get_metric_data()
            .metric_data_queries(query)
            .start_time(DateTime::from(now - LAST_EVENT_LOOKBACK))
            .end_time(DateTime::from(now))
            .scan_by(ScanBy::TimestampDescending)
            .send()
            .await
            .map_err(|e| describe("cloudwatch:GetMetricData", e))?;
        let latest = answer
            .metric_data_results()
            .iter()
            .flat_map(|r| r.timestamps().iter().zip(r.values()))
            .filter(|(_, v)| **v > 0.0)
            .filter_map(|(t, _)| SystemTime::try_from(*t).ok())
            .max();
        Ok(latest)
    }
}

/// A basic selector that records management write events, KMS's not excluded.
fn basic_logs_kms_writes(s: &EventSelector) -> bool {
    s.include_management_events().unwrap_or(true)
        && !matches!(s.read_write_type(), Some(ReadWriteType::ReadOnly))
        && !s
            .exclude_management_event_sources()
            .iter()
            .any(|x| x == "kms.amazonaws.com")
}

/// An advanced selector on management events that keeps write events and KMS's.
fn advanced_logs_kms_writes(s: &AdvancedEventSelector) -> bool {
    let fields = s.field_selectors();
    let field = |name: &str| fields.iter().find(|f| f.field() == name);
    let management = field("eventCategory").is_some_and(|f| f.equals() == ["Management"]);
    let writes = field("readOnly").is_none_or(|f| f.equals() != ["true"]);
    let kms = field("eventSource").is_none_or(|f| {
        let s = "kms.amazonaws.com".to_string();
        (f.equals().is_empty() || f.equals().contains(&s)) && !f.not_equals().contains(&s)
    });
    management && writes && kms
}
