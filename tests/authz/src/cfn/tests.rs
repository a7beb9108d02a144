//! Templates with parameters, conditions and intrinsic functions, evaluated.

use super::*;
use serde_json::json;

const TEMPLATE: &str = r#"
Parameters:
  Regions: {Type: String, Default: "us-east-1 us-west-2"}
  Mode: {Type: String, Default: Retain, AllowedValues: [Retain, ScheduleDeletion]}
  Required: {Type: String}
Conditions:
  Deletes: !Equals [!Ref Mode, ScheduleDeletion]
  Keeps: !Not [!Condition Deletes]
Resources:
  Role:
    Type: AWS::IAM::Role
    Properties:
      Path: /kms-replicator/
      Policies:
        - PolicyName: p
          PolicyDocument:
            Statement:
              - Effect: Allow
                Action: kms:PutKeyPolicy
                Resource: !Sub "arn:${AWS::Partition}:kms:*:${AWS::AccountId}:key/mrk-*"
                Condition:
                  StringEquals:
                    aws:RequestedRegion: !Split [" ", !Ref Regions]
              - !If
                - Deletes
                - {Effect: Allow, Action: kms:ScheduleKeyDeletion, Resource: "*"}
                - !Ref AWS::NoValue
  Topic:
    Type: AWS::SNS::Topic
    Condition: Keeps
Outputs:
  RoleArn: {Value: !GetAtt Role.Arn}
"#;

fn stack() -> Stack {
    Stack::new("kr", "111122223333", "us-east-1")
}

#[test]
fn parameters_conditions_and_functions_are_evaluated() {
    let t = Template::parse(TEMPLATE, stack(), &[("Required", "x")]).unwrap();
    let props = t.properties("Role").unwrap();
    let stmts = &props["Policies"][0]["PolicyDocument"]["Statement"];
    assert_eq!(
        stmts,
        &json!([{
            "Effect": "Allow",
            "Action": "kms:PutKeyPolicy",
            "Resource": "arn:aws:kms:*:111122223333:key/mrk-*",
            "Condition": {"StringEquals": {"aws:RequestedRegion": ["us-east-1", "us-west-2"]}}
        }])
    );
    assert_eq!(
        t.get_att("Role", "Arn").unwrap(),
        "arn:aws:iam::111122223333:role/kms-replicator/kr-Role"
    );
    assert!(t.resources().iter().any(|(id, _)| id == "Topic"));
}

#[test]
fn a_parameter_changes_what_the_conditions_select() {
    let t = Template::parse(
        TEMPLATE,
        stack(),
        &[("Required", "x"), ("Mode", "ScheduleDeletion")],
    )
    .unwrap();
    let props = t.properties("Role").unwrap();
    let stmts = props["Policies"][0]["PolicyDocument"]["Statement"]
        .as_array()
        .unwrap();
    assert_eq!(stmts.len(), 2);
    assert_eq!(stmts[1]["Action"], "kms:ScheduleKeyDeletion");
    assert!(!t.resources().iter().any(|(id, _)| id == "Topic"));
}

#[test]
fn a_missing_or_disallowed_parameter_value_is_refused() {
    assert!(Template::parse(TEMPLATE, stack(), &[]).is_err());
    let e =
        Template::parse(TEMPLATE, stack(), &[("Required", "x"), ("Mode", "Delete")]).unwrap_err();
    assert!(e.to_string().contains("AllowedValues"), "{e}");
    assert!(Template::parse(TEMPLATE, stack(), &[("Required", "x"), ("Nope", "1")]).is_err());
}
