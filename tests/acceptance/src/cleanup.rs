//! Cleanup, which runs whatever the journeys did: it acts only on what the ledger says this
//! run made (the key id, and alias names that point at that key), wherever the key now lives
//! (after a promotion the primary has moved). The replication tag goes first, so that the
//! replicator stops managing the key and does not report the deletions as conflicts; then the
//! aliases; then ScheduleKeyDeletion with the 7-day minimum, replicas first (a primary whose
//! replicas are still pending goes `PendingReplicaDeletion`, as KMS documents); then a check
//! that nothing is left enabled or aliased, which repairs once what an in-flight sync may
//! have put back.

use crate::cloud::{CallError, Cloud, KeyView};
use crate::ledger::{Ledger, Made};
use crate::report::{Journal, Problem, Step};
use crate::wait::{self, Probe};
use aws_sdk_kms::types::KeyState;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// KMS's minimum waiting period: the key can still be rescued for a week.
pub const PENDING_WINDOW_DAYS: i32 = 7;

pub struct Cleaner<'a> {
    pub cloud: &'a Cloud,
    pub ledger: &'a Ledger,
    pub journal: &'a Journal,
    /// The bound of the wait for a key that is `Updating` to settle.
    pub wait: Duration,
    pub poll: Duration,
}

/// Where the key is: what each Region holds of it.
#[derive(Debug, Default)]
struct Layout {
    views: BTreeMap<String, KeyView>,
    errors: Vec<CallError>,
}

impl Layout {
    fn primary(&self) -> Option<String> {
        self.views
            .values()
            .find(|v| v.is_primary())
            .map(|v| v.region.clone())
            .or_else(|| self.views.values().find_map(|v| v.primary_region.clone()))
    }

    fn problem(&self) -> Option<Problem> {
        if self.errors.is_empty() {
            return None;
        }
        let message = self
            .errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        let denials = self.errors.iter().filter_map(CallError::denial).collect();
        Some(Problem::new(message).with_denials(denials))
    }
}

/// Runs every cleanup step; returns what is left behind (empty when all is clean).
pub async fn cleanup(c: &Cleaner<'_>) -> Vec<String> {
    let made = c.ledger.made();
    let Some(key_id) = made.key_id.clone() else {
        for s in Step::CLEANUP {
            c.journal.start(s);
            c.journal.saw("nothing to do: this run made no key");
            c.journal.finish(Ok(()));
        }
        c.ledger.close();
        return Vec::new();
    };

    c.journal.start(Step::CleanupFind);
    let layout = find(c.cloud, &made, &key_id).await;
    for v in layout.views.values() {
        c.journal.saw(format!(
            "{}: {} {} {}",
            v.region,
            v.arn,
            v.kind.as_deref().unwrap_or(""),
            v.state
        ));
    }
    c.journal
        .saw(format!("alias names this run made: {:?}", made.aliases));
    c.journal.finish(layout.problem().map_or(Ok(()), Err));

    c.journal.start(Step::CleanupStopManaging);
    c.journal
        .finish(stop_managing(c, &made, &key_id, &layout).await);

    c.journal.start(Step::CleanupAliases);
    let deleted = delete_aliases(c, &made, &key_id, &layout).await;
    c.journal.finish(deleted);

    c.journal.start(Step::CleanupKeys);
    let scheduled = schedule_deletions(c, &key_id, &layout).await;
    c.journal.finish(scheduled);

    c.journal.start(Step::CleanupVerify);
    let (left, verified) = verify(c, &made, &key_id).await;
    c.journal.finish(verified);
    if left.is_empty() {
        c.ledger.close();
    }
    left
}

/// Every Region the key was seen in or asked for, and every Region its multi-Region
/// configuration names.
async fn find(cloud: &Cloud, made: &Made, key_id: &str) -> Layout {
    let mut to_look: BTreeSet<String> = made.key_regions.clone();
    to_look.insert(made.home_region.clone());
    to_look.extend(made.replica_regions.iter().cloned());
    let mut looked = BTreeSet::new();
    let mut layout = Layout::default();
    while let Some(region) = to_look.difference(&looked).next().cloned() {
        looked.insert(region.clone());
        match cloud.describe(&region, key_id).await {
            Ok(Some(v)) => {
                to_look.extend(v.related_regions());
                layout.views.insert(region, v);
            }
            Ok(None) => {}
            Err(e) => layout.errors.push(e),
        }
    }
    layout
}

async fn stop_managing(
    c: &Cleaner<'_>,
    made: &Made,
    key_id: &str,
    layout: &Layout,
) -> Result<(), Problem> {
    let Some(primary) = layout.primary() else {
        c.journal.saw("no primary found: nothing to untag");
        return Ok(());
    };
    if layout
        .views
        .get(&primary)
        .is_some_and(KeyView::is_pending_deletion)
    {
        c.journal.saw(format!(
            "the primary in {primary} is already pending deletion"
        ));
        return Ok(());
    }
    c.cloud
        .kms(&primary)
        .untag_resource()
        .key_id(key_id)
        .tag_keys(&made.tag_key)
        .send()
        .await
        .map_err(|e| CallError::of(format!("kms:UntagResource in {primary}"), e))?;
    c.journal.saw(format!(
        "untagged {} on the primary in {primary}",
        made.tag_key
    ));
    Ok(())
}

/// The ledger's alias names that point at the key, Region by Region.
async fn ours(
    c: &Cleaner<'_>,
    made: &Made,
    key_id: &str,
    region: &str,
) -> Result<Vec<String>, CallError> {
    let names = c.cloud.aliases(region, key_id).await?;
    Ok(names.intersection(&made.aliases).cloned().collect())
}

async fn delete_aliases(
    c: &Cleaner<'_>,
    made: &Made,
    key_id: &str,
    layout: &Layout,
) -> Result<(), Problem> {
    let mut errors: Vec<CallError> = Vec::new();
    for region in layout.views.keys() {
        let names = match ours(c, made, key_id, region).await {
            Ok(n) => n,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        for name in names {
            match c
                .cloud
                .kms(region)
                .delete_alias()
                .alias_name(&name)
                .send()
                .await
            {
                Ok(_) => c.journal.saw(format!("deleted {name} in {region}")),
                Err(e) => errors.push(CallError::of(
                    format!("kms:DeleteAlias {name} in {region}"),
                    e,
                )),
            }
        }
    }
    problem_of(errors)
}

fn problem_of(errors: Vec<CallError>) -> Result<(), Problem> {
    if errors.is_empty() {
        return Ok(());
    }
    let denials = errors.iter().filter_map(CallError::denial).collect();
    let message = errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    Err(Problem::new(message).with_denials(denials))
}

async fn schedule_deletions(c: &Cleaner<'_>, key_id: &str, layout: &Layout) -> Result<(), Problem> {
    let primary = layout.primary();
    let mut order: Vec<&String> = layout
        .views
        .keys()
        .filter(|r| Some(*r) != primary.as_ref())
        .collect();
    order.extend(primary.as_ref().filter(|p| layout.views.contains_key(*p)));
    let mut errors = Vec::new();
    for region in order {
        if let Err(e) = schedule_one(c, key_id, region).await {
            errors.push(e);
        }
    }
    problem_of(errors)
}

/// ScheduleKeyDeletion of the key in `region`, unless it is pending deletion already; a key
/// `Updating` (just after a promotion) is waited for, since KMS refuses the call in that state
/// (KMS Developer Guide, "Key states": ScheduleKeyDeletion).
async fn schedule_one(c: &Cleaner<'_>, key_id: &str, region: &str) -> Result<(), CallError> {
    let settled = wait::until(c.journal, c.wait, c.poll, || async move {
        match c.cloud.describe(region, key_id).await {
            Ok(Some(v)) if v.state == KeyState::Updating.as_str() => {
                Probe::NotYet(format!("{region}: {}", v.state))
            }
            Ok(v) => Probe::Done(v),
            Err(e) if e.is_access_denied() => Probe::Failed(Problem::from(e)),
            Err(e) => Probe::NotYet(e.to_string()),
        }
    })
    .await;
    let view = match settled {
        Ok((v, _)) => v,
        Err(e) => {
            return Err(CallError {
                call: format!("kms:DescribeKey in {region}"),
                code: None,
                message: e.problem("the key settled").message,
            })
        }
    };
    let Some(view) = view else {
        c.journal.saw(format!("{region}: no key any more"));
        return Ok(());
    };
    if view.is_pending_deletion() {
        c.journal.saw(format!(
            "{region}: already {} (deletion on {})",
            view.state,
            view.deletion_date
                .as_deref()
                .unwrap_or("a date KMS sets after the replicas go")
        ));
        return Ok(());
    }
    let out = c
        .cloud
        .kms(region)
        .schedule_key_deletion()
        .key_id(key_id)
        .pending_window_in_days(PENDING_WINDOW_DAYS)
        .send()
        .await
        .map_err(|e| CallError::of(format!("kms:ScheduleKeyDeletion in {region}"), e))?;
    let state = out
        .key_state()
        .map(|s| s.as_str().to_string())
        .unwrap_or_default();
    let when = match out.deletion_date() {
        Some(d) => format!("deletion on {d}"),
        None if state == KeyState::PendingReplicaDeletion.as_str() => {
            "its window starts when its last replica is deleted".to_string()
        }
        None => "no deletion date shown".to_string(),
    };
    c.journal.saw(format!(
        "{region}: {} {state}, {PENDING_WINDOW_DAYS}-day window ({when})",
        view.kind.as_deref().unwrap_or("key")
    ));
    Ok(())
}

/// Whether anything this run made is still enabled or aliased; what is, is fixed once, then
/// looked at again. Returns what is left and the step's outcome.
async fn verify(c: &Cleaner<'_>, made: &Made, key_id: &str) -> (Vec<String>, Result<(), Problem>) {
    let mut round = 0;
    loop {
        let layout = find(c.cloud, made, key_id).await;
        let mut left = Vec::new();
        let mut errors = layout.errors.clone();
        for (region, v) in &layout.views {
            if !v.is_pending_deletion() {
                left.push(format!(
                    "{} in {region} is {} (not pending deletion)",
                    v.arn, v.state
                ));
            }
            match ours(c, made, key_id, region).await {
                Ok(names) => left.extend(
                    names
                        .iter()
                        .map(|n| format!("{n} in {region} (pointing at {key_id})")),
                ),
                Err(e) => errors.push(e),
            }
        }
        for e in &errors {
            left.push(format!("unknown, since {e}"));
        }
        if left.is_empty() {
            c.journal.saw(format!(
                "{} Region(s) hold the key, every one pending deletion; no alias of this run is left",
                layout.views.len()
            ));
            return (left, Ok(()));
        }
        if round == 1 {
            let mut p = Problem::new(format!("left behind: {}", left.join("; ")));
            p = p.with_denials(errors.iter().filter_map(CallError::denial).collect());
            return (left, Err(p));
        }
        round += 1;
        c.journal
            .saw(format!("put right once more: {}", left.join("; ")));
        let _ = delete_aliases(c, made, key_id, &layout).await;
        let _ = schedule_deletions(c, key_id, &layout).await;
        tokio::time::sleep(c.poll).await;
    }
}
