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
/// <digest of the source policy> <digest of the policy it received>`.
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
            "{} {} {}",
            primary.info.region,
            policy_digest(&primary.policy),
            policy_digest(mirrored)
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
    let named_source = mirrored_from.as_ref().is_some_and(|(s, _, _)| s == region);
    if !held_primary && !named_source {
        return None;
    }
    let now = policy_digest(&observed.policy);
    let written_by_replicator = own.is_some_and(|(_, _, received)| received == now);
    let reached_primary = named_source && mirrored_from.is_some_and(|(_, d, _)| d == now);
    if written_by_replicator || reached_primary {
        return None;
    }
    let (p, id) = (&primary.info.region, &primary.info.key_id);
    Some(format!(
        "the key in {region} held the primary and holds a policy the replicator did not write \
         there, which the primary in {p} never received (an edit made there while it held the \
         primary, before the primary Region changed again?): nothing is written to {region}. \
         Decide which policy wins: put it on the primary (aws kms put-key-policy --region {p} \
         --key-id {id} --policy-name default) and on {region} as the replicator mirrors it \
         (the reconcile function's dry run shows that policy); from then on {region} is \
         mirrored as usual"
    ))
}

/// The three fields of the digest tag among `tags`: source Region, source digest, received.
fn digest_of(tags: &[Tag]) -> Option<(String, String, String)> {
    let value = &tags.iter().find(|t| t.key == POLICY_DIGEST_TAG)?.value;
    let mut parts = value.split_whitespace().map(str::to_string);
    Some((parts.next()?, parts.next()?, parts.next()?))
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
