//! The harness's side of AWS: one SDK configuration from the profile (or the environment, and
//! `AWS_ENDPOINT_URL` when it is set), a KMS client per Region, a Lambda client for the
//! stack's functions, every call bounded; the reads a check needs, as plain values; and what a
//! failed call said.

use crate::access::Denial;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kms::types::{KeyState, MultiRegionKeyType};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

/// A KMS call answers within seconds; the SDK's retries of one call fit in this bound.
const KMS_CALL_TIMEOUT: Duration = Duration::from_secs(60);
const KMS_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(20);
/// The failover function's timeout is 300 s (template.yaml): a synchronous invocation answers
/// within it.
const INVOKE_TIMEOUT: Duration = Duration::from_secs(330);

/// A call that failed, and what AWS said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    /// `kms:CreateKey in us-east-1`.
    pub call: String,
    pub code: Option<String>,
    pub message: String,
}

impl CallError {
    pub fn of<E, R>(call: String, e: SdkError<E, R>) -> CallError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: fmt::Debug + Send + Sync + 'static,
    {
        let code = e.code().map(str::to_string);
        let message = match e.message() {
            Some(m) => m.to_string(),
            None => DisplayErrorContext(&e).to_string(),
        };
        CallError {
            call,
            code,
            message,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.code.as_deref() == Some("NotFoundException")
    }

    pub fn is_access_denied(&self) -> bool {
        self.code
            .as_deref()
            .is_some_and(|c| c.starts_with("AccessDenied"))
    }

    pub fn denial(&self) -> Option<Denial> {
        Denial::parse(&self.message)
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.code {
            Some(code) => write!(f, "{}: {code}: {}", self.call, self.message),
            None => write!(f, "{}: {}", self.call, self.message),
        }
    }
}

/// What one Region holds of a key: DescribeKey's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyView {
    pub region: String,
    pub arn: String,
    pub account: Option<String>,
    /// `Enabled`, `Creating`, `PendingDeletion`, ...
    pub state: String,
    /// `PRIMARY` or `REPLICA` (KMS may show both keys as replicas while `Updating`).
    pub kind: Option<String>,
    pub primary_region: Option<String>,
    pub replica_regions: Vec<String>,
    pub description: String,
    pub deletion_date: Option<String>,
}

impl KeyView {
    pub fn is_primary(&self) -> bool {
        self.kind.as_deref() == Some(MultiRegionKeyType::Primary.as_str())
    }

    pub fn is_replica_of(&self, primary_region: &str) -> bool {
        self.kind.as_deref() == Some(MultiRegionKeyType::Replica.as_str())
            && self.primary_region.as_deref() == Some(primary_region)
    }

    pub fn is_enabled(&self) -> bool {
        self.state == KeyState::Enabled.as_str()
    }

    pub fn is_pending_deletion(&self) -> bool {
        self.state == KeyState::PendingDeletion.as_str()
            || self.state == KeyState::PendingReplicaDeletion.as_str()
    }

    /// The primary's Region, then the replicas', as the key's multi-Region configuration
    /// lists them.
    pub fn related_regions(&self) -> Vec<String> {
        let mut all: Vec<String> = self.primary_region.iter().cloned().collect();
        all.extend(self.replica_regions.iter().cloned());
        all
    }
}

/// A Lambda function's answer to a synchronous invocation.
#[derive(Debug, Clone, PartialEq)]
pub struct Invoked {
    pub answer: Value,
    /// `Unhandled` when the function failed; its answer then has `errorType` and
    /// `errorMessage`.
    pub function_error: Option<String>,
}

pub struct Cloud {
    sdk: SdkConfig,
    home: String,
    kms: Mutex<BTreeMap<String, aws_sdk_kms::Client>>,
    lambda: aws_sdk_lambda::Client,
    /// Where the calls go: `AWS_ENDPOINT_URL`, or AWS itself.
    pub endpoint: String,
}

impl Cloud {
    /// The SDK configuration of `profile` (the default chain when `None`) in `region` (the
    /// profile's when `None`), and the Lambda client in `lambda_region` (the home Region when
    /// `None`).
    pub async fn connect(
        profile: Option<&str>,
        region: Option<&str>,
        lambda_region: Option<&str>,
    ) -> Result<Cloud, String> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(p) = profile {
            loader = loader.profile_name(p);
        }
        if let Some(r) = region {
            loader = loader.region(Region::new(r.to_string()));
        }
        let sdk = loader.load().await;
        let home = sdk
            .region()
            .map(|r| r.to_string())
            .ok_or("no AWS Region: pass --region, or set AWS_REGION or the profile's region")?;
        let lambda_region = lambda_region.unwrap_or(&home).to_string();
        let lambda = aws_sdk_lambda::Client::from_conf(
            aws_sdk_lambda::config::Builder::from(&sdk)
                .region(Region::new(lambda_region))
                .timeout_config(
                    TimeoutConfig::builder()
                        .operation_timeout(INVOKE_TIMEOUT)
                        .build(),
                )
                // A second attempt of a promotion would be a second promotion request.
                .retry_config(RetryConfig::standard().with_max_attempts(1))
                .build(),
        );
        let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "AWS".into());
        Ok(Cloud {
            sdk,
            home,
            kms: Mutex::new(BTreeMap::new()),
            lambda,
            endpoint,
        })
    }

    pub fn home_region(&self) -> &str {
        &self.home
    }

    /// The KMS client of `region` (made on first use; clients are cheap to clone).
    pub fn kms(&self, region: &str) -> aws_sdk_kms::Client {
        let mut clients = self.kms.lock().unwrap_or_else(|p| p.into_inner());
        clients
            .entry(region.to_string())
            .or_insert_with(|| {
                aws_sdk_kms::Client::from_conf(
                    aws_sdk_kms::config::Builder::from(&self.sdk)
                        .region(Region::new(region.to_string()))
                        .timeout_config(
                            TimeoutConfig::builder()
                                .operation_timeout(KMS_CALL_TIMEOUT)
                                .operation_attempt_timeout(KMS_ATTEMPT_TIMEOUT)
                                .build(),
                        )
                        .build(),
                )
            })
            .clone()
    }

    /// Invokes `function` synchronously with `payload`.
    pub async fn invoke(&self, function: &str, payload: &Value) -> Result<Invoked, CallError> {
        let out = self
            .lambda
            .invoke()
            .function_name(function)
            .payload(aws_sdk_lambda::primitives::Blob::new(payload.to_string()))
            .send()
            .await
            .map_err(|e| CallError::of(format!("lambda:InvokeFunction {function}"), e))?;
        let body = out.payload().map(|b| b.as_ref()).unwrap_or_default();
        let answer = serde_json::from_slice(body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()));
        Ok(Invoked {
            answer,
            function_error: out.function_error().map(str::to_string),
        })
    }

    /// DescribeKey of `key_id` in `region`; `None` when the Region holds no such key.
    pub async fn describe(&self, region: &str, key_id: &str) -> Result<Option<KeyView>, CallError> {
        let r = self.kms(region).describe_key().key_id(key_id).send().await;
        let out = match r {
            Ok(out) => out,
            Err(e) => {
                let e = CallError::of(format!("kms:DescribeKey in {region}"), e);
                return if e.is_not_found() { Ok(None) } else { Err(e) };
            }
        };
        let Some(m) = out.key_metadata() else {
            return Ok(None);
        };
        let mr = m.multi_region_configuration();
        Ok(Some(KeyView {
            region: region.to_string(),
            arn: m.arn().unwrap_or_default().to_string(),
            account: m.aws_account_id().map(str::to_string),
            state: m
                .key_state()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            kind: mr
                .and_then(|c| c.multi_region_key_type())
                .map(|t| t.as_str().to_string()),
            primary_region: mr
                .and_then(|c| c.primary_key())
                .and_then(|k| k.region())
                .map(str::to_string),
            replica_regions: mr
                .map(|c| {
                    c.replica_keys()
                        .iter()
                        .filter_map(|k| k.region().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            description: m.description().unwrap_or_default().to_string(),
            deletion_date: m.deletion_date().map(|d| d.to_string()),
        }))
    }

    pub async fn policy(&self, region: &str, key_id: &str) -> Result<String, CallError> {
        let out = self
            .kms(region)
            .get_key_policy()
            .key_id(key_id)
            .policy_name("default")
            .send()
            .await
            .map_err(|e| CallError::of(format!("kms:GetKeyPolicy in {region}"), e))?;
        Ok(out.policy().unwrap_or_default().to_string())
    }

    /// The names of the aliases that point at `key_id` in `region`.
    pub async fn aliases(&self, region: &str, key_id: &str) -> Result<BTreeSet<String>, CallError> {
        let mut names = BTreeSet::new();
        let mut marker: Option<String> = None;
        loop {
            let out = self
                .kms(region)
                .list_aliases()
                .key_id(key_id)
                .set_marker(marker.take())
                .send()
                .await
                .map_err(|e| CallError::of(format!("kms:ListAliases in {region}"), e))?;
            names.extend(
                out.aliases()
                    .iter()
                    .filter_map(|a| a.alias_name().map(str::to_string)),
            );
            match out.next_marker() {
                Some(m) if out.truncated() => marker = Some(m.to_string()),
                _ => return Ok(names),
            }
        }
    }

    pub async fn tags(
        &self,
        region: &str,
        key_id: &str,
    ) -> Result<BTreeMap<String, String>, CallError> {
        let mut tags = BTreeMap::new();
        let mut marker: Option<String> = None;
        loop {
            let out = self
                .kms(region)
                .list_resource_tags()
                .key_id(key_id)
                .set_marker(marker.take())
                .send()
                .await
                .map_err(|e| CallError::of(format!("kms:ListResourceTags in {region}"), e))?;
            tags.extend(
                out.tags()
                    .iter()
                    .map(|t| (t.tag_key().to_string(), t.tag_value().to_string())),
            );
            match out.next_marker() {
                Some(m) if out.truncated() => marker = Some(m.to_string()),
                _ => return Ok(tags),
            }
        }
    }
}

/// A KMS tag, for requests.
pub fn tag(key: &str, value: &str) -> aws_sdk_kms::types::Tag {
    aws_sdk_kms::types::Tag::builder()
        .tag_key(key)
        .tag_value(value)
        .build()
        .expect("a tag with a key and a value")
}
