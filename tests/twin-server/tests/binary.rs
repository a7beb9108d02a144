//! The `kms-twin` binary as a user or a script starts it: it prints its endpoint, serves the
//! AWS SDK, and stops when its caller closes its standard input.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[tokio::test]
async fn kms_twin_prints_its_endpoint_serves_the_sdk_and_exits_when_stdin_closes() {
    let dir = std::env::temp_dir().join(format!("kms-twin-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port_file = dir.join("port");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kms-twin"))
        .args(["--exit-on-stdin-close", "--port-file"])
        .arg(&port_file)
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
    let port: u16 = std::fs::read_to_string(&port_file)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(endpoint, format!("http://127.0.0.1:{port}"));

    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&endpoint)
        .region(aws_config::Region::new("eu-west-1"))
        .credentials_provider(aws_sdk_kms::config::Credentials::new(
            "admin", "x", None, None, "test",
        ))
        .load()
        .await;
    let kms = aws_sdk_kms::Client::new(&sdk);
    let meta = kms
        .create_key()
        .multi_region(true)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert!(meta.key_id().starts_with("mrk-"));
    assert_eq!(
        meta.arn().unwrap(),
        format!("arn:aws:kms:eu-west-1:111122223333:key/{}", meta.key_id()),
        "the Region comes from the request's SigV4 scope"
    );
    let listed = kms.list_keys().send().await.unwrap();
    assert_eq!(listed.keys().len(), 1);

    drop(child.stdin.take());
    drop(stdout);
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "kms-twin still runs after its stdin closed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
