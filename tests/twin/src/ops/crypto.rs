//! The cryptographic operations (Encrypt, Decrypt, GenerateDataKey and its WithoutPlaintext
//! form; ReEncrypt; GenerateMac and VerifyMac; Sign and Verify), GetPublicKey and
//! GetKeyLastUsage. Each success records the key's last use in its Region, as
//! KMS does; GetKeyLastUsage answers from that record.

use crate::crypto::{key_id_of, material_id, random, EncryptionContext};
use crate::kinds::KeyKind;
use crate::signing;
use crate::state::{err, refused_in, State};
use kms_replicator::model::KeyState;
use kms_replicator::op::Op;
use kms_replicator::port::{ErrorKind, KmsError, KmsResult};
use kms_replicator::usage::{now_ms, KeyUsage, LastUse};

/// A ciphertext and the ARN of the key that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_arn: String,
    pub ciphertext: Vec<u8>,
}

/// A plaintext and the ARN of the key that opened (or made) it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    pub key_arn: String,
    pub plaintext: Vec<u8>,
}

/// The refusals of a key that cannot be used, with the codes of KMS's key-state table.
fn usable(s: &State, op: Op, region: &str, id: &str) -> KmsResult<()> {
    match s.keys[&(region.to_string(), id.to_string())].state {
        KeyState::Enabled | KeyState::Updating => Ok(()),
        other => Err(refused_in(op, region, &s.arn(region, id), other)),
    }
}

/// Encrypt, Decrypt and the data keys need a symmetric encryption key: any other key usage is
/// InvalidKeyUsageException, as in KMS. The twin does not implement RSA encryption.
fn symmetric_encryption(s: &State, op: Op, region: &str, id: &str) -> KmsResult<()> {
    let kind = &s.keys[&(region.to_string(), id.to_string())].kind;
    if kind.is_symmetric_encryption() {
        return Ok(());
    }
    let arn = s.arn(region, id);
    if kind.usage == "ENCRYPT_DECRYPT"
        && op != Op::GenerateDataKey
        && op != Op::GenerateDataKeyWithoutPlaintext
    {
        return Err(err(
            ErrorKind::UnsupportedOperation,
            op,
            region,
            "UnsupportedOperationException",
            format!(
                "the twin does not implement {op} for key spec {}",
                kind.spec
            ),
        ));
    }
    Err(err(
        ErrorKind::Other,
        op,
        region,
        "InvalidKeyUsageException",
        format!(
            "{arn} key usage is {} (key spec {}): {op} needs a symmetric encryption key",
            kind.usage, kind.spec
        ),
    ))
}

/// Resolves, authorizes (with the encryption context's condition keys) and checks the state
/// of the key a cryptographic operation names; returns its id and its material's id.
fn prepare(
    s: &State,
    caller: &str,
    op: Op,
    region: &str,
    key: &str,
    context: &EncryptionContext,
) -> KmsResult<(String, String)> {
    prepare_as(s, caller, op, None, region, key, context)
}

/// [`prepare`], authorized as `action` where that is not the operation's own (ReEncrypt).
fn prepare_as(
    s: &State,
    caller: &str,
    op: Op,
    action: Option<&'static str>,
    region: &str,
    key: &str,
    context: &EncryptionContext,
) -> KmsResult<(String, String)> {
    let id = s.resolve(op, region, key)?;
    s.authorize_key(caller, op, region, &id, |mut c| {
        if let Some(a) = action {
            c = c.as_action(a);
        }
        c = c.with("kms:EncryptionAlgorithm", "SYMMETRIC_DEFAULT");
        for (k, v) in context {
            c = c.with(&format!("kms:EncryptionContext:{k}"), v.clone());
        }
        c.with_all("kms:EncryptionContextKeys", context.keys().cloned())
    })?;
    usable(s, op, region, &id)?;
    symmetric_encryption(s, op, region, &id)?;
    let multi = s.keys[&(region.to_string(), id.clone())]
        .multi_region
        .is_some();
    let material = material_id(region, &id, multi);
    Ok((id, material))
}

/// Records a success as the key's last use, with a CloudTrail-shaped event id.
fn record(s: &mut State, op: Op, region: &str, id: &str) {
    let n = s.next_n();
    s.crypto.record_use(
        region,
        id,
        LastUse {
            operation: op.name().to_string(),
            at_ms: now_ms(),
            cloudtrail_event_id: Some(format!("{n:08x}-3333-4000-8000-{n:012x}")),
        },
    );
}

pub(crate) fn encrypt(
    s: &mut State,
    caller: &str,
    region: &str,
    key: &str,
    plaintext: &[u8],
    context: &EncryptionContext,
) -> KmsResult<Sealed> {
    const OP: Op = Op::Encrypt;
    if plaintext.is_empty() || plaintext.len() > 4096 {
        return Err(err(
            ErrorKind::Other,
            OP,
            region,
            "ValidationException",
            "Plaintext must be between 1 and 4096 bytes",
        ));
    }
    let (id, material) = prepare(s, caller, OP, region, key, context)?;
    let ciphertext = s.crypto.seal(&material, &id, context, plaintext);
    record(s, OP, region, &id);
    Ok(Sealed {
        key_arn: s.arn(region, &id),
        ciphertext,
    })
}

/// Decrypt: the key is the one the ciphertext names; `key`, when given, must be that key.
pub(crate) fn decrypt(
    s: &mut State,
    caller: &str,
    region: &str,
    key: Option<&str>,
    ciphertext: &[u8],
    context: &EncryptionContext,
) -> KmsResult<Opened> {
    const OP: Op = Op::Decrypt;
    let invalid = || {
        err(
            ErrorKind::Other,
            OP,
            region,
            "InvalidCiphertextException",
            "The ciphertext is not valid for this key, Region or encryption context",
        )
    };
    let named = key_id_of(ciphertext).ok_or_else(invalid)?.to_string();
    if !s.keys.contains_key(&(region.to_string(), named.clone())) {
        return Err(invalid());
    }
    if let Some(k) = key {
        let asked = s.resolve(OP, region, k)?;
        if asked != named {
            return Err(err(
                ErrorKind::Other,
                OP,
                region,
                "IncorrectKeyException",
                "The key ID in the request does not identify a KMS key that can perform this \
                 operation.",
            ));
        }
    }
    let (id, material) = prepare(s, caller, OP, region, &named, context)?;
    let plaintext = s
        .crypto
        .open(&material, ciphertext, context)
        .ok_or_else(invalid)?;
    record(s, OP, region, &id);
    Ok(Opened {
        key_arn: s.arn(region, &id),
        plaintext,
    })
}

/// What ReEncrypt is asked: the ciphertext and its context (and, optionally, the key that
/// must have made it), the destination key and its context.
pub struct ReEncryptRequest<'a> {
    pub ciphertext: &'a [u8],
    pub source_key: Option<&'a str>,
    pub source_context: &'a EncryptionContext,
    pub destination_key: &'a str,
    pub destination_context: &'a EncryptionContext,
}

/// ReEncrypt: opens the ciphertext under the key it names (authorized as
/// `kms:ReEncryptFrom` there) and seals the plaintext under the destination key (as
/// `kms:ReEncryptTo`), without the plaintext leaving KMS. Each key records the use. Returns
/// the new ciphertext and the source key's ARN.
pub(crate) fn re_encrypt(
    s: &mut State,
    caller: &str,
    region: &str,
    req: &ReEncryptRequest,
) -> KmsResult<(Sealed, String)> {
    const OP: Op = Op::ReEncrypt;
    let invalid = || {
        err(
            ErrorKind::Other,
            OP,
            region,
            "InvalidCiphertextException",
            "The ciphertext is not valid for this key, Region or encryption context",
        )
    };
    let named = key_id_of(req.ciphertext).ok_or_else(invalid)?.to_string();
    if !s.keys.contains_key(&(region.to_string(), named.clone())) {
        return Err(invalid());
    }
    if let Some(k) = req.source_key {
        if s.resolve(OP, region, k)? != named {
            return Err(err(
                ErrorKind::Other,
                OP,
                region,
                "IncorrectKeyException",
                "The key ID in the request does not identify a KMS key that can perform this \
                 operation.",
            ));
        }
    }
    let from = Some("kms:ReEncryptFrom");
    let (source, material) = prepare_as(s, caller, OP, from, region, &named, req.source_context)?;
    let to = Some("kms:ReEncryptTo");
    let dest_key = req.destination_key;
    let (dest, dest_material) =
        prepare_as(s, caller, OP, to, region, dest_key, req.destination_context)?;
    let plaintext = s
        .crypto
        .open(&material, req.ciphertext, req.source_context)
        .ok_or_else(invalid)?;
    let ciphertext = s
        .crypto
        .seal(&dest_material, &dest, req.destination_context, &plaintext);
    record(s, OP, region, &source);
    record(s, OP, region, &dest);
    let sealed = Sealed {
        key_arn: s.arn(region, &dest),
        ciphertext,
    };
    Ok((sealed, s.arn(region, &source)))
}

/// GenerateDataKey (with the plaintext) or GenerateDataKeyWithoutPlaintext: `bytes` random
/// bytes and their ciphertext under the key.
pub(crate) fn generate_data_key(
    s: &mut State,
    caller: &str,
    region: &str,
    key: &str,
    bytes: usize,
    context: &EncryptionContext,
    with_plaintext: bool,
) -> KmsResult<(Sealed, Option<Vec<u8>>)> {
    let op = if with_plaintext {
        Op::GenerateDataKey
    } else {
        Op::GenerateDataKeyWithoutPlaintext
    };
    if !(1..=1024).contains(&bytes) {
        return Err(err(
            ErrorKind::Other,
            op,
            region,
            "ValidationException",
            "NumberOfBytes must be between 1 and 1024",
        ));
    }
    let (id, material) = prepare(s, caller, op, region, key, context)?;
    let plaintext = random(bytes);
    let ciphertext = s.crypto.seal(&material, &id, context, &plaintext);
    record(s, op, region, &id);
    let sealed = Sealed {
        key_arn: s.arn(region, &id),
        ciphertext,
    };
    Ok((sealed, with_plaintext.then_some(plaintext)))
}

/// GetKeyLastUsage: a key id or key ARN (KMS does not accept alias names here), in any key
/// state.
pub(crate) fn get_key_last_usage(
    s: &State,
    caller: &str,
    region: &str,
    key: &str,
) -> KmsResult<KeyUsage> {
    const OP: Op = Op::GetKeyLastUsage;
    if key.starts_with("alias/") || key.contains(":alias/") {
        return Err(err(
            ErrorKind::NotFound,
            OP,
            region,
            "NotFoundException",
            format!("Invalid keyId {key}: GetKeyLastUsage takes a key ID or key ARN"),
        ));
    }
    let id = s.resolve(OP, region, key)?;
    s.authorize_key(caller, OP, region, &id, |c| c)?;
    let created = s.keys[&(region.to_string(), id.clone())].created_ms;
    Ok(s.crypto.usage(region, &id, created))
}

/// What the MAC, signing and GetPublicKey operations share: the key resolved, authorized
/// (with `condition`'s key and value in the request context), usable, and of `usage`, which
/// anything else is InvalidKeyUsageException; its id, material and key spec.
fn prepare_kind(
    s: &State,
    caller: &str,
    op: Op,
    region: &str,
    key: &str,
    usage: &[&str],
    condition: Option<(&str, &str)>,
) -> KmsResult<(String, String, String)> {
    let id = s.resolve(op, region, key)?;
    s.authorize_key(caller, op, region, &id, |c| match condition {
        Some((k, v)) => c.with(k, v),
        None => c,
    })?;
    usable(s, op, region, &id)?;
    let k = &s.keys[&(region.to_string(), id.clone())];
    if !usage.contains(&k.kind.usage.as_str()) {
        return Err(err(
            ErrorKind::Other,
            op,
            region,
            "InvalidKeyUsageException",
            format!(
                "{} key usage is {} (key spec {}): {op} needs {}",
                s.arn(region, &id),
                k.kind.usage,
                k.kind.spec,
                usage.join(" or ")
            ),
        ));
    }
    let material = material_id(region, &id, k.multi_region.is_some());
    Ok((id, material, k.kind.spec.clone()))
}

/// The message of a MAC or signing operation: 1 to 4096 bytes.
fn message_size(op: Op, region: &str, message: &[u8]) -> KmsResult<()> {
    if message.is_empty() || message.len() > 4096 {
        return Err(err(
            ErrorKind::Other,
            op,
            region,
            "ValidationException",
            "Message must be between 1 and 4096 bytes",
        ));
    }
    Ok(())
}

/// An algorithm the key's spec does not have: InvalidKeyUsageException, as in KMS.
fn wrong_algorithm(op: Op, region: &str, spec: &str, algorithm: &str) -> KmsError {
    err(
        ErrorKind::Other,
        op,
        region,
        "InvalidKeyUsageException",
        format!("{algorithm} is not an algorithm of key spec {spec}"),
    )
}

/// GenerateMac with an HMAC key; VerifyMac (`mac` given) answers Ok only for a valid MAC,
/// otherwise KMSInvalidMacException. Returns the key's ARN and the MAC.
pub(crate) fn mac(
    s: &mut State,
    caller: &str,
    region: &str,
    key: &str,
    message: &[u8],
    algorithm: &str,
    mac: Option<&[u8]>,
) -> KmsResult<(String, Vec<u8>)> {
    let op = if mac.is_some() {
        Op::VerifyMac
    } else {
        Op::GenerateMac
    };
    message_size(op, region, message)?;
    let usage = ["GENERATE_VERIFY_MAC"];
    let condition = Some(("kms:MacAlgorithm", algorithm));
    let (id, material, spec) = prepare_kind(s, caller, op, region, key, &usage, condition)?;
    if !signing::macs_with(&spec, algorithm) {
        return Err(wrong_algorithm(op, region, &spec, algorithm));
    }
    let out = match mac {
        None => s.crypto.secrets.mac(&material, &spec, message),
        Some(m) if s.crypto.secrets.verify_mac(&material, &spec, message, m) => m.to_vec(),
        Some(_) => {
            return Err(err(
                ErrorKind::Other,
                op,
                region,
                "KMSInvalidMacException",
                "The MAC is not valid for this message, key and algorithm",
            ))
        }
    };
    record(s, op, region, &id);
    Ok((s.arn(region, &id), out))
}

/// Sign with an asymmetric SIGN_VERIFY key; Verify (`signature` given) answers Ok only for a
/// valid signature, otherwise KMSInvalidSignatureException. `MessageType` RAW only: the twin
/// does not implement DIGEST. Returns the key's ARN and the signature.
pub(crate) fn sign(
    s: &mut State,
    caller: &str,
    region: &str,
    key: &str,
    message: &[u8],
    algorithm: &str,
    signature: Option<&[u8]>,
) -> KmsResult<(String, Vec<u8>)> {
    let op = if signature.is_some() {
        Op::Verify
    } else {
        Op::Sign
    };
    message_size(op, region, message)?;
    let usage = ["SIGN_VERIFY"];
    let condition = Some(("kms:SigningAlgorithm", algorithm));
    let (id, material, spec) = prepare_kind(s, caller, op, region, key, &usage, condition)?;
    if !signing::signs_with(&spec, algorithm) {
        return Err(wrong_algorithm(op, region, &spec, algorithm));
    }
    let secrets = &mut s.crypto.secrets;
    let out = match signature {
        None => secrets.sign(&material, &spec, algorithm, message),
        Some(sig) if secrets.verify(&material, &spec, algorithm, message, sig) => sig.to_vec(),
        Some(_) => {
            return Err(err(
                ErrorKind::Other,
                op,
                region,
                "KMSInvalidSignatureException",
                "The signature is not valid for this message, key and algorithm",
            ))
        }
    };
    record(s, op, region, &id);
    Ok((s.arn(region, &id), out))
}

/// GetPublicKey of an asymmetric key: its ARN, DER SubjectPublicKeyInfo and kind. Not a use
/// (KMS does not count it in GetKeyLastUsage).
pub(crate) fn get_public_key(
    s: &mut State,
    caller: &str,
    region: &str,
    key: &str,
) -> KmsResult<(String, Vec<u8>, KeyKind)> {
    const OP: Op = Op::GetPublicKey;
    let usage = ["SIGN_VERIFY", "ENCRYPT_DECRYPT", "KEY_AGREEMENT"];
    let (id, material, spec) = prepare_kind(s, caller, OP, region, key, &usage, None)?;
    let kind = s.keys[&(region.to_string(), id.clone())].kind.clone();
    if kind.is_symmetric_encryption() {
        return Err(err(
            ErrorKind::UnsupportedOperation,
            OP,
            region,
            "UnsupportedOperationException",
            format!(
                "{} is a symmetric key: it has no public key",
                s.arn(region, &id)
            ),
        ));
    }
    if kind.usage != "SIGN_VERIFY" {
        return Err(err(
            ErrorKind::UnsupportedOperation,
            OP,
            region,
            "UnsupportedOperationException",
            format!(
                "the twin does not implement GetPublicKey for key usage {}",
                kind.usage
            ),
        ));
    }
    let public_key = s.crypto.secrets.public_key(&material, &spec);
    Ok((s.arn(region, &id), public_key, kind))
}
