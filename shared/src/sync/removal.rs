//! Replicas in Regions the tag does not list: kept managed when they held the primary or
//! predate it, deleted (with a marker first) only under `RemovalPolicy=ScheduleDeletion`, and
//! only when the in-use guard (`in_use.rs`) finds them unused.

use super::{failed, Syncer};
use crate::config::RemovalPolicy;
use crate::desired::{predates_primary, PrimaryState};
use crate::hold::{held_reason, hold};
use crate::marker::{now_ms, Marker, DELETION_MARKER_TAG};
use crate::model::{KeyState, Tag};
use crate::report::{Action, Outcome, RegionReport};
use tracing::info;

impl Syncer<'_> {
    /// A replica in an allowed Region that the tag does not list. One whose Region held the
    /// primary (the history tag), or created no later than the primary (so it was the primary
    /// once, or predates it), stays managed, synced like a target, and is never deleted (I1). Any other is removed under
    /// `RemovalPolicy=ScheduleDeletion` (if it carries the replication tag, that is, if the
    /// replicator made or adopted it), or left alone under `Retain`.
    pub(super) async fn unlisted_replica(
        &self,
        primary: &PrimaryState,
        region: &str,
        dry_run: bool,
    ) -> Option<RegionReport> {
        let key_id = primary.info.key_id.as_str();
        let info = match self.kms.describe_key(region, key_id).await {
            Ok(i) => i,
            Err(e) => return Some(RegionReport::new(region, failed(&e))),
        };
        let held_primary = primary.primary_history().contains(region);
        if held_primary || predates_primary(&primary.info, &info) {
            let mut report = self.sync_region(primary, region, true, dry_run).await?;
            let why = if held_primary {
                "it held the primary once"
            } else {
                "its replica is older than the primary, so it was the primary or predates it"
            };
            report.notes.push(format!(
                "{region} is not in the tag, but {why}: it stays managed and is never deleted"
            ));
            return Some(report);
        }
        let RemovalPolicy::ScheduleDeletion {
            pending_window_days,
        } = self.cfg.removal
        else {
            return None;
        };
        self.remove_replica(primary, region, info.state, pending_window_days, dry_run)
            .await
    }

    /// Schedules the deletion of a replica whose Region left the tag, after writing the
    /// deletion marker that lets a later sync tell this deletion from a person's (I2).
    async fn remove_replica(
        &self,
        primary: &PrimaryState,
        region: &str,
        state: KeyState,
        pending_window_days: i32,
        dry_run: bool,
    ) -> Option<RegionReport> {
        let key_id = primary.info.key_id.as_str();
        if state.is_pending_deletion() {
            return None;
        }
        let tags = match self.kms.list_resource_tags(region, key_id).await {
            Ok(t) => t,
            Err(e) => return Some(RegionReport::new(region, failed(&e))),
        };
        if !tags.iter().any(|t| t.key == self.cfg.tag_key) {
            return None;
        }
        if let Some(value) = hold(&tags) {
            let mut report =
                RegionReport::new(region, Outcome::skipped(held_reason(region, value, false)));
            report.held = true;
            return Some(report);
        }
        // The replica's own history tag counts too: it may know of a promotion the primary's
        // tags do not (a record that proved it, seen by an earlier sync). It can only keep a
        // replica; a forged entry stops a deletion and writes nothing else.
        if super::history::lists_region(&tags, region) {
            let mut report = self.sync_region(primary, region, true, dry_run).await?;
            report.notes.push(format!(
                "{region} is not in the tag, but its history tag says it held the primary once: it \
                 stays managed and is never deleted"
            ));
            return Some(report);
        }
        if let Some(kept) = self.in_use_guard(region, key_id).await {
            return Some(kept);
        }
        // Written afresh right before every attempt: its time is what the key's DeletionDate
        // must agree with before a restore (crate::marker).
        let before = if state == KeyState::Disabled {
            KeyState::Disabled
        } else {
            KeyState::Enabled
        };
        let marker = Marker {
            before,
            at_ms: now_ms(),
            days: pending_window_days,
        };
        let plan = vec![
            Action::TagResource {
                tags: vec![Tag::new(DELETION_MARKER_TAG, marker.value())],
            },
            Action::ScheduleKeyDeletion {
                pending_window_days,
            },
        ];
        let mut report = RegionReport::new(region, Outcome::Planned);
        if dry_run {
            report.actions = plan;
            return Some(report);
        }
        info!(
            region,
            key_id, "scheduling deletion of a replica whose Region left the tag"
        );
        // The marker must be in place before the deletion: stop at the first failure.
        for action in plan {
            if let Some(failure) = self
                .apply(region, key_id, vec![action], false, &mut report)
                .await
            {
                report.outcome = failure;
                return Some(report);
            }
        }
        report.outcome = Outcome::Updated;
        Some(report)
    }
}
