//! CloudFormation YAML to JSON, keeping the short-form intrinsic functions: `!Ref X` becomes
//! `{"Ref": "X"}`, `!Sub s` `{"Fn::Sub": s}`, `!GetAtt A.B` `{"Fn::GetAtt": ["A", "B"]}`, and
//! so on, exactly as CloudFormation reads them. A loader that drops the tags would turn
//! `!Ref AllowedRegions` into the string "AllowedRegions" and a `!If` into a plain list.

use serde_json::{Map, Number, Value};
use thiserror::Error;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

#[derive(Debug, Error)]
pub enum YamlError {
    #[error("not YAML: {0}")]
    Syntax(String),
    #[error("line {line}: {message}")]
    Shape { line: usize, message: String },
}

/// Parses a CloudFormation template (or any YAML document) into JSON.
pub fn parse(text: &str) -> Result<Value, YamlError> {
    let mut builder = Builder::default();
    Parser::new_from_str(text)
        .load(&mut builder, false)
        .map_err(|e| YamlError::Syntax(e.to_string()))?;
    if let Some(e) = builder.error {
        return Err(e);
    }
    Ok(builder.done.unwrap_or(Value::Null))
}

/// A node being built: its short-form function, if it has one.
enum Open {
    Seq(Vec<Value>, Option<String>),
    Map(Map<String, Value>, Option<String>, Option<String>),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Open>,
    done: Option<Value>,
    error: Option<YamlError>,
}

/// The long-form name of a short-form tag (`!Ref` -> `Ref`, `!Sub` -> `Fn::Sub`).
fn function_of(tag: &Option<Tag>) -> Option<String> {
    let tag = tag.as_ref()?;
    if tag.handle != "!" {
        return None;
    }
    Some(match tag.suffix.as_str() {
        "Ref" => "Ref".to_string(),
        "Condition" => "Condition".to_string(),
        other => format!("Fn::{other}"),
    })
}

/// A plain scalar as the YAML core schema types it; quoted scalars stay strings.
fn plain(value: String) -> Value {
    match value.as_str() {
        "true" | "True" | "TRUE" => Value::Bool(true),
        "false" | "False" | "FALSE" => Value::Bool(false),
        "null" | "Null" | "NULL" | "~" | "" => Value::Null,
        _ => {
            let digits = value.strip_prefix('-').unwrap_or(&value);
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                if let Ok(n) = value.parse::<i64>() {
                    return Value::Number(n.into());
                }
            }
            if value.contains('.') && value.parse::<f64>().is_ok_and(f64::is_finite) {
                if let Some(n) = value.parse::<f64>().ok().and_then(Number::from_f64) {
                    return Value::Number(n);
                }
            }
            Value::String(value)
        }
    }
}

/// `{"Fn::X": value}`; `!GetAtt A.B` also splits its dotted name as the long form has it.
fn wrap(function: Option<String>, value: Value) -> Value {
    let Some(f) = function else { return value };
    let value = match (f.as_str(), value) {
        ("Fn::GetAtt", Value::String(s)) => match s.split_once('.') {
            Some((res, att)) => Value::Array(vec![res.into(), att.into()]),
            None => Value::String(s),
        },
        (_, v) => v,
    };
    let mut m = Map::new();
    m.insert(f, value);
    Value::Object(m)
}

impl Builder {
    fn fail(&mut self, mark: Marker, message: impl Into<String>) {
        if self.error.is_none() {
            self.error = Some(YamlError::Shape {
                line: mark.line(),
                message: message.into(),
            });
        }
    }

    fn push_value(&mut self, value: Value, mark: Marker) {
        match self.stack.last_mut() {
            None => self.done = Some(value),
            Some(Open::Seq(items, _)) => items.push(value),
            Some(Open::Map(map, _, key)) => match key.take() {
                Some(k) => {
                    map.insert(k, value);
                }
                None => match value {
                    Value::String(k) => *key = Some(k),
                    Value::Number(n) => *key = Some(n.to_string()),
                    Value::Bool(b) => *key = Some(b.to_string()),
                    _ => self.fail(mark, "a mapping key must be a scalar"),
                },
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(value, style, _, tag) => {
                let v = if style == TScalarStyle::Plain && tag.is_none() {
                    plain(value)
                } else {
                    Value::String(value)
                };
                let v = wrap(function_of(&tag), v);
                self.push_value(v, mark);
            }
            Event::SequenceStart(_, tag) => {
                self.stack.push(Open::Seq(Vec::new(), function_of(&tag)))
            }
            Event::MappingStart(_, tag) => {
                self.stack
                    .push(Open::Map(Map::new(), function_of(&tag), None))
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let value = match self.stack.pop() {
                    Some(Open::Seq(items, f)) => wrap(f, Value::Array(items)),
                    Some(Open::Map(map, f, _)) => wrap(f, Value::Object(map)),
                    None => return,
                };
                self.push_value(value, mark);
            }
            Event::Alias(_) => self.fail(mark, "YAML aliases are not used in templates"),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn short_form_functions_become_their_long_form() {
        let v = parse(
            "A: !Ref X\nB: !Sub 'arn:${AWS::Partition}'\nC: !GetAtt Role.Arn\n\
             D: !If [Cond, 1, !Ref AWS::NoValue]\nE: !Split [' ', !Ref R]\nF: \"2012-10-17\"\n\
             G: 2012-10-17\nH: 30\nI: true\nJ: 'true'\n",
        )
        .unwrap();
        assert_eq!(
            v,
            json!({
                "A": {"Ref": "X"},
                "B": {"Fn::Sub": "arn:${AWS::Partition}"},
                "C": {"Fn::GetAtt": ["Role", "Arn"]},
                "D": {"Fn::If": ["Cond", 1, {"Ref": "AWS::NoValue"}]},
                "E": {"Fn::Split": [" ", {"Ref": "R"}]},
                "F": "2012-10-17",
                "G": "2012-10-17",
                "H": 30,
                "I": true,
                "J": "true",
            })
        );
    }

    #[test]
    fn nested_mappings_and_flow_style_are_read() {
        let v = parse("R:\n  Type: X\n  Properties: {A: [1, {B: !Ref C}]}\n").unwrap();
        assert_eq!(
            v,
            json!({"R": {"Type": "X", "Properties": {"A": [1, {"B": {"Ref": "C"}}]}}})
        );
    }

    #[test]
    fn bad_yaml_is_an_error() {
        assert!(parse("A: [1, 2").is_err());
    }
}
