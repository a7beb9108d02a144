//! The `Condition` element: operators, `...IfExists`, `ForAllValues:`/`ForAnyValue:`, and
//! what an absent key means, as the IAM User Guide's "Condition operators" and "Single-valued
//! vs. multivalued context keys" pages describe them:
//! - operators AND together, keys of one operator AND together, values of one key OR together
//!   (NOR for a negated operator);
//! - a key absent from the request: a positive operator is false, a negated one (`StringNot...`,
//!   `ArnNot...`) true, `...IfExists` true, `ForAllValues:` true, `ForAnyValue:` false;
//! - `Null` tests presence: `"true"` holds when the key is absent.

use crate::context::Context;
use crate::glob;
use crate::PolicyError;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Base {
    StringEquals,
    StringEqualsIgnoreCase,
    StringLike,
    ArnLike,
    NumericEquals,
    NumericLessThan,
    NumericLessThanEquals,
    NumericGreaterThan,
    NumericGreaterThanEquals,
    Bool,
    Null,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SetOp {
    None,
    ForAllValues,
    ForAnyValue,
}

/// One operator of a `Condition` block, as written (`ForAnyValue:StringNotLikeIfExists`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    name: String,
    base: Base,
    negated: bool,
    if_exists: bool,
    set: SetOp,
}

impl Operator {
    pub fn parse(name: &str) -> Result<Operator, PolicyError> {
        let (set, rest) = if let Some(r) = name.strip_prefix("ForAllValues:") {
            (SetOp::ForAllValues, r)
        } else if let Some(r) = name.strip_prefix("ForAnyValue:") {
            (SetOp::ForAnyValue, r)
        } else {
            (SetOp::None, name)
        };
        let (if_exists, rest) = match rest.strip_suffix("IfExists") {
            Some(r) if r != "Null" => (true, r),
            _ => (false, rest),
        };
        let (base, negated) = match rest {
            "StringEquals" => (Base::StringEquals, false),
            "StringNotEquals" => (Base::StringEquals, true),
            "StringEqualsIgnoreCase" => (Base::StringEqualsIgnoreCase, false),
            "StringNotEqualsIgnoreCase" => (Base::StringEqualsIgnoreCase, true),
            "StringLike" => (Base::StringLike, false),
            "StringNotLike" => (Base::StringLike, true),
            // ArnEquals and ArnLike behave alike: each of the six parts may hold wildcards.
            "ArnEquals" | "ArnLike" => (Base::ArnLike, false),
            "ArnNotEquals" | "ArnNotLike" => (Base::ArnLike, true),
            "NumericEquals" => (Base::NumericEquals, false),
            "NumericNotEquals" => (Base::NumericEquals, true),
            "NumericLessThan" => (Base::NumericLessThan, false),
            "NumericLessThanEquals" => (Base::NumericLessThanEquals, false),
            "NumericGreaterThan" => (Base::NumericGreaterThan, false),
            "NumericGreaterThanEquals" => (Base::NumericGreaterThanEquals, false),
            "Bool" => (Base::Bool, false),
            "Null" => (Base::Null, false),
            _ => {
                return Err(PolicyError(format!(
                    "condition operator {name} is not modelled (String*, Arn*, Numeric*, Bool, \
                     Null, with IfExists and ForAllValues:/ForAnyValue:)"
                )))
            }
        };
        Ok(Operator {
            name: name.to_string(),
            base,
            negated,
            if_exists,
            set,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

/// One key of one operator, with the values the policy gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub operator: Operator,
    /// As written; condition keys are case-insensitive.
    pub key: String,
    pub values: Vec<String>,
}

impl Condition {
    /// Parses a `Condition` element: `{operator: {key: value or [values]}}`.
    pub fn parse_block(block: &Value) -> Result<Vec<Condition>, PolicyError> {
        let ops = block
            .as_object()
            .ok_or_else(|| PolicyError(format!("Condition must be an object: {block}")))?;
        let mut out = Vec::new();
        for (op, keys) in ops {
            let operator = Operator::parse(op)?;
            let keys = keys
                .as_object()
                .ok_or_else(|| PolicyError(format!("{op} must map keys to values")))?;
            for (key, values) in keys {
                let values = match values {
                    Value::Array(a) => a.iter().map(value_text).collect::<Result<_, _>>()?,
                    v => vec![value_text(v)?],
                };
                out.push(Condition {
                    operator: operator.clone(),
                    key: key.clone(),
                    values,
                });
            }
        }
        Ok(out)
    }

    /// Whether the condition holds for the request context.
    pub fn holds(&self, ctx: &Context) -> bool {
        let op = &self.operator;
        let present = ctx.get(&self.key).filter(|v| !v.is_empty());
        if op.base == Base::Null {
            let wants_absent = self.values.iter().any(|v| v.eq_ignore_ascii_case("true"));
            return wants_absent == present.is_none();
        }
        let Some(values) = present else {
            return op.if_exists || op.negated || op.set == SetOp::ForAllValues;
        };
        let one = |c: &str| {
            let any = self.values.iter().any(|p| base_match(op.base, c, p));
            any != op.negated
        };
        match op.set {
            SetOp::ForAllValues => values.iter().all(|c| one(c)),
            // A multivalued key without a set operator is read as ForAnyValue.
            SetOp::ForAnyValue | SetOp::None => values.iter().any(|c| one(c)),
        }
    }
}

fn value_text(v: &Value) -> Result<String, PolicyError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(PolicyError(format!(
            "a condition value must be a scalar: {other}"
        ))),
    }
}

fn base_match(base: Base, context: &str, policy: &str) -> bool {
    let num = |s: &str| s.trim().parse::<f64>().ok();
    let cmp = |f: fn(f64, f64) -> bool| match (num(context), num(policy)) {
        (Some(c), Some(p)) => f(c, p),
        _ => false,
    };
    match base {
        Base::StringEquals => context == policy,
        Base::StringEqualsIgnoreCase => context.eq_ignore_ascii_case(policy),
        Base::StringLike => glob::matches(policy, context),
        Base::ArnLike => glob::arn_matches(policy, context),
        Base::NumericEquals => cmp(|c, p| c == p),
        Base::NumericLessThan => cmp(|c, p| c < p),
        Base::NumericLessThanEquals => cmp(|c, p| c <= p),
        Base::NumericGreaterThan => cmp(|c, p| c > p),
        Base::NumericGreaterThanEquals => cmp(|c, p| c >= p),
        Base::Bool => context.eq_ignore_ascii_case(policy),
        Base::Null => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn holds(block: Value, ctx: &Context) -> bool {
        Condition::parse_block(&block)
            .unwrap()
            .iter()
            .all(|c| c.holds(ctx))
    }

    fn ctx(pairs: &[(&str, &[&str])]) -> Context {
        let mut c = Context::default();
        for (k, vs) in pairs {
            c.set_all(k, vs.iter().map(|v| v.to_string()));
        }
        c
    }

    #[test]
    fn an_absent_key_fails_positive_operators_and_passes_negated_and_if_exists_ones() {
        let empty = Context::default();
        assert!(!holds(
            json!({"StringEquals": {"kms:MultiRegionKeyType": "REPLICA"}}),
            &empty
        ));
        assert!(holds(
            json!({"StringNotEquals": {"kms:MultiRegionKeyType": "REPLICA"}}),
            &empty
        ));
        assert!(holds(
            json!({"StringEqualsIfExists": {"kms:MultiRegionKeyType": "REPLICA"}}),
            &empty
        ));
        assert!(holds(
            json!({"BoolIfExists": {"kms:MultiRegion": "true"}}),
            &empty
        ));
        assert!(holds(
            json!({"ForAllValues:StringEquals": {"aws:TagKeys": ["a"]}}),
            &empty
        ));
        assert!(!holds(
            json!({"ForAnyValue:StringEquals": {"aws:TagKeys": ["a"]}}),
            &empty
        ));
        assert!(holds(
            json!({"Null": {"aws:RequestTag/team": "true"}}),
            &empty
        ));
        assert!(!holds(
            json!({"Null": {"aws:RequestTag/team": "false"}}),
            &empty
        ));
    }

    #[test]
    fn values_or_together_keys_and_operators_and_together_and_negation_is_nor() {
        let c = ctx(&[
            ("aws:RequestedRegion", &["us-west-2"]),
            ("kms:MultiRegionKeyType", &["REPLICA"]),
        ]);
        assert!(holds(
            json!({"StringEquals": {"aws:RequestedRegion": ["us-east-1", "us-west-2"],
                                   "kms:MultiRegionKeyType": "REPLICA"}}),
            &c
        ));
        assert!(!holds(
            json!({"StringEquals": {"aws:RequestedRegion": ["us-east-1", "us-west-2"],
                                   "kms:MultiRegionKeyType": "PRIMARY"}}),
            &c
        ));
        assert!(!holds(
            json!({"StringNotEquals": {"aws:RequestedRegion": ["us-east-1", "us-west-2"]}}),
            &c
        ));
        assert!(holds(
            json!({"StringNotEquals": {"aws:RequestedRegion": ["eu-west-1"]}}),
            &c
        ));
        // Keys are case-insensitive; values are not.
        assert!(holds(
            json!({"StringEquals": {"KMS:multiregionkeytype": "REPLICA"}}),
            &c
        ));
        assert!(!holds(
            json!({"StringEquals": {"kms:MultiRegionKeyType": "replica"}}),
            &c
        ));
        assert!(holds(
            json!({"StringEqualsIgnoreCase": {"kms:MultiRegionKeyType": "replica"}}),
            &c
        ));
    }

    #[test]
    fn set_operators_compare_every_or_any_request_value() {
        let c = ctx(&[("aws:TagKeys", &["team", "kms-replicator:hold"])]);
        assert!(!holds(
            json!({"ForAllValues:StringEquals": {"aws:TagKeys": ["team"]}}),
            &c
        ));
        assert!(holds(
            json!({"ForAllValues:StringLike": {"aws:TagKeys": ["team", "kms-replicator:*"]}}),
            &c
        ));
        assert!(holds(
            json!({"ForAnyValue:StringLike": {"aws:TagKeys": "kms-replicator:*"}}),
            &c
        ));
        assert!(!holds(
            json!({"ForAnyValue:StringLike": {"aws:TagKeys": "replicate-*"}}),
            &c
        ));
    }

    #[test]
    fn like_arn_numeric_and_bool_operators_compare_as_aws_does() {
        let c = ctx(&[
            (
                "aws:SourceArn",
                &["arn:aws:logs:us-east-1:111122223333:log-group:audit"],
            ),
            ("kms:ScheduleKeyDeletionPendingWindowInDays", &["7"]),
            ("kms:BypassPolicyLockoutSafetyCheck", &["false"]),
            ("kms:ViaService", &["s3.us-east-1.amazonaws.com"]),
        ]);
        assert!(holds(
            json!({"ArnLike": {"aws:SourceArn": "arn:aws:logs:*:111122223333:*"}}),
            &c
        ));
        assert!(!holds(
            json!({"ArnLike": {"aws:SourceArn": "arn:aws:logs:*:444455556666:*"}}),
            &c
        ));
        assert!(holds(
            json!({"NumericGreaterThanEquals": {"kms:ScheduleKeyDeletionPendingWindowInDays": 7}}),
            &c
        ));
        assert!(!holds(
            json!({"NumericGreaterThan": {"kms:ScheduleKeyDeletionPendingWindowInDays": "7"}}),
            &c
        ));
        assert!(!holds(
            json!({"Bool": {"kms:BypassPolicyLockoutSafetyCheck": "true"}}),
            &c
        ));
        assert!(holds(
            json!({"StringLike": {"kms:ViaService": "s3.*.amazonaws.com"}}),
            &c
        ));
    }

    #[test]
    fn an_unknown_operator_is_refused_rather_than_ignored() {
        assert!(
            Condition::parse_block(&json!({"DateLessThan": {"aws:CurrentTime": "x"}})).is_err()
        );
        assert!(Condition::parse_block(&json!({"StringEqualz": {"k": "v"}})).is_err());
    }
}
