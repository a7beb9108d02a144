//! The SDK's retries and the limiter's: throttled KMS calls are retried by
//! [`RateLimitedKms`](crate::limit::RateLimitedKms), not by the SDK.
//!
//! The SDK's standard retry mode sends a throttled request again after a short backoff, past
//! the limiter's permits; the limiter would only hear of the throttle after the SDK gave up,
//! and too late to slow down. With [`ThrottlingLeftToTheLimiter`] on the KMS clients a
//! ThrottlingException comes straight back to the limiter, which cuts its capacity and sends
//! the call again under a new permit. Every other retry (a dropped connection, a 500, a
//! timed-out attempt) stays with the SDK.

use crate::port::ErrorKind;
use aws_smithy_runtime_api::client::interceptors::context::InterceptorContext;
use aws_smithy_runtime_api::client::retries::classifiers::{
    ClassifyRetry, RetryAction, RetryClassifierPriority,
};

/// A retry classifier that forbids the SDK's retry of a throttled call (any classifier's
/// `RetryForbidden` wins).
#[derive(Debug, Default, Clone, Copy)]
pub struct ThrottlingLeftToTheLimiter;

impl ClassifyRetry for ThrottlingLeftToTheLimiter {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        let Some(response) = ctx.response() else {
            return RetryAction::NoActionIndicated;
        };
        let from_header = response
            .headers()
            .get("x-amzn-errortype")
            .map(|v| v.to_string());
        let from_body = response
            .body()
            .bytes()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
            .and_then(|v| v.get("__type").and_then(|t| t.as_str()).map(str::to_string));
        let throttled = [from_header, from_body]
            .into_iter()
            .flatten()
            .any(|t| is_throttling_code(&t));
        if throttled {
            RetryAction::RetryForbidden
        } else {
            RetryAction::NoActionIndicated
        }
    }

    fn name(&self) -> &'static str {
        "ThrottlingLeftToTheLimiter"
    }

    fn priority(&self) -> RetryClassifierPriority {
        RetryClassifierPriority::run_after(RetryClassifierPriority::transient_error_classifier())
    }
}

/// `ThrottlingException`, `com.amazonaws.kms#ThrottlingException` or
/// `ThrottlingException:http://...` (the forms the protocol allows), classified as every
/// other AWS error code is ([`ErrorKind::from_code`]).
fn is_throttling_code(raw: &str) -> bool {
    let code = raw.rsplit('#').next().unwrap_or(raw);
    let code = code.split(':').next().unwrap_or(code).trim();
    ErrorKind::from_code(code, None) == ErrorKind::Throttling
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_kms::config::retry::RetryConfig;
    use aws_sdk_kms::Client;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};
    use std::time::Duration;

    /// A client of the SDK's standard retry mode (3 attempts) whose first answer is
    /// `first`, then success; returns how many requests it sent and whether the call failed.
    async fn attempts_after(status: u16, first: &'static str, classifier: bool) -> (usize, bool) {
        let rule = mock!(Client::describe_key)
            .sequence()
            .http_status(status, Some(first.into()))
            .output(|| aws_sdk_kms::operation::describe_key::DescribeKeyOutput::builder().build())
            .build();
        let client = mock_client!(aws_sdk_kms, RuleMode::Sequential, [&rule], |conf| {
            let conf = conf.retry_config(
                RetryConfig::standard()
                    .with_max_attempts(3)
                    .with_initial_backoff(Duration::from_millis(1)),
            );
            if classifier {
                conf.retry_classifier(ThrottlingLeftToTheLimiter)
            } else {
                conf
            }
        });
        let failed = client.describe_key().key_id("k").send().await.is_err();
        (rule.num_calls(), failed)
    }

    const THROTTLED: &str = r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#;
    const INTERNAL: &str = r#"{"__type":"KMSInternalException","message":"try again"}"#;

    #[tokio::test]
    async fn a_throttled_call_comes_straight_back_instead_of_being_retried_by_the_sdk() {
        assert_eq!(attempts_after(400, THROTTLED, true).await, (1, true));
        // Without the classifier the SDK would have sent it again past the limiter.
        assert_eq!(attempts_after(400, THROTTLED, false).await, (2, false));
    }

    #[tokio::test]
    async fn other_retryable_errors_stay_with_the_sdk() {
        let (calls, failed) = attempts_after(500, INTERNAL, true).await;
        assert_eq!((calls, failed), (2, false));
    }

    #[test]
    fn every_form_of_a_throttling_code_is_recognised_and_nothing_else() {
        for code in [
            "ThrottlingException",
            "com.amazonaws.kms#ThrottlingException",
            "ThrottlingException:http://internal.amazon.com/coral/com.amazon.coral.availability/",
            "RequestLimitExceeded",
        ] {
            assert!(is_throttling_code(code), "{code}");
        }
        for code in [
            "KMSInternalException",
            "NotFoundException",
            "",
            "Throttlingly",
        ] {
            assert!(!is_throttling_code(code), "{code}");
        }
    }
}
