//! The twin's cryptography over HTTP, through the real AWS SDK, as an application uses a
//! multi-Region key: encrypt in one Region, decrypt with the replica in another, re-encrypt
//! there under another key, and read each key's last use with GetKeyLastUsage.

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{DataKeySpec, KeyLastUsageTrackingOperation};
use twin::ADMIN_USER;
use twin_server::{LocalCloud, ADMIN_ACCESS_KEY};

const EAST: &str = "us-east-1";
const WEST: &str = "us-west-2";

#[tokio::test]
async fn encrypt_in_one_region_decrypt_with_the_replica_in_another_over_the_sdk() {
    let cloud = LocalCloud::builder().start().await.unwrap();
    let east = cloud.kms_client(ADMIN_ACCESS_KEY, EAST).await;
    let west = cloud.kms_client(ADMIN_ACCESS_KEY, WEST).await;
    let key = east
        .create_key()
        .multi_region(true)
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .key_id()
        .to_string();
    east.replicate_key()
        .key_id(&key)
        .replica_region(WEST)
        .send()
        .await
        .unwrap();

    let sealed = east
        .encrypt()
        .key_id(&key)
        .plaintext(Blob::new("hello from us-east-1"))
        .encryption_context("app", "orders")
        .send()
        .await
        .unwrap();
    let blob = sealed.ciphertext_blob().unwrap().clone();
    let opened = west
        .decrypt()
        .ciphertext_blob(blob.clone())
        .encryption_context("app", "orders")
        .send()
        .await
        .unwrap();
    assert_eq!(
        opened.plaintext().unwrap().as_ref(),
        b"hello from us-east-1"
    );
    assert!(opened.key_id().unwrap().contains(WEST));

    // The encryption context is bound: another one is InvalidCiphertextException.
    let err = west
        .decrypt()
        .ciphertext_blob(blob)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_ciphertext_exception(), "{err:?}");

    // A data key made in us-west-2 opens in us-east-1.
    let dk = west
        .generate_data_key()
        .key_id(&key)
        .key_spec(DataKeySpec::Aes256)
        .send()
        .await
        .unwrap();
    let back = east
        .decrypt()
        .key_id(&key)
        .ciphertext_blob(dk.ciphertext_blob().unwrap().clone())
        .send()
        .await
        .unwrap();
    assert_eq!(back.plaintext(), dk.plaintext());
    let without = west
        .generate_data_key_without_plaintext()
        .key_id(&key)
        .number_of_bytes(16)
        .send()
        .await
        .unwrap();
    assert!(without.ciphertext_blob().is_some());

    // Each Region's key has its own last use.
    let usage = west.get_key_last_usage().key_id(&key).send().await.unwrap();
    let last = usage.key_last_usage().unwrap();
    assert_eq!(
        last.operation(),
        Some(&KeyLastUsageTrackingOperation::GenerateDataKeyWithoutPlaintext)
    );
    assert!(last.timestamp().is_some() && last.cloud_trail_event_id().is_some());
    assert!(usage.tracking_start_date().is_some());
    assert_eq!(usage.tracking_start_date(), usage.key_creation_date());
    let east_usage = east.get_key_last_usage().key_id(&key).send().await.unwrap();
    assert_eq!(
        east_usage.key_last_usage().unwrap().operation(),
        Some(&KeyLastUsageTrackingOperation::Decrypt)
    );

    // ReEncrypt in us-west-2, from the replica to a single-Region key there.
    let local = west
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .key_id()
        .to_string();
    let moved = west
        .re_encrypt()
        .ciphertext_blob(sealed.ciphertext_blob().unwrap().clone())
        .source_encryption_context("app", "orders")
        .destination_key_id(&local)
        .send()
        .await
        .unwrap();
    assert!(moved.source_key_id().unwrap().contains(WEST));
    assert!(moved.key_id().unwrap().ends_with(&local));
    let opened = west
        .decrypt()
        .ciphertext_blob(moved.ciphertext_blob().unwrap().clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        opened.plaintext().unwrap().as_ref(),
        b"hello from us-east-1"
    );

    // A disabled replica refuses with DisabledException.
    cloud
        .twin()
        .with_caller(ADMIN_USER)
        .disable_key(WEST, &key)
        .unwrap();
    let err = west
        .encrypt()
        .key_id(&key)
        .plaintext(Blob::new("x"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_disabled_exception(), "{err:?}");
}
