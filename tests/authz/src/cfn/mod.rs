//! A CloudFormation template as a deployed stack would see it: the parameters given (or their
//! defaults), the conditions they decide, and the intrinsic functions (`Ref`, `Fn::Sub`,
//! `Fn::GetAtt`, `Fn::If`, `Fn::Split`, `Fn::Select`, `Fn::Join`, ...) evaluated, so that a
//! resource's properties read as the values AWS would receive.
//!
//! Physical names are deterministic (`<stack>-<LogicalId>`), where CloudFormation adds a
//! random suffix; the ARNs built from them have AWS's shapes (a role's ARN carries its path).

use crate::yaml;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::Path;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum CfnError {
    #[error("{0}")]
    Read(String),
    #[error("{0}")]
    Yaml(#[from] yaml::YamlError),
    #[error("parameter {name}: {message}")]
    Parameter { name: String, message: String },
    #[error("{0}")]
    Intrinsic(String),
}

/// Where the stack runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stack {
    pub name: String,
    pub account: String,
    pub region: String,
    pub partition: String,
}

impl Stack {
    pub fn new(name: &str, account: &str, region: &str) -> Stack {
        Stack {
            name: name.to_string(),
            account: account.to_string(),
            region: region.to_string(),
            partition: "aws".to_string(),
        }
    }
}

/// A template with its parameters decided.
#[derive(Debug, Clone)]
pub struct Template {
    doc: Value,
    stack: Stack,
    parameters: BTreeMap<String, String>,
    conditions: BTreeMap<String, bool>,
}

impl Template {
    pub fn load(
        path: &Path,
        stack: Stack,
        overrides: &[(&str, &str)],
    ) -> Result<Template, CfnError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CfnError::Read(format!("{}: {e}", path.display())))?;
        Template::parse(&text, stack, overrides)
    }

    /// Reads `text`, takes each parameter from `overrides` or its `Default`, and decides the
    /// conditions. A parameter with neither, or a value outside `AllowedValues`, is an error.
    pub fn parse(
        text: &str,
        stack: Stack,
        overrides: &[(&str, &str)],
    ) -> Result<Template, CfnError> {
        Template::read(text, stack, overrides, true)
    }

    /// Like [`Template::parse`] for reading parts of a template that do not depend on every
    /// parameter (an event rule's pattern): a parameter with no value is an error only where it
    /// is referred to.
    pub fn parse_partial(text: &str, stack: Stack) -> Result<Template, CfnError> {
        Template::read(text, stack, &[], false)
    }

    fn read(
        text: &str,
        stack: Stack,
        overrides: &[(&str, &str)],
        complete: bool,
    ) -> Result<Template, CfnError> {
        let doc = yaml::parse(text)?;
        let mut parameters = BTreeMap::new();
        let declared = doc
            .get("Parameters")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for (name, _) in overrides {
            if !declared.contains_key(*name) {
                return Err(CfnError::Parameter {
                    name: name.to_string(),
                    message: "not a parameter of the template".into(),
                });
            }
        }
        for (name, decl) in &declared {
            let given = overrides
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.to_string());
            let value = match given.or_else(|| decl.get("Default").map(scalar_text)) {
                Some(v) => v,
                None if !complete => continue,
                None => {
                    return Err(CfnError::Parameter {
                        name: name.clone(),
                        message: "has no default: give it a value".into(),
                    })
                }
            };
            if let Some(allowed) = decl.get("AllowedValues").and_then(Value::as_array) {
                if !allowed.iter().any(|a| scalar_text(a) == value) {
                    return Err(CfnError::Parameter {
                        name: name.clone(),
                        message: format!("{value:?} is not one of its AllowedValues"),
                    });
                }
            }
            parameters.insert(name.clone(), value);
        }
        let mut t = Template {
            doc,
            stack,
            parameters,
            conditions: BTreeMap::new(),
        };
        match t.decide_conditions() {
            Err(e) if complete => return Err(e),
            // A partial read leaves the conditions it cannot decide undecided.
            _ => {}
        }
        Ok(t)
    }

    pub fn stack(&self) -> &Stack {
        &self.stack
    }

    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.parameters.get(name).map(String::as_str)
    }

    pub fn condition(&self, name: &str) -> Option<bool> {
        self.conditions.get(name).copied()
    }

    /// The logical ids and types of the resources present (their `Condition` holds).
    pub fn resources(&self) -> Vec<(String, String)> {
        self.resource_map()
            .iter()
            .filter(|(_, r)| self.present(r))
            .map(|(id, r)| {
                let ty = r.get("Type").and_then(Value::as_str).unwrap_or("");
                (id.clone(), ty.to_string())
            })
            .collect()
    }

    /// A resource's `Properties`, every intrinsic function evaluated.
    pub fn properties(&self, logical_id: &str) -> Result<Value, CfnError> {
        let r = self
            .resource_map()
            .get(logical_id)
            .ok_or_else(|| CfnError::Intrinsic(format!("no resource {logical_id}")))?;
        let props = r
            .get("Properties")
            .cloned()
            .unwrap_or(Value::Object(Map::new()));
        Ok(self.resolve(&props)?.unwrap_or(Value::Null))
    }

    /// A resource's `Metadata` (SAM's `BuildProperties`, say), intrinsic functions evaluated.
    pub fn metadata(&self, logical_id: &str) -> Result<Value, CfnError> {
        let meta = self
            .resource_map()
            .get(logical_id)
            .and_then(|r| r.get("Metadata"))
            .cloned()
            .unwrap_or(Value::Null);
        Ok(self.resolve(&meta)?.unwrap_or(Value::Null))
    }

    /// What `Ref` gives for a resource (its physical name, or the ARN for the types whose
    /// `Ref` is an ARN).
    pub fn physical_ref(&self, logical_id: &str) -> Result<String, CfnError> {
        let ty = self.resource_type(logical_id)?;
        let name = self.physical_name(logical_id);
        let s = &self.stack;
        Ok(match ty.as_str() {
            "AWS::IAM::ManagedPolicy" => format!(
                "arn:{}:iam::{}:policy{}{name}",
                s.partition,
                s.account,
                self.iam_path(logical_id)?
            ),
            "AWS::SNS::Topic" => {
                format!("arn:{}:sns:{}:{}:{name}", s.partition, s.region, s.account)
            }
            "AWS::SQS::Queue" => format!(
                "https://sqs.{}.amazonaws.com/{}/{name}",
                s.region, s.account
            ),
            _ => name,
        })
    }

    /// What `Fn::GetAtt [logical_id, attribute]` gives.
    pub fn get_att(&self, logical_id: &str, attribute: &str) -> Result<String, CfnError> {
        let ty = self.resource_type(logical_id)?;
        let name = self.physical_name(logical_id);
        let s = &self.stack;
        let (p, r, a) = (&s.partition, &s.region, &s.account);
        let value = match (ty.as_str(), attribute) {
            ("AWS::IAM::Role", "Arn") => {
                format!("arn:{p}:iam::{a}:role{}{name}", self.iam_path(logical_id)?)
            }
            ("AWS::IAM::Role", "RoleId") => format!("AROA{}", name.to_uppercase()),
            ("AWS::SQS::Queue", "Arn") => format!("arn:{p}:sqs:{r}:{a}:{name}"),
            ("AWS::SQS::Queue", "QueueName") => name,
            ("AWS::Logs::LogGroup", "Arn") => format!("arn:{p}:logs:{r}:{a}:log-group:{name}:*"),
            ("AWS::Events::Rule", "Arn") => format!("arn:{p}:events:{r}:{a}:rule/{name}"),
            ("AWS::Events::EventBus", "Arn") => format!("arn:{p}:events:{r}:{a}:event-bus/{name}"),
            ("AWS::Events::EventBus", "Name") => name,
            ("AWS::SNS::Topic", "TopicArn") => format!("arn:{p}:sns:{r}:{a}:{name}"),
            ("AWS::Lambda::Function" | "AWS::Serverless::Function", "Arn") => {
                format!("arn:{p}:lambda:{r}:{a}:function:{name}")
            }
            _ => {
                return Err(CfnError::Intrinsic(format!(
                    "Fn::GetAtt {logical_id}.{attribute} ({ty}) is not modelled"
                )))
            }
        };
        Ok(value)
    }

    /// `<stack>-<LogicalId>`, or the name the resource sets itself.
    pub fn physical_name(&self, logical_id: &str) -> String {
        let given = self.resource_map().get(logical_id).and_then(|r| {
            let props = r.get("Properties")?;
            [
                "RoleName",
                "ManagedPolicyName",
                "QueueName",
                "FunctionName",
                "Name",
                "LogGroupName",
            ]
            .iter()
            .find_map(|k| props.get(*k))
            .and_then(|v| self.resolve(v).ok().flatten())
            .and_then(|v| v.as_str().map(str::to_string))
        });
        given.unwrap_or_else(|| format!("{}-{logical_id}", self.stack.name))
    }

    fn iam_path(&self, logical_id: &str) -> Result<String, CfnError> {
        let raw = self
            .resource_map()
            .get(logical_id)
            .and_then(|r| r.get("Properties"))
            .and_then(|p| p.get("Path"))
            .cloned();
        Ok(match raw {
            None => "/".to_string(),
            Some(v) => self
                .resolve(&v)?
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| "/".to_string()),
        })
    }

    fn declares_parameter(&self, name: &str) -> bool {
        self.doc
            .get("Parameters")
            .and_then(|p| p.get(name))
            .is_some()
    }

    fn resource_map(&self) -> &Map<String, Value> {
        static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
        self.doc
            .get("Resources")
            .and_then(Value::as_object)
            .unwrap_or_else(|| EMPTY.get_or_init(Map::new))
    }

    fn resource_type(&self, logical_id: &str) -> Result<String, CfnError> {
        self.resource_map()
            .get(logical_id)
            .and_then(|r| r.get("Type"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| CfnError::Intrinsic(format!("no resource {logical_id}")))
    }

    fn present(&self, resource: &Value) -> bool {
        match resource.get("Condition").and_then(Value::as_str) {
            Some(c) => self.condition(c).unwrap_or(false),
            None => true,
        }
    }

    fn decide_conditions(&mut self) -> Result<(), CfnError> {
        let defs = self
            .doc
            .get("Conditions")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        // Conditions may refer to each other in any order: decide them until none is left.
        let mut left: Vec<(String, Value)> = defs.into_iter().collect();
        while !left.is_empty() {
            let before = left.len();
            let mut undecided = Vec::new();
            for (name, def) in left {
                match self.decide(&def) {
                    Ok(b) => {
                        self.conditions.insert(name, b);
                    }
                    Err(Undecided::Waiting) => undecided.push((name, def)),
                    Err(Undecided::Bad(m)) => {
                        return Err(CfnError::Intrinsic(format!("condition {name}: {m}")))
                    }
                }
            }
            if undecided.len() == before {
                let names: Vec<_> = undecided.iter().map(|(n, _)| n.as_str()).collect();
                return Err(CfnError::Intrinsic(format!(
                    "conditions in a cycle: {names:?}"
                )));
            }
            left = undecided;
        }
        Ok(())
    }

    fn decide(&self, def: &Value) -> Result<bool, Undecided> {
        let (f, arg) = single_key(def).ok_or_else(|| Undecided::Bad(format!("{def}")))?;
        let list = || {
            arg.as_array()
                .ok_or_else(|| Undecided::Bad(format!("{f} takes a list")))
        };
        match f {
            "Condition" => {
                let name = arg
                    .as_str()
                    .ok_or_else(|| Undecided::Bad("Condition name".into()))?;
                self.condition(name).ok_or(Undecided::Waiting)
            }
            "Fn::Equals" => {
                let items = list()?;
                if items.len() != 2 {
                    return Err(Undecided::Bad("Fn::Equals takes two values".into()));
                }
                let a = self
                    .resolve(&items[0])
                    .map_err(|e| Undecided::Bad(e.to_string()))?;
                let b = self
                    .resolve(&items[1])
                    .map_err(|e| Undecided::Bad(e.to_string()))?;
                Ok(a.map(|v| scalar_text(&v)) == b.map(|v| scalar_text(&v)))
            }
            "Fn::Not" => {
                Ok(!self.decide(list()?.first().ok_or(Undecided::Bad("Fn::Not".into()))?)?)
            }
            "Fn::And" => {
                let mut all = true;
                for c in list()? {
                    all &= self.decide(c)?;
                }
                Ok(all)
            }
            "Fn::Or" => {
                let mut any = false;
                for c in list()? {
                    any |= self.decide(c)?;
                }
                Ok(any)
            }
            other => Err(Undecided::Bad(format!(
                "{other} is not a condition function"
            ))),
        }
    }

    /// Evaluates the intrinsic functions in `v`. `None` is `AWS::NoValue`: the caller drops
    /// the property or list element.
    pub fn resolve(&self, v: &Value) -> Result<Option<Value>, CfnError> {
        match v {
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for i in items {
                    if let Some(x) = self.resolve(i)? {
                        out.push(x);
                    }
                }
                Ok(Some(Value::Array(out)))
            }
            Value::Object(m) => {
                if let Some((f, arg)) = single_key(v).filter(|(f, _)| is_function(f)) {
                    return self.function(f, arg);
                }
                let mut out = Map::new();
                for (k, x) in m {
                    if let Some(x) = self.resolve(x)? {
                        out.insert(k.clone(), x);
                    }
                }
                Ok(Some(Value::Object(out)))
            }
            other => Ok(Some(other.clone())),
        }
    }

    fn function(&self, f: &str, arg: &Value) -> Result<Option<Value>, CfnError> {
        let bad = |m: &str| CfnError::Intrinsic(format!("{f}: {m} in {arg}"));
        let text = |v: &Value| -> Result<String, CfnError> {
            match self.resolve(v)? {
                Some(Value::String(s)) => Ok(s),
                Some(x @ (Value::Number(_) | Value::Bool(_))) => Ok(scalar_text(&x)),
                _ => Err(bad("expected a string")),
            }
        };
        match f {
            "Ref" => {
                let name = arg.as_str().ok_or_else(|| bad("expected a name"))?;
                self.reference(name).map(|o| o.map(Value::String))
            }
            "Fn::GetAtt" => {
                let (res, att) = match arg {
                    Value::Array(a) if a.len() == 2 => (text(&a[0])?, text(&a[1])?),
                    Value::String(s) => s
                        .split_once('.')
                        .map(|(a, b)| (a.to_string(), b.to_string()))
                        .ok_or_else(|| bad("expected Resource.Attribute"))?,
                    _ => return Err(bad("expected [Resource, Attribute]")),
                };
                Ok(Some(Value::String(self.get_att(&res, &att)?)))
            }
            "Fn::Sub" => {
                let (template, vars) = match arg {
                    Value::String(s) => (s.clone(), Map::new()),
                    Value::Array(a) if a.len() == 2 => (
                        text(&a[0])?,
                        a[1].as_object()
                            .cloned()
                            .ok_or_else(|| bad("expected variables"))?,
                    ),
                    _ => return Err(bad("expected a string")),
                };
                Ok(Some(Value::String(self.substitute(&template, &vars)?)))
            }
            "Fn::If" => {
                let a = arg
                    .as_array()
                    .filter(|a| a.len() == 3)
                    .ok_or_else(|| bad("expected [Condition, then, else]"))?;
                let name = a[0]
                    .as_str()
                    .ok_or_else(|| bad("expected a condition name"))?;
                let holds = self
                    .condition(name)
                    .ok_or_else(|| bad(&format!("no condition {name}")))?;
                self.resolve(if holds { &a[1] } else { &a[2] })
            }
            "Fn::Split" => {
                let a = arg
                    .as_array()
                    .filter(|a| a.len() == 2)
                    .ok_or_else(|| bad("expected [delimiter, string]"))?;
                let delimiter = text(&a[0])?;
                let s = text(&a[1])?;
                Ok(Some(Value::Array(
                    s.split(delimiter.as_str())
                        .map(|p| Value::String(p.to_string()))
                        .collect(),
                )))
            }
            "Fn::Join" => {
                let a = arg
                    .as_array()
                    .filter(|a| a.len() == 2)
                    .ok_or_else(|| bad("expected [delimiter, list]"))?;
                let delimiter = text(&a[0])?;
                let items = match self.resolve(&a[1])? {
                    Some(Value::Array(items)) => items,
                    _ => return Err(bad("expected a list")),
                };
                let parts: Vec<String> = items.iter().map(scalar_text).collect();
                Ok(Some(Value::String(parts.join(&delimiter))))
            }
            "Fn::Select" => {
                let a = arg
                    .as_array()
                    .filter(|a| a.len() == 2)
                    .ok_or_else(|| bad("expected [index, list]"))?;
                let index: usize = text(&a[0])?.parse().map_err(|_| bad("expected an index"))?;
                match self.resolve(&a[1])? {
                    Some(Value::Array(items)) => items
                        .get(index)
                        .cloned()
                        .map(Some)
                        .ok_or_else(|| bad("index out of range")),
                    _ => Err(bad("expected a list")),
                }
            }
            "Condition" => {
                let name = arg.as_str().ok_or_else(|| bad("expected a name"))?;
                Ok(Some(Value::Bool(
                    self.condition(name)
                        .ok_or_else(|| bad("no such condition"))?,
                )))
            }
            other => Err(CfnError::Intrinsic(format!("{other} is not modelled"))),
        }
    }

    fn reference(&self, name: &str) -> Result<Option<String>, CfnError> {
        let s = &self.stack;
        Ok(Some(match name {
            "AWS::NoValue" => return Ok(None),
            "AWS::Partition" => s.partition.clone(),
            "AWS::AccountId" => s.account.clone(),
            "AWS::Region" => s.region.clone(),
            "AWS::StackName" => s.name.clone(),
            "AWS::URLSuffix" => "amazonaws.com".to_string(),
            _ => match self.parameters.get(name) {
                Some(v) => v.clone(),
                None if self.declares_parameter(name) => {
                    return Err(CfnError::Parameter {
                        name: name.to_string(),
                        message: "has no value".into(),
                    })
                }
                None => self.physical_ref(name)?,
            },
        }))
    }

    fn substitute(&self, template: &str, vars: &Map<String, Value>) -> Result<String, CfnError> {
        let mut out = String::new();
        let mut rest = template;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            // `${!Literal}` is written as `${Literal}`.
            if let Some(lit) = after.strip_prefix('!') {
                out.push_str("${");
                rest = lit;
                continue;
            }
            let end = after.find('}').ok_or_else(|| {
                CfnError::Intrinsic(format!("Fn::Sub: unclosed ${{ in {template}"))
            })?;
            let name = &after[..end];
            let value = if let Some(v) = vars.get(name) {
                match self.resolve(v)? {
                    Some(v) => scalar_text(&v),
                    None => String::new(),
                }
            } else if let Some((res, att)) =
                name.split_once('.').filter(|_| !name.starts_with("AWS::"))
            {
                self.get_att(res, att)?
            } else {
                self.reference(name)?.unwrap_or_default()
            };
            out.push_str(&value);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

enum Undecided {
    /// Refers to a condition not decided yet.
    Waiting,
    Bad(String),
}

fn is_function(name: &str) -> bool {
    name == "Ref" || name == "Condition" || name.starts_with("Fn::")
}

fn single_key(v: &Value) -> Option<(&str, &Value)> {
    let m = v.as_object()?;
    if m.len() != 1 {
        return None;
    }
    m.iter().next().map(|(k, v)| (k.as_str(), v))
}

/// A scalar as CloudFormation passes it on: parameters and numbers are strings.
pub fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests;
