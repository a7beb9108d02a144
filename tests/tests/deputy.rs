//! The deputy's authority (docs/security-model.md): what a principal allowed only to tag keys
//! can make the replicator do. Each test is a history on the twin, with authorization on,
//! delivered to the real replicate handler.

use integration_tests::{config, deliver_trail, seed_primary, PRIMARY_REGION};
use kms_replicator::config::RemovalPolicy;
use kms_replicator::marker::{now_ms, Marker, DELETION_MARKER_TAG};
use kms_replicator::model::{KeyState, Tag};
use kms_replicator::op::Op;
use kms_replicator::port::ErrorKind;
use kms_replicator::{Config, Kms, Syncer};
use std::time::Duration;
use twin::{Twin, ADMIN_USER, TAGGER_ROLE};

const WEST: &str = "us-west-2";
const EU: &str = "eu-west-1";

fn deleting() -> Config {
    let mut cfg = config();
    cfg.removal = RemovalPolicy::ScheduleDeletion {
        pending_window_days: 7,
    };
    cfg
}

fn new_twin() -> Twin {
    let twin = Twin::new();
    twin.set_creating_for(Duration::ZERO);
    twin.set_updating_for(Duration::ZERO);
    twin
}

async fn tagged_key(twin: &Twin, cfg: &Config, regions: &str) -> String {
    let key = seed_primary(twin).await;
    twin.with_caller(ADMIN_USER)
        .tag_resource(PRIMARY_REGION, &key, &[Tag::new("replicate-to", regions)])
        .await
        .unwrap();
    deliver_trail(twin, cfg).await;
    key
}

/// Marker values a tagger can write: the old form, a value in the replicator's own form dated
/// now with the deployment's waiting period, and nonsense.
fn forged_markers() -> Vec<String> {
    let fresh = Marker {
        before: KeyState::Enabled,
        at_ms: now_ms(),
        days: 7,
    };
    vec!["Enabled".into(), fresh.value(), "true".into()]
}

fn restores(twin: &Twin) -> Vec<Op> {
    twin.calls()
        .into_iter()
        .filter(|c| matches!(c.op, Op::EnableKey | Op::CancelKeyDeletion))
        .map(|c| c.op)
        .collect()
}

#[tokio::test]
async fn a_forged_marker_never_enables_a_key_a_person_disabled() {
    for cfg in [config(), deleting()] {
        for forged in forged_markers() {
            let twin = new_twin();
            let key = tagged_key(&twin, &cfg, "us-west-2 eu-west-1").await;
            // An incident response: the replica in us-west-2 is disabled.
            twin.with_caller(ADMIN_USER)
                .disable_key(WEST, &key)
                .unwrap();
            deliver_trail(&twin, &cfg).await;
            // Someone allowed only to tag writes the deletion marker on it.
            twin.with_caller(TAGGER_ROLE)
                .tag_resource(WEST, &key, &[Tag::new(DELETION_MARKER_TAG, &forged)])
                .await
                .unwrap();
            deliver_trail(&twin, &cfg).await;
            let report = Syncer::new(&twin, &cfg)
                .sync(PRIMARY_REGION, &key, false)
                .await;

            let what = format!("{:?} {forged}", cfg.removal);
            assert_eq!(
                twin.key(WEST, &key).unwrap().state,
                KeyState::Disabled,
                "{what}"
            );
            assert_eq!(restores(&twin), Vec::<Op>::new(), "{what}");
            let west = report.regions.iter().find(|r| r.region == WEST).unwrap();
            assert_eq!(west.conflicts.len(), 1, "{what}: {west:?}");
            assert!(
                west.conflicts[0].contains("Disabled"),
                "{}",
                west.conflicts[0]
            );
            assert!(twin
                .audit_events()
                .iter()
                .any(|e| e.detail_type == "Replication Conflict"));
        }
    }
}

#[tokio::test]
async fn a_forged_marker_never_cancels_a_deletion_a_person_scheduled() {
    let cfg = deleting();
    // (the waiting period the person asks for, how long before it the marker is forged)
    for (days, forged_ago) in [(30, 0), (7, 3_600_000)] {
        let twin = new_twin();
        let key = tagged_key(&twin, &cfg, "us-west-2 eu-west-1").await;
        let tagger = twin.with_caller(TAGGER_ROLE);
        let forged = Marker {
            before: KeyState::Enabled,
            at_ms: now_ms() - forged_ago,
            days: 7,
        };
        tagger
            .tag_resource(WEST, &key, &[Tag::new(DELETION_MARKER_TAG, forged.value())])
            .await
            .unwrap();
        let admin = twin.with_caller(ADMIN_USER);
        admin.schedule_key_deletion(WEST, &key, days).await.unwrap();
        // Once the key is pending deletion, KMS lets nobody tag it: no marker can follow.
        let late = tagger
            .tag_resource(WEST, &key, &[Tag::new(DELETION_MARKER_TAG, "Enabled")])
            .await
            .unwrap_err();
        assert_eq!(late.kind, ErrorKind::InvalidState);
        deliver_trail(&twin, &cfg).await;
        let report = Syncer::new(&twin, &cfg)
            .sync(PRIMARY_REGION, &key, false)
            .await;

        assert_eq!(
            twin.key(WEST, &key).unwrap().state,
            KeyState::PendingDeletion,
            "{days} days"
        );
        assert_eq!(restores(&twin), Vec::<Op>::new(), "{days} days");
        let west = report.regions.iter().find(|r| r.region == WEST).unwrap();
        assert_eq!(west.conflicts.len(), 1, "{west:?}");
        assert!(west.conflicts[0].contains("deletion date does not follow"));
        assert_eq!(twin.key(EU, &key).unwrap().state, KeyState::Enabled);
    }
}

#[tokio::test]
async fn the_replicators_own_deletion_is_still_restored_with_its_evidence() {
    let twin = new_twin();
    let cfg = deleting();
    let key = tagged_key(&twin, &cfg, "us-west-2 eu-west-1").await;
    let admin = twin.with_caller(ADMIN_USER);
    admin
        .tag_resource(PRIMARY_REGION, &key, &[Tag::new("replicate-to", WEST)])
        .await
        .unwrap();
    deliver_trail(&twin, &cfg).await;
    let eu = twin.key(EU, &key).unwrap();
    assert_eq!(eu.state, KeyState::PendingDeletion);
    let marker = Marker::parse(&eu.tags[DELETION_MARKER_TAG]).expect("the replicator's form");
    assert_eq!((marker.before, marker.days), (KeyState::Enabled, 7));
    let date = twin.describe_key(EU, &key).await.unwrap().deletion_date;
    assert!(date.is_some_and(|d| d >= marker.at_ms + 7 * 86_400_000));

    admin
        .tag_resource(
            PRIMARY_REGION,
            &key,
            &[Tag::new("replicate-to", "us-west-2 eu-west-1")],
        )
        .await
        .unwrap();
    deliver_trail(&twin, &cfg).await;
    let eu = twin.key(EU, &key).unwrap();
    assert_eq!(eu.state, KeyState::Enabled);
    assert!(!eu.tags.contains_key(DELETION_MARKER_TAG));
    assert_eq!(restores(&twin), [Op::CancelKeyDeletion, Op::EnableKey]);
}
