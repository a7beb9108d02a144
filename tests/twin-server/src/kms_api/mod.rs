//! The KMS JSON 1.1 protocol on top of the twin: a request's operation name and JSON body in,
//! the JSON body of the answer (or an AWS-shaped error) out. Every operation calls the twin's
//! [`Kms`](kms_replicator::Kms) methods, so faults, latency, rate limits, outages, the call
//! log and the CloudTrail records are the twin's own. Field names and shapes follow the KMS
//! API Reference.
//!
//! `api.rs` holds the layer's state, what every answer shares (`KeyMetadata`, paging) and
//! the dispatch on [`Op`](kms_replicator::Op); the handlers are grouped like the twin's
//! operations: `keys.rs`, `aliases.rs`, `tags.rs`, `replication.rs`, `lifecycle.rs`, `crypto.rs`
//! (the cryptographic operations and GetKeyLastUsage), and `index.rs` (the tagging API's GetResources). `wire.rs` reads and writes the format's
//! fields; `error.rs` is how a request fails.

mod aliases;
mod api;
mod crypto;
mod error;
mod index;
mod keys;
mod lifecycle;
mod replication;
mod tags;
mod wire;

pub use api::{KmsApi, OPERATIONS};
pub use error::ApiError;
pub use wire::credential_scope;
