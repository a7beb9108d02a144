//! Key kinds over HTTP, through the real AWS SDK: CreateKey takes KeySpec and KeyUsage as KMS
//! validates them, a replica shows its primary's spec and algorithms and verifies the MACs and
//! signatures its primary made, and the Region settings
//! of the debug API make KMS refuse as it does in a Region without HMAC and in an opt-in
//! Region the account has not enabled.

use aws_sdk_kms::types::{KeySpec, KeyUsageType, MacAlgorithmSpec, SigningAlgorithmSpec};
use serde_json::json;
use twin_server::{client, LocalCloud, ADMIN_ACCESS_KEY};

const EAST: &str = "us-east-1";
const WEST: &str = "us-west-2";
const EU: &str = "eu-west-1";

#[tokio::test]
async fn hmac_and_ecc_keys_are_created_replicated_and_verify_across_regions_over_the_sdk() {
    let cloud = LocalCloud::builder().start().await.unwrap();
    let east = cloud.kms_client(ADMIN_ACCESS_KEY, EAST).await;
    let west = cloud.kms_client(ADMIN_ACCESS_KEY, WEST).await;
    let kinds = [
        (KeySpec::Hmac384, KeyUsageType::GenerateVerifyMac),
        (KeySpec::EccNistP256, KeyUsageType::SignVerify),
    ];
    let mut ids = Vec::new();
    for (spec, usage) in &kinds {
        let made = east
            .create_key()
            .multi_region(true)
            .key_spec(spec.clone())
            .key_usage(usage.clone())
            .send()
            .await
            .unwrap();
        let id = made.key_metadata().unwrap().key_id().to_string();
        east.replicate_key()
            .key_id(&id)
            .replica_region(WEST)
            .send()
            .await
            .unwrap();
        ids.push(id);
    }
    let hmac = west.describe_key().key_id(&ids[0]).send().await.unwrap();
    let m = hmac.key_metadata().unwrap();
    assert_eq!(m.key_spec(), Some(&KeySpec::Hmac384));
    assert_eq!(m.key_usage(), Some(&KeyUsageType::GenerateVerifyMac));
    assert_eq!(m.mac_algorithms(), [MacAlgorithmSpec::HmacSha384]);
    assert!(m.encryption_algorithms().is_empty());
    let ecc = west.describe_key().key_id(&ids[1]).send().await.unwrap();
    let m = ecc.key_metadata().unwrap();
    assert_eq!(m.key_spec(), Some(&KeySpec::EccNistP256));
    assert_eq!(m.signing_algorithms(), [SigningAlgorithmSpec::EcdsaSha256]);

    // Related keys share material: us-west-2 verifies the MAC and the signature us-east-1
    // made, and GetPublicKey answers the same key in both Regions.
    use aws_sdk_kms::primitives::Blob;
    let mac = east
        .generate_mac()
        .key_id(&ids[0])
        .message(Blob::new("session 42"))
        .mac_algorithm(MacAlgorithmSpec::HmacSha384)
        .send()
        .await
        .unwrap();
    let verified = west
        .verify_mac()
        .key_id(&ids[0])
        .message(Blob::new("session 42"))
        .mac_algorithm(MacAlgorithmSpec::HmacSha384)
        .mac(mac.mac().unwrap().clone())
        .send()
        .await
        .unwrap();
    assert!(verified.mac_valid());
    let signed = east
        .sign()
        .key_id(&ids[1])
        .message(Blob::new("release 1.4"))
        .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
        .send()
        .await
        .unwrap();
    let verify = |message: &'static str| {
        west.verify()
            .key_id(&ids[1])
            .message(Blob::new(message))
            .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
            .signature(signed.signature().unwrap().clone())
            .send()
    };
    assert!(verify("release 1.4").await.unwrap().signature_valid());
    let err = verify("release 1.5")
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_kms_invalid_signature_exception(), "{err:?}");
    let east_pub = east.get_public_key().key_id(&ids[1]).send().await.unwrap();
    let west_pub = west.get_public_key().key_id(&ids[1]).send().await.unwrap();
    assert_eq!(east_pub.public_key(), west_pub.public_key());
    assert_eq!(west_pub.key_spec(), Some(&KeySpec::EccNistP256));
    assert_eq!(
        west_pub.signing_algorithms(),
        [SigningAlgorithmSpec::EcdsaSha256]
    );

    // KMS's default usage, ENCRYPT_DECRYPT, does not fit an HMAC key.
    let err = east
        .create_key()
        .key_spec(KeySpec::Hmac256)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(
        aws_sdk_kms::error::ProvideErrorMetadata::code(&err),
        Some("ValidationException"),
        "{err:?}"
    );
    // An HMAC key cannot encrypt.
    let err = east
        .encrypt()
        .key_id(&ids[0])
        .plaintext(aws_sdk_kms::primitives::Blob::new("x"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_key_usage_exception(), "{err:?}");
}

#[tokio::test]
async fn a_region_without_hmac_and_a_region_not_enabled_refuse_as_kms_does() {
    let cloud = LocalCloud::builder().start().await.unwrap();
    let ep = cloud.endpoint().to_string();
    let east = cloud.kms_client(ADMIN_ACCESS_KEY, EAST).await;
    let id = east
        .create_key()
        .multi_region(true)
        .key_spec(KeySpec::Hmac256)
        .key_usage(KeyUsageType::GenerateVerifyMac)
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .key_id()
        .to_string();
    let r = client::post_json(
        &ep,
        "/_twin/region",
        &json!({"region": WEST, "unavailableKeySpec": "HMAC"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    let err = east
        .replicate_key()
        .key_id(&id)
        .replica_region(WEST)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_unsupported_operation_exception(), "{err:?}");

    client::post_json(
        &ep,
        "/_twin/region",
        &json!({"region": EU, "enabled": false}),
    )
    .await
    .unwrap();
    let err = east
        .replicate_key()
        .key_id(&id)
        .replica_region(EU)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_unsupported_operation_exception(), "{err:?}");
    let eu = cloud.kms_client(ADMIN_ACCESS_KEY, EU).await;
    let err = eu
        .list_keys()
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(
        aws_sdk_kms::error::ProvideErrorMetadata::code(&err),
        Some("UnrecognizedClientException"),
        "{err:?}"
    );
    // Not down: the endpoint answers, and answers the same once enabled.
    client::post_json(
        &ep,
        "/_twin/region",
        &json!({"region": EU, "enabled": true}),
    )
    .await
    .unwrap();
    assert!(eu.list_keys().send().await.is_ok());
}
