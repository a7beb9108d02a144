//! The last use of keys in the reports, on the twin with authorization on and real
//! cryptography: the failover report says whether the replica it promotes and the old primary
//! are in use (information, never a blocker), and data stays readable across Regions before
//! and after the promotion.

use failover::{Failover, FailoverSettings};
use integration_tests::{as_function, config, deliver_trail, seed_primary, PRIMARY_REGION};
use kms_replicator::model::Tag;
use kms_replicator::{Config, Kms};
use serde_json::{json, Value};
use std::time::Duration;
use twin::{EncryptionContext, Twin, ADMIN_USER, FAILOVER_ROLE};

const WEST: &str = "us-west-2";

async fn replicated(twin: &Twin, cfg: &Config) -> String {
    let key = seed_primary(twin).await;
    twin.with_caller(ADMIN_USER)
        .tag_resource(PRIMARY_REGION, &key, &[Tag::new("replicate-to", WEST)])
        .await
        .unwrap();
    deliver_trail(twin, cfg).await;
    key
}

async fn fail_over(twin: &Twin, cfg: &Config, input: Value) -> Value {
    let kms = as_function(twin, cfg, FAILOVER_ROLE);
    Failover {
        kms: &kms,
        audit: twin,
        config: cfg,
        settings: FailoverSettings {
            wait: Duration::from_secs(5),
            first_poll: Duration::from_millis(5),
            max_poll: Duration::from_millis(20),
            ..FailoverSettings::default()
        },
    }
    .handle(&input, None)
    .await
    .expect("a report")
}

fn key_use(report: &Value) -> &Value {
    report["keys"][0]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "key_use")
        .unwrap_or_else(|| panic!("no key_use check: {report:#}"))
}

#[tokio::test]
async fn the_failover_report_says_whether_both_keys_are_in_use_and_data_stays_readable() {
    let twin = Twin::new();
    let cfg = config();
    let key = replicated(&twin, &cfg).await;
    let app = twin.with_caller(ADMIN_USER);
    let ctx: EncryptionContext = [("table".to_string(), "orders".to_string())].into();

    // Before any use: the dry run says the replica was never used.
    let dry = fail_over(&twin, &cfg, json!({"key": key, "to": WEST, "dryRun": true})).await;
    let check = key_use(&dry);
    assert_eq!(check["passed"], true, "information, not a blocker");
    let detail = check["detail"].as_str().unwrap();
    assert!(
        detail.contains("the replica in us-west-2: never used since it was created")
            && detail.contains("may not be configured for it"),
        "{detail}"
    );

    // An application encrypts in us-east-1; us-west-2 decrypts with its replica.
    let before = app
        .encrypt(PRIMARY_REGION, &key, b"order 1", &ctx)
        .await
        .unwrap();
    let opened = app
        .decrypt(WEST, None, &before.ciphertext, &ctx)
        .await
        .unwrap();
    assert_eq!(opened.plaintext, b"order 1");

    let out = fail_over(&twin, &cfg, json!({"key": key, "to": WEST})).await;
    assert_eq!(out["keys"][0]["outcome"], "promoted", "{out:#}");
    let detail = key_use(&out)["detail"].as_str().unwrap().to_string();
    assert!(
        detail.contains("the replica in us-west-2: last used by Decrypt")
            && detail.contains("the primary in us-east-1: last used by Encrypt"),
        "{detail}"
    );

    // After the promotion: us-west-2 encrypts, us-east-1 decrypts, and the old data still opens.
    let after = app.encrypt(WEST, &key, b"order 2", &ctx).await.unwrap();
    let back = app
        .decrypt(PRIMARY_REGION, None, &after.ciphertext, &ctx)
        .await
        .unwrap();
    assert_eq!(back.plaintext, b"order 2");
    let old = app
        .decrypt(WEST, None, &before.ciphertext, &ctx)
        .await
        .unwrap();
    assert_eq!(old.plaintext, b"order 1");
}

#[tokio::test]
async fn an_unreadable_last_use_is_reported_and_does_not_stop_the_failover() {
    let twin = Twin::new();
    let cfg = config();
    let key = replicated(&twin, &cfg).await;
    twin.inject_fault(
        Some(WEST),
        Some(kms_replicator::Op::GetKeyLastUsage),
        "AccessDeniedException",
        1,
    );
    let out = fail_over(&twin, &cfg, json!({"key": key, "to": WEST})).await;
    assert_eq!(out["keys"][0]["outcome"], "promoted", "{out:#}");
    let detail = key_use(&out)["detail"].as_str().unwrap();
    assert!(
        detail.contains("last use unknown (AccessDeniedException"),
        "{detail}"
    );
}

#[tokio::test]
async fn the_plan_lists_each_replicas_last_use_and_those_unused_for_90_days() {
    use kms_replicator::usage::{now_ms, DAY_MS};
    let twin = Twin::new();
    let cfg = config();
    let key = seed_primary(&twin).await;
    twin.with_caller(ADMIN_USER)
        .tag_resource(
            PRIMARY_REGION,
            &key,
            &[Tag::new("replicate-to", "us-west-2 eu-west-1")],
        )
        .await
        .unwrap();
    deliver_trail(&twin, &cfg).await;
    let app = twin.with_caller(ADMIN_USER);
    let sealed = app
        .encrypt(PRIMARY_REGION, &key, b"x", &EncryptionContext::new())
        .await
        .unwrap();
    app.decrypt(WEST, None, &sealed.ciphertext, &EncryptionContext::new())
        .await
        .unwrap();
    twin.record_use(
        "eu-west-1",
        &key,
        kms_replicator::Op::Decrypt,
        now_ms() - 100 * DAY_MS,
        "old-event",
    );

    let kms = as_function(&twin, &cfg, twin::RECONCILE_ROLE);
    let settings = reconcile::Settings::default();
    let plan = reconcile::Reconciler {
        kms: &kms,
        tags: &kms,
        audit: &twin,
        config: &cfg,
        settings: &settings,
        limiter: None,
    }
    .handle(&json!({"dryRun": true}), None)
    .await
    .expect("a plan");
    let summary = plan["summary"].as_str().unwrap();
    let (listed, unused) = summary
        .split_once("Unused for 90 days or more")
        .unwrap_or_else(|| panic!("{summary}"));
    assert!(
        listed.contains(&format!("{key} -> us-west-2: last used by Decrypt")),
        "{summary}"
    );
    assert!(
        unused.contains(&format!("{key} -> eu-west-1: last used by Decrypt"))
            && !unused.contains("us-west-2"),
        "{summary}"
    );
    assert_eq!(plan["keyUse"]["unusedFor90Days"][0]["region"], "eu-west-1");
    assert_eq!(plan["keyUse"]["replicas"].as_array().unwrap().len(), 2);
}
