//! The protocol layer's state (the twin, the dates KMS keeps that the twin does not, the page
//! cap), what every answer shares (`KeyMetadata`, List paging), and the dispatch of a request
//! to its operation's handler.

use super::error::{ApiError, ApiResult};
use super::wire::{now_epoch, opt_str};
use kms_replicator::arn::key_arn;
use kms_replicator::model::{KeyInfo, KeyState, MultiRegionKeyType};
use kms_replicator::op::Op;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use twin::Twin;

/// Every operation this layer serves.
pub const OPERATIONS: &[Op] = &[
    Op::CancelKeyDeletion,
    Op::CreateAlias,
    Op::CreateKey,
    Op::DeleteAlias,
    Op::DescribeKey,
    Op::Decrypt,
    Op::DisableKey,
    Op::EnableKey,
    Op::Encrypt,
    Op::GenerateDataKey,
    Op::GenerateDataKeyWithoutPlaintext,
    Op::GenerateMac,
    Op::GetKeyLastUsage,
    Op::GetKeyPolicy,
    Op::GetParametersForImport,
    Op::GetPublicKey,
    Op::ImportKeyMaterial,
    Op::ListAliases,
    Op::ListKeys,
    Op::ListResourceTags,
    Op::PutKeyPolicy,
    Op::ReEncrypt,
    Op::ReplicateKey,
    Op::ScheduleKeyDeletion,
    Op::Sign,
    Op::TagResource,
    Op::UntagResource,
    Op::UpdateAlias,
    Op::UpdateKeyDescription,
    Op::UpdatePrimaryRegion,
    Op::Verify,
    Op::VerifyMac,
];

/// What KMS keeps about a key that the twin's model does not: dates.
#[derive(Debug, Clone, Default)]
struct Extra {
    created: f64,
    deletion: Option<(f64, i64)>,
}

/// The protocol layer. Holds the twin (shared state) and the few extras of the wire format.
pub struct KmsApi {
    pub(super) twin: Twin,
    extra: Mutex<HashMap<(String, String), Extra>>,
    /// Largest page any List operation returns, whatever `Limit` asks (to exercise paging).
    page_cap: AtomicUsize,
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

    pub(super) fn page_cap(&self) -> usize {
        self.page_cap.load(Ordering::Relaxed)
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

    pub(super) fn set_deletion(&self, region: &str, key_id: &str, deletion: Option<(f64, i64)>) {
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
        let kind = self
            .twin
            .key(&info.region, &info.key_id)
            .map(|k| k.kind)
            .unwrap_or_default();
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
            "KeyUsage": kind.usage,
            "KeyState": info.state.as_str(),
            "Origin": kind.origin,
            "KeyManager": "CUSTOMER",
            "CustomerMasterKeySpec": kind.spec,
            "KeySpec": kind.spec,
            "MultiRegion": info.multi_region.is_some(),
        });
        for (field, algorithms) in kind.algorithms() {
            m[field] = json!(algorithms);
        }
        if let Some(id) = &info.current_key_material_id {
            m["CurrentKeyMaterialId"] = json!(id);
        }
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

    /// One page of `items` under `field`, from `Marker`, at most `Limit` (or `default`) long;
    /// only the page's items are turned into JSON (`to_json`), so that paging through a long
    /// list costs each page its own length, not the list's.
    pub(super) fn page<T>(
        &self,
        body: &Value,
        items: &[T],
        field: &str,
        (default, max): (usize, usize),
        to_json: impl Fn(&T) -> Value,
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
        .min(self.page_cap());
        let start = match opt_str(body, "Marker") {
            None => 0,
            Some(m) => m
                .strip_prefix("twin-page-")
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|n| *n <= items.len())
                .ok_or_else(|| ApiError::aws(400, "InvalidMarkerException", "Invalid marker"))?,
        };
        let end = (start + limit).min(items.len());
        let page: Vec<Value> = items[start..end].iter().map(to_json).collect();
        let mut out = json!({field: page, "Truncated": end < items.len()});
        if end < items.len() {
            out["NextMarker"] = json!(format!("twin-page-{end}"));
        }
        Ok(out)
    }

    /// Serves one KMS operation, named as in `X-Amz-Target`, for `caller` (an IAM ARN) in
    /// `region`.
    pub async fn call(
        &self,
        caller: &str,
        region: &str,
        operation: &str,
        body: &Value,
    ) -> ApiResult {
        if !body.is_object() {
            return Err(ApiError::aws(
                400,
                "SerializationException",
                "The request body must be a JSON object",
            ));
        }
        let unknown = || {
            ApiError::aws(
                400,
                "UnknownOperationException",
                format!("The local KMS twin does not implement {operation}"),
            )
        };
        let kms = self.twin.with_caller(caller);
        let Some(op) = Op::parse(operation) else {
            return Err(unknown());
        };
        match op {
            Op::CreateKey => self.create_key(&kms, region, body),
            Op::DescribeKey => self.describe_key(&kms, region, body).await,
            Op::GetKeyPolicy => self.get_key_policy(&kms, region, body).await,
            Op::ListResourceTags => self.list_resource_tags(&kms, region, body).await,
            Op::ListAliases => self.list_aliases(&kms, region, body).await,
            Op::ListKeys => self.list_keys(&kms, region, body).await,
            Op::ReplicateKey => self.replicate_key(&kms, region, body).await,
            Op::PutKeyPolicy => self.put_key_policy(&kms, region, body).await,
            Op::CreateAlias => self.create_alias(&kms, region, body).await,
            Op::UpdateAlias => self.update_alias(&kms, region, body).await,
            Op::DeleteAlias => self.delete_alias(&kms, region, body).await,
            Op::TagResource => self.tag_resource(&kms, region, body).await,
            Op::UntagResource => self.untag_resource(&kms, region, body).await,
            Op::UpdateKeyDescription => self.update_key_description(&kms, region, body).await,
            Op::ScheduleKeyDeletion => self.schedule_key_deletion(&kms, region, body).await,
            Op::CancelKeyDeletion => self.cancel_key_deletion(&kms, region, body).await,
            Op::EnableKey => self.enable_key(&kms, region, body).await,
            Op::DisableKey => self.disable_key(&kms, region, body),
            Op::UpdatePrimaryRegion => self.update_primary_region(&kms, region, body).await,
            Op::Encrypt => self.encrypt(&kms, region, body).await,
            Op::Decrypt => self.decrypt(&kms, region, body).await,
            Op::GenerateDataKey => self.generate_data_key(&kms, region, body, true).await,
            Op::GenerateDataKeyWithoutPlaintext => {
                self.generate_data_key(&kms, region, body, false).await
            }
            Op::GetKeyLastUsage => self.get_key_last_usage(&kms, region, body).await,
            Op::GetParametersForImport => self.get_parameters_for_import(&kms, region, body).await,
            Op::ImportKeyMaterial => self.import_key_material(&kms, region, body).await,
            Op::GenerateMac | Op::VerifyMac => self.mac(&kms, region, body, op).await,
            Op::Sign | Op::Verify => self.sign(&kms, region, body, op).await,
            Op::GetPublicKey => self.get_public_key(&kms, region, body).await,
            Op::ReEncrypt => self.re_encrypt(&kms, region, body).await,
            // The Resource Groups Tagging API's, served by `get_resources`.
            Op::GetResources => Err(unknown()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn list_pages_follow_limit_marker_and_the_cap() {
        let api = KmsApi::new(Twin::new());
        let items: Vec<Value> = (0..5).map(|i| json!(i)).collect();
        let p1 = api
            .page(&json!({"Limit": 2}), &items, "X", (50, 100), Value::clone)
            .unwrap();
        assert_eq!(
            p1,
            json!({"X": [0, 1], "Truncated": true, "NextMarker": "twin-page-2"})
        );
        let p3 = api
            .page(
                &json!({"Marker": "twin-page-4"}),
                &items,
                "X",
                (50, 100),
                Value::clone,
            )
            .unwrap();
        assert_eq!(p3, json!({"X": [4], "Truncated": false}));
        api.set_page_cap(3);
        let capped = api
            .page(&json!({}), &items, "X", (50, 100), Value::clone)
            .unwrap();
        assert_eq!(capped["X"].as_array().unwrap().len(), 3);
        assert!(matches!(
            api.page(&json!({"Marker": "nope"}), &items, "X", (50, 100), Value::clone),
            Err(ApiError::Aws { code, .. }) if code == "InvalidMarkerException"
        ));
        assert!(api
            .page(&json!({"Limit": 0}), &items, "X", (50, 100), Value::clone)
            .is_err());
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

    #[tokio::test]
    async fn every_listed_operation_is_served_and_no_other() {
        let api = KmsApi::new(Twin::new());
        for op in Op::ALL {
            let answer = api
                .call(twin::ADMIN_USER, "us-east-1", op.name(), &json!({}))
                .await;
            let unknown = matches!(
                &answer,
                Err(ApiError::Aws { code, .. }) if code == "UnknownOperationException"
            );
            assert_eq!(!unknown, OPERATIONS.contains(op), "{op}: {answer:?}");
        }
    }
}
