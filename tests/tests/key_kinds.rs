//! Every kind of multi-Region key, and the replicas that need a person: HMAC and asymmetric
//! keys replicate like symmetric ones; a Region that does not offer the key's spec, or an opt-in
//! Region the account has not enabled, gets a permanent outcome that says what to do; a replica
//! of a primary with imported key material (origin EXTERNAL) is `PendingImport` until someone
//! imports the same material there. The replicator keeps mirroring it and says which Region
//! waits and how, without retrying.

use integration_tests::{config, deliver_trail, new_twin, people_tags, PRIMARY_REGION};
use kms_replicator::model::{KeyState, Tag};
use kms_replicator::{Kms, Op};
use twin::{KeyKind, Twin, ADMIN_USER};

const WEST: &str = "us-west-2";
const EU: &str = "eu-west-1";

#[tokio::test]
async fn an_imported_material_replica_is_mirrored_told_how_to_import_without_retries_then_decrypts()
{
    let twin = Twin::new();
    let cfg = config();
    let admin = twin.with_caller(ADMIN_USER);
    let material = [42u8; 32];
    let external = KeyKind {
        origin: "EXTERNAL".into(),
        ..KeyKind::default()
    };
    let policy = integration_tests::primary_policy(&twin.account());
    let key = admin
        .try_create_key_of(PRIMARY_REGION, &external, true, Some(&policy), "", &[])
        .unwrap()
        .key_id;
    admin
        .import_material(PRIMARY_REGION, &key, &material)
        .await
        .unwrap();
    admin
        .tag_resource(PRIMARY_REGION, &key, &[Tag::new("replicate-to", WEST)])
        .await
        .unwrap();
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
    assert_eq!(
        west.state,
        KeyState::PendingImport,
        "KMS copies no material"
    );
    assert_eq!(west.description, "imported material", "still mirrored");
    let said = conflicts_in(&twin, WEST);
    assert!(
        said.iter().any(|c| c.contains("us-west-2 is PendingImport")
            && c.contains(&format!(
                "get-parameters-for-import --region us-west-2 --key-id {key}"
            ))
            && c.contains("import-key-material")),
        "{said:?}"
    );
    // Another sync while it waits: still no error, nothing written but what differs.
    admin
        .update_key_description(PRIMARY_REGION, &key, "imported, v2")
        .await
        .unwrap();
    let (_, errors) = deliver_trail(&twin, &cfg).await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(twin.key(WEST, &key).unwrap().description, "imported, v2");

    // The person imports the primary's material in us-west-2, as the outcome says.
    let err = admin
        .import_material(WEST, &key, &[1; 32])
        .await
        .unwrap_err();
    assert_eq!(
        err.code, "IncorrectKeyMaterialException",
        "only the same material"
    );
    admin.import_material(WEST, &key, &material).await.unwrap();
    assert_eq!(twin.key(WEST, &key).unwrap().state, KeyState::Enabled);
    let ctx = twin::EncryptionContext::new();
    let sealed = admin
        .encrypt(PRIMARY_REGION, &key, b"backup", &ctx)
        .await
        .unwrap();
    let opened = admin
        .decrypt(WEST, None, &sealed.ciphertext, &ctx)
        .await
        .unwrap();
    assert_eq!(opened.plaintext, b"backup");
    let (_, errors) = deliver_trail(&twin, &cfg).await;
    assert!(errors.is_empty(), "{errors:?}");
    let primary_material = twin.key(PRIMARY_REGION, &key).unwrap().current_material;
    assert!(primary_material.is_some());
    assert_eq!(
        twin.key(WEST, &key).unwrap().current_material,
        primary_material
    );

    // A rotation of imported material waits for an import in us-west-2: the replica's current
    // material is no longer the primary's. The next sync says so, with both ids, and retries
    // nothing.
    let before = conflicts_in(&twin, WEST);
    assert!(
        !before.iter().any(|c| c.contains("holds key material")),
        "the same material is no drift: {before:?}"
    );
    let conflicts_before = before.len();
    let other = "ab".repeat(32);
    twin.set_current_key_material_id(WEST, &key, &other);
    admin
        .update_key_description(PRIMARY_REGION, &key, "imported, v3")
        .await
        .unwrap();
    let (_, errors) = deliver_trail(&twin, &cfg).await;
    assert!(errors.is_empty(), "{errors:?}");
    let said = conflicts_in(&twin, WEST);
    let drift = &said[conflicts_before..];
    assert!(
        drift
            .iter()
            .any(|c| c.contains(&format!("holds key material {other}"))
                && c.contains(primary_material.as_deref().unwrap())
                && c.contains("--import-type NEW_KEY_MATERIAL")),
        "{drift:?}"
    );
    assert_eq!(twin.key(WEST, &key).unwrap().description, "imported, v3");
}

/// Every conflict the audit events reported for `region`, oldest first.
fn conflicts_in(twin: &Twin, region: &str) -> Vec<String> {
    twin.audit_events()
        .iter()
        .filter(|e| e.detail_type == "Replication Conflict" && e.detail["region"] == region)
        .flat_map(|e| {
            e.detail["conflicts"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|c| c.as_str().map(str::to_string))
        .collect()
}

/// The audit events of one detail type for one Region.
fn events_for(twin: &Twin, detail_type: &str, region: &str) -> Vec<serde_json::Value> {
    twin.audit_events()
        .into_iter()
        .filter(|e| e.detail_type == detail_type && e.detail["region"] == region)
        .map(|e| e.detail)
        .collect()
}

/// A multi-Region primary of `kind` in us-east-1, made by a person, tagged for `regions`.
async fn tagged_primary(twin: &Twin, kind: &KeyKind, regions: &str) -> String {
    let admin = twin.with_caller(ADMIN_USER);
    let policy = integration_tests::primary_policy(&twin.account());
    let key = admin
        .try_create_key_of(
            PRIMARY_REGION,
            kind,
            true,
            Some(&policy),
            "signing key",
            &[],
        )
        .unwrap_or_else(|e| panic!("CreateKey {kind:?}: {e}"));
    admin
        .tag_resource(
            PRIMARY_REGION,
            &key.key_id,
            &[Tag::new("replicate-to", regions)],
        )
        .await
        .unwrap();
    key.key_id
}

#[tokio::test]
async fn hmac_and_asymmetric_keys_replicate_with_their_spec_usage_and_mirrored_properties() {
    let kinds = [
        KeyKind::new("HMAC_224", "GENERATE_VERIFY_MAC"),
        KeyKind::new("HMAC_512", "GENERATE_VERIFY_MAC"),
        KeyKind::new("ECC_NIST_P256", "SIGN_VERIFY"),
        KeyKind::new("ECC_NIST_P521", "KEY_AGREEMENT"),
        KeyKind::new("ECC_SECG_P256K1", "SIGN_VERIFY"),
        KeyKind::new("RSA_2048", "ENCRYPT_DECRYPT"),
        KeyKind::new("RSA_4096", "SIGN_VERIFY"),
    ];
    let twin = new_twin();
    let cfg = config();
    let mut keys = Vec::new();
    for kind in &kinds {
        keys.push(tagged_primary(&twin, kind, "us-west-2 eu-west-1").await);
    }
    let (_, errors) = deliver_trail(&twin, &cfg).await;
    assert!(errors.is_empty(), "{errors:?}");
    for (kind, key) in kinds.iter().zip(&keys) {
        let primary = twin.key(PRIMARY_REGION, key).unwrap();
        for region in [WEST, EU] {
            let replica = twin
                .key(region, key)
                .unwrap_or_else(|| panic!("{kind:?} replicated to {region}"));
            assert_eq!(&replica.kind, kind, "shared: spec, usage, origin");
            assert_eq!(replica.state, KeyState::Enabled);
            assert_eq!(replica.description, primary.description);
            // The primary's policy, its Region-specific names rewritten for the replica's.
            assert!(
                replica.policy.contains("payments-key-policy")
                    && replica
                        .policy
                        .contains(&format!("s3.{region}.amazonaws.com")),
                "{}",
                replica.policy
            );
            assert_eq!(people_tags(&replica.tags), people_tags(&primary.tags));
        }
    }
}

#[tokio::test]
async fn create_key_refuses_a_usage_the_spec_does_not_allow() {
    let twin = new_twin();
    let admin = twin.with_caller(ADMIN_USER);
    let refused = admin
        .try_create_key_of(
            PRIMARY_REGION,
            &KeyKind::new("HMAC_256", "ENCRYPT_DECRYPT"),
            true,
            None,
            "",
            &[],
        )
        .unwrap_err();
    assert_eq!(refused.code, "ValidationException", "{refused}");
    assert!(refused.message.contains("GENERATE_VERIFY_MAC"), "{refused}");
    assert!(
        admin.list_keys(PRIMARY_REGION).await.unwrap().is_empty(),
        "nothing created"
    );
}

#[tokio::test]
async fn an_hmac_key_a_region_does_not_offer_fails_there_for_good_and_says_what_to_do() {
    let twin = new_twin();
    twin.set_key_spec_unavailable(WEST, "HMAC");
    let cfg = config();
    let hmac = KeyKind::new("HMAC_256", "GENERATE_VERIFY_MAC");
    let key = tagged_primary(&twin, &hmac, "us-west-2 eu-west-1").await;
    let (_, errors) = deliver_trail(&twin, &cfg).await;
    assert!(errors.is_empty(), "permanent, so never retried: {errors:?}");
    assert!(twin.key(WEST, &key).is_none());
    assert_eq!(
        twin.key(EU, &key).unwrap().kind,
        hmac,
        "the other Region is served"
    );
    let failed = events_for(&twin, "Replication Failed", WEST);
    assert_eq!(failed.len(), 1, "{failed:?}");
    let outcome = &failed[0]["outcome"];
    assert_eq!(outcome["retryable"], false);
    let reason = outcome["reason"].as_str().unwrap();
    assert!(
        reason.contains("KMS refused to create the replica in us-west-2")
            && reason.contains("does not offer this key's spec")
            && reason.contains("Remove us-west-2 from the replicate-to tag")
            && reason.contains("UnsupportedOperationException"),
        "{reason}"
    );
    // A later sync of the key (a description edit) tries once more and fails the same way:
    // one ReplicateKey per sync, never a loop.
    let before = replicate_calls(&twin);
    let admin = twin.with_caller(ADMIN_USER);
    admin
        .update_key_description(PRIMARY_REGION, &key, "mac key")
        .await
        .unwrap();
    let (_, errors) = deliver_trail(&twin, &cfg).await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(replicate_calls(&twin), before + 1);
    assert_eq!(twin.key(EU, &key).unwrap().description, "mac key");
}

/// The ReplicateKey calls the replicator made (the twin's call log has every request, refused
/// or not).
fn replicate_calls(twin: &Twin) -> usize {
    twin.calls()
        .iter()
        .filter(|c| c.op == Op::ReplicateKey && c.caller == twin::REPLICATE_ROLE)
        .count()
}

#[tokio::test]
async fn an_opt_in_region_not_enabled_fails_for_good_naming_the_region_and_what_to_do() {
    let twin = new_twin();
    twin.set_region_enabled(EU, false);
    let cfg = config();
    let key = tagged_primary(
        &twin,
        &KeyKind::new("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"),
        "us-west-2 eu-west-1",
    )
    .await;
    let (_, errors) = deliver_trail(&twin, &cfg).await;
    assert!(errors.is_empty(), "permanent, so never retried: {errors:?}");
    assert!(
        twin.key(WEST, &key).is_some(),
        "the enabled Region is served"
    );
    assert!(twin.key(EU, &key).is_none());
    let failed = events_for(&twin, "Replication Failed", EU);
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["outcome"]["retryable"], false);
    let reason = failed[0]["outcome"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("eu-west-1 is an opt-in Region that the account has not enabled")
            && reason.contains("aws account enable-region --region-name eu-west-1")
            && reason
                .contains("remove eu-west-1 from the replicate-to tag (and from AllowedRegions)"),
        "{reason}"
    );

    // The Region's own endpoint does not know the account's credentials.
    let refused = twin.describe_key(EU, &key).await.unwrap_err();
    assert_eq!(refused.code, "UnrecognizedClientException");
    assert!(!refused.is_retryable());
    let said = kms_replicator::explain::explain(&refused);
    assert!(
        said.contains("eu-west-1 is most likely an opt-in Region the account has not enabled")
            && said.contains("enable-region --region-name eu-west-1"),
        "{said}"
    );

    // Once enabled, the next sync creates the replica.
    twin.set_region_enabled(EU, true);
    twin.with_caller(ADMIN_USER)
        .update_key_description(PRIMARY_REGION, &key, "now everywhere")
        .await
        .unwrap();
    let (_, errors) = deliver_trail(&twin, &cfg).await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(twin.key(EU, &key).unwrap().description, "now everywhere");
}
