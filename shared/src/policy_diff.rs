//! A structural diff of two key policies, statement by statement, for plans and reports.

use serde::Serialize;
use serde_json::Value;

/// One difference between the policy a replica has and the one it should have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyChange {
    /// Where, e.g. `Statement[AllowUseViaS3].Condition.StringEquals.kms:ViaService`.
    /// Statements are named by their `Sid`, or `#<index>` when they have none.
    pub path: String,
    /// The value now; absent when the change adds the member.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<Value>,
    /// The value wanted; absent when the change removes the member.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<Value>,
}

/// The differences between policy `current` and policy `desired`, member by member, with
/// statements matched by `Sid` (so that reordering them is not reported as changes). A
/// document that is not JSON is compared as text.
pub fn policy_diff(current: &str, desired: &str) -> Vec<PolicyChange> {
    let mut out = Vec::new();
    match (
        serde_json::from_str::<Value>(current),
        serde_json::from_str::<Value>(desired),
    ) {
        (Ok(a), Ok(b)) => diff_value("", &a, &b, &mut out),
        _ if current != desired => out.push(PolicyChange {
            path: String::new(),
            from: Some(Value::String(current.to_string())),
            to: Some(Value::String(desired.to_string())),
        }),
        _ => {}
    }
    out
}

fn join(path: &str, member: &str) -> String {
    if path.is_empty() {
        member.to_string()
    } else {
        format!("{path}.{member}")
    }
}

fn diff_value(path: &str, a: &Value, b: &Value, out: &mut Vec<PolicyChange>) {
    if a == b {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, va) in x {
                let p = join(path, k);
                match y.get(k) {
                    Some(vb) if path.is_empty() && k == "Statement" => diff_statements(va, vb, out),
                    Some(vb) => diff_value(&p, va, vb, out),
                    None => out.push(PolicyChange {
                        path: p,
                        from: Some(va.clone()),
                        to: None,
                    }),
                }
            }
            for (k, vb) in y {
                if !x.contains_key(k) {
                    out.push(PolicyChange {
                        path: join(path, k),
                        from: None,
                        to: Some(vb.clone()),
                    });
                }
            }
        }
        _ => out.push(PolicyChange {
            path: path.to_string(),
            from: Some(a.clone()),
            to: Some(b.clone()),
        }),
    }
}

fn statements(v: &Value) -> Vec<(String, &Value)> {
    let list: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    list.into_iter()
        .enumerate()
        .map(|(i, s)| {
            let label = match s.get("Sid").and_then(Value::as_str) {
                Some(sid) if !sid.is_empty() => sid.to_string(),
                _ => format!("#{i}"),
            };
            (label, s)
        })
        .collect()
}

fn diff_statements(a: &Value, b: &Value, out: &mut Vec<PolicyChange>) {
    let (sa, sb) = (statements(a), statements(b));
    for (label, va) in &sa {
        let path = format!("Statement[{label}]");
        match sb.iter().find(|(l, _)| l == label) {
            Some((_, vb)) => diff_value(&path, va, vb, out),
            None => out.push(PolicyChange {
                path,
                from: Some((*va).clone()),
                to: None,
            }),
        }
    }
    for (label, vb) in &sb {
        if !sa.iter().any(|(l, _)| l == label) {
            out.push(PolicyChange {
                path: format!("Statement[{label}]"),
                from: None,
                to: Some((*vb).clone()),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn statements_are_matched_by_sid_and_leaves_are_reported_by_path() {
        let current = json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "B", "Effect": "Allow", "Action": "kms:Decrypt", "Principal": {"AWS": "arn:aws:iam::1:role/x"}},
            {"Sid": "A", "Effect": "Allow", "Action": "kms:*", "Principal": {"AWS": "arn:aws:iam::1:root"}},
            {"Sid": "Gone", "Effect": "Deny", "Action": "kms:*"}
        ]})
        .to_string();
        let desired = json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "A", "Effect": "Allow", "Action": "kms:*", "Principal": {"AWS": "arn:aws:iam::1:root"}},
            {"Sid": "B", "Effect": "Allow", "Action": "kms:Decrypt", "Principal": {"AWS": "arn:aws:iam::1:role/y"}},
            {"Sid": "New", "Effect": "Allow", "Action": "kms:Encrypt"}
        ]})
        .to_string();

        let diff = policy_diff(&current, &desired);

        let paths: Vec<&str> = diff.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "Statement[B].Principal.AWS",
                "Statement[Gone]",
                "Statement[New]"
            ]
        );
        assert_eq!(diff[0].from, Some(json!("arn:aws:iam::1:role/x")));
        assert_eq!(diff[0].to, Some(json!("arn:aws:iam::1:role/y")));
        assert!(diff[1].to.is_none() && diff[2].from.is_none());
    }

    #[test]
    fn equal_documents_have_no_difference_whatever_their_formatting() {
        let a = r#"{"Version":"2012-10-17","Statement":[{"Sid":"A","Effect":"Allow"}]}"#;
        let b = "{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": [ {\"Effect\": \"Allow\", \"Sid\": \"A\"} ]\n}";
        assert!(policy_diff(a, b).is_empty());
        assert_eq!(policy_diff("not json", "other").len(), 1);
    }
}
