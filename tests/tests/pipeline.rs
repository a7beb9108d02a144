//! The event path watched, on the twin: a history where one Region's events are dropped (its
//! forwarder was never deployed) makes the next sweep count the repair under that Region
//! (`EventsMissed`, which the alarm watches), and the health invocation `{"check":"pipeline"}`
//! names the missing forwarder; with every event delivered, neither fires.

use async_trait::async_trait;
use integration_tests::{as_function, config, primary_policy};
use kms_replicator::limit::{Quotas, RateLimitedKms};
use kms_replicator::model::Tag;
use kms_replicator::pipeline::{Home, PipelineProbe, ProbeResult, RuleState, TrailState};
use kms_replicator::Config;
use reconcile::health::check_pipeline;
use reconcile::{Reconciler, Settings};
use serde_json::{json, Value};
use std::time::{Duration, SystemTime};
use twin::{Twin, ADMIN_USER, RECONCILE_ROLE, REPLICATE_ROLE};

const HOME: &str = "us-east-1";
const EU: &str = "eu-west-1";

/// A person's multi-Region primary in eu-west-1, tagged for the two other Regions.
async fn tagged_in_eu(twin: &Twin) -> String {
    let admin = twin.with_caller(ADMIN_USER);
    let policy = primary_policy(&twin.account());
    let key = admin.create_key(EU, true, Some(&policy), "orders key", &[]);
    admin
        .create_alias(EU, "alias/orders", &key.key_id)
        .await
        .unwrap();
    use kms_replicator::Kms;
    admin
        .tag_resource(
            EU,
            &key.key_id,
            &[Tag::new("replicate-to", "us-east-1 us-west-2")],
        )
        .await
        .unwrap();
    key.key_id
}

/// Delivers the trail's events to the replicate handler, as the deployment's rules would,
/// dropping those recorded in `dropped` (a Region without the forwarder), until none is left.
async fn deliver_except(twin: &Twin, cfg: &Config, dropped: Option<&str>) -> usize {
    let kms = as_function(twin, cfg, REPLICATE_ROLE);
    let handler = replicate::Replicator {
        kms: &kms,
        audit: twin,
        config: cfg,
    };
    let mut delivered = 0;
    for _ in 0..10 {
        let events = twin.take_trail();
        if events.is_empty() {
            break;
        }
        for e in events {
            if dropped.is_some() && e["region"].as_str() == dropped {
                continue;
            }
            handler.handle(&e, None).await.expect("handled");
            delivered += 1;
        }
    }
    delivered
}

async fn sweep(twin: &Twin, cfg: &Config, settings: &Settings) -> Value {
    let kms = RateLimitedKms::new(as_function(twin, cfg, RECONCILE_ROLE), Quotas::kms(50));
    let r = Reconciler {
        kms: &kms,
        tags: &kms,
        audit: twin,
        config: cfg,
        settings,
        limiter: Some(&kms),
    };
    let scheduled = json!({
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa", "detail-type": "Scheduled Event",
        "source": "aws.events", "account": "123456789012", "time": "2015-10-08T16:53:06Z",
        "region": HOME, "resources": ["arn:aws:events:us-east-1:123456789012:rule/MyScheduledRule"],
        "detail": {}
    });
    r.handle(&scheduled, None).await.expect("a sweep")
}

fn no_delay() -> Settings {
    Settings {
        event_delay: Duration::ZERO,
        ..Settings::default()
    }
}

#[tokio::test]
async fn a_region_whose_events_are_dropped_is_counted_by_the_next_sweep() {
    let twin = Twin::new();
    let cfg = config();
    let key_id = tagged_in_eu(&twin).await;
    assert_eq!(deliver_except(&twin, &cfg, Some(EU)).await, 0);
    assert!(twin.key(HOME, &key_id).is_none(), "no event, no replica");

    let out = sweep(&twin, &cfg, &no_delay()).await;
    assert_eq!(out["counts"]["repaired"], 1, "{out:#}");
    assert_eq!(out["eventsMissed"], json!({EU: 1}), "{out:#}");
    assert!(twin.key(HOME, &key_id).is_some());

    // The next sweep finds nothing to repair: the count is of this sweep's repairs only.
    twin.take_trail();
    let again = sweep(&twin, &cfg, &no_delay()).await;
    assert_eq!(again["eventsMissed"], json!({}), "{again:#}");
}

#[tokio::test]
async fn a_key_younger_than_the_delivery_delay_is_repaired_but_not_counted() {
    let twin = Twin::new();
    let cfg = config();
    tagged_in_eu(&twin).await;
    deliver_except(&twin, &cfg, Some(EU)).await;
    // The default delay: 15 minutes; the key was created just now.
    assert_eq!(Settings::default().event_delay, Duration::from_secs(900));
    let out = sweep(&twin, &cfg, &Settings::default()).await;
    assert_eq!(out["counts"]["repaired"], 1, "{out:#}");
    assert_eq!(out["eventsMissed"], json!({}), "{out:#}");
}

#[tokio::test]
async fn with_every_event_delivered_the_sweep_counts_nothing() {
    let twin = Twin::new();
    let cfg = config();
    let key_id = tagged_in_eu(&twin).await;
    assert!(deliver_except(&twin, &cfg, None).await > 0);
    assert!(twin.key(HOME, &key_id).is_some());
    let out = sweep(&twin, &cfg, &no_delay()).await;
    assert_eq!(out["counts"]["repaired"], 0, "{out:#}");
    assert_eq!(out["eventsMissed"], json!({}), "{out:#}");
}

/// The deployment as the probes would read it: one multi-Region trail, the stack's rule in the
/// home Region, a forwarder in each Region of `forwarders`.
struct Deployment {
    forwarders: Vec<&'static str>,
    last_event: SystemTime,
}

const HOME_RULE: &str = "kms-replicator-KmsApiCallRule-1ABC";
const HOME_BUS: &str = "arn:aws:events:us-east-1:111122223333:event-bus/default";

#[async_trait]
impl PipelineProbe for Deployment {
    async fn trails(&self, _region: &str) -> ProbeResult<Vec<TrailState>> {
        Ok(vec![TrailState {
            name: "management-events".into(),
            logging: true,
            kms_management_writes: true,
        }])
    }

    async fn kms_rules(&self, region: &str) -> ProbeResult<Vec<RuleState>> {
        Ok(if region == HOME {
            vec![RuleState {
                name: HOME_RULE.into(),
                enabled: true,
                targets: vec!["arn:aws:lambda:us-east-1:111122223333:function:replicate".into()],
            }]
        } else if self.forwarders.contains(&region) {
            vec![RuleState {
                name: "fwd-KmsApiCallForwardRule-1".into(),
                enabled: true,
                targets: vec![HOME_BUS.into()],
            }]
        } else {
            vec![]
        })
    }

    async fn last_event(&self, region: &str) -> ProbeResult<Option<SystemTime>> {
        Ok((region == HOME || self.forwarders.contains(&region)).then_some(self.last_event))
    }
}

fn home() -> Home {
    Home {
        region: HOME.into(),
        bus_arn: HOME_BUS.into(),
        rule_name: HOME_RULE.into(),
    }
}

#[tokio::test]
async fn the_health_invocation_names_the_missing_forwarder_and_passes_a_working_pipeline() {
    let cfg = config();
    let last_event = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let broken = Deployment {
        forwarders: vec!["us-west-2"],
        last_event,
    };
    let out = check_pipeline(&broken, &cfg, &home()).await;
    assert_eq!(out["ok"], false, "{out:#}");
    let eu = out["regions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["region"] == EU)
        .unwrap();
    assert_eq!(eu["ok"], false);
    assert!(eu["problems"][0]
        .as_str()
        .unwrap()
        .starts_with("no forwarder in eu-west-1"));
    assert_eq!(eu["lastEventHandled"], Value::Null);
    let bad: Vec<&Value> = out["regions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["ok"] == false)
        .collect();
    assert_eq!(bad.len(), 1, "only eu-west-1: {out:#}");

    let working = Deployment {
        forwarders: vec!["us-west-2", EU],
        last_event,
    };
    let out = check_pipeline(&working, &cfg, &home()).await;
    assert_eq!(out["ok"], true, "{out:#}");
    assert!(out["regions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["lastEventHandled"] == "2023-11-14T22:13:20Z"));
}
