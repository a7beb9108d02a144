//! Key policies: the default key policy KMS attaches, an example primary policy for tests and
//! the demo, and the lockout safety check that ReplicateKey and PutKeyPolicy make.

use crate::auth::KeyFacts;
use crate::state::{err, State};
use authz::Policy;
use kms_replicator::op::Op;
use kms_replicator::port::{ErrorKind, KmsResult};
use serde_json::{json, Value};

/// An example primary policy, for tests and the demo: a realistic primary policy: root delegation, a key administrator, use through S3 in the
/// primary's Region, and CloudWatch Logs' Regional principal.
pub fn example_primary_policy(account: &str) -> String {
    serde_json::to_string_pretty(&json!({
        "Version": "2012-10-17",
        "Id": "payments-key-policy",
        "Statement": [
            {
                "Sid": "Enable IAM User Permissions",
                "Effect": "Allow",
                "Principal": {"AWS": format!("arn:aws:iam::{account}:root")},
                "Action": "kms:*",
                "Resource": "*"
            },
            {
                "Sid": "AllowUseViaS3",
                "Effect": "Allow",
                "Principal": {"AWS": format!("arn:aws:iam::{account}:role/payments-app")},
                "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                "Resource": "*",
                "Condition": {"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}
            },
            {
                "Sid": "AllowCloudWatchLogs",
                "Effect": "Allow",
                "Principal": {"Service": "logs.us-east-1.amazonaws.com"},
                "Action": ["kms:Encrypt*", "kms:Decrypt*", "kms:GenerateDataKey*"],
                "Resource": "*",
                "Condition": {"ArnLike": {
                    "kms:EncryptionContext:aws:logs:arn": format!("arn:aws:logs:us-east-1:{account}:log-group:payments")
                }}
            }
        ]
    }))
    .expect("static JSON")
}

pub(crate) fn default_policy(account: &str) -> String {
    serde_json::to_string_pretty(&json!({
        "Version": "2012-10-17",
        "Id": "key-default-1",
        "Statement": [{
            "Sid": "Enable IAM User Permissions",
            "Effect": "Allow",
            "Principal": {"AWS": format!("arn:aws:iam::{account}:root")},
            "Action": "kms:*",
            "Resource": "*"
        }]
    }))
    .expect("static JSON")
}

/// The policy a write sets on `key`, checked as KMS checks it: its length, then the lockout
/// safety check for `caller` (evaluated as KMS would: could the caller change the policy
/// again under the new one, through the key policy itself or its delegation to IAM).
pub(crate) fn check_policy(
    s: &State,
    op: Op,
    caller: &str,
    key: &KeyFacts,
    policy: &str,
) -> KmsResult<()> {
    let region = key.region.as_str();
    // A length constraint of the API: the request fails validation before any check.
    if policy.len() > kms_replicator::policy::MAX_POLICY_BYTES {
        return Err(err(
            ErrorKind::Other,
            op,
            region,
            "ValidationException",
            format!(
                "1 validation error detected: Value at 'policy' failed to satisfy \
                 constraint: Member must have length less than or equal to {}",
                kms_replicator::policy::MAX_POLICY_BYTES
            ),
        ));
    }
    let verdict = if s.auth.enabled {
        Policy::parse_str(policy)
            .map(|p| s.auth.allows_later_put_key_policy(caller, key, &p))
            .map_err(|e| e.to_string())
    } else {
        allows_put_key_policy(policy, &s.account, caller)
    };
    match verdict {
        Ok(true) => Ok(()),
        Ok(false) => Err(err(ErrorKind::MalformedPolicy, op, region, "MalformedPolicyDocumentException", "The new key policy will not allow you to update the key policy in the future.")),
        Err(e) => Err(err(ErrorKind::MalformedPolicy, op, region, "MalformedPolicyDocumentException", format!("Policy contains a statement with one or more invalid principals or is not valid JSON: {e}"))),
    }
}

/// The lockout safety check: the new policy must let the caller call PutKeyPolicy later.
/// A statement allowing the account root delegates to IAM, which the caller passes.
fn allows_put_key_policy(policy: &str, account: &str, caller: &str) -> Result<bool, String> {
    let doc: Value = serde_json::from_str(policy).map_err(|e| e.to_string())?;
    let stmts = match doc.get("Statement") {
        Some(Value::Array(a)) => a.clone(),
        Some(s @ Value::Object(_)) => vec![s.clone()],
        _ => return Err("the policy has no Statement".into()),
    };
    let strings = |v: Option<&Value>| -> Vec<String> {
        match v {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
            _ => vec![],
        }
    };
    let root = format!("arn:aws:iam::{account}:root");
    Ok(stmts.iter().any(|s| {
        let allow = s.get("Effect").and_then(Value::as_str) == Some("Allow");
        let actions = strings(s.get("Action"));
        let action_ok = actions.iter().any(|a| {
            let a = a.to_ascii_lowercase();
            a == "*" || a == "kms:*" || a == "kms:putkeypolicy" || a == "kms:put*"
        });
        let principal = s.get("Principal");
        let principal_ok = match principal {
            Some(Value::String(p)) => p == "*",
            Some(Value::Object(o)) => strings(o.get("AWS"))
                .iter()
                .any(|p| p == "*" || p == &root || p == account || p == caller),
            _ => false,
        };
        allow && action_ok && principal_ok && s.get("Condition").is_none()
    }))
}
