//! EventBridge `PutEvents`: where the functions publish their audit events.

use super::server::{amz_json, kms_error, Server};
use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use kms_replicator::port::{AuditEvent, AuditSink};
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::time::SystemTime;

impl Server {
    /// EventBridge PutEvents: each entry is checked as EventBridge checks it and recorded
    /// through the twin's audit sink.
    pub(super) async fn put_events(&self, region: &str, body: &Value) -> Response<Full<Bytes>> {
        let Some(entries) = body.get("Entries").and_then(Value::as_array) else {
            return kms_error(400, "ValidationException", "Entries is required");
        };
        if entries.is_empty() || entries.len() > 10 {
            return kms_error(
                400,
                "ValidationException",
                "1 validation error detected: Value at 'entries' failed to satisfy constraint: Member must have length less than or equal to 10",
            );
        }
        let mut results = Vec::new();
        let mut accepted = Vec::new();
        let mut records = Vec::new();
        let mut failed = 0;
        for e in entries {
            let source = e.get("Source").and_then(Value::as_str).unwrap_or("");
            let detail_type = e.get("DetailType").and_then(Value::as_str).unwrap_or("");
            let detail = e
                .get("Detail")
                .and_then(Value::as_str)
                .and_then(|d| serde_json::from_str::<Value>(d).ok())
                .filter(Value::is_object);
            let problem = if source.is_empty() {
                Some((
                    "InvalidArgument",
                    "Parameter Source is not valid. Reason: Source is a required argument.",
                ))
            } else if detail_type.is_empty() {
                Some((
                    "InvalidArgument",
                    "Parameter DetailType is not valid. Reason: DetailType is a required argument.",
                ))
            } else if detail.is_none() {
                Some(("MalformedDetail", "Detail is malformed."))
            } else {
                None
            };
            if let Some((code, message)) = problem {
                failed += 1;
                results.push(json!({"ErrorCode": code, "ErrorMessage": message}));
                continue;
            }
            let n = self.counter.fetch_add(1, Ordering::Relaxed) + 1;
            let id = format!("{n:08x}-3333-4000-8000-{n:012x}");
            let detail = detail.unwrap_or_default();
            accepted.push(AuditEvent {
                detail_type: detail_type.to_string(),
                detail: detail.clone(),
            });
            records.push(json!({
                "id": id,
                "time": humantime_now(),
                "region": region,
                "eventBusName": e.get("EventBusName").and_then(Value::as_str).unwrap_or("default"),
                "source": source,
                "detail-type": detail_type,
                "detail": detail,
            }));
            results.push(json!({"EventId": id}));
        }
        if !accepted.is_empty() {
            if let Err(e) = self.api.twin().publish(&accepted).await {
                return kms_error(500, "InternalException", &e.to_string());
            }
            self.audit_log
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(records);
        }
        amz_json(&json!({"FailedEntryCount": failed, "Entries": results}))
    }
}

fn humantime_now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}
