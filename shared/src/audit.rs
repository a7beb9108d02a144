//! Audit events: what a sync did, published to EventBridge for people and other systems.

use crate::op::Op;
use crate::port::AuditEvent;
use crate::report::{Outcome, SyncReport};
use serde_json::json;

pub const REPLICA_CREATED: &str = "Replica Created";
pub const REPLICA_SYNCED: &str = "Replica Synced";
pub const REPLICA_REMOVAL: &str = "Replica Scheduled For Deletion";
pub const REPLICATION_SKIPPED: &str = "Replication Skipped";
pub const REPLICATION_FAILED: &str = "Replication Failed";
/// The tag asks for a Region whose replica a person scheduled for deletion or disabled: the
/// replicator leaves it as it is and says so on every sync until a person resolves it.
pub const REPLICATION_CONFLICT: &str = "Replication Conflict";
/// A failover promoted a replica to primary (UpdatePrimaryRegion).
pub const PRIMARY_REGION_UPDATED: &str = "Primary Region Updated";
/// A failover of one key failed or did not finish within its bound.
pub const FAILOVER_FAILED: &str = "Failover Failed";

/// Context that travels with every audit event of one run.
#[derive(Debug, Clone, Default)]
pub struct AuditContext {
    pub trigger_event: Option<String>,
    pub trigger_event_id: Option<String>,
    /// The Region of the call that triggered the run.
    pub trigger_region: Option<String>,
}

/// One event per Region that changed, failed or was refused; nothing for Regions in sync and
/// nothing for keys that are not managed. Dry runs publish nothing.
pub fn audit_events(report: &SyncReport, ctx: &AuditContext) -> Vec<AuditEvent> {
    if report.dry_run {
        return Vec::new();
    }
    let mut events = Vec::new();
    let base = |region: Option<&str>| {
        json!({
            "keyId": report.key_id,
            "primaryRegion": report.primary_region,
            "region": region,
            "trigger": {"eventName": ctx.trigger_event, "eventId": ctx.trigger_event_id},
        })
    };
    if report.regions.is_empty() {
        // Key-level outcomes: only those a person must act on.
        let notable = match &report.outcome {
            Outcome::Failed { .. } => Some(REPLICATION_FAILED),
            Outcome::Skipped { .. } if report.managed => Some(REPLICATION_SKIPPED),
            _ => None,
        };
        if let Some(detail_type) = notable {
            let mut detail = base(None);
            detail["outcome"] = serde_json::to_value(&report.outcome).unwrap_or_default();
            events.push(AuditEvent {
                detail_type: detail_type.into(),
                detail,
            });
        }
        return events;
    }
    for r in report.regions.iter().filter(|r| !r.conflicts.is_empty()) {
        let mut detail = base(Some(&r.region));
        detail["conflicts"] = serde_json::to_value(&r.conflicts).unwrap_or_default();
        events.push(AuditEvent {
            detail_type: REPLICATION_CONFLICT.into(),
            detail,
        });
    }
    for r in &report.regions {
        let detail_type = match &r.outcome {
            Outcome::Created => REPLICA_CREATED,
            Outcome::Updated if r.actions.iter().any(|a| a.op() == Op::ScheduleKeyDeletion) => {
                REPLICA_REMOVAL
            }
            Outcome::Updated => REPLICA_SYNCED,
            Outcome::Failed { .. } => REPLICATION_FAILED,
            // A Region refused in the tag is reported when the tag is what changed, not again on
            // every later sync of the key.
            // A hold is reported on every sync.
            Outcome::Skipped { .. } if r.held || tag_may_have_changed(ctx, report) => {
                REPLICATION_SKIPPED
            }
            Outcome::Skipped { .. } | Outcome::InSync | Outcome::Planned => continue,
        };
        let mut detail = base(Some(&r.region));
        detail["outcome"] = serde_json::to_value(&r.outcome).unwrap_or_default();
        detail["actions"] = serde_json::to_value(&r.actions).unwrap_or_default();
        detail["policyRewrites"] = serde_json::to_value(&r.rewrites).unwrap_or_default();
        events.push(AuditEvent {
            detail_type: detail_type.into(),
            detail,
        });
    }
    events
}

/// Whether the run was triggered by a call that can change the primary's replication tag: a
/// tag or CreateKey call in the primary's Region (the replicator's own calls in replica Regions
/// are not), or a direct run.
fn tag_may_have_changed(ctx: &AuditContext, report: &SyncReport) -> bool {
    let in_primary_region = ctx.trigger_region.is_none()
        || ctx.trigger_region.as_deref() == report.primary_region.as_deref();
    in_primary_region
        && matches!(
            ctx.trigger_event.as_deref(),
            None | Some("TagResource" | "UntagResource" | "CreateKey")
        )
}
