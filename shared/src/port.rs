//! The ports: how the domain talks to KMS and to the audit bus. The AWS adapters and the
//! in-memory twin both implement them.

use crate::model::{AliasEntry, KeyInfo, Tag};
use crate::op::Op;
use crate::usage::KeyUsage;
use async_trait::async_trait;
use serde::Serialize;
use thiserror::Error;

/// How a failed KMS call should be treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    NotFound,
    AlreadyExists,
    /// KMSInvalidStateException: the key's state does not allow the call (often transient).
    InvalidState,
    Disabled,
    UnsupportedOperation,
    /// MalformedPolicyDocumentException: includes the lockout safety check.
    MalformedPolicy,
    AccessDenied,
    Throttling,
    /// KMSInternalException and other 5xx answers.
    Internal,
    /// No answer: connection refused, timeout, DNS. The Region may be down.
    Unreachable,
    /// Anything else (validation, limits, tags...).
    Other,
}

impl ErrorKind {
    /// Classifies an AWS error code (and HTTP status, when known) the way the domain needs it.
    pub fn from_code(code: &str, status: Option<u16>) -> ErrorKind {
        match code {
            "NotFoundException" => ErrorKind::NotFound,
            "AlreadyExistsException" => ErrorKind::AlreadyExists,
            "KMSInvalidStateException" => ErrorKind::InvalidState,
            "DisabledException" => ErrorKind::Disabled,
            "UnsupportedOperationException" => ErrorKind::UnsupportedOperation,
            "MalformedPolicyDocumentException" => ErrorKind::MalformedPolicy,
            "AccessDeniedException" => ErrorKind::AccessDenied,
            "ThrottlingException"
            // The Resource Groups Tagging API's name for it.
            | "ThrottledException"
            | "Throttling"
            | "TooManyRequestsException"
            | "RequestLimitExceeded" => ErrorKind::Throttling,
            "KMSInternalException"
            | "InternalServiceException"
            | "DependencyTimeoutException"
            | "InternalFailure"
            | "ServiceUnavailable"
            | "InternalServerError" => ErrorKind::Internal,
            "DispatchFailure" | "TimeoutError" => ErrorKind::Unreachable,
            _ if status.is_some_and(|s| s >= 500) => ErrorKind::Internal,
            _ => ErrorKind::Other,
        }
    }
}

/// A KMS call that failed, with AWS's error code and message kept for the report.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("{operation} in {region}: {code}: {message}")]
pub struct KmsError {
    pub kind: ErrorKind,
    pub operation: Op,
    pub region: String,
    pub code: String,
    pub message: String,
}

impl KmsError {
    pub fn new(
        kind: ErrorKind,
        operation: Op,
        region: &str,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> KmsError {
        KmsError {
            kind,
            operation,
            region: region.to_string(),
            code: code.into(),
            message: message.into(),
        }
    }

    /// Worth retrying later: throttling, server faults, an unreachable Region, or a key in a
    /// transient state (Creating, Updating).
    pub fn is_retryable(&self) -> bool {
        match self.kind {
            ErrorKind::Throttling | ErrorKind::Internal | ErrorKind::Unreachable => true,
            ErrorKind::InvalidState => {
                let m = self.message.to_ascii_lowercase();
                m.contains("creating") || m.contains("updating")
            }
            _ => false,
        }
    }
}

pub type KmsResult<T> = Result<T, KmsError>;

/// What ReplicateKey sends besides the key and the target Region. Reports show it without
/// the policy, as they show PutKeyPolicy.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ReplicaSpec {
    /// `None` lets KMS attach its default key policy.
    #[serde(skip)]
    pub policy: Option<String>,
    pub description: String,
    pub tags: Vec<Tag>,
}

/// The KMS operations the replicator uses. Every method names the Region it is sent to:
/// KMS is Regional and so is everything about a key except its material.
#[async_trait]
pub trait Kms: Send + Sync {
    /// `key` is a key id, key ARN, alias name or alias ARN.
    async fn describe_key(&self, region: &str, key: &str) -> KmsResult<KeyInfo>;
    async fn get_key_policy(&self, region: &str, key_id: &str) -> KmsResult<String>;
    async fn list_resource_tags(&self, region: &str, key_id: &str) -> KmsResult<Vec<Tag>>;
    /// Aliases of one key, or of the whole Region when `key_id` is `None`.
    async fn list_aliases(&self, region: &str, key_id: Option<&str>) -> KmsResult<Vec<AliasEntry>>;
    /// Sent to the primary's Region. Returns the new replica's metadata.
    async fn replicate_key(
        &self,
        primary_region: &str,
        key_id: &str,
        replica_region: &str,
        spec: &ReplicaSpec,
    ) -> KmsResult<KeyInfo>;
    async fn put_key_policy(&self, region: &str, key_id: &str, policy: &str) -> KmsResult<()>;
    async fn create_alias(&self, region: &str, alias: &str, key_id: &str) -> KmsResult<()>;
    /// Moves an alias. The replicator never does (an alias another key holds is a conflict for
    /// a person, and its roles are not allowed kms:UpdateAlias), so its AWS adapter has none:
    /// only the twin, where the tests' people move aliases, implements it.
    async fn update_alias(&self, region: &str, alias: &str, key_id: &str) -> KmsResult<()> {
        let _ = (alias, key_id);
        Err(KmsError::new(
            ErrorKind::UnsupportedOperation,
            Op::UpdateAlias,
            region,
            "UnsupportedOperationException",
            "the replicator never moves an alias",
        ))
    }
    async fn tag_resource(&self, region: &str, key_id: &str, tags: &[Tag]) -> KmsResult<()>;
    async fn untag_resource(&self, region: &str, key_id: &str, keys: &[String]) -> KmsResult<()>;
    async fn update_key_description(
        &self,
        region: &str,
        key_id: &str,
        description: &str,
    ) -> KmsResult<()>;
    async fn schedule_key_deletion(
        &self,
        region: &str,
        key_id: &str,
        pending_window_days: i32,
    ) -> KmsResult<()>;
    async fn cancel_key_deletion(&self, region: &str, key_id: &str) -> KmsResult<()>;
    async fn enable_key(&self, region: &str, key_id: &str) -> KmsResult<()>;
    /// Ids of every key in a Region (all pages).
    async fn list_keys(&self, region: &str) -> KmsResult<Vec<String>>;
    /// GetKeyLastUsage: the key's last cryptographic use in this Region, and since when KMS
    /// records it. `key_id` is a key id or key ARN (KMS accepts no alias here).
    async fn get_key_last_usage(&self, region: &str, key_id: &str) -> KmsResult<KeyUsage>;
    /// Sent to the current primary's Region: makes the replica in `new_primary_region` the
    /// primary. Returns as soon as KMS accepts; both keys are then `Updating` for a while.
    async fn update_primary_region(
        &self,
        region: &str,
        key_id: &str,
        new_primary_region: &str,
    ) -> KmsResult<()>;
}

/// A key that carries a given tag, as the Resource Groups Tagging API lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaggedKey {
    /// The key's ARN in the Region that was asked.
    pub arn: String,
    /// The tag's value on that key.
    pub value: String,
}

/// The Resource Groups Tagging API (`tag:GetResources`): the keys of a Region that carry a tag,
/// in one paginated call rather than a ListResourceTags per key. Its index can lag behind
/// recent tag changes, and it lists replicas too, since they carry the tag as well.
#[async_trait]
pub trait TagIndex: Send + Sync {
    async fn tagged_keys(&self, region: &str, tag_key: &str) -> KmsResult<Vec<TaggedKey>>;

    /// [`tagged_keys`](Self::tagged_keys), handing each page to `page` as it arrives, so that
    /// a sweep can start on the first keys while the next pages are listed. By default one
    /// page: the whole answer.
    async fn tagged_keys_paged(
        &self,
        region: &str,
        tag_key: &str,
        page: &(dyn for<'k> Fn(&'k [TaggedKey]) + Send + Sync),
    ) -> KmsResult<Vec<TaggedKey>> {
        let keys = self.tagged_keys(region, tag_key).await?;
        page(&keys);
        Ok(keys)
    }
}

/// One audit record, published to EventBridge.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEvent {
    pub detail_type: String,
    pub detail: serde_json::Value,
}

#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("audit events not published: {0}")]
pub struct AuditError(pub String);

#[async_trait]
pub trait AuditSink: Send + Sync {
    async fn publish(&self, events: &[AuditEvent]) -> Result<(), AuditError>;
}
