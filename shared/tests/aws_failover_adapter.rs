//! The UpdatePrimaryRegion adapter against mocked SDK responses: the request it sends, and how
//! AWS's answers map to the domain's error kinds.

use aws_sdk_kms::config::retry::RetryConfig;
use aws_sdk_kms::config::{Credentials, Region};
use aws_sdk_kms::operation::update_primary_region::UpdatePrimaryRegionOutput;
use aws_sdk_kms::Client;
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use aws_smithy_runtime_api::http::{Response, StatusCode};
use aws_smithy_types::body::SdkBody;
use kms_replicator::aws::AwsKms;
use kms_replicator::port::ErrorKind;
use kms_replicator::Kms;
use kms_replicator::Op;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn fast_retries(c: aws_sdk_kms::config::Builder) -> aws_sdk_kms::config::Builder {
    c.retry_config(
        RetryConfig::standard()
            .with_max_attempts(3)
            .with_initial_backoff(Duration::from_millis(1)),
    )
}

#[tokio::test]
async fn the_call_goes_to_the_primary_region_with_the_key_and_the_new_primary_region() {
    let rule = mock!(Client::update_primary_region)
        .match_requests(|r| {
            r.key_id() == Some("mrk-1234abcd12ab34cd56ef1234567890ab")
                && r.primary_region() == Some("us-west-2")
        })
        .then_output(|| UpdatePrimaryRegionOutput::builder().build());
    let client = mock_client!(aws_sdk_kms, [&rule]);
    let regions = Arc::new(Mutex::new(Vec::new()));
    let seen = regions.clone();
    let kms = AwsKms::with_factory(move |region| {
        seen.lock().unwrap().push(region.to_string());
        client.clone()
    });

    kms.update_primary_region(
        "us-east-1",
        "mrk-1234abcd12ab34cd56ef1234567890ab",
        "us-west-2",
    )
    .await
    .unwrap();

    assert_eq!(rule.num_calls(), 1);
    assert_eq!(*regions.lock().unwrap(), vec!["us-east-1".to_string()]);
}

#[tokio::test]
async fn a_disabled_exception_body_maps_to_disabled_and_is_not_retried() {
    let arn = "arn:aws:kms:us-west-2:111122223333:key/mrk-1";
    let body = format!(r#"{{"__type":"DisabledException","message":"{arn} is disabled."}}"#);
    let rule = mock!(Client::update_primary_region).then_http_response(move || {
        Response::new(
            StatusCode::try_from(400).unwrap(),
            SdkBody::from(body.clone()),
        )
    });
    let client = mock_client!(aws_sdk_kms, RuleMode::MatchAny, [&rule], fast_retries);
    let kms = AwsKms::with_factory(move |_region| client.clone());

    let e = kms
        .update_primary_region("us-east-1", "mrk-1", "us-west-2")
        .await
        .unwrap_err();

    assert_eq!(e.kind, ErrorKind::Disabled);
    assert_eq!(e.code, "DisabledException");
    assert_eq!(e.message, format!("{arn} is disabled."));
    assert_eq!(
        (e.operation, e.region.as_str()),
        (Op::UpdatePrimaryRegion, "us-east-1")
    );
    assert!(!e.is_retryable());
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn server_errors_are_retried_by_the_sdk_and_end_as_a_retryable_error() {
    let rule = mock!(Client::update_primary_region)
        .sequence()
        .http_status(503, None)
        .repeatedly()
        .build();
    let client = mock_client!(aws_sdk_kms, RuleMode::MatchAny, [&rule], fast_retries);
    let kms = AwsKms::with_factory(move |_region| client.clone());

    let e = kms
        .update_primary_region("us-east-1", "mrk-1", "us-west-2")
        .await
        .unwrap_err();

    assert_eq!(e.kind, ErrorKind::Internal);
    assert!(e.is_retryable());
    assert_eq!(rule.num_calls(), 3, "the SDK's retries were used first");
}

#[tokio::test]
async fn a_server_error_followed_by_success_is_absorbed_by_the_sdk() {
    let rule = mock!(Client::update_primary_region)
        .sequence()
        .http_status(500, None)
        .output(|| UpdatePrimaryRegionOutput::builder().build())
        .build();
    let client = mock_client!(aws_sdk_kms, RuleMode::MatchAny, [&rule], fast_retries);
    let kms = AwsKms::with_factory(move |_region| client.clone());

    kms.update_primary_region("us-east-1", "mrk-1", "us-west-2")
        .await
        .unwrap();

    assert_eq!(rule.num_calls(), 2);
}

#[tokio::test]
async fn an_endpoint_that_does_not_answer_is_unreachable_and_retryable() {
    // Nothing listens on port 1: the connection is refused, a dispatch failure.
    let kms = AwsKms::with_factory(|region| {
        let conf = aws_sdk_kms::Config::builder()
            .behavior_version_latest()
            .region(Region::new(region.to_string()))
            .endpoint_url("http://127.0.0.1:1")
            .credentials_provider(Credentials::new("AKID", "SECRET", None, None, "test"))
            .retry_config(RetryConfig::disabled())
            .build();
        Client::from_conf(conf)
    });

    let e = kms
        .update_primary_region("us-east-1", "mrk-1", "us-west-2")
        .await
        .unwrap_err();

    assert_eq!(e.kind, ErrorKind::Unreachable, "{e}");
    assert_eq!(e.code, "DispatchFailure");
    assert!(e.is_retryable());
}
