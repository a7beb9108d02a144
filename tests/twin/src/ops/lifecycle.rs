//! A key's life: EnableKey and DisableKey, ScheduleKeyDeletion (a primary with replicas waits
//! in `PendingReplicaDeletion`) and CancelKeyDeletion.

use crate::state::{err, State};
use crate::trail;
use kms_replicator::model::{KeyState, MultiRegionKeyType};
use kms_replicator::op::Op;
use kms_replicator::port::{ErrorKind, KmsResult};
use serde_json::json;

pub(crate) fn enable_key(s: &mut State, caller: &str, region: &str, key_id: &str) -> KmsResult<()> {
    const OP: Op = Op::EnableKey;
    let id = s.resolve(OP, region, key_id)?;
    s.authorize_key(caller, OP, region, &id, |c| c)?;
    let arn = s.arn(region, &id);
    let k = s.get(region, &id);
    match k.state {
        KeyState::Enabled | KeyState::Disabled => k.state = KeyState::Enabled,
        other => {
            let what = match other {
                KeyState::Creating => "is creating",
                KeyState::Updating => "is updating",
                KeyState::PendingImport => "is pending import",
                _ => "is pending deletion",
            };
            return Err(err(
                ErrorKind::InvalidState,
                OP,
                region,
                "KMSInvalidStateException",
                format!("{arn} {what}."),
            ));
        }
    }
    let params = json!({"keyId": key_id});
    s.push_record(trail::Record::new(region, OP, caller, params).key(&arn));
    Ok(())
}

pub(crate) fn disable_key(
    s: &mut State,
    caller: &str,
    region: &str,
    key_id: &str,
) -> KmsResult<()> {
    const OP: Op = Op::DisableKey;
    let id = s.resolve(OP, region, key_id)?;
    s.authorize_key(caller, OP, region, &id, |c| c)?;
    let arn = s.arn(region, &id);
    let k = s.get(region, &id);
    if !matches!(k.state, KeyState::Enabled | KeyState::Disabled) {
        return Err(err(
            ErrorKind::InvalidState,
            OP,
            region,
            "KMSInvalidStateException",
            format!("{arn} is {}.", k.state),
        ));
    }
    k.state = KeyState::Disabled;
    k.settles = None;
    let params = json!({"keyId": key_id});
    s.push_record(trail::Record::new(region, OP, caller, params).key(&arn));
    Ok(())
}

pub(crate) fn schedule_key_deletion(
    s: &mut State,
    caller: &str,
    region: &str,
    key_id: &str,
    pending_window_days: i32,
) -> KmsResult<()> {
    const OP: Op = Op::ScheduleKeyDeletion;
    let id = s.resolve(OP, region, key_id)?;
    s.authorize_key(caller, OP, region, &id, |c| {
        c.with(
            "kms:ScheduleKeyDeletionPendingWindowInDays",
            pending_window_days.to_string(),
        )
    })?;
    s.manageable(OP, region, &id)?;
    if !(7..=30).contains(&pending_window_days) {
        return Err(err(
            ErrorKind::Other,
            OP,
            region,
            "ValidationException",
            "PendingWindowInDays must be between 7 and 30",
        ));
    }
    let has_replicas = {
        let k = &s.keys[&(region.to_string(), id.clone())];
        k.multi_region == Some(MultiRegionKeyType::Primary)
            && s.related(&id).any(|o| o.region != region)
    };
    let state = if has_replicas {
        KeyState::PendingReplicaDeletion
    } else {
        KeyState::PendingDeletion
    };
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let k = s.get(region, &id);
    k.state = state;
    k.settles = None;
    // A primary waiting for its replicas has no date yet; the twin gives it none later either.
    k.deletion_ms = (state == KeyState::PendingDeletion)
        .then_some(now_ms + pending_window_days as u64 * 86_400_000);
    let arn = s.arn(region, &id);
    let params = json!({"keyId": key_id, "pendingWindowInDays": pending_window_days});
    let response = json!({"keyId": arn, "keyState": state.as_str()});
    s.push_record(
        trail::Record::new(region, OP, caller, params)
            .response(response)
            .key(&arn),
    );
    Ok(())
}

pub(crate) fn cancel_key_deletion(
    s: &mut State,
    caller: &str,
    region: &str,
    key_id: &str,
) -> KmsResult<()> {
    const OP: Op = Op::CancelKeyDeletion;
    let id = s.resolve(OP, region, key_id)?;
    s.authorize_key(caller, OP, region, &id, |c| c)?;
    let arn = s.arn(region, &id);
    let k = s.get(region, &id);
    if !k.state.is_pending_deletion() {
        return Err(err(
            ErrorKind::InvalidState,
            OP,
            region,
            "KMSInvalidStateException",
            format!("{arn} is not pending deletion."),
        ));
    }
    k.state = KeyState::Disabled;
    k.deletion_ms = None;
    let params = json!({"keyId": key_id});
    s.push_record(
        trail::Record::new(region, OP, caller, params)
            .response(json!({"keyId": arn}))
            .key(&arn),
    );
    Ok(())
}
