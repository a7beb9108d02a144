//! `make acceptance`: the replicator's user journeys against a deployed stack, in the AWS
//! account of a profile, with `KMS_REPLICATOR_ACCEPTANCE=1` only. What offline tests cannot
//! show (how IAM and KMS really authorize the stack's roles, CloudTrail's delivery to
//! EventBridge) is checked here by doing what a person and the on-call person do, on a key
//! made for the run and scheduled for deletion at the end. CI runs the same harness against
//! the local twin (`tests/local_cloud.rs`), so that its logic is tested where no account is.
//!
//! The harness shares no code with the replicator: it judges the deployed product from outside.
//!
//! # Layout
//!
//! From the top down; each module imports only modules below it.
//!
//! - `run.rs`: one run: connect, ledger, the journeys in a task of their own, then cleanup
//!   whatever happened, then the report.
//! - `journey.rs`: the journeys, one function per step.
//! - `cleanup.rs`: cleanup of what the ledger lists, and the check that nothing is left.
//! - `wait.rs`: bounded waits that say what they saw last.
//! - `report.rs`: the steps, their outcomes, the journal they write into, the report as text
//!   and JSON.
//! - `ledger.rs`: what the run made, saved as it is made, for `--cleanup` after an
//!   interrupted run.
//! - `cloud.rs`: the SDK clients (every call bounded), the reads, what a failed call said.
//! - `expect.rs`: the test key's names and policy, and what a replica must hold.
//! - `access.rs`: AWS's AccessDenied messages read into principal, action, resource and the
//!   policy to look at.
//! - `settings.rs`: the opt-in, the command line, the stack's outputs.

pub mod access;
pub mod cleanup;
pub mod cloud;
pub mod expect;
pub mod journey;
pub mod ledger;
pub mod report;
pub mod run;
pub mod settings;
pub mod wait;

pub use report::{Report, Status, Step, StepReport};
pub use run::run;
pub use settings::{opted_in, Settings, OPT_IN, REFUSAL};
