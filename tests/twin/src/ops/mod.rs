//! The twin as the replicator's ports ([`Kms`], [`TagIndex`], [`AuditSink`]). Every call
//! takes the request path ([`Twin::enter`]) first and is then served, with the state locked,
//! by its operation's function in the file of its group.

mod aliases;
mod crypto;
mod index;
mod keys;
mod lifecycle;
mod replication;
mod tags;

pub(crate) use aliases::delete_alias;
pub use crypto::{Opened, Sealed};
pub(crate) use keys::{create_key, NewKey};
pub(crate) use lifecycle::disable_key;

use crate::crypto::EncryptionContext;
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

    /// GetKeyLastUsage.
    pub async fn key_last_usage(&self, region: &str, key: &str) -> KmsResult<KeyUsage> {
        self.enter(region, Op::GetKeyLastUsage).await?;
        crypto::get_key_last_usage(&self.lock(), &self.caller, region, key)
    }
}

impl Twin {
    /// The key ids of a Region as the Resource Groups Tagging API's `GetResources` sees them,
    /// for the HTTP server's GetResources (any tag filters): recorded, stalled and failed as
    /// the operation `GetResources`, like [`TagIndex::tagged_keys`].
    pub async fn tag_index_key_ids(&self, region: &str) -> KmsResult<Vec<String>> {
        self.enter(region, Op::GetResources).await?;
        index::key_ids(&self.lock(), &self.caller, region)
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
