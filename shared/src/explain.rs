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
        (ErrorKind::AccessDenied, _) => format!(
            "access denied in {region}: the replicator's IAM role or the key policy does not \
             allow {} ({detail})",
            e.operation
        ),
        // A timeout's message already names the Region and what it means.
        (ErrorKind::Unreachable, _) if e.message.contains("did not answer") => detail,
        (ErrorKind::Unreachable, _) => format!("KMS in {region} did not answer ({detail})"),
        (ErrorKind::Throttling, _) => format!("throttled by KMS in {region} ({detail})"),
        (ErrorKind::UnsupportedOperation, _) => {
            format!("KMS does not support this for the key ({detail})")
        }
        _ => detail,
    }
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
}
