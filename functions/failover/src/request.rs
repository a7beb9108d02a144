//! The on-call person's request: validating the invocation payload into a [`Promotion`].
//! Pure: no calls.

use kms_replicator::config::Config;
use kms_replicator::region::is_region_name;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What the on-call person sends. `key` (one key) and `from` (every managed key whose primary
/// is in that Region) exclude each other.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FailoverRequest {
    /// Key id, key ARN, alias name or alias ARN.
    #[serde(default)]
    pub key: Option<String>,
    /// Where to look `key` up when it is not an ARN.
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub from: Option<String>,
    pub to: String,
    #[serde(default)]
    pub dry_run: bool,
    /// Promote a key even though it does not carry the replication tag (not managed by this
    /// replicator). Off by default: the function acts on the keys the replicator manages.
    #[serde(default)]
    pub include_unmanaged: bool,
}

/// Shown with every input error.
pub const USAGE: &str = r#"expected {"key":"<key id, key ARN or alias/name>","to":"<Region>"} (optional "region":"<where to look the key up>") or {"from":"<Region>","to":"<Region>"}, each with an optional "dryRun":true; a key without the replication tag also needs "includeUnmanaged":true"#;

/// What is wrong with a request. Every message says what is wrong and what is expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("the input is not a JSON object; {usage}", usage = USAGE)]
    NotAnObject,
    /// The input does not deserialise (unknown field, wrong type, missing `to`...).
    #[error("{0}; {usage}", usage = USAGE)]
    Invalid(String),
    #[error("\"{field}\": '{value}' is not an AWS Region name")]
    NotARegion { field: &'static str, value: String },
    #[error(
        "\"to\": Region {to} is not in ALLOWED_REGIONS ({allowed}); the replicator never writes \
         outside them"
    )]
    NotAllowed { to: String, allowed: String },
    #[error(
        "give either \"key\" (one key) or \"from\" (every managed key whose primary is in that \
         Region), not both; {usage}",
        usage = USAGE
    )]
    KeyAndFrom,
    #[error(
        "give \"key\" (one key) or \"from\" (every managed key whose primary is in that \
         Region); {usage}",
        usage = USAGE
    )]
    NeitherKeyNorFrom,
    #[error("\"region\" only goes with \"key\"; {usage}", usage = USAGE)]
    RegionWithoutKey,
    #[error("\"from\" and \"to\" are both {0}: there is nothing to promote")]
    SameRegion(String),
    #[error("\"key\" is empty; {usage}", usage = USAGE)]
    EmptyKey,
    #[error("\"key\": '{0}' is not a KMS key or alias ARN")]
    NotAKmsArn(String),
    #[error("\"key\" is an ARN in {arn_region} but \"region\" says {given}; give one")]
    RegionMismatch { arn_region: String, given: String },
}

/// Which keys a request is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One key. `region` is where to look it up: the ARN's Region or the request's `region`;
    /// `None` means the managed Regions in order, then the target Region.
    Key { key: String, region: Option<String> },
    /// Every managed primary whose Region is `from`.
    Region { from: String },
}

/// A validated request: the promotion asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Promotion {
    pub target: Target,
    pub to: String,
    pub dry_run: bool,
    /// Whether a key without the replication tag may be promoted (single-key requests).
    pub include_unmanaged: bool,
    /// The invocation's deadline, when it has one: no key is started within
    /// `FailoverSettings::deadline_margin` of it, and waits end before it.
    pub deadline: Option<tokio::time::Instant>,
}

fn region_field(field: &'static str, value: &str) -> Result<String, RequestError> {
    let v = value.trim();
    if is_region_name(v) {
        Ok(v.to_string())
    } else {
        Err(RequestError::NotARegion {
            field,
            value: value.to_string(),
        })
    }
}

/// Validates the invocation payload. Every error says what is wrong and what is expected.
pub fn parse_request(input: &Value, cfg: &Config) -> Result<Promotion, RequestError> {
    if !input.is_object() {
        return Err(RequestError::NotAnObject);
    }
    let req: FailoverRequest =
        serde_json::from_value(input.clone()).map_err(|e| RequestError::Invalid(e.to_string()))?;
    let to = region_field("to", &req.to)?;
    if !cfg.is_allowed(&to) {
        return Err(RequestError::NotAllowed {
            to,
            allowed: cfg.allowed_regions.join(" "),
        });
    }
    let target = match (req.key, req.from) {
        (Some(_), Some(_)) => return Err(RequestError::KeyAndFrom),
        (None, None) => return Err(RequestError::NeitherKeyNorFrom),
        (None, Some(from)) => {
            if req.region.is_some() {
                return Err(RequestError::RegionWithoutKey);
            }
            let from = region_field("from", &from)?;
            if from == to {
                return Err(RequestError::SameRegion(to));
            }
            Target::Region { from }
        }
        (Some(key), None) => {
            let key = key.trim().to_string();
            if key.is_empty() {
                return Err(RequestError::EmptyKey);
            }
            let given = req
                .region
                .as_deref()
                .map(|r| region_field("region", r))
                .transpose()?;
            let region = if key.starts_with("arn:") {
                let arn = kms_replicator::arn::parse_kms_arn(&key)
                    .filter(|a| a.resource.starts_with("key/") || a.resource.starts_with("alias/"))
                    .ok_or_else(|| RequestError::NotAKmsArn(key.clone()))?;
                let arn_region = region_field("key", arn.region)?;
                if let Some(g) = given.filter(|g| *g != arn_region) {
                    return Err(RequestError::RegionMismatch {
                        arn_region,
                        given: g,
                    });
                }
                Some(arn_region)
            } else {
                given
            };
            Target::Key { key, region }
        }
    };
    Ok(Promotion {
        target,
        to,
        dry_run: req.dry_run,
        include_unmanaged: req.include_unmanaged,
        deadline: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg() -> Config {
        Config::new(&["us-east-1", "us-west-2", "eu-west-1"])
    }

    fn parse(v: Value) -> Result<Promotion, String> {
        parse_request(&v, &cfg()).map_err(|e| e.to_string())
    }

    #[test]
    fn a_key_and_a_target_make_a_single_key_promotion() {
        let p = parse(json!({"key": "alias/payments", "to": "us-west-2"})).unwrap();
        assert_eq!(
            p,
            Promotion {
                target: Target::Key {
                    key: "alias/payments".into(),
                    region: None
                },
                to: "us-west-2".into(),
                dry_run: false,
                include_unmanaged: false,
                deadline: None
            }
        );
        let p = parse(
            json!({"key": "mrk-1", "region": "us-east-1", "to": "us-west-2", "dryRun": true}),
        )
        .unwrap();
        assert!(p.dry_run);
        assert_eq!(
            p.target,
            Target::Key {
                key: "mrk-1".into(),
                region: Some("us-east-1".into())
            }
        );
    }

    #[test]
    fn an_arn_names_the_region_to_look_in() {
        let p = parse(
            json!({"key": "arn:aws:kms:eu-west-1:111122223333:key/mrk-1", "to": "us-west-2"}),
        )
        .unwrap();
        assert_eq!(
            p.target,
            Target::Key {
                key: "arn:aws:kms:eu-west-1:111122223333:key/mrk-1".into(),
                region: Some("eu-west-1".into())
            }
        );
        let e = parse(
            json!({"key": "arn:aws:kms:eu-west-1:111122223333:key/mrk-1",
                             "region": "us-east-1", "to": "us-west-2"}),
        )
        .unwrap_err();
        assert!(e.contains("but \"region\" says us-east-1"), "{e}");
        let e = parse(json!({"key": "arn:aws:s3:::bucket", "to": "us-west-2"})).unwrap_err();
        assert!(e.contains("not a KMS key or alias ARN"), "{e}");
    }

    #[test]
    fn a_source_region_makes_a_bulk_promotion() {
        let p = parse(json!({"from": "us-east-1", "to": "us-west-2"})).unwrap();
        assert_eq!(
            p.target,
            Target::Region {
                from: "us-east-1".into()
            }
        );
    }

    #[test]
    fn invalid_requests_are_refused_with_a_reason() {
        let cases = [
            (json!("alias/payments"), "not a JSON object"),
            (
                json!({"key": "k", "to": "us-west-2", "force": true}),
                "unknown field `force`",
            ),
            (json!({"key": "k"}), "missing field `to`"),
            (
                json!({"key": "k", "from": "us-east-1", "to": "us-west-2"}),
                "not both",
            ),
            (json!({"to": "us-west-2"}), "give \"key\""),
            (
                json!({"from": "us-west-2", "to": "us-west-2"}),
                "both us-west-2",
            ),
            (
                json!({"key": "k", "to": "us-west"}),
                "not an AWS Region name",
            ),
            (
                json!({"from": "Virginia", "to": "us-west-2"}),
                "\"from\": 'Virginia'",
            ),
            (
                json!({"key": "k", "to": "ap-south-1"}),
                "not in ALLOWED_REGIONS",
            ),
            (json!({"key": " ", "to": "us-west-2"}), "\"key\" is empty"),
            (
                json!({"from": "us-east-1", "region": "us-east-1", "to": "us-west-2"}),
                "only goes with",
            ),
            (
                json!({"key": "k", "to": "us-west-2", "dryRun": "yes"}),
                "invalid type",
            ),
        ];
        for (input, expected) in cases {
            let e = parse(input.clone()).unwrap_err();
            assert!(e.contains(expected), "{input}: {e}");
        }
    }
}
