//! A promotion the replicator did not make must not let an older policy overwrite a newer one.
//!
//! Each replica carries [`POLICY_DIGEST_TAG`]: the Region it last mirrored its policy from, the
//! digest of that source policy, and the digest of the policy it received. When such a replica
//! becomes the primary (by hand, say, while the CloudTrail record of a policy edit on the old
//! primary is still on its way), sync compares: if the new primary still holds the policy it
//! received, and the Region it received it from now holds a policy other than the one it was
//! given, that Region holds a newer policy than the new primary ([`newer_former_primary`]).
//! Likewise when a Region that held the primary was a replica of the source version the new
//! primary still holds, and its policy changed since ([`edited_since_mirrored`]). Sync then
//! reports the conflict and writes nothing to that Region but the history tag (which only
//! protects); a person resolves it by putting the newer policy on the new primary (or the old
//! one back). Carrying the newer policy forward is not an option: the replicate role may not
//! write primaries.
//!
//! The tag can only stop: a forged or stale value makes sync report a conflict and write
//! nothing, never write more. On a replica sync rewrites it every time it mirrors the policy,
//! and only once that policy is written.

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

/// Why nothing may be written to the replica in `region`, whose policy is `observed`: it was
/// the source of the primary's policy and holds a newer one since (see the module's docs).
pub fn newer_former_primary(
    primary: &PrimaryState,
    region: &str,
    observed: &str,
) -> Option<String> {
    let value = primary
        .tags
        .iter()
        .find(|t| t.key == POLICY_DIGEST_TAG)?
        .value
        .clone();
    let mut parts = value.split_whitespace();
    let (source, source_digest, received) = (parts.next()?, parts.next()?, parts.next()?);
    let unchanged_since_promotion = policy_digest(&primary.policy) == received;
    let source_changed = policy_digest(observed) != source_digest;
    (source == region && unchanged_since_promotion && source_changed).then(|| {
        let (p, id) = (&primary.info.region, &primary.info.key_id);
        format!(
            "the key in {region} holds a newer policy than the primary in {p}, which still \
             holds the policy it last received from {region} (the primary Region changed while \
             a policy edit in {region} was on its way): nothing is written to {region}. Put the \
             policy you want on the primary (aws kms put-key-policy --region {p} --key-id {id} \
             --policy-name default), and it is mirrored to every Region"
        )
    })
}

/// Why nothing may be written to the replica in `region` (`observed`): its own tag says it
/// last received the primary's current policy, and it holds another one since: a person edited
/// it, while it held the primary (`held_primary`: its Region is in the history, or the caller
/// treats every edit so, as the failover function does before a promotion) or as a replica.
pub fn edited_since_mirrored(
    primary: &PrimaryState,
    region: &str,
    observed: &ObservedReplica,
    held_primary: bool,
) -> Option<String> {
    if !held_primary {
        return None;
    }
    let (source, source_digest, received) = digest_of(&observed.tags)?;
    let p = &primary.info.region;
    let now = policy_digest(&primary.policy);
    // The primary holds what the replica last received: the policy it was mirrored from, or
    // (a replica once too) the same version of the same source, unchanged since.
    let primary_unchanged = (source == *p && now == source_digest)
        || digest_of(&primary.tags)
            .is_some_and(|(s, d, r)| s == source && d == source_digest && r == now);
    let edited = policy_digest(&observed.policy) != received;
    (primary_unchanged && edited).then(|| {
        let id = &primary.info.key_id;
        format!(
            "the key in {region} held the primary and its policy was changed after the \
             replicator last mirrored the primary's policy there, while the primary in {p} \
             still holds that older policy: nothing is written to {region}. Put the policy you \
             want on the primary (aws kms put-key-policy --region {p} --key-id {id} \
             --policy-name default), and it is mirrored to every Region"
        )
    })
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
    fn a_former_primary_edited_after_the_new_primary_received_its_policy_is_a_conflict() {
        // us-west-2 received OLD from us-east-1; us-east-1 now holds NEW.
        let east = primary("us-east-1", OLD, vec![]);
        let west = primary("us-west-2", OLD, vec![digest_tag(&east, OLD)]);
        assert!(newer_former_primary(&west, "us-east-1", NEW).is_some());
        // Unchanged since: no conflict. Another Region: no conflict.
        assert!(newer_former_primary(&west, "us-east-1", OLD).is_none());
        assert!(newer_former_primary(&west, "eu-west-1", NEW).is_none());
        // The new primary's policy was edited since: it is the newest, and it is mirrored.
        let edited = primary("us-west-2", NEW, west.tags.clone());
        assert!(newer_former_primary(&edited, "us-east-1", NEW).is_none());
    }

    #[test]
    fn two_replicas_of_one_version_the_edited_one_a_former_primary_is_a_conflict() {
        let source = primary("us-west-2", OLD, vec![]);
        let tag = digest_tag(&source, OLD);
        let new_primary = primary("eu-west-1", OLD, vec![tag.clone()]);
        let edited = replica(NEW, vec![tag.clone()]);
        assert!(edited_since_mirrored(&new_primary, "us-east-1", &edited, true).is_some());
        // Not known to have held the primary: an ordinary replica's drift, repaired.
        assert!(edited_since_mirrored(&new_primary, "us-east-1", &edited, false).is_none());
        // Not edited: no conflict.
        let same = replica(OLD, vec![tag]);
        assert!(edited_since_mirrored(&new_primary, "us-east-1", &same, true).is_none());
    }

    #[test]
    fn a_forged_or_missing_digest_can_only_stop() {
        // No tag, a malformed one: nothing stops the sync.
        let east = primary("us-east-1", OLD, vec![]);
        assert!(newer_former_primary(&east, "us-west-2", NEW).is_none());
        let junk = primary("us-west-2", OLD, vec![Tag::new(POLICY_DIGEST_TAG, "junk")]);
        assert!(newer_former_primary(&junk, "us-east-1", NEW).is_none());
        // A forged tag that matches the rule stops the writes: the answer is a conflict, never
        // a write.
        let forged = Tag::new(
            POLICY_DIGEST_TAG,
            format!("us-east-1 {} {}", "0".repeat(32), policy_digest(OLD)),
        );
        let west = primary("us-west-2", OLD, vec![forged]);
        assert!(newer_former_primary(&west, "us-east-1", OLD).is_some());
    }
}
