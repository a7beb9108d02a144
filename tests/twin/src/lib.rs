//! An in-memory twin of KMS with its multi-Region semantics, behind the same [`Kms`] port as
//! the AWS adapter. It follows AWS's documented behaviour (see the README's references):
//!
//! - one key store per Region; a replica shares its primary's key id and material, while its
//!   policy, aliases, tags, description and enabled state are its own;
//! - ReplicateKey without a policy attaches the default key policy; new replicas are
//!   `Creating` for a while, then `Enabled`;
//! - AlreadyExistsException, UnsupportedOperationException for replicas and single-Region
//!   keys, alias names unique per Region, the deletion states, the lockout safety check;
//! - UpdatePrimaryRegion, called in the primary's Region: both keys `Updating` for a while
//!   (DescribeKey then shows both as replicas), the primary role moves, and each of the two
//!   Regions logs its own record;
//! - every accepted write is recorded as the CloudTrail record AWS would log, wrapped as the
//!   EventBridge event a rule would receive (ReplicateKey in the primary's Region and CreateKey
//!   in the replica's Region);
//! - injectable latency, one-shot faults, per-operation rate limits and whole-Region outages.
//!
//! Clones share one state; [`Twin::with_caller`] gives a handle that acts as another identity.

pub mod auth;
mod trail;

use async_trait::async_trait;
use kms_replicator::arn::{key_arn, parse_kms_arn};
use kms_replicator::model::{
    AliasEntry, KeyInfo, KeyState, MultiRegionConfig, MultiRegionKeyType, Tag,
};
use kms_replicator::op::Op;
use kms_replicator::port::{
    AuditError, AuditEvent, AuditSink, ErrorKind, Kms, KmsError, KmsResult, ReplicaSpec, TagIndex,
    TaggedKey,
};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub const DEFAULT_ACCOUNT: &str = "111122223333";
/// The identity the twin's default handle acts as: the replicator's role.
pub const REPLICATOR_ROLE: &str = "arn:aws:iam::111122223333:role/kms-replicator-function";
/// A person's identity, for the writes a test makes as the key's owner.
pub const ADMIN_USER: &str = "arn:aws:iam::111122223333:user/Alice";

/// One key in one Region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwinKey {
    pub key_id: String,
    pub region: String,
    pub state: KeyState,
    pub description: String,
    pub policy: String,
    pub tags: BTreeMap<String, String>,
    /// `None` for single-Region keys; otherwise PRIMARY or REPLICA.
    pub multi_region: Option<MultiRegionKeyType>,
    /// The primary's Region, shared by all related keys.
    pub primary_region: String,
    /// CreationDate, milliseconds since the epoch; strictly increasing across the twin.
    pub created_ms: u64,
    /// When a transient state (Creating, Updating) ends, and the state it ends in.
    settles: Option<(Instant, KeyState)>,
}

/// A recorded call: which identity called which operation in which Region, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub region: String,
    pub op: Op,
    pub caller: String,
    pub at: Instant,
}

#[derive(Debug, Clone)]
struct Fault {
    region: Option<String>,
    op: Option<Op>,
    kind: ErrorKind,
    code: String,
    remaining: usize,
}

/// A stalled endpoint: calls of `op` (any when `None`) in `region` (any when `None`) are
/// accepted and answered after `delay`, or never when `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stall {
    region: Option<String>,
    op: Option<Op>,
    delay: Option<Duration>,
}

impl Stall {
    fn matches(&self, region: &str, op: Op) -> bool {
        self.region.as_deref().is_none_or(|r| r == region) && self.op.is_none_or(|o| o == op)
    }
}

#[derive(Debug, Default)]
struct Bucket {
    window_start: Option<Instant>,
    used: u32,
}

#[derive(Debug)]
struct State {
    account: String,
    keys: BTreeMap<(String, String), TwinKey>,
    /// (Region, alias name) -> key id
    aliases: BTreeMap<(String, String), String>,
    trail: Vec<Value>,
    audit: Vec<AuditEvent>,
    audit_down: bool,
    calls: Vec<Call>,
    faults: Vec<Fault>,
    down: Vec<String>,
    stalls: Vec<Stall>,
    /// Bumped whenever a stall is cleared, to wake the calls that wait for it.
    stalls_changed: tokio::sync::watch::Sender<u64>,
    latency: Duration,
    creating_for: Duration,
    updating_for: Duration,
    /// Requests per second allowed per (Region, operation); beyond it ThrottlingException.
    rate_limits: HashMap<Op, u32>,
    buckets: HashMap<(String, Op), Bucket>,
    throttled: usize,
    counter: u64,
    /// The last CreationDate handed out, so that creation order is never a tie.
    last_created_ms: u64,
    /// The earliest time a transient state (Creating, Updating) ends, if any key has one:
    /// [`State::settle`] looks at the keys only then, so a call costs the same with 30,000
    /// keys as with 3.
    next_settle: Option<Instant>,
}

#[derive(Clone)]
pub struct Twin {
    state: Arc<Mutex<State>>,
    caller: String,
}

impl Default for Twin {
    fn default() -> Self {
        Twin::new()
    }
}

fn err(kind: ErrorKind, op: Op, region: &str, code: &str, msg: impl Into<String>) -> KmsError {
    KmsError::new(kind, op, region, code, msg)
}

impl Twin {
    pub fn new() -> Twin {
        Twin {
            state: Arc::new(Mutex::new(State {
                account: DEFAULT_ACCOUNT.into(),
                keys: BTreeMap::new(),
                aliases: BTreeMap::new(),
                trail: Vec::new(),
                audit: Vec::new(),
                audit_down: false,
                calls: Vec::new(),
                faults: Vec::new(),
                down: Vec::new(),
                stalls: Vec::new(),
                stalls_changed: tokio::sync::watch::Sender::new(0),
                latency: Duration::ZERO,
                creating_for: Duration::ZERO,
                updating_for: Duration::ZERO,
                rate_limits: HashMap::new(),
                buckets: HashMap::new(),
                throttled: 0,
                counter: 0,
                last_created_ms: 0,
                next_settle: None,
            })),
            caller: REPLICATOR_ROLE.into(),
        }
    }

    /// A handle on the same state that acts as `caller` (an IAM role or user ARN).
    pub fn with_caller(&self, caller: &str) -> Twin {
        Twin {
            state: self.state.clone(),
            caller: caller.to_string(),
        }
    }

    pub fn caller(&self) -> &str {
        &self.caller
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn account(&self) -> String {
        self.lock().account.clone()
    }

    // ---- knobs -------------------------------------------------------------------------

    /// Every call waits this long before it is served.
    pub fn set_latency(&self, d: Duration) {
        self.lock().latency = d;
    }

    /// How long a new replica stays `Creating`.
    pub fn set_creating_for(&self, d: Duration) {
        self.lock().creating_for = d;
    }

    /// How long both keys stay `Updating` after UpdatePrimaryRegion.
    pub fn set_updating_for(&self, d: Duration) {
        self.lock().updating_for = d;
    }

    /// The next `times` calls of `op` (any when `None`) in `region` (any when `None`) fail
    /// with the AWS error `code`.
    pub fn inject_fault(&self, region: Option<&str>, op: Option<Op>, code: &str, times: usize) {
        let kind = ErrorKind::from_code(code, None);
        self.lock().faults.push(Fault {
            region: region.map(str::to_string),
            op,
            kind,
            code: code.to_string(),
            remaining: times,
        });
    }

    /// A Region whose KMS endpoint does not answer at all.
    pub fn set_region_down(&self, region: &str, down: bool) {
        let mut s = self.lock();
        s.down.retain(|r| r != region);
        if down {
            s.down.push(region.to_string());
        }
    }

    /// A Regional endpoint that accepts requests and then stalls: from now on, calls of `op`
    /// (any when `None`) in `region` (any when `None`) are recorded, then wait `delay` before
    /// they are served (the answer is late, and a write is still applied), or, with `None`,
    /// are never answered: they wait until the stall is cleared and then fail as
    /// `Unreachable` without effect (over HTTP the connection is closed without an answer).
    /// Unlike [`set_region_down`](Self::set_region_down) the caller learns nothing until its
    /// own timeout. A second stall for the same Region and operation replaces the first.
    pub fn set_stall(&self, region: Option<&str>, op: Option<Op>, delay: Option<Duration>) {
        let stall = Stall {
            region: region.map(str::to_string),
            op,
            delay,
        };
        let mut s = self.lock();
        s.stalls
            .retain(|t| !(t.region == stall.region && t.op == stall.op));
        s.stalls.push(stall);
        s.stalls_changed.send_modify(|g| *g += 1);
    }

    /// Ends the stall set for exactly this Region and operation (`None` as given to
    /// [`set_stall`](Self::set_stall)); calls waiting on it that would never be answered fail
    /// as `Unreachable`.
    pub fn clear_stall(&self, region: Option<&str>, op: Option<Op>) {
        let mut s = self.lock();
        s.stalls
            .retain(|t| !(t.region.as_deref() == region && t.op == op));
        s.stalls_changed.send_modify(|g| *g += 1);
    }

    /// Ends every stall.
    pub fn clear_stalls(&self) {
        let mut s = self.lock();
        s.stalls.clear();
        s.stalls_changed.send_modify(|g| *g += 1);
    }

    /// At most `per_second` calls of `op` per Region per second, like the KMS request quotas.
    pub fn set_rate_limit(&self, op: Op, per_second: u32) {
        self.lock().rate_limits.insert(op, per_second);
    }

    /// No rate limit any more (a test setting up state between two measured runs).
    pub fn clear_rate_limits(&self) {
        self.lock().rate_limits.clear();
    }

    /// How many calls were refused with ThrottlingException.
    pub fn throttled_count(&self) -> usize {
        self.lock().throttled
    }

    // ---- inspection --------------------------------------------------------------------

    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    pub fn reset_calls(&self) {
        self.lock().calls.clear();
    }

    /// The EventBridge events (CloudTrail records) of every write accepted so far.
    pub fn trail(&self) -> Vec<Value> {
        self.lock().trail.clone()
    }

    /// Returns the recorded events and forgets them.
    pub fn take_trail(&self) -> Vec<Value> {
        std::mem::take(&mut self.lock().trail)
    }

    /// Audit events published to the twin's EventBridge bus.
    pub fn audit_events(&self) -> Vec<AuditEvent> {
        self.lock().audit.clone()
    }

    /// Makes PutEvents fail, to test what happens when the audit bus is unavailable.
    pub fn set_audit_down(&self, down: bool) {
        self.lock().audit_down = down;
    }

    pub fn key(&self, region: &str, key_id: &str) -> Option<TwinKey> {
        let mut s = self.lock();
        s.settle();
        s.keys
            .get(&(region.to_string(), key_id.to_string()))
            .cloned()
    }

    /// Aliases in a Region: name -> key id.
    pub fn aliases(&self, region: &str) -> BTreeMap<String, String> {
        self.lock()
            .aliases
            .iter()
            .filter(|((r, _), _)| r == region)
            .map(|((_, n), k)| (n.clone(), k.clone()))
            .collect()
    }

    pub fn default_policy(&self) -> String {
        default_policy(&self.lock().account)
    }

    /// Creates a key as `CreateKey` would (recorded in the trail), bypassing faults and limits.
    /// `tags` are passed in the request as at CreateKey.
    pub fn create_key(
        &self,
        region: &str,
        multi_region: bool,
        policy: Option<&str>,
        description: &str,
        tags: &[Tag],
    ) -> KeyInfo {
        let mut s = self.lock();
        s.counter += 1;
        let n = s.counter;
        let key_id = if multi_region {
            format!("mrk-{n:032x}")
        } else {
            format!("{:08x}-0000-4000-8000-{n:012x}", n)
        };
        let policy = policy
            .map(str::to_string)
            .unwrap_or_else(|| default_policy(&s.account));
        let key = TwinKey {
            key_id: key_id.clone(),
            region: region.to_string(),
            state: KeyState::Enabled,
            description: description.to_string(),
            policy,
            tags: tags
                .iter()
                .map(|t| (t.key.clone(), t.value.clone()))
                .collect(),
            multi_region: multi_region.then_some(MultiRegionKeyType::Primary),
            primary_region: region.to_string(),
            created_ms: s.next_creation_date(),
            settles: None,
        };
        s.keys.insert((region.to_string(), key_id.clone()), key);
        let info = s.info(region, &key_id);
        let params = json!({
            "description": description,
            "keySpec": "SYMMETRIC_DEFAULT",
            "keyUsage": "ENCRYPT_DECRYPT",
            "origin": "AWS_KMS",
            "bypassPolicyLockoutSafetyCheck": false,
            "multiRegion": multi_region,
            "tags": trail::tags_json(tags),
        });
        let response = json!({"keyMetadata": trail::key_metadata(&info, &s.account)});
        let rec = trail::Record::new(region, Op::CreateKey, &self.caller, params)
            .response(response)
            .key(&info.arn);
        s.push_record(rec);
        info
    }

    /// Changes a key's state directly (a person disabling a key, say). Not recorded.
    pub fn set_state(&self, region: &str, key_id: &str, state: KeyState) {
        if let Some(k) = self
            .lock()
            .keys
            .get_mut(&(region.to_string(), key_id.to_string()))
        {
            k.state = state;
            k.settles = None;
        }
    }

    /// DeleteAlias, as a person makes it: the replicator itself never deletes an alias, so
    /// this is not part of its port.
    pub async fn delete_alias(&self, region: &str, alias: &str) -> KmsResult<()> {
        const OP: Op = Op::DeleteAlias;
        self.enter(region, OP).await?;
        let mut s = self.lock();
        let slot = (region.to_string(), alias.to_string());
        let Some(id) = s.aliases.remove(&slot) else {
            return Err(err(
                ErrorKind::NotFound,
                OP,
                region,
                "NotFoundException",
                format!(
                    "Alias arn:aws:kms:{region}:{}:{alias} is not found.",
                    s.account
                ),
            ));
        };
        let arn = s.arn(region, &id);
        let params = json!({"aliasName": alias});
        s.push_record(
            trail::Record::new(region, OP, &self.caller, params)
                .alias(alias)
                .key(&arn),
        );
        Ok(())
    }

    /// DisableKey as this handle's caller makes it (a person, in incident response): the key
    /// is `Disabled` and the call is recorded in the trail. Faults and limits do not apply.
    pub fn disable_key(&self, region: &str, key_id: &str) -> KmsResult<()> {
        const OP: Op = Op::DisableKey;
        let mut s = self.lock();
        let id = s.resolve(OP, region, key_id)?;
        let arn = s.arn(region, &id);
        let k = s.get(region, &id);
        if !matches!(k.state, KeyState::Enabled | KeyState::Disabled) {
            return Err(err(
                ErrorKind::InvalidState,
                OP,
                region,
                "KMSInvalidStateException",
                format!("{arn} is {}.", k.state),
            ));
        }
        k.state = KeyState::Disabled;
        k.settles = None;
        let params = json!({"keyId": key_id});
        s.push_record(trail::Record::new(region, OP, &self.caller, params).key(&arn));
        Ok(())
    }

    /// Removes a replica outright, as if its deletion window had passed.
    pub fn purge_key(&self, region: &str, key_id: &str) {
        let mut s = self.lock();
        s.keys.remove(&(region.to_string(), key_id.to_string()));
        s.aliases.retain(|(r, _), k| !(r == region && k == key_id));
    }

    // ---- the request path --------------------------------------------------------------

    /// Every KMS call goes through here: latency, outages, stalls, faults, rate limits, call
    /// log.
    async fn enter(&self, region: &str, op: Op) -> Result<(), KmsError> {
        let latency = self.lock().latency;
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let stalled = {
            let mut s = self.lock();
            s.calls.push(Call {
                region: region.to_string(),
                op,
                caller: self.caller.clone(),
                at: Instant::now(),
            });
            if s.down.iter().any(|r| r == region) {
                return Err(err(
                    ErrorKind::Unreachable,
                    op,
                    region,
                    "DispatchFailure",
                    format!("connection to kms.{region}.amazonaws.com timed out"),
                ));
            }
            let stall = s
                .stalls
                .iter()
                .rev()
                .find(|t| t.matches(region, op))
                .cloned();
            stall.map(|t| (t, s.stalls_changed.subscribe()))
        };
        // Never wait with the state locked: other calls, and the test, go on meanwhile.
        if let Some((stall, mut changed)) = stalled {
            match stall.delay {
                Some(delay) => tokio::time::sleep(delay).await,
                None => loop {
                    if changed.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                    if !self.lock().stalls.contains(&stall) {
                        return Err(err(
                            ErrorKind::Unreachable,
                            op,
                            region,
                            "TimeoutError",
                            format!(
                                "kms.{region}.amazonaws.com accepted the request and never \
                                 answered (stalled)"
                            ),
                        ));
                    }
                },
            }
        }
        let mut s = self.lock();
        if let Some(f) = s.faults.iter_mut().find(|f| {
            f.remaining > 0
                && f.region.as_deref().is_none_or(|r| r == region)
                && f.op.is_none_or(|o| o == op)
        }) {
            f.remaining -= 1;
            let (kind, code) = (f.kind, f.code.clone());
            return Err(err(kind, op, region, &code, "injected fault"));
        }
        s.charge(region, op)?;
        s.settle();
        Ok(())
    }
}

/// An example primary policy, for tests and the demo: a realistic primary policy: root delegation, a key administrator, use through S3 in the
/// primary's Region, and CloudWatch Logs' Regional principal.
pub fn example_primary_policy(account: &str) -> String {
    serde_json::to_string_pretty(&json!({
        "Version": "2012-10-17",
        "Id": "payments-key-policy",
        "Statement": [
            {
                "Sid": "Enable IAM User Permissions",
                "Effect": "Allow",
                "Principal": {"AWS": format!("arn:aws:iam::{account}:root")},
                "Action": "kms:*",
                "Resource": "*"
            },
            {
                "Sid": "AllowUseViaS3",
                "Effect": "Allow",
                "Principal": {"AWS": format!("arn:aws:iam::{account}:role/payments-app")},
                "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                "Resource": "*",
                "Condition": {"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}
            },
            {
                "Sid": "AllowCloudWatchLogs",
                "Effect": "Allow",
                "Principal": {"Service": "logs.us-east-1.amazonaws.com"},
                "Action": ["kms:Encrypt*", "kms:Decrypt*", "kms:GenerateDataKey*"],
                "Resource": "*",
                "Condition": {"ArnLike": {
                    "kms:EncryptionContext:aws:logs:arn": format!("arn:aws:logs:us-east-1:{account}:log-group:payments")
                }}
            }
        ]
    }))
    .expect("static JSON")
}

fn default_policy(account: &str) -> String {
    serde_json::to_string_pretty(&json!({
        "Version": "2012-10-17",
        "Id": "key-default-1",
        "Statement": [{
            "Sid": "Enable IAM User Permissions",
            "Effect": "Allow",
            "Principal": {"AWS": format!("arn:aws:iam::{account}:root")},
            "Action": "kms:*",
            "Resource": "*"
        }]
    }))
    .expect("static JSON")
}

/// The lockout safety check: the new policy must let the caller call PutKeyPolicy later.
/// A statement allowing the account root delegates to IAM, which the caller passes.
fn allows_put_key_policy(policy: &str, account: &str, caller: &str) -> Result<bool, String> {
    let doc: Value = serde_json::from_str(policy).map_err(|e| e.to_string())?;
    let stmts = match doc.get("Statement") {
        Some(Value::Array(a)) => a.clone(),
        Some(s @ Value::Object(_)) => vec![s.clone()],
        _ => return Err("the policy has no Statement".into()),
    };
    let strings = |v: Option<&Value>| -> Vec<String> {
        match v {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
            _ => vec![],
        }
    };
    let root = format!("arn:aws:iam::{account}:root");
    Ok(stmts.iter().any(|s| {
        let allow = s.get("Effect").and_then(Value::as_str) == Some("Allow");
        let actions = strings(s.get("Action"));
        let action_ok = actions.iter().any(|a| {
            let a = a.to_ascii_lowercase();
            a == "*" || a == "kms:*" || a == "kms:putkeypolicy" || a == "kms:put*"
        });
        let principal = s.get("Principal");
        let principal_ok = match principal {
            Some(Value::String(p)) => p == "*",
            Some(Value::Object(o)) => strings(o.get("AWS"))
                .iter()
                .any(|p| p == "*" || p == &root || p == account || p == caller),
            _ => false,
        };
        allow && action_ok && principal_ok && s.get("Condition").is_none()
    }))
}

impl State {
    /// Counts one request of `op` against the Region's rate limit, if one is set.
    fn charge(&mut self, region: &str, op: Op) -> KmsResult<()> {
        let Some(&limit) = self.rate_limits.get(&op) else {
            return Ok(());
        };
        let now = Instant::now();
        let bucket = self.buckets.entry((region.to_string(), op)).or_default();
        match bucket.window_start {
            Some(start) if now.duration_since(start) < Duration::from_secs(1) => {}
            _ => {
                bucket.window_start = Some(now);
                bucket.used = 0;
            }
        }
        bucket.used += 1;
        if bucket.used > limit {
            self.throttled += 1;
            return Err(err(
                ErrorKind::Throttling,
                op,
                region,
                "ThrottlingException",
                "Rate exceeded",
            ));
        }
        Ok(())
    }

    /// Ends transient states whose time has come.
    fn settle(&mut self) {
        let now = Instant::now();
        if self.next_settle.is_none_or(|at| at > now) {
            return;
        }
        let mut later: Option<Instant> = None;
        for k in self.keys.values_mut() {
            if let Some((at, next)) = k.settles {
                if at <= now {
                    k.state = next;
                    k.settles = None;
                } else {
                    later = Some(later.map_or(at, |l| l.min(at)));
                }
            }
        }
        self.next_settle = later;
    }

    /// A key's transient state ends at `at`.
    fn settle_at(&mut self, at: Instant) {
        self.next_settle = Some(self.next_settle.map_or(at, |n| n.min(at)));
    }

    fn next_n(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    fn push_record(&mut self, rec: trail::Record) {
        let n = self.next_n();
        let account = self.account.clone();
        self.trail.push(rec.into_event(&account, n));
    }

    /// Finds the key a reference names in `region`: key id, key ARN, alias name or alias ARN.
    fn resolve(&self, op: Op, region: &str, key: &str) -> KmsResult<String> {
        let not_found = || {
            err(
                ErrorKind::NotFound,
                op,
                region,
                "NotFoundException",
                format!("Key '{key}' does not exist"),
            )
        };
        let local = match parse_kms_arn(key) {
            Some(arn) => {
                if arn.region != region || arn.account != self.account {
                    return Err(not_found());
                }
                arn.resource.to_string()
            }
            None => key.to_string(),
        };
        if local.starts_with("alias/") {
            return self
                .aliases
                .get(&(region.to_string(), local.clone()))
                .cloned()
                .ok_or_else(|| {
                    err(
                        ErrorKind::NotFound,
                        op,
                        region,
                        "NotFoundException",
                        format!(
                            "Alias arn:aws:kms:{region}:{}:{local} is not found.",
                            self.account
                        ),
                    )
                });
        }
        let id = local.strip_prefix("key/").unwrap_or(&local).to_string();
        if self.keys.contains_key(&(region.to_string(), id.clone())) {
            Ok(id)
        } else {
            Err(not_found())
        }
    }

    fn get(&mut self, region: &str, id: &str) -> &mut TwinKey {
        self.keys
            .get_mut(&(region.to_string(), id.to_string()))
            .expect("resolved key exists")
    }

    fn arn(&self, region: &str, id: &str) -> String {
        key_arn("aws", region, &self.account, id)
    }

    fn info(&self, region: &str, id: &str) -> KeyInfo {
        let k = &self.keys[&(region.to_string(), id.to_string())];
        let multi_region = k.multi_region.map(|key_type| MultiRegionConfig {
            key_type,
            primary_region: k.primary_region.clone(),
            replica_regions: self
                .keys
                .values()
                .filter(|o| o.key_id == k.key_id && o.region != k.primary_region)
                .map(|o| o.region.clone())
                .collect(),
        });
        KeyInfo {
            key_id: k.key_id.clone(),
            arn: self.arn(region, id),
            region: region.to_string(),
            state: k.state,
            description: k.description.clone(),
            multi_region,
            creation_date: Some(k.created_ms),
        }
    }

    fn next_creation_date(&mut self) -> u64 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        self.last_created_ms = now.max(self.last_created_ms + 1);
        self.last_created_ms
    }

    /// KMSInvalidStateException for keys pending deletion (the management calls' rule).
    fn manageable(&self, op: Op, region: &str, id: &str) -> KmsResult<()> {
        let k = &self.keys[&(region.to_string(), id.to_string())];
        if k.state.is_pending_deletion() {
            return Err(err(
                ErrorKind::InvalidState,
                op,
                region,
                "KMSInvalidStateException",
                format!("{} is pending deletion.", self.arn(region, id)),
            ));
        }
        Ok(())
    }

    fn check_policy(&self, op: Op, region: &str, policy: &str, caller: &str) -> KmsResult<()> {
        // A length constraint of the API: the request fails validation before any check.
        if policy.len() > kms_replicator::policy::MAX_POLICY_BYTES {
            return Err(err(
                ErrorKind::Other,
                op,
                region,
                "ValidationException",
                format!(
                    "1 validation error detected: Value at 'policy' failed to satisfy \
                     constraint: Member must have length less than or equal to {}",
                    kms_replicator::policy::MAX_POLICY_BYTES
                ),
            ));
        }
        match allows_put_key_policy(policy, &self.account, caller) {
            Ok(true) => Ok(()),
            Ok(false) => Err(err(ErrorKind::MalformedPolicy, op, region, "MalformedPolicyDocumentException", "The new key policy will not allow you to update the key policy in the future.")),
            Err(e) => Err(err(ErrorKind::MalformedPolicy, op, region, "MalformedPolicyDocumentException", format!("Policy contains a statement with one or more invalid principals or is not valid JSON: {e}"))),
        }
    }

    fn alias_name_ok(&self, op: Op, region: &str, alias: &str) -> KmsResult<()> {
        if !alias.starts_with("alias/") || alias.starts_with("alias/aws/") || alias.len() <= 6 {
            return Err(err(
                ErrorKind::Other,
                op,
                region,
                "ValidationException",
                format!(
                    "Alias must start with the prefix \"alias/\" and not \"alias/aws/\": {alias}"
                ),
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl Kms for Twin {
    async fn describe_key(&self, region: &str, key: &str) -> KmsResult<KeyInfo> {
        self.enter(region, Op::DescribeKey).await?;
        let s = self.lock();
        let id = s.resolve(Op::DescribeKey, region, key)?;
        let mut info = s.info(region, &id);
        // While a primary Region update is in progress, DescribeKey may show both the old and
        // the new primary as replicas.
        if info.state == KeyState::Updating {
            if let Some(m) = &mut info.multi_region {
                m.key_type = MultiRegionKeyType::Replica;
            }
        }
        Ok(info)
    }

    async fn get_key_policy(&self, region: &str, key_id: &str) -> KmsResult<String> {
        self.enter(region, Op::GetKeyPolicy).await?;
        let s = self.lock();
        let id = s.resolve(Op::GetKeyPolicy, region, key_id)?;
        Ok(s.keys[&(region.to_string(), id)].policy.clone())
    }

    async fn list_resource_tags(&self, region: &str, key_id: &str) -> KmsResult<Vec<Tag>> {
        self.enter(region, Op::ListResourceTags).await?;
        let s = self.lock();
        let id = s.resolve(Op::ListResourceTags, region, key_id)?;
        Ok(s.keys[&(region.to_string(), id)]
            .tags
            .iter()
            .map(|(k, v)| Tag::new(k, v))
            .collect())
    }

    async fn list_aliases(&self, region: &str, key_id: Option<&str>) -> KmsResult<Vec<AliasEntry>> {
        self.enter(region, Op::ListAliases).await?;
        let s = self.lock();
        let filter = match key_id {
            Some(k) => Some(s.resolve(Op::ListAliases, region, k)?),
            None => None,
        };
        Ok(s.aliases
            .iter()
            .filter(|((r, _), k)| r == region && filter.as_ref().is_none_or(|f| f == *k))
            .map(|((_, name), k)| AliasEntry {
                name: name.clone(),
                target_key_id: Some(k.clone()),
            })
            .collect())
    }

    async fn replicate_key(
        &self,
        primary_region: &str,
        key_id: &str,
        replica_region: &str,
        spec: &ReplicaSpec,
    ) -> KmsResult<KeyInfo> {
        const OP: Op = Op::ReplicateKey;
        self.enter(primary_region, OP).await?;
        let mut s = self.lock();
        // One ReplicateKey also counts as two CreateKey requests in the replica's Region.
        for _ in 0..2 {
            s.charge(replica_region, Op::CreateKey).map_err(|mut e| {
                e.operation = OP;
                e.region = primary_region.to_string();
                e
            })?;
        }
        let id = s.resolve(OP, primary_region, key_id)?;
        let arn = s.arn(primary_region, &id);
        let src = s.keys[&(primary_region.to_string(), id.clone())].clone();
        if src.multi_region != Some(MultiRegionKeyType::Primary) {
            return Err(err(
                ErrorKind::UnsupportedOperation,
                OP,
                primary_region,
                "UnsupportedOperationException",
                format!("{arn} is not a multi-Region primary key."),
            ));
        }
        match src.state {
            KeyState::Disabled => {
                return Err(err(
                    ErrorKind::Disabled,
                    OP,
                    primary_region,
                    "DisabledException",
                    format!("{arn} is disabled."),
                ))
            }
            KeyState::PendingDeletion | KeyState::PendingReplicaDeletion => {
                return Err(err(
                    ErrorKind::InvalidState,
                    OP,
                    primary_region,
                    "KMSInvalidStateException",
                    format!("{arn} is pending deletion."),
                ))
            }
            KeyState::Creating => {
                return Err(err(
                    ErrorKind::InvalidState,
                    OP,
                    primary_region,
                    "KMSInvalidStateException",
                    format!("{arn} is creating."),
                ))
            }
            KeyState::Updating => {
                return Err(err(
                    ErrorKind::InvalidState,
                    OP,
                    primary_region,
                    "KMSInvalidStateException",
                    format!("{arn} is updating."),
                ))
            }
            _ => {}
        }
        if replica_region == primary_region
            || !kms_replicator::region::is_region_name(replica_region)
        {
            return Err(err(
                ErrorKind::Other,
                OP,
                primary_region,
                "ValidationException",
                format!("ReplicaRegion {replica_region} is not valid for {arn}"),
            ));
        }
        if s.keys
            .contains_key(&(replica_region.to_string(), id.clone()))
        {
            return Err(err(
                ErrorKind::AlreadyExists,
                OP,
                primary_region,
                "AlreadyExistsException",
                format!(
                    "Replica key already exists in region {replica_region}: {}",
                    s.arn(replica_region, &id)
                ),
            ));
        }
        if s.down.iter().any(|r| r == replica_region) {
            return Err(err(
                ErrorKind::Internal,
                OP,
                primary_region,
                "KMSInternalException",
                format!("KMS in {replica_region} is not available"),
            ));
        }
        let policy = match &spec.policy {
            Some(p) => {
                s.check_policy(OP, primary_region, p, &self.caller)?;
                p.clone()
            }
            None => default_policy(&s.account),
        };
        let creating_for = s.creating_for;
        let replica = TwinKey {
            key_id: id.clone(),
            region: replica_region.to_string(),
            state: KeyState::Creating,
            description: spec.description.clone(),
            policy: policy.clone(),
            tags: spec
                .tags
                .iter()
                .map(|t| (t.key.clone(), t.value.clone()))
                .collect(),
            multi_region: Some(MultiRegionKeyType::Replica),
            primary_region: primary_region.to_string(),
            created_ms: s.next_creation_date(),
            settles: Some((Instant::now() + creating_for, src.state)),
        };
        s.settle_at(Instant::now() + creating_for);
        s.keys
            .insert((replica_region.to_string(), id.clone()), replica);
        let mut info = s.info(replica_region, &id);
        info.state = KeyState::Creating;
        let meta = trail::key_metadata(&info, &s.account);
        let mut params = json!({
            "keyId": key_id,
            "replicaRegion": replica_region,
            "bypassPolicyLockoutSafetyCheck": false,
            "description": spec.description,
            "tags": trail::tags_json(&spec.tags),
        });
        if spec.policy.is_some() {
            params["policy"] = json!(policy);
        }
        let rec = trail::Record::new(primary_region, OP, &self.caller, params)
            .response(json!({"replicaKeyMetadata": meta, "replicaPolicy": policy}))
            .key(&arn);
        s.push_record(rec);
        let replica_params = json!({
            "description": spec.description,
            "multiRegion": true,
            "tags": trail::tags_json(&spec.tags),
        });
        let rec = trail::Record::new(replica_region, Op::CreateKey, &self.caller, replica_params)
            .invoked_by_kms()
            .response(json!({"keyMetadata": meta}))
            .key(&info.arn);
        s.push_record(rec);
        Ok(info)
    }

    async fn put_key_policy(&self, region: &str, key_id: &str, policy: &str) -> KmsResult<()> {
        const OP: Op = Op::PutKeyPolicy;
        self.enter(region, OP).await?;
        let mut s = self.lock();
        let id = s.resolve(OP, region, key_id)?;
        s.check_policy(OP, region, policy, &self.caller)?;
        s.get(region, &id).policy = policy.to_string();
        let arn = s.arn(region, &id);
        let params = json!({"keyId": key_id, "policyName": "default", "policy": policy, "bypassPolicyLockoutSafetyCheck": false});
        s.push_record(trail::Record::new(region, OP, &self.caller, params).key(&arn));
        Ok(())
    }

    async fn create_alias(&self, region: &str, alias: &str, key_id: &str) -> KmsResult<()> {
        const OP: Op = Op::CreateAlias;
        self.enter(region, OP).await?;
        let mut s = self.lock();
        s.alias_name_ok(OP, region, alias)?;
        let id = s.resolve(OP, region, key_id)?;
        s.manageable(OP, region, &id)?;
        let slot = (region.to_string(), alias.to_string());
        if s.aliases.contains_key(&slot) {
            return Err(err(
                ErrorKind::AlreadyExists,
                OP,
                region,
                "AlreadyExistsException",
                format!(
                    "An alias with the name arn:aws:kms:{region}:{}:{alias} already exists",
                    s.account
                ),
            ));
        }
        s.aliases.insert(slot, id.clone());
        let arn = s.arn(region, &id);
        let params = json!({"aliasName": alias, "targetKeyId": key_id});
        s.push_record(
            trail::Record::new(region, OP, &self.caller, params)
                .key(&arn)
                .alias(alias),
        );
        Ok(())
    }

    async fn update_alias(&self, region: &str, alias: &str, key_id: &str) -> KmsResult<()> {
        const OP: Op = Op::UpdateAlias;
        self.enter(region, OP).await?;
        let mut s = self.lock();
        s.alias_name_ok(OP, region, alias)?;
        let id = s.resolve(OP, region, key_id)?;
        s.manageable(OP, region, &id)?;
        let slot = (region.to_string(), alias.to_string());
        let Some(old) = s.aliases.get(&slot).cloned() else {
            return Err(err(
                ErrorKind::NotFound,
                OP,
                region,
                "NotFoundException",
                format!(
                    "Alias arn:aws:kms:{region}:{}:{alias} is not found.",
                    s.account
                ),
            ));
        };
        s.aliases.insert(slot, id.clone());
        let (arn, old_arn) = (s.arn(region, &id), s.arn(region, &old));
        let params = json!({"aliasName": alias, "targetKeyId": key_id});
        s.push_record(
            trail::Record::new(region, OP, &self.caller, params)
                .key(&arn)
                .key(&old_arn)
                .alias(alias),
        );
        Ok(())
    }

    async fn tag_resource(&self, region: &str, key_id: &str, tags: &[Tag]) -> KmsResult<()> {
        const OP: Op = Op::TagResource;
        self.enter(region, OP).await?;
        let mut s = self.lock();
        let id = s.resolve(OP, region, key_id)?;
        s.manageable(OP, region, &id)?;
        let k = s.get(region, &id);
        for t in tags {
            k.tags.insert(t.key.clone(), t.value.clone());
        }
        let arn = s.arn(region, &id);
        let params = json!({"keyId": key_id, "tags": trail::tags_json(tags)});
        s.push_record(trail::Record::new(region, OP, &self.caller, params).key(&arn));
        Ok(())
    }

    async fn untag_resource(&self, region: &str, key_id: &str, keys: &[String]) -> KmsResult<()> {
        const OP: Op = Op::UntagResource;
        self.enter(region, OP).await?;
        let mut s = self.lock();
        let id = s.resolve(OP, region, key_id)?;
        s.manageable(OP, region, &id)?;
        let k = s.get(region, &id);
        for key in keys {
            k.tags.remove(key);
        }
        let arn = s.arn(region, &id);
        let params = json!({"keyId": key_id, "tagKeys": keys});
        s.push_record(trail::Record::new(region, OP, &self.caller, params).key(&arn));
        Ok(())
    }

    async fn update_key_description(
        &self,
        region: &str,
        key_id: &str,
        description: &str,
    ) -> KmsResult<()> {
        const OP: Op = Op::UpdateKeyDescription;
        self.enter(region, OP).await?;
        let mut s = self.lock();
        let id = s.resolve(OP, region, key_id)?;
        s.manageable(OP, region, &id)?;
        s.get(region, &id).description = description.to_string();
        let arn = s.arn(region, &id);
        let params = json!({"keyId": key_id, "description": description});
        s.push_record(trail::Record::new(region, OP, &self.caller, params).key(&arn));
        Ok(())
    }

    async fn schedule_key_deletion(
        &self,
        region: &str,
        key_id: &str,
        pending_window_days: i32,
    ) -> KmsResult<()> {
        const OP: Op = Op::ScheduleKeyDeletion;
        self.enter(region, OP).await?;
        let mut s = self.lock();
        let id = s.resolve(OP, region, key_id)?;
        s.manageable(OP, region, &id)?;
        if !(7..=30).contains(&pending_window_days) {
            return Err(err(
                ErrorKind::Other,
                OP,
                region,
                "ValidationException",
                "PendingWindowInDays must be between 7 and 30",
            ));
        }
        let has_replicas = {
            let k = &s.keys[&(region.to_string(), id.clone())];
            k.multi_region == Some(MultiRegionKeyType::Primary)
                && s.keys
                    .values()
                    .any(|o| o.key_id == id && o.region != region)
        };
        let state = if has_replicas {
            KeyState::PendingReplicaDeletion
        } else {
            KeyState::PendingDeletion
        };
        let k = s.get(region, &id);
        k.state = state;
        k.settles = None;
        let arn = s.arn(region, &id);
        let params = json!({"keyId": key_id, "pendingWindowInDays": pending_window_days});
        let response = json!({"keyId": arn, "keyState": state.as_str()});
        s.push_record(
            trail::Record::new(region, OP, &self.caller, params)
                .response(response)
                .key(&arn),
        );
        Ok(())
    }

    async fn cancel_key_deletion(&self, region: &str, key_id: &str) -> KmsResult<()> {
        const OP: Op = Op::CancelKeyDeletion;
        self.enter(region, OP).await?;
        let mut s = self.lock();
        let id = s.resolve(OP, region, key_id)?;
        let arn = s.arn(region, &id);
        let k = s.get(region, &id);
        if !k.state.is_pending_deletion() {
            return Err(err(
                ErrorKind::InvalidState,
                OP,
                region,
                "KMSInvalidStateException",
                format!("{arn} is not pending deletion."),
            ));
        }
        k.state = KeyState::Disabled;
        let params = json!({"keyId": key_id});
        s.push_record(
            trail::Record::new(region, OP, &self.caller, params)
                .response(json!({"keyId": arn}))
                .key(&arn),
        );
        Ok(())
    }

    async fn enable_key(&self, region: &str, key_id: &str) -> KmsResult<()> {
        const OP: Op = Op::EnableKey;
        self.enter(region, OP).await?;
        let mut s = self.lock();
        let id = s.resolve(OP, region, key_id)?;
        let arn = s.arn(region, &id);
        let k = s.get(region, &id);
        match k.state {
            KeyState::Enabled | KeyState::Disabled => k.state = KeyState::Enabled,
            other => {
                let what = match other {
                    KeyState::Creating => "is creating",
                    KeyState::Updating => "is updating",
                    KeyState::PendingImport => "is pending import",
                    _ => "is pending deletion",
                };
                return Err(err(
                    ErrorKind::InvalidState,
                    OP,
                    region,
                    "KMSInvalidStateException",
                    format!("{arn} {what}."),
                ));
            }
        }
        let params = json!({"keyId": key_id});
        s.push_record(trail::Record::new(region, OP, &self.caller, params).key(&arn));
        Ok(())
    }

    async fn list_keys(&self, region: &str) -> KmsResult<Vec<String>> {
        self.enter(region, Op::ListKeys).await?;
        let s = self.lock();
        Ok(s.keys
            .keys()
            .filter(|(r, _)| r == region)
            .map(|(_, id)| id.clone())
            .collect())
    }

    async fn update_primary_region(
        &self,
        region: &str,
        key_id: &str,
        new_primary_region: &str,
    ) -> KmsResult<()> {
        const OP: Op = Op::UpdatePrimaryRegion;
        self.enter(region, OP).await?;
        let mut s = self.lock();
        let id = s.resolve(OP, region, key_id)?;
        let arn = s.arn(region, &id);
        let primary = s.keys[&(region.to_string(), id.clone())].clone();
        // Also what a caller meets while a previous update is still propagating.
        if primary.multi_region != Some(MultiRegionKeyType::Primary) {
            return Err(err(
                ErrorKind::UnsupportedOperation,
                OP,
                region,
                "UnsupportedOperationException",
                format!("{arn} is not a multi-Region primary key."),
            ));
        }
        if new_primary_region == region
            || !kms_replicator::region::is_region_name(new_primary_region)
        {
            return Err(err(
                ErrorKind::Other,
                OP,
                region,
                "ValidationException",
                format!("PrimaryRegion {new_primary_region} is not valid for {arn}"),
            ));
        }
        promotable(OP, region, &arn, primary.state)?;
        let new_arn = s.arn(new_primary_region, &id);
        let Some(replica) = s
            .keys
            .get(&(new_primary_region.to_string(), id.clone()))
            .cloned()
        else {
            return Err(err(
                ErrorKind::NotFound,
                OP,
                region,
                "NotFoundException",
                format!("Key '{new_arn}' does not exist"),
            ));
        };
        if s.down.iter().any(|r| r == new_primary_region) {
            return Err(err(
                ErrorKind::Internal,
                OP,
                region,
                "KMSInternalException",
                format!("KMS in {new_primary_region} is not available"),
            ));
        }
        promotable(OP, region, &new_arn, replica.state)?;
        // One UpdatePrimaryRegion counts as a request in each of the two Regions.
        s.charge(new_primary_region, OP).map_err(|mut e| {
            e.region = region.to_string();
            e
        })?;
        let until = Instant::now() + s.updating_for;
        for k in s.keys.values_mut().filter(|k| k.key_id == id) {
            k.primary_region = new_primary_region.to_string();
            k.multi_region = Some(if k.region == new_primary_region {
                MultiRegionKeyType::Primary
            } else {
                MultiRegionKeyType::Replica
            });
            if k.region == region || k.region == new_primary_region {
                k.state = KeyState::Updating;
                k.settles = Some((until, KeyState::Enabled));
            }
        }
        s.settle_at(until);
        let params = json!({"keyId": key_id, "primaryRegion": new_primary_region});
        s.push_record(
            trail::Record::new(region, OP, &self.caller, params)
                .response(json!({"keyId": arn}))
                .key(&arn),
        );
        // The new primary's Region logs the call KMS made there; it names no previous Region.
        let params = json!({"keyId": new_arn, "primaryRegion": new_primary_region});
        s.push_record(
            trail::Record::new(new_primary_region, OP, &self.caller, params)
                .invoked_by_kms()
                .response(json!({"keyId": new_arn})),
        );
        Ok(())
    }
}

/// UpdatePrimaryRegion needs both keys `Enabled` when it starts (the key-state table's errors).
fn promotable(op: Op, region: &str, arn: &str, state: KeyState) -> KmsResult<()> {
    let (kind, code, what) = match state {
        KeyState::Enabled => return Ok(()),
        KeyState::Disabled => (ErrorKind::Disabled, "DisabledException", "is disabled"),
        KeyState::PendingDeletion | KeyState::PendingReplicaDeletion => (
            ErrorKind::InvalidState,
            "KMSInvalidStateException",
            "is pending deletion",
        ),
        KeyState::Creating => (
            ErrorKind::InvalidState,
            "KMSInvalidStateException",
            "is creating",
        ),
        KeyState::Updating => (
            ErrorKind::InvalidState,
            "KMSInvalidStateException",
            "is updating",
        ),
        KeyState::PendingImport => (
            ErrorKind::InvalidState,
            "KMSInvalidStateException",
            "is pending import",
        ),
        KeyState::Unavailable => (
            ErrorKind::InvalidState,
            "KMSInvalidStateException",
            "is unavailable",
        ),
    };
    Err(err(kind, op, region, code, format!("{arn} {what}.")))
}

impl Twin {
    /// The key ids of a Region as the Resource Groups Tagging API's `GetResources` sees them,
    /// for the HTTP server's GetResources (any tag filters): recorded, stalled and failed as
    /// the operation `GetResources`, like [`TagIndex::tagged_keys`].
    pub async fn tag_index_key_ids(&self, region: &str) -> KmsResult<Vec<String>> {
        self.enter(region, Op::GetResources).await?;
        let s = self.lock();
        Ok(s.keys
            .keys()
            .filter(|(r, _)| r == region)
            .map(|(_, id)| id.clone())
            .collect())
    }
}

/// The twin's Resource Groups Tagging API: GetResources for `kms:key` with one tag key. It
/// lists replicas as well as primaries, like the real index, and sees tag changes at once.
#[async_trait]
impl TagIndex for Twin {
    async fn tagged_keys(&self, region: &str, tag_key: &str) -> KmsResult<Vec<TaggedKey>> {
        self.enter(region, Op::GetResources).await?;
        let s = self.lock();
        Ok(s.keys
            .iter()
            .filter(|((r, _), _)| r == region)
            .filter_map(|((r, id), k)| {
                Some(TaggedKey {
                    arn: s.arn(r, id),
                    value: k.tags.get(tag_key)?.clone(),
                })
            })
            .collect())
    }
}

/// The twin's EventBridge: PutEvents on the audit bus, recorded for inspection.
#[async_trait]
impl AuditSink for Twin {
    async fn publish(&self, events: &[AuditEvent]) -> Result<(), AuditError> {
        let mut s = self.lock();
        if s.audit_down {
            return Err(AuditError("EventBridge did not answer".into()));
        }
        s.audit.extend_from_slice(events);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
