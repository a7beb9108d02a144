//! The tag a replica carries to say which policy it last mirrored, and from where
//! ([`POLICY_DIGEST_TAG`]): written by sync with each policy it mirrors (`desired`), read
//! after a promotion to tell an older policy from a newer one (`promotion`).

use crate::model::Tag;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The tag that records, on a replica, which policy it last mirrored: `<source Region>
/// <digest of the source policy> <digest of the policy it received> <generation> <held>`. The
/// generation is one more than that of the source's own tag (0 without one): a primary's tag
/// never changes while it is the primary (the replicator does not write primaries), so of two
/// keys that mirrored from each other in turn, the higher generation was written last. `held`
/// is `held` when the history the replicator kept then already listed the replica's Region as
/// one that held the primary, `not-held` otherwise: a Region known to have held the primary
/// whose tag says `not-held` held it after its policy was mirrored, and may hold an edit made
/// then, even one that put back the very policy mirrored there. (Tags written before this
/// field existed have four fields; for them that case is not seen.)
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

/// The tag's value for a replica in a Region that now holds `mirrored`, the policy of the
/// primary in `source` (`source_policy`, under `source_tags`) rewritten for it; `held` when
/// the replicator's history already lists that Region as one that held the primary.
pub fn tag(
    source: &str,
    source_policy: &str,
    source_tags: &[Tag],
    held: bool,
    mirrored: &str,
) -> Tag {
    let held = if held { HELD } else { NOT_HELD };
    Tag::new(
        POLICY_DIGEST_TAG,
        format!(
            "{source} {} {} {} {held}",
            policy_digest(source_policy),
            policy_digest(mirrored),
            digest_of(source_tags).map_or(0, |d| d.generation) + 1
        ),
    )
}

pub(crate) const HELD: &str = "held";
pub(crate) const NOT_HELD: &str = "not-held";

/// The fields of a digest tag.
pub(crate) struct DigestTag {
    pub(crate) source: String,
    pub(crate) source_digest: String,
    pub(crate) received: String,
    /// 0 in a tag written before generations were recorded.
    pub(crate) generation: u64,
    /// Whether the replica's Region was known to have held the primary when the tag was
    /// written (`None` in a tag written before that was recorded).
    pub(crate) held: Option<bool>,
}

/// The digest tag among `tags`.
pub(crate) fn digest_of(tags: &[Tag]) -> Option<DigestTag> {
    let value = &tags.iter().find(|t| t.key == POLICY_DIGEST_TAG)?.value;
    let mut parts = value.split_whitespace().map(str::to_string);
    Some(DigestTag {
        source: parts.next()?,
        source_digest: parts.next()?,
        received: parts.next()?,
        generation: parts.next().and_then(|g| g.parse().ok()).unwrap_or(0),
        held: match parts.next().as_deref() {
            Some(HELD) => Some(true),
            Some(NOT_HELD) => Some(false),
            _ => None,
        },
    })
}
