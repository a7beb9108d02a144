"""What the tests share: the template as CloudFormation sees it, the statements each role is granted,
and the CloudTrail fixtures."""

import copy
import json
from pathlib import Path

import pytest
from cfnlint.decode import decode

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
FORWARDER = ROOT / "forwarder.yaml"
FIXTURES = ROOT / "tests" / "fixtures" / "cloudtrail"

FUNCTIONS = {
    # logical id: directory under functions/, Cargo package and binary name
    "ReplicateFunction": "replicate",
    "ReconcileFunction": "reconcile",
    "FailoverFunction": "failover",
}


def plain(node):
    """cfn-lint's nodes (dict_node, str_node, ...) as plain Python values."""
    return json.loads(json.dumps(node))


def load_template(path=TEMPLATE):
    template, matches = decode(str(path))
    assert not matches, f"{path.name} does not parse: {matches}"
    return plain(template)


REMOVAL_POLICIES = ["Retain", "ScheduleDeletion"]


def role_statements(template, role, removal_policy="ScheduleDeletion"):
    """Every statement the role is granted: those of its inline policies and of the stack's
    managed policies it attaches, with `Fn::If [IsScheduleDeletion, statement, AWS::NoValue]`
    resolved for the RemovalPolicy value (ScheduleDeletion, the widest, unless told)."""
    assert removal_policy in REMOVAL_POLICIES, removal_policy
    resources = template["Resources"]
    properties = resources[role]["Properties"]
    documents = [policy["PolicyDocument"] for policy in properties.get("Policies", [])]
    for arn in properties.get("ManagedPolicyArns", []):
        assert list(arn) == ["Ref"], f"{role} attaches a policy that is not one of the stack's: {arn}"
        policy = resources[arn["Ref"]]
        assert policy["Type"] == "AWS::IAM::ManagedPolicy", arn
        documents.append(policy["Properties"]["PolicyDocument"])
    found = []
    for document in documents:
        for item in document["Statement"]:
            if "Fn::If" in item:
                condition, when_true, when_false = item["Fn::If"]
                assert condition in ("IsScheduleDeletion", "ConsentByTag"), f"{role}: a statement under {condition}"
                if condition == "ConsentByTag":
                    # Consent=tag, the default and the widest.
                    item = when_true
                else:
                    item = when_true if removal_policy == "ScheduleDeletion" else when_false
                if item == {"Ref": "AWS::NoValue"}:
                    continue
            found.append(item)
    return found


@pytest.fixture(scope="session")
def template():
    return load_template()


@pytest.fixture(scope="session")
def forwarder():
    return load_template(FORWARDER)


@pytest.fixture(scope="session")
def resources(template):
    return template["Resources"]


# The account of the CloudTrail fixtures, and moto's own.
FIXTURE_ACCOUNT = "111122223333"
MOTO_ACCOUNT = "123456789012"


def deployed_pattern(pattern, account=FIXTURE_ACCOUNT):
    """A rule's pattern as deployed in `account`: its one intrinsic, `account: [!Ref
    AWS::AccountId]`, resolved."""
    pattern = json.loads(json.dumps(pattern))
    assert pattern.get("account") == [{"Ref": "AWS::AccountId"}], pattern.get("account")
    pattern["account"] = [account]
    return pattern


def fixture_paths():
    return sorted(FIXTURES.glob("*.json"))


def load_event(name):
    with open(FIXTURES / name, encoding="utf-8") as f:
        return json.load(f)


def with_detail(event, **changes):
    """A copy of an EventBridge event whose `detail` has the given fields set."""
    changed = copy.deepcopy(event)
    changed["detail"].update(changes)
    return changed
