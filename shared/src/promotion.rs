//! A promotion the replicator did not make must not let an older policy overwrite a newer one.
//!
//! Each replica carries [`POLICY_DIGEST_TAG`]: the Region it last mirrored its policy from, the
//! digest of that source policy, and the digest of the policy it received (written only with
//! that policy). After a promotion sync compares, for a Region that held the primary
//! ([`newer_policy_at`]): a policy there that the replicator did not write (no tag, or another
//! policy than the one it describes) and that never reached the new primary (whose own tag does
//! not name it as its source) may be an edit made while that Region held the primary, newer
//! than the new primary's; say a Deny added while its CloudTrail record was on its way and the
//! primary was moved by hand. Sync then reports the conflict and writes nothing to that Region
//! but the history tag (which only protects). A person resolves it by putting the policy they
//! want on the primary and on that Region, as mirrored. The check is made only when the
//! policy there would be written. Carrying the newer policy forward is not
//! an option: the replicate role may not write primaries.
//!
//! The tag can only stop: a forged or stale value makes sync report a conflict and write
//! nothing, never write more.

use crate::desired::{ObservedReplica, PrimaryState};
use crate::digest_tag::{digest_of, DigestTag};
pub use crate::digest_tag::{policy_digest, POLICY_DIGEST_TAG};

/// Why nothing may be written to the replica in `region` (`observed`): the Region held the
/// primary (`held_primary`, or the primary's digest names it as its source), it holds a
/// policy the replicator did not write there (no digest tag, or another policy than the one
/// it describes), and that policy has not reached the primary (the primary's digest does not
/// name it as the source it mirrored). It may be an edit made while that Region held the
/// primary, newer than the primary's policy; sync cannot tell, so it writes nothing.
pub fn newer_policy_at(
    primary: &PrimaryState,
    region: &str,
    observed: &ObservedReplica,
    held: Held,
) -> Option<String> {
    let held_primary = held != Held::No;
    let own = digest_of(&observed.tags);
    let mirrored_from = digest_of(&primary.tags);
    let named_source = mirrored_from.as_ref().is_some_and(|d| d.source == region);
    if !held_primary && !named_source {
        return None;
    }
    let now = policy_digest(&observed.policy);
    // The primary mirrored another policy from this Region than the one there now: it changed
    // since it was that source. Unless the primary itself wrote the Region's own tag (after it
    // mirrored from it), that tag may be older than the change: a person who edits a primary
    // and then puts back the very policy the replicator once wrote there leaves a tag that
    // still describes it, and the edit in between only shows on the primary's tag.
    let changed_since_source = named_source
        && mirrored_from
            .as_ref()
            .is_some_and(|d| d.source_digest != now);
    let written_by_replicator = own.as_ref().is_some_and(|o| {
        o.received == now
            && (!changed_since_source
                || (o.source == primary.info.region
                    && mirrored_from
                        .as_ref()
                        .is_some_and(|d| o.generation > d.generation)))
    });
    let reached_primary = named_source
        && mirrored_from
            .as_ref()
            .is_some_and(|d| d.source_digest == now);
    if reached_primary {
        return None;
    }
    let p = &primary.info.region;
    // It held the primary after the replicator last mirrored its policy there, so what it
    // holds may be a person's edit from that stint, and the primary holds another policy than
    // the one mirrored there (from the primary itself, or from the source both mirrored).
    let stint_since_mirror = held == Held::Known
        && own.as_ref().is_some_and(|o| {
            let same_origin = (o.source == *p && o.source_digest == policy_digest(&primary.policy))
                || mirrored_from
                    .as_ref()
                    .is_some_and(|d| d.source == o.source && d.source_digest == o.source_digest);
            o.held == Some(false) && !same_origin
        });
    if !written_by_replicator {
        return Some(conflict(
            primary,
            region,
            format!(
                "holds a policy the replicator did not write there, which the primary in {p} \
                 never received (an edit made there while it held the primary, before the \
                 primary Region changed again?)"
            ),
        ));
    }
    // The replicator wrote it, from the source the primary mirrored too, later or in the same
    // stint of that source (then which of the two is newer cannot be told).
    if let (Some(o), Some(d)) = (own.as_ref(), mirrored_from.as_ref()) {
        if later_mirror(o, d) {
            let s = &o.source;
            let why = if o.generation > d.generation {
                format!(
                    "after the primary in {p} received its own from {s}, so the primary's is \
                     the older"
                )
            } else {
                format!(
                    "while {s} held the primary, as the primary in {p} received another, so \
                     which of the two is newer cannot be told"
                )
            };
            return Some(conflict(
                primary,
                region,
                format!(
                    "holds the policy the replicator mirrored there from {s} (generation {}) \
                     {why} (generation {})",
                    o.generation, d.generation
                ),
            ));
        }
    }
    // The replicator wrote it from another source than the primary, in a stint the primary
    // never received a mirror of: the primary's tag names no source, or another one at a lower
    // generation. The primary was moved by hand to a key that missed that stint's policy (left
    // in conflict, or not listed in the tag), so its own policy may be the older.
    if let Some(o) = own.as_ref().filter(|o| o.source != *p) {
        let missed = mirrored_from
            .as_ref()
            .is_none_or(|d| d.source != o.source && d.generation < o.generation);
        if missed {
            let s = &o.source;
            return Some(conflict(
                primary,
                region,
                format!(
                    "holds the policy the replicator mirrored there from {s} (generation {}),                      which the primary in {p} never received (its own was mirrored from {}),                      so the primary's may be the older",
                    o.generation,
                    mirrored_from
                        .as_ref()
                        .map_or("no other Region".to_string(), |d| format!(
                            "{} at generation {}",
                            d.source, d.generation
                        ))
                ),
            ));
        }
    }
    if stint_since_mirror {
        return Some(conflict(
            primary,
            region,
            format!(
                "has held it since the replicator last mirrored its policy there, so the policy \
                 there may be an edit made during that stint (even one that put back the policy \
                 mirrored there), and the primary in {p} holds another"
            ),
        ));
    }
    None
}

/// Whether the Region being written held the primary, as far as sync knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// The history (the primary's tag, the Region's own, or a record) says it did.
    Known,
    /// Nothing says so, but sync treats it as if it did (the failover function's rule before
    /// a promotion: a policy changed since it was last mirrored may be a newer edit).
    Assumed,
    /// Nothing says so.
    No,
}

/// The conflict's reason: why nothing is written to `region`, and how a person resolves it.
fn conflict(primary: &PrimaryState, region: &str, why: String) -> String {
    let (p, id) = (&primary.info.region, &primary.info.key_id);
    format!(
        "the key in {region} held the primary and {why}: nothing is written to {region}. \
         Decide which policy wins: put it on the primary (aws kms put-key-policy --region {p} \
         --key-id {id} --policy-name default) and on {region} as the replicator mirrors it \
         (the reconcile function's dry run shows that policy); from then on {region} is \
         mirrored as usual"
    )
}

/// Whether `own` (a replica's tag) records a mirror of the source `primary` (the primary's
/// tag) also mirrored, of another policy there, that is not older: the same source Region and
/// a generation at least as high. A primary's tag never changes while it is the primary, so a
/// source's generation grows from one of its stints to the next, and is the same within one,
/// where the source's policy may have changed between the two mirrors. (After a hand-made
/// promotion to a key whose tag was older still, a later stint may have a lower generation:
/// then this reports a conflict where none is, and writes nothing.)
fn later_mirror(own: &DigestTag, primary: &DigestTag) -> bool {
    own.source == primary.source
        && own.source_digest != primary.source_digest
        && own.generation >= primary.generation
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::digest_tag;
    use crate::model::Tag;
    use crate::model::{KeyInfo, KeyState};

    const OLD: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"A","Effect":"Allow"}]}"#;
    const NEW: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"A","Effect":"Allow"},{"Sid":"D","Effect":"Deny"}]}"#;

    fn primary(region: &str, policy: &str, tags: Vec<Tag>) -> PrimaryState {
        PrimaryState {
            info: KeyInfo {
                key_id: "mrk-1".into(),
                arn: format!("arn:aws:kms:{region}:111122223333:key/mrk-1"),
                region: region.into(),
                state: KeyState::Enabled,
                description: String::new(),
                multi_region: None,
                creation_date: None,
                deletion_date: None,
                imported_material: false,
                current_key_material_id: None,
            },
            policy: policy.into(),
            tags,
            aliases: Vec::new(),
        }
    }

    fn replica(policy: &str, tags: Vec<Tag>) -> ObservedReplica {
        ObservedReplica {
            state: KeyState::Enabled,
            policy: policy.into(),
            description: String::new(),
            tags,
            aliases: Vec::new(),
            deletion_date: None,
            read_at_ms: 0,
        }
    }

    #[test]
    fn the_digest_ignores_formatting_and_key_order_but_not_content() {
        assert_eq!(
            policy_digest(OLD),
            policy_digest(&OLD.replace(',', " ,\n "))
        );
        assert_ne!(policy_digest(OLD), policy_digest(NEW));
        assert_eq!(policy_digest(OLD).len(), 32);
    }

    #[test]
    fn a_former_primary_edited_before_the_new_primary_received_its_policy_is_a_conflict() {
        // us-west-2 received OLD from us-east-1 (the original primary, no tag), which now
        // holds NEW.
        let east = primary("us-east-1", OLD, vec![]);
        let west = primary("us-west-2", OLD, vec![digest_tag(&east, "us-west-2", OLD)]);
        assert!(newer_policy_at(&west, "us-east-1", &replica(NEW, vec![]), Held::Known).is_some());
        // Unchanged since the new primary received it: no conflict.
        assert!(newer_policy_at(&west, "us-east-1", &replica(OLD, vec![]), Held::Known).is_none());
        // A replica that never held the primary: drift, repaired as usual.
        assert!(newer_policy_at(&west, "eu-west-1", &replica(NEW, vec![]), Held::No).is_none());
    }

    #[test]
    fn a_policy_the_replicator_wrote_is_never_a_conflict() {
        let west = primary("us-west-2", NEW, vec![]);
        let east = primary("us-east-1", OLD, vec![digest_tag(&west, "us-east-1", OLD)]);
        // us-east-1 holds what the replicator last wrote there: a later edit of the primary
        // is mirrored.
        let written = replica(OLD, vec![digest_tag(&east, "us-east-1", OLD)]);
        let now = primary("us-west-2", NEW, vec![digest_tag(&east, "us-west-2", OLD)]);
        assert!(newer_policy_at(&now, "us-east-1", &written, Held::Known).is_none());
    }

    #[test]
    fn two_edits_in_two_regions_that_held_the_primary_are_a_conflict() {
        // eu-west-1 and us-east-1 both received OLD from us-west-2; us-east-1 was edited while
        // it held the primary; eu-west-1 is the primary now and still holds OLD.
        let source = primary("us-west-2", OLD, vec![]);
        let tag = digest_tag(&source, "us-east-1", OLD);
        let new_primary = primary("eu-west-1", OLD, vec![tag.clone()]);
        let edited = replica(NEW, vec![tag.clone()]);
        assert!(newer_policy_at(&new_primary, "us-east-1", &edited, Held::Known).is_some());
        assert!(newer_policy_at(
            &new_primary,
            "us-east-1",
            &replica(OLD, vec![tag]),
            Held::Known
        )
        .is_none());
    }

    #[test]
    fn a_policy_put_back_after_an_edit_is_not_taken_for_the_one_the_replicator_wrote() {
        // us-west-2 received OLD from us-east-1, then held the primary: eu-west-1 mirrored
        // NEW from it, and a person put OLD back on us-west-2 (the very policy its stale tag
        // describes). eu-west-1 is the primary now and holds NEW: a conflict.
        let east = primary("us-east-1", OLD, vec![]);
        let west_tag = digest_tag(&east, "us-west-2", OLD);
        let west_source = primary("us-west-2", NEW, vec![west_tag.clone()]);
        let eu = primary(
            "eu-west-1",
            NEW,
            vec![digest_tag(&west_source, "eu-west-1", NEW)],
        );
        let put_back = replica(OLD, vec![west_tag]);
        assert!(newer_policy_at(&eu, "us-west-2", &put_back, Held::Known).is_some());
        // The same policy, written there by eu-west-1 itself after it mirrored from us-west-2:
        // the replicator's, mirrored as usual.
        let written = replica(OLD, vec![digest_tag(&eu, "us-west-2", OLD)]);
        assert!(newer_policy_at(&eu, "us-west-2", &written, Held::Known).is_none());
    }

    #[test]
    fn a_stale_tag_written_by_the_primary_in_an_earlier_stint_is_not_the_replicators_word() {
        // us-east-1 (the original primary) wrote OLD to us-west-2; us-west-2, promoted, wrote
        // OLD back to us-east-1; us-east-1, primary again, had NEW mirrored to us-west-2 and
        // then OLD put back by a person. us-west-2 is the primary now: its tag (written last)
        // names us-east-1 with NEW, us-east-1's own (older) names us-west-2.
        let east0 = primary("us-east-1", OLD, vec![]);
        let west1 = primary("us-west-2", OLD, vec![digest_tag(&east0, "us-west-2", OLD)]);
        let east_tag = digest_tag(&west1, "us-east-1", OLD);
        let east2 = primary("us-east-1", NEW, vec![east_tag.clone()]);
        let west3 = primary("us-west-2", NEW, vec![digest_tag(&east2, "us-west-2", NEW)]);
        let put_back = replica(OLD, vec![east_tag]);
        assert!(newer_policy_at(&west3, "us-east-1", &put_back, Held::Known).is_some());
        // What us-west-2 writes there now is its own, later word.
        let written = replica(OLD, vec![digest_tag(&west3, "us-east-1", OLD)]);
        assert!(newer_policy_at(&west3, "us-east-1", &written, Held::Known).is_none());
    }

    #[test]
    fn a_later_mirror_of_the_source_the_new_primary_mirrored_is_a_conflict() {
        // eu-west-1 (the original primary, no tag) wrote OLD to us-east-1 and us-west-2. Then
        // us-east-1 held the primary, was edited (NEW) and failed over to eu-west-1, which
        // mirrored NEW back to us-east-1. us-west-2, left out of the tag meanwhile, is
        // promoted by hand: it still holds its mirror of OLD from eu-west-1.
        let eu0 = primary("eu-west-1", OLD, vec![]);
        let east1 = primary("us-east-1", NEW, vec![digest_tag(&eu0, "us-east-1", OLD)]);
        let eu2 = primary("eu-west-1", NEW, vec![digest_tag(&east1, "eu-west-1", NEW)]);
        let west = primary("us-west-2", OLD, vec![digest_tag(&eu0, "us-west-2", OLD)]);
        let east = replica(NEW, vec![digest_tag(&eu2, "us-east-1", NEW)]);
        let reason = newer_policy_at(&west, "us-east-1", &east, Held::Known).expect("a conflict");
        assert!(reason.contains("(generation 3) after"), "{reason}");
        // Mirrored in one stint of eu-west-1, of two of its policies: which is newer cannot
        // be told.
        let eu2_before = primary("eu-west-1", OLD, eu2.tags.clone());
        let west_same_stint = primary(
            "us-west-2",
            OLD,
            vec![digest_tag(&eu2_before, "us-west-2", OLD)],
        );
        let reason =
            newer_policy_at(&west_same_stint, "us-east-1", &east, Held::Known).expect("a conflict");
        assert!(reason.contains("cannot be told"), "{reason}");
        // The same Region's mirror of the very policy the new primary mirrored: not newer.
        let same = replica(OLD, vec![digest_tag(&eu0, "us-east-1", OLD)]);
        assert!(newer_policy_at(&west, "us-east-1", &same, Held::Known).is_none());
        // An earlier mirror of another policy of that source: the new primary's is the newer,
        // as far as generations tell (a four-field tag)...
        let west_later = primary("us-west-2", NEW, vec![digest_tag(&eu2, "us-west-2", NEW)]);
        let tag = digest_tag(&eu0, "us-east-1", OLD);
        let legacy = Tag::new(POLICY_DIGEST_TAG, tag.value.trim_end_matches(" not-held"));
        let earlier = replica(OLD, vec![legacy]);
        assert!(newer_policy_at(&west_later, "us-east-1", &earlier, Held::Known).is_none());
        // ... but the tag was written before us-east-1 held the primary, and us-east-1 held
        // NEW then: OLD there now was put back by a person during or after that stint.
        let reason = newer_policy_at(
            &west_later,
            "us-east-1",
            &replica(OLD, vec![tag]),
            Held::Known,
        )
        .expect("a conflict");
        assert!(
            reason.contains("since the replicator last mirrored"),
            "{reason}"
        );
    }

    #[test]
    fn a_region_that_held_the_primary_after_its_mirror_may_hold_an_edit_even_of_the_same_policy() {
        // us-west-2 (the original primary, no tag) mirrored OLD to eu-west-1, then took NEW
        // (its record late); eu-west-1 held the primary, a person edited it and put OLD back;
        // us-west-2 is the primary again. eu-west-1's tag describes what it holds, but it was
        // written before eu-west-1's stint: a conflict.
        let west0 = primary("us-west-2", OLD, vec![]);
        let eu_tag = digest_tag(&west0, "eu-west-1", OLD);
        assert!(eu_tag.value.ends_with(" not-held"), "{}", eu_tag.value);
        let west = primary("us-west-2", NEW, vec![]);
        let eu = replica(OLD, vec![eu_tag.clone()]);
        let reason = newer_policy_at(&west, "eu-west-1", &eu, Held::Known).expect("a conflict");
        assert!(
            reason.contains("since the replicator last mirrored"),
            "{reason}"
        );
        // Not known to have held the primary: us-west-2's edit is mirrored as usual.
        assert!(newer_policy_at(&west, "eu-west-1", &eu, Held::No).is_none());
        // The primary still holds the policy eu-west-1 mirrored from it: nothing to decide.
        assert!(newer_policy_at(&west0, "eu-west-1", &eu, Held::Known).is_none());
        // Mirrored while the history already listed eu-west-1: its stint was before.
        let with_history = primary(
            "us-west-2",
            OLD,
            vec![Tag::new(
                crate::desired::PRIMARY_HISTORY_TAG,
                "eu-west-1 us-west-2",
            )],
        );
        let after = replica(OLD, vec![digest_tag(&with_history, "eu-west-1", OLD)]);
        assert!(newer_policy_at(&west, "eu-west-1", &after, Held::Known).is_none());
        // A four-field tag (written before the field existed): not seen.
        let legacy = Tag::new(
            POLICY_DIGEST_TAG,
            eu_tag.value.trim_end_matches(" not-held").to_string(),
        );
        assert!(
            newer_policy_at(&west, "eu-west-1", &replica(OLD, vec![legacy]), Held::Known).is_none()
        );
    }

    #[test]
    fn a_mirror_from_a_stint_the_new_primary_missed_is_a_conflict() {
        // us-east-1 (the original primary, no tag) was left out while us-west-2 and then
        // eu-west-1 held the primary: us-west-2 holds NEW, mirrored from eu-west-1 at
        // generation 3. us-east-1, promoted back by hand, still holds OLD.
        let west1 = primary("us-west-2", NEW, vec![]);
        let history = Tag::new(
            crate::desired::PRIMARY_HISTORY_TAG,
            "eu-west-1 us-east-1 us-west-2",
        );
        let eu2 = primary(
            "eu-west-1",
            NEW,
            vec![digest_tag(&west1, "eu-west-1", NEW), history],
        );
        let west = replica(NEW, vec![digest_tag(&eu2, "us-west-2", NEW)]);
        let east = primary("us-east-1", OLD, vec![]);
        let reason = newer_policy_at(&east, "us-west-2", &west, Held::Known).expect("a conflict");
        assert!(reason.contains("never received"), "{reason}");
        // A primary that mirrored from elsewhere later (a higher generation) is the newer.
        let later = primary(
            "us-east-1",
            OLD,
            vec![Tag::new(
                POLICY_DIGEST_TAG,
                format!(
                    "ap-south-1 {} {} 4 held",
                    policy_digest(OLD),
                    policy_digest(OLD)
                ),
            )],
        );
        assert!(newer_policy_at(&later, "us-west-2", &west, Held::Known).is_none());
        // Mirrored from the primary itself: its own word, as usual.
        let from_east = replica(OLD, vec![digest_tag(&east, "us-west-2", OLD)]);
        assert!(newer_policy_at(&east, "us-west-2", &from_east, Held::Known).is_none());
    }

    #[test]
    fn a_forged_or_missing_digest_can_only_stop() {
        // A Region not known to have held the primary, and no tag naming it: drift, repaired.
        let east = primary("us-east-1", OLD, vec![]);
        assert!(newer_policy_at(&east, "us-west-2", &replica(NEW, vec![]), Held::No).is_none());
        let junk = primary("us-west-2", OLD, vec![Tag::new(POLICY_DIGEST_TAG, "junk")]);
        assert!(newer_policy_at(&junk, "us-east-1", &replica(NEW, vec![]), Held::No).is_none());
        // A forged tag stops the writes: the answer is a conflict, never a write.
        let forged = Tag::new(
            POLICY_DIGEST_TAG,
            format!("us-east-1 {} {}", "0".repeat(32), policy_digest(OLD)),
        );
        let west = primary("us-west-2", OLD, vec![forged]);
        assert!(newer_policy_at(&west, "us-east-1", &replica(OLD, vec![]), Held::No).is_some());
    }
}
