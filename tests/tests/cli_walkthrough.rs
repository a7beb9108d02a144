//! The walkthroughs of docs/local-cloud.md ("A Deny added just before a failover", "Imported
//! key material") as a user runs them: the `kms-twin` binary with the real `replicate` and
//! `failover` functions, as `make twin` starts it, and a script of `tests/cli/` driving it with
//! the AWS CLI (and openssl, to wrap key material for import).
//!
//! Needs `.venv/bin/aws` (`awscli` from requirements-dev.txt, which `make check-template`
//! installs) or `AWS_CLI=/path/to/aws`. Without it the test prints why and passes, unless
//! `CLI_REQUIRED=1` (`make test`) makes it fail.

use integration_tests::bins::{bin_dir, binary, root};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn aws_cli() -> Option<PathBuf> {
    let path = std::env::var_os("AWS_CLI")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".venv/bin/aws"));
    path.is_file().then_some(path)
}

/// Runs `tests/cli/<script>` against a `kms-twin` started as `make twin` starts it; its
/// output, or `None` when the AWS CLI is absent and not required.
fn walkthrough(script: &str) -> Option<String> {
    let Some(aws) = aws_cli() else {
        let msg = "SKIPPED the CLI walkthrough: .venv/bin/aws is absent (make check-template \
                   installs it, or set AWS_CLI=/path/to/aws)";
        assert!(
            std::env::var("CLI_REQUIRED").map_or(true, |v| v != "1"),
            "{msg} (CLI_REQUIRED=1)"
        );
        eprintln!("{msg}");
        return None;
    };
    let bins = bin_dir();
    let twin = binary("kms-twin").expect("kms-twin is built");
    let logs = std::env::temp_dir().join(format!("kms-cli-walkthrough-{}", std::process::id()));
    std::fs::create_dir_all(&logs).unwrap();
    let roles: Vec<String> = ["Replicate", "Reconcile", "Failover"]
        .iter()
        .map(|f| {
            format!("arn:aws:iam::111122223333:role/kms-replicator/kms-replicator-{f}FunctionRole")
        })
        .collect();
    // As `make twin` starts it.
    let mut child = Command::new(twin)
        .arg("--template")
        .arg(root().join("template.yaml"))
        .arg("--function")
        .arg(format!("replicate={}", bins.join("replicate").display()))
        .arg("--function")
        .arg(format!("failover={}", bins.join("failover").display()))
        .args([
            "--env",
            "ALLOWED_REGIONS=us-east-1 us-west-2 eu-west-1 ap-southeast-2",
        ])
        .arg("--env")
        .arg(format!("IGNORE_CALLER_ARNS={}", roles.join(" ")))
        .arg("--log-dir")
        .arg(&logs)
        .arg("--exit-on-stdin-close")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("kms-twin starts");
    let mut first = String::new();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    stdout.read_line(&mut first).unwrap();
    let endpoint = first
        .trim()
        .strip_prefix("KMS_TWIN_ENDPOINT=")
        .unwrap_or_else(|| panic!("first line: {first}"))
        .to_string();

    let out = Command::new(root().join("tests/cli").join(script))
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env("AWS", &aws)
        // Nothing from the machine's AWS configuration.
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env_remove("AWS_PROFILE")
        .output()
        .expect("the walkthrough runs");
    drop(child.stdin.take());
    let _ = child.wait();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{script} failed ({}):\n{text}\n{err}\n(function logs in {})",
        out.status,
        logs.display()
    );
    let _ = std::fs::remove_dir_all(&logs);
    Some(text)
}

#[test]
fn a_deny_added_before_a_failover_survives_it_through_make_twin_and_the_aws_cli() {
    let Some(text) = walkthrough("deny-before-failover.sh") else {
        return;
    };
    // What a person reads: the refusal, then the promotion, with the Deny in both Regions.
    assert!(text.contains("| failed target_not_up_to_date"), "{text}");
    assert!(text.contains("| promoted"), "{text}");
    for r in ["us-east-1", "us-west-2"] {
        assert!(text.contains(&format!("{r}: the Deny is there")), "{text}");
    }
}

#[test]
fn an_imported_material_replica_waits_is_told_how_and_decrypts_once_imported_through_the_cli() {
    let Some(text) = walkthrough("imported-material.sh") else {
        return;
    };
    assert!(text.contains("us-west-2: PendingImport"), "{text}");
    assert!(text.contains("the replicator says:"), "{text}");
    assert!(text.contains("IncorrectKeyMaterialException"), "{text}");
    assert!(
        text.contains("us-west-2 decrypted: nightly backup"),
        "{text}"
    );
}
