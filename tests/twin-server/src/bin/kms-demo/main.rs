//! `kms-demo` (`make demo`): the replicator's user journeys on one machine, with the release
//! binaries of the functions and the real AWS SDK, against the KMS twin over HTTP. A person
//! (access key `admin`, Alice) makes the KMS calls; CloudTrail records of every write go
//! through the EventBridge rule of `template.yaml` to the `replicate` function; the on-call
//! steps invoke the `failover` function. Every step checks what it claims; the exit status is
//! 0 only when every check passed.
//!
//! ```text
//! kms-demo [--template template.yaml] [--bin-dir target/release] [--no-color]
//! ```
//!
//! `steps/` holds the journeys, one function per step; `demo.rs` the harness they share
//! (output, checks, the pipeline's account, the summary); `verify.rs` the check that a
//! replica mirrors its primary.

mod demo;
mod steps;
mod verify;

use demo::{rel, Demo, Style, ALLOWED, HOME};
use kms_replicator::aws::AwsKms;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use twin::{DEFAULT_ACCOUNT, FAILOVER_ROLE, RECONCILE_ROLE, REPLICATE_ROLE};
use twin_server::pattern::find_template;
use twin_server::{LocalCloud, ADMIN_ACCESS_KEY};

/// What the command line and the folders around the binary say.
struct Options {
    template: PathBuf,
    bin_dir: PathBuf,
    color: bool,
    /// The functions' logs.
    log_dir: PathBuf,
}

/// Reads the command line and finds the template; exits with a usage error when either fails.
fn options() -> Options {
    let mut template: Option<PathBuf> = None;
    let mut bin_dir: Option<PathBuf> = None;
    let mut color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--template" => template = args.next().map(PathBuf::from),
            "--bin-dir" => bin_dir = args.next().map(PathBuf::from),
            "--no-color" => color = false,
            _ => {
                eprintln!("usage: kms-demo [--template template.yaml] [--bin-dir target/release] [--no-color]");
                std::process::exit(2);
            }
        }
    }
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(PathBuf::from))
        .unwrap_or_default();
    let bin_dir = bin_dir.unwrap_or_else(|| exe_dir.clone());
    let template = template
        .or_else(|| find_template(&std::env::current_dir().unwrap_or_default()))
        .or_else(|| find_template(&exe_dir));
    let Some(template) = template else {
        eprintln!("kms-demo: template.yaml not found; run from the repository or pass --template");
        std::process::exit(2);
    };
    let log_dir = exe_dir
        .parent()
        .map(|t| t.join("kms-demo"))
        .unwrap_or_else(|| std::env::temp_dir().join("kms-demo"));
    Options {
        template,
        bin_dir,
        color,
        log_dir,
    }
}

/// The local cloud with the functions of `bin_dir`, configured as the demo's journeys need.
async fn start_cloud(options: &Options, replicate: &Path, failover: Option<&Path>) -> LocalCloud {
    let mut builder = LocalCloud::builder()
        .template(&options.template)
        .function("replicate", replicate)
        .env("ALLOWED_REGIONS", ALLOWED)
        .env("REMOVAL_POLICY", "ScheduleDeletion")
        .env("PENDING_WINDOW_DAYS", "7")
        .env(
            "IGNORE_CALLER_ARNS",
            &format!("{REPLICATE_ROLE} {RECONCILE_ROLE} {FAILOVER_ROLE}"),
        )
        .log_dir(&options.log_dir)
        .retry_delay(Duration::from_millis(500))
        .timeout(Duration::from_secs(60));
    if let Some(failover) = failover {
        builder = builder.function("failover", failover);
    }
    let cloud = match builder.start().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kms-demo: the local cloud did not start: {e}");
            std::process::exit(1);
        }
    };
    // As in KMS, promotion takes a moment: both keys are Updating for a second.
    cloud.twin().set_updating_for(Duration::from_millis(1000));
    cloud
}

/// What runs where: the endpoint, the functions, the rules that route to them, the config.
async fn print_header(style: &Style, cloud: &LocalCloud, options: &Options, has_failover: bool) {
    println!(
        "{}",
        style.bold("KMS multi-Region key replicator: the user journeys, locally")
    );
    println!(
        "  KMS twin + EventBridge on {} (account {DEFAULT_ACCOUNT}); the functions reach it through AWS_ENDPOINT_URL",
        cloud.endpoint()
    );
    println!(
        "  functions: replicate{} from {} (logs: {})",
        if has_failover { ", failover" } else { "" },
        rel(&options.bin_dir),
        rel(&options.log_dir)
    );
    let health = twin_server::client::get_json(cloud.endpoint(), "/_twin/health")
        .await
        .unwrap_or_default();
    for r in health["rules"].as_array().cloned().unwrap_or_default() {
        let names = r["pattern"]["detail"]["eventName"]
            .as_array()
            .map(|a| a.len())
            .unwrap_or(0);
        println!(
            "  rule {} from {}: aws.kms CloudTrail calls, {names} event names, no errorCode → {} (retries: {})",
            r["name"].as_str().unwrap_or("?"),
            rel(&options.template),
            r["function"].as_str().unwrap_or("?"),
            r["maximumRetryAttempts"]
        );
    }
    println!("  config: ALLOWED_REGIONS=\"{ALLOWED}\" REMOVAL_POLICY=ScheduleDeletion IGNORE_CALLER_ARNS=<the replicator's role>");
}

#[tokio::main]
async fn main() {
    let options = options();
    let style = Style {
        color: options.color,
    };
    let replicate = options.bin_dir.join("replicate");
    if !replicate.is_file() {
        eprintln!(
            "kms-demo: {} not found; build it first: cargo build --release -p replicate",
            replicate.display()
        );
        std::process::exit(2);
    }
    let failover = options.bin_dir.join("failover");
    let has_failover = failover.is_file();
    let _ = std::fs::remove_dir_all(&options.log_dir);
    let cloud = start_cloud(&options, &replicate, has_failover.then_some(&*failover)).await;
    let reader = AwsKms::new(&cloud.sdk_config(ADMIN_ACCESS_KEY, HOME).await);
    print_header(&style, &cloud, &options, has_failover).await;

    let mut demo = Demo::new(cloud, style, reader, has_failover, steps::STEPS);
    let started = Instant::now();
    let outcome = steps::run(&mut demo).await;
    if let Err(e) = &outcome {
        println!("  {} {e}", demo.style.red("✘ stopped:"));
    }
    let ok = demo.summary(outcome.is_ok(), started, &options.log_dir);
    demo.cloud.shutdown();
    tokio::time::sleep(Duration::from_millis(100)).await;
    std::process::exit(if ok { 0 } else { 1 });
}
