//! What the twin holds: one key store per Region, the aliases, what it recorded (the trail,
//! the audit events, the call log) and the knobs' settings; the [`Twin`] handle that shares
//! it; and the lookups every operation makes (resolving a key reference, a key's
//! `KeyMetadata`, the ARN, the state rule of the management calls).

use crate::auth::{Authorization, Check, Identities, KeyFacts, REPLICATE_ROLE};
use crate::trail;
use kms_replicator::arn::{key_arn, parse_kms_arn};
use kms_replicator::model::{KeyInfo, KeyState, MultiRegionConfig, MultiRegionKeyType};
use kms_replicator::op::Op;
use kms_replicator::port::{AuditEvent, ErrorKind, KmsError, KmsResult};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub const DEFAULT_ACCOUNT: &str = crate::auth::ACCOUNT;

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
    /// DeletionDate while `PendingDeletion`, milliseconds since the epoch: the moment of the
    /// ScheduleKeyDeletion plus its waiting period.
    pub deletion_ms: Option<u64>,
    /// Key spec, key usage and origin: shared by related multi-Region keys.
    pub kind: crate::kinds::KeyKind,
    /// When a transient state (Creating, Updating) ends, and the state it ends in.
    pub(crate) settles: Option<(Instant, KeyState)>,
    /// `CurrentKeyMaterialId` (symmetric encryption keys): shared by related keys; `None`
    /// for an imported-material key until its material is imported.
    pub current_material: Option<String>,
}

/// A recorded call: which identity called which operation in which Region, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub region: String,
    pub op: Op,
    pub caller: String,
    pub at: Instant,
}

/// A one-shot fault: the next `remaining` calls of `op` (any when `None`) in `region` (any
/// when `None`) fail with the AWS error `code`.
#[derive(Debug, Clone)]
pub(crate) struct Fault {
    pub(crate) region: Option<String>,
    pub(crate) op: Option<Op>,
    pub(crate) kind: ErrorKind,
    pub(crate) code: String,
    pub(crate) remaining: usize,
}

/// A stalled endpoint: calls of `op` (any when `None`) in `region` (any when `None`) are
/// accepted and answered after `delay`, or never when `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stall {
    pub(crate) region: Option<String>,
    pub(crate) op: Option<Op>,
    pub(crate) delay: Option<Duration>,
}

/// One (Region, operation)'s requests in the current one-second window.
#[derive(Debug, Default)]
pub(crate) struct Bucket {
    pub(crate) window_start: Option<Instant>,
    pub(crate) used: u32,
}

/// The aliases of every Region: by (Region, name), ordered, and by the key each names, so
/// a key's authorization context (`kms:ResourceAliases`, on every call that names a key) does
/// not scan every alias of the account.
#[derive(Debug, Default)]
pub(crate) struct Aliases {
    by_name: BTreeMap<(String, String), String>,
    by_key: HashMap<(String, String), BTreeSet<String>>,
}

impl Aliases {
    /// The key id `name` points to in `region`.
    pub(crate) fn get(&self, region: &str, name: &str) -> Option<&String> {
        self.by_name.get(&(region.to_string(), name.to_string()))
    }

    /// Points `name` in `region` at `id`, replacing where it pointed before.
    pub(crate) fn insert(&mut self, region: &str, name: &str, id: &str) {
        let old = self
            .by_name
            .insert((region.to_string(), name.to_string()), id.to_string());
        if let Some(old) = old {
            self.unlink(region, &old, name);
        }
        self.by_key
            .entry((region.to_string(), id.to_string()))
            .or_default()
            .insert(name.to_string());
    }

    pub(crate) fn remove(&mut self, region: &str, name: &str) {
        if let Some(id) = self.by_name.remove(&(region.to_string(), name.to_string())) {
            self.unlink(region, &id, name);
        }
    }

    /// Removes every alias of the key `id` in `region`.
    pub(crate) fn remove_key(&mut self, region: &str, id: &str) {
        for name in self
            .by_key
            .remove(&(region.to_string(), id.to_string()))
            .unwrap_or_default()
        {
            self.by_name.remove(&(region.to_string(), name));
        }
    }

    /// The aliases of `region` in name order: (name, key id).
    pub(crate) fn in_region<'a>(
        &'a self,
        region: &'a str,
    ) -> impl Iterator<Item = (&'a String, &'a String)> + 'a {
        self.by_name
            .range((region.to_string(), String::new())..)
            .take_while(move |((r, _), _)| r == region)
            .map(|((_, name), id)| (name, id))
    }

    /// The names of the aliases of the key `id` in `region`, in name order.
    pub(crate) fn of_key(&self, region: &str, id: &str) -> impl Iterator<Item = &String> {
        self.by_key
            .get(&(region.to_string(), id.to_string()))
            .into_iter()
            .flatten()
    }

    fn unlink(&mut self, region: &str, id: &str, name: &str) {
        let slot = (region.to_string(), id.to_string());
        if let Some(names) = self.by_key.get_mut(&slot) {
            names.remove(name);
            if names.is_empty() {
                self.by_key.remove(&slot);
            }
        }
    }
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) account: String,
    pub(crate) keys: BTreeMap<(String, String), TwinKey>,
    pub(crate) aliases: Aliases,
    pub(crate) trail: Vec<Value>,
    pub(crate) audit: Vec<AuditEvent>,
    pub(crate) calls: Vec<Call>,
    // The knobs: set in faults.rs and setup.rs, applied on the request path and by the
    // operations.
    pub(crate) audit_down: bool,
    pub(crate) faults: Vec<Fault>,
    pub(crate) down: Vec<String>,
    /// Opt-in Regions the account has not enabled ([`Twin::set_region_enabled`]).
    pub(crate) not_enabled: Vec<String>,
    /// (Region, key spec or family) pairs KMS there does not offer
    /// ([`Twin::set_key_spec_unavailable`]).
    pub(crate) unavailable_specs: Vec<(String, String)>,
    pub(crate) stalls: Vec<Stall>,
    /// Bumped whenever a stall is cleared, to wake the calls that wait for it.
    pub(crate) stalls_changed: tokio::sync::watch::Sender<u64>,
    pub(crate) latency: Duration,
    pub(crate) creating_for: Duration,
    pub(crate) updating_for: Duration,
    /// Requests per second allowed per (Region, operation); beyond it ThrottlingException.
    pub(crate) rate_limits: HashMap<Op, u32>,
    pub(crate) buckets: HashMap<(String, Op), Bucket>,
    pub(crate) throttled: usize,
    pub(crate) counter: u64,
    /// The last CreationDate handed out, so that creation order is never a tie.
    pub(crate) last_created_ms: u64,
    /// The earliest time a transient state (Creating, Updating) ends, if any key has one:
    /// [`State::settle`] looks at the keys only then, so a call costs the same with 30,000
    /// keys as with 3.
    pub(crate) next_settle: Option<Instant>,
    /// Who may do what: identity policies and key policies, evaluated for every check.
    pub(crate) auth: Authorization,
    /// Every check made, once a test asks for them (operations hold the state shared, so the
    /// record has its own lock).
    pub(crate) checks_made: Option<Mutex<Vec<crate::auth::CheckRecord>>>,
    /// Key material, each key's last use per Region, and since when use is recorded.
    pub(crate) crypto: crate::crypto::Store,
}

#[derive(Clone)]
pub struct Twin {
    state: Arc<Mutex<State>>,
    pub(crate) caller: String,
}

impl Default for Twin {
    fn default() -> Self {
        Twin::new()
    }
}

pub(crate) fn err(
    kind: ErrorKind,
    op: Op,
    region: &str,
    code: &str,
    msg: impl Into<String>,
) -> KmsError {
    KmsError::new(kind, op, region, code, msg)
}

/// What KMS answers a call that the state of the key `arn` does not allow (the key-state
/// table): DisabledException for a disabled key, KMSInvalidStateException `<arn> is ...` for
/// the others.
pub(crate) fn refused_in(op: Op, region: &str, arn: &str, state: KeyState) -> KmsError {
    let what = match state {
        KeyState::Disabled => {
            let msg = format!("{arn} is disabled.");
            return err(ErrorKind::Disabled, op, region, "DisabledException", msg);
        }
        KeyState::PendingDeletion | KeyState::PendingReplicaDeletion => "is pending deletion",
        KeyState::PendingImport => "is pending import",
        KeyState::Creating => "is creating",
        KeyState::Updating => "is updating",
        KeyState::Unavailable => "is unavailable",
        KeyState::Enabled => "is enabled",
    };
    let msg = format!("{arn} {what}.");
    err(
        ErrorKind::InvalidState,
        op,
        region,
        "KMSInvalidStateException",
        msg,
    )
}

impl Twin {
    pub fn new() -> Twin {
        Twin {
            state: Arc::new(Mutex::new(State {
                account: DEFAULT_ACCOUNT.into(),
                keys: BTreeMap::new(),
                aliases: Aliases::default(),
                trail: Vec::new(),
                audit: Vec::new(),
                calls: Vec::new(),
                audit_down: false,
                faults: Vec::new(),
                down: Vec::new(),
                not_enabled: Vec::new(),
                unavailable_specs: Vec::new(),
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
                auth: Authorization::on(Identities::for_config(&default_deployment())),
                checks_made: None,
                crypto: Default::default(),
            })),
            caller: REPLICATE_ROLE.into(),
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

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The deployment a new twin's roles come from, until [`Twin::deploy`] says otherwise: the
/// repository's template with the Regions the tests use, `RemovalPolicy=Retain`.
pub fn default_deployment() -> kms_replicator::Config {
    kms_replicator::Config::new(&["us-east-1", "us-west-2", "eu-west-1"])
}

impl State {
    /// What the request context says about a key that exists.
    pub(crate) fn key_facts(&self, region: &str, id: &str) -> KeyFacts {
        let k = &self.keys[&(region.to_string(), id.to_string())];
        KeyFacts {
            arn: self.arn(region, id),
            region: region.to_string(),
            policy: k.policy.clone(),
            tags: k.tags.clone(),
            multi_region_type: k.multi_region.map(|t| match t {
                MultiRegionKeyType::Primary => "PRIMARY",
                MultiRegionKeyType::Replica => "REPLICA",
            }),
            aliases: self.aliases.of_key(region, id).cloned().collect(),
            origin: k.kind.origin.clone(),
            spec: k.kind.spec.clone(),
            usage: k.kind.usage.clone(),
        }
    }

    /// Decides one authorization that `op`, called by `caller` in `region`, needs.
    pub(crate) fn authorize(
        &self,
        caller: &str,
        op: Op,
        region: &str,
        check: &Check,
    ) -> KmsResult<()> {
        if let Some(record) = &self.checks_made {
            record
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(self.auth.record_of(caller, check));
        }
        self.auth.authorize(caller, op, region, check)
    }

    /// `op` on the existing key `id` of `region`, with extra context from `more`.
    pub(crate) fn authorize_key(
        &self,
        caller: &str,
        op: Op,
        region: &str,
        id: &str,
        more: impl FnOnce(Check) -> Check,
    ) -> KmsResult<()> {
        let check = more(Check::on_key(op, &self.key_facts(region, id)));
        self.authorize(caller, op, region, &check)
    }

    /// Ends transient states whose time has come.
    pub(crate) fn settle(&mut self) {
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
    pub(crate) fn settle_at(&mut self, at: Instant) {
        self.next_settle = Some(self.next_settle.map_or(at, |n| n.min(at)));
    }

    pub(crate) fn next_n(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    pub(crate) fn push_record(&mut self, rec: trail::Record) {
        let n = self.next_n();
        let account = self.account.clone();
        self.trail.push(rec.into_event(&account, n));
    }

    /// Finds the key a reference names in `region`: key id, key ARN, alias name or alias ARN.
    pub(crate) fn resolve(&self, op: Op, region: &str, key: &str) -> KmsResult<String> {
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
            return self.aliases.get(region, &local).cloned().ok_or_else(|| {
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

    pub(crate) fn get(&mut self, region: &str, id: &str) -> &mut TwinKey {
        self.keys
            .get_mut(&(region.to_string(), id.to_string()))
            .expect("resolved key exists")
    }

    pub(crate) fn arn(&self, region: &str, id: &str) -> String {
        key_arn("aws", region, &self.account, id)
    }

    /// The Regions that hold keys, each once, in order: the map is ordered by Region first,
    /// so one seek per Region finds the next (a key's context must not scan every key).
    pub(crate) fn regions(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut from = (String::new(), String::new());
        while let Some(((r, _), _)) = self.keys.range(from..).next() {
            // Every (r, id) sorts before (r + "\0", ""), the next Region's first key or after.
            from = (format!("{r}\0"), String::new());
            out.push(r.clone());
        }
        out
    }

    /// The keys of one Region, by key id: the map is ordered by Region first, so they are one
    /// range of it.
    pub(crate) fn keys_in<'a>(
        &'a self,
        region: &'a str,
    ) -> impl Iterator<Item = (&'a String, &'a TwinKey)> + 'a {
        self.keys
            .range((region.to_string(), String::new())..)
            .take_while(move |((r, _), _)| r == region)
            .map(|((_, id), k)| (id, k))
    }

    /// The key `id` in every Region that holds it (a multi-Region key and its replicas share
    /// their key id), in Region order.
    pub(crate) fn related<'a>(&'a self, id: &'a str) -> impl Iterator<Item = &'a TwinKey> + 'a {
        self.regions()
            .into_iter()
            .filter_map(move |r| self.keys.get(&(r, id.to_string())))
    }

    pub(crate) fn info(&self, region: &str, id: &str) -> KeyInfo {
        let k = &self.keys[&(region.to_string(), id.to_string())];
        let multi_region = k.multi_region.map(|key_type| MultiRegionConfig {
            key_type,
            primary_region: k.primary_region.clone(),
            replica_regions: self
                .related(&k.key_id)
                .filter(|o| o.region != k.primary_region)
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
            deletion_date: k
                .deletion_ms
                .filter(|_| k.state == kms_replicator::model::KeyState::PendingDeletion),
            imported_material: k.kind.is_imported(),
            current_key_material_id: k.current_material.clone(),
        }
    }

    pub(crate) fn next_creation_date(&mut self) -> u64 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        self.last_created_ms = now.max(self.last_created_ms + 1);
        self.last_created_ms
    }

    /// KMSInvalidStateException for keys pending deletion (the management calls' rule).
    pub(crate) fn manageable(&self, op: Op, region: &str, id: &str) -> KmsResult<()> {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alias_table_answers_by_name_and_by_key_after_every_change() {
        let mut a = Aliases::default();
        a.insert("us-east-1", "alias/a", "k1");
        a.insert("us-east-1", "alias/b", "k1");
        a.insert("us-west-2", "alias/a", "k1");
        let of = |a: &Aliases, r: &str, id: &str| a.of_key(r, id).cloned().collect::<Vec<_>>();
        assert_eq!(of(&a, "us-east-1", "k1"), ["alias/a", "alias/b"]);
        // Retargeting moves the name from one key's list to the other's.
        a.insert("us-east-1", "alias/a", "k2");
        assert_eq!(of(&a, "us-east-1", "k1"), ["alias/b"]);
        assert_eq!(of(&a, "us-east-1", "k2"), ["alias/a"]);
        assert_eq!(
            a.get("us-east-1", "alias/a").map(String::as_str),
            Some("k2")
        );
        a.remove("us-east-1", "alias/b");
        assert!(of(&a, "us-east-1", "k1").is_empty());
        assert_eq!(a.get("us-east-1", "alias/b"), None);
        // Another Region's alias of the same name and key is its own.
        assert_eq!(of(&a, "us-west-2", "k1"), ["alias/a"]);
        a.remove_key("us-east-1", "k2");
        assert_eq!(a.in_region("us-east-1").count(), 0);
        let west: Vec<_> = a.in_region("us-west-2").collect();
        assert_eq!(west, [(&"alias/a".to_string(), &"k1".to_string())]);
    }

    #[test]
    fn each_region_is_listed_once_and_a_key_is_found_in_every_region_that_holds_it() {
        let twin = Twin::new().with_caller(crate::auth::OPERATOR_ROLE);
        // A Region whose name is a prefix of another's must not hide it.
        for region in ["us-east-1", "us-east-10", "eu-west-1"] {
            twin.create_key(region, true, None, "", &[]);
        }
        let s = twin.lock();
        assert_eq!(s.regions(), ["eu-west-1", "us-east-1", "us-east-10"]);
        let mut s = s;
        let ((_, id), k) = s
            .keys
            .iter()
            .next()
            .map(|(k, v)| (k.clone(), v.clone()))
            .unwrap();
        for region in ["us-east-1", "us-east-10"] {
            let mut copy = k.clone();
            copy.region = region.to_string();
            s.keys.insert((region.to_string(), id.clone()), copy);
        }
        let related: Vec<_> = s.related(&id).map(|k| k.region.as_str()).collect();
        assert_eq!(related, ["eu-west-1", "us-east-1", "us-east-10"]);
        assert_eq!(s.related("no-such-key").count(), 0);
    }
}
