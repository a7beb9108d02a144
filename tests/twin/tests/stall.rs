//! A stalled Regional endpoint: the twin accepts a call (it is recorded) and answers late or
//! never, per Region and operation, without holding up any other call.

use kms_replicator::model::Tag;
use kms_replicator::port::{ErrorKind, Kms, ReplicaSpec, TagIndex};
use kms_replicator::Op;
use std::time::{Duration, Instant};
use tokio::time::timeout;
use twin::{Twin, OPERATOR_ROLE};

const EAST: &str = "us-east-1";
const WEST: &str = "us-west-2";
const EU: &str = "eu-west-1";

/// A primary in us-east-1 with replicas in us-west-2 and eu-west-1, tagged for both.
async fn key(twin: &Twin) -> String {
    let tags = [Tag::new("replicate-to", "us-west-2 eu-west-1")];
    let key = twin.create_key(EAST, true, None, "k", &tags);
    for region in [WEST, EU] {
        let spec = ReplicaSpec {
            tags: tags.to_vec(),
            ..ReplicaSpec::default()
        };
        twin.replicate_key(EAST, &key.key_id, region, &spec)
            .await
            .unwrap();
    }
    twin.reset_calls();
    key.key_id
}

#[tokio::test]
async fn a_stalled_region_records_the_call_and_never_answers_while_other_regions_answer() {
    let twin = Twin::new().with_caller(OPERATOR_ROLE);
    let id = key(&twin).await;
    twin.set_stall(Some(EU), None, None);

    let stalled = {
        let twin = twin.clone();
        let id = id.clone();
        tokio::spawn(async move { twin.describe_key(EU, &id).await })
    };
    // Meanwhile every other Region answers at once: the state is not locked by the wait.
    for region in [EAST, WEST] {
        let answered = timeout(Duration::from_millis(500), twin.describe_key(region, &id)).await;
        assert!(answered.expect("answers at once").is_ok(), "{region}");
    }
    assert!(
        timeout(Duration::from_millis(300), twin.get_key_policy(EU, &id))
            .await
            .is_err()
    );
    assert!(!stalled.is_finished(), "never answered");
    // Both calls were accepted and recorded (in whatever order the tasks ran).
    let mut eu_calls: Vec<&str> = twin
        .calls()
        .iter()
        .filter(|c| c.region == EU)
        .map(|c| c.op.name())
        .collect();
    eu_calls.sort();
    assert_eq!(eu_calls, ["DescribeKey", "GetKeyPolicy"]);

    // Cleared: the call that waited fails without effect; later calls are answered.
    twin.clear_stall(Some(EU), None);
    let e = timeout(Duration::from_secs(1), stalled)
        .await
        .expect("released")
        .unwrap()
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unreachable);
    assert_eq!(e.region, EU);
    assert!(twin.describe_key(EU, &id).await.is_ok());
}

#[tokio::test]
async fn a_stall_can_be_limited_to_one_operation() {
    let twin = Twin::new().with_caller(OPERATOR_ROLE);
    let id = key(&twin).await;
    twin.set_stall(Some(EU), Some(Op::PutKeyPolicy), None);

    assert!(twin.describe_key(EU, &id).await.is_ok());
    assert!(twin.get_key_policy(EU, &id).await.is_ok());
    let policy = twin.default_policy();
    assert!(timeout(
        Duration::from_millis(300),
        twin.put_key_policy(EU, &id, &policy)
    )
    .await
    .is_err());
    // Any Region, one operation.
    twin.clear_stalls();
    twin.set_stall(None, Some(Op::GetResources), None);
    assert!(timeout(
        Duration::from_millis(300),
        twin.tagged_keys(WEST, "replicate-to")
    )
    .await
    .is_err());
    assert!(twin.describe_key(WEST, &id).await.is_ok());
}

#[tokio::test]
async fn a_delayed_stall_answers_late_and_a_write_is_still_applied() {
    let twin = Twin::new().with_caller(OPERATOR_ROLE);
    let id = key(&twin).await;
    twin.set_stall(Some(EU), None, Some(Duration::from_millis(300)));

    let started = Instant::now();
    twin.update_key_description(EU, &id, "late").await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(twin.key(EU, &id).unwrap().description, "late");

    // A caller that gives up first leaves the write undone (the future is dropped).
    let gave_up = timeout(
        Duration::from_millis(100),
        twin.update_key_description(EU, &id, "abandoned"),
    )
    .await;
    assert!(gave_up.is_err());
    assert_eq!(twin.key(EU, &id).unwrap().description, "late");

    // The other Regions are not slowed down.
    let started = Instant::now();
    twin.describe_key(WEST, &id).await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(100));
}

#[tokio::test]
async fn the_tag_index_of_a_stalled_region_stalls_and_a_new_stall_replaces_the_old_one() {
    let twin = Twin::new().with_caller(OPERATOR_ROLE);
    key(&twin).await;
    twin.set_stall(Some(EAST), Some(Op::GetResources), None);
    assert!(timeout(
        Duration::from_millis(300),
        twin.tagged_keys(EAST, "replicate-to")
    )
    .await
    .is_err());
    assert_eq!(
        twin.tagged_keys(WEST, "replicate-to").await.unwrap().len(),
        1
    );

    // Same Region and operation: the delay replaces "never".
    twin.set_stall(
        Some(EAST),
        Some(Op::GetResources),
        Some(Duration::from_millis(50)),
    );
    let keys = timeout(
        Duration::from_secs(1),
        twin.tagged_keys(EAST, "replicate-to"),
    )
    .await
    .expect("answers after the delay")
    .unwrap();
    assert_eq!(keys.len(), 1);
}
