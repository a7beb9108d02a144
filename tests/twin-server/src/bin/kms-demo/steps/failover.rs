//! Journey 3, fail over: the on-call engineer invokes the failover function, first as a dry
//! run, then for real. Both steps are skipped when the function is not built.

use crate::demo::{short, Demo, HOME};
use kms_replicator::model::KeyState;
use kms_replicator::Kms;
use serde_json::{json, Value};

const NOT_BUILT: &str = "the failover function is not built (functions/failover)";

/// One line per check of a failover report (`✔ name: detail`).
fn check_line(demo: &Demo, c: &Value) -> String {
    demo.style.dim(&format!(
        "  {} {}: {}",
        if c["passed"] == true { "✔" } else { "✘" },
        c["name"].as_str().unwrap_or(""),
        c["detail"].as_str().unwrap_or("")
    ))
}

/// Every check passes, and nothing is written.
pub async fn dry_run(demo: &mut Demo, key: &str) {
    let step = demo.begin("On-call: failover dry run");
    if !demo.has_failover {
        demo.skip(step, NOT_BUILT);
        return;
    }
    let input = json!({"key": "alias/payments", "to": "us-west-2", "dryRun": true});
    demo.cli(&format!(
        "aws lambda invoke --function-name failover --payload '{input}' out.json"
    ));
    let writes_before = demo.cloud.twin().calls().len();
    let report = demo.cloud.invoke("failover", &input).await;
    match &report {
        Ok(r) => {
            demo.say(&format!(
                "summary: {}",
                r["summary"].as_str().unwrap_or("?")
            ));
            for c in r["keys"][0]["checks"]
                .as_array()
                .cloned()
                .unwrap_or_default()
            {
                demo.say(&check_line(demo, &c));
            }
        }
        Err(e) => demo.say(&format!("error: {e}")),
    }
    let writes: Vec<String> = demo.cloud.twin().calls()[writes_before..]
        .iter()
        .filter(|c| c.op.is_write())
        .map(|c| c.op.to_string())
        .collect();
    let still = demo
        .reader
        .describe_key(HOME, key)
        .await
        .map(|i| i.is_primary())
        .unwrap_or(false);
    demo.check(
        report
            .as_ref()
            .is_ok_and(|r| r["keys"][0]["outcome"] == "dry_run_ok")
            && writes.is_empty()
            && still,
        "dry run: every check passes, nothing is written, the primary stays in us-east-1",
    );
    demo.end(step);
}

/// us-west-2 becomes the primary; every replica still mirrors it, and a change made at the
/// new primary reaches them.
pub async fn promote(demo: &mut Demo, key: &str) -> Result<(), String> {
    let step = demo.begin("On-call: promote the us-west-2 replica");
    if !demo.has_failover {
        demo.skip(step, NOT_BUILT);
        return Ok(());
    }
    let input = json!({"key": "alias/payments", "to": "us-west-2"});
    demo.cli(&format!(
        "aws lambda invoke --function-name failover --payload '{input}' out.json"
    ));
    let report = demo.cloud.invoke("failover", &input).await;
    match &report {
        Ok(r) => {
            let k = &r["keys"][0];
            demo.say(&format!(
                "summary: {}",
                r["summary"].as_str().unwrap_or("?")
            ));
            demo.say(&format!(
                "primary: {} → {}; outcome {}; {} ms",
                k["primaryRegionBefore"].as_str().unwrap_or("?"),
                k["primaryRegionAfter"].as_str().unwrap_or("?"),
                k["outcome"].as_str().unwrap_or("?"),
                k["durationMs"]
            ));
            for c in k["checks"].as_array().cloned().unwrap_or_default() {
                if c["name"] == "new_primary_reported"
                    || c["name"]
                        .as_str()
                        .unwrap_or("")
                        .contains("new_primary_region")
                    || c["passed"] != true
                {
                    demo.say(&check_line(demo, &c));
                }
            }
        }
        Err(e) => demo.say(&format!("error: {e}")),
    }
    demo.settle().await;
    let west = demo.reader.describe_key("us-west-2", key).await.ok();
    let east = demo.reader.describe_key(HOME, key).await.ok();
    demo.check(
        report
            .as_ref()
            .is_ok_and(|r| r["keys"][0]["outcome"] == "promoted")
            && west
                .as_ref()
                .is_some_and(|w| w.is_primary() && w.state == KeyState::Enabled)
            && east.as_ref().is_some_and(|e| !e.is_primary()),
        "us-west-2 is now the PRIMARY (Enabled); us-east-1 is a replica",
    );
    demo.verify_replica(key, HOME, false).await;
    demo.verify_replica(key, "ap-southeast-2", false).await;
    describe_at_the_new_primary(demo, key).await?;
    demo.end(step);
    Ok(())
}

/// A description changed at us-west-2 (its events come through its forwarder) reaches every
/// replica.
async fn describe_at_the_new_primary(demo: &mut Demo, key: &str) -> Result<(), String> {
    let west_kms = demo.kms("us-west-2").await;
    demo.cli(&format!(
        "aws kms update-key-description --region us-west-2 --key-id {} --description 'payments data key (primary in us-west-2)'",
        short(key)
    ));
    west_kms
        .update_key_description()
        .key_id(key)
        .description("payments data key (primary in us-west-2)")
        .send()
        .await
        .map_err(|e| format!("UpdateKeyDescription: {e:?}"))?;
    demo.settle().await;
    let mut all = true;
    for region in [HOME, "ap-southeast-2"] {
        let d = demo
            .reader
            .describe_key(region, key)
            .await
            .map(|i| i.description)
            .unwrap_or_default();
        all &= d == "payments data key (primary in us-west-2)";
    }
    demo.check(
        all,
        "a change at the new primary (us-west-2, through its forwarder) reaches every replica",
    );
    Ok(())
}
