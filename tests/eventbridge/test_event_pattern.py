"""The replicate rule's event pattern, read from template.yaml, against real CloudTrail events.

Matching is done by moto's EventBridge pattern matcher (moto.events.models.EventPattern), offline,
and once more through moto's whole EventBridge path (PutEvents -> rule -> SQS target).
"""

import json

import boto3
import pytest
from moto import mock_aws
from moto.events.models import EventPattern

from conftest import MOTO_ACCOUNT, deployed_pattern, fixture_paths, load_event, with_detail

RULE_EVENT_NAMES = {
    "CreateKey",
    "TagResource",
    "UntagResource",
    "CreateAlias",
    "UpdateAlias",
    "DeleteAlias",
    "PutKeyPolicy",
    "UpdateKeyDescription",
    "ReplicateKey",
    "UpdatePrimaryRegion",
    "ScheduleKeyDeletion",
    "CancelKeyDeletion",
}

# Every fixture file, and whether the rule must deliver it to the replicate function.
EXPECTED = {
    "kms-CreateAlias.eventbridge.json": True,
    "kms-DeleteAlias.eventbridge.json": True,
    "kms-CreateKey-multiRegion-true.DERIVED.eventbridge.json": True,
    "kms-CreateKey-singleRegion-EXTERNAL-origin.eventbridge.json": True,
    "kms-CreateKey-xks-requestParam-multiRegion-false.eventbridge.json": True,
    "kms-PutKeyPolicy.eventbridge.json": True,
    "kms-ReplicateKey-primaryRegion.eventbridge.json": True,
    "kms-ScheduleKeyDeletion-singleRegion.eventbridge.json": True,
    "kms-TagResource.eventbridge.json": True,
    "kms-UntagResource.eventbridge.json": True,
    "kms-UpdatePrimaryRegion-oldPrimaryRegion-us-west-2.current-docs-2022-12-format.eventbridge.json": True,
    # A native KMS event shares source aws.kms but has its own detail-type.
    "aws.kms-native-KMS-CMK-Rotation.json": False,
    # Another service's CloudTrail event.
    "aws-api-call-via-cloudtrail-envelope-s3-CreateBucket.json": False,
}

KMS_CALL_FIXTURES = sorted(name for name, matches in EXPECTED.items() if matches)


@pytest.fixture(scope="module")
def pattern(resources):
    return resources["KmsApiCallRule"]["Properties"]["EventPattern"]


@pytest.fixture(scope="module")
def matcher(pattern):
    # load() runs moto's pattern validation as PutRule does.
    return EventPattern.load(json.dumps(deployed_pattern(pattern)))


def test_the_pattern_is_plain_data_but_for_the_stacks_account(pattern):
    rest = {k: v for k, v in pattern.items() if k != "account"}
    text = json.dumps(rest)
    assert "Fn::" not in text and '"Ref"' not in text
    assert pattern["account"] == [{"Ref": "AWS::AccountId"}]


def test_a_call_of_another_account_is_not_matched(matcher):
    event = load_event("kms-TagResource.eventbridge.json")
    event["account"] = "444455556666"
    assert not matcher.matches_event(event)


def test_the_pattern_names_exactly_the_calls_that_can_change_a_replicated_key(pattern):
    assert pattern["source"] == ["aws.kms"]
    assert pattern["detail-type"] == ["AWS API Call via CloudTrail"]
    assert pattern["detail"]["eventSource"] == ["kms.amazonaws.com"]
    names = pattern["detail"]["eventName"]
    assert len(names) == len(set(names)), "duplicate event names"
    assert set(names) == RULE_EVENT_NAMES
    assert pattern["detail"]["errorCode"] == [{"exists": False}]


def test_every_fixture_file_has_an_expectation():
    assert {p.name for p in fixture_paths()} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_is_matched_only_when_expected(matcher, name):
    assert matcher.matches_event(load_event(name)) is EXPECTED[name]


def test_the_kms_fixtures_cover_most_of_the_rule_event_names():
    covered = {load_event(name)["detail"]["eventName"] for name in KMS_CALL_FIXTURES}
    assert covered <= RULE_EVENT_NAMES
    assert len(covered) >= 8


@pytest.mark.parametrize("name", KMS_CALL_FIXTURES)
def test_a_failed_call_is_not_matched(matcher, name):
    failed = with_detail(
        load_event(name),
        errorCode="AccessDenied",
        errorMessage="User is not authorized to perform this operation",
    )
    assert not matcher.matches_event(failed)


def test_a_failed_call_with_an_error_code_only_is_not_matched(matcher):
    failed = with_detail(load_event("kms-TagResource.eventbridge.json"), errorCode="KMSInvalidStateException")
    assert not matcher.matches_event(failed)


@pytest.mark.parametrize("event_name", sorted(RULE_EVENT_NAMES))
def test_each_rule_event_name_is_matched(matcher, event_name):
    event = with_detail(load_event("kms-TagResource.eventbridge.json"), eventName=event_name)
    assert matcher.matches_event(event)


@pytest.mark.parametrize(
    "event_name",
    [
        "Decrypt",
        "GenerateDataKey",
        "EnableKeyRotation",
        "DisableKey",
        "EnableKey",
        "CreateGrant",
        "DeleteImportedKeyMaterial",
        # Internal records KMS writes itself.
        "SynchronizeMultiRegionKey",
        "DeleteKey",
        # EventBridge matching is case-sensitive.
        "tagresource",
    ],
)
def test_other_event_names_are_not_matched(matcher, event_name):
    event = with_detail(load_event("kms-TagResource.eventbridge.json"), eventName=event_name)
    assert not matcher.matches_event(event)


def test_a_kms_event_name_from_another_event_source_is_not_matched(matcher):
    event = with_detail(load_event("kms-TagResource.eventbridge.json"), eventSource="s3.amazonaws.com")
    assert not matcher.matches_event(event)


def test_the_replicators_own_audit_events_are_not_matched(matcher):
    # Audit events go to the default bus by default: they must never re-trigger the replicator.
    audit = {
        "version": "0",
        "id": "00000000-0000-0000-0000-000000000000",
        "detail-type": "Replica Created",
        "source": "kms-replicator",
        "account": "111122223333",
        "time": "2024-01-01T00:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {"eventName": "ReplicateKey", "eventSource": "kms.amazonaws.com"},
    }
    assert not matcher.matches_event(audit)


@mock_aws
def test_moto_eventbridge_delivers_exactly_the_expected_fixtures_to_the_rule_target(pattern, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    region = "us-west-2"
    events = boto3.client("events", region_name=region)
    sqs = boto3.client("sqs", region_name=region)
    queue_url = sqs.create_queue(QueueName="replicate-target")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    # moto puts events in its own account.
    deployed = deployed_pattern(pattern, MOTO_ACCOUNT)
    events.put_rule(Name="KmsApiCallRule", EventPattern=json.dumps(deployed), State="ENABLED")
    events.put_targets(Rule="KmsApiCallRule", Targets=[{"Id": "target", "Arn": queue_arn}])

    for name in sorted(EXPECTED):
        event = load_event(name)
        result = events.put_events(
            Entries=[
                {
                    "Source": event["source"],
                    "DetailType": event["detail-type"],
                    "Detail": json.dumps(event["detail"]),
                    "Resources": event["resources"],
                }
            ]
        )
        assert result["FailedEntryCount"] == 0

    delivered = []
    while True:
        batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not batch:
            break
        delivered += [json.loads(m["Body"]) for m in batch]

    delivered_ids = sorted(e["detail"]["eventID"] for e in delivered)
    expected_ids = sorted(load_event(name)["detail"]["eventID"] for name in KMS_CALL_FIXTURES)
    assert delivered_ids == expected_ids
