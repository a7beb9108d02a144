//! The KMS port on aws-sdk-kms: one client per Region, all built from one `SdkConfig`, so
//! credentials, retries and `AWS_ENDPOINT_URL` apply to every Region alike.

use super::retry::ThrottlingLeftToTheLimiter;
use super::timeouts::{error_chain, seconds};
use super::{call_budget, RegionalClients};
use crate::model::{AliasEntry, KeyInfo, KeyState, MultiRegionConfig, MultiRegionKeyType, Tag};
use crate::op::Op;
use crate::port::{ErrorKind, Kms, KmsError, KmsResult, ReplicaSpec};
use crate::usage::{KeyUsage, LastUse};
use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_kms::config::Region;
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::types::{KeyMetadata, MultiRegionKeyType as SdkMrkType};
use aws_sdk_kms::Client;
use std::time::Duration;
use tracing::instrument;

#[derive(Clone)]
pub struct AwsKms {
    clients: RegionalClients<Client>,
    /// The SDK's operation timeout, named in the message of a call that timed out.
    budget: Option<Duration>,
}

impl AwsKms {
    /// Clients of `sdk`, whose timeouts bound every call (see
    /// [`load_sdk_config`](super::load_sdk_config)).
    pub fn new(sdk: &SdkConfig) -> AwsKms {
        let budget = call_budget(sdk);
        let sdk = sdk.clone();
        let mut kms = AwsKms::with_factory(move |region| {
            let conf = aws_sdk_kms::config::Builder::from(&sdk)
                .region(Region::new(region.to_string()))
                .retry_classifier(ThrottlingLeftToTheLimiter)
                .build();
            Client::from_conf(conf)
        });
        kms.budget = budget;
        kms
    }

    /// Builds clients with `factory` (tests pass mocked clients this way).
    pub fn with_factory(factory: impl Fn(&str) -> Client + Send + Sync + 'static) -> AwsKms {
        AwsKms {
            clients: RegionalClients::new(factory),
            budget: None,
        }
    }

    /// The operation timeout the clients were built with, for messages (with
    /// [`with_factory`](Self::with_factory), whose clients carry their own configuration).
    pub fn with_call_timeout(mut self, budget: Duration) -> AwsKms {
        self.budget = Some(budget);
        self
    }

    fn client(&self, region: &str) -> Client {
        self.clients.get(region)
    }

    fn fail<E>(&self, op: Op, region: &str, e: SdkError<E>) -> KmsError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        map_err("KMS", self.budget, op, region, e)
    }
}

/// Turns an SDK error into a [`KmsError`], keeping AWS's code and message. A call that timed
/// out (the Region accepted the connection and did not answer in time) gets a message that
/// names the service, the Region and the time allowed, and says what it means.
pub(super) fn map_err<E>(
    service: &str,
    budget: Option<Duration>,
    op: Op,
    region: &str,
    e: SdkError<E>,
) -> KmsError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if let SdkError::TimeoutError(_) = &e {
        let within = budget
            .map(|b| format!("within {}", seconds(b)))
            .unwrap_or_else(|| "in time".to_string());
        let sdk = error_chain(&e);
        let message = format!(
            "{service} in {region} did not answer {op} {within} (the Region's endpoint may be \
             impaired); the other Regions are not affected [{sdk}]"
        );
        return KmsError::new(ErrorKind::Unreachable, op, region, "TimeoutError", message);
    }
    let status = e.raw_response().map(|r| r.status().as_u16());
    let (code, kind) = match &e {
        SdkError::DispatchFailure(_) => ("DispatchFailure".to_string(), ErrorKind::Unreachable),
        _ => {
            let code = e.code().unwrap_or("Unknown").to_string();
            let kind = ErrorKind::from_code(&code, status);
            (code, kind)
        }
    };
    let message = e
        .message()
        .map(str::to_string)
        .unwrap_or_else(|| aws_smithy_types::error::display::DisplayErrorContext(&e).to_string());
    KmsError::new(kind, op, region, code, message)
}

fn key_info(region: &str, m: &KeyMetadata) -> KeyInfo {
    let multi_region = if m.multi_region() == Some(true) {
        m.multi_region_configuration().map(|c| MultiRegionConfig {
            key_type: match c.multi_region_key_type() {
                Some(SdkMrkType::Primary) => MultiRegionKeyType::Primary,
                _ => MultiRegionKeyType::Replica,
            },
            primary_region: c
                .primary_key()
                .and_then(|p| p.region())
                .unwrap_or(region)
                .to_string(),
            replica_regions: c
                .replica_keys()
                .iter()
                .filter_map(|r| r.region().map(str::to_string))
                .collect(),
        })
    } else {
        None
    };
    KeyInfo {
        key_id: m.key_id().to_string(),
        arn: m.arn().unwrap_or_default().to_string(),
        region: crate::arn::region_of(m.arn().unwrap_or_default())
            .unwrap_or(region)
            .to_string(),
        state: m
            .key_state()
            .and_then(|s| KeyState::parse(s.as_str()))
            .unwrap_or(KeyState::Unavailable),
        description: m.description().unwrap_or_default().to_string(),
        multi_region,
        creation_date: m.creation_date().and_then(epoch_ms),
        deletion_date: m.deletion_date().and_then(epoch_ms),
        imported_material: m.origin() == Some(&aws_sdk_kms::types::OriginType::External),
        current_key_material_id: m.current_key_material_id().map(str::to_string),
    }
}

/// Rounded to the millisecond: the wire format is seconds as a decimal number.
fn epoch_ms(d: &aws_sdk_kms::primitives::DateTime) -> Option<u64> {
    let ms = d.secs() * 1000 + i64::from((d.subsec_nanos() + 500_000) / 1_000_000);
    u64::try_from(ms).ok()
}

fn sdk_tags(tags: &[Tag]) -> Vec<aws_sdk_kms::types::Tag> {
    tags.iter()
        .map(|t| {
            aws_sdk_kms::types::Tag::builder()
                .tag_key(&t.key)
                .tag_value(&t.value)
                .build()
                .expect("tag key and value are set")
        })
        .collect()
}

#[async_trait]
impl Kms for AwsKms {
    #[instrument(skip(self))]
    async fn describe_key(&self, region: &str, key: &str) -> KmsResult<KeyInfo> {
        let out = self
            .client(region)
            .describe_key()
            .key_id(key)
            .send()
            .await
            .map_err(|e| self.fail(Op::DescribeKey, region, e))?;
        let meta = out.key_metadata().ok_or_else(|| {
            KmsError::new(
                ErrorKind::Other,
                Op::DescribeKey,
                region,
                "EmptyResponse",
                "no KeyMetadata",
            )
        })?;
        Ok(key_info(region, meta))
    }

    #[instrument(skip(self))]
    async fn get_key_last_usage(&self, region: &str, key_id: &str) -> KmsResult<KeyUsage> {
        let out = self
            .client(region)
            .get_key_last_usage()
            .key_id(key_id)
            .send()
            .await
            .map_err(|e| self.fail(Op::GetKeyLastUsage, region, e))?;
        // KMS sends epoch seconds as a JSON number: round to the nearest millisecond.
        let ms = |d: &aws_smithy_types::DateTime| {
            let whole = u64::try_from(d.secs()).ok()?;
            Some(whole * 1000 + (u64::from(d.subsec_nanos()) + 500_000) / 1_000_000)
        };
        Ok(KeyUsage {
            last_use: out.key_last_usage().and_then(|u| {
                Some(LastUse {
                    operation: u.operation()?.as_str().to_string(),
                    at_ms: ms(u.timestamp()?)?,
                    cloudtrail_event_id: u.cloud_trail_event_id().map(str::to_string),
                })
            }),
            tracking_start_ms: out.tracking_start_date().and_then(ms),
            key_creation_ms: out.key_creation_date().and_then(ms),
        })
    }

    #[instrument(skip(self))]
    async fn get_key_policy(&self, region: &str, key_id: &str) -> KmsResult<String> {
        let out = self
            .client(region)
            .get_key_policy()
            .key_id(key_id)
            .policy_name("default")
            .send()
            .await
            .map_err(|e| self.fail(Op::GetKeyPolicy, region, e))?;
        Ok(out.policy().unwrap_or_default().to_string())
    }

    #[instrument(skip(self))]
    async fn list_resource_tags(&self, region: &str, key_id: &str) -> KmsResult<Vec<Tag>> {
        let mut pages = self
            .client(region)
            .list_resource_tags()
            .key_id(key_id)
            .into_paginator()
            .send();
        let mut tags = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.fail(Op::ListResourceTags, region, e))?;
            tags.extend(
                page.tags()
                    .iter()
                    .map(|t| Tag::new(t.tag_key(), t.tag_value())),
            );
        }
        Ok(tags)
    }

    #[instrument(skip(self))]
    async fn list_aliases(&self, region: &str, key_id: Option<&str>) -> KmsResult<Vec<AliasEntry>> {
        let mut pages = self
            .client(region)
            .list_aliases()
            .set_key_id(key_id.map(str::to_string))
            // The most KMS returns in a page (its default is 50): half the pages of an index.
            .limit(100)
            .into_paginator()
            .send();
        let mut aliases = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.fail(Op::ListAliases, region, e))?;
            aliases.extend(page.aliases().iter().filter_map(|a| {
                Some(AliasEntry {
                    name: a.alias_name()?.to_string(),
                    target_key_id: a.target_key_id().map(str::to_string),
                })
            }));
        }
        Ok(aliases)
    }

    #[instrument(skip(self, spec))]
    async fn replicate_key(
        &self,
        primary_region: &str,
        key_id: &str,
        replica_region: &str,
        spec: &ReplicaSpec,
    ) -> KmsResult<KeyInfo> {
        let out = self
            .client(primary_region)
            .replicate_key()
            .key_id(key_id)
            .replica_region(replica_region)
            .set_policy(spec.policy.clone())
            .description(&spec.description)
            .set_tags((!spec.tags.is_empty()).then(|| sdk_tags(&spec.tags)))
            .bypass_policy_lockout_safety_check(false)
            .send()
            .await
            .map_err(|e| self.fail(Op::ReplicateKey, primary_region, e))?;
        let meta = out.replica_key_metadata().ok_or_else(|| {
            KmsError::new(
                ErrorKind::Other,
                Op::ReplicateKey,
                primary_region,
                "EmptyResponse",
                "no ReplicaKeyMetadata",
            )
        })?;
        Ok(key_info(replica_region, meta))
    }

    #[instrument(skip(self, policy))]
    async fn put_key_policy(&self, region: &str, key_id: &str, policy: &str) -> KmsResult<()> {
        self.client(region)
            .put_key_policy()
            .key_id(key_id)
            .policy_name("default")
            .policy(policy)
            .bypass_policy_lockout_safety_check(false)
            .send()
            .await
            .map_err(|e| self.fail(Op::PutKeyPolicy, region, e))?;
        Ok(())
    }

    #[instrument(skip(self))]
    async fn create_alias(&self, region: &str, alias: &str, key_id: &str) -> KmsResult<()> {
        self.client(region)
            .create_alias()
            .alias_name(alias)
            .target_key_id(key_id)
            .send()
            .await
            .map_err(|e| self.fail(Op::CreateAlias, region, e))?;
        Ok(())
    }

    #[instrument(skip(self))]
    async fn tag_resource(&self, region: &str, key_id: &str, tags: &[Tag]) -> KmsResult<()> {
        self.client(region)
            .tag_resource()
            .key_id(key_id)
            .set_tags(Some(sdk_tags(tags)))
            .send()
            .await
            .map_err(|e| self.fail(Op::TagResource, region, e))?;
        Ok(())
    }

    #[instrument(skip(self))]
    async fn untag_resource(&self, region: &str, key_id: &str, keys: &[String]) -> KmsResult<()> {
        self.client(region)
            .untag_resource()
            .key_id(key_id)
            .set_tag_keys(Some(keys.to_vec()))
            .send()
            .await
            .map_err(|e| self.fail(Op::UntagResource, region, e))?;
        Ok(())
    }

    #[instrument(skip(self))]
    async fn update_key_description(
        &self,
        region: &str,
        key_id: &str,
        description: &str,
    ) -> KmsResult<()> {
        self.client(region)
            .update_key_description()
            .key_id(key_id)
            .description(description)
            .send()
            .await
            .map_err(|e| self.fail(Op::UpdateKeyDescription, region, e))?;
        Ok(())
    }

    #[instrument(skip(self))]
    async fn schedule_key_deletion(
        &self,
        region: &str,
        key_id: &str,
        pending_window_days: i32,
    ) -> KmsResult<()> {
        self.client(region)
            .schedule_key_deletion()
            .key_id(key_id)
            .pending_window_in_days(pending_window_days)
            .send()
            .await
            .map_err(|e| self.fail(Op::ScheduleKeyDeletion, region, e))?;
        Ok(())
    }

    #[instrument(skip(self))]
    async fn cancel_key_deletion(&self, region: &str, key_id: &str) -> KmsResult<()> {
        self.client(region)
            .cancel_key_deletion()
            .key_id(key_id)
            .send()
            .await
            .map_err(|e| self.fail(Op::CancelKeyDeletion, region, e))?;
        Ok(())
    }

    #[instrument(skip(self))]
    async fn enable_key(&self, region: &str, key_id: &str) -> KmsResult<()> {
        self.client(region)
            .enable_key()
            .key_id(key_id)
            .send()
            .await
            .map_err(|e| self.fail(Op::EnableKey, region, e))?;
        Ok(())
    }

    #[instrument(skip(self))]
    async fn list_keys(&self, region: &str) -> KmsResult<Vec<String>> {
        let mut pages = self.client(region).list_keys().into_paginator().send();
        let mut ids = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.fail(Op::ListKeys, region, e))?;
            ids.extend(
                page.keys()
                    .iter()
                    .filter_map(|k| k.key_id().map(str::to_string)),
            );
        }
        Ok(ids)
    }

    #[instrument(skip(self))]
    async fn update_primary_region(
        &self,
        region: &str,
        key_id: &str,
        new_primary_region: &str,
    ) -> KmsResult<()> {
        self.client(region)
            .update_primary_region()
            .key_id(key_id)
            .primary_region(new_primary_region)
            .send()
            .await
            .map_err(|e| self.fail(Op::UpdatePrimaryRegion, region, e))?;
        Ok(())
    }
}
