//! The KMS multi-Region key replicator: domain, ports, AWS adapters and an in-memory twin of
//! KMS. The Lambda functions in `functions/` are thin shells around this crate.
//!
//! - [`event`]: EventBridge/CloudTrail intake.
//! - [`region`], [`policy`], [`sync`]: the desired state and the level-triggered sync.
//! - [`port`]: the KMS and audit ports; [`aws`] implements them on the AWS SDK, [`twin`] in
//!   memory.

pub mod arn;
pub mod audit;
pub mod aws;
pub mod config;
pub mod desired;
pub mod discover;
pub mod error;
pub mod event;
pub mod limit;
pub mod metrics;
pub mod model;
pub mod policy;
pub mod policy_diff;
pub mod port;
pub mod region;
pub mod report;
pub mod sync;
pub mod telemetry;

pub use config::Config;
pub use port::{AuditSink, Kms, TagIndex};
pub use sync::Syncer;
