//! Discovery that hands keys over as the tag index lists them, so that the sweep syncs the
//! keys of the first pages while the next ones are listed.
//!
//! A key seen in a Region its `replicate-to` tag does not name is, in all likelihood, the
//! primary there (replicas carry the primary's tags, which name their own Regions): it is sent
//! at once, described in that Region. Every other key waits for the whole listing, which groups
//! the sightings of each key ([`group_candidates`]) and picks the Region to describe it in; of
//! those, the keys not sent already are returned, for the caller to order and send.

use futures::future::join_all;
use kms_replicator::arn::key_id_of;
use kms_replicator::discover::{group_candidates, Discovery};
use kms_replicator::port::{TagIndex, TaggedKey};
use std::collections::HashSet;
use std::sync::Mutex;
use tokio::sync::mpsc::UnboundedSender;
use tracing::debug;

/// One unit of work: a key to describe, and the Regions to look for it in, in order.
#[derive(Debug, Clone)]
pub(crate) struct Work {
    pub(crate) requested: String,
    pub(crate) key: String,
    pub(crate) regions: Vec<String>,
}

/// Lists every Region of `regions`, sending to `tx` each key that looks like the primary in the
/// Region it was seen in, as its page arrives. Returns what the listing met, and the keys left
/// to sync that were not sent.
pub(crate) async fn discover(
    index: &dyn TagIndex,
    tag_key: &str,
    regions: &[String],
    tx: &UnboundedSender<Work>,
) -> (Discovery, Vec<Work>) {
    let sent: Mutex<HashSet<String>> = Mutex::new(HashSet::new());
    let sent = &sent;
    let answers = join_all(regions.iter().map(|region| async move {
        let early = move |page: &[TaggedKey]| {
            let mut sent = sent.lock().unwrap_or_else(|p| p.into_inner());
            for k in page {
                let id = key_id_of(&k.arn);
                let names_here = k.value.split_whitespace().any(|t| t == region);
                if id.starts_with("mrk-") && !names_here && sent.insert(id.to_string()) {
                    let _ = tx.send(Work {
                        requested: id.to_string(),
                        key: id.to_string(),
                        regions: vec![region.clone()],
                    });
                }
            }
        };
        index.tagged_keys_paged(region, tag_key, &early).await
    }))
    .await;
    let mut found = Vec::new();
    let mut failed = Vec::new();
    for (region, answer) in regions.iter().zip(answers) {
        match answer {
            Ok(keys) => found.extend(keys.into_iter().map(|k| (region.clone(), k))),
            Err(e) => failed.push(e),
        }
    }
    let mut discovery = group_candidates(found);
    discovery.failed = failed;
    let sent = sent.lock().unwrap_or_else(|p| p.into_inner());
    let rest: Vec<Work> = discovery
        .candidates
        .iter()
        .filter(|c| !sent.contains(&c.key_id))
        .map(|c| Work {
            requested: c.key_id.clone(),
            key: c.key_id.clone(),
            regions: vec![c.region.clone()],
        })
        .collect();
    debug!(
        candidates = discovery.candidates.len(),
        sent_early = sent.len(),
        "tag index read"
    );
    (discovery, rest)
}
