//! The server behind the loopback endpoint: what a request may reach, and the routing of
//! each request by its path and `X-Amz-Target` to KMS, the tagging API, EventBridge, Lambda
//! or the debug endpoints.

use crate::bus::Bus;
use crate::http::{json_response, read_body, HttpResult};
use crate::kms_api::{credential_scope, ApiError, KmsApi};
use crate::lambda::LambdaFunction;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub(super) struct Server {
    pub(super) api: KmsApi,
    pub(super) bus: Arc<Bus>,
    pub(super) functions: BTreeMap<String, Arc<LambdaFunction>>,
    /// Access key id -> the IAM ARN its requests act as.
    pub(super) identities: BTreeMap<String, String>,
    /// Entries received by PutEvents, with bus, source and time.
    pub(super) audit_log: Mutex<Vec<Value>>,
    /// Numbers PutEvents' event ids.
    pub(super) counter: AtomicU64,
    pub(super) retry_delay: Duration,
}

/// An AWS JSON 1.1 error answer.
pub(super) fn kms_error(status: u16, code: &str, message: &str) -> Response<Full<Bytes>> {
    let mut r = json_response(
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        &json!({"__type": code, "message": message}),
    );
    r.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    r
}

/// An AWS JSON 1.1 answer.
pub(super) fn amz_json(body: &Value) -> Response<Full<Bytes>> {
    let mut r = json_response(StatusCode::OK, body);
    r.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    r
}

fn header<'a>(req: &'a Request<Incoming>, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

impl Server {
    pub(super) fn bus_retry_delay(&self) -> Duration {
        self.retry_delay
    }

    pub(super) async fn handle(self: Arc<Self>, req: Request<Incoming>) -> HttpResult {
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or("").to_string();
        let method = req.method().clone();
        if let Some(rest) = path.strip_prefix("/_twin/") {
            let rest = rest.to_string();
            let body = read_body(req).await?;
            return Ok(self.debug(&method, &rest, &query, &body).await);
        }
        if let Some(rest) = path.strip_prefix("/2015-03-31/functions/") {
            if let Some(name) = rest.strip_suffix("/invocations") {
                let name = name.rsplit(':').next().unwrap_or(name).to_string();
                let kind = header(&req, "x-amz-invocation-type")
                    .unwrap_or("RequestResponse")
                    .to_string();
                let body = read_body(req).await?;
                return Ok(self.lambda_invoke(&name, &kind, &body).await);
            }
        }
        if method != Method::POST || path != "/" {
            return Ok(kms_error(
                404,
                "UnknownOperationException",
                &format!("{method} {path} is not served here"),
            ));
        }
        let target = header(&req, "x-amz-target").unwrap_or("").to_string();
        let scope = header(&req, "authorization").and_then(credential_scope);
        let body = read_body(req).await?;
        let Some((akid, region, _service)) = scope else {
            return Ok(kms_error(
                400,
                "MissingAuthenticationTokenException",
                "Missing Authentication Token: sign requests with SigV4 (any access key)",
            ));
        };
        let parsed: Value = match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(_) if body.is_empty() => json!({}),
            Err(e) => {
                return Ok(kms_error(
                    400,
                    "SerializationException",
                    &format!("the body is not JSON: {e}"),
                ))
            }
        };
        let caller = self
            .identities
            .get(&akid)
            .cloned()
            // Any other key is a principal the account does not know: no identity policy.
            .unwrap_or_else(|| format!("arn:aws:iam::{}:user/{akid}", twin::DEFAULT_ACCOUNT));
        if let Some(op) = target.strip_prefix("TrentService.") {
            let result = self.api.call(&caller, &region, op, &parsed).await;
            self.bus.poke();
            return match result {
                Ok(v) => Ok(amz_json(&v)),
                Err(ApiError::Aws {
                    status,
                    code,
                    message,
                }) => Ok(kms_error(status, &code, &message)),
                Err(ApiError::NoAnswer) => Err(std::io::Error::other(format!(
                    "kms.{region} does not answer"
                ))),
            };
        }
        if let Some(op) = target.strip_prefix("ResourceGroupsTaggingAPI_20170126.") {
            if op != "GetResources" {
                return Ok(kms_error(
                    400,
                    "UnknownOperationException",
                    &format!("The local tagging API implements GetResources only, not {op}"),
                ));
            }
            return match self.api.get_resources(&caller, &region, &parsed).await {
                Ok(v) => Ok(amz_json(&v)),
                Err(ApiError::Aws {
                    status,
                    code,
                    message,
                }) => Ok(kms_error(status, &code, &message)),
                Err(ApiError::NoAnswer) => Err(std::io::Error::other(format!(
                    "tagging.{region} does not answer"
                ))),
            };
        }
        if let Some(op) = target.strip_prefix("AWSEvents.") {
            if op != "PutEvents" {
                return Ok(kms_error(
                    400,
                    "UnknownOperationException",
                    &format!("The local EventBridge implements PutEvents only, not {op}"),
                ));
            }
            return Ok(self.put_events(&region, &parsed).await);
        }
        Ok(kms_error(
            400,
            "UnknownOperationException",
            &format!("unknown X-Amz-Target '{target}'"),
        ))
    }
}
