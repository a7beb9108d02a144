//! Event intake on the real CloudTrail payloads: which key and Region each record names.

use kms_replicator::event::{parse_event, parse_event_ignoring, Intake, Trigger};
use serde_json::Value;

macro_rules! fixture {
    ($name:literal) => {
        serde_json::from_str::<Value>(include_str!(concat!(
            "../../tests/fixtures/cloudtrail/",
            $name
        )))
        .unwrap()
    };
}

fn trigger(event: &Value) -> Trigger {
    match parse_event(event, "replicate-to", &[]).unwrap() {
        Intake::Sync(t) => t,
        Intake::Ignore { reason } => panic!("ignored: {reason}"),
    }
}

fn ignored(event: &Value) -> String {
    match parse_event(event, "replicate-to", &[]).unwrap() {
        Intake::Ignore { reason } => reason,
        Intake::Sync(t) => panic!("synced: {t:?}"),
    }
}

#[test]
fn tag_resource_names_the_key_by_arn() {
    let t = trigger(&fixture!("kms-TagResource.eventbridge.json"));
    assert_eq!(t.region, "us-west-2");
    assert_eq!(
        t.key,
        "arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    );
    assert_eq!(t.event_name, "TagResource");
    assert_eq!(
        t.caller.as_deref(),
        Some("arn:aws:iam::111122223333:user/Alice")
    );
    assert!(!t.event_id.is_empty());
}

#[test]
fn create_alias_names_its_target_key() {
    let t = trigger(&fixture!("kms-CreateAlias.eventbridge.json"));
    assert_eq!(t.key, "1234abcd-12ab-34cd-56ef-1234567890ab");
    assert_eq!(t.region, "us-west-2");
}

#[test]
fn delete_alias_names_its_key_only_in_resources() {
    let t = trigger(&fixture!("kms-DeleteAlias.eventbridge.json"));
    assert_eq!(
        t.key,
        "arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    );
    assert_eq!(t.region, "us-west-2", "the key ARN's Region wins");
}

#[test]
fn update_primary_region_and_replicate_key_name_the_key_in_the_calls_region() {
    let t = trigger(&fixture!(
        "kms-UpdatePrimaryRegion-oldPrimaryRegion-us-west-2.current-docs-2022-12-format.eventbridge.json"
    ));
    assert_eq!(
        (t.key.as_str(), t.region.as_str()),
        ("mrk-1234abcd12ab34cd56ef1234567890ab", "us-west-2")
    );
    let t = trigger(&fixture!("kms-ReplicateKey-primaryRegion.eventbridge.json"));
    assert_eq!(t.region, "us-east-1");
}

#[test]
fn create_key_without_the_replication_tag_is_ignored_without_a_call() {
    let reason = ignored(&fixture!(
        "kms-CreateKey-multiRegion-true.DERIVED.eventbridge.json"
    ));
    assert!(reason.contains("replicate-to"), "{reason}");
    let reason = ignored(&fixture!(
        "kms-CreateKey-singleRegion-EXTERNAL-origin.eventbridge.json"
    ));
    assert!(reason.contains("single-Region"), "{reason}");
    let reason = ignored(&fixture!(
        "kms-CreateKey-xks-requestParam-multiRegion-false.eventbridge.json"
    ));
    assert!(reason.contains("single-Region"), "{reason}");
}

#[test]
fn create_key_with_the_replication_tag_in_the_request_is_synced() {
    let mut e = fixture!("kms-CreateKey-multiRegion-true.DERIVED.eventbridge.json");
    e["detail"]["requestParameters"]["tags"] =
        serde_json::json!([{"tagKey": "replicate-to", "tagValue": "eu-west-1"}]);
    let t = trigger(&e);
    assert_eq!(
        t.key,
        "arn:aws:kms:us-west-2:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab"
    );
}

#[test]
fn other_services_native_kms_events_and_failed_calls_are_ignored() {
    assert!(ignored(&fixture!(
        "aws-api-call-via-cloudtrail-envelope-s3-CreateBucket.json"
    ))
    .contains("aws.s3"));
    assert!(ignored(&fixture!("aws.kms-native-KMS-CMK-Rotation.json")).contains("KMS CMK Rotation"));
    let mut failed = fixture!("kms-PutKeyPolicy.eventbridge.json");
    failed["detail"]["errorCode"] = "MalformedPolicyDocumentException".into();
    assert!(ignored(&failed).contains("failed"));
}

#[test]
fn the_replicators_own_calls_are_ignored_when_its_role_is_listed() {
    let e = fixture!("kms-TagResource.eventbridge.json");
    let own = vec!["arn:aws:iam::111122223333:user/Alice".to_string()];
    match parse_event(&e, "replicate-to", &own).unwrap() {
        Intake::Ignore { reason } => assert!(reason.contains("replicator itself")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_custom_replication_tag_key_is_honoured_at_create_key() {
    let mut e = fixture!("kms-CreateKey-multiRegion-true.DERIVED.eventbridge.json");
    e["detail"]["requestParameters"]["tags"] =
        serde_json::json!([{"tagKey": "dr-regions", "tagValue": "eu-west-1"}]);
    assert!(matches!(
        parse_event(&e, "dr-regions", &[]).unwrap(),
        Intake::Sync(_)
    ));
    assert!(matches!(
        parse_event(&e, "replicate-to", &[]).unwrap(),
        Intake::Ignore { .. }
    ));
}

/// A real record (the KMS Developer Guide's TagResource sample) as an assumed-role session made
/// it: `userIdentity` in the shape CloudTrail gives a role session, whose `arn` names the role
/// without its path, while `sessionIssuer.arn` is the role ARN with it.
fn tag_resource_by_role(role_arn: &str) -> Value {
    let mut e = fixture!("kms-TagResource.eventbridge.json");
    let role_name = role_arn.rsplit('/').next().unwrap();
    e["detail"]["userIdentity"] = serde_json::json!({
        "type": "AssumedRole",
        "principalId": format!("AROAEXAMPLEID:{role_name}"),
        "arn": format!("arn:aws:sts::111122223333:assumed-role/{role_name}/{role_name}"),
        "accountId": "111122223333",
        "accessKeyId": "ASIAEXAMPLEKEYID",
        "sessionContext": {
            "sessionIssuer": {
                "type": "Role",
                "principalId": "AROAEXAMPLEID",
                "arn": role_arn,
                "accountId": "111122223333",
                "userName": role_name
            },
            "attributes": {"creationDate": "2022-08-14T23:08:31Z", "mfaAuthenticated": "false"}
        }
    });
    e
}

fn with_issuer(event: &Value, role_arn: &str) -> Value {
    let mut e = event.clone();
    e["detail"]["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"] = role_arn.into();
    e
}

fn intake_with_path(event: &Value, path: Option<&str>) -> Intake {
    parse_event_ignoring(event, "replicate-to", &[], path).unwrap()
}

#[test]
fn a_session_of_a_role_under_the_replicators_path_is_the_replicator_in_any_account() {
    let base = tag_resource_by_role("arn:aws:iam::111122223333:role/Alice");
    for role in [
        "arn:aws:iam::111122223333:role/kms-replicator/kms-replicator-ReplicateFunctionRole-ABC",
        "arn:aws:iam::444455556666:role/kms-replicator/kms-replicator-forwarder-ForwardRole-XYZ",
        "arn:aws:iam::111122223333:role/kms-replicator/eu/ReconcileFunctionRole",
        "arn:aws-us-gov:iam::111122223333:role/kms-replicator/FailoverFunctionRole",
    ] {
        let e = with_issuer(&base, role);
        match intake_with_path(&e, Some("/kms-replicator/")) {
            Intake::Ignore { reason } => {
                assert!(reason.contains("replicator itself"), "{reason}");
                assert!(reason.contains(role), "{reason}");
            }
            other => panic!("{role}: {other:?}"),
        }
    }
}

#[test]
fn roles_outside_the_path_and_people_are_synced() {
    let base = tag_resource_by_role("arn:aws:iam::111122223333:role/Alice");
    for role in [
        "arn:aws:iam::111122223333:role/Alice",
        "arn:aws:iam::111122223333:role/kms-replicator-ReplicateFunctionRole-ABC",
        "arn:aws:iam::111122223333:role/other/kms-replicator/Admin",
        "arn:aws:iam::111122223333:role/kms-replicatorX/Admin",
        "arn:aws:iam::111122223333:user/kms-replicator/Bob",
    ] {
        let e = with_issuer(&base, role);
        assert!(
            matches!(
                intake_with_path(&e, Some("/kms-replicator/")),
                Intake::Sync(_)
            ),
            "{role}"
        );
    }
    // An IAM user's record has no session issuer: never taken for the replicator.
    let alice = fixture!("kms-TagResource.eventbridge.json");
    assert!(matches!(
        intake_with_path(&alice, Some("/kms-replicator/")),
        Intake::Sync(_)
    ));
}

#[test]
fn the_session_arn_without_the_path_is_not_what_is_matched() {
    // userIdentity.arn of the session names the role without its path; only the issuer has it.
    let e =
        tag_resource_by_role("arn:aws:iam::111122223333:role/kms-replicator/ReplicateFunctionRole");
    assert_eq!(
        e["detail"]["userIdentity"]["arn"],
        "arn:aws:sts::111122223333:assumed-role/ReplicateFunctionRole/ReplicateFunctionRole"
    );
    assert!(matches!(
        intake_with_path(&e, Some("/kms-replicator/")),
        Intake::Ignore { .. }
    ));
    // Without a path to ignore, or with the plain parse_event, the same record is synced.
    assert!(matches!(intake_with_path(&e, None), Intake::Sync(_)));
    assert!(matches!(
        parse_event(&e, "replicate-to", &[]).unwrap(),
        Intake::Sync(_)
    ));
}

#[test]
fn exact_caller_arns_still_work_beside_the_path() {
    let role = "arn:aws:iam::111122223333:role/kms-replicator-function";
    let e = tag_resource_by_role(role);
    assert!(matches!(
        parse_event_ignoring(
            &e,
            "replicate-to",
            &[role.to_string()],
            Some("/kms-replicator/")
        )
        .unwrap(),
        Intake::Ignore { .. }
    ));
    assert!(matches!(
        parse_event_ignoring(&e, "replicate-to", &[], Some("/kms-replicator/")).unwrap(),
        Intake::Sync(_)
    ));
}

#[test]
fn role_paths_are_read_from_role_arns_only() {
    use kms_replicator::event::role_path;
    assert_eq!(
        role_path("arn:aws:iam::111122223333:role/Name").as_deref(),
        Some("/")
    );
    assert_eq!(
        role_path("arn:aws:iam::111122223333:role/kms-replicator/Name").as_deref(),
        Some("/kms-replicator/")
    );
    assert_eq!(
        role_path("arn:aws:iam::111122223333:role/a/b/Name").as_deref(),
        Some("/a/b/")
    );
    assert_eq!(
        role_path("arn:aws:iam::111122223333:user/kms-replicator/Bob"),
        None
    );
    assert_eq!(
        role_path("arn:aws:sts::111122223333:assumed-role/Name/session"),
        None
    );
    assert_eq!(role_path("not an arn"), None);
}

#[test]
fn an_update_primary_region_record_proves_which_regions_held_the_primary() {
    // Only the current primary's Region accepts UpdatePrimaryRegion: the record's Region held
    // the primary, and the Region it names became the primary.
    let t = trigger(&fixture!(
        "kms-UpdatePrimaryRegion-oldPrimaryRegion-us-west-2.current-docs-2022-12-format.eventbridge.json"
    ));
    assert_eq!(t.held_primary, ["us-west-2", "ap-northeast-1"]);
    // No other record proves anything about the primary's history.
    let t = trigger(&fixture!("kms-ReplicateKey-primaryRegion.eventbridge.json"));
    assert!(t.held_primary.is_empty());
    let t = trigger(&fixture!("kms-TagResource.eventbridge.json"));
    assert!(t.held_primary.is_empty());
}
