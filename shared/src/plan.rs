//! Presenting changes like `terraform plan`: a structural diff of two key policies, and one
//! line per change (made or planned) of a sync report.

use crate::report::{Action, Outcome, SyncReport};
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

/// Longest value shown in a summary line; the JSON report has the whole value.
const MAX_SHOWN: usize = 160;

fn shown(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() <= MAX_SHOWN {
        s
    } else {
        let cut: String = s.chars().take(MAX_SHOWN).collect();
        format!("{cut}…")
    }
}

/// One line per change of `report`, in the style of `terraform plan`: `+` creates, `~`
/// changes, `-` removes, `!` failed, `#` skipped on purpose. Policy changes follow their
/// PutKeyPolicy line, indented. Keys and Regions in sync produce no line.
pub fn change_lines(report: &SyncReport) -> Vec<String> {
    let key = match (&report.key_id, &report.primary_region) {
        (Some(id), Some(r)) => format!("{id} ({r})"),
        (Some(id), None) => id.clone(),
        _ => report.requested.clone(),
    };
    let mut lines = Vec::new();
    if report.regions.is_empty() {
        match &report.outcome {
            Outcome::Failed { reason, .. } => lines.push(format!("! {key}: failed: {reason}")),
            Outcome::Skipped { reason } if report.managed => {
                lines.push(format!("# {key}: skipped: {reason}"))
            }
            _ => {}
        }
        return lines;
    }
    for r in &report.regions {
        let at = format!("{key} -> {}", r.region);
        for action in &r.actions {
            let line = match action {
                Action::ReplicateKey {
                    policy,
                    description,
                    tags,
                } => {
                    let policy = match policy {
                        None => "KMS's default policy".to_string(),
                        Some(_) if r.rewrites.is_empty() => "the primary's policy".to_string(),
                        Some(_) => format!(
                            "the primary's policy with {} Region rewrite(s)",
                            r.rewrites.len()
                        ),
                    };
                    format!(
                        "+ {at}: create replica ({policy}, {} tag(s), description {:?})",
                        tags.len(),
                        description
                    )
                }
                Action::CancelKeyDeletion => {
                    format!("~ {at}: cancel the replica's scheduled deletion")
                }
                Action::EnableKey => format!("~ {at}: enable the replica"),
                Action::PutKeyPolicy { .. } => {
                    let mut s = format!("~ {at}: update key policy");
                    if !r.policy_diff.is_empty() {
                        s.push_str(&format!(" ({} difference(s))", r.policy_diff.len()));
                    }
                    for c in &r.policy_diff {
                        s.push_str(&match (&c.from, &c.to) {
                            (Some(f), Some(t)) => {
                                format!("\n    ~ {}: {} -> {}", c.path, shown(f), shown(t))
                            }
                            (None, Some(t)) => format!("\n    + {}: {}", c.path, shown(t)),
                            (Some(f), None) => format!("\n    - {}: {}", c.path, shown(f)),
                            (None, None) => format!("\n    ~ {}", c.path),
                        });
                    }
                    s
                }
                Action::UpdateKeyDescription { description } => {
                    format!("~ {at}: set description {description:?}")
                }
                Action::TagResource { tags } => format!(
                    "~ {at}: tag {}",
                    tags.iter()
                        .map(|t| format!("{}={:?}", t.key, t.value))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                Action::UntagResource { keys } => {
                    format!("- {at}: untag {}", keys.join(", "))
                }
                Action::CreateAlias { alias } => format!("+ {at}: create alias {alias}"),
                Action::UpdateAlias { alias, from_key } => {
                    format!("~ {at}: re-point alias {alias} (from {from_key})")
                }
                Action::DeleteAlias { alias } => format!("- {at}: delete alias {alias}"),
                Action::ScheduleKeyDeletion {
                    pending_window_days,
                } => format!(
                    "- {at}: schedule the replica's deletion ({pending_window_days}-day window)"
                ),
            };
            lines.push(line);
        }
        match &r.outcome {
            Outcome::Failed { reason, .. } => lines.push(format!("! {at}: failed: {reason}")),
            Outcome::Skipped { reason } => lines.push(format!("# {at}: skipped: {reason}")),
            _ => {}
        }
    }
    lines
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
