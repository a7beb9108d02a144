//! `kms-twin`: the KMS twin over HTTP on a loopback port, with EventBridge PutEvents, and
//! optionally the function binaries wired to it through a local Lambda and event bus.
//!
//! ```text
//! kms-twin [--port N] [--port-file FILE] [--template template.yaml]
//!          [--forwarder forwarder.yaml] [--forward-from "REGION ..."]
//!          [--function NAME=BINARY]... [--env KEY=VALUE]... [--log-dir DIR]
//!          [--concurrency N] [--exit-on-stdin-close]
//! ```
//! The home Region is us-east-1; `--forward-from` lists the Regions that run the forwarder
//! (every other Region by default, `""` for none).
//! The first line on stdout is `KMS_TWIN_ENDPOINT=http://127.0.0.1:<port>`.

use std::io::Write;
use std::path::PathBuf;
use twin_server::LocalCloud;

const USAGE: &str = "usage: kms-twin [--port N] [--port-file FILE] [--template template.yaml] \
[--forwarder forwarder.yaml] [--forward-from \"REGION ...\"] [--function NAME=BINARY]... [--env KEY=VALUE]... [--log-dir DIR] [--concurrency N] \
[--exit-on-stdin-close]";

fn fail(msg: &str) -> ! {
    eprintln!("kms-twin: {msg}\n{USAGE}");
    std::process::exit(2)
}

#[tokio::main]
async fn main() {
    let mut builder = LocalCloud::builder();
    let mut port_file: Option<PathBuf> = None;
    let mut exit_on_stdin_close = false;
    let mut functions = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .unwrap_or_else(|| fail(&format!("{name} needs a value")))
        };
        match arg.as_str() {
            "--port" => {
                let v = value("--port");
                builder = builder.port(v.parse().unwrap_or_else(|_| fail("--port needs a number")));
            }
            "--port-file" => port_file = Some(PathBuf::from(value("--port-file"))),
            "--template" => builder = builder.template(value("--template")),
            "--forwarder" => builder = builder.forwarder(value("--forwarder")),
            "--forward-from" => {
                let v = value("--forward-from");
                builder = builder.forward_from(&v.split_whitespace().collect::<Vec<_>>());
            }
            "--log-dir" => builder = builder.log_dir(value("--log-dir")),
            "--concurrency" => {
                let v = value("--concurrency");
                builder = builder.concurrency(
                    v.parse()
                        .unwrap_or_else(|_| fail("--concurrency needs a number")),
                );
            }
            "--function" => {
                let v = value("--function");
                let (name, bin) = v
                    .split_once('=')
                    .unwrap_or_else(|| fail("--function takes NAME=BINARY"));
                functions.push(name.to_string());
                builder = builder.function(name, bin);
            }
            "--env" => {
                let v = value("--env");
                let (k, val) = v
                    .split_once('=')
                    .unwrap_or_else(|| fail("--env takes KEY=VALUE"));
                builder = builder.env(k, val);
            }
            "--exit-on-stdin-close" => exit_on_stdin_close = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return;
            }
            other => fail(&format!("unknown argument {other}")),
        }
    }
    let mut cloud = match builder.start().await {
        Ok(c) => c,
        Err(e) => fail(&e),
    };
    let endpoint = cloud.endpoint().to_string();
    // The port file first: whoever reads the first line may look for it at once.
    if let Some(f) = port_file {
        if let Err(e) = std::fs::write(&f, cloud.port().to_string()) {
            fail(&format!("cannot write {}: {e}", f.display()));
        }
    }
    // A caller may stop reading after the first line: a closed stdout is not an error.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "KMS_TWIN_ENDPOINT={endpoint}");
    let _ = writeln!(
        out,
        "# KMS (JSON 1.1), EventBridge PutEvents and Lambda Invoke on {endpoint}; debug: {endpoint}/_twin/health"
    );
    let _ = writeln!(
        out,
        "# as a person:   export AWS_ENDPOINT_URL={endpoint} AWS_ACCESS_KEY_ID=admin AWS_SECRET_ACCESS_KEY=x AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1"
    );
    if !functions.is_empty() {
        let _ = writeln!(
            out,
            "# functions: {} (logs in {})",
            functions.join(", "),
            cloud.log_dir().display()
        );
    }
    let _ = out.flush();
    drop(out);
    if exit_on_stdin_close {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
            let _ = tx.send(());
        });
        let _ = rx.await;
        cloud.shutdown();
        // Give the functions' processes a moment to be stopped.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    } else {
        std::future::pending::<()>().await;
    }
}
