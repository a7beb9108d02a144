//! What a run is told: the opt-in, the command line, and the stack's outputs (from
//! `sam list stack-outputs --output json` or `aws cloudformation describe-stacks --query
//! "Stacks[0].Outputs"`, which give the same list). Pure: no calls.

use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

/// The variable that lets the harness touch an AWS account.
pub const OPT_IN: &str = "KMS_REPLICATOR_ACCEPTANCE";

/// What the harness says, and does not do, without the opt-in.
pub const REFUSAL: &str = "kms-acceptance refuses to run: it creates KMS keys, changes them, \
invokes the stack's failover function and schedules the keys' deletion, in the AWS account of your \
credentials (or at AWS_ENDPOINT_URL). Set KMS_REPLICATOR_ACCEPTANCE=1 to run it, in a sandbox \
account with the stack deployed (docs/deployment.md#first-deploy-check-it-in-a-sandbox-account). \
Nothing was called.";

/// Whether the opt-in variable says yes: exactly `1`, nothing else.
pub fn opted_in(value: Option<&str>) -> bool {
    value == Some("1")
}

pub const USAGE: &str = "usage: kms-acceptance --replica-regions \"<Region> <Region>\" \
(--stack-outputs <file> | --failover-function <name or ARN> [--reconcile-function <name or ARN>]) \
[--region <home Region>] [--profile <name>] [--removal-policy Retain|ScheduleDeletion] \
[--wait 10m] [--poll 5s] [--tag-key replicate-to] [--report <file>] [--ledger <file>]
       kms-acceptance --cleanup --ledger <file> [--region <Region>] [--profile <name>]";

/// What the stack's `RemovalPolicy` parameter is: whether a Region removed from the tag has its
/// replica scheduled for deletion (and so whether the Region removal step can run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemovalPolicy {
    Retain,
    ScheduleDeletion,
}

/// Whether to run the journeys (and clean up after them) or only clean up what an earlier,
/// interrupted run left in its ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Journeys,
    CleanupOnly,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub mode: Mode,
    /// The home Region: where the stack runs and the test key's primary is made. `None`: the
    /// failover function's ARN's Region, else the profile's Region.
    pub region: Option<String>,
    pub profile: Option<String>,
    /// Where the replicas go, in order: the first is the failover target, the last the one the
    /// Region removal step takes out.
    pub replica_regions: Vec<String>,
    pub failover_function: Option<String>,
    /// For a diagnosis when a wait runs out: the reconcile function's plan for the test key.
    pub reconcile_function: Option<String>,
    pub removal: RemovalPolicy,
    /// The bound of every wait for the replicator (CloudTrail delivers events to EventBridge
    /// within seconds to minutes).
    pub wait: Duration,
    pub poll: Duration,
    pub tag_key: String,
    /// Where the JSON report goes, besides the text on standard output.
    pub report: Option<PathBuf>,
    /// Where the harness writes down what it made, as it makes it, so that an interrupted run
    /// can be cleaned up with `--cleanup`.
    pub ledger: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            mode: Mode::Journeys,
            region: None,
            profile: None,
            replica_regions: Vec::new(),
            failover_function: None,
            reconcile_function: None,
            removal: RemovalPolicy::Retain,
            wait: Duration::from_secs(600),
            poll: Duration::from_secs(5),
            tag_key: "replicate-to".into(),
            report: None,
            ledger: None,
        }
    }
}

impl Settings {
    /// Reads the command line (without the program name). Stack outputs named with
    /// `--stack-outputs` are read from the file here, so every error shows before any call.
    pub fn from_args(args: impl IntoIterator<Item = String>) -> Result<Settings, String> {
        let mut s = Settings::default();
        let mut args = args.into_iter();
        while let Some(flag) = args.next() {
            if flag == "--cleanup" {
                s.mode = Mode::CleanupOnly;
                continue;
            }
            let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
            match flag.as_str() {
                "--region" => s.region = Some(region_name(&value)?),
                "--profile" => s.profile = Some(value),
                "--replica-regions" => {
                    s.replica_regions = value
                        .split([' ', ','])
                        .filter(|r| !r.is_empty())
                        .map(region_name)
                        .collect::<Result<_, _>>()?;
                }
                "--stack-outputs" => {
                    let text = std::fs::read_to_string(&value)
                        .map_err(|e| format!("--stack-outputs {value}: {e}"))?;
                    let outputs = StackOutputs::parse(&text)
                        .map_err(|e| format!("--stack-outputs {value}: {e}"))?;
                    s.failover_function = s.failover_function.or(outputs.failover);
                    s.reconcile_function = s.reconcile_function.or(outputs.reconcile);
                }
                "--failover-function" => s.failover_function = Some(value),
                "--reconcile-function" => s.reconcile_function = Some(value),
                "--removal-policy" => {
                    s.removal = match value.as_str() {
                        "Retain" => RemovalPolicy::Retain,
                        "ScheduleDeletion" => RemovalPolicy::ScheduleDeletion,
                        other => {
                            return Err(format!(
                                "--removal-policy: '{other}' is neither Retain nor ScheduleDeletion"
                            ))
                        }
                    }
                }
                "--wait" => s.wait = duration(&flag, &value)?,
                "--poll" => s.poll = duration(&flag, &value)?,
                "--tag-key" => s.tag_key = value,
                "--report" => s.report = Some(PathBuf::from(value)),
                "--ledger" => s.ledger = Some(PathBuf::from(value)),
                _ => return Err(format!("unknown argument {flag}")),
            }
        }
        s.check()?;
        Ok(s)
    }

    fn check(&self) -> Result<(), String> {
        if self.mode == Mode::CleanupOnly {
            return match self.ledger {
                Some(_) => Ok(()),
                None => Err("--cleanup needs --ledger <file>".into()),
            };
        }
        if self.replica_regions.is_empty() {
            return Err("--replica-regions names no Region".into());
        }
        let mut seen = Vec::new();
        for r in &self.replica_regions {
            if seen.contains(&r) {
                return Err(format!("--replica-regions names {r} twice"));
            }
            seen.push(r);
        }
        if self.failover_function.is_none() {
            return Err(
                "the failover function is not known: pass --failover-function, or --stack-outputs \
                 with the stack's FailoverFunctionName"
                    .into(),
            );
        }
        if let Some(home) = self.region.as_deref().or(self.failover_region()) {
            if self.replica_regions.iter().any(|r| r == home) {
                return Err(format!(
                    "--replica-regions names {home}, the home Region, where the primary is made"
                ));
            }
        }
        if self.poll.is_zero() || self.poll > self.wait {
            return Err("--poll must be more than 0 and at most --wait".into());
        }
        Ok(())
    }

    /// The Region in the failover function's ARN, when it is named by ARN.
    pub fn failover_region(&self) -> Option<&str> {
        self.failover_function
            .as_deref()
            .and_then(lambda_arn_region)
    }
}

/// `arn:aws:lambda:<region>:<account>:function:<name>` -> `<region>`.
pub fn lambda_arn_region(arn: &str) -> Option<&str> {
    let mut parts = arn.split(':');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("arn"), Some(_), Some("lambda"), Some(region)) if !region.is_empty() => Some(region),
        _ => None,
    }
}

/// A Region name as AWS spells them (`us-west-2`, `ap-southeast-2`, `us-gov-west-1`).
fn region_name(value: &str) -> Result<String, String> {
    let parts: Vec<&str> = value.split('-').collect();
    let well_formed = parts.len() >= 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
        && parts
            .last()
            .is_some_and(|n| n.chars().all(|c| c.is_ascii_digit()));
    if well_formed {
        Ok(value.to_string())
    } else {
        Err(format!(
            "'{value}' is not an AWS Region name (like us-west-2)"
        ))
    }
}

fn duration(flag: &str, value: &str) -> Result<Duration, String> {
    humantime::parse_duration(value).map_err(|e| format!("{flag} {value}: {e} (like 90s or 10m)"))
}

/// The stack's outputs that the harness uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StackOutputs {
    pub failover: Option<String>,
    pub reconcile: Option<String>,
}

impl StackOutputs {
    /// Reads `[{"OutputKey": ..., "OutputValue": ...}, ...]`. The functions' ARNs are preferred
    /// to their names: an ARN names the stack's Region, which is then the home Region whatever
    /// the profile's default.
    pub fn parse(text: &str) -> Result<StackOutputs, String> {
        let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let list = v.as_array().ok_or(
            "not a list of outputs (expected [{\"OutputKey\": ..., \"OutputValue\": ...}])",
        )?;
        let value = |key: &str| {
            list.iter()
                .find(|o| o["OutputKey"] == key)
                .and_then(|o| o["OutputValue"].as_str())
                .map(str::to_string)
        };
        let outputs = StackOutputs {
            failover: value("FailoverFunctionArn").or_else(|| value("FailoverFunctionName")),
            reconcile: value("ReconcileFunctionArn").or_else(|| value("ReconcileFunctionName")),
        };
        if outputs.failover.is_none() {
            return Err(
                "no FailoverFunctionArn or FailoverFunctionName among the outputs: is it this project's stack?".into(),
            );
        }
        Ok(outputs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn only_exactly_one_opts_in() {
        assert!(opted_in(Some("1")));
        for no in [
            None,
            Some(""),
            Some("0"),
            Some("true"),
            Some("yes"),
            Some(" 1"),
        ] {
            assert!(!opted_in(no), "{no:?}");
        }
    }

    #[test]
    fn a_full_command_line_is_read_with_its_defaults() {
        let s = Settings::from_args(args(&[
            "--replica-regions",
            "us-west-2 eu-west-1",
            "--failover-function",
            "arn:aws:lambda:us-east-1:111122223333:function:kms-replicator-FailoverFunction-AbC",
            "--removal-policy",
            "ScheduleDeletion",
            "--wait",
            "90s",
        ]))
        .unwrap();
        assert_eq!(s.replica_regions, ["us-west-2", "eu-west-1"]);
        assert_eq!(s.removal, RemovalPolicy::ScheduleDeletion);
        assert_eq!(s.wait, Duration::from_secs(90));
        assert_eq!(s.poll, Duration::from_secs(5));
        assert_eq!(s.tag_key, "replicate-to");
        assert_eq!(s.failover_region(), Some("us-east-1"));
        assert_eq!(s.mode, Mode::Journeys);
    }

    #[test]
    fn mistakes_are_refused_with_what_is_wrong() {
        let cases: &[(&[&str], &str)] = &[
            (&["--failover-function", "f"], "names no Region"),
            (
                &["--replica-regions", "us-west-2"],
                "failover function is not known",
            ),
            (
                &[
                    "--replica-regions",
                    "us-west-2,US-EAST-1",
                    "--failover-function",
                    "f",
                ],
                "not an AWS Region name",
            ),
            (
                &[
                    "--replica-regions",
                    "us-west-2 us-west-2",
                    "--failover-function",
                    "f",
                ],
                "twice",
            ),
            (
                &[
                    "--replica-regions",
                    "us-east-1",
                    "--region",
                    "us-east-1",
                    "--failover-function",
                    "f",
                ],
                "the home Region",
            ),
            (
                &[
                    "--replica-regions",
                    "us-west-2",
                    "--failover-function",
                    "f",
                    "--wait",
                    "soon",
                ],
                "--wait soon",
            ),
            (
                &[
                    "--replica-regions",
                    "us-west-2",
                    "--failover-function",
                    "f",
                    "--removal-policy",
                    "Delete",
                ],
                "neither",
            ),
            (
                &[
                    "--replica-regions",
                    "us-west-2",
                    "--failover-function",
                    "f",
                    "--poll",
                    "20m",
                ],
                "at most --wait",
            ),
            (&["--replica-regions"], "needs a value"),
            (&["--colour", "red"], "unknown argument"),
            (&["--cleanup"], "needs --ledger"),
        ];
        for (a, expected) in cases {
            let e = Settings::from_args(args(a)).unwrap_err();
            assert!(e.contains(expected), "{a:?}: {e}");
        }
    }

    #[test]
    fn cleanup_only_needs_just_the_ledger() {
        let s = Settings::from_args(args(&["--cleanup", "--ledger", "l.json"])).unwrap();
        assert_eq!(s.mode, Mode::CleanupOnly);
        assert_eq!(s.ledger, Some(PathBuf::from("l.json")));
    }

    #[test]
    fn stack_outputs_as_sam_lists_them_give_the_function_names() {
        // The shape of `sam list stack-outputs --output json` (and of describe-stacks' Outputs).
        let text = r#"[
          {"OutputKey": "ReplicateFunctionName", "OutputValue": "kms-replicator-ReplicateFunction-1", "Description": "Name of the replicate function."},
          {"OutputKey": "FailoverFunctionArn", "OutputValue": "arn:aws:lambda:us-east-1:111122223333:function:kms-replicator-FailoverFunction-2", "Description": "ARN"},
          {"OutputKey": "FailoverFunctionName", "OutputValue": "kms-replicator-FailoverFunction-2", "Description": "Name of the failover function."},
          {"OutputKey": "ReconcileFunctionName", "OutputValue": "kms-replicator-ReconcileFunction-3", "Description": "Name"}
        ]"#;
        let o = StackOutputs::parse(text).unwrap();
        assert_eq!(
            o.failover.as_deref(),
            Some(
                "arn:aws:lambda:us-east-1:111122223333:function:kms-replicator-FailoverFunction-2"
            ),
            "the ARN, which names the stack's Region"
        );
        assert_eq!(
            o.reconcile.as_deref(),
            Some("kms-replicator-ReconcileFunction-3")
        );
        assert!(StackOutputs::parse("[]")
            .unwrap_err()
            .contains("FailoverFunctionName"));
        assert!(StackOutputs::parse("{}")
            .unwrap_err()
            .contains("not a list"));
    }
}
