//! The safety invariants (docs/safety.md), each shown on the history that broke it: ordinary
//! actions by people, then every event they and the replicator cause, delivered to the real
//! replicate handler on the in-memory KMS twin.

use integration_tests::{
    config, deleting, deliver_trail, new_twin, primary_policy, seed_primary, CallHook, HookedKms,
    PRIMARY_REGION,
};
use kms_replicator::config::PolicyMode;
use kms_replicator::desired::DELETION_MARKER_TAG;
use kms_replicator::model::{KeyState, Tag};
use kms_replicator::policy::{rewrite_policy, same_policy, MAX_POLICY_BYTES};
use kms_replicator::port::ReplicaSpec;
use kms_replicator::{Config, Kms, Syncer};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::Notify;
use twin::{Twin, ADMIN_USER, TEAM_B_ROLE};

const WEST: &str = "us-west-2";
const EU: &str = "eu-west-1";

/// Delivers every event to the replicate handler until none is left. Retryable failures are
/// Lambda errors: these tests look at the state, not at them.
async fn settle(twin: &Twin, cfg: &Config) {
    deliver_trail(twin, cfg).await;
}

async fn tagged_key(twin: &Twin, cfg: &Config, regions: &str) -> String {
    let key = seed_primary(twin).await;
    let admin = twin.with_caller(ADMIN_USER);
    admin
        .tag_resource(PRIMARY_REGION, &key, &[Tag::new("replicate-to", regions)])
        .await
        .unwrap();
    settle(twin, cfg).await;
    key
}

fn audit_types(twin: &Twin) -> Vec<String> {
    twin.audit_events()
        .into_iter()
        .map(|e| e.detail_type)
        .collect()
}

fn statement<'a>(policy: &'a Value, sid: &str) -> &'a Value {
    policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Sid"] == sid)
        .unwrap_or_else(|| panic!("statement {sid}"))
}

fn policy_of(twin: &Twin, region: &str, key: &str) -> Value {
    serde_json::from_str(&twin.key(region, key).unwrap().policy).unwrap()
}

// ---- I1: a former primary is never deleted, and stays managed ----------------------------

#[tokio::test]
async fn a_primary_region_change_made_by_hand_keeps_the_former_primary_alive_and_managed() {
    for cfg in [config(), deleting()] {
        let twin = new_twin();
        let key = tagged_key(&twin, &cfg, "us-west-2 eu-west-1").await;
        let admin = twin.with_caller(ADMIN_USER);

        // A person promotes us-west-2 with the CLI, then edits the key at its new primary.
        admin
            .update_primary_region(PRIMARY_REGION, &key, WEST)
            .await
            .unwrap();
        admin
            .update_key_description(WEST, &key, "payments data key v2")
            .await
            .unwrap();
        settle(&twin, &cfg).await;

        let old = twin.key(PRIMARY_REGION, &key).unwrap();
        assert_eq!(old.state, KeyState::Enabled, "{:?}", cfg.removal);
        assert_eq!(old.description, "payments data key v2", "still managed");
        assert_eq!(
            twin.key(EU, &key).unwrap().description,
            "payments data key v2"
        );
    }
}

#[tokio::test]
async fn removing_the_former_primarys_region_from_the_tag_never_deletes_it() {
    let twin = new_twin();
    let cfg = deleting();
    let key = tagged_key(&twin, &cfg, "us-west-2 eu-west-1").await;
    let admin = twin.with_caller(ADMIN_USER);
    admin
        .update_primary_region(PRIMARY_REGION, &key, WEST)
        .await
        .unwrap();
    // The tag (mirrored to the new primary) now lists only eu-west-1.
    admin
        .tag_resource(WEST, &key, &[Tag::new("replicate-to", "eu-west-1")])
        .await
        .unwrap();
    settle(&twin, &cfg).await;
    assert_eq!(
        twin.key(PRIMARY_REGION, &key).unwrap().state,
        KeyState::Enabled
    );
    assert_eq!(twin.key(EU, &key).unwrap().state, KeyState::Enabled);
}

#[tokio::test]
async fn an_absent_or_empty_tag_deletes_nothing_even_with_schedule_deletion() {
    let cfg = deleting();
    for untag in [true, false] {
        let twin = new_twin();
        let key = tagged_key(&twin, &cfg, "us-west-2 eu-west-1").await;
        let admin = twin.with_caller(ADMIN_USER);
        if untag {
            admin
                .untag_resource(PRIMARY_REGION, &key, &["replicate-to".into()])
                .await
                .unwrap();
        } else {
            admin
                .tag_resource(PRIMARY_REGION, &key, &[Tag::new("replicate-to", " ")])
                .await
                .unwrap();
        }
        settle(&twin, &cfg).await;
        for region in [WEST, EU] {
            assert_eq!(twin.key(region, &key).unwrap().state, KeyState::Enabled);
        }
    }
}

// ---- I2: what a person did to a replica is respected ------------------------------------

#[tokio::test]
async fn a_deletion_a_person_scheduled_is_not_undone_and_is_reported_as_a_conflict() {
    let twin = new_twin();
    let cfg = deleting();
    let key = tagged_key(&twin, &cfg, "us-west-2 eu-west-1").await;
    let admin = twin.with_caller(ADMIN_USER);
    admin.disable_key(WEST, &key).unwrap();
    admin.schedule_key_deletion(WEST, &key, 7).await.unwrap();
    settle(&twin, &cfg).await;
    // A later change at the primary, and a full sync, still leave it alone.
    admin
        .update_key_description(PRIMARY_REGION, &key, "v2")
        .await
        .unwrap();
    settle(&twin, &cfg).await;
    let report = Syncer::new(&twin, &cfg)
        .sync(PRIMARY_REGION, &key, false)
        .await;

    assert_eq!(
        twin.key(WEST, &key).unwrap().state,
        KeyState::PendingDeletion
    );
    assert_eq!(twin.key(EU, &key).unwrap().description, "v2");
    let west = report.regions.iter().find(|r| r.region == WEST).unwrap();
    assert_eq!(west.conflicts.len(), 1, "{west:?}");
    assert!(west.actions.is_empty());
    assert!(audit_types(&twin).contains(&"Replication Conflict".to_string()));
    assert!(!twin
        .calls()
        .iter()
        .any(|c| c.op == "CancelKeyDeletion" || c.op == "EnableKey"));
}

#[tokio::test]
async fn a_key_a_person_disabled_stays_disabled_and_still_receives_policy_changes() {
    let twin = new_twin();
    let cfg = config();
    let key = tagged_key(&twin, &cfg, "us-west-2 eu-west-1").await;
    let admin = twin.with_caller(ADMIN_USER);
    admin.disable_key(EU, &key).unwrap();
    let revoked = primary_policy(&twin.account()).replace("payments-app", "payments-app-v2");
    admin
        .put_key_policy(PRIMARY_REGION, &key, &revoked)
        .await
        .unwrap();
    settle(&twin, &cfg).await;
    let eu = twin.key(EU, &key).unwrap();
    assert_eq!(eu.state, KeyState::Disabled);
    assert!(
        eu.policy.contains("payments-app-v2"),
        "the revocation reached it"
    );
    assert!(audit_types(&twin).contains(&"Replication Conflict".to_string()));
}

#[tokio::test]
async fn a_deletion_the_replicator_scheduled_carries_its_marker_and_is_restored_to_the_prior_state()
{
    let twin = new_twin();
    let cfg = deleting();
    let key = tagged_key(&twin, &cfg, "us-west-2 eu-west-1").await;
    let admin = twin.with_caller(ADMIN_USER);
    // A person had disabled eu-west-1 before its Region left the tag.
    admin.disable_key(EU, &key).unwrap();
    admin
        .tag_resource(
            PRIMARY_REGION,
            &key,
            &[Tag::new("replicate-to", "us-west-2")],
        )
        .await
        .unwrap();
    settle(&twin, &cfg).await;
    let eu = twin.key(EU, &key).unwrap();
    assert_eq!(eu.state, KeyState::PendingDeletion);
    assert!(eu.tags[DELETION_MARKER_TAG].starts_with("Disabled at="));

    admin
        .tag_resource(
            PRIMARY_REGION,
            &key,
            &[Tag::new("replicate-to", "us-west-2 eu-west-1")],
        )
        .await
        .unwrap();
    settle(&twin, &cfg).await;
    let eu = twin.key(EU, &key).unwrap();
    assert_eq!(eu.state, KeyState::Disabled, "restored, not revived");
    assert!(!eu.tags.contains_key(DELETION_MARKER_TAG));
}

// ---- I3: aliases ---------------------------------------------------------------------------

#[tokio::test]
async fn another_teams_alias_in_a_replica_region_is_never_taken() {
    let twin = new_twin();
    let cfg = config();
    let team_b = twin.with_caller(TEAM_B_ROLE);
    // Team B: an unmanaged multi-Region key with a replica and a Regional alias in us-west-2.
    let b = team_b.create_key(PRIMARY_REGION, true, None, "team b", &[]);
    team_b
        .replicate_key(PRIMARY_REGION, &b.key_id, WEST, &ReplicaSpec::default())
        .await
        .unwrap();
    team_b
        .create_alias(WEST, "alias/teamb-usw2", &b.key_id)
        .await
        .unwrap();
    // Someone else gives their own key that alias name in us-east-1 and tags it.
    let admin = twin.with_caller(ADMIN_USER);
    let a = admin.create_key(PRIMARY_REGION, true, None, "mine", &[]);
    admin
        .create_alias(PRIMARY_REGION, "alias/teamb-usw2", &a.key_id)
        .await
        .unwrap();
    admin
        .tag_resource(PRIMARY_REGION, &a.key_id, &[Tag::new("replicate-to", WEST)])
        .await
        .unwrap();
    settle(&twin, &cfg).await;

    assert_eq!(twin.aliases(WEST)["alias/teamb-usw2"], b.key_id);
    assert!(
        twin.key(WEST, &a.key_id).is_some(),
        "the replica itself is made"
    );
    let report = Syncer::new(&twin, &cfg)
        .sync(PRIMARY_REGION, &a.key_id, false)
        .await;
    let text = serde_json::to_string(&report).unwrap();
    assert!(text.contains("alias conflict"), "{text}");
    assert!(!twin.calls().iter().any(|c| c.op == "UpdateAlias"));
}

#[tokio::test]
async fn an_alias_made_by_hand_on_a_replica_is_kept_and_noted() {
    let twin = new_twin();
    let cfg = config();
    let key = tagged_key(&twin, &cfg, "us-west-2").await;
    let admin = twin.with_caller(ADMIN_USER);
    admin
        .create_alias(WEST, "alias/payments-usw2", &key)
        .await
        .unwrap();
    settle(&twin, &cfg).await;
    let report = Syncer::new(&twin, &cfg)
        .sync(PRIMARY_REGION, &key, false)
        .await;
    assert_eq!(twin.aliases(WEST)["alias/payments-usw2"], key);
    assert!(report.regions[0].notes[0].contains("alias/payments-usw2"));
    assert_eq!(report.write_count(), 0);
}

// ---- I4: policies KMS must accept ----------------------------------------------------------

#[tokio::test]
async fn a_compact_policy_near_the_size_limit_is_mirrored_compactly() {
    let twin = new_twin();
    let cfg = config();
    let account = twin.account();
    let mut stmts = vec![json!({"Sid": "Root", "Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{account}:root")}, "Action": "kms:*", "Resource": "*"})];
    stmts.extend((0..125).map(|i| {
        json!({"Sid": format!("App{i}"), "Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{account}:role/application-{i}")},
        "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": "*",
        "Condition": {"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}})
    }));
    let policy = json!({"Version": "2012-10-17", "Statement": stmts}).to_string();
    assert!(policy.len() > 25_000 && policy.len() < MAX_POLICY_BYTES);
    let admin = twin.with_caller(ADMIN_USER);
    let key = admin.create_key(
        PRIMARY_REGION,
        true,
        Some(&policy),
        "",
        &[Tag::new("replicate-to", WEST)],
    );
    settle(&twin, &cfg).await;
    let replica = twin.key(WEST, &key.key_id).expect("replica created");
    assert!(replica.policy.len() <= MAX_POLICY_BYTES);
    assert!(replica.policy.contains("s3.us-west-2.amazonaws.com"));
}

#[tokio::test]
async fn a_mirrored_policy_over_the_limit_is_reported_and_never_sent() {
    let twin = new_twin();
    let cfg = config();
    let account = twin.account();
    // A Deny keeps its source values and gains the target's: this one doubles past the limit.
    let arns: Vec<String> = (0..420)
        .map(|i| format!("arn:aws:lambda:us-east-1:{account}:function:f{i:05}"))
        .collect();
    let policy = json!({"Version": "2012-10-17", "Statement": [
        {"Sid": "Root", "Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{account}:root")},
         "Action": "kms:*", "Resource": "*"},
        {"Sid": "DenyMany", "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "kms:Decrypt",
         "Resource": "*", "Condition": {"StringEquals": {"kms:EncryptionContext:aws:lambda:FunctionArn": arns}}}
    ]})
    .to_string();
    assert!(policy.len() < MAX_POLICY_BYTES);
    let admin = twin.with_caller(ADMIN_USER);
    let key = admin.create_key(PRIMARY_REGION, true, Some(&policy), "", &[]);
    admin
        .tag_resource(
            PRIMARY_REGION,
            &key.key_id,
            &[Tag::new("replicate-to", WEST)],
        )
        .await
        .unwrap();
    twin.take_trail();
    let report = Syncer::new(&twin, &cfg)
        .sync(PRIMARY_REGION, &key.key_id, false)
        .await;
    let text = serde_json::to_string(&report).unwrap();
    assert!(text.contains("over KMS's limit"), "{text}");
    assert!(!report.is_retryable_failure(), "retrying cannot help");
    assert!(!twin.calls().iter().any(|c| c.op == "ReplicateKey"));
}

// ---- I5: never wider ----------------------------------------------------------------------

#[tokio::test]
async fn a_deny_on_the_primarys_encryption_context_still_denies_it_on_the_replica() {
    let twin = new_twin();
    let cfg = config();
    let account = twin.account();
    let east_fn = format!("arn:aws:lambda:us-east-1:{account}:function:exporter");
    let mut policy: Value = serde_json::from_str(&primary_policy(&account)).unwrap();
    policy["Statement"].as_array_mut().unwrap().push(json!({
        "Sid": "NoExporter", "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "kms:Decrypt",
        "Resource": "*",
        "Condition": {"StringEquals": {"kms:EncryptionContext:aws:lambda:FunctionArn": east_fn}}
    }));
    let admin = twin.with_caller(ADMIN_USER);
    let key = admin.create_key(
        PRIMARY_REGION,
        true,
        Some(&policy.to_string()),
        "",
        &[Tag::new("replicate-to", WEST)],
    );
    settle(&twin, &cfg).await;
    let west = policy_of(&twin, WEST, &key.key_id);
    let denied = &statement(&west, "NoExporter")["Condition"]["StringEquals"]
        ["kms:EncryptionContext:aws:lambda:FunctionArn"];
    assert_eq!(
        denied,
        &json!([
            east_fn,
            format!("arn:aws:lambda:us-west-2:{account}:function:exporter")
        ])
    );
}

#[tokio::test]
async fn a_failover_round_trip_gives_back_a_statement_that_names_both_regions() {
    let twin = new_twin();
    let cfg = config();
    let account = twin.account();
    let mut policy: Value = serde_json::from_str(&primary_policy(&account)).unwrap();
    policy["Statement"].as_array_mut().unwrap().push(json!({
        "Sid": "ViaS3BothRegions", "Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{account}:role/replication")},
        "Action": "kms:Decrypt", "Resource": "*",
        "Condition": {"StringEquals": {"kms:ViaService": ["s3.us-east-1.amazonaws.com", "s3.us-west-2.amazonaws.com"]}}
    }));
    let original = policy.to_string();
    let admin = twin.with_caller(ADMIN_USER);
    let key = admin.create_key(
        PRIMARY_REGION,
        true,
        Some(&original),
        "",
        &[Tag::new("replicate-to", WEST)],
    );
    settle(&twin, &cfg).await;
    admin
        .update_primary_region(PRIMARY_REGION, &key.key_id, WEST)
        .await
        .unwrap();
    settle(&twin, &cfg).await;
    admin
        .update_primary_region(WEST, &key.key_id, PRIMARY_REGION)
        .await
        .unwrap();
    settle(&twin, &cfg).await;
    let back = twin.key(PRIMARY_REGION, &key.key_id).unwrap().policy;
    assert!(same_policy(&back, &original), "{back}");
}

// ---- I6: the newest state wins ------------------------------------------------------------

/// A gate before the first write: the sync behind it stops there until the test opens the
/// gate, so another sync can overtake it.
struct Gate {
    paused: Notify,
    open: Notify,
    passed: AtomicBool,
}

#[async_trait::async_trait]
impl CallHook for Gate {
    async fn before(&self, _op: &'static str, write: bool) {
        if write && !self.passed.swap(true, Ordering::SeqCst) {
            self.paused.notify_one();
            self.open.notified().await;
        }
    }
}

#[tokio::test]
async fn a_sync_that_read_an_older_primary_never_has_the_last_word() {
    let twin = new_twin();
    let cfg = config();
    let key = tagged_key(&twin, &cfg, "us-west-2").await;
    let admin = twin.with_caller(ADMIN_USER);
    let account = twin.account();
    let v1 = primary_policy(&account).replace("payments-app", "payments-app-v1");
    let v2 = primary_policy(&account).replace("payments-app", "payments-app-v2");
    admin
        .put_key_policy(PRIMARY_REGION, &key, &v1)
        .await
        .unwrap();

    // Sync A reads v1 and stops before writing.
    let gated = Arc::new(HookedKms {
        inner: twin.clone(),
        hook: Gate {
            paused: Notify::new(),
            open: Notify::new(),
            passed: AtomicBool::new(false),
        },
    });
    let a = {
        let (gated, cfg, key) = (gated.clone(), cfg.clone(), key.clone());
        tokio::spawn(async move {
            Syncer::new(gated.as_ref(), &cfg)
                .sync(PRIMARY_REGION, &key, false)
                .await
        })
    };
    gated.hook.paused.notified().await;
    // Meanwhile a person revokes payments-app-v1, and sync B mirrors that at once.
    admin
        .put_key_policy(PRIMARY_REGION, &key, &v2)
        .await
        .unwrap();
    Syncer::new(&twin, &cfg)
        .sync(PRIMARY_REGION, &key, false)
        .await;
    assert!(twin
        .key(WEST, &key)
        .unwrap()
        .policy
        .contains("payments-app-v2"));
    // A now writes the v1 it read, then reads the primary again and corrects it.
    gated.hook.open.notify_one();
    let report = a.await.unwrap();

    let west = twin.key(WEST, &key).unwrap().policy;
    let (want, _) = rewrite_policy(&v2, PRIMARY_REGION, WEST).unwrap();
    assert!(same_policy(&west, &want), "{west}");
    assert!(!west.contains("payments-app-v1"));
    let puts = report.regions[0]
        .actions
        .iter()
        .filter(|a| a.op() == "PutKeyPolicy")
        .count();
    assert_eq!(puts, 2, "the stale write and its correction: {report:?}");
}

// ---- policy modes -------------------------------------------------------------------------

#[tokio::test]
async fn verbatim_mirrors_the_text_and_off_warns_that_kms_default_policy_applies() {
    for mode in [PolicyMode::Verbatim, PolicyMode::Off] {
        let twin = new_twin();
        let mut cfg = config();
        cfg.policy_mode = mode;
        let key = seed_primary(&twin).await;
        twin.with_caller(ADMIN_USER)
            .tag_resource(PRIMARY_REGION, &key, &[Tag::new("replicate-to", WEST)])
            .await
            .unwrap();
        twin.take_trail();
        let report = Syncer::new(&twin, &cfg)
            .sync(PRIMARY_REGION, &key, false)
            .await;
        let replica = twin.key(WEST, &key).unwrap();
        let primary = twin.key(PRIMARY_REGION, &key).unwrap();
        match mode {
            PolicyMode::Verbatim => {
                assert_eq!(replica.policy, primary.policy);
                assert!(report.regions[0].notes.is_empty());
            }
            _ => {
                assert_eq!(replica.policy, twin.default_policy());
                assert!(report.regions[0].notes[0].contains("default key policy"));
            }
        }
    }
}
