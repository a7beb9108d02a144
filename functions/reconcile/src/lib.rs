//! The reconcile function: the safety net under the event-driven path, and its `terraform
//! plan`.
//!
//! On its schedule it finds every managed primary (a multi-Region key carrying the replication
//! tag) in the swept Regions and runs the same `sync` as the replicate function on each, so
//! that lost events, hand edits of replicas and keys tagged before the stack existed are all
//! repaired. Invoked directly with `{"dryRun": true}` it returns the plan instead, writing
//! nothing; `keys` or `regions` narrow either.
//!
//! Cost at account scale: discovery is one paginated GetResources per Region (no call per
//! key), each Region's aliases are read once, and a key in sync then costs 3 reads per Region
//! it lives in. Only keys whose cheap check shows drift are synced again from fresh reads
//! before anything is written. Every call goes through the per-Region, per-operation rate
//! limiter the caller passes in (`kms_replicator::limit`), with at most `concurrency` keys in
//! flight, and the sweep stops starting keys `deadline_margin` before the invocation's
//! deadline.
//!
//! [`settings`](Settings) and [`request`](parse_request) read the environment and the
//! invocation, [`sweep`](Reconciler) runs, [`report`](Sweep) says what happened; a plan also
//! lists each replica's last use (`key_use`).

pub mod health;
mod key_use;
mod listing;
pub mod missed;
mod report;
mod request;
mod settings;
mod sweep;

pub use report::{Counts, Sweep};
pub use request::{parse_request, rotation, Invocation, Request, RequestError, Scope};
pub use settings::Settings;
pub use sweep::Reconciler;
