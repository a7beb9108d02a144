//! Plain data the domain works with: what KMS tells us about a key, its tags and aliases.

use serde::{Deserialize, Serialize};

/// KMS key states as the API names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyState {
    Creating,
    Enabled,
    Disabled,
    PendingDeletion,
    PendingImport,
    PendingReplicaDeletion,
    Unavailable,
    Updating,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Creating => "Creating",
            KeyState::Enabled => "Enabled",
            KeyState::Disabled => "Disabled",
            KeyState::PendingDeletion => "PendingDeletion",
            KeyState::PendingImport => "PendingImport",
            KeyState::PendingReplicaDeletion => "PendingReplicaDeletion",
            KeyState::Unavailable => "Unavailable",
            KeyState::Updating => "Updating",
        }
    }

    pub fn parse(s: &str) -> Option<KeyState> {
        Some(match s {
            "Creating" => KeyState::Creating,
            "Enabled" => KeyState::Enabled,
            "Disabled" => KeyState::Disabled,
            "PendingDeletion" => KeyState::PendingDeletion,
            "PendingImport" => KeyState::PendingImport,
            "PendingReplicaDeletion" => KeyState::PendingReplicaDeletion,
            "Unavailable" => KeyState::Unavailable,
            "Updating" => KeyState::Updating,
            _ => return None,
        })
    }

    pub fn is_pending_deletion(self) -> bool {
        matches!(
            self,
            KeyState::PendingDeletion | KeyState::PendingReplicaDeletion
        )
    }

    /// Transient states in which KMS refuses management calls for a few seconds.
    pub fn is_transient(self) -> bool {
        matches!(self, KeyState::Creating | KeyState::Updating)
    }
}

impl std::fmt::Display for KeyState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum MultiRegionKeyType {
    Primary,
    Replica,
}

/// The multi-Region part of DescribeKey.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultiRegionConfig {
    pub key_type: MultiRegionKeyType,
    pub primary_region: String,
    /// Regions holding replicas, as the primary reports them.
    pub replica_regions: Vec<String>,
}

/// What DescribeKey tells us about one key in one Region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    pub key_id: String,
    pub arn: String,
    pub region: String,
    pub state: KeyState,
    pub description: String,
    /// `None` for single-Region keys.
    pub multi_region: Option<MultiRegionConfig>,
    /// DescribeKey's `CreationDate`, in milliseconds since the Unix epoch. Each key of a
    /// multi-Region set has its own: a replica's is when it was replicated, so a replica
    /// older than the current primary has been the primary or predates it.
    pub creation_date: Option<u64>,
    /// DescribeKey's `DeletionDate`, in milliseconds since the Unix epoch: set while the key
    /// is `PendingDeletion`, by the ScheduleKeyDeletion that put it there.
    #[serde(default)]
    pub deletion_date: Option<u64>,
    /// DescribeKey's `Origin` is `EXTERNAL`: the key material was imported, and KMS never
    /// copies it, so each new replica is `PendingImport` until a person imports it there.
    #[serde(default)]
    pub imported_material: bool,
    /// DescribeKey's `CurrentKeyMaterialId` (symmetric encryption keys): related keys hold the
    /// same one, except while a rotation of imported material waits for an import somewhere.
    #[serde(default)]
    pub current_key_material_id: Option<String>,
}

impl KeyInfo {
    pub fn is_primary(&self) -> bool {
        matches!(&self.multi_region, Some(m) if m.key_type == MultiRegionKeyType::Primary)
    }

    pub fn account(&self) -> Option<&str> {
        self.arn.split(':').nth(4)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

impl Tag {
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Tag {
        Tag {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// An alias as ListAliases reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AliasEntry {
    /// `alias/...`
    pub name: String,
    pub target_key_id: Option<String>,
}

/// AWS managed aliases (`alias/aws/...`) cannot be created or changed by customers.
pub fn is_aws_managed_alias(name: &str) -> bool {
    name.starts_with("alias/aws/")
}
