use failover::Failover;
use failover::FailoverSettings;
use kms_replicator::aws::{AwsKms, EventBridgeAudit};
use kms_replicator::{telemetry, Config};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env()?;
    let settings = FailoverSettings::from_env()?;
    let sdk = aws_config::load_from_env().await;
    let kms = AwsKms::new(&sdk);
    let audit = EventBridgeAudit::new(
        aws_sdk_eventbridge::Client::new(&sdk),
        &config.audit_bus,
        &config.audit_source,
    );
    let failover = Failover {
        kms: &kms,
        audit: &audit,
        config: &config,
        settings,
    };
    run(service_fn(|event: LambdaEvent<Value>| {
        let failover = &failover;
        async move { failover.handle(&event.payload).await }
    }))
    .await
}
