"""forwarder.yaml: the rule that sends a Region's KMS events to the home Region's default bus.

CloudTrail's events reach EventBridge only in the Region where the call was made, so every managed
Region other than the home Region runs this small stack. It must match exactly what the main rule
matches, send it nowhere but the home bus, and stay plain CloudFormation (StackSets with
service-managed permissions refuse templates that use macros such as the SAM transform).
"""

import json
import re

import pytest
from moto.events.models import EventPattern

from conftest import deployed_pattern, fixture_paths, load_event, role_statements

HOME_BUS = {"Fn::Sub": "arn:${AWS::Partition}:events:${HomeRegion}:${AWS::AccountId}:event-bus/default"}


def rules(template):
    return {k: r for k, r in template["Resources"].items() if r["Type"] == "AWS::Events::Rule"}


@pytest.fixture(scope="module")
def forward_rule(forwarder):
    found = rules(forwarder)
    assert list(found) == ["KmsApiCallForwardRule"], "one rule, and only one"
    return found["KmsApiCallForwardRule"]["Properties"]


@pytest.fixture(scope="module")
def forward_role_id(forward_rule):
    return forward_rule["Targets"][0]["RoleArn"]["Fn::GetAtt"][0]


@pytest.fixture(scope="module")
def forward_role(forwarder, forward_role_id):
    role = forwarder["Resources"][forward_role_id]
    assert role["Type"] == "AWS::IAM::Role"
    return role["Properties"]


def test_it_is_plain_cloudformation_without_a_transform(forwarder):
    assert "Transform" not in forwarder
    for logical_id, resource in forwarder["Resources"].items():
        assert not resource["Type"].startswith("AWS::Serverless::"), logical_id


def test_its_resources_are_one_rule_and_one_role(forwarder):
    types = sorted(r["Type"] for r in forwarder["Resources"].values())
    assert types == ["AWS::Events::Rule", "AWS::IAM::Role"]


def test_the_pattern_equals_the_main_rules_pattern(template, forward_rule):
    main = template["Resources"]["KmsApiCallRule"]["Properties"]
    assert forward_rule["EventPattern"] == main["EventPattern"]


def test_it_listens_on_the_default_bus_like_cloudtrail_delivers(forward_rule):
    assert forward_rule["EventBusName"] == "default"
    assert forward_rule["State"] == "ENABLED"


@pytest.mark.parametrize("path", fixture_paths(), ids=lambda p: p.name)
def test_it_forwards_what_the_main_rule_delivers(template, forward_rule, path):
    main = EventPattern.load(
        json.dumps(deployed_pattern(template["Resources"]["KmsApiCallRule"]["Properties"]["EventPattern"]))
    )
    forward = EventPattern.load(json.dumps(deployed_pattern(forward_rule["EventPattern"])))
    event = load_event(path.name)
    assert forward.matches_event(event) == main.matches_event(event)


def test_the_one_target_is_the_default_bus_of_the_home_region(forwarder, forward_rule):
    (target,) = forward_rule["Targets"]
    assert target["Arn"] == HOME_BUS
    home = forwarder["Parameters"]["HomeRegion"]
    assert "Default" not in home, "the home Region must be given, never assumed"
    assert re.fullmatch(home["AllowedPattern"], "us-east-1")
    assert not re.fullmatch(home["AllowedPattern"], "arn:aws:events:us-east-1:111122223333:event-bus/default")
    # Rendered for one Region, the target is an event bus ARN in the home Region.
    arn = HOME_BUS["Fn::Sub"].replace("${AWS::Partition}", "aws").replace("${HomeRegion}", "us-east-1")
    arn = arn.replace("${AWS::AccountId}", "111122223333")
    assert arn == "arn:aws:events:us-east-1:111122223333:event-bus/default"


def test_the_target_uses_the_forwarders_own_role(forward_rule):
    (target,) = forward_rule["Targets"]
    assert target["RoleArn"] == {"Fn::GetAtt": ["ForwardRole", "Arn"]}


def test_only_eventbridge_of_this_account_may_assume_the_role(forward_role):
    (statement,) = forward_role["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "sts:AssumeRole"
    assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}


def test_the_role_may_only_put_events_on_the_home_bus(forwarder, forward_role_id):
    assert role_statements(forwarder, forward_role_id) == [
        {
            "Sid": "PutEventsOnTheHomeBus",
            "Effect": "Allow",
            "Action": "events:PutEvents",
            "Resource": HOME_BUS,
        }
    ]


def test_the_role_is_under_the_replicators_path_with_an_optional_boundary(forwarder, forward_role):
    assert forward_role["Path"] == "/kms-replicator/"
    assert forward_role["PermissionsBoundary"] == {
        "Fn::If": ["HasPermissionsBoundary", {"Ref": "PermissionsBoundaryArn"}, {"Ref": "AWS::NoValue"}]
    }
    assert forwarder["Conditions"]["HasPermissionsBoundary"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "PermissionsBoundaryArn"}, ""]}]
    }
    boundary = forwarder["Parameters"]["PermissionsBoundaryArn"]
    assert boundary["Default"] == ""
    for ok in ["", "arn:aws:iam::111122223333:policy/boundaries/kms", "arn:aws-us-gov:iam::aws:policy/PowerUserAccess"]:
        assert re.fullmatch(boundary["AllowedPattern"], ok), ok
    for bad in ["kms-boundary", "arn:aws:iam::111122223333:role/x"]:
        assert not re.fullmatch(boundary["AllowedPattern"], bad), bad
