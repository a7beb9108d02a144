//! The acceptance harness, run as `make acceptance` runs it (the `kms-acceptance` binary, its
//! opt-in, its flags), against the local cloud instead of AWS: the real `replicate`,
//! `failover` and `reconcile` binaries behind the twin over HTTP, events routed by the rules of
//! `template.yaml`. `AWS_ENDPOINT_URL` points the harness at the twin, never at AWS. The
//! person's calls sign as `admin` (Alice), as in the demo.
//!
//! The function binaries are built first with `cargo build --workspace --bins` (see
//! `integration_tests::bins`).

use integration_tests::bins::{binary, root};
use kms_replicator::model::{KeyState, MultiRegionKeyType};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};
use twin::{ADMIN_USER, FUNCTION_ROLES};
use twin_server::{LocalCloud, ADMIN_ACCESS_KEY};

const HARNESS: &str = env!("CARGO_BIN_EXE_kms-acceptance");
const HOME: &str = "us-east-1";
const REPLICAS: [&str; 2] = ["us-west-2", "eu-west-1"];
const MARK_TAG: &str = "kms-replicator-acceptance";

/// The local cloud deployed as the stack would be with `RemovalPolicy=ScheduleDeletion`;
/// without `replicate`, no event reaches a function, as when the stack has no trail.
async fn start(with_replicate: bool) -> LocalCloud {
    let mut b = LocalCloud::builder()
        .template(root().join("template.yaml"))
        .function(
            "failover",
            binary("failover").expect("target/<profile>/failover was built"),
        )
        .function(
            "reconcile",
            binary("reconcile").expect("target/<profile>/reconcile was built"),
        )
        .env("ALLOWED_REGIONS", "us-east-1 us-west-2 eu-west-1")
        .env("REMOVAL_POLICY", "ScheduleDeletion")
        .env("PENDING_WINDOW_DAYS", "7")
        .env("IGNORE_CALLER_ARNS", &FUNCTION_ROLES.join(" "))
        .function_env("failover", "FAILOVER_WAIT_SECONDS", "20")
        .retry_delay(Duration::from_millis(100))
        .timeout(Duration::from_secs(30));
    if with_replicate {
        b = b.function(
            "replicate",
            binary("replicate").expect("target/<profile>/replicate was built"),
        );
    }
    let cloud = b.start().await.expect("local cloud starts");
    // As in KMS, a promotion takes a moment: both keys are Updating.
    cloud.twin().set_updating_for(Duration::from_millis(300));
    cloud
}

/// A folder of its own for one test's report and ledger.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kms-acceptance-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The harness as `make acceptance` starts it, pointed at the local cloud, with nothing of
/// the machine's AWS configuration.
fn harness(cloud: &LocalCloud, opt_in: Option<&str>) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(HARNESS);
    c.env_clear()
        .env("AWS_ENDPOINT_URL", cloud.endpoint())
        .env("AWS_ACCESS_KEY_ID", ADMIN_ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", "local-secret")
        .env("AWS_REGION", HOME)
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .kill_on_drop(true);
    if let Some(v) = opt_in {
        c.env("KMS_REPLICATOR_ACCEPTANCE", v);
    }
    c
}

fn journey_args(dir: &Path, wait: &str) -> Vec<String> {
    [
        "--replica-regions",
        &REPLICAS.join(" "),
        "--failover-function",
        "failover",
        "--reconcile-function",
        "reconcile",
        "--removal-policy",
        "ScheduleDeletion",
        "--wait",
        wait,
        "--poll",
        "100ms",
        "--report",
        &dir.join("report.json").to_string_lossy(),
        "--ledger",
        &dir.join("ledger.json").to_string_lossy(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

async fn run(mut c: tokio::process::Command) -> Output {
    let out = tokio::time::timeout(Duration::from_secs(120), c.output())
        .await
        .expect("the harness ends within its bounds")
        .expect("the harness starts");
    eprintln!(
        "---- harness stdout ----\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    eprintln!(
        "---- harness stderr ----\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn report(dir: &Path) -> Value {
    let text =
        std::fs::read_to_string(dir.join("report.json")).expect("the JSON report was written");
    serde_json::from_str(&text).expect("the report is JSON")
}

fn statuses(steps: &Value) -> Vec<(String, String)> {
    steps
        .as_array()
        .expect("a list of steps")
        .iter()
        .map(|s| {
            (
                s["step"].as_str().unwrap().to_string(),
                s["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn key_id_of(report: &Value) -> String {
    let arn = report["key"]
        .as_str()
        .expect("the report names the test key");
    arn.rsplit('/').next().unwrap().to_string()
}

/// A key and alias of Alice's own, which look like the harness's but are not its: cleanup
/// must leave them alone.
async fn bystander(cloud: &LocalCloud) -> String {
    let kms = cloud.kms_client(ADMIN_ACCESS_KEY, HOME).await;
    let tag = aws_sdk_kms::types::Tag::builder()
        .tag_key(MARK_TAG)
        .tag_value("someone-elses-run")
        .build()
        .unwrap();
    let key = kms
        .create_key()
        .multi_region(true)
        .tags(tag)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    kms.create_alias()
        .alias_name("alias/kms-replicator-acceptance-bystander")
        .target_key_id(&key)
        .send()
        .await
        .unwrap();
    key
}

fn assert_bystander_untouched(cloud: &LocalCloud, key: &str) {
    let k = cloud.twin().key(HOME, key).expect("the bystander key");
    assert_eq!(k.state, KeyState::Enabled);
    assert_eq!(
        cloud
            .twin()
            .aliases(HOME)
            .get("alias/kms-replicator-acceptance-bystander"),
        Some(&key.to_string())
    );
}

/// Nothing of the key is enabled or aliased in any Region, and every deletion Alice
/// scheduled is of this key, with the 7-day minimum.
fn assert_cleaned_up(cloud: &LocalCloud, key: &str) {
    for region in [HOME, REPLICAS[0], REPLICAS[1]] {
        if let Some(k) = cloud.twin().key(region, key) {
            assert!(k.state.is_pending_deletion(), "{region}: {}", k.state);
        }
        let aliased: Vec<String> = cloud
            .twin()
            .aliases(region)
            .into_iter()
            .filter(|(_, k)| k == key)
            .map(|(a, _)| a)
            .collect();
        assert!(aliased.is_empty(), "{region}: {aliased:?}");
    }
    let deletions: Vec<Value> = cloud
        .deliveries()
        .into_iter()
        .filter(|d| d.event_name() == "ScheduleKeyDeletion" && d.caller() == ADMIN_USER)
        .map(|d| d.event["detail"].clone())
        .collect();
    assert!(!deletions.is_empty());
    for d in deletions {
        assert_eq!(d["requestParameters"]["pendingWindowInDays"], 7, "{d}");
        assert_eq!(d["requestParameters"]["keyId"], key, "{d}");
    }
}

#[tokio::test]
async fn the_harness_passes_every_journey_against_the_local_cloud_and_leaves_nothing_enabled() {
    let cloud = start(true).await;
    let dir = scratch("journeys");
    let other = bystander(&cloud).await;

    let mut c = harness(&cloud, Some("1"));
    c.args(journey_args(&dir, "30s"));
    let out = run(c).await;

    assert!(out.status.success(), "exit status {:?}", out.status);
    let r = report(&dir);
    assert_eq!(r["passed"], true, "{r:#}");
    assert_eq!(r["endpoint"], cloud.endpoint());
    let journey = statuses(&r["journey"]);
    let expected = [
        "create_key",
        "tag",
        "replicas_created",
        "replicas_mirror_the_primary",
        "policy_edit",
        "region_removal",
        "failover_dry_run",
        "promotion",
    ];
    assert_eq!(
        journey,
        expected.map(|s| (s.to_string(), "passed".to_string())),
        "{r:#}"
    );
    let cleanup = statuses(&r["cleanup"]);
    assert_eq!(cleanup.len(), 5, "{r:#}");
    assert!(cleanup.iter().all(|(_, s)| s == "passed"), "{cleanup:?}");
    assert_eq!(r["left_behind"], serde_json::json!([]));
    assert!(String::from_utf8_lossy(&out.stdout).ends_with("PASSED\n"));

    // What the harness saw is what the twin holds.
    cloud.settle(Duration::from_secs(30)).await.unwrap();
    let key = key_id_of(&r);
    let promoted = cloud
        .twin()
        .key(REPLICAS[0], &key)
        .expect("the promoted key");
    assert_eq!(promoted.multi_region, Some(MultiRegionKeyType::Primary));
    assert_eq!(
        promoted.state,
        KeyState::PendingReplicaDeletion,
        "a primary whose replicas are pending deletion"
    );
    let removed = cloud
        .twin()
        .key(REPLICAS[1], &key)
        .expect("the removed Region's replica");
    assert_eq!(removed.state, KeyState::PendingDeletion);
    assert_eq!(
        cloud.twin().key(HOME, &key).unwrap().multi_region,
        Some(MultiRegionKeyType::Replica)
    );
    assert_cleaned_up(&cloud, &key);
    assert_bystander_untouched(&cloud, &other);
    assert!(
        !dir.join("ledger.json").exists(),
        "a clean run removes its ledger"
    );
    // The on-call steps went through Lambda's Invoke API to the deployed function.
    let failovers: Vec<Value> = cloud
        .invocations()
        .into_iter()
        .filter(|i| i.function == "failover")
        .map(|i| i.result.expect("the failover function answered"))
        .collect();
    assert_eq!(failovers.len(), 2, "{failovers:?}");
    assert_eq!(failovers[0]["dryRun"], true);
    assert_eq!(failovers[1]["keys"][0]["outcome"], "promoted");
    assert!(cloud.dead_letters().is_empty());
}

#[tokio::test]
async fn a_step_that_fails_is_explained_the_rest_is_not_run_and_cleanup_still_removes_everything() {
    // No replicate function: the tag is never acted on, as with no trail in the account.
    let cloud = start(false).await;
    let dir = scratch("failed-step");
    let other = bystander(&cloud).await;

    let mut c = harness(&cloud, Some("1"));
    c.args(journey_args(&dir, "2s"));
    let started = Instant::now();
    let out = run(c).await;

    assert_eq!(out.status.code(), Some(1));
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "bounded by --wait"
    );
    let r = report(&dir);
    assert_eq!(r["passed"], false);
    let journey = statuses(&r["journey"]);
    assert_eq!(journey[0].1, "passed");
    assert_eq!(journey[1].1, "passed");
    assert_eq!(journey[2], ("replicas_created".into(), "failed".into()));
    assert!(
        journey[3..].iter().all(|(_, s)| s == "not_run"),
        "{journey:?}"
    );
    let failed = &r["journey"][2];
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.starts_with("a replica in each Region: not so after 2s"),
        "{error}"
    );
    assert!(error.contains("us-west-2: no key"), "{error}");
    // The reconcile function's plan says what the replicator would still do, and its repair
    // of the key tells a missing event from a missing permission.
    let seen: Vec<&str> = failed["seen"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(
        seen.iter()
            .any(|l| l.starts_with("reconcile's plan: ") && l.contains("create replica")),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|l| l.starts_with("reconcile's repair: Applied: 4 change(s) to 1 key(s)")),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|l| l.contains("the event did not reach the replicate function")),
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|l| l.starts_with("where to look:")),
        "{seen:?}"
    );

    let cleanup = statuses(&r["cleanup"]);
    assert!(cleanup.iter().all(|(_, s)| s == "passed"), "{cleanup:?}");
    let key = key_id_of(&r);
    // The repair's replicas were found through the key's multi-Region configuration.
    for region in REPLICAS {
        assert_eq!(
            cloud.twin().key(region, &key).unwrap().state,
            KeyState::PendingDeletion,
            "{region}"
        );
    }
    assert_eq!(
        cloud.twin().key(HOME, &key).unwrap().state,
        KeyState::PendingReplicaDeletion
    );
    assert_cleaned_up(&cloud, &key);
    assert_bystander_untouched(&cloud, &other);
}

#[tokio::test]
async fn a_refused_promotion_fails_that_step_in_the_functions_words_and_cleanup_still_runs() {
    let cloud = start(true).await;
    let dir = scratch("refused-promotion");
    // The first UpdatePrimaryRegion (the promotion; the dry run makes none) is refused.
    cloud.twin().inject_fault(
        Some(HOME),
        Some(kms_replicator::Op::UpdatePrimaryRegion),
        "AccessDeniedException",
        1,
    );

    let mut c = harness(&cloud, Some("1"));
    c.args(journey_args(&dir, "30s"));
    let out = run(c).await;

    assert_eq!(out.status.code(), Some(1));
    let r = report(&dir);
    let journey = statuses(&r["journey"]);
    assert!(
        journey[..7].iter().all(|(_, s)| s == "passed"),
        "{journey:?}"
    );
    assert_eq!(journey[7], ("promotion".into(), "failed".into()));
    let error = r["journey"][7]["error"].as_str().unwrap();
    assert!(
        error.starts_with("the failover function answered failed instead of promoted"),
        "{error}"
    );
    assert!(error.contains("AccessDeniedException"), "{error}");
    let cleanup = statuses(&r["cleanup"]);
    assert!(cleanup.iter().all(|(_, s)| s == "passed"), "{cleanup:?}");
    cloud.settle(Duration::from_secs(30)).await.unwrap();
    let key = key_id_of(&r);
    assert_eq!(
        cloud.twin().key(HOME, &key).unwrap().state,
        KeyState::PendingReplicaDeletion,
        "the primary never moved"
    );
    assert_cleaned_up(&cloud, &key);
}

#[tokio::test]
async fn a_run_that_was_killed_is_cleaned_up_from_its_ledger_and_blocks_new_runs_until_then() {
    let cloud = start(false).await;
    let dir = scratch("killed");
    let ledger = dir.join("ledger.json");
    let mut c = harness(&cloud, Some("1"));
    c.args(journey_args(&dir, "60s"));
    let mut child = c.spawn().expect("the harness starts");
    // Killed while it waits for replicas, after it made the key and its alias.
    let started = Instant::now();
    let made = loop {
        let text = std::fs::read_to_string(&ledger).unwrap_or_default();
        let l: Value = serde_json::from_str(&text).unwrap_or_default();
        if l["key_id"].is_string() && l["aliases"].as_array().is_some_and(|a| !a.is_empty()) {
            break l;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no ledger entry"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    child.kill().await.unwrap();
    let key = made["key_id"].as_str().unwrap().to_string();
    assert_eq!(
        cloud.twin().key(HOME, &key).unwrap().state,
        KeyState::Enabled
    );

    // A new run refuses to start over the leftovers.
    let mut again = harness(&cloud, Some("1"));
    again.args(journey_args(&dir, "2s"));
    let keys_before = cloud
        .twin()
        .calls()
        .iter()
        .filter(|c| c.op == "CreateKey")
        .count();
    let out = run(again).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("holds what an earlier run made"));
    assert_eq!(
        cloud
            .twin()
            .calls()
            .iter()
            .filter(|c| c.op == "CreateKey")
            .count(),
        keys_before,
        "no key made"
    );

    let mut cleanup = harness(&cloud, Some("1"));
    cleanup.args([
        "--cleanup",
        "--ledger",
        &ledger.to_string_lossy(),
        "--poll",
        "100ms",
    ]);
    let out = run(cleanup).await;
    assert!(out.status.success(), "exit status {:?}", out.status);
    assert_cleaned_up(&cloud, &key);
    assert!(!ledger.exists());
}

#[tokio::test]
async fn without_the_opt_in_the_harness_refuses_and_calls_nothing() {
    let cloud = start(true).await;
    let dir = scratch("refused");
    for opt_in in [None, Some("0"), Some("yes"), Some("")] {
        let mut c = harness(&cloud, opt_in);
        c.args(journey_args(&dir, "30s"));
        let out = run(c).await;
        assert_eq!(out.status.code(), Some(2), "{opt_in:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("kms-acceptance refuses to run"), "{stderr}");
        assert!(
            stderr.contains("Set KMS_REPLICATOR_ACCEPTANCE=1"),
            "{stderr}"
        );
        assert!(out.stdout.is_empty());
    }
    assert!(
        cloud.twin().calls().is_empty(),
        "no KMS call reached the endpoint"
    );
    assert!(cloud.invocations().is_empty(), "no function was invoked");
    assert!(!dir.join("ledger.json").exists() && !dir.join("report.json").exists());
}

#[tokio::test]
async fn a_principal_without_the_permission_is_told_which_action_on_which_resource_was_refused() {
    let cloud = start(true).await;
    let dir = scratch("refused");
    // A principal the account knows nothing of: no identity policy allows it anything.
    let mut c = harness(&cloud, Some("1"));
    c.env("AWS_ACCESS_KEY_ID", "nobody");
    c.args(journey_args(&dir, "2s"));
    let out = run(c).await;

    assert_eq!(out.status.code(), Some(1));
    let r = report(&dir);
    assert_eq!(r["passed"], false);
    let step = &r["journey"][0];
    assert_eq!(step["status"], "failed", "{r:#}");
    let denial = &step["access_denied"][0];
    assert_eq!(
        denial["principal"], "arn:aws:iam::111122223333:user/nobody",
        "{r:#}"
    );
    assert_eq!(denial["action"], "kms:CreateKey", "{r:#}");
    assert_eq!(denial["resource"], "*", "{r:#}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("kms:CreateKey"),
        "the printed report names the action"
    );
}
