//! Mirroring a key policy into another Region: what is rewritten, what never is, and the
//! invariant that a rewrite never widens access.

use kms_replicator::policy::{
    grant_shape, rewrite_policy, same_policy, PolicyError, Rewrite, MAX_POLICY_BYTES,
};
use proptest::prelude::*;
use serde_json::{json, Value};

const FROM: &str = "us-east-1";
const TO: &str = "eu-west-1";

fn rewrite(policy: &Value) -> (Value, Vec<Rewrite>) {
    let (text, rewrites) = rewrite_policy(&policy.to_string(), FROM, TO).expect("valid policy");
    (serde_json::from_str(&text).unwrap(), rewrites)
}

fn policy_of(statements: Value) -> Value {
    json!({"Version": "2012-10-17", "Id": "key-policy", "Statement": statements})
}

#[test]
fn via_service_values_get_the_target_region() {
    let p = policy_of(json!([{
        "Sid": "ViaS3", "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::111122223333:role/app"},
        "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": "*",
        "Condition": {"StringEquals": {"kms:ViaService": ["s3.us-east-1.amazonaws.com", "rds.us-east-1.amazonaws.com"]}}
    }]));
    let (out, rewrites) = rewrite(&p);
    assert_eq!(
        out["Statement"][0]["Condition"]["StringEquals"]["kms:ViaService"],
        json!(["s3.eu-west-1.amazonaws.com", "rds.eu-west-1.amazonaws.com"])
    );
    assert_eq!(rewrites.len(), 2);
    assert_eq!(rewrites[0].statement, "ViaS3");
    assert_eq!(
        rewrites[0].location,
        "Condition.StringEquals.kms:ViaService"
    );
}

#[test]
fn via_service_wildcards_are_left_alone() {
    let p = policy_of(json!([{
        "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:Decrypt", "Resource": "*",
        "Condition": {"StringLike": {"kms:ViaService": "logs.*.amazonaws.com"}}
    }]));
    let (out, rewrites) = rewrite(&p);
    assert_eq!(out, p);
    assert!(rewrites.is_empty());
}

#[test]
fn regional_service_principals_get_the_target_region() {
    let p = policy_of(json!([{
        "Sid": "Logs", "Effect": "Allow",
        "Principal": {"Service": "logs.us-east-1.amazonaws.com"},
        "Action": ["kms:Encrypt*", "kms:Decrypt*"], "Resource": "*",
        "Condition": {"ArnLike": {"kms:EncryptionContext:aws:logs:arn": "arn:aws:logs:us-east-1:111122223333:log-group:*"}}
    }]));
    let (out, rewrites) = rewrite(&p);
    assert_eq!(
        out["Statement"][0]["Principal"]["Service"],
        "logs.eu-west-1.amazonaws.com"
    );
    assert_eq!(
        out["Statement"][0]["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"],
        "arn:aws:logs:eu-west-1:111122223333:log-group:*"
    );
    assert_eq!(rewrites.len(), 2);
}

#[test]
fn global_service_principals_stay() {
    let p = policy_of(json!([{
        "Effect": "Allow", "Principal": {"Service": ["cloudtrail.amazonaws.com", "delivery.logs.amazonaws.com"]},
        "Action": "kms:GenerateDataKey*", "Resource": "*"
    }]));
    assert_eq!(rewrite(&p).0, p);
}

#[test]
fn arns_in_resource_and_conditions_get_the_target_region_including_the_keys_own() {
    let own = "arn:aws:kms:us-east-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab";
    let p = policy_of(json!([{
        "Sid": "Own", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
        "Action": "kms:*", "Resource": own,
    }, {
        "Sid": "Trail", "Effect": "Allow", "Principal": {"Service": "cloudtrail.amazonaws.com"},
        "Action": "kms:GenerateDataKey*", "Resource": "*",
        "Condition": {
            "StringEquals": {"aws:SourceArn": "arn:aws:cloudtrail:us-east-1:111122223333:trail/main"},
            "StringLike": {"kms:EncryptionContext:aws:cloudtrail:arn": "arn:aws:cloudtrail:*:111122223333:trail/*"}
        }
    }]));
    let (out, rewrites) = rewrite(&p);
    assert_eq!(
        out["Statement"][0]["Resource"],
        "arn:aws:kms:eu-west-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab"
    );
    assert_eq!(
        out["Statement"][1]["Condition"]["StringEquals"]["aws:SourceArn"],
        "arn:aws:cloudtrail:eu-west-1:111122223333:trail/main"
    );
    // A wildcard Region stays a wildcard.
    assert_eq!(
        out["Statement"][1]["Condition"]["StringLike"]["kms:EncryptionContext:aws:cloudtrail:arn"],
        "arn:aws:cloudtrail:*:111122223333:trail/*"
    );
    assert_eq!(rewrites.len(), 2);
}

#[test]
fn requested_region_equal_to_the_source_is_rewritten() {
    let p = policy_of(json!([{
        "Sid": "DenyElsewhere", "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "kms:*", "Resource": "*",
        "Condition": {"StringNotEquals": {"aws:RequestedRegion": "us-east-1"}}
    }]));
    let (out, rewrites) = rewrite(&p);
    assert_eq!(
        out["Statement"][0]["Condition"]["StringNotEquals"]["aws:RequestedRegion"],
        json!("eu-west-1")
    );
    assert_eq!(out["Statement"][0]["Effect"], "Deny");
    assert_eq!(rewrites.len(), 1);
}

#[test]
fn a_requested_region_list_naming_another_region_is_copied_as_it_is() {
    let p = policy_of(json!([{
        "Sid": "DenyElsewhere", "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "kms:*", "Resource": "*",
        "Condition": {"StringNotEquals": {"aws:RequestedRegion": ["us-east-1", "us-west-2"]}}
    }]));
    let (out, rewrites) = rewrite(&p);
    assert_eq!(out, p);
    assert!(rewrites.is_empty());
}

#[test]
fn replica_and_primary_region_lists_are_untouched() {
    let p = policy_of(json!([{
        "Sid": "Replicate", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/admin"},
        "Action": ["kms:ReplicateKey", "kms:UpdatePrimaryRegion"], "Resource": "*",
        "Condition": {"StringEquals": {
            "kms:ReplicaRegion": ["us-east-1", "eu-west-1"],
            "kms:PrimaryRegion": "us-east-1"
        }}
    }]));
    let (out, rewrites) = rewrite(&p);
    assert_eq!(out, p);
    assert!(rewrites.is_empty());
}

#[test]
fn iam_principals_and_unrelated_strings_mentioning_the_region_are_untouched() {
    let p = policy_of(json!([{
        "Sid": "us-east-1 admins", "Effect": "Allow",
        "Principal": {"AWS": ["arn:aws:iam::111122223333:role/us-east-1-admin", "111122223333"]},
        "Action": "kms:*", "Resource": "*",
        "Condition": {"StringEquals": {"aws:PrincipalTag/home": "us-east-1"}}
    }]));
    let (out, rewrites) = rewrite(&p);
    assert_eq!(out, p);
    assert!(rewrites.is_empty());
}

#[test]
fn a_policy_without_rewrites_is_returned_byte_for_byte() {
    let text = "{\n  \"Version\" : \"2012-10-17\",\n  \"Statement\" : [ {\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"arn:aws:iam::111122223333:root\"},\"Action\":\"kms:*\",\"Resource\":\"*\"} ]\n}";
    let (out, rewrites) = rewrite_policy(text, FROM, TO).unwrap();
    assert_eq!(out, text);
    assert!(rewrites.is_empty());
}

#[test]
fn a_single_statement_object_is_rewritten_too() {
    let p = json!({"Version": "2012-10-17", "Statement": {
        "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:Decrypt",
        "Resource": "arn:aws:kms:us-east-1:111122223333:key/mrk-1"
    }});
    let (out, _) = rewrite(&p);
    assert_eq!(
        out["Statement"]["Resource"],
        "arn:aws:kms:eu-west-1:111122223333:key/mrk-1"
    );
}

#[test]
fn a_policy_that_is_not_json_is_an_error() {
    assert!(rewrite_policy("not json", FROM, TO).is_err());
}

#[test]
fn same_policy_ignores_formatting_and_key_order() {
    assert!(same_policy(
        r#"{"a":1,"b":[1,2]}"#,
        "{ \"b\" : [1, 2],\n \"a\": 1 }"
    ));
    assert!(!same_policy(r#"{"a":1}"#, r#"{"a":2}"#));
}

#[test]
fn a_deny_keeps_the_source_context_and_gains_the_target_one() {
    // Multi-Region ciphertext is portable: the replica must still refuse what the primary
    // refuses, with the source Region's encryption context.
    let east_fn = "arn:aws:lambda:us-east-1:111122223333:function:exporter";
    let p = policy_of(json!([{
        "Sid": "NoExporter", "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "kms:Decrypt",
        "Resource": "*",
        "Condition": {"StringEquals": {"kms:EncryptionContext:aws:lambda:FunctionArn": east_fn}}
    }]));
    let (out, rewrites) = rewrite(&p);
    assert_eq!(
        out["Statement"][0]["Condition"]["StringEquals"]
            ["kms:EncryptionContext:aws:lambda:FunctionArn"],
        json!([
            east_fn,
            "arn:aws:lambda:eu-west-1:111122223333:function:exporter"
        ])
    );
    assert_eq!(rewrites.len(), 1);
    assert!(rewrites[0].kept);
}

#[test]
fn a_negated_operator_in_a_deny_is_rewritten_in_place() {
    let p = policy_of(json!([{
        "Sid": "OnlyViaS3", "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "kms:Decrypt",
        "Resource": "*",
        "Condition": {"StringNotEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}
    }]));
    let (out, rewrites) = rewrite(&p);
    assert_eq!(
        out["Statement"][0]["Condition"]["StringNotEquals"]["kms:ViaService"],
        "s3.eu-west-1.amazonaws.com"
    );
    assert!(!rewrites[0].kept);
}

#[test]
fn a_statement_that_names_another_region_is_copied_as_it_is_and_survives_a_round_trip() {
    let p = policy_of(json!([{
        "Sid": "ViaS3BothRegions", "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::111122223333:role/app"}, "Action": "kms:Decrypt",
        "Resource": "*",
        "Condition": {"StringEquals": {"kms:ViaService": ["s3.us-east-1.amazonaws.com", "s3.eu-west-1.amazonaws.com"]}}
    }]));
    let (there, rewrites) = rewrite_policy(&p.to_string(), FROM, TO).unwrap();
    assert!(rewrites.is_empty());
    // After a failover to eu-west-1, the policy comes back to us-east-1 unchanged.
    let (back, _) = rewrite_policy(&there, TO, FROM).unwrap();
    assert_eq!(serde_json::from_str::<Value>(&back).unwrap(), p);
}

#[test]
fn a_rewritten_policy_is_compact_so_a_policy_near_the_limit_still_fits() {
    // A compact policy of about 25 KB with Regional values in every statement.
    let stmts: Vec<Value> = (0..120)
        .map(|i| json!({
            "Sid": format!("App{i}"), "Effect": "Allow",
            "Principal": {"AWS": format!("arn:aws:iam::111122223333:role/application-role-{i}")},
            "Action": ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"], "Resource": "*",
            "Condition": {"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}
        }))
        .collect();
    let text = policy_of(Value::Array(stmts)).to_string();
    assert!(
        text.len() > 25_000 && text.len() < MAX_POLICY_BYTES,
        "{}",
        text.len()
    );
    let (out, rewrites) = rewrite_policy(&text, FROM, TO).unwrap();
    assert_eq!(rewrites.len(), 120);
    assert!(out.len() <= text.len() + 120, "{} bytes", out.len());
    assert!(!out.contains('\n'));
}

#[test]
fn a_mirrored_policy_over_the_limit_is_a_clear_error_not_a_write() {
    // Deny statements grow when they keep the source values: push one over the limit.
    let many: Vec<String> = (0..420)
        .map(|i| format!("arn:aws:lambda:us-east-1:111122223333:function:f{i:05}"))
        .collect();
    let text = policy_of(json!([{
        "Sid": "DenyMany", "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "kms:Decrypt",
        "Resource": "*",
        "Condition": {"StringEquals": {"kms:EncryptionContext:aws:lambda:FunctionArn": many}}
    }]))
    .to_string();
    assert!(text.len() < MAX_POLICY_BYTES);
    match rewrite_policy(&text, FROM, TO) {
        Err(PolicyError::TooLarge { bytes }) => assert!(bytes > MAX_POLICY_BYTES),
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

// ---- properties: a rewrite never widens, and a round trip is stable ---------------------

fn region() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just(FROM.to_string()),
        1 => Just("us-west-2".to_string()),
        1 => Just("*".to_string())
    ]
}

fn statement() -> impl Strategy<Value = Value> {
    (
        prop_oneof![Just("Allow"), Just("Deny")],
        prop::collection::vec(
            prop_oneof![Just("kms:Decrypt"), Just("kms:*"), Just("kms:ReplicateKey"), Just("kms:Encrypt")],
            1..3,
        ),
        prop_oneof![
            Just(json!({"AWS": "arn:aws:iam::111122223333:root"})),
            Just(json!({"AWS": ["arn:aws:iam::111122223333:role/us-east-1-app", "*"]})),
            region().prop_map(|r| json!({"Service": format!("logs.{r}.amazonaws.com")})),
        ],
        region().prop_map(|r| format!("arn:aws:kms:{r}:111122223333:key/mrk-1")),
        region(),
        prop::collection::vec(region(), 0..3),
        prop_oneof![Just("StringEquals"), Just("StringNotEquals"), Just("ForAnyValue:StringLike")],
        any::<bool>(),
    )
        .prop_map(|(effect, actions, principal, resource, via, replica_regions, op, with_sid)| {
            let mut s = json!({
                "Effect": effect, "Action": actions, "Principal": principal, "Resource": resource,
                "Condition": {
                    op: {
                        "kms:ViaService": format!("ec2.{via}.amazonaws.com"),
                        "kms:ReplicaRegion": replica_regions,
                        "aws:RequestedRegion": via,
                    },
                    "ArnLike": {"aws:SourceArn": format!("arn:aws:sns:{via}:111122223333:topic")}
                }
            });
            if with_sid {
                s["Sid"] = json!("S");
            }
            s
        })
}

fn values(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// Every (location, values) of a statement's positive Region-bearing slots.
fn positive_slots(s: &Value) -> Vec<(String, Vec<String>)> {
    let mut out = vec![
        ("Resource".to_string(), values(&s["Resource"])),
        (
            "Principal.Service".to_string(),
            values(&s["Principal"]["Service"]),
        ),
    ];
    if let Some(ops) = s["Condition"].as_object() {
        for (op, block) in ops.iter().filter(|(op, _)| !op.contains("Not")) {
            for (k, v) in block.as_object().into_iter().flatten() {
                out.push((format!("{op}.{k}"), values(v)));
            }
        }
    }
    out
}

fn statements(p: &str) -> Vec<Value> {
    serde_json::from_str::<Value>(p).unwrap()["Statement"]
        .as_array()
        .unwrap()
        .clone()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn rewriting_keeps_statements_effects_actions_and_iam_principals(
        stmts in prop::collection::vec(statement(), 1..5)
    ) {
        let p = policy_of(Value::Array(stmts)).to_string();
        let (out, rewrites) = rewrite_policy(&p, FROM, TO).unwrap();
        prop_assert_eq!(grant_shape(&out), grant_shape(&p));
        for (b, a) in statements(&p).iter().zip(statements(&out).iter()) {
            for op in ["StringEquals", "StringNotEquals", "ForAnyValue:StringLike"] {
                prop_assert_eq!(
                    &b["Condition"][op]["kms:ReplicaRegion"],
                    &a["Condition"][op]["kms:ReplicaRegion"]
                );
            }
        }
        for r in &rewrites {
            prop_assert!(r.from.contains(FROM) && r.to.contains(TO));
        }
    }

    #[test]
    fn a_deny_never_loses_a_value_in_a_positive_position(
        stmts in prop::collection::vec(statement(), 1..5)
    ) {
        let p = policy_of(Value::Array(stmts)).to_string();
        let (out, _) = rewrite_policy(&p, FROM, TO).unwrap();
        for (b, a) in statements(&p).iter().zip(statements(&out).iter()) {
            if b["Effect"] != "Deny" {
                continue;
            }
            for ((loc, before), (_, after)) in positive_slots(b).iter().zip(positive_slots(a)) {
                for v in before {
                    prop_assert!(after.contains(v), "{loc}: {v} dropped from {after:?}");
                }
            }
        }
    }

    #[test]
    fn a_failover_round_trip_gives_back_the_policy_or_a_fixed_point_that_denies_more(
        stmts in prop::collection::vec(statement(), 1..5)
    ) {
        let p = policy_of(Value::Array(stmts)).to_string();
        let (there, _) = rewrite_policy(&p, FROM, TO).unwrap();
        let (back, _) = rewrite_policy(&there, TO, FROM).unwrap();
        for (orig, returned) in statements(&p).iter().zip(statements(&back).iter()) {
            if orig["Effect"] == "Allow" {
                // Allow statements come back exactly.
                prop_assert_eq!(orig, returned);
            }
        }
        // One more round trip changes nothing: no drift across repeated failovers.
        let (there2, _) = rewrite_policy(&back, FROM, TO).unwrap();
        let (back2, _) = rewrite_policy(&there2, TO, FROM).unwrap();
        prop_assert!(same_policy(&back, &back2));
    }
}

// ---- promotions: a Deny never narrows in any Region, after any number of them -----------

const LOG_GROUP_DENY_REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "us-west-2"];

/// The values of one positive slot of the first statement, e.g. `StringEquals.<key>`.
fn denied(policy: &str, op: &str, key: &str) -> Vec<String> {
    values(&statements(policy)[0]["Condition"][op][key])
}

#[test]
fn after_a_promotion_a_replica_keeps_the_deny_values_of_its_own_region() {
    // History 3: the primary in us-east-1 denies a log group's context; eu-west-1 gets both
    // Regions' values. After a promotion to us-west-2 the new primary's Deny names two
    // Regions; eu-west-1 must still deny its own Region's value, and us-east-1 its own.
    let log_group = |r: &str| format!("arn:aws:logs:{r}:111122223333:log-group:audit");
    let key = "kms:EncryptionContext:aws:logs:arn";
    let p = policy_of(json!([{
        "Sid": "NoAuditLogs", "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "kms:Decrypt",
        "Resource": "*", "Condition": {"ArnLike": {key: log_group("us-east-1")}}
    }]))
    .to_string();
    let (eu, _) = rewrite_policy(&p, "us-east-1", "eu-west-1").unwrap();
    assert_eq!(
        denied(&eu, "ArnLike", key),
        [log_group("us-east-1"), log_group("eu-west-1")]
    );
    // Promoted to us-west-2: its replica's policy is the source now.
    let (west, _) = rewrite_policy(&p, "us-east-1", "us-west-2").unwrap();
    for r in LOG_GROUP_DENY_REGIONS {
        let (there, _) = rewrite_policy(&west, "us-west-2", r).unwrap();
        let have = denied(&there, "ArnLike", key);
        for want in [log_group("us-east-1"), log_group("us-west-2"), log_group(r)] {
            assert!(have.contains(&want), "{r}: {want} missing from {have:?}");
        }
    }
    // The Allow rule is unchanged: a statement naming another Region is copied as it is.
    let allow = policy_of(json!([{
        "Sid": "Both", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:Decrypt",
        "Resource": "*",
        "Condition": {"ArnLike": {key: [log_group("us-east-1"), log_group("us-west-2")]}}
    }]))
    .to_string();
    let (out, rewrites) = rewrite_policy(&allow, "us-west-2", "eu-west-1").unwrap();
    assert_eq!(out, allow);
    assert!(rewrites.is_empty());
}

#[test]
fn a_deny_naming_another_region_keeps_its_negated_positions_as_they_are() {
    // Only positive positions gain values; an exception list (a negated position) of a
    // statement that already names two Regions is neither widened nor moved.
    let p = policy_of(json!([{
        "Sid": "OnlyHere", "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "kms:*",
        "Resource": "arn:aws:kms:us-west-2:111122223333:key/mrk-1",
        "Condition": {"StringNotEquals": {"aws:RequestedRegion": ["us-east-1", "us-west-2"]}}
    }]))
    .to_string();
    let (out, _) = rewrite_policy(&p, "us-west-2", "eu-west-1").unwrap();
    let s = &statements(&out)[0];
    assert_eq!(
        s["Condition"]["StringNotEquals"]["aws:RequestedRegion"],
        json!(["us-east-1", "us-west-2"])
    );
    assert_eq!(
        s["Resource"],
        json!([
            "arn:aws:kms:us-west-2:111122223333:key/mrk-1",
            "arn:aws:kms:eu-west-1:111122223333:key/mrk-1"
        ])
    );
}

/// The Regions of a chain of promotions, and where the key starts.
const CHAIN_REGIONS: [&str; 4] = [FROM, TO, "us-west-2", "ap-south-1"];

/// Each Region's policy after the primary moved to `to`: the new primary's policy (its
/// replica's, as last mirrored) rewritten for every Region.
fn promote(policies: &[String], to: usize) -> Vec<String> {
    let source = &policies[to];
    CHAIN_REGIONS
        .iter()
        .map(|r| rewrite_policy(source, CHAIN_REGIONS[to], r).unwrap().0)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn after_any_chain_of_promotions_every_region_denies_what_it_denied_and_what_the_source_denies(
        stmts in prop::collection::vec(statement(), 1..4),
        chain in prop::collection::vec(0..CHAIN_REGIONS.len(), 1..6),
    ) {
        let p = policy_of(Value::Array(stmts)).to_string();
        let mut policies: Vec<String> = CHAIN_REGIONS
            .iter()
            .map(|r| rewrite_policy(&p, FROM, r).unwrap().0)
            .collect();
        for next in chain {
            let before = policies.clone();
            policies = promote(&policies, next);
            let source = &before[next];
            for (r, region) in CHAIN_REGIONS.iter().enumerate() {
                // What the new primary's rewrite adds for this Region, value by value.
                let (own, _) = rewrite_policy(source, CHAIN_REGIONS[next], region).unwrap();
                let slots_now: Vec<_> = statements(&policies[r]).iter().map(positive_slots).collect();
                for (i, s) in statements(source).iter().enumerate() {
                    if s["Effect"] != "Deny" {
                        continue;
                    }
                    let must: Vec<Vec<(String, Vec<String>)>> = vec![
                        positive_slots(s),
                        positive_slots(&statements(&before[r])[i]),
                        positive_slots(&statements(&own)[i]),
                    ];
                    for slots in must {
                        for ((loc, want), (_, have)) in slots.iter().zip(&slots_now[i]) {
                            for v in want {
                                prop_assert!(
                                    have.contains(v),
                                    "{region} after a promotion to {}: {loc}: {v} missing from {have:?}",
                                    CHAIN_REGIONS[next]
                                );
                            }
                        }
                    }
                }
            }
            // Allow round trips stay exact from wherever the primary is now, to any Region the
            // policy does not name (a statement naming only that Region would be read as its
            // own on the way back).
            let (here, at) = (&policies[next], CHAIN_REGIONS[next]);
            for other in CHAIN_REGIONS.into_iter().filter(|r| !here.contains(r)) {
                let (there, _) = rewrite_policy(here, at, other).unwrap();
                let (back, _) = rewrite_policy(&there, other, at).unwrap();
                for (a, b) in statements(here).iter().zip(statements(&back).iter()) {
                    if a["Effect"] == "Allow" {
                        prop_assert_eq!(a, b);
                    }
                }
            }
        }
    }
}
