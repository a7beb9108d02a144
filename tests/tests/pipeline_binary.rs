//! `{"check":"pipeline"}` through the real reconcile binary in the local cloud: the invocation
//! is answered by the health check (every managed Region listed, each with what could not be
//! read, since the local cloud serves no CloudTrail or CloudWatch), and nothing is swept or
//! written. A check that names no known check is refused.

use integration_tests::bins::{binary, root};
use serde_json::json;
use std::time::Duration;
use twin::FUNCTION_ROLES;
use twin_server::LocalCloud;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reconcile_binary_answers_the_pipeline_check_and_sweeps_nothing() {
    let reconcile = binary("reconcile").expect("target/<profile>/reconcile was built");
    let cloud = LocalCloud::builder()
        .template(root().join("template.yaml"))
        .function("reconcile", reconcile)
        .env("ALLOWED_REGIONS", "us-east-1 us-west-2 eu-west-1")
        .env("IGNORE_CALLER_ARNS", &FUNCTION_ROLES.join(" "))
        .env("AWS_MAX_ATTEMPTS", "1")
        .timeout(Duration::from_secs(60))
        .start()
        .await
        .expect("local cloud starts");
    cloud.twin().reset_calls();

    let out = cloud
        .invoke("reconcile", &json!({"check": "pipeline"}))
        .await
        .expect("an answer");

    assert_eq!(out["check"], "pipeline", "{out:#}");
    assert_eq!(out["ok"], false, "{out:#}");
    let regions: Vec<&str> = out["regions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["region"].as_str().unwrap())
        .collect();
    assert_eq!(regions, ["us-east-1", "us-west-2", "eu-west-1"]);
    for r in out["regions"].as_array().unwrap() {
        let problems = r["problems"].as_array().unwrap();
        assert!(
            problems
                .iter()
                .any(|p| p.as_str().unwrap().contains("could not be read")),
            "{r:#}"
        );
    }
    assert!(
        cloud.twin().calls().is_empty(),
        "no KMS call: {:?}",
        cloud.twin().calls()
    );

    let refused = cloud
        .invoke("reconcile", &json!({"check": "everything"}))
        .await
        .expect_err("an unknown check");
    assert!(refused.message.contains("unknown check"), "{refused:?}");
}
