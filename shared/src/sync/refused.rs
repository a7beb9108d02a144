//! ReplicateKey refusals that no retry lifts: the target Region does not offer the key's
//! spec (HMAC keys are not available in every Region), or it is an opt-in Region the account
//! has not enabled. KMS answers both in the primary's Region, so its error names that Region;
//! the outcome names the target, says why and what a person can do.

use crate::op::Op;
use crate::port::{ErrorKind, KmsError};
use crate::report::Outcome;

/// The outcome of a ReplicateKey into `target` that failed with `e`.
pub(super) fn replicate_failed(e: &KmsError, target: &str, tag_key: &str) -> Outcome {
    if e.operation != Op::ReplicateKey || e.kind != ErrorKind::UnsupportedOperation {
        return super::failed(e);
    }
    let detail = format!("{} in {}: {}: {}", e.operation, e.region, e.code, e.message);
    let m = e.message.to_ascii_lowercase();
    let fix = if m.contains("not enabled") || m.contains("opt-in") || m.contains("opted") {
        not_enabled(target, tag_key)
    } else if m.contains("keyspec") || m.contains("key spec") || m.contains("hmac") {
        spec_unavailable(target, tag_key)
    } else if m.contains("not a multi-region primary") {
        return super::failed(e);
    } else {
        format!(
            "{}; or {}",
            spec_unavailable(target, tag_key),
            not_enabled(target, tag_key)
        )
    };
    Outcome::failed(
        format!("KMS refused to create the replica in {target}: {fix} ({detail})"),
        false,
    )
}

fn spec_unavailable(target: &str, tag_key: &str) -> String {
    format!(
        "KMS in {target} does not offer this key's spec (HMAC keys, for one, are not available \
         in every Region), and retrying does not change that. Remove {target} from the \
         {tag_key} tag, or replicate a key of a spec {target} offers"
    )
}

fn not_enabled(target: &str, tag_key: &str) -> String {
    format!(
        "{target} is an opt-in Region that the account has not enabled, and retrying does not \
         change that. Enable it (aws account enable-region --region-name {target}) and tag \
         again, or remove {target} from the {tag_key} tag (and from AllowedRegions)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(message: &str) -> KmsError {
        KmsError::new(
            ErrorKind::UnsupportedOperation,
            Op::ReplicateKey,
            "us-east-1",
            "UnsupportedOperationException",
            message,
        )
    }

    fn reason(o: &Outcome) -> (&str, bool) {
        match o {
            Outcome::Failed { reason, retryable } => (reason, *retryable),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn each_refusal_names_the_target_and_its_remedy_and_is_permanent() {
        let spec = replicate_failed(
            &refusal("KeySpec HMAC_256 is not supported in ap-east-1"),
            "ap-east-1",
            "replicate-to",
        );
        let (r, retryable) = reason(&spec);
        assert!(!retryable);
        assert!(
            r.contains("replica in ap-east-1") && r.contains("does not offer"),
            "{r}"
        );
        assert!(!r.contains("opt-in"), "{r}");
        let opt_in = replicate_failed(
            &refusal("ReplicaRegion ap-east-1 is not enabled for account 1"),
            "ap-east-1",
            "replicate-to",
        );
        let (r, _) = reason(&opt_in);
        assert!(r.contains("enable-region --region-name ap-east-1"), "{r}");
        assert!(!r.contains("does not offer"), "{r}");
        // A refusal that says neither: both remedies.
        let neither = replicate_failed(&refusal("not valid"), "ap-east-1", "t");
        let (r, _) = reason(&neither);
        assert!(r.contains("does not offer") && r.contains("opt-in"), "{r}");
        // Not a Region's refusal: the usual explanation.
        let other = replicate_failed(
            &refusal("arn:... is not a multi-Region primary key."),
            "ap-east-1",
            "t",
        );
        let (r, _) = reason(&other);
        assert!(!r.contains("KMS refused to create the replica"), "{r}");
    }
}
