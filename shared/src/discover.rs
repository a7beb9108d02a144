//! Finding the keys the replicator manages: multi-Region primaries carrying the replication
//! tag, Region by Region.
//!
//! Two ways, by cost:
//! - [`tagged_candidates`] asks the Resource Groups Tagging API once per Region (one paginated
//!   GetResources) for every key carrying the tag, and needs no call per key. Its answer can
//!   lag behind recent tag changes and includes replicas, so it yields *candidates*: sync's
//!   own DescribeKey, its first read anyway, settles what each one is.
//! - [`managed_primaries`] lists every key of a Region with ListKeys and describes and reads
//!   the tags of each multi-Region one: two calls per key, exact at the moment of the call, a
//!   few keys at a time ([`DESCRIBE_CONCURRENCY`]) so that an impaired Region is not hammered.
//!   A key that cannot be read (another team's key whose policy denies the caller, say) is
//!   reported on its own and never stops the listing.

use crate::arn::key_id_of;
use crate::config::Config;
use crate::model::KeyInfo;
use crate::port::{Kms, KmsError, TagIndex, TaggedKey};
use futures::future::join_all;
use futures::StreamExt;
use std::collections::BTreeMap;

/// Keys described at once by [`managed_primaries`].
pub const DESCRIBE_CONCURRENCY: usize = 4;

/// The managed primaries of one Region, and the keys that could not be read.
#[derive(Debug, Default)]
pub struct ManagedPrimaries {
    /// In key id order.
    pub primaries: Vec<KeyInfo>,
    /// Multi-Region keys whose DescribeKey or ListResourceTags failed, with the error.
    pub unreadable: Vec<(String, KmsError)>,
}

/// The managed primaries whose primary Region is `region`. `Err` only when the Region's keys
/// cannot be listed at all.
pub async fn managed_primaries(
    kms: &dyn Kms,
    cfg: &Config,
    region: &str,
) -> Result<ManagedPrimaries, KmsError> {
    // Multi-Region key ids start with "mrk-": single-Region keys need no further call.
    let ids: Vec<String> = kms
        .list_keys(region)
        .await?
        .into_iter()
        .filter(|id| id.starts_with("mrk-"))
        .collect();
    let read = |id: String| async move {
        let info = match kms.describe_key(region, &id).await {
            Ok(i) => i,
            Err(e) => return Err((id, e)),
        };
        if !info.is_primary() || info.state.is_pending_deletion() {
            return Ok(None);
        }
        match kms.list_resource_tags(region, &id).await {
            Ok(tags) if tags.iter().any(|t| t.key == cfg.tag_key) => Ok(Some(info)),
            Ok(_) => Ok(None),
            Err(e) => Err((id, e)),
        }
    };
    let answers: Vec<_> = futures::stream::iter(ids)
        .map(read)
        .buffered(DESCRIBE_CONCURRENCY)
        .collect()
        .await;
    let mut out = ManagedPrimaries::default();
    for a in answers {
        match a {
            Ok(Some(info)) => out.primaries.push(info),
            Ok(None) => {}
            Err(failure) => out.unreadable.push(failure),
        }
    }
    Ok(out)
}

/// A multi-Region key the tag index listed in one or more of the swept Regions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub key_id: String,
    /// Where to describe it first: the Region where it is most likely the primary.
    pub region: String,
    /// The swept Regions whose index listed the key, in sweep order.
    pub seen_in: Vec<String>,
}

/// What the tag index found across the swept Regions.
#[derive(Debug, Clone, Default)]
pub struct Discovery {
    /// One per multi-Region key id, sorted by key id.
    pub candidates: Vec<Candidate>,
    /// Tagged keys whose ids say they are single-Region (no `mrk-` prefix): they can never be
    /// replicated, and are reported without a call.
    pub single_region: Vec<TaggedKey>,
    /// Regions whose index could not be read, and why.
    pub failed: Vec<KmsError>,
}

/// Asks the tag index of each Region in `regions` (concurrently, one paginated call each)
/// for keys carrying `tag_key`, and groups what it lists by key id.
pub async fn tagged_candidates(
    index: &dyn TagIndex,
    tag_key: &str,
    regions: &[String],
) -> Discovery {
    let answers = join_all(regions.iter().map(|r| index.tagged_keys(r, tag_key))).await;
    let mut found = Vec::new();
    let mut failed = Vec::new();
    for (region, answer) in regions.iter().zip(answers) {
        match answer {
            Ok(keys) => found.extend(keys.into_iter().map(|k| (region.clone(), k))),
            Err(e) => failed.push(e),
        }
    }
    let mut d = group_candidates(found);
    d.failed = failed;
    d
}

/// Groups the index's listings by key id (a primary and its replicas share one) and picks
/// the Region to describe each key in first: the first Region that lists the key whose name
/// is not in the key's own tag value. The tag names the replica Regions, so the Region
/// missing from it is almost always the primary's; when the guess is wrong (say, after a
/// failover), sync follows the replica to its primary at the cost of one more DescribeKey.
pub fn group_candidates(found: Vec<(String, TaggedKey)>) -> Discovery {
    let mut groups: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut single_region = Vec::new();
    for (region, key) in found {
        let id = key_id_of(&key.arn).to_string();
        if !id.starts_with("mrk-") {
            single_region.push(key);
            continue;
        }
        groups.entry(id).or_default().push((region, key.value));
    }
    let candidates = groups
        .into_iter()
        .map(|(key_id, seen)| {
            let region = seen
                .iter()
                .find(|(r, value)| !value.split_whitespace().any(|t| t == r))
                .unwrap_or(&seen[0])
                .0
                .clone();
            Candidate {
                key_id,
                region,
                seen_in: seen.into_iter().map(|(r, _)| r).collect(),
            }
        })
        .collect();
    Discovery {
        candidates,
        single_region,
        failed: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tagged(region: &str, id: &str, value: &str) -> (String, TaggedKey) {
        (
            region.to_string(),
            TaggedKey {
                arn: format!("arn:aws:kms:{region}:111122223333:key/{id}"),
                value: value.to_string(),
            },
        )
    }

    #[test]
    fn a_primary_and_its_replicas_are_one_candidate_described_where_the_tag_does_not_point() {
        let d = group_candidates(vec![
            tagged("us-west-2", "mrk-1", "us-west-2 eu-west-1"),
            tagged("us-east-1", "mrk-1", "us-west-2 eu-west-1"),
            tagged("eu-west-1", "mrk-1", "us-west-2 eu-west-1"),
        ]);
        assert_eq!(
            d.candidates,
            vec![Candidate {
                key_id: "mrk-1".into(),
                region: "us-east-1".into(),
                seen_in: vec!["us-west-2".into(), "us-east-1".into(), "eu-west-1".into()],
            }]
        );
    }

    #[test]
    fn single_region_keys_are_set_apart_and_candidates_come_sorted() {
        let d = group_candidates(vec![
            tagged("us-east-1", "mrk-b", "us-west-2"),
            tagged(
                "us-east-1",
                "1234abcd-12ab-34cd-56ef-1234567890ab",
                "us-west-2",
            ),
            tagged("us-east-1", "mrk-a", "us-west-2"),
        ]);
        let ids: Vec<&str> = d.candidates.iter().map(|c| c.key_id.as_str()).collect();
        assert_eq!(ids, ["mrk-a", "mrk-b"]);
        assert_eq!(d.single_region.len(), 1);
    }

    #[test]
    fn when_every_region_is_in_the_tag_the_first_listing_is_described() {
        let d = group_candidates(vec![
            tagged("us-west-2", "mrk-1", "us-east-1 us-west-2"),
            tagged("us-east-1", "mrk-1", "us-east-1 us-west-2"),
        ]);
        assert_eq!(d.candidates[0].region, "us-west-2");
    }
}
