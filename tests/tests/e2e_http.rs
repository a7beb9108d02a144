//! End to end on one machine, with the real function binaries and the real AWS SDK: a person
//! calls KMS (the twin over HTTP) with the SDK; each write becomes its CloudTrail record, is
//! matched against the EventBridge rule read from `template.yaml`, and is delivered through a
//! local Lambda Runtime API to the unmodified `replicate` binary, which calls KMS and
//! EventBridge through `AWS_ENDPOINT_URL`. The replicator's own writes come back the same way
//! until the pipeline is quiet.
//!
//! The binaries are built first with `cargo build --workspace --bins` (a no-op when they are up
//! to date; set `KMS_E2E_SKIP_BUILD=1` to use what is in the target folder as it is).

use integration_tests::bins::{binary, root};
use integration_tests::{people_tags, primary_policy, PRIMARY_REGION};
use kms_replicator::model::{KeyState, MultiRegionKeyType};
use kms_replicator::policy::rewrite_policy;
use kms_replicator::Op;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use twin::{is_replicator, ADMIN_USER, FUNCTION_ROLES};
use twin_server::{client, LocalCloud, LocalCloudBuilder, ADMIN_ACCESS_KEY};

const SETTLE: Duration = Duration::from_secs(30);
const ALLOWED: &str = "us-east-1 us-west-2 eu-west-1";

/// The local cloud with the replicate function (and failover, when it is built), configured
/// as `template.yaml` deploys it: the replicator's own role in IGNORE_CALLER_ARNS.
async fn start(configure: impl FnOnce(LocalCloudBuilder) -> LocalCloudBuilder) -> LocalCloud {
    let replicate = binary("replicate").expect("target/<profile>/replicate was built");
    let mut b = LocalCloud::builder()
        .template(root().join("template.yaml"))
        .function("replicate", replicate)
        .env("ALLOWED_REGIONS", ALLOWED)
        .env("IGNORE_CALLER_ARNS", &FUNCTION_ROLES.join(" "))
        .retry_delay(Duration::from_millis(100))
        .timeout(Duration::from_secs(30));
    if let Some(f) = binary("failover") {
        b = b
            .function("failover", f)
            .function_env("failover", "FAILOVER_WAIT_SECONDS", "20");
    }
    configure(b).start().await.expect("local cloud starts")
}

/// Prints the functions' logs when a test fails.
struct LogsOnFailure<'a>(&'a LocalCloud);

impl Drop for LogsOnFailure<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for name in ["replicate", "failover", "reconcile"] {
                if let Some(f) = self.0.function(name) {
                    let log = std::fs::read_to_string(f.log_file()).unwrap_or_default();
                    let tail: Vec<&str> = log.lines().rev().take(40).collect();
                    eprintln!("---- last lines of the {name} function's log ----");
                    for l in tail.iter().rev() {
                        eprintln!("{l}");
                    }
                }
            }
            for i in self.0.invocations() {
                eprintln!("invocation: {}", i.to_json());
            }
        }
    }
}

async fn person(cloud: &LocalCloud, region: &str) -> aws_sdk_kms::Client {
    cloud.kms_client(ADMIN_ACCESS_KEY, region).await
}

fn sdk_tag(k: &str, v: &str) -> aws_sdk_kms::types::Tag {
    aws_sdk_kms::types::Tag::builder()
        .tag_key(k)
        .tag_value(v)
        .build()
        .expect("key and value")
}

/// A person's multi-Region primary in us-east-1: policy, description, a team tag, two aliases.
async fn create_primary(cloud: &LocalCloud) -> String {
    let kms = person(cloud, PRIMARY_REGION).await;
    let key = kms
        .create_key()
        .multi_region(true)
        .policy(primary_policy(twin::DEFAULT_ACCOUNT))
        .description("payments data key")
        .tags(sdk_tag("team", "payments"))
        .send()
        .await
        .expect("CreateKey")
        .key_metadata
        .expect("KeyMetadata")
        .key_id;
    for alias in ["alias/payments", "alias/payments-ledger"] {
        kms.create_alias()
            .alias_name(alias)
            .target_key_id(&key)
            .send()
            .await
            .expect("CreateAlias");
    }
    key
}

async fn tag(cloud: &LocalCloud, key: &str, regions: &str) {
    person(cloud, PRIMARY_REGION)
        .await
        .tag_resource()
        .key_id(key)
        .tags(sdk_tag("replicate-to", regions))
        .send()
        .await
        .expect("TagResource");
}

async fn settle(cloud: &LocalCloud) {
    cloud.settle(SETTLE).await.expect("the pipeline settles");
}

fn audit_types(cloud: &LocalCloud) -> Vec<String> {
    cloud
        .audit_entries()
        .iter()
        .map(|e| e["detail-type"].as_str().unwrap_or("").to_string())
        .collect()
}

/// The replica in `region` mirrors the primary: policy rewritten for the Region, aliases,
/// tags and description.
fn assert_mirrored(cloud: &LocalCloud, key: &str, region: &str) {
    let twin = cloud.twin();
    let primary = twin.key(PRIMARY_REGION, key).expect("primary");
    let replica = twin
        .key(region, key)
        .unwrap_or_else(|| panic!("no replica in {region}"));
    assert_eq!(replica.multi_region, Some(MultiRegionKeyType::Replica));
    assert_eq!(replica.primary_region, PRIMARY_REGION);
    let (expected, _) = rewrite_policy(&primary.policy, PRIMARY_REGION, region).unwrap();
    assert_eq!(replica.policy, expected, "policy in {region}");
    assert_eq!(
        people_tags(&replica.tags),
        people_tags(&primary.tags),
        "tags in {region}"
    );
    assert_eq!(replica.description, primary.description);
    let aliases: Vec<String> = twin
        .aliases(region)
        .into_iter()
        .filter(|(_, k)| k == key)
        .map(|(a, _)| a)
        .collect();
    let primary_aliases: Vec<String> = twin
        .aliases(PRIMARY_REGION)
        .into_iter()
        .filter(|(_, k)| k == key)
        .map(|(a, _)| a)
        .collect();
    // Every alias of the primary; aliases the primary no longer has are kept (never deleted).
    for a in &primary_aliases {
        assert!(aliases.contains(a), "{a} in {region}: {aliases:?}");
    }
}

#[tokio::test]
async fn tagging_a_key_creates_mirrored_replicas_through_cloudtrail_eventbridge_and_lambda() {
    let cloud = start(|b| b).await;
    let _logs = LogsOnFailure(&cloud);
    let key = create_primary(&cloud).await;
    tag(&cloud, &key, "us-west-2 eu-west-1").await;
    settle(&cloud).await;

    for region in ["us-west-2", "eu-west-1"] {
        assert_mirrored(&cloud, &key, region);
        let replica = cloud.twin().key(region, &key).unwrap();
        assert!(replica
            .policy
            .contains(&format!("s3.{region}.amazonaws.com")));
        assert!(!replica.policy.contains("us-east-1"));
    }
    // The person's TagResource reached the function through the template's rule.
    let routed = cloud.deliveries();
    let tag_event = routed
        .iter()
        .find(|d| d.event_name() == "TagResource" && d.caller() == ADMIN_USER)
        .expect("the TagResource record");
    assert_eq!(tag_event.matched, vec!["KmsApiCallRule".to_string()]);
    assert_eq!(tag_event.delivered_to, vec!["replicate".to_string()]);
    // The replicator's own writes came back too, and were skipped as configured.
    let own: Vec<_> = routed
        .iter()
        .filter(|d| is_replicator(&d.caller()) && !d.delivered_to.is_empty())
        .collect();
    assert!(
        own.len() >= 6,
        "ReplicateKey x2, CreateKey x2, CreateAlias x4: {}",
        own.len()
    );
    let invocations = cloud.invocations();
    assert!(invocations.iter().all(|i| i.result.is_ok()));
    let ignored = invocations
        .iter()
        .filter(|i| i.result.as_ref().unwrap()["action"] == "ignored")
        .count();
    assert!(ignored >= own.len());
    // Audit events went out with the real EventBridge SDK.
    let created = audit_types(&cloud)
        .iter()
        .filter(|t| *t == "Replica Created")
        .count();
    assert_eq!(created, 2);
    let entry = &cloud.audit_entries()[0];
    assert_eq!(entry["source"], "kms-replicator");
    assert_eq!(
        entry["detail"]["policyRewrites"].as_array().unwrap().len(),
        3
    );
    assert!(cloud.dead_letters().is_empty());
}

#[tokio::test]
async fn without_the_ignore_list_the_replicators_own_events_are_synced_and_settle_with_no_extra_write(
) {
    let cloud = start(|b| {
        b.env("IGNORE_CALLER_ARNS", "")
            .env("IGNORE_CALLER_ROLE_PATH", "")
    })
    .await;
    let _logs = LogsOnFailure(&cloud);
    let key = create_primary(&cloud).await;
    tag(&cloud, &key, "us-west-2 eu-west-1").await;
    settle(&cloud).await;

    let writes: Vec<Op> = cloud
        .twin()
        .calls()
        .iter()
        .filter(|c| is_replicator(&c.caller) && c.op.is_write())
        .map(|c| c.op)
        .collect();
    let count = |op: &str| writes.iter().filter(|w| **w == op).count();
    assert_eq!(count("ReplicateKey"), 2, "{writes:?}");
    assert_eq!(count("CreateAlias"), 4, "{writes:?}");
    assert_eq!(writes.len(), 6, "nothing else was written: {writes:?}");
    // Each of the replicator's own events was delivered and found nothing to do.
    let synced_in_sync = cloud
        .invocations()
        .iter()
        .filter(|i| FUNCTION_ROLES.iter().any(|r| i.trigger.contains(r)))
        .filter(|i| {
            i.result
                .as_ref()
                .is_ok_and(|r| r["action"] == "synced" && r["report"]["outcome"] == "in_sync")
        })
        .count();
    assert!(synced_in_sync >= 6, "{synced_in_sync}");
    assert_mirrored(&cloud, &key, "us-west-2");
    assert_mirrored(&cloud, &key, "eu-west-1");
}

#[tokio::test]
async fn events_run_concurrently_in_four_sandboxes_still_converge_with_one_replica_per_region() {
    let cloud = start(|b| b.env("IGNORE_CALLER_ARNS", "").concurrency(4)).await;
    let _logs = LogsOnFailure(&cloud);
    // Tagged at CreateKey: CreateKey, two CreateAlias and a TagResource all ask for the same
    // replicas, and four sandboxes sync them at the same time.
    let kms = person(&cloud, PRIMARY_REGION).await;
    let key = kms
        .create_key()
        .multi_region(true)
        .policy(primary_policy(twin::DEFAULT_ACCOUNT))
        .description("payments data key")
        .tags(sdk_tag("replicate-to", "us-west-2 eu-west-1"))
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    for alias in ["alias/payments", "alias/payments-ledger"] {
        kms.create_alias()
            .alias_name(alias)
            .target_key_id(&key)
            .send()
            .await
            .unwrap();
    }
    tag(&cloud, &key, "us-west-2 eu-west-1").await;
    settle(&cloud).await;
    assert_mirrored(&cloud, &key, "us-west-2");
    assert_mirrored(&cloud, &key, "eu-west-1");
    let f = cloud.function("replicate").unwrap();
    assert_eq!(f.starts(), 4, "four sandboxes");
    assert!(cloud.dead_letters().is_empty());
    let created = audit_types(&cloud)
        .iter()
        .filter(|t| *t == "Replica Created")
        .count();
    assert!(created >= 2, "{created}");
}

#[tokio::test]
async fn changes_to_the_primary_and_to_its_regions_are_mirrored() {
    let cloud = start(|b| {
        b.env("REMOVAL_POLICY", "ScheduleDeletion")
            .env("PENDING_WINDOW_DAYS", "7")
    })
    .await;
    let _logs = LogsOnFailure(&cloud);
    let key = create_primary(&cloud).await;
    tag(&cloud, &key, "us-west-2").await;
    settle(&cloud).await;

    let kms = person(&cloud, PRIMARY_REGION).await;
    let policy = primary_policy(twin::DEFAULT_ACCOUNT).replace("payments-app", "payments-app-v2");
    kms.put_key_policy()
        .key_id(&key)
        .policy(&policy)
        .send()
        .await
        .unwrap();
    kms.update_key_description()
        .key_id(&key)
        .description("payments data key v2")
        .send()
        .await
        .unwrap();
    kms.delete_alias()
        .alias_name("alias/payments-ledger")
        .send()
        .await
        .unwrap();
    kms.create_alias()
        .alias_name("alias/ledger")
        .target_key_id(&key)
        .send()
        .await
        .unwrap();
    settle(&cloud).await;
    assert_mirrored(&cloud, &key, "us-west-2");
    let west = cloud.twin().key("us-west-2", &key).unwrap();
    assert!(west.policy.contains("payments-app-v2"));
    assert_eq!(west.description, "payments data key v2");

    // Add eu-west-1, drop us-west-2: one replica appears, the other is scheduled for deletion.
    tag(&cloud, &key, "eu-west-1").await;
    settle(&cloud).await;
    assert_mirrored(&cloud, &key, "eu-west-1");
    assert_eq!(
        cloud.twin().key("us-west-2", &key).unwrap().state,
        KeyState::PendingDeletion
    );
    assert!(audit_types(&cloud).contains(&"Replica Scheduled For Deletion".to_string()));

    // Back again: restored (CancelKeyDeletion, EnableKey). EnableKey is not in the rule's
    // pattern, so its record is routed to no function.
    tag(&cloud, &key, "us-west-2 eu-west-1").await;
    settle(&cloud).await;
    assert_eq!(
        cloud.twin().key("us-west-2", &key).unwrap().state,
        KeyState::Enabled
    );
    assert_mirrored(&cloud, &key, "us-west-2");
    let enable = cloud
        .deliveries()
        .into_iter()
        .find(|d| d.event_name() == "EnableKey")
        .expect("the EnableKey record");
    assert!(enable.matched.is_empty() && enable.delivered_to.is_empty());
    assert!(cloud.dead_letters().is_empty());
}

#[tokio::test]
async fn a_single_region_key_is_reported_and_never_written() {
    let cloud = start(|b| b).await;
    let _logs = LogsOnFailure(&cloud);
    let kms = person(&cloud, PRIMARY_REGION).await;
    let key = kms
        .create_key()
        .description("single-Region")
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    tag(&cloud, &key, "us-west-2").await;
    settle(&cloud).await;
    let tag_invocation = cloud
        .invocations()
        .into_iter()
        .find(|i| i.trigger.starts_with("TagResource"))
        .expect("the TagResource event was delivered");
    let out = tag_invocation
        .result
        .expect("a permanent outcome, not an error");
    assert_eq!(out["report"]["outcome"], "skipped", "{out}");
    assert!(out["report"]["reason"]
        .as_str()
        .unwrap()
        .contains("single-Region"));
    assert!(cloud.twin().key("us-west-2", &key).is_none());
    assert!(cloud
        .twin()
        .calls()
        .iter()
        .all(|c| !is_replicator(&c.caller) || c.region == PRIMARY_REGION));
}

#[tokio::test]
async fn a_disallowed_region_is_reported_and_never_written() {
    let cloud = start(|b| b).await;
    let _logs = LogsOnFailure(&cloud);
    let key = create_primary(&cloud).await;
    tag(&cloud, &key, "us-west-2 ap-south-1").await;
    settle(&cloud).await;
    assert_mirrored(&cloud, &key, "us-west-2");
    assert!(cloud.twin().key("ap-south-1", &key).is_none());
    assert!(cloud
        .twin()
        .calls()
        .iter()
        .all(|c| c.region != "ap-south-1"));
    let skipped: Vec<Value> = cloud
        .audit_entries()
        .into_iter()
        .filter(|e| e["detail-type"] == "Replication Skipped")
        .collect();
    // Every sync of the key reports it again (the person's CreateAlias events are delivered
    // after the tag is on the key).
    assert!(!skipped.is_empty());
    for s in &skipped {
        assert_eq!(s["detail"]["region"], "ap-south-1");
        assert!(s["detail"]["outcome"]["reason"]
            .as_str()
            .unwrap()
            .contains("ALLOWED_REGIONS"));
    }
}

#[tokio::test]
async fn a_malformed_event_fails_every_attempt_and_lands_in_the_dead_letter_queue() {
    let cloud = start(|b| b).await;
    let _logs = LogsOnFailure(&cloud);
    let invoke = "/2015-03-31/functions/replicate/invocations";
    // Synchronously, through Lambda's Invoke API: a function error.
    let r = client::request(
        cloud.endpoint(),
        "POST",
        invoke,
        &[],
        &json!({"hello": "world"}).to_string(),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-amz-function-error"), Some("Unhandled"));
    assert_eq!(r.json()["errorType"], "InvalidInput");
    // Asynchronously, as EventBridge invokes: retried as the template says, then kept.
    let r = client::request(
        cloud.endpoint(),
        "POST",
        invoke,
        &[("x-amz-invocation-type", "Event")],
        &json!({"source": "aws.kms", "detail-type": "AWS API Call via CloudTrail"}).to_string(),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 202);
    settle(&cloud).await;
    let dlq = cloud.dead_letters();
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0]["requestContext"]["condition"], "RetriesExhausted");
    assert_eq!(dlq[0]["requestContext"]["approximateInvokeCount"], 3);
    assert_eq!(dlq[0]["responsePayload"]["errorType"], "InvalidInput");
    let attempts = cloud
        .invocations()
        .iter()
        .filter(|i| i.kind == "Event")
        .count();
    assert_eq!(attempts, 3, "one attempt and MaximumRetryAttempts: 2");
}

#[tokio::test]
async fn a_region_that_does_not_answer_fails_the_invocation_and_lambdas_retry_completes_it() {
    let cloud = start(|b| {
        b.env("AWS_MAX_ATTEMPTS", "1")
            .retry_delay(Duration::from_millis(600))
    })
    .await;
    let _logs = LogsOnFailure(&cloud);
    let key = create_primary(&cloud).await;
    cloud.twin().set_region_down("eu-west-1", true);
    tag(&cloud, &key, "us-west-2 eu-west-1").await;
    let started = Instant::now();
    while !cloud.invocations().iter().any(|i| i.result.is_err()) {
        assert!(started.elapsed() < SETTLE, "no failed invocation");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cloud.twin().set_region_down("eu-west-1", false);
    settle(&cloud).await;
    let failed = cloud
        .invocations()
        .into_iter()
        .find(|i| i.result.is_err())
        .unwrap();
    let e = failed.result.unwrap_err();
    assert_eq!(e.error_type, "Retryable", "{e}");
    assert!(e.message.contains("eu-west-1"), "{e}");
    assert_mirrored(&cloud, &key, "us-west-2");
    assert_mirrored(&cloud, &key, "eu-west-1");
    assert!(cloud.dead_letters().is_empty());
    assert!(audit_types(&cloud).contains(&"Replication Failed".to_string()));
}

#[tokio::test]
async fn failover_promotes_a_replica_and_replication_continues_from_the_new_primary() {
    let Some(_) = binary("failover") else {
        eprintln!("SKIPPED: the failover binary is not built");
        return;
    };
    let cloud = start(|b| b).await;
    let _logs = LogsOnFailure(&cloud);
    cloud.twin().set_updating_for(Duration::from_millis(300));
    let key = create_primary(&cloud).await;
    tag(&cloud, &key, "us-west-2 eu-west-1").await;
    settle(&cloud).await;

    let dry = cloud
        .invoke(
            "failover",
            &json!({"key": "alias/payments", "to": "us-west-2", "dryRun": true}),
        )
        .await
        .expect("dry run");
    assert_eq!(dry["keys"][0]["outcome"], "dry_run_ok", "{dry}");
    assert!(
        cloud.twin().key(PRIMARY_REGION, &key).unwrap().multi_region
            == Some(MultiRegionKeyType::Primary)
    );

    let done = cloud
        .invoke(
            "failover",
            &json!({"key": "alias/payments", "to": "us-west-2"}),
        )
        .await
        .expect("failover");
    assert_eq!(done["keys"][0]["outcome"], "promoted", "{done}");
    settle(&cloud).await;
    let west = cloud.twin().key("us-west-2", &key).unwrap();
    assert_eq!(west.multi_region, Some(MultiRegionKeyType::Primary));
    assert_eq!(west.state, KeyState::Enabled);
    let east = cloud.twin().key(PRIMARY_REGION, &key).unwrap();
    assert_eq!(east.multi_region, Some(MultiRegionKeyType::Replica));
    assert!(audit_types(&cloud).contains(&"Primary Region Updated".to_string()));

    // A change at the new primary reaches every other Region.
    person(&cloud, "us-west-2")
        .await
        .update_key_description()
        .key_id(&key)
        .description("after failover")
        .send()
        .await
        .unwrap();
    settle(&cloud).await;
    for region in ["us-east-1", "eu-west-1"] {
        assert_eq!(
            cloud.twin().key(region, &key).unwrap().description,
            "after failover",
            "{region}"
        );
    }
    assert!(cloud.dead_letters().is_empty());
}

/// The functions' call bounds for the stall tests: 2 s per call, 1 s per attempt (the
/// variables `kms_replicator::aws::load_sdk_config` reads), so that a stalled Region costs
/// seconds, not the Lambda timeout.
fn short_call_timeouts(b: LocalCloudBuilder) -> LocalCloudBuilder {
    b.env("AWS_CALL_TIMEOUT_SECONDS", "2")
        .env("AWS_ATTEMPT_TIMEOUT_SECONDS", "1")
}

#[tokio::test]
async fn a_stalled_region_fails_alone_within_the_call_timeout_and_lambdas_retry_completes_it() {
    let cloud = start(|b| short_call_timeouts(b).retry_delay(Duration::from_millis(600))).await;
    let _logs = LogsOnFailure(&cloud);
    let key = create_primary(&cloud).await;
    // Not down: eu-west-1 accepts every request and never answers.
    cloud.twin().set_stall(Some("eu-west-1"), None, None);
    let tagged = Instant::now();
    tag(&cloud, &key, "us-west-2 eu-west-1").await;
    let failed = loop {
        if let Some(i) = cloud.invocations().into_iter().find(|i| i.result.is_err()) {
            break i;
        }
        assert!(tagged.elapsed() < SETTLE, "no failed invocation");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    // Bounded: the call timeout (2 s), not the Lambda timeout (30 s here, 60 s deployed).
    assert!(
        failed.duration < Duration::from_secs(8),
        "the stalled invocation took {:?}",
        failed.duration
    );
    let e = failed.result.clone().unwrap_err();
    assert_eq!(e.error_type, "Retryable", "{e}");
    assert!(e.message.contains("eu-west-1"), "{e}");
    assert!(e.message.contains("KMS in eu-west-1 did not answer"), "{e}");
    assert!(e.message.contains("within 2 s"), "{e}");
    // The healthy Region did not wait for the stalled one: fully mirrored already.
    assert_mirrored(&cloud, &key, "us-west-2");
    // ReplicateKey is called in the primary's Region, so the eu-west-1 replica may exist;
    // what eu-west-1 itself must do (its aliases) did not happen.
    assert!(cloud.twin().aliases("eu-west-1").is_empty());
    let failure = cloud
        .audit_entries()
        .into_iter()
        .find(|e| e["detail-type"] == "Replication Failed")
        .expect("a Replication Failed audit event");
    assert_eq!(failure["detail"]["region"], "eu-west-1", "{failure}");
    assert!(
        failure["detail"].to_string().contains("did not answer"),
        "{failure}"
    );
    let west_failures = cloud
        .audit_entries()
        .into_iter()
        .filter(|e| {
            e["detail-type"] == "Replication Failed" && e["detail"]["region"] == "us-west-2"
        })
        .count();
    assert_eq!(west_failures, 0, "us-west-2 did not fail");

    // The Region recovers; Lambda's retry completes it.
    cloud.twin().clear_stalls();
    settle(&cloud).await;
    assert_mirrored(&cloud, &key, "us-west-2");
    assert_mirrored(&cloud, &key, "eu-west-1");
    assert!(cloud.dead_letters().is_empty());
    assert!(
        cloud
            .invocations()
            .iter()
            .any(|i| i.trigger == failed.trigger && i.attempt > 0 && i.result.is_ok()),
        "Lambda retried the failed event and the retry succeeded"
    );
}

#[tokio::test]
async fn reconcile_sweeps_the_other_regions_while_one_regions_tag_index_is_stalled() {
    let reconcile = binary("reconcile").expect("target/<profile>/reconcile was built");
    // No template: nothing is routed to replicate, so only the sweep repairs.
    let cloud = short_call_timeouts(
        LocalCloud::builder()
            .function("reconcile", reconcile)
            .env("ALLOWED_REGIONS", ALLOWED)
            .timeout(Duration::from_secs(30)),
    )
    .start()
    .await
    .expect("local cloud starts");
    let _logs = LogsOnFailure(&cloud);
    // A primary in us-east-1 and one in eu-west-1, each tagged for us-west-2; no replica yet.
    let east = create_primary(&cloud).await;
    tag(&cloud, &east, "us-west-2").await;
    let eu = person(&cloud, "eu-west-1")
        .await
        .create_key()
        .multi_region(true)
        .tags(sdk_tag("replicate-to", "us-west-2"))
        .send()
        .await
        .expect("CreateKey in eu-west-1")
        .key_metadata()
        .unwrap()
        .key_id()
        .to_string();
    cloud
        .twin()
        .set_stall(Some("eu-west-1"), Some(Op::GetResources), None);

    let started = Instant::now();
    let answer = cloud.invoke("reconcile", &json!({})).await;
    let took = started.elapsed();

    // Bounded by the call timeout (2 s), not by the sweep's deadline.
    assert!(took < Duration::from_secs(10), "took {took:?}");
    // The sweep fails as retryable, so that the stalled Region shows (dead-letter queue,
    // errors metric); its answer is the plan of what was done elsewhere.
    let e = answer.expect_err("a stalled Region fails the sweep as retryable");
    assert_eq!(e.error_type, "Retryable", "{e}");
    assert!(
        e.message.contains("Applied: 3 change(s) to 1 key(s)"),
        "the other Regions were swept: {e}"
    );
    assert!(
        e.message.contains(
            "eu-west-1: keys not listed: GetResources TimeoutError: The Resource Groups \
             Tagging API in eu-west-1 did not answer GetResources within 2 s"
        ),
        "{e}"
    );
    assert_mirrored(&cloud, &east, "us-west-2");
    assert!(
        cloud.twin().key("us-west-2", &eu).is_none(),
        "not discovered"
    );

    // The next sweep, with the Region back, completes it.
    cloud.twin().clear_stalls();
    let sweep = cloud.invoke("reconcile", &json!({})).await.expect("sweep");
    assert_eq!(sweep["discoveryErrors"], json!([]), "{sweep}");
    assert_eq!(sweep["counts"]["repaired"], 1, "{sweep}");
    assert_eq!(sweep["counts"]["inSync"], 1, "{sweep}");
    assert!(cloud.twin().key("us-west-2", &eu).is_some());
}

/// A person's multi-Region primary in `region`, tagged for `targets`: two writes whose
/// CloudTrail events land on `region`'s default bus only.
async fn create_tagged_primary_in(cloud: &LocalCloud, region: &str, targets: &str) -> String {
    let kms = person(cloud, region).await;
    let key = kms
        .create_key()
        .multi_region(true)
        .policy(primary_policy(twin::DEFAULT_ACCOUNT))
        .description("ledger key made in another Region")
        .send()
        .await
        .expect("CreateKey")
        .key_metadata
        .expect("KeyMetadata")
        .key_id;
    kms.tag_resource()
        .key_id(&key)
        .tags(sdk_tag("replicate-to", targets))
        .send()
        .await
        .expect("TagResource");
    key
}

#[tokio::test]
async fn a_key_tagged_in_another_managed_region_is_replicated_through_the_forwarder() {
    // The home Region (the functions' Region) is us-east-1; forwarder.yaml runs in the others.
    let cloud = start(|b| b.forward_from(&["us-west-2", "eu-west-1"])).await;
    let _logs = LogsOnFailure(&cloud);
    let started = Instant::now();
    let key = create_tagged_primary_in(&cloud, "eu-west-1", "us-west-2").await;
    settle(&cloud).await;
    let elapsed = started.elapsed();

    let twin = cloud.twin();
    let primary = twin.key("eu-west-1", &key).expect("primary in eu-west-1");
    let replica = twin.key("us-west-2", &key).expect("a replica in us-west-2");
    assert_eq!(replica.multi_region, Some(MultiRegionKeyType::Replica));
    assert_eq!(replica.primary_region, "eu-west-1");
    let (expected, _) = rewrite_policy(&primary.policy, "eu-west-1", "us-west-2").unwrap();
    assert_eq!(replica.policy, expected);
    assert_eq!(replica.description, primary.description);
    assert!(
        elapsed < Duration::from_secs(10),
        "replicated within seconds: {elapsed:?}"
    );
    // The TagResource record went eu-west-1's bus -> the forwarder's rule -> the home bus ->
    // KmsApiCallRule -> replicate, with its own Region unchanged.
    let routed = cloud.deliveries();
    let tag_event = routed
        .iter()
        .find(|d| d.event_name() == "TagResource" && d.caller() == ADMIN_USER)
        .expect("the TagResource record");
    assert_eq!(tag_event.region(), "eu-west-1");
    assert_eq!(
        tag_event.forwarded_by.as_deref(),
        Some("KmsApiCallForwardRule@eu-west-1")
    );
    assert_eq!(tag_event.matched, vec!["KmsApiCallRule".to_string()]);
    assert_eq!(tag_event.delivered_to, vec!["replicate".to_string()]);
    // The replicator's writes in us-west-2 came back through that Region's forwarder too.
    assert!(routed.iter().any(|d| d.region() == "us-west-2"
        && is_replicator(&d.caller())
        && d.forwarded_by.as_deref() == Some("KmsApiCallForwardRule@us-west-2")));
    assert!(cloud.invocations().iter().all(|i| i.result.is_ok()));
    assert!(cloud.dead_letters().is_empty());
}

#[tokio::test]
async fn an_event_of_a_region_without_the_forwarder_reaches_no_rule() {
    // eu-west-1 runs no forwarder stack: its events stay on its own default bus.
    let cloud = start(|b| b.forward_from(&["us-west-2"])).await;
    let _logs = LogsOnFailure(&cloud);
    let key = create_tagged_primary_in(&cloud, "eu-west-1", "us-west-2").await;
    settle(&cloud).await;

    assert!(
        cloud.twin().key("us-west-2", &key).is_none(),
        "nothing replicated"
    );
    let routed = cloud.deliveries();
    assert_eq!(routed.len(), 2, "CreateKey and TagResource were recorded");
    for d in &routed {
        assert_eq!(d.region(), "eu-west-1");
        assert_eq!(d.forwarded_by, None, "{}", d.event_name());
        assert!(d.matched.is_empty() && d.delivered_to.is_empty());
    }
    assert!(cloud.invocations().is_empty());
    // The same calls in the home Region are delivered as before.
    let home = create_tagged_primary_in(&cloud, PRIMARY_REGION, "us-west-2").await;
    settle(&cloud).await;
    assert!(cloud.twin().key("us-west-2", &home).is_some());
}

/// GetParametersForImport, the material wrapped under its public key (what `openssl pkeyutl`
/// does for a person) and ImportKeyMaterial, all through the SDK in `region`.
async fn import_over_sdk(cloud: &LocalCloud, region: &str, key: &str, material: &[u8]) {
    use aws_sdk_kms::primitives::Blob;
    use aws_sdk_kms::types::{AlgorithmSpec, ExpirationModelType, WrappingKeySpec};
    let kms = person(cloud, region).await;
    let p = kms
        .get_parameters_for_import()
        .key_id(key)
        .wrapping_algorithm(AlgorithmSpec::RsaesOaepSha256)
        .wrapping_key_spec(WrappingKeySpec::Rsa2048)
        .send()
        .await
        .expect("GetParametersForImport");
    let public_key = p.public_key().expect("PublicKey").as_ref();
    let wrapped = twin::wrap_for_import(public_key, "RSAES_OAEP_SHA_256", material).unwrap();
    kms.import_key_material()
        .key_id(key)
        .import_token(p.import_token().expect("ImportToken").clone())
        .encrypted_key_material(Blob::new(wrapped))
        .expiration_model(ExpirationModelType::KeyMaterialDoesNotExpire)
        .send()
        .await
        .expect("ImportKeyMaterial");
}

#[tokio::test]
async fn an_imported_material_key_replicates_pending_import_is_explained_and_decrypts_once_imported(
) {
    use aws_sdk_kms::primitives::Blob;
    let cloud = start(|b| b).await;
    let _logs = LogsOnFailure(&cloud);
    let east = person(&cloud, PRIMARY_REGION).await;
    let material = [9u8; 32];
    let key = east
        .create_key()
        .multi_region(true)
        .origin(aws_sdk_kms::types::OriginType::External)
        .policy(primary_policy(twin::DEFAULT_ACCOUNT))
        .description("backups")
        .send()
        .await
        .expect("CreateKey")
        .key_metadata
        .expect("KeyMetadata")
        .key_id;
    import_over_sdk(&cloud, PRIMARY_REGION, &key, &material).await;
    tag(&cloud, &key, "us-west-2").await;
    settle(&cloud).await;

    let replica = cloud.twin().key("us-west-2", &key).expect("a replica");
    assert_eq!(replica.state, KeyState::PendingImport);
    assert_eq!(replica.description, "backups");
    assert!(cloud.dead_letters().is_empty(), "no retry loop");
    let conflicts: Vec<String> = cloud
        .audit_entries()
        .iter()
        .filter(|e| e["detail-type"] == "Replication Conflict")
        .flat_map(|e| {
            e["detail"]["conflicts"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|c| c.as_str().map(str::to_string))
        .collect();
    assert!(
        conflicts
            .iter()
            .any(|c| c.contains("us-west-2 is PendingImport") && c.contains("import-key-material")),
        "{conflicts:?}"
    );

    import_over_sdk(&cloud, "us-west-2", &key, &material).await;
    let west = person(&cloud, "us-west-2").await;
    let sealed = east
        .encrypt()
        .key_id(&key)
        .plaintext(Blob::new("nightly backup key"))
        .send()
        .await
        .expect("Encrypt in us-east-1");
    let opened = west
        .decrypt()
        .ciphertext_blob(sealed.ciphertext_blob().unwrap().clone())
        .send()
        .await
        .expect("Decrypt with the replica in us-west-2");
    assert_eq!(opened.plaintext().unwrap().as_ref(), b"nightly backup key");
    settle(&cloud).await;
    assert!(cloud.dead_letters().is_empty());
}
