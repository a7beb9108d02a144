//! A function's sandboxes: one process each, with only what Lambda puts in its environment,
//! started again when there is work after it exits.

use super::function::{InvokeError, LambdaFunction, Pending, LAMBDA_REGION};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::process::Command;

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

impl LambdaFunction {
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
    pub(super) async fn supervise(self: Arc<Self>, sandbox: usize) {
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
}
