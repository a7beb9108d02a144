"""The audit bus and the dead-letter queue as a stack deploys them: who their resource policies
refuse, evaluated for requests by the function roles, by people, and by other services."""

import pytest

from conftest import ROOT  # noqa: F401  (the template fixture lives there)
from deployed import ACCOUNT, REGION, STACK, Stack, denied, role, service

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
