//! KMS's authorization, as the KMS Developer Guide documents it, for every check an operation
//! makes (`checks`): the caller's identity policies (`identities`: the template's roles, the
//! people of the tests) and the key policy, with the request context AWS builds for that check.
//!
//! The rule for a key (KMS Developer Guide, "Key policies" and "Default key policy"): an
//! explicit Deny in the key policy or in an identity policy refuses; otherwise the key policy
//! allows the caller itself, or it allows the caller's account (`arn:aws:iam::<acct>:root`),
//! which delegates to IAM, and an identity policy allows the caller. Operations with no key
//! resource (CreateKey, ListKeys, ListAliases, an alias) and the checks KMS makes before a key
//! exists (the replica side of ReplicateKey) are decided by identity policies alone.
//! Refusals are `AccessDeniedException` with AWS's message shape.

mod checks;
mod identities;

pub use checks::{Check, CheckRecord, KeyFacts, ResourceType, Undocumented};
pub use identities::{
    is_replicator, repository_template, template_parameters, Identities, Identity, ACCOUNT,
    ADMIN_USER, FAILOVER_ROLE, FUNCTION_ROLES, HOME_REGION, OPERATOR_ROLE, RECONCILE_ROLE,
    REPLICATE_ROLE, STACK_NAME, TAGGER_ROLE, TEAM_B_ROLE,
};

use authz::policy::{identity_decision, resource_decision};
use authz::{Caller, Decision, Policy};
use kms_replicator::port::{ErrorKind, KmsError};
use kms_replicator::Op;
use std::collections::BTreeSet;

/// How the twin authorizes: whether it does at all, who exists, and which context keys that
/// AWS does not document for a check it sets.
#[derive(Debug, Clone)]
pub struct Authorization {
    pub enabled: bool,
    pub identities: Identities,
    /// The undocumented context keys the twin sets (all of them by default); a test removes
    /// one to show that the template works without it.
    pub undocumented: BTreeSet<Undocumented>,
}

impl Authorization {
    /// Nobody is refused anything (the twin as it was before authorization).
    pub fn off() -> Authorization {
        Authorization {
            enabled: false,
            identities: Identities::default(),
            undocumented: Undocumented::all(),
        }
    }

    pub fn on(identities: Identities) -> Authorization {
        Authorization {
            enabled: true,
            identities,
            undocumented: Undocumented::all(),
        }
    }

    /// What a decision of `check` for `caller` puts on the record.
    pub fn record_of(&self, caller: &str, check: &Check) -> CheckRecord {
        let ctx = check.context(caller, &self.undocumented);
        CheckRecord {
            action: check.action,
            resource_type: check.resource_type(),
            keys: ctx.entries().map(|(k, _)| k.to_string()).collect(),
        }
    }

    /// Decides one check for `caller` (an IAM ARN), made as part of `op` in `region`.
    pub fn authorize(
        &self,
        caller: &str,
        op: Op,
        region: &str,
        check: &Check,
    ) -> Result<(), KmsError> {
        if !self.enabled {
            return Ok(());
        }
        let ctx = check.context(caller, &self.undocumented);
        let who = Caller::iam(caller);
        let identity = self.identities.policies(caller);
        let action = check.iam_action();
        let resource = check.resource_arn();
        let by_iam = identity_decision(&identity, &action, &resource, &ctx);
        let refuse = |because: String| {
            Err(KmsError::new(
                ErrorKind::AccessDenied,
                op,
                region,
                "AccessDeniedException",
                format!(
                    "User: {} is not authorized to perform: {action} on resource: {resource} \
                     because {because}",
                    session_arn(caller)
                ),
            ))
        };
        if let Decision::Deny(_) = by_iam {
            return refuse("with an explicit deny in an identity-based policy".into());
        }
        let Some(key_policy) = check.key_policy() else {
            return match by_iam {
                Decision::Allow => Ok(()),
                _ => refuse(format!(
                    "no identity-based policy allows the {action} action"
                )),
            };
        };
        let Ok(key_policy) = Policy::parse_str(key_policy) else {
            return refuse(format!(
                "no resource-based policy allows the {action} action"
            ));
        };
        let by_key = resource_decision(&key_policy, &who, &action, &resource, &ctx);
        if by_key.deny.is_some() {
            return refuse("with an explicit deny in a resource-based policy".into());
        }
        if by_key.allows_caller || (by_key.allows_account && by_iam == Decision::Allow) {
            return Ok(());
        }
        if by_key.allows_account {
            refuse(format!(
                "no identity-based policy allows the {action} action"
            ))
        } else {
            refuse(format!(
                "no resource-based policy allows the {action} action"
            ))
        }
    }

    /// KMS's lockout safety check for a key policy about to be set: the caller must be able to
    /// call PutKeyPolicy on the key under that policy, or KMS refuses it (the replicator never
    /// sets BypassPolicyLockoutSafetyCheck).
    pub fn allows_later_put_key_policy(
        &self,
        caller: &str,
        key: &KeyFacts,
        policy: &Policy,
    ) -> bool {
        let check = Check::on_key(Op::PutKeyPolicy, key).bypass_lockout_check(false);
        let ctx = check.context(caller, &self.undocumented);
        let action = Op::PutKeyPolicy.iam_action();
        let resource = check.resource_arn();
        let by_key = resource_decision(policy, &Caller::iam(caller), &action, &resource, &ctx);
        if by_key.deny.is_some() {
            return false;
        }
        if by_key.allows_caller {
            return true;
        }
        if !by_key.allows_account {
            return false;
        }
        // Delegated to IAM: without authorization on, every caller of the account passes.
        !self.enabled
            || identity_decision(&self.identities.policies(caller), &action, &resource, &ctx)
                == Decision::Allow
    }
}

/// The ARN AWS names a caller by in a refusal: a role's session (`assumed-role/<name>/...`,
/// without the role's path), a user or root as it is.
pub fn session_arn(caller: &str) -> String {
    match caller.split_once(":role/") {
        Some((prefix, path_and_name)) => {
            let name = path_and_name.rsplit('/').next().unwrap_or(path_and_name);
            format!(
                "{}:assumed-role/{name}/{name}",
                prefix.replace(":iam::", ":sts::")
            )
        }
        None => caller.to_string(),
    }
}

#[cfg(test)]
mod tests;
