//! Mirroring a key policy into another Region.
//!
//! Only Region tokens in structured positions are rewritten, never by blind string replace:
//! `kms:ViaService` values, Regional service principals, the Region field of ARNs in `Resource`
//! and in `Condition` values, and `aws:RequestedRegion` values equal to the source Region.
//! `Sid`, `Effect`, `Action`, IAM principals, wildcards, and the `kms:ReplicaRegion` and
//! `kms:PrimaryRegion` lists stay as they are. Three rules keep a rewrite from ever widening
//! access:
//!
//! - **Deny never narrows.** Multi-Region ciphertext is portable, so a replica receives what
//!   the source Region encrypted, with the source Region's context. In a `Deny`, a positive
//!   position (`Resource`, a service principal, a condition without `Not`) keeps the source
//!   value and gains the rewritten one; only negated positions are rewritten in place.
//! - **A statement that already names another Region is multi-Region-aware** and is copied as
//!   it is. This also makes a failover round trip give back the original policy. A `Deny` is
//!   the exception in its positive positions: they still gain the target Region's values, so
//!   that after any number of promotions every Region denies what the source denies and its
//!   own rewritten values (a replica promoted earlier already names two Regions; copying it
//!   as it is would drop the third Region's own value).
//! - **Size.** The result is compact JSON, the source text itself when nothing is rewritten,
//!   and is checked against KMS's limit ([`MAX_POLICY_BYTES`]) before anyone sends it.

use crate::region::is_region_name;
use serde::Serialize;
use serde_json::Value;
use thiserror::Error;

/// KMS refuses key policies larger than this (CreateKey, PutKeyPolicy, ReplicateKey).
pub const MAX_POLICY_BYTES: usize = 32_768;

/// One value changed by a rewrite, for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rewrite {
    /// The statement's `Sid`, or `#<index>` when it has none.
    pub statement: String,
    /// Where in the statement, e.g. `Condition.StringEquals.kms:ViaService`.
    pub location: String,
    pub from: String,
    pub to: String,
    /// True when `from` was kept beside `to` (a positive position of a `Deny`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub kept: bool,
}

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error("the key policy is not a JSON policy document: {0}")]
    NotAPolicy(String),
    #[error(
        "the mirrored key policy would be {bytes} bytes, over KMS's limit of {MAX_POLICY_BYTES} \
         bytes; shorten the primary's policy (Deny statements gain the target Region's values \
         beside their own)"
    )]
    TooLarge { bytes: usize },
}

/// The policy for `to`, and the list of rewrites made. With no rewrites the original text is
/// returned unchanged, byte for byte; otherwise the document is written compactly.
pub fn rewrite_policy(
    policy: &str,
    from: &str,
    to: &str,
) -> Result<(String, Vec<Rewrite>), PolicyError> {
    let mut doc: Value =
        serde_json::from_str(policy).map_err(|e| PolicyError::NotAPolicy(e.to_string()))?;
    if !doc.is_object() {
        return Err(PolicyError::NotAPolicy(
            "the top level is not an object".into(),
        ));
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
    let text = if rewrites.is_empty() {
        policy.to_string()
    } else {
        serde_json::to_string(&doc).map_err(|e| PolicyError::NotAPolicy(e.to_string()))?
    };
    check_size(&text)?;
    Ok((text, rewrites))
}

/// KMS's size limit, checked before a policy is sent.
pub fn check_size(policy: &str) -> Result<(), PolicyError> {
    if policy.len() > MAX_POLICY_BYTES {
        return Err(PolicyError::TooLarge {
            bytes: policy.len(),
        });
    }
    Ok(())
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

/// Which positions of a statement carry Region tokens, and whether each is negated.
enum Position {
    /// A `Principal`/`NotPrincipal` `Service` value: `logs.<region>.amazonaws.com`.
    Service,
    /// An ARN whose Region field may be the source Region.
    Arn,
    /// `kms:ViaService`: `<service>.<region>.amazonaws.com`.
    ViaService,
    /// `aws:RequestedRegion`: a bare Region name.
    RequestedRegion,
}

impl Position {
    fn rewrite(&self, s: &str, from: &str, to: &str) -> Option<String> {
        match self {
            Position::Service | Position::ViaService => rewrite_dns_name(s, from, to),
            Position::Arn => rewrite_arn(s, from, to),
            Position::RequestedRegion => (s == from).then(|| to.to_string()),
        }
    }

    /// The Region a value names, if any (wildcards and empty Region fields name none).
    fn region_of<'s>(&self, s: &'s str) -> Option<&'s str> {
        let r = match self {
            Position::Service | Position::ViaService => dns_region(s)?,
            Position::Arn => arn_region(s)?,
            Position::RequestedRegion => s,
        };
        is_region_name(r).then_some(r)
    }
}

/// Every Region-bearing value slot of a statement: (location, position, negated).
fn slots(obj: &serde_json::Map<String, Value>) -> Vec<(String, Position, bool)> {
    let mut out = Vec::new();
    for (field, negated) in [("Principal", false), ("NotPrincipal", true)] {
        if matches!(obj.get(field), Some(Value::Object(p)) if p.contains_key("Service")) {
            out.push((format!("{field}.Service"), Position::Service, negated));
        }
    }
    for (field, negated) in [("Resource", false), ("NotResource", true)] {
        if obj.contains_key(field) {
            out.push((field.to_string(), Position::Arn, negated));
        }
    }
    if let Some(Value::Object(ops)) = obj.get("Condition") {
        for (op, block) in ops {
            let Some(block) = block.as_object() else {
                continue;
            };
            let negated = op.contains("Not");
            for key in block.keys() {
                let position = match key.to_ascii_lowercase().as_str() {
                    // Which Regions may hold replicas or become primary: the same everywhere.
                    "kms:replicaregion" | "kms:primaryregion" => continue,
                    "kms:viaservice" => Position::ViaService,
                    "aws:requestedregion" => Position::RequestedRegion,
                    _ => Position::Arn,
                };
                out.push((format!("Condition.{op}.{key}"), position, negated));
            }
        }
    }
    out
}

/// The value at a slot's location (`Principal.Service`, `Resource`, `Condition.<op>.<key>`).
fn slot_mut<'v>(
    obj: &'v mut serde_json::Map<String, Value>,
    location: &str,
) -> Option<&'v mut Value> {
    let mut parts = location.splitn(3, '.');
    let first = parts.next()?;
    let mut v = obj.get_mut(first)?;
    for part in parts {
        v = v.get_mut(part)?;
    }
    Some(v)
}

fn strings(v: &Value) -> Vec<&str> {
    match v {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
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
    let deny = obj.get("Effect").and_then(Value::as_str) == Some("Deny");
    let slots = slots(obj);

    // A statement naming a Region other than the source is multi-Region-aware: copy it,
    // except the positive positions of a Deny, which only ever gain values.
    let names_another_region = slots.iter().any(|(location, position, _)| {
        slot_mut(obj, location).is_some_and(|v| {
            strings(v)
                .iter()
                .any(|s| position.region_of(s).is_some_and(|r| r != from))
        })
    });
    if names_another_region && !deny {
        return;
    }

    for (location, position, negated) in slots {
        let keep = deny && !negated;
        if names_another_region && !keep {
            continue;
        }
        let Some(value) = slot_mut(obj, &location) else {
            continue;
        };
        let mut changes = Vec::new();
        let mut rewrite_one = |s: &str| {
            let new = position.rewrite(s, from, to)?;
            changes.push((s.to_string(), new.clone()));
            Some(new)
        };
        if keep {
            let added: Vec<String> = strings(value)
                .into_iter()
                .filter_map(&mut rewrite_one)
                .collect();
            if !added.is_empty() {
                let mut all: Vec<Value> = match value.take() {
                    Value::Array(items) => items,
                    other => vec![other],
                };
                for a in added {
                    if !all.iter().any(|v| v.as_str() == Some(&a)) {
                        all.push(Value::String(a));
                    }
                }
                *value = Value::Array(all);
            }
        } else {
            for_each_string(value, &mut rewrite_one);
        }
        out.extend(changes.into_iter().map(|(f, t)| Rewrite {
            statement: sid.clone(),
            location: location.clone(),
            from: f,
            to: t,
            kept: keep,
        }));
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

/// The Region field of an ARN (`arn:<partition>:<service>:<region>:...`).
fn arn_region(s: &str) -> Option<&str> {
    let mut parts = s.splitn(5, ':');
    (parts.next()? == "arn").then_some(())?;
    parts.next()?;
    parts.next()?;
    parts.next()
}

/// The Region label of `<service>.<region>.amazonaws.com[.cn]`.
fn dns_region(s: &str) -> Option<&str> {
    let (_, rest) = s.split_once('.')?;
    let (region, suffix) = rest.split_once('.')?;
    (suffix == "amazonaws.com" || suffix == "amazonaws.com.cn").then_some(region)
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
