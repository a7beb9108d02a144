//! `{"check":"pipeline"}`: is the event path in place in every managed Region? For each, a
//! trail logging KMS management write events, the rule that carries the Region's events (the
//! forwarder outside the home Region, the stack's rule in it) present, enabled and aimed at the
//! home bus, and the last time the replicate function handled an event from it. Read-only; the
//! answer lists each problem with what to do, and never writes anything.

use futures::future::join_all;
use kms_replicator::pipeline::{assess, Home, PipelineProbe, RegionHealth};
use kms_replicator::Config;
use serde_json::{json, Value};

/// The one check there is.
pub const PIPELINE: &str = "pipeline";

/// Whether `event` asks for a health check, and which: `Some(Err(..))` for a `check` that
/// names no known check or comes with other fields.
pub fn requested_check(event: &Value) -> Option<Result<(), String>> {
    let check = event.as_object()?.get("check")?;
    let only = event.as_object().is_some_and(|o| o.len() == 1);
    Some(match check.as_str() {
        Some(PIPELINE) if only => Ok(()),
        Some(PIPELINE) => Err(r#"{"check":"pipeline"} takes no other field"#.into()),
        _ => Err(format!(
            r#"unknown check {check}; the only one is {{"check":"pipeline"}}"#
        )),
    })
}

/// Where the events of every managed Region must end up: the home Region (the function's
/// own, `AWS_REGION`), its default bus, and the stack's rule (`HOME_RULE_NAME`).
pub fn home_from_env(config: &Config) -> Home {
    let region = std::env::var("AWS_REGION").unwrap_or_default();
    let account = config.account.clone().unwrap_or_default();
    let partition = if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    };
    Home {
        bus_arn: format!("arn:{partition}:events:{region}:{account}:event-bus/default"),
        rule_name: std::env::var("HOME_RULE_NAME").unwrap_or_default(),
        region,
    }
}

/// Runs the check in every managed Region at once and says what it found.
pub async fn check_pipeline(probe: &dyn PipelineProbe, config: &Config, home: &Home) -> Value {
    let regions = config.managed_regions.iter().map(|region| async move {
        let (trails, rules, last) = tokio::join!(
            probe.trails(region),
            probe.kms_rules(region),
            probe.last_event(region)
        );
        assess(region, home, trails, rules, last)
    });
    let found: Vec<RegionHealth> = join_all(regions).await;
    for h in &found {
        for p in &h.problems {
            tracing::warn!(region = %h.region, problem = %p, "event path");
        }
    }
    json!({
        "check": PIPELINE,
        "ok": found.iter().all(RegionHealth::ok),
        "homeRegion": home.region,
        "regions": found.iter().map(RegionHealth::to_json).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_pipeline_check_is_known_and_it_stands_alone() {
        assert_eq!(requested_check(&json!({"dryRun": true})), None);
        assert_eq!(requested_check(&json!({"check": "pipeline"})), Some(Ok(())));
        assert!(
            requested_check(&json!({"check": "pipeline", "dryRun": true}))
                .unwrap()
                .is_err()
        );
        let e = requested_check(&json!({"check": "trail"}))
            .unwrap()
            .unwrap_err();
        assert!(e.contains(r#"{"check":"pipeline"}"#), "{e}");
    }
}
