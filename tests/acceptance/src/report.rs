//! What a run tells: each step, passed, failed, skipped or not run, with what it saw, how long
//! it took, and every AccessDenied it met read out ([`Denial`]); the journal the steps write
//! into as they go (shared, so that a step that panics still leaves what it saw); the whole
//! report as text for a person and as JSON for tooling.

use crate::access::Denial;
use crate::cloud::CallError;
use serde::Serialize;
use std::fmt::Write;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The steps, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    CreateKey,
    Tag,
    ReplicasCreated,
    ReplicasMirrorThePrimary,
    PolicyEdit,
    RegionRemoval,
    FailoverDryRun,
    Promotion,
    CleanupFind,
    CleanupStopManaging,
    CleanupAliases,
    CleanupKeys,
    CleanupVerify,
}

impl Step {
    pub const JOURNEY: [Step; 8] = [
        Step::CreateKey,
        Step::Tag,
        Step::ReplicasCreated,
        Step::ReplicasMirrorThePrimary,
        Step::PolicyEdit,
        Step::RegionRemoval,
        Step::FailoverDryRun,
        Step::Promotion,
    ];
    pub const CLEANUP: [Step; 5] = [
        Step::CleanupFind,
        Step::CleanupStopManaging,
        Step::CleanupAliases,
        Step::CleanupKeys,
        Step::CleanupVerify,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Step::CreateKey => "create_key",
            Step::Tag => "tag",
            Step::ReplicasCreated => "replicas_created",
            Step::ReplicasMirrorThePrimary => "replicas_mirror_the_primary",
            Step::PolicyEdit => "policy_edit",
            Step::RegionRemoval => "region_removal",
            Step::FailoverDryRun => "failover_dry_run",
            Step::Promotion => "promotion",
            Step::CleanupFind => "cleanup_find",
            Step::CleanupStopManaging => "cleanup_stop_managing",
            Step::CleanupAliases => "cleanup_aliases",
            Step::CleanupKeys => "cleanup_keys",
            Step::CleanupVerify => "cleanup_verify",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Step::CreateKey => {
                "a uniquely named multi-Region key with a policy, a description, a tag and an alias"
            }
            Step::Tag => "tag it with the replica Regions",
            Step::ReplicasCreated => "a replica appears in each Region",
            Step::ReplicasMirrorThePrimary => {
                "each replica mirrors the primary: policy (rewritten), aliases, tags, description"
            }
            Step::PolicyEdit => "a change to the primary's policy reaches every replica",
            Step::RegionRemoval => {
                "a Region taken out of the tag has its replica scheduled for deletion"
            }
            Step::FailoverDryRun => {
                "the failover function's dry run passes every check and writes nothing"
            }
            Step::Promotion => "the failover function promotes a replica",
            Step::CleanupFind => "find every key and alias this run made",
            Step::CleanupStopManaging => {
                "untag the primary, so that the replicator stops managing the key"
            }
            Step::CleanupAliases => "delete the aliases this run made",
            Step::CleanupKeys => "schedule the keys' deletion (7 days, replicas first)",
            Step::CleanupVerify => "nothing this run made is left enabled or aliased",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Passed,
    Failed,
    Skipped,
    /// An earlier step failed, and this one needs what it would have made.
    NotRun,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Passed => "PASS",
            Status::Failed => "FAIL",
            Status::Skipped => "SKIP",
            Status::NotRun => "----",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepReport {
    pub step: Step,
    pub title: &'static str,
    pub status: Status,
    /// What the step saw, in order.
    pub seen: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub access_denied: Vec<Denial>,
    pub seconds: f64,
}

impl StepReport {
    fn new(step: Step, status: Status) -> StepReport {
        StepReport {
            step,
            title: step.title(),
            status,
            seen: Vec::new(),
            error: None,
            access_denied: Vec::new(),
            seconds: 0.0,
        }
    }
}

/// Why a step failed: what is wrong, and the refusals behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub message: String,
    pub denials: Vec<Denial>,
}

impl Problem {
    pub fn new(message: impl Into<String>) -> Problem {
        Problem {
            message: message.into(),
            denials: Vec::new(),
        }
    }

    pub fn with_denials(mut self, denials: Vec<Denial>) -> Problem {
        for d in denials {
            if !self.denials.contains(&d) {
                self.denials.push(d);
            }
        }
        self
    }
}

impl From<CallError> for Problem {
    fn from(e: CallError) -> Problem {
        let denial = e.denial();
        let mut p = Problem::new(e.to_string());
        if let Some(d) = denial {
            p.denials.push(d);
        } else if e.is_access_denied() {
            p.message
                .push_str(" (the message names no principal, action or resource)");
        }
        p
    }
}

impl From<String> for Problem {
    fn from(message: String) -> Problem {
        Problem::new(message)
    }
}

#[derive(Default)]
struct Entries {
    done: Vec<StepReport>,
    open: Option<(StepReport, Instant)>,
}

/// Where the steps write what they see as they go. Clones share one journal.
#[derive(Clone, Default)]
pub struct Journal {
    entries: Arc<Mutex<Entries>>,
    /// Each line is also written to standard error as it happens, for a person watching a
    /// run that waits minutes.
    live: bool,
}

impl Journal {
    pub fn new(live: bool) -> Journal {
        Journal {
            entries: Arc::default(),
            live,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn start(&self, step: Step) {
        if self.live {
            eprintln!("> {}: {}", step.id(), step.title());
        }
        self.lock().open = Some((StepReport::new(step, Status::Passed), Instant::now()));
    }

    /// A line of what the open step saw.
    pub fn saw(&self, line: impl Into<String>) {
        let line = line.into();
        if self.live {
            eprintln!("    {line}");
        }
        if let Some((r, _)) = &mut self.lock().open {
            r.seen.push(line);
        }
    }

    /// A line for the person watching (how a wait is going), not kept in the report.
    pub fn progress(&self, line: &str) {
        if self.live {
            eprintln!("    ... {line}");
        }
    }

    /// Closes the open step with its outcome.
    pub fn finish(&self, result: Result<(), Problem>) {
        let mut e = self.lock();
        let Some((mut r, started)) = e.open.take() else {
            return;
        };
        r.seconds = (started.elapsed().as_secs_f64() * 10.0).round() / 10.0;
        if let Err(p) = result {
            r.status = Status::Failed;
            r.error = Some(p.message);
            r.access_denied = p.denials;
        }
        if self.live {
            eprintln!(
                "  {} {} ({:.1} s)",
                r.status.label(),
                r.step.id(),
                r.seconds
            );
            if let Some(err) = &r.error {
                eprintln!("    error: {err}");
            }
        }
        e.done.push(r);
    }

    /// A step that does not apply to this deployment, and why.
    pub fn skip(&self, step: Step, why: impl Into<String>) {
        let mut r = StepReport::new(step, Status::Skipped);
        r.seen.push(why.into());
        if self.live {
            eprintln!("  SKIP {}: {}", step.id(), r.seen[0]);
        }
        self.lock().done.push(r);
    }

    /// Closes the open step, if any, as failed: the step panicked or was stopped.
    pub fn abandon(&self, why: &str) {
        if self.lock().open.is_some() {
            self.finish(Err(Problem::new(why)));
        }
    }

    pub fn steps(&self) -> Vec<StepReport> {
        self.lock().done.clone()
    }
}

/// The whole run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub run_id: String,
    /// `AWS`, or the `AWS_ENDPOINT_URL` the calls went to.
    pub endpoint: String,
    pub home_region: String,
    pub replica_regions: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub journey: Vec<StepReport>,
    pub cleanup: Vec<StepReport>,
    /// What cleanup could not remove: a person must.
    pub left_behind: Vec<String>,
    /// The run could not start (no Region, a leftover ledger, ...): nothing was made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_started: Option<String>,
    pub passed: bool,
}

impl Report {
    /// Orders the steps, and marks every journey step that never started as not run.
    pub fn new(
        head: Head,
        steps: Vec<StepReport>,
        ran_journey: bool,
        left_behind: Vec<String>,
    ) -> Report {
        let find = |s: Step| steps.iter().find(|r| r.step == s).cloned();
        let journey: Vec<StepReport> = if ran_journey {
            Step::JOURNEY
                .iter()
                .map(|&s| find(s).unwrap_or_else(|| StepReport::new(s, Status::NotRun)))
                .collect()
        } else {
            Vec::new()
        };
        let cleanup: Vec<StepReport> = Step::CLEANUP.iter().filter_map(|&s| find(s)).collect();
        let passed = journey
            .iter()
            .chain(&cleanup)
            .all(|r| matches!(r.status, Status::Passed | Status::Skipped))
            && left_behind.is_empty()
            && cleanup.len() == Step::CLEANUP.len();
        Report {
            run_id: head.run_id,
            endpoint: head.endpoint,
            home_region: head.home_region,
            replica_regions: head.replica_regions,
            key: head.key,
            journey,
            cleanup,
            left_behind,
            not_started: None,
            passed,
        }
    }

    pub fn not_started(head: Head, why: String) -> Report {
        Report {
            run_id: head.run_id,
            endpoint: head.endpoint,
            home_region: head.home_region,
            replica_regions: head.replica_regions,
            key: None,
            journey: Vec::new(),
            cleanup: Vec::new(),
            left_behind: Vec::new(),
            not_started: Some(why),
            passed: false,
        }
    }

    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The report for a person: one block per step.
    pub fn text(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(
            t,
            "kms-acceptance run {} against {}: home Region {}, replicas {}",
            self.run_id,
            self.endpoint,
            self.home_region,
            self.replica_regions.join(" ")
        );
        if let Some(k) = &self.key {
            let _ = writeln!(t, "test key: {k}");
        }
        if let Some(why) = &self.not_started {
            let _ = writeln!(t, "NOT STARTED: {why}");
            return t;
        }
        if !self.journey.is_empty() {
            let _ = writeln!(t, "\nJourneys");
            self.journey.iter().for_each(|r| block(&mut t, r));
        }
        let _ = writeln!(t, "\nCleanup");
        self.cleanup.iter().for_each(|r| block(&mut t, r));
        let count = |s: Status| self.journey.iter().filter(|r| r.status == s).count();
        let _ = writeln!(t);
        if !self.journey.is_empty() {
            let _ = writeln!(
                t,
                "Journeys: {} passed, {} failed, {} skipped, {} not run.",
                count(Status::Passed),
                count(Status::Failed),
                count(Status::Skipped),
                count(Status::NotRun)
            );
        }
        let clean =
            self.left_behind.is_empty() && self.cleanup.iter().all(|r| r.status == Status::Passed);
        if clean && self.key.is_none() {
            let _ = writeln!(t, "Cleanup: done; no key was made.");
        } else if clean {
            let _ = writeln!(
                t,
                "Cleanup: done; nothing this run made is left enabled (keys pending deletion in 7 days)."
            );
        } else {
            let _ = writeln!(
                t,
                "Cleanup: NOT complete. Left behind, for a person to remove:"
            );
            for l in &self.left_behind {
                let _ = writeln!(t, "  - {l}");
            }
        }
        let _ = writeln!(t, "{}", if self.passed { "PASSED" } else { "FAILED" });
        t
    }
}

/// What the report's first line says.
#[derive(Debug, Clone, Default)]
pub struct Head {
    pub run_id: String,
    pub endpoint: String,
    pub home_region: String,
    pub replica_regions: Vec<String>,
    pub key: Option<String>,
}

fn block(t: &mut String, r: &StepReport) {
    let secs = if r.status == Status::NotRun {
        String::new()
    } else {
        format!(" ({:.1} s)", r.seconds)
    };
    let _ = writeln!(
        t,
        "{}  {}: {}{secs}",
        r.status.label(),
        r.step.id(),
        r.title
    );
    for line in &r.seen {
        let _ = writeln!(t, "      {line}");
    }
    if let Some(e) = &r.error {
        let _ = writeln!(t, "      error: {e}");
    }
    for d in &r.access_denied {
        let _ = writeln!(
            t,
            "      AccessDenied: {} may not {} on {}{}",
            d.principal,
            d.action,
            d.resource,
            d.reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        );
        let _ = writeln!(t, "        look at: {}", d.look_at);
    }
    if r.status == Status::NotRun {
        let _ = writeln!(t, "      not run: an earlier step failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head() -> Head {
        Head {
            run_id: "0123abcd".into(),
            endpoint: "AWS".into(),
            home_region: "us-east-1".into(),
            replica_regions: vec!["us-west-2".into()],
            key: None,
        }
    }

    fn cleanup_passed(j: &Journal) {
        for s in Step::CLEANUP {
            j.start(s);
            j.finish(Ok(()));
        }
    }

    #[test]
    fn steps_that_never_started_are_reported_as_not_run_and_fail_the_run() {
        let j = Journal::new(false);
        j.start(Step::CreateKey);
        j.saw("made mrk-1");
        j.finish(Ok(()));
        j.start(Step::Tag);
        j.finish(Err(Problem::new("TagResource refused")));
        cleanup_passed(&j);
        let r = Report::new(head(), j.steps(), true, vec![]);
        let statuses: Vec<Status> = r.journey.iter().map(|s| s.status).collect();
        assert_eq!(
            statuses[..3],
            [Status::Passed, Status::Failed, Status::NotRun]
        );
        assert!(statuses[3..].iter().all(|s| *s == Status::NotRun));
        assert!(!r.passed);
        assert!(
            r.text()
                .contains("FAIL  tag: tag it with the replica Regions"),
            "{}",
            r.text()
        );
        assert!(r.text().contains("error: TagResource refused"));
    }

    #[test]
    fn a_run_passes_only_when_every_step_passed_or_was_skipped_and_nothing_is_left() {
        let j = Journal::new(false);
        for s in Step::JOURNEY {
            if s == Step::RegionRemoval {
                j.skip(s, "RemovalPolicy is Retain");
            } else {
                j.start(s);
                j.finish(Ok(()));
            }
        }
        cleanup_passed(&j);
        assert!(Report::new(head(), j.steps(), true, vec![]).passed);
        let left = vec!["alias/x in us-west-2".to_string()];
        let r = Report::new(head(), j.steps(), true, left);
        assert!(!r.passed);
        assert!(r.text().contains("Cleanup: NOT complete"));
        assert!(r.text().contains("  - alias/x in us-west-2"));
    }

    #[test]
    fn an_abandoned_step_is_failed_with_why_and_keeps_what_it_saw() {
        let j = Journal::new(false);
        j.start(Step::ReplicasCreated);
        j.saw("us-west-2: Creating");
        j.abandon("the harness panicked: boom");
        let s = &j.steps()[0];
        assert_eq!(s.status, Status::Failed);
        assert_eq!(s.seen, ["us-west-2: Creating"]);
        assert_eq!(s.error.as_deref(), Some("the harness panicked: boom"));
        // Nothing open: a second abandon changes nothing.
        j.abandon("again");
        assert_eq!(j.steps().len(), 1);
    }

    #[test]
    fn an_access_denied_call_becomes_a_problem_that_names_the_refusal() {
        let e = CallError {
            call: "kms:CreateKey in us-east-1".into(),
            code: Some("AccessDeniedException".into()),
            message: "User: arn:aws:iam::111122223333:user/Bob is not authorized to perform: \
                      kms:CreateKey on resource: * because no identity-based policy allows the \
                      kms:CreateKey action"
                .into(),
        };
        let p = Problem::from(e);
        assert_eq!(p.denials.len(), 1);
        assert_eq!(p.denials[0].action, "kms:CreateKey");
        let bare = Problem::from(CallError {
            call: "kms:CreateKey in us-east-1".into(),
            code: Some("AccessDeniedException".into()),
            message: "injected fault".into(),
        });
        assert!(bare.denials.is_empty());
        assert!(
            bare.message.contains("names no principal"),
            "{}",
            bare.message
        );
    }
}
