//! `Consent=key-policy` on the twin with authorization on (docs/security-model.md): a key is
//! replicated only when its own policy grants the replicator's roles `kms:ReplicateKey`, only to
//! the Regions that statement lists, and KMS itself refuses an unconsented key, since the
//! template then gives the roles no IAM grant of ReplicateKey.

use integration_tests::{as_function, config, deliver_trail, seed_primary, PRIMARY_REGION};
use kms_replicator::config::Consent;
use kms_replicator::model::Tag;
use kms_replicator::port::{ErrorKind, ReplicaSpec};
use kms_replicator::report::Outcome;
use kms_replicator::{Config, Kms, Syncer};
use serde_json::{json, Value};
use std::time::Duration;
use twin::{Twin, ADMIN_USER, FUNCTION_ROLES, REPLICATE_ROLE};

const WEST: &str = "us-west-2";
const EU: &str = "eu-west-1";

fn key_policy_consent() -> Config {
    Config {
        consent: Consent::KeyPolicy,
        ..config()
    }
}

fn new_twin(cfg: &Config) -> Twin {
    let twin = Twin::new();
    twin.set_creating_for(Duration::ZERO);
    twin.set_updating_for(Duration::ZERO);
    twin.deploy(cfg);
    twin
}

/// The primary's policy with a statement granting the function roles `kms:ReplicateKey` into
/// `regions`.
fn with_consent(policy: &str, regions: &[&str]) -> String {
    let mut doc: Value = serde_json::from_str(policy).unwrap();
    doc["Statement"].as_array_mut().unwrap().push(json!({
        "Sid": "ConsentToKmsReplicator",
        "Effect": "Allow",
        "Principal": {"AWS": FUNCTION_ROLES},
        "Action": "kms:ReplicateKey",
        "Resource": "*",
        "Condition": {"StringEquals": {"kms:ReplicaRegion": regions}}
    }));
    doc.to_string()
}

async fn tag(twin: &Twin, key: &str, regions: &str) {
    twin.with_caller(ADMIN_USER)
        .tag_resource(PRIMARY_REGION, key, &[Tag::new("replicate-to", regions)])
        .await
        .unwrap();
}

#[tokio::test]
async fn a_tagged_key_whose_policy_does_not_consent_is_reported_and_never_replicated() {
    let cfg = key_policy_consent();
    let twin = new_twin(&cfg);
    let key = seed_primary(&twin).await;
    tag(&twin, &key, "us-west-2 eu-west-1").await;
    let (_, errors) = deliver_trail(&twin, &cfg).await;
    let report = Syncer::new(&as_function(&twin, &cfg, REPLICATE_ROLE), &cfg)
        .sync(PRIMARY_REGION, &key, false)
        .await;

    assert!(errors.is_empty(), "no retry: {errors:?}");
    assert!(twin.key(WEST, &key).is_none() && twin.key(EU, &key).is_none());
    let Outcome::Skipped { reason } = &report.outcome else {
        panic!("{report:?}");
    };
    assert!(reason.contains("does not grant the replicator's roles kms:ReplicateKey"));
    // The statement to add, ready to paste, names the Regions the tag asks for.
    let statement = &reason[reason.find('{').unwrap()..];
    let statement: Value = serde_json::from_str(statement).unwrap();
    assert_eq!(statement["Action"], "kms:ReplicateKey");
    assert_eq!(
        statement["Condition"]["StringEquals"]["kms:ReplicaRegion"],
        json!([WEST, EU])
    );
    assert!(twin
        .audit_events()
        .iter()
        .any(|e| e.detail_type == "Replication Skipped"));

    // KMS itself refuses: the role has no IAM grant of ReplicateKey in this deployment.
    let refused = as_function(&twin, &cfg, REPLICATE_ROLE)
        .replicate_key(PRIMARY_REGION, &key, WEST, &ReplicaSpec::default())
        .await
        .unwrap_err();
    assert_eq!(refused.kind, ErrorKind::AccessDenied, "{refused:?}");
}

#[tokio::test]
async fn replicas_go_only_to_the_regions_the_consent_statement_lists() {
    let cfg = key_policy_consent();
    let twin = new_twin(&cfg);
    let key = seed_primary(&twin).await;
    let admin = twin.with_caller(ADMIN_USER);
    let policy = twin.key(PRIMARY_REGION, &key).unwrap().policy;
    admin
        .put_key_policy(PRIMARY_REGION, &key, &with_consent(&policy, &[WEST]))
        .await
        .unwrap();
    tag(&twin, &key, "us-west-2 eu-west-1").await;
    let (_, errors) = deliver_trail(&twin, &cfg).await;
    let report = Syncer::new(&as_function(&twin, &cfg, REPLICATE_ROLE), &cfg)
        .sync(PRIMARY_REGION, &key, false)
        .await;

    assert!(errors.is_empty(), "{errors:?}");
    assert!(
        twin.key(WEST, &key).is_some(),
        "consented Region replicated"
    );
    assert!(twin.key(EU, &key).is_none(), "unconsented Region untouched");
    let eu = report.regions.iter().find(|r| r.region == EU).unwrap();
    let Outcome::Skipped { reason } = &eu.outcome else {
        panic!("{eu:?}");
    };
    assert!(reason.contains("does not consent to replication into eu-west-1"));
    // KMS enforces the same list.
    let refused = as_function(&twin, &cfg, REPLICATE_ROLE)
        .replicate_key(PRIMARY_REGION, &key, EU, &ReplicaSpec::default())
        .await
        .unwrap_err();
    assert_eq!(refused.kind, ErrorKind::AccessDenied, "{refused:?}");
}

#[tokio::test]
async fn a_withdrawn_consent_stops_every_write_to_the_replicas() {
    let cfg = key_policy_consent();
    let twin = new_twin(&cfg);
    let key = seed_primary(&twin).await;
    let admin = twin.with_caller(ADMIN_USER);
    let original = twin.key(PRIMARY_REGION, &key).unwrap().policy;
    admin
        .put_key_policy(PRIMARY_REGION, &key, &with_consent(&original, &[WEST]))
        .await
        .unwrap();
    tag(&twin, &key, WEST).await;
    deliver_trail(&twin, &cfg).await;
    let mirrored = twin.key(WEST, &key).unwrap().policy;
    assert!(mirrored.contains("ConsentToKmsReplicator"));

    // The owners withdraw consent (and change the policy otherwise): nothing reaches the replica.
    let withdrawn = original.replace("payments-app", "payments-app-v2");
    admin
        .put_key_policy(PRIMARY_REGION, &key, &withdrawn)
        .await
        .unwrap();
    admin
        .update_key_description(PRIMARY_REGION, &key, "v2")
        .await
        .unwrap();
    let (_, errors) = deliver_trail(&twin, &cfg).await;

    assert!(errors.is_empty(), "{errors:?}");
    let west = twin.key(WEST, &key).unwrap();
    assert_eq!(west.policy, mirrored);
    assert_eq!(west.description, "payments data key");
}
