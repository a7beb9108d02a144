//! The deputy's authority (docs/security-model.md): what a principal allowed only to tag keys
//! can make the replicator do. Each test is a history on the twin, with authorization on,
//! delivered to the real replicate handler.

use integration_tests::{config, deleting, deliver_trail, new_twin, seed_primary, PRIMARY_REGION};
use kms_replicator::hold::HOLD_TAG;
use kms_replicator::marker::{now_ms, Marker, DELETION_MARKER_TAG};
use kms_replicator::model::{KeyState, Tag};
use kms_replicator::op::Op;
use kms_replicator::port::ErrorKind;
use kms_replicator::{Config, Kms, Syncer};
use twin::{Twin, ADMIN_USER, TAGGER_ROLE};

const WEST: &str = "us-west-2";
const EU: &str = "eu-west-1";

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

// ---- The hold ----------------------------------------------------------------------------

/// The writes the replicator's roles made in `region` since `from` (an index into the calls).
fn replicator_writes_in(twin: &Twin, region: &str, from: usize) -> Vec<Op> {
    twin.calls()[from..]
        .iter()
        .filter(|c| twin::is_replicator(&c.caller) && c.op.is_write() && c.region == region)
        .map(|c| c.op)
        .collect()
}

fn held_reports(twin: &Twin, region: Option<&str>) -> usize {
    twin.audit_events()
        .iter()
        .filter(|e| {
            e.detail_type == "Replication Skipped"
                && e.detail["region"].as_str() == region
                && e.detail["outcome"]["reason"]
                    .as_str()
                    .is_some_and(|r| r.starts_with("held: "))
        })
        .count()
}

#[tokio::test]
async fn a_hold_on_a_replica_stops_every_write_to_it_until_it_is_removed() {
    let cfg = deleting();
    let twin = new_twin();
    let key = tagged_key(&twin, &cfg, "us-west-2 eu-west-1").await;
    let admin = twin.with_caller(ADMIN_USER);
    // A responder holds the replica and quarantines it with a policy of their own.
    admin
        .tag_resource(WEST, &key, &[Tag::new(HOLD_TAG, "INC-42")])
        .await
        .unwrap();
    let responders_policy = r#"{"Version":"2012-10-17","Statement":[{"Sid":"Quarantine","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"}]}"#;
    admin
        .put_key_policy(WEST, &key, responders_policy)
        .await
        .unwrap();
    let from = twin.calls().len();
    // Meanwhile the primary changes, and its Region leaves the tag (ScheduleDeletion).
    admin
        .update_key_description(PRIMARY_REGION, &key, "v2")
        .await
        .unwrap();
    admin
        .tag_resource(PRIMARY_REGION, &key, &[Tag::new("replicate-to", EU)])
        .await
        .unwrap();
    deliver_trail(&twin, &cfg).await;
    let report = Syncer::new(&twin, &cfg)
        .sync(PRIMARY_REGION, &key, false)
        .await;

    assert_eq!(replicator_writes_in(&twin, WEST, from), Vec::<Op>::new());
    let west = twin.key(WEST, &key).unwrap();
    assert_eq!(west.state, KeyState::Enabled, "not deleted while held");
    assert_eq!(west.policy, responders_policy);
    assert_eq!(west.tags[HOLD_TAG], "INC-42");
    assert_eq!(twin.key(EU, &key).unwrap().description, "v2");
    let r = report.regions.iter().find(|r| r.region == WEST).unwrap();
    assert!(r.held, "{r:?}");
    // Reported on every sync, whatever triggered it.
    assert!(
        held_reports(&twin, Some(WEST)) >= 2,
        "{:?}",
        twin.audit_events()
    );

    // The responder puts the Region back in the tag and lifts the hold: management resumes.
    admin
        .tag_resource(
            PRIMARY_REGION,
            &key,
            &[Tag::new("replicate-to", "us-west-2 eu-west-1")],
        )
        .await
        .unwrap();
    admin
        .untag_resource(WEST, &key, &[HOLD_TAG.to_string()])
        .await
        .unwrap();
    deliver_trail(&twin, &cfg).await;
    let west = twin.key(WEST, &key).unwrap();
    assert_eq!(west.description, "v2");
    assert_ne!(west.policy, responders_policy);
    assert!(!west.tags.contains_key(HOLD_TAG));
}

#[tokio::test]
async fn a_hold_on_a_primary_stops_the_whole_key_and_is_in_the_plan() {
    let cfg = config();
    let twin = new_twin();
    let key = tagged_key(&twin, &cfg, WEST).await;
    let admin = twin.with_caller(ADMIN_USER);
    // A hold anyone may set: a principal allowed only to tag.
    twin.with_caller(TAGGER_ROLE)
        .tag_resource(PRIMARY_REGION, &key, &[Tag::new(HOLD_TAG, "")])
        .await
        .unwrap();
    let from = twin.calls().len();
    admin
        .tag_resource(
            PRIMARY_REGION,
            &key,
            &[Tag::new("replicate-to", "us-west-2 eu-west-1")],
        )
        .await
        .unwrap();
    admin
        .update_key_description(PRIMARY_REGION, &key, "v2")
        .await
        .unwrap();
    deliver_trail(&twin, &cfg).await;
    let plan = Syncer::new(&twin, &cfg)
        .sync(PRIMARY_REGION, &key, true)
        .await;

    assert!(twin.key(EU, &key).is_none(), "no replica created");
    assert_eq!(replicator_writes_in(&twin, WEST, from), Vec::<Op>::new());
    assert_eq!(
        twin.key(WEST, &key).unwrap().description,
        "payments data key"
    );
    assert!(
        !twin.key(WEST, &key).unwrap().tags.contains_key(HOLD_TAG),
        "never mirrored"
    );
    assert!(held_reports(&twin, None) >= 2);
    let lines = kms_replicator::report::change_lines(&plan);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("skipped: held: the primary in us-east-1"),
        "{lines:?}"
    );

    admin
        .untag_resource(PRIMARY_REGION, &key, &[HOLD_TAG.to_string()])
        .await
        .unwrap();
    deliver_trail(&twin, &cfg).await;
    assert_eq!(twin.key(EU, &key).unwrap().description, "v2");
    assert_eq!(twin.key(WEST, &key).unwrap().description, "v2");
}
