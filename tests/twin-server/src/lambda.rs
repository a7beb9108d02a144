//! A local Lambda: the Runtime API a function binary polls (`AWS_LAMBDA_RUNTIME_API`), the
//! process it runs in, and the two ways Lambda invokes it.
//!
//! - Synchronous (`RequestResponse`): the caller gets the function's result or its error.
//! - Asynchronous (`Event`, how EventBridge invokes a function): on a function error Lambda
//!   retries up to `MaximumRetryAttempts` times, then sends the event to the on-failure
//!   destination; here that is the dead-letter list. Lambda waits about one and then two
//!   minutes between attempts; the local delay is short and configurable.
//!
//! Each of the function's `concurrency` sandboxes is one process with its own Runtime API
//! endpoint, all taking invocations from one queue, as Lambda scales a function out. A process
//! is started when the function is created and again, when there is work, after it exits; an
//! invocation in flight when its process exits fails with `Runtime.ExitError`.

use crate::http::{full, json_response, read_body, spawn_server, HttpResult};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::process::Command;
use tokio::sync::{oneshot, watch, Notify};

pub const ACCOUNT: &str = twin::DEFAULT_ACCOUNT;
pub const LAMBDA_REGION: &str = "us-east-1";

/// What Lambda puts in a function's environment, for a function named `function` that
/// reaches its Runtime API at `api`: only that (and `PATH`), so nothing on this machine
/// (profiles, real credentials, proxies) changes what the function does. Start the process
/// with an empty environment and these.
pub fn runtime_env(function: &str, api: &str, log_stream: &str) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        ("AWS_LAMBDA_RUNTIME_API", api),
        ("AWS_LAMBDA_FUNCTION_NAME", function),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            &format!("/aws/lambda/{function}"),
        ),
        ("AWS_LAMBDA_LOG_STREAM_NAME", log_stream),
        ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
        ("AWS_LAMBDA_LOG_LEVEL", "INFO"),
        ("AWS_REGION", LAMBDA_REGION),
        ("AWS_DEFAULT_REGION", LAMBDA_REGION),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("TZ", ":UTC"),
        ("AWS_CONFIG_FILE", "/nonexistent/kms-twin/config"),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/kms-twin/credentials",
        ),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    if let Ok(path) = std::env::var("PATH") {
        env.push(("PATH".into(), path));
    }
    env
}

/// What to run and how.
#[derive(Debug, Clone)]
pub struct FunctionSpec {
    pub name: String,
    pub binary: PathBuf,
    /// The function's environment, besides what Lambda itself sets.
    pub env: Vec<(String, String)>,
    pub timeout: Duration,
    /// Retries of a failed asynchronous invocation.
    pub max_retry_attempts: u32,
    /// Sandboxes (processes) serving invocations at the same time; at least 1.
    pub concurrency: usize,
    /// Where the process's stdout and stderr go (its "CloudWatch log group").
    pub log_file: PathBuf,
}

/// A failed invocation, as Lambda reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvokeError {
    pub error_type: String,
    pub message: String,
}

impl std::fmt::Display for InvokeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error_type, self.message)
    }
}

impl std::error::Error for InvokeError {}

/// One attempt of one invocation, for inspection.
#[derive(Debug, Clone)]
pub struct InvocationRecord {
    pub function: String,
    pub request_id: String,
    /// `RequestResponse` or `Event`.
    pub kind: &'static str,
    /// 0 for the first attempt.
    pub attempt: u32,
    /// What caused it, e.g. `TagResource us-east-1 by .../user/Alice`.
    pub trigger: String,
    pub duration: Duration,
    pub result: Result<Value, InvokeError>,
}

impl InvocationRecord {
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "function": self.function,
            "requestId": self.request_id,
            "invocationType": self.kind,
            "attempt": self.attempt,
            "trigger": self.trigger,
            "durationMs": self.duration.as_millis() as u64,
        });
        match &self.result {
            Ok(r) => v["response"] = r.clone(),
            Err(e) => {
                v["errorType"] = json!(e.error_type);
                v["errorMessage"] = json!(e.message);
            }
        }
        v
    }
}

struct Pending {
    id: String,
    payload: Bytes,
    /// Told when a sandbox takes the event: the function's timeout counts from then.
    taken: Option<oneshot::Sender<()>>,
    reply: oneshot::Sender<Result<Value, InvokeError>>,
}

#[derive(Default)]
struct FnState {
    queue: VecDeque<Pending>,
    /// Invocations being run, with the sandbox running each.
    inflight: HashMap<String, (usize, Pending)>,
    /// Per sandbox: its current process has asked for work (it got through init).
    polled: Vec<bool>,
    shutting_down: bool,
    starts: u32,
    /// Per sandbox: the process id of its current process.
    pids: Vec<Option<u32>>,
}

pub struct LambdaFunction {
    spec: FunctionSpec,
    /// Each sandbox's Runtime API endpoint.
    sandboxes: Vec<SocketAddr>,
    state: Mutex<FnState>,
    /// A new invocation is queued.
    work: Notify,
    shutdown: watch::Sender<bool>,
    records: Mutex<Vec<InvocationRecord>>,
    dead_letters: Mutex<Vec<Value>>,
    counter: AtomicU64,
    /// Asynchronous invocations not finished yet, shared with the event bus.
    in_progress: Arc<AtomicUsize>,
}

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

impl LambdaFunction {
    /// Serves the Runtime API on a free loopback port and starts the function's process.
    pub async fn start(
        spec: FunctionSpec,
        in_progress: Arc<AtomicUsize>,
    ) -> std::io::Result<Arc<LambdaFunction>> {
        if !spec.binary.is_file() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("function binary {} not found", spec.binary.display()),
            ));
        }
        let n = spec.concurrency.max(1);
        let mut listeners = Vec::new();
        for _ in 0..n {
            listeners.push(TcpListener::bind("127.0.0.1:0").await?);
        }
        let sandboxes = listeners
            .iter()
            .map(|l| l.local_addr())
            .collect::<std::io::Result<Vec<_>>>()?;
        let f = Arc::new(LambdaFunction {
            spec,
            sandboxes,
            state: Mutex::new(FnState {
                polled: vec![false; n],
                pids: vec![None; n],
                ..FnState::default()
            }),
            work: Notify::new(),
            shutdown: watch::channel(false).0,
            records: Mutex::new(Vec::new()),
            dead_letters: Mutex::new(Vec::new()),
            counter: AtomicU64::new(0),
            in_progress,
        });
        for (i, listener) in listeners.into_iter().enumerate() {
            let api = f.clone();
            spawn_server(listener, move |req| {
                let api = api.clone();
                async move { api.runtime_api(i, req).await }
            });
            let sup = f.clone();
            tokio::spawn(async move { sup.supervise(i).await });
        }
        Ok(f)
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn arn(&self) -> String {
        format!(
            "arn:aws:lambda:{LAMBDA_REGION}:{ACCOUNT}:function:{}",
            self.spec.name
        )
    }

    pub fn log_file(&self) -> &PathBuf {
        &self.spec.log_file
    }

    /// How many processes have been started (cold starts).
    pub fn starts(&self) -> u32 {
        self.lock().starts
    }

    /// The process ids of the running sandboxes (to read their memory use in `/proc`).
    pub fn pids(&self) -> Vec<u32> {
        self.lock().pids.iter().flatten().copied().collect()
    }

    pub fn records(&self) -> Vec<InvocationRecord> {
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Events whose asynchronous invocation failed on every attempt.
    pub fn dead_letters(&self) -> Vec<Value> {
        self.dead_letters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn lock(&self) -> MutexGuard<'_, FnState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn next_request_id(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed) + 1;
        let salt = self
            .spec
            .name
            .bytes()
            .fold(0u32, |a, b| a.wrapping_mul(31).wrapping_add(b as u32));
        format!("{salt:08x}-{:04x}-4000-8000-{n:012x}", n & 0xffff)
    }

    /// Runs the function once and returns its result (`RequestResponse`).
    pub async fn invoke(&self, payload: &Value) -> Result<Value, InvokeError> {
        self.attempt(payload, "RequestResponse", 0, "direct invocation")
            .await
    }

    async fn attempt(
        &self,
        payload: &Value,
        kind: &'static str,
        attempt: u32,
        trigger: &str,
    ) -> Result<Value, InvokeError> {
        let started = Instant::now();
        let id = self.next_request_id();
        let (tx, rx) = oneshot::channel();
        let (taken_tx, taken_rx) = oneshot::channel();
        {
            let mut s = self.lock();
            if s.shutting_down {
                return Err(InvokeError {
                    error_type: "ServiceException".into(),
                    message: "the local Lambda is shutting down".into(),
                });
            }
            s.queue.push_back(Pending {
                id: id.clone(),
                payload: Bytes::from(payload.to_string()),
                taken: Some(taken_tx),
                reply: tx,
            });
        }
        self.work.notify_one();
        // Lambda's timeout counts from when a sandbox takes the event, not from when it was
        // queued (a burst waits in the queue); a cold start adds a little, so allow a margin
        // on top. The sender is dropped unused only at shutdown, which answers `rx` itself.
        let _ = taken_rx.await;
        let result =
            match tokio::time::timeout(self.spec.timeout + Duration::from_secs(5), rx).await {
                Ok(Ok(r)) => r,
                Ok(Err(_)) => Err(InvokeError {
                    error_type: "Runtime.Unknown".into(),
                    message: "the invocation was dropped".into(),
                }),
                Err(_) => {
                    let mut s = self.lock();
                    s.queue.retain(|p| p.id != id);
                    s.inflight.remove(&id);
                    Err(InvokeError {
                        error_type: "Sandbox.Timedout".into(),
                        message: format!(
                            "Task timed out after {:.2} seconds",
                            self.spec.timeout.as_secs_f64()
                        ),
                    })
                }
            };
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(InvocationRecord {
                function: self.spec.name.clone(),
                request_id: id,
                kind,
                attempt,
                trigger: trigger.to_string(),
                duration: started.elapsed(),
                result: result.clone(),
            });
        result
    }

    /// Invokes asynchronously, as EventBridge does: retried on error, then dead-lettered.
    pub fn invoke_async(self: &Arc<Self>, payload: Value, trigger: String, retry_delay: Duration) {
        self.in_progress.fetch_add(1, Ordering::SeqCst);
        let f = self.clone();
        tokio::spawn(async move {
            let attempts = f.spec.max_retry_attempts + 1;
            for attempt in 0..attempts {
                match f.attempt(&payload, "Event", attempt, &trigger).await {
                    Ok(_) => break,
                    Err(e) if attempt + 1 == attempts => {
                        f.dead_letters
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(json!({
                                "requestContext": {
                                    "functionArn": format!("{}:$LATEST", f.arn()),
                                    "condition": "RetriesExhausted",
                                    "approximateInvokeCount": attempts,
                                },
                                "responsePayload": {"errorType": e.error_type, "errorMessage": e.message},
                                "requestPayload": payload,
                            }));
                    }
                    Err(_) => tokio::time::sleep(retry_delay * (attempt + 1)).await,
                }
            }
            f.in_progress.fetch_sub(1, Ordering::SeqCst);
        });
    }

    /// Stops the process; queued and running invocations fail.
    pub fn shutdown(&self) {
        let pending: Vec<Pending> = {
            let mut s = self.lock();
            s.shutting_down = true;
            let mut all: Vec<Pending> = s.queue.drain(..).collect();
            all.extend(s.inflight.drain().map(|(_, (_, p))| p));
            all
        };
        for p in pending {
            let _ = p.reply.send(Err(InvokeError {
                error_type: "ServiceException".into(),
                message: "the local Lambda is shutting down".into(),
            }));
        }
        self.shutdown.send_replace(true);
    }

    fn command(&self, sandbox: usize) -> std::io::Result<Command> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.spec.log_file)?;
        let mut cmd = Command::new(&self.spec.binary);
        cmd.env_clear().envs(runtime_env(
            &self.spec.name,
            &self.sandboxes[sandbox].to_string(),
            &format!("local/[$LATEST]{sandbox}"),
        ));
        for (k, v) in &self.spec.env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        Ok(cmd)
    }

    /// Keeps sandbox `sandbox`'s process running while there is work.
    async fn supervise(self: Arc<Self>, sandbox: usize) {
        let mut shutdown = self.shutdown.subscribe();
        loop {
            if *shutdown.borrow() {
                return;
            }
            let mut child = match self.command(sandbox).and_then(|mut c| c.spawn()) {
                Ok(c) => c,
                Err(e) => {
                    self.fail_all(InvokeError {
                        error_type: "Runtime.InvalidEntrypoint".into(),
                        message: format!("cannot start {}: {e}", self.spec.binary.display()),
                    });
                    return;
                }
            };
            {
                let mut s = self.lock();
                s.polled[sandbox] = false;
                s.starts += 1;
                s.pids[sandbox] = child.id();
            }
            let status = tokio::select! {
                s = child.wait() => s.ok(),
                _ = shutdown.changed() => {
                    let _ = child.kill().await;
                    return;
                }
            };
            let what = status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "unknown status".into());
            let (inflight, init_victim) = {
                let mut s = self.lock();
                s.pids[sandbox] = None;
                let mine: Vec<String> = s
                    .inflight
                    .iter()
                    .filter(|(_, (sb, _))| *sb == sandbox)
                    .map(|(id, _)| id.clone())
                    .collect();
                let inflight: Vec<Pending> = mine
                    .iter()
                    .filter_map(|id| s.inflight.remove(id).map(|(_, p)| p))
                    .collect();
                // A process that never asked for work failed in init: the event it was
                // started for fails, as Lambda reports an init failure to that invocation.
                let victim = if !s.polled[sandbox] {
                    s.queue.pop_front()
                } else {
                    None
                };
                (inflight, victim)
            };
            for p in inflight.into_iter().chain(init_victim) {
                let _ = p.reply.send(Err(InvokeError {
                    error_type: "Runtime.ExitError".into(),
                    message: format!(
                        "RequestId: {} Error: Runtime exited ({what}); see {}",
                        p.id,
                        self.spec.log_file.display()
                    ),
                }));
            }
            // Start again only when there is work: a broken binary is not restarted in a loop.
            loop {
                if *shutdown.borrow() {
                    return;
                }
                if !self.lock().queue.is_empty() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    fn fail_all(&self, e: InvokeError) {
        let pending: Vec<Pending> = {
            let mut s = self.lock();
            let mut all: Vec<Pending> = s.queue.drain(..).collect();
            all.extend(s.inflight.drain().map(|(_, (_, p))| p));
            all
        };
        for p in pending {
            let _ = p.reply.send(Err(e.clone()));
        }
    }

    /// The Runtime API: `GET .../invocation/next`, `POST .../invocation/{id}/response|error`,
    /// `POST .../init/error`.
    async fn runtime_api(&self, sandbox: usize, req: Request<Incoming>) -> HttpResult {
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
