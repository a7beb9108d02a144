//! CloudTrail records of the twin's writes, wrapped as the EventBridge events a rule on the
//! default bus receives. The shape follows the records in the KMS Developer Guide.

use crate::kinds::KeyKind;
use kms_replicator::arn::parse_kms_arn;
use kms_replicator::model::{KeyInfo, MultiRegionKeyType, Tag};
use kms_replicator::op::Op;
use serde_json::{json, Value};
use std::time::SystemTime;

pub(super) fn tags_json(tags: &[Tag]) -> Value {
    Value::Array(
        tags.iter()
            .map(|t| json!({"tagKey": t.key, "tagValue": t.value}))
            .collect(),
    )
}

/// `keyMetadata` as CloudTrail records show it (lower camel case).
pub(super) fn key_metadata(info: &KeyInfo, account: &str, kind: &KeyKind) -> Value {
    let mut m = json!({
        "AWSAccountId": account,
        "keyId": info.key_id,
        "arn": info.arn,
        "enabled": info.state == kms_replicator::model::KeyState::Enabled,
        "description": info.description,
        "keyUsage": kind.usage,
        "keyState": info.state.as_str(),
        "origin": kind.origin,
        "keyManager": "CUSTOMER",
        "keySpec": kind.spec,
        "customerMasterKeySpec": kind.spec,
        "multiRegion": info.multi_region.is_some(),
    });
    for (field, algorithms) in kind.algorithms() {
        let mut name = field.to_string();
        name[..1].make_ascii_lowercase();
        m[name] = json!(algorithms);
    }
    if let Some(mr) = &info.multi_region {
        let primary_arn = info.arn.replace(
            &format!(":kms:{}:", info.region),
            &format!(":kms:{}:", mr.primary_region),
        );
        m["multiRegionConfiguration"] = json!({
            "multiRegionKeyType": match mr.key_type {
                MultiRegionKeyType::Primary => "PRIMARY",
                MultiRegionKeyType::Replica => "REPLICA",
            },
            "primaryKey": {"arn": primary_arn, "region": mr.primary_region},
            "replicaKeys": mr.replica_regions.iter().map(|r| json!({
                "arn": info.arn.replace(&format!(":kms:{}:", info.region), &format!(":kms:{r}:")),
                "region": r,
            })).collect::<Vec<_>>(),
        });
    }
    m
}

pub(super) struct Record {
    region: String,
    event_name: Op,
    caller: String,
    invoked_by_kms: bool,
    params: Value,
    response: Value,
    resources: Vec<String>,
}

impl Record {
    pub(super) fn new(region: &str, event_name: Op, caller: &str, params: Value) -> Record {
        Record {
            region: region.to_string(),
            event_name,
            caller: caller.to_string(),
            invoked_by_kms: false,
            params,
            response: Value::Null,
            resources: Vec::new(),
        }
    }

    pub(super) fn response(mut self, response: Value) -> Record {
        self.response = response;
        self
    }

    /// The record of a call that KMS made on the caller's behalf in another Region.
    pub(super) fn invoked_by_kms(mut self) -> Record {
        self.invoked_by_kms = true;
        self
    }

    pub(super) fn key(mut self, arn: &str) -> Record {
        self.resources.push(arn.to_string());
        self
    }

    pub(super) fn alias(mut self, alias: &str) -> Record {
        let arn = self.resources.first().and_then(|a| {
            parse_kms_arn(a)
                .map(|p| format!("arn:{}:kms:{}:{}:{alias}", p.partition, p.region, p.account))
        });
        if let Some(a) = arn {
            self.resources.push(a);
        }
        self
    }

    pub(super) fn into_event(self, account: &str, n: u64) -> Value {
        let time = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
        let mut identity = if self.caller.contains(":role/") {
            let role_name = self.caller.rsplit('/').next().unwrap_or("role");
            json!({
                "type": "AssumedRole",
                "principalId": format!("AROAEXAMPLE{n:08}:{role_name}"),
                // The session's ARN names the role without its IAM path, as AWS records it.
                "arn": format!(
                    "{}:assumed-role/{role_name}/{role_name}",
                    self.caller.split(":role/").next().unwrap_or_default().replace(":iam::", ":sts::")
                ),
                "accountId": account,
                "accessKeyId": "ASIAEXAMPLEKEYID",
                "sessionContext": {
                    "sessionIssuer": {
                        "type": "Role",
                        "principalId": format!("AROAEXAMPLE{n:08}"),
                        "arn": self.caller,
                        "accountId": account,
                        "userName": role_name
                    },
                    "attributes": {"creationDate": time, "mfaAuthenticated": "false"}
                }
            })
        } else {
            json!({
                "type": "IAMUser",
                "principalId": "EX_PRINCIPAL_ID",
                "arn": self.caller,
                "accountId": account,
                "accessKeyId": "EXAMPLE_KEY_ID",
                "userName": self.caller.rsplit('/').next().unwrap_or("user"),
            })
        };
        if self.invoked_by_kms {
            identity["invokedBy"] = json!("kms.amazonaws.com");
        }
        let event_id = format!("{:08x}-0000-4000-8000-{n:012x}", n);
        let resources: Vec<Value> = self
            .resources
            .iter()
            .map(|arn| json!({"accountId": account, "type": "AWS::KMS::Key", "ARN": arn}))
            .collect();
        json!({
            "version": "0",
            "id": format!("{:08x}-1111-4000-8000-{n:012x}", n),
            "detail-type": "AWS API Call via CloudTrail",
            "source": "aws.kms",
            "account": account,
            "time": time,
            "region": self.region,
            "resources": [],
            "detail": {
                "eventVersion": "1.08",
                "userIdentity": identity,
                "eventTime": time,
                "eventSource": "kms.amazonaws.com",
                "eventName": self.event_name.name(),
                "awsRegion": self.region,
                "sourceIPAddress": if self.invoked_by_kms { "kms.amazonaws.com" } else { "192.0.2.0" },
                "userAgent": if self.invoked_by_kms { "kms.amazonaws.com" } else { "aws-sdk-rust" },
                "requestParameters": self.params,
                "responseElements": self.response,
                "requestID": format!("{:08x}-2222-4000-8000-{n:012x}", n),
                "eventID": event_id,
                "readOnly": false,
                "resources": resources,
                "eventType": "AwsApiCall",
                "managementEvent": true,
                "recipientAccountId": account,
                "eventCategory": "Management"
            }
        })
    }
}
