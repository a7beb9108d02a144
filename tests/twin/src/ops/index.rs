//! The other services the replicator reads and writes: the Resource Groups Tagging API's
//! GetResources for `kms:key` (it lists replicas as well as primaries, like the real index,
//! and sees tag changes at once) and EventBridge PutEvents on the audit bus.

use crate::auth::Check;
use crate::state::State;
use kms_replicator::op::Op;
use kms_replicator::port::{AuditError, AuditEvent, KmsResult, TaggedKey};
use std::collections::BTreeMap;

/// `tag:GetResources`: an IAM policy decides (the Tagging API has no resource to name).
fn authorize(s: &State, caller: &str, region: &str) -> KmsResult<()> {
    let check = Check::without_resource(Op::GetResources, region);
    s.authorize(caller, Op::GetResources, region, &check)
}

/// Every key of a Region, whatever its tags: its id and its tags.
pub(crate) fn keys_with_tags(
    s: &State,
    caller: &str,
    region: &str,
) -> KmsResult<Vec<(String, BTreeMap<String, String>)>> {
    authorize(s, caller, region)?;
    Ok(s.keys_in(region)
        .map(|(id, k)| (id.clone(), k.tags.clone()))
        .collect())
}

/// The keys of a Region that carry `tag_key`, with its value.
pub(crate) fn tagged_keys(
    s: &State,
    caller: &str,
    region: &str,
    tag_key: &str,
) -> KmsResult<Vec<TaggedKey>> {
    authorize(s, caller, region)?;
    Ok(s.keys_in(region)
        .filter_map(|(id, k)| {
            Some(TaggedKey {
                arn: s.arn(region, id),
                value: k.tags.get(tag_key)?.clone(),
            })
        })
        .collect())
}

/// PutEvents: recorded for inspection, unless the bus is down.
pub(crate) fn publish(s: &mut State, events: &[AuditEvent]) -> Result<(), AuditError> {
    if s.audit_down {
        return Err(AuditError("EventBridge did not answer".into()));
    }
    s.audit.extend_from_slice(events);
    Ok(())
}
