//! The failover function's handler, end to end on the in-memory KMS twin: replicas made by
//! the replicator are promoted with UpdatePrimaryRegion, checked before and after, and
//! replication goes on from the new primary.

use failover::FailoverSettings;
use failover::{quotas, Failover};
use integration_tests::{
    as_function, config, count_op, primary_policy, seed_primary, writes, PRIMARY_REGION,
};
use kms_replicator::config::RemovalPolicy;
use kms_replicator::limit::RateLimitedKms;
use kms_replicator::model::{KeyState, MultiRegionKeyType, Tag};
use kms_replicator::policy::rewrite_policy;
use kms_replicator::Op;
use kms_replicator::{Config, Kms, Syncer};
use replicate::Replicator;
use serde_json::{json, Value};
use std::time::Duration;
use twin::{Call, Twin, ADMIN_USER, FAILOVER_ROLE, REPLICATE_ROLE};

const WEST: &str = "us-west-2";
const EU: &str = "eu-west-1";
fn settings() -> FailoverSettings {
    FailoverSettings {
        wait: Duration::from_secs(5),
        first_poll: Duration::from_millis(10),
        max_poll: Duration::from_millis(100),
        ..FailoverSettings::default()
    }
}

async fn run_with(
    twin: &Twin,
    cfg: &Config,
    settings: FailoverSettings,
    input: Value,
) -> Result<Value, String> {
    // As in the function's main: UpdatePrimaryRegion within its quota.
    let kms = RateLimitedKms::new(as_function(twin, cfg, FAILOVER_ROLE), quotas());
    let f = Failover {
        kms: &kms,
        audit: twin,
        config: cfg,
        settings,
    };
    f.handle(&input, None).await.map_err(|e| e.to_string())
}

async fn run(twin: &Twin, cfg: &Config, input: Value) -> Value {
    run_with(twin, cfg, settings(), input)
        .await
        .expect("a valid request gets a report")
}

fn check<'a>(key: &'a Value, name: &str) -> &'a Value {
    key["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {key:#}"))
}

/// The seeded payments key (policy, two aliases, a team tag) with replicas made by the
/// replicator in `regions`. The trail and the call log are cleared.
async fn replicated_key(twin: &Twin, cfg: &Config, regions: &str) -> String {
    let key_id = seed_primary(twin).await;
    twin.with_caller(ADMIN_USER)
        .tag_resource(
            PRIMARY_REGION,
            &key_id,
            &[Tag::new("replicate-to", regions)],
        )
        .await
        .unwrap();
    let report = Syncer::new(twin, cfg)
        .sync(PRIMARY_REGION, &key_id, false)
        .await;
    assert_eq!(report.outcome.name(), "created", "{report:?}");
    twin.take_trail();
    twin.reset_calls();
    key_id
}

#[tokio::test]
async fn one_key_is_promoted_checked_and_synced_from_its_new_primary() {
    let twin = Twin::new();
    let cfg = config();
    let key_id = replicated_key(&twin, &cfg, "us-west-2 eu-west-1").await;
    // Both keys are `Updating` for a while, as in KMS.
    twin.set_updating_for(Duration::from_millis(300));

    let out = run(&twin, &cfg, json!({"key": key_id, "to": WEST})).await;

    println!("{}", serde_json::to_string_pretty(&out).unwrap());
    assert_eq!(
        out["summary"], "1 of 1 key promoted to us-west-2",
        "{out:#}"
    );
    let key = &out["keys"][0];
    assert_eq!(key["outcome"], "promoted", "{key:#}");
    assert_eq!(key["keyId"], key_id.as_str());
    assert_eq!(key["primaryRegionBefore"], PRIMARY_REGION);
    assert_eq!(key["primaryRegionAfter"], WEST);
    assert!(key["durationMs"].is_u64());
    for c in key["checks"].as_array().unwrap() {
        assert_eq!(c["passed"], true, "{c}");
    }
    for name in [
        "multi_region",
        "primary_region_answers",
        "replica_in_target",
        "primary_enabled",
        "replica_enabled",
        "update_primary_region",
        "new_primary_reported",
        "aliases_in_new_primary_region",
        "policy_in_new_primary_region",
        "sync_from_new_primary",
    ] {
        check(key, name);
    }
    let waited = check(key, "new_primary_reported")["detail"]
        .as_str()
        .unwrap();
    assert!(
        !waited.contains("(1 DescribeKey call)"),
        "it polled: {waited}"
    );
    // KMS now says so in every Region.
    let west = twin.describe_key(WEST, &key_id).await.unwrap();
    assert!(west.is_primary());
    assert_eq!(west.state, KeyState::Enabled);
    for region in [PRIMARY_REGION, EU] {
        let k = twin.key(region, &key_id).unwrap();
        assert_eq!(k.multi_region, Some(MultiRegionKeyType::Replica));
        assert_eq!(k.primary_region, WEST);
        assert_eq!(k.state, KeyState::Enabled);
    }
    // One UpdatePrimaryRegion, sent to the old primary's Region.
    let calls = twin.calls();
    let promotions: Vec<&Call> = calls
        .iter()
        .filter(|c| c.op == "UpdatePrimaryRegion")
        .collect();
    assert_eq!(promotions.len(), 1);
    assert_eq!(promotions[0].region, PRIMARY_REGION);
    // The old primary's Region stays in the tag, so it stays a managed replica Region; the
    // sync from the new primary mirrors the tag and finds nothing else to change.
    assert_eq!(
        twin.key(WEST, &key_id).unwrap().tags["replicate-to"],
        "us-west-2 eu-west-1 us-east-1"
    );
    assert_eq!(key["sync"]["primary_region"], WEST);
    assert_eq!(key["sync"]["outcome"], "updated", "{:#}", key["sync"]);
    let old = twin.key(PRIMARY_REGION, &key_id).unwrap();
    assert_eq!(old.policy, primary_policy(&twin.account()));
    // The audit bus hears about it.
    let audit = twin.audit_events();
    let promoted: Vec<_> = audit
        .iter()
        .filter(|e| e.detail_type == "Primary Region Updated")
        .collect();
    assert_eq!(promoted.len(), 1);
    assert_eq!(promoted[0].detail["keyId"], key_id.as_str());
    assert_eq!(promoted[0].detail["primaryRegionAfter"], WEST);
}

#[tokio::test]
async fn running_it_again_finds_the_primary_already_there_and_writes_nothing() {
    let twin = Twin::new();
    let cfg = config();
    let key_id = replicated_key(&twin, &cfg, "us-west-2").await;
    run(&twin, &cfg, json!({"key": key_id, "to": WEST})).await;
    twin.reset_calls();

    let out = run(&twin, &cfg, json!({"key": key_id, "to": WEST})).await;

    assert_eq!(out["keys"][0]["outcome"], "already_primary", "{out:#}");
    assert!(writes(&twin.calls()).is_empty(), "{:?}", twin.calls());
}

#[tokio::test]
async fn a_key_named_by_its_alias_is_found_and_promoted() {
    let twin = Twin::new();
    let cfg = config();
    let key_id = replicated_key(&twin, &cfg, "us-west-2").await;

    let out = run(&twin, &cfg, json!({"key": "alias/payments", "to": WEST})).await;

    let key = &out["keys"][0];
    assert_eq!(key["outcome"], "promoted", "{key:#}");
    assert_eq!(key["requested"], "alias/payments");
    assert_eq!(key["keyId"], key_id.as_str());
    assert!(twin.key(WEST, &key_id).unwrap().multi_region == Some(MultiRegionKeyType::Primary));
}

#[tokio::test]
async fn a_replica_arn_leads_to_its_primary() {
    let twin = Twin::new();
    let cfg = config();
    let key_id = replicated_key(&twin, &cfg, "us-west-2 eu-west-1").await;
    let arn = format!("arn:aws:kms:{EU}:{}:key/{key_id}", twin.account());

    let out = run(&twin, &cfg, json!({"key": arn, "to": WEST})).await;

    assert_eq!(out["keys"][0]["outcome"], "promoted", "{out:#}");
    assert_eq!(out["keys"][0]["primaryRegionBefore"], PRIMARY_REGION);
    // Looked up where the ARN says, nowhere else first.
    assert_eq!(twin.calls()[0].region, EU);
}

#[tokio::test]
async fn a_whole_region_is_promoted_within_five_calls_per_second() {
    let twin = Twin::new();
    let cfg = config();
    // Beyond the quota the twin answers ThrottlingException, as KMS does.
    twin.set_rate_limit(Op::UpdatePrimaryRegion, 5);
    let admin = twin.with_caller(ADMIN_USER);
    let policy = primary_policy(&twin.account());
    let mut ids = Vec::new();
    for n in 0..12 {
        let k = admin.create_key(
            PRIMARY_REGION,
            true,
            Some(&policy),
            &format!("key {n}"),
            &[Tag::new("replicate-to", "us-west-2")],
        );
        ids.push(k.key_id);
    }
    // Managed, but with no replica in the target; and a key that is not managed at all.
    let elsewhere = admin.create_key(
        PRIMARY_REGION,
        true,
        None,
        "eu only",
        &[Tag::new("replicate-to", "eu-west-1")],
    );
    let unmanaged = admin.create_key(PRIMARY_REGION, true, None, "unmanaged", &[]);
    for id in ids.iter().chain([&elsewhere.key_id]) {
        let r = Syncer::new(&twin, &cfg)
            .sync(PRIMARY_REGION, id, false)
            .await;
        assert_eq!(r.outcome.name(), "created");
    }
    twin.reset_calls();

    let out = run(&twin, &cfg, json!({"from": PRIMARY_REGION, "to": WEST})).await;

    assert_eq!(
        out["summary"], "12 of 13 keys promoted to us-west-2; 1 skipped (no replica there)",
        "{out:#}"
    );
    assert_eq!(out["from"], PRIMARY_REGION);
    let keys = out["keys"].as_array().unwrap();
    for id in &ids {
        let k = keys.iter().find(|k| k["keyId"] == id.as_str()).unwrap();
        assert_eq!(k["outcome"], "promoted", "{k:#}");
        assert!(twin.key(WEST, id).unwrap().multi_region == Some(MultiRegionKeyType::Primary));
    }
    let skipped = keys
        .iter()
        .find(|k| k["keyId"] == elsewhere.key_id.as_str())
        .unwrap();
    assert_eq!(skipped["outcome"], "skipped");
    assert!(!keys.iter().any(|k| k["keyId"] == unmanaged.key_id.as_str()));
    // Never more than 5 UpdatePrimaryRegion calls in any one-second window.
    assert_eq!(twin.throttled_count(), 0);
    let times: Vec<_> = twin
        .calls()
        .into_iter()
        .filter(|c| c.op == "UpdatePrimaryRegion")
        .map(|c| c.at)
        .collect();
    assert_eq!(times.len(), 12);
    for i in 5..times.len() {
        let gap = times[i].duration_since(times[i - 5]);
        assert!(
            gap >= Duration::from_secs(1),
            "calls {} and {i} were {gap:?} apart",
            i - 5
        );
    }
    assert_eq!(
        twin.audit_events()
            .iter()
            .filter(|e| e.detail_type == "Primary Region Updated")
            .count(),
        12
    );
}

#[tokio::test]
async fn a_dry_run_runs_every_check_and_writes_nothing() {
    let twin = Twin::new();
    let cfg = config();
    let key_id = replicated_key(&twin, &cfg, "us-west-2 eu-west-1").await;

    let out = run(
        &twin,
        &cfg,
        json!({"key": "alias/payments", "to": WEST, "dryRun": true}),
    )
    .await;

    assert_eq!(
        out["summary"], "dry run: 1 of 1 key can be promoted to us-west-2",
        "{out:#}"
    );
    assert_eq!(out["dryRun"], true);
    let key = &out["keys"][0];
    assert_eq!(key["outcome"], "dry_run_ok");
    assert_eq!(key["primaryRegionAfter"], PRIMARY_REGION);
    assert!(check(key, "replication_tag")["detail"]
        .as_str()
        .unwrap()
        .starts_with("would set replicate-to 'us-west-2 eu-west-1 us-east-1'"));
    assert!(writes(&twin.calls()).is_empty(), "{:?}", twin.calls());
    assert!(twin.trail().is_empty());
    assert!(twin.audit_events().is_empty());
    assert!(
        twin.key(PRIMARY_REGION, &key_id).unwrap().multi_region
            == Some(MultiRegionKeyType::Primary)
    );
}

#[tokio::test]
async fn a_target_region_without_a_replica_fails_before_any_write() {
    let twin = Twin::new();
    let cfg = config();
    let key_id = replicated_key(&twin, &cfg, "eu-west-1").await;

    let out = run(&twin, &cfg, json!({"key": key_id, "to": WEST})).await;

    let key = &out["keys"][0];
    assert_eq!(key["outcome"], "failed", "{key:#}");
    assert_eq!(key["cause"], "no_replica");
    assert!(key["reason"].as_str().unwrap().contains("no replica of"));
    assert_eq!(check(key, "replica_in_target")["passed"], false);
    assert_eq!(out["summary"], "0 of 1 key promoted to us-west-2; 1 failed");
    assert!(writes(&twin.calls()).is_empty(), "{:?}", twin.calls());
    let audit = twin.audit_events();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].detail_type, "Failover Failed");
}

#[tokio::test]
async fn a_disabled_replica_stops_the_promotion_with_a_key_state_reason() {
    let twin = Twin::new();
    let cfg = config();
    let key_id = replicated_key(&twin, &cfg, "us-west-2").await;
    twin.set_state(WEST, &key_id, KeyState::Disabled);

    let out = run(&twin, &cfg, json!({"key": key_id, "to": WEST})).await;

    let key = &out["keys"][0];
    assert_eq!(key["outcome"], "failed", "{key:#}");
    assert_eq!(key["cause"], "key_state");
    assert_eq!(check(key, "replica_enabled")["passed"], false);
    assert_eq!(check(key, "primary_enabled")["passed"], true);
    assert!(key["reason"].as_str().unwrap().contains("is Disabled"));
    assert!(writes(&twin.calls()).is_empty());
    assert!(
        twin.key(PRIMARY_REGION, &key_id).unwrap().multi_region
            == Some(MultiRegionKeyType::Primary)
    );
}

#[tokio::test]
async fn a_disabled_primary_is_refused_by_kms_and_reported_as_such() {
    let twin = Twin::new();
    let cfg = config();
    let key_id = replicated_key(&twin, &cfg, "us-west-2").await;
    twin.set_state(PRIMARY_REGION, &key_id, KeyState::Disabled);

    let out = run(&twin, &cfg, json!({"key": key_id, "to": WEST})).await;

    let key = &out["keys"][0];
    assert_eq!(key["outcome"], "failed", "{key:#}");
    assert_eq!(key["cause"], "key_state");
    assert_eq!(check(key, "primary_enabled")["passed"], false);
    assert_eq!(count_op(&twin.calls(), Op::UpdatePrimaryRegion), 0);
}

#[tokio::test]
async fn a_primary_region_that_does_not_answer_is_said_plainly_and_nothing_changes() {
    let twin = Twin::new();
    let cfg = config();
    let key_id = replicated_key(&twin, &cfg, "us-west-2").await;
    twin.set_region_down(PRIMARY_REGION, true);

    let out = run(&twin, &cfg, json!({"key": key_id, "to": WEST})).await;

    println!("{}", serde_json::to_string_pretty(&out).unwrap());
    let key = &out["keys"][0];
    assert_eq!(key["outcome"], "failed", "{key:#}");
    assert_eq!(key["cause"], "region_unreachable");
    let reason = key["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("KMS in us-east-1 did not answer"),
        "{reason}"
    );
    assert!(
        reason.contains("remain usable for cryptography"),
        "{reason}"
    );
    assert!(
        reason.contains("UpdatePrimaryRegion can only be called in us-east-1"),
        "{reason}"
    );
    // The replica was found through us-west-2 and is usable.
    assert_eq!(check(key, "replica_in_target")["passed"], true);
    assert_eq!(check(key, "replica_enabled")["passed"], true);
    assert_eq!(key["primaryRegionBefore"], PRIMARY_REGION);
    assert!(writes(&twin.calls()).is_empty(), "{:?}", twin.calls());
    // A Region that did not answer is asked once: each attempt costs the SDK's retries.
    let asked = twin
        .calls()
        .iter()
        .filter(|c| c.region == PRIMARY_REGION)
        .count();
    assert_eq!(asked, 1);
    twin.set_region_down(PRIMARY_REGION, false);
    assert!(
        twin.key(PRIMARY_REGION, &key_id).unwrap().multi_region
            == Some(MultiRegionKeyType::Primary)
    );
    assert_eq!(twin.key(WEST, &key_id).unwrap().state, KeyState::Enabled);
}

#[tokio::test]
async fn a_whole_region_down_in_bulk_mode_is_one_plain_answer() {
    let twin = Twin::new();
    let cfg = config();
    replicated_key(&twin, &cfg, "us-west-2").await;
    twin.set_region_down(PRIMARY_REGION, true);

    let out = run(&twin, &cfg, json!({"from": PRIMARY_REGION, "to": WEST})).await;

    let summary = out["summary"].as_str().unwrap();
    assert!(
        summary.starts_with(
            "0 keys promoted to us-west-2: the managed keys in us-east-1 could not be listed"
        ),
        "{summary}"
    );
    assert!(
        summary.contains("remain usable for cryptography"),
        "{summary}"
    );
    assert!(out["keys"].as_array().unwrap().is_empty());
    assert!(out["error"]
        .as_str()
        .unwrap()
        .contains("could not be listed"));
    assert_eq!(twin.audit_events()[0].detail_type, "Failover Failed");
}

#[tokio::test]
async fn access_denied_is_reported_as_a_permission_problem_not_an_outage() {
    let twin = Twin::new();
    let cfg = config();
    let key_id = replicated_key(&twin, &cfg, "us-west-2").await;
    twin.inject_fault(
        Some(PRIMARY_REGION),
        Some(Op::UpdatePrimaryRegion),
        "AccessDeniedException",
        1,
    );

    let out = run(&twin, &cfg, json!({"key": key_id, "to": WEST})).await;

    let key = &out["keys"][0];
    assert_eq!(key["outcome"], "failed", "{key:#}");
    assert_eq!(key["cause"], "access_denied");
    let reason = key["reason"].as_str().unwrap();
    assert!(
        reason.contains("permission problem, not an outage"),
        "{reason}"
    );
    assert!(!reason.contains("did not answer"));
    assert!(
        twin.key(PRIMARY_REGION, &key_id).unwrap().multi_region
            == Some(MultiRegionKeyType::Primary)
    );
}

#[tokio::test]
async fn an_update_that_outlasts_the_wait_is_reported_as_timed_out() {
    let twin = Twin::new();
    let cfg = config();
    let key_id = replicated_key(&twin, &cfg, "us-west-2").await;
    twin.set_updating_for(Duration::from_secs(30));
    let bounded = FailoverSettings {
        wait: Duration::from_millis(300),
        ..settings()
    };

    let started = std::time::Instant::now();
    let out = run_with(&twin, &cfg, bounded, json!({"key": key_id, "to": WEST}))
        .await
        .unwrap();

    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the wait is bounded"
    );
    let key = &out["keys"][0];
    assert_eq!(key["outcome"], "timed_out", "{key:#}");
    assert!(key["primaryRegionAfter"].is_null());
    let reason = key["reason"].as_str().unwrap();
    assert!(
        reason.contains("did not report the key as PRIMARY and Enabled within 300 ms"),
        "{reason}"
    );
    assert!(
        reason.contains("last seen: REPLICA and Updating"),
        "{reason}"
    );
    assert_eq!(check(key, "new_primary_reported")["passed"], false);
    assert!(key.get("sync").is_none());
    assert_eq!(
        out["summary"],
        "0 of 1 key promoted to us-west-2; 1 still updating when the wait ended"
    );
    let audit = twin.audit_events();
    assert_eq!(audit.last().unwrap().detail_type, "Failover Failed");
    assert_eq!(audit.last().unwrap().detail["outcome"], "timed_out");
}

#[tokio::test]
async fn replication_continues_from_the_new_primary_after_a_tag_change() {
    let twin = Twin::new();
    let cfg = config();
    let key_id = replicated_key(&twin, &cfg, "us-west-2").await;
    let out = run(&twin, &cfg, json!({"key": "alias/payments", "to": WEST})).await;
    assert_eq!(out["keys"][0]["outcome"], "promoted", "{out:#}");
    let value = twin.key(WEST, &key_id).unwrap().tags["replicate-to"].clone();
    assert_eq!(value, "us-west-2 us-east-1");

    // A person adds a Region on the new primary; the replicate function gets the event.
    twin.take_trail();
    twin.with_caller(ADMIN_USER)
        .tag_resource(
            WEST,
            &key_id,
            &[Tag::new("replicate-to", format!("{value} eu-west-1"))],
        )
        .await
        .unwrap();
    let event = twin.take_trail().remove(0);
    let kms = as_function(&twin, &cfg, REPLICATE_ROLE);
    let replicator = Replicator {
        kms: &kms,
        audit: &twin,
        config: &cfg,
    };
    let synced = replicator.handle(&event, None).await.unwrap();

    assert_eq!(synced["report"]["primary_region"], WEST, "{synced:#}");
    assert_eq!(synced["report"]["outcome"], "created", "{synced:#}");
    let replica = twin.key(EU, &key_id).expect("a replica in eu-west-1");
    assert_eq!(replica.multi_region, Some(MultiRegionKeyType::Replica));
    assert_eq!(replica.primary_region, WEST);
    let new_primary = twin.key(WEST, &key_id).unwrap();
    let (expected, _) = rewrite_policy(&new_primary.policy, WEST, EU).unwrap();
    assert_eq!(replica.policy, expected);
    assert!(replica.policy.contains("s3.eu-west-1.amazonaws.com"));
    assert!(!replica.policy.contains(WEST) && !replica.policy.contains(PRIMARY_REGION));
    assert_eq!(twin.aliases(EU).get("alias/payments"), Some(&key_id));
    // The old primary's Region is still a replica, untouched.
    assert_eq!(
        twin.key(PRIMARY_REGION, &key_id).unwrap().multi_region,
        Some(MultiRegionKeyType::Replica)
    );
}

#[tokio::test]
async fn the_old_primary_is_not_deleted_when_removed_replicas_are_scheduled_for_deletion() {
    let twin = Twin::new();
    let cfg = Config {
        removal: RemovalPolicy::ScheduleDeletion {
            pending_window_days: 7,
        },
        ..config()
    };
    let key_id = replicated_key(&twin, &cfg, "us-west-2").await;

    let out = run(&twin, &cfg, json!({"key": key_id, "to": WEST})).await;

    assert_eq!(out["keys"][0]["outcome"], "promoted", "{out:#}");
    let old = twin.key(PRIMARY_REGION, &key_id).unwrap();
    assert_eq!(old.state, KeyState::Enabled);
    assert_eq!(count_op(&twin.calls(), Op::ScheduleKeyDeletion), 0);
}

#[tokio::test]
async fn invalid_input_is_an_error_and_touches_nothing() {
    let twin = Twin::new();
    let cfg = config();
    replicated_key(&twin, &cfg, "us-west-2").await;
    for (input, expected) in [
        (
            json!({"key": "alias/payments", "to": WEST, "force": true}),
            "unknown field `force`",
        ),
        (json!({"key": "alias/payments"}), "missing field `to`"),
        (
            json!({"key": "alias/payments", "from": PRIMARY_REGION, "to": WEST}),
            "not both",
        ),
        (json!({"from": WEST, "to": WEST}), "nothing to promote"),
        (
            json!({"key": "alias/payments", "to": "us-west"}),
            "not an AWS Region name",
        ),
        (
            json!({"key": "alias/payments", "to": "ap-south-1"}),
            "not in ALLOWED_REGIONS",
        ),
        (
            json!({"key": "alias/nope", "to": WEST}),
            "key 'alias/nope' not found in us-east-1, us-west-2, eu-west-1",
        ),
    ] {
        let err = run_with(&twin, &cfg, settings(), input.clone())
            .await
            .unwrap_err();
        assert!(err.starts_with("invalid input: "), "{input}: {err}");
        assert!(err.contains(expected), "{input}: {err}");
    }
    assert!(writes(&twin.calls()).is_empty(), "{:?}", twin.calls());
    assert!(twin.audit_events().is_empty());
}

/// `n` managed keys in us-east-1, each with a replica in us-west-2 made by the replicator.
async fn managed_keys(twin: &Twin, cfg: &Config, n: usize) -> Vec<String> {
    let admin = twin.with_caller(ADMIN_USER);
    let policy = primary_policy(&twin.account());
    let mut ids = Vec::new();
    for i in 0..n {
        let k = admin.create_key(
            PRIMARY_REGION,
            true,
            Some(&policy),
            &format!("key {i}"),
            &[Tag::new("replicate-to", WEST)],
        );
        Syncer::new(twin, cfg)
            .sync(PRIMARY_REGION, &k.key_id, false)
            .await;
        ids.push(k.key_id);
    }
    twin.take_trail();
    twin.reset_calls();
    ids
}

#[tokio::test]
async fn a_bulk_failover_larger_than_its_deadline_returns_a_partial_report_in_time() {
    let twin = Twin::new();
    let cfg = config();
    let ids = managed_keys(&twin, &cfg, 12).await;
    // Each promotion keeps both keys Updating for 1.5 s: 12 keys two at a time need ~9 s.
    twin.set_updating_for(Duration::from_millis(1500));
    let kms = RateLimitedKms::new(as_function(&twin, &cfg, FAILOVER_ROLE), quotas());
    let f = Failover {
        kms: &kms,
        audit: &twin,
        config: &cfg,
        settings: FailoverSettings {
            concurrency: 2,
            deadline_margin: Duration::from_secs(1),
            ..settings()
        },
    };
    let started = tokio::time::Instant::now();
    let deadline = started + Duration::from_secs(4);

    let out = f
        .handle(&json!({"from": PRIMARY_REGION, "to": WEST}), Some(deadline))
        .await
        .unwrap();

    assert!(
        tokio::time::Instant::now() < deadline,
        "answered before the deadline"
    );
    let keys = out["keys"].as_array().unwrap();
    assert_eq!(keys.len(), ids.len(), "every key is in the report");
    let by = |name: &str| keys.iter().filter(|k| k["outcome"] == name).count();
    let (promoted, not_started) = (by("promoted"), by("not_started"));
    let summary = out["summary"].as_str().unwrap();
    assert!(promoted >= 2, "{summary}");
    assert!(not_started >= 1, "{summary}");
    assert_eq!(
        promoted + not_started + by("timed_out"),
        ids.len(),
        "{summary}"
    );
    assert!(
        summary.contains("not started before the invocation's deadline"),
        "{summary}"
    );
    // Keys not started were not touched: their primary is still in us-east-1.
    for k in keys.iter().filter(|k| k["outcome"] == "not_started") {
        let id = k["keyId"].as_str().unwrap();
        assert_eq!(
            twin.key(PRIMARY_REGION, id).unwrap().multi_region,
            Some(MultiRegionKeyType::Primary)
        );
    }
    // What was done is audited, before the deadline too.
    let audited = twin
        .audit_events()
        .iter()
        .filter(|e| e.detail_type == "Primary Region Updated")
        .count();
    assert_eq!(audited, promoted);
}

#[tokio::test]
async fn a_key_that_denies_the_failover_role_is_reported_and_the_others_are_promoted() {
    let twin = Twin::new();
    let cfg = config();
    let ids = managed_keys(&twin, &cfg, 3).await;
    // Another team's key: its policy denies the failover role DescribeKey.
    twin.inject_fault(
        Some(PRIMARY_REGION),
        Some(Op::DescribeKey),
        "AccessDeniedException",
        1,
    );

    let out = run(&twin, &cfg, json!({"from": PRIMARY_REGION, "to": WEST})).await;

    let keys = out["keys"].as_array().unwrap();
    assert_eq!(keys.len(), ids.len(), "{out:#}");
    let outcomes: Vec<&str> = keys
        .iter()
        .map(|k| k["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes.iter().filter(|o| **o == "promoted").count(),
        2,
        "{outcomes:?}"
    );
    let denied = keys.iter().find(|k| k["outcome"] == "skipped").unwrap();
    assert!(denied["reason"]
        .as_str()
        .unwrap()
        .contains("may not read this key"));
    assert!(out["error"].is_null());
}

#[tokio::test]
async fn with_the_primarys_region_down_a_replica_arn_still_gets_its_replica_checked() {
    let twin = Twin::new();
    let cfg = config();
    let key_id = replicated_key(&twin, &cfg, "us-west-2").await;
    twin.set_region_down(PRIMARY_REGION, true);
    let arn = format!("arn:aws:kms:{WEST}:{}:key/{key_id}", twin.account());

    let out = run(&twin, &cfg, json!({"key": arn, "to": WEST})).await;

    let key = &out["keys"][0];
    assert_eq!(key["outcome"], "failed", "{key:#}");
    assert_eq!(key["cause"], "region_unreachable");
    assert_eq!(check(key, "replica_in_target")["passed"], true);
    assert_eq!(check(key, "replica_enabled")["passed"], true);
    assert!(key["reason"]
        .as_str()
        .unwrap()
        .contains("remain usable for cryptography"));
    assert!(writes(&twin.calls()).is_empty());
}

#[tokio::test]
async fn a_key_the_replicator_does_not_manage_is_left_alone_unless_asked() {
    let twin = Twin::new();
    let cfg = config();
    let admin = twin.with_caller(ADMIN_USER);
    let k = admin.create_key(PRIMARY_REGION, true, None, "another team's", &[]);
    admin
        .replicate_key(PRIMARY_REGION, &k.key_id, WEST, &Default::default())
        .await
        .unwrap();
    twin.reset_calls();

    let out = run(&twin, &cfg, json!({"key": k.key_id, "to": WEST})).await;
    let key = &out["keys"][0];
    assert_eq!(key["outcome"], "failed", "{key:#}");
    assert_eq!(key["cause"], "not_managed");
    assert!(key["reason"].as_str().unwrap().contains("includeUnmanaged"));
    assert!(writes(&twin.calls()).is_empty());

    let out = run(
        &twin,
        &cfg,
        json!({"key": k.key_id, "to": WEST, "includeUnmanaged": true}),
    )
    .await;
    assert_eq!(out["keys"][0]["outcome"], "promoted", "{out:#}");
}

#[tokio::test]
async fn with_a_third_region_stalled_a_bulk_failover_of_a_healthy_pair_reports_every_key_in_time() {
    let twin = Twin::new();
    let cfg = config();
    let admin = twin.with_caller(ADMIN_USER);
    let policy = primary_policy(&twin.account());
    let mut ids = Vec::new();
    for i in 0..3 {
        let k = admin.create_key(
            PRIMARY_REGION,
            true,
            Some(&policy),
            &format!("key {i}"),
            &[Tag::new("replicate-to", "us-west-2 eu-west-1")],
        );
        Syncer::new(&twin, &cfg)
            .sync(PRIMARY_REGION, &k.key_id, false)
            .await;
        ids.push(k.key_id);
    }
    // eu-west-1 accepts requests and never answers (not down: stalled).
    twin.set_stall(Some(EU), None, None);
    let kms = as_function(&twin, &cfg, FAILOVER_ROLE);
    let f = Failover {
        kms: &kms,
        audit: &twin,
        config: &cfg,
        settings: FailoverSettings {
            concurrency: 3,
            deadline_margin: Duration::from_secs(2),
            ..settings()
        },
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);

    let out = f
        .handle(&json!({"from": PRIMARY_REGION, "to": WEST}), Some(deadline))
        .await
        .unwrap();

    assert!(
        tokio::time::Instant::now() < deadline,
        "answered before the deadline"
    );
    let keys = out["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 3, "{out:#}");
    for k in keys {
        // Promoted: the pair is healthy. The sync to the stalled Region is cut short and said so.
        assert_eq!(k["outcome"], "promoted_with_warnings", "{k:#}");
        assert!(k["reason"]
            .as_str()
            .unwrap()
            .contains("did not finish before the invocation's deadline"));
    }
    for id in &ids {
        assert_eq!(
            twin.key(WEST, id).unwrap().multi_region,
            Some(MultiRegionKeyType::Primary)
        );
    }
    assert_eq!(
        twin.audit_events()
            .iter()
            .filter(|e| e.detail_type == "Primary Region Updated")
            .count(),
        3
    );
    twin.clear_stalls();
}
