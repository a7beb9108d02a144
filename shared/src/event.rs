//! Event intake: an EventBridge event carrying a CloudTrail record of a KMS call becomes a
//! small typed trigger, or is ignored with a reason. Parsing is lenient on purpose: real
//! records lack fields (`userIdentity.type`, `sessionIssuer`, `responseElements`), and a valid
//! AWS record must never become an error, or it would be retried into the dead-letter queue.

use crate::arn::{parse_kms_arn, region_of};
use aws_lambda_events::eventbridge::EventBridgeEvent;
use serde::Serialize;
use serde_json::Value;
use thiserror::Error;

pub const CLOUDTRAIL_DETAIL_TYPE: &str = "AWS API Call via CloudTrail";

/// The KMS write calls that can change what a sync should see.
pub const TRIGGER_EVENTS: &[&str] = &[
    "CreateKey",
    "TagResource",
    "UntagResource",
    "CreateAlias",
    "UpdateAlias",
    "DeleteAlias",
    "PutKeyPolicy",
    "UpdateKeyDescription",
    "ReplicateKey",
    "UpdatePrimaryRegion",
    "ScheduleKeyDeletion",
    "CancelKeyDeletion",
];

/// A KMS call that asks for the key it touched to be synced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Trigger {
    /// The Region the call was made in.
    pub region: String,
    /// Key id, key ARN, alias name or alias ARN, as the record gives it.
    pub key: String,
    pub event_name: String,
    pub event_id: String,
    /// The calling role (session issuer) or user ARN, when the record has one.
    pub caller: Option<String>,
    /// The Regions the record proves held the key's primary: for UpdatePrimaryRegion, the
    /// Region it was called in (only the primary's Region accepts it) and the new primary's.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub held_primary: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Intake {
    Sync(Trigger),
    Ignore { reason: String },
}

/// Input that is not an EventBridge event at all. Returned as a Lambda error so that the event
/// lands in the dead-letter queue, where a person can look at it.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("malformed event: {0}")]
pub struct MalformedEvent(pub String);

fn ignore(reason: impl Into<String>) -> Result<Intake, MalformedEvent> {
    Ok(Intake::Ignore {
        reason: reason.into(),
    })
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str().filter(|s| !s.is_empty())
}

/// The identity that made the call: for an assumed role, the role (session issuer) ARN, since
/// that is what configuration can name; otherwise the principal ARN.
pub fn caller_arn(detail: &Value) -> Option<String> {
    str_at(
        detail,
        &["userIdentity", "sessionContext", "sessionIssuer", "arn"],
    )
    .or_else(|| str_at(detail, &["userIdentity", "arn"]))
    .map(str::to_string)
}

/// The IAM path of a role ARN, `arn:<partition>:iam::<account>:role/<path><name>`: `/` for a
/// role without one, `/kms-replicator/` for `role/kms-replicator/Name`. `None` for anything else
/// (users, the `arn:...:sts::...:assumed-role/...` of a session, which carries no path).
pub fn role_path(arn: &str) -> Option<String> {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(_), Some("iam"), Some(""), Some(_), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    let rest = resource.strip_prefix("role/")?;
    let (path, name) = rest.rsplit_once('/').unwrap_or(("", rest));
    if name.is_empty() {
        return None;
    }
    Some(if path.is_empty() {
        "/".to_string()
    } else {
        format!("/{path}/")
    })
}

/// The role ARN (with its path) of an assumed-role session, from the record's
/// `userIdentity.sessionContext.sessionIssuer`; `userIdentity.arn` of a session
/// (`arn:aws:sts::<account>:assumed-role/<RoleName>/<session>`) carries no path.
fn session_issuer_role(detail: &Value) -> Option<&str> {
    let issuer = detail.pointer("/userIdentity/sessionContext/sessionIssuer")?;
    if issuer
        .get("type")
        .and_then(Value::as_str)
        .is_some_and(|t| t != "Role")
    {
        return None;
    }
    str_at(issuer, &["arn"])
}

/// Whether the call was made by a session of a role under `path` (an IAM path such as
/// `/kms-replicator/`; a role under `/kms-replicator/x/` is under it too). Returns the role ARN.
pub fn role_under_path<'a>(detail: &'a Value, path: &str) -> Option<&'a str> {
    let role = session_issuer_role(detail)?;
    role_path(role)
        .is_some_and(|p| p.starts_with(path))
        .then_some(role)
}

/// Tags given in a CreateKey request: `[{tagKey, tagValue}]`.
fn request_has_tag(detail: &Value, tag_key: &str) -> bool {
    detail
        .pointer("/requestParameters/tags")
        .and_then(Value::as_array)
        .is_some_and(|tags| {
            tags.iter().any(|t| {
                t.get("tagKey").and_then(Value::as_str) == Some(tag_key)
                    || t.get("TagKey").and_then(Value::as_str) == Some(tag_key)
            })
        })
}

/// A key ARN from the record's `resources` list (DeleteAlias names its key only there).
fn key_from_resources(detail: &Value) -> Option<String> {
    detail
        .get("resources")?
        .as_array()?
        .iter()
        .filter_map(|r| r.get("ARN").and_then(Value::as_str))
        .find(|arn| parse_kms_arn(arn).is_some_and(|a| a.resource.starts_with("key/")))
        .map(str::to_string)
}

/// Classifies one event. `tag_key` is the replication tag; `ignore_callers` are the
/// replicator's own roles, by exact ARN.
pub fn parse_event(
    event: &Value,
    tag_key: &str,
    ignore_callers: &[String],
) -> Result<Intake, MalformedEvent> {
    parse_event_ignoring(event, tag_key, ignore_callers, None)
}

/// [`parse_event`], also ignoring the calls of any role under the IAM path `ignore_role_path`
/// (the replicator's roles in every Region and account share it).
pub fn parse_event_ignoring(
    event: &Value,
    tag_key: &str,
    ignore_callers: &[String],
    ignore_role_path: Option<&str>,
) -> Result<Intake, MalformedEvent> {
    if !event.is_object() {
        return Err(MalformedEvent("the event is not a JSON object".into()));
    }
    // The typed envelope checks the EventBridge fields; the CloudTrail record inside stays
    // untyped, because real records lack fields that strict record types require.
    let envelope: EventBridgeEvent<Value> = serde_json::from_value(event.clone())
        .map_err(|e| MalformedEvent(format!("not an EventBridge event: {e}")))?;
    let source = envelope.source.as_str();
    if source != "aws.kms" {
        return ignore(format!("source {source} is not aws.kms"));
    }
    let detail_type = envelope.detail_type.as_str();
    if detail_type != CLOUDTRAIL_DETAIL_TYPE {
        return ignore(format!(
            "detail-type '{detail_type}' is not a CloudTrail API call"
        ));
    }
    let detail = Some(&envelope.detail)
        .filter(|d| d.is_object())
        .ok_or_else(|| MalformedEvent("a CloudTrail event without a 'detail' object".into()))?;
    let event_name = str_at(detail, &["eventName"]).unwrap_or("");
    if str_at(detail, &["eventSource"]) != Some("kms.amazonaws.com") {
        return ignore(format!("{event_name} is not a KMS call"));
    }
    if let Some(code) = detail.get("errorCode").filter(|c| !c.is_null()) {
        return ignore(format!("{event_name} failed ({code}); nothing changed"));
    }
    if !TRIGGER_EVENTS.contains(&event_name) {
        return ignore(format!("{event_name} does not change replicated state"));
    }
    let caller = caller_arn(detail);
    if let Some(c) = &caller {
        if ignore_callers.iter().any(|i| i == c) {
            return ignore(format!(
                "{event_name} was made by the replicator itself ({c})"
            ));
        }
    }
    if let Some(path) = ignore_role_path.filter(|p| !p.is_empty()) {
        if let Some(role) = role_under_path(detail, path) {
            return ignore(format!(
                "{event_name} was made by the replicator itself ({role}, a role under {path})"
            ));
        }
    }
    let params = detail.get("requestParameters").unwrap_or(&Value::Null);
    let key = match event_name {
        "CreateKey" => {
            let meta = detail.pointer("/responseElements/keyMetadata");
            let multi_region = meta
                .and_then(|m| m.get("multiRegion"))
                .or_else(|| params.get("multiRegion"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let tagged = request_has_tag(detail, tag_key);
            if !multi_region && !tagged {
                return ignore("CreateKey of a single-Region key: it can never be replicated");
            }
            if !tagged {
                return ignore(format!(
                    "CreateKey without the {tag_key} tag: tag the key to replicate it"
                ));
            }
            meta.and_then(|m| str_at(m, &["arn"]).or_else(|| str_at(m, &["keyId"])))
                .map(str::to_string)
        }
        "CreateAlias" | "UpdateAlias" => str_at(params, &["targetKeyId"]).map(str::to_string),
        _ => str_at(params, &["keyId"]).map(str::to_string),
    }
    .or_else(|| key_from_resources(detail));
    let Some(key) = key else {
        return ignore(format!("{event_name} record names no key"));
    };
    let region = region_of(&key)
        .or_else(|| str_at(detail, &["awsRegion"]))
        .or(envelope.region.as_deref())
        .map(str::to_string);
    let Some(region) = region else {
        return ignore(format!("{event_name} record names no Region"));
    };
    let held_primary = held_primary(event_name, detail, params);
    Ok(Intake::Sync(Trigger {
        held_primary,
        region,
        key,
        event_name: event_name.to_string(),
        event_id: str_at(detail, &["eventID"])
            .or(envelope.id.as_deref())
            .unwrap_or("")
            .to_string(),
        caller,
    }))
}

/// The Regions an UpdatePrimaryRegion record proves held the primary: the Region the call was
/// made in (KMS accepts it only in the current primary's Region; the record KMS writes in the
/// new primary's Region names that Region) and the Region named as the new primary. Any other
/// record proves none.
fn held_primary(event_name: &str, detail: &Value, params: &Value) -> Vec<String> {
    if event_name != "UpdatePrimaryRegion" {
        return Vec::new();
    }
    let mut regions: Vec<String> = [
        str_at(detail, &["awsRegion"]),
        str_at(params, &["primaryRegion"]),
    ]
    .into_iter()
    .flatten()
    .filter(|r| crate::region::is_region_name(r))
    .map(str::to_string)
    .collect();
    regions.dedup();
    regions
}
