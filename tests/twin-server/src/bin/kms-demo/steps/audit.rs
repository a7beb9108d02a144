//! The audit events the functions published, as a table, and the counts they should come to.

use crate::demo::Demo;
use serde_json::Value;

pub fn audit_events(demo: &mut Demo) {
    let step = demo.begin("The audit events the functions published (EventBridge PutEvents)");
    let audit = demo.cloud.audit_entries();
    demo.say(&demo.style.bold(&format!(
        "{:<32} {:<15} {:<22} {}",
        "detail-type", "region", "trigger", "what"
    )));
    for e in &audit {
        let d = &e["detail"];
        let what: String = what_it_did(d).chars().take(70).collect();
        demo.say(&format!(
            "{:<32} {:<15} {:<22} {what}",
            e["detail-type"].as_str().unwrap_or("?"),
            d["region"]
                .as_str()
                .or_else(|| d["to"].as_str())
                .unwrap_or("-"),
            d["trigger"]["eventName"].as_str().unwrap_or("-"),
        ));
    }
    let count = |t: &str| audit.iter().filter(|e| e["detail-type"] == t).count();
    demo.check(
        count("Replica Created") == 4,
        "\"Replica Created\" for us-west-2, eu-west-1 and ap-southeast-2, and for the eu-west-1 key's us-west-2",
    );
    demo.check(
        count("Replica Synced") >= 2,
        "\"Replica Synced\" for the mirrored changes",
    );
    demo.check(
        count("Replica Scheduled For Deletion") == 1,
        "\"Replica Scheduled For Deletion\" for eu-west-1",
    );
    if demo.has_failover {
        demo.check(
            count("Primary Region Updated") == 1,
            "\"Primary Region Updated\" for the failover",
        );
    }
    demo.check(
        demo.cloud.dead_letters().is_empty(),
        "no event ended in the dead-letter queue",
    );
    demo.end(step);
}

/// An audit event's detail in a few words: the writes made (and the policy rewrites), the
/// promotion, or the outcome's reason.
fn what_it_did(d: &Value) -> String {
    if let Some(actions) = d["actions"].as_array() {
        let ops: Vec<&str> = actions.iter().filter_map(|a| a["op"].as_str()).collect();
        let rewrites = d["policyRewrites"].as_array().map(|r| r.len()).unwrap_or(0);
        let mut w = if ops.is_empty() {
            d["outcome"]["reason"].as_str().unwrap_or("").to_string()
        } else {
            ops.join(" ")
        };
        if rewrites > 0
            && ops
                .iter()
                .any(|o| *o == "ReplicateKey" || *o == "PutKeyPolicy")
        {
            w.push_str(&format!(" ({rewrites} policy rewrites)"));
        }
        w
    } else if d["primaryRegionBefore"].is_string() {
        format!(
            "{} → {} ({})",
            d["primaryRegionBefore"].as_str().unwrap_or("?"),
            d["primaryRegionAfter"].as_str().unwrap_or("?"),
            d["outcome"].as_str().unwrap_or("?")
        )
    } else {
        d["outcome"]["reason"].as_str().unwrap_or("").to_string()
    }
}
