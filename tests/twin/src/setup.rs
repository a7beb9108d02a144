//! What tests and people do to the twin outside the replicator's port: create keys, change a
//! key's state, disable a key or delete an alias as a person would, purge a replica, and set
//! how long the transient states last.

use crate::kinds::KeyKind;
use crate::ops;
use crate::state::Twin;
use kms_replicator::model::{KeyInfo, KeyState, Tag};
use kms_replicator::op::Op;
use kms_replicator::port::KmsResult;
use std::time::Duration;

impl Twin {
    /// How long a new replica stays `Creating`.
    pub fn set_creating_for(&self, d: Duration) {
        self.lock().creating_for = d;
    }

    /// How long both keys stay `Updating` after UpdatePrimaryRegion.
    pub fn set_updating_for(&self, d: Duration) {
        self.lock().updating_for = d;
    }

    /// Creates a key as `CreateKey` would (authorized, recorded in the trail), bypassing faults
    /// and limits. `tags` are passed in the request as at CreateKey.
    pub fn try_create_key(
        &self,
        region: &str,
        multi_region: bool,
        policy: Option<&str>,
        description: &str,
        tags: &[Tag],
    ) -> KmsResult<KeyInfo> {
        let kind = KeyKind::default();
        self.try_create_key_of(region, &kind, multi_region, policy, description, tags)
    }

    /// [`Twin::try_create_key`] for a key of any kind KMS's CreateKey takes (an HMAC or
    /// asymmetric key, say), validated as KMS validates KeySpec, KeyUsage and Origin.
    pub fn try_create_key_of(
        &self,
        region: &str,
        kind: &KeyKind,
        multi_region: bool,
        policy: Option<&str>,
        description: &str,
        tags: &[Tag],
    ) -> KmsResult<KeyInfo> {
        let new = ops::NewKey {
            multi_region,
            policy,
            description,
            tags,
            kind,
        };
        ops::create_key(&mut self.lock(), &self.caller, region, &new)
    }

    /// [`Twin::try_create_key`] for a test's setup, where a refusal is the test's own mistake.
    pub fn create_key(
        &self,
        region: &str,
        multi_region: bool,
        policy: Option<&str>,
        description: &str,
        tags: &[Tag],
    ) -> KeyInfo {
        self.try_create_key(region, multi_region, policy, description, tags)
            .unwrap_or_else(|e| panic!("CreateKey as {}: {e}", self.caller))
    }

    /// Changes a key's state directly (a person disabling a key, say). Not recorded.
    pub fn set_state(&self, region: &str, key_id: &str, state: KeyState) {
        if let Some(k) = self
            .lock()
            .keys
            .get_mut(&(region.to_string(), key_id.to_string()))
        {
            k.state = state;
            k.settles = None;
        }
    }

    /// Sets the `CurrentKeyMaterialId` a key shows, as KMS shows it on a replica whose
    /// imported material differs from its primary's while a rotation of imported material
    /// waits for an import there (the twin does not model that rotation). Not recorded.
    pub fn set_current_key_material_id(&self, region: &str, key_id: &str, id: &str) {
        if let Some(k) = self
            .lock()
            .keys
            .get_mut(&(region.to_string(), key_id.to_string()))
        {
            k.current_material = Some(id.to_string());
        }
    }

    /// DeleteAlias, as a person makes it: the replicator itself never deletes an alias, so
    /// this is not part of its port.
    pub async fn delete_alias(&self, region: &str, alias: &str) -> KmsResult<()> {
        self.enter(region, Op::DeleteAlias).await?;
        ops::delete_alias(&mut self.lock(), &self.caller, region, alias)
    }

    /// DisableKey as this handle's caller makes it (a person, in incident response): the key
    /// is `Disabled` and the call is recorded in the trail. Faults and limits do not apply.
    pub fn disable_key(&self, region: &str, key_id: &str) -> KmsResult<()> {
        ops::disable_key(&mut self.lock(), &self.caller, region, key_id)
    }

    /// From now on KMS says it has recorded cryptographic use since `ms` (milliseconds since
    /// the epoch): GetKeyLastUsage's TrackingStartDate is this or the key's creation,
    /// whichever is later.
    pub fn set_tracking_start(&self, ms: u64) {
        self.lock().crypto.tracking_start_ms = ms;
    }

    /// Records a use of a key in a Region as KMS would have at `at_ms` (an application's
    /// Decrypt weeks ago, say). Not authorized, not counted.
    pub fn record_use(
        &self,
        region: &str,
        key_id: &str,
        operation: Op,
        at_ms: u64,
        event_id: &str,
    ) {
        self.lock().crypto.record_use(
            region,
            key_id,
            kms_replicator::usage::LastUse {
                operation: operation.name().to_string(),
                at_ms,
                cloudtrail_event_id: Some(event_id.to_string()),
            },
        );
    }

    /// Sets a key's CreationDate (milliseconds since the epoch), to make it older.
    pub fn set_creation_date(&self, region: &str, key_id: &str, ms: u64) {
        if let Some(k) = self
            .lock()
            .keys
            .get_mut(&(region.to_string(), key_id.to_string()))
        {
            k.created_ms = ms;
        }
    }

    /// Removes a replica outright, as if its deletion window had passed.
    pub fn purge_key(&self, region: &str, key_id: &str) {
        let mut s = self.lock();
        s.keys.remove(&(region.to_string(), key_id.to_string()));
        s.aliases.remove_key(region, key_id);
    }
}
