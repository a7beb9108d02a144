//! The local cloud: the KMS twin and EventBridge `PutEvents` on one loopback endpoint (what
//! `AWS_ENDPOINT_URL` points at), the Lambda `Invoke` API on the same endpoint, the function
//! binaries running against a local Lambda Runtime API, and the CloudTrail -> EventBridge ->
//! Lambda bus between them. Debug endpoints under `/_twin/` show what happened and inject
//! faults.
//!
//! This file is the local cloud's face: [`LocalCloudBuilder`] starts it, [`LocalCloud`] is
//! what a test or the demo holds. Behind the endpoint, `server.rs` routes each request to the
//! KMS protocol, the tagging API, `events.rs` (EventBridge PutEvents), `invoke.rs` (Lambda's
//! Invoke API) or `debug.rs` (the `/_twin/` endpoints).

mod debug;
mod events;
mod invoke;
mod server;

use self::server::Server;
use crate::bus::{Bus, Delivery, ForwardRegions, Forwarding, Route};
use crate::http::spawn_server;
use crate::kms_api::KmsApi;
use crate::lambda::{FunctionSpec, InvocationRecord, InvokeError, LambdaFunction, LAMBDA_REGION};
use crate::pattern::{forward_rules_from_template, forwarder_beside, rules_from_template};
use authz::cfn::{Stack, Template};
use kms_replicator::Config;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use twin::{Twin, ADMIN_USER, FAILOVER_ROLE, OPERATOR_ROLE, RECONCILE_ROLE, REPLICATE_ROLE};

/// The access key id of the replicate function; each function signs with its own name, and
/// acts as its role in the template (see [`function_roles`]).
pub const FUNCTION_ACCESS_KEY: &str = "replicate";
/// The access key id of the person in the demo and the tests: [`ADMIN_USER`].
pub const ADMIN_ACCESS_KEY: &str = "admin";
/// The access key id of a role with administrator access ([`OPERATOR_ROLE`]), for tests of the
/// protocol rather than of anyone's permissions.
pub const OPERATOR_ACCESS_KEY: &str = "operator";

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
    delivery_delay: Duration,
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
    /// CloudTrail's delay before each event reaches the bus's rules (none unless set).
    pub fn delivery_delay(mut self, d: Duration) -> Self {
        self.delivery_delay = d;
        self
    }

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
                ("AWS_ACCESS_KEY_ID".to_string(), name.clone()),
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
        bus.set_delivery_delay(self.delivery_delay);
        let mut identities = default_access_keys();
        // The functions' configuration gives the template's parameters, as a deployment does;
        // their roles' policies come from the template the cloud routes with, or else the
        // repository's.
        let cfg = Config::from_lookup(|k| {
            self.env
                .iter()
                .rev()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
        });
        if let Ok(cfg) = cfg {
            let template = self
                .template
                .clone()
                .unwrap_or_else(twin::auth::repository_template);
            twin.deploy_template(&template, &cfg)?;
            identities.extend(function_roles(&template, &cfg)?);
        }
        identities.extend(self.identities);
        let server = Arc::new(Server {
            api: KmsApi::new(twin.clone()),
            bus: bus.clone(),
            functions,
            identities,
            audit_log: Mutex::new(Vec::new()),
            counter: AtomicU64::new(0),
            retry_delay: self.retry_delay,
        });
        let handler_server = server.clone();
        let serving = spawn_server(listener, move |req| {
            let server = handler_server.clone();
            async move { server.handle(req).await }
        });
        let routing = Bus::spawn(&bus);
        Ok(LocalCloud {
            endpoint,
            port,
            twin,
            server,
            log_dir,
            tasks: vec![serving, routing],
        })
    }
}

/// Who the well-known access keys act as: `admin` is the person ([`ADMIN_USER`]); each
/// function's name is its role.
fn default_access_keys() -> BTreeMap<String, String> {
    [
        (ADMIN_ACCESS_KEY, ADMIN_USER),
        (OPERATOR_ACCESS_KEY, OPERATOR_ROLE),
        ("replicate", REPLICATE_ROLE),
        ("reconcile", RECONCILE_ROLE),
        ("failover", FAILOVER_ROLE),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Each function of `template` (by its binary's name) and the ARN of its role, with the
/// parameters that give `cfg`.
pub fn function_roles(template: &Path, cfg: &Config) -> Result<BTreeMap<String, String>, String> {
    let params = twin::auth::template_parameters(cfg);
    let params: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let stack = Stack::new(
        twin::auth::STACK_NAME,
        twin::DEFAULT_ACCOUNT,
        twin::auth::HOME_REGION,
    );
    let t = Template::load(template, stack, &params).map_err(|e| e.to_string())?;
    let mut out = BTreeMap::new();
    for (id, ty) in t.resources() {
        if ty != "AWS::Serverless::Function" && ty != "AWS::Lambda::Function" {
            continue;
        }
        let binary = t.metadata(&id).map_err(|e| e.to_string())?["BuildProperties"]["Binary"]
            .as_str()
            .map(str::to_string);
        let role = t.properties(&id).map_err(|e| e.to_string())?["Role"]
            .as_str()
            .map(str::to_string);
        if let (Some(binary), Some(role)) = (binary, role) {
            out.insert(binary, role);
        }
    }
    Ok(out)
}

pub struct LocalCloud {
    endpoint: String,
    port: u16,
    twin: Twin,
    server: Arc<Server>,
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
            delivery_delay: Duration::ZERO,
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
        &self.server.api
    }

    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    pub fn function(&self, name: &str) -> Option<Arc<LambdaFunction>> {
        self.server.functions.get(name).cloned()
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
        match self.server.functions.get(function) {
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
            .server
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
        self.server.bus_retry_delay()
    }

    /// Waits until the pipeline is quiet: every event routed, every invocation finished.
    pub async fn settle(&self, timeout: Duration) -> Result<Duration, String> {
        self.server.bus.settle(timeout).await
    }

    /// Every event that went through the bus, in order.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.server.bus.history()
    }

    /// Every invocation attempt of every function.
    pub fn invocations(&self) -> Vec<InvocationRecord> {
        self.server
            .functions
            .values()
            .flat_map(|f| f.records())
            .collect()
    }

    pub fn dead_letters(&self) -> Vec<Value> {
        self.server
            .functions
            .values()
            .flat_map(|f| f.dead_letters())
            .collect()
    }

    /// Entries received by `PutEvents` (the audit events), with bus, source and time.
    pub fn audit_entries(&self) -> Vec<Value> {
        self.server
            .audit_log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Stops the functions and the servers. Also done on drop.
    pub fn shutdown(&mut self) {
        for f in self.server.functions.values() {
            f.shutdown();
        }
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}
