//! The in-use guard, end to end on the twin with authorization on: under
//! `RemovalPolicy=ScheduleDeletion`, a replica whose Region leaves the tag is deleted only when
//! GetKeyLastUsage says nobody used it within `IN_USE_WINDOW_DAYS`; a used one, or one KMS
//! cannot vouch for, is kept with a conflict (audit event, reconcile plan).

use integration_tests::{as_function, config, deliver_trail, seed_primary, PRIMARY_REGION};
use kms_replicator::config::RemovalPolicy;
use kms_replicator::model::{KeyState, Tag};
use kms_replicator::usage::{now_ms, DAY_MS};
use kms_replicator::{Config, Kms, Op};
use reconcile::{Reconciler, Settings};
use serde_json::json;
use twin::{EncryptionContext, Twin, ADMIN_USER, RECONCILE_ROLE};

const EU: &str = "eu-west-1";

fn schedule_deletion() -> Config {
    let mut cfg = config();
    cfg.removal = RemovalPolicy::ScheduleDeletion {
        pending_window_days: 7,
    };
    cfg
}

async fn tag(twin: &Twin, cfg: &Config, key: &str, regions: &str) {
    twin.with_caller(ADMIN_USER)
        .tag_resource(PRIMARY_REGION, key, &[Tag::new("replicate-to", regions)])
        .await
        .unwrap();
    let (_, errors) = deliver_trail(twin, cfg).await;
    assert!(errors.is_empty(), "{errors:?}");
}

/// A primary replicated to us-west-2 and eu-west-1.
async fn replicated(twin: &Twin, cfg: &Config) -> String {
    let key = seed_primary(twin).await;
    tag(twin, cfg, &key, "us-west-2 eu-west-1").await;
    assert_eq!(twin.key(EU, &key).unwrap().state, KeyState::Enabled);
    key
}

/// An application encrypts in us-east-1 and decrypts with the replica in eu-west-1.
async fn decrypt_in_eu(twin: &Twin, key: &str) {
    let app = twin.with_caller(ADMIN_USER);
    let ctx: EncryptionContext = [("app".to_string(), "ledger".to_string())].into();
    let sealed = app
        .encrypt(PRIMARY_REGION, key, b"row 1", &ctx)
        .await
        .unwrap();
    let opened = app
        .decrypt(EU, None, &sealed.ciphertext, &ctx)
        .await
        .unwrap();
    assert_eq!(opened.plaintext, b"row 1");
}

fn scheduled_in_eu(twin: &Twin) -> usize {
    twin.calls()
        .iter()
        .filter(|c| c.region == EU && c.op == Op::ScheduleKeyDeletion)
        .count()
}

fn conflicts(twin: &Twin) -> Vec<String> {
    twin.audit_events()
        .iter()
        .filter(|e| e.detail_type == "Replication Conflict" && e.detail["region"] == EU)
        .flat_map(|e| {
            e.detail["conflicts"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|c| c.as_str().map(str::to_string))
        .collect()
}

async fn plan(twin: &Twin, cfg: &Config) -> String {
    let kms = as_function(twin, cfg, RECONCILE_ROLE);
    let settings = Settings::default();
    let out = Reconciler {
        kms: &kms,
        tags: &kms,
        audit: twin,
        config: cfg,
        settings: &settings,
        limiter: None,
    }
    .handle(&json!({"dryRun": true}), None)
    .await
    .expect("a plan");
    out["summary"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn a_replica_used_within_the_window_is_not_scheduled_for_deletion() {
    let twin = Twin::new();
    let cfg = schedule_deletion();
    let key = replicated(&twin, &cfg).await;
    decrypt_in_eu(&twin, &key).await;
    let event_id = twin
        .with_caller(ADMIN_USER)
        .get_key_last_usage(EU, &key)
        .await
        .unwrap()
        .last_use
        .unwrap()
        .cloudtrail_event_id
        .unwrap();

    tag(&twin, &cfg, &key, "us-west-2").await;
    let eu = twin.key(EU, &key).unwrap();
    assert_eq!(eu.state, KeyState::Enabled);
    assert!(!eu.tags.contains_key("kms-replicator:deletion-scheduled"));
    assert_eq!(scheduled_in_eu(&twin), 0);
    let said = conflicts(&twin);
    assert!(!said.is_empty(), "a Replication Conflict for eu-west-1");
    assert!(
        said[0].contains("last used by Decrypt") && said[0].contains(&event_id),
        "{said:?}"
    );
    assert!(
        said[0].contains("InUseWindowDays=0"),
        "what to do: {said:?}"
    );
    // The reconcile plan shows it too, and plans no deletion.
    let plan = plan(&twin, &cfg).await;
    assert!(
        plan.contains(&format!(
            "-> {EU}: conflict: the replica in {EU} is not scheduled"
        )),
        "{plan}"
    );
    assert!(!plan.contains("schedule the replica's deletion"), "{plan}");
}

#[tokio::test]
async fn a_replica_idle_for_the_whole_window_is_scheduled_for_deletion() {
    let twin = Twin::new();
    let cfg = schedule_deletion();
    let key = replicated(&twin, &cfg).await;
    // Its last use was 40 days ago; KMS has tracked it since its creation.
    twin.record_use(EU, &key, Op::Decrypt, now_ms() - 40 * DAY_MS, "old-event");
    tag(&twin, &cfg, &key, "us-west-2").await;
    assert_eq!(twin.key(EU, &key).unwrap().state, KeyState::PendingDeletion);
    assert!(conflicts(&twin).is_empty());
    assert!(twin
        .calls()
        .iter()
        .any(|c| c.region == EU && c.op == Op::GetKeyLastUsage));
}

#[tokio::test]
async fn a_replica_older_than_kms_tracking_that_began_inside_the_window_is_kept_and_explained() {
    let twin = Twin::new();
    let cfg = schedule_deletion();
    let key = replicated(&twin, &cfg).await;
    // The primary is 400 days old, the replica 200; KMS began recording 10 days ago and has
    // seen no use since.
    twin.set_creation_date(PRIMARY_REGION, &key, now_ms() - 400 * DAY_MS);
    twin.set_creation_date(EU, &key, now_ms() - 200 * DAY_MS);
    twin.set_tracking_start(now_ms() - 10 * DAY_MS);
    tag(&twin, &cfg, &key, "us-west-2").await;
    assert_eq!(twin.key(EU, &key).unwrap().state, KeyState::Enabled);
    assert_eq!(scheduled_in_eu(&twin), 0);
    let said = conflicts(&twin);
    assert!(
        said.iter()
            .any(|c| c.contains("may be in use") && c.contains("may have been used before")),
        "{said:?}"
    );
}

#[tokio::test]
async fn with_the_guard_off_a_used_replica_is_scheduled_for_deletion() {
    let twin = Twin::new();
    let mut cfg = schedule_deletion();
    cfg.in_use_window_days = 0;
    let key = replicated(&twin, &cfg).await;
    decrypt_in_eu(&twin, &key).await;
    tag(&twin, &cfg, &key, "us-west-2").await;
    assert_eq!(twin.key(EU, &key).unwrap().state, KeyState::PendingDeletion);
    assert!(!twin
        .calls()
        .iter()
        .any(|c| c.op == Op::GetKeyLastUsage && twin::is_replicator(&c.caller)));
}
