//! ListResourceTags, TagResource and UntagResource.

use super::api::KmsApi;
use super::error::{ApiError, ApiResult};
use super::wire::{req_str, tag_out, tags_in};
use kms_replicator::Kms;
use serde_json::{json, Value};
use twin::Twin;

impl KmsApi {
    pub(super) async fn list_resource_tags(
        &self,
        kms: &Twin,
        region: &str,
        body: &Value,
    ) -> ApiResult {
        let tags = kms
            .list_resource_tags(region, req_str(body, "KeyId")?)
            .await?;
        self.page(body, &tags, "Tags", (50, 50), tag_out)
    }

    pub(super) async fn tag_resource(&self, kms: &Twin, region: &str, body: &Value) -> ApiResult {
        let tags = tags_in(body)?;
        kms.tag_resource(region, req_str(body, "KeyId")?, &tags)
            .await?;
        Ok(json!({}))
    }

    pub(super) async fn untag_resource(&self, kms: &Twin, region: &str, body: &Value) -> ApiResult {
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
}
