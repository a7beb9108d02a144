//! An in-memory twin of KMS with its multi-Region semantics, behind the same [`Kms`](kms_replicator::port::Kms) port as
//! the AWS adapter. It follows AWS's documented behaviour (the KMS Developer Guide and the KMS API
//! Reference):
//!
//! - one key store per Region; a replica shares its primary's key id and material, while its
//!   policy, aliases, tags, description and enabled state are its own;
//! - ReplicateKey without a policy attaches the default key policy; new replicas are
//!   `Creating` for a while, then `Enabled`;
//! - AlreadyExistsException, UnsupportedOperationException for replicas and single-Region
//!   keys, alias names unique per Region, the deletion states, the lockout safety check;
//! - UpdatePrimaryRegion, called in the primary's Region: both keys `Updating` for a while
//!   (DescribeKey then shows both as replicas), the primary role moves, and each of the two
//!   Regions logs its own record;
//! - every accepted write is recorded as the CloudTrail record AWS would log, wrapped as the
//!   EventBridge event a rule would receive (ReplicateKey in the primary's Region and CreateKey
//!   in the replica's Region);
//! - the cryptographic operations with real cryptography: related keys share their material
//!   (a replica decrypts, verifies and MACs as its primary does), imported material (origin
//!   `EXTERNAL`) is never copied, so each replica of such a key is `PendingImport` until the
//!   same material is imported there; each success is the key's last use;
//! - KMS's authorization: identity policies from `template.yaml` and key policies;
//! - injectable latency, one-shot faults, per-operation rate limits and whole-Region outages.
//!
//! Clones share one state; [`Twin::with_caller`] gives a handle that acts as another identity.
//!
//! # Layout
//!
//! From the top down; each module imports only modules below it.
//!
//! - `setup.rs`: what tests and people do outside the port: `create_key`, `disable_key`,
//!   `delete_alias`, `purge_key`, `set_state`, and how long transient states last;
//!   `access.rs`: who the twin lets do what (the deployment its roles come from, extra
//!   principals, authorization off).
//! - `inspect.rs`: what tests read back: the call log, the trail, the audit events, a key.
//! - `ops/`: the twin as the replicator's ports ([`Kms`](kms_replicator::port::Kms),
//!   [`TagIndex`](kms_replicator::port::TagIndex), [`AuditSink`](kms_replicator::port::AuditSink))
//!   and as an application calls KMS. `ops/mod.rs` sends every call through the request
//!   path, then serves it with the function of its operation, one file per group: `keys.rs`
//!   (CreateKey, DescribeKey, ListKeys, GetKeyPolicy, PutKeyPolicy, UpdateKeyDescription),
//!   `aliases.rs`, `tags.rs`, `replication.rs` (ReplicateKey, UpdatePrimaryRegion),
//!   `import.rs` (GetParametersForImport, ImportKeyMaterial), `lifecycle.rs` (EnableKey,
//!   DisableKey, ScheduleKeyDeletion, CancelKeyDeletion), `crypto.rs` (Encrypt, Decrypt,
//!   ReEncrypt, the data keys, the MAC and signing operations, GetPublicKey,
//!   GetKeyLastUsage) and `index.rs` (GetResources, the audit sink). An operation is a
//!   function of the state and the caller; a new one is a function in its group's file (or a
//!   new group's) and one method in `ops/mod.rs`.
//! - `request.rs`: the one path every request takes before it is served: latency, outages,
//!   stalls, injected faults, rate limits, the call log.
//! - `faults.rs`: the knobs that make calls fail or wait (faults, stalls, outages, rate
//!   limits, latency, the audit bus), and how a call meets them.
//! - `auth/`: KMS's authorization for every check an operation makes (identity policies
//!   from `template.yaml`, key policies, the request context); `policy.rs`: the default key
//!   policy, the example primary policy, the lockout safety check.
//! - `state.rs`: the [`Twin`] handle and the state it shares: keys per Region ([`TwinKey`]),
//!   aliases (by name and by key), what was recorded; the lookups every operation makes
//!   (resolve a key reference, a key's copies in the other Regions,
//!   its `KeyMetadata`, the key-state rule of the management calls).
//! - `kinds.rs`: key spec, usage and origin as CreateKey validates them; `crypto.rs`: key
//!   material, AES-256-GCM, import tokens and each key's last use; `signing.rs`: the secrets
//!   of HMAC and asymmetric keys, and the MACs and signatures over them.
//! - `trail.rs`: the CloudTrail record of each accepted write, as EventBridge delivers it.

mod access;
pub mod auth;
mod crypto;
mod faults;
mod inspect;
mod kinds;
mod ops;
mod policy;
mod request;
mod setup;
mod signing;
mod state;
mod trail;

pub use auth::{
    is_replicator, Authorization, Undocumented, ADMIN_USER, FAILOVER_ROLE, FUNCTION_ROLES,
    OPERATOR_ROLE, RECONCILE_ROLE, REPLICATE_ROLE, TAGGER_ROLE, TEAM_B_ROLE,
};
pub use crypto::{wrap_for_import, EncryptionContext};
pub use kinds::KeyKind;
pub use ops::{Expiration, ImportParameters, Opened, ReEncryptRequest, Sealed};
pub use policy::example_primary_policy;
pub use state::{default_deployment, Call, Twin, TwinKey, DEFAULT_ACCOUNT};

#[cfg(test)]
mod tests;
