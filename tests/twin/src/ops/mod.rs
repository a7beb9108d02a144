//! The twin as the replicator's ports ([`Kms`], [`TagIndex`], [`AuditSink`]). Every call
//! takes the request path ([`Twin::enter`]) first and is then served, with the state locked,
//! by its operation's function in the file of its group.

mod aliases;
mod crypto;
mod import;
mod index;
mod keys;
mod lifecycle;
mod replication;
mod tags;

pub(crate) use aliases::delete_alias;
pub use crypto::{Opened, ReEncryptRequest, Sealed};
pub use import::{Expiration, ImportParameters};
pub(crate) use keys::{create_key, NewKey};
pub(crate) use lifecycle::disable_key;

use crate::crypto::EncryptionContext;
use crate::kinds::KeyKind;
use crate::state::Twin;
use async_trait::async_trait;
use kms_replicator::model::{AliasEntry, KeyInfo, Tag};
use kms_replicator::op::Op;
use kms_replicator::port::{
    AuditError, AuditEvent, AuditSink, Kms, KmsResult, ReplicaSpec, TagIndex, TaggedKey,
};
use kms_replicator::usage::KeyUsage;

#[async_trait]
impl Kms for Twin {
    async fn describe_key(&self, region: &str, key: &str) -> KmsResult<KeyInfo> {
        self.enter(region, Op::DescribeKey).await?;
        keys::describe_key(&self.lock(), &self.caller, region, key)
    }

    async fn get_key_last_usage(&self, region: &str, key_id: &str) -> KmsResult<KeyUsage> {
        self.key_last_usage(region, key_id).await
    }

    async fn get_key_policy(&self, region: &str, key_id: &str) -> KmsResult<String> {
        self.enter(region, Op::GetKeyPolicy).await?;
        keys::get_key_policy(&self.lock(), &self.caller, region, key_id)
    }

    async fn list_resource_tags(&self, region: &str, key_id: &str) -> KmsResult<Vec<Tag>> {
        self.enter(region, Op::ListResourceTags).await?;
        tags::list_resource_tags(&self.lock(), &self.caller, region, key_id)
    }

    async fn list_aliases(&self, region: &str, key_id: Option<&str>) -> KmsResult<Vec<AliasEntry>> {
        self.enter(region, Op::ListAliases).await?;
        aliases::list_aliases(&self.lock(), &self.caller, region, key_id)
    }

    async fn replicate_key(
        &self,
        primary_region: &str,
        key_id: &str,
        replica_region: &str,
        spec: &ReplicaSpec,
    ) -> KmsResult<KeyInfo> {
        self.enter(primary_region, Op::ReplicateKey).await?;
        let mut s = self.lock();
        replication::replicate_key(
            &mut s,
            &self.caller,
            primary_region,
            key_id,
            replica_region,
            spec,
        )
    }

    async fn put_key_policy(&self, region: &str, key_id: &str, policy: &str) -> KmsResult<()> {
        self.enter(region, Op::PutKeyPolicy).await?;
        keys::put_key_policy(&mut self.lock(), &self.caller, region, key_id, policy)
    }

    async fn create_alias(&self, region: &str, alias: &str, key_id: &str) -> KmsResult<()> {
        self.enter(region, Op::CreateAlias).await?;
        aliases::create_alias(&mut self.lock(), &self.caller, region, alias, key_id)
    }

    async fn update_alias(&self, region: &str, alias: &str, key_id: &str) -> KmsResult<()> {
        self.enter(region, Op::UpdateAlias).await?;
        aliases::update_alias(&mut self.lock(), &self.caller, region, alias, key_id)
    }

    async fn tag_resource(&self, region: &str, key_id: &str, tags: &[Tag]) -> KmsResult<()> {
        self.enter(region, Op::TagResource).await?;
        tags::tag_resource(&mut self.lock(), &self.caller, region, key_id, tags)
    }

    async fn untag_resource(&self, region: &str, key_id: &str, keys: &[String]) -> KmsResult<()> {
        self.enter(region, Op::UntagResource).await?;
        tags::untag_resource(&mut self.lock(), &self.caller, region, key_id, keys)
    }

    async fn update_key_description(
        &self,
        region: &str,
        key_id: &str,
        description: &str,
    ) -> KmsResult<()> {
        self.enter(region, Op::UpdateKeyDescription).await?;
        keys::update_key_description(&mut self.lock(), &self.caller, region, key_id, description)
    }

    async fn schedule_key_deletion(
        &self,
        region: &str,
        key_id: &str,
        pending_window_days: i32,
    ) -> KmsResult<()> {
        self.enter(region, Op::ScheduleKeyDeletion).await?;
        let mut s = self.lock();
        lifecycle::schedule_key_deletion(&mut s, &self.caller, region, key_id, pending_window_days)
    }

    async fn cancel_key_deletion(&self, region: &str, key_id: &str) -> KmsResult<()> {
        self.enter(region, Op::CancelKeyDeletion).await?;
        lifecycle::cancel_key_deletion(&mut self.lock(), &self.caller, region, key_id)
    }

    async fn enable_key(&self, region: &str, key_id: &str) -> KmsResult<()> {
        self.enter(region, Op::EnableKey).await?;
        lifecycle::enable_key(&mut self.lock(), &self.caller, region, key_id)
    }

    async fn list_keys(&self, region: &str) -> KmsResult<Vec<String>> {
        self.enter(region, Op::ListKeys).await?;
        keys::list_keys(&self.lock(), &self.caller, region)
    }

    async fn update_primary_region(
        &self,
        region: &str,
        key_id: &str,
        new_primary_region: &str,
    ) -> KmsResult<()> {
        self.enter(region, Op::UpdatePrimaryRegion).await?;
        let mut s = self.lock();
        replication::update_primary_region(&mut s, &self.caller, region, key_id, new_primary_region)
    }
}

/// The cryptographic operations and GetKeyLastUsage, as an application (or a person) calls
/// them; the replicator itself never encrypts or decrypts.
impl Twin {
    pub async fn encrypt(
        &self,
        region: &str,
        key: &str,
        plaintext: &[u8],
        context: &EncryptionContext,
    ) -> KmsResult<Sealed> {
        self.enter(region, Op::Encrypt).await?;
        crypto::encrypt(
            &mut self.lock(),
            &self.caller,
            region,
            key,
            plaintext,
            context,
        )
    }

    /// `key` is optional, as in KMS: the ciphertext names its key.
    pub async fn decrypt(
        &self,
        region: &str,
        key: Option<&str>,
        ciphertext: &[u8],
        context: &EncryptionContext,
    ) -> KmsResult<Opened> {
        self.enter(region, Op::Decrypt).await?;
        crypto::decrypt(
            &mut self.lock(),
            &self.caller,
            region,
            key,
            ciphertext,
            context,
        )
    }

    /// GenerateDataKey (`with_plaintext`) or GenerateDataKeyWithoutPlaintext.
    pub async fn generate_data_key(
        &self,
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
        self.enter(region, op).await?;
        let mut s = self.lock();
        crypto::generate_data_key(
            &mut s,
            &self.caller,
            region,
            key,
            bytes,
            context,
            with_plaintext,
        )
    }

    /// ReEncrypt: the ciphertext under the destination key, and the source key's ARN.
    pub async fn re_encrypt(
        &self,
        region: &str,
        req: &ReEncryptRequest<'_>,
    ) -> KmsResult<(Sealed, String)> {
        self.enter(region, Op::ReEncrypt).await?;
        crypto::re_encrypt(&mut self.lock(), &self.caller, region, req)
    }

    /// GenerateMac with an HMAC key: the key's ARN and the MAC.
    pub async fn generate_mac(
        &self,
        region: &str,
        key: &str,
        message: &[u8],
        algorithm: &str,
    ) -> KmsResult<(String, Vec<u8>)> {
        self.enter(region, Op::GenerateMac).await?;
        crypto::mac(
            &mut self.lock(),
            &self.caller,
            region,
            key,
            message,
            algorithm,
            None,
        )
    }

    /// VerifyMac: Ok (the key's ARN) for a valid MAC, KMSInvalidMacException otherwise.
    pub async fn verify_mac(
        &self,
        region: &str,
        key: &str,
        message: &[u8],
        algorithm: &str,
        mac: &[u8],
    ) -> KmsResult<String> {
        self.enter(region, Op::VerifyMac).await?;
        let mut s = self.lock();
        crypto::mac(
            &mut s,
            &self.caller,
            region,
            key,
            message,
            algorithm,
            Some(mac),
        )
        .map(|r| r.0)
    }

    /// Sign a raw message with an asymmetric SIGN_VERIFY key: the key's ARN and the signature.
    pub async fn sign(
        &self,
        region: &str,
        key: &str,
        message: &[u8],
        algorithm: &str,
    ) -> KmsResult<(String, Vec<u8>)> {
        self.enter(region, Op::Sign).await?;
        crypto::sign(
            &mut self.lock(),
            &self.caller,
            region,
            key,
            message,
            algorithm,
            None,
        )
    }

    /// Verify: Ok (the key's ARN) for a valid signature, KMSInvalidSignatureException otherwise.
    pub async fn verify(
        &self,
        region: &str,
        key: &str,
        message: &[u8],
        algorithm: &str,
        signature: &[u8],
    ) -> KmsResult<String> {
        self.enter(region, Op::Verify).await?;
        let mut s = self.lock();
        crypto::sign(
            &mut s,
            &self.caller,
            region,
            key,
            message,
            algorithm,
            Some(signature),
        )
        .map(|r| r.0)
    }

    /// GetPublicKey of an asymmetric signing key: its ARN, DER SubjectPublicKeyInfo and kind.
    pub async fn get_public_key(
        &self,
        region: &str,
        key: &str,
    ) -> KmsResult<(String, Vec<u8>, KeyKind)> {
        self.enter(region, Op::GetPublicKey).await?;
        crypto::get_public_key(&mut self.lock(), &self.caller, region, key)
    }

    /// GetParametersForImport: a wrapping key and an import token for a key of origin
    /// `EXTERNAL`.
    pub async fn get_parameters_for_import(
        &self,
        region: &str,
        key: &str,
        algorithm: &str,
        wrapping_key_spec: &str,
    ) -> KmsResult<ImportParameters> {
        self.enter(region, Op::GetParametersForImport).await?;
        import::get_parameters_for_import(
            &mut self.lock(),
            &self.caller,
            region,
            key,
            algorithm,
            wrapping_key_spec,
        )
    }

    /// ImportKeyMaterial: `wrapped` under the public key that came with `token`.
    pub async fn import_key_material(
        &self,
        region: &str,
        key: &str,
        token: &[u8],
        wrapped: &[u8],
        expiration: Expiration,
    ) -> KmsResult<()> {
        self.enter(region, Op::ImportKeyMaterial).await?;
        import::import_key_material(
            &mut self.lock(),
            &self.caller,
            region,
            key,
            token,
            wrapped,
            expiration,
        )
    }

    /// What a person does in one Region: GetParametersForImport (RSAES_OAEP_SHA_256,
    /// RSA_2048), wraps `material` under its public key, and ImportKeyMaterial (no expiry).
    pub async fn import_material(&self, region: &str, key: &str, material: &[u8]) -> KmsResult<()> {
        const ALG: &str = "RSAES_OAEP_SHA_256";
        let p = self
            .get_parameters_for_import(region, key, ALG, "RSA_2048")
            .await?;
        let wrapped = crate::crypto::wrap_for_import(&p.public_key, ALG, material)
            .expect("the twin's own public key wraps 32 bytes");
        self.import_key_material(
            region,
            key,
            &p.import_token,
            &wrapped,
            Expiration::DoesNotExpire,
        )
        .await
    }

    /// GetKeyLastUsage.
    pub async fn key_last_usage(&self, region: &str, key: &str) -> KmsResult<KeyUsage> {
        self.enter(region, Op::GetKeyLastUsage).await?;
        crypto::get_key_last_usage(&self.lock(), &self.caller, region, key)
    }
}

impl Twin {
    /// The keys of a Region as the Resource Groups Tagging API's `GetResources` sees them,
    /// each key id with its tags, for the HTTP server's GetResources (any tag filters):
    /// recorded, stalled and failed as the operation `GetResources`, like
    /// [`TagIndex::tagged_keys`].
    pub async fn tag_index(
        &self,
        region: &str,
    ) -> KmsResult<Vec<(String, std::collections::BTreeMap<String, String>)>> {
        self.enter(region, Op::GetResources).await?;
        index::keys_with_tags(&self.lock(), &self.caller, region)
    }
}

/// The twin's Resource Groups Tagging API: GetResources for `kms:key` with one tag key.
#[async_trait]
impl TagIndex for Twin {
    async fn tagged_keys(&self, region: &str, tag_key: &str) -> KmsResult<Vec<TaggedKey>> {
        self.enter(region, Op::GetResources).await?;
        index::tagged_keys(&self.lock(), &self.caller, region, tag_key)
    }
}

/// The twin's EventBridge: PutEvents on the audit bus, recorded for inspection.
#[async_trait]
impl AuditSink for Twin {
    async fn publish(&self, events: &[AuditEvent]) -> Result<(), AuditError> {
        index::publish(&mut self.lock(), events)
    }
}
