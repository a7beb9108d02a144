//! The debug endpoints under `/_twin/`: what happened (the pipeline's rules, trail, audit
//! events, invocations, dead letters), waiting until it is quiet, and the twin's knobs
//! (faults, outages, stalls, latency, the page cap).

use super::server::Server;
use crate::bus::{Delivery, ForwardRegions};
use crate::http::json_response;
use bytes::Bytes;
use http::{Method, Response, StatusCode};
use http_body_util::Full;
use kms_replicator::op::Op;
use serde_json::{json, Value};
use std::time::Duration;

impl Server {
    pub(super) async fn debug(
        &self,
        method: &Method,
        path: &str,
        query: &str,
        body: &Bytes,
    ) -> Response<Full<Bytes>> {
        let input: Value = serde_json::from_slice(body).unwrap_or(json!({}));
        let ok = |v: Value| json_response(StatusCode::OK, &v);
        // A knob's answer: `{"ok": true}`, or what a valid request looks like.
        let set = |r: Result<(), String>| match r {
            Ok(()) => ok(json!({"ok": true})),
            Err(m) => json_response(StatusCode::BAD_REQUEST, &json!({"error": m})),
        };
        match (method.as_str(), path) {
            ("GET", "health") => ok(self.health()),
            ("GET", "trail") => ok(Value::Array(
                self.bus.history().iter().map(Delivery::to_json).collect(),
            )),
            ("GET", "audit") => ok(Value::Array(
                self.audit_log
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone(),
            )),
            ("GET", "invocations") => ok(Value::Array(
                self.functions
                    .values()
                    .flat_map(|f| f.records())
                    .map(|r| r.to_json())
                    .collect(),
            )),
            ("GET", "dead-letters") => ok(Value::Array(
                self.functions
                    .values()
                    .flat_map(|f| f.dead_letters())
                    .collect(),
            )),
            ("POST", "settle") => {
                let ms = input
                    .get("timeoutMs")
                    .and_then(Value::as_u64)
                    .or_else(|| {
                        query
                            .strip_prefix("timeout_ms=")
                            .and_then(|v| v.parse().ok())
                    })
                    .unwrap_or(30_000);
                match self.bus.settle(Duration::from_millis(ms)).await {
                    Ok(d) => ok(json!({"settledInMs": d.as_millis() as u64})),
                    Err(e) => json_response(StatusCode::GATEWAY_TIMEOUT, &json!({"error": e})),
                }
            }
            ("POST", "fault") => set(self.inject_fault(&input)),
            ("DELETE", "fault") => {
                self.api.twin().clear_faults();
                ok(json!({"ok": true}))
            }
            ("POST", "region") => set(self.set_region(&input)),
            ("POST", "stall") => set(self.set_stall(&input)),
            ("DELETE", "stall") => {
                self.api.twin().clear_stalls();
                ok(json!({"ok": true}))
            }
            ("POST", "latency") => {
                let ms = input.get("ms").and_then(Value::as_u64).unwrap_or(0);
                self.api.twin().set_latency(Duration::from_millis(ms));
                ok(json!({"ok": true}))
            }
            ("POST", "page-cap") => {
                let n = input.get("n").and_then(Value::as_u64).unwrap_or(1000) as usize;
                self.api.set_page_cap(n);
                ok(json!({"ok": true}))
            }
            _ => json_response(
                StatusCode::NOT_FOUND,
                &json!({"error": format!("{method} /_twin/{path} is not a debug endpoint"),
                        "endpoints": ["GET health", "GET trail", "GET audit", "GET invocations",
                                      "GET dead-letters", "POST settle", "POST fault", "POST region",
                                      "POST stall", "DELETE stall", "POST latency",
                                      "POST page-cap"]}),
            ),
        }
    }

    /// The functions, the rules that route to them, and the forwarder's rules and Regions.
    fn health(&self) -> Value {
        json!({
            "ok": true,
            "functions": self.functions.keys().collect::<Vec<_>>(),
            "rules": self.bus.rules().iter().map(|r| json!({
                "name": r.name, "function": r.binary, "pattern": r.pattern.as_json(),
                "maximumRetryAttempts": r.max_retry_attempts,
            })).collect::<Vec<_>>(),
            "homeRegion": self.bus.home_region(),
            "forwarder": {
                "rules": self.bus.forwarding().rules.iter().map(|r| json!({
                    "name": r.name, "pattern": r.pattern.as_json(),
                })).collect::<Vec<_>>(),
                "regions": match &self.bus.forwarding().regions {
                    ForwardRegions::AllOthers => json!("every Region but the home Region"),
                    ForwardRegions::Only(set) => json!(set),
                },
            },
        })
    }

    fn inject_fault(&self, input: &Value) -> Result<(), String> {
        let Some(code) = input.get("code").and_then(Value::as_str) else {
            return Err(
                "{\"code\": \"ThrottlingException\", \"region\"?, \"operation\"?, \"times\"?}"
                    .into(),
            );
        };
        let op = match input.get("operation").and_then(Value::as_str) {
            None => None,
            Some(name) => match Op::parse(name) {
                Some(op) => Some(op),
                None => return Err(format!("unknown operation {name:?}")),
            },
        };
        self.api.twin().inject_fault(
            input.get("region").and_then(Value::as_str),
            op,
            code,
            input.get("times").and_then(Value::as_u64).unwrap_or(1) as usize,
        );
        Ok(())
    }

    /// A Region's settings: `down` (its endpoint does not answer; the default when nothing
    /// else is given), `enabled` (false: an opt-in Region the account has not enabled) and
    /// `unavailableKeySpec` (a key spec or family, `HMAC`, that KMS there does not offer).
    fn set_region(&self, input: &Value) -> Result<(), String> {
        let Some(region) = input.get("region").and_then(Value::as_str) else {
            return Err(
                "{\"region\": \"eu-west-1\", \"down\": true?, \"enabled\": false?, \
                        \"unavailableKeySpec\": \"HMAC\"?}"
                    .into(),
            );
        };
        let twin = self.api.twin();
        let enabled = input.get("enabled").and_then(Value::as_bool);
        let spec = input.get("unavailableKeySpec").and_then(Value::as_str);
        if let Some(enabled) = enabled {
            twin.set_region_enabled(region, enabled);
        }
        if let Some(spec) = spec {
            twin.set_key_spec_unavailable(region, spec);
        }
        let down = input.get("down").and_then(Value::as_bool);
        if down.is_some() || (enabled.is_none() && spec.is_none()) {
            twin.set_region_down(region, down.unwrap_or(true));
        }
        Ok(())
    }

    /// A Regional endpoint that accepts requests and stalls: answered after `delaySeconds`,
    /// or never (null or absent). `"stalled": false` ends the stall set for that Region and
    /// operation; `DELETE /_twin/stall` ends them all.
    fn set_stall(&self, input: &Value) -> Result<(), String> {
        let usage = "{\"region\": \"eu-west-1\"?, \"op\": \"DescribeKey\"?, \
                     \"delaySeconds\": 5?, \"stalled\": true?}";
        let text = |k: &str| match input.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(v)) => Ok(Some(v.as_str())),
            Some(_) => Err(()),
        };
        let (Ok(region), Ok(op), Ok(operation)) = (text("region"), text("op"), text("operation"))
        else {
            return Err(usage.into());
        };
        let op = match op.or(operation).map(|name| Op::parse(name).ok_or(name)) {
            None => None,
            Some(Ok(op)) => Some(op),
            Some(Err(name)) => return Err(format!("unknown operation {name:?}")),
        };
        let delay = match input.get("delaySeconds") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_f64() {
                Some(s) if s.is_finite() && s >= 0.0 => Some(Duration::from_secs_f64(s)),
                _ => return Err(usage.into()),
            },
        };
        let twin = self.api.twin();
        if input
            .get("stalled")
            .and_then(Value::as_bool)
            .unwrap_or(true)
        {
            twin.set_stall(region, op, delay);
        } else {
            twin.clear_stall(region, op);
        }
        Ok(())
    }
}
