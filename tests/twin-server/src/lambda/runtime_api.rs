//! The Lambda Runtime API a sandbox's process polls (`AWS_LAMBDA_RUNTIME_API`).

use super::function::{InvokeError, LambdaFunction};
use crate::http::{full, json_response, read_body, HttpResult};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

impl LambdaFunction {
    /// The Runtime API: `GET .../invocation/next`, `POST .../invocation/{id}/response|error`,
    /// `POST .../init/error`.
    pub(super) async fn runtime_api(&self, sandbox: usize, req: Request<Incoming>) -> HttpResult {
        const BASE: &str = "/2018-06-01/runtime/";
        let path = req.uri().path().to_string();
        let Some(rest) = path.strip_prefix(BASE) else {
            return Ok(json_response(
                StatusCode::NOT_FOUND,
                &json!({"errorMessage": "not found"}),
            ));
        };
        let method = req.method().clone();
        if method == Method::GET && rest == "invocation/next" {
            return Ok(self.next_invocation(sandbox).await);
        }
        if method != Method::POST {
            return Ok(json_response(
                StatusCode::METHOD_NOT_ALLOWED,
                &json!({"errorMessage": "method not allowed"}),
            ));
        }
        let body = read_body(req).await?;
        if rest == "init/error" {
            let e = parse_error(&body);
            self.fail_all(InvokeError {
                error_type: format!("Runtime.InitError ({})", e.error_type),
                message: e.message,
            });
            return Ok(json_response(
                StatusCode::ACCEPTED,
                &json!({"status": "OK"}),
            ));
        }
        let parts: Vec<&str> = rest.split('/').collect();
        let (id, outcome) = match parts.as_slice() {
            ["invocation", id, "response"] => (*id, Ok(parse_json(&body))),
            ["invocation", id, "error"] => (*id, Err(parse_error(&body))),
            _ => {
                return Ok(json_response(
                    StatusCode::NOT_FOUND,
                    &json!({"errorMessage": "unknown runtime path"}),
                ))
            }
        };
        let pending = self.lock().inflight.remove(id);
        match pending {
            Some((_, p)) => {
                let _ = p.reply.send(outcome);
                Ok(json_response(
                    StatusCode::ACCEPTED,
                    &json!({"status": "OK"}),
                ))
            }
            None => Ok(json_response(
                StatusCode::BAD_REQUEST,
                &json!({"errorMessage": format!("invalid request id {id}"), "errorType": "InvalidRequestID"}),
            )),
        }
    }

    async fn next_invocation(&self, sandbox: usize) -> Response<http_body_util::Full<Bytes>> {
        loop {
            let notified = self.work.notified();
            {
                let mut s = self.lock();
                s.polled[sandbox] = true;
                if let Some(mut p) = s.queue.pop_front() {
                    let deadline_ms = epoch_ms() + self.spec.timeout.as_millis() as u64;
                    if let Some(taken) = p.taken.take() {
                        let _ = taken.send(());
                    }
                    let mut resp = Response::new(full(p.payload.clone()));
                    let h = resp.headers_mut();
                    let hv = |s: &str| http::HeaderValue::from_str(s).expect("ASCII header");
                    h.insert("content-type", hv("application/json"));
                    h.insert("lambda-runtime-aws-request-id", hv(&p.id));
                    h.insert("lambda-runtime-deadline-ms", hv(&deadline_ms.to_string()));
                    h.insert("lambda-runtime-invoked-function-arn", hv(&self.arn()));
                    h.insert(
                        "lambda-runtime-trace-id",
                        hv(&format!(
                            "Root=1-{:08x}-{:024x};Parent={:016x};Sampled=0",
                            epoch_ms() / 1000,
                            self.counter.load(Ordering::Relaxed),
                            epoch_ms()
                        )),
                    );
                    s.inflight.insert(p.id.clone(), (sandbox, p));
                    return resp;
                }
            }
            notified.await;
        }
    }
}

fn parse_json(body: &Bytes) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

fn parse_error(body: &Bytes) -> InvokeError {
    let v = parse_json(body);
    InvokeError {
        error_type: v
            .get("errorType")
            .and_then(Value::as_str)
            .unwrap_or("Unhandled")
            .to_string(),
        message: v
            .get("errorMessage")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| v.to_string()),
    }
}
