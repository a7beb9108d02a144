//! Mirroring a key policy into another Region.
//!
//! Only Region tokens in structured positions are rewritten, never by blind string replace:
//! `kms:ViaService` values, Regional service principals, the Region field of ARNs in `Resource`
//! and in `Condition` values, and `aws:RequestedRegion` values equal to the source Region.
//! `Sid`, `Effect`, `Action`, IAM principals, wildcards, and the `kms:ReplicaRegion` and
//! `kms:PrimaryRegion` lists stay as they are, so a rewrite can never widen access.

use serde::Serialize;
use serde_json::Value;
use thiserror::Error;

/// One value changed by a rewrite, for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rewrite {
    /// The statement's `Sid`, or `#<index>` when it has none.
    pub statement: String,
    /// Where in the statement, e.g. `Condition.StringEquals.kms:ViaService`.
    pub location: String,
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("the key policy is not a JSON policy document: {0}")]
pub struct PolicyError(pub String);

/// The policy for `to`, and the list of rewrites made. With no rewrites the original text is
/// returned unchanged, byte for byte.
pub fn rewrite_policy(
    policy: &str,
    from: &str,
    to: &str,
) -> Result<(String, Vec<Rewrite>), PolicyError> {
    let mut doc: Value = serde_json::from_str(policy).map_err(|e| PolicyError(e.to_string()))?;
    if !doc.is_object() {
        return Err(PolicyError("the top level is not an object".into()));
    }
    let mut rewrites = Vec::new();
    if from != to {
        match doc.get_mut("Statement") {
            Some(Value::Array(stmts)) => {
                for (i, s) in stmts.iter_mut().enumerate() {
                    rewrite_statement(s, i, from, to, &mut rewrites);
                }
            }
            Some(s @ Value::Object(_)) => rewrite_statement(s, 0, from, to, &mut rewrites),
            _ => {}
        }
    }
    if rewrites.is_empty() {
        return Ok((policy.to_string(), rewrites));
    }
    let text = serde_json::to_string_pretty(&doc).map_err(|e| PolicyError(e.to_string()))?;
    Ok((text, rewrites))
}

/// True when two policy texts hold the same document (formatting and key order aside).
pub fn same_policy(a: &str, b: &str) -> bool {
    match (
        serde_json::from_str::<Value>(a),
        serde_json::from_str::<Value>(b),
    ) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

fn rewrite_statement(stmt: &mut Value, index: usize, from: &str, to: &str, out: &mut Vec<Rewrite>) {
    let Some(obj) = stmt.as_object_mut() else {
        return;
    };
    let sid = obj
        .get("Sid")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| format!("#{index}"));
    let mut record = |location: String, from_v: &str, to_v: &str| {
        out.push(Rewrite {
            statement: sid.clone(),
            location,
            from: from_v.to_string(),
            to: to_v.to_string(),
        })
    };

    for field in ["Principal", "NotPrincipal"] {
        if let Some(Value::Object(p)) = obj.get_mut(field) {
            if let Some(services) = p.get_mut("Service") {
                for_each_string(services, &mut |s| {
                    let new = rewrite_dns_name(s, from, to)?;
                    record(format!("{field}.Service"), s, &new);
                    Some(new)
                });
            }
        }
    }
    for field in ["Resource", "NotResource"] {
        if let Some(v) = obj.get_mut(field) {
            for_each_string(v, &mut |s| {
                let new = rewrite_arn(s, from, to)?;
                record(field.to_string(), s, &new);
                Some(new)
            });
        }
    }
    if let Some(Value::Object(ops)) = obj.get_mut("Condition") {
        for (op, block) in ops.iter_mut() {
            let Some(block) = block.as_object_mut() else {
                continue;
            };
            for (key, values) in block.iter_mut() {
                let lower = key.to_ascii_lowercase();
                let location = format!("Condition.{op}.{key}");
                match lower.as_str() {
                    // Which Regions may hold replicas or become primary: the same everywhere.
                    "kms:replicaregion" | "kms:primaryregion" => {}
                    "kms:viaservice" => for_each_string(values, &mut |s| {
                        let new = rewrite_dns_name(s, from, to)?;
                        record(location.clone(), s, &new);
                        Some(new)
                    }),
                    "aws:requestedregion" => for_each_string(values, &mut |s| {
                        (s == from).then(|| {
                            record(location.clone(), s, to);
                            to.to_string()
                        })
                    }),
                    _ => for_each_string(values, &mut |s| {
                        let new = rewrite_arn(s, from, to)?;
                        record(location.clone(), s, &new);
                        Some(new)
                    }),
                }
            }
        }
    }
}

/// Applies `f` to a string or to each string of a list; `Some` replaces the value.
fn for_each_string(v: &mut Value, f: &mut dyn FnMut(&str) -> Option<String>) {
    match v {
        Value::String(s) => {
            if let Some(new) = f(s) {
                *s = new;
            }
        }
        Value::Array(items) => {
            for item in items {
                if let Value::String(s) = item {
                    if let Some(new) = f(s) {
                        *s = new;
                    }
                }
            }
        }
        _ => {}
    }
}

/// `arn:<partition>:<service>:<from>:<account>:<resource>` with the Region field replaced.
/// ARNs with another Region, an empty Region (IAM, S3) or a wildcard are left alone.
fn rewrite_arn(s: &str, from: &str, to: &str) -> Option<String> {
    let mut parts = s.splitn(5, ':');
    let (arn, partition, service, region, rest) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    (arn == "arn" && region == from).then(|| format!("arn:{partition}:{service}:{to}:{rest}"))
}

/// `<service>.<from>.amazonaws.com[.cn]` with the Region label replaced: Regional service
/// principals and `kms:ViaService` values.
fn rewrite_dns_name(s: &str, from: &str, to: &str) -> Option<String> {
    let (service, rest) = s.split_once('.')?;
    let (region, suffix) = rest.split_once('.')?;
    (region == from && (suffix == "amazonaws.com" || suffix == "amazonaws.com.cn"))
        .then(|| format!("{service}.{to}.{suffix}"))
}

/// What a policy grants, statement by statement, with the Region-bearing parts left out:
/// `Sid`, `Effect`, `Action`, `NotAction` and IAM `Principal` values. A rewrite must keep it.
pub fn grant_shape(policy: &str) -> Option<Vec<Value>> {
    let doc: Value = serde_json::from_str(policy).ok()?;
    let stmts = match doc.get("Statement")? {
        Value::Array(a) => a.clone(),
        s => vec![s.clone()],
    };
    Some(
        stmts
            .iter()
            .map(|s| {
                let pick = |k: &str| s.get(k).cloned().unwrap_or(Value::Null);
                let aws = |k: &str| {
                    s.get(k)
                        .and_then(|p| p.get("AWS"))
                        .cloned()
                        .unwrap_or(Value::Null)
                };
                serde_json::json!({
                    "Sid": pick("Sid"), "Effect": pick("Effect"),
                    "Action": pick("Action"), "NotAction": pick("NotAction"),
                    "Principal.AWS": aws("Principal"), "NotPrincipal.AWS": aws("NotPrincipal"),
                    "ConditionOperators": s.get("Condition")
                        .and_then(Value::as_object)
                        .map(|c| c.keys().cloned().collect::<Vec<_>>()),
                })
            })
            .collect(),
    )
}
