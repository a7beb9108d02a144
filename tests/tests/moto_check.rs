//! An independent check of the wire format: the AWS adapters' single-Region calls run against
//! moto's server (an implementation of KMS and EventBridge not written here), and the same
//! script runs against the project's twin over HTTP; both must answer alike.
//!
//! moto gets multi-Region keys wrong (ReplicateKey ignores the policy, tags and description it
//! is given, a primary reports itself as a replica after a DescribeKey, and UpdatePrimaryRegion
//! is missing), so only single-Region calls are checked.
//!
//! Needs `.venv/bin/moto_server` (`moto[server]` from PyPI) or `MOTO_SERVER=/path/to/moto_server`.
//! Without it the test prints why and passes, unless `MOTO_REQUIRED=1` (CI) makes it fail.

use aws_config::retry::RetryConfig;
use aws_config::SdkConfig;
use kms_replicator::aws::{AwsKms, EventBridgeAudit};
use kms_replicator::model::Tag;
use kms_replicator::port::{AuditEvent, AuditSink, Kms};
use serde_json::{json, Value};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use twin_server::{LocalCloud, OPERATOR_ACCESS_KEY};

const REGION: &str = "us-east-1";

fn moto_server() -> Option<PathBuf> {
    let path = std::env::var_os("MOTO_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/moto_server"));
    path.is_file().then_some(path)
}

fn skip(why: &str) {
    let msg = format!(
        "SKIPPED moto check: {why}. Install it with `python3 -m venv .venv && .venv/bin/pip install 'moto[server]'` \
         (or set MOTO_SERVER=/path/to/moto_server)"
    );
    if std::env::var("MOTO_REQUIRED").is_ok_and(|v| v == "1") {
        panic!("{msg} (MOTO_REQUIRED=1)");
    }
    eprintln!("{msg}");
}

/// A moto server on a free loopback port, stopped on drop.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_moto(bin: &Path) -> Result<Moto, String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let child = Command::new(bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let mut moto = Moto {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
    };
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        if let Ok(Some(status)) = moto.child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = moto.child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            let last = err.lines().last().unwrap_or("").to_string();
            return Err(format!("moto_server exited ({status}): {last}"));
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(moto);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err("moto_server did not listen within 60 s".into())
}

async fn sdk_for(endpoint: &str) -> SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new(REGION))
        .credentials_provider(aws_sdk_kms::config::Credentials::new(
            OPERATOR_ACCESS_KEY,
            "test",
            None,
            None,
            "moto-check",
        ))
        .retry_config(RetryConfig::disabled())
        .load()
        .await
}

fn policy(sid: &str) -> String {
    json!({"Version": "2012-10-17", "Id": "check", "Statement": [{
        "Sid": sid, "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
        "Action": "kms:*", "Resource": "*"
    }]})
    .to_string()
}

/// The same calls against any endpoint; what each one observed, as comparable lines.
async fn script(sdk: &SdkConfig) -> Vec<String> {
    let mut seen = Vec::new();
    let kms = aws_sdk_kms::Client::new(sdk);
    let created = kms
        .create_key()
        .description("payments")
        .policy(policy("First"))
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
    let id = created.key_metadata().unwrap().key_id().to_string();
    let adapter = AwsKms::new(sdk);

    let info = adapter
        .describe_key(REGION, &id)
        .await
        .expect("DescribeKey");
    seen.push(format!(
        "DescribeKey: id matches {}, arn {}, {} {:?} multi-Region {}",
        info.key_id == id,
        info.arn
            == format!(
                "arn:aws:kms:{REGION}:{}:key/{id}",
                info.account().unwrap_or("")
            ),
        info.state,
        info.description,
        info.multi_region.is_some()
    ));
    adapter
        .create_alias(REGION, "alias/payments", &id)
        .await
        .expect("CreateAlias");
    let aliases = adapter
        .list_aliases(REGION, Some(&id))
        .await
        .expect("ListAliases");
    seen.push(format!(
        "ListAliases: {:?}",
        aliases
            .iter()
            .map(|a| (
                a.name.clone(),
                a.target_key_id.as_deref() == Some(id.as_str())
            ))
            .collect::<Vec<_>>()
    ));
    let by_alias = adapter
        .describe_key(REGION, "alias/payments")
        .await
        .expect("DescribeKey by alias");
    seen.push(format!(
        "DescribeKey by alias: same key {}",
        by_alias.key_id == id
    ));

    adapter
        .tag_resource(REGION, &id, &[Tag::new("cost-center", "42")])
        .await
        .expect("TagResource");
    let mut tags = adapter.list_resource_tags(REGION, &id).await.unwrap();
    tags.sort();
    seen.push(format!("ListResourceTags after TagResource: {tags:?}"));
    adapter
        .untag_resource(REGION, &id, &["team".to_string()])
        .await
        .expect("UntagResource");
    let tags = adapter.list_resource_tags(REGION, &id).await.unwrap();
    seen.push(format!("ListResourceTags after UntagResource: {tags:?}"));

    let first: Value =
        serde_json::from_str(&adapter.get_key_policy(REGION, &id).await.unwrap()).unwrap();
    seen.push(format!(
        "GetKeyPolicy: the CreateKey policy {}",
        first["Statement"][0]["Sid"]
    ));
    adapter
        .put_key_policy(REGION, &id, &policy("Second"))
        .await
        .expect("PutKeyPolicy");
    let second: Value =
        serde_json::from_str(&adapter.get_key_policy(REGION, &id).await.unwrap()).unwrap();
    seen.push(format!(
        "GetKeyPolicy after PutKeyPolicy: {}",
        second["Statement"][0]["Sid"]
    ));

    adapter
        .update_key_description(REGION, &id, "payments v2")
        .await
        .expect("UpdateKeyDescription");
    let info = adapter.describe_key(REGION, &id).await.unwrap();
    seen.push(format!(
        "DescribeKey after UpdateKeyDescription: {:?}",
        info.description
    ));

    let keys = adapter.list_keys(REGION).await.expect("ListKeys");
    seen.push(format!("ListKeys: holds the key {}", keys.contains(&id)));

    let missing = adapter
        .describe_key(REGION, "alias/does-not-exist")
        .await
        .unwrap_err();
    seen.push(format!(
        "DescribeKey of a missing alias: {:?} {}",
        missing.kind, missing.code
    ));
    let dup = adapter
        .create_alias(REGION, "alias/payments", &id)
        .await
        .unwrap_err();
    seen.push(format!(
        "CreateAlias of a taken name: {:?} {}",
        dup.kind, dup.code
    ));
    let gone = adapter
        .get_key_policy(REGION, "11111111-2222-3333-4444-555555555555")
        .await
        .unwrap_err();
    seen.push(format!(
        "GetKeyPolicy of a missing key: {:?} {}",
        gone.kind, gone.code
    ));

    let audit = EventBridgeAudit::new(
        aws_sdk_eventbridge::Client::new(sdk),
        "default",
        "kms-replicator",
    );
    let published = audit
        .publish(&[AuditEvent {
            detail_type: "Replica Created".into(),
            detail: json!({"keyId": id}),
        }])
        .await;
    seen.push(format!("PutEvents: accepted {}", published.is_ok()));
    seen
}

#[tokio::test]
async fn the_adapters_single_region_calls_work_alike_on_moto_and_on_the_twin() {
    let Some(bin) = moto_server() else {
        skip(".venv/bin/moto_server is absent");
        return;
    };
    let moto = match start_moto(&bin) {
        Ok(m) => m,
        Err(e) => {
            skip(&format!(
                "moto_server does not start ({e}); is moto[server] installed?"
            ));
            return;
        }
    };
    let on_moto = script(&sdk_for(&moto.endpoint).await).await;
    let cloud = LocalCloud::builder().start().await.unwrap();
    let on_twin = script(&sdk_for(cloud.endpoint()).await).await;
    for (m, t) in on_moto.iter().zip(&on_twin) {
        eprintln!("moto: {m}\ntwin: {t}");
    }
    assert_eq!(on_moto, on_twin);
    assert_eq!(on_moto.len(), 13);
    assert!(
        on_moto[0].contains("Enabled \"payments\" multi-Region false"),
        "{}",
        on_moto[0]
    );
}

/// botocore, the AWS SDK for Python, parses every answer against the KMS service model.
const BOTOCORE_SCRIPT: &str = r#"
import sys, boto3
ep = sys.argv[1]
kw = dict(endpoint_url=ep, aws_access_key_id="admin", aws_secret_access_key="x")
east = boto3.client("kms", region_name="us-east-1", **kw)
k = east.create_key(MultiRegion=True, Description="botocore", Tags=[{"TagKey": "team", "TagValue": "x"}])["KeyMetadata"]
assert k["MultiRegionConfiguration"]["MultiRegionKeyType"] == "PRIMARY", k
assert k["CreationDate"].year >= 2024, k
east.create_alias(AliasName="alias/botocore", TargetKeyId=k["KeyId"])
r = east.replicate_key(KeyId=k["KeyId"], ReplicaRegion="eu-west-1", Description="botocore")
assert r["ReplicaKeyMetadata"]["MultiRegionConfiguration"]["PrimaryKey"]["Region"] == "us-east-1", r
west = boto3.client("kms", region_name="eu-west-1", **kw)
d = west.describe_key(KeyId=k["Arn"].replace("us-east-1", "eu-west-1"))["KeyMetadata"]
assert d["MultiRegionConfiguration"]["MultiRegionKeyType"] == "REPLICA", d
keys = [x["KeyId"] for p in east.get_paginator("list_keys").paginate(Limit=1) for x in p["Keys"]]
east.create_key()
keys = [x["KeyId"] for p in east.get_paginator("list_keys").paginate(Limit=1) for x in p["Keys"]]
assert len(keys) == 2, keys
s = east.schedule_key_deletion(KeyId=k["KeyId"], PendingWindowInDays=7)
assert s["KeyState"] == "PendingReplicaDeletion", s
try:
    east.describe_key(KeyId="alias/none")
    raise SystemExit("no error")
except east.exceptions.NotFoundException as e:
    assert "not found" in e.response["Error"]["Message"], e.response
events = boto3.client("events", region_name="us-east-1", **kw)
assert events.put_events(Entries=[{"Source": "s", "DetailType": "t", "Detail": "{}"}])["FailedEntryCount"] == 0
print("botocore: ok")
"#;

#[tokio::test]
async fn botocore_reads_every_twin_answer_against_the_kms_service_model() {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    let has_boto3 = python.is_file()
        && Command::new(&python)
            .args(["-c", "import boto3"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    if !has_boto3 {
        skip(".venv/bin/python with boto3 is absent");
        return;
    }
    let cloud = LocalCloud::builder().start().await.unwrap();
    let endpoint = cloud.endpoint().to_string();
    let out = tokio::process::Command::new(&python)
        .args(["-c", BOTOCORE_SCRIPT, &endpoint])
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .output()
        .await
        .expect("python runs");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("botocore: ok"));
}
