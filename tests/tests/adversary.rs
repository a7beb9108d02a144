//! Random histories with an adversary (docs/security-model.md): a person acts legitimately on
//! one multi-Region key (edits the replication tag, disables or schedules the deletion of a
//! replica, edits the description) while a principal allowed only to tag and untag keys
//! (`TAGGER_ROLE`) forges deletion markers in every form, holds and un-holds the primary and
//! the replicas, and adds and removes tags on the replicas, the replicator's own included. Every
//! event is delivered to the real replicate handler on the twin (authorization on), with an
//! occasional sweep. After every step the replicator's calls are checked against a model:
//!
//! - it runs CancelKeyDeletion in a Region only while a deletion it scheduled there itself is
//!   pending, never on a deletion a person scheduled;
//! - it runs EnableKey in a Region only right after its own CancelKeyDeletion there, and
//!   never on a key a person disabled;
//! - it runs ScheduleKeyDeletion only with `RemovalPolicy=ScheduleDeletion`, in a Region the
//!   person's own tag edit took out of the tag;
//! - it writes nothing to a held key (a held primary: nothing at all), and never removes a
//!   hold;
//! - with `Consent=key-policy`, where the person (the key's owner) grants or withdraws consent
//!   in the primary's policy: no write at all without consent, and no replica created, nor a
//!   replica's policy, description or aliases written, in a Region the consent does not list.
//!
//! `PROPTEST_CASES` sets the number of histories (default 128 per run, both removal policies,
//! both consent modes).

use integration_tests::{
    as_function, config, deliver_trail, primary_policy, seed_primary, PRIMARY_REGION,
};
use kms_replicator::config::{Consent, RemovalPolicy};
use kms_replicator::hold::HOLD_TAG;
use kms_replicator::marker::{now_ms, Marker, DELETION_MARKER_TAG};
use kms_replicator::model::{KeyState, Tag};
use kms_replicator::op::Op;
use kms_replicator::{Config, Kms, Syncer};
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::time::Duration;
use twin::{is_replicator, Twin, ADMIN_USER, FUNCTION_ROLES, REPLICATE_ROLE, TAGGER_ROLE};

const REGIONS: [&str; 2] = ["us-west-2", "eu-west-1"];
const DAY_MS: u64 = 86_400_000;

/// A key of the history: the primary, or the replica in `REGIONS[i]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    Primary,
    Replica(usize),
}

impl Target {
    fn region(self) -> &'static str {
        match self {
            Target::Primary => PRIMARY_REGION,
            Target::Replica(i) => REGIONS[i],
        }
    }
}

#[derive(Debug, Clone)]
enum Step {
    /// The person sets the replication tag to these Regions (a bit mask over `REGIONS`, never
    /// empty).
    SetRegions(u8),
    PersonDisables(usize),
    /// With the waiting period people use: KMS's default, 30 days.
    PersonSchedulesDeletion(usize),
    PersonEditsDescription(u8),
    /// The person sets the consent statement in the primary's policy to these Regions (a bit
    /// mask over `REGIONS`; 0 removes it). Meaningful with `Consent=key-policy`.
    PersonSetsConsent(u8),
    /// The adversary writes the deletion marker on a replica, in one of [`forged`]'s forms.
    ForgeMarker(usize, u8),
    Hold(Target),
    Unhold(Target),
    /// The adversary sets one of the replicator's tag keys, or the replication tag, on a
    /// replica.
    TagReplica(usize, u8),
    UntagReplica(usize, u8),
    /// Every Region synced once, as the hourly sweep does.
    Sweep,
}

const TAG_KEYS: [&str; 4] = [
    "replicate-to",
    "kms-replicator:primary-regions",
    DELETION_MARKER_TAG,
    "team",
];

/// The marker forms an adversary may write: the old form, nonsense, and the replicator's own
/// form dated now, an hour ago, in the future, or with another waiting period.
fn forged(form: u8) -> String {
    let now = now_ms();
    let mark = |at_ms, days| {
        Marker {
            before: KeyState::Enabled,
            at_ms,
            days,
        }
        .value()
    };
    match form % 6 {
        0 => "Enabled".into(),
        1 => "yes".into(),
        2 => mark(now, 7),
        3 => mark(now - 3_600_000, 7),
        4 => mark(now + 23 * DAY_MS, 7),
        _ => mark(now, 30),
    }
}

fn step() -> impl Strategy<Value = Step> {
    let region = 0..REGIONS.len();
    let target = prop_oneof![
        Just(Target::Primary),
        (0..REGIONS.len()).prop_map(Target::Replica)
    ];
    prop_oneof![
        3 => (1u8..4).prop_map(Step::SetRegions),
        1 => region.clone().prop_map(Step::PersonDisables),
        1 => region.clone().prop_map(Step::PersonSchedulesDeletion),
        1 => any::<u8>().prop_map(Step::PersonEditsDescription),
        1 => (0u8..4).prop_map(Step::PersonSetsConsent),
        3 => (region.clone(), any::<u8>()).prop_map(|(r, f)| Step::ForgeMarker(r, f)),
        2 => target.clone().prop_map(Step::Hold),
        2 => target.prop_map(Step::Unhold),
        1 => (region.clone(), any::<u8>()).prop_map(|(r, k)| Step::TagReplica(r, k)),
        1 => (region, any::<u8>()).prop_map(|(r, k)| Step::UntagReplica(r, k)),
        1 => Just(Step::Sweep),
    ]
}

/// What the history allows the replicator, from what the person and the adversary did.
struct World {
    twin: Twin,
    cfg: Config,
    key: String,
    /// The Regions the person's last tag edit lists.
    listed: BTreeSet<usize>,
    person_disabled: BTreeSet<usize>,
    person_scheduled: BTreeSet<usize>,
    /// Regions where a deletion the replicator scheduled is pending.
    replicator_pending: BTreeSet<usize>,
    /// Regions where the replicator's last restore call was a CancelKeyDeletion.
    just_cancelled: BTreeSet<usize>,
    holds: BTreeSet<Target>,
    /// With Consent=key-policy, the Regions the primary's policy consents to (`None`: no
    /// consent statement).
    consent: Option<BTreeSet<usize>>,
    /// The Regions holding a replica before the step.
    replicas: BTreeSet<usize>,
    /// Calls already checked.
    seen: usize,
}

fn region_index(region: &str) -> Option<usize> {
    REGIONS.iter().position(|r| *r == region)
}

fn regions_value(mask: u8) -> String {
    (0..REGIONS.len())
        .filter(|i| mask & (1 << i) != 0)
        .map(|i| REGIONS[i])
        .collect::<Vec<_>>()
        .join(" ")
}

impl World {
    async fn new(removal: RemovalPolicy, consent: Consent) -> World {
        let twin = Twin::new();
        twin.set_creating_for(Duration::ZERO);
        twin.set_updating_for(Duration::ZERO);
        let mut cfg = config();
        cfg.removal = removal;
        cfg.consent = consent;
        twin.deploy(&cfg);
        let key = seed_primary(&twin).await;
        let by_policy = consent == Consent::KeyPolicy;
        if by_policy {
            twin.with_caller(ADMIN_USER)
                .put_key_policy(PRIMARY_REGION, &key, &consenting_policy(&twin, 3))
                .await
                .unwrap();
        }
        twin.with_caller(ADMIN_USER)
            .tag_resource(
                PRIMARY_REGION,
                &key,
                &[Tag::new("replicate-to", regions_value(3))],
            )
            .await
            .unwrap();
        let mut w = World {
            twin,
            cfg,
            key,
            listed: (0..REGIONS.len()).collect(),
            person_disabled: BTreeSet::new(),
            person_scheduled: BTreeSet::new(),
            replicator_pending: BTreeSet::new(),
            just_cancelled: BTreeSet::new(),
            holds: BTreeSet::new(),
            consent: by_policy.then(|| (0..REGIONS.len()).collect()),
            replicas: BTreeSet::new(),
            seen: 0,
        };
        deliver_trail(&w.twin, &w.cfg).await;
        w.check().expect("the first replication breaks no rule");
        w
    }

    /// Makes the step (a refused call is part of the history, not an error), then delivers
    /// every event.
    async fn apply(&mut self, step: &Step) {
        self.replicas = self.existing_replicas();
        let person = self.twin.with_caller(ADMIN_USER);
        let adversary = self.twin.with_caller(TAGGER_ROLE);
        let key = self.key.clone();
        match *step {
            Step::SetRegions(mask) => {
                let tag = Tag::new("replicate-to", regions_value(mask));
                if person
                    .tag_resource(PRIMARY_REGION, &key, &[tag])
                    .await
                    .is_ok()
                {
                    self.listed = (0..REGIONS.len())
                        .filter(|i| mask & (1 << i) != 0)
                        .collect();
                }
            }
            Step::PersonDisables(r) => {
                if person.disable_key(REGIONS[r], &key).is_ok() {
                    self.person_disabled.insert(r);
                }
            }
            Step::PersonSchedulesDeletion(r) => {
                if person
                    .schedule_key_deletion(REGIONS[r], &key, 30)
                    .await
                    .is_ok()
                {
                    self.person_scheduled.insert(r);
                }
            }
            Step::PersonEditsDescription(n) => {
                let _ = person
                    .update_key_description(PRIMARY_REGION, &key, &format!("v{n}"))
                    .await;
            }
            Step::PersonSetsConsent(mask) => {
                let policy = consenting_policy(&self.twin, mask);
                if person
                    .put_key_policy(PRIMARY_REGION, &key, &policy)
                    .await
                    .is_ok()
                    && self.cfg.consent == Consent::KeyPolicy
                {
                    self.consent = (mask != 0).then(|| {
                        (0..REGIONS.len())
                            .filter(|i| mask & (1 << i) != 0)
                            .collect()
                    });
                }
            }
            Step::ForgeMarker(r, form) => {
                let tag = Tag::new(DELETION_MARKER_TAG, forged(form));
                let _ = adversary.tag_resource(REGIONS[r], &key, &[tag]).await;
            }
            Step::Hold(t) => {
                let tag = Tag::new(HOLD_TAG, "held");
                if adversary
                    .tag_resource(t.region(), &key, &[tag])
                    .await
                    .is_ok()
                {
                    self.holds.insert(t);
                }
            }
            Step::Unhold(t) => {
                let keys = [HOLD_TAG.to_string()];
                if adversary
                    .untag_resource(t.region(), &key, &keys)
                    .await
                    .is_ok()
                {
                    self.holds.remove(&t);
                }
            }
            Step::TagReplica(r, k) => {
                let tag = Tag::new(TAG_KEYS[k as usize % TAG_KEYS.len()], "us-east-1");
                let _ = adversary.tag_resource(REGIONS[r], &key, &[tag]).await;
            }
            Step::UntagReplica(r, k) => {
                let keys = [TAG_KEYS[k as usize % TAG_KEYS.len()].to_string()];
                let _ = adversary.untag_resource(REGIONS[r], &key, &keys).await;
            }
            Step::Sweep => {}
        }
        deliver_trail(&self.twin, &self.cfg).await;
        if matches!(step, Step::Sweep) {
            let kms = as_function(&self.twin, &self.cfg, REPLICATE_ROLE);
            Syncer::new(&kms, &self.cfg)
                .sync(PRIMARY_REGION, &key, false)
                .await;
        }
    }

    fn existing_replicas(&self) -> BTreeSet<usize> {
        (0..REGIONS.len())
            .filter(|i| self.twin.key(REGIONS[*i], &self.key).is_some())
            .collect()
    }

    /// With Consent=key-policy: a write in `region` the owners' consent does not cover.
    fn unconsented(&self, op: Op, region: usize) -> bool {
        let Some(consent) = (self.cfg.consent == Consent::KeyPolicy).then_some(&self.consent)
        else {
            return false;
        };
        let mirrors = matches!(
            op,
            Op::PutKeyPolicy | Op::UpdateKeyDescription | Op::CreateAlias
        );
        match consent {
            None => true,
            Some(regions) => mirrors && !regions.contains(&region),
        }
    }

    fn held(&self, region: &str) -> bool {
        self.holds.contains(&Target::Primary)
            || region_index(region).is_some_and(|i| self.holds.contains(&Target::Replica(i)))
    }

    /// The replicator's calls since the last check, against the model; then the holds.
    fn check(&mut self) -> Result<(), String> {
        let calls = self.twin.calls();
        let deleting = matches!(self.cfg.removal, RemovalPolicy::ScheduleDeletion { .. });
        for c in &calls[self.seen..] {
            if !is_replicator(&c.caller) || !c.op.is_write() {
                continue;
            }
            if self.held(&c.region) {
                return Err(format!("{} in {} while held", c.op, c.region));
            }
            let Some(r) = region_index(&c.region) else {
                // ReplicateKey is sent to the primary's Region; it writes nothing there (the new
                // replicas are checked below).
                if c.op == Op::ReplicateKey {
                    if self.cfg.consent == Consent::KeyPolicy && self.consent.is_none() {
                        return Err("ReplicateKey without the owners' consent".into());
                    }
                    continue;
                }
                return Err(format!("{} in the primary's Region", c.op));
            };
            if self.unconsented(c.op, r) {
                return Err(format!(
                    "{} in {} without the owners' consent ({:?})",
                    c.op, c.region, self.consent
                ));
            }
            match c.op {
                Op::ScheduleKeyDeletion => {
                    if !deleting || self.listed.contains(&r) {
                        return Err(format!(
                            "scheduled the deletion of {} (listed: {:?}, {:?})",
                            c.region, self.listed, self.cfg.removal
                        ));
                    }
                    self.replicator_pending.insert(r);
                }
                Op::CancelKeyDeletion => {
                    if !self.replicator_pending.remove(&r) || self.person_scheduled.contains(&r) {
                        return Err(format!(
                            "cancelled a deletion in {} it did not schedule",
                            c.region
                        ));
                    }
                    self.just_cancelled.insert(r);
                }
                Op::EnableKey
                    if !self.just_cancelled.remove(&r) || self.person_disabled.contains(&r) =>
                {
                    return Err(format!(
                        "enabled the key in {} without its own restore",
                        c.region
                    ));
                }
                _ => {}
            }
        }
        self.seen = calls.len();
        if let Some(consent) = (self.cfg.consent == Consent::KeyPolicy).then_some(&self.consent) {
            for r in self.existing_replicas().difference(&self.replicas) {
                if !consent.as_ref().is_some_and(|c| c.contains(r)) {
                    return Err(format!(
                        "a replica was created in {} without the owners' consent ({consent:?})",
                        REGIONS[*r]
                    ));
                }
            }
        }
        for t in [Target::Primary, Target::Replica(0), Target::Replica(1)] {
            let carried = self
                .twin
                .key(t.region(), &self.key)
                .is_some_and(|k| k.tags.contains_key(HOLD_TAG));
            if carried != self.holds.contains(&t) {
                return Err(format!(
                    "the hold on {t:?} is {carried}, the people left it {}",
                    !carried
                ));
            }
        }
        Ok(())
    }
}

/// The example primary policy, with a statement granting the function roles
/// `kms:ReplicateKey` into the Regions of `mask` (none when 0).
fn consenting_policy(twin: &Twin, mask: u8) -> String {
    let mut doc: serde_json::Value =
        serde_json::from_str(&primary_policy(&twin.account())).unwrap();
    if mask != 0 {
        let value = regions_value(mask);
        let regions: Vec<&str> = value.split(' ').collect();
        doc["Statement"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({
                "Sid": "ConsentToKmsReplicator", "Effect": "Allow",
                "Principal": {"AWS": FUNCTION_ROLES}, "Action": "kms:ReplicateKey", "Resource": "*",
                "Condition": {"StringEquals": {"kms:ReplicaRegion": regions}}
            }));
    }
    doc.to_string()
}

fn run_history(steps: &[Step], removal: RemovalPolicy, consent: Consent) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut w = World::new(removal, consent).await;
        for (i, s) in steps.iter().enumerate() {
            w.apply(s).await;
            w.check()
                .map_err(|e| format!("after step {i} {s:?}: {e}"))?;
        }
        Ok(())
    })
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn an_adversary_who_can_only_tag_never_makes_the_replicator_enable_cancel_delete_or_break_a_hold(
        steps in prop::collection::vec(step(), 1..24),
        schedule_deletion in any::<bool>(),
        by_key_policy in any::<bool>(),
    ) {
        let removal = if schedule_deletion {
            RemovalPolicy::ScheduleDeletion { pending_window_days: 7 }
        } else {
            RemovalPolicy::Retain
        };
        let consent = if by_key_policy { Consent::KeyPolicy } else { Consent::Tag };
        if let Err(e) = run_history(&steps, removal, consent) {
            prop_assert!(false, "{}", e);
        }
    }
}

/// The model is not vacuous: the replicator's own remove-then-re-add, with the adversary's
/// forgeries around it, is a history it accepts and in which the restore happens.
#[test]
fn the_model_accepts_the_replicators_own_restore() {
    let removal = RemovalPolicy::ScheduleDeletion {
        pending_window_days: 7,
    };
    let steps = [
        Step::ForgeMarker(1, 2),
        Step::SetRegions(1),
        Step::ForgeMarker(1, 0),
        Step::SetRegions(3),
    ];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut w = World::new(removal, Consent::Tag).await;
        for s in &steps {
            w.apply(s).await;
            w.check().unwrap();
        }
        let ops: Vec<Op> = w
            .twin
            .calls()
            .into_iter()
            .filter(|c| is_replicator(&c.caller) && c.region == REGIONS[1])
            .map(|c| c.op)
            .filter(|op| {
                matches!(
                    op,
                    Op::ScheduleKeyDeletion | Op::CancelKeyDeletion | Op::EnableKey
                )
            })
            .collect();
        assert_eq!(
            ops,
            [
                Op::ScheduleKeyDeletion,
                Op::CancelKeyDeletion,
                Op::EnableKey
            ]
        );
        assert_eq!(
            w.twin.key(REGIONS[1], &w.key).unwrap().state,
            KeyState::Enabled
        );
    });
}
