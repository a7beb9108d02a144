//! Journey 1, tag a key: Alice creates a key, tags it with the Regions it should live in, and
//! changes it; the replicas follow.

use crate::demo::{primary_policy, short, tag, Demo, HOME};
use kms_replicator::model::KeyState;
use kms_replicator::Kms;

/// A multi-Region primary with a policy and two aliases, left alone while it is untagged.
/// Returns its key id.
pub async fn create_key_with_aliases(demo: &mut Demo) -> Result<String, String> {
    let step = demo.begin("Alice creates a multi-Region key with a policy and two aliases");
    let kms = demo.kms(HOME).await;
    demo.cli("aws kms create-key --multi-region --policy file://policy.json --description 'payments data key' --tags TagKey=team,TagValue=payments");
    let key = kms
        .create_key()
        .multi_region(true)
        .policy(primary_policy())
        .description("payments data key")
        .tags(tag("team", "payments"))
        .send()
        .await
        .map_err(|e| format!("CreateKey: {e:?}"))?
        .key_metadata
        .ok_or("CreateKey returned no KeyMetadata")?
        .key_id;
    for alias in ["alias/payments", "alias/payments-ledger"] {
        demo.cli(&format!(
            "aws kms create-alias --alias-name {alias} --target-key-id {}",
            short(&key)
        ));
        kms.create_alias()
            .alias_name(alias)
            .target_key_id(&key)
            .send()
            .await
            .map_err(|e| format!("CreateAlias: {e:?}"))?;
    }
    demo.say(&format!("key {key} in {HOME}"));
    demo.settle().await;
    let info = demo
        .reader
        .describe_key(HOME, &key)
        .await
        .map_err(|e| e.to_string())?;
    demo.check(
        info.is_primary()
            && info
                .multi_region
                .as_ref()
                .is_some_and(|m| m.replica_regions.is_empty()),
        "the key is a multi-Region PRIMARY with no replicas yet (untagged keys are left alone)",
    );
    demo.end(step);
    Ok(key)
}

/// The tag brings replicas in both Regions; a key of another Region is replicated through
/// the forwarder.
pub async fn tag_for_two_regions(demo: &mut Demo, key: &str) -> Result<(), String> {
    let step = demo.begin("Alice tags it for two Regions: replicate-to = \"us-west-2 eu-west-1\"");
    let kms = demo.kms(HOME).await;
    demo.cli(&format!(
        "aws kms tag-resource --key-id {} --tags 'TagKey=replicate-to,TagValue=us-west-2 eu-west-1'",
        short(key)
    ));
    kms.tag_resource()
        .key_id(key)
        .tags(tag("replicate-to", "us-west-2 eu-west-1"))
        .send()
        .await
        .map_err(|e| format!("TagResource: {e:?}"))?;
    demo.settle().await;
    demo.verify_replica(key, "us-west-2", true).await;
    demo.verify_replica(key, "eu-west-1", false).await;
    // A key of another Region: its events reach the home Region's bus through the forwarder
    // (forwarder.yaml) that runs in every other managed Region.
    let eu = demo.kms("eu-west-1").await;
    demo.cli("aws kms create-key --region eu-west-1 --multi-region --description 'orders data key' --tags TagKey=replicate-to,TagValue=us-west-2");
    let eu_key = eu
        .create_key()
        .multi_region(true)
        .description("orders data key")
        .tags(tag("replicate-to", "us-west-2"))
        .send()
        .await
        .map_err(|e| format!("CreateKey: {e:?}"))?
        .key_metadata
        .ok_or("CreateKey returned no KeyMetadata")?
        .key_id;
    demo.settle().await;
    let forwarded = demo.cloud.deliveries().iter().any(|d| {
        d.region() == "eu-west-1"
            && d.event_name() == "CreateKey"
            && d.forwarded_by
                .as_deref()
                .is_some_and(|f| f.ends_with("@eu-west-1"))
    });
    demo.check(
        forwarded,
        "eu-west-1's CreateKey event reached the home Region through the forwarder",
    );
    demo.verify_replica(&eu_key, "us-west-2", false).await;
    demo.end(step);
    Ok(())
}

/// A new policy statement and a renamed alias reach both replicas.
pub async fn change_policy_and_alias(demo: &mut Demo, key: &str) -> Result<(), String> {
    let step = demo.begin("Alice changes the primary's policy and renames an alias");
    let kms = demo.kms(HOME).await;
    let v2 = primary_policy().replace("role/payments-app", "role/payments-app-v2");
    demo.cli(&format!(
        "aws kms put-key-policy --key-id {} --policy file://policy-v2.json   # payments-app -> payments-app-v2",
        short(key)
    ));
    kms.put_key_policy()
        .key_id(key)
        .policy(&v2)
        .send()
        .await
        .map_err(|e| format!("PutKeyPolicy: {e:?}"))?;
    demo.cli("aws kms delete-alias --alias-name alias/payments-ledger");
    kms.delete_alias()
        .alias_name("alias/payments-ledger")
        .send()
        .await
        .map_err(|e| format!("DeleteAlias: {e:?}"))?;
    demo.cli(&format!(
        "aws kms create-alias --alias-name alias/ledger --target-key-id {}",
        short(key)
    ));
    kms.create_alias()
        .alias_name("alias/ledger")
        .target_key_id(key)
        .send()
        .await
        .map_err(|e| format!("CreateAlias: {e:?}"))?;
    demo.settle().await;
    for region in ["us-west-2", "eu-west-1"] {
        demo.verify_replica(key, region, false).await;
        let p = demo
            .reader
            .get_key_policy(region, key)
            .await
            .unwrap_or_default();
        demo.check(
            p.contains("payments-app-v2"),
            &format!("{region}: the new policy statement is there"),
        );
    }
    demo.end(step);
    Ok(())
}

/// A Region added to the tag gets a replica; the one removed is scheduled for deletion.
pub async fn add_and_remove_regions(demo: &mut Demo, key: &str) -> Result<(), String> {
    let step = demo.begin("Alice adds ap-southeast-2 and removes eu-west-1");
    let kms = demo.kms(HOME).await;
    demo.cli(&format!(
        "aws kms tag-resource --key-id {} --tags 'TagKey=replicate-to,TagValue=us-west-2 ap-southeast-2'",
        short(key)
    ));
    kms.tag_resource()
        .key_id(key)
        .tags(tag("replicate-to", "us-west-2 ap-southeast-2"))
        .send()
        .await
        .map_err(|e| format!("TagResource: {e:?}"))?;
    demo.settle().await;
    demo.verify_replica(key, "ap-southeast-2", false).await;
    let eu = demo.reader.describe_key("eu-west-1", key).await;
    let eu_state = eu.as_ref().map(|i| i.state).ok();
    demo.say(&format!(
        "{:<15} REPLICA {}  (REMOVAL_POLICY=ScheduleDeletion, PENDING_WINDOW_DAYS=7)",
        "eu-west-1",
        eu_state
            .map(|s| s.to_string())
            .unwrap_or_else(|| "?".into())
    ));
    demo.check(
        eu_state == Some(KeyState::PendingDeletion),
        "eu-west-1's replica is scheduled for deletion, the others are untouched",
    );
    demo.verify_replica(key, "us-west-2", false).await;
    demo.end(step);
    Ok(())
}
