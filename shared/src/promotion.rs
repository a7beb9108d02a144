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
use crate::model::Tag;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The tag that records, on a replica, which policy it last mirrored: `<source Region>
/// <digest of the source policy> <digest of the policy it received> <generation>`. The
/// generation is one more than that of the source's own tag (0 without one): a primary's tag
/// never changes while it is the primary (the replicator does not write primaries), so of two
/// keys that mirrored from each other in turn, the higher generation was written last.
pub const POLICY_DIGEST_TAG: &str = "kms-replicator:policy-digest";

/// The first 128 bits of the SHA-256 of the policy document (formatting and key order aside),
/// in hex.
pub fn policy_digest(policy: &str) -> String {
    let canonical = serde_json::from_str::<Value>(policy)
        .map(|v| v.to_string())
        .unwrap_or_else(|_| policy.to_string());
    Sha256::digest(canonical.as_bytes())[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The tag a replica carries once it holds `mirrored`, the policy of `primary` rewritten for it.
pub fn digest_tag(primary: &PrimaryState, mirrored: &str) -> Tag {
    Tag::new(
        POLICY_DIGEST_TAG,
        format!(
            "{} {} {} {}",
            primary.info.region,
            policy_digest(&primary.policy),
            policy_digest(mirrored),
            digest_of(&primary.tags).map_or(0, |d| d.generation) + 1
        ),
    )
}

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
    held_primary: bool,
) -> Option<String> {
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
    let (o, d) = (own.as_ref()?, mirrored_from.as_ref()?);
    let s = &o.source;
    later_mirror(o, d).then(|| {
        let why = if o.generation > d.generation {
            format!(
                "after the primary in {p} received its own from {s}, so the primary's is the older"
            )
        } else {
            format!(
                "while {s} held the primary, as the primary in {p} received another, so which of \
                 the two is newer cannot be told"
            )
        };
        conflict(
            primary,
            region,
            format!(
                "holds the policy the replicator mirrored there from {} (generation {}) {why} \
                 (generation {})",
                o.source, o.generation, d.generation
            ),
        )
    })
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

/// The fields of a digest tag.
struct DigestTag {
    source: String,
    source_digest: String,
    received: String,
    /// 0 in a tag written before generations were recorded.
    generation: u64,
}

/// The digest tag among `tags`.
fn digest_of(tags: &[Tag]) -> Option<DigestTag> {
    let value = &tags.iter().find(|t| t.key == POLICY_DIGEST_TAG)?.value;
    let mut parts = value.split_whitespace().map(str::to_string);
    Some(DigestTag {
        source: parts.next()?,
        source_digest: parts.next()?,
        received: parts.next()?,
        generation: parts.next().and_then(|g| g.parse().ok()).unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
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
        let west = primary("us-west-2", OLD, vec![digest_tag(&east, OLD)]);
        assert!(newer_policy_at(&west, "us-east-1", &replica(NEW, vec![]), true).is_some());
        // Unchanged since the new primary received it: no conflict.
        assert!(newer_policy_at(&west, "us-east-1", &replica(OLD, vec![]), true).is_none());
        // A replica that never held the primary: drift, repaired as usual.
        assert!(newer_policy_at(&west, "eu-west-1", &replica(NEW, vec![]), false).is_none());
    }

    #[test]
    fn a_policy_the_replicator_wrote_is_never_a_conflict() {
        let west = primary("us-west-2", NEW, vec![]);
        let east = primary("us-east-1", OLD, vec![digest_tag(&west, OLD)]);
        // us-east-1 holds what the replicator last wrote there: a later edit of the primary
        // is mirrored.
        let written = replica(OLD, vec![digest_tag(&east, OLD)]);
        let now = primary("us-west-2", NEW, vec![digest_tag(&east, OLD)]);
        assert!(newer_policy_at(&now, "us-east-1", &written, true).is_none());
    }

    #[test]
    fn two_edits_in_two_regions_that_held_the_primary_are_a_conflict() {
        // eu-west-1 and us-east-1 both received OLD from us-west-2; us-east-1 was edited while
        // it held the primary; eu-west-1 is the primary now and still holds OLD.
        let source = primary("us-west-2", OLD, vec![]);
        let tag = digest_tag(&source, OLD);
        let new_primary = primary("eu-west-1", OLD, vec![tag.clone()]);
        let edited = replica(NEW, vec![tag.clone()]);
        assert!(newer_policy_at(&new_primary, "us-east-1", &edited, true).is_some());
        assert!(
            newer_policy_at(&new_primary, "us-east-1", &replica(OLD, vec![tag]), true).is_none()
        );
    }

    #[test]
    fn a_policy_put_back_after_an_edit_is_not_taken_for_the_one_the_replicator_wrote() {
        // us-west-2 received OLD from us-east-1, then held the primary: eu-west-1 mirrored
        // NEW from it, and a person put OLD back on us-west-2 (the very policy its stale tag
        // describes). eu-west-1 is the primary now and holds NEW: a conflict.
        let east = primary("us-east-1", OLD, vec![]);
        let west_tag = digest_tag(&east, OLD);
        let west_source = primary("us-west-2", NEW, vec![west_tag.clone()]);
        let eu = primary("eu-west-1", NEW, vec![digest_tag(&west_source, NEW)]);
        let put_back = replica(OLD, vec![west_tag]);
        assert!(newer_policy_at(&eu, "us-west-2", &put_back, true).is_some());
        // The same policy, written there by eu-west-1 itself after it mirrored from us-west-2:
        // the replicator's, mirrored as usual.
        let written = replica(OLD, vec![digest_tag(&eu, OLD)]);
        assert!(newer_policy_at(&eu, "us-west-2", &written, true).is_none());
    }

    #[test]
    fn a_stale_tag_written_by_the_primary_in_an_earlier_stint_is_not_the_replicators_word() {
        // us-east-1 (the original primary) wrote OLD to us-west-2; us-west-2, promoted, wrote
        // OLD back to us-east-1; us-east-1, primary again, had NEW mirrored to us-west-2 and
        // then OLD put back by a person. us-west-2 is the primary now: its tag (written last)
        // names us-east-1 with NEW, us-east-1's own (older) names us-west-2.
        let east0 = primary("us-east-1", OLD, vec![]);
        let west1 = primary("us-west-2", OLD, vec![digest_tag(&east0, OLD)]);
        let east_tag = digest_tag(&west1, OLD);
        let east2 = primary("us-east-1", NEW, vec![east_tag.clone()]);
        let west3 = primary("us-west-2", NEW, vec![digest_tag(&east2, NEW)]);
        let put_back = replica(OLD, vec![east_tag]);
        assert!(newer_policy_at(&west3, "us-east-1", &put_back, true).is_some());
        // What us-west-2 writes there now is its own, later word.
        let written = replica(OLD, vec![digest_tag(&west3, OLD)]);
        assert!(newer_policy_at(&west3, "us-east-1", &written, true).is_none());
    }

    #[test]
    fn a_later_mirror_of_the_source_the_new_primary_mirrored_is_a_conflict() {
        // eu-west-1 (the original primary, no tag) wrote OLD to us-east-1 and us-west-2. Then
        // us-east-1 held the primary, was edited (NEW) and failed over to eu-west-1, which
        // mirrored NEW back to us-east-1. us-west-2, left out of the tag meanwhile, is
        // promoted by hand: it still holds its mirror of OLD from eu-west-1.
        let eu0 = primary("eu-west-1", OLD, vec![]);
        let east1 = primary("us-east-1", NEW, vec![digest_tag(&eu0, OLD)]);
        let eu2 = primary("eu-west-1", NEW, vec![digest_tag(&east1, NEW)]);
        let west = primary("us-west-2", OLD, vec![digest_tag(&eu0, OLD)]);
        let east = replica(NEW, vec![digest_tag(&eu2, NEW)]);
        let reason = newer_policy_at(&west, "us-east-1", &east, true).expect("a conflict");
        assert!(reason.contains("(generation 3) after"), "{reason}");
        // Mirrored in one stint of eu-west-1, of two of its policies: which is newer cannot
        // be told.
        let eu2_before = primary("eu-west-1", OLD, eu2.tags.clone());
        let west_same_stint = primary("us-west-2", OLD, vec![digest_tag(&eu2_before, OLD)]);
        let reason =
            newer_policy_at(&west_same_stint, "us-east-1", &east, true).expect("a conflict");
        assert!(reason.contains("cannot be told"), "{reason}");
        // The same Region's mirror of the very policy the new primary mirrored: not newer.
        let same = replica(OLD, vec![digest_tag(&eu0, OLD)]);
        assert!(newer_policy_at(&west, "us-east-1", &same, true).is_none());
        // An earlier mirror of another policy of that source: the new primary's is the newer.
        let west_later = primary("us-west-2", NEW, vec![digest_tag(&eu2, NEW)]);
        let earlier = replica(OLD, vec![digest_tag(&eu0, OLD)]);
        assert!(newer_policy_at(&west_later, "us-east-1", &earlier, true).is_none());
    }

    #[test]
    fn a_forged_or_missing_digest_can_only_stop() {
        // A Region not known to have held the primary, and no tag naming it: drift, repaired.
        let east = primary("us-east-1", OLD, vec![]);
        assert!(newer_policy_at(&east, "us-west-2", &replica(NEW, vec![]), false).is_none());
        let junk = primary("us-west-2", OLD, vec![Tag::new(POLICY_DIGEST_TAG, "junk")]);
        assert!(newer_policy_at(&junk, "us-east-1", &replica(NEW, vec![]), false).is_none());
        // A forged tag stops the writes: the answer is a conflict, never a write.
        let forged = Tag::new(
            POLICY_DIGEST_TAG,
            format!("us-east-1 {} {}", "0".repeat(32), policy_digest(OLD)),
        );
        let west = primary("us-west-2", OLD, vec![forged]);
        assert!(newer_policy_at(&west, "us-east-1", &replica(OLD, vec![]), false).is_some());
    }
}
