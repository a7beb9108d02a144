//! The deletion marker, and the evidence that a deletion is the replicator's own.
//!
//! Before it schedules the deletion of a replica whose Region left the tag, the replicator
//! tags the replica `kms-replicator:deletion-scheduled` with the key's state before, the time
//! of the tag write and the waiting period it is about to ask for, for example
//! `Enabled at=1764653000123 days=7`. It then calls ScheduleKeyDeletion at once, and KMS sets
//! the key's `DeletionDate` to that moment plus the waiting period.
//!
//! A tag alone is not evidence: anyone allowed `kms:TagResource` on the key can write one. What
//! the restore requires ([`restore_evidence`]) is a tag nobody can have written after the
//! deletion, since KMS refuses TagResource on a key pending deletion, and that agrees with the
//! key's own DeletionDate, which only ScheduleKeyDeletion sets: the key must be
//! `PendingDeletion` and its DeletionDate must fall within moments after the marker's time plus
//! its waiting period. A marker on a key nobody scheduled for deletion, a marker written long
//! before a person's own deletion, one naming another waiting period, or one in any other form
//! restores nothing. What remains is a narrow race a security review should know of, with its
//! fix, in docs/security-model.md.

use crate::model::KeyState;

/// The tag the replicator writes on a replica just before it schedules that replica's
/// deletion (see the module documentation for its value).
pub const DELETION_MARKER_TAG: &str = "kms-replicator:deletion-scheduled";

const DAY_MS: u64 = 86_400_000;

/// How much earlier than the marker's time plus its waiting period the DeletionDate may be:
/// the clocks of the function and of KMS may disagree a little.
pub const CLOCK_SKEW_MS: u64 = 60_000;

/// How much later: the ScheduleKeyDeletion follows the marker's TagResource at once, so this
/// covers one call's latency and the rate limiter's wait, with room to spare.
pub const SCHEDULE_LAG_MS: u64 = 120_000;

/// What the marker records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    /// The state a restore brings back: `Enabled` or `Disabled`.
    pub before: KeyState,
    /// When the marker was written, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The waiting period the replicator asked for right after.
    pub days: i32,
}

impl Marker {
    /// The tag value.
    pub fn value(&self) -> String {
        format!("{} at={} days={}", self.before, self.at_ms, self.days)
    }

    /// Reads a tag value; `None` for anything not in the replicator's form.
    pub fn parse(value: &str) -> Option<Marker> {
        let mut parts = value.split(' ');
        let before = match KeyState::parse(parts.next()?)? {
            s @ (KeyState::Enabled | KeyState::Disabled) => s,
            _ => return None,
        };
        let at_ms = parts.next()?.strip_prefix("at=")?.parse().ok()?;
        let days = parts.next()?.strip_prefix("days=")?.parse().ok()?;
        if parts.next().is_some() || !(7..=30).contains(&days) {
            return None;
        }
        Some(Marker {
            before,
            at_ms,
            days,
        })
    }

    /// The deletion date a ScheduleKeyDeletion made right after this marker would get.
    fn expected_deletion_ms(&self) -> u64 {
        self.at_ms + u64::try_from(self.days).unwrap_or(0) * DAY_MS
    }
}

/// Why a key pending deletion is not the replicator's own deletion to restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotOurs {
    /// No marker at all: a person's deletion.
    NoMarker,
    /// `RemovalPolicy=Retain`: the replicator schedules no deletion, so it restores none.
    NotDeleting,
    /// A marker not in the replicator's form (written by someone else, or by a version of the
    /// replicator before the marker carried its evidence).
    Unreadable,
    /// `PendingReplicaDeletion`, or KMS gave no DeletionDate: the replicator never schedules a
    /// primary, so this is not its deletion.
    NoDeletionDate,
    /// The key's DeletionDate does not follow from the marker (the deletion was scheduled at
    /// another time or with another waiting period than the marker says), the marker names
    /// another waiting period than the replicator's, or it is dated in the future.
    Mismatch,
}

impl NotOurs {
    pub fn describe(self) -> &'static str {
        match self {
            NotOurs::NoMarker => "the replicator did not schedule that",
            NotOurs::NotDeleting => {
                "the replicator schedules no deletion with RemovalPolicy=Retain, so it did not \
                 schedule that"
            }
            NotOurs::Unreadable => {
                "it carries a deletion marker the replicator did not write in that form, so \
                 the marker proves nothing"
            }
            NotOurs::NoDeletionDate => "KMS gives it no deletion date the replicator set",
            NotOurs::Mismatch => {
                "its deletion date does not follow from its deletion marker, so the \
                 replicator did not schedule that deletion"
            }
        }
    }
}

/// The state to restore, when the key is pending a deletion the replicator scheduled itself:
/// `state` and `deletion_ms` as DescribeKey reports them at `now_ms`, `marker` the tag's
/// value, `window_days` the waiting period the replicator asks for (`None` when it deletes
/// nothing).
pub fn restore_evidence(
    marker: Option<&str>,
    state: KeyState,
    deletion_ms: Option<u64>,
    window_days: Option<i32>,
    now_ms: u64,
) -> Result<KeyState, NotOurs> {
    let marker = marker.ok_or(NotOurs::NoMarker)?;
    let window = window_days.ok_or(NotOurs::NotDeleting)?;
    let marker = Marker::parse(marker).ok_or(NotOurs::Unreadable)?;
    let deletion = match (state, deletion_ms) {
        (KeyState::PendingDeletion, Some(d)) => d,
        _ => return Err(NotOurs::NoDeletionDate),
    };
    let expected = marker.expected_deletion_ms();
    if marker.days != window
        || marker.at_ms > now_ms + CLOCK_SKEW_MS
        || deletion + CLOCK_SKEW_MS < expected
        || deletion > expected + SCHEDULE_LAG_MS
    {
        return Err(NotOurs::Mismatch);
    }
    Ok(marker.before)
}

/// Now, in milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: u64 = 1_764_653_000_123;
    /// When the restore looks: a day after the marker.
    const NOW: u64 = AT + DAY_MS;

    fn ours(before: KeyState) -> String {
        Marker {
            before,
            at_ms: AT,
            days: 7,
        }
        .value()
    }

    #[test]
    fn the_marker_reads_back_what_it_wrote() {
        let v = ours(KeyState::Disabled);
        assert_eq!(v, "Disabled at=1764653000123 days=7");
        let m = Marker::parse(&v).unwrap();
        assert_eq!((m.before, m.at_ms, m.days), (KeyState::Disabled, AT, 7));
    }

    #[test]
    fn the_replicators_own_deletion_is_restored_to_its_prior_state() {
        for before in [KeyState::Enabled, KeyState::Disabled] {
            for lag in [0, 250, SCHEDULE_LAG_MS] {
                let deletion = AT + 7 * DAY_MS + lag;
                assert_eq!(
                    restore_evidence(
                        Some(&ours(before)),
                        KeyState::PendingDeletion,
                        Some(deletion),
                        Some(7),
                        NOW
                    ),
                    Ok(before)
                );
            }
        }
        // The function's clock a little ahead of KMS's.
        let early = AT + 7 * DAY_MS - CLOCK_SKEW_MS;
        assert!(restore_evidence(
            Some(&ours(KeyState::Enabled)),
            KeyState::PendingDeletion,
            Some(early),
            Some(7),
            NOW
        )
        .is_ok());
    }

    #[test]
    fn a_tag_alone_or_a_forged_one_restores_nothing() {
        let on_time = Some(AT + 7 * DAY_MS + 100);
        let pending = KeyState::PendingDeletion;
        let cases: Vec<(Option<&str>, KeyState, Option<u64>, NotOurs)> = vec![
            (None, pending, on_time, NotOurs::NoMarker),
            // The old form, and values anyone might write.
            (Some("Enabled"), pending, on_time, NotOurs::Unreadable),
            (Some("yes"), pending, on_time, NotOurs::Unreadable),
            (Some(""), pending, on_time, NotOurs::Unreadable),
            (
                Some("PendingDeletion at=1764653000123 days=7"),
                pending,
                on_time,
                NotOurs::Unreadable,
            ),
            (
                Some("Enabled at=1764653000123 days=7 x"),
                pending,
                on_time,
                NotOurs::Unreadable,
            ),
            (
                Some("Enabled at=1764653000123 days=3"),
                pending,
                on_time,
                NotOurs::Unreadable,
            ),
            // A perfect marker on a key that is not pending deletion, or with no date.
            (
                Some("Enabled at=1764653000123 days=7"),
                KeyState::Disabled,
                None,
                NotOurs::NoDeletionDate,
            ),
            (
                Some("Enabled at=1764653000123 days=7"),
                pending,
                None,
                NotOurs::NoDeletionDate,
            ),
            (
                Some("Enabled at=1764653000123 days=7"),
                KeyState::PendingReplicaDeletion,
                on_time,
                NotOurs::NoDeletionDate,
            ),
            // A person's deletion: another waiting period, or scheduled later than the marker.
            (
                Some("Enabled at=1764653000123 days=7"),
                pending,
                Some(AT + 30 * DAY_MS),
                NotOurs::Mismatch,
            ),
            (
                Some("Enabled at=1764653000123 days=7"),
                pending,
                Some(AT + 7 * DAY_MS + 3_600_000),
                NotOurs::Mismatch,
            ),
            (
                Some("Enabled at=1764653000123 days=7"),
                pending,
                Some(AT + 6 * DAY_MS),
                NotOurs::Mismatch,
            ),
        ];
        // A marker that would fit a person's 30-day deletion if it were honest about its
        // waiting period, or whose time is moved to fit it: both refused.
        let fitted = format!("Enabled at={} days=7", AT + 23 * DAY_MS);
        assert_eq!(
            restore_evidence(Some(&fitted), pending, Some(AT + 30 * DAY_MS), Some(7), NOW),
            Err(NotOurs::Mismatch)
        );
        assert_eq!(
            restore_evidence(
                Some("Enabled at=1764653000123 days=30"),
                pending,
                Some(AT + 30 * DAY_MS),
                Some(7),
                NOW
            ),
            Err(NotOurs::Mismatch)
        );
        // With RemovalPolicy=Retain the replicator restores nothing, whatever the marker.
        assert_eq!(
            restore_evidence(Some(&ours(KeyState::Enabled)), pending, on_time, None, NOW),
            Err(NotOurs::NotDeleting)
        );
        for (marker, state, date, want) in cases {
            assert_eq!(
                restore_evidence(marker, state, date, Some(7), NOW),
                Err(want),
                "{marker:?} {state} {date:?}"
            );
        }
    }
}
