//! The plan's use section: each replica's last cryptographic use (GetKeyLastUsage, in its
//! Region), and the replicas unused for [`UNUSED_DAYS`] days or more, which a person may prune
//! (each replica is billed as a key). Read for dry runs only, so that the scheduled sweep
//! costs what it did; a read that fails says so and changes nothing else.

use crate::report::Sweep;
use futures::stream::{self, StreamExt};
use kms_replicator::report::Outcome;
use kms_replicator::usage::{now_ms, KeyUsage, DAY_MS};
use kms_replicator::Kms;
use serde_json::{json, Value};

/// A replica unused for this long is listed as a candidate to prune.
pub const UNUSED_DAYS: u64 = 90;
/// At most this many replicas are read per plan; the rest are counted.
const MAX_READS: usize = 1000;
const CONCURRENCY: usize = 16;

/// One replica's last use, as the plan lists it.
struct Read {
    key_id: String,
    region: String,
    usage: Result<KeyUsage, String>,
}

impl Read {
    fn line(&self) -> String {
        let what = match &self.usage {
            Ok(u) => u.describe(),
            Err(e) => format!("last use unknown ({e})"),
        };
        format!("  {} -> {}: {what}", self.key_id, self.region)
    }

    /// Unused for [`UNUSED_DAYS`] days, as far as KMS's record reaches back that far.
    fn unused(&self, now: u64) -> bool {
        let Ok(u) = &self.usage else {
            return false;
        };
        let since = now.saturating_sub(UNUSED_DAYS * DAY_MS);
        match &u.last_use {
            Some(l) => l.at_ms < since,
            None => u.covers(since),
        }
    }
}

/// The replicas of the sweep's managed keys: (key id, Region), Regions that failed left out.
fn replicas(sweep: &Sweep) -> Vec<(String, String)> {
    sweep
        .reports
        .iter()
        .filter(|r| r.managed)
        .filter_map(|r| Some((r.key_id.clone()?, r)))
        .flat_map(|(id, r)| {
            r.regions
                .iter()
                .filter(|g| !matches!(g.outcome, Outcome::Failed { .. } | Outcome::Skipped { .. }))
                .filter(|g| Some(&g.region) != r.primary_region.as_ref())
                .map(move |g| (id.clone(), g.region.clone()))
        })
        .collect()
}

/// Reads the last use of the sweep's replicas and returns the plan's lines and their JSON.
pub async fn key_use(kms: &dyn Kms, sweep: &Sweep) -> (String, Value) {
    let all = replicas(sweep);
    let skipped = all.len().saturating_sub(MAX_READS);
    let reads: Vec<Read> = stream::iter(all.into_iter().take(MAX_READS))
        .map(|(key_id, region)| async move {
            let usage = kms
                .get_key_last_usage(&region, &key_id)
                .await
                .map_err(|e| format!("{}: {}", e.code, e.message));
            Read {
                key_id,
                region,
                usage,
            }
        })
        .buffered(CONCURRENCY)
        .collect()
        .await;
    let now = now_ms();
    let unused: Vec<&Read> = reads.iter().filter(|r| r.unused(now)).collect();
    let mut text = format!("Replicas' last use ({}):", reads.len());
    for r in &reads {
        text.push('\n');
        text.push_str(&r.line());
    }
    if skipped > 0 {
        text.push_str(&format!("\n  ... and {skipped} more replica(s) not read"));
    }
    text.push_str(&format!(
        "\nUnused for {UNUSED_DAYS} days or more ({}; each replica is billed as a key: remove its \
         Region from the tag to prune it):",
        unused.len()
    ));
    for r in &unused {
        text.push('\n');
        text.push_str(&r.line());
    }
    let entry = |r: &Read| match &r.usage {
        Ok(u) => json!({"keyId": r.key_id, "region": r.region, "lastUse": u.last_use,
                        "trackingStartMs": u.tracking_start_ms, "summary": u.describe()}),
        Err(e) => json!({"keyId": r.key_id, "region": r.region, "error": e}),
    };
    let value = json!({
        "replicas": reads.iter().map(entry).collect::<Vec<_>>(),
        "unusedFor90Days": unused.iter().map(|r| entry(r)).collect::<Vec<_>>(),
        "notRead": skipped,
    });
    (text, value)
}
