//! KMS's rule for combining key policies and IAM policies, on small policies.

use super::*;
use authz::Policy;
use serde_json::json;
use std::collections::BTreeMap;

const ROLE: &str =
    "arn:aws:iam::111122223333:role/kms-replicator/kms-replicator-ReplicateFunctionRole";
const KEY: &str = "arn:aws:kms:us-west-2:111122223333:key/mrk-1";

fn key(policy: serde_json::Value) -> KeyFacts {
    KeyFacts {
        arn: KEY.into(),
        region: "us-west-2".into(),
        policy: policy.to_string(),
        tags: BTreeMap::new(),
        multi_region_type: Some("REPLICA"),
        aliases: vec![],
        origin: "AWS_KMS".into(),
        spec: "SYMMETRIC_DEFAULT".into(),
        usage: "ENCRYPT_DECRYPT".into(),
    }
}

fn root_delegation() -> serde_json::Value {
    json!({"Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
                          "Action": "kms:*", "Resource": "*"}]})
}

fn with_role(statements: serde_json::Value) -> Authorization {
    let mut ids = Identities::people();
    ids.insert(
        ROLE,
        vec![Policy::parse(&json!({"Statement": statements})).unwrap()],
    );
    Authorization::on(ids)
}

fn message(r: Result<(), kms_replicator::port::KmsError>) -> String {
    r.expect_err("refused").message
}

#[test]
fn a_key_policy_that_delegates_to_the_account_lets_iam_decide() {
    let auth =
        with_role(json!([{"Effect": "Allow", "Action": "kms:PutKeyPolicy", "Resource": "*"}]));
    let k = key(root_delegation());
    let put = Check::on_key(Op::PutKeyPolicy, &k);
    assert!(auth
        .authorize(ROLE, Op::PutKeyPolicy, "us-west-2", &put)
        .is_ok());
    let tag = Check::on_key(Op::TagResource, &k);
    let m = message(auth.authorize(ROLE, Op::TagResource, "us-west-2", &tag));
    assert_eq!(
        m,
        "User: arn:aws:sts::111122223333:assumed-role/kms-replicator-ReplicateFunctionRole/\
         kms-replicator-ReplicateFunctionRole is not authorized to perform: kms:TagResource on \
         resource: arn:aws:kms:us-west-2:111122223333:key/mrk-1 because no identity-based policy \
         allows the kms:TagResource action"
    );
}

#[test]
fn a_key_policy_that_names_neither_the_caller_nor_the_account_refuses_whatever_iam_says() {
    let auth = with_role(json!([{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]));
    let k = key(json!({"Statement": [{"Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::111122223333:role/payments-admin"}, "Action": "kms:*", "Resource": "*"}]}));
    let m = message(auth.authorize(
        ROLE,
        Op::PutKeyPolicy,
        "us-west-2",
        &Check::on_key(Op::PutKeyPolicy, &k),
    ));
    assert!(
        m.ends_with("because no resource-based policy allows the kms:PutKeyPolicy action"),
        "{m}"
    );
}

#[test]
fn a_key_policy_that_names_the_caller_needs_no_iam_policy() {
    let auth =
        with_role(json!([{"Effect": "Allow", "Action": "kms:DescribeKey", "Resource": "*"}]));
    let k = key(
        json!({"Statement": [{"Effect": "Allow", "Principal": {"AWS": ROLE},
        "Action": "kms:ReplicateKey", "Resource": "*",
        "Condition": {"StringEquals": {"kms:ReplicaRegion": ["eu-west-1"]}}}]}),
    );
    let to = |r: &str| Check::on_key(Op::ReplicateKey, &k).with("kms:ReplicaRegion", r);
    assert!(auth
        .authorize(ROLE, Op::ReplicateKey, "us-west-2", &to("eu-west-1"))
        .is_ok());
    assert!(auth
        .authorize(ROLE, Op::ReplicateKey, "us-west-2", &to("ap-south-1"))
        .is_err());
}

#[test]
fn an_explicit_deny_in_either_policy_refuses() {
    let auth = with_role(json!([
        {"Effect": "Allow", "Action": "kms:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "kms:PutKeyPolicy", "Resource": "*",
         "Condition": {"Bool": {"kms:BypassPolicyLockoutSafetyCheck": "true"}}}
    ]));
    let k = key(root_delegation());
    let bypass = Check::on_key(Op::PutKeyPolicy, &k).bypass_lockout_check(true);
    let m = message(auth.authorize(ROLE, Op::PutKeyPolicy, "us-west-2", &bypass));
    assert!(
        m.ends_with("with an explicit deny in an identity-based policy"),
        "{m}"
    );
    let mut denying = root_delegation();
    denying["Statement"]
        .as_array_mut()
        .unwrap()
        .push(json!({"Effect": "Deny",
        "Principal": {"AWS": "*"}, "Action": "kms:TagResource", "Resource": "*"}));
    let k = key(denying);
    let m = message(auth.authorize(
        ROLE,
        Op::TagResource,
        "us-west-2",
        &Check::on_key(Op::TagResource, &k),
    ));
    assert!(
        m.ends_with("with an explicit deny in a resource-based policy"),
        "{m}"
    );
}

#[test]
fn tagging_a_key_that_does_not_exist_yet_needs_a_statement_not_restricted_to_keys() {
    // ReplicateKey with Tags is authorized for kms:TagResource in the replica's Region before
    // the replica exists: on "*", with no key-property keys.
    let restricted = with_role(json!([{"Effect": "Allow", "Action": "kms:TagResource",
        "Resource": "arn:aws:kms:*:111122223333:key/mrk-*",
        "Condition": {"StringEquals": {"kms:MultiRegionKeyType": "REPLICA"}}}]));
    let tags = [kms_replicator::model::Tag::new("team", "payments")];
    let check = Check::without_resource(Op::TagResource, "us-west-2")
        .across_regions()
        .request_tags(&tags, None);
    assert!(restricted
        .authorize(ROLE, Op::ReplicateKey, "us-east-1", &check)
        .is_err());
    let unrestricted =
        with_role(json!([{"Effect": "Allow", "Action": "kms:TagResource", "Resource": "*"}]));
    assert!(unrestricted
        .authorize(ROLE, Op::ReplicateKey, "us-east-1", &check)
        .is_ok());
}

#[test]
fn an_undocumented_key_is_set_or_left_out_as_the_twin_is_told() {
    let auth = with_role(
        json!([{"Effect": "Allow", "Action": "kms:CreateKey", "Resource": "*",
        "Condition": {"StringEquals": {"aws:RequestedRegion": ["us-west-2"]}}}]),
    );
    let check = Check::without_resource(Op::CreateKey, "us-west-2").across_regions();
    assert!(auth
        .authorize(ROLE, Op::ReplicateKey, "us-east-1", &check)
        .is_ok());
    let mut without = auth.clone();
    without
        .undocumented
        .remove(&Undocumented::RequestedRegionAcrossRegions);
    assert!(without
        .authorize(ROLE, Op::ReplicateKey, "us-east-1", &check)
        .is_err());
}

#[test]
fn the_lockout_check_asks_whether_the_caller_could_change_the_policy_again() {
    let auth =
        with_role(json!([{"Effect": "Allow", "Action": "kms:PutKeyPolicy", "Resource": "*"}]));
    let k = key(root_delegation());
    let parse = |v: serde_json::Value| Policy::parse(&v).unwrap();
    assert!(auth.allows_later_put_key_policy(ROLE, &k, &parse(root_delegation())));
    let locked_out = json!({"Statement": [{"Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::111122223333:role/payments-admin"}, "Action": "kms:*", "Resource": "*"}]});
    assert!(!auth.allows_later_put_key_policy(ROLE, &k, &parse(locked_out)));
    let only_role = json!({"Statement": [{"Effect": "Allow", "Principal": {"AWS": ROLE},
        "Action": "kms:PutKeyPolicy", "Resource": "*"}]});
    assert!(auth.allows_later_put_key_policy(ROLE, &k, &parse(only_role)));
}

#[test]
fn refusals_name_a_role_by_its_session_without_the_path() {
    assert_eq!(
        session_arn(ROLE),
        "arn:aws:sts::111122223333:assumed-role/kms-replicator-ReplicateFunctionRole/kms-replicator-ReplicateFunctionRole"
    );
    assert_eq!(session_arn(ADMIN_USER), ADMIN_USER);
}
