//! The IAM roles of a template and the identity policies each one holds once deployed: its
//! inline `Policies`, the stack's `AWS::IAM::ManagedPolicy` resources it lists in
//! `ManagedPolicyArns` or that list it in their `Roles`, and `AWS::IAM::Policy` resources that
//! name it. Read from the template with its parameters resolved, never copied into code, so a
//! change to the template is what the tests evaluate.

use crate::cfn::{CfnError, Template};
use crate::policy::Policy;
use serde_json::Value;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum RoleError {
    #[error(transparent)]
    Template(#[from] CfnError),
    #[error("{role}: {message}")]
    Role { role: String, message: String },
}

/// A role as deployed.
#[derive(Debug, Clone)]
pub struct Role {
    pub logical_id: String,
    /// With its IAM path, as key policies and CloudTrail's `sessionIssuer.arn` name it.
    pub arn: String,
    /// Each identity policy, with where it comes from (`ReplicateFunctionRole/replicate`,
    /// `KmsReadPolicy`).
    pub policies: Vec<(String, Policy)>,
    /// The permissions boundary's ARN, when the stack sets one (it can only narrow).
    pub boundary: Option<String>,
}

impl Role {
    pub fn identity_policies(&self) -> Vec<Policy> {
        self.policies.iter().map(|(_, p)| p.clone()).collect()
    }
}

fn document(role: &str, source: &str, doc: Option<&Value>) -> Result<Policy, RoleError> {
    let doc = doc.ok_or_else(|| RoleError::Role {
        role: role.to_string(),
        message: format!("{source} has no PolicyDocument"),
    })?;
    Policy::parse(doc).map_err(|e| RoleError::Role {
        role: role.to_string(),
        message: format!("{source}: {e}"),
    })
}

fn names_role(list: Option<&Value>, role_name: &str) -> bool {
    match list {
        Some(Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(role_name)),
        Some(Value::String(s)) => s == role_name,
        _ => false,
    }
}

/// Every `AWS::IAM::Role` of the template (present under its conditions).
pub fn roles(t: &Template) -> Result<Vec<Role>, RoleError> {
    let resources = t.resources();
    let mut out = Vec::new();
    for (id, ty) in &resources {
        if ty != "AWS::IAM::Role" {
            continue;
        }
        let props = t.properties(id)?;
        let arn = t.get_att(id, "Arn")?;
        let name = t.physical_name(id);
        let mut policies = Vec::new();
        for p in props
            .get("Policies")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let pname = p.get("PolicyName").and_then(Value::as_str).unwrap_or("?");
            let source = format!("{id}/{pname}");
            policies.push((
                source.clone(),
                document(id, &source, p.get("PolicyDocument"))?,
            ));
        }
        let listed: Vec<String> = props
            .get("ManagedPolicyArns")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        for (mid, mty) in &resources {
            let attached = match mty.as_str() {
                "AWS::IAM::ManagedPolicy" => {
                    let mprops = t.properties(mid)?;
                    listed.contains(&t.physical_ref(mid)?) || names_role(mprops.get("Roles"), &name)
                }
                "AWS::IAM::Policy" => names_role(t.properties(mid)?.get("Roles"), &name),
                "AWS::IAM::RolePolicy" => {
                    t.properties(mid)?.get("RoleName").and_then(Value::as_str) == Some(&name)
                }
                _ => false,
            };
            if attached {
                let mprops = t.properties(mid)?;
                policies.push((
                    mid.clone(),
                    document(id, mid, mprops.get("PolicyDocument"))?,
                ));
            }
        }
        for arn in &listed {
            let in_stack = resources.iter().any(|(mid, mty)| {
                mty == "AWS::IAM::ManagedPolicy" && t.physical_ref(mid).ok().as_ref() == Some(arn)
            });
            if !in_stack {
                return Err(RoleError::Role {
                    role: id.clone(),
                    message: format!(
                        "managed policy {arn} is not defined in the template, so its statements \
                         cannot be evaluated"
                    ),
                });
            }
        }
        let boundary = props
            .get("PermissionsBoundary")
            .and_then(Value::as_str)
            .map(str::to_string);
        out.push(Role {
            logical_id: id.clone(),
            arn,
            policies,
            boundary,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cfn::Stack;
    use crate::context::Context;
    use crate::policy::{identity_decision, Decision};

    const TEMPLATE: &str = r#"
Parameters:
  Regions: {Type: String, Default: "us-east-1 us-west-2"}
Resources:
  Shared:
    Type: AWS::IAM::ManagedPolicy
    Properties:
      PolicyDocument:
        Version: "2012-10-17"
        Statement:
          - Effect: Allow
            Action: kms:DescribeKey
            Resource: !Sub "arn:${AWS::Partition}:kms:*:${AWS::AccountId}:key/*"
  AlsoShared:
    Type: AWS::IAM::ManagedPolicy
    Properties:
      Roles: [!Ref Two]
      PolicyDocument:
        Statement: {Effect: Allow, Action: kms:ListAliases, Resource: "*"}
  One:
    Type: AWS::IAM::Role
    Properties:
      Path: /kms-replicator/
      ManagedPolicyArns: [!Ref Shared]
      Policies:
        - PolicyName: own
          PolicyDocument:
            Statement:
              - Effect: Allow
                Action: kms:PutKeyPolicy
                Resource: "*"
                Condition: {StringEquals: {aws:RequestedRegion: !Split [" ", !Ref Regions]}}
  Two:
    Type: AWS::IAM::Role
    Properties:
      ManagedPolicyArns: [!Ref Shared]
"#;

    #[test]
    fn each_role_holds_its_inline_and_attached_policies_with_parameters_resolved() {
        let t =
            Template::parse(TEMPLATE, Stack::new("kr", "111122223333", "us-east-1"), &[]).unwrap();
        let rs = roles(&t).unwrap();
        let one = rs.iter().find(|r| r.logical_id == "One").unwrap();
        let two = rs.iter().find(|r| r.logical_id == "Two").unwrap();
        assert_eq!(
            one.arn,
            "arn:aws:iam::111122223333:role/kms-replicator/kr-One"
        );
        assert_eq!(two.arn, "arn:aws:iam::111122223333:role/kr-Two");
        let key = "arn:aws:kms:eu-west-1:111122223333:key/mrk-1";
        let ctx = Context::default().with("aws:RequestedRegion", "us-west-2");
        let decide =
            |r: &Role, a: &str, res: &str| identity_decision(&r.identity_policies(), a, res, &ctx);
        assert_eq!(decide(one, "kms:DescribeKey", key), Decision::Allow);
        assert_eq!(decide(one, "kms:PutKeyPolicy", key), Decision::Allow);
        assert_eq!(decide(one, "kms:ListAliases", "*"), Decision::NotAllowed);
        assert_eq!(decide(two, "kms:ListAliases", "*"), Decision::Allow);
        assert_eq!(decide(two, "kms:PutKeyPolicy", key), Decision::NotAllowed);
        let elsewhere = Context::default().with("aws:RequestedRegion", "eu-west-1");
        assert_eq!(
            identity_decision(
                &one.identity_policies(),
                "kms:PutKeyPolicy",
                key,
                &elsewhere
            ),
            Decision::NotAllowed
        );
    }

    #[test]
    fn a_managed_policy_outside_the_template_is_an_error_not_an_empty_grant() {
        let text = "Resources:\n  R:\n    Type: AWS::IAM::Role\n    Properties:\n      ManagedPolicyArns: [arn:aws:iam::aws:policy/AdministratorAccess]\n";
        let t = Template::parse(text, Stack::new("kr", "111122223333", "us-east-1"), &[]).unwrap();
        assert!(roles(&t).is_err());
    }
}
