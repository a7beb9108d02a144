"""template.yaml: parameters, functions, wiring and least-privilege IAM, read structurally."""

import json
import re
import tomllib

import pytest

from conftest import FUNCTIONS, REMOVAL_POLICIES, ROOT, role_statements

ALLOWED_REGIONS_SPLIT = {"Fn::Split": [" ", {"Ref": "AllowedRegions"}]}
MRK_KEYS = {"Fn::Sub": "arn:${AWS::Partition}:kms:*:${AWS::AccountId}:key/mrk-*"}
ALIASES = {"Fn::Sub": "arn:${AWS::Partition}:kms:*:${AWS::AccountId}:alias/*"}

ROLES = {
    "ReplicateFunction": "ReplicateFunctionRole",
    "ReconcileFunction": "ReconcileFunctionRole",
    "FailoverFunction": "FailoverFunctionRole",
}

# The Sids of each role's statements and their actions: the same for all three functions ...
COMMON = {
    "KmsDescribeKeys": {"kms:DescribeKey"},
    "KmsReadMultiRegionKeys": {"kms:GetKeyPolicy", "kms:ListResourceTags"},
    "KmsListAliases": {"kms:ListAliases"},
    "KmsReplicateKey": {"kms:ReplicateKey"},
    "DenyReplicateKeyFromOutsideAllowedRegions": {"kms:ReplicateKey"},
    "DenyReplicasOutsideAllowedRegions": {"kms:ReplicateKey"},
    "KmsCreateReplicaKey": {"kms:CreateKey"},
    "KmsPutKeyPolicy": {"kms:PutKeyPolicy"},
    "KmsManageAliasNames": {"kms:CreateAlias"},
    "KmsAliasReplicaKeys": {"kms:CreateAlias"},
    "KmsTagNewReplicas": {"kms:TagResource"},
    "KmsManageTags": {"kms:TagResource", "kms:UntagResource"},
    "KmsUpdateKeyDescription": {"kms:UpdateKeyDescription"},
    "DenyPolicyLockoutBypass": {"kms:CreateKey", "kms:PutKeyPolicy"},
    "AuditPutEvents": {"events:PutEvents"},
    "LogsWrite": {"logs:CreateLogStream", "logs:PutLogEvents"},
    "XRayWrite": {"xray:PutTraceSegments", "xray:PutTelemetryRecords"},
}
# ... plus these per function ...
EXTRA = {
    "ReplicateFunction": {"DeadLetterQueueSend": {"sqs:SendMessage"}},
    "ReconcileFunction": {
        "DeadLetterQueueSend": {"sqs:SendMessage"},
        "TagGetResources": {"tag:GetResources"},
        # {"check":"pipeline"}: read-only.
        "PipelineReadTrails": {"cloudtrail:DescribeTrails"},
        "PipelineReadTrailStatus": {"cloudtrail:GetTrailStatus", "cloudtrail:GetEventSelectors"},
        "PipelineListRules": {"events:ListRules"},
        "PipelineReadRuleTargets": {"events:ListTargetsByRule"},
        "PipelineReadLastEvent": {"cloudwatch:GetMetricData"},
        "KmsReadKeyUse": {"kms:GetKeyLastUsage"},
    },
    "FailoverFunction": {
        "KmsListKeys": {"kms:ListKeys"},
        "KmsUpdatePrimaryRegion": {"kms:UpdatePrimaryRegion"},
        "KmsTagOldPrimary": {"kms:TagResource"},
        "KmsReadKeyUse": {"kms:GetKeyLastUsage"},
    },
}
# ... plus these with RemovalPolicy ScheduleDeletion only: with Retain, nothing is deleted, so
# nothing is restored either.
WITH_SCHEDULE_DELETION = {
    "KmsScheduleReplicaDeletion": {"kms:ScheduleKeyDeletion"},
    "KmsRestoreReplica": {"kms:CancelKeyDeletion", "kms:EnableKey"},
    # The in-use guard's read before a deletion.
    "KmsReadReplicaLastUse": {"kms:GetKeyLastUsage"},
}
KMS_WRITE_SIDS = {
    "KmsReplicateKey",
    "KmsCreateReplicaKey",
    "KmsPutKeyPolicy",
    "KmsManageAliasNames",
    "KmsAliasReplicaKeys",
    "KmsManageTags",
    "KmsTagNewReplicas",
    "KmsTagOldPrimary",
    "KmsUpdateKeyDescription",
    "KmsScheduleReplicaDeletion",
    "KmsRestoreReplica",
    "KmsUpdatePrimaryRegion",
}
ENV_VARS = {
    "REPLICATION_TAG_KEY",
    "ALLOWED_REGIONS",
    "MANAGED_REGIONS",
    "POLICY_MODE",
    "REMOVAL_POLICY",
    "CONSENT",
    "PENDING_WINDOW_DAYS",
    "IN_USE_WINDOW_DAYS",
    "AUDIT_EVENT_BUS",
    "AUDIT_SOURCE",
    "IGNORE_CALLER_ARNS",
    "IGNORE_CALLER_ROLE_PATH",
    "ACCOUNT_ID",
    "METRICS_NAMESPACE",
}


def as_list(value):
    return value if isinstance(value, list) else [value]


def statements(template, function, removal_policy="ScheduleDeletion"):
    return role_statements(template, ROLES[function], removal_policy)


def by_sid(template, function, removal_policy="ScheduleDeletion"):
    result = {}
    for statement in statements(template, function, removal_policy):
        assert statement["Sid"] not in result, f"duplicate Sid {statement['Sid']} in {function}"
        result[statement["Sid"]] = statement
    return result


def actions_by_sid(template, function, removal_policy):
    return {sid: set(as_list(s["Action"])) for sid, s in by_sid(template, function, removal_policy).items()}


# ---------------------------------------------------------------------------------------------
# Parameters
# ---------------------------------------------------------------------------------------------


def full_match(parameter, value):
    # CloudFormation applies AllowedPattern to the whole value (Java's Matcher.matches()).
    return re.fullmatch(parameter["AllowedPattern"], value) is not None


def test_it_is_a_sam_template(template):
    assert template["Transform"] == "AWS::Serverless-2016-10-31"


def test_allowed_regions_is_required_and_takes_region_names_separated_by_single_spaces(template):
    p = template["Parameters"]["AllowedRegions"]
    assert "Default" not in p
    for good in ["us-east-1", "us-east-1 us-west-2", "eu-west-1 us-gov-west-1 ap-southeast-5 eu-central-2"]:
        assert full_match(p, good), good
    for bad in ["", " ", "us-east-1,us-west-2", "us-east-1  us-west-2", " us-east-1", "us-east-1 ", "US-EAST-1", "useast1"]:
        assert not full_match(p, bad), bad


def test_managed_regions_defaults_to_empty_meaning_the_allowed_regions(template):
    p = template["Parameters"]["ManagedRegions"]
    assert p["Default"] == ""
    assert full_match(p, "") and full_match(p, "us-east-1 eu-west-1")
    assert not full_match(p, "us-east-1,eu-west-1")
    managed = template["Globals"]["Function"]["Environment"]["Variables"]["MANAGED_REGIONS"]
    assert managed == {"Fn::If": ["HasManagedRegions", {"Ref": "ManagedRegions"}, {"Ref": "AllowedRegions"}]}


@pytest.mark.parametrize(
    "name, default, allowed",
    [
        ("PolicyMode", "rewrite", ["rewrite", "verbatim", "off"]),
        ("RemovalPolicy", "Retain", ["Retain", "ScheduleDeletion"]),
        ("Consent", "tag", ["tag", "key-policy"]),
        ("LogLevel", "INFO", ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"]),
    ],
)
def test_choice_parameters_have_their_values_and_defaults(template, name, default, allowed):
    p = template["Parameters"][name]
    # "off" must stay a string: unquoted, YAML 1.1 reads it as false.
    assert p["AllowedValues"] == allowed
    assert p["Default"] == default


def test_pending_window_is_7_to_30_days_defaulting_to_30(template):
    p = template["Parameters"]["PendingWindowInDays"]
    assert (p["Type"], p["MinValue"], p["MaxValue"], p["Default"]) == ("Number", 7, 30, 30)


@pytest.mark.parametrize(
    "name, default",
    [
        ("ReplicationTagKey", "replicate-to"),
        ("AuditEventBusName", ""),
        ("AuditSource", "kms-replicator"),
        ("ReconcileSchedule", "rate(1 hour)"),
    ],
)
def test_string_parameters_have_their_defaults(template, name, default):
    assert template["Parameters"][name]["Default"] == default


def test_every_default_satisfies_its_own_constraints(template):
    for name, p in template["Parameters"].items():
        if "Default" not in p:
            continue
        value = p["Default"]
        if "AllowedValues" in p:
            assert value in p["AllowedValues"], name
        if "AllowedPattern" in p:
            assert full_match(p, str(value)), name
        if "MinValue" in p:
            assert p["MinValue"] <= value <= p["MaxValue"], name
        if "MinLength" in p:
            assert len(value) >= p["MinLength"], name


def test_audit_bus_accepts_a_name_or_an_arn_and_the_source_cannot_pose_as_aws(template):
    bus = template["Parameters"]["AuditEventBusName"]
    assert full_match(bus, "") and full_match(bus, "default") and full_match(bus, "audit-bus")
    assert full_match(bus, "arn:aws:events:us-east-1:111122223333:event-bus/central")
    source = template["Parameters"]["AuditSource"]
    assert not full_match(source, "aws.kms")


def test_reconcile_schedule_accepts_rate_and_cron_expressions(template):
    p = template["Parameters"]["ReconcileSchedule"]
    assert full_match(p, "rate(15 minutes)") and full_match(p, "cron(0 * * * ? *)")
    assert not full_match(p, "hourly")


# ---------------------------------------------------------------------------------------------
# Functions
# ---------------------------------------------------------------------------------------------


def test_globals_set_the_rust_runtime_and_json_logs(template):
    g = template["Globals"]["Function"]
    assert g["Runtime"] == "provided.al2023"
    assert g["Architectures"] == ["arm64"]
    assert g["Handler"] == "bootstrap"
    assert g["Tracing"] == "Active"
    assert g["LoggingConfig"]["LogFormat"] == "JSON"
    assert g["LoggingConfig"]["ApplicationLogLevel"] == {"Ref": "LogLevel"}
    assert isinstance(g["MemorySize"], int) and isinstance(g["Timeout"], int)


def test_globals_set_every_environment_variable_the_code_reads(template):
    assert set(template["Globals"]["Function"]["Environment"]["Variables"]) == ENV_VARS


def test_the_environment_variables_match_the_rust_configuration_reader(template):
    config = ROOT / "shared" / "src" / "config.rs"
    if not config.exists():
        pytest.skip("shared/src/config.rs not present")
    read = set(re.findall(r'(?:var|get)\("([A-Z_]+)"\)', config.read_text(encoding="utf-8")))
    assert read, "no var(\"...\") calls found in config.rs"
    assert read <= set(template["Globals"]["Function"]["Environment"]["Variables"])


def test_the_replicator_ignores_the_cloudtrail_events_of_its_own_three_roles(template):
    value = template["Globals"]["Function"]["Environment"]["Variables"]["IGNORE_CALLER_ARNS"]
    assert value == {"Fn::Sub": "${ReplicateFunctionRole.Arn} ${ReconcileFunctionRole.Arn} ${FailoverFunctionRole.Arn}"}


def test_the_replicator_ignores_every_role_under_its_iam_path(template, resources):
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["IGNORE_CALLER_ROLE_PATH"] == "/kms-replicator/"
    for role in ROLES.values():
        assert resources[role]["Properties"]["Path"] == variables["IGNORE_CALLER_ROLE_PATH"], role


@pytest.mark.parametrize("role", sorted(ROLES.values()))
def test_each_role_takes_the_optional_permissions_boundary(resources, role):
    assert resources[role]["Properties"]["PermissionsBoundary"] == {
        "Fn::If": ["HasPermissionsBoundary", {"Ref": "PermissionsBoundaryArn"}, {"Ref": "AWS::NoValue"}]
    }


def test_the_permissions_boundary_is_optional_and_an_iam_policy_arn(template):
    assert template["Conditions"]["HasPermissionsBoundary"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "PermissionsBoundaryArn"}, ""]}]
    }
    parameter = template["Parameters"]["PermissionsBoundaryArn"]
    assert parameter["Default"] == ""
    for ok in ["", "arn:aws:iam::111122223333:policy/kms-replicator-boundary", "arn:aws:iam::aws:policy/PowerUserAccess"]:
        assert full_match(parameter, ok), ok
    for bad in ["kms-replicator-boundary", "arn:aws:iam::111122223333:role/boundary"]:
        assert not full_match(parameter, bad), bad


def test_the_boundary_parameter_is_the_same_in_the_forwarder(template, forwarder):
    main = template["Parameters"]["PermissionsBoundaryArn"]
    fwd = forwarder["Parameters"]["PermissionsBoundaryArn"]
    assert (main["AllowedPattern"], main["Default"]) == (fwd["AllowedPattern"], fwd["Default"])


@pytest.mark.parametrize("function, name", sorted(FUNCTIONS.items()))
def test_each_function_is_built_by_cargo_lambda_from_its_own_package(resources, function, name):
    f = resources[function]
    assert f["Type"] == "AWS::Serverless::Function"
    assert f["Properties"]["CodeUri"] == f"functions/{name}"
    assert f["Metadata"] == {"BuildMethod": "rust-cargolambda", "BuildProperties": {"Binary": name}}
    assert f["Properties"]["Role"] == {"Fn::GetAtt": [ROLES[function], "Arn"]}


@pytest.mark.parametrize("function, name", sorted(FUNCTIONS.items()))
def test_the_binary_name_is_the_cargo_package_name(function, name):
    manifest = ROOT / "functions" / name / "Cargo.toml"
    if not manifest.exists():
        pytest.skip(f"functions/{name}/Cargo.toml not present yet")
    package = tomllib.loads(manifest.read_text(encoding="utf-8"))
    bins = [b["name"] for b in package.get("bin", [])] or [package["package"]["name"]]
    assert name in bins


def test_timeouts(resources, template):
    assert "Timeout" not in resources["ReplicateFunction"]["Properties"]
    assert template["Globals"]["Function"]["Timeout"] <= 120
    assert resources["ReconcileFunction"]["Properties"]["Timeout"] == 900
    assert resources["FailoverFunction"]["Properties"]["Timeout"] == 300


def test_replicate_retries_twice_then_sends_the_event_to_the_dead_letter_queue(resources):
    config = resources["ReplicateFunction"]["Properties"]["EventInvokeConfig"]
    assert config["MaximumRetryAttempts"] == 2
    assert config["DestinationConfig"]["OnFailure"] == {
        "Type": "SQS",
        "Destination": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]},
    }


def test_reconcile_runs_on_the_configured_schedule(resources):
    events = resources["ReconcileFunction"]["Properties"]["Events"]
    assert [e["Type"] for e in events.values()] == ["Schedule"]
    (event,) = events.values()
    assert event["Properties"]["Schedule"] == {"Ref": "ReconcileSchedule"}


def test_failover_has_no_trigger_and_is_never_retried(resources):
    props = resources["FailoverFunction"]["Properties"]
    assert "Events" not in props
    assert props["EventInvokeConfig"]["MaximumRetryAttempts"] == 0


def test_the_rule_target_retries_and_has_a_dead_letter_queue(resources):
    rule = resources["KmsApiCallRule"]["Properties"]
    assert rule["EventBusName"] == "default"
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["ReplicateFunction", "Arn"]}
    assert 0 <= target["RetryPolicy"]["MaximumRetryAttempts"] <= 185
    assert 60 <= target["RetryPolicy"]["MaximumEventAgeInSeconds"] <= 86400
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}}


def test_only_the_rule_may_invoke_the_replicate_function(resources):
    permission = resources["KmsApiCallRulePermission"]["Properties"]
    assert permission["Principal"] == "events.amazonaws.com"
    assert permission["FunctionName"] == {"Ref": "ReplicateFunction"}
    assert permission["SourceArn"] == {"Fn::GetAtt": ["KmsApiCallRule", "Arn"]}


def test_the_dead_letter_queue_is_encrypted_keeps_messages_14_days_and_admits_the_rule(resources):
    queue = resources["DeadLetterQueue"]["Properties"]
    assert queue["SqsManagedSseEnabled"] is True
    assert queue["MessageRetentionPeriod"] == 14 * 24 * 3600
    policy = resources["DeadLetterQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    from_rule = [s for s in policy if s.get("Principal") == {"Service": "events.amazonaws.com"}]
    assert len(from_rule) == 1
    assert from_rule[0]["Action"] == "sqs:SendMessage"
    assert from_rule[0]["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": ["KmsApiCallRule", "Arn"]}}}


def test_outputs(template):
    assert {
        "ReplicateFunctionName",
        "ReplicateFunctionArn",
        "ReconcileFunctionName",
        "ReconcileFunctionArn",
        "FailoverFunctionName",
        "FailoverFunctionArn",
        "ReplicateFunctionRoleArn",
        "ReconcileFunctionRoleArn",
        "FailoverFunctionRoleArn",
        "DeadLetterQueueUrl",
        "AuditEventBus",
        "KmsApiCallRuleArn",
    } <= set(template["Outputs"])


# ---------------------------------------------------------------------------------------------
# IAM
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("removal_policy", REMOVAL_POLICIES)
@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_statements_per_function(template, function, removal_policy):
    expected = {**COMMON, **EXTRA[function]}
    if removal_policy == "ScheduleDeletion":
        expected |= WITH_SCHEDULE_DELETION
    assert actions_by_sid(template, function, removal_policy) == expected


def test_only_failover_may_update_the_primary_region(template):
    for function in FUNCTIONS:
        actions = set().union(*actions_by_sid(template, function, "ScheduleDeletion").values())
        assert ("kms:UpdatePrimaryRegion" in actions) is (function == "FailoverFunction")


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_no_wildcard_actions_and_no_lockout_bypass(template, function):
    for statement in statements(template, function):
        for action in as_list(statement["Action"]):
            assert "*" not in action, f"{statement['Sid']}: {action}"
        if "BypassPolicyLockoutSafetyCheck" in json.dumps(statement):
            assert statement["Effect"] == "Deny", statement["Sid"]


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_lockout_bypass_is_denied(template, function):
    statement = by_sid(template, function)["DenyPolicyLockoutBypass"]
    assert statement["Effect"] == "Deny"
    assert set(as_list(statement["Action"])) == {"kms:CreateKey", "kms:PutKeyPolicy"}
    assert statement["Condition"] == {"Bool": {"kms:BypassPolicyLockoutSafetyCheck": "true"}}


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_every_other_statement_allows(template, function):
    for sid, statement in by_sid(template, function).items():
        assert statement["Effect"] == ("Deny" if sid in DENIES else "Allow"), sid


# The Deny statements: the lockout bypass, and ReplicateKey outside AllowedRegions whatever a key
# policy grants (with Consent=key-policy the grant is in the key policy).
DENIES = {
    "DenyPolicyLockoutBypass",
    "DenyReplicateKeyFromOutsideAllowedRegions",
    "DenyReplicasOutsideAllowedRegions",
}


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_replicate_key_outside_the_allowed_regions_is_denied(template, function):
    statements = by_sid(template, function)
    allowed = {"Fn::Split": [" ", {"Ref": "AllowedRegions"}]}
    for sid, key in [
        ("DenyReplicateKeyFromOutsideAllowedRegions", "aws:RequestedRegion"),
        ("DenyReplicasOutsideAllowedRegions", "kms:ReplicaRegion"),
    ]:
        s = statements[sid]
        assert (s["Effect"], s["Action"], s["Resource"]) == ("Deny", "kms:ReplicateKey", "*")
        assert s["Condition"] == {"StringNotEquals": {key: allowed}}, sid


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_kms_writes_are_limited_to_the_allowed_regions(template, function):
    # Where AWS documents no example of aws:RequestedRegion (the cross-Region authorizations of
    # ReplicateKey's CreateKey and of UpdatePrimaryRegion), the condition is ...IfExists.
    if_exists = {"KmsCreateReplicaKey", "KmsTagNewReplicas", "KmsUpdatePrimaryRegion"}
    for sid, statement in by_sid(template, function).items():
        if sid in KMS_WRITE_SIDS:
            operator = "StringEqualsIfExists" if sid in if_exists else "StringEquals"
            assert statement["Condition"][operator]["aws:RequestedRegion"] == ALLOWED_REGIONS_SPLIT, sid


REPLICA_ONLY = {"KmsPutKeyPolicy", "KmsUpdateKeyDescription", "KmsAliasReplicaKeys", "KmsRestoreReplica"}


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_writes_to_keys_are_limited_to_replicas(template, function):
    # The functions write only replicas; the failover function also tags the old primary
    # before promoting it.
    sids = REPLICA_ONLY | {"KmsManageTags"}
    for sid in sids:
        statement = by_sid(template, function)[sid]
        assert statement["Condition"]["StringEquals"]["kms:MultiRegionKeyType"] == "REPLICA", sid
    alias_names = by_sid(template, function)["KmsManageAliasNames"]
    assert "kms:MultiRegionKeyType" not in json.dumps(alias_names), "an alias carries no key type"


def test_only_the_failover_function_may_tag_a_primary_and_only_with_its_two_tag_keys(template):
    tags = by_sid(template, "FailoverFunction")["KmsTagOldPrimary"]
    assert tags["Action"] == "kms:TagResource"
    assert tags["Condition"] == {
        "StringEquals": {"aws:RequestedRegion": ALLOWED_REGIONS_SPLIT, "kms:MultiRegionKeyType": "PRIMARY"},
        "ForAllValues:StringEquals": {"aws:TagKeys": [{"Ref": "ReplicationTagKey"}, "kms-replicator:primary-regions"]},
    }
    for function in FUNCTIONS:
        if function != "FailoverFunction":
            assert "KmsTagOldPrimary" not in by_sid(template, function)


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_tags_at_replica_creation_are_granted_on_any_key_but_never_on_a_primary_or_single_region_key(
    template, function
):
    statement = by_sid(template, function)["KmsTagNewReplicas"]
    assert statement["Resource"] == "*"
    assert statement["Condition"] == {
        "StringEqualsIfExists": {"aws:RequestedRegion": ALLOWED_REGIONS_SPLIT, "kms:MultiRegionKeyType": "REPLICA"},
        "BoolIfExists": {"kms:MultiRegion": "true"},
    }


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_key_actions_are_scoped_to_multi_region_keys_of_this_account(template, function):
    unscoped = {"KmsListAliases", "KmsListKeys", "KmsCreateReplicaKey", "KmsTagNewReplicas"}
    for sid, statement in by_sid(template, function).items():
        if not sid.startswith("Kms") or sid in unscoped:
            continue
        expected = ALIASES if sid == "KmsManageAliasNames" else MRK_KEYS
        if sid == "KmsDescribeKeys":
            expected = {"Fn::Sub": "arn:${AWS::Partition}:kms:*:${AWS::AccountId}:key/*"}
        assert statement["Resource"] == expected, sid


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_list_calls_without_resource_level_permissions_use_a_star(template, function):
    for sid, statement in by_sid(template, function).items():
        if sid in {"KmsListAliases", "KmsListKeys", "TagGetResources"}:
            assert statement["Resource"] == "*", sid


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_create_key_only_creates_multi_region_replicas_in_allowed_regions(template, function):
    statement = by_sid(template, function)["KmsCreateReplicaKey"]
    assert statement["Resource"] == "*"
    assert statement["Condition"] == {
        "StringEqualsIfExists": {"aws:RequestedRegion": ALLOWED_REGIONS_SPLIT, "kms:MultiRegionKeyType": "REPLICA"},
        "BoolIfExists": {"kms:MultiRegion": "true"},
    }


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_replicas_are_only_created_in_allowed_regions(template, function):
    statement = by_sid(template, function)["KmsReplicateKey"]
    assert statement["Condition"]["StringEquals"]["kms:ReplicaRegion"] == ALLOWED_REGIONS_SPLIT


def test_primaries_are_only_moved_to_allowed_regions(template):
    statement = by_sid(template, "FailoverFunction")["KmsUpdatePrimaryRegion"]
    assert statement["Condition"]["StringEqualsIfExists"]["kms:PrimaryRegion"] == ALLOWED_REGIONS_SPLIT


@pytest.mark.parametrize("removal_policy", REMOVAL_POLICIES)
@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_deletion_is_granted_only_with_schedule_deletion_and_only_for_replicas(template, function, removal_policy):
    deleting = {
        sid: statement
        for sid, statement in by_sid(template, function, removal_policy).items()
        if "kms:ScheduleKeyDeletion" in as_list(statement["Action"])
    }
    if removal_policy == "Retain":
        assert deleting == {}
    else:
        assert list(deleting) == ["KmsScheduleReplicaDeletion"]
        assert deleting["KmsScheduleReplicaDeletion"]["Condition"]["StringEquals"]["kms:MultiRegionKeyType"] == "REPLICA"


def test_schedule_deletion_condition(template):
    assert template["Conditions"]["IsScheduleDeletion"] == {"Fn::Equals": [{"Ref": "RemovalPolicy"}, "ScheduleDeletion"]}


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_restoring_a_replica_is_limited_to_replicas(template, function):
    statement = by_sid(template, function)["KmsRestoreReplica"]
    assert statement["Condition"]["StringEquals"]["kms:MultiRegionKeyType"] == "REPLICA"


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_audit_events_go_only_to_the_audit_bus_with_the_audit_source(template, function):
    statement = by_sid(template, function)["AuditPutEvents"]
    assert statement["Action"] == "events:PutEvents"
    own_bus, other_bus = statement["Resource"]["Fn::If"][1:]
    assert statement["Resource"]["Fn::If"][0] == "CreatesAuditBus"
    assert own_bus == {
        "Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/${AWS::StackName}-audit"
    }
    assert other_bus["Fn::If"][0] == "AuditBusIsArn"
    assert statement["Condition"] == {"StringEquals": {"events:source": {"Ref": "AuditSource"}}}


def test_the_stack_creates_the_audit_bus_when_none_is_named(template, resources):
    assert template["Conditions"]["CreatesAuditBus"] == {"Fn::Equals": [{"Ref": "AuditEventBusName"}, ""]}
    assert resources["AuditEventBus"]["Condition"] == "CreatesAuditBus"
    assert resources["AuditEventBus"]["Properties"]["Name"] == {"Fn::Sub": "${AWS::StackName}-audit"}


def test_audit_bus_arn_condition(template):
    assert template["Conditions"]["AuditBusIsArn"] == {
        "Fn::Equals": [{"Fn::Select": [0, {"Fn::Split": [":", {"Ref": "AuditEventBusName"}]}]}, "arn"]
    }


@pytest.mark.parametrize("function", ["ReplicateFunction", "ReconcileFunction"])
def test_functions_with_a_failure_destination_may_send_to_the_dead_letter_queue(template, function):
    statement = by_sid(template, function)["DeadLetterQueueSend"]
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Resource"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_each_function_writes_only_to_its_own_log_group(template, function):
    log_group = template["Resources"][function]["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
    assert by_sid(template, function)["LogsWrite"]["Resource"] == {"Fn::GetAtt": [log_group, "Arn"]}


def test_resource_group_tagging_is_for_the_sweeps_only(template):
    for function in FUNCTIONS:
        sids = by_sid(template, function)
        assert ("TagGetResources" in sids) is (function == "ReconcileFunction")


def written_statements(resources):
    """(where, statement) for each statement written in the stack's identity policies: the roles'
    inline policies and the managed policies, a statement under `Fn::If` taken as written."""
    for name, resource in resources.items():
        if resource["Type"] == "AWS::IAM::Role":
            documents = [p["PolicyDocument"] for p in resource["Properties"].get("Policies", [])]
        elif resource["Type"] == "AWS::IAM::ManagedPolicy":
            documents = [resource["Properties"]["PolicyDocument"]]
        else:
            continue
        for document in documents:
            for item in document["Statement"]:
                yield name, item["Fn::If"][1] if "Fn::If" in item else item


def test_no_statement_is_written_twice(resources):
    # What two roles share lives in one managed policy, so that a change to it is made once.
    seen = {}
    for where, statement in written_statements(resources):
        grant = json.dumps({k: v for k, v in statement.items() if k != "Sid"}, sort_keys=True)
        assert grant not in seen, f"{where} repeats a statement of {seen[grant]}: {statement['Sid']}"
        seen[grant] = where


def test_each_managed_policy_is_shared_and_part_of_its_roles(resources):
    attached = {}
    for name, resource in resources.items():
        if resource["Type"] == "AWS::IAM::Role":
            for arn in resource["Properties"].get("ManagedPolicyArns", []):
                attached.setdefault(arn["Ref"], set()).add(name)
    policies = {name: r["Properties"] for name, r in resources.items() if r["Type"] == "AWS::IAM::ManagedPolicy"}
    assert policies, "no managed policy: each role repeats the statements it shares"
    for name, properties in policies.items():
        assert len(attached.get(name, ())) >= 2, f"{name} is for {attached.get(name)} alone: inline belongs there"
        # Attached from the policy's side (Roles), it would be attached after the role exists,
        # and a function could start without it.
        assert not {"Roles", "Users", "Groups"} & set(properties), name
        assert properties["Path"] == "/kms-replicator/", name


def test_the_pipeline_check_reads_only_and_only_this_accounts_trails_and_rules(template):
    sids = by_sid(template, "ReconcileFunction")
    for sid in ["PipelineReadTrails", "PipelineReadTrailStatus", "PipelineListRules",
                "PipelineReadRuleTargets", "PipelineReadLastEvent"]:
        for action in as_list(sids[sid]["Action"]):
            verb = action.split(":")[1]
            assert verb.startswith(("Describe", "Get", "List")), action
    assert sids["PipelineReadTrailStatus"]["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:cloudtrail:*:${AWS::AccountId}:trail/*"}
    assert sids["PipelineReadRuleTargets"]["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:events:*:${AWS::AccountId}:rule/*"}

