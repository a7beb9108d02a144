//! The local cloud: the KMS twin and EventBridge `PutEvents` on one loopback endpoint (what
//! `AWS_ENDPOINT_URL` points at), the Lambda `Invoke` API on the same endpoint, the function
//! binaries running against a local Lambda Runtime API, and the CloudTrail -> EventBridge ->
//! Lambda bus between them. Debug endpoints under `/_twin/` show what happened and inject
//! faults.

use crate::bus::{Bus, Delivery, ForwardRegions, Forwarding, Route};
use crate::http::{full, json_response, read_body, spawn_server, HttpResult};
use crate::kms_api::{credential_scope, ApiError, KmsApi};
use crate::lambda::{FunctionSpec, InvocationRecord, InvokeError, LambdaFunction, LAMBDA_REGION};
use crate::pattern::{forward_rules_from_template, forwarder_beside, rules_from_template};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use kms_replicator::op::Op;
use kms_replicator::port::{AuditEvent, AuditSink};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use twin::{Twin, ADMIN_USER, REPLICATOR_ROLE};

/// The access key id the functions use; requests signed with it act as the replicator's role.
pub const FUNCTION_ACCESS_KEY: &str = "test";
/// The access key id of the person in the demo and the tests: [`ADMIN_USER`].
pub const ADMIN_ACCESS_KEY: &str = "admin";

pub struct LocalCloudBuilder {
    twin: Option<Twin>,
    port: u16,
    template: Option<PathBuf>,
    forwarder: Option<PathBuf>,
    forward_regions: ForwardRegions,
    functions: Vec<(String, PathBuf)>,
    env: Vec<(String, String)>,
    function_env: Vec<(String, String, String)>,
    log_dir: Option<PathBuf>,
    retry_delay: Duration,
    timeout: Duration,
    concurrency: usize,
    identities: BTreeMap<String, String>,
}

impl LocalCloudBuilder {
    /// Serve this twin (a new one by default).
    pub fn twin(mut self, twin: Twin) -> Self {
        self.twin = Some(twin);
        self
    }

    /// Loopback port; 0 (the default) picks a free one.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Route events with the rules of this SAM template.
    pub fn template(mut self, path: impl Into<PathBuf>) -> Self {
        self.template = Some(path.into());
        self
    }

    /// Forward other Regions' events with the rules of this template (by default
    /// `forwarder.yaml` beside the main template, when there is one).
    pub fn forwarder(mut self, path: impl Into<PathBuf>) -> Self {
        self.forwarder = Some(path.into());
        self
    }

    /// The forwarder stack runs only in these Regions (by default in every Region other than
    /// the home Region); events of any other Region stay on their own Region's bus.
    pub fn forward_from(mut self, regions: &[&str]) -> Self {
        self.forward_regions =
            ForwardRegions::Only(regions.iter().map(|r| r.to_string()).collect());
        self
    }

    /// Run this binary as the function `name` (a rule targets it when its template function's
    /// binary has this name).
    pub fn function(mut self, name: &str, binary: impl Into<PathBuf>) -> Self {
        self.functions.push((name.to_string(), binary.into()));
        self
    }

    /// An environment variable of every function.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// An environment variable of one function.
    pub fn function_env(mut self, function: &str, key: &str, value: &str) -> Self {
        self.function_env
            .push((function.to_string(), key.to_string(), value.to_string()));
        self
    }

    /// Where the functions' logs go (a fresh temporary folder by default).
    pub fn log_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.log_dir = Some(dir.into());
        self
    }

    /// Pause before retrying a failed asynchronous invocation (Lambda: about a minute).
    pub fn retry_delay(mut self, d: Duration) -> Self {
        self.retry_delay = d;
        self
    }

    /// The functions' timeout (the template's is 60 s).
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    /// Sandboxes per function: invocations run this many at a time (1 by default: in order).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Requests signed with access key id `akid` act as `arn`.
    pub fn identity(mut self, akid: &str, arn: &str) -> Self {
        self.identities.insert(akid.to_string(), arn.to_string());
        self
    }

    pub async fn start(self) -> Result<LocalCloud, String> {
        let twin = self.twin.unwrap_or_default();
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .map_err(|e| format!("cannot listen on 127.0.0.1:{}: {e}", self.port))?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let endpoint = format!("http://127.0.0.1:{port}");
        let rules = match &self.template {
            Some(t) => rules_from_template(t)?,
            None => Vec::new(),
        };
        let forwarder = self
            .forwarder
            .clone()
            .or_else(|| self.template.as_deref().and_then(forwarder_beside));
        let forwarding = match forwarder {
            Some(f) => Forwarding {
                rules: forward_rules_from_template(&f)?,
                regions: self.forward_regions.clone(),
            },
            None => Forwarding::none(),
        };
        let log_dir = match self.log_dir {
            Some(d) => d,
            None => {
                static N: AtomicU64 = AtomicU64::new(0);
                std::env::temp_dir().join(format!(
                    "kms-twin-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                ))
            }
        };
        std::fs::create_dir_all(&log_dir)
            .map_err(|e| format!("cannot create {}: {e}", log_dir.display()))?;
        let in_progress = Arc::new(AtomicUsize::new(0));
        let mut functions = BTreeMap::new();
        for (name, binary) in &self.functions {
            let mut env = vec![
                ("AWS_ENDPOINT_URL".to_string(), endpoint.clone()),
                (
                    "AWS_ACCESS_KEY_ID".to_string(),
                    FUNCTION_ACCESS_KEY.to_string(),
                ),
                ("AWS_SECRET_ACCESS_KEY".to_string(), "test".to_string()),
            ];
            env.extend(self.env.iter().cloned());
            env.extend(
                self.function_env
                    .iter()
                    .filter(|(f, _, _)| f == name)
                    .map(|(_, k, v)| (k.clone(), v.clone())),
            );
            let max_retry_attempts = rules
                .iter()
                .find(|r| &r.binary == name)
                .map(|r| r.max_retry_attempts)
                .unwrap_or(2);
            let spec = FunctionSpec {
                name: name.clone(),
                binary: binary.clone(),
                env,
                timeout: self.timeout,
                max_retry_attempts,
                concurrency: self.concurrency,
                log_file: log_dir.join(format!("{name}.log")),
            };
            let f = LambdaFunction::start(spec, in_progress.clone())
                .await
                .map_err(|e| format!("function {name}: {e}"))?;
            functions.insert(name.clone(), f);
        }
        let routes = rules
            .into_iter()
            .map(|rule| Route {
                function: functions.get(&rule.binary).cloned(),
                rule,
            })
            .collect();
        let bus = Bus::new(
            twin.clone(),
            LAMBDA_REGION,
            forwarding,
            routes,
            in_progress,
            self.retry_delay,
        );
        let mut identities = self.identities;
        identities
            .entry(ADMIN_ACCESS_KEY.to_string())
            .or_insert_with(|| ADMIN_USER.to_string());
        let inner = Arc::new(Inner {
            api: KmsApi::new(twin.clone()),
            bus: bus.clone(),
            functions,
            identities,
            audit_log: Mutex::new(Vec::new()),
            counter: AtomicU64::new(0),
            retry_delay: self.retry_delay,
        });
        let handler_inner = inner.clone();
        let server = spawn_server(listener, move |req| {
            let inner = handler_inner.clone();
            async move { inner.handle(req).await }
        });
        let routing = Bus::spawn(&bus);
        Ok(LocalCloud {
            endpoint,
            port,
            twin,
            inner,
            log_dir,
            tasks: vec![server, routing],
        })
    }
}

struct Inner {
    api: KmsApi,
    bus: Arc<Bus>,
    functions: BTreeMap<String, Arc<LambdaFunction>>,
    identities: BTreeMap<String, String>,
    audit_log: Mutex<Vec<Value>>,
    counter: AtomicU64,
    retry_delay: Duration,
}

pub struct LocalCloud {
    endpoint: String,
    port: u16,
    twin: Twin,
    inner: Arc<Inner>,
    log_dir: PathBuf,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for LocalCloud {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl LocalCloud {
    pub fn builder() -> LocalCloudBuilder {
        LocalCloudBuilder {
            twin: None,
            port: 0,
            template: None,
            forwarder: None,
            forward_regions: ForwardRegions::AllOthers,
            functions: Vec::new(),
            env: Vec::new(),
            function_env: Vec::new(),
            log_dir: None,
            retry_delay: Duration::from_millis(200),
            timeout: Duration::from_secs(60),
            concurrency: 1,
            identities: BTreeMap::new(),
        }
    }

    /// `http://127.0.0.1:<port>`: the value for `AWS_ENDPOINT_URL`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The twin behind the endpoint (shared state: inspect it, inject faults).
    pub fn twin(&self) -> &Twin {
        &self.twin
    }

    pub fn api(&self) -> &KmsApi {
        &self.inner.api
    }

    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    pub fn function(&self, name: &str) -> Option<Arc<LambdaFunction>> {
        self.inner.functions.get(name).cloned()
    }

    /// The SDK configuration of a client of this endpoint signing with `access_key`.
    pub async fn sdk_config(&self, access_key: &str, region: &str) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(aws_config::Region::new(region.to_string()))
            .credentials_provider(aws_sdk_kms::config::Credentials::new(
                access_key,
                "local-secret",
                None,
                None,
                "kms-twin",
            ))
            .load()
            .await
    }

    /// A KMS client of this endpoint, e.g. `kms_client(ADMIN_ACCESS_KEY, "us-east-1")`.
    pub async fn kms_client(&self, access_key: &str, region: &str) -> aws_sdk_kms::Client {
        aws_sdk_kms::Client::new(&self.sdk_config(access_key, region).await)
    }

    /// Invokes a function synchronously (`RequestResponse`).
    pub async fn invoke(&self, function: &str, payload: &Value) -> Result<Value, InvokeError> {
        match self.inner.functions.get(function) {
            Some(f) => f.invoke(payload).await,
            None => Err(InvokeError {
                error_type: "ResourceNotFoundException".into(),
                message: format!("Function not found: {function}"),
            }),
        }
    }

    /// Invokes a function asynchronously (`Event`): retried on error, then dead-lettered.
    pub fn invoke_async(&self, function: &str, payload: Value) -> Result<(), String> {
        let f = self
            .inner
            .functions
            .get(function)
            .ok_or_else(|| format!("Function not found: {function}"))?;
        f.invoke_async(
            payload,
            "asynchronous invocation".into(),
            self.retry_delay(),
        );
        Ok(())
    }

    fn retry_delay(&self) -> Duration {
        self.inner.bus_retry_delay()
    }

    /// Waits until the pipeline is quiet: every event routed, every invocation finished.
    pub async fn settle(&self, timeout: Duration) -> Result<Duration, String> {
        self.inner.bus.settle(timeout).await
    }

    /// Every event that went through the bus, in order.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.inner.bus.history()
    }

    /// Every invocation attempt of every function.
    pub fn invocations(&self) -> Vec<InvocationRecord> {
        self.inner
            .functions
            .values()
            .flat_map(|f| f.records())
            .collect()
    }

    pub fn dead_letters(&self) -> Vec<Value> {
        self.inner
            .functions
            .values()
            .flat_map(|f| f.dead_letters())
            .collect()
    }

    /// Entries received by `PutEvents` (the audit events), with bus, source and time.
    pub fn audit_entries(&self) -> Vec<Value> {
        self.inner
            .audit_log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Stops the functions and the servers. Also done on drop.
    pub fn shutdown(&mut self) {
        for f in self.inner.functions.values() {
            f.shutdown();
        }
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

fn kms_error(status: u16, code: &str, message: &str) -> Response<Full<Bytes>> {
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

fn amz_json(body: &Value) -> Response<Full<Bytes>> {
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

impl Inner {
    fn bus_retry_delay(&self) -> Duration {
        self.retry_delay
    }

    async fn handle(self: Arc<Self>, req: Request<Incoming>) -> HttpResult {
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
            .unwrap_or_else(|| REPLICATOR_ROLE.to_string());
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

    /// EventBridge PutEvents: each entry is checked as EventBridge checks it and recorded
    /// through the twin's audit sink.
    async fn put_events(&self, region: &str, body: &Value) -> Response<Full<Bytes>> {
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

    /// Lambda's Invoke API (`aws lambda invoke --endpoint-url ...`).
    async fn lambda_invoke(&self, name: &str, kind: &str, body: &Bytes) -> Response<Full<Bytes>> {
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

    async fn debug(
        &self,
        method: &Method,
        path: &str,
        query: &str,
        body: &Bytes,
    ) -> Response<Full<Bytes>> {
        let input: Value = serde_json::from_slice(body).unwrap_or(json!({}));
        let ok = |v: Value| json_response(StatusCode::OK, &v);
        let bad = |m: &str| json_response(StatusCode::BAD_REQUEST, &json!({"error": m}));
        match (method.as_str(), path) {
            ("GET", "health") => ok(json!({
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
            })),
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
            ("POST", "fault") => {
                let Some(code) = input.get("code").and_then(Value::as_str) else {
                    return bad("{\"code\": \"ThrottlingException\", \"region\"?, \"operation\"?, \"times\"?}");
                };
                let op = match input.get("operation").and_then(Value::as_str) {
                    None => None,
                    Some(name) => match Op::parse(name) {
                        Some(op) => Some(op),
                        None => return bad(&format!("unknown operation {name:?}")),
                    },
                };
                self.api.twin().inject_fault(
                    input.get("region").and_then(Value::as_str),
                    op,
                    code,
                    input.get("times").and_then(Value::as_u64).unwrap_or(1) as usize,
                );
                ok(json!({"ok": true}))
            }
            ("POST", "region") => {
                let Some(region) = input.get("region").and_then(Value::as_str) else {
                    return bad("{\"region\": \"eu-west-1\", \"down\": true}");
                };
                let down = input.get("down").and_then(Value::as_bool).unwrap_or(true);
                self.api.twin().set_region_down(region, down);
                ok(json!({"ok": true}))
            }
            ("POST", "stall") => {
                // A Regional endpoint that accepts requests and stalls: answered after
                // `delaySeconds`, or never (null or absent). `"stalled": false` ends the stall
                // set for that Region and operation; `DELETE /_twin/stall` ends them all.
                let usage = "{\"region\": \"eu-west-1\"?, \"op\": \"DescribeKey\"?, \
                             \"delaySeconds\": 5?, \"stalled\": true?}";
                let text = |k: &str| match input.get(k) {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::String(v)) => Ok(Some(v.as_str())),
                    Some(_) => Err(()),
                };
                let (Ok(region), Ok(op), Ok(operation)) =
                    (text("region"), text("op"), text("operation"))
                else {
                    return bad(usage);
                };
                let op = match op.or(operation).map(|name| Op::parse(name).ok_or(name)) {
                    None => None,
                    Some(Ok(op)) => Some(op),
                    Some(Err(name)) => return bad(&format!("unknown operation {name:?}")),
                };
                let delay = match input.get("delaySeconds") {
                    None | Some(Value::Null) => None,
                    Some(v) => match v.as_f64() {
                        Some(s) if s.is_finite() && s >= 0.0 => Some(Duration::from_secs_f64(s)),
                        _ => return bad(usage),
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
                ok(json!({"ok": true}))
            }
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
}

fn humantime_now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}
