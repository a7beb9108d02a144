//! The KMS JSON 1.1 protocol on top of the twin: a request's operation name and JSON body in,
//! the JSON body of the answer (or an AWS-shaped error) out. Every operation calls the twin's
//! [`Kms`] methods, so faults, latency, rate limits, outages, the call log and the CloudTrail
//! records are the twin's own. Field names and shapes follow the KMS API Reference.

use kms_replicator::arn::{key_arn, key_id_of};
use kms_replicator::model::{KeyInfo, KeyState, MultiRegionKeyType, Tag};
use kms_replicator::port::{ErrorKind, KmsError, ReplicaSpec};
use kms_replicator::Kms;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};
use twin::Twin;

/// Every operation this layer serves.
pub const OPERATIONS: &[&str] = &[
    "CancelKeyDeletion",
    "CreateAlias",
    "CreateKey",
    "DeleteAlias",
    "DescribeKey",
    "DisableKey",
    "EnableKey",
    "GetKeyPolicy",
    "ListAliases",
    "ListKeys",
    "ListResourceTags",
    "PutKeyPolicy",
    "ReplicateKey",
    "ScheduleKeyDeletion",
    "TagResource",
    "UntagResource",
    "UpdateAlias",
    "UpdateKeyDescription",
    "UpdatePrimaryRegion",
];

/// How a request failed, as the HTTP layer must answer it.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// An AWS error body: `{"__type": code, "message": message}` with this status.
    Aws {
        status: u16,
        code: String,
        message: String,
    },
    /// The Region's endpoint does not answer: the connection is closed without a response.
    NoAnswer,
}

impl ApiError {
    pub fn aws(status: u16, code: &str, message: impl Into<String>) -> ApiError {
        ApiError::Aws {
            status,
            code: code.to_string(),
            message: message.into(),
        }
    }

    fn validation(message: impl Into<String>) -> ApiError {
        ApiError::aws(400, "ValidationException", message)
    }
}

impl From<KmsError> for ApiError {
    fn from(e: KmsError) -> ApiError {
        match e.kind {
            ErrorKind::Unreachable => ApiError::NoAnswer,
            ErrorKind::Internal => ApiError::aws(500, &e.code, e.message),
            _ => ApiError::aws(400, &e.code, e.message),
        }
    }
}

type ApiResult = Result<Value, ApiError>;

/// What KMS keeps about a key that the twin's model does not: dates.
#[derive(Debug, Clone, Default)]
struct Extra {
    created: f64,
    deletion: Option<(f64, i64)>,
}

/// The protocol layer. Holds the twin (shared state) and the few extras of the wire format.
pub struct KmsApi {
    twin: Twin,
    extra: Mutex<HashMap<(String, String), Extra>>,
    /// Largest page any List operation returns, whatever `Limit` asks (to exercise paging).
    page_cap: AtomicUsize,
}

fn now_epoch() -> f64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    // KMS gives dates with millisecond precision.
    (d.as_millis() as f64) / 1000.0
}

fn req_str<'a>(body: &'a Value, field: &str) -> Result<&'a str, ApiError> {
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

fn opt_str<'a>(body: &'a Value, field: &str) -> Option<&'a str> {
    body.get(field).and_then(Value::as_str)
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

fn tags_in(body: &Value) -> Result<Vec<Tag>, ApiError> {
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

fn tags_out(tags: &[Tag]) -> Value {
    Value::Array(
        tags.iter()
            .map(|t| json!({"TagKey": t.key, "TagValue": t.value}))
            .collect(),
    )
}

impl KmsApi {
    pub fn new(twin: Twin) -> KmsApi {
        KmsApi {
            twin,
            extra: Mutex::new(HashMap::new()),
            page_cap: AtomicUsize::new(usize::MAX),
        }
    }

    pub fn twin(&self) -> &Twin {
        &self.twin
    }

    /// Caps every List page at `n` items (`Truncated` and `NextMarker` then page the rest).
    pub fn set_page_cap(&self, n: usize) {
        self.page_cap.store(n.max(1), Ordering::Relaxed);
    }

    fn extra(&self, region: &str, key_id: &str) -> Extra {
        let mut m = self.extra.lock().unwrap_or_else(|p| p.into_inner());
        m.entry((region.to_string(), key_id.to_string()))
            .or_insert_with(|| Extra {
                created: now_epoch(),
                deletion: None,
            })
            .clone()
    }

    fn set_deletion(&self, region: &str, key_id: &str, deletion: Option<(f64, i64)>) {
        let mut m = self.extra.lock().unwrap_or_else(|p| p.into_inner());
        m.entry((region.to_string(), key_id.to_string()))
            .or_insert_with(|| Extra {
                created: now_epoch(),
                deletion: None,
            })
            .deletion = deletion;
    }

    /// `KeyMetadata` as the KMS API returns it.
    pub fn key_metadata(&self, info: &KeyInfo) -> Value {
        let account = info
            .account()
            .map(str::to_string)
            .unwrap_or_else(|| self.twin.account());
        let extra = self.extra(&info.region, &info.key_id);
        let mut m = json!({
            "AWSAccountId": account,
            "KeyId": info.key_id,
            "Arn": info.arn,
            "CreationDate": info
                .creation_date
                .map(|ms| ms as f64 / 1000.0)
                .unwrap_or(extra.created),
            "Enabled": info.state == KeyState::Enabled,
            "Description": info.description,
            "KeyUsage": "ENCRYPT_DECRYPT",
            "KeyState": info.state.as_str(),
            "Origin": "AWS_KMS",
            "KeyManager": "CUSTOMER",
            "CustomerMasterKeySpec": "SYMMETRIC_DEFAULT",
            "KeySpec": "SYMMETRIC_DEFAULT",
            "EncryptionAlgorithms": ["SYMMETRIC_DEFAULT"],
            "MultiRegion": info.multi_region.is_some(),
        });
        if info.state.is_pending_deletion() {
            if let Some((date, days)) = extra.deletion {
                if info.state == KeyState::PendingDeletion {
                    m["DeletionDate"] = json!(date);
                }
                m["PendingDeletionWindowInDays"] = json!(days);
            }
        }
        if let Some(mr) = &info.multi_region {
            let arn_in = |r: &str| key_arn("aws", r, &account, &info.key_id);
            m["MultiRegionConfiguration"] = json!({
                "MultiRegionKeyType": match mr.key_type {
                    MultiRegionKeyType::Primary => "PRIMARY",
                    MultiRegionKeyType::Replica => "REPLICA",
                },
                "PrimaryKey": {"Arn": arn_in(&mr.primary_region), "Region": mr.primary_region},
                "ReplicaKeys": mr.replica_regions.iter()
                    .map(|r| json!({"Arn": arn_in(r), "Region": r}))
                    .collect::<Vec<_>>(),
            });
        }
        m
    }

    /// One page of `items` under `field`, from `Marker`, at most `Limit` (or `default`) long.
    fn page(
        &self,
        body: &Value,
        items: Vec<Value>,
        field: &str,
        default: usize,
        max: usize,
    ) -> ApiResult {
        let limit = match body.get("Limit") {
            None | Some(Value::Null) => default,
            Some(v) => match v.as_u64() {
                Some(n) if n >= 1 && n as usize <= max => n as usize,
                _ => {
                    return Err(ApiError::validation(format!(
                        "1 validation error detected: Value '{v}' at 'limit' failed to satisfy constraint: Member must have value between 1 and {max}"
                    )))
                }
            },
        }
        .min(self.page_cap.load(Ordering::Relaxed));
        let start = match opt_str(body, "Marker") {
            None => 0,
            Some(m) => m
                .strip_prefix("twin-page-")
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|n| *n <= items.len())
                .ok_or_else(|| ApiError::aws(400, "InvalidMarkerException", "Invalid marker"))?,
        };
        let end = (start + limit).min(items.len());
        let mut out = json!({field: items[start..end].to_vec(), "Truncated": end < items.len()});
        if end < items.len() {
            out["NextMarker"] = json!(format!("twin-page-{end}"));
        }
        Ok(out)
    }

    /// Serves one KMS operation for `caller` (an IAM ARN) in `region`.
    pub async fn call(&self, caller: &str, region: &str, op: &str, body: &Value) -> ApiResult {
        if !body.is_object() {
            return Err(ApiError::aws(
                400,
                "SerializationException",
                "The request body must be a JSON object",
            ));
        }
        let kms = self.twin.with_caller(caller);
        match op {
            "CreateKey" => self.create_key(&kms, region, body),
            "DescribeKey" => {
                let info = kms.describe_key(region, req_str(body, "KeyId")?).await?;
                Ok(json!({"KeyMetadata": self.key_metadata(&info)}))
            }
            "GetKeyPolicy" => {
                let name = opt_str(body, "PolicyName").unwrap_or("default");
                if name != "default" {
                    return Err(ApiError::aws(
                        400,
                        "NotFoundException",
                        format!("No such policy exists: {name}"),
                    ));
                }
                let policy = kms.get_key_policy(region, req_str(body, "KeyId")?).await?;
                Ok(json!({"Policy": policy, "PolicyName": "default"}))
            }
            "ListResourceTags" => {
                let tags = kms
                    .list_resource_tags(region, req_str(body, "KeyId")?)
                    .await?;
                let items = tags_out(&tags).as_array().cloned().unwrap_or_default();
                self.page(body, items, "Tags", 50, 50)
            }
            "ListAliases" => {
                let aliases = kms.list_aliases(region, opt_str(body, "KeyId")).await?;
                let account = self.twin.account();
                let items = aliases
                    .iter()
                    .map(|a| {
                        let mut v = json!({
                            "AliasName": a.name,
                            "AliasArn": format!("arn:aws:kms:{region}:{account}:{}", a.name),
                        });
                        if let Some(t) = &a.target_key_id {
                            v["TargetKeyId"] = json!(t);
                        }
                        v
                    })
                    .collect();
                self.page(body, items, "Aliases", 50, 100)
            }
            "ListKeys" => {
                let account = self.twin.account();
                let items = kms
                    .list_keys(region)
                    .await?
                    .iter()
                    .map(|id| json!({"KeyId": id, "KeyArn": key_arn("aws", region, &account, id)}))
                    .collect();
                self.page(body, items, "Keys", 100, 1000)
            }
            "ReplicateKey" => {
                let key = req_str(body, "KeyId")?;
                let replica_region = req_str(body, "ReplicaRegion")?;
                let spec = ReplicaSpec {
                    policy: opt_str(body, "Policy").map(str::to_string),
                    description: opt_str(body, "Description").unwrap_or("").to_string(),
                    tags: tags_in(body)?,
                };
                let info = kms
                    .replicate_key(region, key, replica_region, &spec)
                    .await?;
                let policy = self
                    .twin
                    .key(replica_region, &info.key_id)
                    .map(|k| k.policy)
                    .unwrap_or_default();
                Ok(json!({
                    "ReplicaKeyMetadata": self.key_metadata(&info),
                    "ReplicaPolicy": policy,
                    "ReplicaTags": tags_out(&spec.tags),
                }))
            }
            "PutKeyPolicy" => {
                let name = opt_str(body, "PolicyName").unwrap_or("default");
                if name != "default" {
                    return Err(ApiError::validation(format!(
                        "PolicyName must be default, not {name}"
                    )));
                }
                let policy = req_str(body, "Policy")?;
                kms.put_key_policy(region, req_str(body, "KeyId")?, policy)
                    .await?;
                Ok(json!({}))
            }
            "CreateAlias" => {
                kms.create_alias(
                    region,
                    req_str(body, "AliasName")?,
                    req_str(body, "TargetKeyId")?,
                )
                .await?;
                Ok(json!({}))
            }
            "UpdateAlias" => {
                kms.update_alias(
                    region,
                    req_str(body, "AliasName")?,
                    req_str(body, "TargetKeyId")?,
                )
                .await?;
                Ok(json!({}))
            }
            "DeleteAlias" => {
                kms.delete_alias(region, req_str(body, "AliasName")?)
                    .await?;
                Ok(json!({}))
            }
            "TagResource" => {
                let tags = tags_in(body)?;
                kms.tag_resource(region, req_str(body, "KeyId")?, &tags)
                    .await?;
                Ok(json!({}))
            }
            "UntagResource" => {
                let keys: Vec<String> = body
                    .get("TagKeys")
                    .and_then(Value::as_array)
                    .ok_or_else(|| {
                        ApiError::validation(
                            "1 validation error detected: Value null at 'tagKeys' failed to satisfy constraint: Member must not be null",
                        )
                    })?
                    .iter()
                    .filter_map(|k| k.as_str().map(str::to_string))
                    .collect();
                kms.untag_resource(region, req_str(body, "KeyId")?, &keys)
                    .await?;
                Ok(json!({}))
            }
            "UpdateKeyDescription" => {
                let description = body
                    .get("Description")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        ApiError::validation(
                            "1 validation error detected: Value null at 'description' failed to satisfy constraint: Member must not be null",
                        )
                    })?;
                kms.update_key_description(region, req_str(body, "KeyId")?, description)
                    .await?;
                Ok(json!({}))
            }
            "ScheduleKeyDeletion" => {
                let key = req_str(body, "KeyId")?;
                let days = body
                    .get("PendingWindowInDays")
                    .and_then(Value::as_i64)
                    .unwrap_or(30);
                kms.schedule_key_deletion(region, key, days as i32).await?;
                let id = key_id_of(key).to_string();
                let state = self
                    .twin
                    .key(region, &id)
                    .map(|k| k.state)
                    .unwrap_or(KeyState::PendingDeletion);
                let date = now_epoch() + (days as f64) * 86_400.0;
                self.set_deletion(region, &id, Some((date, days)));
                let mut out = json!({
                    "KeyId": key_arn("aws", region, &self.twin.account(), &id),
                    "KeyState": state.as_str(),
                    "PendingWindowInDays": days,
                });
                if state == KeyState::PendingDeletion {
                    out["DeletionDate"] = json!(date);
                }
                Ok(out)
            }
            "CancelKeyDeletion" => {
                let key = req_str(body, "KeyId")?;
                kms.cancel_key_deletion(region, key).await?;
                let id = key_id_of(key).to_string();
                self.set_deletion(region, &id, None);
                Ok(json!({"KeyId": key_arn("aws", region, &self.twin.account(), &id)}))
            }
            "EnableKey" => {
                kms.enable_key(region, req_str(body, "KeyId")?).await?;
                Ok(json!({}))
            }
            "DisableKey" => {
                kms.disable_key(region, req_str(body, "KeyId")?)?;
                Ok(json!({}))
            }
            "UpdatePrimaryRegion" => {
                kms.update_primary_region(
                    region,
                    req_str(body, "KeyId")?,
                    req_str(body, "PrimaryRegion")?,
                )
                .await?;
                Ok(json!({}))
            }
            other => Err(ApiError::aws(
                400,
                "UnknownOperationException",
                format!("The local KMS twin does not implement {other}"),
            )),
        }
    }

    /// The Resource Groups Tagging API's `GetResources` for KMS keys: the keys of a Region
    /// whose tags pass every filter. Reads the twin's keys directly (one call, recorded, faulted
    /// and stalled as `GetResources`).
    pub async fn get_resources(&self, caller: &str, region: &str, body: &Value) -> ApiResult {
        let types: Vec<&str> = body
            .get("ResourceTypeFilters")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if !types.is_empty() && !types.iter().any(|t| *t == "kms" || *t == "kms:key") {
            return Ok(json!({"ResourceTagMappingList": [], "PaginationToken": ""}));
        }
        let filters: Vec<(String, Vec<String>)> = body
            .get("TagFilters")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|f| {
                        let k = f.get("Key")?.as_str()?.to_string();
                        let vals = f
                            .get("Values")
                            .and_then(Value::as_array)
                            .map(|v| {
                                v.iter()
                                    .filter_map(|x| x.as_str().map(str::to_string))
                                    .collect()
                            })
                            .unwrap_or_default();
                        Some((k, vals))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let per_page = match body.get("ResourcesPerPage").and_then(Value::as_u64) {
            None => 100,
            Some(n) if (1..=100).contains(&n) => n as usize,
            Some(n) => {
                return Err(ApiError::aws(
                    400,
                    "InvalidParameterException",
                    format!("ResourcesPerPage must be between 1 and 100, not {n}"),
                ))
            }
        }
        .min(self.page_cap.load(Ordering::Relaxed));
        let ids = self
            .twin
            .with_caller(caller)
            .tag_index_key_ids(region)
            .await?;
        let account = self.twin.account();
        let items: Vec<Value> = ids
            .iter()
            .filter_map(|id| self.twin.key(region, id))
            .filter(|k| {
                filters.iter().all(|(fk, fv)| {
                    k.tags
                        .get(fk)
                        .is_some_and(|v| fv.is_empty() || fv.contains(v))
                })
            })
            .map(|k| {
                json!({
                    "ResourceARN": key_arn("aws", region, &account, &k.key_id),
                    "Tags": k.tags.iter().map(|(tk, tv)| json!({"Key": tk, "Value": tv})).collect::<Vec<_>>(),
                })
            })
            .collect();
        let start = match opt_str(body, "PaginationToken").filter(|t| !t.is_empty()) {
            None => 0,
            Some(t) => t
                .strip_prefix("twin-page-")
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|n| *n <= items.len())
                .ok_or_else(|| {
                    ApiError::aws(
                        400,
                        "PaginationTokenExpiredException",
                        "Invalid pagination token",
                    )
                })?,
        };
        let end = (start + per_page).min(items.len());
        let token = if end < items.len() {
            format!("twin-page-{end}")
        } else {
            String::new()
        };
        Ok(json!({"ResourceTagMappingList": items[start..end].to_vec(), "PaginationToken": token}))
    }

    /// CreateKey through the twin's own constructor. Only symmetric encryption keys with KMS
    /// key material are modelled; anything else is refused rather than half-imitated.
    fn create_key(&self, kms: &Twin, region: &str, body: &Value) -> ApiResult {
        let spec = opt_str(body, "KeySpec")
            .or_else(|| opt_str(body, "CustomerMasterKeySpec"))
            .unwrap_or("SYMMETRIC_DEFAULT");
        let usage = opt_str(body, "KeyUsage").unwrap_or("ENCRYPT_DECRYPT");
        let origin = opt_str(body, "Origin").unwrap_or("AWS_KMS");
        if spec != "SYMMETRIC_DEFAULT" || usage != "ENCRYPT_DECRYPT" || origin != "AWS_KMS" {
            return Err(ApiError::aws(
                400,
                "UnsupportedOperationException",
                format!(
                    "The local KMS twin models symmetric AWS_KMS keys only (asked: {spec}, {usage}, {origin})"
                ),
            ));
        }
        if let Some(p) = opt_str(body, "Policy") {
            if serde_json::from_str::<Value>(p).is_err() {
                return Err(ApiError::aws(
                    400,
                    "MalformedPolicyDocumentException",
                    "The key policy is not valid JSON",
                ));
            }
        }
        let multi_region = body
            .get("MultiRegion")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let tags = tags_in(body)?;
        let info = kms.create_key(
            region,
            multi_region,
            opt_str(body, "Policy"),
            opt_str(body, "Description").unwrap_or(""),
            &tags,
        );
        Ok(json!({"KeyMetadata": self.key_metadata(&info)}))
    }
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

    #[tokio::test]
    async fn list_pages_follow_limit_marker_and_the_cap() {
        let api = KmsApi::new(Twin::new());
        let items: Vec<Value> = (0..5).map(|i| json!(i)).collect();
        let p1 = api
            .page(&json!({"Limit": 2}), items.clone(), "X", 50, 100)
            .unwrap();
        assert_eq!(
            p1,
            json!({"X": [0, 1], "Truncated": true, "NextMarker": "twin-page-2"})
        );
        let p3 = api
            .page(
                &json!({"Marker": "twin-page-4"}),
                items.clone(),
                "X",
                50,
                100,
            )
            .unwrap();
        assert_eq!(p3, json!({"X": [4], "Truncated": false}));
        api.set_page_cap(3);
        let capped = api.page(&json!({}), items.clone(), "X", 50, 100).unwrap();
        assert_eq!(capped["X"].as_array().unwrap().len(), 3);
        assert!(matches!(
            api.page(&json!({"Marker": "nope"}), items.clone(), "X", 50, 100),
            Err(ApiError::Aws { code, .. }) if code == "InvalidMarkerException"
        ));
        assert!(api.page(&json!({"Limit": 0}), items, "X", 50, 100).is_err());
    }

    #[tokio::test]
    async fn a_missing_required_field_is_a_validation_error_named_as_aws_names_it() {
        let api = KmsApi::new(Twin::new());
        let err = api
            .call(twin::ADMIN_USER, "us-east-1", "DescribeKey", &json!({}))
            .await
            .unwrap_err();
        assert_eq!(
            err,
            ApiError::aws(
                400,
                "ValidationException",
                "1 validation error detected: Value null at 'keyId' failed to satisfy constraint: Member must not be null"
            )
        );
    }
}
