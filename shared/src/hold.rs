//! The hold: a tag a person puts on a key to tell the replicator "hands off" during an incident.
//!
//! `kms-replicator:hold` (any value, an empty one too) on a replica makes the replicator write
//! nothing to that replica: no policy, tags, description or aliases, no deletion and no
//! restore. On a primary it stops the whole key: nothing is written to any of its replicas and
//! no replica is created, since the primary is what every replica mirrors. Each sync reports
//! the hold (a `skipped` outcome whose reason says so, a `Replication Skipped` audit event, a
//! line in reconcile's plan) until a person removes the tag; then the next event or sweep
//! resumes management. The replicator never mirrors the tag and never removes it. A hold can
//! only stop writes, so a forged one does no harm beyond what it says.

use crate::model::Tag;

/// The hold tag's key.
pub const HOLD_TAG: &str = "kms-replicator:hold";

/// The hold's value, when `tags` carry one.
pub fn hold(tags: &[Tag]) -> Option<&str> {
    tags.iter()
        .find(|t| t.key == HOLD_TAG)
        .map(|t| t.value.as_str())
}

/// The reason reported for a key held in `region` (`primary`: the hold is on the primary).
pub fn held_reason(region: &str, value: &str, primary: bool) -> String {
    let (which, stops) = if primary {
        (
            "the primary",
            "nothing is written to any of its replicas and no replica is created",
        )
    } else {
        ("the replica", "nothing is written to it")
    };
    format!(
        "held: {which} in {region} carries {HOLD_TAG}={value:?}, so {stops}; remove the tag \
         (aws kms untag-resource --region {region} --tag-keys {HOLD_TAG}) to resume"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_value_holds_and_the_reason_says_how_to_resume() {
        assert_eq!(hold(&[Tag::new("team", "x")]), None);
        assert_eq!(hold(&[Tag::new(HOLD_TAG, "")]), Some(""));
        assert_eq!(hold(&[Tag::new(HOLD_TAG, "INC-42")]), Some("INC-42"));
        let r = held_reason("us-west-2", "INC-42", false);
        assert!(r.starts_with("held: the replica in us-west-2"));
        assert!(r.contains("untag-resource --region us-west-2 --tag-keys kms-replicator:hold"));
        assert!(held_reason("us-east-1", "", true).contains("any of its replicas"));
    }
}
