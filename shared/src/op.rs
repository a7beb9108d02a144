//! The AWS operations the replicator, its tests and its twin speak of: one closed list, with
//! what each one is (a read or a write), the IAM action that authorizes it, and its KMS
//! request quota. The limiter, the reports, the twin and the tests all take it from here.

use serde::{Serialize, Serializer};
use std::fmt;

/// One AWS API operation. Most are KMS's; `GetResources` is the Resource Groups Tagging API's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    // Reads.
    DescribeKey,
    GetKeyPolicy,
    ListResourceTags,
    ListAliases,
    ListKeys,
    GetResources,
    GetKeyLastUsage,
    GetParametersForImport,
    GetPublicKey,
    // Cryptographic operations: they change nothing, and KMS records each success as the
    // key's last use (GetKeyLastUsage).
    Encrypt,
    Decrypt,
    GenerateDataKey,
    GenerateDataKeyWithoutPlaintext,
    GenerateMac,
    VerifyMac,
    Sign,
    Verify,
    /// Authorized as `kms:ReEncryptFrom` on the source key and `kms:ReEncryptTo` on the
    /// destination (there is no `kms:ReEncrypt` action).
    ReEncrypt,
    // Writes.
    CreateKey,
    ReplicateKey,
    PutKeyPolicy,
    CreateAlias,
    UpdateAlias,
    DeleteAlias,
    TagResource,
    UntagResource,
    UpdateKeyDescription,
    ScheduleKeyDeletion,
    CancelKeyDeletion,
    EnableKey,
    DisableKey,
    UpdatePrimaryRegion,
    ImportKeyMaterial,
}

/// Which service an operation belongs to, for its IAM action's prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Kms,
    ResourceGroupsTagging,
}

impl Op {
    /// Every operation, reads first.
    pub const ALL: &'static [Op] = &[
        Op::DescribeKey,
        Op::GetKeyPolicy,
        Op::ListResourceTags,
        Op::ListAliases,
        Op::ListKeys,
        Op::GetResources,
        Op::GetKeyLastUsage,
        Op::GetParametersForImport,
        Op::GetPublicKey,
        Op::Encrypt,
        Op::Decrypt,
        Op::GenerateDataKey,
        Op::GenerateDataKeyWithoutPlaintext,
        Op::GenerateMac,
        Op::VerifyMac,
        Op::Sign,
        Op::Verify,
        Op::ReEncrypt,
        Op::CreateKey,
        Op::ReplicateKey,
        Op::PutKeyPolicy,
        Op::CreateAlias,
        Op::UpdateAlias,
        Op::DeleteAlias,
        Op::TagResource,
        Op::UntagResource,
        Op::UpdateKeyDescription,
        Op::ScheduleKeyDeletion,
        Op::CancelKeyDeletion,
        Op::EnableKey,
        Op::DisableKey,
        Op::UpdatePrimaryRegion,
        Op::ImportKeyMaterial,
    ];

    /// The operation's name as the API and CloudTrail spell it.
    pub const fn name(self) -> &'static str {
        match self {
            Op::DescribeKey => "DescribeKey",
            Op::GetKeyPolicy => "GetKeyPolicy",
            Op::ListResourceTags => "ListResourceTags",
            Op::ListAliases => "ListAliases",
            Op::ListKeys => "ListKeys",
            Op::GetResources => "GetResources",
            Op::GetKeyLastUsage => "GetKeyLastUsage",
            Op::GetParametersForImport => "GetParametersForImport",
            Op::GetPublicKey => "GetPublicKey",
            Op::Encrypt => "Encrypt",
            Op::Decrypt => "Decrypt",
            Op::GenerateDataKey => "GenerateDataKey",
            Op::GenerateDataKeyWithoutPlaintext => "GenerateDataKeyWithoutPlaintext",
            Op::GenerateMac => "GenerateMac",
            Op::VerifyMac => "VerifyMac",
            Op::Sign => "Sign",
            Op::Verify => "Verify",
            Op::ReEncrypt => "ReEncrypt",
            Op::CreateKey => "CreateKey",
            Op::ReplicateKey => "ReplicateKey",
            Op::PutKeyPolicy => "PutKeyPolicy",
            Op::CreateAlias => "CreateAlias",
            Op::UpdateAlias => "UpdateAlias",
            Op::DeleteAlias => "DeleteAlias",
            Op::TagResource => "TagResource",
            Op::UntagResource => "UntagResource",
            Op::UpdateKeyDescription => "UpdateKeyDescription",
            Op::ScheduleKeyDeletion => "ScheduleKeyDeletion",
            Op::CancelKeyDeletion => "CancelKeyDeletion",
            Op::EnableKey => "EnableKey",
            Op::DisableKey => "DisableKey",
            Op::UpdatePrimaryRegion => "UpdatePrimaryRegion",
            Op::ImportKeyMaterial => "ImportKeyMaterial",
        }
    }

    /// The operation a name spells, if it is one of these.
    pub fn parse(name: &str) -> Option<Op> {
        Op::ALL.iter().copied().find(|op| op.name() == name)
    }

    /// Whether the operation changes anything (CloudTrail logs it as a write event).
    pub const fn is_write(self) -> bool {
        !matches!(
            self,
            Op::DescribeKey
                | Op::GetKeyPolicy
                | Op::ListResourceTags
                | Op::ListAliases
                | Op::ListKeys
                | Op::GetResources
                | Op::GetKeyLastUsage
                | Op::GetParametersForImport
                | Op::GetPublicKey
        ) && !self.is_cryptographic()
    }

    /// A cryptographic operation: one whose success KMS records as the key's last use.
    pub const fn is_cryptographic(self) -> bool {
        matches!(
            self,
            Op::Encrypt
                | Op::Decrypt
                | Op::GenerateDataKey
                | Op::GenerateDataKeyWithoutPlaintext
                | Op::GenerateMac
                | Op::VerifyMac
                | Op::Sign
                | Op::Verify
                | Op::ReEncrypt
        )
    }

    pub const fn service(self) -> Service {
        match self {
            Op::GetResources => Service::ResourceGroupsTagging,
            _ => Service::Kms,
        }
    }

    /// The IAM action that authorizes the operation (`kms:PutKeyPolicy`, `tag:GetResources`).
    pub fn iam_action(self) -> String {
        let prefix = match self.service() {
            Service::Kms => "kms",
            Service::ResourceGroupsTagging => "tag",
        };
        format!("{prefix}:{}", self.name())
    }

    /// KMS's request quota for the operation: requests per second, per account and Region,
    /// over all principals (the KMS Developer Guide's "Request quotas" table). `None` where
    /// AWS publishes no figure (GetResources, GetKeyLastUsage) or none in this unit
    /// (GetParametersForImport: one request in each 4 seconds). The cryptographic operations
    /// share one quota per account and Region and key type: 5,500 where it is lowest for
    /// symmetric and HMAC keys, 300 for asymmetric keys (the ECC quota; RSA's is 500); each
    /// operation is given all of it here.
    pub const fn kms_quota(self) -> Option<u32> {
        Some(match self {
            Op::DescribeKey => 2000,
            Op::GetKeyPolicy => 1000,
            Op::ListResourceTags => 2000,
            Op::ListAliases => 500,
            Op::ListKeys => 500,
            Op::GetPublicKey => 2000,
            Op::GetResources | Op::GetKeyLastUsage | Op::GetParametersForImport => return None,
            Op::Encrypt
            | Op::Decrypt
            | Op::GenerateDataKey
            | Op::GenerateDataKeyWithoutPlaintext
            | Op::GenerateMac
            | Op::VerifyMac
            | Op::ReEncrypt => 5500,
            Op::Sign | Op::Verify => 300,
            Op::CreateKey => 5,
            Op::ReplicateKey => 5,
            Op::PutKeyPolicy => 15,
            Op::CreateAlias => 5,
            Op::UpdateAlias => 5,
            Op::DeleteAlias => 5,
            Op::TagResource => 10,
            Op::UntagResource => 5,
            Op::UpdateKeyDescription => 5,
            Op::ScheduleKeyDeletion => 15,
            Op::CancelKeyDeletion => 5,
            Op::EnableKey => 5,
            Op::DisableKey => 5,
            Op::UpdatePrimaryRegion => 5,
            Op::ImportKeyMaterial => 5,
        })
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Op {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl PartialEq<str> for Op {
    fn eq(&self, other: &str) -> bool {
        self.name() == other
    }
}

impl PartialEq<&str> for Op {
    fn eq(&self, other: &&str) -> bool {
        self.name() == *other
    }
}

impl PartialEq<Op> for &str {
    fn eq(&self, other: &Op) -> bool {
        *self == other.name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_parses_back_to_its_operation() {
        for op in Op::ALL {
            assert_eq!(Op::parse(op.name()), Some(*op));
        }
        assert_eq!(Op::parse("ReEncryptFrom"), None);
    }

    #[test]
    fn reads_come_first_and_only_reads_are_not_writes() {
        let reads: Vec<Op> = Op::ALL.iter().copied().filter(|o| !o.is_write()).collect();
        assert_eq!(reads, Op::ALL[..reads.len()].to_vec());
        assert!(Op::PutKeyPolicy.is_write() && !Op::GetResources.is_write());
    }

    #[test]
    fn iam_actions_carry_their_service_prefix() {
        assert_eq!(Op::ReplicateKey.iam_action(), "kms:ReplicateKey");
        assert_eq!(Op::GetResources.iam_action(), "tag:GetResources");
    }
}
