//! Logging setup shared by the functions.

/// Structured JSON logs on stdout, which Lambda ships to CloudWatch Logs. The level comes
/// from `AWS_LAMBDA_LOG_LEVEL` (set by the function's logging configuration) or `RUST_LOG`.
pub fn init() {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .or_else(|| {
            std::env::var("AWS_LAMBDA_LOG_LEVEL")
                .ok()
                .map(|l| l.to_lowercase())
        })
        .unwrap_or_else(|| "info".into());
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_target(false)
        .with_current_span(false)
        .without_time()
        .try_init();
}
