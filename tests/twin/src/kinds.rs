//! The kinds of key the twin creates: key spec, key usage and origin, validated as CreateKey
//! validates them (KMS API Reference, CreateKey: `KeySpec`, `KeyUsage`, `Origin`), and the
//! algorithms each kind lists in its `KeyMetadata`. Related multi-Region keys share all three
//! (KMS Developer Guide, "Multi-Region keys": shared properties), so a replica takes its
//! primary's.

use kms_replicator::op::Op;
use kms_replicator::port::{ErrorKind, KmsError, KmsResult};

/// What CreateKey's KeySpec, KeyUsage and Origin say about a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyKind {
    pub spec: String,
    pub usage: String,
    pub origin: String,
}

impl Default for KeyKind {
    /// A symmetric encryption key with key material KMS made: CreateKey's defaults.
    fn default() -> Self {
        KeyKind::new("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT")
    }
}

/// The key specs the twin creates, each with the key usages KMS accepts for it (the first is
/// what the twin takes when the request names none and the spec allows only that one).
const SPECS: &[(&str, &[&str])] = &[
    ("SYMMETRIC_DEFAULT", &["ENCRYPT_DECRYPT"]),
    ("HMAC_224", &["GENERATE_VERIFY_MAC"]),
    ("HMAC_256", &["GENERATE_VERIFY_MAC"]),
    ("HMAC_384", &["GENERATE_VERIFY_MAC"]),
    ("HMAC_512", &["GENERATE_VERIFY_MAC"]),
    ("RSA_2048", &["ENCRYPT_DECRYPT", "SIGN_VERIFY"]),
    ("RSA_3072", &["ENCRYPT_DECRYPT", "SIGN_VERIFY"]),
    ("RSA_4096", &["ENCRYPT_DECRYPT", "SIGN_VERIFY"]),
    ("ECC_NIST_P256", &["SIGN_VERIFY", "KEY_AGREEMENT"]),
    ("ECC_NIST_P384", &["SIGN_VERIFY", "KEY_AGREEMENT"]),
    ("ECC_NIST_P521", &["SIGN_VERIFY", "KEY_AGREEMENT"]),
    ("ECC_SECG_P256K1", &["SIGN_VERIFY"]),
];

/// Key specs KMS has that the twin does not model.
const NOT_MODELLED: &[&str] = &[
    "SM2",
    "ML_DSA_44",
    "ML_DSA_65",
    "ML_DSA_87",
    "ECC_NIST_EDWARDS25519",
];

const USAGES: &[&str] = &[
    "ENCRYPT_DECRYPT",
    "SIGN_VERIFY",
    "GENERATE_VERIFY_MAC",
    "KEY_AGREEMENT",
];

fn invalid(region: &str, code: &str, msg: String) -> KmsError {
    let kind = ErrorKind::from_code(code, None);
    KmsError::new(kind, Op::CreateKey, region, code, msg)
}

/// The ValidationException KMS answers for a value outside a field's enum.
fn not_in_enum(region: &str, field: &str, value: &str, allowed: &[&str]) -> KmsError {
    let msg = format!(
        "1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: \
         Member must satisfy enum value set: [{}]",
        allowed.join(", ")
    );
    invalid(region, "ValidationException", msg)
}

impl KeyKind {
    pub fn new(spec: &str, usage: &str) -> KeyKind {
        KeyKind {
            spec: spec.into(),
            usage: usage.into(),
            origin: "AWS_KMS".into(),
        }
    }

    /// CreateKey's request: KeySpec (default SYMMETRIC_DEFAULT), KeyUsage (default
    /// ENCRYPT_DECRYPT) and Origin (default AWS_KMS), checked as KMS checks them.
    pub fn from_request(
        region: &str,
        spec: Option<&str>,
        usage: Option<&str>,
        origin: Option<&str>,
        multi_region: bool,
    ) -> KmsResult<KeyKind> {
        let kind = KeyKind {
            spec: spec.unwrap_or("SYMMETRIC_DEFAULT").into(),
            usage: usage.unwrap_or("ENCRYPT_DECRYPT").into(),
            origin: origin.unwrap_or("AWS_KMS").into(),
        };
        kind.validate(region, multi_region)?;
        Ok(kind)
    }

    /// ValidationException for a value outside the API's enums or a usage the spec does not
    /// allow; UnsupportedOperationException for what KMS has but the twin does not model, and
    /// for multi-Region keys in a custom key store, which KMS does not support.
    pub fn validate(&self, region: &str, multi_region: bool) -> KmsResult<()> {
        if NOT_MODELLED.contains(&self.spec.as_str()) {
            return Err(invalid(
                region,
                "UnsupportedOperationException",
                format!("the twin does not implement key spec {}", self.spec),
            ));
        }
        let Some((_, usages)) = SPECS.iter().find(|(s, _)| *s == self.spec) else {
            let all: Vec<&str> = SPECS.iter().map(|(s, _)| *s).collect();
            return Err(not_in_enum(region, "keySpec", &self.spec, &all));
        };
        if !USAGES.contains(&self.usage.as_str()) {
            return Err(not_in_enum(region, "keyUsage", &self.usage, USAGES));
        }
        if !usages.contains(&self.usage.as_str()) {
            return Err(invalid(
                region,
                "ValidationException",
                format!(
                    "KeyUsage {} is not compatible with KeySpec {}: it allows {}",
                    self.usage,
                    self.spec,
                    usages.join(", ")
                ),
            ));
        }
        match self.origin.as_str() {
            "AWS_KMS" => Ok(()),
            // KMS imports material into symmetric encryption keys; multi-Region keys with
            // imported material must be symmetric (Developer Guide, "Importing key material
            // into multi-Region keys"). Imported HMAC and asymmetric material is not modelled.
            "EXTERNAL" if self.is_symmetric_encryption() => Ok(()),
            "EXTERNAL" if multi_region => Err(invalid(
                region,
                "UnsupportedOperationException",
                "Multi-Region keys with imported key material must be symmetric encryption keys"
                    .to_string(),
            )),
            "EXTERNAL" => Err(invalid(
                region,
                "UnsupportedOperationException",
                format!(
                    "the twin does not implement imported key material for key spec {}",
                    self.spec
                ),
            )),
            "AWS_CLOUDHSM" | "EXTERNAL_KEY_STORE" if multi_region => Err(invalid(
                region,
                "UnsupportedOperationException",
                "Multi-Region keys are not supported in custom key stores".to_string(),
            )),
            "AWS_CLOUDHSM" | "EXTERNAL_KEY_STORE" => Err(invalid(
                region,
                "UnsupportedOperationException",
                format!("the twin does not implement origin {}", self.origin),
            )),
            other => Err(invalid(
                region,
                "ValidationException",
                format!(
                    "1 validation error detected: Value '{other}' at 'origin' failed to satisfy \
                     constraint: Member must satisfy enum value set: [AWS_KMS, EXTERNAL, \
                     AWS_CLOUDHSM, EXTERNAL_KEY_STORE]"
                ),
            )),
        }
    }

    pub fn is_symmetric_encryption(&self) -> bool {
        self.spec == "SYMMETRIC_DEFAULT"
    }

    /// Origin `EXTERNAL`: the key material is imported, never made or copied by KMS.
    pub fn is_imported(&self) -> bool {
        self.origin == "EXTERNAL"
    }

    pub fn is_hmac(&self) -> bool {
        self.spec.starts_with("HMAC_")
    }

    /// Whether `setting` (a key spec, or a family: `HMAC`, `RSA`, `ECC`) names this kind.
    pub fn is_of(&self, setting: &str) -> bool {
        self.spec == setting || self.spec.starts_with(&format!("{setting}_"))
    }

    /// `KeyMetadata`'s EncryptionAlgorithms, MacAlgorithms, SigningAlgorithms and
    /// KeyAgreementAlgorithms: the fields this kind has, with their values.
    pub fn algorithms(&self) -> Vec<(&'static str, Vec<String>)> {
        let list = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let bits = self.spec.rsplit('_').next().unwrap_or_default();
        match (self.spec.as_str(), self.usage.as_str()) {
            ("SYMMETRIC_DEFAULT", _) => {
                vec![("EncryptionAlgorithms", list(&["SYMMETRIC_DEFAULT"]))]
            }
            (s, _) if s.starts_with("HMAC_") => {
                vec![("MacAlgorithms", vec![format!("HMAC_SHA_{bits}")])]
            }
            (s, "ENCRYPT_DECRYPT") if s.starts_with("RSA_") => vec![(
                "EncryptionAlgorithms",
                list(&["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"]),
            )],
            (s, "SIGN_VERIFY") if s.starts_with("RSA_") => vec![(
                "SigningAlgorithms",
                list(&[
                    "RSASSA_PKCS1_V1_5_SHA_256",
                    "RSASSA_PKCS1_V1_5_SHA_384",
                    "RSASSA_PKCS1_V1_5_SHA_512",
                    "RSASSA_PSS_SHA_256",
                    "RSASSA_PSS_SHA_384",
                    "RSASSA_PSS_SHA_512",
                ]),
            )],
            (_, "KEY_AGREEMENT") => vec![("KeyAgreementAlgorithms", list(&["ECDH"]))],
            ("ECC_SECG_P256K1", _) | ("ECC_NIST_P256", _) => {
                vec![("SigningAlgorithms", list(&["ECDSA_SHA_256"]))]
            }
            ("ECC_NIST_P384", _) => vec![("SigningAlgorithms", list(&["ECDSA_SHA_384"]))],
            _ => vec![("SigningAlgorithms", list(&["ECDSA_SHA_512"]))],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(spec: &str, usage: Option<&str>, origin: Option<&str>) -> Option<String> {
        KeyKind::from_request("us-east-1", Some(spec), usage, origin, true)
            .err()
            .map(|e| e.code)
    }

    #[test]
    fn create_key_accepts_each_spec_with_its_usages_and_refuses_the_others() {
        assert_eq!(code("HMAC_256", Some("GENERATE_VERIFY_MAC"), None), None);
        assert_eq!(code("RSA_3072", Some("SIGN_VERIFY"), None), None);
        assert_eq!(code("RSA_3072", Some("ENCRYPT_DECRYPT"), None), None);
        assert_eq!(code("ECC_NIST_P384", Some("KEY_AGREEMENT"), None), None);
        assert_eq!(code("ECC_SECG_P256K1", Some("SIGN_VERIFY"), None), None);
        // The default usage, ENCRYPT_DECRYPT, does not fit an HMAC or ECC key.
        let v = Some("ValidationException".to_string());
        assert_eq!(code("HMAC_256", None, None), v);
        assert_eq!(code("ECC_NIST_P256", None, None), v);
        assert_eq!(code("ECC_SECG_P256K1", Some("KEY_AGREEMENT"), None), v);
        assert_eq!(code("AES_256", None, None), v);
        assert_eq!(code("SYMMETRIC_DEFAULT", Some("SIGN"), None), v);
        let u = Some("UnsupportedOperationException".to_string());
        assert_eq!(code("SYMMETRIC_DEFAULT", None, Some("AWS_CLOUDHSM")), u);
        assert_eq!(code("SM2", Some("SIGN_VERIFY"), None), u);
    }

    #[test]
    fn each_kind_lists_its_algorithms() {
        let hmac = KeyKind::new("HMAC_384", "GENERATE_VERIFY_MAC");
        assert_eq!(
            hmac.algorithms(),
            vec![("MacAlgorithms", vec!["HMAC_SHA_384".to_string()])]
        );
        assert!(hmac.is_of("HMAC") && hmac.is_of("HMAC_384") && !hmac.is_of("HMAC_3"));
        let ecc = KeyKind::new("ECC_NIST_P521", "SIGN_VERIFY");
        assert_eq!(
            ecc.algorithms(),
            vec![("SigningAlgorithms", vec!["ECDSA_SHA_512".to_string()])]
        );
    }
}
