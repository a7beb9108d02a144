//! The failover function's Lambda entry point: reads the configuration, wraps the AWS KMS
//! adapter in the shared rate limiter (every write at its KMS quota) and serves each
//! invocation with [`failover::Failover`].

use failover::{quotas, Failover, FailoverSettings};
use kms_replicator::aws::{audit_sink, load_sdk_config, AwsKms};
use kms_replicator::error::deadline_instant;
use kms_replicator::limit::RateLimitedKms;
use kms_replicator::{telemetry, Config};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env()?;
    let settings = FailoverSettings::from_env()?;
    let sdk = load_sdk_config().await?;
    // One limiter per process: its permits keep a bulk failover within the
    // UpdatePrimaryRegion quota.
    let kms = RateLimitedKms::new(AwsKms::new(&sdk), quotas());
    let audit = audit_sink(&sdk, &config);
    let failover = Failover {
        kms: &kms,
        audit: &audit,
        config: &config,
        settings,
    };
    run(service_fn(|event: LambdaEvent<Value>| {
        let failover = &failover;
        async move {
            let deadline = deadline_instant(event.context.deadline);
            failover.handle(&event.payload, Some(deadline)).await
        }
    }))
    .await
}
