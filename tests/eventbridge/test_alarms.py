"""template.yaml: the alarms, and where they and the audit events a person must act on go."""

import pytest

TOPIC = {"Fn::If": ["HasAlarmTopic", {"Ref": "AlarmTopicArn"}, {"Ref": "AlarmTopic"}]}

ALARMS = {
    # logical id: (namespace, metric, dimensions)
    "DeadLetterQueueAlarm": ("AWS/SQS", "NumberOfMessagesSent",
                             [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["DeadLetterQueue", "QueueName"]}}]),
    "ReplicateErrorsAlarm": ("AWS/Lambda", "Errors", [{"Name": "FunctionName", "Value": {"Ref": "ReplicateFunction"}}]),
    "ReconcileErrorsAlarm": ("AWS/Lambda", "Errors", [{"Name": "FunctionName", "Value": {"Ref": "ReconcileFunction"}}]),
    "FailoverErrorsAlarm": ("AWS/Lambda", "Errors", [{"Name": "FunctionName", "Value": {"Ref": "FailoverFunction"}}]),
    "ReconcileKeysFailedAlarm": ("KmsReplicator", "KeysFailed",
                                 [{"Name": "Function", "Value": "reconcile"}, {"Name": "Mode", "Value": "sweep"}]),
    "ReconcileKeysRemainingAlarm": ("KmsReplicator", "KeysRemaining",
                                    [{"Name": "Function", "Value": "reconcile"}, {"Name": "Mode", "Value": "sweep"}]),
    "EventsMissedAlarm": ("KmsReplicator", "EventsMissed",
                          [{"Name": "Function", "Value": "reconcile"}, {"Name": "Mode", "Value": "sweep"}]),
}


@pytest.mark.parametrize("alarm", sorted(ALARMS))
def test_each_alarm_fires_on_anything_above_zero_and_notifies_the_topic(resources, alarm):
    namespace, metric, dimensions = ALARMS[alarm]
    p = resources[alarm]["Properties"]
    assert (p["Namespace"], p["MetricName"], p["Dimensions"]) == (namespace, metric, dimensions)
    assert (p["Threshold"], p["ComparisonOperator"]) == (0, "GreaterThanThreshold")
    assert p["TreatMissingData"] == "notBreaching"
    assert p["AlarmActions"] == {"Fn::If": ["Notifies", [TOPIC], {"Ref": "AWS::NoValue"}]}


def test_the_reconcile_metrics_the_alarms_read_are_the_ones_the_sweep_emits():
    from conftest import ROOT

    report = (ROOT / "functions" / "reconcile" / "src" / "report.rs").read_text(encoding="utf-8")
    for metric in ("KeysFailed", "KeysRemaining", "EventsMissed"):
        assert f'.count("{metric}"' in report
    assert '.dimension("Function", "reconcile")' in report


def test_the_topic_is_created_only_for_an_email_without_a_topic_of_ones_own(template, resources):
    c = template["Conditions"]
    assert c["CreatesAlarmTopic"] == {"Fn::And": [{"Condition": "HasAlarmEmail"}, {"Fn::Not": [{"Condition": "HasAlarmTopic"}]}]}
    assert c["Notifies"] == {"Fn::Or": [{"Condition": "HasAlarmTopic"}, {"Condition": "HasAlarmEmail"}]}
    for r in ("AlarmTopic", "AlarmEmailSubscription", "AlarmTopicPolicy"):
        assert resources[r]["Condition"] == "CreatesAlarmTopic"
    assert resources["AlarmEmailSubscription"]["Properties"]["Protocol"] == "email"


def test_only_the_audit_rule_and_cloudwatch_of_this_account_may_publish_to_the_topic(resources):
    statements = resources["AlarmTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    by_principal = {s["Principal"]["Service"]: s for s in statements}
    assert set(by_principal) == {"events.amazonaws.com", "cloudwatch.amazonaws.com"}
    assert by_principal["events.amazonaws.com"]["Condition"] == {
        "ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": ["AuditNotificationRule", "Arn"]}}
    }
    for s in statements:
        assert s["Action"] == "sns:Publish"


def test_the_audit_events_a_person_must_act_on_are_sent_to_the_topic(resources):
    rule = resources["AuditNotificationRule"]
    assert rule["Condition"] == "Notifies"
    p = rule["Properties"]
    assert p["EventBusName"] == {"Fn::If": ["CreatesAuditBus", {"Ref": "AuditEventBus"}, {"Ref": "AuditEventBusName"}]}
    assert p["EventPattern"] == {
        "source": [{"Ref": "AuditSource"}],
        "detail-type": ["Replication Failed", "Failover Failed", "Replication Conflict"],
    }
    assert p["Targets"] == [{"Id": "AlarmTopic", "Arn": TOPIC}]


def test_the_events_missed_alarm_watches_the_sweep_and_points_at_the_runbook(resources):
    alarm = resources["EventsMissedAlarm"]["Properties"]
    assert alarm["MetricName"] == "EventsMissed"
    assert {d["Name"]: d["Value"] for d in alarm["Dimensions"]} == {"Function": "reconcile", "Mode": "sweep"}
    assert alarm["Threshold"] == 0 and alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert "not reaching the replicator" in alarm["AlarmDescription"]
    assert "docs/runbook.md, section 7" in alarm["AlarmDescription"]


def test_the_dead_letter_alarm_fires_on_each_new_arrival_not_on_waiting_messages(resources):
    # Nobody may read the queue by default, so waiting messages are not deleted: an alarm on
    # them would stay in ALARM and never notify again.
    p = resources["DeadLetterQueueAlarm"]["Properties"]
    assert (p["MetricName"], p["Statistic"]) == ("NumberOfMessagesSent", "Sum")
