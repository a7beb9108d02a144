//! The replicate function's handler, end to end on the in-memory KMS twin: real CloudTrail
//! payloads in, replicas out, and every event the replicator itself causes fed back in.

use integration_tests::scenarios::enforce_kms_quotas;
use integration_tests::{
    as_function, config, count_op, deliver_trail, fixtures, people_tags, primary_policy,
    replicator_writes, requested_key, seed_primary, PRIMARY_REGION,
};
use kms_replicator::desired::PRIMARY_HISTORY_TAG;
use kms_replicator::model::{KeyState, MultiRegionKeyType, Tag};
use kms_replicator::policy::rewrite_policy;
use kms_replicator::report::Outcome;
use kms_replicator::Op;
use kms_replicator::{Config, Kms, Syncer};
use replicate::Replicator;
use serde_json::{json, Value};
use twin::{Twin, ADMIN_USER, FUNCTION_ROLES, REPLICATE_ROLE};

async fn handle(twin: &Twin, cfg: &Config, event: &Value) -> Result<Value, String> {
    let kms = as_function(twin, cfg, REPLICATE_ROLE);
    let r = Replicator {
        kms: &kms,
        audit: twin,
        config: cfg,
    };
    r.handle(event, None).await.map_err(|e| e.to_string())
}

/// Tags the key as a person would and returns that TagResource event.
async fn tag_for_regions(twin: &Twin, key_id: &str, regions: &str) -> Value {
    let admin = twin.with_caller(ADMIN_USER);
    twin.take_trail();
    admin
        .tag_resource(PRIMARY_REGION, key_id, &[Tag::new("replicate-to", regions)])
        .await
        .unwrap();
    let mut trail = twin.take_trail();
    assert_eq!(trail.len(), 1);
    trail.remove(0)
}

/// Feeds every event in the trail back into the handler until the trail is empty; returns
/// how many rounds it took. Fails if it does not settle.
async fn drain(twin: &Twin, cfg: &Config) -> usize {
    let (rounds, errors) = deliver_trail(twin, cfg).await;
    assert!(
        errors.is_empty(),
        "handler accepts its own events: {errors:?}"
    );
    rounds
}

/// Tags the key, handles that event, then every event that follows, until quiet.
async fn tag_and_settle(twin: &Twin, cfg: &Config, key_id: &str, regions: &str) {
    let event = tag_for_regions(twin, key_id, regions).await;
    handle(twin, cfg, &event).await.expect("tag event handled");
    drain(twin, cfg).await;
}

#[tokio::test]
async fn every_fixture_is_either_synced_or_ignored_and_none_is_an_error() {
    let twin = Twin::new();
    let cfg = config();
    let expect_sync = [
        "kms-CreateAlias.eventbridge.json",
        "kms-DeleteAlias.eventbridge.json",
        "kms-PutKeyPolicy.eventbridge.json",
        "kms-ReplicateKey-primaryRegion.eventbridge.json",
        "kms-ScheduleKeyDeletion-singleRegion.eventbridge.json",
        "kms-TagResource.eventbridge.json",
        "kms-UntagResource.eventbridge.json",
        "kms-UpdatePrimaryRegion-oldPrimaryRegion-us-west-2.current-docs-2022-12-format.eventbridge.json",
    ];
    let all = fixtures();
    assert!(all.len() >= 13, "fixtures missing: {}", all.len());
    for (name, event) in all {
        let out = handle(&twin, &cfg, &event)
            .await
            .unwrap_or_else(|e| panic!("{name}: a valid AWS record became an error: {e}"));
        let action = out["action"].as_str().unwrap();
        if expect_sync.contains(&name.as_str()) {
            assert_eq!(action, "synced", "{name}: {out}");
            // The fixture keys do not exist in the twin: a classified, permanent outcome.
            assert_eq!(out["report"]["outcome"], "skipped", "{name}: {out}");
        } else {
            assert_eq!(action, "ignored", "{name}: {out}");
            assert!(out["reason"].as_str().is_some_and(|r| !r.is_empty()));
        }
    }
    assert!(replicator_writes(&twin.calls()).is_empty());
}

#[tokio::test]
async fn failed_calls_and_records_without_optional_fields_are_handled() {
    let twin = Twin::new();
    let cfg = config();
    let tag = fixtures()
        .into_iter()
        .find(|(n, _)| n == "kms-TagResource.eventbridge.json")
        .unwrap()
        .1;
    // A failed call: ignored.
    let mut failed = tag.clone();
    failed["detail"]["errorCode"] = json!("AccessDenied");
    failed["detail"]["errorMessage"] = json!("User is not authorized");
    let out = handle(&twin, &cfg, &failed).await.unwrap();
    assert_eq!(out["action"], "ignored");
    // No userIdentity.type, an empty sessionIssuer, no responseElements: still acted on.
    let mut sparse = tag.clone();
    sparse["detail"]["userIdentity"] = json!({"accountId": "111122223333", "invokedBy": "AWS Internal",
        "sessionContext": {"sessionIssuer": {}}});
    sparse["detail"]
        .as_object_mut()
        .unwrap()
        .remove("responseElements");
    let out = handle(&twin, &cfg, &sparse).await.unwrap();
    assert_eq!(out["action"], "synced");
}

#[tokio::test]
async fn malformed_input_is_an_error_so_it_reaches_the_dead_letter_queue() {
    let twin = Twin::new();
    let cfg = config();
    for bad in [
        json!("just a string"),
        json!({"hello": "world"}),
        json!({"source": "aws.kms", "detail-type": "AWS API Call via CloudTrail"}),
    ] {
        let err = handle(&twin, &cfg, &bad).await.unwrap_err();
        assert!(err.contains("malformed event"), "{err}");
    }
}

#[tokio::test]
async fn tagging_a_primary_creates_mirrored_replicas_and_a_second_run_writes_nothing() {
    let twin = Twin::new();
    let cfg = config();
    let key_id = seed_primary(&twin).await;
    let event = tag_for_regions(&twin, &key_id, "us-west-2 eu-west-1").await;

    let out = handle(&twin, &cfg, &event).await.unwrap();
    assert_eq!(out["report"]["outcome"], "created", "{out}");

    let primary = twin.key(PRIMARY_REGION, &key_id).unwrap();
    for region in ["us-west-2", "eu-west-1"] {
        let replica = twin.key(region, &key_id).expect("replica exists");
        assert_eq!(replica.multi_region, Some(MultiRegionKeyType::Replica));
        assert_eq!(replica.primary_region, PRIMARY_REGION);
        let (expected, rewrites) = rewrite_policy(&primary.policy, PRIMARY_REGION, region).unwrap();
        assert_eq!(replica.policy, expected);
        assert!(replica
            .policy
            .contains(&format!("s3.{region}.amazonaws.com")));
        assert!(replica
            .policy
            .contains(&format!("logs.{region}.amazonaws.com")));
        assert!(!replica.policy.contains("us-east-1"));
        assert_eq!(rewrites.len(), 3);
        assert_eq!(people_tags(&replica.tags), people_tags(&primary.tags));
        assert_eq!(replica.tags[PRIMARY_HISTORY_TAG], PRIMARY_REGION);
        assert_eq!(replica.tags["replicate-to"], "us-west-2 eu-west-1");
        assert_eq!(replica.description, "payments data key");
        let aliases = twin.aliases(region);
        assert_eq!(aliases.get("alias/payments"), Some(&key_id));
        assert_eq!(aliases.get("alias/payments-ledger"), Some(&key_id));
    }
    // The audit trail says what was done, with the rewrites.
    let audit = twin.audit_events();
    assert_eq!(audit.len(), 2);
    assert!(audit.iter().all(|e| e.detail_type == "Replica Created"));
    assert_eq!(
        audit[0].detail["policyRewrites"].as_array().unwrap().len(),
        3
    );

    twin.reset_calls();
    let again = handle(&twin, &cfg, &event).await.unwrap();
    assert_eq!(again["report"]["outcome"], "in_sync", "{again}");
    assert!(
        replicator_writes(&twin.calls()).is_empty(),
        "{:?}",
        twin.calls()
    );
    assert_eq!(
        twin.audit_events().len(),
        2,
        "no audit event for in-sync Regions"
    );
}

#[tokio::test]
async fn creating_replicas_costs_the_primary_reads_twice_then_one_replicate_and_the_aliases_per_region(
) {
    let twin = Twin::new();
    let cfg = config();
    let key_id = seed_primary(&twin).await; // 2 aliases
    let event = tag_for_regions(&twin, &key_id, "us-west-2 eu-west-1").await;
    twin.reset_calls();

    handle(&twin, &cfg, &event).await.unwrap();

    let calls = twin.calls();
    let (aliases, regions) = (2, 2);
    let primary_reads: Vec<&str> = calls
        .iter()
        .filter(|c| c.region == PRIMARY_REGION && c.op != "ReplicateKey")
        .map(|c| c.op.name())
        .collect();
    // The four reads, and the same four again after writing (the newest state wins).
    assert_eq!(
        sorted(primary_reads),
        vec![
            "DescribeKey",
            "DescribeKey",
            "GetKeyPolicy",
            "GetKeyPolicy",
            "ListAliases",
            "ListAliases",
            "ListResourceTags",
            "ListResourceTags"
        ]
    );
    assert_eq!(count_op(&calls, Op::ReplicateKey), regions);
    assert_eq!(count_op(&calls, Op::CreateAlias), regions * aliases);
    // The primary reports no replica in either Region, so no read round is needed there.
    assert_eq!(
        calls.len(),
        2 * 4 + regions + regions * aliases,
        "{calls:?}"
    );
    assert_eq!(
        count_op(&calls, Op::PutKeyPolicy) + count_op(&calls, Op::TagResource),
        0
    );
}

fn sorted(mut v: Vec<&str>) -> Vec<&str> {
    v.sort();
    v
}

#[tokio::test]
async fn feeding_back_every_event_the_run_produced_ends_with_no_further_writes() {
    let twin = Twin::new();
    let cfg = config(); // IGNORE_CALLER_ARNS empty: the replicator's own events are processed
    let key_id = seed_primary(&twin).await;
    let event = tag_for_regions(&twin, &key_id, "us-west-2 eu-west-1").await;
    handle(&twin, &cfg, &event).await.unwrap();
    let produced = twin.trail();
    // ReplicateKey in the primary's Region, CreateKey in each replica Region, CreateAlias x4.
    assert_eq!(produced.len(), 2 + 2 + 4);
    assert!(produced
        .iter()
        .any(|e| e["detail"]["eventName"] == "CreateKey" && e["region"] == "eu-west-1"));

    twin.reset_calls();
    let rounds = drain(&twin, &cfg).await;
    assert_eq!(
        rounds, 1,
        "one round of reads, no writes, nothing more to feed"
    );
    assert!(
        replicator_writes(&twin.calls()).is_empty(),
        "{:?}",
        replicator_writes(&twin.calls())
    );
}

#[tokio::test]
async fn a_replica_still_creating_when_its_own_events_arrive_is_managed_without_errors() {
    let twin = Twin::new();
    twin.set_creating_for(std::time::Duration::from_secs(600));
    let cfg = config();
    let key_id = seed_primary(&twin).await;
    let event = tag_for_regions(&twin, &key_id, "us-west-2").await;
    handle(&twin, &cfg, &event).await.unwrap();
    assert_eq!(
        twin.key("us-west-2", &key_id).unwrap().state,
        KeyState::Creating
    );
    twin.reset_calls();
    drain(&twin, &cfg).await; // panics on any handler error
    assert!(replicator_writes(&twin.calls()).is_empty());
}

#[tokio::test]
async fn events_made_by_the_replicators_own_role_are_skipped_when_configured() {
    let twin = Twin::new();
    let mut cfg = config();
    cfg.ignore_callers = FUNCTION_ROLES.map(String::from).to_vec();
    let key_id = seed_primary(&twin).await;
    let event = tag_for_regions(&twin, &key_id, "us-west-2").await;
    handle(&twin, &cfg, &event).await.unwrap();
    twin.reset_calls();
    for e in twin.take_trail() {
        let out = handle(&twin, &cfg, &e).await.unwrap();
        assert_eq!(out["action"], "ignored", "{out}");
    }
    assert!(twin.calls().is_empty(), "no KMS call for our own events");
}

#[tokio::test]
async fn changes_to_the_primary_are_mirrored_to_every_replica() {
    let twin = Twin::new();
    let cfg = config();
    let key_id = seed_primary(&twin).await;
    let event = tag_for_regions(&twin, &key_id, "us-west-2 eu-west-1").await;
    handle(&twin, &cfg, &event).await.unwrap();
    drain(&twin, &cfg).await;

    let admin = twin.with_caller(ADMIN_USER);
    let new_policy = primary_policy(&twin.account()).replace("payments-app", "payments-app-v2");
    admin
        .put_key_policy(PRIMARY_REGION, &key_id, &new_policy)
        .await
        .unwrap();
    admin
        .update_key_description(PRIMARY_REGION, &key_id, "payments data key v2")
        .await
        .unwrap();
    admin
        .delete_alias(PRIMARY_REGION, "alias/payments-ledger")
        .await
        .unwrap();
    admin
        .create_alias(PRIMARY_REGION, "alias/ledger", &key_id)
        .await
        .unwrap();
    admin
        .untag_resource(PRIMARY_REGION, &key_id, &["team".to_string()])
        .await
        .unwrap();
    admin
        .tag_resource(PRIMARY_REGION, &key_id, &[Tag::new("cost-center", "42")])
        .await
        .unwrap();
    drain(&twin, &cfg).await;

    for region in ["us-west-2", "eu-west-1"] {
        let replica = twin.key(region, &key_id).unwrap();
        assert!(replica.policy.contains("payments-app-v2"), "{region}");
        assert!(replica
            .policy
            .contains(&format!("s3.{region}.amazonaws.com")));
        assert_eq!(replica.description, "payments data key v2");
        assert!(!replica.tags.contains_key("team"));
        assert_eq!(
            replica.tags.get("cost-center").map(String::as_str),
            Some("42")
        );
        let aliases = twin.aliases(region);
        assert!(aliases.contains_key("alias/ledger"));
        // An alias is never deleted from a replica: it may serve that Region alone.
        assert!(aliases.contains_key("alias/payments-ledger"));
        assert!(aliases.contains_key("alias/payments"));
    }
}

#[tokio::test]
async fn an_alias_moved_between_managed_keys_is_a_conflict_in_replica_regions_until_a_person_moves_it(
) {
    let twin = Twin::new();
    let cfg = config();
    let old_key = seed_primary(&twin).await;
    tag_for_regions(&twin, &old_key, "us-west-2").await;
    let admin = twin.with_caller(ADMIN_USER);
    let new_key = admin
        .create_key(
            PRIMARY_REGION,
            true,
            None,
            "",
            &[Tag::new("replicate-to", "us-west-2")],
        )
        .key_id;
    let trail = twin.take_trail();
    for e in &trail {
        handle(&twin, &cfg, e).await.unwrap();
    }
    handle(
        &twin,
        &cfg,
        &tag_for_regions(&twin, &old_key, "us-west-2").await,
    )
    .await
    .unwrap();
    drain(&twin, &cfg).await;
    assert_eq!(twin.aliases("us-west-2")["alias/payments"], old_key);

    admin
        .update_alias(PRIMARY_REGION, "alias/payments", &new_key)
        .await
        .unwrap();
    // A name that exists nowhere else yet is still created.
    admin
        .create_alias(PRIMARY_REGION, "alias/payments-v2", &new_key)
        .await
        .unwrap();
    drain(&twin, &cfg).await;
    assert_eq!(
        twin.aliases("us-west-2")["alias/payments"],
        old_key,
        "applications in us-west-2 keep their key until a person moves the alias there"
    );
    assert_eq!(twin.aliases("us-west-2")["alias/payments-v2"], new_key);
    let report = Syncer::new(&twin, &cfg)
        .sync(PRIMARY_REGION, &new_key, false)
        .await;
    let west = report
        .regions
        .iter()
        .find(|r| r.region == "us-west-2")
        .unwrap();
    let Outcome::Failed { reason, retryable } = &west.outcome else {
        panic!("{west:?}");
    };
    assert!(!retryable);
    let command = format!(
        "aws kms update-alias --region us-west-2 --alias-name alias/payments --target-key-id \
         {new_key}"
    );
    assert!(
        reason.contains("a replica of another managed key"),
        "{reason}"
    );
    assert!(reason.contains(&command), "{reason}");

    // The person moves it with the command the report gives: the conflict is gone.
    admin
        .update_alias("us-west-2", "alias/payments", &new_key)
        .await
        .unwrap();
    drain(&twin, &cfg).await;
    assert_eq!(twin.aliases("us-west-2")["alias/payments"], new_key);
    let report = Syncer::new(&twin, &cfg)
        .sync(PRIMARY_REGION, &new_key, false)
        .await;
    assert_eq!(report.outcome, Outcome::InSync, "{report:?}");
}

#[tokio::test]
async fn a_single_region_key_is_reported_and_never_written() {
    let twin = Twin::new();
    let cfg = config();
    let admin = twin.with_caller(ADMIN_USER);
    let key = admin.create_key(PRIMARY_REGION, false, None, "", &[]);
    let event = tag_for_regions(&twin, &key.key_id, "us-west-2").await;
    let out = handle(&twin, &cfg, &event).await.unwrap();
    assert_eq!(out["report"]["outcome"], "skipped");
    assert!(out["report"]["reason"]
        .as_str()
        .unwrap()
        .contains("single-Region"));
    assert!(replicator_writes(&twin.calls()).is_empty());
}

#[tokio::test]
async fn disallowed_and_unknown_regions_are_reported_while_allowed_ones_are_replicated() {
    let twin = Twin::new();
    let cfg = config();
    let key_id = seed_primary(&twin).await;
    let event = tag_for_regions(&twin, &key_id, "us-west-2 ap-south-1 mars-north-9x").await;
    let out = handle(&twin, &cfg, &event).await.unwrap();
    let regions = out["report"]["regions"].as_array().unwrap();
    let by_region = |r: &str| regions.iter().find(|x| x["region"] == r).unwrap().clone();
    assert_eq!(by_region("us-west-2")["outcome"], "created");
    assert_eq!(by_region("ap-south-1")["outcome"], "skipped");
    assert!(by_region("ap-south-1")["reason"]
        .as_str()
        .unwrap()
        .contains("ALLOWED_REGIONS"));
    assert_eq!(by_region("mars-north-9x")["outcome"], "skipped");
    assert!(by_region("mars-north-9x")["reason"]
        .as_str()
        .unwrap()
        .contains("not an AWS Region"));
    assert!(
        twin.key("ap-south-1", &key_id).is_none(),
        "nothing written outside the allow-list"
    );
    assert!(twin
        .calls()
        .iter()
        .all(|c| c.region != "ap-south-1" && c.region != "mars-north-9x"));
    let skipped = twin
        .audit_events()
        .into_iter()
        .filter(|e| e.detail_type == "Replication Skipped")
        .count();
    assert_eq!(skipped, 2);
    // Later changes that leave the tag alone do not report the refused Regions again.
    twin.with_caller(ADMIN_USER)
        .update_key_description(PRIMARY_REGION, &key_id, "new description")
        .await
        .unwrap();
    drain(&twin, &cfg).await;
    let audit = twin.audit_events();
    assert!(audit.iter().any(|e| e.detail_type == "Replica Synced"));
    let skipped = audit
        .iter()
        .filter(|e| e.detail_type == "Replication Skipped")
        .count();
    assert_eq!(skipped, 2);
}

#[tokio::test]
async fn a_primary_pending_deletion_is_skipped() {
    let twin = Twin::new();
    let cfg = config();
    let key_id = seed_primary(&twin).await;
    let event = tag_for_regions(&twin, &key_id, "us-west-2").await;
    twin.with_caller(ADMIN_USER)
        .schedule_key_deletion(PRIMARY_REGION, &key_id, 7)
        .await
        .unwrap();
    let out = handle(&twin, &cfg, &event).await.unwrap();
    assert_eq!(out["report"]["outcome"], "skipped");
    assert!(out["report"]["reason"]
        .as_str()
        .unwrap()
        .contains("PendingDeletion"));
    assert!(twin.key("us-west-2", &key_id).is_none());
}

#[tokio::test]
async fn an_alias_held_by_an_unrelated_key_is_a_conflict_and_is_not_stolen() {
    let twin = Twin::new();
    let cfg = config();
    let key_id = seed_primary(&twin).await;
    let admin = twin.with_caller(ADMIN_USER);
    let squatter = admin.create_key("us-west-2", false, None, "someone else's key", &[]);
    admin
        .create_alias("us-west-2", "alias/payments", &squatter.key_id)
        .await
        .unwrap();
    let event = tag_for_regions(&twin, &key_id, "us-west-2 eu-west-1").await;

    let out = handle(&twin, &cfg, &event)
        .await
        .expect("a conflict is permanent, not retried");
    let regions = out["report"]["regions"].as_array().unwrap();
    let west = regions.iter().find(|r| r["region"] == "us-west-2").unwrap();
    assert_eq!(west["outcome"], "failed");
    assert_eq!(west["retryable"], false);
    assert!(
        west["reason"].as_str().unwrap().contains("alias conflict"),
        "{west}"
    );
    // The replica and its other alias were still made; the squatter keeps its alias.
    assert!(twin.key("us-west-2", &key_id).is_some());
    assert_eq!(twin.aliases("us-west-2")["alias/payments"], squatter.key_id);
    assert_eq!(twin.aliases("us-west-2")["alias/payments-ledger"], key_id);
    let eu = regions.iter().find(|r| r["region"] == "eu-west-1").unwrap();
    assert_eq!(eu["outcome"], "created");
}

#[tokio::test]
async fn a_key_policy_that_does_not_admit_the_replicator_says_which_statement_to_add() {
    let twin = Twin::new();
    let cfg = config();
    let admin = twin.with_caller(ADMIN_USER);
    // Names its principals and does not delegate to IAM: the replicator's role may not even
    // read the key, whatever its IAM policies allow.
    let only_alice = json!({"Version": "2012-10-17", "Statement": [{
        "Sid": "OnlyAlice", "Effect": "Allow",
        "Principal": {"AWS": ADMIN_USER}, "Action": "kms:*", "Resource": "*"
    }]})
    .to_string();
    let key = admin.create_key(PRIMARY_REGION, true, Some(&only_alice), "", &[]);
    let event = tag_for_regions(&twin, &key.key_id, "us-west-2").await;
    let out = handle(&twin, &cfg, &event)
        .await
        .expect("permanent: not retried");
    let report = &out["report"];
    assert_eq!(report["outcome"], "failed", "{out:#}");
    assert_eq!(report["retryable"], false, "{out:#}");
    let reason = report["reason"].as_str().unwrap();
    assert!(reason.contains("kms:DescribeKey"), "{reason}");
    assert!(reason.contains("delegates to IAM"), "{reason}");
    assert!(reason.contains("retrying will not help"), "{reason}");
    assert!(twin.key("us-west-2", &key.key_id).is_none());
}

#[tokio::test]
async fn a_policy_that_would_lock_the_replicator_out_fails_with_a_clear_reason() {
    let twin = Twin::new();
    let cfg = config();
    let admin = twin.with_caller(ADMIN_USER);
    // The replicator may read the key and replicate it, but the policy it would mirror does not
    // let it change the replica's policy later: KMS's lockout check refuses it.
    let lockout = json!({"Version": "2012-10-17", "Statement": [{
        "Sid": "OnlyAlice", "Effect": "Allow",
        "Principal": {"AWS": ADMIN_USER}, "Action": "kms:*", "Resource": "*"
    }, {
        "Sid": "ReplicatorReadsAndReplicates", "Effect": "Allow",
        "Principal": {"AWS": REPLICATE_ROLE},
        "Action": ["kms:DescribeKey", "kms:GetKeyPolicy", "kms:ListResourceTags", "kms:ReplicateKey"],
        "Resource": "*"
    }]})
    .to_string();
    let key = admin.create_key(PRIMARY_REGION, true, Some(&lockout), "", &[]);
    let event = tag_for_regions(&twin, &key.key_id, "us-west-2").await;
    let out = handle(&twin, &cfg, &event)
        .await
        .expect("permanent: not retried");
    let west = &out["report"]["regions"][0];
    assert_eq!(west["outcome"], "failed");
    assert_eq!(west["retryable"], false);
    let reason = west["reason"].as_str().unwrap();
    assert!(reason.contains("lock the replicator out"), "{reason}");
    assert!(
        reason.contains("MalformedPolicyDocumentException"),
        "{reason}"
    );
    assert!(twin.key("us-west-2", &key.key_id).is_none());
}

#[tokio::test]
async fn a_throttled_region_fails_the_invocation_for_a_retry_which_then_completes() {
    let twin = Twin::new();
    let cfg = config();
    let key_id = seed_primary(&twin).await;
    let event = tag_for_regions(&twin, &key_id, "us-west-2 eu-west-1").await;
    twin.inject_fault(
        Some(PRIMARY_REGION),
        Some(Op::ReplicateKey),
        "ThrottlingException",
        1,
    );

    let err = handle(&twin, &cfg, &event).await.unwrap_err();
    assert!(err.starts_with("retryable"), "{err}");
    assert!(err.contains("ThrottlingException"), "{err}");
    let made: Vec<bool> = ["us-west-2", "eu-west-1"]
        .iter()
        .map(|r| twin.key(r, &key_id).is_some())
        .collect();
    assert_eq!(
        made.iter().filter(|m| **m).count(),
        1,
        "the other Region still succeeded"
    );

    let out = handle(&twin, &cfg, &event).await.unwrap();
    assert_eq!(out["report"]["outcome"], "created");
    assert!(twin.key("us-west-2", &key_id).is_some() && twin.key("eu-west-1", &key_id).is_some());
}

#[tokio::test]
async fn a_region_that_is_down_is_a_retryable_failure_for_that_region_only() {
    let twin = Twin::new();
    let cfg = config();
    let key_id = seed_primary(&twin).await;
    let event = tag_for_regions(&twin, &key_id, "us-west-2 eu-west-1").await;
    twin.set_region_down("eu-west-1", true);
    let err = handle(&twin, &cfg, &event).await.unwrap_err();
    assert!(err.contains("eu-west-1"), "{err}");
    assert!(twin.key("us-west-2", &key_id).is_some());
    twin.set_region_down("eu-west-1", false);
    handle(&twin, &cfg, &event).await.unwrap();
    assert!(twin.key("eu-west-1", &key_id).is_some());
}

#[tokio::test]
async fn an_event_on_a_replica_syncs_its_primary_and_repairs_drift() {
    let twin = Twin::new();
    let cfg = config();
    let key_id = seed_primary(&twin).await;
    tag_and_settle(&twin, &cfg, &key_id, "us-west-2").await;
    // Someone edits the replica's description by hand.
    let admin = twin.with_caller(ADMIN_USER);
    admin
        .update_key_description("us-west-2", &key_id, "hand edited")
        .await
        .unwrap();
    drain(&twin, &cfg).await;
    assert_eq!(
        twin.key("us-west-2", &key_id).unwrap().description,
        "payments data key"
    );
}

#[tokio::test]
async fn with_schedule_deletion_a_region_removed_from_the_tag_is_deleted_and_restored_when_added_back(
) {
    let twin = Twin::new();
    let mut cfg = config();
    cfg.removal = kms_replicator::config::RemovalPolicy::ScheduleDeletion {
        pending_window_days: 7,
    };
    let key_id = seed_primary(&twin).await;
    tag_and_settle(&twin, &cfg, &key_id, "us-west-2 eu-west-1").await;

    let out = handle(
        &twin,
        &cfg,
        &tag_for_regions(&twin, &key_id, "us-west-2").await,
    )
    .await
    .unwrap();
    drain(&twin, &cfg).await;
    assert_eq!(
        twin.key("eu-west-1", &key_id).unwrap().state,
        KeyState::PendingDeletion,
        "{out}"
    );
    assert_eq!(
        twin.key("us-west-2", &key_id).unwrap().state,
        KeyState::Enabled
    );
    assert!(twin
        .audit_events()
        .iter()
        .any(|e| e.detail_type == "Replica Scheduled For Deletion"));

    tag_and_settle(&twin, &cfg, &key_id, "us-west-2 eu-west-1").await;
    let restored = twin.key("eu-west-1", &key_id).unwrap();
    assert_eq!(restored.state, KeyState::Enabled);
    assert_eq!(restored.tags["replicate-to"], "us-west-2 eu-west-1");
}

#[tokio::test]
async fn with_retain_a_region_removed_from_the_tag_is_left_alone() {
    let twin = Twin::new();
    let cfg = config();
    let key_id = seed_primary(&twin).await;
    tag_and_settle(&twin, &cfg, &key_id, "us-west-2 eu-west-1").await;
    twin.reset_calls();
    tag_and_settle(&twin, &cfg, &key_id, "us-west-2").await;
    // One DescribeKey tells that the replica is younger than the primary (never the
    // primary); nothing is written there.
    let in_eu: Vec<&str> = twin
        .calls()
        .iter()
        .filter(|c| c.region == "eu-west-1")
        .map(|c| c.op.name())
        .collect();
    assert!(
        !in_eu.is_empty() && in_eu.iter().all(|op| *op == "DescribeKey"),
        "eu-west-1 is only described: {in_eu:?}"
    );
    assert_eq!(
        twin.key("eu-west-1", &key_id).unwrap().state,
        KeyState::Enabled
    );
}

#[tokio::test]
async fn tags_given_at_create_key_trigger_replication() {
    let twin = Twin::new();
    let cfg = config();
    let admin = twin.with_caller(ADMIN_USER);
    let key = admin.create_key(
        PRIMARY_REGION,
        true,
        None,
        "made with the tag",
        &[Tag::new("replicate-to", "eu-west-1")],
    );
    let create = twin.take_trail().remove(0);
    assert_eq!(create["detail"]["eventName"], "CreateKey");
    let out = handle(&twin, &cfg, &create).await.unwrap();
    assert_eq!(out["report"]["outcome"], "created", "{out}");
    assert!(twin.key("eu-west-1", &key.key_id).is_some());
}

#[tokio::test]
async fn an_unreadable_audit_bus_does_not_undo_or_hide_the_work() {
    let twin = Twin::new();
    let cfg = config();
    let key_id = seed_primary(&twin).await;
    twin.set_audit_down(true);
    let out = handle(
        &twin,
        &cfg,
        &tag_for_regions(&twin, &key_id, "us-west-2").await,
    )
    .await
    .unwrap();
    assert_eq!(out["report"]["outcome"], "created");
    assert!(twin.key("us-west-2", &key_id).is_some());
}

/// Tags `n` new keys for two Regions at once, as one Terraform apply does; returns the
/// TagResource events.
async fn burst_of_tags(twin: &Twin, n: usize) -> Vec<Value> {
    let admin = twin.with_caller(ADMIN_USER);
    let policy = primary_policy(&twin.account());
    for i in 0..n {
        let k = admin.create_key(PRIMARY_REGION, true, Some(&policy), &format!("k{i}"), &[]);
        admin
            .tag_resource(
                PRIMARY_REGION,
                &k.key_id,
                &[Tag::new("replicate-to", "us-west-2 eu-west-1")],
            )
            .await
            .unwrap();
    }
    twin.take_trail()
        .into_iter()
        .filter(|e| e["detail"]["eventName"] == "TagResource")
        .collect()
}

/// `sandboxes` copies of the function, each with `quotas`, take the events off one queue
/// at once. Returns how many invocations failed (each would be retried, and in the end
/// dead-lettered).
async fn run_sandboxes(
    twin: &Twin,
    cfg: &Config,
    events: Vec<Value>,
    sandboxes: usize,
    quotas: kms_replicator::limit::Quotas,
) -> usize {
    use kms_replicator::limit::RateLimitedKms;
    use std::sync::{Arc, Mutex};
    let queue = Arc::new(Mutex::new(events));
    let tasks: Vec<_> = (0..sandboxes)
        .map(|_| {
            let (twin, cfg, queue) = (twin.clone(), cfg.clone(), queue.clone());
            let kms = RateLimitedKms::new(as_function(&twin, &cfg, REPLICATE_ROLE), quotas.clone());
            tokio::spawn(async move {
                let mut failed = 0;
                loop {
                    let Some(e) = queue.lock().unwrap().pop() else {
                        return failed;
                    };
                    let r = Replicator {
                        kms: &kms,
                        audit: &twin,
                        config: &cfg,
                    };
                    if r.handle(&e, None).await.is_err() {
                        failed += 1;
                    }
                }
            })
        })
        .collect();
    let mut failed = 0;
    for t in tasks {
        failed += t.await.unwrap();
    }
    failed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_tagged_keys_is_replicated_within_the_quotas_and_nothing_is_dead_lettered() {
    let twin = Twin::new();
    let mut cfg = config();
    cfg.ignore_callers = FUNCTION_ROLES.map(String::from).to_vec();
    let events = burst_of_tags(&twin, 20).await;
    assert_eq!(events.len(), 20);
    enforce_kms_quotas(&twin);
    let keys: Vec<String> = events.iter().map(requested_key).collect();

    // Two sandboxes (the default reserved concurrency), each starting at the whole quota and
    // keeping at least half of it.
    let quotas = replicate::process_quotas(|_| Some("2".into())).unwrap();
    let failed = run_sandboxes(&twin, &cfg, events, 2, quotas).await;

    assert_eq!(
        failed, 0,
        "no invocation failed, so nothing reaches the dead-letter queue"
    );
    // Both overrun the quota in the first windows, halve, and settle; each throttled call
    // was sent again. (At 500 keys, `make bench` measures them below 1% of calls.)
    let (throttled, calls) = (twin.throttled_count(), twin.calls().len());
    assert!(
        throttled * 10 <= calls,
        "{throttled} of {calls} calls throttled"
    );
    for key in &keys {
        let id = kms_replicator::arn::key_id_of(key);
        for region in ["us-west-2", "eu-west-1"] {
            assert!(twin.key(region, id).is_some(), "{id} in {region}");
        }
    }
}
