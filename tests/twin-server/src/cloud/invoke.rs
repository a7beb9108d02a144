//! Lambda's Invoke API on the local endpoint (`aws lambda invoke --endpoint-url ...`).

use super::server::Server;
use crate::http::{full, json_response};
use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use serde_json::{json, Value};

impl Server {
    /// Lambda's Invoke API (`aws lambda invoke --endpoint-url ...`).
    pub(super) async fn lambda_invoke(
        &self,
        name: &str,
        kind: &str,
        body: &Bytes,
    ) -> Response<Full<Bytes>> {
        let Some(f) = self.functions.get(name) else {
            let mut r = json_response(
                StatusCode::NOT_FOUND,
                &json!({"Type": "User", "message": format!("Function not found: arn:aws:lambda:us-east-1:{}:function:{name}", twin::DEFAULT_ACCOUNT)}),
            );
            r.headers_mut().insert(
                "x-amzn-errortype",
                http::HeaderValue::from_static("ResourceNotFoundException"),
            );
            return r;
        };
        let payload: Value = if body.is_empty() {
            json!({})
        } else {
            match serde_json::from_slice(body) {
                Ok(v) => v,
                Err(_) => {
                    let mut r = json_response(
                        StatusCode::BAD_REQUEST,
                        &json!({"Type": "User", "message": "Could not parse request body into json"}),
                    );
                    r.headers_mut().insert(
                        "x-amzn-errortype",
                        http::HeaderValue::from_static("InvalidRequestContentException"),
                    );
                    return r;
                }
            }
        };
        match kind {
            "Event" => {
                f.invoke_async(
                    payload,
                    "asynchronous invocation".into(),
                    self.bus_retry_delay(),
                );
                let mut r = Response::new(full(Bytes::new()));
                *r.status_mut() = StatusCode::ACCEPTED;
                r
            }
            "DryRun" => {
                let mut r = Response::new(full(Bytes::new()));
                *r.status_mut() = StatusCode::NO_CONTENT;
                r
            }
            _ => match f.invoke(&payload).await {
                Ok(v) => {
                    let mut r = json_response(StatusCode::OK, &v);
                    r.headers_mut().insert(
                        "x-amz-executed-version",
                        http::HeaderValue::from_static("$LATEST"),
                    );
                    r
                }
                Err(e) => {
                    let mut r = json_response(
                        StatusCode::OK,
                        &json!({"errorType": e.error_type, "errorMessage": e.message}),
                    );
                    r.headers_mut().insert(
                        "x-amz-function-error",
                        http::HeaderValue::from_static("Unhandled"),
                    );
                    r
                }
            },
        }
    }
}
