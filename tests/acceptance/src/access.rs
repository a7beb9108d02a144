//! AccessDenied, read: AWS's refusals say who was refused what, on which resource, and which
//! kind of policy said no ("User: <principal> is not authorized to perform: <action> on
//! resource: <resource> because no identity-based policy allows the <action> action", or "...
//! with an explicit deny in a service control policy"; IAM User Guide, "Troubleshooting access
//! denied error messages"). The report names all four and the role or policy to look at.
//! Pure: no calls.

use serde::Serialize;
use serde_json::Value;

/// One refusal as AWS worded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Denial {
    pub principal: String,
    pub action: String,
    pub resource: String,
    /// The clause after the resource ("because no resource-based policy allows ..."), when
    /// the message has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Where to look, in words.
    pub look_at: String,
}

const NOT_AUTHORIZED: &str = " is not authorized to perform: ";
const ON_RESOURCE: &str = " on resource: ";

impl Denial {
    /// The refusal in `message`, if it is worded as AWS words them.
    pub fn parse(message: &str) -> Option<Denial> {
        let at = message.find(NOT_AUTHORIZED)?;
        let before = &message[..at];
        // Some callers prefix the code ("AccessDeniedException: User: ..."); the principal is
        // what follows the last "User: ".
        let principal = match before.rfind("User: ") {
            Some(i) => &before[i + "User: ".len()..],
            None => before.rsplit(' ').next().unwrap_or(before),
        }
        .trim();
        let rest = &message[at + NOT_AUTHORIZED.len()..];
        let (action, rest) = match rest.find(ON_RESOURCE) {
            Some(i) => (&rest[..i], &rest[i + ON_RESOURCE.len()..]),
            None => (word(rest), ""),
        };
        let (resource, reason) = match rest.find(" because ").or_else(|| rest.find(" with ")) {
            Some(i) => (&rest[..i], Some(clause(&rest[i + 1..]))),
            None => (rest, None),
        };
        let resource = word(resource).trim_end_matches('.');
        let action = action.trim();
        if principal.is_empty() || action.is_empty() {
            return None;
        }
        let mut d = Denial {
            principal: principal.to_string(),
            action: action.to_string(),
            resource: resource.to_string(),
            reason: reason.map(str::to_string),
            look_at: String::new(),
        };
        d.look_at = d.advice();
        Some(d)
    }

    /// Every refusal in any string of `v` (a function's answer quotes the KMS errors it met).
    pub fn all_in(v: &Value) -> Vec<Denial> {
        let mut found = Vec::new();
        collect(v, &mut found);
        found.dedup();
        found
    }

    /// Whose policies decide, and which kind of policy to read.
    fn advice(&self) -> String {
        let who = whose(&self.principal);
        let (action, resource) = (&self.action, &self.resource);
        let reason = self.reason.as_deref().unwrap_or("");
        let policy = if reason.contains("service control policy") {
            "a service control policy of your organisation (AWS Organizations) refuses it: \
             exempt this principal or action there"
                .to_string()
        } else if reason.contains("resource control policy") {
            "a resource control policy of your organisation refuses it".to_string()
        } else if reason.contains("permissions boundary") {
            format!(
                "the permissions boundary of {who} must also allow {action} (the stack's \
                 PermissionsBoundaryArn parameter, or your own role's boundary)"
            )
        } else if reason.contains("session policy") {
            format!(
                "the session policy {who} was given when its role was assumed must allow {action}"
            )
        } else if reason.contains("explicit deny in an identity-based policy") {
            format!("a Deny statement in the IAM policies of {who} matches {action} on {resource}")
        } else if reason.contains("explicit deny in a resource-based policy") {
            format!(
                "a Deny statement in the policy of {resource} (the key policy) matches {action}"
            )
        } else if reason.contains("no resource-based policy allows") {
            format!(
                "the key policy of {resource} must allow {action} to {who}, or delegate to IAM \
                 with the account-root statement (docs/deployment.md#prerequisites)"
            )
        } else if reason.contains("no identity-based policy allows") {
            format!("an IAM policy of {who} must allow {action} on {resource}")
        } else {
            format!(
                "the IAM policies of {who} and, for a key, the key policy of {resource}: one of \
                 them does not allow {action}"
            )
        };
        format!("{policy}; {}", fix_for(&self.principal))
    }
}

fn collect(v: &Value, found: &mut Vec<Denial>) {
    match v {
        Value::String(s) => {
            // A message can quote several refusals (one per Region).
            let mut rest = s.as_str();
            while let Some(d) = Denial::parse(rest) {
                let cut = rest.find(NOT_AUTHORIZED).unwrap_or(0) + NOT_AUTHORIZED.len();
                if !found.contains(&d) {
                    found.push(d);
                }
                rest = &rest[cut..];
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect(x, found)),
        Value::Object(o) => o.values().for_each(|x| collect(x, found)),
        _ => {}
    }
}

/// The reason clause alone: a function's message may go on after it ("...; then ...").
fn clause(s: &str) -> &str {
    let end = ["; ", ". ", "\n", " User: ", "\""]
        .iter()
        .filter_map(|stop| s.find(stop))
        .min()
        .unwrap_or(s.len());
    s[..end].trim().trim_end_matches('.')
}

/// The first word of `s`, without the punctuation a sentence puts after it.
fn word(s: &str) -> &str {
    s.split_whitespace()
        .next()
        .unwrap_or("")
        .trim_end_matches([',', ';'])
}

/// The stack's function roles are named `<stack>-<LogicalId>-<suffix>` by CloudFormation; their
/// sessions (`assumed-role/<role>/<session>`) carry that name.
const FUNCTION_ROLES: [(&str, &str); 3] = [
    ("ReplicateFunctionRole", "the replicate function's role"),
    ("ReconcileFunctionRole", "the reconcile function's role"),
    ("FailoverFunctionRole", "the failover function's role"),
];

fn whose(principal: &str) -> String {
    match FUNCTION_ROLES.iter().find(|(id, _)| principal.contains(id)) {
        Some((_, name)) => format!("{name} ({principal})"),
        None => format!("{principal} (your AWS profile's identity)"),
    }
}

fn fix_for(principal: &str) -> String {
    match FUNCTION_ROLES.iter().find(|(id, _)| principal.contains(id)) {
        Some((id, _)) => format!(
            "the role's statements are {id} in template.yaml and the managed policies it \
             attaches; a stack built from an older template needs `sam deploy` again"
        ),
        None => "the person running the harness needs kms:CreateKey, kms:TagResource, \
                 kms:UntagResource, kms:PutKeyPolicy, kms:CreateAlias, kms:DeleteAlias, \
                 kms:ScheduleKeyDeletion and the KMS reads in every Region named, and \
                 lambda:InvokeFunction on the stack's functions"
            .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_implicit_deny_names_the_principal_the_action_the_resource_and_the_iam_policy() {
        // KMS's message for ReplicateKey's tags in the replica Region when the role's
        // TagResource is limited to keys (AWS-FACTS section 10).
        let m = "User: arn:aws:sts::111122223333:assumed-role/kms-replicator-ReplicateFunctionRole-1AbC/\
                 kms-replicator-ReplicateFunction-XyZ is not authorized to perform: kms:TagResource on \
                 resource: * because no identity-based policy allows the kms:TagResource action";
        let d = Denial::parse(m).unwrap();
        assert_eq!(
            d.principal,
            "arn:aws:sts::111122223333:assumed-role/kms-replicator-ReplicateFunctionRole-1AbC/\
             kms-replicator-ReplicateFunction-XyZ"
        );
        assert_eq!(d.action, "kms:TagResource");
        assert_eq!(d.resource, "*");
        assert_eq!(
            d.reason.as_deref(),
            Some("because no identity-based policy allows the kms:TagResource action")
        );
        assert!(
            d.look_at
                .starts_with("an IAM policy of the replicate function's role"),
            "{}",
            d.look_at
        );
        assert!(
            d.look_at.contains("ReplicateFunctionRole in template.yaml"),
            "{}",
            d.look_at
        );
    }

    #[test]
    fn a_key_policy_that_does_not_admit_the_role_points_at_the_key_policy() {
        let m = "User: arn:aws:sts::111122223333:assumed-role/kms-replicator-FailoverFunctionRole-9/s \
                 is not authorized to perform: kms:UpdatePrimaryRegion on resource: \
                 arn:aws:kms:us-west-2:111122223333:key/mrk-1 because no resource-based policy allows \
                 the kms:UpdatePrimaryRegion action";
        let d = Denial::parse(m).unwrap();
        assert_eq!(d.resource, "arn:aws:kms:us-west-2:111122223333:key/mrk-1");
        assert!(
            d.look_at.starts_with(
                "the key policy of arn:aws:kms:us-west-2:111122223333:key/mrk-1 must allow \
             kms:UpdatePrimaryRegion to the failover function's role"
            ),
            "{}",
            d.look_at
        );
    }

    #[test]
    fn an_explicit_deny_names_the_kind_of_policy_that_denied() {
        let scp = "AccessDeniedException: User: arn:aws:iam::111122223333:user/Alice is not authorized \
                   to perform: kms:ScheduleKeyDeletion on resource: arn:aws:kms:eu-west-1:111122223333:key/mrk-2 \
                   with an explicit deny in a service control policy";
        let d = Denial::parse(scp).unwrap();
        assert_eq!(d.principal, "arn:aws:iam::111122223333:user/Alice");
        assert_eq!(d.action, "kms:ScheduleKeyDeletion");
        assert_eq!(d.resource, "arn:aws:kms:eu-west-1:111122223333:key/mrk-2");
        assert_eq!(
            d.reason.as_deref(),
            Some("with an explicit deny in a service control policy")
        );
        assert!(
            d.look_at.starts_with("a service control policy"),
            "{}",
            d.look_at
        );
        assert!(
            d.look_at.contains("the person running the harness needs"),
            "{}",
            d.look_at
        );

        let boundary = "User: arn:aws:sts::1:assumed-role/kms-replicator-ReconcileFunctionRole-x/y is not \
                        authorized to perform: kms:ListAliases on resource: * with an explicit deny in a \
                        permissions boundary";
        assert!(Denial::parse(boundary)
            .unwrap()
            .look_at
            .contains("PermissionsBoundaryArn"));
    }

    #[test]
    fn lambdas_refusal_of_an_invocation_is_read_the_same_way() {
        let m = "User: arn:aws:iam::111122223333:user/Bob is not authorized to perform: \
                 lambda:InvokeFunction on resource: \
                 arn:aws:lambda:us-east-1:111122223333:function:kms-replicator-FailoverFunction-2 \
                 because no identity-based policy allows the lambda:InvokeFunction action";
        let d = Denial::parse(m).unwrap();
        assert_eq!(d.action, "lambda:InvokeFunction");
        assert!(d
            .resource
            .ends_with("function:kms-replicator-FailoverFunction-2"));
        assert!(d
            .look_at
            .contains("lambda:InvokeFunction on the stack's functions"));
    }

    #[test]
    fn a_message_without_a_reason_or_with_none_of_these_words_is_read_as_far_as_it_goes() {
        let old = "User: arn:aws:iam::111122223333:role/MyRole is not authorized to perform: kms:Decrypt \
                   on resource: arn:aws:kms:ap-northeast-1:111122223333:key/abc-123";
        let d = Denial::parse(old).unwrap();
        assert_eq!(
            d.resource,
            "arn:aws:kms:ap-northeast-1:111122223333:key/abc-123"
        );
        assert_eq!(d.reason, None);
        assert!(d.look_at.contains("one of them does not allow kms:Decrypt"));
        assert_eq!(Denial::parse("Rate exceeded"), None);
        assert_eq!(Denial::parse("injected fault"), None);
    }

    #[test]
    fn refusals_quoted_anywhere_in_a_functions_answer_are_all_found_once() {
        let one = "User: arn:aws:sts::1:assumed-role/kms-replicator-FailoverFunctionRole-a/b is not \
                   authorized to perform: kms:UpdatePrimaryRegion on resource: arn:aws:kms:us-east-1:1:key/mrk-1 \
                   because no identity-based policy allows the kms:UpdatePrimaryRegion action";
        let two = "User: arn:aws:sts::1:assumed-role/kms-replicator-FailoverFunctionRole-a/b is not \
                   authorized to perform: kms:TagResource on resource: arn:aws:kms:us-east-1:1:key/mrk-1 \
                   because no identity-based policy allows the kms:TagResource action";
        let answer = json!({"keys": [{"outcome": "failed", "reason": one,
            "checks": [{"detail": format!("{one}; then {two}")}]}]});
        let found = Denial::all_in(&answer);
        let actions: Vec<&str> = found.iter().map(|d| d.action.as_str()).collect();
        assert_eq!(actions, ["kms:UpdatePrimaryRegion", "kms:TagResource"]);
    }
}
