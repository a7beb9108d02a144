//! Consent from the key's owners (`Consent=key-policy`): the replicator manages a key only when
//! the key's own policy grants the replicator's roles `kms:ReplicateKey`, and replicates it only
//! to the Regions that statement's `kms:ReplicaRegion` condition lists. KMS enforces the same
//! statement, since the template then gives the roles no IAM grant of ReplicateKey: a tagger
//! may request replication, only the key's administrators can consent to it.

use serde_json::{json, Value};
use std::collections::BTreeSet;

/// What a primary's policy consents to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Consented {
    /// No Allow statement grants the replicator's roles `kms:ReplicateKey`.
    No,
    /// Consent to these Regions; `None`: the statement names no `kms:ReplicaRegion`, so every
    /// Region (still within `AllowedRegions`).
    Regions(Option<BTreeSet<String>>),
}

impl Consented {
    pub fn allows(&self, region: &str) -> bool {
        match self {
            Consented::No => false,
            Consented::Regions(None) => true,
            Consented::Regions(Some(r)) => r.contains(region),
        }
    }
}

fn strings(v: &Value) -> Vec<&str> {
    match v {
        Value::String(s) => vec![s.as_str()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// Whether `principal` is one of the replicator's roles: a role ARN under `role_path`.
fn names_replicator(principal: &Value, role_path: &str) -> bool {
    let Some(aws) = principal.get("AWS") else {
        return false;
    };
    let marker = format!(":role{role_path}");
    strings(aws).iter().any(|p| p.contains(&marker))
}

fn grants_replicate_key(action: &Value) -> bool {
    strings(action).iter().any(|a| {
        let a = a.to_ascii_lowercase();
        a == "kms:replicatekey" || a == "kms:*" || a == "*"
    })
}

/// The Regions one consenting statement's condition allows: `None` for no `kms:ReplicaRegion`
/// condition at all. Under an operator other than StringEquals (or its ForAnyValue form) the
/// list cannot be read exactly, so it consents to no Region (KMS would decide; the replicator
/// does not guess).
fn statement_regions(condition: Option<&Value>) -> Option<BTreeSet<String>> {
    let condition = condition?.as_object()?;
    let mut found: Option<BTreeSet<String>> = None;
    for (operator, keys) in condition {
        let Some(keys) = keys.as_object() else {
            continue;
        };
        for (key, values) in keys {
            if !key.eq_ignore_ascii_case("kms:ReplicaRegion") {
                continue;
            }
            let exact = matches!(
                operator.as_str(),
                "StringEquals" | "ForAnyValue:StringEquals"
            );
            let listed: BTreeSet<String> = if exact {
                strings(values).into_iter().map(str::to_string).collect()
            } else {
                BTreeSet::new()
            };
            found = Some(match found {
                None => listed,
                Some(before) => before.intersection(&listed).cloned().collect(),
            });
        }
    }
    found
}

/// What `policy` (a primary's key policy) consents to, for roles under `role_path`.
pub fn consented(policy: &str, role_path: &str) -> Consented {
    let Ok(doc) = serde_json::from_str::<Value>(policy) else {
        return Consented::No;
    };
    let statements = match &doc["Statement"] {
        Value::Array(a) => a.iter().collect::<Vec<_>>(),
        s @ Value::Object(_) => vec![s],
        _ => Vec::new(),
    };
    let mut result = Consented::No;
    for s in statements {
        if s["Effect"] != "Allow"
            || !names_replicator(&s["Principal"], role_path)
            || !grants_replicate_key(&s["Action"])
        {
            continue;
        }
        result = match (result, statement_regions(s.get("Condition"))) {
            (_, None) | (Consented::Regions(None), _) => Consented::Regions(None),
            (Consented::No, Some(r)) => Consented::Regions(Some(r)),
            (Consented::Regions(Some(a)), Some(b)) => {
                Consented::Regions(Some(a.union(&b).cloned().collect()))
            }
        };
    }
    result
}

/// The statement a key's administrators add to its policy to consent to replication into
/// `regions`, naming `roles` (the stack's role ARNs, or a placeholder).
pub fn consent_statement(roles: &[String], regions: &[&str]) -> String {
    let principals: Vec<String> = if roles.is_empty() {
        vec!["<the ARNs of the stack's ReplicateFunctionRole, ReconcileFunctionRole and FailoverFunctionRole>".into()]
    } else {
        roles.to_vec()
    };
    json!({
        "Sid": "ConsentToKmsReplicator",
        "Effect": "Allow",
        "Principal": {"AWS": principals},
        "Action": "kms:ReplicateKey",
        "Resource": "*",
        "Condition": {"StringEquals": {"kms:ReplicaRegion": regions}}
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATH: &str = "/kms-replicator/";
    const ROLE: &str =
        "arn:aws:iam::111122223333:role/kms-replicator/kms-replicator-ReplicateFunctionRole";

    fn policy(statements: Value) -> String {
        json!({"Version": "2012-10-17", "Statement": statements}).to_string()
    }

    #[test]
    fn the_account_root_or_another_principal_is_no_consent() {
        let root = policy(
            json!([{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kms:*", "Resource": "*"}]),
        );
        assert_eq!(consented(&root, PATH), Consented::No);
        let other = policy(
            json!([{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/ops"}, "Action": "kms:ReplicateKey", "Resource": "*"}]),
        );
        assert_eq!(consented(&other, PATH), Consented::No);
        let deny = policy(
            json!([{"Effect": "Deny", "Principal": {"AWS": ROLE}, "Action": "kms:ReplicateKey", "Resource": "*"}]),
        );
        assert_eq!(consented(&deny, PATH), Consented::No);
        let other_action = policy(
            json!([{"Effect": "Allow", "Principal": {"AWS": ROLE}, "Action": ["kms:Decrypt"], "Resource": "*"}]),
        );
        assert_eq!(consented(&other_action, PATH), Consented::No);
        assert_eq!(consented("not json", PATH), Consented::No);
    }

    #[test]
    fn the_statement_bounds_the_regions() {
        let listed = policy(
            json!([{"Effect": "Allow", "Principal": {"AWS": [ROLE]}, "Action": "kms:ReplicateKey", "Resource": "*",
            "Condition": {"StringEquals": {"kms:ReplicaRegion": ["us-west-2"]}}}]),
        );
        let c = consented(&listed, PATH);
        assert!(c.allows("us-west-2"));
        assert!(!c.allows("eu-west-1"));
        let unbounded = policy(
            json!({"Effect": "Allow", "Principal": {"AWS": ROLE}, "Action": "kms:ReplicateKey", "Resource": "*"}),
        );
        assert_eq!(consented(&unbounded, PATH), Consented::Regions(None));
        let like = policy(
            json!([{"Effect": "Allow", "Principal": {"AWS": ROLE}, "Action": "kms:ReplicateKey", "Resource": "*",
            "Condition": {"StringLike": {"kms:ReplicaRegion": "eu-*"}}}]),
        );
        assert!(!consented(&like, PATH).allows("eu-west-1"));
    }

    #[test]
    fn the_statement_to_add_is_a_valid_consent() {
        let s: Value =
            serde_json::from_str(&consent_statement(&[ROLE.into()], &["us-west-2"])).unwrap();
        let c = consented(&policy(json!([s])), PATH);
        assert!(c.allows("us-west-2") && !c.allows("eu-west-1"));
    }
}
