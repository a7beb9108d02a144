//! Encrypt, Decrypt, ReEncrypt, GenerateDataKey, GenerateDataKeyWithoutPlaintext, GenerateMac,
//! VerifyMac,
//! Sign, Verify, GetPublicKey, GetKeyLastUsage, and
//! GetParametersForImport and ImportKeyMaterial for keys of origin EXTERNAL.
//! Blobs travel base64-encoded, as in the KMS JSON protocol; dates are epoch seconds.

use super::api::KmsApi;
use super::error::{ApiError, ApiResult};
use super::wire::{opt_str, req_str};
use aws_smithy_types::base64;
use kms_replicator::op::Op;
use kms_replicator::usage::KeyUsage;
use serde_json::{json, Value};
use twin::{EncryptionContext, Expiration, Twin};

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
    context_in(body, "EncryptionContext")
}

fn context_in(body: &Value, field: &str) -> Result<EncryptionContext, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(EncryptionContext::new()),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v.as_str() {
                Some(v) => Ok((k.clone(), v.to_string())),
                None => Err(ApiError::validation(format!(
                    "{field} values must be strings"
                ))),
            })
            .collect(),
        Some(_) => Err(ApiError::validation(format!("{field} must be a map"))),
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

    pub(super) async fn re_encrypt(&self, kms: &Twin, region: &str, body: &Value) -> ApiResult {
        let req = twin::ReEncryptRequest {
            ciphertext: &blob(body, "CiphertextBlob")?,
            source_key: opt_str(body, "SourceKeyId"),
            source_context: &context_in(body, "SourceEncryptionContext")?,
            destination_key: req_str(body, "DestinationKeyId")?,
            destination_context: &context_in(body, "DestinationEncryptionContext")?,
        };
        let (sealed, source) = kms.re_encrypt(region, &req).await?;
        Ok(json!({
            "CiphertextBlob": base64::encode(&sealed.ciphertext),
            "SourceKeyId": source,
            "KeyId": sealed.key_arn,
            "SourceEncryptionAlgorithm": "SYMMETRIC_DEFAULT",
            "DestinationEncryptionAlgorithm": "SYMMETRIC_DEFAULT",
        }))
    }

    /// GenerateMac, or VerifyMac when `op` is VerifyMac (a valid MAC answers `MacValid`).
    pub(super) async fn mac(&self, kms: &Twin, region: &str, body: &Value, op: Op) -> ApiResult {
        let key = req_str(body, "KeyId")?;
        let message = blob(body, "Message")?;
        let algorithm = req_str(body, "MacAlgorithm")?;
        if op == Op::VerifyMac {
            let arn = kms
                .verify_mac(region, key, &message, algorithm, &blob(body, "Mac")?)
                .await?;
            return Ok(json!({"KeyId": arn, "MacValid": true, "MacAlgorithm": algorithm}));
        }
        let (arn, mac) = kms.generate_mac(region, key, &message, algorithm).await?;
        Ok(json!({"KeyId": arn, "Mac": base64::encode(&mac), "MacAlgorithm": algorithm}))
    }

    /// Sign, or Verify when `op` is Verify (a valid signature answers `SignatureValid`).
    /// `MessageType` RAW (the default); DIGEST is not implemented.
    pub(super) async fn sign(&self, kms: &Twin, region: &str, body: &Value, op: Op) -> ApiResult {
        let key = req_str(body, "KeyId")?;
        let message = blob(body, "Message")?;
        let algorithm = req_str(body, "SigningAlgorithm")?;
        match opt_str(body, "MessageType") {
            None | Some("RAW") => {}
            Some("DIGEST") => {
                return Err(ApiError::aws(
                    400,
                    "UnsupportedOperationException",
                    "the twin does not implement MessageType DIGEST: send the RAW message",
                ))
            }
            Some(other) => {
                return Err(ApiError::validation(format!(
                    "1 validation error detected: Value '{other}' at 'messageType' failed to satisfy constraint: Member must satisfy enum value set: [RAW, DIGEST, EXTERNAL_MU]"
                )))
            }
        }
        if op == Op::Verify {
            let arn = kms
                .verify(region, key, &message, algorithm, &blob(body, "Signature")?)
                .await?;
            return Ok(
                json!({"KeyId": arn, "SignatureValid": true, "SigningAlgorithm": algorithm}),
            );
        }
        let (arn, sig) = kms.sign(region, key, &message, algorithm).await?;
        Ok(json!({"KeyId": arn, "Signature": base64::encode(&sig), "SigningAlgorithm": algorithm}))
    }

    pub(super) async fn get_public_key(&self, kms: &Twin, region: &str, body: &Value) -> ApiResult {
        let (arn, public_key, kind) = kms.get_public_key(region, req_str(body, "KeyId")?).await?;
        let mut out = json!({
            "KeyId": arn,
            "PublicKey": base64::encode(&public_key),
            "KeySpec": kind.spec,
            "CustomerMasterKeySpec": kind.spec,
            "KeyUsage": kind.usage,
        });
        for (field, values) in kind.algorithms() {
            out[field] = json!(values);
        }
        Ok(out)
    }

    pub(super) async fn get_parameters_for_import(
        &self,
        kms: &Twin,
        region: &str,
        body: &Value,
    ) -> ApiResult {
        let p = kms
            .get_parameters_for_import(
                region,
                req_str(body, "KeyId")?,
                req_str(body, "WrappingAlgorithm")?,
                req_str(body, "WrappingKeySpec")?,
            )
            .await?;
        Ok(json!({
            "KeyId": p.key_arn,
            "ImportToken": base64::encode(&p.import_token),
            "PublicKey": base64::encode(&p.public_key),
            "ParametersValidTo": epoch(p.valid_to_ms),
        }))
    }

    pub(super) async fn import_key_material(
        &self,
        kms: &Twin,
        region: &str,
        body: &Value,
    ) -> ApiResult {
        let valid_to = body.get("ValidTo").and_then(Value::as_f64);
        let expiration = match (opt_str(body, "ExpirationModel"), valid_to) {
            (None | Some("KEY_MATERIAL_DOES_NOT_EXPIRE"), None) => Expiration::DoesNotExpire,
            (Some("KEY_MATERIAL_EXPIRES"), Some(at)) => {
                Expiration::ExpiresAt((at * 1000.0) as u64)
            }
            (Some("KEY_MATERIAL_EXPIRES"), None) => {
                return Err(ApiError::validation(
                    "A ValidTo date must be set if the ExpirationModel is KEY_MATERIAL_EXPIRES",
                ))
            }
            (None | Some("KEY_MATERIAL_DOES_NOT_EXPIRE"), Some(_)) => {
                return Err(ApiError::validation(
                    "ValidTo may not be set if the ExpirationModel is KEY_MATERIAL_DOES_NOT_EXPIRE",
                ))
            }
            (Some(other), _) => {
                return Err(ApiError::validation(format!(
                    "1 validation error detected: Value '{other}' at 'expirationModel' failed to satisfy constraint: Member must satisfy enum value set: [KEY_MATERIAL_EXPIRES, KEY_MATERIAL_DOES_NOT_EXPIRE]"
                )))
            }
        };
        kms.import_key_material(
            region,
            req_str(body, "KeyId")?,
            &blob(body, "ImportToken")?,
            &blob(body, "EncryptedKeyMaterial")?,
            expiration,
        )
        .await?;
        Ok(json!({}))
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
