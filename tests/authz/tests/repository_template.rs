//! The repository's own template reads: every role, every statement, for each removal policy.

use authz::cfn::{Stack, Template};
use authz::roles::roles;
use std::path::Path;

fn template(removal: &str) -> Template {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml");
    Template::load(
        &path,
        Stack::new("kms-replicator", "111122223333", "us-east-1"),
        &[
            ("AllowedRegions", "us-east-1 us-west-2 eu-west-1"),
            ("RemovalPolicy", removal),
        ],
    )
    .expect("template.yaml reads")
}

#[test]
fn every_role_of_the_template_reads_with_each_removal_policy() {
    for removal in ["Retain", "ScheduleDeletion"] {
        let rs = roles(&template(removal)).expect("roles read");
        let ids: Vec<&str> = rs.iter().map(|r| r.logical_id.as_str()).collect();
        for id in [
            "ReplicateFunctionRole",
            "ReconcileFunctionRole",
            "FailoverFunctionRole",
        ] {
            assert!(ids.contains(&id), "{id} in {ids:?}");
        }
        for r in &rs {
            assert!(r.arn.contains(":role/kms-replicator/"), "{}", r.arn);
            assert!(!r.policies.is_empty(), "{} holds no policy", r.logical_id);
        }
    }
}
