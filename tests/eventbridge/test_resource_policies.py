"""The audit bus and the dead-letter queue as a stack deploys them: who their resource policies
refuse, evaluated for requests by the function roles, by people, and by other services."""

import re

import pytest

from conftest import ROOT  # noqa: F401  (the template fixture lives there)
from deployed import ACCOUNT, REGION, STACK, Stack, allowed_by, denied, role, service

ROLES = ["ReplicateFunctionRole", "ReconcileFunctionRole", "FailoverFunctionRole"]
ADMIN = f"arn:aws:iam::{ACCOUNT}:role/Admin"
ROOT_USER = f"arn:aws:iam::{ACCOUNT}:root"
# A role of another kms-replicator stack, or a forwarder's: the same IAM path, not this stack.
OTHER_REPLICATOR_ROLE = f"arn:aws:iam::{ACCOUNT}:role/kms-replicator/other-stack-ReplicateFunctionRole-X"
OTHER_ACCOUNT = "arn:aws:iam::444455556666:role/Admin"
A_USER = f"arn:aws:iam::{ACCOUNT}:user/alice"
OWN_BUS = f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{STACK}-audit"


def role_arns(stack):
    return [stack.get_att(r, "Arn") for r in ROLES]


@pytest.fixture
def stack(template):
    return Stack(template)


# ---------------------------------------------------------------------------------------------
# The audit bus
# ---------------------------------------------------------------------------------------------


def test_by_default_the_stack_creates_its_own_audit_bus(stack):
    assert stack.parameters["AuditEventBusName"] == ""
    assert stack.exists("AuditEventBus")
    assert stack.properties("AuditEventBus")["Name"] == f"{STACK}-audit"
    assert stack.get_att("AuditEventBus", "Arn") == OWN_BUS


@pytest.mark.parametrize("who", [ADMIN, ROOT_USER, OTHER_REPLICATOR_ROLE, OTHER_ACCOUNT, A_USER])
def test_the_bus_policy_refuses_put_events_to_anyone_but_the_function_roles(stack, who):
    policy = stack.properties("AuditEventBus")["Policy"]
    assert denied(policy, "events:PutEvents", OWN_BUS, role(who)) == ["OnlyTheReplicatorRolesPublish"]


def test_the_bus_policy_refuses_a_principal_the_request_does_not_name(stack):
    policy = stack.properties("AuditEventBus")["Policy"]
    assert denied(policy, "events:PutEvents", OWN_BUS, {"aws:SecureTransport": "true"})


@pytest.mark.parametrize("function_role", ROLES)
def test_the_bus_policy_does_not_refuse_the_function_roles(stack, function_role):
    policy = stack.properties("AuditEventBus")["Policy"]
    arn = stack.get_att(function_role, "Arn")
    assert arn.startswith(f"arn:aws:iam::{ACCOUNT}:role/kms-replicator/")
    assert denied(policy, "events:PutEvents", OWN_BUS, role(arn)) == []


def test_the_bus_policy_is_about_this_bus_and_publishing_only(stack):
    (statement,) = stack.properties("AuditEventBus")["Policy"]["Statement"]
    assert statement["Resource"] == OWN_BUS
    assert statement["Action"] == "events:PutEvents"
    assert sorted(statement["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]) == sorted(role_arns(stack))
    assert list(statement["Condition"]) == ["ArnNotEquals"]


def test_the_roles_may_publish_to_the_bus_the_functions_are_given(stack):
    bus_name = stack.resolve(stack.template["Globals"]["Function"]["Environment"]["Variables"]["AUDIT_EVENT_BUS"])
    assert bus_name == f"{STACK}-audit"
    statement = next(
        s
        for s in stack.properties("AuditAndTelemetryPolicy")["PolicyDocument"]["Statement"]
        if s["Sid"] == "AuditPutEvents"
    )
    assert statement["Resource"] == OWN_BUS


def test_the_alarm_rule_listens_on_the_stacks_own_bus(template):
    stack = Stack(template, {"AlarmEmail": "on-call@example.com"})
    assert stack.exists("AuditNotificationRule")
    assert stack.properties("AuditNotificationRule")["EventBusName"] == f"{STACK}-audit"


def test_the_output_names_the_bus(stack):
    assert stack.resolve(stack.template["Outputs"]["AuditEventBus"]["Value"]) == f"{STACK}-audit"


@pytest.mark.parametrize(
    "given, arn",
    [
        ("central", f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/central"),
        ("default", f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/default"),
        (
            "arn:aws:events:eu-west-1:999988887777:event-bus/audit",
            "arn:aws:events:eu-west-1:999988887777:event-bus/audit",
        ),
    ],
)
def test_a_bus_named_in_the_parameter_replaces_the_stacks_own(template, given, arn):
    stack = Stack(template, {"AuditEventBusName": given, "AlarmEmail": "on-call@example.com"})
    assert not stack.exists("AuditEventBus")
    variables = stack.template["Globals"]["Function"]["Environment"]["Variables"]
    assert stack.resolve(variables["AUDIT_EVENT_BUS"]) == given
    assert stack.properties("AuditNotificationRule")["EventBusName"] == given
    statement = next(
        s
        for s in stack.properties("AuditAndTelemetryPolicy")["PolicyDocument"]["Statement"]
        if s["Sid"] == "AuditPutEvents"
    )
    assert statement["Resource"] == arn
    assert stack.resolve(stack.template["Outputs"]["AuditEventBus"]["Value"]) == given


# ---------------------------------------------------------------------------------------------
# The dead-letter queue
# ---------------------------------------------------------------------------------------------

QUEUE = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{STACK}-DeadLetterQueue"
READ = ["sqs:ReceiveMessage", "sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:PurgeQueue"]
ON_CALL = f"arn:aws:iam::{ACCOUNT}:role/on-call"
SSO_ADMINS = f"arn:aws:iam::{ACCOUNT}:role/aws-reserved/sso.amazonaws.com/*/AWSReservedSSO_Admin_*"
AN_SSO_ADMIN = f"arn:aws:iam::{ACCOUNT}:role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_Admin_0123abcd"


def queue_policy(stack):
    assert stack.get_att("DeadLetterQueue", "Arn") == QUEUE
    return stack.properties("DeadLetterQueuePolicy")["PolicyDocument"]


def test_the_reader_list_is_empty_by_default_and_takes_role_user_and_root_arns(template):
    p = template["Parameters"]["DeadLetterReaderArns"]
    assert p["Default"] == ""
    ok = ["", ON_CALL, f"{ON_CALL},{SSO_ADMINS}", ROOT_USER, A_USER, OTHER_ACCOUNT]
    bad = [f"{ON_CALL}, {A_USER}", "on-call", f"arn:aws:iam::{ACCOUNT}:group/ops", f"{ON_CALL},", "*"]
    for value in ok:
        assert re.fullmatch(p["AllowedPattern"], value), value
    for value in bad:
        assert not re.fullmatch(p["AllowedPattern"], value), value


@pytest.mark.parametrize("action", READ)
@pytest.mark.parametrize("who", [ADMIN, ROOT_USER, A_USER, "ReplicateFunctionRole", "ReconcileFunctionRole"])
def test_named_nobody_nobody_may_read_the_dead_letters(stack, action, who):
    arn = stack.get_att(who, "Arn") if who in ROLES else who
    assert denied(queue_policy(stack), action, QUEUE, role(arn)) == ["OnlyNamedReadersReadDeadLetters"]


@pytest.mark.parametrize("action", READ)
def test_the_named_readers_may_read_the_dead_letters_and_only_they(template, action):
    stack = Stack(template, {"DeadLetterReaderArns": f"{ON_CALL},{SSO_ADMINS}"})
    policy = queue_policy(stack)
    for reader in [ON_CALL, AN_SSO_ADMIN]:
        assert denied(policy, action, QUEUE, role(reader)) == [], reader
    others = [ADMIN, ROOT_USER, A_USER, f"arn:aws:iam::{ACCOUNT}:role/on-call-2", *role_arns(stack)]
    for other in others:
        assert denied(policy, action, QUEUE, role(other)) == ["OnlyNamedReadersReadDeadLetters"], other


@pytest.mark.parametrize("readers", ["", ON_CALL])
def test_the_dead_letters_still_arrive(template, readers):
    stack = Stack(template, {"DeadLetterReaderArns": readers})
    policy = queue_policy(stack)
    rule = stack.get_att("KmsApiCallRule", "Arn")
    assert denied(policy, "sqs:SendMessage", QUEUE, service("events.amazonaws.com", rule)) == []
    assert allowed_by(policy, "sqs:SendMessage", QUEUE, service("events.amazonaws.com", rule))
    for function_role in ["ReplicateFunctionRole", "ReconcileFunctionRole"]:
        request = role(stack.get_att(function_role, "Arn"))
        assert denied(policy, "sqs:SendMessage", QUEUE, request) == []
        assert allowed_by(policy, "sqs:SendMessage", QUEUE, request)


def test_a_reader_still_needs_tls(template):
    stack = Stack(template, {"DeadLetterReaderArns": ON_CALL})
    request = {**role(ON_CALL), "aws:SecureTransport": "false"}
    assert denied(queue_policy(stack), "sqs:ReceiveMessage", QUEUE, request) == ["DenyInsecureTransport"]
