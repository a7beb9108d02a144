//! The check most steps make: a replica, read as a person would, mirrors its primary (the
//! policy rewritten for its Region, the aliases, the tags, the description).

use crate::demo::{Demo, HOME};
use kms_replicator::model::{KeyState, MultiRegionKeyType, Tag};
use kms_replicator::policy::{rewrite_policy, same_policy};
use kms_replicator::Kms;
use serde_json::Value;

/// Tags without the replicator's own (the Regions that held the primary), which are not
/// mirrored, in order.
fn mirrored_tags(mut tags: Vec<Tag>) -> Vec<Tag> {
    tags.retain(|t| !kms_replicator::desired::is_replicator_tag(&t.key));
    tags.sort();
    tags
}

impl Demo {
    /// Reads the key in `region` as a person would and checks it mirrors the primary.
    pub async fn verify_replica(&mut self, key: &str, region: &str, show_policy: bool) -> bool {
        // The replica names its primary's Region (not always the home Region).
        let primary_region = match self.reader.describe_key(region, key).await {
            Ok(i) => i
                .multi_region
                .map(|m| m.primary_region)
                .unwrap_or_else(|| HOME.into()),
            Err(_) => HOME.into(),
        };
        let read = async {
            let info = self.reader.describe_key(region, key).await?;
            let policy = self.reader.get_key_policy(region, key).await?;
            let tags = mirrored_tags(self.reader.list_resource_tags(region, key).await?);
            let mut aliases: Vec<String> = self
                .reader
                .list_aliases(region, Some(key))
                .await?
                .into_iter()
                .map(|a| a.name)
                .collect();
            aliases.sort();
            let p_policy = self.reader.get_key_policy(&primary_region, key).await?;
            let p_info = self.reader.describe_key(&primary_region, key).await?;
            let p_tags = mirrored_tags(self.reader.list_resource_tags(&primary_region, key).await?);
            let mut p_aliases: Vec<String> = self
                .reader
                .list_aliases(&primary_region, Some(key))
                .await?
                .into_iter()
                .map(|a| a.name)
                .collect();
            p_aliases.sort();
            Ok::<_, kms_replicator::port::KmsError>((
                info, policy, tags, aliases, p_info, p_policy, p_tags, p_aliases,
            ))
        };
        let (info, policy, tags, aliases, p_info, p_policy, p_tags, p_aliases) = match read.await {
            Ok(r) => r,
            Err(e) => return self.check(false, &format!("{region}: {e}")),
        };
        let kind = info
            .multi_region
            .as_ref()
            .map(|m| match m.key_type {
                MultiRegionKeyType::Primary => "PRIMARY",
                MultiRegionKeyType::Replica => "REPLICA",
            })
            .unwrap_or("single-Region");
        let expected = rewrite_policy(&p_policy, &primary_region, region)
            .map(|(p, r)| (p, r.len()))
            .unwrap_or_default();
        let tag_list: Vec<String> = tags
            .iter()
            .map(|t| format!("{}={}", t.key, t.value))
            .collect();
        self.say(&format!(
            "{region:<15} {kind} {}  aliases: {}  tags: {}",
            info.state,
            aliases.join(", "),
            tag_list.join(", ")
        ));
        if show_policy && expected.1 > 0 {
            self.say(&format!(
                "    key policy: the primary's, with {} Region tokens rewritten for {region}:",
                expected.1
            ));
            self.show_policy_diff(&p_policy, &policy);
        }
        let ok = kind == "REPLICA"
            && info.state == KeyState::Enabled
            && same_policy(&policy, &expected.0)
            && tags == p_tags
            // Every alias of the primary; aliases made for this Region alone are kept.
            && p_aliases.iter().all(|a| aliases.contains(a))
            && info.description == p_info.description;
        self.check(
            ok,
            &format!(
                "{region} mirrors the primary: policy (rewritten), aliases, tags, description"
            ),
        )
    }

    /// Prints the lines where `replica` differs from `primary` (pretty-printed JSON; a rewrite
    /// changes values only, so the lines correspond one to one).
    fn show_policy_diff(&self, primary: &str, replica: &str) {
        let pretty = |p: &str| {
            serde_json::from_str::<Value>(p)
                .ok()
                .and_then(|v| serde_json::to_string_pretty(&v).ok())
                .unwrap_or_else(|| p.to_string())
        };
        let (a, b) = (pretty(primary), pretty(replica));
        let (a, b): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
        if a.len() != b.len() {
            self.say("      (policy layout differs from the primary's)");
            return;
        }
        for (x, y) in a.iter().zip(&b) {
            if x != y {
                println!("      {}", self.style.red(&format!("- {}", x.trim())));
                println!("      {}", self.style.green(&format!("+ {}", y.trim())));
            }
        }
    }
}
