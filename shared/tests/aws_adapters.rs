//! The aws-sdk-kms and aws-sdk-eventbridge adapters against mocked SDK responses: the request
//! fields KMS expects, responses parsed from KMS's wire format, and AWS's error codes mapped to
//! what the sync engine does with them.

use aws_sdk_kms::Client;
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use kms_replicator::aws::{AwsKms, EventBridgeAudit};
use kms_replicator::model::{KeyState, MultiRegionKeyType, Tag};
use kms_replicator::port::{AuditEvent, AuditSink, ErrorKind, Kms, ReplicaSpec};
use serde_json::json;

const KEY: &str = "mrk-1234abcd12ab34cd56ef1234567890ab";

fn kms_with(rules: &[&aws_smithy_mocks::Rule]) -> AwsKms {
    let client = mock_client!(aws_sdk_kms, RuleMode::MatchAny, rules);
    AwsKms::with_factory(move |_region| client.clone())
}

/// A KMS JSON 1.1 error response as AWS sends it.
fn aws_error(code: &str, message: &str) -> String {
    json!({"__type": code, "message": message}).to_string()
}

#[tokio::test]
async fn describe_key_parses_a_real_describe_key_response() {
    // The body is the DescribeKey output from the KMS documentation, byte for byte.
    let body = include_str!(
        "../../tests/fixtures/sdk-responses/DescribeKey-newPrimary-after-UpdatePrimaryRegion.cli.json"
    );
    let rule = mock!(Client::describe_key)
        .match_requests(|r| r.key_id() == Some(KEY))
        .sequence()
        .http_status(200, Some(body.to_string()))
        .build();
    let kms = kms_with(&[&rule]);

    let info = kms.describe_key("eu-west-1", KEY).await.unwrap();

    assert_eq!(info.key_id, KEY);
    assert_eq!(info.region, "eu-west-1");
    assert_eq!(info.state, KeyState::Enabled);
    assert_eq!(info.description, "multi-region-key");
    let mr = info.multi_region.unwrap();
    assert_eq!(mr.key_type, MultiRegionKeyType::Primary);
    assert_eq!(mr.primary_region, "eu-west-1");
    assert_eq!(mr.replica_regions, vec!["us-west-2"]);
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn describe_key_of_a_new_primary_without_replicas() {
    let body =
        include_str!("../../tests/fixtures/sdk-responses/CreateKey-multiRegion-response.cli.json");
    let rule = mock!(Client::describe_key)
        .sequence()
        .http_status(200, Some(body.to_string()))
        .build();
    let info = kms_with(&[&rule])
        .describe_key("us-east-1", KEY)
        .await
        .unwrap();
    assert!(info.is_primary());
    assert!(info.multi_region.unwrap().replica_regions.is_empty());
}

#[tokio::test]
async fn replicate_key_sends_policy_tags_and_description_and_never_bypasses_the_lockout_check() {
    let rule = mock!(Client::replicate_key)
        .match_requests(|r| {
            r.key_id() == Some(KEY)
                && r.replica_region() == Some("eu-west-1")
                && r.policy() == Some("{\"Version\":\"2012-10-17\"}")
                && r.description() == Some("payments")
                && r.bypass_policy_lockout_safety_check() == Some(false)
                && r.tags().len() == 1
                && r.tags()[0].tag_key() == "replicate-to"
                && r.tags()[0].tag_value() == "eu-west-1"
        })
        .then_output(|| {
            aws_sdk_kms::operation::replicate_key::ReplicateKeyOutput::builder()
                .replica_key_metadata(
                    aws_sdk_kms::types::KeyMetadata::builder()
                        .key_id(KEY)
                        .arn(format!("arn:aws:kms:eu-west-1:111122223333:key/{KEY}"))
                        .key_state(aws_sdk_kms::types::KeyState::Creating)
                        .build()
                        .unwrap(),
                )
                .build()
        });
    let kms = kms_with(&[&rule]);
    let spec = ReplicaSpec {
        policy: Some("{\"Version\":\"2012-10-17\"}".into()),
        description: "payments".into(),
        tags: vec![Tag::new("replicate-to", "eu-west-1")],
    };
    let replica = kms
        .replicate_key("us-east-1", KEY, "eu-west-1", &spec)
        .await
        .unwrap();
    assert_eq!(replica.region, "eu-west-1");
    assert_eq!(replica.state, KeyState::Creating);
    assert_eq!(rule.num_calls(), 1, "the request matched what KMS expects");
}

#[tokio::test]
async fn key_policy_calls_use_the_default_policy_name() {
    let get = mock!(Client::get_key_policy)
        .match_requests(|r| r.key_id() == Some(KEY) && r.policy_name() == Some("default"))
        .then_output(|| {
            aws_sdk_kms::operation::get_key_policy::GetKeyPolicyOutput::builder()
                .policy("{}")
                .build()
        });
    let put = mock!(Client::put_key_policy)
        .match_requests(|r| {
            r.policy_name() == Some("default")
                && r.policy() == Some("{\"a\":1}")
                && r.bypass_policy_lockout_safety_check() == Some(false)
        })
        .then_output(|| {
            aws_sdk_kms::operation::put_key_policy::PutKeyPolicyOutput::builder().build()
        });
    let kms = kms_with(&[&get, &put]);
    assert_eq!(kms.get_key_policy("us-east-1", KEY).await.unwrap(), "{}");
    kms.put_key_policy("us-east-1", KEY, "{\"a\":1}")
        .await
        .unwrap();
    assert_eq!((get.num_calls(), put.num_calls()), (1, 1));
}

#[tokio::test]
async fn list_aliases_asks_for_full_pages_and_follows_every_one() {
    let page = |marker: Option<&str>, names: &[&str], next: Option<&str>| {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let (marker, next) = (marker.map(str::to_string), next.map(str::to_string));
        mock!(Client::list_aliases)
            // 100 is the most KMS returns in a page (50 when a request names no limit).
            .match_requests(move |r| {
                r.marker().map(str::to_string) == marker && r.limit() == Some(100)
            })
            .then_output(move || {
                aws_sdk_kms::operation::list_aliases::ListAliasesOutput::builder()
                    .set_aliases(Some(
                        names
                            .iter()
                            .map(|n| {
                                aws_sdk_kms::types::AliasListEntry::builder()
                                    .alias_name(n)
                                    .target_key_id(KEY)
                                    .build()
                            })
                            .collect(),
                    ))
                    .truncated(next.is_some())
                    .set_next_marker(next.clone())
                    .build()
            })
    };
    let first = page(None, &["alias/a", "alias/b"], Some("m1"));
    let second = page(Some("m1"), &["alias/c"], None);
    let kms = kms_with(&[&first, &second]);
    let aliases = kms.list_aliases("us-east-1", Some(KEY)).await.unwrap();
    let names: Vec<&str> = aliases.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, vec!["alias/a", "alias/b", "alias/c"]);
}

async fn error_of(status: u16, code: &str, message: &str) -> kms_replicator::port::KmsError {
    let rule = mock!(Client::create_alias)
        .sequence()
        .http_status(status, Some(aws_error(code, message)))
        .repeatedly()
        .build();
    kms_with(&[&rule])
        .create_alias("us-west-2", "alias/payments", KEY)
        .await
        .unwrap_err()
}

#[tokio::test]
async fn aws_error_codes_map_to_what_sync_does_with_them() {
    let cases = [
        (
            400,
            "AlreadyExistsException",
            ErrorKind::AlreadyExists,
            false,
        ),
        (400, "NotFoundException", ErrorKind::NotFound, false),
        (
            400,
            "UnsupportedOperationException",
            ErrorKind::UnsupportedOperation,
            false,
        ),
        (
            400,
            "MalformedPolicyDocumentException",
            ErrorKind::MalformedPolicy,
            false,
        ),
        (400, "DisabledException", ErrorKind::Disabled, false),
        (400, "AccessDeniedException", ErrorKind::AccessDenied, false),
        (400, "ThrottlingException", ErrorKind::Throttling, true),
        (500, "KMSInternalException", ErrorKind::Internal, true),
        (
            503,
            "ServiceUnavailableException",
            ErrorKind::Internal,
            true,
        ),
    ];
    for (status, code, kind, retryable) in cases {
        let e = error_of(status, code, "some message").await;
        assert_eq!(e.kind, kind, "{code}");
        assert_eq!(e.code, code);
        assert_eq!(e.is_retryable(), retryable, "{code}");
        assert_eq!(e.operation, "CreateAlias");
        assert_eq!(e.region, "us-west-2");
    }
}

#[tokio::test]
async fn invalid_state_is_retryable_only_while_the_key_is_creating_or_updating() {
    let creating = error_of(
        400,
        "KMSInvalidStateException",
        "arn:aws:kms:us-west-2:111122223333:key/mrk-1 is creating.",
    )
    .await;
    assert_eq!(creating.kind, ErrorKind::InvalidState);
    assert!(creating.is_retryable());
    let pending = error_of(
        400,
        "KMSInvalidStateException",
        "arn:aws:kms:us-west-2:111122223333:key/mrk-1 is pending deletion.",
    )
    .await;
    assert!(!pending.is_retryable());
}

#[tokio::test]
async fn audit_events_are_sent_in_batches_of_ten_to_the_configured_bus() {
    use aws_sdk_eventbridge::operation::put_events::PutEventsOutput;
    let rule = mock!(aws_sdk_eventbridge::Client::put_events)
        .match_requests(|r| {
            r.entries().iter().all(|e| {
                e.event_bus_name() == Some("audit-bus")
                    && e.source() == Some("kms-replicator")
                    && e.detail_type() == Some("Replica Created")
                    && e.detail().is_some_and(|d| d.contains("mrk-1"))
            }) && r.entries().len() <= 10
        })
        .then_output(|| PutEventsOutput::builder().failed_entry_count(0).build());
    let client = mock_client!(aws_sdk_eventbridge, RuleMode::MatchAny, [&rule]);
    let audit = EventBridgeAudit::new(client, "audit-bus", "kms-replicator");
    let events: Vec<AuditEvent> = (0..12)
        .map(|i| AuditEvent {
            detail_type: "Replica Created".into(),
            detail: json!({"keyId": "mrk-1", "n": i}),
        })
        .collect();
    audit.publish(&events).await.unwrap();
    assert_eq!(rule.num_calls(), 2);
}

#[tokio::test]
async fn rejected_audit_entries_are_an_error() {
    use aws_sdk_eventbridge::operation::put_events::PutEventsOutput;
    use aws_sdk_eventbridge::types::PutEventsResultEntry;
    let rule = mock!(aws_sdk_eventbridge::Client::put_events).then_output(|| {
        PutEventsOutput::builder()
            .failed_entry_count(1)
            .entries(
                PutEventsResultEntry::builder()
                    .error_code("InternalFailure")
                    .error_message("try again")
                    .build(),
            )
            .build()
    });
    let client = mock_client!(aws_sdk_eventbridge, RuleMode::MatchAny, [&rule]);
    let audit = EventBridgeAudit::new(client, "default", "kms-replicator");
    let err = audit
        .publish(&[AuditEvent {
            detail_type: "Replication Failed".into(),
            detail: json!({}),
        }])
        .await
        .unwrap_err();
    assert!(err.0.contains("InternalFailure"), "{err}");
}

#[tokio::test]
async fn get_key_last_usage_parses_the_last_use_and_the_tracking_dates() {
    let body =
        include_str!("../../tests/fixtures/sdk-responses/GetKeyLastUsage-replica.SHAPED.json");
    let rule = mock!(Client::get_key_last_usage)
        .match_requests(|r| r.key_id() == Some(KEY))
        .sequence()
        .http_status(200, Some(body.to_string()))
        .build();
    let usage = kms_with(&[&rule])
        .get_key_last_usage("us-west-2", KEY)
        .await
        .unwrap();
    let last = usage.last_use.unwrap();
    assert_eq!(last.operation, "Decrypt");
    assert_eq!(last.at_ms, 1_777_309_866_123);
    assert_eq!(
        last.cloudtrail_event_id.as_deref(),
        Some("4aa7e4d5-d047-452a-a5a6-2cce282a7e82")
    );
    assert_eq!(usage.tracking_start_ms, Some(1_764_547_200_000));
    assert_eq!(usage.key_creation_ms, Some(1_606_329_032_475));
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn get_key_last_usage_of_a_key_never_used_and_its_errors() {
    let never = mock!(Client::get_key_last_usage)
        .sequence()
        .http_status(
            200,
            Some(
                json!({"KeyId": KEY, "TrackingStartDate": 1.7e9, "KeyCreationDate": 1.7e9})
                    .to_string(),
            ),
        )
        .build();
    let usage = kms_with(&[&never])
        .get_key_last_usage("us-west-2", KEY)
        .await
        .unwrap();
    assert_eq!(usage.last_use, None);
    assert_eq!(usage.tracking_start_ms, usage.key_creation_ms);
    let denied = mock!(Client::get_key_last_usage)
        .sequence()
        .http_status(
            400,
            Some(aws_error("AccessDeniedException", "not authorized")),
        )
        .build();
    let e = kms_with(&[&denied])
        .get_key_last_usage("us-west-2", KEY)
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::AccessDenied);
    assert_eq!(e.operation, kms_replicator::Op::GetKeyLastUsage);
}
