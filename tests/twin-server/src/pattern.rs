//! EventBridge event patterns, and the rules of `template.yaml` that route events to functions.
//!
//! Only the part of the pattern language the template uses is implemented: exact values (a
//! list means "any of"), nested objects, `{"exists": true|false}` and `{"prefix": "..."}`. A
//! pattern using anything else is refused when it is loaded, never silently misread. The same
//! pattern is checked with moto's own matcher by `tests/eventbridge/`.

use authz::cfn::{Stack, Template};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// A validated event pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct EventPattern(Map<String, Value>);

impl EventPattern {
    pub fn parse(pattern: &Value) -> Result<EventPattern, String> {
        let obj = pattern
            .as_object()
            .ok_or("an event pattern must be a JSON object")?;
        validate(obj, "")?;
        Ok(EventPattern(obj.clone()))
    }

    pub fn as_json(&self) -> Value {
        Value::Object(self.0.clone())
    }

    pub fn matches(&self, event: &Value) -> bool {
        matches_object(&self.0, Some(event))
    }
}

fn validate(obj: &Map<String, Value>, path: &str) -> Result<(), String> {
    if obj.is_empty() {
        return Err(format!("empty pattern object at '{path}'"));
    }
    for (key, value) in obj {
        let here = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        match value {
            Value::Object(inner) => validate(inner, &here)?,
            Value::Array(items) if !items.is_empty() => {
                for item in items {
                    if let Value::Object(op) = item {
                        let ok = op.len() == 1
                            && match op.iter().next() {
                                Some((k, v)) if k == "exists" => v.is_boolean(),
                                Some((k, v)) if k == "prefix" => v.is_string(),
                                _ => false,
                            };
                        if !ok {
                            return Err(format!(
                                "'{here}' uses {item}: the local bus implements exact values, \
                                 exists and prefix only"
                            ));
                        }
                    } else if item.is_array() {
                        return Err(format!("'{here}' holds a nested list"));
                    }
                }
            }
            _ => {
                return Err(format!(
                    "'{here}' must be an object or a non-empty list, not {value}"
                ))
            }
        }
    }
    Ok(())
}

fn matches_object(pattern: &Map<String, Value>, event: Option<&Value>) -> bool {
    pattern.iter().all(|(key, p)| {
        let field = event.and_then(|e| e.get(key));
        match p {
            Value::Object(inner) => matches_object(inner, field),
            Value::Array(alternatives) => alternatives.iter().any(|alt| matches_leaf(alt, field)),
            _ => false,
        }
    })
}

fn matches_leaf(alt: &Value, field: Option<&Value>) -> bool {
    if let Value::Object(op) = alt {
        if let Some(want) = op.get("exists").and_then(Value::as_bool) {
            // `exists` applies to leaves: an object or a list is not a value that exists.
            let present = field.is_some_and(|f| !f.is_object());
            return present == want;
        }
        if let Some(prefix) = op.get("prefix").and_then(Value::as_str) {
            return values(field)
                .iter()
                .any(|v| v.as_str().is_some_and(|s| s.starts_with(prefix)));
        }
        return false;
    }
    values(field).contains(&alt)
}

/// A field's values: an array matches when any of its elements does.
fn values(field: Option<&Value>) -> Vec<&Value> {
    match field {
        None => vec![],
        Some(Value::Array(items)) => items.iter().collect(),
        Some(v) => vec![v],
    }
}

/// An event rule of the template and the function it invokes.
#[derive(Debug, Clone)]
pub struct RuleDef {
    /// The rule's logical id (e.g. `KmsApiCallRule`).
    pub name: String,
    pub pattern: EventPattern,
    /// The target function's logical id (e.g. `ReplicateFunction`).
    pub function_id: String,
    /// The function's binary: `Metadata.BuildProperties.Binary`, else the last part of `CodeUri`.
    pub binary: String,
    /// `EventInvokeConfig.MaximumRetryAttempts` of the function (Lambda's default is 2).
    pub max_retry_attempts: u32,
}

/// The event rules of a SAM/CloudFormation template: `AWS::Events::Rule` resources with an
/// `EventPattern` whose targets are functions of the template, and `EventBridgeRule` /
/// `CloudWatchEvent` events of `AWS::Serverless::Function` resources.
pub fn rules_from_template(path: &Path) -> Result<Vec<RuleDef>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    rules_from_template_text(&text).map_err(|e| format!("{}: {e}", path.display()))
}

pub fn rules_from_template_text(text: &str) -> Result<Vec<RuleDef>, String> {
    let (template, cfn) = read(text)?;
    let resources = template
        .get("Resources")
        .and_then(Value::as_object)
        .ok_or("the template has no Resources")?;
    let function = |id: &str| -> Option<(String, u32)> {
        let f = resources.get(id)?;
        if f.get("Type")?.as_str()? != "AWS::Serverless::Function" {
            return None;
        }
        let binary = f
            .pointer("/Metadata/BuildProperties/Binary")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| {
                let uri = f.pointer("/Properties/CodeUri")?.as_str()?;
                Some(uri.trim_end_matches('/').rsplit('/').next()?.to_string())
            })?;
        let retries = f
            .pointer("/Properties/EventInvokeConfig/MaximumRetryAttempts")
            .and_then(Value::as_u64)
            .unwrap_or(2) as u32;
        Some((binary, retries))
    };
    let mut rules = Vec::new();
    for (id, res) in resources {
        let ty = res.get("Type").and_then(Value::as_str).unwrap_or("");
        if ty == "AWS::Events::Rule" {
            let Some(pattern) = res.pointer("/Properties/EventPattern") else {
                continue; // a schedule
            };
            if !on_default_bus(&cfn, res) {
                continue;
            }
            let pattern = EventPattern::parse(&resolved(&cfn, id, pattern)?)
                .map_err(|e| format!("{id}: {e}"))?;
            let targets = res
                .pointer("/Properties/Targets")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for t in targets {
                let Some(fid) = t.get("Arn").and_then(get_att_target) else {
                    continue;
                };
                if let Some((binary, retries)) = function(&fid) {
                    rules.push(RuleDef {
                        name: id.clone(),
                        pattern: pattern.clone(),
                        function_id: fid,
                        binary,
                        max_retry_attempts: retries,
                    });
                }
            }
        } else if ty == "AWS::Serverless::Function" {
            let events = res
                .pointer("/Properties/Events")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            for (ev_id, ev) in events {
                let ev_ty = ev.get("Type").and_then(Value::as_str).unwrap_or("");
                if ev_ty != "EventBridgeRule" && ev_ty != "CloudWatchEvent" {
                    continue;
                }
                let Some(pattern) = ev.pointer("/Properties/Pattern") else {
                    continue;
                };
                let pattern = EventPattern::parse(&resolved(&cfn, id, pattern)?)
                    .map_err(|e| format!("{id}.{ev_id}: {e}"))?;
                if let Some((binary, retries)) = function(id) {
                    rules.push(RuleDef {
                        name: format!("{id}{ev_id}"),
                        pattern,
                        function_id: id.clone(),
                        binary,
                        max_retry_attempts: retries,
                    });
                }
            }
        }
    }
    Ok(rules)
}

/// A rule of `forwarder.yaml`: on a Region's default bus, its target the home Region's default
/// event bus (an event-bus ARN with the role EventBridge uses to put events on it).
#[derive(Debug, Clone)]
pub struct ForwardRuleDef {
    /// The rule's logical id (e.g. `KmsApiCallForwardRule`).
    pub name: String,
    pub pattern: EventPattern,
}

/// The forwarding rules of a template: `AWS::Events::Rule` resources on the default bus with an
/// `EventPattern` and a target whose `Arn` names an event bus (`...:event-bus/default`) and that
/// has a `RoleArn`. A rule with a function target, or none, is not a forwarder.
pub fn forward_rules_from_template(path: &Path) -> Result<Vec<ForwardRuleDef>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    forward_rules_from_template_text(&text).map_err(|e| format!("{}: {e}", path.display()))
}

pub fn forward_rules_from_template_text(text: &str) -> Result<Vec<ForwardRuleDef>, String> {
    let (template, cfn) = read(text)?;
    let resources = template
        .get("Resources")
        .and_then(Value::as_object)
        .ok_or("the template has no Resources")?;
    let mut rules = Vec::new();
    for (id, res) in resources {
        if res.get("Type").and_then(Value::as_str) != Some("AWS::Events::Rule") {
            continue;
        }
        let Some(pattern) = res.pointer("/Properties/EventPattern") else {
            continue;
        };
        if !on_default_bus(&cfn, res) {
            continue;
        }
        let targets = res
            .pointer("/Properties/Targets")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let to_bus = targets.iter().any(|t| {
            // `!Sub "arn:...:event-bus/default"`: the loader keeps the scalar.
            let arn = t.get("Arn").and_then(|a| {
                a.as_str()
                    .or_else(|| a.get("Fn::Sub").and_then(Value::as_str))
            });
            arn.is_some_and(|a| a.contains(":events:") && a.ends_with(":event-bus/default"))
                && t.get("RoleArn").is_some()
        });
        if !to_bus {
            continue;
        }
        let pattern =
            EventPattern::parse(&resolved(&cfn, id, pattern)?).map_err(|e| format!("{id}: {e}"))?;
        rules.push(ForwardRuleDef {
            name: id.clone(),
            pattern,
        });
    }
    if rules.is_empty() {
        return Err("no rule forwards events to another Region's default bus".into());
    }
    Ok(rules)
}

/// `!GetAtt X.Arn` (the loader keeps the scalar and drops the tag), `{"Fn::GetAtt": "X.Arn"}`
/// or `{"Fn::GetAtt": ["X", "Arn"]}` -> `X`.
fn get_att_target(v: &Value) -> Option<String> {
    let dotted = |s: &str| s.strip_suffix(".Arn").map(str::to_string);
    match v {
        Value::String(s) => dotted(s),
        Value::Object(o) => match o.get("Fn::GetAtt")? {
            Value::String(s) => dotted(s),
            Value::Array(a) if a.len() == 2 && a[1] == "Arn" => a[0].as_str().map(str::to_string),
            _ => None,
        },
        _ => None,
    }
}

/// The template as written (intrinsic functions in their long form, `{"Ref": ...}`), and the
/// same template as a stack in the twin's account would see it, to evaluate the parts that
/// matter here: a pattern's values (`!Ref AWS::AccountId`) and a rule's bus.
fn read(text: &str) -> Result<(Value, Template), String> {
    let doc = authz::yaml::parse(text).map_err(|e| e.to_string())?;
    let stack = Stack::new(
        twin::auth::STACK_NAME,
        twin::DEFAULT_ACCOUNT,
        twin::auth::HOME_REGION,
    );
    let cfn = Template::parse_partial(text, stack).map_err(|e| e.to_string())?;
    Ok((doc, cfn))
}

/// A pattern with its intrinsic functions evaluated.
fn resolved(cfn: &Template, id: &str, pattern: &Value) -> Result<Value, String> {
    cfn.resolve(pattern)
        .map_err(|e| format!("{id}: {e}"))?
        .ok_or_else(|| format!("{id}: the pattern is AWS::NoValue"))
}

/// Whether a rule is on the Region's default bus (no `EventBusName`, or one that resolves to
/// `default`).
fn on_default_bus(cfn: &Template, rule: &Value) -> bool {
    match rule.pointer("/Properties/EventBusName") {
        None => true,
        Some(bus) => cfn
            .resolve(bus)
            .ok()
            .flatten()
            .is_some_and(|b| b.as_str() == Some("default")),
    }
}

/// The forwarder template next to a main template: `forwarder.yaml` in the same folder.
pub fn forwarder_beside(template: &Path) -> Option<PathBuf> {
    let p = template.parent()?.join("forwarder.yaml");
    p.is_file().then_some(p)
}

/// The repository's `template.yaml`, found from `start` upwards.
pub fn find_template(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|d| d.join("template.yaml"))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule_pattern() -> EventPattern {
        EventPattern::parse(&json!({
            "source": ["aws.kms"],
            "detail-type": ["AWS API Call via CloudTrail"],
            "detail": {
                "eventSource": ["kms.amazonaws.com"],
                "eventName": ["TagResource", "CreateKey"],
                "errorCode": [{"exists": false}]
            }
        }))
        .unwrap()
    }

    fn event(name: &str) -> Value {
        json!({"source": "aws.kms", "detail-type": "AWS API Call via CloudTrail",
               "account": "111122223333",
               "detail": {"eventSource": "kms.amazonaws.com", "eventName": name}})
    }

    #[test]
    fn an_event_matching_every_field_matches() {
        assert!(rule_pattern().matches(&event("TagResource")));
    }

    #[test]
    fn a_call_the_pattern_does_not_name_does_not_match() {
        assert!(!rule_pattern().matches(&event("Decrypt")));
    }

    #[test]
    fn exists_false_drops_failed_calls() {
        let mut e = event("TagResource");
        e["detail"]["errorCode"] = json!("AccessDenied");
        assert!(!rule_pattern().matches(&e));
    }

    #[test]
    fn a_missing_nested_object_does_not_match() {
        let e = json!({"source": "aws.kms", "detail-type": "AWS API Call via CloudTrail"});
        assert!(!rule_pattern().matches(&e));
    }

    #[test]
    fn a_list_in_the_event_matches_when_any_element_does() {
        let p = EventPattern::parse(&json!({"resources": ["arn:a"]})).unwrap();
        assert!(p.matches(&json!({"resources": ["arn:b", "arn:a"]})));
        assert!(!p.matches(&json!({"resources": []})));
    }

    #[test]
    fn prefix_and_exists_true_are_supported() {
        let p =
            EventPattern::parse(&json!({"region": [{"prefix": "us-"}], "id": [{"exists": true}]}))
                .unwrap();
        assert!(p.matches(&json!({"region": "us-west-2", "id": "1"})));
        assert!(!p.matches(&json!({"region": "eu-west-1", "id": "1"})));
        assert!(!p.matches(&json!({"region": "us-west-2"})));
    }

    #[test]
    fn unsupported_operators_are_refused_at_load() {
        let err =
            EventPattern::parse(&json!({"source": [{"anything-but": "aws.s3"}]})).unwrap_err();
        assert!(
            err.contains("exact values, exists and prefix only"),
            "{err}"
        );
        assert!(EventPattern::parse(&json!({"source": "aws.kms"})).is_err());
    }

    #[test]
    fn rules_are_read_from_a_template_with_short_form_tags() {
        let text = r#"
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Metadata: {BuildProperties: {Binary: replicate}}
    Properties:
      CodeUri: functions/replicate
      Role: !GetAtt Role.Arn
      EventInvokeConfig: {MaximumRetryAttempts: 1}
  Rule:
    Type: AWS::Events::Rule
    Properties:
      EventPattern:
        source: [aws.kms]
        detail: {errorCode: [{exists: false}]}
      Targets:
        - Id: F
          Arn: !GetAtt Fn.Arn
  Schedule:
    Type: AWS::Events::Rule
    Properties:
      ScheduleExpression: rate(1 hour)
      Targets: [{Id: F, Arn: !GetAtt Fn.Arn}]
"#;
        let rules = rules_from_template_text(text).unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].name, "Rule");
        assert_eq!(rules[0].binary, "replicate");
        assert_eq!(rules[0].max_retry_attempts, 1);
        assert_eq!(
            rules[0].pattern.as_json(),
            json!({"source": ["aws.kms"], "detail": {"errorCode": [{"exists": false}]}})
        );
    }

    #[test]
    fn the_repository_forwarder_has_the_main_rules_pattern_and_no_function_rule() {
        let template = find_template(Path::new(env!("CARGO_MANIFEST_DIR"))).expect("template.yaml");
        let forwarder = forwarder_beside(&template).expect("forwarder.yaml beside template.yaml");
        let forward = forward_rules_from_template(&forwarder).unwrap();
        assert_eq!(forward.len(), 1);
        assert_eq!(forward[0].name, "KmsApiCallForwardRule");
        let main = rules_from_template(&template).unwrap();
        let main = main.iter().find(|r| r.binary == "replicate").unwrap();
        assert_eq!(forward[0].pattern, main.pattern);
        // The forwarder invokes no function; the main template forwards nothing.
        assert!(rules_from_template(&forwarder).unwrap().is_empty());
        assert!(forward_rules_from_template(&template).is_err());
    }

    #[test]
    fn a_rule_targeting_a_function_is_not_a_forwarder() {
        let text = r#"
Resources:
  Rule:
    Type: AWS::Events::Rule
    Properties:
      EventPattern: {source: [aws.kms]}
      Targets:
        - {Id: F, Arn: !GetAtt Fn.Arn}
  Forward:
    Type: AWS::Events::Rule
    Properties:
      EventPattern: {source: [aws.kms]}
      Targets:
        - Id: Home
          Arn: !Sub "arn:${AWS::Partition}:events:${HomeRegion}:${AWS::AccountId}:event-bus/default"
          RoleArn: !GetAtt Role.Arn
"#;
        let rules = forward_rules_from_template_text(text).unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].name, "Forward");
    }

    #[test]
    fn the_repository_template_routes_every_trigger_event_to_the_replicate_function() {
        let path = find_template(Path::new(env!("CARGO_MANIFEST_DIR"))).expect("template.yaml");
        let rules = rules_from_template(&path).unwrap();
        let rule = rules
            .iter()
            .find(|r| r.binary == "replicate")
            .expect("a rule targets the replicate function");
        for name in kms_replicator::event::TRIGGER_EVENTS {
            assert!(rule.pattern.matches(&event(name)), "{name}");
        }
        assert!(!rule.pattern.matches(&event("Decrypt")));
        let mut elsewhere = event("TagResource");
        elsewhere["account"] = json!("444455556666");
        assert!(!rule.pattern.matches(&elsewhere), "another account's call");
    }
}
