//! The Regions that held a key's primary, as the history tag records them
//! ([`PRIMARY_HISTORY_TAG`]): what a sync adds from the records it is given
//! ([`Syncer::with_held_primary`]), and what a replica's own tag says of its Region. The tag
//! only ever stops a deletion: a Region wrongly listed is kept, never written more.

use super::Syncer;
use crate::desired::PRIMARY_HISTORY_TAG;
use crate::model::Tag;

impl<'a> Syncer<'a> {
    /// Regions that records (UpdatePrimaryRegion's, [`crate::event::Trigger::held_primary`])
    /// prove held the primary: they join the history this sync reads on the primary, and
    /// from there the history tag of every replica.
    pub fn with_held_primary(mut self, regions: &'a [String]) -> Syncer<'a> {
        self.held_primary = regions;
        self
    }

    /// Never overwrites a replica's policy that was changed since it was last mirrored from
    /// the primary (reported as a conflict instead), whether or not its Region is known to
    /// have held the primary: the failover function's rule before a promotion, where such a
    /// policy may be a newer edit made while that Region held the primary.
    pub fn keeping_edited_policies(mut self) -> Syncer<'a> {
        self.keep_edited_policies = true;
        self
    }
}

/// `tags` (a primary's) with `regions` added to the history tag.
pub(super) fn add_to_history(tags: &mut Vec<Tag>, regions: &[String]) {
    if regions.is_empty() {
        return;
    }
    let mut listed: Vec<String> = tags
        .iter()
        .filter(|t| t.key == PRIMARY_HISTORY_TAG)
        .flat_map(|t| t.value.split_whitespace().map(str::to_string))
        .collect();
    let before = listed.len();
    for r in regions {
        if !listed.contains(r) {
            listed.push(r.clone());
        }
    }
    if listed.len() == before {
        return;
    }
    listed.sort();
    tags.retain(|t| t.key != PRIMARY_HISTORY_TAG);
    tags.push(Tag::new(PRIMARY_HISTORY_TAG, listed.join(" ")));
}

/// Whether a replica's own history tag lists its Region: it held the primary once.
pub(super) fn lists_region(tags: &[Tag], region: &str) -> bool {
    tags.iter()
        .filter(|t| t.key == PRIMARY_HISTORY_TAG)
        .any(|t| t.value.split_whitespace().any(|r| r == region))
}
