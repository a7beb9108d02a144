//! Key material and the cryptography over it, and each key's last use.
//!
//! Related multi-Region keys share one key id and one material, so a replica decrypts what
//! its primary encrypted and the reverse; a single-Region key's material is its own, even
//! if another Region held a key with the same id. Ciphertext is AES-256-GCM (`ring`) with a
//! header that names the key id, as KMS's ciphertext blob does, so Decrypt needs no KeyId;
//! the key id and the encryption context are bound as additional authenticated data.
//!
//! A key with imported material (origin `EXTERNAL`) has none until ImportKeyMaterial brings
//! it, wrapped under an RSA public key of GetParametersForImport (RSAES-OAEP, `aws-lc-rs`).
//! Related multi-Region keys share one material here too: the first import sets it, and an
//! import of any other material into a related key is refused, as KMS refuses it.

use aws_lc_rs::rsa::{OaepPrivateDecryptingKey, PrivateDecryptingKey};
use kms_replicator::usage::{KeyUsage, LastUse};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use std::collections::{BTreeMap, HashMap};

/// An encryption context: non-secret pairs bound to a ciphertext.
pub type EncryptionContext = BTreeMap<String, String>;

/// What the twin's KMS keeps for cryptography: material per key, last use per key and
/// Region, and since when it records use.
#[derive(Debug, Default)]
pub(crate) struct Store {
    materials: HashMap<String, [u8; 32]>,
    last_use: HashMap<(String, String), LastUse>,
    /// Since when KMS records use (milliseconds since the epoch); 0: since every key's creation.
    pub(crate) tracking_start_ms: u64,
    /// The import tokens GetParametersForImport handed out, by token.
    pub(crate) tokens: HashMap<Vec<u8>, Wrapping>,
    /// The secrets of HMAC and asymmetric keys (`signing.rs`).
    pub(crate) secrets: crate::signing::Secrets,
}

/// What an import token stands for: the key it was issued for and the private half of the
/// wrapping key whose public half went out with it.
#[derive(Debug)]
pub(crate) struct Wrapping {
    pub(crate) region: String,
    pub(crate) key_id: String,
    pub(crate) private: PrivateDecryptingKey,
    /// RSAES_OAEP_SHA_1 or RSAES_OAEP_SHA_256.
    pub(crate) algorithm: String,
    pub(crate) valid_to_ms: u64,
}

impl Wrapping {
    /// The key material this wrapping key unwraps from `wrapped`, if it does.
    pub(crate) fn unwrap_material(&self, wrapped: &[u8]) -> Option<Vec<u8>> {
        let oaep = match self.algorithm.as_str() {
            "RSAES_OAEP_SHA_1" => &aws_lc_rs::rsa::OAEP_SHA1_MGF1SHA1,
            _ => &aws_lc_rs::rsa::OAEP_SHA256_MGF1SHA256,
        };
        let key = OaepPrivateDecryptingKey::new(self.private.clone()).ok()?;
        let mut out = vec![0u8; key.min_output_size()];
        let plain = key.decrypt(oaep, wrapped, &mut out, None).ok()?;
        Some(plain.to_vec())
    }
}

/// What a person does with GetParametersForImport's public key (`openssl pkeyutl -encrypt`
/// with OAEP): `material` wrapped for import under `public_key` (DER SubjectPublicKeyInfo)
/// with `algorithm` (RSAES_OAEP_SHA_1 or RSAES_OAEP_SHA_256).
pub fn wrap_for_import(public_key: &[u8], algorithm: &str, material: &[u8]) -> Option<Vec<u8>> {
    use aws_lc_rs::rsa::{OaepPublicEncryptingKey, PublicEncryptingKey};
    let oaep = match algorithm {
        "RSAES_OAEP_SHA_1" => &aws_lc_rs::rsa::OAEP_SHA1_MGF1SHA1,
        "RSAES_OAEP_SHA_256" => &aws_lc_rs::rsa::OAEP_SHA256_MGF1SHA256,
        _ => return None,
    };
    let key = OaepPublicEncryptingKey::new(PublicEncryptingKey::from_der(public_key).ok()?).ok()?;
    let mut out = vec![0u8; key.ciphertext_size()];
    Some(key.encrypt(oaep, material, &mut out, None).ok()?.to_vec())
}

const VERSION: u8 = 1;

/// Which material a key uses: one per multi-Region key id, one per single-Region key.
pub(crate) fn material_id(region: &str, key_id: &str, multi_region: bool) -> String {
    if multi_region {
        key_id.to_string()
    } else {
        format!("{region}/{key_id}")
    }
}

/// A key material id as `KeyMetadata` shows it: 64 hex digits (SHA-256 of `seed`).
pub(crate) fn material_digest(seed: &[u8]) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, seed)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `n` random bytes.
pub(crate) fn random(n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    SystemRandom::new()
        .fill(&mut out)
        .expect("the system's random source");
    out
}

fn aad(key_id: &str, context: &EncryptionContext) -> Vec<u8> {
    let mut out = key_id.as_bytes().to_vec();
    out.push(0);
    out.extend(serde_json::to_vec(context).unwrap_or_default());
    out
}

/// The key id a ciphertext blob names, if it is one of the twin's.
pub(crate) fn key_id_of(blob: &[u8]) -> Option<&str> {
    let (&version, rest) = blob.split_first()?;
    let (&len, rest) = rest.split_first()?;
    if version != VERSION || rest.len() < len as usize + NONCE_LEN {
        return None;
    }
    std::str::from_utf8(&rest[..len as usize]).ok()
}

impl Store {
    fn key(&mut self, material: &str) -> LessSafeKey {
        let bytes = self
            .materials
            .entry(material.to_string())
            .or_insert_with(|| random(32).try_into().expect("32 bytes"));
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, bytes).expect("an AES-256 key"))
    }

    /// AES-256-GCM under `material`, the header naming `key_id`.
    pub(crate) fn seal(
        &mut self,
        material: &str,
        key_id: &str,
        context: &EncryptionContext,
        plaintext: &[u8],
    ) -> Vec<u8> {
        let key = self.key(material);
        let nonce: [u8; NONCE_LEN] = random(NONCE_LEN).try_into().expect("a nonce");
        let mut data = plaintext.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad(key_id, context)),
            &mut data,
        )
        .expect("sealing");
        let mut blob = vec![VERSION, key_id.len() as u8];
        blob.extend(key_id.as_bytes());
        blob.extend(nonce);
        blob.extend(data);
        blob
    }

    /// The plaintext, or `None` when the blob was not sealed under this material, key id and
    /// context.
    pub(crate) fn open(
        &mut self,
        material: &str,
        blob: &[u8],
        context: &EncryptionContext,
    ) -> Option<Vec<u8>> {
        let key_id = key_id_of(blob)?.to_string();
        let start = 2 + key_id.len();
        let nonce: [u8; NONCE_LEN] = blob[start..start + NONCE_LEN].try_into().ok()?;
        let mut data = blob[start + NONCE_LEN..].to_vec();
        let key = self.key(material);
        let plain = key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(&key_id, context)),
                &mut data,
            )
            .ok()?;
        Some(plain.to_vec())
    }

    /// Imported `bytes` as `material`: accepted when that material has none yet or the very
    /// same bytes; `false` for any other bytes (IncorrectKeyMaterialException).
    pub(crate) fn import(&mut self, material: &str, bytes: [u8; 32]) -> bool {
        match self.materials.get(material) {
            Some(held) => *held == bytes,
            None => {
                self.materials.insert(material.to_string(), bytes);
                true
            }
        }
    }

    pub(crate) fn record_use(&mut self, region: &str, key_id: &str, last: LastUse) {
        self.last_use
            .insert((region.to_string(), key_id.to_string()), last);
    }

    /// GetKeyLastUsage's answer for a key created at `created_ms`.
    pub(crate) fn usage(&self, region: &str, key_id: &str, created_ms: u64) -> KeyUsage {
        KeyUsage {
            last_use: self
                .last_use
                .get(&(region.to_string(), key_id.to_string()))
                .cloned(),
            tracking_start_ms: Some(self.tracking_start_ms.max(created_ms)),
            key_creation_ms: Some(created_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_opens_only_under_its_material_key_id_and_context() {
        let mut s = Store::default();
        let ctx: EncryptionContext = [("app".to_string(), "ledger".to_string())].into();
        let blob = s.seal("mrk-1", "mrk-1", &ctx, b"secret");
        assert_eq!(key_id_of(&blob), Some("mrk-1"));
        assert_eq!(
            s.open("mrk-1", &blob, &ctx).as_deref(),
            Some(&b"secret"[..])
        );
        assert_eq!(s.open("mrk-1", &blob, &EncryptionContext::new()), None);
        assert_eq!(s.open("us-east-1/mrk-1", &blob, &ctx), None);
        let mut tampered = blob.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(s.open("mrk-1", &tampered, &ctx), None);
        assert_eq!(key_id_of(b"not a blob"), None);
    }
}
