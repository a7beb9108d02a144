//! The in-memory KMS twin behaves as AWS documents multi-Region keys (the KMS Developer Guide and
//! the KMS API Reference): these tests pin that behaviour, since every end-to-end test relies on it.

use kms_replicator::model::{KeyState, MultiRegionKeyType, Tag};
use kms_replicator::port::{ErrorKind, Kms, ReplicaSpec};
use kms_replicator::Op;
use std::time::Duration;
use twin::{Twin, ADMIN_USER, OPERATOR_ROLE};

fn spec() -> ReplicaSpec {
    ReplicaSpec::default()
}

#[tokio::test]
async fn replicate_key_without_a_policy_gives_the_default_policy_and_nothing_else() {
    let twin = Twin::new().with_caller(OPERATOR_ROLE);
    let key = twin.create_key(
        "us-east-1",
        true,
        Some(&twin.default_policy().replace("key-default-1", "custom")),
        "primary",
        &[Tag::new("a", "b")],
    );
    let replica = twin
        .replicate_key("us-east-1", &key.key_id, "eu-west-1", &spec())
        .await
        .unwrap();
    assert_eq!(replica.key_id, key.key_id, "replicas share the key id");
    assert_eq!(replica.arn, key.arn.replace("us-east-1", "eu-west-1"));
    let stored = twin.key("eu-west-1", &key.key_id).unwrap();
    assert_eq!(stored.policy, twin.default_policy());
    assert!(stored.tags.is_empty());
    assert_eq!(stored.description, "");
}

#[tokio::test]
async fn a_new_replica_is_creating_then_enabled() {
    let twin = Twin::new().with_caller(OPERATOR_ROLE);
    twin.set_creating_for(Duration::from_millis(50));
    let key = twin.create_key("us-east-1", true, None, "", &[]);
    let replica = twin
        .replicate_key("us-east-1", &key.key_id, "eu-west-1", &spec())
        .await
        .unwrap();
    assert_eq!(replica.state, KeyState::Creating);
    assert_eq!(
        twin.describe_key("eu-west-1", &key.key_id)
            .await
            .unwrap()
            .state,
        KeyState::Creating
    );
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(
        twin.describe_key("eu-west-1", &key.key_id)
            .await
            .unwrap()
            .state,
        KeyState::Enabled
    );
}

#[tokio::test]
async fn the_primary_lists_its_replicas_and_a_replica_names_its_primary() {
    let twin = Twin::new().with_caller(OPERATOR_ROLE);
    let key = twin.create_key("us-east-1", true, None, "", &[]);
    twin.replicate_key("us-east-1", &key.key_id, "eu-west-1", &spec())
        .await
        .unwrap();
    let primary = twin.describe_key("us-east-1", &key.key_id).await.unwrap();
    let mr = primary.multi_region.unwrap();
    assert_eq!(mr.key_type, MultiRegionKeyType::Primary);
    assert_eq!(mr.replica_regions, vec!["eu-west-1"]);
    let replica = twin
        .describe_key("eu-west-1", &key.arn.replace("us-east-1", "eu-west-1"))
        .await
        .unwrap();
    let mr = replica.multi_region.unwrap();
    assert_eq!(mr.key_type, MultiRegionKeyType::Replica);
    assert_eq!(mr.primary_region, "us-east-1");
}

#[tokio::test]
async fn replicating_twice_into_a_region_is_already_exists() {
    let twin = Twin::new().with_caller(OPERATOR_ROLE);
    let key = twin.create_key("us-east-1", true, None, "", &[]);
    twin.replicate_key("us-east-1", &key.key_id, "eu-west-1", &spec())
        .await
        .unwrap();
    let e = twin
        .replicate_key("us-east-1", &key.key_id, "eu-west-1", &spec())
        .await
        .unwrap_err();
    assert_eq!(
        (e.kind, e.code.as_str()),
        (ErrorKind::AlreadyExists, "AlreadyExistsException")
    );
}

#[tokio::test]
async fn replicas_and_single_region_keys_cannot_be_replicated() {
    let twin = Twin::new().with_caller(OPERATOR_ROLE);
    let key = twin.create_key("us-east-1", true, None, "", &[]);
    twin.replicate_key("us-east-1", &key.key_id, "eu-west-1", &spec())
        .await
        .unwrap();
    let e = twin
        .replicate_key("eu-west-1", &key.key_id, "us-west-2", &spec())
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::UnsupportedOperation);
    assert!(e.message.contains("is not a multi-Region primary key"));
    let single = twin.create_key("us-east-1", false, None, "", &[]);
    let e = twin
        .replicate_key("us-east-1", &single.key_id, "us-west-2", &spec())
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::UnsupportedOperation);
}

#[tokio::test]
async fn policy_aliases_tags_and_description_are_independent_per_region() {
    let twin = Twin::new().with_caller(OPERATOR_ROLE);
    let key = twin.create_key("us-east-1", true, None, "primary", &[]);
    twin.replicate_key("us-east-1", &key.key_id, "eu-west-1", &spec())
        .await
        .unwrap();
    twin.update_key_description("us-east-1", &key.key_id, "changed")
        .await
        .unwrap();
    twin.tag_resource("us-east-1", &key.key_id, &[Tag::new("x", "y")])
        .await
        .unwrap();
    twin.create_alias("us-east-1", "alias/app", &key.key_id)
        .await
        .unwrap();
    let replica = twin.key("eu-west-1", &key.key_id).unwrap();
    assert_eq!(replica.description, "");
    assert!(replica.tags.is_empty());
    assert!(twin.aliases("eu-west-1").is_empty());
}

#[tokio::test]
async fn alias_names_are_unique_per_region_but_may_repeat_across_regions() {
    let twin = Twin::new().with_caller(OPERATOR_ROLE);
    let a = twin.create_key("us-east-1", false, None, "", &[]);
    let b = twin.create_key("us-east-1", false, None, "", &[]);
    let c = twin.create_key("eu-west-1", false, None, "", &[]);
    twin.create_alias("us-east-1", "alias/app", &a.key_id)
        .await
        .unwrap();
    let e = twin
        .create_alias("us-east-1", "alias/app", &b.key_id)
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::AlreadyExists);
    twin.create_alias("eu-west-1", "alias/app", &c.key_id)
        .await
        .unwrap();
    let via_alias = twin.describe_key("us-east-1", "alias/app").await.unwrap();
    assert_eq!(via_alias.key_id, a.key_id);
    let e = twin
        .create_alias("us-east-1", "alias/aws/s3", &b.key_id)
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Other);
}

#[tokio::test]
async fn deleting_a_primary_with_replicas_waits_for_them_and_cancel_leaves_it_disabled() {
    let twin = Twin::new().with_caller(OPERATOR_ROLE);
    let key = twin.create_key("us-east-1", true, None, "", &[]);
    twin.replicate_key("us-east-1", &key.key_id, "eu-west-1", &spec())
        .await
        .unwrap();
    twin.schedule_key_deletion("us-east-1", &key.key_id, 7)
        .await
        .unwrap();
    assert_eq!(
        twin.key("us-east-1", &key.key_id).unwrap().state,
        KeyState::PendingReplicaDeletion
    );
    let e = twin
        .tag_resource("us-east-1", &key.key_id, &[Tag::new("a", "b")])
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidState);
    twin.cancel_key_deletion("us-east-1", &key.key_id)
        .await
        .unwrap();
    assert_eq!(
        twin.key("us-east-1", &key.key_id).unwrap().state,
        KeyState::Disabled
    );
    twin.enable_key("us-east-1", &key.key_id).await.unwrap();
    assert_eq!(
        twin.key("us-east-1", &key.key_id).unwrap().state,
        KeyState::Enabled
    );
    let e = twin
        .schedule_key_deletion("eu-west-1", &key.key_id, 3)
        .await
        .unwrap_err();
    assert_eq!(e.code, "ValidationException");
}

#[tokio::test]
async fn a_disabled_primary_cannot_be_replicated() {
    let twin = Twin::new().with_caller(OPERATOR_ROLE);
    let key = twin.create_key("us-east-1", true, None, "", &[]);
    twin.set_state("us-east-1", &key.key_id, KeyState::Disabled);
    let e = twin
        .replicate_key("us-east-1", &key.key_id, "eu-west-1", &spec())
        .await
        .unwrap_err();
    assert_eq!(
        (e.kind, e.code.as_str()),
        (ErrorKind::Disabled, "DisabledException")
    );
}

#[tokio::test]
async fn the_lockout_safety_check_refuses_policies_that_shut_the_caller_out() {
    let twin = Twin::new().with_caller(OPERATOR_ROLE);
    let key = twin.create_key("us-east-1", true, None, "", &[]);
    let only_alice = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{ADMIN_USER}"}},"Action":"kms:*","Resource":"*"}}]}}"#
    );
    let e = twin
        .put_key_policy("us-east-1", &key.key_id, &only_alice)
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::MalformedPolicy);
    // The same policy naming the caller's role is accepted.
    let with_role = only_alice.replace(ADMIN_USER, OPERATOR_ROLE);
    twin.put_key_policy("us-east-1", &key.key_id, &with_role)
        .await
        .unwrap();
    let e = twin
        .put_key_policy("us-east-1", &key.key_id, "not json")
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::MalformedPolicy);
}

#[tokio::test]
async fn replicate_key_is_logged_in_the_primary_region_and_create_key_in_the_replica_region() {
    let twin = Twin::new().with_caller(OPERATOR_ROLE);
    let key = twin.create_key("us-east-1", true, None, "", &[]);
    twin.take_trail();
    twin.replicate_key("us-east-1", &key.key_id, "eu-west-1", &spec())
        .await
        .unwrap();
    let trail = twin.take_trail();
    assert_eq!(trail.len(), 2);
    assert_eq!(trail[0]["detail"]["eventName"], "ReplicateKey");
    assert_eq!(trail[0]["region"], "us-east-1");
    assert_eq!(
        trail[0]["detail"]["requestParameters"]["replicaRegion"],
        "eu-west-1"
    );
    assert_eq!(
        trail[0]["detail"]["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"],
        OPERATOR_ROLE
    );
    assert_eq!(trail[1]["detail"]["eventName"], "CreateKey");
    assert_eq!(trail[1]["region"], "eu-west-1");
    assert_eq!(
        trail[1]["detail"]["userIdentity"]["invokedBy"],
        "kms.amazonaws.com"
    );
    assert_eq!(
        trail[1]["detail"]["responseElements"]["keyMetadata"]["multiRegionConfiguration"]
            ["multiRegionKeyType"],
        "REPLICA"
    );
    for e in &trail {
        assert_eq!(e["source"], "aws.kms");
        assert_eq!(e["detail-type"], "AWS API Call via CloudTrail");
        assert_eq!(e["detail"]["eventSource"], "kms.amazonaws.com");
    }
}

#[tokio::test]
async fn faults_outages_and_rate_limits_are_injectable() {
    let twin = Twin::new().with_caller(OPERATOR_ROLE);
    let key = twin.create_key("us-east-1", true, None, "", &[]);
    twin.inject_fault(
        Some("us-east-1"),
        Some(Op::GetKeyPolicy),
        "KMSInternalException",
        1,
    );
    let e = twin
        .get_key_policy("us-east-1", &key.key_id)
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Internal);
    twin.get_key_policy("us-east-1", &key.key_id).await.unwrap();

    twin.set_region_down("us-east-1", true);
    let e = twin
        .describe_key("us-east-1", &key.key_id)
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unreachable);
    twin.set_region_down("us-east-1", false);

    twin.set_rate_limit(Op::DescribeKey, 2);
    let mut throttled = 0;
    for _ in 0..5 {
        if twin.describe_key("us-east-1", &key.key_id).await.is_err() {
            throttled += 1;
        }
    }
    assert_eq!(throttled, 3);
    assert_eq!(twin.throttled_count(), 3);
}

#[tokio::test]
async fn a_policy_over_32768_bytes_fails_validation_as_kms_length_constraint_does() {
    let twin = Twin::new().with_caller(OPERATOR_ROLE);
    let key = twin.create_key("us-east-1", true, None, "", &[]);
    let pad = "x".repeat(kms_replicator::policy::MAX_POLICY_BYTES);
    let big = twin
        .default_policy()
        .replace("key-default-1", &format!("key-default-1-{pad}"));
    let put = twin
        .put_key_policy("us-east-1", &key.key_id, &big)
        .await
        .unwrap_err();
    assert_eq!(put.code, "ValidationException");
    let replicate = twin
        .replicate_key(
            "us-east-1",
            &key.key_id,
            "eu-west-1",
            &ReplicaSpec {
                policy: Some(big),
                ..spec()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(replicate.code, "ValidationException");
    assert!(twin.key("eu-west-1", &key.key_id).is_none());
}

#[tokio::test]
async fn a_persons_disable_key_is_recorded_with_who_made_it_and_only_enable_key_undoes_it() {
    let twin = Twin::new().with_caller(OPERATOR_ROLE);
    let key = twin.create_key("us-east-1", true, None, "", &[]);
    twin.take_trail();
    let admin = twin.with_caller(ADMIN_USER);
    admin.disable_key("us-east-1", &key.key_id).unwrap();
    assert_eq!(
        twin.key("us-east-1", &key.key_id).unwrap().state,
        KeyState::Disabled
    );
    let trail = twin.take_trail();
    assert_eq!(trail.len(), 1);
    assert_eq!(trail[0]["detail"]["eventName"], "DisableKey");
    assert_eq!(
        trail[0]["detail"]["userIdentity"]["arn"].as_str(),
        Some(ADMIN_USER)
    );
    twin.enable_key("us-east-1", &key.key_id).await.unwrap();
    let trail = twin.take_trail();
    // A role's call names the role as the session's issuer.
    assert_eq!(
        trail[0]["detail"]["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"].as_str(),
        Some(OPERATOR_ROLE)
    );
    assert_eq!(
        twin.key("us-east-1", &key.key_id).unwrap().state,
        KeyState::Enabled
    );
}
