//! ListResourceTags, TagResource and UntagResource: each Region's tags are its own.

use crate::state::State;
use crate::trail;
use kms_replicator::model::Tag;
use kms_replicator::op::Op;
use kms_replicator::port::KmsResult;
use serde_json::json;

pub(crate) fn list_resource_tags(
    s: &State,
    caller: &str,
    region: &str,
    key_id: &str,
) -> KmsResult<Vec<Tag>> {
    let id = s.resolve(Op::ListResourceTags, region, key_id)?;
    s.authorize_key(caller, Op::ListResourceTags, region, &id, |c| c)?;
    Ok(s.keys[&(region.to_string(), id)]
        .tags
        .iter()
        .map(|(k, v)| Tag::new(k, v))
        .collect())
}

pub(crate) fn tag_resource(
    s: &mut State,
    caller: &str,
    region: &str,
    key_id: &str,
    tags: &[Tag],
) -> KmsResult<()> {
    const OP: Op = Op::TagResource;
    let id = s.resolve(OP, region, key_id)?;
    s.authorize_key(caller, OP, region, &id, |c| c.request_tags(tags, None))?;
    s.manageable(OP, region, &id)?;
    let k = s.get(region, &id);
    for t in tags {
        k.tags.insert(t.key.clone(), t.value.clone());
    }
    let arn = s.arn(region, &id);
    let params = json!({"keyId": key_id, "tags": trail::tags_json(tags)});
    s.push_record(trail::Record::new(region, OP, caller, params).key(&arn));
    Ok(())
}

pub(crate) fn untag_resource(
    s: &mut State,
    caller: &str,
    region: &str,
    key_id: &str,
    keys: &[String],
) -> KmsResult<()> {
    const OP: Op = Op::UntagResource;
    let id = s.resolve(OP, region, key_id)?;
    s.authorize_key(caller, OP, region, &id, |c| {
        c.with_all("aws:TagKeys", keys.iter().cloned())
    })?;
    s.manageable(OP, region, &id)?;
    let k = s.get(region, &id);
    for key in keys {
        k.tags.remove(key);
    }
    let arn = s.arn(region, &id);
    let params = json!({"keyId": key_id, "tagKeys": keys});
    s.push_record(trail::Record::new(region, OP, caller, params).key(&arn));
    Ok(())
}
