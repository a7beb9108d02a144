//! The tag index port on aws-sdk-resourcegroupstagging (`tag:GetResources`): one client per
//! Region, like the KMS adapter.

use super::kms::map_err;
use super::{call_budget, RegionalClients};
use crate::op::Op;
use crate::port::{KmsResult, TagIndex, TaggedKey};
use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_resourcegroupstagging::config::Region;
use aws_sdk_resourcegroupstagging::types::TagFilter;
use aws_sdk_resourcegroupstagging::Client;
use std::time::Duration;
use tracing::instrument;

/// The largest page GetResources returns.
const PAGE_SIZE: i32 = 100;

#[derive(Clone)]
pub struct AwsTagIndex {
    clients: RegionalClients<Client>,
    /// The SDK's operation timeout, named in the message of a call that timed out.
    budget: Option<Duration>,
}

impl AwsTagIndex {
    /// Clients of `sdk`, whose timeouts bound every call (see
    /// [`load_sdk_config`](super::load_sdk_config)).
    pub fn new(sdk: &SdkConfig) -> AwsTagIndex {
        let budget = call_budget(sdk);
        let sdk = sdk.clone();
        let mut index = AwsTagIndex::with_factory(move |region| {
            let conf = aws_sdk_resourcegroupstagging::config::Builder::from(&sdk)
                .region(Region::new(region.to_string()))
                .build();
            Client::from_conf(conf)
        });
        index.budget = budget;
        index
    }

    /// Builds clients with `factory` (tests pass mocked clients this way).
    pub fn with_factory(factory: impl Fn(&str) -> Client + Send + Sync + 'static) -> AwsTagIndex {
        AwsTagIndex {
            clients: RegionalClients::new(factory),
            budget: None,
        }
    }

    /// The operation timeout the clients were built with, for messages (with
    /// [`with_factory`](Self::with_factory), whose clients carry their own configuration).
    pub fn with_call_timeout(mut self, budget: Duration) -> AwsTagIndex {
        self.budget = Some(budget);
        self
    }

    fn client(&self, region: &str) -> Client {
        self.clients.get(region)
    }
}

#[async_trait]
impl TagIndex for AwsTagIndex {
    /// All pages, one after the other: at most one request of this sweep in flight per Region.
    #[instrument(skip(self))]
    async fn tagged_keys(&self, region: &str, tag_key: &str) -> KmsResult<Vec<TaggedKey>> {
        self.tagged_keys_paged(region, tag_key, &|_| {}).await
    }

    /// Each page is handed on as soon as it is read.
    #[instrument(skip(self, on_page))]
    async fn tagged_keys_paged(
        &self,
        region: &str,
        tag_key: &str,
        on_page: &(dyn for<'k> Fn(&'k [TaggedKey]) + Send + Sync),
    ) -> KmsResult<Vec<TaggedKey>> {
        let mut pages = self
            .client(region)
            .get_resources()
            .resource_type_filters("kms:key")
            .tag_filters(TagFilter::builder().key(tag_key).build())
            .resources_per_page(PAGE_SIZE)
            .into_paginator()
            .send();
        let mut keys = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                map_err(
                    "The Resource Groups Tagging API",
                    self.budget,
                    Op::GetResources,
                    region,
                    e,
                )
            })?;
            let found: Vec<TaggedKey> = page
                .resource_tag_mapping_list()
                .iter()
                .filter_map(|m| {
                    let value = m.tags().iter().find(|t| t.key() == tag_key)?.value();
                    Some(TaggedKey {
                        arn: m.resource_arn()?.to_string(),
                        value: value.to_string(),
                    })
                })
                .collect();
            on_page(&found);
            keys.extend(found);
        }
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::port::ErrorKind;
    use aws_sdk_resourcegroupstagging::operation::get_resources::GetResourcesOutput;
    use aws_sdk_resourcegroupstagging::types::{ResourceTagMapping, Tag};
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    fn mapping(id: &str, value: &str) -> ResourceTagMapping {
        ResourceTagMapping::builder()
            .resource_arn(format!("arn:aws:kms:us-east-1:111122223333:key/{id}"))
            .tags(
                Tag::builder()
                    .key("team")
                    .value("payments")
                    .build()
                    .unwrap(),
            )
            .tags(
                Tag::builder()
                    .key("replicate-to")
                    .value(value)
                    .build()
                    .unwrap(),
            )
            .build()
    }

    #[tokio::test]
    async fn get_resources_asks_for_tagged_kms_keys_and_follows_every_page() {
        let first = mock!(Client::get_resources)
            .match_requests(|r| {
                r.resource_type_filters() == ["kms:key"]
                    && r.tag_filters().len() == 1
                    && r.tag_filters()[0].key() == Some("replicate-to")
                    && r.tag_filters()[0].values().is_empty()
                    && r.resources_per_page() == Some(100)
                    && r.pagination_token().unwrap_or_default().is_empty()
            })
            .then_output(|| {
                GetResourcesOutput::builder()
                    .resource_tag_mapping_list(mapping("mrk-1", "us-west-2"))
                    .resource_tag_mapping_list(mapping("mrk-2", "eu-west-1 us-west-2"))
                    .pagination_token("page-2")
                    .build()
            });
        let second = mock!(Client::get_resources)
            .match_requests(|r| r.pagination_token() == Some("page-2"))
            .then_output(|| {
                GetResourcesOutput::builder()
                    .resource_tag_mapping_list(mapping("mrk-3", "us-west-2"))
                    .pagination_token("")
                    .build()
            });
        let client = mock_client!(
            aws_sdk_resourcegroupstagging,
            RuleMode::MatchAny,
            [&first, &second]
        );
        let index = AwsTagIndex::with_factory(move |_| client.clone());

        let keys = index
            .tagged_keys("us-east-1", "replicate-to")
            .await
            .unwrap();

        let ids: Vec<&str> = keys.iter().map(|k| crate::arn::key_id_of(&k.arn)).collect();
        assert_eq!(ids, ["mrk-1", "mrk-2", "mrk-3"]);
        assert_eq!(keys[1].value, "eu-west-1 us-west-2");
        assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
    }

    #[tokio::test]
    async fn the_tagging_apis_throttled_exception_is_throttling() {
        let rule = mock!(Client::get_resources)
            .sequence()
            .http_status(
                400,
                Some(r#"{"__type":"ThrottledException","Message":"Rate exceeded"}"#.into()),
            )
            .repeatedly()
            .build();
        let client = mock_client!(aws_sdk_resourcegroupstagging, [&rule]);
        let index = AwsTagIndex::with_factory(move |_| client.clone());

        let err = index
            .tagged_keys("us-east-1", "replicate-to")
            .await
            .unwrap_err();

        assert_eq!(err.kind, ErrorKind::Throttling);
        assert_eq!(err.code, "ThrottledException");
        assert_eq!(err.operation, "GetResources");
    }
}
