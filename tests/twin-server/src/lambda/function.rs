//! A function: its spec, the queue its sandboxes take invocations from, the two ways Lambda
//! invokes it (synchronous, and asynchronous with retries and dead letters), and what was
//! recorded of each attempt.

use crate::http::spawn_server;
use bytes::Bytes;
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch, Notify};

pub const ACCOUNT: &str = twin::DEFAULT_ACCOUNT;
pub const LAMBDA_REGION: &str = "us-east-1";

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

pub(super) struct Pending {
    pub(super) id: String,
    pub(super) payload: Bytes,
    /// Told when a sandbox takes the event: the function's timeout counts from then.
    pub(super) taken: Option<oneshot::Sender<()>>,
    pub(super) reply: oneshot::Sender<Result<Value, InvokeError>>,
}

#[derive(Default)]
pub(super) struct FnState {
    pub(super) queue: VecDeque<Pending>,
    /// Invocations being run, with the sandbox running each.
    pub(super) inflight: HashMap<String, (usize, Pending)>,
    /// Per sandbox: its current process has asked for work (it got through init).
    pub(super) polled: Vec<bool>,
    shutting_down: bool,
    pub(super) starts: u32,
    /// Per sandbox: the process id of its current process.
    pub(super) pids: Vec<Option<u32>>,
}

pub struct LambdaFunction {
    pub(super) spec: FunctionSpec,
    /// Each sandbox's Runtime API endpoint.
    pub(super) sandboxes: Vec<SocketAddr>,
    state: Mutex<FnState>,
    /// A new invocation is queued.
    pub(super) work: Notify,
    pub(super) shutdown: watch::Sender<bool>,
    records: Mutex<Vec<InvocationRecord>>,
    dead_letters: Mutex<Vec<Value>>,
    pub(super) counter: AtomicU64,
    /// Asynchronous invocations not finished yet, shared with the event bus.
    in_progress: Arc<AtomicUsize>,
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

    pub(super) fn lock(&self) -> MutexGuard<'_, FnState> {
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

    pub(super) fn fail_all(&self, e: InvokeError) {
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
}
