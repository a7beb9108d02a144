//! CloudWatch metrics in the Embedded Metric Format: one JSON line on stdout, which the Lambda
//! log agent turns into metrics with no PutMetricData call and no extra permission.
//!
//! The shape is the documented one: a root `_aws` member with `Timestamp` (ms since the epoch)
//! and `CloudWatchMetrics` (namespace, dimension sets, metric names and units), and each
//! dimension and metric value as a root member. The namespace is the configuration's
//! ([`Config::metrics_namespace`](crate::Config::metrics_namespace)).
//!
//! Lambda's log-level filtering treats a JSON line without a `level` as INFO, so with
//! `LogLevel` WARN or ERROR the metrics would be dropped before CloudWatch sees them. Each
//! record is therefore stamped with the function's own application log level
//! (`AWS_LAMBDA_LOG_LEVEL`), which always passes that filter.

use serde_json::{json, Map, Value};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
        }
    }
}

/// One EMF record: a namespace, one set of dimensions, and the metrics' values.
#[derive(Debug, Clone)]
pub struct MetricSet {
    namespace: String,
    dimensions: Vec<(String, String)>,
    metrics: Vec<(String, f64, Unit)>,
    properties: Vec<(String, Value)>,
}

impl MetricSet {
    pub fn new(namespace: &str) -> MetricSet {
        MetricSet {
            namespace: namespace.to_string(),
            dimensions: Vec::new(),
            metrics: Vec::new(),
            properties: Vec::new(),
        }
    }

    pub fn dimension(mut self, name: &str, value: &str) -> MetricSet {
        self.dimensions.push((name.to_string(), value.to_string()));
        self
    }

    pub fn count(mut self, name: &str, value: usize) -> MetricSet {
        self.metrics
            .push((name.to_string(), value as f64, Unit::Count));
        self
    }

    pub fn millis(mut self, name: &str, value: u128) -> MetricSet {
        self.metrics
            .push((name.to_string(), value as f64, Unit::Milliseconds));
        self
    }

    /// A member that is logged with the metrics but is not a metric (searchable in Logs
    /// Insights).
    pub fn property(mut self, name: &str, value: impl Into<Value>) -> MetricSet {
        self.properties.push((name.to_string(), value.into()));
        self
    }

    /// The EMF document, stamped with `timestamp_ms`.
    pub fn to_json(&self, timestamp_ms: u128) -> Value {
        let mut root = Map::new();
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms as u64,
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": [self.dimensions.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>()],
                    "Metrics": self.metrics.iter()
                        .map(|(n, _, u)| json!({"Name": n, "Unit": u.as_str()}))
                        .collect::<Vec<_>>(),
                }],
            }),
        );
        for (name, value) in &self.dimensions {
            root.insert(name.clone(), json!(value));
        }
        for (name, value) in &self.properties {
            root.insert(name.clone(), value.clone());
        }
        for (name, value, _) in &self.metrics {
            root.insert(name.clone(), json!(value));
        }
        Value::Object(root)
    }

    /// Prints the record as one line on stdout, where Lambda's log agent picks it up.
    pub fn emit(&self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        let level = std::env::var("AWS_LAMBDA_LOG_LEVEL").ok();
        println!("{}", self.to_json_at_level(now, level.as_deref()));
    }

    /// The EMF document with a `level` member, so that log-level filtering keeps it.
    pub fn to_json_at_level(&self, timestamp_ms: u128, level: Option<&str>) -> Value {
        let mut doc = self.to_json(timestamp_ms);
        if let (Some(level), Some(root)) = (level.filter(|l| !l.is_empty()), doc.as_object_mut()) {
            root.insert("level".into(), json!(level.to_ascii_uppercase()));
        }
        doc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_carries_the_functions_log_level_so_that_filtering_keeps_it() {
        let m = MetricSet::new("KmsReplicator").count("Writes", 1);
        assert_eq!(m.to_json_at_level(1, Some("warn"))["level"], "WARN");
        assert!(m.to_json_at_level(1, None).get("level").is_none());
    }

    #[test]
    fn the_record_has_the_documented_embedded_metric_format_shape() {
        let doc = MetricSet::new("KmsReplicator")
            .dimension("Function", "reconcile")
            .count("KeysScanned", 12)
            .millis("SweepDuration", 1500)
            .property("complete", true)
            .to_json(1_700_000_000_000);
        assert_eq!(
            doc,
            json!({
                "_aws": {
                    "Timestamp": 1_700_000_000_000u64,
                    "CloudWatchMetrics": [{
                        "Namespace": "KmsReplicator",
                        "Dimensions": [["Function"]],
                        "Metrics": [
                            {"Name": "KeysScanned", "Unit": "Count"},
                            {"Name": "SweepDuration", "Unit": "Milliseconds"}
                        ]
                    }]
                },
                "Function": "reconcile",
                "complete": true,
                "KeysScanned": 12.0,
                "SweepDuration": 1500.0
            })
        );
    }
}
