//! The KMS JSON 1.1 wire format's small pieces: required and optional fields, tags in and
//! out, dates, and the SigV4 credential scope that names the caller and the Region.

use super::error::ApiError;
use kms_replicator::model::Tag;
use serde_json::{json, Value};
use std::time::{SystemTime, UNIX_EPOCH};

pub(super) fn now_epoch() -> f64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    // KMS gives dates with millisecond precision.
    (d.as_millis() as f64) / 1000.0
}

pub(super) fn req_str<'a>(body: &'a Value, field: &str) -> Result<&'a str, ApiError> {
    match body.get(field) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::String(_)) => Err(ApiError::validation(format!(
            "1 validation error detected: Value at '{}' failed to satisfy constraint: Member must have length greater than or equal to 1",
            lower_first(field)
        ))),
        _ => Err(ApiError::validation(format!(
            "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
            lower_first(field)
        ))),
    }
}

pub(super) fn opt_str<'a>(body: &'a Value, field: &str) -> Option<&'a str> {
    body.get(field).and_then(Value::as_str)
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

pub(super) fn tags_in(body: &Value) -> Result<Vec<Tag>, ApiError> {
    let Some(list) = body.get("Tags") else {
        return Ok(Vec::new());
    };
    let list = list
        .as_array()
        .ok_or_else(|| ApiError::validation("Tags must be a list"))?;
    list.iter()
        .map(|t| {
            let k = t.get("TagKey").and_then(Value::as_str);
            let v = t.get("TagValue").and_then(Value::as_str);
            match (k, v) {
                (Some(k), Some(v)) if !k.is_empty() => Ok(Tag::new(k, v)),
                _ => Err(ApiError::aws(
                    400,
                    "TagException",
                    "Each tag needs a TagKey and a TagValue",
                )),
            }
        })
        .collect()
}

pub(super) fn tags_out(tags: &[Tag]) -> Value {
    Value::Array(tags.iter().map(tag_out).collect())
}

/// One tag as KMS writes it.
pub(super) fn tag_out(t: &Tag) -> Value {
    json!({"TagKey": t.key, "TagValue": t.value})
}

/// The Region, access key id and service named in a SigV4 `Authorization` header:
/// `AWS4-HMAC-SHA256 Credential=AKID/20261123/us-west-2/kms/aws4_request, ...`.
pub fn credential_scope(authorization: &str) -> Option<(String, String, String)> {
    let cred = authorization
        .split([',', ' '])
        .find_map(|p| p.trim().strip_prefix("Credential="))?;
    let mut parts = cred.split('/');
    let akid = parts.next()?.to_string();
    let _date = parts.next()?;
    let region = parts.next()?.to_string();
    let service = parts.next()?.to_string();
    Some((akid, region, service))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_credential_scope_gives_access_key_region_and_service() {
        let h = "AWS4-HMAC-SHA256 Credential=admin/20261123/us-west-2/kms/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc";
        assert_eq!(
            credential_scope(h),
            Some(("admin".into(), "us-west-2".into(), "kms".into()))
        );
        assert_eq!(credential_scope("Bearer x"), None);
    }
}
