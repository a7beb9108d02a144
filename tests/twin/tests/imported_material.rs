//! Keys with imported key material (origin `EXTERNAL`), as the KMS Developer Guide describes
//! them for multi-Region keys: created `PendingImport`; a primary is replicated only once its
//! material is in; each replica is `PendingImport` until the same material is imported there,
//! with its own wrapping key and import token; other material is refused; and once both hold
//! it, each decrypts what the other encrypted.

use kms_replicator::model::KeyState;
use kms_replicator::port::{Kms, ReplicaSpec};
use twin::{wrap_for_import, EncryptionContext, Expiration, KeyKind, Twin, ADMIN_USER};

const EAST: &str = "us-east-1";
const WEST: &str = "us-west-2";
const MATERIAL: [u8; 32] = [7; 32];

fn external() -> KeyKind {
    KeyKind {
        origin: "EXTERNAL".into(),
        ..KeyKind::default()
    }
}

fn new_external_primary(twin: &Twin) -> String {
    twin.try_create_key_of(EAST, &external(), true, None, "imported", &[])
        .unwrap()
        .key_id
}

#[tokio::test]
async fn an_external_primary_waits_for_its_material_and_its_replica_for_the_same_material() {
    let twin = Twin::new().with_caller(ADMIN_USER);
    let key = new_external_primary(&twin);
    assert_eq!(twin.key(EAST, &key).unwrap().state, KeyState::PendingImport);
    let err = twin
        .replicate_key(EAST, &key, WEST, &ReplicaSpec::default())
        .await
        .unwrap_err();
    assert_eq!(err.code, "KMSInvalidStateException");
    assert!(err.message.ends_with("is pending import."), "{err}");
    let ctx = EncryptionContext::new();
    let err = twin.encrypt(EAST, &key, b"x", &ctx).await.unwrap_err();
    assert_eq!(err.code, "KMSInvalidStateException");

    twin.import_material(EAST, &key, &MATERIAL).await.unwrap();
    assert_eq!(twin.key(EAST, &key).unwrap().state, KeyState::Enabled);
    let imported = twin.trail();
    assert!(
        imported
            .iter()
            .any(|r| r["detail"]["eventName"] == "ImportKeyMaterial"),
        "ImportKeyMaterial is a write CloudTrail records"
    );

    twin.replicate_key(EAST, &key, WEST, &ReplicaSpec::default())
        .await
        .unwrap();
    let replica = twin.key(WEST, &key).unwrap();
    assert_eq!(
        replica.state,
        KeyState::PendingImport,
        "KMS copies no material"
    );
    assert_eq!(replica.kind, external(), "same spec, usage and origin");
    let sealed = twin.encrypt(EAST, &key, b"ledger", &ctx).await.unwrap();
    assert_eq!(
        twin.decrypt(WEST, None, &sealed.ciphertext, &ctx)
            .await
            .unwrap_err()
            .code,
        "KMSInvalidStateException"
    );

    let err = twin
        .import_material(WEST, &key, &[8; 32])
        .await
        .unwrap_err();
    assert_eq!(err.code, "IncorrectKeyMaterialException", "{err}");
    assert_eq!(twin.key(WEST, &key).unwrap().state, KeyState::PendingImport);

    twin.import_material(WEST, &key, &MATERIAL).await.unwrap();
    assert_eq!(twin.key(WEST, &key).unwrap().state, KeyState::Enabled);
    let opened = twin
        .decrypt(WEST, None, &sealed.ciphertext, &ctx)
        .await
        .unwrap();
    assert_eq!(opened.plaintext, b"ledger");
    let back = twin.encrypt(WEST, &key, b"reply", &ctx).await.unwrap();
    assert_eq!(
        twin.decrypt(EAST, None, &back.ciphertext, &ctx)
            .await
            .unwrap()
            .plaintext,
        b"reply"
    );
}

#[tokio::test]
async fn a_token_works_only_for_its_own_key_and_region_and_only_with_its_wrapping_key() {
    let twin = Twin::new().with_caller(ADMIN_USER);
    let key = new_external_primary(&twin);
    let other = new_external_primary(&twin);
    const ALG: &str = "RSAES_OAEP_SHA_1";
    let p = twin
        .get_parameters_for_import(EAST, &key, ALG, "RSA_3072")
        .await
        .unwrap();
    assert!(p.key_arn.ends_with(&key));
    let wrapped = wrap_for_import(&p.public_key, ALG, &MATERIAL).unwrap();
    let err = twin
        .import_key_material(
            EAST,
            &other,
            &p.import_token,
            &wrapped,
            Expiration::DoesNotExpire,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, "InvalidImportTokenException");
    // Wrapped under another token's public key: the wrapping key does not open it.
    let q = twin
        .get_parameters_for_import(EAST, &key, ALG, "RSA_2048")
        .await
        .unwrap();
    let err = twin
        .import_key_material(
            EAST,
            &key,
            &q.import_token,
            &wrapped,
            Expiration::DoesNotExpire,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, "InvalidCiphertextException");
    // Not 256 bits.
    let short = wrap_for_import(&p.public_key, ALG, &[1; 16]).unwrap();
    let err = twin
        .import_key_material(
            EAST,
            &key,
            &p.import_token,
            &short,
            Expiration::DoesNotExpire,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, "IncorrectKeyMaterialException");
    twin.import_key_material(
        EAST,
        &key,
        &p.import_token,
        &wrapped,
        Expiration::DoesNotExpire,
    )
    .await
    .unwrap();
    assert_eq!(twin.key(EAST, &key).unwrap().state, KeyState::Enabled);
    // Single-Region keys and unrelated keys do not share material: the same bytes are
    // accepted by another key, and its ciphertext does not open under this one.
    twin.import_material(EAST, &other, &MATERIAL).await.unwrap();
    let ctx = EncryptionContext::new();
    let sealed = twin.encrypt(EAST, &other, b"x", &ctx).await.unwrap();
    let err = twin
        .decrypt(EAST, Some(&key), &sealed.ciphertext, &ctx)
        .await
        .unwrap_err();
    assert_eq!(err.code, "IncorrectKeyException");
}

#[tokio::test]
async fn keys_of_kms_material_refuse_imports_and_external_needs_a_symmetric_key() {
    let twin = Twin::new().with_caller(ADMIN_USER);
    let kms_key = twin
        .create_key(EAST, true, None, "kms material", &[])
        .key_id;
    let err = twin
        .get_parameters_for_import(EAST, &kms_key, "RSAES_OAEP_SHA_256", "RSA_2048")
        .await
        .unwrap_err();
    assert_eq!(err.code, "UnsupportedOperationException");
    assert!(err.message.contains("origin is AWS_KMS"), "{err}");
    let key = new_external_primary(&twin);
    let err = twin
        .get_parameters_for_import(EAST, &key, "RSAES_OAEP_SHA_256", "RSA_1024")
        .await
        .unwrap_err();
    assert_eq!(err.code, "ValidationException");
    let hmac = KeyKind {
        origin: "EXTERNAL".into(),
        ..KeyKind::new("HMAC_256", "GENERATE_VERIFY_MAC")
    };
    let err = twin
        .try_create_key_of(EAST, &hmac, true, None, "", &[])
        .unwrap_err();
    assert_eq!(err.code, "UnsupportedOperationException");
}
