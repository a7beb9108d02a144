//! Mirroring a key policy into another Region: what is rewritten, what never is, and the
//! invariant that a rewrite never widens access.

use kms_replicator::policy::{grant_shape, rewrite_policy, same_policy, Rewrite};
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
fn requested_region_equal_to_the_source_is_rewritten_others_stay() {
    let p = policy_of(json!([{
        "Sid": "DenyElsewhere", "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "kms:*", "Resource": "*",
        "Condition": {"StringNotEquals": {"aws:RequestedRegion": ["us-east-1", "us-west-2"]}}
    }]));
    let (out, rewrites) = rewrite(&p);
    assert_eq!(
        out["Statement"][0]["Condition"]["StringNotEquals"]["aws:RequestedRegion"],
        json!(["eu-west-1", "us-west-2"])
    );
    assert_eq!(out["Statement"][0]["Effect"], "Deny");
    assert_eq!(rewrites.len(), 1);
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

// ---- property: a rewrite never widens (or narrows) who may do what -----------------------

fn region() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(FROM.to_string()),
        Just("us-west-2".to_string()),
        Just("*".to_string())
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
        any::<bool>(),
    )
        .prop_map(|(effect, actions, principal, resource, via, replica_regions, with_sid)| {
            let mut s = json!({
                "Effect": effect, "Action": actions, "Principal": principal, "Resource": resource,
                "Condition": {
                    "StringEquals": {
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

fn count_differences(a: &Value, b: &Value) -> usize {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            x.iter().map(|(k, v)| count_differences(v, &y[k])).sum()
        }
        (Value::Array(x), Value::Array(y)) => {
            x.iter().zip(y).map(|(v, w)| count_differences(v, w)).sum()
        }
        (x, y) => usize::from(x != y),
    }
}

proptest! {
    #[test]
    fn rewriting_keeps_statements_effects_actions_and_iam_principals(
        stmts in prop::collection::vec(statement(), 1..5)
    ) {
        let p = policy_of(Value::Array(stmts)).to_string();
        let (out, rewrites) = rewrite_policy(&p, FROM, TO).unwrap();
        prop_assert_eq!(grant_shape(&out), grant_shape(&p));
        let before: Value = serde_json::from_str(&p).unwrap();
        let after: Value = serde_json::from_str(&out).unwrap();
        for (b, a) in before["Statement"].as_array().unwrap().iter().zip(after["Statement"].as_array().unwrap()) {
            prop_assert_eq!(
                &b["Condition"]["StringEquals"]["kms:ReplicaRegion"],
                &a["Condition"]["StringEquals"]["kms:ReplicaRegion"]
            );
        }
        // Every changed value is reported, and each change swaps the source for the target.
        prop_assert_eq!(count_differences(&before, &after), rewrites.len());
        for r in &rewrites {
            prop_assert!(r.from.contains(FROM) && r.to.contains(TO));
        }
        // Rewriting back restores the original (the generator puts no target-Region tokens in).
        let (back, _) = rewrite_policy(&out, TO, FROM).unwrap();
        prop_assert_eq!(serde_json::from_str::<Value>(&back).unwrap(), before);
    }
}
