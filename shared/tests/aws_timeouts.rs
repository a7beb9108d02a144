//! Every AWS call is bounded: the adapters against a local endpoint that accepts connections
//! and never answers (a stalled Regional endpoint), with the SDK timeouts of
//! `kms_replicator::aws::CallTimeouts`. Each call ends in bounded time as `Unreachable`, with a
//! message that names the Region and the time allowed.

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_kms::config::Credentials;
use kms_replicator::aws::{AwsKms, AwsTagIndex, CallTimeouts, EventBridgeAudit};
use kms_replicator::port::{AuditEvent, AuditSink, ErrorKind, Kms, TagIndex};
use kms_replicator::Op;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

/// A loopback endpoint that accepts every connection, reads what it is sent and never
/// answers. Returns its URL and the number of connections accepted so far.
async fn stalled_endpoint() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                // Read and drop the request; keep the connection open and silent.
                while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    (url, accepted)
}

/// Short bounds, so that the tests are fast: attempts of 200 ms, 600 ms per call.
fn short() -> CallTimeouts {
    CallTimeouts {
        operation: Duration::from_millis(600),
        attempt: Duration::from_millis(200),
        connect: Duration::from_secs(1),
    }
}

async fn sdk(url: &str, timeouts: CallTimeouts) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(url)
        .credentials_provider(Credentials::new("AKID", "secret", None, None, "test"))
        .timeout_config(timeouts.sdk())
        .load()
        .await
}

#[tokio::test]
async fn a_kms_call_to_a_stalled_region_times_out_as_unreachable_naming_the_region() {
    let (url, accepted) = stalled_endpoint().await;
    let kms = AwsKms::new(&sdk(&url, short()).await);

    let started = Instant::now();
    let err = kms
        .describe_key("eu-west-1", "alias/payments")
        .await
        .unwrap_err();
    let took = started.elapsed();

    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert!(took >= Duration::from_millis(190), "took {took:?}");
    assert!(accepted.load(Ordering::SeqCst) >= 1);
    assert_eq!(err.kind, ErrorKind::Unreachable, "{err:?}");
    assert!(err.is_retryable());
    assert_eq!(err.code, "TimeoutError");
    assert_eq!(
        (err.operation, err.region.as_str()),
        (Op::DescribeKey, "eu-west-1")
    );
    assert!(
        err.message.starts_with(
            "KMS in eu-west-1 did not answer DescribeKey within 0.6 s (the Region's endpoint \
             may be impaired); the other Regions are not affected"
        ),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn a_paginated_kms_call_and_a_write_are_bounded_too() {
    let (url, _) = stalled_endpoint().await;
    let kms = AwsKms::new(&sdk(&url, short()).await);

    let started = Instant::now();
    let list = kms.list_aliases("ap-southeast-2", None).await.unwrap_err();
    let write = kms
        .put_key_policy("ap-southeast-2", "mrk-1", "{}")
        .await
        .unwrap_err();

    assert!(started.elapsed() < Duration::from_secs(5));
    for e in [&list, &write] {
        assert_eq!(e.kind, ErrorKind::Unreachable, "{e:?}");
        assert!(
            e.message.contains("KMS in ap-southeast-2 did not answer"),
            "{e:?}"
        );
    }
    assert_eq!(list.operation, "ListAliases");
    assert_eq!(write.operation, "PutKeyPolicy");
}

#[tokio::test]
async fn the_attempt_timeout_alone_ends_a_call_after_the_sdks_retries() {
    // The operation timeout far away: three attempts of 150 ms, each timed out and retried.
    let (url, accepted) = stalled_endpoint().await;
    let timeouts = CallTimeouts {
        operation: Duration::from_secs(20),
        attempt: Duration::from_millis(150),
        connect: Duration::from_secs(1),
    };
    let kms = AwsKms::new(&sdk(&url, timeouts).await);

    let started = Instant::now();
    let err = kms.get_key_policy("eu-west-1", "mrk-1").await.unwrap_err();

    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(err.kind, ErrorKind::Unreachable, "{err:?}");
    assert!(err.message.contains("within 20 s"), "{}", err.message);
    assert!(err.message.contains("attempt timeout"), "{}", err.message);
    // Each attempt opened its own connection: the stalled one is never reused.
    assert_eq!(accepted.load(Ordering::SeqCst), 3, "the SDK's 3 attempts");
}

#[tokio::test]
async fn the_tag_index_on_a_stalled_region_times_out_as_unreachable_naming_the_region() {
    let (url, _) = stalled_endpoint().await;
    let index = AwsTagIndex::new(&sdk(&url, short()).await);

    let started = Instant::now();
    let err = index
        .tagged_keys("eu-west-1", "replicate-to")
        .await
        .unwrap_err();

    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(err.kind, ErrorKind::Unreachable, "{err:?}");
    assert_eq!(
        (err.operation, err.region.as_str()),
        (Op::GetResources, "eu-west-1")
    );
    assert!(
        err.message.starts_with(
            "The Resource Groups Tagging API in eu-west-1 did not answer GetResources within \
             0.6 s"
        ),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn putevents_to_a_stalled_eventbridge_is_bounded() {
    let (url, _) = stalled_endpoint().await;
    let client = aws_sdk_eventbridge::Client::new(&sdk(&url, short()).await);
    let audit = EventBridgeAudit::new(client, "default", "kms-replicator");

    let started = Instant::now();
    let err = audit
        .publish(&[AuditEvent {
            detail_type: "Replica Synced".into(),
            detail: json!({"region": "us-west-2"}),
        }])
        .await
        .unwrap_err();

    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(
        err.0
            .starts_with("EventBridge in us-east-1 did not answer PutEvents within 0.6 s"),
        "{}",
        err.0
    );
}
