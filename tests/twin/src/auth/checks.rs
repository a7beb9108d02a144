//! One authorization KMS makes, and the request context AWS builds for it: the resource (a key,
//! an alias, or `*` where the key does not exist yet), the Region, and the condition keys the
//! Service Authorization Reference lists for that action and resource type.
//!
//! Some keys are not documented for a check (`Undocumented`): AWS shows no example of
//! `aws:RequestedRegion` on the cross-Region authorizations of ReplicateKey and
//! UpdatePrimaryRegion, of the key-property keys on the CreateKey that ReplicateKey authorizes in
//! the replica's Region, or of `kms:PrimaryRegion` on the replica side of UpdatePrimaryRegion.
//! The twin sets them or leaves them out as told, so that tests can show the template works
//! both ways.

use authz::Context;
use kms_replicator::model::Tag;
use kms_replicator::Op;
use std::collections::{BTreeMap, BTreeSet};

/// A context key whose presence AWS does not document for a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Undocumented {
    /// `aws:RequestedRegion` on a check KMS makes in another Region than the request's
    /// (ReplicateKey's CreateKey and TagResource in the replica's Region, UpdatePrimaryRegion
    /// on the replica).
    RequestedRegionAcrossRegions,
    /// `kms:MultiRegion`, `kms:MultiRegionKeyType`, `kms:KeyOrigin`, `kms:KeySpec` and
    /// `kms:KeyUsage` on the CreateKey that ReplicateKey authorizes in the replica's Region.
    ReplicaKeyProperties,
    /// `aws:RequestTag/*` and `aws:TagKeys` on that CreateKey.
    ReplicaCreateKeyTags,
    /// `kms:PrimaryRegion` on the replica side of UpdatePrimaryRegion.
    PrimaryRegionOnReplica,
}

impl Undocumented {
    pub const ALL: [Undocumented; 4] = [
        Undocumented::RequestedRegionAcrossRegions,
        Undocumented::ReplicaKeyProperties,
        Undocumented::ReplicaCreateKeyTags,
        Undocumented::PrimaryRegionOnReplica,
    ];

    pub fn all() -> BTreeSet<Undocumented> {
        Undocumented::ALL.into_iter().collect()
    }
}

/// What the request context says about an existing key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFacts {
    pub arn: String,
    pub region: String,
    pub policy: String,
    pub tags: BTreeMap<String, String>,
    /// `PRIMARY` or `REPLICA`; `None` for a single-Region key.
    pub multi_region_type: Option<&'static str>,
    pub aliases: Vec<String>,
    pub origin: String,
    pub spec: String,
    pub usage: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Key(Box<KeyFacts>),
    Alias(String),
    Nothing,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Extra {
    key: String,
    values: Vec<String>,
    /// Set only when this undocumented key is among those the twin sets.
    when: Option<Undocumented>,
}

/// What kind of resource a check names, as the Service Authorization Reference types them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ResourceType {
    Key,
    Alias,
    /// No resource (`*`).
    None,
}

/// A check as it was made: for comparing the twin's checks with the Service Authorization
/// Reference.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CheckRecord {
    pub action: Op,
    pub resource_type: ResourceType,
    /// The condition keys the request context held (as named when set).
    pub keys: Vec<String>,
}

/// One authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub action: Op,
    /// The Region whose KMS makes the check.
    pub region: String,
    target: Target,
    /// `Some` when `aws:RequestedRegion` is not documented for this check.
    requested_region: Option<Undocumented>,
    extra: Vec<Extra>,
    /// The IAM action, where it is not the operation's own: ReEncrypt is authorized as
    /// `kms:ReEncryptFrom` on the source key and `kms:ReEncryptTo` on the destination.
    iam_action: Option<&'static str>,
}

impl Check {
    /// `action` on an existing key, in the key's Region.
    pub fn on_key(action: Op, key: &KeyFacts) -> Check {
        Check {
            action,
            region: key.region.clone(),
            target: Target::Key(Box::new(key.clone())),
            requested_region: None,
            extra: Vec::new(),
            iam_action: None,
        }
    }

    /// `action` on an alias (`arn:aws:kms:<region>:<acct>:alias/<name>`): aliases have no
    /// policy of their own, so IAM alone decides.
    pub fn on_alias(action: Op, region: &str, alias_arn: &str) -> Check {
        Check {
            action,
            region: region.to_string(),
            target: Target::Alias(alias_arn.to_string()),
            requested_region: None,
            extra: Vec::new(),
            iam_action: None,
        }
    }

    /// `action` with no resource (`*`): CreateKey, ListKeys, ListAliases, and the checks made
    /// for a key that does not exist yet.
    pub fn without_resource(action: Op, region: &str) -> Check {
        Check {
            action,
            region: region.to_string(),
            target: Target::Nothing,
            requested_region: None,
            extra: Vec::new(),
            iam_action: None,
        }
    }

    /// The check authorizes `iam_action` (`kms:ReEncryptFrom`, say) rather than the
    /// operation's own action.
    pub fn as_action(mut self, iam_action: &'static str) -> Check {
        self.iam_action = Some(iam_action);
        self
    }

    /// The IAM action this check authorizes.
    pub fn iam_action(&self) -> String {
        match self.iam_action {
            Some(a) => a.to_string(),
            None => self.action.iam_action(),
        }
    }

    /// A check KMS makes in this Region for a request sent to another one.
    pub fn across_regions(mut self) -> Check {
        self.requested_region = Some(Undocumented::RequestedRegionAcrossRegions);
        self
    }

    pub fn with(self, key: &str, value: impl Into<String>) -> Check {
        self.with_all(key, [value.into()])
    }

    pub fn with_all(mut self, key: &str, values: impl IntoIterator<Item = String>) -> Check {
        self.extra.push(Extra {
            key: key.to_string(),
            values: values.into_iter().collect(),
            when: None,
        });
        self
    }

    /// A key set only when the twin sets this undocumented key.
    pub fn undocumented(mut self, which: Undocumented, key: &str, values: Vec<String>) -> Check {
        self.extra.push(Extra {
            key: key.to_string(),
            values,
            when: Some(which),
        });
        self
    }

    /// `aws:RequestTag/<key>` for each tag and `aws:TagKeys`, as a request that sets tags has.
    pub fn request_tags(mut self, tags: &[Tag], when: Option<Undocumented>) -> Check {
        for t in tags {
            self.extra.push(Extra {
                key: format!("aws:RequestTag/{}", t.key),
                values: vec![t.value.clone()],
                when,
            });
        }
        self.extra.push(Extra {
            key: "aws:TagKeys".into(),
            values: tags.iter().map(|t| t.key.clone()).collect(),
            when,
        });
        self
    }

    pub fn bypass_lockout_check(self, bypass: bool) -> Check {
        self.with("kms:BypassPolicyLockoutSafetyCheck", bypass.to_string())
    }

    /// The key-property keys of CreateKey (what the new key will be).
    pub fn new_key_properties(mut self, props: &KeyFacts, when: Option<Undocumented>) -> Check {
        let multi = props.multi_region_type.is_some();
        let mut pairs = vec![
            ("kms:MultiRegion", multi.to_string()),
            ("kms:KeyOrigin", props.origin.clone()),
            ("kms:KeySpec", props.spec.clone()),
            ("kms:KeyUsage", props.usage.clone()),
        ];
        if let Some(t) = props.multi_region_type {
            pairs.push(("kms:MultiRegionKeyType", t.to_string()));
        }
        for (k, v) in pairs {
            self.extra.push(Extra {
                key: k.to_string(),
                values: vec![v],
                when,
            });
        }
        self
    }

    pub fn resource_arn(&self) -> String {
        match &self.target {
            Target::Key(k) => k.arn.clone(),
            Target::Alias(a) => a.clone(),
            Target::Nothing => "*".to_string(),
        }
    }

    pub fn resource_type(&self) -> ResourceType {
        match &self.target {
            Target::Key(_) => ResourceType::Key,
            Target::Alias(_) => ResourceType::Alias,
            Target::Nothing => ResourceType::None,
        }
    }

    pub fn key_policy(&self) -> Option<&str> {
        match &self.target {
            Target::Key(k) => Some(&k.policy),
            _ => None,
        }
    }

    /// The request context for `caller`, with the undocumented keys in `present` set.
    pub fn context(&self, caller: &str, present: &BTreeSet<Undocumented>) -> Context {
        let account = caller.split(':').nth(4).unwrap_or_default();
        let mut ctx = Context::default();
        ctx.set("aws:PrincipalArn", caller)
            .set("aws:PrincipalAccount", account);
        // KMS sets it for the operations on keys (and CreateKey), not for the listings.
        if !matches!(
            self.action,
            Op::ListAliases | Op::ListKeys | Op::GetResources
        ) {
            ctx.set("kms:CallerAccount", account);
        }
        if self.requested_region.is_none_or(|u| present.contains(&u)) {
            ctx.set("aws:RequestedRegion", self.region.clone());
        }
        if let Target::Key(k) = &self.target {
            for (tk, tv) in &k.tags {
                ctx.set(&format!("aws:ResourceTag/{tk}"), tv.clone());
            }
            ctx.set("kms:KeyOrigin", k.origin.clone())
                .set("kms:KeySpec", k.spec.clone())
                .set("kms:KeyUsage", k.usage.clone())
                .set("kms:MultiRegion", k.multi_region_type.is_some().to_string());
            if let Some(t) = k.multi_region_type {
                ctx.set("kms:MultiRegionKeyType", t);
            }
            ctx.set_all("kms:ResourceAliases", k.aliases.iter().cloned());
        }
        for e in &self.extra {
            if e.when.is_none_or(|u| present.contains(&u)) {
                ctx.set_all(&e.key, e.values.iter().cloned());
            }
        }
        ctx
    }
}
