//! Sentences a person can act on, for the KMS errors a sync meets.

use crate::op::Op;
use crate::port::{ErrorKind, KmsError};

/// What went wrong and what to do about it, with AWS's own code and message kept at the end.
pub fn explain(e: &KmsError) -> String {
    let detail = format!("{} {}: {}", e.operation, e.code, e.message);
    let region = &e.region;
    match (e.kind, e.operation) {
        (ErrorKind::MalformedPolicy, _) => explain_malformed_policy(e, &detail),
        (ErrorKind::Disabled, Op::ReplicateKey) => {
            format!("the primary key is disabled; enable it to create replicas ({detail})")
        }
        (ErrorKind::AccessDenied, _) => explain_access_denied(e, &detail),
        // A timeout's message already names the Region and what it means.
        (ErrorKind::Unreachable, _) if e.message.contains("did not answer") => detail,
        (ErrorKind::Unreachable, _) => format!("KMS in {region} did not answer ({detail})"),
        (ErrorKind::Throttling, _) => format!("throttled by KMS in {region} ({detail})"),
        // An opt-in Region the account has not enabled answers every call so.
        _ if matches!(
            e.code.as_str(),
            "UnrecognizedClientException" | "InvalidClientTokenId"
        ) =>
        {
            format!(
                "KMS in {region} does not accept the replicator's credentials: {region} is most \
                 likely an opt-in Region the account has not enabled. Enable it (aws account \
                 enable-region --region-name {region}), or remove it from the tag and from \
                 AllowedRegions ({detail})"
            )
        }
        (ErrorKind::UnsupportedOperation, _) => {
            format!("KMS does not support this for the key ({detail})")
        }
        _ => detail,
    }
}

/// What AWS's refusal says: who, which action, on what, and which kind of policy refused.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal<'a> {
    pub principal: &'a str,
    pub action: &'a str,
    pub resource: &'a str,
    pub because: &'a str,
}

/// Reads "User: P is not authorized to perform: A on resource: R because B", the shape of
/// AWS's AccessDeniedException messages.
pub fn refusal(message: &str) -> Option<Refusal<'_>> {
    let rest = message.strip_prefix("User: ")?;
    let (principal, rest) = rest.split_once(" is not authorized to perform: ")?;
    let (action, rest) = rest.split_once(" on resource: ")?;
    let (resource, because) = match rest.split_once(" because ") {
        Some((r, b)) => (r, b),
        None => (rest, ""),
    };
    Some(Refusal {
        principal,
        action,
        resource,
        because,
    })
}

/// A refusal is permanent until someone changes a policy: say whose policy and what to add.
fn explain_access_denied(e: &KmsError, detail: &str) -> String {
    let region = &e.region;
    let Some(r) = refusal(&e.message) else {
        return format!(
            "access denied in {region}: the replicator's IAM role or the key policy does not \
             allow {} ({detail})",
            e.operation
        );
    };
    let (who, action, resource) = (r.principal, r.action, r.resource);
    let because = r.because;
    let fix = if because.contains("no resource-based policy allows") {
        format!(
            "the key policy of {resource} lets neither {who} nor the account (through IAM) call \
             {action}. To let the replicator manage the key, its owners add the default key \
             policy's statement that delegates to IAM (Principal \"arn:aws:iam::<account>:root\", \
             Action \"kms:*\") or a statement that allows the function's role (its ARN is in the \
             stack's outputs) {action}"
        )
    } else if because.contains("explicit deny in a resource-based policy") {
        format!(
            "the key policy of {resource} denies {action} to {who} explicitly: the replicator \
             leaves the key as it is until its owners change that statement"
        )
    } else if because.contains("explicit deny in an identity-based policy") {
        format!(
            "an identity-based policy of {who} (the role's policies, a permissions boundary or a \
             service control policy) denies {action} on {resource} explicitly"
        )
    } else {
        format!(
            "the IAM policies of {who} (template.yaml's statements for this deployment) do not \
             allow {action} on {resource} in {region}: check AllowedRegions and RemovalPolicy, or \
             a permissions boundary"
        )
    };
    format!("access denied: {fix}; retrying will not help ({detail})")
}

/// KMS answers MalformedPolicyDocumentException for three different problems; its message
/// says which.
fn explain_malformed_policy(e: &KmsError, detail: &str) -> String {
    let region = &e.region;
    let message = e.message.to_ascii_lowercase();
    if message.contains("will not allow you to update the key policy") {
        format!(
            "the primary's key policy would lock the replicator out of the replica in {region} \
             (KMS's lockout safety check: the policy must let the replicator's role call \
             PutKeyPolicy); the replicator never bypasses that check, so allow its role in the \
             primary's policy ({detail})"
        )
    } else if message.contains("principal") {
        format!(
            "KMS in {region} does not accept a principal in the primary's key policy: a role \
             or user that was deleted or does not exist, or an account or service KMS cannot \
             find. Fix or remove that principal in the primary's policy; the replica is \
             written on the next change or sweep ({detail})"
        )
    } else {
        format!(
            "KMS in {region} refused the mirrored key policy as malformed; check the primary's \
             policy (and the rewrite shown in the report) against KMS's policy syntax \
             ({detail})"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn malformed(message: &str) -> KmsError {
        KmsError::new(
            ErrorKind::MalformedPolicy,
            Op::PutKeyPolicy,
            "us-west-2",
            "MalformedPolicyDocumentException",
            message,
        )
    }

    #[test]
    fn a_malformed_policy_is_explained_from_aws_own_message() {
        let lockout = explain(&malformed(
            "The new key policy will not allow you to update the key policy in the future.",
        ));
        assert!(lockout.contains("lock the replicator out"), "{lockout}");
        let principal = explain(&malformed(
            "Policy contains a statement with one or more invalid principals.",
        ));
        assert!(
            principal.contains("deleted or does not exist"),
            "{principal}"
        );
        assert!(!principal.contains("lock"), "{principal}");
        let other = explain(&malformed("Invalid policy syntax."));
        assert!(other.contains("refused the mirrored key policy"), "{other}");
        for text in [lockout, principal, other] {
            assert!(text.contains("MalformedPolicyDocumentException"));
        }
    }

    fn denied(message: &str) -> KmsError {
        KmsError::new(
            ErrorKind::AccessDenied,
            Op::ReplicateKey,
            "us-east-1",
            "AccessDeniedException",
            message,
        )
    }

    const ROLE: &str = "arn:aws:sts::111122223333:assumed-role/kr-Replicate/kr-Replicate";

    #[test]
    fn a_key_policy_that_does_not_admit_the_replicator_is_said_with_the_statement_to_add() {
        let e = denied(&format!(
            "User: {ROLE} is not authorized to perform: kms:ReplicateKey on resource: \
             arn:aws:kms:us-east-1:111122223333:key/mrk-1 because no resource-based policy \
             allows the kms:ReplicateKey action"
        ));
        let text = explain(&e);
        assert!(
            text.contains("the key policy of arn:aws:kms:us-east-1:111122223333:key/mrk-1"),
            "{text}"
        );
        assert!(text.contains("arn:aws:iam::<account>:root"), "{text}");
        assert!(text.contains("retrying will not help"), "{text}");
        assert!(!e.is_retryable());
    }

    #[test]
    fn an_iam_refusal_points_at_the_roles_policies_and_the_deployment() {
        let e = denied(&format!(
            "User: {ROLE} is not authorized to perform: kms:TagResource on resource: * because \
             no identity-based policy allows the kms:TagResource action"
        ));
        let text = explain(&e);
        assert!(text.contains("the IAM policies of"), "{text}");
        assert!(text.contains("kms:TagResource on * in us-east-1"), "{text}");
    }

    #[test]
    fn explicit_denies_say_which_kind_of_policy_denies() {
        let key = denied(&format!(
            "User: {ROLE} is not authorized to perform: kms:PutKeyPolicy on resource: k because \
             with an explicit deny in a resource-based policy"
        ));
        assert!(explain(&key).contains("denies kms:PutKeyPolicy to"));
        let iam = denied(&format!(
            "User: {ROLE} is not authorized to perform: kms:PutKeyPolicy on resource: k because \
             with an explicit deny in an identity-based policy"
        ));
        assert!(explain(&iam).contains("permissions boundary or a service control policy"));
    }

    #[test]
    fn a_refusal_of_another_shape_keeps_the_general_sentence() {
        let text = explain(&denied("Access denied"));
        assert!(text.starts_with("access denied in us-east-1"), "{text}");
    }
}
