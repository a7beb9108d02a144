//! Shared helpers for the end-to-end tests: real fixtures, a seeded KMS twin, and the
//! replicate handler wired to it.

use kms_replicator::desired::is_replicator_tag;
use kms_replicator::model::{AliasEntry, KeyInfo, Tag};
use kms_replicator::port::{KmsResult, ReplicaSpec};
use kms_replicator::{Config, Op};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use twin::{is_replicator, Call, Twin, ADMIN_USER, REPLICATE_ROLE};

pub mod bins;
pub mod scenarios;

pub const PRIMARY_REGION: &str = "us-east-1";

/// The folder of real CloudTrail/EventBridge payloads.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/cloudtrail")
}

/// Every fixture: (file name, parsed event).
pub fn fixtures() -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = std::fs::read_dir(fixtures_dir())
        .expect("fixtures folder")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("readable fixture");
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            (name, serde_json::from_str(&text).expect("fixture is JSON"))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The key a TagResource (or other KMS) record's request names, as the person gave it.
pub fn requested_key(event: &Value) -> String {
    event["detail"]["requestParameters"]["keyId"]
        .as_str()
        .expect("the record names a key")
        .to_string()
}

/// A key's tags as people see them: without the replicator's own bookkeeping tags (the
/// Regions that held the primary, the deletion marker), which are not mirrored.
pub fn people_tags(tags: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    tags.iter()
        .filter(|(k, _)| !is_replicator_tag(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The deployment's configuration in these tests: three allowed Regions.
pub fn config() -> Config {
    Config::new(&["us-east-1", "us-west-2", "eu-west-1"])
}

/// [`config`] with `RemovalPolicy=ScheduleDeletion` and KMS's shortest waiting period, 7 days.
pub fn deleting() -> Config {
    let mut cfg = config();
    cfg.removal = kms_replicator::config::RemovalPolicy::ScheduleDeletion {
        pending_window_days: 7,
    };
    cfg
}

/// A twin whose new replicas and promotions settle at once (authorization on, as always).
pub fn new_twin() -> Twin {
    let twin = Twin::new();
    twin.set_creating_for(std::time::Duration::ZERO);
    twin.set_updating_for(std::time::Duration::ZERO);
    twin
}

/// The example primary policy of the tests and the demo (see
/// [`twin::example_primary_policy`]).
pub fn primary_policy(account: &str) -> String {
    twin::example_primary_policy(account)
}

/// A multi-Region primary in us-east-1 made by a person: policy, description, a team tag
/// and two aliases. Returns its key id. The trail holds the person's CreateKey/CreateAlias.
pub async fn seed_primary(twin: &Twin) -> String {
    use kms_replicator::Kms;
    let admin = twin.with_caller(ADMIN_USER);
    let policy = primary_policy(&twin.account());
    let key = admin.create_key(
        PRIMARY_REGION,
        true,
        Some(&policy),
        "payments data key",
        &[Tag::new("team", "payments")],
    );
    for alias in ["alias/payments", "alias/payments-ledger"] {
        admin
            .create_alias(PRIMARY_REGION, alias, &key.key_id)
            .await
            .unwrap();
    }
    key.key_id
}

/// The twin as the function whose role is `role` calls it, in a stack deployed with `cfg`: the
/// role's identity policies are those `template.yaml` gives for `cfg`'s parameters.
pub fn as_function(twin: &Twin, cfg: &Config, role: &str) -> Twin {
    twin.deploy(cfg);
    twin.with_caller(role)
}

/// Delivers every event in the twin's trail to the replicate handler, then the events those
/// deliveries cause, until none is left. Returns how many rounds it took and the errors the
/// handler returned (retryable failures are Lambda errors). Panics if it does not settle.
pub async fn deliver_trail(twin: &Twin, cfg: &Config) -> (usize, Vec<String>) {
    let kms = as_function(twin, cfg, REPLICATE_ROLE);
    let handler = replicate::Replicator {
        kms: &kms,
        audit: twin,
        config: cfg,
    };
    let mut errors = Vec::new();
    for round in 0..10 {
        let events = twin.take_trail();
        if events.is_empty() {
            return (round, errors);
        }
        for e in &events {
            if let Err(err) = handler.handle(e, None).await {
                errors.push(err.to_string());
            }
        }
    }
    panic!("the replicator did not settle within 10 rounds of events");
}

/// The writes among `calls`, whoever made them.
pub fn writes(calls: &[Call]) -> Vec<&Call> {
    calls.iter().filter(|c| c.op.is_write()).collect()
}

/// The writes among `calls` made as the replicator's role.
pub fn replicator_writes(calls: &[Call]) -> Vec<&Call> {
    calls
        .iter()
        .filter(|c| is_replicator(&c.caller) && c.op.is_write())
        .collect()
}

/// How many of `calls` are of `op`.
pub fn count_op(calls: &[Call], op: Op) -> usize {
    calls.iter().filter(|c| c.op == op).count()
}

/// Something to run before each KMS call of a [`HookedKms`]: a test's way to interleave two
/// syncs call by call, or to stop one before its first write.
#[async_trait::async_trait]
pub trait CallHook: Send + Sync {
    /// `op` is the KMS operation about to be sent; `write` says whether it changes anything.
    async fn before(&self, op: &'static str, write: bool);
}

/// The twin behind a [`CallHook`].
pub struct HookedKms<H> {
    pub inner: Twin,
    pub hook: H,
}

macro_rules! hooked {
    ($self:ident, $op:literal, $write:literal, $call:expr) => {{
        $self.hook.before($op, $write).await;
        $call.await
    }};
}

#[async_trait::async_trait]
impl<H: CallHook> kms_replicator::Kms for HookedKms<H> {
    async fn describe_key(&self, r: &str, k: &str) -> KmsResult<KeyInfo> {
        hooked!(self, "DescribeKey", false, self.inner.describe_key(r, k))
    }
    async fn get_key_last_usage(
        &self,
        r: &str,
        k: &str,
    ) -> KmsResult<kms_replicator::usage::KeyUsage> {
        hooked!(
            self,
            "GetKeyLastUsage",
            false,
            self.inner.get_key_last_usage(r, k)
        )
    }
    async fn get_key_policy(&self, r: &str, k: &str) -> KmsResult<String> {
        hooked!(self, "GetKeyPolicy", false, self.inner.get_key_policy(r, k))
    }
    async fn list_resource_tags(&self, r: &str, k: &str) -> KmsResult<Vec<Tag>> {
        hooked!(
            self,
            "ListResourceTags",
            false,
            self.inner.list_resource_tags(r, k)
        )
    }
    async fn list_aliases(&self, r: &str, k: Option<&str>) -> KmsResult<Vec<AliasEntry>> {
        hooked!(self, "ListAliases", false, self.inner.list_aliases(r, k))
    }
    async fn replicate_key(
        &self,
        p: &str,
        k: &str,
        r: &str,
        s: &ReplicaSpec,
    ) -> KmsResult<KeyInfo> {
        hooked!(
            self,
            "ReplicateKey",
            true,
            self.inner.replicate_key(p, k, r, s)
        )
    }
    async fn put_key_policy(&self, r: &str, k: &str, p: &str) -> KmsResult<()> {
        hooked!(
            self,
            "PutKeyPolicy",
            true,
            self.inner.put_key_policy(r, k, p)
        )
    }
    async fn create_alias(&self, r: &str, a: &str, k: &str) -> KmsResult<()> {
        hooked!(self, "CreateAlias", true, self.inner.create_alias(r, a, k))
    }
    async fn update_alias(&self, r: &str, a: &str, k: &str) -> KmsResult<()> {
        hooked!(self, "UpdateAlias", true, self.inner.update_alias(r, a, k))
    }
    async fn tag_resource(&self, r: &str, k: &str, t: &[Tag]) -> KmsResult<()> {
        hooked!(self, "TagResource", true, self.inner.tag_resource(r, k, t))
    }
    async fn untag_resource(&self, r: &str, k: &str, t: &[String]) -> KmsResult<()> {
        hooked!(
            self,
            "UntagResource",
            true,
            self.inner.untag_resource(r, k, t)
        )
    }
    async fn update_key_description(&self, r: &str, k: &str, d: &str) -> KmsResult<()> {
        hooked!(
            self,
            "UpdateKeyDescription",
            true,
            self.inner.update_key_description(r, k, d)
        )
    }
    async fn schedule_key_deletion(&self, r: &str, k: &str, d: i32) -> KmsResult<()> {
        hooked!(
            self,
            "ScheduleKeyDeletion",
            true,
            self.inner.schedule_key_deletion(r, k, d)
        )
    }
    async fn cancel_key_deletion(&self, r: &str, k: &str) -> KmsResult<()> {
        hooked!(
            self,
            "CancelKeyDeletion",
            true,
            self.inner.cancel_key_deletion(r, k)
        )
    }
    async fn enable_key(&self, r: &str, k: &str) -> KmsResult<()> {
        hooked!(self, "EnableKey", true, self.inner.enable_key(r, k))
    }
    async fn list_keys(&self, r: &str) -> KmsResult<Vec<String>> {
        hooked!(self, "ListKeys", false, self.inner.list_keys(r))
    }
    async fn update_primary_region(&self, r: &str, k: &str, n: &str) -> KmsResult<()> {
        hooked!(
            self,
            "UpdatePrimaryRegion",
            true,
            self.inner.update_primary_region(r, k, n)
        )
    }
}
