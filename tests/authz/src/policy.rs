//! Policy documents and statements: `Effect`, `Principal`/`NotPrincipal`, `Action`/`NotAction`,
//! `Resource`/`NotResource`, `Condition`. A document is read strictly: an element or operator
//! this model does not know is an error, never silently ignored, so that a typo in a template
//! fails a test instead of widening or narrowing what it grants.

use crate::condition::Condition;
use crate::context::Context;
use crate::glob;
use crate::PolicyError;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

/// Who makes a request: a role (its ARN with the IAM path, as key policies name it), a user,
/// the account root, or an AWS service principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub arn: String,
    pub account: String,
    /// `logs.us-east-1.amazonaws.com` for a service principal.
    pub service: Option<String>,
}

impl Caller {
    /// An IAM role or user (or the root) of `account`, by ARN.
    pub fn iam(arn: &str) -> Caller {
        let account = arn.split(':').nth(4).unwrap_or_default().to_string();
        Caller {
            arn: arn.to_string(),
            account,
            service: None,
        }
    }

    pub fn service(name: &str, account: &str) -> Caller {
        Caller {
            arn: name.to_string(),
            account: account.to_string(),
            service: Some(name.to_string()),
        }
    }
}

/// A list of names (`Action`, `Resource`), or everything but them (`NotAction`, `NotResource`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Names {
    Only(Vec<String>),
    AllBut(Vec<String>),
}

impl Names {
    fn matches(&self, name: &str, one: impl Fn(&str, &str) -> bool) -> bool {
        match self {
            Names::Only(v) => v.iter().any(|p| one(p, name)),
            Names::AllBut(v) => !v.iter().any(|p| one(p, name)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PrincipalEntry {
    Anyone,
    Aws(String),
    Service(String),
    Other(String),
}

/// How a statement's `Principal` names a caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalMatch {
    No,
    /// The caller itself (its ARN, or `*`).
    Direct,
    /// The caller's account (`111122223333` or `arn:aws:iam::111122223333:root`): in a resource
    /// policy of the same account this delegates the decision to the caller's IAM policies.
    Account,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub sid: Option<String>,
    pub effect: Effect,
    principal: Option<(bool, Vec<PrincipalEntry>)>,
    actions: Names,
    resources: Option<Names>,
    conditions: Vec<Condition>,
}

/// A policy document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub statements: Vec<Statement>,
}

fn strings(v: &Value, what: &str) -> Result<Vec<String>, PolicyError> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(a) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| PolicyError(format!("{what} must hold strings: {x}")))
            })
            .collect(),
        other => Err(PolicyError(format!(
            "{what} must be a string or a list: {other}"
        ))),
    }
}

fn names(
    s: &serde_json::Map<String, Value>,
    yes: &str,
    no: &str,
) -> Result<Option<Names>, PolicyError> {
    match (s.get(yes), s.get(no)) {
        (Some(_), Some(_)) => Err(PolicyError(format!("a statement has both {yes} and {no}"))),
        (Some(v), None) => Ok(Some(Names::Only(strings(v, yes)?))),
        (None, Some(v)) => Ok(Some(Names::AllBut(strings(v, no)?))),
        (None, None) => Ok(None),
    }
}

fn principals(v: &Value) -> Result<Vec<PrincipalEntry>, PolicyError> {
    match v {
        Value::String(s) if s == "*" => Ok(vec![PrincipalEntry::Anyone]),
        Value::Object(m) => {
            let mut out = Vec::new();
            for (kind, vals) in m {
                for p in strings(vals, "Principal")? {
                    out.push(match kind.as_str() {
                        "AWS" if p == "*" => PrincipalEntry::Anyone,
                        "AWS" => PrincipalEntry::Aws(p),
                        "Service" => PrincipalEntry::Service(p),
                        "Federated" | "CanonicalUser" => PrincipalEntry::Other(p),
                        other => {
                            return Err(PolicyError(format!("Principal type {other} is unknown")))
                        }
                    });
                }
            }
            Ok(out)
        }
        other => Err(PolicyError(format!(
            "Principal must be \"*\" or an object: {other}"
        ))),
    }
}

impl Statement {
    pub fn parse(v: &Value) -> Result<Statement, PolicyError> {
        let s = v
            .as_object()
            .ok_or_else(|| PolicyError(format!("a statement must be an object: {v}")))?;
        for k in s.keys() {
            if !matches!(
                k.as_str(),
                "Sid"
                    | "Effect"
                    | "Principal"
                    | "NotPrincipal"
                    | "Action"
                    | "NotAction"
                    | "Resource"
                    | "NotResource"
                    | "Condition"
            ) {
                return Err(PolicyError(format!("statement element {k} is unknown")));
            }
        }
        let effect = match s.get("Effect").and_then(Value::as_str) {
            Some("Allow") => Effect::Allow,
            Some("Deny") => Effect::Deny,
            other => {
                return Err(PolicyError(format!(
                    "Effect must be Allow or Deny, not {other:?}"
                )))
            }
        };
        let principal = match (s.get("Principal"), s.get("NotPrincipal")) {
            (Some(_), Some(_)) => {
                return Err(PolicyError("both Principal and NotPrincipal".into()))
            }
            (Some(p), None) => Some((false, principals(p)?)),
            (None, Some(p)) => Some((true, principals(p)?)),
            (None, None) => None,
        };
        let actions = names(s, "Action", "NotAction")?
            .ok_or_else(|| PolicyError("a statement needs Action or NotAction".into()))?;
        let resources = names(s, "Resource", "NotResource")?;
        let conditions = match s.get("Condition") {
            Some(c) => Condition::parse_block(c)?,
            None => Vec::new(),
        };
        Ok(Statement {
            sid: s.get("Sid").and_then(Value::as_str).map(str::to_string),
            effect,
            principal,
            actions,
            resources,
            conditions,
        })
    }

    /// Whether the statement has a `Principal` (resource policies) at all.
    pub fn has_principal(&self) -> bool {
        self.principal.is_some()
    }

    /// Whether the statement has a `Resource` or `NotResource`.
    pub fn has_resource(&self) -> bool {
        self.resources.is_some()
    }

    pub fn principal_match(&self, caller: &Caller) -> PrincipalMatch {
        let Some((not, entries)) = &self.principal else {
            return PrincipalMatch::No;
        };
        let root = format!("arn:aws:iam::{}:root", caller.account);
        let mut best = PrincipalMatch::No;
        for e in entries {
            let m = match e {
                PrincipalEntry::Anyone => PrincipalMatch::Direct,
                PrincipalEntry::Aws(p) if *p == caller.arn => PrincipalMatch::Direct,
                PrincipalEntry::Aws(p) if *p == caller.account || *p == root => {
                    if caller.service.is_some() {
                        PrincipalMatch::No
                    } else {
                        PrincipalMatch::Account
                    }
                }
                PrincipalEntry::Service(s) if caller.service.as_deref() == Some(s.as_str()) => {
                    PrincipalMatch::Direct
                }
                _ => PrincipalMatch::No,
            };
            if m == PrincipalMatch::Direct
                || (m == PrincipalMatch::Account && best == PrincipalMatch::No)
            {
                best = m;
            }
        }
        if *not {
            // NotPrincipal names who is excluded; everyone else is matched directly.
            return if best == PrincipalMatch::No {
                PrincipalMatch::Direct
            } else {
                PrincipalMatch::No
            };
        }
        best
    }

    /// Whether the statement covers the action on the resource under the context (its
    /// principal aside).
    pub fn covers(&self, action: &str, resource: &str, ctx: &Context) -> bool {
        self.actions.matches(action, glob::matches_ignore_case)
            && self.resources.as_ref().is_none_or(|r| {
                r.matches(resource, |p, n| {
                    p == "*" || glob::arn_matches(p, n) || glob::matches(p, n)
                })
            })
            && self.conditions.iter().all(|c| c.holds(ctx))
    }

    /// The condition keys the statement reads (lowercased), for tests that run a request
    /// with and without each of them.
    pub fn condition_keys(&self) -> Vec<String> {
        self.conditions
            .iter()
            .map(|c| c.key.to_ascii_lowercase())
            .collect()
    }

    pub fn actions(&self) -> Vec<String> {
        match &self.actions {
            Names::Only(v) | Names::AllBut(v) => v.clone(),
        }
    }
}

impl Policy {
    pub fn parse(doc: &Value) -> Result<Policy, PolicyError> {
        let d = doc
            .as_object()
            .ok_or_else(|| PolicyError("a policy must be a JSON object".into()))?;
        for k in d.keys() {
            if !matches!(k.as_str(), "Version" | "Id" | "Statement") {
                return Err(PolicyError(format!("policy element {k} is unknown")));
            }
        }
        let statements = match d.get("Statement") {
            Some(Value::Array(a)) => a.iter().map(Statement::parse).collect::<Result<_, _>>()?,
            Some(s @ Value::Object(_)) => vec![Statement::parse(s)?],
            _ => return Err(PolicyError("the policy has no Statement".into())),
        };
        Ok(Policy { statements })
    }

    pub fn parse_str(text: &str) -> Result<Policy, PolicyError> {
        let v: Value =
            serde_json::from_str(text).map_err(|e| PolicyError(format!("not JSON: {e}")))?;
        Policy::parse(&v)
    }
}

/// What a set of identity policies says about one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// An explicit Deny, with the statement's Sid when it has one.
    Deny(Option<String>),
    /// Nothing allows it (an implicit deny).
    NotAllowed,
}

/// Identity-based policies: explicit Deny wins, then any Allow.
pub fn identity_decision(
    policies: &[Policy],
    action: &str,
    resource: &str,
    ctx: &Context,
) -> Decision {
    let mut allowed = false;
    for s in policies.iter().flat_map(|p| &p.statements) {
        if !s.covers(action, resource, ctx) {
            continue;
        }
        match s.effect {
            Effect::Deny => return Decision::Deny(s.sid.clone()),
            Effect::Allow => allowed = true,
        }
    }
    if allowed {
        Decision::Allow
    } else {
        Decision::NotAllowed
    }
}

/// What a resource-based policy (a key policy) says about one request by `caller`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceDecision {
    /// An explicit Deny that names the caller or its account (Sid, when it has one).
    pub deny: Option<Option<String>>,
    /// An Allow naming the caller itself.
    pub allows_caller: bool,
    /// An Allow naming the caller's account: the caller's IAM policies decide.
    pub allows_account: bool,
}

pub fn resource_decision(
    policy: &Policy,
    caller: &Caller,
    action: &str,
    resource: &str,
    ctx: &Context,
) -> ResourceDecision {
    let mut out = ResourceDecision::default();
    for s in &policy.statements {
        let who = s.principal_match(caller);
        if who == PrincipalMatch::No || !s.covers(action, resource, ctx) {
            continue;
        }
        match (s.effect, who) {
            (Effect::Deny, _) => {
                if out.deny.is_none() {
                    out.deny = Some(s.sid.clone());
                }
            }
            (Effect::Allow, PrincipalMatch::Direct) => out.allows_caller = true,
            (Effect::Allow, _) => out.allows_account = true,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ROLE: &str = "arn:aws:iam::111122223333:role/kms-replicator/replicate";

    fn identity(doc: Value) -> Vec<Policy> {
        vec![Policy::parse(&doc).unwrap()]
    }

    #[test]
    fn an_explicit_deny_wins_over_any_allow() {
        let p = identity(json!({"Statement": [
            {"Effect": "Allow", "Action": "kms:*", "Resource": "*"},
            {"Sid": "NoBypass", "Effect": "Deny", "Action": "kms:PutKeyPolicy", "Resource": "*",
             "Condition": {"Bool": {"kms:BypassPolicyLockoutSafetyCheck": "true"}}}
        ]}));
        let mut ctx = Context::default();
        ctx.set("kms:BypassPolicyLockoutSafetyCheck", "true");
        assert_eq!(
            identity_decision(
                &p,
                "kms:PutKeyPolicy",
                "arn:aws:kms:us-east-1:111122223333:key/mrk-1",
                &ctx
            ),
            Decision::Deny(Some("NoBypass".into()))
        );
        ctx.set("kms:BypassPolicyLockoutSafetyCheck", "false");
        assert_eq!(
            identity_decision(
                &p,
                "kms:PutKeyPolicy",
                "arn:aws:kms:us-east-1:111122223333:key/mrk-1",
                &ctx
            ),
            Decision::Allow
        );
    }

    #[test]
    fn resources_and_actions_with_wildcards_limit_what_a_statement_covers() {
        let p = identity(json!({"Statement": [
            {"Effect": "Allow", "Action": ["kms:Tag*"], "Resource": "arn:aws:kms:*:111122223333:key/mrk-*"}
        ]}));
        let ctx = Context::default();
        let mrk = "arn:aws:kms:eu-west-1:111122223333:key/mrk-1";
        assert_eq!(
            identity_decision(&p, "kms:TagResource", mrk, &ctx),
            Decision::Allow
        );
        assert_eq!(
            identity_decision(&p, "kms:UntagResource", mrk, &ctx),
            Decision::NotAllowed
        );
        // A key that does not exist yet is authorized on "*", which key/mrk-* does not match.
        assert_eq!(
            identity_decision(&p, "kms:TagResource", "*", &ctx),
            Decision::NotAllowed
        );
        let single = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        assert_eq!(
            identity_decision(&p, "kms:TagResource", single, &ctx),
            Decision::NotAllowed
        );
    }

    #[test]
    fn not_action_covers_everything_but_the_names() {
        let p = identity(
            json!({"Statement": {"Effect": "Allow", "NotAction": "kms:ScheduleKeyDeletion", "Resource": "*"}}),
        );
        let ctx = Context::default();
        assert_eq!(
            identity_decision(&p, "kms:PutKeyPolicy", "*", &ctx),
            Decision::Allow
        );
        assert_eq!(
            identity_decision(&p, "kms:ScheduleKeyDeletion", "*", &ctx),
            Decision::NotAllowed
        );
    }

    #[test]
    fn a_key_policy_names_a_caller_directly_or_delegates_to_its_account() {
        let key_policy = Policy::parse(&json!({"Statement": [
            {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kms:*", "Resource": "*"},
            {"Effect": "Allow", "Principal": {"AWS": ROLE}, "Action": "kms:ReplicateKey", "Resource": "*",
             "Condition": {"StringEquals": {"kms:ReplicaRegion": ["us-west-2"]}}},
            {"Sid": "NoOutsiders", "Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*",
             "Condition": {"StringNotEquals": {"kms:CallerAccount": "111122223333"}}}
        ]}))
        .unwrap();
        let me = Caller::iam(ROLE);
        let ctx = Context::default()
            .with("kms:ReplicaRegion", "us-west-2")
            .with("kms:CallerAccount", "111122223333");
        let d = resource_decision(&key_policy, &me, "kms:ReplicateKey", "*", &ctx);
        assert!(d.allows_caller && d.allows_account && d.deny.is_none());
        let ctx = ctx.with("kms:ReplicaRegion", "eu-west-1");
        let d = resource_decision(&key_policy, &me, "kms:ReplicateKey", "*", &ctx);
        assert!(!d.allows_caller && d.allows_account);
        let outsider = Caller::iam("arn:aws:iam::444455556666:role/x");
        let ctx = Context::default().with("kms:CallerAccount", "444455556666");
        let d = resource_decision(&key_policy, &outsider, "kms:Decrypt", "*", &ctx);
        assert_eq!(d.deny, Some(Some("NoOutsiders".into())));
        assert!(
            !d.allows_account,
            "another account's root is not this caller's account"
        );
    }

    #[test]
    fn a_service_principal_is_matched_by_its_name_only() {
        let key_policy = Policy::parse(&json!({"Statement": [
            {"Effect": "Allow", "Principal": {"Service": "logs.us-east-1.amazonaws.com"}, "Action": "kms:Encrypt*", "Resource": "*"}
        ]}))
        .unwrap();
        let logs = Caller::service("logs.us-east-1.amazonaws.com", "111122223333");
        let other = Caller::service("logs.us-west-2.amazonaws.com", "111122223333");
        let ctx = Context::default();
        assert!(resource_decision(&key_policy, &logs, "kms:Encrypt", "*", &ctx).allows_caller);
        assert!(!resource_decision(&key_policy, &other, "kms:Encrypt", "*", &ctx).allows_caller);
    }

    #[test]
    fn unknown_elements_and_effects_are_refused() {
        assert!(Policy::parse(&json!({"Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*", "Resources": "*"}]})).is_err());
        assert!(Policy::parse(
            &json!({"Statement": [{"Effect": "allow", "Action": "kms:*", "Resource": "*"}]})
        )
        .is_err());
        assert!(
            Policy::parse(&json!({"Statement": [{"Effect": "Allow", "Resource": "*"}]})).is_err()
        );
        assert!(Policy::parse_str("{").is_err());
    }
}
