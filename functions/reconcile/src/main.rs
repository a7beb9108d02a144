//! The reconcile function's Lambda entry point: reads the configuration, wraps the AWS KMS
//! and tagging adapters in one rate limiter per process, and runs a sweep per invocation with
//! [`reconcile::Reconciler`] against the invocation's deadline.

use kms_replicator::aws::{audit_sink, load_sdk_config, AwsKms, AwsPipelineProbe, AwsTagIndex};
use kms_replicator::error::deadline_instant;
use kms_replicator::error::FunctionError;
use kms_replicator::limit::{Quotas, RateLimitedKms};
use kms_replicator::{telemetry, Config};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use reconcile::{Reconciler, Settings};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env()?;
    let settings = Settings::from_env()?;
    let sdk = load_sdk_config().await?;
    // One limiter per process: its permits are what keep every invocation within the quotas.
    let quotas = Quotas::kms(settings.read_rate);
    let kms = RateLimitedKms::new(AwsKms::new(&sdk), quotas.clone());
    let tags = RateLimitedKms::new(AwsTagIndex::new(&sdk), quotas);
    let audit = audit_sink(&sdk, &config);
    let probe = AwsPipelineProbe::new(&sdk, &config.metrics_namespace);
    let home = reconcile::health::home_from_env(&config);
    let reconciler = Reconciler {
        kms: &kms,
        tags: &tags,
        audit: &audit,
        config: &config,
        settings: &settings,
        limiter: Some(&kms),
    };
    run(service_fn(|event: LambdaEvent<Value>| {
        let (reconciler, probe, home, config) = (&reconciler, &probe, &home, &config);
        async move {
            // {"check":"pipeline"}: the event path's health, read-only.
            match reconcile::health::requested_check(&event.payload) {
                Some(Ok(())) => {
                    return Ok(reconcile::health::check_pipeline(probe, config, home).await)
                }
                Some(Err(e)) => return Err(FunctionError::InvalidInput(e)),
                None => {}
            }
            let deadline = deadline_instant(event.context.deadline);
            reconciler.handle(&event.payload, Some(deadline)).await
        }
    }))
    .await
}
