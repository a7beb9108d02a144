//! The KMS multi-Region key replicator's shared library: the domain, the ports and their AWS
//! adapters. The Lambda functions in `functions/` are thin shells around this crate; the
//! in-memory KMS twin the tests use is the `twin` crate in `tests/twin`.
//!
//! - [`event`]: EventBridge/CloudTrail intake.
//! - [`region`], [`policy`], [`desired`], [`sync`]: the desired state and the level-triggered
//!   sync; [`promotion`]: what a promotion must not lose; [`report`] and [`audit`] say what a
//!   sync did.
//! - [`discover`]: finding the managed primaries; [`limit`]: staying within the KMS quotas.
//! - [`port`]: the KMS, tag index and audit ports; [`aws`] implements them on the AWS SDK.

pub mod arn;
pub mod audit;
pub mod aws;
pub mod config;
pub mod consent;
pub mod desired;
pub mod digest_tag;
pub mod discover;
pub mod error;
pub mod event;
pub mod explain;
pub mod hold;
pub mod limit;
pub mod marker;
pub mod metrics;
pub mod model;
pub mod op;
pub mod pipeline;
pub mod policy;
pub mod policy_diff;
pub mod port;
pub mod promotion;
pub mod region;
pub mod report;
pub mod sync;
pub mod telemetry;
pub mod usage;

pub use config::Config;
pub use op::Op;
pub use port::{AuditSink, Kms, TagIndex};
pub use sync::Syncer;
