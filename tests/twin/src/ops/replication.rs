//! ReplicateKey and UpdatePrimaryRegion: the calls that span two Regions. Each counts against
//! both Regions' request quotas, fails when the other Region is down, and is logged in both
//! Regions (the second record as a call KMS made on the caller's behalf).

use crate::auth::{Check, KeyFacts, Undocumented};
use crate::policy::{check_policy, default_policy};
use crate::state::{err, refused_in, State, TwinKey};
use crate::trail;
use kms_replicator::model::{KeyInfo, KeyState, MultiRegionKeyType};
use kms_replicator::op::Op;
use kms_replicator::port::{ErrorKind, KmsResult, ReplicaSpec};
use serde_json::json;
use std::time::Instant;

/// A new replica in `replica_region`, `Creating` until the twin's `creating_for` has passed.
pub(crate) fn replicate_key(
    s: &mut State,
    caller: &str,
    primary_region: &str,
    key_id: &str,
    replica_region: &str,
    spec: &ReplicaSpec,
) -> KmsResult<KeyInfo> {
    const OP: Op = Op::ReplicateKey;
    // One ReplicateKey also counts as two CreateKey requests in the replica's Region.
    for _ in 0..2 {
        s.charge(replica_region, Op::CreateKey).map_err(|mut e| {
            e.operation = OP;
            e.region = primary_region.to_string();
            e
        })?;
    }
    let id = s.resolve(OP, primary_region, key_id)?;
    s.authorize_key(caller, OP, primary_region, &id, |c| {
        c.with("kms:ReplicaRegion", replica_region)
    })?;
    let arn = s.arn(primary_region, &id);
    let src = s.keys[&(primary_region.to_string(), id.clone())].clone();
    if src.multi_region != Some(MultiRegionKeyType::Primary) {
        return Err(err(
            ErrorKind::UnsupportedOperation,
            OP,
            primary_region,
            "UnsupportedOperationException",
            format!("{arn} is not a multi-Region primary key."),
        ));
    }
    replicable(primary_region, &arn, src.state)?;
    check_replica_region(s, primary_region, replica_region, &id, &arn)?;
    let policy = spec
        .policy
        .clone()
        .unwrap_or_else(|| default_policy(&s.account));
    let replica_facts = KeyFacts {
        arn: s.arn(replica_region, &id),
        region: replica_region.to_string(),
        policy: policy.clone(),
        tags: spec
            .tags
            .iter()
            .map(|t| (t.key.clone(), t.value.clone()))
            .collect(),
        multi_region_type: Some("REPLICA"),
        aliases: Vec::new(),
        ..s.key_facts(primary_region, &id)
    };
    authorize_replica_side(s, caller, primary_region, &replica_facts, spec)?;
    if spec.policy.is_some() {
        check_policy(s, OP, caller, &replica_facts, &policy).map_err(|mut e| {
            e.region = primary_region.to_string();
            e
        })?;
    }
    let creating_for = s.creating_for;
    let replica = TwinKey {
        key_id: id.clone(),
        region: replica_region.to_string(),
        state: KeyState::Creating,
        description: spec.description.clone(),
        policy: policy.clone(),
        tags: spec
            .tags
            .iter()
            .map(|t| (t.key.clone(), t.value.clone()))
            .collect(),
        multi_region: Some(MultiRegionKeyType::Replica),
        primary_region: primary_region.to_string(),
        created_ms: s.next_creation_date(),
        deletion_ms: None,
        kind: src.kind.clone(),
        // The primary's material; an imported one is never copied: the replica of an EXTERNAL
        // key waits for its own.
        current_material: src
            .current_material
            .clone()
            .filter(|_| !src.kind.is_imported()),
        settles: Some((
            Instant::now() + creating_for,
            if src.kind.is_imported() {
                KeyState::PendingImport
            } else {
                src.state
            },
        )),
    };
    s.settle_at(Instant::now() + creating_for);
    s.keys
        .insert((replica_region.to_string(), id.clone()), replica);
    let mut info = s.info(replica_region, &id);
    info.state = KeyState::Creating;
    record_replicate_key(
        s,
        caller,
        (primary_region, key_id, &arn),
        &info,
        spec,
        &policy,
    );
    Ok(info)
}

/// ReplicateKey's checks of the replica's Region: a valid Region other than the primary's, no
/// replica there yet, KMS there answering.
fn check_replica_region(
    s: &State,
    primary_region: &str,
    replica_region: &str,
    id: &str,
    arn: &str,
) -> KmsResult<()> {
    const OP: Op = Op::ReplicateKey;
    if replica_region == primary_region || !kms_replicator::region::is_region_name(replica_region) {
        return Err(err(
            ErrorKind::Other,
            OP,
            primary_region,
            "ValidationException",
            format!("ReplicaRegion {replica_region} is not valid for {arn}"),
        ));
    }
    if s.is_not_enabled(replica_region) {
        return Err(err(
            ErrorKind::UnsupportedOperation,
            OP,
            primary_region,
            "UnsupportedOperationException",
            format!(
                "ReplicaRegion {replica_region} is not enabled for account {}: an opt-in \
                 Region must be enabled before it holds keys",
                s.account
            ),
        ));
    }
    let kind = &s.keys[&(primary_region.to_string(), id.to_string())].kind;
    s.offers_spec_answered_in(OP, primary_region, replica_region, kind)?;
    if s.keys
        .contains_key(&(replica_region.to_string(), id.to_string()))
    {
        return Err(err(
            ErrorKind::AlreadyExists,
            OP,
            primary_region,
            "AlreadyExistsException",
            format!(
                "Replica key already exists in region {replica_region}: {}",
                s.arn(replica_region, id)
            ),
        ));
    }
    if s.is_down(replica_region) {
        return Err(err(
            ErrorKind::Internal,
            OP,
            primary_region,
            "KMSInternalException",
            format!("KMS in {replica_region} is not available"),
        ));
    }
    Ok(())
}

/// The two CloudTrail records of one ReplicateKey: the call in the primary's Region, and the
/// CreateKey that KMS makes on the caller's behalf in the replica's Region.
fn record_replicate_key(
    s: &mut State,
    caller: &str,
    (primary_region, key_id, arn): (&str, &str, &str),
    info: &KeyInfo,
    spec: &ReplicaSpec,
    policy: &str,
) {
    const OP: Op = Op::ReplicateKey;
    let replica_region = info.region.as_str();
    let kind = s.keys[&(info.region.clone(), info.key_id.clone())]
        .kind
        .clone();
    let meta = trail::key_metadata(info, &s.account, &kind);
    let mut params = json!({
        "keyId": key_id,
        "replicaRegion": replica_region,
        "bypassPolicyLockoutSafetyCheck": false,
        "description": spec.description,
        "tags": trail::tags_json(&spec.tags),
    });
    if spec.policy.is_some() {
        params["policy"] = json!(policy);
    }
    let rec = trail::Record::new(primary_region, OP, caller, params)
        .response(json!({"replicaKeyMetadata": meta, "replicaPolicy": policy}))
        .key(arn);
    s.push_record(rec);
    let replica_params = json!({
        "keySpec": kind.spec,
        "keyUsage": kind.usage,
        "origin": kind.origin,
        "description": spec.description,
        "multiRegion": true,
        "tags": trail::tags_json(&spec.tags),
    });
    let rec = trail::Record::new(replica_region, Op::CreateKey, caller, replica_params)
        .invoked_by_kms()
        .response(json!({"keyMetadata": meta}))
        .key(&info.arn);
    s.push_record(rec);
}

/// What ReplicateKey is authorized for in the replica's Region, before the replica exists
/// (the KMS Developer Guide, "Replicating keys"): `kms:CreateKey` in an IAM policy there, and
/// `kms:TagResource` too when the request passes Tags. Neither can name the key: a statement
/// restricted to key ARNs does not match.
fn authorize_replica_side(
    s: &State,
    caller: &str,
    primary_region: &str,
    replica: &KeyFacts,
    spec: &ReplicaSpec,
) -> KmsResult<()> {
    const OP: Op = Op::ReplicateKey;
    let region = replica.region.as_str();
    let create = Check::without_resource(Op::CreateKey, region)
        .across_regions()
        .new_key_properties(replica, Some(Undocumented::ReplicaKeyProperties))
        .request_tags(&spec.tags, Some(Undocumented::ReplicaCreateKeyTags))
        .bypass_lockout_check(false);
    s.authorize(caller, OP, primary_region, &create)?;
    if !spec.tags.is_empty() {
        let tag = Check::without_resource(Op::TagResource, region)
            .across_regions()
            .request_tags(&spec.tags, None);
        s.authorize(caller, OP, primary_region, &tag)?;
    }
    Ok(())
}

/// ReplicateKey refuses a primary that is disabled, pending deletion or import, creating or
/// updating.
fn replicable(region: &str, arn: &str, state: KeyState) -> KmsResult<()> {
    match state {
        KeyState::Enabled | KeyState::Unavailable => Ok(()),
        other => Err(refused_in(Op::ReplicateKey, region, arn, other)),
    }
}

/// The primary role moves to `new_primary_region`; both keys are `Updating` until the
/// twin's `updating_for` has passed.
pub(crate) fn update_primary_region(
    s: &mut State,
    caller: &str,
    region: &str,
    key_id: &str,
    new_primary_region: &str,
) -> KmsResult<()> {
    const OP: Op = Op::UpdatePrimaryRegion;
    let id = s.resolve(OP, region, key_id)?;
    s.authorize_key(caller, OP, region, &id, |c| {
        c.with("kms:PrimaryRegion", new_primary_region)
    })?;
    let arn = s.arn(region, &id);
    let primary = s.keys[&(region.to_string(), id.clone())].clone();
    // Also what a caller meets while a previous update is still propagating.
    if primary.multi_region != Some(MultiRegionKeyType::Primary) {
        return Err(err(
            ErrorKind::UnsupportedOperation,
            OP,
            region,
            "UnsupportedOperationException",
            format!("{arn} is not a multi-Region primary key."),
        ));
    }
    if new_primary_region == region || !kms_replicator::region::is_region_name(new_primary_region) {
        return Err(err(
            ErrorKind::Other,
            OP,
            region,
            "ValidationException",
            format!("PrimaryRegion {new_primary_region} is not valid for {arn}"),
        ));
    }
    promotable(OP, region, &arn, primary.state)?;
    let new_arn = s.arn(new_primary_region, &id);
    let Some(replica) = s
        .keys
        .get(&(new_primary_region.to_string(), id.clone()))
        .cloned()
    else {
        return Err(err(
            ErrorKind::NotFound,
            OP,
            region,
            "NotFoundException",
            format!("Key '{new_arn}' does not exist"),
        ));
    };
    if s.is_down(new_primary_region) {
        return Err(err(
            ErrorKind::Internal,
            OP,
            region,
            "KMSInternalException",
            format!("KMS in {new_primary_region} is not available"),
        ));
    }
    // Authorized on the replica too, in its own Region, by its own key policy.
    let on_replica = Check::on_key(OP, &s.key_facts(new_primary_region, &id))
        .across_regions()
        .undocumented(
            Undocumented::PrimaryRegionOnReplica,
            "kms:PrimaryRegion",
            vec![new_primary_region.to_string()],
        );
    s.authorize(caller, OP, region, &on_replica)?;
    promotable(OP, region, &new_arn, replica.state)?;
    // One UpdatePrimaryRegion counts as a request in each of the two Regions.
    s.charge(new_primary_region, OP).map_err(|mut e| {
        e.region = region.to_string();
        e
    })?;
    let until = Instant::now() + s.updating_for;
    for r in s.regions() {
        let Some(k) = s.keys.get_mut(&(r, id.clone())) else {
            continue;
        };
        k.primary_region = new_primary_region.to_string();
        k.multi_region = Some(if k.region == new_primary_region {
            MultiRegionKeyType::Primary
        } else {
            MultiRegionKeyType::Replica
        });
        if k.region == region || k.region == new_primary_region {
            k.state = KeyState::Updating;
            k.settles = Some((until, KeyState::Enabled));
        }
    }
    s.settle_at(until);
    let params = json!({"keyId": key_id, "primaryRegion": new_primary_region});
    s.push_record(
        trail::Record::new(region, OP, caller, params)
            .response(json!({"keyId": arn}))
            .key(&arn),
    );
    // The new primary's Region logs the call KMS made there; it names no previous Region.
    let params = json!({"keyId": new_arn, "primaryRegion": new_primary_region});
    s.push_record(
        trail::Record::new(new_primary_region, OP, caller, params)
            .invoked_by_kms()
            .response(json!({"keyId": new_arn})),
    );
    Ok(())
}

/// UpdatePrimaryRegion needs both keys `Enabled` when it starts (the key-state table's errors).
fn promotable(op: Op, region: &str, arn: &str, state: KeyState) -> KmsResult<()> {
    match state {
        KeyState::Enabled => Ok(()),
        other => Err(refused_in(op, region, arn, other)),
    }
}
