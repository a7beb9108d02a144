//! The twin over HTTP, through the real AWS SDK and the project's adapters: what the adapter
//! reads over the wire must be what the twin holds, errors must arrive with AWS's codes, and
//! every write must leave its CloudTrail record.

use aws_config::retry::RetryConfig;
use kms_replicator::aws::{AwsKms, AwsTagIndex, EventBridgeAudit};
use kms_replicator::limit::{LimiterStats, Quotas, RateLimitedKms};
use kms_replicator::model::{KeyState, MultiRegionKeyType, Tag};
use kms_replicator::port::{AuditEvent, AuditSink, ErrorKind, Kms, ReplicaSpec, TagIndex};
use kms_replicator::Op;
use serde_json::json;
use twin::{ADMIN_USER, OPERATOR_ROLE, REPLICATE_ROLE};
use twin_server::{client, LocalCloud, ADMIN_ACCESS_KEY, FUNCTION_ACCESS_KEY, OPERATOR_ACCESS_KEY};

const EAST: &str = "us-east-1";
const WEST: &str = "us-west-2";

fn policy() -> String {
    json!({"Version": "2012-10-17", "Statement": [
        {"Sid": "Enable IAM User Permissions", "Effect": "Allow",
         "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kms:*", "Resource": "*"},
        {"Sid": "ViaS3", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/app"},
         "Action": "kms:Decrypt", "Resource": "*",
         "Condition": {"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}}
    ]})
    .to_string()
}

/// The adapter the functions use, pointed at the cloud, without SDK retries so that errors
/// show up at once.
async fn adapter(cloud: &LocalCloud, retries: bool) -> AwsKms {
    let mut sdk = cloud
        .sdk_config(OPERATOR_ACCESS_KEY, EAST)
        .await
        .into_builder();
    if !retries {
        sdk.set_retry_config(Some(RetryConfig::disabled()));
    }
    AwsKms::new(&sdk.build())
}

/// A multi-Region primary made by a person with the SDK: policy, tags, two aliases.
async fn seed(cloud: &LocalCloud) -> String {
    let kms = cloud.kms_client(ADMIN_ACCESS_KEY, EAST).await;
    let out = kms
        .create_key()
        .multi_region(true)
        .policy(policy())
        .description("payments")
        .tags(
            aws_sdk_kms::types::Tag::builder()
                .tag_key("team")
                .tag_value("payments")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("CreateKey");
    let meta = out.key_metadata().unwrap();
    assert_eq!(meta.multi_region(), Some(true));
    let id = meta.key_id().to_string();
    for alias in ["alias/payments", "alias/ledger"] {
        kms.create_alias()
            .alias_name(alias)
            .target_key_id(&id)
            .send()
            .await
            .expect("CreateAlias");
    }
    id
}

#[tokio::test]
async fn the_adapter_over_http_reads_exactly_what_the_twin_holds() {
    let cloud = LocalCloud::builder().start().await.unwrap();
    let id = seed(&cloud).await;
    let http = adapter(&cloud, false).await;
    let direct = cloud.twin().with_caller(OPERATOR_ROLE);
    // Page size 1 everywhere: the adapter's paginators must follow every marker.
    cloud.api().set_page_cap(1);

    assert_eq!(
        http.describe_key(EAST, &id).await.unwrap(),
        direct.describe_key(EAST, &id).await.unwrap()
    );
    assert_eq!(
        http.describe_key(EAST, "alias/payments").await.unwrap(),
        direct.describe_key(EAST, "alias/payments").await.unwrap()
    );
    assert_eq!(
        http.get_key_policy(EAST, &id).await.unwrap(),
        policy(),
        "the policy text comes back byte for byte"
    );
    assert_eq!(
        http.list_resource_tags(EAST, &id).await.unwrap(),
        direct.list_resource_tags(EAST, &id).await.unwrap()
    );
    let aliases = http.list_aliases(EAST, Some(&id)).await.unwrap();
    assert_eq!(aliases, direct.list_aliases(EAST, Some(&id)).await.unwrap());
    assert_eq!(aliases.len(), 2);
    assert_eq!(
        http.list_aliases(EAST, None).await.unwrap(),
        direct.list_aliases(EAST, None).await.unwrap()
    );
    cloud
        .twin()
        .with_caller(ADMIN_USER)
        .create_key(EAST, false, None, "", &[]);
    let keys = http.list_keys(EAST).await.unwrap();
    assert_eq!(keys, direct.list_keys(EAST).await.unwrap());
    assert_eq!(keys.len(), 2);
}

#[tokio::test]
async fn writes_over_http_change_the_twin_and_leave_their_cloudtrail_records() {
    let cloud = LocalCloud::builder().start().await.unwrap();
    let id = seed(&cloud).await;
    let http = adapter(&cloud, false).await;
    let spec = ReplicaSpec {
        policy: Some(policy().replace("us-east-1", "us-west-2")),
        description: "payments".into(),
        tags: vec![Tag::new("team", "payments")],
    };
    let replica = http.replicate_key(EAST, &id, WEST, &spec).await.unwrap();
    assert_eq!(replica.region, WEST);
    assert_eq!(replica.state, KeyState::Creating);
    let mr = replica.multi_region.clone().unwrap();
    assert_eq!(mr.key_type, MultiRegionKeyType::Replica);
    assert_eq!(mr.primary_region, EAST);

    http.put_key_policy(WEST, &id, &policy()).await.unwrap();
    http.create_alias(WEST, "alias/payments", &id)
        .await
        .unwrap();
    // The adapter has no UpdateAlias (the replicator never moves an alias): nothing is sent.
    let refused = http
        .update_alias(WEST, "alias/payments", &id)
        .await
        .unwrap_err();
    assert_eq!(refused.kind, ErrorKind::UnsupportedOperation);
    http.tag_resource(WEST, &id, &[Tag::new("cost-center", "42")])
        .await
        .unwrap();
    http.untag_resource(WEST, &id, &["team".to_string()])
        .await
        .unwrap();
    http.update_key_description(WEST, &id, "west")
        .await
        .unwrap();
    // DeleteAlias is a person's call (the replicator never deletes an alias): the SDK's.
    cloud
        .kms_client(ADMIN_ACCESS_KEY, WEST)
        .await
        .delete_alias()
        .alias_name("alias/payments")
        .send()
        .await
        .unwrap();
    http.schedule_key_deletion(WEST, &id, 7).await.unwrap();
    let k = cloud.twin().key(WEST, &id).unwrap();
    assert_eq!(k.state, KeyState::PendingDeletion);
    let described = cloud.kms_client(ADMIN_ACCESS_KEY, WEST).await;
    let meta = described
        .describe_key()
        .key_id(&id)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(meta.pending_deletion_window_in_days(), Some(7));
    assert!(meta.deletion_date().is_some());
    http.cancel_key_deletion(WEST, &id).await.unwrap();
    http.enable_key(WEST, &id).await.unwrap();
    let k = cloud.twin().key(WEST, &id).unwrap();
    assert_eq!(k.state, KeyState::Enabled);
    assert_eq!(k.description, "west");
    assert_eq!(k.policy, policy());
    assert_eq!(k.tags.get("cost-center").map(String::as_str), Some("42"));
    assert!(!k.tags.contains_key("team"));

    http.update_primary_region(EAST, &id, WEST).await.unwrap();
    let west = cloud
        .twin()
        .with_caller(ADMIN_USER)
        .describe_key(WEST, &id)
        .await
        .unwrap();
    assert_eq!(west.multi_region.unwrap().primary_region, WEST);

    let names: Vec<String> = cloud
        .twin()
        .trail()
        .iter()
        .chain(cloud.deliveries().iter().map(|d| &d.event))
        .map(|e| {
            format!(
                "{} {}",
                e["region"].as_str().unwrap(),
                e["detail"]["eventName"].as_str().unwrap()
            )
        })
        .collect();
    for expected in [
        "us-east-1 CreateKey",
        "us-east-1 CreateAlias",
        "us-east-1 ReplicateKey",
        "us-west-2 CreateKey",
        "us-west-2 PutKeyPolicy",
        "us-west-2 TagResource",
        "us-west-2 UntagResource",
        "us-west-2 UpdateKeyDescription",
        "us-west-2 DeleteAlias",
        "us-west-2 ScheduleKeyDeletion",
        "us-west-2 CancelKeyDeletion",
        "us-west-2 EnableKey",
        "us-east-1 UpdatePrimaryRegion",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
}

#[tokio::test]
async fn errors_arrive_with_the_codes_and_kinds_the_twin_gives_directly() {
    let cloud = LocalCloud::builder().start().await.unwrap();
    let id = seed(&cloud).await;
    let http = adapter(&cloud, false).await;
    let direct = cloud.twin().with_caller(OPERATOR_ROLE);
    let spec = ReplicaSpec::default();
    http.replicate_key(EAST, &id, WEST, &spec).await.unwrap();
    let lockout = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"AWS": ADMIN_USER}, "Action": "kms:*", "Resource": "*"}]})
    .to_string();

    let pairs = vec![
        (
            http.describe_key(EAST, "mrk-nope").await.unwrap_err(),
            direct.describe_key(EAST, "mrk-nope").await.unwrap_err(),
        ),
        (
            http.create_alias(EAST, "alias/payments", &id)
                .await
                .unwrap_err(),
            direct
                .create_alias(EAST, "alias/payments", &id)
                .await
                .unwrap_err(),
        ),
        (
            http.replicate_key(WEST, &id, "eu-west-1", &spec)
                .await
                .unwrap_err(),
            direct
                .replicate_key(WEST, &id, "eu-west-1", &spec)
                .await
                .unwrap_err(),
        ),
        (
            http.replicate_key(EAST, &id, WEST, &spec)
                .await
                .unwrap_err(),
            direct
                .replicate_key(EAST, &id, WEST, &spec)
                .await
                .unwrap_err(),
        ),
        (
            http.put_key_policy(EAST, &id, &lockout).await.unwrap_err(),
            direct
                .put_key_policy(EAST, &id, &lockout)
                .await
                .unwrap_err(),
        ),
        (
            http.schedule_key_deletion(EAST, &id, 3).await.unwrap_err(),
            direct
                .schedule_key_deletion(EAST, &id, 3)
                .await
                .unwrap_err(),
        ),
    ];
    for (over_http, direct) in pairs {
        assert_eq!(
            (over_http.kind, &over_http.code, &over_http.message),
            (direct.kind, &direct.code, &direct.message),
            "{over_http}"
        );
    }

    cloud
        .twin()
        .inject_fault(Some(EAST), Some(Op::GetKeyPolicy), "ThrottlingException", 1);
    let e = http.get_key_policy(EAST, &id).await.unwrap_err();
    assert_eq!(
        (e.kind, e.code.as_str()),
        (ErrorKind::Throttling, "ThrottlingException")
    );
    cloud.twin().inject_fault(
        Some(EAST),
        Some(Op::GetKeyPolicy),
        "KMSInternalException",
        1,
    );
    let e = http.get_key_policy(EAST, &id).await.unwrap_err();
    assert_eq!(
        (e.kind, e.code.as_str()),
        (ErrorKind::Internal, "KMSInternalException")
    );
    assert!(e.is_retryable());

    cloud.twin().set_region_down(WEST, true);
    let e = http.describe_key(WEST, &id).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unreachable, "{e}");
    assert!(e.is_retryable());
    cloud.twin().set_region_down(WEST, false);
    assert!(http.describe_key(WEST, &id).await.is_ok());
}

#[tokio::test]
async fn a_throttle_is_left_to_the_limiter_which_sends_the_call_again() {
    let cloud = LocalCloud::builder().start().await.unwrap();
    let id = seed(&cloud).await;
    let http = adapter(&cloud, true).await;
    let attempts = |cloud: &LocalCloud| {
        cloud
            .twin()
            .calls()
            .iter()
            .filter(|c| c.op == "DescribeKey")
            .count()
    };
    // The SDK's standard retries are on, but not for a throttle: it comes straight back.
    cloud
        .twin()
        .inject_fault(Some(EAST), Some(Op::DescribeKey), "ThrottlingException", 1);
    cloud.twin().reset_calls();
    let err = http.describe_key(EAST, &id).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Throttling);
    assert_eq!(attempts(&cloud), 1);
    // Through the limiter, as every function calls KMS, the call is sent again and succeeds.
    let limited = RateLimitedKms::new(http, Quotas::kms(50));
    cloud
        .twin()
        .inject_fault(Some(EAST), Some(Op::DescribeKey), "ThrottlingException", 1);
    cloud.twin().reset_calls();
    assert!(limited.describe_key(EAST, &id).await.is_ok());
    assert_eq!(attempts(&cloud), 2);
    assert_eq!(limited.throttles(), 1);
}

#[tokio::test]
async fn requests_act_as_the_identity_their_access_key_names() {
    let cloud = LocalCloud::builder().start().await.unwrap();
    seed(&cloud).await;
    let calls = cloud.twin().calls();
    assert!(calls.iter().all(|c| c.caller == ADMIN_USER), "{calls:?}");
    cloud
        .settle(std::time::Duration::from_secs(5))
        .await
        .unwrap();
    let routed = cloud.deliveries();
    assert_eq!(routed[0].event_name(), "CreateKey");
    assert_eq!(
        routed[0].event["detail"]["userIdentity"]["arn"],
        json!(ADMIN_USER),
        "the CreateKey record names the person"
    );
    let replicate = AwsKms::new(&cloud.sdk_config(FUNCTION_ACCESS_KEY, EAST).await);
    replicate.list_aliases(EAST, None).await.unwrap();
    assert_eq!(cloud.twin().calls().last().unwrap().caller, REPLICATE_ROLE);
    // Its role may not list the keys of the Region: refused as AWS refuses it.
    let denied = replicate.list_keys(EAST).await.unwrap_err();
    assert_eq!(denied.code, "AccessDeniedException", "{denied}");
    assert!(denied.message.contains("kms:ListKeys"), "{denied}");
}

#[tokio::test]
async fn put_events_from_the_audit_adapter_are_recorded_as_audit_events() {
    let cloud = LocalCloud::builder().start().await.unwrap();
    let sdk = cloud.sdk_config(FUNCTION_ACCESS_KEY, EAST).await;
    let audit = EventBridgeAudit::new(
        aws_sdk_eventbridge::Client::new(&sdk),
        "default",
        "kms-replicator",
    );
    let events: Vec<AuditEvent> = (0..12)
        .map(|i| AuditEvent {
            detail_type: "Replica Created".into(),
            detail: json!({"n": i}),
        })
        .collect();
    audit.publish(&events).await.unwrap();
    assert_eq!(cloud.twin().audit_events(), events);
    let entries = cloud.audit_entries();
    assert_eq!(entries.len(), 12);
    assert_eq!(entries[0]["source"], "kms-replicator");
    assert_eq!(entries[0]["eventBusName"], "default");

    cloud.twin().set_audit_down(true);
    assert!(audit.publish(&events[..1]).await.is_err());
}

#[tokio::test]
async fn the_tag_index_lists_tagged_keys_page_by_page() {
    let cloud = LocalCloud::builder().start().await.unwrap();
    let admin = cloud.twin().with_caller(ADMIN_USER);
    for i in 0..3 {
        admin.create_key(
            EAST,
            true,
            None,
            "",
            &[Tag::new("replicate-to", format!("us-west-{i}"))],
        );
    }
    admin.create_key(EAST, true, None, "", &[Tag::new("team", "x")]);
    cloud.api().set_page_cap(1);
    let sdk = cloud.sdk_config("reconcile", EAST).await;
    let keys = AwsTagIndex::new(&sdk)
        .tagged_keys(EAST, "replicate-to")
        .await
        .unwrap();
    assert_eq!(keys.len(), 3);
    assert!(keys.iter().all(|k| k
        .arn
        .starts_with("arn:aws:kms:us-east-1:111122223333:key/mrk-")));
    assert_eq!(keys[0].value, "us-west-0");
}

#[tokio::test]
async fn malformed_and_unknown_requests_get_aws_shaped_errors() {
    let cloud = LocalCloud::builder().start().await.unwrap();
    let auth = "AWS4-HMAC-SHA256 Credential=test/20261123/us-east-1/kms/aws4_request, SignedHeaders=host, Signature=0";
    let r = client::request(
        cloud.endpoint(),
        "POST",
        "/",
        &[
            ("x-amz-target", "TrentService.GenerateDataKeyPair"),
            ("content-type", "application/x-amz-json-1.1"),
            ("authorization", auth),
        ],
        "{}",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["__type"], "UnknownOperationException");
    let r = client::request(
        cloud.endpoint(),
        "POST",
        "/",
        &[
            ("x-amz-target", "TrentService.DescribeKey"),
            ("authorization", auth),
        ],
        "{not json",
    )
    .await
    .unwrap();
    assert_eq!(r.json()["__type"], "SerializationException");
    let r = client::request(
        cloud.endpoint(),
        "POST",
        "/",
        &[("x-amz-target", "TrentService.DescribeKey")],
        "{}",
    )
    .await
    .unwrap();
    assert_eq!(r.json()["__type"], "MissingAuthenticationTokenException");
    let health = client::get_json(cloud.endpoint(), "/_twin/health")
        .await
        .unwrap();
    assert_eq!(health["ok"], true);
}

#[tokio::test]
async fn debug_endpoints_inject_faults_and_show_what_went_through_the_bus() {
    let cloud = LocalCloud::builder().start().await.unwrap();
    let id = seed(&cloud).await;
    let ep = cloud.endpoint().to_string();
    let http = adapter(&cloud, false).await;

    let r = client::post_json(&ep, "/_twin/region", &json!({"region": EAST, "down": true}))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        http.describe_key(EAST, &id).await.unwrap_err().kind,
        ErrorKind::Unreachable
    );
    client::post_json(
        &ep,
        "/_twin/region",
        &json!({"region": EAST, "down": false}),
    )
    .await
    .unwrap();
    client::post_json(
        &ep,
        "/_twin/fault",
        &json!({"region": EAST, "operation": "DescribeKey", "code": "KMSInternalException"}),
    )
    .await
    .unwrap();
    assert_eq!(
        http.describe_key(EAST, &id).await.unwrap_err().code,
        "KMSInternalException"
    );
    assert!(http.describe_key(EAST, &id).await.is_ok(), "one-shot fault");
    // DELETE removes the faults not yet used up.
    client::post_json(
        &ep,
        "/_twin/fault",
        &json!({"region": EAST, "operation": "DescribeKey", "code": "KMSInternalException", "times": 100}),
    )
    .await
    .unwrap();
    assert!(http.describe_key(EAST, &id).await.is_err());
    client::request(&ep, "DELETE", "/_twin/fault", &[], "")
        .await
        .unwrap();
    assert!(
        http.describe_key(EAST, &id).await.is_ok(),
        "the faults are gone"
    );

    let settled = client::post_json(&ep, "/_twin/settle", &json!({"timeoutMs": 5000}))
        .await
        .unwrap();
    assert_eq!(settled.status, 200, "{}", settled.body);
    let trail = client::get_json(&ep, "/_twin/trail").await.unwrap();
    let names: Vec<&str> = trail
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["eventName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["CreateKey", "CreateAlias", "CreateAlias"]);
    assert_eq!(trail[0]["caller"], ADMIN_USER);
    assert_eq!(
        client::get_json(&ep, "/_twin/audit").await.unwrap(),
        json!([])
    );
    assert_eq!(
        client::get_json(&ep, "/_twin/invocations").await.unwrap(),
        json!([])
    );
    let unknown = client::request(&ep, "GET", "/_twin/nope", &[], "")
        .await
        .unwrap();
    assert_eq!(unknown.status, 404);
}

/// The functions' adapter with short call bounds (`kms_replicator::aws::CallTimeouts`).
async fn bounded_adapter(cloud: &LocalCloud, operation_ms: u64) -> AwsKms {
    let mut sdk = cloud
        .sdk_config(OPERATOR_ACCESS_KEY, EAST)
        .await
        .into_builder();
    let timeouts = kms_replicator::aws::CallTimeouts {
        operation: std::time::Duration::from_millis(operation_ms),
        attempt: std::time::Duration::from_millis(operation_ms / 2),
        connect: std::time::Duration::from_secs(1),
    };
    sdk.set_timeout_config(Some(timeouts.sdk()));
    AwsKms::new(&sdk.build())
}

#[tokio::test]
async fn a_stalled_region_accepts_requests_and_answers_late_or_never_while_others_are_served() {
    use std::time::{Duration, Instant};
    let cloud = LocalCloud::builder().start().await.unwrap();
    let id = seed(&cloud).await;
    let ep = cloud.endpoint().to_string();
    let http = bounded_adapter(&cloud, 600).await;

    let r = client::post_json(
        &ep,
        "/_twin/stall",
        &json!({"region": EAST, "op": "DescribeKey", "delaySeconds": null}),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);

    // The stalled call and other calls at the same time: the others are served at once.
    let started = Instant::now();
    let (stalled, policy, west) = tokio::join!(
        http.describe_key(EAST, &id),
        async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let r = http.get_key_policy(EAST, &id).await;
            (r, started.elapsed())
        },
        async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let r = http.describe_key(WEST, &id).await;
            (r, started.elapsed())
        },
    );
    let e = stalled.unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(550));
    assert_eq!(
        (e.kind, e.code.as_str()),
        (ErrorKind::Unreachable, "TimeoutError")
    );
    assert!(
        e.message
            .contains("KMS in us-east-1 did not answer DescribeKey within 0.6 s"),
        "{}",
        e.message
    );
    assert!(policy.0.is_ok());
    assert!(policy.1 < Duration::from_millis(400), "{:?}", policy.1);
    assert_eq!(west.0.unwrap_err().kind, ErrorKind::NotFound, "answered");
    assert!(west.1 < Duration::from_millis(400), "{:?}", west.1);
    // The stalled requests were accepted: the twin recorded each attempt.
    let attempts = cloud
        .twin()
        .calls()
        .iter()
        .filter(|c| c.region == EAST && c.op == "DescribeKey")
        .count();
    assert!(attempts >= 1);

    // Late instead of never, then cleared.
    client::post_json(
        &ep,
        "/_twin/stall",
        &json!({"region": EAST, "op": "DescribeKey", "delaySeconds": 0.2}),
    )
    .await
    .unwrap();
    let started = Instant::now();
    assert!(http.describe_key(EAST, &id).await.is_ok());
    assert!(started.elapsed() >= Duration::from_millis(200));
    client::post_json(
        &ep,
        "/_twin/stall",
        &json!({"region": EAST, "op": "DescribeKey", "stalled": false}),
    )
    .await
    .unwrap();
    let started = Instant::now();
    assert!(http.describe_key(EAST, &id).await.is_ok());
    assert!(started.elapsed() < Duration::from_millis(200));

    // Every Region, every operation; DELETE ends every stall.
    client::post_json(&ep, "/_twin/stall", &json!({}))
        .await
        .unwrap();
    assert_eq!(
        http.get_key_policy(WEST, &id).await.unwrap_err().code,
        "TimeoutError"
    );
    let r = client::request(&ep, "DELETE", "/_twin/stall", &[], "")
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert!(http.describe_key(EAST, &id).await.is_ok());

    let bad = client::post_json(&ep, "/_twin/stall", &json!({"delaySeconds": "soon"}))
        .await
        .unwrap();
    assert_eq!(bad.status, 400);
}
