//! The twin's UpdatePrimaryRegion against what AWS documents (the KMS Developer Guide, "Updating the
//! primary Region", and the KMS API Reference).

use super::*;
use kms_replicator::arn::key_arn;
use kms_replicator::model::{KeyState, MultiRegionKeyType};
use kms_replicator::op::Op;
use kms_replicator::port::{ErrorKind, Kms, ReplicaSpec};
use std::time::Duration;

const EAST: &str = "us-east-1";
const WEST: &str = "us-west-2";
const EU: &str = "eu-west-1";

/// A primary in us-east-1 with Enabled replicas in us-west-2 and eu-west-1.
async fn primary_with_replicas(twin: &Twin) -> String {
    let key = twin.create_key(EAST, true, None, "k", &[]);
    for region in [WEST, EU] {
        twin.replicate_key(EAST, &key.key_id, region, &ReplicaSpec::default())
            .await
            .unwrap();
    }
    twin.take_trail();
    key.key_id
}

fn arn(twin: &Twin, region: &str, id: &str) -> String {
    key_arn("aws", region, &twin.account(), id)
}

#[tokio::test]
async fn promotion_moves_the_primary_role_to_the_replica_and_every_related_key_follows() {
    let twin = Twin::new().with_caller(OPERATOR_ROLE);
    let id = primary_with_replicas(&twin).await;

    twin.update_primary_region(EAST, &id, WEST).await.unwrap();

    let west = twin.describe_key(WEST, &id).await.unwrap();
    assert!(west.is_primary());
    assert_eq!(west.state, KeyState::Enabled);
    let mr = west.multi_region.unwrap();
    assert_eq!(mr.primary_region, WEST);
    let mut replicas = mr.replica_regions.clone();
    replicas.sort();
    assert_eq!(replicas, vec![EU.to_string(), EAST.to_string()]);
    for region in [EAST, EU] {
        let k = twin.describe_key(region, &id).await.unwrap();
        let m = k.multi_region.unwrap();
        assert_eq!(m.key_type, MultiRegionKeyType::Replica, "{region}");
        assert_eq!(m.primary_region, WEST, "{region}");
    }
}

#[tokio::test]
async fn both_keys_are_updating_and_described_as_replicas_until_the_update_settles() {
    let twin = Twin::new().with_caller(OPERATOR_ROLE);
    let id = primary_with_replicas(&twin).await;
    twin.set_updating_for(Duration::from_millis(150));

    twin.update_primary_region(EAST, &id, WEST).await.unwrap();

    for region in [EAST, WEST] {
        let k = twin.describe_key(region, &id).await.unwrap();
        assert_eq!(k.state, KeyState::Updating, "{region}");
        assert_eq!(
            k.multi_region.unwrap().key_type,
            MultiRegionKeyType::Replica,
            "DescribeKey may show both keys as replicas while updating ({region})"
        );
    }
    // The third key is not part of the update.
    assert_eq!(
        twin.describe_key(EU, &id).await.unwrap().state,
        KeyState::Enabled
    );
    // Management calls are refused while updating.
    let e = twin.enable_key(WEST, &id).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidState);
    assert!(e.message.ends_with("is updating."), "{e}");

    tokio::time::sleep(Duration::from_millis(200)).await;
    let west = twin.describe_key(WEST, &id).await.unwrap();
    assert!(west.is_primary());
    assert_eq!(west.state, KeyState::Enabled);
    assert_eq!(
        twin.describe_key(EAST, &id).await.unwrap().state,
        KeyState::Enabled
    );
}

#[tokio::test]
async fn a_second_update_during_the_first_meets_the_errors_aws_gives() {
    let twin = Twin::new().with_caller(OPERATOR_ROLE);
    let id = primary_with_replicas(&twin).await;
    twin.set_updating_for(Duration::from_secs(60));
    twin.update_primary_region(EAST, &id, WEST).await.unwrap();

    // The old primary is a replica now.
    let e = twin.update_primary_region(EAST, &id, EU).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::UnsupportedOperation);
    assert_eq!(
        e.message,
        format!(
            "{} is not a multi-Region primary key.",
            arn(&twin, EAST, &id)
        )
    );
    // The new primary is still updating.
    let e = twin.update_primary_region(WEST, &id, EU).await.unwrap_err();
    assert_eq!(
        (e.kind, e.code.as_str()),
        (ErrorKind::InvalidState, "KMSInvalidStateException")
    );
    assert_eq!(e.message, format!("{} is updating.", arn(&twin, WEST, &id)));
}

#[tokio::test]
async fn calling_it_in_a_replica_region_is_unsupported() {
    let twin = Twin::new().with_caller(OPERATOR_ROLE);
    let id = primary_with_replicas(&twin).await;

    let e = twin.update_primary_region(WEST, &id, EU).await.unwrap_err();

    assert_eq!(e.kind, ErrorKind::UnsupportedOperation);
    assert_eq!(e.code, "UnsupportedOperationException");
    assert_eq!(
        e.message,
        format!(
            "{} is not a multi-Region primary key.",
            arn(&twin, WEST, &id)
        )
    );
    assert!(twin.trail().is_empty(), "a refused call is not recorded");
}

#[tokio::test]
async fn a_single_region_key_is_unsupported() {
    let twin = Twin::new().with_caller(OPERATOR_ROLE);
    let key = twin.create_key(EAST, false, None, "", &[]);

    let e = twin
        .update_primary_region(EAST, &key.key_id, WEST)
        .await
        .unwrap_err();

    assert_eq!(e.kind, ErrorKind::UnsupportedOperation);
}

#[tokio::test]
async fn a_target_region_without_a_replica_is_not_found() {
    let twin = Twin::new().with_caller(OPERATOR_ROLE);
    let id = primary_with_replicas(&twin).await;

    let e = twin
        .update_primary_region(EAST, &id, "ap-south-1")
        .await
        .unwrap_err();

    assert_eq!(
        (e.kind, e.code.as_str()),
        (ErrorKind::NotFound, "NotFoundException")
    );
    assert!(twin.describe_key(EAST, &id).await.unwrap().is_primary());
}

#[tokio::test]
async fn both_keys_must_be_enabled() {
    let twin = Twin::new().with_caller(OPERATOR_ROLE);
    let id = primary_with_replicas(&twin).await;

    twin.set_state(EAST, &id, KeyState::Disabled);
    let e = twin
        .update_primary_region(EAST, &id, WEST)
        .await
        .unwrap_err();
    assert_eq!(
        (e.kind, e.code.as_str()),
        (ErrorKind::Disabled, "DisabledException")
    );
    assert_eq!(e.message, format!("{} is disabled.", arn(&twin, EAST, &id)));

    twin.set_state(EAST, &id, KeyState::Enabled);
    twin.set_state(WEST, &id, KeyState::Disabled);
    let e = twin
        .update_primary_region(EAST, &id, WEST)
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Disabled);
    assert_eq!(e.message, format!("{} is disabled.", arn(&twin, WEST, &id)));

    twin.set_state(WEST, &id, KeyState::PendingDeletion);
    let e = twin
        .update_primary_region(EAST, &id, WEST)
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidState);
    assert!(e.message.ends_with("is pending deletion."), "{e}");

    assert!(twin.describe_key(EAST, &id).await.unwrap().is_primary());
    assert!(twin.trail().is_empty());
}

#[tokio::test]
async fn a_replica_still_creating_cannot_become_primary() {
    let twin = Twin::new().with_caller(OPERATOR_ROLE);
    let key = twin.create_key(EAST, true, None, "", &[]);
    twin.set_creating_for(Duration::from_secs(60));
    twin.replicate_key(EAST, &key.key_id, WEST, &ReplicaSpec::default())
        .await
        .unwrap();

    let e = twin
        .update_primary_region(EAST, &key.key_id, WEST)
        .await
        .unwrap_err();

    assert_eq!(e.kind, ErrorKind::InvalidState);
    assert_eq!(
        e.message,
        format!("{} is creating.", arn(&twin, WEST, &key.key_id))
    );
}

#[tokio::test]
async fn each_region_logs_its_own_record_and_the_new_one_is_invoked_by_kms() {
    let twin = Twin::new().with_caller(OPERATOR_ROLE);
    let id = primary_with_replicas(&twin).await;
    let alice = twin.with_caller(ADMIN_USER);

    alice.update_primary_region(EAST, &id, WEST).await.unwrap();

    let trail = twin.take_trail();
    assert_eq!(trail.len(), 2);
    let old = &trail[0]["detail"];
    assert_eq!(old["eventName"], "UpdatePrimaryRegion");
    assert_eq!(old["awsRegion"], EAST);
    assert_eq!(old["userIdentity"]["arn"], ADMIN_USER);
    assert!(old["userIdentity"].get("invokedBy").is_none());
    assert_eq!(old["requestParameters"]["keyId"], id.as_str());
    assert_eq!(old["requestParameters"]["primaryRegion"], WEST);
    assert_eq!(old["responseElements"]["keyId"], arn(&twin, EAST, &id));
    assert_eq!(old["resources"][0]["ARN"], arn(&twin, EAST, &id));
    let new = &trail[1]["detail"];
    assert_eq!(new["awsRegion"], WEST);
    assert_eq!(new["userIdentity"]["invokedBy"], "kms.amazonaws.com");
    assert_eq!(new["requestParameters"]["keyId"], arn(&twin, WEST, &id));
    assert_eq!(new["requestParameters"]["primaryRegion"], WEST);
    assert_eq!(trail[1]["region"], WEST);
}

#[tokio::test]
async fn outages_faults_and_the_quota_counted_in_both_regions_apply() {
    let twin = Twin::new().with_caller(OPERATOR_ROLE);
    let id = primary_with_replicas(&twin).await;

    twin.set_region_down(EAST, true);
    let e = twin
        .update_primary_region(EAST, &id, WEST)
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unreachable);
    twin.set_region_down(EAST, false);

    twin.inject_fault(
        Some(EAST),
        Some(Op::UpdatePrimaryRegion),
        "AccessDeniedException",
        1,
    );
    let e = twin
        .update_primary_region(EAST, &id, WEST)
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::AccessDenied);
    assert!(twin.describe_key(EAST, &id).await.unwrap().is_primary());

    // The quota: one call a second. A call made in us-west-2 also counts in us-east-1, so
    // the next call in us-east-1 within the second is refused.
    twin.set_rate_limit(Op::UpdatePrimaryRegion, 1);
    let other = twin.create_key(WEST, true, None, "", &[]);
    twin.replicate_key(WEST, &other.key_id, EAST, &ReplicaSpec::default())
        .await
        .unwrap();
    twin.update_primary_region(WEST, &other.key_id, EAST)
        .await
        .unwrap();
    let e = twin
        .update_primary_region(EAST, &id, WEST)
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Throttling);
    assert_eq!(e.region, EAST);
    assert!(twin.describe_key(EAST, &id).await.unwrap().is_primary());
}
