//! What multi-Region keys are for: an application encrypts in one Region and another Region
//! decrypts with its replica, before and after the promotion; and a Region whose replica is in
//! use is not deleted when it leaves the tag (the in-use guard).

use crate::demo::{short, tag, Demo, HOME};
use aws_sdk_kms::primitives::Blob;
use kms_replicator::model::KeyState;
use kms_replicator::Kms;

/// Encrypt in `from`, decrypt in `to` (without naming the key: the ciphertext does), with an
/// encryption context; true when the plaintext comes back.
async fn round_trip(demo: &mut Demo, key: &str, from: &str, to: &str, text: &str) -> bool {
    let enc = demo.kms(from).await;
    let dec = demo.kms(to).await;
    demo.cli(&format!(
        "aws kms encrypt --region {from} --key-id {} --plaintext fileb://<(echo -n '{text}') \
         --encryption-context app=orders --query CiphertextBlob --output text",
        short(key)
    ));
    let sealed = match enc
        .encrypt()
        .key_id(key)
        .plaintext(Blob::new(text))
        .encryption_context("app", "orders")
        .send()
        .await
    {
        Ok(o) => o,
        Err(e) => {
            demo.say(&format!("Encrypt in {from}: {e:?}"));
            return false;
        }
    };
    demo.cli(&format!(
        "aws kms decrypt --region {to} --ciphertext-blob fileb://blob --encryption-context app=orders"
    ));
    let opened = dec
        .decrypt()
        .set_ciphertext_blob(sealed.ciphertext_blob().cloned())
        .encryption_context("app", "orders")
        .send()
        .await;
    match opened {
        Ok(o) => {
            let back = o
                .plaintext()
                .map(|p| String::from_utf8_lossy(p.as_ref()).to_string());
            demo.say(&format!(
                "{to} decrypted with {}: {:?}",
                o.key_id().unwrap_or("?"),
                back.as_deref().unwrap_or("")
            ));
            back.as_deref() == Some(text)
        }
        Err(e) => {
            demo.say(&format!("Decrypt in {to}: {e:?}"));
            false
        }
    }
}

/// The payments app encrypts in us-east-1; us-west-2 decrypts with its replica.
pub async fn encrypt_here_decrypt_there(demo: &mut Demo, key: &str) -> Result<(), String> {
    let step = demo.begin("An app encrypts in us-east-1; us-west-2 decrypts with it");
    let ok = round_trip(demo, key, HOME, "us-west-2", "card 4242").await;
    demo.check(
        ok,
        "the replica in us-west-2 decrypts what the primary in us-east-1 encrypted",
    );
    demo.end(step);
    Ok(())
}

/// After the promotion us-west-2 encrypts and us-east-1 decrypts; then a Region whose replica
/// an application just used is removed from the tag, and the guard keeps it.
pub async fn after_failover_and_the_guard(demo: &mut Demo, key: &str) -> Result<(), String> {
    let step = demo.begin("After failover: west encrypts, east decrypts; used replica kept");
    if !demo.has_failover {
        demo.skip(
            step,
            "the failover function is not built (functions/failover)",
        );
        return Ok(());
    }
    let ok = round_trip(demo, key, "us-west-2", HOME, "order 7").await;
    demo.check(
        ok,
        "after the failover, us-east-1 decrypts what the new primary in us-west-2 encrypted",
    );
    let used = round_trip(demo, key, "us-west-2", "ap-southeast-2", "order 8").await;
    demo.check(
        used,
        "an application in ap-southeast-2 decrypts with its replica",
    );
    let audit_from = demo.cloud.audit_entries().len();
    let west = demo.kms("us-west-2").await;
    demo.cli(&format!(
        "aws kms tag-resource --region us-west-2 --key-id {} --tags 'TagKey=replicate-to,TagValue=us-west-2 us-east-1'",
        short(key)
    ));
    west.tag_resource()
        .key_id(key)
        .tags(tag("replicate-to", "us-west-2 us-east-1"))
        .send()
        .await
        .map_err(|e| format!("TagResource: {e:?}"))?;
    demo.settle().await;
    let state = demo
        .reader
        .describe_key("ap-southeast-2", key)
        .await
        .map(|i| i.state)
        .ok();
    let conflicts: Vec<String> = demo
        .audit_since(audit_from)
        .iter()
        .filter(|e| e["detail-type"] == "Replication Conflict")
        .flat_map(|e| {
            e["detail"]["conflicts"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|c| c.as_str().map(str::to_string))
        .collect();
    for c in &conflicts {
        let shown: String = c.chars().take(160).collect();
        demo.say(
            &demo
                .style
                .dim(&format!("  Replication Conflict: {shown}...")),
        );
    }
    demo.check(
        state == Some(KeyState::Enabled)
            && conflicts
                .iter()
                .any(|c| c.contains("ap-southeast-2") && c.contains("last used by Decrypt")),
        "ap-southeast-2 left the tag, but its replica was just used: not scheduled for deletion, a Replication Conflict says why",
    );
    demo.end(step);
    Ok(())
}
