//! AWS's authorization, evaluated, for the local twin and the tests: what a deployed template
//! grants, decided request by request as IAM decides it, rather than by reading action names.
//!
//! Layout:
//! - [`yaml`]: CloudFormation YAML to JSON, short-form functions (`!Ref`, `!Sub`, ...) kept;
//! - [`cfn`]: a template with its parameters decided: conditions and intrinsic functions
//!   evaluated, deterministic physical names and ARNs;
//! - [`roles`]: each IAM role of a template and the identity policies it holds once deployed;
//! - [`policy`], [`condition`], [`context`], [`glob`]: the policy language (statements,
//!   wildcards, condition operators, absent keys) and the request context it is evaluated
//!   against: [`policy::identity_decision`] for identity policies,
//!   [`policy::resource_decision`] for resource policies such as key policies.
//!
//! How KMS combines a key policy with IAM policies (a key policy that names the account
//! delegates to IAM) is KMS's own rule and lives with the KMS twin.

pub mod cfn;
pub mod condition;
pub mod context;
pub mod glob;
pub mod policy;
pub mod roles;
pub mod yaml;

pub use context::Context;
pub use policy::{Caller, Decision, Effect, Policy, ResourceDecision};

/// A policy document this model cannot read, or does not know how to evaluate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(pub String);
