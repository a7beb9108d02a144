//! ListAliases, CreateAlias, UpdateAlias and DeleteAlias.

use super::api::KmsApi;
use super::error::ApiResult;
use super::wire::{opt_str, req_str};
use kms_replicator::Kms;
use serde_json::{json, Value};
use twin::Twin;

impl KmsApi {
    pub(super) async fn list_aliases(&self, kms: &Twin, region: &str, body: &Value) -> ApiResult {
        let aliases = kms.list_aliases(region, opt_str(body, "KeyId")).await?;
        let account = self.twin.account();
        self.page(body, &aliases, "Aliases", (50, 100), |a| {
            let mut v = json!({
                "AliasName": a.name,
                "AliasArn": format!("arn:aws:kms:{region}:{account}:{}", a.name),
            });
            if let Some(t) = &a.target_key_id {
                v["TargetKeyId"] = json!(t);
            }
            v
        })
    }

    pub(super) async fn create_alias(&self, kms: &Twin, region: &str, body: &Value) -> ApiResult {
        kms.create_alias(
            region,
            req_str(body, "AliasName")?,
            req_str(body, "TargetKeyId")?,
        )
        .await?;
        Ok(json!({}))
    }

    pub(super) async fn update_alias(&self, kms: &Twin, region: &str, body: &Value) -> ApiResult {
        kms.update_alias(
            region,
            req_str(body, "AliasName")?,
            req_str(body, "TargetKeyId")?,
        )
        .await?;
        Ok(json!({}))
    }

    pub(super) async fn delete_alias(&self, kms: &Twin, region: &str, body: &Value) -> ApiResult {
        kms.delete_alias(region, req_str(body, "AliasName")?)
            .await?;
        Ok(json!({}))
    }
}
