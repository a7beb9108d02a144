//! A key's last cryptographic use, as KMS's GetKeyLastUsage reports it, and what it says about
//! a replica the replicator is about to delete.
//!
//! KMS records, per key and Region, the last successful cryptographic operation (Encrypt,
//! Decrypt, GenerateDataKey...), its time and its CloudTrail event id, since
//! `TrackingStartDate`: the date KMS began recording for that key, or the key's creation if
//! later. Related multi-Region keys are tracked independently. An empty answer therefore
//! means "never used" only when tracking covers the whole period asked about; otherwise KMS
//! cannot tell, and the replicator treats the key as possibly in use.

use serde::Serialize;

pub const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// The last successful cryptographic operation of a key in its Region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastUse {
    /// `Encrypt`, `Decrypt`, `GenerateDataKey`... as KMS names it.
    pub operation: String,
    /// Milliseconds since the epoch.
    pub at_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloudtrail_event_id: Option<String>,
}

/// GetKeyLastUsage's answer for one key in one Region.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct KeyUsage {
    pub last_use: Option<LastUse>,
    /// Since when KMS records this key's use (milliseconds since the epoch).
    pub tracking_start_ms: Option<u64>,
    pub key_creation_ms: Option<u64>,
}

/// Whether a key was used within a window that ends now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Used within the window.
    InUse(LastUse),
    /// Not used within the window, and KMS's record covers all of it.
    Idle { last_use: Option<LastUse> },
    /// No use recorded in the window, but KMS's record does not cover all of it.
    Unknown { reason: String },
}

impl KeyUsage {
    /// Whether KMS's record covers everything since `since_ms`: tracking began by then, or
    /// the key was created after tracking began (so its whole life is recorded).
    pub fn covers(&self, since_ms: u64) -> bool {
        match (self.tracking_start_ms, self.key_creation_ms) {
            (Some(t), _) if t <= since_ms => true,
            (Some(t), Some(c)) => c >= t,
            _ => false,
        }
    }

    /// The verdict for a window of `window_days` days ending at `now_ms`.
    pub fn verdict(&self, now_ms: u64, window_days: u32) -> Verdict {
        let since = now_ms.saturating_sub(u64::from(window_days) * DAY_MS);
        if let Some(last) = self.last_use.as_ref().filter(|l| l.at_ms >= since) {
            return Verdict::InUse(last.clone());
        }
        if self.covers(since) {
            return Verdict::Idle {
                last_use: self.last_use.clone(),
            };
        }
        let reason = match self.tracking_start_ms {
            Some(t) => format!(
                "KMS has recorded this key's use only since {} (the key is older), after the \
                 {window_days}-day window began on {}: it may have been used before that",
                date(t),
                date(since)
            ),
            None => "KMS did not say since when it records this key's use".to_string(),
        };
        Verdict::Unknown { reason }
    }

    /// One line for a report: the last use, or why there is none.
    pub fn describe(&self) -> String {
        match (&self.last_use, self.tracking_start_ms) {
            (Some(l), _) => l.describe(),
            (None, Some(t)) if self.key_creation_ms.is_some_and(|c| c >= t) => {
                "never used since it was created".to_string()
            }
            (None, Some(t)) => format!(
                "no use recorded since {} (when KMS began recording)",
                date(t)
            ),
            (None, None) => "no use recorded".to_string(),
        }
    }
}

impl LastUse {
    pub fn describe(&self) -> String {
        let event = self
            .cloudtrail_event_id
            .as_deref()
            .map(|e| format!(", CloudTrail event {e}"))
            .unwrap_or_default();
        format!(
            "last used by {} on {}{event}",
            self.operation,
            date(self.at_ms)
        )
    }

    /// Whole days between this use and `now_ms`.
    pub fn days_before(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.at_ms) / DAY_MS
    }
}

/// Milliseconds since the epoch as an RFC 3339 time, to the second.
pub fn date(ms: u64) -> String {
    let t = aws_smithy_types::DateTime::from_secs((ms / 1000) as i64);
    t.fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_else(|_| format!("{ms} ms after the epoch"))
}

/// Now, in milliseconds since the epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000_000;

    fn used(days_ago: u64) -> Option<LastUse> {
        Some(LastUse {
            operation: "Decrypt".into(),
            at_ms: NOW - days_ago * DAY_MS,
            cloudtrail_event_id: Some("e1".into()),
        })
    }

    fn usage(last: Option<LastUse>, tracking_days_ago: u64, created_days_ago: u64) -> KeyUsage {
        KeyUsage {
            last_use: last,
            tracking_start_ms: Some(NOW - tracking_days_ago * DAY_MS),
            key_creation_ms: Some(NOW - created_days_ago * DAY_MS),
        }
    }

    #[test]
    fn a_use_within_the_window_is_in_use_whatever_tracking_says() {
        let u = usage(used(2), 5, 400);
        assert_eq!(u.verdict(NOW, 30), Verdict::InUse(used(2).unwrap()));
    }

    #[test]
    fn no_use_in_a_fully_tracked_window_is_idle() {
        // Tracking began before the window.
        assert!(matches!(
            usage(used(40), 100, 400).verdict(NOW, 30),
            Verdict::Idle { last_use: Some(_) }
        ));
        // The key is younger than tracking: its whole life is recorded.
        assert_eq!(
            usage(None, 3, 3).verdict(NOW, 30),
            Verdict::Idle { last_use: None }
        );
        assert_eq!(
            usage(None, 3, 3).describe(),
            "never used since it was created"
        );
    }

    #[test]
    fn tracking_that_began_inside_the_window_on_an_older_key_cannot_tell() {
        let u = usage(None, 10, 200);
        let Verdict::Unknown { reason } = u.verdict(NOW, 30) else {
            panic!("{:?}", u.verdict(NOW, 30));
        };
        assert!(reason.contains("may have been used before"), "{reason}");
        assert!(u.describe().starts_with("no use recorded since"));
        // Without TrackingStartDate nothing is covered.
        let none = KeyUsage::default();
        assert!(matches!(none.verdict(NOW, 30), Verdict::Unknown { .. }));
    }
}
