//! How long any one AWS call may take: the SDK's operation, attempt and connect timeouts, read
//! once at cold start.
//!
//! On the worst day a Regional KMS endpoint accepts connections and then stalls. Without
//! these bounds the SDK waits for an answer until Lambda stops the function, so one impaired
//! Region would take every other Region of the invocation down with it. With them, a stalled
//! call ends in `SdkError::TimeoutError`, which the adapters map to
//! [`ErrorKind::Unreachable`](crate::port::ErrorKind::Unreachable) for that Region only.

use crate::config::{value_of, ConfigError};
use aws_config::timeout::TimeoutConfig;
use std::time::Duration;

/// The operation timeout: one call, all of its attempts and the pauses between them.
pub const CALL_TIMEOUT_VAR: &str = "AWS_CALL_TIMEOUT_SECONDS";
/// The attempt timeout: one HTTP request and its answer.
pub const ATTEMPT_TIMEOUT_VAR: &str = "AWS_ATTEMPT_TIMEOUT_SECONDS";
/// The connect timeout: the TCP (and TLS) handshake of a new connection.
pub const CONNECT_TIMEOUT_VAR: &str = "AWS_CONNECT_TIMEOUT_SECONDS";

/// The bounds of every AWS call a function makes.
///
/// The defaults, and why:
///
/// - **attempt 3 s**: a healthy KMS or Tagging API endpoint answers the calls the replicator
///   makes (DescribeKey, GetKeyPolicy, PutKeyPolicy, ReplicateKey, ...) in tens of
///   milliseconds; ReplicateKey and UpdatePrimaryRegion return at once and finish in the
///   background. Three seconds is two orders of magnitude above that, so a slow but working
///   endpoint is never cut off, and a stalled one costs one attempt of 3 s.
/// - **operation 10 s**: the SDK makes up to 3 attempts (standard retry mode) with
///   exponential backoff between them (up to about 1 s, then 2 s): 3 + 1 + 3 + 2 + 3 = 12 s
///   in the worst case. Ten seconds keeps the retries that matter (a throttled or dropped
///   first attempt) and caps the worst case, so a stalled Region costs a replicate
///   invocation (Lambda timeout 60 s) at most 10 s per call and leaves time for the healthy
///   Regions and the audit event; the failover (300 s) and reconcile (900 s) functions have
///   more room still.
/// - **connect 2 s**: a handshake with a Regional endpoint takes milliseconds even across
///   continents; 2 s allows one lost SYN (Linux retransmits after 1 s) and fails a Region
///   that accepts no connections well within one attempt.
///
/// Each is overridable by its variable ([`CALL_TIMEOUT_VAR`], [`ATTEMPT_TIMEOUT_VAR`],
/// [`CONNECT_TIMEOUT_VAR`]) in seconds, fractions allowed (`0.5`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallTimeouts {
    pub operation: Duration,
    pub attempt: Duration,
    pub connect: Duration,
}

impl Default for CallTimeouts {
    fn default() -> Self {
        CallTimeouts {
            operation: Duration::from_secs(10),
            attempt: Duration::from_secs(3),
            connect: Duration::from_secs(2),
        }
    }
}

/// No call may outlast the longest Lambda timeout.
const MAX_SECONDS: f64 = 900.0;

impl CallTimeouts {
    pub fn from_env() -> Result<CallTimeouts, ConfigError> {
        CallTimeouts::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the variables through `get`, so that tests need not touch the process environment.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<CallTimeouts, ConfigError> {
        let defaults = CallTimeouts::default();
        let read = |var: &'static str, default: Duration| -> Result<Duration, ConfigError> {
            let Some(raw) = value_of(&get, var) else {
                return Ok(default);
            };
            match raw.parse::<f64>() {
                Ok(s) if s.is_finite() && s > 0.0 && s <= MAX_SECONDS => {
                    Ok(Duration::from_secs_f64(s))
                }
                _ => Err(ConfigError::invalid(
                    var,
                    raw,
                    format!(
                        "a number of seconds greater than 0 and at most {MAX_SECONDS} \
                         (fractions allowed, e.g. 2.5)"
                    ),
                )),
            }
        };
        let t = CallTimeouts {
            operation: read(CALL_TIMEOUT_VAR, defaults.operation)?,
            attempt: read(ATTEMPT_TIMEOUT_VAR, defaults.attempt)?,
            connect: read(CONNECT_TIMEOUT_VAR, defaults.connect)?,
        };
        if t.attempt > t.operation {
            // Only the operation timeout would ever fire: most likely the operation timeout
            // was lowered without the attempt timeout. Say so rather than guess.
            return Err(ConfigError::invalid(
                ATTEMPT_TIMEOUT_VAR,
                seconds(t.attempt),
                format!(
                    "no longer than {CALL_TIMEOUT_VAR} ({}), since one attempt cannot take \
                     longer than the whole call (lower it together with {CALL_TIMEOUT_VAR})",
                    seconds(t.operation)
                ),
            ));
        }
        Ok(t)
    }

    /// The SDK's timeout configuration with these bounds.
    pub fn sdk(&self) -> TimeoutConfig {
        TimeoutConfig::builder()
            .operation_timeout(self.operation)
            .operation_attempt_timeout(self.attempt)
            .connect_timeout(self.connect)
            .build()
    }
}

/// A duration as a person reads it in a message: `10 s`, `2.5 s`, `0.25 s`.
pub fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} s", (s * 1000.0).round() / 1000.0)
    }
}

/// An error and its sources, each as it displays itself, joined by `: ` (no Debug dump).
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.last().is_some_and(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(vars: &[(&str, &str)]) -> Result<CallTimeouts, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        CallTimeouts::from_lookup(|k| vars.get(k).cloned())
    }

    #[test]
    fn the_defaults_are_attempt_3_s_operation_10_s_connect_2_s() {
        let t = parse(&[]).unwrap();
        assert_eq!(t, CallTimeouts::default());
        assert_eq!(t.attempt, Duration::from_secs(3));
        assert_eq!(t.operation, Duration::from_secs(10));
        assert_eq!(t.connect, Duration::from_secs(2));
        // Three attempts fit in one call: the SDK's default retries are kept.
        assert!(t.attempt * 3 <= t.operation);
    }

    #[test]
    fn each_variable_overrides_its_timeout_and_fractions_are_allowed() {
        let t = parse(&[
            (CALL_TIMEOUT_VAR, "2"),
            (ATTEMPT_TIMEOUT_VAR, " 0.5 "),
            (CONNECT_TIMEOUT_VAR, "1.25"),
        ])
        .unwrap();
        assert_eq!(t.operation, Duration::from_secs(2));
        assert_eq!(t.attempt, Duration::from_millis(500));
        assert_eq!(t.connect, Duration::from_millis(1250));
        let sdk = t.sdk();
        assert_eq!(sdk.operation_timeout(), Some(Duration::from_secs(2)));
        assert_eq!(
            sdk.operation_attempt_timeout(),
            Some(Duration::from_millis(500))
        );
        assert_eq!(sdk.connect_timeout(), Some(Duration::from_millis(1250)));
    }

    #[test]
    fn an_empty_variable_means_the_default() {
        assert_eq!(
            parse(&[(CALL_TIMEOUT_VAR, ""), (ATTEMPT_TIMEOUT_VAR, "  ")]).unwrap(),
            CallTimeouts::default()
        );
    }

    #[test]
    fn a_malformed_value_is_refused_naming_the_variable_and_the_value() {
        for bad in ["ten", "0", "-1", "NaN", "inf", "10s", "901"] {
            let e = parse(&[(CALL_TIMEOUT_VAR, bad)]).unwrap_err();
            assert!(e.to_string().contains(CALL_TIMEOUT_VAR), "{e}");
            assert!(e.to_string().contains(&format!("'{bad}'")), "{e}");
        }
        let e = parse(&[(CONNECT_TIMEOUT_VAR, "2 s")]).unwrap_err();
        assert!(e.to_string().contains(CONNECT_TIMEOUT_VAR), "{e}");
    }

    #[test]
    fn an_attempt_longer_than_the_call_is_refused() {
        // Lowering only the call timeout below the default attempt timeout.
        let e = parse(&[(CALL_TIMEOUT_VAR, "2")]).unwrap_err();
        let e = e.to_string();
        assert!(e.contains(ATTEMPT_TIMEOUT_VAR), "{e}");
        assert!(e.contains("'3 s'") && e.contains("(2 s)"), "{e}");
        assert!(parse(&[(CALL_TIMEOUT_VAR, "2"), (ATTEMPT_TIMEOUT_VAR, "2")]).is_ok());
    }

    #[test]
    fn durations_read_as_seconds() {
        assert_eq!(seconds(Duration::from_secs(10)), "10 s");
        assert_eq!(seconds(Duration::from_millis(2500)), "2.5 s");
        assert_eq!(seconds(Duration::from_millis(250)), "0.25 s");
    }
}
