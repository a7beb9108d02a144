//! The sweep syncs the keys of the first pages of the tag index while the next pages are
//! listed: with a slow, paginated listing, keys are described and replicated before its last
//! page arrives, and every key is still swept once.

use async_trait::async_trait;
use integration_tests::{as_function, config, primary_policy, PRIMARY_REGION};
use kms_replicator::limit::{Quotas, RateLimitedKms};
use kms_replicator::model::Tag;
use kms_replicator::port::{KmsResult, TagIndex, TaggedKey};
use kms_replicator::{Kms, Op};
use reconcile::{Reconciler, Settings};
use serde_json::json;
use std::sync::Mutex;
use std::time::Duration;
use twin::{Twin, ADMIN_USER, RECONCILE_ROLE};

const KEYS: usize = 3;
const BETWEEN_PAGES: Duration = Duration::from_millis(300);

/// The twin's tag index, one key a page, a pause before each page after the first; notes how
/// many DescribeKey calls the twin had served when the last page was handed over.
struct SlowPages<'a> {
    inner: &'a RateLimitedKms<Twin>,
    twin: &'a Twin,
    described_before_last_page: Mutex<Option<usize>>,
}

#[async_trait]
impl TagIndex for SlowPages<'_> {
    async fn tagged_keys(&self, region: &str, tag_key: &str) -> KmsResult<Vec<TaggedKey>> {
        self.inner.tagged_keys(region, tag_key).await
    }

    async fn tagged_keys_paged(
        &self,
        region: &str,
        tag_key: &str,
        page: &(dyn for<'k> Fn(&'k [TaggedKey]) + Send + Sync),
    ) -> KmsResult<Vec<TaggedKey>> {
        let keys = self.inner.tagged_keys(region, tag_key).await?;
        for (i, k) in keys.iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(BETWEEN_PAGES).await;
            }
            if i + 1 == keys.len() && region == PRIMARY_REGION {
                let described = self
                    .twin
                    .calls()
                    .iter()
                    .filter(|c| c.op == Op::DescribeKey && c.region == PRIMARY_REGION)
                    .count();
                *self.described_before_last_page.lock().unwrap() = Some(described);
            }
            page(std::slice::from_ref(k));
        }
        Ok(keys)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_of_the_first_pages_are_synced_while_the_next_pages_are_listed() {
    let twin = Twin::new();
    let cfg = config();
    let admin = twin.with_caller(ADMIN_USER);
    let policy = primary_policy(&twin.account());
    for i in 0..KEYS {
        let key_id = admin
            .create_key(
                PRIMARY_REGION,
                true,
                Some(&policy),
                &format!("key {i}"),
                &[],
            )
            .key_id;
        admin
            .tag_resource(
                PRIMARY_REGION,
                &key_id,
                &[Tag::new("replicate-to", "us-west-2")],
            )
            .await
            .unwrap();
    }
    twin.take_trail();
    let kms = RateLimitedKms::new(as_function(&twin, &cfg, RECONCILE_ROLE), Quotas::kms(50));
    let tags = SlowPages {
        inner: &kms,
        twin: &twin,
        described_before_last_page: Mutex::new(None),
    };
    let settings = Settings::default();
    let r = Reconciler {
        kms: &kms,
        tags: &tags,
        audit: &twin,
        config: &cfg,
        settings: &settings,
        limiter: Some(&kms),
    };
    twin.reset_calls();
    let out = r.handle(&json!({}), None).await.expect("a sweep");

    assert_eq!(out["counts"]["repaired"], KEYS, "{out:#}");
    let described = tags
        .described_before_last_page
        .lock()
        .unwrap()
        .expect("paged");
    assert!(
        described >= KEYS - 1,
        "only {described} DescribeKey before the last page: the sweep waited for the listing"
    );
    // Each key swept once, whichever page it came on.
    for k in twin.calls().iter().filter(|c| c.op == Op::ReplicateKey) {
        assert_eq!(k.region, PRIMARY_REGION);
    }
    assert_eq!(
        twin.calls()
            .iter()
            .filter(|c| c.op == Op::ReplicateKey)
            .count(),
        KEYS
    );
}
