//! Encrypt, Decrypt, GenerateDataKey, GenerateDataKeyWithoutPlaintext and GetKeyLastUsage.
//! Blobs travel base64-encoded, as in the KMS JSON protocol; dates are epoch seconds.

use super::api::KmsApi;
use super::error::{ApiError, ApiResult};
use super::wire::{opt_str, req_str};
use aws_smithy_types::base64;
use kms_replicator::usage::KeyUsage;
use serde_json::{json, Value};
use twin::{EncryptionContext, Twin};

fn blob(body: &Value, field: &str) -> Result<Vec<u8>, ApiError> {
    base64::decode(req_str(body, field)?).map_err(|_| {
        ApiError::aws(
            400,
            "SerializationException",
            format!("{field} is not base64"),
        )
    })
}

fn context(body: &Value) -> Result<EncryptionContext, ApiError> {
    match body.get("EncryptionContext") {
        None | Some(Value::Null) => Ok(EncryptionContext::new()),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v.as_str() {
                Some(v) => Ok((k.clone(), v.to_string())),
                None => Err(ApiError::validation(
                    "EncryptionContext values must be strings",
                )),
            })
            .collect(),
        Some(_) => Err(ApiError::validation("EncryptionContext must be a map")),
    }
}

/// GenerateDataKey's size: `NumberOfBytes`, or `KeySpec` AES_256 (32) or AES_128 (16).
fn data_key_bytes(body: &Value) -> Result<usize, ApiError> {
    if let Some(n) = body.get("NumberOfBytes").and_then(Value::as_u64) {
        return Ok(n as usize);
    }
    match opt_str(body, "KeySpec") {
        Some("AES_256") => Ok(32),
        Some("AES_128") => Ok(16),
        Some(other) => Err(ApiError::validation(format!(
            "1 validation error detected: Value '{other}' at 'keySpec' failed to satisfy constraint: Member must satisfy enum value set: [AES_256, AES_128]"
        ))),
        None => Err(ApiError::validation(
            "Please specify either number of bytes or key spec.",
        )),
    }
}

fn epoch(ms: u64) -> Value {
    json!(ms as f64 / 1000.0)
}

impl KmsApi {
    pub(super) async fn encrypt(&self, kms: &Twin, region: &str, body: &Value) -> ApiResult {
        let sealed = kms
            .encrypt(
                region,
                req_str(body, "KeyId")?,
                &blob(body, "Plaintext")?,
                &context(body)?,
            )
            .await?;
        Ok(json!({
            "CiphertextBlob": base64::encode(&sealed.ciphertext),
            "KeyId": sealed.key_arn,
            "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
        }))
    }

    pub(super) async fn decrypt(&self, kms: &Twin, region: &str, body: &Value) -> ApiResult {
        let opened = kms
            .decrypt(
                region,
                opt_str(body, "KeyId"),
                &blob(body, "CiphertextBlob")?,
                &context(body)?,
            )
            .await?;
        Ok(json!({
            "KeyId": opened.key_arn,
            "Plaintext": base64::encode(&opened.plaintext),
            "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
        }))
    }

    pub(super) async fn generate_data_key(
        &self,
        kms: &Twin,
        region: &str,
        body: &Value,
        with_plaintext: bool,
    ) -> ApiResult {
        let key = req_str(body, "KeyId")?;
        let bytes = data_key_bytes(body)?;
        let (sealed, plaintext) = kms
            .generate_data_key(region, key, bytes, &context(body)?, with_plaintext)
            .await?;
        let mut out = json!({
            "CiphertextBlob": base64::encode(&sealed.ciphertext),
            "KeyId": sealed.key_arn,
        });
        if let Some(p) = plaintext {
            out["Plaintext"] = json!(base64::encode(&p));
        }
        Ok(out)
    }

    pub(super) async fn get_key_last_usage(
        &self,
        kms: &Twin,
        region: &str,
        body: &Value,
    ) -> ApiResult {
        let key = req_str(body, "KeyId")?;
        let usage: KeyUsage = kms.key_last_usage(region, key).await?;
        let arn = kms_replicator::arn::key_arn(
            "aws",
            region,
            &self.twin.account(),
            kms_replicator::arn::key_id_of(key),
        );
        let mut out = json!({"KeyId": arn});
        if let Some(l) = &usage.last_use {
            let mut last = json!({"Operation": l.operation, "Timestamp": epoch(l.at_ms)});
            if let Some(e) = &l.cloudtrail_event_id {
                last["CloudTrailEventId"] = json!(e);
            }
            out["KeyLastUsage"] = last;
        }
        if let Some(t) = usage.tracking_start_ms {
            out["TrackingStartDate"] = epoch(t);
        }
        if let Some(c) = usage.key_creation_ms {
            out["KeyCreationDate"] = epoch(c);
        }
        Ok(out)
    }
}
