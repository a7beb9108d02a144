"""The effective statements of each role, for both RemovalPolicy values, equal those the template
gave before its shared statements moved into managed policies (iam_before.json, written from
that template by `effective` below)."""

import json
from pathlib import Path

import pytest

from conftest import REMOVAL_POLICIES, role_statements

BEFORE = Path(__file__).with_name("iam_before.json")
ROLES = ["ReplicateFunctionRole", "ReconcileFunctionRole", "FailoverFunctionRole"]


def effective(template, role, removal_policy):
    return sorted(role_statements(template, role, removal_policy), key=lambda s: json.dumps(s, sort_keys=True))


@pytest.mark.parametrize("removal_policy", REMOVAL_POLICIES)
@pytest.mark.parametrize("role", ROLES)
def test_each_role_is_granted_what_it_was_before(template, role, removal_policy):
    before = json.loads(BEFORE.read_text(encoding="utf-8"))[role][removal_policy]
    assert effective(template, role, removal_policy) == before
