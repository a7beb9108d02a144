"""Shared helpers: the template as CloudFormation sees it, and the CloudTrail fixtures."""

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


@pytest.fixture(scope="session")
def template():
    return load_template()


@pytest.fixture(scope="session")
def forwarder():
    return load_template(FORWARDER)


@pytest.fixture(scope="session")
def resources(template):
    return template["Resources"]


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
