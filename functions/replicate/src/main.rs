//! The replicate function's Lambda entry point: reads the configuration, builds the AWS KMS
//! adapter and the audit sink, and handles each EventBridge event with
//! [`replicate::Replicator`].

use kms_replicator::aws::{audit_sink, load_sdk_config, AwsKms};
use kms_replicator::error::deadline_instant;
use kms_replicator::limit::RateLimitedKms;
use kms_replicator::{telemetry, Config};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use replicate::Replicator;
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env()?;
    let sdk = load_sdk_config().await?;
    // This sandbox's share of the KMS quotas (the function's reserved concurrency).
    let kms = RateLimitedKms::new(
        AwsKms::new(&sdk),
        replicate::process_quotas(|k| std::env::var(k).ok())?,
    );
    let audit = audit_sink(&sdk, &config);
    let replicator = Replicator {
        kms: &kms,
        audit: &audit,
        config: &config,
    };
    run(service_fn(|event: LambdaEvent<Value>| {
        let replicator = &replicator;
        async move {
            let deadline = deadline_instant(event.context.deadline);
            replicator.handle(&event.payload, Some(deadline)).await
        }
    }))
    .await
}
