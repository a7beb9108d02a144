//! A local stand-in for the AWS side of the replicator, for machines without an AWS account:
//!
//! - [`kms_api`]: the in-memory KMS twin ([`twin::Twin`]) speaking the KMS JSON
//!   1.1 protocol, so the real AWS SDK (and the AWS CLI) can use it through `AWS_ENDPOINT_URL`;
//! - [`cloud`]: one loopback endpoint for KMS, EventBridge `PutEvents` and Lambda `Invoke`,
//!   with debug endpoints under `/_twin/`;
//! - [`lambda`]: a Lambda Runtime API that runs the unmodified function binaries;
//! - [`bus`] and [`pattern`]: CloudTrail records of the twin's writes, matched against the
//!   EventBridge rules of `template.yaml` and delivered to the functions.

pub mod bus;
pub mod client;
pub mod cloud;
pub mod http;
pub mod kms_api;
pub mod lambda;
pub mod pattern;

pub use cloud::{
    LocalCloud, LocalCloudBuilder, ADMIN_ACCESS_KEY, FUNCTION_ACCESS_KEY, OPERATOR_ACCESS_KEY,
};
pub use lambda::InvokeError;
