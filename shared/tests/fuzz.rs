//! Fuzzing the two parsers that take outside input: the event intake (anything EventBridge or
//! a person's test invocation may send) and the policy rewriter (any key policy a person may
//! write). Neither may panic, hang or blow up memory on any input; each either answers or
//! says clearly what is wrong. Arbitrary JSON, and real fixtures with parts cut out or
//! replaced, are the inputs.
//!
//! `make test` runs a few hundred cases of each. The long run (docs/testing.md, "Long runs"):
//! `PROPTEST_CASES=100000 cargo test --release -p kms-replicator --test fuzz`.

use kms_replicator::event::{parse_event, Intake};
use kms_replicator::policy::{rewrite_policy, MAX_POLICY_BYTES};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512)
}

/// Strings that matter to the parsers: Regions, ARNs, key ids, event names, and noise.
fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("us-east-1".to_string()),
        Just("eu-west-1".to_string()),
        Just("*".to_string()),
        Just("arn:aws:kms:us-east-1:111122223333:key/mrk-1".to_string()),
        Just("arn:aws:kms:us-east-1:111122223333:alias/x".to_string()),
        Just("arn:aws:iam::111122223333:role/r".to_string()),
        Just("s3.us-east-1.amazonaws.com".to_string()),
        Just("mrk-0123".to_string()),
        Just("alias/payments".to_string()),
        Just("TagResource".to_string()),
        Just("CreateKey".to_string()),
        Just("kms.amazonaws.com".to_string()),
        Just("AWS API Call via CloudTrail".to_string()),
        Just("aws.kms".to_string()),
        Just("Deny".to_string()),
        Just("Allow".to_string()),
        ".{0,12}",
    ]
}

fn key_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("detail".to_string()),
        Just("detail-type".to_string()),
        Just("source".to_string()),
        Just("region".to_string()),
        Just("eventName".to_string()),
        Just("eventSource".to_string()),
        Just("awsRegion".to_string()),
        Just("requestParameters".to_string()),
        Just("responseElements".to_string()),
        Just("resources".to_string()),
        Just("keyId".to_string()),
        Just("tags".to_string()),
        Just("userIdentity".to_string()),
        Just("errorCode".to_string()),
        Just("Statement".to_string()),
        Just("Effect".to_string()),
        Just("Principal".to_string()),
        Just("Service".to_string()),
        Just("Resource".to_string()),
        Just("NotResource".to_string()),
        Just("Condition".to_string()),
        Just("StringEquals".to_string()),
        Just("StringNotLike".to_string()),
        Just("kms:ViaService".to_string()),
        Just("aws:RequestedRegion".to_string()),
        "[a-zA-Z:]{1,10}",
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        word().prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 96, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key_name(), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn fixtures() -> Vec<Value> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/cloudtrail");
    let mut out: Vec<Value> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .map(|e| serde_json::from_str(&std::fs::read_to_string(e.path()).unwrap()).unwrap())
        .collect();
    out.sort_by_key(|v| v.to_string());
    out
}

/// Every path to a member of `v`, as object keys and array indexes.
fn paths(v: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                prefix.push(k.clone());
                out.push(prefix.clone());
                paths(x, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                prefix.push(i.to_string());
                out.push(prefix.clone());
                paths(x, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

/// Replaces (or, with `None`, removes) the member at `path`.
fn mutate(v: &mut Value, path: &[String], with: Option<Value>) {
    let (last, parents) = path.split_last().unwrap();
    let mut at = v;
    for p in parents {
        at = match at {
            Value::Object(m) => m.get_mut(p).unwrap(),
            Value::Array(a) => &mut a[p.parse::<usize>().unwrap()],
            _ => return,
        };
    }
    match (at, with) {
        (Value::Object(m), None) => {
            m.remove(last);
        }
        (Value::Object(m), Some(x)) => {
            m.insert(last.clone(), x);
        }
        (Value::Array(a), None) => {
            a.remove(last.parse::<usize>().unwrap());
        }
        (Value::Array(a), Some(x)) => a[last.parse::<usize>().unwrap()] = x,
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn intake_never_panics_on_arbitrary_json(v in json_value()) {
        let _ = parse_event(&v, "replicate-to", &["arn:aws:iam::111122223333:role/r".into()]);
    }

    #[test]
    fn intake_of_a_damaged_real_record_answers_or_explains(
        which in any::<prop::sample::Index>(),
        where_ in any::<prop::sample::Index>(),
        with in prop::option::of(json_value()),
    ) {
        let all = fixtures();
        let mut event = all[which.index(all.len())].clone();
        let mut ps = Vec::new();
        paths(&event, &mut Vec::new(), &mut ps);
        let path = ps[where_.index(ps.len())].clone();
        mutate(&mut event, &path, with);
        match parse_event(&event, "replicate-to", &[]) {
            Ok(Intake::Sync(t)) => {
                prop_assert!(!t.key.is_empty() && !t.region.is_empty(), "{t:?}");
            }
            Ok(Intake::Ignore { reason }) => prop_assert!(!reason.is_empty()),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn the_rewriter_never_panics_and_answers_within_the_limit_or_says_why(
        doc in json_value(),
        statements in prop::collection::vec(json_value(), 0..6),
        as_object in any::<bool>(),
    ) {
        let mut doc = doc;
        if as_object {
            doc = json!({"Version": "2012-10-17", "Statement": statements});
        }
        let text = doc.to_string();
        match rewrite_policy(&text, "us-east-1", "eu-west-1") {
            Ok((out, rewrites)) => {
                prop_assert!(out.len() <= MAX_POLICY_BYTES);
                let parsed: Value = serde_json::from_str(&out).expect("valid JSON out");
                prop_assert!(parsed.is_object());
                if rewrites.is_empty() {
                    prop_assert_eq!(out, text);
                }
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn the_rewriter_never_panics_on_arbitrary_text(text in ".{0,200}") {
        let _ = rewrite_policy(&text, "us-east-1", "eu-west-1");
    }
}

#[test]
fn deeply_nested_input_is_refused_cleanly_not_a_stack_overflow() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(rewrite_policy(&deep, "us-east-1", "eu-west-1").is_err());
    // The function's runtime hands the event over already parsed; serde_json's own depth
    // limit refuses it before the intake sees it.
    assert!(serde_json::from_str::<Value>(&deep).is_err());
}

#[test]
fn a_huge_policy_is_refused_by_size_not_by_memory() {
    let big = json!({"Statement": [{"Effect": "Allow", "Resource": "arn:aws:kms:us-east-1:1:key/k",
        "Sid": "x".repeat(5_000_000)}]})
    .to_string();
    assert!(rewrite_policy(&big, "us-east-1", "eu-west-1").is_err());
}
