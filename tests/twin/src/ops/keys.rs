//! CreateKey, DescribeKey, ListKeys, GetKeyPolicy, PutKeyPolicy and UpdateKeyDescription.

use crate::policy::{check_policy, default_policy};
use crate::state::{State, TwinKey};
use crate::trail;
use kms_replicator::model::{KeyInfo, KeyState, MultiRegionKeyType, Tag};
use kms_replicator::op::Op;
use kms_replicator::port::KmsResult;
use serde_json::json;

/// A new `Enabled` key: a multi-Region primary or a single-Region key, with the default key
/// policy unless `policy` is given.
pub(crate) fn create_key(
    s: &mut State,
    caller: &str,
    region: &str,
    multi_region: bool,
    policy: Option<&str>,
    description: &str,
    tags: &[Tag],
) -> KeyInfo {
    s.counter += 1;
    let n = s.counter;
    let key_id = if multi_region {
        format!("mrk-{n:032x}")
    } else {
        format!("{:08x}-0000-4000-8000-{n:012x}", n)
    };
    let policy = policy
        .map(str::to_string)
        .unwrap_or_else(|| default_policy(&s.account));
    let key = TwinKey {
        key_id: key_id.clone(),
        region: region.to_string(),
        state: KeyState::Enabled,
        description: description.to_string(),
        policy,
        tags: tags
            .iter()
            .map(|t| (t.key.clone(), t.value.clone()))
            .collect(),
        multi_region: multi_region.then_some(MultiRegionKeyType::Primary),
        primary_region: region.to_string(),
        created_ms: s.next_creation_date(),
        settles: None,
    };
    s.keys.insert((region.to_string(), key_id.clone()), key);
    let info = s.info(region, &key_id);
    let params = json!({
        "description": description,
        "keySpec": "SYMMETRIC_DEFAULT",
        "keyUsage": "ENCRYPT_DECRYPT",
        "origin": "AWS_KMS",
        "bypassPolicyLockoutSafetyCheck": false,
        "multiRegion": multi_region,
        "tags": trail::tags_json(tags),
    });
    let response = json!({"keyMetadata": trail::key_metadata(&info, &s.account)});
    let rec = trail::Record::new(region, Op::CreateKey, caller, params)
        .response(response)
        .key(&info.arn);
    s.push_record(rec);
    info
}

pub(crate) fn describe_key(s: &State, region: &str, key: &str) -> KmsResult<KeyInfo> {
    let id = s.resolve(Op::DescribeKey, region, key)?;
    let mut info = s.info(region, &id);
    // While a primary Region update is in progress, DescribeKey may show both the old and
    // the new primary as replicas.
    if info.state == KeyState::Updating {
        if let Some(m) = &mut info.multi_region {
            m.key_type = MultiRegionKeyType::Replica;
        }
    }
    Ok(info)
}

pub(crate) fn list_keys(s: &State, region: &str) -> Vec<String> {
    s.keys
        .keys()
        .filter(|(r, _)| r == region)
        .map(|(_, id)| id.clone())
        .collect()
}

pub(crate) fn get_key_policy(s: &State, region: &str, key_id: &str) -> KmsResult<String> {
    let id = s.resolve(Op::GetKeyPolicy, region, key_id)?;
    Ok(s.keys[&(region.to_string(), id)].policy.clone())
}

pub(crate) fn put_key_policy(
    s: &mut State,
    caller: &str,
    region: &str,
    key_id: &str,
    policy: &str,
) -> KmsResult<()> {
    const OP: Op = Op::PutKeyPolicy;
    let id = s.resolve(OP, region, key_id)?;
    check_policy(OP, region, policy, &s.account, caller)?;
    s.get(region, &id).policy = policy.to_string();
    let arn = s.arn(region, &id);
    let params = json!({"keyId": key_id, "policyName": "default", "policy": policy, "bypassPolicyLockoutSafetyCheck": false});
    s.push_record(trail::Record::new(region, OP, caller, params).key(&arn));
    Ok(())
}

pub(crate) fn update_key_description(
    s: &mut State,
    caller: &str,
    region: &str,
    key_id: &str,
    description: &str,
) -> KmsResult<()> {
    const OP: Op = Op::UpdateKeyDescription;
    let id = s.resolve(OP, region, key_id)?;
    s.manageable(OP, region, &id)?;
    s.get(region, &id).description = description.to_string();
    let arn = s.arn(region, &id);
    let params = json!({"keyId": key_id, "description": description});
    s.push_record(trail::Record::new(region, OP, caller, params).key(&arn));
    Ok(())
}
