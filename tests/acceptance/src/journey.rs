//! The user journeys, one function per step, as a person and the on-call person make them:
//! create a uniquely named key, tag it, wait for the replicas and check what they mirror, edit
//! the primary's policy, take a Region out of the tag (with `RemovalPolicy=ScheduleDeletion`),
//! dry-run a failover, promote. The person's calls use the profile's credentials; the on-call
//! steps invoke the deployed failover function. A step that fails stops the journeys (each
//! needs what the one before made); cleanup runs after them whatever happened (`run.rs`).

use crate::access::Denial;
use crate::cloud::{tag, CallError, Cloud, Invoked, KeyView};
use crate::expect::{self, Mirrored, MARK_TAG};
use crate::ledger::Ledger;
use crate::report::{Journal, Problem, Step};
use crate::settings::{RemovalPolicy, Settings};
use crate::wait::{self, secs, Probe};
use serde_json::{json, Value};
use std::future::Future;
use std::time::Duration;

/// What the journeys share.
pub struct Ctx {
    pub settings: Settings,
    pub cloud: Cloud,
    pub ledger: Ledger,
    pub journal: Journal,
    pub run_id: String,
    /// Where the primary is made and the stack runs.
    pub home: String,
    pub failover: String,
}

/// The key the journeys made.
#[derive(Debug, Clone)]
pub struct TestKey {
    pub id: String,
    pub arn: String,
    pub account: String,
}

/// A step failed: the journeys stop.
struct Stopped;

impl Ctx {
    async fn step<T>(
        &self,
        step: Step,
        work: impl Future<Output = Result<T, Problem>>,
    ) -> Result<T, Stopped> {
        self.journal.start(step);
        match work.await {
            Ok(v) => {
                self.journal.finish(Ok(()));
                Ok(v)
            }
            Err(p) => {
                self.journal.finish(Err(p));
                Err(Stopped)
            }
        }
    }

    fn saw(&self, line: impl Into<String>) {
        self.journal.saw(line);
    }

    async fn wait_for<T, F, Fut>(&self, probe: F) -> Result<(T, Duration), wait::WaitError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Probe<T>>,
    {
        wait::until(&self.journal, self.settings.wait, self.settings.poll, probe).await
    }
}

/// Every journey step, in order, until one fails.
pub async fn journeys(ctx: &Ctx) {
    let _ = steps(ctx).await;
}

async fn steps(ctx: &Ctx) -> Result<(), Stopped> {
    let key = ctx.step(Step::CreateKey, create_key(ctx)).await?;
    let regions = ctx.settings.replica_regions.clone();
    ctx.step(Step::Tag, tag_for(ctx, &key, &regions)).await?;
    ctx.step(Step::ReplicasCreated, replicas_created(ctx, &key, &regions))
        .await?;
    ctx.step(
        Step::ReplicasMirrorThePrimary,
        replicas_mirror(ctx, &key, &regions, false),
    )
    .await?;
    ctx.step(Step::PolicyEdit, policy_edit(ctx, &key, &regions))
        .await?;
    let regions = match removal_plan(&ctx.settings) {
        Ok((kept, removed)) => {
            ctx.step(
                Step::RegionRemoval,
                region_removal(ctx, &key, &kept, &removed),
            )
            .await?;
            kept
        }
        Err(why) => {
            ctx.journal.skip(Step::RegionRemoval, why);
            regions
        }
    };
    let target = &regions[0];
    ctx.step(Step::FailoverDryRun, failover_dry_run(ctx, &key, target))
        .await?;
    ctx.step(Step::Promotion, promotion(ctx, &key, target))
        .await?;
    Ok(())
}

async fn create_key(ctx: &Ctx) -> Result<TestKey, Problem> {
    let home = &ctx.home;
    let kms = ctx.cloud.kms(home);
    let out = kms
        .create_key()
        .multi_region(true)
        .description(expect::description(&ctx.run_id))
        .tags(tag(MARK_TAG, &ctx.run_id))
        .send()
        .await
        .map_err(|e| CallError::of(format!("kms:CreateKey in {home}"), e))?;
    let meta = out
        .key_metadata()
        .ok_or_else(|| Problem::new("CreateKey answered without KeyMetadata"))?;
    let id = meta.key_id().to_string();
    let arn = meta.arn().unwrap_or_default().to_string();
    ctx.ledger.key(&id, &arn, home);
    let account = meta
        .aws_account_id()
        .map(str::to_string)
        .or_else(|| arn.split(':').nth(4).map(str::to_string))
        .ok_or_else(|| Problem::new("CreateKey's answer names no account"))?;
    ctx.saw(format!(
        "made {arn} (multi-Region primary) in account {account}, tagged {MARK_TAG}={}",
        ctx.run_id
    ));
    let policy = expect::key_policy(&account, home, false);
    kms.put_key_policy()
        .key_id(&id)
        .policy_name("default")
        .policy(policy.to_string())
        .send()
        .await
        .map_err(|e| CallError::of(format!("kms:PutKeyPolicy in {home}"), e))?;
    ctx.saw(format!(
        "set its policy: the account-root statement, and use through s3.{home}.amazonaws.com"
    ));
    let alias = expect::alias(&ctx.run_id);
    ctx.ledger.alias(&alias);
    kms.create_alias()
        .alias_name(&alias)
        .target_key_id(&id)
        .send()
        .await
        .map_err(|e| CallError::of(format!("kms:CreateAlias in {home}"), e))?;
    ctx.saw(format!("made {alias} for it"));
    Ok(TestKey { id, arn, account })
}

async fn tag_for(ctx: &Ctx, key: &TestKey, regions: &[String]) -> Result<(), Problem> {
    let value = regions.join(" ");
    let tag_key = &ctx.settings.tag_key;
    ctx.cloud
        .kms(&ctx.home)
        .tag_resource()
        .key_id(&key.id)
        .tags(tag(tag_key, &value))
        .send()
        .await
        .map_err(|e| CallError::of(format!("kms:TagResource in {}", ctx.home), e))?;
    ctx.saw(format!("tagged {tag_key}=\"{value}\""));
    Ok(())
}

/// A look at one Region's key that waits through what can pass (not there yet, throttling, a
/// Region slow to answer) and stops at what cannot (AccessDenied).
fn look<T>(
    region: &str,
    r: Result<T, CallError>,
    notes: &mut Vec<String>,
) -> Result<Option<T>, Problem> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_access_denied() => Err(Problem::from(e)),
        Err(e) => {
            notes.push(format!("{region}: {e}"));
            Ok(None)
        }
    }
}

async fn replicas_created(ctx: &Ctx, key: &TestKey, regions: &[String]) -> Result<(), Problem> {
    let home = ctx.home.as_str();
    let waited = ctx
        .wait_for(|| async move {
            let mut not_yet = Vec::new();
            for region in regions {
                let view = match look(
                    region,
                    ctx.cloud.describe(region, &key.id).await,
                    &mut not_yet,
                ) {
                    Ok(v) => v,
                    Err(p) => return Probe::Failed(p),
                };
                match view {
                    Some(Some(v)) => {
                        ctx.ledger.key_seen_in(region);
                        if !(v.is_replica_of(home) && v.is_enabled()) {
                            not_yet.push(format!(
                                "{region}: {} {}",
                                v.kind.as_deref().unwrap_or("single-Region"),
                                v.state
                            ));
                        }
                    }
                    Some(None) => not_yet.push(format!("{region}: no key {} yet", key.id)),
                    None => {}
                }
            }
            if not_yet.is_empty() {
                Probe::Done(())
            } else {
                Probe::NotYet(not_yet.join("; "))
            }
        })
        .await;
    match waited {
        Ok(((), took)) => {
            ctx.saw(format!(
                "a replica of {} with its primary in {home}, Enabled, in {} after {}",
                key.id,
                regions.join(" and "),
                secs(took)
            ));
            Ok(())
        }
        Err(e) => Err(explain_wait(ctx, key, e.problem("a replica in each Region")).await),
    }
}

async fn mirrored(cloud: &Cloud, region: &str, key_id: &str) -> Result<Mirrored, CallError> {
    Ok(Mirrored {
        policy: cloud.policy(region, key_id).await?,
        aliases: cloud.aliases(region, key_id).await?,
        tags: cloud.tags(region, key_id).await?,
        description: cloud
            .describe(region, key_id)
            .await?
            .map(|v| v.description)
            .unwrap_or_default(),
    })
}

/// Waits until every replica in `regions` mirrors the primary; `edited`: the policy after the
/// policy edit step.
async fn replicas_mirror(
    ctx: &Ctx,
    key: &TestKey,
    regions: &[String],
    edited: bool,
) -> Result<(), Problem> {
    let primary = mirrored(&ctx.cloud, &ctx.home, &key.id)
        .await
        .map_err(Problem::from)?;
    let expected = expect::key_policy(&key.account, &ctx.home, edited);
    if serde_json::from_str::<Value>(&primary.policy).ok().as_ref() != Some(&expected) {
        return Err(Problem::new(format!(
            "the primary's policy is not the one this run set (someone changed it?): {}",
            primary.policy
        )));
    }
    let primary = &primary;
    let waited = ctx
        .wait_for(|| async move {
            let mut off = Vec::new();
            for region in regions {
                let m = match look(
                    region,
                    mirrored(&ctx.cloud, region, &key.id).await,
                    &mut off,
                ) {
                    Ok(m) => m,
                    Err(p) => return Probe::Failed(p),
                };
                if let Some(m) = m {
                    let d = expect::differences(
                        primary,
                        &m,
                        &expect::key_policy(&key.account, region, edited),
                    );
                    if !d.is_empty() {
                        off.push(format!("{region}: {}", d.join("; ")));
                    }
                }
            }
            if off.is_empty() {
                Probe::Done(())
            } else {
                Probe::NotYet(off.join(" | "))
            }
        })
        .await;
    match waited {
        Ok(((), took)) => {
            for region in regions {
                let services = if edited {
                    format!("s3.{region}.amazonaws.com and secretsmanager.{region}.amazonaws.com")
                } else {
                    format!("s3.{region}.amazonaws.com")
                };
                ctx.saw(format!(
                    "{region}: the policy with {services}, aliases {:?}, {} tag(s) and the \
                     description, as the primary's",
                    primary.aliases,
                    primary.tags.len(),
                ));
            }
            ctx.saw(format!("mirrored after {}", secs(took)));
            Ok(())
        }
        Err(e) => Err(explain_wait(ctx, key, e.problem("every replica mirrors the primary")).await),
    }
}

async fn policy_edit(ctx: &Ctx, key: &TestKey, regions: &[String]) -> Result<(), Problem> {
    let policy = expect::key_policy(&key.account, &ctx.home, true);
    ctx.cloud
        .kms(&ctx.home)
        .put_key_policy()
        .key_id(&key.id)
        .policy_name("default")
        .policy(policy.to_string())
        .send()
        .await
        .map_err(|e| CallError::of(format!("kms:PutKeyPolicy in {}", ctx.home), e))?;
    ctx.saw(format!(
        "added a statement for use through secretsmanager.{}.amazonaws.com to the primary's policy",
        ctx.home
    ));
    replicas_mirror(ctx, key, regions, true).await
}

/// The Regions kept and the one taken out, or why the step does not apply.
fn removal_plan(s: &Settings) -> Result<(Vec<String>, String), String> {
    if s.removal == RemovalPolicy::Retain {
        return Err(
            "the stack's RemovalPolicy is Retain (as told by --removal-policy, Retain by default): a \
             Region taken out of the tag is only no longer managed, and its replica stays"
                .into(),
        );
    }
    match s.replica_regions.split_last() {
        Some((removed, kept)) if !kept.is_empty() => Ok((kept.to_vec(), removed.clone())),
        _ => {
            Err("needs two replica Regions: one to take out of the tag, one to fail over to".into())
        }
    }
}

async fn region_removal(
    ctx: &Ctx,
    key: &TestKey,
    kept: &[String],
    removed: &str,
) -> Result<(), Problem> {
    tag_for(ctx, key, kept).await?;
    ctx.saw(format!("{removed} is out of the tag"));
    let waited = ctx
        .wait_for(|| async move {
            let mut notes = Vec::new();
            match look(
                removed,
                ctx.cloud.describe(removed, &key.id).await,
                &mut notes,
            ) {
                Err(p) => Probe::Failed(p),
                Ok(Some(Some(v))) if v.is_pending_deletion() => Probe::Done(v),
                Ok(Some(Some(v))) => Probe::NotYet(format!("{removed}: {}", v.state)),
                Ok(Some(None)) => {
                    Probe::Failed(Problem::new(format!("{removed}: the replica is gone")))
                }
                Ok(None) => Probe::NotYet(notes.join("; ")),
            }
        })
        .await;
    let (v, took) = match waited {
        Ok(v) => v,
        Err(e) => {
            return Err(explain_wait(
                ctx,
                key,
                e.problem(&format!("the replica in {removed} pending deletion")),
            )
            .await)
        }
    };
    ctx.saw(format!(
        "{removed}: {} (deletion on {}) after {}, as RemovalPolicy=ScheduleDeletion says",
        v.state,
        v.deletion_date
            .as_deref()
            .unwrap_or("a date KMS did not show"),
        secs(took)
    ));
    for region in kept {
        match ctx
            .cloud
            .describe(region, &key.id)
            .await
            .map_err(Problem::from)?
        {
            Some(v) if v.is_enabled() => ctx.saw(format!("{region}: still Enabled")),
            other => {
                return Err(Problem::new(format!(
                    "{region} is still in the tag, but its replica is {}",
                    other.map(|v| v.state).unwrap_or_else(|| "gone".into())
                )))
            }
        }
    }
    Ok(())
}

/// The failover function's answer for the one key asked about: its outcome, and a problem
/// that quotes what the function said when it is not `expected`.
fn key_outcome(inv: &Invoked, expected: &str) -> Result<Value, Problem> {
    if let Some(kind) = &inv.function_error {
        return Err(Problem::new(format!(
            "the failover function failed ({kind}): {}: {}",
            inv.answer["errorType"].as_str().unwrap_or("?"),
            inv.answer["errorMessage"]
                .as_str()
                .unwrap_or(&inv.answer.to_string())
        ))
        .with_denials(Denial::all_in(&inv.answer)));
    }
    let k = inv.answer["keys"][0].clone();
    let outcome = k["outcome"].as_str().unwrap_or("");
    if outcome == expected {
        return Ok(k);
    }
    let reason = k["reason"]
        .as_str()
        .or(inv.answer["summary"].as_str())
        .unwrap_or("");
    // A failed check whose words the reason already quotes adds nothing.
    let failed: Vec<String> = k["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["passed"] == false)
        .filter(|c| !reason.contains(c["detail"].as_str().unwrap_or("")))
        .map(|c| {
            format!(
                "{}: {}",
                c["name"].as_str().unwrap_or("?"),
                c["detail"].as_str().unwrap_or("")
            )
        })
        .collect();
    let outcome = if outcome.is_empty() {
        "no outcome"
    } else {
        outcome
    };
    let checks = if failed.is_empty() {
        String::new()
    } else {
        format!(" (failed checks: {})", failed.join("; "))
    };
    Err(Problem::new(format!(
        "the failover function answered {outcome} instead of {expected}: {reason}{checks}"
    ))
    .with_denials(Denial::all_in(&inv.answer)))
}

async fn failover_dry_run(ctx: &Ctx, key: &TestKey, target: &str) -> Result<(), Problem> {
    let request = json!({"key": key.arn, "to": target, "dryRun": true});
    let inv = ctx.cloud.invoke(&ctx.failover, &request).await?;
    let k = key_outcome(&inv, "dry_run_ok")?;
    ctx.saw(format!("invoked {} with {request}", ctx.failover));
    ctx.saw(inv.answer["summary"].as_str().unwrap_or("").to_string());
    let checks = k["checks"].as_array().map(Vec::len).unwrap_or(0);
    ctx.saw(format!("{checks} check(s) passed"));
    match ctx.cloud.describe(&ctx.home, &key.id).await? {
        Some(v) if v.is_primary() => {
            ctx.saw(format!(
                "the primary is still in {}: the dry run wrote nothing",
                ctx.home
            ));
            Ok(())
        }
        other => Err(Problem::new(format!(
            "after a dry run, {} no longer holds the primary: {other:?}",
            ctx.home
        ))),
    }
}

async fn promotion(ctx: &Ctx, key: &TestKey, target: &str) -> Result<(), Problem> {
    let request = json!({"key": key.arn, "to": target});
    let inv = ctx.cloud.invoke(&ctx.failover, &request).await?;
    ctx.saw(format!("invoked {} with {request}", ctx.failover));
    key_outcome(&inv, "promoted")?;
    ctx.saw(inv.answer["summary"].as_str().unwrap_or("").to_string());
    let home = ctx.home.as_str();
    let waited = ctx
        .wait_for(|| async move {
            let mut notes = Vec::new();
            let new = look(
                target,
                ctx.cloud.describe(target, &key.id).await,
                &mut notes,
            );
            let old = look(home, ctx.cloud.describe(home, &key.id).await, &mut notes);
            match (new, old) {
                (Err(p), _) | (_, Err(p)) => Probe::Failed(p),
                (Ok(Some(Some(n))), Ok(Some(Some(o))))
                    if n.is_primary() && n.is_enabled() && o.is_replica_of(target) =>
                {
                    Probe::Done(())
                }
                (Ok(n), Ok(o)) => {
                    let show = |r: &str, v: Option<Option<KeyView>>| match v {
                        Some(Some(v)) => format!("{r}: {} {}", v.kind.unwrap_or_default(), v.state),
                        Some(None) => format!("{r}: no key"),
                        None => String::new(),
                    };
                    notes.push(show(target, n));
                    notes.push(show(home, o));
                    notes.retain(|n| !n.is_empty());
                    Probe::NotYet(notes.join("; "))
                }
            }
        })
        .await;
    match waited {
        Ok(((), took)) => {
            ctx.saw(format!(
                "{target} holds the primary (Enabled) and {home} a replica, {} after the answer",
                secs(took)
            ));
            Ok(())
        }
        Err(e) => Err(e.problem(&format!("{target} reports PRIMARY and Enabled"))),
    }
}

/// A wait for the replicator ran out. The reconcile function tells a missing event from a
/// missing permission: its plan for the key (no writes) says what is still to do, and a repair
/// of this key only (the one the run made) either makes it, so the permissions that reconcile
/// shares with replicate work and the event never reached the replicate function, or fails
/// with KMS's refusal, which the report reads out.
async fn explain_wait(ctx: &Ctx, key: &TestKey, p: Problem) -> Problem {
    let mut p = p;
    match &ctx.settings.reconcile_function {
        Some(f) => {
            let plan = reconcile(ctx, f, "plan", json!({"dryRun": true, "keys": [key.arn]})).await;
            p = p.with_denials(plan.denials);
            if plan.changes > 0 {
                let repair = reconcile(ctx, f, "repair", json!({"keys": [key.arn]})).await;
                p = p.with_denials(repair.denials);
                if repair.changes > 0 && repair.failed == 0 {
                    ctx.saw(
                        "the reconcile function made the change itself: the permissions it shares \
                         with the replicate function work, so the event did not reach the \
                         replicate function or the replicate function failed",
                    );
                }
            }
        }
        None => ctx.saw(
            "for the reconcile function's plan and repair of this key, pass --reconcile-function \
             (or --stack-outputs)",
        ),
    }
    ctx.saw(format!(
        "where to look: the replicate function's log (/aws/lambda/<ReplicateFunctionName>) for {}; \
         the stack's dead-letter queue (DeadLetterQueueUrl); CloudTrail's event history (event \
         source kms.amazonaws.com) for AccessDenied by the replicate function's role; and a \
         trail that logs management events, without which no event reaches the replicator",
        key.id
    ));
    p
}

/// What one invocation of the reconcile function said.
struct Reconciled {
    /// Changes planned (dry run) or made.
    changes: u64,
    failed: u64,
    denials: Vec<Denial>,
}

async fn reconcile(ctx: &Ctx, function: &str, what: &str, request: Value) -> Reconciled {
    let inv = match ctx.cloud.invoke(function, &request).await {
        Ok(inv) => inv,
        Err(e) => {
            ctx.saw(format!(
                "the reconcile function's {what} could not be had: {e}"
            ));
            return Reconciled {
                changes: 0,
                failed: 0,
                denials: e.denial().into_iter().collect(),
            };
        }
    };
    let a = &inv.answer;
    // A run with a retryable failure answers as a function error whose message is the plan.
    match (a["summary"].as_str(), a["errorMessage"].as_str()) {
        (Some(text), _) | (None, Some(text)) => text
            .lines()
            .for_each(|l| ctx.saw(format!("reconcile's {what}: {l}"))),
        (None, None) => ctx.saw(format!("reconcile's {what}: {a}")),
    }
    let count = |k: &str| a["counts"][k].as_u64().unwrap_or(0);
    Reconciled {
        changes: count("planned") + count("repaired"),
        failed: count("failed") + u64::from(inv.function_error.is_some()),
        denials: Denial::all_in(a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(removal: RemovalPolicy, regions: &[&str]) -> Settings {
        Settings {
            removal,
            replica_regions: regions.iter().map(|r| r.to_string()).collect(),
            ..Settings::default()
        }
    }

    #[test]
    fn the_last_region_is_taken_out_only_with_schedule_deletion_and_two_regions() {
        let (kept, removed) = removal_plan(&settings(
            RemovalPolicy::ScheduleDeletion,
            &["us-west-2", "eu-west-1"],
        ))
        .unwrap();
        assert_eq!(kept, ["us-west-2"]);
        assert_eq!(removed, "eu-west-1");
        let retain = removal_plan(&settings(
            RemovalPolicy::Retain,
            &["us-west-2", "eu-west-1"],
        ));
        assert!(retain.unwrap_err().contains("Retain"));
        let one = removal_plan(&settings(RemovalPolicy::ScheduleDeletion, &["us-west-2"]));
        assert!(one.unwrap_err().contains("two replica Regions"));
    }

    fn invoked(answer: Value) -> Invoked {
        Invoked {
            answer,
            function_error: None,
        }
    }

    #[test]
    fn a_failover_answer_other_than_the_one_expected_is_quoted_with_its_failed_checks() {
        let denied = "User: arn:aws:sts::1:assumed-role/kms-replicator-FailoverFunctionRole-a/b is not \
                      authorized to perform: kms:UpdatePrimaryRegion on resource: arn:aws:kms:us-east-1:1:key/mrk-1 \
                      because no identity-based policy allows the kms:UpdatePrimaryRegion action";
        let answer = json!({"summary": "0 of 1 key(s) promoted", "keys": [{
            "outcome": "failed", "reason": "UpdatePrimaryRegion was refused", "cause": "access_denied",
            "checks": [{"name": "key_found", "passed": true, "detail": "ok"},
                       {"name": "update_primary_region", "passed": false, "detail": denied}]}]});
        let p = key_outcome(&invoked(answer), "promoted").unwrap_err();
        assert!(p.message.starts_with("the failover function answered failed instead of promoted: UpdatePrimaryRegion was refused"), "{}", p.message);
        assert!(
            p.message
                .contains("(failed checks: update_primary_region: User:"),
            "{}",
            p.message
        );
        assert_eq!(p.denials.len(), 1);
        assert_eq!(p.denials[0].action, "kms:UpdatePrimaryRegion");
        let ok = json!({"keys": [{"outcome": "dry_run_ok", "checks": []}]});
        assert!(key_outcome(&invoked(ok), "dry_run_ok").is_ok());
    }

    #[test]
    fn a_failed_invocation_quotes_the_functions_error() {
        let inv = Invoked {
            answer: json!({"errorType": "InvalidInput", "errorMessage": "\"to\": Region eu-south-2 is not in ALLOWED_REGIONS"}),
            function_error: Some("Unhandled".into()),
        };
        let p = key_outcome(&inv, "promoted").unwrap_err();
        assert_eq!(
            p.message,
            "the failover function failed (Unhandled): InvalidInput: \"to\": Region eu-south-2 is not in ALLOWED_REGIONS"
        );
    }
}
