//! `kms-demo` (`make demo`): the replicator's user journeys on one machine, with the release
//! binaries of the functions and the real AWS SDK, against the KMS twin over HTTP. A person
//! (access key `admin`, Alice) makes the KMS calls; CloudTrail records of every write go
//! through the EventBridge rule of `template.yaml` to the `replicate` function; the on-call
//! steps invoke the `failover` function. Every step checks what it claims; the exit status is
//! 0 only when every check passed.
//!
//! ```text
//! kms-demo [--template template.yaml] [--bin-dir target/release] [--no-color]
//! ```

use aws_sdk_kms::types::Tag as SdkTag;
use kms_replicator::aws::AwsKms;
use kms_replicator::desired::is_replicator_tag;
use kms_replicator::model::{KeyState, MultiRegionKeyType};
use kms_replicator::policy::{rewrite_policy, same_policy};
use kms_replicator::Kms;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use twin::{example_primary_policy, DEFAULT_ACCOUNT, REPLICATOR_ROLE};
use twin_server::pattern::find_template;
use twin_server::{LocalCloud, ADMIN_ACCESS_KEY};

const HOME: &str = "us-east-1";
const ALLOWED: &str = "us-east-1 us-west-2 eu-west-1 ap-southeast-2";
const SETTLE: Duration = Duration::from_secs(60);

struct Style {
    color: bool,
}

impl Style {
    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    fn bold(&self, s: &str) -> String {
        self.paint("1", s)
    }
    fn dim(&self, s: &str) -> String {
        self.paint("2", s)
    }
    fn green(&self, s: &str) -> String {
        self.paint("32", s)
    }
    fn red(&self, s: &str) -> String {
        self.paint("31", s)
    }
    fn yellow(&self, s: &str) -> String {
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

struct Demo {
    cloud: LocalCloud,
    style: Style,
    alice: BTreeMap<String, aws_sdk_kms::Client>,
    /// The SDK adapter, signing as Alice: what a person reads with `aws kms ...`.
    reader: AwsKms,
    results: Vec<StepResult>,
    checks: usize,
    failed: usize,
    seen_deliveries: usize,
    seen_invocations: usize,
}

fn primary_policy() -> String {
    example_primary_policy(DEFAULT_ACCOUNT)
}

fn tag(k: &str, v: &str) -> SdkTag {
    SdkTag::builder()
        .tag_key(k)
        .tag_value(v)
        .build()
        .expect("key and value")
}

/// `p` relative to the current folder when it is inside it.
fn rel(p: &std::path::Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|d| p.strip_prefix(d).ok().map(|r| r.display().to_string()))
        .unwrap_or_else(|| p.display().to_string())
}

fn short(id: &str) -> String {
    if id.len() > 16 {
        format!("{}…{}", &id[..8], &id[id.len() - 4..])
    } else {
        id.to_string()
    }
}

impl Demo {
    async fn kms(&mut self, region: &str) -> aws_sdk_kms::Client {
        if !self.alice.contains_key(region) {
            let c = self.cloud.kms_client(ADMIN_ACCESS_KEY, region).await;
            self.alice.insert(region.to_string(), c);
        }
        self.alice[region].clone()
    }

    fn say(&self, line: &str) {
        println!("  {line}");
    }

    fn cli(&self, line: &str) {
        println!("  {}", self.style.dim(&format!("$ {line}")));
    }

    fn check(&mut self, ok: bool, what: &str) -> bool {
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
    async fn settle(&mut self) {
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
        let own = new_d
            .iter()
            .filter(|d| d.caller() == REPLICATOR_ROLE)
            .count();
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

    fn begin(&self, n: usize, total: usize, title: &str) -> (Instant, usize, usize) {
        println!();
        println!("{}", self.style.bold(&format!("[{n}/{total}] {title}")));
        (Instant::now(), self.checks, self.failed)
    }

    fn end(&mut self, title: &str, started: (Instant, usize, usize)) {
        let (t, c, f) = started;
        let failed = self.failed - f;
        self.results.push(StepResult {
            title: title.to_string(),
            checks: self.checks - c,
            failed,
            verdict: if failed == 0 {
                Verdict::Pass
            } else {
                Verdict::Fail
            },
            elapsed: t.elapsed(),
        });
    }

    fn skip(&mut self, title: &str, started: (Instant, usize, usize), why: &str) {
        println!("  {} {why}", self.style.yellow("SKIPPED:"));
        self.results.push(StepResult {
            title: title.to_string(),
            checks: 0,
            failed: 0,
            verdict: Verdict::Skipped(why.to_string()),
            elapsed: started.0.elapsed(),
        });
    }

    /// Prints the lines where `replica` differs from `primary` (pretty-printed JSON; a rewrite
    /// changes values only, so the lines correspond one to one).
    fn show_policy_diff(&self, primary: &str, replica: &str) {
        let pretty = |p: &str| {
            serde_json::from_str::<Value>(p)
                .ok()
                .and_then(|v| serde_json::to_string_pretty(&v).ok())
                .unwrap_or_else(|| p.to_string())
        };
        let (a, b) = (pretty(primary), pretty(replica));
        let (a, b): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
        if a.len() != b.len() {
            self.say("      (policy layout differs from the primary's)");
            return;
        }
        for (x, y) in a.iter().zip(&b) {
            if x != y {
                println!("      {}", self.style.red(&format!("- {}", x.trim())));
                println!("      {}", self.style.green(&format!("+ {}", y.trim())));
            }
        }
    }

    /// Reads the key in `region` as a person would and checks it mirrors the primary.
    async fn verify_replica(&mut self, key: &str, region: &str, show_policy: bool) -> bool {
        // The replica names its primary's Region (not always the home Region).
        let primary_region = match self.reader.describe_key(region, key).await {
            Ok(i) => i
                .multi_region
                .map(|m| m.primary_region)
                .unwrap_or_else(|| HOME.into()),
            Err(_) => HOME.into(),
        };
        let read = async {
            let info = self.reader.describe_key(region, key).await?;
            let policy = self.reader.get_key_policy(region, key).await?;
            let mut tags = self.reader.list_resource_tags(region, key).await?;
            // The replicator's own tags (the Regions that held the primary) are not mirrored.
            tags.retain(|t| !is_replicator_tag(&t.key));
            tags.sort();
            let mut aliases: Vec<String> = self
                .reader
                .list_aliases(region, Some(key))
                .await?
                .into_iter()
                .map(|a| a.name)
                .collect();
            aliases.sort();
            let p_policy = self.reader.get_key_policy(&primary_region, key).await?;
            let p_info = self.reader.describe_key(&primary_region, key).await?;
            let mut p_tags = self.reader.list_resource_tags(&primary_region, key).await?;
            p_tags.retain(|t| !is_replicator_tag(&t.key));
            p_tags.sort();
            let mut p_aliases: Vec<String> = self
                .reader
                .list_aliases(&primary_region, Some(key))
                .await?
                .into_iter()
                .map(|a| a.name)
                .collect();
            p_aliases.sort();
            Ok::<_, kms_replicator::port::KmsError>((
                info, policy, tags, aliases, p_info, p_policy, p_tags, p_aliases,
            ))
        };
        let (info, policy, tags, aliases, p_info, p_policy, p_tags, p_aliases) = match read.await {
            Ok(r) => r,
            Err(e) => return self.check(false, &format!("{region}: {e}")),
        };
        let kind = info
            .multi_region
            .as_ref()
            .map(|m| match m.key_type {
                MultiRegionKeyType::Primary => "PRIMARY",
                MultiRegionKeyType::Replica => "REPLICA",
            })
            .unwrap_or("single-Region");
        let expected = rewrite_policy(&p_policy, &primary_region, region)
            .map(|(p, r)| (p, r.len()))
            .unwrap_or_default();
        let tag_list: Vec<String> = tags
            .iter()
            .map(|t| format!("{}={}", t.key, t.value))
            .collect();
        self.say(&format!(
            "{region:<15} {kind} {}  aliases: {}  tags: {}",
            info.state,
            aliases.join(", "),
            tag_list.join(", ")
        ));
        if show_policy && expected.1 > 0 {
            self.say(&format!(
                "    key policy: the primary's, with {} Region tokens rewritten for {region}:",
                expected.1
            ));
            self.show_policy_diff(&p_policy, &policy);
        }
        let ok = kind == "REPLICA"
            && info.state == KeyState::Enabled
            && same_policy(&policy, &expected.0)
            && tags == p_tags
            // Every alias of the primary; aliases made for this Region alone are kept.
            && p_aliases.iter().all(|a| aliases.contains(a))
            && info.description == p_info.description;
        self.check(
            ok,
            &format!(
                "{region} mirrors the primary: policy (rewritten), aliases, tags, description"
            ),
        )
    }

    fn audit_since(&self, from: usize) -> Vec<Value> {
        self.cloud.audit_entries().into_iter().skip(from).collect()
    }
}

async fn run(demo: &mut Demo, has_failover: bool) -> Result<(), String> {
    const TOTAL: usize = 8;

    // ---- 1 ------------------------------------------------------------------------------
    let title = "Alice creates a multi-Region key with a policy and two aliases";
    let s = demo.begin(1, TOTAL, title);
    let kms = demo.kms(HOME).await;
    demo.cli("aws kms create-key --multi-region --policy file://policy.json --description 'payments data key' --tags TagKey=team,TagValue=payments");
    let key = kms
        .create_key()
        .multi_region(true)
        .policy(primary_policy())
        .description("payments data key")
        .tags(tag("team", "payments"))
        .send()
        .await
        .map_err(|e| format!("CreateKey: {e:?}"))?
        .key_metadata
        .ok_or("CreateKey returned no KeyMetadata")?
        .key_id;
    for alias in ["alias/payments", "alias/payments-ledger"] {
        demo.cli(&format!(
            "aws kms create-alias --alias-name {alias} --target-key-id {}",
            short(&key)
        ));
        kms.create_alias()
            .alias_name(alias)
            .target_key_id(&key)
            .send()
            .await
            .map_err(|e| format!("CreateAlias: {e:?}"))?;
    }
    demo.say(&format!("key {key} in {HOME}"));
    demo.settle().await;
    let info = demo
        .reader
        .describe_key(HOME, &key)
        .await
        .map_err(|e| e.to_string())?;
    demo.check(
        info.is_primary()
            && info
                .multi_region
                .as_ref()
                .is_some_and(|m| m.replica_regions.is_empty()),
        "the key is a multi-Region PRIMARY with no replicas yet (untagged keys are left alone)",
    );
    demo.end(title, s);

    // ---- 2 ------------------------------------------------------------------------------
    let title = "Alice tags it for two Regions: replicate-to = \"us-west-2 eu-west-1\"";
    let s = demo.begin(2, TOTAL, title);
    demo.cli(&format!(
        "aws kms tag-resource --key-id {} --tags 'TagKey=replicate-to,TagValue=us-west-2 eu-west-1'",
        short(&key)
    ));
    kms.tag_resource()
        .key_id(&key)
        .tags(tag("replicate-to", "us-west-2 eu-west-1"))
        .send()
        .await
        .map_err(|e| format!("TagResource: {e:?}"))?;
    demo.settle().await;
    demo.verify_replica(&key, "us-west-2", true).await;
    demo.verify_replica(&key, "eu-west-1", false).await;
    // A key of another Region: its events reach the home Region's bus through the forwarder
    // (forwarder.yaml) that runs in every other managed Region.
    let eu = demo.kms("eu-west-1").await;
    demo.cli("aws kms create-key --region eu-west-1 --multi-region --description 'orders data key' --tags TagKey=replicate-to,TagValue=us-west-2");
    let eu_key = eu
        .create_key()
        .multi_region(true)
        .description("orders data key")
        .tags(tag("replicate-to", "us-west-2"))
        .send()
        .await
        .map_err(|e| format!("CreateKey: {e:?}"))?
        .key_metadata
        .ok_or("CreateKey returned no KeyMetadata")?
        .key_id;
    demo.settle().await;
    let forwarded = demo.cloud.deliveries().iter().any(|d| {
        d.region() == "eu-west-1"
            && d.event_name() == "CreateKey"
            && d.forwarded_by
                .as_deref()
                .is_some_and(|f| f.ends_with("@eu-west-1"))
    });
    demo.check(
        forwarded,
        "eu-west-1's CreateKey event reached the home Region through the forwarder",
    );
    demo.verify_replica(&eu_key, "us-west-2", false).await;
    demo.end(title, s);

    // ---- 3 ------------------------------------------------------------------------------
    let title = "Alice changes the primary's policy and renames an alias";
    let s = demo.begin(3, TOTAL, title);
    let v2 = primary_policy().replace("role/payments-app", "role/payments-app-v2");
    demo.cli(&format!(
        "aws kms put-key-policy --key-id {} --policy file://policy-v2.json   # payments-app -> payments-app-v2",
        short(&key)
    ));
    kms.put_key_policy()
        .key_id(&key)
        .policy(&v2)
        .send()
        .await
        .map_err(|e| format!("PutKeyPolicy: {e:?}"))?;
    demo.cli("aws kms delete-alias --alias-name alias/payments-ledger");
    kms.delete_alias()
        .alias_name("alias/payments-ledger")
        .send()
        .await
        .map_err(|e| format!("DeleteAlias: {e:?}"))?;
    demo.cli(&format!(
        "aws kms create-alias --alias-name alias/ledger --target-key-id {}",
        short(&key)
    ));
    kms.create_alias()
        .alias_name("alias/ledger")
        .target_key_id(&key)
        .send()
        .await
        .map_err(|e| format!("CreateAlias: {e:?}"))?;
    demo.settle().await;
    for region in ["us-west-2", "eu-west-1"] {
        demo.verify_replica(&key, region, false).await;
        let p = demo
            .reader
            .get_key_policy(region, &key)
            .await
            .unwrap_or_default();
        demo.check(
            p.contains("payments-app-v2"),
            &format!("{region}: the new policy statement is there"),
        );
    }
    demo.end(title, s);

    // ---- 4 ------------------------------------------------------------------------------
    let title = "Alice adds ap-southeast-2 and removes eu-west-1";
    let s = demo.begin(4, TOTAL, title);
    demo.cli(&format!(
        "aws kms tag-resource --key-id {} --tags 'TagKey=replicate-to,TagValue=us-west-2 ap-southeast-2'",
        short(&key)
    ));
    kms.tag_resource()
        .key_id(&key)
        .tags(tag("replicate-to", "us-west-2 ap-southeast-2"))
        .send()
        .await
        .map_err(|e| format!("TagResource: {e:?}"))?;
    demo.settle().await;
    demo.verify_replica(&key, "ap-southeast-2", false).await;
    let eu = demo.reader.describe_key("eu-west-1", &key).await;
    let eu_state = eu.as_ref().map(|i| i.state).ok();
    demo.say(&format!(
        "{:<15} REPLICA {}  (REMOVAL_POLICY=ScheduleDeletion, PENDING_WINDOW_DAYS=7)",
        "eu-west-1",
        eu_state
            .map(|s| s.to_string())
            .unwrap_or_else(|| "?".into())
    ));
    demo.check(
        eu_state == Some(KeyState::PendingDeletion),
        "eu-west-1's replica is scheduled for deletion, the others are untouched",
    );
    demo.verify_replica(&key, "us-west-2", false).await;
    demo.end(title, s);

    // ---- 5 ------------------------------------------------------------------------------
    let title = "Guardrails: a single-Region key, and a Region outside ALLOWED_REGIONS";
    let s = demo.begin(5, TOTAL, title);
    let audit_before = demo.cloud.audit_entries().len();
    demo.cli("aws kms create-key --description 'not multi-Region' --tags 'TagKey=replicate-to,TagValue=us-west-2'");
    let single = kms
        .create_key()
        .description("not multi-Region")
        .tags(tag("replicate-to", "us-west-2"))
        .send()
        .await
        .map_err(|e| format!("CreateKey: {e:?}"))?
        .key_metadata
        .ok_or("no KeyMetadata")?
        .key_id;
    demo.cli(&format!(
        "aws kms tag-resource --key-id {} --tags 'TagKey=replicate-to,TagValue=us-west-2 ap-southeast-2 sa-east-1'",
        short(&key)
    ));
    kms.tag_resource()
        .key_id(&key)
        .tags(tag("replicate-to", "us-west-2 ap-southeast-2 sa-east-1"))
        .send()
        .await
        .map_err(|e| format!("TagResource: {e:?}"))?;
    demo.settle().await;
    let invocations = demo.cloud.invocations();
    // Tagged at CreateKey, so the record is acted on; the sync finds a single-Region key.
    let single_outcome = invocations
        .iter()
        .filter(|i| i.trigger.starts_with("CreateKey"))
        .filter_map(|i| i.result.as_ref().ok())
        .filter_map(|r| {
            r["report"]["reason"]
                .as_str()
                .or_else(|| r["reason"].as_str())
                .map(str::to_string)
        })
        .find(|reason| reason.contains("single-Region"));
    if let Some(reason) = &single_outcome {
        demo.say(&format!("single-Region key {}: {reason}", short(&single)));
    }
    demo.check(
        single_outcome.is_some()
            && demo
                .reader
                .describe_key("us-west-2", &single)
                .await
                .is_err(),
        "the single-Region key is reported as impossible to replicate, and nothing is written",
    );
    let skipped: Vec<Value> = demo
        .audit_since(audit_before)
        .into_iter()
        .filter(|e| e["detail-type"] == "Replication Skipped")
        .collect();
    if let Some(e) = skipped.first() {
        demo.say(&format!(
            "audit \"Replication Skipped\" for {}: {}",
            e["detail"]["region"].as_str().unwrap_or("?"),
            e["detail"]["outcome"]["reason"].as_str().unwrap_or("")
        ));
    }
    let nothing_there = demo.reader.describe_key("sa-east-1", &key).await.is_err();
    demo.check(
        !skipped.is_empty()
            && skipped.iter().all(|e| e["detail"]["region"] == "sa-east-1")
            && nothing_there,
        "sa-east-1 is not in ALLOWED_REGIONS: reported in the audit trail, never written to",
    );
    demo.end(title, s);

    // ---- 6, 7 ---------------------------------------------------------------------------
    let title = "On-call: failover dry run";
    let s = demo.begin(6, TOTAL, title);
    if !has_failover {
        demo.skip(
            title,
            s,
            "the failover function is not built (functions/failover)",
        );
        let title = "On-call: promote the us-west-2 replica";
        let s = demo.begin(7, TOTAL, title);
        demo.skip(
            title,
            s,
            "the failover function is not built (functions/failover)",
        );
    } else {
        let input = json!({"key": "alias/payments", "to": "us-west-2", "dryRun": true});
        demo.cli(&format!(
            "aws lambda invoke --function-name failover --payload '{input}' out.json"
        ));
        let writes_before = demo.cloud.twin().calls().len();
        let report = demo.cloud.invoke("failover", &input).await;
        match &report {
            Ok(r) => {
                demo.say(&format!(
                    "summary: {}",
                    r["summary"].as_str().unwrap_or("?")
                ));
                for c in r["keys"][0]["checks"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                {
                    demo.say(&demo.style.dim(&format!(
                        "  {} {}: {}",
                        if c["passed"] == true { "✔" } else { "✘" },
                        c["name"].as_str().unwrap_or(""),
                        c["detail"].as_str().unwrap_or("")
                    )));
                }
            }
            Err(e) => demo.say(&format!("error: {e}")),
        }
        let writes: Vec<String> = demo.cloud.twin().calls()[writes_before..]
            .iter()
            .filter(|c| c.op.is_write())
            .map(|c| c.op.to_string())
            .collect();
        let still = demo
            .reader
            .describe_key(HOME, &key)
            .await
            .map(|i| i.is_primary())
            .unwrap_or(false);
        demo.check(
            report
                .as_ref()
                .is_ok_and(|r| r["keys"][0]["outcome"] == "dry_run_ok")
                && writes.is_empty()
                && still,
            "dry run: every check passes, nothing is written, the primary stays in us-east-1",
        );
        demo.end(title, s);

        let title = "On-call: promote the us-west-2 replica";
        let s = demo.begin(7, TOTAL, title);
        let input = json!({"key": "alias/payments", "to": "us-west-2"});
        demo.cli(&format!(
            "aws lambda invoke --function-name failover --payload '{input}' out.json"
        ));
        let report = demo.cloud.invoke("failover", &input).await;
        match &report {
            Ok(r) => {
                let k = &r["keys"][0];
                demo.say(&format!(
                    "summary: {}",
                    r["summary"].as_str().unwrap_or("?")
                ));
                demo.say(&format!(
                    "primary: {} → {}; outcome {}; {} ms",
                    k["primaryRegionBefore"].as_str().unwrap_or("?"),
                    k["primaryRegionAfter"].as_str().unwrap_or("?"),
                    k["outcome"].as_str().unwrap_or("?"),
                    k["durationMs"]
                ));
                for c in k["checks"].as_array().cloned().unwrap_or_default() {
                    if c["name"] == "new_primary_reported"
                        || c["name"]
                            .as_str()
                            .unwrap_or("")
                            .contains("new_primary_region")
                        || c["passed"] != true
                    {
                        demo.say(&demo.style.dim(&format!(
                            "  {} {}: {}",
                            if c["passed"] == true { "✔" } else { "✘" },
                            c["name"].as_str().unwrap_or(""),
                            c["detail"].as_str().unwrap_or("")
                        )));
                    }
                }
            }
            Err(e) => demo.say(&format!("error: {e}")),
        }
        demo.settle().await;
        let west = demo.reader.describe_key("us-west-2", &key).await.ok();
        let east = demo.reader.describe_key(HOME, &key).await.ok();
        demo.check(
            report
                .as_ref()
                .is_ok_and(|r| r["keys"][0]["outcome"] == "promoted")
                && west
                    .as_ref()
                    .is_some_and(|w| w.is_primary() && w.state == KeyState::Enabled)
                && east.as_ref().is_some_and(|e| !e.is_primary()),
            "us-west-2 is now the PRIMARY (Enabled); us-east-1 is a replica",
        );
        demo.verify_replica(&key, HOME, false).await;
        demo.verify_replica(&key, "ap-southeast-2", false).await;
        let west_kms = demo.kms("us-west-2").await;
        demo.cli(&format!(
            "aws kms update-key-description --region us-west-2 --key-id {} --description 'payments data key (primary in us-west-2)'",
            short(&key)
        ));
        west_kms
            .update_key_description()
            .key_id(&key)
            .description("payments data key (primary in us-west-2)")
            .send()
            .await
            .map_err(|e| format!("UpdateKeyDescription: {e:?}"))?;
        demo.settle().await;
        let mut all = true;
        for region in [HOME, "ap-southeast-2"] {
            let d = demo
                .reader
                .describe_key(region, &key)
                .await
                .map(|i| i.description)
                .unwrap_or_default();
            all &= d == "payments data key (primary in us-west-2)";
        }
        demo.check(
            all,
            "a change at the new primary (us-west-2, through its forwarder) reaches every replica",
        );
        demo.end(title, s);
    }

    // ---- 8 ------------------------------------------------------------------------------
    let title = "The audit events the functions published (EventBridge PutEvents)";
    let s = demo.begin(8, TOTAL, title);
    let audit = demo.cloud.audit_entries();
    demo.say(&demo.style.bold(&format!(
        "{:<32} {:<15} {:<22} {}",
        "detail-type", "region", "trigger", "what"
    )));
    for e in &audit {
        let d = &e["detail"];
        let what = if let Some(actions) = d["actions"].as_array() {
            let ops: Vec<&str> = actions.iter().filter_map(|a| a["op"].as_str()).collect();
            let rewrites = d["policyRewrites"].as_array().map(|r| r.len()).unwrap_or(0);
            let mut w = if ops.is_empty() {
                d["outcome"]["reason"].as_str().unwrap_or("").to_string()
            } else {
                ops.join(" ")
            };
            if rewrites > 0
                && ops
                    .iter()
                    .any(|o| *o == "ReplicateKey" || *o == "PutKeyPolicy")
            {
                w.push_str(&format!(" ({rewrites} policy rewrites)"));
            }
            w
        } else if d["primaryRegionBefore"].is_string() {
            format!(
                "{} → {} ({})",
                d["primaryRegionBefore"].as_str().unwrap_or("?"),
                d["primaryRegionAfter"].as_str().unwrap_or("?"),
                d["outcome"].as_str().unwrap_or("?")
            )
        } else {
            d["outcome"]["reason"].as_str().unwrap_or("").to_string()
        };
        let what: String = what.chars().take(70).collect();
        demo.say(&format!(
            "{:<32} {:<15} {:<22} {what}",
            e["detail-type"].as_str().unwrap_or("?"),
            d["region"]
                .as_str()
                .or_else(|| d["to"].as_str())
                .unwrap_or("-"),
            d["trigger"]["eventName"].as_str().unwrap_or("-"),
        ));
    }
    let count = |t: &str| audit.iter().filter(|e| e["detail-type"] == t).count();
    demo.check(
        count("Replica Created") == 4,
        "\"Replica Created\" for us-west-2, eu-west-1 and ap-southeast-2, and for the eu-west-1 key's us-west-2",
    );
    demo.check(
        count("Replica Synced") >= 2,
        "\"Replica Synced\" for the mirrored changes",
    );
    demo.check(
        count("Replica Scheduled For Deletion") == 1,
        "\"Replica Scheduled For Deletion\" for eu-west-1",
    );
    if has_failover {
        demo.check(
            count("Primary Region Updated") == 1,
            "\"Primary Region Updated\" for the failover",
        );
    }
    demo.check(
        demo.cloud.dead_letters().is_empty(),
        "no event ended in the dead-letter queue",
    );
    demo.end(title, s);
    Ok(())
}

#[tokio::main]
async fn main() {
    let mut template: Option<PathBuf> = None;
    let mut bin_dir: Option<PathBuf> = None;
    let mut color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--template" => template = args.next().map(PathBuf::from),
            "--bin-dir" => bin_dir = args.next().map(PathBuf::from),
            "--no-color" => color = false,
            _ => {
                eprintln!("usage: kms-demo [--template template.yaml] [--bin-dir target/release] [--no-color]");
                std::process::exit(2);
            }
        }
    }
    let style = Style { color };
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(PathBuf::from))
        .unwrap_or_default();
    let bin_dir = bin_dir.unwrap_or_else(|| exe_dir.clone());
    let template = template
        .or_else(|| find_template(&std::env::current_dir().unwrap_or_default()))
        .or_else(|| find_template(&exe_dir));
    let Some(template) = template else {
        eprintln!("kms-demo: template.yaml not found; run from the repository or pass --template");
        std::process::exit(2);
    };
    let replicate = bin_dir.join("replicate");
    if !replicate.is_file() {
        eprintln!(
            "kms-demo: {} not found; build it first: cargo build --release -p replicate",
            replicate.display()
        );
        std::process::exit(2);
    }
    let failover = bin_dir.join("failover");
    let has_failover = failover.is_file();
    let log_dir = exe_dir
        .parent()
        .map(|t| t.join("kms-demo"))
        .unwrap_or_else(|| std::env::temp_dir().join("kms-demo"));
    let _ = std::fs::remove_dir_all(&log_dir);

    let mut builder = LocalCloud::builder()
        .template(&template)
        .function("replicate", &replicate)
        .env("ALLOWED_REGIONS", ALLOWED)
        .env("REMOVAL_POLICY", "ScheduleDeletion")
        .env("PENDING_WINDOW_DAYS", "7")
        .env("IGNORE_CALLER_ARNS", REPLICATOR_ROLE)
        .log_dir(&log_dir)
        .retry_delay(Duration::from_millis(500))
        .timeout(Duration::from_secs(60));
    if has_failover {
        builder = builder.function("failover", &failover);
    }
    let cloud = match builder.start().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kms-demo: the local cloud did not start: {e}");
            std::process::exit(1);
        }
    };
    // As in KMS, promotion takes a moment: both keys are Updating for a second.
    cloud.twin().set_updating_for(Duration::from_millis(1000));
    let reader = AwsKms::new(&cloud.sdk_config(ADMIN_ACCESS_KEY, HOME).await);

    println!(
        "{}",
        style.bold("KMS multi-Region key replicator: the user journeys, locally")
    );
    println!(
        "  KMS twin + EventBridge on {} (account {DEFAULT_ACCOUNT}); the functions reach it through AWS_ENDPOINT_URL",
        cloud.endpoint()
    );
    println!(
        "  functions: replicate{} from {} (logs: {})",
        if has_failover { ", failover" } else { "" },
        rel(&bin_dir),
        rel(&log_dir)
    );
    let health = twin_server::client::get_json(cloud.endpoint(), "/_twin/health")
        .await
        .unwrap_or_default();
    for r in health["rules"].as_array().cloned().unwrap_or_default() {
        let names = r["pattern"]["detail"]["eventName"]
            .as_array()
            .map(|a| a.len())
            .unwrap_or(0);
        println!(
            "  rule {} from {}: aws.kms CloudTrail calls, {names} event names, no errorCode → {} (retries: {})",
            r["name"].as_str().unwrap_or("?"),
            rel(&template),
            r["function"].as_str().unwrap_or("?"),
            r["maximumRetryAttempts"]
        );
    }
    println!("  config: ALLOWED_REGIONS=\"{ALLOWED}\" REMOVAL_POLICY=ScheduleDeletion IGNORE_CALLER_ARNS=<the replicator's role>");

    let mut demo = Demo {
        cloud,
        style,
        alice: BTreeMap::new(),
        reader,
        results: Vec::new(),
        checks: 0,
        failed: 0,
        seen_deliveries: 0,
        seen_invocations: 0,
    };
    let started = Instant::now();
    let outcome = run(&mut demo, has_failover).await;
    if let Err(e) = &outcome {
        println!("  {} {e}", demo.style.red("✘ stopped:"));
    }

    println!();
    println!("{}", demo.style.bold("Summary"));
    println!(
        "  {:<4} {:<72} {:>6} {:>8}",
        "step", "journey", "checks", "time"
    );
    for (i, r) in demo.results.iter().enumerate() {
        let verdict = match &r.verdict {
            Verdict::Pass => demo.style.green("PASS"),
            Verdict::Fail => demo.style.red("FAIL"),
            Verdict::Skipped(_) => demo.style.yellow("SKIP"),
        };
        println!(
            "  {:<4} {:<72} {:>6} {:>6} ms  {verdict}",
            i + 1,
            r.title,
            format!("{}/{}", r.checks - r.failed, r.checks),
            r.elapsed.as_millis()
        );
    }
    let deliveries = demo.cloud.deliveries();
    let invocations = demo.cloud.invocations();
    println!(
        "  pipeline: {} CloudTrail events, {} matched the rule, {} function invocations ({} failed), {} dead letters; {} ms in all",
        deliveries.len(),
        deliveries.iter().filter(|d| !d.matched.is_empty()).count(),
        invocations.len(),
        invocations.iter().filter(|i| i.result.is_err()).count(),
        demo.cloud.dead_letters().len(),
        started.elapsed().as_millis()
    );
    let skipped = demo
        .results
        .iter()
        .filter(|r| matches!(r.verdict, Verdict::Skipped(_)))
        .count();
    let ok = outcome.is_ok()
        && demo.failed == 0
        && demo.results.iter().all(|r| r.verdict != Verdict::Fail);
    if ok {
        println!(
            "  {} {} checks passed{}",
            demo.style.green("OK:"),
            demo.checks,
            if skipped > 0 {
                format!(", {skipped} steps skipped")
            } else {
                String::new()
            }
        );
    } else {
        println!(
            "  {} {} of {} checks failed; the functions' logs are in {}",
            demo.style.red("FAILED:"),
            demo.failed,
            demo.checks,
            rel(&log_dir)
        );
    }
    demo.cloud.shutdown();
    tokio::time::sleep(Duration::from_millis(100)).await;
    std::process::exit(if ok { 0 } else { 1 });
}
