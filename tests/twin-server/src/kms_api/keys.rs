//! CreateKey, DescribeKey, ListKeys, GetKeyPolicy, PutKeyPolicy and UpdateKeyDescription.

use super::api::KmsApi;
use super::error::{ApiError, ApiResult};
use super::wire::{opt_str, req_str, tags_in};
use kms_replicator::arn::key_arn;
use kms_replicator::Kms;
use serde_json::{json, Value};
use twin::{KeyKind, Twin};

impl KmsApi {
    /// CreateKey through the twin's own constructor: KeySpec, KeyUsage and Origin validated as
    /// KMS validates them; what the twin does not model is refused rather than half-imitated.
    pub(super) fn create_key(&self, kms: &Twin, region: &str, body: &Value) -> ApiResult {
        let spec = opt_str(body, "KeySpec").or_else(|| opt_str(body, "CustomerMasterKeySpec"));
        let usage = opt_str(body, "KeyUsage");
        let origin = opt_str(body, "Origin");
        let multi_region = body
            .get("MultiRegion")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let kind = KeyKind::from_request(region, spec, usage, origin, multi_region)?;
        if let Some(p) = opt_str(body, "Policy") {
            if serde_json::from_str::<Value>(p).is_err() {
                return Err(ApiError::aws(
                    400,
                    "MalformedPolicyDocumentException",
                    "The key policy is not valid JSON",
                ));
            }
        }
        let tags = tags_in(body)?;
        let info = kms.try_create_key_of(
            region,
            &kind,
            multi_region,
            opt_str(body, "Policy"),
            opt_str(body, "Description").unwrap_or(""),
            &tags,
        )?;
        Ok(json!({"KeyMetadata": self.key_metadata(&info)}))
    }

    pub(super) async fn describe_key(&self, kms: &Twin, region: &str, body: &Value) -> ApiResult {
        let info = kms.describe_key(region, req_str(body, "KeyId")?).await?;
        Ok(json!({"KeyMetadata": self.key_metadata(&info)}))
    }

    pub(super) async fn list_keys(&self, kms: &Twin, region: &str, body: &Value) -> ApiResult {
        let account = self.twin.account();
        let keys = kms.list_keys(region).await?;
        self.page(
            body,
            &keys,
            "Keys",
            (100, 1000),
            |id| json!({"KeyId": id, "KeyArn": key_arn("aws", region, &account, id)}),
        )
    }

    pub(super) async fn get_key_policy(&self, kms: &Twin, region: &str, body: &Value) -> ApiResult {
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

    pub(super) async fn put_key_policy(&self, kms: &Twin, region: &str, body: &Value) -> ApiResult {
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

    pub(super) async fn update_key_description(
        &self,
        kms: &Twin,
        region: &str,
        body: &Value,
    ) -> ApiResult {
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
}
