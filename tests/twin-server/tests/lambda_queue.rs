//! The local Lambda's timeout counts from when a sandbox takes an event, as Lambda's does: a
//! burst queued behind a busy sandbox is not timed out while it waits, and each invocation's
//! deadline header gives it the whole timeout.

use serde_json::json;
use std::time::Duration;
use twin_server::LocalCloud;

/// A function in Python (3.11 is on every machine the project supports): it takes each
/// event, works for 1.5 s, and answers how many milliseconds its deadline had left.
const SLOW_FUNCTION: &str = r#"#!/usr/bin/env python3
import json, os, time, urllib.request
api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime/invocation/"
while True:
    with urllib.request.urlopen(api + "next") as r:
        request_id = r.headers["Lambda-Runtime-Aws-Request-Id"]
        deadline_ms = int(r.headers["Lambda-Runtime-Deadline-Ms"])
    time.sleep(1.5)
    left = deadline_ms - int(time.time() * 1000)
    answer = urllib.request.Request(api + request_id + "/response",
                                    data=json.dumps({"msLeft": left}).encode(), method="POST")
    urllib.request.urlopen(answer).read()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_event_gets_the_whole_timeout_once_a_sandbox_takes_it() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("kms-twin-slow-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let binary = dir.join("slow");
    std::fs::write(&binary, SLOW_FUNCTION).unwrap();
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cloud = LocalCloud::builder()
        .function("slow", &binary)
        .timeout(Duration::from_secs(2))
        .log_dir(&dir)
        .start()
        .await
        .expect("local cloud starts");

    // Six events at once for one sandbox: the last waits 7.5 s in the queue, longer than the
    // 2 s timeout and the local Lambda's margin on top of it.
    let calls = (0..6).map(|n| {
        let cloud = &cloud;
        async move { cloud.invoke("slow", &json!({ "n": n })).await }
    });
    let answers = futures::future::join_all(calls).await;
    for answer in answers {
        let answer = answer.expect("every event is answered, none timed out in the queue");
        let left = answer["msLeft"].as_i64().expect("msLeft");
        assert!(
            (200..=2000).contains(&left),
            "the deadline counts from when the sandbox took the event: {left} ms were left"
        );
    }
}
