//! The demo's harness: what it holds (the local cloud, Alice's clients, the SDK adapter that
//! reads as she would), how it speaks (a step's title, the commands a person would type,
//! checks), the pipeline's account of what went through it, and the summary.

use kms_replicator::aws::AwsKms;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};
use twin::{example_primary_policy, is_replicator, DEFAULT_ACCOUNT};
use twin_server::{LocalCloud, ADMIN_ACCESS_KEY};

pub const HOME: &str = "us-east-1";
pub const ALLOWED: &str = "us-east-1 us-west-2 eu-west-1 ap-southeast-2";
const SETTLE: Duration = Duration::from_secs(60);

pub struct Style {
    pub color: bool,
}

impl Style {
    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    pub fn bold(&self, s: &str) -> String {
        self.paint("1", s)
    }
    pub fn dim(&self, s: &str) -> String {
        self.paint("2", s)
    }
    pub fn green(&self, s: &str) -> String {
        self.paint("32", s)
    }
    pub fn red(&self, s: &str) -> String {
        self.paint("31", s)
    }
    pub fn yellow(&self, s: &str) -> String {
        self.paint("33", s)
    }
}

#[derive(PartialEq)]
enum Verdict {
    Pass,
    Fail,
    Skipped(String),
}

struct StepResult {
    title: String,
    checks: usize,
    failed: usize,
    verdict: Verdict,
    elapsed: Duration,
}

/// A step under way: its title, when it began, and the checks counted before it.
pub struct Step {
    title: &'static str,
    started: Instant,
    checks: usize,
    failed: usize,
}

pub struct Demo {
    pub cloud: LocalCloud,
    pub style: Style,
    /// Whether the failover function was built (its steps are skipped when not).
    pub has_failover: bool,
    /// How many steps the demo has, for the `[n/total]` of each title.
    steps: usize,
    alice: BTreeMap<String, aws_sdk_kms::Client>,
    /// The SDK adapter, signing as Alice: what a person reads with `aws kms ...`.
    pub reader: AwsKms,
    results: Vec<StepResult>,
    checks: usize,
    failed: usize,
    seen_deliveries: usize,
    seen_invocations: usize,
}

pub fn primary_policy() -> String {
    example_primary_policy(DEFAULT_ACCOUNT)
}

pub fn tag(k: &str, v: &str) -> aws_sdk_kms::types::Tag {
    aws_sdk_kms::types::Tag::builder()
        .tag_key(k)
        .tag_value(v)
        .build()
        .expect("key and value")
}

/// `p` relative to the current folder when it is inside it.
pub fn rel(p: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|d| p.strip_prefix(d).ok().map(|r| r.display().to_string()))
        .unwrap_or_else(|| p.display().to_string())
}

pub fn short(id: &str) -> String {
    if id.len() > 16 {
        format!("{}…{}", &id[..8], &id[id.len() - 4..])
    } else {
        id.to_string()
    }
}

impl Demo {
    pub fn new(
        cloud: LocalCloud,
        style: Style,
        reader: AwsKms,
        has_failover: bool,
        steps: usize,
    ) -> Demo {
        Demo {
            cloud,
            style,
            has_failover,
            steps,
            alice: BTreeMap::new(),
            reader,
            results: Vec::new(),
            checks: 0,
            failed: 0,
            seen_deliveries: 0,
            seen_invocations: 0,
        }
    }

    /// Alice's KMS client in `region`.
    pub async fn kms(&mut self, region: &str) -> aws_sdk_kms::Client {
        if !self.alice.contains_key(region) {
            let c = self.cloud.kms_client(ADMIN_ACCESS_KEY, region).await;
            self.alice.insert(region.to_string(), c);
        }
        self.alice[region].clone()
    }

    pub fn say(&self, line: &str) {
        println!("  {line}");
    }

    /// The command a person would type for what comes next.
    pub fn cli(&self, line: &str) {
        println!("  {}", self.style.dim(&format!("$ {line}")));
    }

    pub fn check(&mut self, ok: bool, what: &str) -> bool {
        self.checks += 1;
        if ok {
            println!("  {} {what}", self.style.green("✔"));
        } else {
            self.failed += 1;
            println!("  {} {what}", self.style.red("✘"));
        }
        ok
    }

    /// Waits for the pipeline and says what went through it since the last call.
    pub async fn settle(&mut self) {
        let took = match self.cloud.settle(SETTLE).await {
            Ok(d) => d,
            Err(e) => {
                self.check(false, &format!("the pipeline settles: {e}"));
                return;
            }
        };
        let deliveries = self.cloud.deliveries();
        let invocations = self.cloud.invocations();
        let new_d = &deliveries[self.seen_deliveries.min(deliveries.len())..];
        let new_i = &invocations[self.seen_invocations.min(invocations.len())..];
        let delivered = new_d.iter().filter(|d| !d.delivered_to.is_empty()).count();
        let own = new_d.iter().filter(|d| is_replicator(&d.caller())).count();
        let errors = new_i.iter().filter(|i| i.result.is_err()).count();
        let names: Vec<String> = {
            let mut m: BTreeMap<&str, usize> = BTreeMap::new();
            for d in new_d {
                *m.entry(d.event_name()).or_default() += 1;
            }
            m.into_iter()
                .map(|(k, n)| {
                    if n > 1 {
                        format!("{k}×{n}")
                    } else {
                        k.to_string()
                    }
                })
                .collect()
        };
        self.say(&self.style.dim(&format!(
            "pipeline: {} CloudTrail events ({}; {own} from the replicator's own writes) → {delivered} matched the rule → {} invocations of the functions, {errors} errors; quiet after {} ms",
            new_d.len(),
            names.join(", "),
            new_i.len(),
            took.as_millis()
        )));
        self.seen_deliveries = deliveries.len();
        self.seen_invocations = invocations.len();
    }

    /// Prints the next step's title; its checks count from here.
    pub fn begin(&self, title: &'static str) -> Step {
        println!();
        println!(
            "{}",
            self.style.bold(&format!(
                "[{}/{}] {title}",
                self.results.len() + 1,
                self.steps
            ))
        );
        Step {
            title,
            started: Instant::now(),
            checks: self.checks,
            failed: self.failed,
        }
    }

    pub fn end(&mut self, step: Step) {
        let failed = self.failed - step.failed;
        self.results.push(StepResult {
            title: step.title.to_string(),
            checks: self.checks - step.checks,
            failed,
            verdict: if failed == 0 {
                Verdict::Pass
            } else {
                Verdict::Fail
            },
            elapsed: step.started.elapsed(),
        });
    }

    pub fn skip(&mut self, step: Step, why: &str) {
        println!("  {} {why}", self.style.yellow("SKIPPED:"));
        self.results.push(StepResult {
            title: step.title.to_string(),
            checks: 0,
            failed: 0,
            verdict: Verdict::Skipped(why.to_string()),
            elapsed: step.started.elapsed(),
        });
    }

    pub fn audit_since(&self, from: usize) -> Vec<Value> {
        self.cloud.audit_entries().into_iter().skip(from).collect()
    }

    /// Prints each step's verdict and the pipeline's totals; whether the demo passed: it ran
    /// to the end (`completed`) and every check passed.
    pub fn summary(&self, completed: bool, started: Instant, log_dir: &Path) -> bool {
        println!();
        println!("{}", self.style.bold("Summary"));
        println!(
            "  {:<4} {:<72} {:>6} {:>8}",
            "step", "journey", "checks", "time"
        );
        for (i, r) in self.results.iter().enumerate() {
            let verdict = match &r.verdict {
                Verdict::Pass => self.style.green("PASS"),
                Verdict::Fail => self.style.red("FAIL"),
                Verdict::Skipped(_) => self.style.yellow("SKIP"),
            };
            println!(
                "  {:<4} {:<72} {:>6} {:>6} ms  {verdict}",
                i + 1,
                r.title,
                format!("{}/{}", r.checks - r.failed, r.checks),
                r.elapsed.as_millis()
            );
        }
        let deliveries = self.cloud.deliveries();
        let invocations = self.cloud.invocations();
        println!(
            "  pipeline: {} CloudTrail events, {} matched the rule, {} function invocations ({} failed), {} dead letters; {} ms in all",
            deliveries.len(),
            deliveries.iter().filter(|d| !d.matched.is_empty()).count(),
            invocations.len(),
            invocations.iter().filter(|i| i.result.is_err()).count(),
            self.cloud.dead_letters().len(),
            started.elapsed().as_millis()
        );
        let skipped = self
            .results
            .iter()
            .filter(|r| matches!(r.verdict, Verdict::Skipped(_)))
            .count();
        let ok = completed
            && self.failed == 0
            && self.results.iter().all(|r| r.verdict != Verdict::Fail);
        if ok {
            println!(
                "  {} {} checks passed{}",
                self.style.green("OK:"),
                self.checks,
                if skipped > 0 {
                    format!(", {skipped} steps skipped")
                } else {
                    String::new()
                }
            );
        } else {
            println!(
                "  {} {} of {} checks failed; the functions' logs are in {}",
                self.style.red("FAILED:"),
                self.failed,
                self.checks,
                rel(log_dir)
            );
        }
        ok
    }
}
