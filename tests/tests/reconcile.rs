//! The reconcile function's handler, end to end on the in-memory KMS twin: drift that no event
//! reported is found by the plan (with no write) and repaired by the sweep, thousands of keys
//! are swept within the KMS request quotas, a sweep stops cleanly at its deadline and the
//! next one finishes, and bad input is refused before any call.

use integration_tests::scenarios::enforce_kms_quotas;
use integration_tests::{
    as_function, config, people_tags, primary_policy, replicator_writes, seed_primary,
    PRIMARY_REGION,
};
use kms_replicator::limit::{Quotas, RateLimitedKms, GET_RESOURCES_RATE};
use kms_replicator::model::Tag;
use kms_replicator::policy::rewrite_policy;
use kms_replicator::Op;
use kms_replicator::{Config, Kms, Syncer};
use reconcile::{Reconciler, Settings};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use twin::{Twin, ADMIN_USER, FAILOVER_ROLE, RECONCILE_ROLE};

const WEST: &str = "us-west-2";
const EU: &str = "eu-west-1";
/// The EventBridge Scheduled Event as documented in the EventBridge User Guide ("Amazon
/// CloudWatch Events Scheduled Events"), scheduled `minutes` (under a day) after midnight.
fn scheduled_event(minutes: u64) -> Value {
    json!({
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": format!("2015-10-08T{:02}:{:02}:06Z", minutes / 60 % 24, minutes % 60),
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/MyScheduledRule"],
        "detail": {}
    })
}

/// The twin behind the rate limiter the function uses in production.
struct Env {
    twin: Twin,
    kms: RateLimitedKms<Twin>,
    cfg: Config,
    settings: Settings,
}

impl Env {
    fn new() -> Env {
        Env::with(Quotas::kms(50), config())
    }

    fn with(quotas: Quotas, cfg: Config) -> Env {
        let twin = Twin::new();
        Env {
            kms: RateLimitedKms::new(as_function(&twin, &cfg, RECONCILE_ROLE), quotas),
            twin,
            cfg,
            settings: Settings::default(),
        }
    }

    async fn invoke_by(
        &self,
        payload: &Value,
        deadline: tokio::time::Instant,
    ) -> Result<Value, String> {
        let r = Reconciler {
            kms: &self.kms,
            tags: &self.kms,
            audit: &self.twin,
            config: &self.cfg,
            settings: &self.settings,
            limiter: Some(&self.kms),
        };
        r.handle(payload, Some(deadline))
            .await
            .map_err(|e| e.to_string())
    }

    async fn invoke(&self, payload: &Value) -> Result<Value, String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(900);
        self.invoke_by(payload, deadline).await
    }

    async fn plan(&self) -> Value {
        self.invoke(&json!({"dryRun": true})).await.expect("a plan")
    }

    async fn sweep(&self) -> Value {
        self.invoke(&scheduled_event(0)).await.expect("a sweep")
    }
}

/// A primary with two aliases, tagged for us-west-2 and eu-west-1 by a person, with no event
/// ever delivered (the stack was not deployed yet).
async fn tagged_without_event(twin: &Twin) -> String {
    let key_id = seed_primary(twin).await;
    twin.with_caller(ADMIN_USER)
        .tag_resource(
            PRIMARY_REGION,
            &key_id,
            &[Tag::new("replicate-to", "us-west-2 eu-west-1")],
        )
        .await
        .unwrap();
    key_id
}

/// An environment whose one managed key is in sync in both replica Regions.
async fn in_sync() -> (Env, String) {
    let env = Env::new();
    let key_id = tagged_without_event(&env.twin).await;
    env.sweep().await;
    env.twin.take_trail();
    env.twin.reset_calls();
    (env, key_id)
}

fn regions_of(out: &Value, key_id: &str) -> Vec<Value> {
    out["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key_id"] == key_id)
        .unwrap_or_else(|| panic!("{key_id} not in {out:#}"))["regions"]
        .as_array()
        .unwrap()
        .clone()
}

fn ops_in(out: &Value, key_id: &str, region: &str) -> Vec<String> {
    regions_of(out, key_id)
        .iter()
        .find(|r| r["region"] == region)
        .map(|r| {
            r["actions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["op"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The plan shows `op` in `region` and writes nothing; the sweep then makes that write; a
/// second sweep writes nothing at all.
async fn planned_then_repaired(env: &Env, key_id: &str, region: &str, op: &str) -> (Value, Value) {
    env.twin.take_trail();
    env.twin.reset_calls();
    let plan = env.plan().await;
    assert_eq!(plan["action"], "planned");
    assert_eq!(plan["counts"]["planned"], 1, "{plan:#}");
    assert!(
        ops_in(&plan, key_id, region).contains(&op.to_string()),
        "{plan:#}"
    );
    assert!(
        replicator_writes(&env.twin.calls()).is_empty(),
        "a plan writes nothing"
    );
    assert!(env.twin.take_trail().is_empty());

    let applied = env.sweep().await;
    assert_eq!(applied["counts"]["repaired"], 1, "{applied:#}");
    assert_eq!(applied["counts"]["failed"], 0, "{applied:#}");
    assert!(ops_in(&applied, key_id, region).contains(&op.to_string()));
    assert!(replicator_writes(&env.twin.calls())
        .iter()
        // ReplicateKey is sent to the primary's Region.
        .any(|c| c.op == op && (c.region == region || op == "ReplicateKey")));

    env.twin.reset_calls();
    let again = env.sweep().await;
    assert_eq!(again["counts"]["repaired"], 0, "{again:#}");
    assert!(
        replicator_writes(&env.twin.calls()).is_empty(),
        "{:?}",
        replicator_writes(&env.twin.calls())
    );
    (plan, applied)
}

fn assert_mirrors_primary(twin: &Twin, key_id: &str, region: &str) {
    let primary = twin.key(PRIMARY_REGION, key_id).unwrap();
    let replica = twin.key(region, key_id).expect("replica exists");
    let (policy, _) = rewrite_policy(&primary.policy, PRIMARY_REGION, region).unwrap();
    assert_eq!(replica.policy, policy);
    assert_eq!(people_tags(&replica.tags), people_tags(&primary.tags));
    assert_eq!(replica.description, primary.description);
    let aliases = twin.aliases(region);
    for alias in ["alias/payments", "alias/payments-ledger"] {
        assert_eq!(
            aliases.get(alias),
            Some(&key_id.to_string()),
            "{alias} in {region}"
        );
    }
}

#[tokio::test]
async fn a_key_tagged_before_the_stack_existed_is_planned_without_writes_then_replicated() {
    let env = Env::new();
    let key_id = tagged_without_event(&env.twin).await;
    env.twin.take_trail();

    let plan = env.plan().await;

    assert_eq!(plan["counts"]["planned"], 1);
    for region in [WEST, EU] {
        assert_eq!(
            ops_in(&plan, &key_id, region),
            ["ReplicateKey", "CreateAlias", "CreateAlias"]
        );
    }
    let summary = plan["summary"].as_str().unwrap();
    println!("{summary}");
    assert!(
        summary.starts_with("Plan: 6 change(s) to 1 key(s)"),
        "{summary}"
    );
    assert!(summary.contains(&format!(
        "+ {key_id} (us-east-1) -> us-west-2: create replica (the primary's policy with 3 \
         Region rewrite(s), 4 tag(s), description \"payments data key\")"
    )));
    assert!(summary.contains(&format!(
        "+ {key_id} (us-east-1) -> eu-west-1: create alias alias/payments"
    )));
    assert!(replicator_writes(&env.twin.calls()).is_empty());
    assert!(env.twin.take_trail().is_empty(), "a plan writes nothing");
    assert!(
        env.twin.audit_events().is_empty(),
        "a plan publishes no audit event"
    );

    let applied = env.sweep().await;

    assert_eq!(applied["action"], "reconciled");
    assert_eq!(applied["complete"], true);
    assert_eq!(applied["counts"]["repaired"], 1);
    for region in [WEST, EU] {
        assert_mirrors_primary(&env.twin, &key_id, region);
    }
    let audit = env.twin.audit_events();
    assert_eq!(audit.len(), 2);
    assert!(audit.iter().all(|e| e.detail_type == "Replica Created"));
    assert_eq!(audit[0].detail["trigger"]["eventName"], "Scheduled Event");

    env.twin.reset_calls();
    let again = env.sweep().await;
    assert_eq!(again["counts"]["inSync"], 1);
    assert!(
        again["keys"].as_array().unwrap().is_empty(),
        "in-sync keys are only counted"
    );
    assert!(replicator_writes(&env.twin.calls()).is_empty());
    assert_eq!(env.twin.audit_events().len(), 2);
}

#[tokio::test]
async fn a_policy_edited_on_a_replica_is_planned_as_a_diff_and_restored() {
    let (env, key_id) = in_sync().await;
    let edited = primary_policy(&env.twin.account())
        .replace("us-east-1", WEST)
        .replace("payments-app", "someone-else");
    env.twin
        .with_caller(ADMIN_USER)
        .put_key_policy(WEST, &key_id, &edited)
        .await
        .unwrap();

    let (plan, _) = planned_then_repaired(&env, &key_id, WEST, "PutKeyPolicy").await;

    let west = regions_of(&plan, &key_id)
        .into_iter()
        .find(|r| r["region"] == WEST)
        .unwrap();
    assert_eq!(
        west["policy_diff"],
        json!([{
            "path": "Statement[AllowUseViaS3].Principal.AWS",
            "from": "arn:aws:iam::111122223333:role/someone-else",
            "to": "arn:aws:iam::111122223333:role/payments-app"
        }])
    );
    let summary = plan["summary"].as_str().unwrap();
    println!("{summary}");
    assert!(
        summary.contains(&format!(
            "~ {key_id} (us-east-1) -> us-west-2: update key policy (1 difference(s))\n    ~ \
         Statement[AllowUseViaS3].Principal.AWS: \
         \"arn:aws:iam::111122223333:role/someone-else\" -> \
         \"arn:aws:iam::111122223333:role/payments-app\""
        )),
        "{summary}"
    );
    assert_mirrors_primary(&env.twin, &key_id, WEST);
}

#[tokio::test]
async fn an_alias_deleted_in_a_replica_region_is_planned_and_recreated() {
    let (env, key_id) = in_sync().await;
    env.twin
        .with_caller(ADMIN_USER)
        .delete_alias(EU, "alias/payments-ledger")
        .await
        .unwrap();

    let (plan, _) = planned_then_repaired(&env, &key_id, EU, "CreateAlias").await;

    assert_eq!(ops_in(&plan, &key_id, EU), ["CreateAlias"]);
    assert!(plan["summary"]
        .as_str()
        .unwrap()
        .contains("-> eu-west-1: create alias alias/payments-ledger"));
    assert_mirrors_primary(&env.twin, &key_id, EU);
}

#[tokio::test]
async fn a_tag_removed_from_a_replica_is_planned_and_put_back() {
    let (env, key_id) = in_sync().await;
    env.twin
        .with_caller(ADMIN_USER)
        .untag_resource(WEST, &key_id, &["team".to_string()])
        .await
        .unwrap();

    let (plan, _) = planned_then_repaired(&env, &key_id, WEST, "TagResource").await;

    assert!(plan["summary"]
        .as_str()
        .unwrap()
        .contains("-> us-west-2: tag team=\"payments\""));
    assert_mirrors_primary(&env.twin, &key_id, WEST);
}

#[tokio::test]
async fn a_tag_added_to_a_replica_by_hand_is_planned_and_removed() {
    let (env, key_id) = in_sync().await;
    env.twin
        .with_caller(ADMIN_USER)
        .tag_resource(EU, &key_id, &[Tag::new("owner", "bob")])
        .await
        .unwrap();

    let (plan, _) = planned_then_repaired(&env, &key_id, EU, "UntagResource").await;

    assert!(plan["summary"]
        .as_str()
        .unwrap()
        .contains("-> eu-west-1: untag owner"));
    assert_mirrors_primary(&env.twin, &key_id, EU);
}

#[tokio::test]
async fn a_description_changed_on_a_replica_is_planned_and_restored() {
    let (env, key_id) = in_sync().await;
    env.twin
        .with_caller(ADMIN_USER)
        .update_key_description(EU, &key_id, "edited by hand")
        .await
        .unwrap();

    let (plan, _) = planned_then_repaired(&env, &key_id, EU, "UpdateKeyDescription").await;

    assert!(plan["summary"]
        .as_str()
        .unwrap()
        .contains("-> eu-west-1: set description \"payments data key\""));
    assert_mirrors_primary(&env.twin, &key_id, EU);
}

#[tokio::test]
async fn a_deleted_replica_is_planned_and_made_again_with_its_aliases() {
    let (env, key_id) = in_sync().await;
    env.twin.purge_key(WEST, &key_id);

    let (plan, applied) = planned_then_repaired(&env, &key_id, WEST, "ReplicateKey").await;

    assert_eq!(
        ops_in(&plan, &key_id, WEST),
        ["ReplicateKey", "CreateAlias", "CreateAlias"]
    );
    assert_eq!(ops_in(&plan, &key_id, EU), Vec::<String>::new());
    assert_eq!(applied["keys"][0]["outcome"], "created");
    assert_mirrors_primary(&env.twin, &key_id, WEST);
}

#[tokio::test]
async fn a_plan_can_be_narrowed_to_keys_or_regions() {
    let (env, key_id) = in_sync().await;
    let admin = env.twin.with_caller(ADMIN_USER);
    admin
        .update_key_description(WEST, &key_id, "edited by hand")
        .await
        .unwrap();
    let other = admin
        .create_key(
            WEST,
            true,
            None,
            "west primary",
            &[Tag::new("replicate-to", EU)],
        )
        .key_id;

    let by_alias = env
        .invoke(&json!({"dryRun": true, "keys": ["alias/payments"]}))
        .await
        .unwrap();
    assert_eq!(by_alias["counts"]["scanned"], 1, "{by_alias:#}");
    assert_eq!(ops_in(&by_alias, &key_id, WEST), ["UpdateKeyDescription"]);

    let west_only = env
        .invoke(&json!({"dryRun": true, "regions": [WEST]}))
        .await
        .unwrap();
    // us-west-2's own primary, and the replica of the us-east-1 key, reported as out of scope.
    assert_eq!(ops_in(&west_only, &other, EU), ["ReplicateKey"]);
    let skipped = west_only["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key_id"] == key_id.as_str());
    assert!(
        skipped.is_none() || skipped.unwrap()["outcome"] == "skipped",
        "{west_only:#}"
    );
    assert!(replicator_writes(&env.twin.calls()).is_empty());
}

#[tokio::test]
async fn a_tagged_single_region_key_is_reported_without_a_call() {
    let env = Env::new();
    env.twin.with_caller(ADMIN_USER).create_key(
        PRIMARY_REGION,
        false,
        None,
        "",
        &[Tag::new("replicate-to", WEST)],
    );
    let plan = env.plan().await;
    assert_eq!(plan["counts"]["skipped"], 1);
    assert!(plan["summary"]
        .as_str()
        .unwrap()
        .contains("single-Region key"));
    assert!(env.twin.calls().iter().all(|c| c.op != "DescribeKey"));
}

/// The cost of a key in sync, per the brief: discovery plus sync, counted on the twin.
#[tokio::test]
async fn a_key_in_sync_costs_three_reads_per_region_it_lives_in() {
    let env = Env::with(Quotas::unlimited(), config());
    let n = 50;
    let admin = env.twin.with_caller(ADMIN_USER);
    let policy = primary_policy(&env.twin.account());
    for i in 0..n {
        let key = admin
            .create_key(
                PRIMARY_REGION,
                true,
                Some(&policy),
                "payments data key",
                &[
                    Tag::new("team", "payments"),
                    Tag::new("replicate-to", "us-west-2 eu-west-1"),
                ],
            )
            .key_id;
        for alias in [format!("alias/app-{i}"), format!("alias/app-{i}-ledger")] {
            admin
                .create_alias(PRIMARY_REGION, &alias, &key)
                .await
                .unwrap();
        }
    }
    env.sweep().await;
    env.twin.reset_calls();

    let out = env.sweep().await;

    assert_eq!(out["counts"]["inSync"], n);
    let calls = env.twin.calls();
    let mut by_op: HashMap<Op, usize> = HashMap::new();
    for c in &calls {
        *by_op.entry(c.op).or_default() += 1;
    }
    let per_key = calls.len() as f64 / n as f64;
    println!(
        "calls per in-sync key (1 primary + 2 replicas): {per_key:.2}; by operation: {by_op:?}"
    );
    // Per key: DescribeKey, GetKeyPolicy and ListResourceTags in each of its 3 Regions.
    // Per sweep: one GetResources per managed Region, one ListAliases per Region.
    assert_eq!(by_op[&Op::DescribeKey], 3 * n);
    assert_eq!(by_op[&Op::GetKeyPolicy], 3 * n);
    assert_eq!(by_op[&Op::ListResourceTags], 3 * n);
    assert_eq!(by_op[&Op::GetResources], 3);
    assert_eq!(by_op[&Op::ListAliases], 3);
    assert!(per_key <= 9.2, "{per_key}");

    // The same work with ListKeys discovery and a plain sync per key, for comparison.
    env.twin.reset_calls();
    let cfg = config();
    // ListKeys discovery is the failover function's (bulk mode): its role lists keys.
    let failover = as_function(&env.twin, &cfg, FAILOVER_ROLE);
    let syncer = Syncer::new(&failover, &cfg);
    for region in &cfg.managed_regions {
        for key in kms_replicator::discover::managed_primaries(&failover, &cfg, region)
            .await
            .unwrap()
            .primaries
        {
            syncer.sync(region, &key.key_id, false).await;
        }
    }
    let before = env.twin.calls().len() as f64 / n as f64;
    println!("for comparison, ListKeys discovery + sync: {before:.2} calls per key");
    assert!(before > per_key);
}

/// The brief's scale test: 2000 keys in 2 Regions, 30 of them missing a replica, every KMS
/// operation of the twin rate-limited at the real KMS quota.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_of_2000_keys_under_the_real_quotas_is_never_throttled() {
    let cfg = Config::new(&["us-east-1", "us-west-2"]);
    let setup = Env::with(Quotas::unlimited(), cfg.clone());
    let twin = setup.twin.clone();
    let admin = twin.with_caller(ADMIN_USER);
    let mut keys = Vec::new();
    for i in 0..2000 {
        let (home, away) = if i % 2 == 0 {
            ("us-east-1", WEST)
        } else {
            (WEST, "us-east-1")
        };
        let key = admin
            .create_key(
                home,
                true,
                None,
                &format!("key {i}"),
                &[
                    Tag::new("replicate-to", away),
                    Tag::new("app", format!("app-{}", i % 7)),
                ],
            )
            .key_id;
        admin
            .create_alias(home, &format!("alias/app-{i}"), &key)
            .await
            .unwrap();
        keys.push((home, away, key));
    }
    let first = setup.sweep().await;
    assert_eq!(first["counts"]["repaired"], 2000);
    for (_, away, key) in keys.iter().take(30) {
        twin.purge_key(away, key);
    }
    enforce_kms_quotas(&twin);
    twin.set_rate_limit(Op::GetResources, GET_RESOURCES_RATE);
    twin.reset_calls();
    let env = Env {
        kms: RateLimitedKms::new(
            as_function(&twin, &cfg, RECONCILE_ROLE),
            Quotas::kms(u32::MAX),
        ),
        twin: twin.clone(),
        cfg,
        settings: Settings::default(),
    };

    let started = Instant::now();
    let out = env.sweep().await;
    let took = started.elapsed();

    println!("sweep of 2000 keys, 30 missing a replica, under the KMS quotas: {took:?}");
    assert_eq!(twin.throttled_count(), 0);
    assert_eq!(out["counts"]["repaired"], 30, "{}", out["summary"]);
    assert_eq!(out["counts"]["inSync"], 1970);
    assert_eq!(out["counts"]["failed"], 0);
    assert_eq!(out["complete"], true);
    for (_, away, key) in keys.iter().take(30) {
        assert!(twin.key(away, key).is_some());
    }
    // Checked independently of the twin's own counting: no (Region, operation) ever had more
    // calls than its quota within any one-second window.
    let mut by_bucket: HashMap<(String, Op), Vec<Instant>> = HashMap::new();
    for c in twin.calls() {
        by_bucket
            .entry((c.region.clone(), c.op))
            .or_default()
            .push(c.at);
    }
    for ((region, op), mut times) in by_bucket {
        let Some(quota) = op.kms_quota() else {
            continue;
        };
        times.sort();
        let mut j = 0;
        for i in 0..times.len() {
            while times[i].duration_since(times[j]) >= Duration::from_secs(1) {
                j += 1;
            }
            assert!(
                i - j < quota as usize,
                "{op} in {region}: more than {quota} in 1 s"
            );
        }
    }

    twin.reset_calls();
    let again = env.sweep().await;
    assert_eq!(again["counts"]["inSync"], 2000);
    assert!(replicator_writes(&twin.calls()).is_empty());
    assert_eq!(twin.throttled_count(), 0);
}

/// Keys tagged while no event reached the replicator, one replica each.
async fn many_tagged(twin: &Twin, n: usize) -> Vec<String> {
    let admin = twin.with_caller(ADMIN_USER);
    let mut ids = Vec::new();
    for i in 0..n {
        let key = admin
            .create_key(
                PRIMARY_REGION,
                true,
                None,
                &format!("k{i}"),
                &[Tag::new("replicate-to", WEST)],
            )
            .key_id;
        admin
            .create_alias(PRIMARY_REGION, &format!("alias/k{i}"), &key)
            .await
            .unwrap();
        ids.push(key);
    }
    ids
}

#[tokio::test]
async fn a_sweep_that_meets_its_deadline_stops_cleanly_and_the_next_run_finishes() {
    let mut env = Env::with(Quotas::unlimited(), config());
    env.settings.concurrency = 3;
    env.settings.deadline_margin = Duration::from_millis(400);
    let ids = many_tagged(&env.twin, 30).await;
    env.twin.set_latency(Duration::from_millis(30));

    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(600);
    let first = env.invoke_by(&scheduled_event(0), deadline).await.unwrap();
    let took = started.elapsed();

    assert!(
        took < Duration::from_millis(600),
        "answered after the deadline: {took:?}"
    );
    assert_eq!(first["complete"], false, "{first:#}");
    assert_eq!(first["counts"]["failed"], 0);
    let done = first["counts"]["repaired"].as_u64().unwrap() as usize;
    let remaining = first["counts"]["remaining"].as_u64().unwrap() as usize;
    assert!((1..30).contains(&done), "{first:#}");
    assert_eq!(done + remaining, 30);
    assert!(first["summary"]
        .as_str()
        .unwrap()
        .contains("Stopped at the deadline"));

    let second = env.invoke(&scheduled_event(60)).await.unwrap();
    assert_eq!(second["complete"], true);
    assert_eq!(second["counts"]["failed"], 0);
    assert!(second["counts"]["repaired"].as_u64().unwrap() as usize >= remaining);
    for id in &ids {
        assert!(env.twin.key(WEST, id).is_some(), "{id} replicated");
    }

    env.twin.reset_calls();
    let third = env.invoke(&scheduled_event(120)).await.unwrap();
    assert_eq!(third["counts"]["inSync"], 30);
    assert!(replicator_writes(&env.twin.calls()).is_empty());
}

#[tokio::test]
async fn keys_in_flight_at_the_deadline_are_abandoned_reported_and_finished_next_time() {
    let mut env = Env::with(Quotas::unlimited(), config());
    env.settings.concurrency = 2;
    env.settings.deadline_margin = Duration::from_millis(900);
    let ids = many_tagged(&env.twin, 6).await;
    env.twin.set_latency(Duration::from_millis(150));
    let payload = json!({"keys": ids});

    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(1000);
    let first = env.invoke_by(&payload, deadline).await.unwrap();

    assert!(started.elapsed() < Duration::from_millis(1000));
    assert_eq!(first["complete"], false);
    assert_eq!(
        first["remaining"]["interrupted"].as_array().unwrap().len(),
        2,
        "{first:#}"
    );
    assert_eq!(
        first["remaining"]["notStarted"].as_array().unwrap().len(),
        4
    );

    env.twin.set_latency(Duration::ZERO);
    let second = env.invoke(&payload).await.unwrap();
    assert_eq!(second["complete"], true);
    assert_eq!(second["counts"]["failed"], 0, "{second:#}");
    for id in &ids {
        assert!(env.twin.key(WEST, id).is_some());
        assert_eq!(
            env.twin.aliases(WEST).values().filter(|k| *k == id).count(),
            1
        );
    }
}

#[tokio::test]
async fn bad_input_is_refused_with_a_clear_error_before_any_call() {
    let env = Env::new();
    let cases = [
        (json!("sweep"), "not a JSON object"),
        (json!({"dryrun": true}), "unknown field `dryrun`"),
        (json!({"dryRun": "yes"}), "expected a boolean"),
        (json!({"regions": ["us-weast-2x"]}), "is not a Region name"),
        (
            json!({"regions": ["ap-south-1"]}),
            "not managed by this deployment",
        ),
        (json!({"regions": []}), "regions is empty"),
        (
            json!({"keys": ["alias/payments"], "regions": [WEST]}),
            "not both",
        ),
        (
            json!({"keys": ["arn:aws:s3:::bucket"]}),
            "not a KMS key or alias ARN",
        ),
        (
            json!({"keys": ["arn:aws:kms:ap-south-1:111122223333:key/mrk-1"]}),
            "does not manage",
        ),
        (json!({"keys": ["not a key!"]}), "not a key id"),
        (
            json!({"source": "aws.kms", "detail-type": "AWS API Call via CloudTrail"}),
            "unknown field `source`",
        ),
    ];
    for (payload, expected) in cases {
        let err = env.invoke(&payload).await.unwrap_err();
        println!("{payload} -> {err}");
        assert!(err.starts_with("invalid input: "), "{err}");
        assert!(err.contains(expected), "{payload}: {err}");
    }
    assert!(env.twin.calls().is_empty(), "nothing was touched");
}

#[tokio::test]
async fn a_region_that_is_down_fails_the_sweep_for_a_retry_while_the_rest_is_repaired() {
    let env = Env::new();
    let key_id = tagged_without_event(&env.twin).await;
    env.twin.set_region_down(EU, true);

    let err = env.sweep_err().await;

    assert!(err.starts_with("retryable"), "{err}");
    assert!(err.contains("eu-west-1"), "{err}");
    assert!(env.twin.key(WEST, &key_id).is_some());
    env.twin.set_region_down(EU, false);
    let out = env.sweep().await;
    assert_eq!(out["counts"]["failed"], 0);
    assert!(env.twin.key(EU, &key_id).is_some());
}

impl Env {
    async fn sweep_err(&self) -> String {
        self.invoke(&scheduled_event(0)).await.unwrap_err()
    }
}
