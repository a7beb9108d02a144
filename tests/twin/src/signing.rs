//! The material of HMAC and asymmetric keys, and the MACs and signatures over it (`aws-lc-rs`).
//!
//! As with symmetric encryption keys (`crypto.rs`), related multi-Region keys share one
//! material: the HMAC secret, or the key pair, is made on first use and is the same in every
//! Region of the key, so a replica verifies what its primary signed or MACed, and the
//! reverse. Signatures are ECDSA (ASN.1 DER, as KMS returns them) or RSASSA (PKCS #1 v1.5 and
//! PSS) over the raw message; public keys are DER SubjectPublicKeyInfo, as GetPublicKey
//! returns them.

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair, UnparsedPublicKey};
use std::collections::HashMap;

/// One key's secret: an HMAC key, or an asymmetric key pair as PKCS #8.
#[derive(Debug)]
enum Secret {
    Hmac(Vec<u8>),
    Ec(Vec<u8>),
    Rsa(Vec<u8>),
}

/// The secrets of HMAC and asymmetric keys, by material id (`crypto::material_id`).
#[derive(Debug, Default)]
pub(crate) struct Secrets {
    by_material: HashMap<String, Secret>,
}

fn hmac_algorithm(spec: &str) -> Option<(hmac::Algorithm, usize)> {
    Some(match spec {
        "HMAC_224" => (hmac::HMAC_SHA224, 28),
        "HMAC_256" => (hmac::HMAC_SHA256, 32),
        "HMAC_384" => (hmac::HMAC_SHA384, 48),
        "HMAC_512" => (hmac::HMAC_SHA512, 64),
        _ => return None,
    })
}

/// The ECDSA signing and verification algorithms of a curve, with KMS's algorithm name.
fn ecdsa(
    spec: &str,
) -> Option<(
    &'static signature::EcdsaSigningAlgorithm,
    &'static signature::EcdsaVerificationAlgorithm,
    &'static str,
)> {
    Some(match spec {
        "ECC_NIST_P256" => (
            &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            &signature::ECDSA_P256_SHA256_ASN1,
            "ECDSA_SHA_256",
        ),
        "ECC_NIST_P384" => (
            &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
            &signature::ECDSA_P384_SHA384_ASN1,
            "ECDSA_SHA_384",
        ),
        "ECC_NIST_P521" => (
            &signature::ECDSA_P521_SHA512_ASN1_SIGNING,
            &signature::ECDSA_P521_SHA512_ASN1,
            "ECDSA_SHA_512",
        ),
        "ECC_SECG_P256K1" => (
            &signature::ECDSA_P256K1_SHA256_ASN1_SIGNING,
            &signature::ECDSA_P256K1_SHA256_ASN1,
            "ECDSA_SHA_256",
        ),
        _ => return None,
    })
}

/// An RSA signing algorithm's encoding and verification parameters.
fn rsassa(
    algorithm: &str,
) -> Option<(
    &'static signature::RsaSignatureEncoding,
    &'static signature::RsaParameters,
)> {
    Some(match algorithm {
        "RSASSA_PKCS1_V1_5_SHA_256" => (
            &signature::RSA_PKCS1_SHA256,
            &signature::RSA_PKCS1_2048_8192_SHA256,
        ),
        "RSASSA_PKCS1_V1_5_SHA_384" => (
            &signature::RSA_PKCS1_SHA384,
            &signature::RSA_PKCS1_2048_8192_SHA384,
        ),
        "RSASSA_PKCS1_V1_5_SHA_512" => (
            &signature::RSA_PKCS1_SHA512,
            &signature::RSA_PKCS1_2048_8192_SHA512,
        ),
        "RSASSA_PSS_SHA_256" => (
            &signature::RSA_PSS_SHA256,
            &signature::RSA_PSS_2048_8192_SHA256,
        ),
        "RSASSA_PSS_SHA_384" => (
            &signature::RSA_PSS_SHA384,
            &signature::RSA_PSS_2048_8192_SHA384,
        ),
        "RSASSA_PSS_SHA_512" => (
            &signature::RSA_PSS_SHA512,
            &signature::RSA_PSS_2048_8192_SHA512,
        ),
        _ => return None,
    })
}

/// Whether KMS signs with `algorithm` under a key of `spec`.
pub(crate) fn signs_with(spec: &str, algorithm: &str) -> bool {
    match ecdsa(spec) {
        Some((_, _, name)) => name == algorithm,
        None => spec.starts_with("RSA_") && rsassa(algorithm).is_some(),
    }
}

/// Whether `algorithm` is the MAC algorithm of `spec` (HMAC_SHA_256 for HMAC_256, say).
pub(crate) fn macs_with(spec: &str, algorithm: &str) -> bool {
    spec.strip_prefix("HMAC_")
        .is_some_and(|bits| algorithm == format!("HMAC_SHA_{bits}"))
}

impl Secrets {
    /// The secret of `material`, made on first use for a key of `spec`.
    fn secret(&mut self, material: &str, spec: &str) -> &Secret {
        self.by_material
            .entry(material.to_string())
            .or_insert_with(|| {
                if let Some((_, len)) = hmac_algorithm(spec) {
                    return Secret::Hmac(crate::crypto::random(len));
                }
                if let Some((alg, _, _)) = ecdsa(spec) {
                    let pair = EcdsaKeyPair::generate(alg).expect("an EC key pair");
                    return Secret::Ec(pair.to_pkcs8v1().expect("PKCS #8").as_ref().to_vec());
                }
                let size = match spec {
                    "RSA_3072" => KeySize::Rsa3072,
                    "RSA_4096" => KeySize::Rsa4096,
                    _ => KeySize::Rsa2048,
                };
                let pair = RsaKeyPair::generate(size).expect("an RSA key pair");
                let der: Pkcs8V1Der = pair.as_der().expect("PKCS #8");
                Secret::Rsa(der.as_ref().to_vec())
            })
    }

    /// The MAC of `message` under an HMAC key's secret.
    pub(crate) fn mac(&mut self, material: &str, spec: &str, message: &[u8]) -> Vec<u8> {
        let (alg, _) = hmac_algorithm(spec).expect("an HMAC key spec");
        let Secret::Hmac(k) = self.secret(material, spec) else {
            unreachable!("an HMAC key's material is an HMAC secret")
        };
        hmac::sign(&hmac::Key::new(alg, k), message)
            .as_ref()
            .to_vec()
    }

    pub(crate) fn verify_mac(
        &mut self,
        material: &str,
        spec: &str,
        message: &[u8],
        mac: &[u8],
    ) -> bool {
        let (alg, _) = hmac_algorithm(spec).expect("an HMAC key spec");
        let Secret::Hmac(k) = self.secret(material, spec) else {
            return false;
        };
        hmac::verify(&hmac::Key::new(alg, k), message, mac).is_ok()
    }

    /// A signature of `message` with `algorithm` (one [`signs_with`] accepts for `spec`).
    pub(crate) fn sign(
        &mut self,
        material: &str,
        spec: &str,
        algorithm: &str,
        message: &[u8],
    ) -> Vec<u8> {
        let rng = SystemRandom::new();
        match self.secret(material, spec) {
            Secret::Ec(pkcs8) => {
                let (alg, _, _) = ecdsa(spec).expect("an ECC key spec");
                let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8).expect("our own PKCS #8");
                pair.sign(&rng, message)
                    .expect("ECDSA signs")
                    .as_ref()
                    .to_vec()
            }
            Secret::Rsa(pkcs8) => {
                let (encoding, _) = rsassa(algorithm).expect("an RSASSA algorithm");
                let pair = RsaKeyPair::from_pkcs8(pkcs8).expect("our own PKCS #8");
                let mut out = vec![0u8; pair.public_modulus_len()];
                pair.sign(encoding, &rng, message, &mut out)
                    .expect("RSA signs");
                out
            }
            Secret::Hmac(_) => unreachable!("signing keys are asymmetric"),
        }
    }

    pub(crate) fn verify(
        &mut self,
        material: &str,
        spec: &str,
        algorithm: &str,
        message: &[u8],
        sig: &[u8],
    ) -> bool {
        match self.secret(material, spec) {
            Secret::Ec(pkcs8) => {
                let Some((alg, verify, _)) = ecdsa(spec) else {
                    return false;
                };
                let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8).expect("our own PKCS #8");
                UnparsedPublicKey::new(verify, pair.public_key().as_ref())
                    .verify(message, sig)
                    .is_ok()
            }
            Secret::Rsa(pkcs8) => {
                let Some((_, params)) = rsassa(algorithm) else {
                    return false;
                };
                let pair = RsaKeyPair::from_pkcs8(pkcs8).expect("our own PKCS #8");
                UnparsedPublicKey::new(params, pair.public_key().as_ref())
                    .verify(message, sig)
                    .is_ok()
            }
            Secret::Hmac(_) => false,
        }
    }

    /// The public key of an asymmetric key, DER SubjectPublicKeyInfo.
    pub(crate) fn public_key(&mut self, material: &str, spec: &str) -> Vec<u8> {
        match self.secret(material, spec) {
            Secret::Ec(pkcs8) => {
                let (alg, _, _) = ecdsa(spec).expect("an ECC key spec");
                let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8).expect("our own PKCS #8");
                let der: PublicKeyX509Der = pair.public_key().as_der().expect("SPKI");
                der.as_ref().to_vec()
            }
            Secret::Rsa(pkcs8) => {
                let pair = RsaKeyPair::from_pkcs8(pkcs8).expect("our own PKCS #8");
                let der: PublicKeyX509Der = pair.public_key().as_der().expect("SPKI");
                der.as_ref().to_vec()
            }
            Secret::Hmac(_) => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_material_signs_and_verifies_and_another_does_not() {
        let mut s = Secrets::default();
        for (spec, alg) in [
            ("ECC_NIST_P256", "ECDSA_SHA_256"),
            ("ECC_NIST_P521", "ECDSA_SHA_512"),
            ("ECC_SECG_P256K1", "ECDSA_SHA_256"),
            ("RSA_2048", "RSASSA_PSS_SHA_256"),
            ("RSA_2048", "RSASSA_PKCS1_V1_5_SHA_384"),
        ] {
            let sig = s.sign("mrk-1", spec, alg, b"release 1.4");
            assert!(s.verify("mrk-1", spec, alg, b"release 1.4", &sig), "{spec}");
            assert!(
                !s.verify("mrk-1", spec, alg, b"release 1.5", &sig),
                "{spec}"
            );
            assert!(!s.verify(&format!("{spec}-other"), spec, alg, b"release 1.4", &sig));
            assert!(!s.public_key("mrk-1", spec).is_empty());
            s.by_material.clear();
        }
        let mac = s.mac("mrk-2", "HMAC_384", b"token");
        assert_eq!(mac.len(), 48);
        assert!(s.verify_mac("mrk-2", "HMAC_384", b"token", &mac));
        assert!(!s.verify_mac("mrk-2", "HMAC_384", b"tokem", &mac));
        assert!(!s.verify_mac("mrk-3", "HMAC_384", b"token", &mac));
        assert!(signs_with("RSA_4096", "RSASSA_PSS_SHA_512"));
        assert!(!signs_with("ECC_NIST_P384", "ECDSA_SHA_256"));
        assert!(macs_with("HMAC_224", "HMAC_SHA_224") && !macs_with("HMAC_224", "HMAC_SHA_256"));
    }
}
