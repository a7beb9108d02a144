//! A local Lambda: the Runtime API a function binary polls (`AWS_LAMBDA_RUNTIME_API`), the
//! process it runs in, and the two ways Lambda invokes it.
//!
//! - Synchronous (`RequestResponse`): the caller gets the function's result or its error.
//! - Asynchronous (`Event`, how EventBridge invokes a function): on a function error Lambda
//!   retries up to `MaximumRetryAttempts` times, then sends the event to the on-failure
//!   destination; here that is the dead-letter list. Lambda waits about one and then two
//!   minutes between attempts; the local delay is short and configurable.
//!
//! Each of the function's `concurrency` sandboxes is one process with its own Runtime API
//! endpoint, all taking invocations from one queue, as Lambda scales a function out. A process
//! is started when the function is created and again, when there is work, after it exits; an
//! invocation in flight when its process exits fails with `Runtime.ExitError`.
//!
//! `function.rs` is the function and its invocations (the queue, retries, dead letters);
//! `sandbox.rs` runs and restarts its processes; `runtime_api.rs` is the Runtime API they poll.

mod function;
mod runtime_api;
mod sandbox;

pub use function::{
    FunctionSpec, InvocationRecord, InvokeError, LambdaFunction, ACCOUNT, LAMBDA_REGION,
};
pub use sandbox::runtime_env;
