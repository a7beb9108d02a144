//! EnableKey, DisableKey, ScheduleKeyDeletion and CancelKeyDeletion. The deletion date and
//! window are the protocol layer's own (the twin keeps only the state).

use super::api::KmsApi;
use super::error::ApiResult;
use super::wire::{now_epoch, req_str};
use kms_replicator::arn::{key_arn, key_id_of};
use kms_replicator::model::KeyState;
use kms_replicator::Kms;
use serde_json::{json, Value};
use twin::Twin;

impl KmsApi {
    pub(super) async fn enable_key(&self, kms: &Twin, region: &str, body: &Value) -> ApiResult {
        kms.enable_key(region, req_str(body, "KeyId")?).await?;
        Ok(json!({}))
    }

    pub(super) fn disable_key(&self, kms: &Twin, region: &str, body: &Value) -> ApiResult {
        kms.disable_key(region, req_str(body, "KeyId")?)?;
        Ok(json!({}))
    }

    pub(super) async fn schedule_key_deletion(
        &self,
        kms: &Twin,
        region: &str,
        body: &Value,
    ) -> ApiResult {
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

    pub(super) async fn cancel_key_deletion(
        &self,
        kms: &Twin,
        region: &str,
        body: &Value,
    ) -> ApiResult {
        let key = req_str(body, "KeyId")?;
        kms.cancel_key_deletion(region, key).await?;
        let id = key_id_of(key).to_string();
        self.set_deletion(region, &id, None);
        Ok(json!({"KeyId": key_arn("aws", region, &self.twin.account(), &id)}))
    }
}
