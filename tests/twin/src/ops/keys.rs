//! CreateKey, DescribeKey, ListKeys, GetKeyPolicy, PutKeyPolicy and UpdateKeyDescription.

use crate::auth::{Check, KeyFacts};
use crate::kinds::KeyKind;
use crate::policy::{check_policy, default_policy};
use crate::state::{State, TwinKey};
use crate::trail;
use kms_replicator::model::{KeyInfo, KeyState, MultiRegionKeyType, Tag};
use kms_replicator::op::Op;
use kms_replicator::port::KmsResult;
use serde_json::json;

/// What CreateKey is asked for besides the Region.
pub(crate) struct NewKey<'a> {
    pub(crate) multi_region: bool,
    pub(crate) policy: Option<&'a str>,
    pub(crate) description: &'a str,
    pub(crate) tags: &'a [Tag],
    pub(crate) kind: &'a KeyKind,
}

/// A new `Enabled` key (`PendingImport` for origin `EXTERNAL`): a multi-Region primary or a single-Region key of the given kind, with
/// the default key policy unless `policy` is given. Authorized as CreateKey is: `kms:CreateKey`
/// in an IAM policy (there is no key yet), `kms:TagResource` too when tags are given, and the
/// lockout check on the policy. A key spec the Region does not offer is refused.
pub(crate) fn create_key(
    s: &mut State,
    caller: &str,
    region: &str,
    new: &NewKey,
) -> KmsResult<KeyInfo> {
    const OP: Op = Op::CreateKey;
    let NewKey {
        multi_region,
        policy,
        description,
        tags,
        kind,
    } = *new;
    kind.validate(region, multi_region)?;
    s.offers_spec(OP, region, kind)?;
    let n = s.counter + 1;
    let key_id = if multi_region {
        format!("mrk-{n:032x}")
    } else {
        format!("{:08x}-0000-4000-8000-{n:012x}", n)
    };
    let policy = policy
        .map(str::to_string)
        .unwrap_or_else(|| default_policy(&s.account));
    let facts = KeyFacts {
        arn: s.arn(region, &key_id),
        region: region.to_string(),
        policy: policy.clone(),
        tags: tags
            .iter()
            .map(|t| (t.key.clone(), t.value.clone()))
            .collect(),
        multi_region_type: multi_region.then_some("PRIMARY"),
        aliases: Vec::new(),
        origin: kind.origin.clone(),
        spec: kind.spec.clone(),
        usage: kind.usage.clone(),
    };
    let create = Check::without_resource(OP, region)
        .new_key_properties(&facts, None)
        .request_tags(tags, None)
        .bypass_lockout_check(false);
    s.authorize(caller, OP, region, &create)?;
    if !tags.is_empty() {
        let tag = Check::without_resource(Op::TagResource, region).request_tags(tags, None);
        s.authorize(caller, OP, region, &tag)?;
    }
    check_policy(s, OP, caller, &facts, &policy)?;
    s.counter = n;
    let key = TwinKey {
        key_id: key_id.clone(),
        region: region.to_string(),
        state: if kind.is_imported() {
            KeyState::PendingImport
        } else {
            KeyState::Enabled
        },
        description: description.to_string(),
        policy,
        tags: tags
            .iter()
            .map(|t| (t.key.clone(), t.value.clone()))
            .collect(),
        multi_region: multi_region.then_some(MultiRegionKeyType::Primary),
        primary_region: region.to_string(),
        created_ms: s.next_creation_date(),
        deletion_ms: None,
        kind: kind.clone(),
        settles: None,
        current_material: (kind.is_symmetric_encryption() && !kind.is_imported())
            .then(|| crate::crypto::material_digest(key_id.as_bytes())),
    };
    s.keys.insert((region.to_string(), key_id.clone()), key);
    let info = s.info(region, &key_id);
    let params = json!({
        "description": description,
        "keySpec": kind.spec,
        "keyUsage": kind.usage,
        "origin": kind.origin,
        "bypassPolicyLockoutSafetyCheck": false,
        "multiRegion": multi_region,
        "tags": trail::tags_json(tags),
    });
    let response = json!({"keyMetadata": trail::key_metadata(&info, &s.account, kind)});
    let rec = trail::Record::new(region, Op::CreateKey, caller, params)
        .response(response)
        .key(&info.arn);
    s.push_record(rec);
    Ok(info)
}

pub(crate) fn describe_key(s: &State, caller: &str, region: &str, key: &str) -> KmsResult<KeyInfo> {
    let id = s.resolve(Op::DescribeKey, region, key)?;
    s.authorize_key(caller, Op::DescribeKey, region, &id, |c| c)?;
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

pub(crate) fn list_keys(s: &State, caller: &str, region: &str) -> KmsResult<Vec<String>> {
    s.authorize(
        caller,
        Op::ListKeys,
        region,
        &Check::without_resource(Op::ListKeys, region),
    )?;
    Ok(s.keys
        .keys()
        .filter(|(r, _)| r == region)
        .map(|(_, id)| id.clone())
        .collect())
}

pub(crate) fn get_key_policy(
    s: &State,
    caller: &str,
    region: &str,
    key_id: &str,
) -> KmsResult<String> {
    let id = s.resolve(Op::GetKeyPolicy, region, key_id)?;
    s.authorize_key(caller, Op::GetKeyPolicy, region, &id, |c| c)?;
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
    s.authorize_key(caller, OP, region, &id, |c| c.bypass_lockout_check(false))?;
    check_policy(s, OP, caller, &s.key_facts(region, &id), policy)?;
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
    s.authorize_key(caller, OP, region, &id, |c| c)?;
    s.manageable(OP, region, &id)?;
    s.get(region, &id).description = description.to_string();
    let arn = s.arn(region, &id);
    let params = json!({"keyId": key_id, "description": description});
    s.push_record(trail::Record::new(region, OP, caller, params).key(&arn));
    Ok(())
}
