//! The pure decisions of `desired`: desired state per policy mode, the minimal writes for each
//! difference, restores only with the marker's evidence, conflicts, kept aliases, the size limit.

use super::*;
use crate::marker::Marker;
use crate::model::{MultiRegionConfig, MultiRegionKeyType};

/// When the replicator wrote its marker in these tests.
const AT: u64 = 1_764_653_000_123;
const DAY_MS: u64 = 86_400_000;

const ROOT_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"}]}"#;

fn info(region: &str, created: Option<u64>) -> KeyInfo {
    KeyInfo {
        key_id: "mrk-1".into(),
        arn: format!("arn:aws:kms:{region}:111122223333:key/mrk-1"),
        region: region.into(),
        state: KeyState::Enabled,
        description: "payments".into(),
        multi_region: Some(MultiRegionConfig {
            key_type: MultiRegionKeyType::Primary,
            primary_region: "us-east-1".into(),
            replica_regions: vec!["us-west-2".into()],
        }),
        creation_date: created,
        deletion_date: None,
        imported_material: false,
        current_key_material_id: None,
    }
}

fn primary(policy: &str, tags: &[(&str, &str)], aliases: &[&str]) -> PrimaryState {
    PrimaryState {
        info: info("us-east-1", Some(1_000)),
        policy: policy.into(),
        tags: tags.iter().map(|(k, v)| Tag::new(*k, *v)).collect(),
        aliases: aliases.iter().map(|a| a.to_string()).collect(),
    }
}

fn desired(policy: &str) -> DesiredReplica {
    let p = primary(
        policy,
        &[("replicate-to", "us-west-2"), ("team", "payments")],
        &["alias/payments"],
    );
    desired_replica(&Config::new(&["us-east-1", "us-west-2"]), &p, "us-west-2").unwrap()
}

/// A replica that already mirrors `desired`.
fn observed_like(d: &DesiredReplica) -> ObservedReplica {
    ObservedReplica {
        state: KeyState::Enabled,
        policy: d.policy.clone().unwrap_or_default(),
        description: d.description.clone(),
        tags: d.tags.clone(),
        aliases: d.aliases.clone(),
        deletion_date: None,
        read_at_ms: AT + 1_000,
    }
}

fn ops(plan: &ReplicaPlan) -> Vec<&'static str> {
    plan.actions.iter().map(|a| a.op().name()).collect()
}

#[test]
fn a_replica_that_mirrors_the_primary_needs_no_write() {
    let d = desired(ROOT_POLICY);
    let plan = plan_replica(&d, &observed_like(&d));
    assert_eq!(plan, ReplicaPlan::default());
}

#[test]
fn each_difference_gives_exactly_its_own_write() {
    let d = desired(ROOT_POLICY);
    type Change = Box<dyn Fn(&mut ObservedReplica)>;
    let table: Vec<(&str, Change, Vec<&str>)> = vec![
        (
            "policy",
            Box::new(|o| o.policy = "{}".into()),
            vec!["PutKeyPolicy"],
        ),
        (
            "policy formatting only",
            Box::new(|o| o.policy = o.policy.replace(',', " , ")),
            vec![],
        ),
        (
            "description",
            Box::new(|o| o.description = "old".into()),
            vec!["UpdateKeyDescription"],
        ),
        (
            "tag value",
            Box::new(|o| o.tags[1].value = "other".into()),
            vec!["TagResource"],
        ),
        (
            "extra tag",
            Box::new(|o| o.tags.push(Tag::new("old", "x"))),
            vec!["UntagResource"],
        ),
        (
            "missing alias",
            Box::new(|o| o.aliases.clear()),
            vec!["CreateAlias"],
        ),
    ];
    for (what, change, want) in table {
        let mut o = observed_like(&d);
        change(&mut o);
        assert_eq!(ops(&plan_replica(&d, &o)), want, "{what}");
    }
}

#[test]
fn aliases_made_by_hand_on_a_replica_are_reported_and_kept() {
    let d = desired(ROOT_POLICY);
    let mut o = observed_like(&d);
    o.aliases.push("alias/usw2-local".into());
    o.aliases.push("alias/aws/ebs".into());
    let plan = plan_replica(&d, &o);
    assert!(plan.actions.is_empty());
    assert_eq!(plan.extra_aliases, ["alias/usw2-local"]);
}

#[test]
fn a_deletion_a_person_scheduled_is_a_conflict_and_gets_no_write() {
    let d = desired(ROOT_POLICY);
    for state in [KeyState::PendingDeletion, KeyState::PendingReplicaDeletion] {
        let mut o = observed_like(&d);
        o.state = state;
        o.policy = "{}".into();
        let plan = plan_replica(&d, &o);
        assert!(plan.actions.is_empty(), "{state}: {:?}", plan.actions);
        assert_eq!(plan.conflicts.len(), 1);
    }
}

/// A replica the replicator scheduled for deletion (7 days) right after marking it.
fn deleted_by_the_replicator(d: &mut DesiredReplica, before: KeyState) -> ObservedReplica {
    d.removal_window_days = Some(7);
    let mut o = observed_like(d);
    o.state = KeyState::PendingDeletion;
    o.deletion_date = Some(AT + 7 * DAY_MS + 150);
    let marker = Marker {
        before,
        at_ms: AT,
        days: 7,
    };
    o.tags.push(Tag::new(DELETION_MARKER_TAG, marker.value()));
    o
}

#[test]
fn a_deletion_the_replicator_scheduled_is_restored_to_the_state_it_had() {
    for (before, want) in [
        (
            KeyState::Enabled,
            vec!["CancelKeyDeletion", "EnableKey", "UntagResource"],
        ),
        (
            KeyState::Disabled,
            vec!["CancelKeyDeletion", "UntagResource"],
        ),
    ] {
        let mut d = desired(ROOT_POLICY);
        let o = deleted_by_the_replicator(&mut d, before);
        let plan = plan_replica(&d, &o);
        assert_eq!(ops(&plan), want, "{before}");
        assert!(plan.conflicts.is_empty());
        assert_eq!(
            plan.actions.last(),
            Some(&Action::UntagResource {
                keys: vec![DELETION_MARKER_TAG.into()]
            })
        );
    }
}

#[test]
fn a_marker_without_the_replicators_own_deletion_restores_nothing() {
    // Each form and mismatch is in crate::marker's tests; here, that the plan follows them.
    for retain in [false, true] {
        let mut d = desired(ROOT_POLICY);
        let mut o = deleted_by_the_replicator(&mut d, KeyState::Enabled);
        // A person's own 30-day deletion under the marker, or RemovalPolicy=Retain.
        if retain {
            d.removal_window_days = None;
        } else {
            o.deletion_date = Some(AT + 30 * DAY_MS);
        }
        let plan = plan_replica(&d, &o);
        assert!(plan.actions.is_empty(), "{retain}: {:?}", plan.actions);
        assert_eq!(plan.conflicts.len(), 1);
    }
}

#[test]
fn a_key_a_person_disabled_stays_disabled_but_still_gets_a_revocation() {
    let d = desired(ROOT_POLICY);
    let mut o = observed_like(&d);
    o.state = KeyState::Disabled;
    o.policy = r#"{"Statement":[{"Sid":"old grant"}]}"#.into();
    let plan = plan_replica(&d, &o);
    assert_eq!(ops(&plan), ["PutKeyPolicy"]);
    assert_eq!(plan.conflicts.len(), 1);
}

#[test]
fn a_disabled_key_is_never_enabled_because_of_a_marker() {
    // A forged marker, or a restore that stopped after CancelKeyDeletion: either way the
    // key stays disabled, the conflict is reported and the stale marker goes.
    let mut d = desired(ROOT_POLICY);
    d.removal_window_days = Some(7);
    for value in ["Enabled", "Enabled at=1764653000123 days=7"] {
        let mut o = observed_like(&d);
        o.state = KeyState::Disabled;
        o.tags.push(Tag::new(DELETION_MARKER_TAG, value));
        let plan = plan_replica(&d, &o);
        assert_eq!(ops(&plan), ["UntagResource"], "{value}");
        assert_eq!(plan.conflicts.len(), 1);
    }
}

#[test]
fn the_marker_is_never_part_of_the_desired_tags() {
    let p = primary(
        ROOT_POLICY,
        &[
            ("replicate-to", "us-west-2"),
            (DELETION_MARKER_TAG, "Enabled"),
        ],
        &[],
    );
    let d = desired_replica(&Config::new(&["us-west-2"]), &p, "us-west-2").unwrap();
    assert!(d.tags.iter().all(|t| t.key != DELETION_MARKER_TAG));
}

#[test]
fn policy_modes_decide_what_is_mirrored() {
    let mut cfg = Config::new(&["us-west-2"]);
    let text = r#"{"Statement":[{"Effect":"Allow","Resource":"arn:aws:kms:us-east-1:111122223333:key/mrk-1"}]}"#;
    let p = primary(text, &[("replicate-to", "us-west-2")], &[]);
    let rewritten = desired_replica(&cfg, &p, "us-west-2").unwrap();
    assert!(rewritten.policy.unwrap().contains("us-west-2"));
    cfg.policy_mode = PolicyMode::Verbatim;
    assert_eq!(
        desired_replica(&cfg, &p, "us-west-2")
            .unwrap()
            .policy
            .as_deref(),
        Some(text)
    );
    cfg.policy_mode = PolicyMode::Off;
    let off = desired_replica(&cfg, &p, "us-west-2").unwrap();
    assert_eq!(off.policy, None);
    // With policies off, a replica's policy is never written.
    let mut o = observed_like(&off);
    o.policy = "anything".into();
    assert!(plan_replica(&off, &o).actions.is_empty());
}

#[test]
fn a_policy_over_the_limit_is_an_error_before_any_write() {
    let mut cfg = Config::new(&["us-west-2"]);
    cfg.policy_mode = PolicyMode::Verbatim;
    let big = format!(r#"{{"Statement":[],"Pad":"{}"}}"#, "x".repeat(40_000));
    let p = primary(&big, &[], &[]);
    assert!(matches!(
        desired_replica(&cfg, &p, "us-west-2"),
        Err(DesiredError::Policy(PolicyError::TooLarge { .. }))
    ));
}

#[test]
fn replicas_carry_the_regions_that_held_the_primary() {
    let mut p = primary(ROOT_POLICY, &[("replicate-to", "us-west-2")], &[]);
    let cfg = Config::new(&["us-west-2"]);
    let history = |p: &PrimaryState| {
        let d = desired_replica(&cfg, p, "us-west-2").unwrap();
        d.tags
            .into_iter()
            .find(|t| t.key == PRIMARY_HISTORY_TAG)
            .map(|t| t.value)
    };
    assert_eq!(history(&p).as_deref(), Some("us-east-1"));
    // Promoted from a replica that carried the tag: the history grows, sorted.
    p.info.region = "eu-west-1".into();
    p.tags.push(Tag::new(PRIMARY_HISTORY_TAG, "us-east-1"));
    assert_eq!(history(&p).as_deref(), Some("eu-west-1 us-east-1"));
}

#[test]
fn a_blank_or_absent_tag_means_not_managed() {
    for tags in [
        vec![],
        vec![("replicate-to", "")],
        vec![("replicate-to", "  ")],
    ] {
        assert_eq!(
            primary(ROOT_POLICY, &tags, &[]).replication_tag("replicate-to"),
            None
        );
    }
    let p = primary(ROOT_POLICY, &[("replicate-to", "us-west-2")], &[]);
    assert_eq!(p.replication_tag("replicate-to"), Some("us-west-2"));
}

#[test]
fn a_replica_older_than_the_primary_predates_it() {
    let p = info("us-west-2", Some(2_000));
    assert!(predates_primary(&p, &info("us-east-1", Some(1_000))));
    assert!(!predates_primary(&p, &info("eu-west-1", Some(3_000))));
    assert!(predates_primary(&p, &info("eu-west-1", None)));
}

#[test]
fn same_content_ignores_order_and_formatting_but_not_values() {
    let a = primary(
        ROOT_POLICY,
        &[("a", "1"), ("b", "2")],
        &["alias/x", "alias/y"],
    );
    let mut b = a.clone();
    b.tags.reverse();
    b.aliases.reverse();
    b.policy = ROOT_POLICY.replace(',', " ,\n");
    assert!(a.same_content(&b));
    b.tags[0].value = "changed".into();
    assert!(!a.same_content(&b));
}
