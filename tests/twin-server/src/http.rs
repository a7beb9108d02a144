//! HTTP plumbing on hyper 1: one task per connection, HTTP/1.1 with keep-alive (what the AWS
//! SDK and the Lambda runtime client speak to a plain `http://` endpoint).

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::future::Future;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A handler's answer. An `Err` closes the connection without a response, which is how a
/// Region that does not answer is imitated.
pub type HttpResult = Result<Response<Full<Bytes>>, std::io::Error>;

pub fn full(b: impl Into<Bytes>) -> Full<Bytes> {
    Full::new(b.into())
}

pub fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(full(body.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("application/json"),
    );
    r
}

pub async fn read_body(req: Request<Incoming>) -> Result<Bytes, std::io::Error> {
    req.into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .map_err(|e| std::io::Error::other(e.to_string()))
}

/// Accepts connections on `listener` until the returned task is aborted or the runtime ends.
pub fn spawn_server<H, F>(listener: TcpListener, handler: H) -> JoinHandle<()>
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = HttpResult> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let handler = handler.clone();
            tokio::spawn(async move {
                let svc = service_fn(handler);
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    })
}
