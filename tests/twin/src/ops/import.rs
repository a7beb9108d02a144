//! Imported key material: GetParametersForImport and ImportKeyMaterial, for keys of origin
//! `EXTERNAL` (KMS API Reference; KMS Developer Guide, "Importing key material into
//! multi-Region keys"). A new `EXTERNAL` key, and every replica of one, is `PendingImport`
//! until the material is imported into it; KMS never copies it between Regions.

use crate::crypto::{material_id, random, Wrapping};
use crate::state::{err, refused_in, State};
use crate::trail;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeySize, PrivateDecryptingKey};
use kms_replicator::model::KeyState;
use kms_replicator::op::Op;
use kms_replicator::port::{ErrorKind, KmsError, KmsResult};
use kms_replicator::usage::now_ms;
use serde_json::json;

/// What GetParametersForImport answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportParameters {
    pub key_arn: String,
    pub import_token: Vec<u8>,
    /// The wrapping key's public half, DER SubjectPublicKeyInfo.
    pub public_key: Vec<u8>,
    /// Milliseconds since the epoch: 24 hours after the request, as in KMS.
    pub valid_to_ms: u64,
}

/// How long an import token and its public key stay valid.
const VALID_FOR_MS: u64 = 24 * 60 * 60 * 1000;

fn validation(op: Op, region: &str, msg: String) -> KmsError {
    err(ErrorKind::Other, op, region, "ValidationException", msg)
}

/// Only keys of origin `EXTERNAL` take imported material; and not while they are being
/// created, updated or deleted (the key-state table's notes 8, 9, 14 and 15).
fn importable(s: &State, op: Op, region: &str, id: &str) -> KmsResult<()> {
    let k = &s.keys[&(region.to_string(), id.to_string())];
    let arn = s.arn(region, id);
    if k.kind.origin != "EXTERNAL" {
        return Err(err(
            ErrorKind::UnsupportedOperation,
            op,
            region,
            "UnsupportedOperationException",
            format!(
                "{arn} origin is {} which is not valid for this operation.",
                k.kind.origin
            ),
        ));
    }
    match k.state {
        KeyState::Enabled | KeyState::Disabled | KeyState::PendingImport => Ok(()),
        other => Err(refused_in(op, region, &arn, other)),
    }
}

/// GetParametersForImport: a new RSA wrapping key of `spec` (RSA_2048, RSA_3072, RSA_4096)
/// for `algorithm` (RSAES_OAEP_SHA_1 or RSAES_OAEP_SHA_256), and a token that names the key.
pub(crate) fn get_parameters_for_import(
    s: &mut State,
    caller: &str,
    region: &str,
    key: &str,
    algorithm: &str,
    spec: &str,
) -> KmsResult<ImportParameters> {
    const OP: Op = Op::GetParametersForImport;
    let id = s.resolve(OP, region, key)?;
    s.authorize_key(caller, OP, region, &id, |c| {
        c.with("kms:WrappingAlgorithm", algorithm)
            .with("kms:WrappingKeySpec", spec)
    })?;
    importable(s, OP, region, &id)?;
    match algorithm {
        "RSAES_OAEP_SHA_1" | "RSAES_OAEP_SHA_256" => {}
        "RSAES_PKCS1_V1_5" | "RSA_AES_KEY_WRAP_SHA_1" | "RSA_AES_KEY_WRAP_SHA_256" | "SM2PKE" => {
            return Err(err(
                ErrorKind::UnsupportedOperation,
                OP,
                region,
                "UnsupportedOperationException",
                format!("the twin does not implement wrapping algorithm {algorithm}"),
            ))
        }
        other => {
            return Err(validation(
                OP,
                region,
                format!(
                    "1 validation error detected: Value '{other}' at 'wrappingAlgorithm' failed \
                     to satisfy constraint: Member must satisfy enum value set: \
                     [RSAES_OAEP_SHA_1, RSAES_OAEP_SHA_256, RSA_AES_KEY_WRAP_SHA_1, \
                     RSA_AES_KEY_WRAP_SHA_256, SM2PKE]"
                ),
            ))
        }
    }
    let size = match spec {
        "RSA_2048" => KeySize::Rsa2048,
        "RSA_3072" => KeySize::Rsa3072,
        "RSA_4096" => KeySize::Rsa4096,
        other => {
            return Err(validation(
                OP,
                region,
                format!(
                    "1 validation error detected: Value '{other}' at 'wrappingKeySpec' failed to \
                     satisfy constraint: Member must satisfy enum value set: [RSA_2048, \
                     RSA_3072, RSA_4096, SM2]"
                ),
            ))
        }
    };
    let private = PrivateDecryptingKey::generate(size).expect("an RSA key");
    let public_key = private
        .public_key()
        .as_der()
        .expect("a public key's DER")
        .as_ref()
        .to_vec();
    let import_token = random(64);
    let valid_to_ms = now_ms() + VALID_FOR_MS;
    s.crypto.tokens.insert(
        import_token.clone(),
        Wrapping {
            region: region.to_string(),
            key_id: id.clone(),
            private,
            algorithm: algorithm.to_string(),
            valid_to_ms,
        },
    );
    Ok(ImportParameters {
        key_arn: s.arn(region, &id),
        import_token,
        public_key,
        valid_to_ms,
    })
}

/// ImportKeyMaterial's `ExpirationModel` and `ValidTo` (milliseconds since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiration {
    DoesNotExpire,
    ExpiresAt(u64),
}

/// ImportKeyMaterial: the material `wrapped` under the token's public key, into the key the
/// token was issued for. The key leaves `PendingImport` for `Enabled`. Material other than
/// what the key or a related multi-Region key already holds is refused.
pub(crate) fn import_key_material(
    s: &mut State,
    caller: &str,
    region: &str,
    key: &str,
    token: &[u8],
    wrapped: &[u8],
    expiration: Expiration,
) -> KmsResult<()> {
    const OP: Op = Op::ImportKeyMaterial;
    let id = s.resolve(OP, region, key)?;
    let model = match expiration {
        Expiration::DoesNotExpire => "KEY_MATERIAL_DOES_NOT_EXPIRE",
        Expiration::ExpiresAt(_) => "KEY_MATERIAL_EXPIRES",
    };
    s.authorize_key(caller, OP, region, &id, |c| {
        c.with("kms:ExpirationModel", model)
    })?;
    importable(s, OP, region, &id)?;
    let arn = s.arn(region, &id);
    let wrapping = s
        .crypto
        .tokens
        .get(token)
        .filter(|w| w.region == region && w.key_id == id)
        .ok_or_else(|| {
            err(
                ErrorKind::Other,
                OP,
                region,
                "InvalidImportTokenException",
                format!("The import token is not valid for {arn}."),
            )
        })?;
    if wrapping.valid_to_ms < now_ms() {
        return Err(err(
            ErrorKind::Other,
            OP,
            region,
            "ExpiredImportTokenException",
            "The import token has expired: call GetParametersForImport again.",
        ));
    }
    if let Expiration::ExpiresAt(at) = expiration {
        if at <= now_ms() {
            return Err(validation(
                OP,
                region,
                "ValidTo must be in the future".into(),
            ));
        }
    }
    let material: [u8; 32] = wrapping
        .unwrap_material(wrapped)
        .ok_or_else(|| {
            err(
                ErrorKind::Other,
                OP,
                region,
                "InvalidCiphertextException",
                "The encrypted key material does not open with this import token's wrapping key.",
            )
        })?
        .try_into()
        .map_err(|_| {
            err(
                ErrorKind::Other,
                OP,
                region,
                "IncorrectKeyMaterialException",
                "Symmetric key material must be 256 bits (32 bytes).",
            )
        })?;
    let multi = s.keys[&(region.to_string(), id.clone())]
        .multi_region
        .is_some();
    if !s.crypto.import(&material_id(region, &id, multi), material) {
        return Err(err(
            ErrorKind::Other,
            OP,
            region,
            "IncorrectKeyMaterialException",
            format!(
                "{arn}: this is not the key material of this key{}.",
                if multi {
                    " and its related multi-Region keys"
                } else {
                    ""
                }
            ),
        ));
    }
    let k = s.get(region, &id);
    if k.state == KeyState::PendingImport {
        k.state = KeyState::Enabled;
    }
    k.current_material = Some(crate::crypto::material_digest(&material));
    let valid_to = match expiration {
        Expiration::ExpiresAt(ms) => json!(ms / 1000),
        Expiration::DoesNotExpire => json!(null),
    };
    let params = json!({"keyId": key, "expirationModel": model, "validTo": valid_to});
    s.push_record(trail::Record::new(region, OP, caller, params).key(&arn));
    Ok(())
}
