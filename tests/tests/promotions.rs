//! Promotions lose nothing (docs/safety.md, "Promotions"): each history that once lost a Deny,
//! a newer policy or a Region's protection around a promotion, on the KMS twin with the
//! functions acting as their roles.

use failover::{quotas, Failover, FailoverSettings};
use integration_tests::{
    as_function, config, deliver_trail, new_twin, seed_primary, PRIMARY_REGION,
};
use kms_replicator::config::RemovalPolicy;
use kms_replicator::desired::PRIMARY_HISTORY_TAG;
use kms_replicator::limit::RateLimitedKms;
use kms_replicator::model::{KeyState, Tag};
use kms_replicator::policy::rewrite_policy;
use kms_replicator::policy::MAX_POLICY_BYTES;
use kms_replicator::promotion::{policy_digest, POLICY_DIGEST_TAG};
use kms_replicator::{Config, Kms, Op, Syncer};
use serde_json::{json, Value};
use std::time::Duration;
use twin::{Twin, ADMIN_USER, FAILOVER_ROLE, REPLICATE_ROLE};

const WEST: &str = "us-west-2";
const EU: &str = "eu-west-1";
const REGIONS: [&str; 3] = [PRIMARY_REGION, WEST, EU];

/// The seeded payments key with replicas made by the replicator in `regions`.
async fn replicated_key(twin: &Twin, cfg: &Config, regions: &str) -> String {
    let key = seed_primary(twin).await;
    twin.with_caller(ADMIN_USER)
        .tag_resource(PRIMARY_REGION, &key, &[Tag::new("replicate-to", regions)])
        .await
        .unwrap();
    deliver_trail(twin, cfg).await;
    for r in regions.split_whitespace() {
        assert!(twin.key(r, &key).is_some(), "no replica in {r}");
    }
    key
}

/// The failover function, as its role, within its quotas.
async fn fail_over(twin: &Twin, cfg: &Config, key: &str, to: &str) -> Value {
    let kms = RateLimitedKms::new(as_function(twin, cfg, FAILOVER_ROLE), quotas());
    let f = Failover {
        kms: &kms,
        audit: twin,
        config: cfg,
        settings: FailoverSettings {
            wait: Duration::from_secs(5),
            first_poll: Duration::from_millis(10),
            max_poll: Duration::from_millis(100),
            ..FailoverSettings::default()
        },
    };
    let out = f
        .handle(&json!({"key": key, "to": to}), None)
        .await
        .expect("a valid request gets a report");
    out["keys"][0].clone()
}

/// Delivers `events` (records that arrive late) to the replicate handler, as its role.
async fn deliver(twin: &Twin, cfg: &Config, events: &[Value]) {
    let kms = as_function(twin, cfg, REPLICATE_ROLE);
    let handler = replicate::Replicator {
        kms: &kms,
        audit: twin,
        config: cfg,
    };
    for e in events {
        // Retryable failures are Lambda errors: these tests look at the state.
        let _ = handler.handle(e, None).await;
    }
}

fn check<'a>(key: &'a Value, name: &str) -> &'a Value {
    key["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {key:#}"))
}

/// The key's policy in `region`, with `statement` added.
fn with_statement(twin: &Twin, region: &str, key: &str, statement: Value) -> String {
    let mut p: Value = serde_json::from_str(&twin.key(region, key).unwrap().policy).unwrap();
    p["Statement"].as_array_mut().unwrap().push(statement);
    p.to_string()
}

/// The statement `sid` of the key's policy in `region`.
fn statement(twin: &Twin, region: &str, key: &str, sid: &str) -> Option<Value> {
    let p: Value = serde_json::from_str(&twin.key(region, key).unwrap().policy).unwrap();
    p["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Sid"] == sid)
        .cloned()
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect(),
        _ => vec![],
    }
}

fn deny_decrypt(account: &str) -> Value {
    json!({"Sid": "NoExporter", "Effect": "Deny",
           "Principal": {"AWS": format!("arn:aws:iam::{account}:role/exporter")},
           "Action": "kms:Decrypt", "Resource": "*"})
}

// ---- history 1: the failover function brings the target up to date, or refuses ---------

#[tokio::test]
async fn a_deny_the_target_could_not_receive_stops_the_promotion_and_survives() {
    let twin = new_twin();
    let cfg = config();
    let key = replicated_key(&twin, &cfg, WEST).await;
    // The replica's PutKeyPolicy keeps failing (any transient failure, or a record that is
    // still on its way); a person adds a Deny to the primary.
    twin.inject_fault(
        Some(WEST),
        Some(Op::PutKeyPolicy),
        "KMSInternalException",
        100,
    );
    let account = twin.account();
    let denied = with_statement(&twin, PRIMARY_REGION, &key, deny_decrypt(&account));
    twin.with_caller(ADMIN_USER)
        .put_key_policy(PRIMARY_REGION, &key, &denied)
        .await
        .unwrap();
    deliver_trail(&twin, &cfg).await;
    assert!(statement(&twin, WEST, &key, "NoExporter").is_none());
    twin.reset_calls();

    let report = fail_over(&twin, &cfg, &key, WEST).await;

    assert_eq!(report["outcome"], "failed", "{report:#}");
    assert_eq!(report["cause"], "target_not_up_to_date", "{report:#}");
    let c = check(&report, "target_up_to_date");
    assert_eq!(c["passed"], false, "{c}");
    assert!(
        c["detail"].as_str().unwrap().contains("not promoted"),
        "{c}"
    );
    assert!(!twin.calls().iter().any(|c| c.op == Op::UpdatePrimaryRegion));
    assert_eq!(twin.key(WEST, &key).unwrap().primary_region, PRIMARY_REGION);
    assert!(statement(&twin, PRIMARY_REGION, &key, "NoExporter").is_some());

    // Once the target can be written, the same request promotes, and the Deny is everywhere.
    twin.clear_faults();
    let report = fail_over(&twin, &cfg, &key, WEST).await;
    assert_eq!(report["outcome"], "promoted", "{report:#}");
    let c = check(&report, "target_up_to_date");
    assert!(
        c["detail"].as_str().unwrap().contains("PutKeyPolicy"),
        "{c}"
    );
    assert_eq!(
        check(&report, "policy_in_new_primary_region")["passed"],
        true
    );
    for r in [PRIMARY_REGION, WEST] {
        assert!(
            statement(&twin, r, &key, "NoExporter").is_some(),
            "the Deny is gone in {r}"
        );
    }
}

#[tokio::test]
async fn a_deny_whose_record_is_late_reaches_the_target_before_the_promotion() {
    let twin = new_twin();
    let cfg = config();
    let key = replicated_key(&twin, &cfg, "us-west-2 eu-west-1").await;
    let account = twin.account();
    let denied = with_statement(&twin, PRIMARY_REGION, &key, deny_decrypt(&account));
    twin.with_caller(ADMIN_USER)
        .put_key_policy(PRIMARY_REGION, &key, &denied)
        .await
        .unwrap();
    // The record of the edit has not arrived when the failover function runs.
    let late = twin.take_trail();
    assert!(!late.is_empty());

    let report = fail_over(&twin, &cfg, &key, WEST).await;

    assert_eq!(report["outcome"], "promoted", "{report:#}");
    for name in ["target_up_to_date", "policy_in_new_primary_region"] {
        assert_eq!(check(&report, name)["passed"], true, "{report:#}");
    }
    // The late record arrives; nothing is lost in any Region.
    deliver(&twin, &cfg, &late).await;
    deliver_trail(&twin, &cfg).await;
    for r in REGIONS {
        assert!(
            statement(&twin, r, &key, "NoExporter").is_some(),
            "the Deny is gone in {r}"
        );
    }
}

// ---- history 3: after a promotion, a replica keeps the Deny values of its own Region ------

#[tokio::test]
async fn after_a_promotion_every_region_still_denies_its_own_log_group() {
    let twin = new_twin();
    let cfg = config();
    let account = twin.account();
    let log_group = |r: &str| format!("arn:aws:logs:{r}:{account}:log-group:audit");
    let key = seed_primary(&twin).await;
    let deny = json!({"Sid": "NoAuditLogs", "Effect": "Deny", "Principal": {"AWS": "*"},
        "Action": "kms:Decrypt", "Resource": "*",
        "Condition": {"ArnLike": {"kms:EncryptionContext:aws:logs:arn": log_group(PRIMARY_REGION)}}});
    let admin = twin.with_caller(ADMIN_USER);
    admin
        .put_key_policy(
            PRIMARY_REGION,
            &key,
            &with_statement(&twin, PRIMARY_REGION, &key, deny),
        )
        .await
        .unwrap();
    admin
        .tag_resource(
            PRIMARY_REGION,
            &key,
            &[Tag::new("replicate-to", "us-west-2 eu-west-1")],
        )
        .await
        .unwrap();
    deliver_trail(&twin, &cfg).await;

    let report = fail_over(&twin, &cfg, &key, WEST).await;
    assert_eq!(report["outcome"], "promoted", "{report:#}");
    deliver_trail(&twin, &cfg).await;

    for r in REGIONS {
        let s = statement(&twin, r, &key, "NoAuditLogs").unwrap();
        let have = strings(&s["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]);
        for want in [log_group(PRIMARY_REGION), log_group(WEST), log_group(r)] {
            assert!(have.contains(&want), "{r}: {want} missing from {have:?}");
        }
    }
}

// ---- history 5: a policy that cannot be mirrored stops nothing else -----------------------

#[tokio::test]
async fn a_policy_over_the_limit_is_reported_and_the_aliases_tags_and_description_still_mirrored() {
    let twin = new_twin();
    let cfg = config();
    let key = replicated_key(&twin, &cfg, WEST).await;
    let before = twin.key(WEST, &key).unwrap().policy;
    let account = twin.account();
    // A Deny keeps its source values and gains the target's: this one doubles past the limit.
    let arns: Vec<String> = (0..420)
        .map(|i| format!("arn:aws:lambda:us-east-1:{account}:function:f{i:05}"))
        .collect();
    let big = with_statement(
        &twin,
        PRIMARY_REGION,
        &key,
        json!({"Sid": "DenyMany", "Effect": "Deny", "Principal": {"AWS": "*"},
               "Action": "kms:Decrypt", "Resource": "*",
               "Condition": {"StringEquals": {"kms:EncryptionContext:aws:lambda:FunctionArn": arns}}}),
    );
    assert!(big.len() < MAX_POLICY_BYTES);
    let admin = twin.with_caller(ADMIN_USER);
    admin
        .put_key_policy(PRIMARY_REGION, &key, &big)
        .await
        .unwrap();
    admin
        .update_key_description(PRIMARY_REGION, &key, "payments, v2")
        .await
        .unwrap();
    admin
        .tag_resource(PRIMARY_REGION, &key, &[Tag::new("owner", "ledger")])
        .await
        .unwrap();
    admin
        .create_alias(PRIMARY_REGION, "alias/payments-v2", &key)
        .await
        .unwrap();
    twin.take_trail();

    let report = Syncer::new(&as_function(&twin, &cfg, REPLICATE_ROLE), &cfg)
        .sync(PRIMARY_REGION, &key, false)
        .await;

    let text = serde_json::to_string(&report).unwrap();
    assert!(text.contains("over KMS's limit"), "{text}");
    assert!(
        !report.is_retryable_failure(),
        "retrying cannot help: {text}"
    );
    let west = twin.key(WEST, &key).unwrap();
    assert_eq!(west.policy, before, "the policy is never sent");
    assert_eq!(west.description, "payments, v2");
    assert_eq!(west.tags.get("owner").map(String::as_str), Some("ledger"));
    assert_eq!(
        twin.aliases(WEST)
            .get("alias/payments-v2")
            .map(String::as_str),
        Some(key.as_str())
    );
    // A second sweep writes nothing more and reports the policy again.
    twin.reset_calls();
    let again = Syncer::new(&as_function(&twin, &cfg, REPLICATE_ROLE), &cfg)
        .sync(PRIMARY_REGION, &key, false)
        .await;
    assert!(serde_json::to_string(&again)
        .unwrap()
        .contains("over KMS's limit"));
    assert!(!twin.calls().iter().any(|c| c.op.is_write()));
}

// ---- history 4: a promotion's own record counts as history --------------------------------

#[tokio::test]
async fn a_region_an_update_primary_region_record_proves_held_the_primary_is_never_deleted() {
    let twin = new_twin();
    let mut cfg = config();
    cfg.removal = RemovalPolicy::ScheduleDeletion {
        pending_window_days: 7,
    };
    let key = replicated_key(&twin, &cfg, "us-west-2 eu-west-1").await;
    let admin = twin.with_caller(ADMIN_USER);
    // A -> B by hand: both records of that promotion are lost, and no sweep runs.
    admin
        .update_primary_region(PRIMARY_REGION, &key, WEST)
        .await
        .unwrap();
    twin.take_trail();
    // B -> A by hand: only the record made in B (the Region the call was made in) arrives.
    admin
        .update_primary_region(WEST, &key, PRIMARY_REGION)
        .await
        .unwrap();
    let records = twin.take_trail();
    let from_b: Vec<Value> = records
        .into_iter()
        .filter(|e| e["detail"]["awsRegion"] == WEST)
        .collect();
    assert_eq!(from_b.len(), 1);
    deliver(&twin, &cfg, &from_b).await;
    deliver_trail(&twin, &cfg).await;
    // B is younger than the primary, so only the record tells that it held the primary.
    let (a, b) = (
        twin.key(PRIMARY_REGION, &key).unwrap(),
        twin.key(WEST, &key).unwrap(),
    );
    assert!(b.created_ms > a.created_ms);

    // B leaves the tag.
    admin
        .tag_resource(PRIMARY_REGION, &key, &[Tag::new("replicate-to", EU)])
        .await
        .unwrap();
    deliver_trail(&twin, &cfg).await;

    let b = twin.key(WEST, &key).unwrap();
    assert_eq!(b.state, KeyState::Enabled, "{b:?}");
    let history = b.tags.get(PRIMARY_HISTORY_TAG).cloned().unwrap_or_default();
    assert!(history.split_whitespace().any(|r| r == WEST), "{history}");
    let eu = twin.key(EU, &key).unwrap();
    assert_eq!(eu.tags.get(PRIMARY_HISTORY_TAG), Some(&history));
}

// ---- history 2: a hand-made promotion racing a policy edit --------------------------------

#[tokio::test]
async fn a_hand_made_promotion_never_lets_an_older_policy_overwrite_the_former_primarys_newer_one()
{
    let twin = new_twin();
    let cfg = config();
    let key = replicated_key(&twin, &cfg, "us-west-2 eu-west-1").await;
    let account = twin.account();
    let admin = twin.with_caller(ADMIN_USER);
    // A person adds a Deny to the primary; its record is late.
    let denied = with_statement(&twin, PRIMARY_REGION, &key, deny_decrypt(&account));
    admin
        .put_key_policy(PRIMARY_REGION, &key, &denied)
        .await
        .unwrap();
    let late = twin.take_trail();
    // Someone promotes us-west-2 by hand; its records arrive first.
    admin
        .update_primary_region(PRIMARY_REGION, &key, WEST)
        .await
        .unwrap();
    twin.reset_calls();
    deliver_trail(&twin, &cfg).await;
    deliver(&twin, &cfg, &late).await;
    deliver_trail(&twin, &cfg).await;

    // The former primary keeps its newer policy: nothing was written to it.
    assert!(statement(&twin, PRIMARY_REGION, &key, "NoExporter").is_some());
    // (Only the history tag, which only protects, may be written there.)
    assert!(!twin.calls().iter().any(|c| c.op.is_write()
        && c.op != Op::TagResource
        && c.region == PRIMARY_REGION
        && c.caller != ADMIN_USER));
    let conflicts: Vec<_> = twin
        .audit_events()
        .into_iter()
        .filter(|e| e.detail_type == "Replication Conflict")
        .collect();
    assert!(!conflicts.is_empty(), "the conflict is reported");

    // Until a person resolves it, a sweep still writes nothing there.
    deliver_trail(&twin, &cfg).await;
    assert!(statement(&twin, PRIMARY_REGION, &key, "NoExporter").is_some());
    // A person decides (the conflict's instructions): the newer policy on the new primary and,
    // as mirrored, on the former one. From then on every Region is mirrored as usual.
    let on_west = with_statement(&twin, WEST, &key, deny_decrypt(&account));
    admin.put_key_policy(WEST, &key, &on_west).await.unwrap();
    let (on_east, _) = rewrite_policy(&on_west, WEST, PRIMARY_REGION).unwrap();
    admin
        .put_key_policy(PRIMARY_REGION, &key, &on_east)
        .await
        .unwrap();
    deliver_trail(&twin, &cfg).await;
    let digest = twin.key(PRIMARY_REGION, &key).unwrap().tags[POLICY_DIGEST_TAG].clone();
    assert_eq!(
        digest.split_whitespace().nth(2),
        Some(policy_digest(&on_east).as_str()),
        "{digest}"
    );
    admin
        .update_key_description(WEST, &key, "payments, resolved")
        .await
        .unwrap();
    deliver_trail(&twin, &cfg).await;
    assert_eq!(
        twin.key(PRIMARY_REGION, &key).unwrap().description,
        "payments, resolved"
    );
    for r in REGIONS {
        assert!(
            statement(&twin, r, &key, "NoExporter").is_some(),
            "the Deny is missing in {r}"
        );
    }
}

#[tokio::test]
async fn a_hand_made_promotion_of_an_up_to_date_replica_is_synced_as_usual() {
    let twin = new_twin();
    let cfg = config();
    let key = replicated_key(&twin, &cfg, "us-west-2 eu-west-1").await;
    let admin = twin.with_caller(ADMIN_USER);
    admin
        .update_primary_region(PRIMARY_REGION, &key, WEST)
        .await
        .unwrap();
    deliver_trail(&twin, &cfg).await;
    admin
        .update_key_description(WEST, &key, "payments, after the move")
        .await
        .unwrap();
    deliver_trail(&twin, &cfg).await;
    for r in REGIONS {
        assert_eq!(
            twin.key(r, &key).unwrap().description,
            "payments, after the move"
        );
    }
    assert!(!twin
        .audit_events()
        .iter()
        .any(|e| e.detail_type == "Replication Conflict"));
}

#[tokio::test]
async fn a_policy_put_back_on_a_promoted_replica_is_not_overwritten_by_an_older_one() {
    // Found by the long run: us-west-2 is promoted by hand and, while it holds the primary, a
    // person adds a Deny (mirrored to eu-west-1) and then puts back the policy it held before,
    // the very policy the replicator once wrote there (its digest tag still describes it).
    // The tag is blanked and the failover function promotes eu-west-1, which still holds the
    // Deny: its sync must not take us-west-2's newer policy for the replicator's own.
    let twin = new_twin();
    let cfg = config();
    let key = replicated_key(&twin, &cfg, "us-west-2 eu-west-1").await;
    let account = twin.account();
    let admin = twin.with_caller(ADMIN_USER);
    admin
        .update_primary_region(PRIMARY_REGION, &key, WEST)
        .await
        .unwrap();
    twin.take_trail(); // lost
    let before = twin.key(WEST, &key).unwrap().policy;
    let denied = with_statement(&twin, WEST, &key, deny_decrypt(&account));
    admin.put_key_policy(WEST, &key, &denied).await.unwrap();
    deliver_trail(&twin, &cfg).await;
    assert!(statement(&twin, EU, &key, "NoExporter").is_some());
    admin.put_key_policy(WEST, &key, &before).await.unwrap();
    admin
        .tag_resource(WEST, &key, &[Tag::new("replicate-to", "")])
        .await
        .unwrap();
    twin.take_trail(); // late, then lost
    twin.reset_calls();
    let out = fail_over(&twin, &cfg, &key, EU).await;
    deliver_trail(&twin, &cfg).await;

    // us-west-2 keeps the policy the person put back; no policy was written there.
    assert!(statement(&twin, WEST, &key, "NoExporter").is_none());
    assert!(kms_replicator::policy::same_policy(
        &twin.key(WEST, &key).unwrap().policy,
        &before
    ));
    assert!(!twin
        .calls()
        .iter()
        .any(|c| c.op == Op::PutKeyPolicy && c.region == WEST && c.caller != ADMIN_USER));
    // The failover's sync from the new primary reports the conflict there.
    let west = out["sync"]["regions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["region"] == WEST)
        .cloned()
        .unwrap();
    assert_eq!(west["outcome"], "skipped", "{west:#}");
    assert!(
        !west["conflicts"].as_array().unwrap().is_empty(),
        "{west:#}"
    );
}

#[tokio::test]
async fn a_policy_put_back_on_a_primary_whose_tag_the_new_primary_wrote_earlier_is_kept() {
    // Found by the long run: the failover function moves the primary to us-west-2 and back
    // (the second time writing a Deny to us-east-1 first); us-east-1 is edited (mirrored to
    // us-west-2), then a person puts back the very policy us-east-1's tag describes, written
    // there by us-west-2 while it held the primary. Promoted by hand to us-west-2, with the
    // records of the edit late: us-east-1's tag names the new primary, but us-west-2's own
    // tag was written after it, so it is no proof the replicator wrote that policy.
    let twin = new_twin();
    let cfg = config();
    let key = replicated_key(&twin, &cfg, "us-west-2 eu-west-1").await;
    let account = twin.account();
    let admin = twin.with_caller(ADMIN_USER);
    fail_over(&twin, &cfg, &key, WEST).await;
    deliver_trail(&twin, &cfg).await;
    let denied = with_statement(&twin, WEST, &key, deny_decrypt(&account));
    admin.put_key_policy(WEST, &key, &denied).await.unwrap();
    deliver_trail(&twin, &cfg).await;
    fail_over(&twin, &cfg, &key, PRIMARY_REGION).await;
    deliver_trail(&twin, &cfg).await;
    let put_back = twin.key(PRIMARY_REGION, &key).unwrap().policy;
    assert!(statement(&twin, PRIMARY_REGION, &key, "NoExporter").is_some());
    let extra = json!({"Sid": "Auditor", "Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{account}:role/auditor")},
        "Action": "kms:DescribeKey", "Resource": "*"});
    let edited = with_statement(&twin, PRIMARY_REGION, &key, extra);
    admin
        .put_key_policy(PRIMARY_REGION, &key, &edited)
        .await
        .unwrap();
    deliver_trail(&twin, &cfg).await;
    assert!(statement(&twin, WEST, &key, "Auditor").is_some());
    admin
        .put_key_policy(PRIMARY_REGION, &key, &put_back)
        .await
        .unwrap();
    let late = twin.take_trail();
    admin
        .update_primary_region(PRIMARY_REGION, &key, WEST)
        .await
        .unwrap();
    twin.reset_calls();
    deliver_trail(&twin, &cfg).await;
    deliver(&twin, &cfg, &late).await;
    deliver_trail(&twin, &cfg).await;

    // us-east-1 keeps the policy the person put back; no policy was written there.
    assert!(statement(&twin, PRIMARY_REGION, &key, "Auditor").is_none());
    assert!(!twin
        .calls()
        .iter()
        .any(|c| c.op == Op::PutKeyPolicy && c.region == PRIMARY_REGION && c.caller != ADMIN_USER));
    assert!(
        twin.audit_events()
            .iter()
            .any(|e| e.detail_type == "Replication Conflict"),
        "the conflict is reported"
    );
}
