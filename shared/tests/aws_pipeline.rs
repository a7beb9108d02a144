//! The pipeline probe (`{"check":"pipeline"}`) against mocked CloudTrail, EventBridge and
//! CloudWatch: the JSON bodies are those of the services' API references (DescribeTrails,
//! GetTrailStatus, GetEventSelectors, ListRules, ListTargetsByRule), and a Region without the
//! forwarder is named as such.

use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use aws_smithy_types::DateTime;
use kms_replicator::aws::AwsPipelineProbe;
use kms_replicator::pipeline::{assess, Home, PipelineProbe};
use serde_json::json;
use std::time::{Duration, SystemTime};

const ACCOUNT: &str = "111122223333";
const TRAIL_ARN: &str = "arn:aws:cloudtrail:us-east-1:111122223333:trail/management-events";

fn home() -> Home {
    Home {
        region: "us-east-1".into(),
        bus_arn: format!("arn:aws:events:us-east-1:{ACCOUNT}:event-bus/default"),
        rule_name: "kms-replicator-KmsApiCallRule-1ABCDEF".into(),
    }
}

/// A multi-Region trail, logging, with the console's default selector (all management events).
fn trail_rules() -> Vec<Rule> {
    let trails = json!({"trailList": [{
        "Name": "management-events", "S3BucketName": "aws-cloudtrail-logs-111122223333",
        "IncludeGlobalServiceEvents": true, "IsMultiRegionTrail": true,
        "HomeRegion": "us-east-1", "TrailARN": TRAIL_ARN, "LogFileValidationEnabled": true,
        "HasCustomEventSelectors": false, "HasInsightSelectors": false,
        "IsOrganizationTrail": false
    }]});
    let status = json!({
        "IsLogging": true, "LatestDeliveryTime": 1.70e9, "StartLoggingTime": 1.69e9,
        "LatestDeliveryAttemptTime": "2023-11-14T22:13:20Z",
        "LatestDeliveryAttemptSucceeded": "2023-11-14T22:13:20Z",
        "TimeLoggingStarted": "2023-07-26T10:00:00Z"
    });
    let selectors = json!({
        "TrailARN": TRAIL_ARN,
        "EventSelectors": [{"ReadWriteType": "All", "IncludeManagementEvents": true,
                            "DataResources": [], "ExcludeManagementEventSources": []}]
    });
    vec![
        mock!(aws_sdk_cloudtrail::Client::describe_trails)
            .match_requests(|r| r.include_shadow_trails() == Some(true))
            .sequence()
            .http_status(200, Some(trails.to_string()))
            .repeatedly()
            .build(),
        mock!(aws_sdk_cloudtrail::Client::get_trail_status)
            .match_requests(|r| r.name() == Some(TRAIL_ARN))
            .sequence()
            .http_status(200, Some(status.to_string()))
            .repeatedly()
            .build(),
        mock!(aws_sdk_cloudtrail::Client::get_event_selectors)
            .match_requests(|r| r.trail_name() == Some(TRAIL_ARN))
            .sequence()
            .http_status(200, Some(selectors.to_string()))
            .repeatedly()
            .build(),
    ]
}

const KMS_PATTERN: &str = r#"{"source":["aws.kms"],"detail-type":["AWS API Call via CloudTrail"]}"#;

/// The default bus of a Region: `forwarder` says whether the forwarder's rule is there.
fn events_rules(forwarder: bool) -> Vec<Rule> {
    let mut rules = vec![json!({
        "Name": "unrelated-ec2-rule", "Arn": "arn:aws:events:eu-west-1:111122223333:rule/unrelated-ec2-rule",
        "EventPattern": r#"{"source":["aws.ec2"]}"#, "State": "ENABLED", "EventBusName": "default"
    })];
    if forwarder {
        rules.push(json!({
            "Name": "kms-fwd-KmsApiCallForwardRule-9XYZ",
            "Arn": "arn:aws:events:eu-west-1:111122223333:rule/kms-fwd-KmsApiCallForwardRule-9XYZ",
            "EventPattern": KMS_PATTERN, "State": "ENABLED", "EventBusName": "default"
        }));
    }
    let targets = json!({"Targets": [{
        "Id": "HomeEventBus", "Arn": "arn:aws:events:us-east-1:111122223333:event-bus/default",
        "RoleArn": "arn:aws:iam::111122223333:role/kms-replicator/kms-fwd-ForwardRole-1"
    }]});
    vec![
        mock!(aws_sdk_eventbridge::Client::list_rules)
            .match_requests(|r| r.event_bus_name() == Some("default"))
            .sequence()
            .http_status(200, Some(json!({"Rules": rules}).to_string()))
            .repeatedly()
            .build(),
        mock!(aws_sdk_eventbridge::Client::list_targets_by_rule)
            .match_requests(|r| r.rule() == Some("kms-fwd-KmsApiCallForwardRule-9XYZ"))
            .sequence()
            .http_status(200, Some(targets.to_string()))
            .repeatedly()
            .build(),
    ]
}

fn probe(forwarder: bool, last: Option<SystemTime>) -> AwsPipelineProbe {
    let ct = trail_rules();
    let ct = mock_client!(
        aws_sdk_cloudtrail,
        RuleMode::MatchAny,
        &ct.iter().collect::<Vec<_>>()
    );
    let eb = events_rules(forwarder);
    let eb = mock_client!(
        aws_sdk_eventbridge,
        RuleMode::MatchAny,
        &eb.iter().collect::<Vec<_>>()
    );
    let cw_rule = mock!(aws_sdk_cloudwatch::Client::get_metric_data)
        .sequence()
        .output(move || {
            use aws_sdk_cloudwatch::types::MetricDataResult;
            let mut r = MetricDataResult::builder().id("handled");
            if let Some(t) = last {
                // Descending, as ScanBy=TimestampDescending asks; an empty minute first.
                r = r
                    .timestamps(DateTime::from(t + Duration::from_secs(60)))
                    .values(0.0)
                    .timestamps(DateTime::from(t))
                    .values(2.0);
            }
            aws_sdk_cloudwatch::operation::get_metric_data::GetMetricDataOutput::builder()
                .metric_data_results(r.build())
                .build()
        })
        .repeatedly()
        .build();
    let cw = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, &[&cw_rule]);
    AwsPipelineProbe::with_clients(
        move |_| ct.clone(),
        move |_| eb.clone(),
        cw,
        "KmsReplicator",
    )
}

#[tokio::test]
async fn a_region_with_its_trail_and_forwarder_is_healthy_and_shows_its_last_event() {
    let last = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let p = probe(true, Some(last));
    let trails = p.trails("eu-west-1").await;
    assert_eq!(trails.as_ref().unwrap()[0].name, "management-events");
    let h = assess(
        "eu-west-1",
        &home(),
        trails,
        p.kms_rules("eu-west-1").await,
        p.last_event("eu-west-1").await,
    );
    assert!(h.ok(), "{:?}", h.problems);
    assert_eq!(
        h.rule.as_deref(),
        Some("kms-fwd-KmsApiCallForwardRule-9XYZ")
    );
    assert_eq!(h.last_event, Some(last));
    assert_eq!(h.to_json()["lastEventHandled"], "2023-11-14T22:13:20Z");
}

#[tokio::test]
async fn a_region_without_the_forwarder_is_named_and_the_unrelated_rule_is_not_taken_for_it() {
    let p = probe(false, None);
    let rules = p.kms_rules("eu-west-1").await.unwrap();
    assert!(rules.is_empty(), "{rules:?}");
    let h = assess(
        "eu-west-1",
        &home(),
        p.trails("eu-west-1").await,
        Ok(rules),
        p.last_event("eu-west-1").await,
    );
    assert_eq!(h.problems.len(), 1, "{:?}", h.problems);
    assert!(
        h.problems[0].starts_with("no forwarder in eu-west-1"),
        "{}",
        h.problems[0]
    );
    assert_eq!(h.last_event, None);
}

#[tokio::test]
async fn a_trail_that_stopped_logging_or_records_only_reads_does_not_count() {
    let body = json!({"trailList": [{"Name": "reads", "TrailARN": TRAIL_ARN, "HomeRegion": "us-east-1", "IsMultiRegionTrail": true}]});
    let list = mock!(aws_sdk_cloudtrail::Client::describe_trails)
        .sequence()
        .http_status(200, Some(body.to_string()))
        .build();
    let status = mock!(aws_sdk_cloudtrail::Client::get_trail_status)
        .sequence()
        .http_status(200, Some(json!({"IsLogging": true}).to_string()))
        .build();
    let selectors = json!({"TrailARN": TRAIL_ARN, "AdvancedEventSelectors": [{
        "Name": "Management reads only",
        "FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]},
                           {"Field": "readOnly", "Equals": ["true"]}]
    }]});
    let sel = mock!(aws_sdk_cloudtrail::Client::get_event_selectors)
        .sequence()
        .http_status(200, Some(selectors.to_string()))
        .build();
    let ct = mock_client!(
        aws_sdk_cloudtrail,
        RuleMode::MatchAny,
        &[&list, &status, &sel]
    );
    let eb = mock_client!(aws_sdk_eventbridge, RuleMode::MatchAny, &[]);
    let cw = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, &[]);
    let p = AwsPipelineProbe::with_clients(move |_| ct.clone(), move |_| eb.clone(), cw, "K");
    let trails = p.trails("eu-west-1").await.unwrap();
    assert!(trails[0].logging && !trails[0].kms_management_writes);
}
