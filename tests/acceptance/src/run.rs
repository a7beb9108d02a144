//! One run, start to end: connect, write the ledger, run the journeys in a task of their own
//! (so that a panic in a step ends that step, not the run), then clean up whatever happened,
//! and put the report together. Cleanup cannot be skipped: nothing between the journeys'
//! start and cleanup's can return early.

use crate::cleanup::{cleanup, Cleaner};
use crate::cloud::Cloud;
use crate::expect;
use crate::journey::{journeys, Ctx};
use crate::ledger::{Ledger, Made};
use crate::report::{Head, Journal, Report};
use crate::settings::{Mode, Settings};
use std::any::Any;
use std::future::Future;
use std::sync::Arc;

pub async fn run(settings: Settings) -> Report {
    match settings.mode {
        Mode::Journeys => run_journeys(settings).await,
        Mode::CleanupOnly => run_cleanup_only(settings).await,
    }
}

async fn run_journeys(settings: Settings) -> Report {
    let mut head = Head {
        run_id: expect::run_id(),
        replica_regions: settings.replica_regions.clone(),
        ..Head::default()
    };
    let region = settings.region.as_deref().or(settings.failover_region());
    let cloud = match Cloud::connect(
        settings.profile.as_deref(),
        region,
        settings.failover_region(),
    )
    .await
    {
        Ok(c) => c,
        Err(e) => return Report::not_started(head, e),
    };
    head.endpoint = cloud.endpoint.clone();
    head.home_region = cloud.home_region().to_string();
    let made = Made {
        run_id: head.run_id.clone(),
        home_region: head.home_region.clone(),
        replica_regions: settings.replica_regions.clone(),
        tag_key: settings.tag_key.clone(),
        ..Made::default()
    };
    let ledger = match Ledger::create(made, settings.ledger.as_deref()) {
        Ok(l) => l,
        Err(e) => return Report::not_started(head, e),
    };
    let journal = Journal::new(true);
    let ctx = Arc::new(Ctx {
        home: head.home_region.clone(),
        failover: settings.failover_function.clone().unwrap_or_default(),
        run_id: head.run_id.clone(),
        settings,
        cloud,
        ledger,
        journal: journal.clone(),
    });
    let journey_ctx = ctx.clone();
    guarded(&journal, async move { journeys(&journey_ctx).await }).await;
    let left = cleanup(&Cleaner {
        cloud: &ctx.cloud,
        ledger: &ctx.ledger,
        journal: &journal,
        wait: ctx.settings.wait,
        poll: ctx.settings.poll,
    })
    .await;
    head.key = ctx.ledger.made().key_arn;
    Report::new(head, journal.steps(), true, left)
}

/// Cleans up what the ledger of an earlier, interrupted run lists.
async fn run_cleanup_only(settings: Settings) -> Report {
    let mut head = Head::default();
    let Some(file) = settings.ledger.as_deref() else {
        return Report::not_started(head, "--cleanup needs --ledger".into());
    };
    let ledger = match Ledger::load(file) {
        Ok(l) => l,
        Err(e) => return Report::not_started(head, e),
    };
    let made = ledger.made();
    head.run_id = made.run_id.clone();
    head.replica_regions = made.replica_regions.clone();
    head.key = made.key_arn.clone();
    let region = settings.region.clone().unwrap_or(made.home_region.clone());
    let cloud = match Cloud::connect(settings.profile.as_deref(), Some(&region), None).await {
        Ok(c) => c,
        Err(e) => return Report::not_started(head, e),
    };
    head.endpoint = cloud.endpoint.clone();
    head.home_region = made.home_region.clone();
    let journal = Journal::new(true);
    let left = cleanup(&Cleaner {
        cloud: &cloud,
        ledger: &ledger,
        journal: &journal,
        wait: settings.wait,
        poll: settings.poll,
    })
    .await;
    Report::new(head, journal.steps(), false, left)
}

/// Runs `journey` in a task of its own: if it panics, the step it was in is closed as failed
/// with the panic's message, and this returns as if the journey had ended.
pub async fn guarded<F>(journal: &Journal, journey: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    if let Err(e) = tokio::spawn(journey).await {
        let why = if e.is_panic() {
            format!("the harness panicked: {}", panic_message(e.into_panic()))
        } else {
            "the journeys were cancelled".to_string()
        };
        journal.abandon(&why);
    }
}

fn panic_message(p: Box<dyn Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Status, Step};

    #[tokio::test]
    async fn a_step_that_panics_is_failed_with_the_message_and_the_run_goes_on_to_cleanup() {
        let journal = Journal::new(false);
        let j = journal.clone();
        guarded(&journal, async move {
            j.start(Step::CreateKey);
            j.finish(Ok(()));
            j.start(Step::Tag);
            j.saw("tagging");
            panic!("boom");
        })
        .await;
        let steps = journal.steps();
        assert_eq!(steps.len(), 2);
        assert_eq!(steps[1].step, Step::Tag);
        assert_eq!(steps[1].status, Status::Failed);
        assert_eq!(
            steps[1].error.as_deref(),
            Some("the harness panicked: boom")
        );
        assert_eq!(steps[1].seen, ["tagging"]);
    }
}
