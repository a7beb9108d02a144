//! The twin's cryptography, as KMS documents it for multi-Region keys: related keys share
//! material (a replica decrypts what its primary encrypted, and the reverse), unrelated keys
//! do not, the encryption context is bound, keys that cannot be used refuse with KMS's codes,
//! the key policy authorizes, and each success is the key's last use in its Region
//! (GetKeyLastUsage).

use kms_replicator::model::KeyState;
use kms_replicator::port::{ErrorKind, Kms, ReplicaSpec};
use kms_replicator::usage::{now_ms, DAY_MS};
use kms_replicator::Op;
use serde_json::json;
use twin::{EncryptionContext, KeyKind, Twin, ADMIN_USER, TEAM_B_ROLE};

const EAST: &str = "us-east-1";
const WEST: &str = "us-west-2";

fn ctx(pairs: &[(&str, &str)]) -> EncryptionContext {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn mrk_in_two_regions(twin: &Twin) -> String {
    let key = twin.create_key(EAST, true, None, "app", &[]).key_id;
    twin.replicate_key(EAST, &key, WEST, &ReplicaSpec::default())
        .await
        .unwrap();
    key
}

#[tokio::test]
async fn a_replica_decrypts_what_its_primary_encrypted_and_the_reverse() {
    let twin = Twin::new().with_caller(ADMIN_USER);
    let key = mrk_in_two_regions(&twin).await;
    let c = ctx(&[("table", "orders")]);
    let sealed = twin.encrypt(EAST, &key, b"card 4242", &c).await.unwrap();
    assert!(sealed.key_arn.contains(EAST));
    // No KeyId: the ciphertext names its key, and the replica in us-west-2 opens it.
    let opened = twin
        .decrypt(WEST, None, &sealed.ciphertext, &c)
        .await
        .unwrap();
    assert_eq!(opened.plaintext, b"card 4242");
    assert!(opened.key_arn.contains(WEST), "{}", opened.key_arn);
    // And the reverse, with the key named, through a data key.
    let (dk, plain) = twin
        .generate_data_key(WEST, &key, 32, &c, true)
        .await
        .unwrap();
    let back = twin
        .decrypt(EAST, Some(&key), &dk.ciphertext, &c)
        .await
        .unwrap();
    assert_eq!(Some(back.plaintext), plain);
    assert_eq!(plain.unwrap().len(), 32);
}

#[tokio::test]
async fn unrelated_keys_and_another_context_do_not_decrypt() {
    let twin = Twin::new().with_caller(ADMIN_USER);
    let key = mrk_in_two_regions(&twin).await;
    let other = twin.create_key(EAST, true, None, "other", &[]).key_id;
    let sealed = twin
        .encrypt(EAST, &key, b"x", &ctx(&[("a", "1")]))
        .await
        .unwrap();
    let wrong_ctx = twin
        .decrypt(WEST, None, &sealed.ciphertext, &ctx(&[("a", "2")]))
        .await
        .unwrap_err();
    assert_eq!(wrong_ctx.code, "InvalidCiphertextException");
    let wrong_key = twin
        .decrypt(EAST, Some(&other), &sealed.ciphertext, &ctx(&[("a", "1")]))
        .await
        .unwrap_err();
    assert_eq!(wrong_key.code, "IncorrectKeyException");
    // A Region with no related key cannot open it.
    let nowhere = twin
        .decrypt("eu-west-1", None, &sealed.ciphertext, &ctx(&[("a", "1")]))
        .await
        .unwrap_err();
    assert_eq!(nowhere.code, "InvalidCiphertextException");
    // Garbage is refused, not a panic.
    let junk = twin
        .decrypt(EAST, None, b"junk", &EncryptionContext::new())
        .await
        .unwrap_err();
    assert_eq!(junk.code, "InvalidCiphertextException");
}

#[tokio::test]
async fn single_region_keys_keep_their_material_to_themselves() {
    let twin = Twin::new().with_caller(ADMIN_USER);
    let a = twin.create_key(EAST, false, None, "a", &[]).key_id;
    let sealed = twin
        .encrypt(EAST, &a, b"x", &EncryptionContext::new())
        .await
        .unwrap();
    let b = twin.create_key(EAST, false, None, "b", &[]).key_id;
    let err = twin
        .decrypt(
            EAST,
            Some(&b),
            &sealed.ciphertext,
            &EncryptionContext::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, "IncorrectKeyException");
    assert_eq!(
        twin.decrypt(EAST, None, &sealed.ciphertext, &EncryptionContext::new())
            .await
            .unwrap()
            .plaintext,
        b"x"
    );
}

#[tokio::test]
async fn keys_that_cannot_be_used_refuse_with_kms_codes() {
    let twin = Twin::new().with_caller(ADMIN_USER);
    let key = mrk_in_two_regions(&twin).await;
    let none = EncryptionContext::new();
    let sealed = twin.encrypt(EAST, &key, b"x", &none).await.unwrap();
    twin.disable_key(WEST, &key).unwrap();
    let disabled = twin
        .decrypt(WEST, None, &sealed.ciphertext, &none)
        .await
        .unwrap_err();
    assert_eq!(
        (disabled.kind, disabled.code.as_str()),
        (ErrorKind::Disabled, "DisabledException")
    );
    assert!(disabled.message.ends_with("is disabled."), "{disabled}");
    for (state, what) in [
        (KeyState::PendingDeletion, "is pending deletion."),
        (KeyState::PendingImport, "is pending import."),
        (KeyState::Creating, "is creating."),
    ] {
        twin.set_state(WEST, &key, state);
        let e = twin.encrypt(WEST, &key, b"x", &none).await.unwrap_err();
        assert_eq!(e.code, "KMSInvalidStateException", "{state}");
        assert!(e.message.ends_with(what), "{e}");
    }
    // Updating (a primary change under way) still serves cryptography.
    twin.set_state(WEST, &key, KeyState::Updating);
    twin.encrypt(WEST, &key, b"x", &none).await.unwrap();
}

#[tokio::test]
async fn the_key_policy_authorizes_each_operation_with_the_encryption_context() {
    let twin = Twin::new().with_caller(ADMIN_USER);
    // Team B is allowed everything by IAM; the key policy lets it decrypt only for its app.
    let policy = json!({"Version": "2012-10-17", "Statement": [
        {"Sid": "Admin", "Effect": "Allow",
         "Principal": {"AWS": ADMIN_USER}, "Action": "kms:*", "Resource": "*"},
        {"Sid": "TeamB", "Effect": "Allow",
         "Principal": {"AWS": TEAM_B_ROLE}, "Action": "kms:Decrypt", "Resource": "*",
         "Condition": {"StringEquals": {"kms:EncryptionContext:app": "team-b"}}}
    ]})
    .to_string();
    let key = twin.create_key(EAST, true, Some(&policy), "", &[]).key_id;
    let team_b = twin.with_caller(TEAM_B_ROLE);
    let theirs = ctx(&[("app", "team-b")]);
    let ours = ctx(&[("app", "payments")]);
    let e = team_b.encrypt(EAST, &key, b"x", &theirs).await.unwrap_err();
    assert_eq!(e.code, "AccessDeniedException");
    assert!(e.message.contains("kms:Encrypt"), "{e}");
    let for_b = twin.encrypt(EAST, &key, b"x", &theirs).await.unwrap();
    let for_us = twin.encrypt(EAST, &key, b"y", &ours).await.unwrap();
    team_b
        .decrypt(EAST, None, &for_b.ciphertext, &theirs)
        .await
        .unwrap();
    let refused = team_b
        .decrypt(EAST, None, &for_us.ciphertext, &ours)
        .await
        .unwrap_err();
    assert_eq!(refused.code, "AccessDeniedException");
}

#[tokio::test]
async fn each_success_is_the_keys_last_use_in_its_region() {
    let twin = Twin::new().with_caller(ADMIN_USER);
    let key = mrk_in_two_regions(&twin).await;
    let none = EncryptionContext::new();
    let fresh = twin.key_last_usage(WEST, &key).await.unwrap();
    assert_eq!(fresh.last_use, None);
    assert_eq!(
        fresh.tracking_start_ms, fresh.key_creation_ms,
        "tracked since creation"
    );
    let before = now_ms();
    let sealed = twin.encrypt(EAST, &key, b"x", &none).await.unwrap();
    twin.decrypt(WEST, None, &sealed.ciphertext, &none)
        .await
        .unwrap();
    // A refusal is not a use.
    twin.decrypt(EAST, None, b"junk", &none).await.unwrap_err();
    let east = twin.key_last_usage(EAST, &key).await.unwrap();
    let west = twin.key_last_usage(WEST, &key).await.unwrap();
    let (e, w) = (east.last_use.unwrap(), west.last_use.unwrap());
    assert_eq!(
        (e.operation.as_str(), w.operation.as_str()),
        ("Encrypt", "Decrypt")
    );
    assert!(e.at_ms >= before && w.at_ms >= e.at_ms);
    assert_ne!(e.cloudtrail_event_id, w.cloudtrail_event_id);
    // Tracking that began after the key was created.
    let old = now_ms() - 400 * DAY_MS;
    twin.set_creation_date(WEST, &key, old);
    twin.set_tracking_start(now_ms() - 10 * DAY_MS);
    let late = twin.key_last_usage(WEST, &key).await.unwrap();
    assert_eq!(late.key_creation_ms, Some(old));
    assert!(late.tracking_start_ms.unwrap() > old);
    // Alias names are not accepted; the call is authorized like any other.
    twin.create_alias(EAST, "alias/app", &key).await.unwrap();
    let alias = twin.key_last_usage(EAST, "alias/app").await.unwrap_err();
    assert_eq!(alias.code, "NotFoundException");
    let denied = twin
        .with_caller("arn:aws:iam::111122223333:role/nobody")
        .key_last_usage(EAST, &key)
        .await
        .unwrap_err();
    assert_eq!(denied.code, "AccessDeniedException");
    assert!(twin.calls().iter().any(|c| c.op == Op::GetKeyLastUsage));
}

/// A multi-Region key of `kind` in us-east-1 with a replica in us-west-2, under `policy`.
async fn mrk_of(twin: &Twin, kind: &KeyKind, policy: Option<&str>) -> String {
    let key = twin
        .try_create_key_of(EAST, kind, true, policy, "", &[])
        .unwrap()
        .key_id;
    twin.replicate_key(EAST, &key, WEST, &ReplicaSpec::default())
        .await
        .unwrap();
    key
}

#[tokio::test]
async fn a_replica_verifies_the_macs_and_signatures_of_its_primary_and_an_unrelated_key_does_not() {
    let twin = Twin::new().with_caller(ADMIN_USER);
    let hmac = mrk_of(
        &twin,
        &KeyKind::new("HMAC_256", "GENERATE_VERIFY_MAC"),
        None,
    )
    .await;
    let (arn, mac) = twin
        .generate_mac(EAST, &hmac, b"session 42", "HMAC_SHA_256")
        .await
        .unwrap();
    assert!(arn.contains(EAST));
    let verified = twin
        .verify_mac(WEST, &hmac, b"session 42", "HMAC_SHA_256", &mac)
        .await
        .unwrap();
    assert!(verified.contains(WEST), "{verified}");
    let e = twin
        .verify_mac(WEST, &hmac, b"session 43", "HMAC_SHA_256", &mac)
        .await
        .unwrap_err();
    assert_eq!(e.code, "KMSInvalidMacException");
    let e = twin
        .generate_mac(EAST, &hmac, b"x", "HMAC_SHA_512")
        .await
        .unwrap_err();
    assert_eq!(
        e.code, "InvalidKeyUsageException",
        "not this spec's algorithm"
    );
    let other = mrk_of(
        &twin,
        &KeyKind::new("HMAC_256", "GENERATE_VERIFY_MAC"),
        None,
    )
    .await;
    let e = twin
        .verify_mac(WEST, &other, b"session 42", "HMAC_SHA_256", &mac)
        .await
        .unwrap_err();
    assert_eq!(
        e.code, "KMSInvalidMacException",
        "unrelated keys share nothing"
    );

    for (spec, alg) in [
        ("ECC_NIST_P384", "ECDSA_SHA_384"),
        ("RSA_2048", "RSASSA_PSS_SHA_256"),
    ] {
        let key = mrk_of(&twin, &KeyKind::new(spec, "SIGN_VERIFY"), None).await;
        let (_, sig) = twin.sign(EAST, &key, b"release 1.4", alg).await.unwrap();
        twin.verify(WEST, &key, b"release 1.4", alg, &sig)
            .await
            .unwrap_or_else(|e| panic!("{spec}: {e}"));
        let e = twin
            .verify(WEST, &key, b"release 1.5", alg, &sig)
            .await
            .unwrap_err();
        assert_eq!(e.code, "KMSInvalidSignatureException", "{spec}");
        // The public key is the same in both Regions.
        let (_, east_pub, kind) = twin.get_public_key(EAST, &key).await.unwrap();
        let (_, west_pub, _) = twin.get_public_key(WEST, &key).await.unwrap();
        assert_eq!(east_pub, west_pub, "{spec}");
        assert_eq!(kind.spec, spec);
        let used = twin.key_last_usage(WEST, &key).await.unwrap();
        assert_eq!(used.last_use.unwrap().operation, "Verify", "{spec}");
    }
    // An encryption key neither signs nor MACs; a disabled signing key refuses.
    let sym = mrk_of(&twin, &KeyKind::default(), None).await;
    let e = twin
        .sign(EAST, &sym, b"x", "ECDSA_SHA_256")
        .await
        .unwrap_err();
    assert_eq!(e.code, "InvalidKeyUsageException");
    let e = twin
        .generate_mac(EAST, &sym, b"x", "HMAC_SHA_256")
        .await
        .unwrap_err();
    assert_eq!(e.code, "InvalidKeyUsageException");
    let ecc = mrk_of(&twin, &KeyKind::new("ECC_NIST_P256", "SIGN_VERIFY"), None).await;
    twin.set_state(WEST, &ecc, KeyState::Disabled);
    let e = twin
        .sign(WEST, &ecc, b"x", "ECDSA_SHA_256")
        .await
        .unwrap_err();
    assert_eq!(e.code, "DisabledException");
}

#[tokio::test]
async fn the_key_policy_authorizes_signing_with_the_signing_algorithm_in_the_context() {
    let twin = Twin::new().with_caller(ADMIN_USER);
    let policy = json!({"Version": "2012-10-17", "Statement": [
        {"Sid": "Admin", "Effect": "Allow",
         "Principal": {"AWS": ADMIN_USER}, "Action": "kms:*", "Resource": "*"},
        {"Sid": "TeamBSignsPss", "Effect": "Allow",
         "Principal": {"AWS": TEAM_B_ROLE}, "Action": "kms:Sign", "Resource": "*",
         "Condition": {"StringEquals": {"kms:SigningAlgorithm": "RSASSA_PSS_SHA_256"}}}
    ]})
    .to_string();
    let key = mrk_of(
        &twin,
        &KeyKind::new("RSA_2048", "SIGN_VERIFY"),
        Some(&policy),
    )
    .await;
    let team_b = twin.with_caller(TEAM_B_ROLE);
    team_b
        .sign(EAST, &key, b"x", "RSASSA_PSS_SHA_256")
        .await
        .unwrap();
    let e = team_b
        .sign(EAST, &key, b"x", "RSASSA_PKCS1_V1_5_SHA_256")
        .await
        .unwrap_err();
    assert_eq!(e.code, "AccessDeniedException");
    let e = team_b
        .verify(EAST, &key, b"x", "RSASSA_PSS_SHA_256", b"sig")
        .await
        .unwrap_err();
    assert_eq!(e.code, "AccessDeniedException", "{e}");
}

#[tokio::test]
async fn re_encrypt_moves_a_ciphertext_to_another_key_authorized_as_re_encrypt_from_and_to() {
    let twin = Twin::new().with_caller(ADMIN_USER);
    let policy = |action: &str| {
        json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "Admin", "Effect": "Allow",
             "Principal": {"AWS": ADMIN_USER}, "Action": "kms:*", "Resource": "*"},
            {"Sid": "TeamB", "Effect": "Allow",
             "Principal": {"AWS": TEAM_B_ROLE}, "Action": action, "Resource": "*"}
        ]})
        .to_string()
    };
    // Team B may re-encrypt from the multi-Region key and to the single-Region one.
    let source = mrk_of(
        &twin,
        &KeyKind::default(),
        Some(&policy("kms:ReEncryptFrom")),
    )
    .await;
    let dest = twin
        .create_key(WEST, false, Some(&policy("kms:ReEncryptTo")), "", &[])
        .key_id;
    let (c1, c2) = (ctx(&[("app", "a")]), ctx(&[("app", "b")]));
    let sealed = twin.encrypt(EAST, &source, b"row 7", &c1).await.unwrap();
    let team_b = twin.with_caller(TEAM_B_ROLE);
    // In us-west-2, through the replica of the key that made it.
    let req = twin::ReEncryptRequest {
        ciphertext: &sealed.ciphertext,
        source_key: None,
        source_context: &c1,
        destination_key: &dest,
        destination_context: &c2,
    };
    let (moved, from) = team_b.re_encrypt(WEST, &req).await.unwrap();
    assert!(from.contains(WEST) && from.ends_with(&source), "{from}");
    assert!(moved.key_arn.ends_with(&dest));
    for key in [&source, &dest] {
        let used = twin.key_last_usage(WEST, key).await.unwrap();
        assert_eq!(used.last_use.unwrap().operation, "ReEncrypt");
    }
    let opened = twin
        .decrypt(WEST, None, &moved.ciphertext, &c2)
        .await
        .unwrap();
    assert_eq!(opened.plaintext, b"row 7");
    // The other way round, each half is refused by its key policy.
    let back = twin::ReEncryptRequest {
        ciphertext: &moved.ciphertext,
        source_key: Some(&dest),
        source_context: &c2,
        destination_key: &source,
        destination_context: &c1,
    };
    let e = team_b.re_encrypt(WEST, &back).await.unwrap_err();
    assert_eq!(e.code, "AccessDeniedException");
    assert!(e.message.contains("kms:ReEncryptFrom"), "{e}");
    // The wrong source context opens nothing.
    let wrong = twin::ReEncryptRequest {
        source_context: &c2,
        ..req
    };
    let e = twin.re_encrypt(WEST, &wrong).await.unwrap_err();
    assert_eq!(e.code, "InvalidCiphertextException");
}
