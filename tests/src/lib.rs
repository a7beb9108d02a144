//! Shared helpers for the end-to-end tests: real fixtures, a seeded KMS twin, and the
//! replicate handler wired to it.

use kms_replicator::desired::is_replicator_tag;
use kms_replicator::model::Tag;
use kms_replicator::Config;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use twin::{Twin, ADMIN_USER};

pub const PRIMARY_REGION: &str = "us-east-1";

/// The folder of real CloudTrail/EventBridge payloads.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/cloudtrail")
}

/// Every fixture: (file name, parsed event).
pub fn fixtures() -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = std::fs::read_dir(fixtures_dir())
        .expect("fixtures folder")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("readable fixture");
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            (name, serde_json::from_str(&text).expect("fixture is JSON"))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// A key's tags as people see them: without the replicator's own bookkeeping tags (the
/// Regions that held the primary, the deletion marker), which are not mirrored.
pub fn people_tags(tags: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    tags.iter()
        .filter(|(k, _)| !is_replicator_tag(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The deployment's configuration in these tests: three allowed Regions.
pub fn config() -> Config {
    Config::new(&["us-east-1", "us-west-2", "eu-west-1"])
}

/// The example primary policy of the tests and the demo (see
/// [`twin::example_primary_policy`]).
pub fn primary_policy(account: &str) -> String {
    twin::example_primary_policy(account)
}

/// A multi-Region primary in us-east-1 made by a person: policy, description, a team tag
/// and two aliases. Returns its key id. The trail holds the person's CreateKey/CreateAlias.
pub async fn seed_primary(twin: &Twin) -> String {
    use kms_replicator::Kms;
    let admin = twin.with_caller(ADMIN_USER);
    let policy = primary_policy(&twin.account());
    let key = admin.create_key(
        PRIMARY_REGION,
        true,
        Some(&policy),
        "payments data key",
        &[Tag::new("team", "payments")],
    );
    for alias in ["alias/payments", "alias/payments-ledger"] {
        admin
            .create_alias(PRIMARY_REGION, alias, &key.key_id)
            .await
            .unwrap();
    }
    key.key_id
}
