//! ReplicateKey and UpdatePrimaryRegion.

use super::api::KmsApi;
use super::error::ApiResult;
use super::wire::{opt_str, req_str, tags_in, tags_out};
use kms_replicator::port::ReplicaSpec;
use kms_replicator::Kms;
use serde_json::{json, Value};
use twin::Twin;

impl KmsApi {
    pub(super) async fn replicate_key(&self, kms: &Twin, region: &str, body: &Value) -> ApiResult {
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

    pub(super) async fn update_primary_region(
        &self,
        kms: &Twin,
        region: &str,
        body: &Value,
    ) -> ApiResult {
        kms.update_primary_region(
            region,
            req_str(body, "KeyId")?,
            req_str(body, "PrimaryRegion")?,
        )
        .await?;
        Ok(json!({}))
    }
}
