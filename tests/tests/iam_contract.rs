//! The IAM contract between the code and `template.yaml`: every AWS operation a function calls
//! is allowed to that function's role, and the role allows nothing the function does not call.
//!
//! The operations are derived from the code, not from a list: each function's handler runs
//! journeys on the KMS twin that exercise every path with a write, and the twin's call log says
//! which operations it made. A separate check reads the AWS adapters' source, so that an
//! operation added to an adapter but missed by the journeys fails here too.

use failover::Failover;
use failover::FailoverSettings;
use integration_tests::{as_function, config, deliver_trail, seed_primary, PRIMARY_REGION};
use kms_replicator::config::RemovalPolicy;
use kms_replicator::model::Tag;
use kms_replicator::{Config, Kms};
use reconcile::{Reconciler, Settings};
use serde_json::{json, Value};
use serde_yaml::Value as Yaml;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;
use twin::{is_replicator, Twin, ADMIN_USER, FAILOVER_ROLE, RECONCILE_ROLE};

const WEST: &str = "us-west-2";

fn schedule_deletion_config() -> Config {
    let mut cfg = config();
    cfg.removal = RemovalPolicy::ScheduleDeletion {
        pending_window_days: 7,
    };
    cfg
}

/// The IAM actions a twin's call log shows, for calls made as the replicator's role.
fn actions_called(twin: &Twin) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for call in twin.calls() {
        if !is_replicator(&call.caller) {
            continue;
        }
        out.insert(call.op.iam_action());
    }
    if !twin.audit_events().is_empty() {
        out.insert("events:PutEvents".into());
    }
    out
}

/// Permissions an operation needs besides its own action: ReplicateKey creates the replica
/// (kms:CreateKey in the replica's Region) and tags it (kms:TagResource there).
fn implied(called: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = called.clone();
    if called.contains("kms:ReplicateKey") {
        out.insert("kms:CreateKey".into());
        out.insert("kms:TagResource".into());
    }
    out
}

async fn admin_changes_everything(twin: &Twin, key_id: &str) {
    let admin = twin.with_caller(ADMIN_USER);
    let policy = twin
        .key(PRIMARY_REGION, key_id)
        .unwrap()
        .policy
        .replace("payments-app", "payments-app-v2");
    admin
        .put_key_policy(PRIMARY_REGION, key_id, &policy)
        .await
        .unwrap();
    admin
        .update_key_description(PRIMARY_REGION, key_id, "v2")
        .await
        .unwrap();
    admin
        .untag_resource(PRIMARY_REGION, key_id, &["team".into()])
        .await
        .unwrap();
    admin
        .delete_alias(PRIMARY_REGION, "alias/payments-ledger")
        .await
        .unwrap();
    // An alias moves from the other key to this one: a conflict in replica Regions, left to a
    // person (no role may UpdateAlias).
    admin
        .update_alias(PRIMARY_REGION, "alias/shared", key_id)
        .await
        .unwrap();
    // A Region leaves the tag (ScheduleDeletion) ...
    admin
        .tag_resource(PRIMARY_REGION, key_id, &[Tag::new("replicate-to", WEST)])
        .await
        .unwrap();
}

/// Two tagged primaries replicated to us-west-2 and eu-west-1, the second holding alias/shared;
/// returns the first.
async fn two_replicated_keys(twin: &Twin) -> String {
    let admin = twin.with_caller(ADMIN_USER);
    let key = seed_primary(twin).await;
    let tag = [Tag::new("replicate-to", "us-west-2 eu-west-1")];
    admin
        .tag_resource(PRIMARY_REGION, &key, &tag)
        .await
        .unwrap();
    let other = admin
        .create_key(PRIMARY_REGION, true, None, "other", &tag)
        .key_id;
    admin
        .create_alias(PRIMARY_REGION, "alias/shared", &other)
        .await
        .unwrap();
    key
}

async fn replicate_drain(twin: &Twin, cfg: &Config) {
    let (_, errors) = deliver_trail(twin, cfg).await;
    assert!(errors.is_empty(), "handled: {errors:?}");
}

async fn replicate_journeys() -> BTreeSet<String> {
    let twin = Twin::new();
    let cfg = schedule_deletion_config();
    let key = two_replicated_keys(&twin).await;
    replicate_drain(&twin, &cfg).await;
    admin_changes_everything(&twin, &key).await;
    replicate_drain(&twin, &cfg).await;
    // ... and comes back: the replica pending deletion is restored.
    twin.with_caller(ADMIN_USER)
        .tag_resource(
            PRIMARY_REGION,
            &key,
            &[Tag::new("replicate-to", "us-west-2 eu-west-1")],
        )
        .await
        .unwrap();
    replicate_drain(&twin, &cfg).await;
    actions_called(&twin)
}

async fn reconcile_journeys() -> BTreeSet<String> {
    let twin = Twin::new();
    let cfg = schedule_deletion_config();
    let settings = Settings::default();
    let kms = as_function(&twin, &cfg, RECONCILE_ROLE);
    let r = Reconciler {
        kms: &kms,
        tags: &kms,
        audit: &twin,
        config: &cfg,
        settings: &settings,
        limiter: None,
    };
    let sweep = || async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
        r.handle(
            &json!({"source": "aws.events", "detail-type": "Scheduled Event",
            "time": "2026-11-23T10:00:00Z", "detail": {}}),
            Some(deadline),
        )
        .await
        .expect("a sweep")
    };
    let key = two_replicated_keys(&twin).await;
    twin.take_trail(); // no event is ever delivered: the sweep finds everything itself
    sweep().await;
    admin_changes_everything(&twin, &key).await;
    sweep().await;
    twin.with_caller(ADMIN_USER)
        .tag_resource(
            PRIMARY_REGION,
            &key,
            &[Tag::new("replicate-to", "us-west-2 eu-west-1")],
        )
        .await
        .unwrap();
    sweep().await;
    actions_called(&twin)
}

async fn failover_journeys() -> BTreeSet<String> {
    let twin = Twin::new();
    let cfg = schedule_deletion_config();
    two_replicated_keys(&twin).await;
    replicate_drain(&twin, &cfg).await;
    twin.reset_calls();
    let audit_before = twin.audit_events().len();
    let settings = || FailoverSettings {
        wait: Duration::from_secs(5),
        first_poll: Duration::from_millis(5),
        max_poll: Duration::from_millis(20),
        ..FailoverSettings::default()
    };
    let run = |input: Value| {
        let twin = twin.clone();
        let cfg = cfg.clone();
        async move {
            Failover {
                kms: &as_function(&twin, &cfg, FAILOVER_ROLE),
                audit: &twin,
                config: &cfg,
                settings: settings(),
            }
            .handle(&input, None)
            .await
            .expect("a report")
        }
    };
    // One key by alias, then the rest of the Region in bulk.
    run(json!({"key": "alias/payments", "region": PRIMARY_REGION, "to": WEST})).await;
    run(json!({"from": PRIMARY_REGION, "to": WEST})).await;
    let mut called = actions_called(&twin);
    if twin.audit_events().len() == audit_before {
        called.remove("events:PutEvents");
    }
    called
}

// ---- the template ------------------------------------------------------------------------

fn template() -> Yaml {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).expect("template.yaml parses")
}

fn strings(v: &Yaml) -> Vec<String> {
    match v {
        Yaml::String(s) => vec![s.clone()],
        Yaml::Sequence(items) => items.iter().flat_map(strings).collect(),
        _ => Vec::new(),
    }
}

/// Every statement a role is granted: those of its inline policies and of the stack's managed
/// policies it attaches, with `!If [cond, statement, NoValue]` resolved as if every condition
/// held (the widest the role can be).
fn role_statements(template: &Yaml, role: &str) -> Vec<Yaml> {
    let resources = &template["Resources"];
    let properties = &resources[role]["Properties"];
    let mut documents: Vec<&Yaml> = properties["Policies"]
        .as_sequence()
        .into_iter()
        .flatten()
        .map(|policy| &policy["PolicyDocument"])
        .collect();
    for arn in properties["ManagedPolicyArns"]
        .as_sequence()
        .into_iter()
        .flatten()
    {
        let name = match arn {
            Yaml::Tagged(t) if t.tag == "!Ref" => t.value.as_str().unwrap(),
            other => panic!("{role} attaches a policy that is not one of the stack's: {other:?}"),
        };
        let policy = &resources[name];
        assert_eq!(
            policy["Type"].as_str(),
            Some("AWS::IAM::ManagedPolicy"),
            "{role} attaches {name}"
        );
        documents.push(&policy["Properties"]["PolicyDocument"]);
    }
    let mut out = Vec::new();
    for document in documents {
        for s in document["Statement"].as_sequence().unwrap() {
            match s {
                Yaml::Tagged(t) if t.tag == "!If" => {
                    out.push(t.value.as_sequence().unwrap()[1].clone());
                }
                other => out.push(other.clone()),
            }
        }
    }
    out
}

/// Allowed actions of a function's role, by service prefix (`kms:`, `events:`, `tag:`,
/// `cloudtrail:`, `cloudwatch:`).
fn allowed_actions(template: &Yaml, function: &str) -> BTreeSet<String> {
    let role_ref = &template["Resources"][function]["Properties"]["Role"];
    let Yaml::Tagged(t) = role_ref else {
        panic!("{function} has no Role: !GetAtt ...");
    };
    let role_name = t
        .value
        .as_str()
        .unwrap()
        .trim_end_matches(".Arn")
        .to_string();
    role_statements(template, &role_name)
        .iter()
        .filter(|s| s["Effect"].as_str() == Some("Allow"))
        .flat_map(|s| strings(&s["Action"]))
        .filter(|a| {
            ["kms:", "events:", "tag:", "cloudtrail:", "cloudwatch:"]
                .iter()
                .any(|p| a.starts_with(p))
        })
        .collect()
}

/// Every operation the AWS adapters can send, read from their source.
fn adapter_operations() -> BTreeSet<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/src/aws");
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let source = std::fs::read_to_string(&path).unwrap();
        let prefix = match path.file_name().unwrap().to_str().unwrap() {
            "kms.rs" => "kms",
            "eventbridge.rs" => "events",
            "tagging.rs" => "tag",
            _ => continue,
        };
        // `.client(region)` / `self.client` followed by `.operation_name()`.
        let compact: String = source.split_whitespace().collect();
        for piece in compact
            .split(".client")
            .skip(1)
            .chain(compact.split("self.client").skip(1))
        {
            let after = piece
                .trim_start_matches(|c| c != ')')
                .trim_start_matches(')');
            if let Some(rest) = after.strip_prefix('.') {
                let op: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if !op.is_empty() && rest[op.len()..].starts_with("()") {
                    out.insert(format!("{prefix}:{}", pascal(&op)));
                }
            }
        }
    }
    out
}

/// Every operation the pipeline probe (`shared/src/aws/pipeline.rs`) can send: its clients
/// are named `cloudtrail`, `events` and `self.cloudwatch`.
fn pipeline_operations() -> BTreeSet<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/src/aws/pipeline.rs");
    let compact: String = std::fs::read_to_string(path)
        .unwrap()
        .split_whitespace()
        .collect();
    let mut out = BTreeSet::new();
    for (client, prefix) in [
        ("cloudtrail.", "cloudtrail"),
        ("events.", "events"),
        ("cloudwatch.", "cloudwatch"),
    ] {
        for piece in compact.split(client).skip(1) {
            let op: String = piece
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if !op.is_empty() && op != "get" && piece[op.len()..].starts_with("()") {
                out.insert(format!("{prefix}:{}", pascal(&op)));
            }
        }
    }
    out
}

#[test]
fn the_pipeline_check_is_allowed_its_six_read_only_calls_and_only_reconcile_has_them() {
    let ops = pipeline_operations();
    let expected: BTreeSet<String> = [
        "cloudtrail:DescribeTrails",
        "cloudtrail:GetTrailStatus",
        "cloudtrail:GetEventSelectors",
        "events:ListRules",
        "events:ListTargetsByRule",
        "cloudwatch:GetMetricData",
    ]
    .map(String::from)
    .into();
    assert_eq!(ops, expected, "the probe's source scan");
    let template = template();
    for function in ["ReplicateFunction", "ReconcileFunction", "FailoverFunction"] {
        let allowed = all_allowed_actions(&template, function);
        for op in &ops {
            assert_eq!(
                allowed.contains(op),
                function == "ReconcileFunction",
                "{function} and {op}"
            );
        }
        assert!(
            !allowed
                .iter()
                .any(|a| a.starts_with("cloudtrail:") || a.starts_with("cloudwatch:"))
                || function == "ReconcileFunction",
            "{function}: {allowed:?}"
        );
    }
    let reconcile = all_allowed_actions(&template, "ReconcileFunction");
    let monitoring: BTreeSet<String> = reconcile
        .into_iter()
        .filter(|a| a.starts_with("cloudtrail:") || a.starts_with("cloudwatch:"))
        .collect();
    let expected_monitoring: BTreeSet<String> = expected
        .iter()
        .filter(|a| !a.starts_with("events:"))
        .cloned()
        .collect();
    assert_eq!(
        monitoring, expected_monitoring,
        "nothing more than the probe's reads"
    );
}

/// Every action a function's role allows, whatever the service.
fn all_allowed_actions(template: &Yaml, function: &str) -> BTreeSet<String> {
    let Yaml::Tagged(t) = &template["Resources"][function]["Properties"]["Role"] else {
        panic!("{function} has no Role: !GetAtt ...");
    };
    let role = t
        .value
        .as_str()
        .unwrap()
        .trim_end_matches(".Arn")
        .to_string();
    role_statements(template, &role)
        .iter()
        .filter(|s| s["Effect"].as_str() == Some("Allow"))
        .flat_map(|s| strings(&s["Action"]))
        .collect()
}

/// True when the function's own crate calls the sync engine.
fn function_source_runs_sync(function: &str) -> bool {
    let dir = function.trim_end_matches("Function").to_ascii_lowercase();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../functions/{dir}/src"));
    std::fs::read_dir(&src)
        .unwrap_or_else(|e| panic!("{}: {e}", src.display()))
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .any(|code| code.contains("Syncer::new") || code.contains("Syncer {"))
}

fn pascal(snake: &str) -> String {
    snake
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

#[tokio::test]
async fn every_function_is_allowed_exactly_what_it_calls() {
    let template = template();
    let journeys = [
        ("ReplicateFunction", replicate_journeys().await),
        ("ReconcileFunction", reconcile_journeys().await),
        ("FailoverFunction", failover_journeys().await),
    ];
    // The replicate journeys exercise every write sync can make; a function whose code runs
    // sync needs all of them, whatever its own journeys happened to meet.
    let sync_needs = journeys[0].1.clone();
    let mut problems = Vec::new();
    let mut all_called = BTreeSet::new();
    for (function, called) in &journeys {
        let allowed = allowed_actions(&template, function);
        let mut needed = implied(called);
        if function_source_runs_sync(function) {
            needed.extend(implied(&sync_needs));
        }
        if *function == "ReconcileFunction" {
            // {"check":"pipeline"}: read-only calls the twin does not model (no journey makes
            // them), taken from the probe's source.
            needed.extend(pipeline_operations());
        }
        for missing in needed.difference(&allowed) {
            problems.push(format!(
                "{function} calls {missing} but its role does not allow it"
            ));
        }
        for extra in allowed.difference(&needed) {
            problems.push(format!(
                "{function}'s role allows {extra}, which it never calls"
            ));
        }
        all_called.extend(called.iter().cloned());
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // The journeys reach every operation the adapters can send.
    let adapter_ops = adapter_operations();
    assert!(
        adapter_ops.len() >= 16,
        "adapter scan found too little: {adapter_ops:?}"
    );
    let unexercised: Vec<_> = adapter_ops.difference(&all_called).collect();
    assert!(
        unexercised.is_empty(),
        "adapter operations no journey exercised: {unexercised:?}"
    );
}

#[test]
fn only_the_failover_function_may_update_the_primary_region() {
    let template = template();
    for function in ["ReplicateFunction", "ReconcileFunction", "FailoverFunction"] {
        let allowed = allowed_actions(&template, function);
        assert_eq!(
            allowed.contains("kms:UpdatePrimaryRegion"),
            function == "FailoverFunction",
            "{function}"
        );
    }
}
