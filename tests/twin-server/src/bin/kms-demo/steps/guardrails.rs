//! What the replicator refuses to do, and says so: replicate a single-Region key, or write to
//! a Region outside `ALLOWED_REGIONS`.

use crate::demo::{short, tag, Demo, HOME};
use kms_replicator::Kms;
use serde_json::Value;

/// A single-Region key tagged at CreateKey, and a tag naming sa-east-1: both reported,
/// nothing written.
pub async fn single_region_key_and_region_not_allowed(
    demo: &mut Demo,
    key: &str,
) -> Result<(), String> {
    let step = demo.begin("Guardrails: a single-Region key, and a Region outside ALLOWED_REGIONS");
    let kms = demo.kms(HOME).await;
    let audit_before = demo.cloud.audit_entries().len();
    demo.cli("aws kms create-key --description 'not multi-Region' --tags 'TagKey=replicate-to,TagValue=us-west-2'");
    let single = kms
        .create_key()
        .description("not multi-Region")
        .tags(tag("replicate-to", "us-west-2"))
        .send()
        .await
        .map_err(|e| format!("CreateKey: {e:?}"))?
        .key_metadata
        .ok_or("no KeyMetadata")?
        .key_id;
    demo.cli(&format!(
        "aws kms tag-resource --key-id {} --tags 'TagKey=replicate-to,TagValue=us-west-2 ap-southeast-2 sa-east-1'",
        short(key)
    ));
    kms.tag_resource()
        .key_id(key)
        .tags(tag("replicate-to", "us-west-2 ap-southeast-2 sa-east-1"))
        .send()
        .await
        .map_err(|e| format!("TagResource: {e:?}"))?;
    demo.settle().await;
    let invocations = demo.cloud.invocations();
    // Tagged at CreateKey, so the record is acted on; the sync finds a single-Region key.
    let single_outcome = invocations
        .iter()
        .filter(|i| i.trigger.starts_with("CreateKey"))
        .filter_map(|i| i.result.as_ref().ok())
        .filter_map(|r| {
            r["report"]["reason"]
                .as_str()
                .or_else(|| r["reason"].as_str())
                .map(str::to_string)
        })
        .find(|reason| reason.contains("single-Region"));
    if let Some(reason) = &single_outcome {
        demo.say(&format!("single-Region key {}: {reason}", short(&single)));
    }
    demo.check(
        single_outcome.is_some()
            && demo
                .reader
                .describe_key("us-west-2", &single)
                .await
                .is_err(),
        "the single-Region key is reported as impossible to replicate, and nothing is written",
    );
    let skipped: Vec<Value> = demo
        .audit_since(audit_before)
        .into_iter()
        .filter(|e| e["detail-type"] == "Replication Skipped")
        .collect();
    if let Some(e) = skipped.first() {
        demo.say(&format!(
            "audit \"Replication Skipped\" for {}: {}",
            e["detail"]["region"].as_str().unwrap_or("?"),
            e["detail"]["outcome"]["reason"].as_str().unwrap_or("")
        ));
    }
    let nothing_there = demo.reader.describe_key("sa-east-1", key).await.is_err();
    demo.check(
        !skipped.is_empty()
            && skipped.iter().all(|e| e["detail"]["region"] == "sa-east-1")
            && nothing_there,
        "sa-east-1 is not in ALLOWED_REGIONS: reported in the audit trail, never written to",
    );
    demo.end(step);
    Ok(())
}
