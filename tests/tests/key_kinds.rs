//! Multi-Region keys whose replicas need a person: a replica of a primary with imported key
//! material (origin EXTERNAL) is `PendingImport` until someone imports the same material there.
//! The replicator keeps mirroring it and says which Region waits and how, without retrying.

use integration_tests::{config, deliver_trail, seed_primary, PRIMARY_REGION};
use kms_replicator::model::{KeyState, Tag};
use kms_replicator::Kms;
use twin::{Twin, ADMIN_USER};

const WEST: &str = "us-west-2";

#[tokio::test]
async fn a_pending_import_replica_is_mirrored_and_its_region_told_how_to_import_without_retries() {
    let twin = Twin::new();
    let cfg = config();
    let key = seed_primary(&twin).await;
    let admin = twin.with_caller(ADMIN_USER);
    admin
        .tag_resource(PRIMARY_REGION, &key, &[Tag::new("replicate-to", WEST)])
        .await
        .unwrap();
    deliver_trail(&twin, &cfg).await;
    // The state KMS leaves a replica of an EXTERNAL primary in (the twin models only KMS key
    // material, so the state is set as KMS would have it).
    twin.set_state(WEST, &key, KeyState::PendingImport);

    admin
        .update_key_description(PRIMARY_REGION, &key, "imported material")
        .await
        .unwrap();
    let (_, errors) = deliver_trail(&twin, &cfg).await;
    assert!(
        errors.is_empty(),
        "no retry for a replica waiting for its material: {errors:?}"
    );
    let west = twin.key(WEST, &key).unwrap();
    assert_eq!(west.description, "imported material", "still mirrored");
    assert_eq!(west.state, KeyState::PendingImport);
    let said: Vec<String> = twin
        .audit_events()
        .iter()
        .filter(|e| e.detail_type == "Replication Conflict" && e.detail["region"] == WEST)
        .flat_map(|e| {
            e.detail["conflicts"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|c| c.as_str().map(str::to_string))
        .collect();
    assert!(
        said.iter().any(|c| c.contains("us-west-2 is PendingImport")
            && c.contains(&format!(
                "get-parameters-for-import --region us-west-2 --key-id {key}"
            ))
            && c.contains("import-key-material")),
        "{said:?}"
    );
}
