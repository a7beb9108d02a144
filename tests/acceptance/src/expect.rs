//! The test key, and what its replicas must hold: its names (unique per run), its policy in
//! each Region, and the comparison of a replica with its primary. Written from the product's
//! promise (README, "What a replica mirrors"), not from its code: the harness judges the
//! deployed replicator from outside, as a person would. Pure: no calls.

use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, RandomState};

/// The tag that marks a key as this harness's, with the run id as its value.
pub const MARK_TAG: &str = "kms-replicator-acceptance";

/// Tags the replicator writes for itself (`kms-replicator:primary-regions`, ...): not
/// mirrored, so not compared.
const REPLICATOR_TAG_PREFIX: &str = "kms-replicator:";

/// Eight hex digits, new for every run (std's hasher keys are random per process).
pub fn run_id() -> String {
    let n = RandomState::new().hash_one(std::time::SystemTime::now());
    format!("{:08x}", n as u32)
}

pub fn alias(run_id: &str) -> String {
    format!("alias/kms-replicator-acceptance-{run_id}")
}

pub fn description(run_id: &str) -> String {
    format!(
        "kms-replicator acceptance test key, run {run_id}; made by make acceptance, safe to delete"
    )
}

/// The test key's policy as it must read in `region`: the account-root statement (so IAM
/// decides, and the person keeps control of the key), and use through S3 (and, after the
/// policy edit, Secrets Manager) in the key's own Region: a Region token the replicator
/// rewrites in each replica.
pub fn key_policy(account: &str, region: &str, edited: bool) -> Value {
    let root = format!("arn:aws:iam::{account}:root");
    let via = |service: &str, sid: &str, actions: Value| {
        json!({
            "Sid": sid,
            "Effect": "Allow",
            "Principal": {"AWS": root},
            "Action": actions,
            "Resource": "*",
            "Condition": {"StringEquals": {
                "kms:ViaService": format!("{service}.{region}.amazonaws.com"),
                "kms:CallerAccount": account
            }}
        })
    };
    let mut statements = vec![
        json!({
            "Sid": "Enable IAM User Permissions",
            "Effect": "Allow",
            "Principal": {"AWS": root},
            "Action": "kms:*",
            "Resource": "*"
        }),
        via(
            "s3",
            "AllowUseThroughS3InTheKeysRegion",
            json!(["kms:Decrypt", "kms:GenerateDataKey"]),
        ),
    ];
    if edited {
        statements.push(via(
            "secretsmanager",
            "AllowUseThroughSecretsManagerInTheKeysRegion",
            json!("kms:Decrypt"),
        ));
    }
    json!({"Version": "2012-10-17", "Id": "kms-replicator-acceptance", "Statement": statements})
}

/// What the replicator mirrors of a key in one Region.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mirrored {
    pub policy: String,
    pub aliases: BTreeSet<String>,
    pub tags: BTreeMap<String, String>,
    pub description: String,
}

/// How a replica differs from what it must hold, one line per difference; empty when it
/// mirrors the primary. `policy` is the policy the replica must have (the primary's,
/// rewritten for the replica's Region); policies are compared as JSON, since the replicator
/// may write them compactly.
pub fn differences(primary: &Mirrored, replica: &Mirrored, policy: &Value) -> Vec<String> {
    let mut d = Vec::new();
    match serde_json::from_str::<Value>(&replica.policy) {
        Ok(p) if &p == policy => {}
        Ok(p) => d.push(format!("policy is {p}, not {policy}")),
        Err(_) => d.push(format!("policy is not JSON: {}", replica.policy)),
    }
    let missing: Vec<&String> = primary.aliases.difference(&replica.aliases).collect();
    if !missing.is_empty() {
        d.push(format!(
            "aliases lack {missing:?} (has {:?})",
            replica.aliases
        ));
    }
    let people = |t: &BTreeMap<String, String>| -> BTreeMap<String, String> {
        t.iter()
            .filter(|(k, _)| !k.starts_with(REPLICATOR_TAG_PREFIX))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    if people(&primary.tags) != people(&replica.tags) {
        d.push(format!(
            "tags are {:?}, not {:?}",
            people(&replica.tags),
            people(&primary.tags)
        ));
    }
    if primary.description != replica.description {
        d.push(format!(
            "description is {:?}, not {:?}",
            replica.description, primary.description
        ));
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mirrored(policy: &Value) -> Mirrored {
        Mirrored {
            policy: policy.to_string(),
            aliases: ["alias/kms-replicator-acceptance-1".to_string()].into(),
            tags: [
                ("replicate-to".to_string(), "us-west-2".to_string()),
                (MARK_TAG.to_string(), "1".to_string()),
            ]
            .into(),
            description: description("1"),
        }
    }

    #[test]
    fn run_ids_are_eight_hex_digits_and_differ_between_runs() {
        let (a, b) = (run_id(), run_id());
        assert_eq!(a.len(), 8);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert_eq!(alias(&a), format!("alias/kms-replicator-acceptance-{a}"));
    }

    #[test]
    fn the_policy_names_its_region_in_the_service_and_the_edit_adds_one_statement() {
        let p = key_policy("111122223333", "eu-west-1", false);
        let text = p.to_string();
        assert!(text.contains("s3.eu-west-1.amazonaws.com"));
        assert!(!text.contains("us-east-1"));
        let edited = key_policy("111122223333", "eu-west-1", true);
        assert_eq!(edited["Statement"].as_array().unwrap().len(), 3);
        assert_eq!(
            edited["Statement"].as_array().unwrap()[..2],
            p["Statement"].as_array().unwrap()[..]
        );
    }

    #[test]
    fn a_replica_that_mirrors_the_primary_has_no_difference_whatever_the_policy_layout() {
        let west = key_policy("1", "us-west-2", false);
        let primary = mirrored(&key_policy("1", "us-east-1", false));
        let mut replica = mirrored(&west);
        replica.policy = serde_json::to_string_pretty(&west).unwrap();
        replica
            .tags
            .insert("kms-replicator:primary-regions".into(), "us-east-1".into());
        assert_eq!(differences(&primary, &replica, &west), Vec::<String>::new());
    }

    #[test]
    fn each_property_that_differs_is_named() {
        let west = key_policy("1", "us-west-2", false);
        let primary = mirrored(&key_policy("1", "us-east-1", false));
        let mut replica = mirrored(&key_policy("1", "us-east-1", false));
        replica.aliases.clear();
        replica.tags.remove(MARK_TAG);
        replica.description = "default".into();
        let d = differences(&primary, &replica, &west);
        assert_eq!(d.len(), 4, "{d:?}");
        assert!(d[0].starts_with("policy is"));
        assert!(d[1].starts_with("aliases lack"));
        assert!(d[2].starts_with("tags are"));
        assert!(d[3].starts_with("description is"));
    }
}
