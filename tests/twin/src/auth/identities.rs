//! Who exists in the twin's account and what their identity policies allow: the function roles
//! as `template.yaml` deploys them (read from the template with the deployment's parameters,
//! never copied into code), and the people and teams the tests act as.

use authz::cfn::{Stack, Template};
use authz::roles::roles;
use authz::Policy;
use kms_replicator::config::{PolicyMode, RemovalPolicy};
use kms_replicator::Config;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// The stack name the twin deploys the template as; it names the roles.
pub const STACK_NAME: &str = "kms-replicator";
pub const ACCOUNT: &str = "111122223333";
/// The Region of the home stack.
pub const HOME_REGION: &str = "us-east-1";

/// The function roles as CloudFormation names them (`<stack>-<LogicalId>`, the random suffix
/// left out), under the template's IAM path.
pub const REPLICATE_ROLE: &str =
    "arn:aws:iam::111122223333:role/kms-replicator/kms-replicator-ReplicateFunctionRole";
pub const RECONCILE_ROLE: &str =
    "arn:aws:iam::111122223333:role/kms-replicator/kms-replicator-ReconcileFunctionRole";
pub const FAILOVER_ROLE: &str =
    "arn:aws:iam::111122223333:role/kms-replicator/kms-replicator-FailoverFunctionRole";

/// The three function roles.
pub const FUNCTION_ROLES: [&str; 3] = [REPLICATE_ROLE, RECONCILE_ROLE, FAILOVER_ROLE];

/// A person with administrator access (`*` on `*`), as key owners and incident responders are.
pub const ADMIN_USER: &str = "arn:aws:iam::111122223333:user/Alice";
/// A role with administrator access, for tests of the twin's KMS semantics made by a role.
pub const OPERATOR_ROLE: &str = "arn:aws:iam::111122223333:role/operator";
/// Another team of the account, which administers its own keys (`kms:*`).
pub const TEAM_B_ROLE: &str = "arn:aws:iam::111122223333:role/team-b";
/// A principal allowed to tag and untag any key, and to read keys and tags, nothing more: the
/// narrow permission the security model is tested against (docs/security-model.md).
pub const TAGGER_ROLE: &str = "arn:aws:iam::111122223333:role/tagger";

/// Whether `caller` is one of the replicator's roles: a role under the template's IAM path.
pub fn is_replicator(caller: &str) -> bool {
    caller.contains(":role/kms-replicator/")
}

/// A principal and its identity policies.
#[derive(Debug, Clone)]
pub struct Identity {
    pub arn: String,
    pub policies: Vec<Policy>,
}

/// Everyone the twin knows. An unknown caller has no identity policy: only a key policy that
/// names it directly lets it do anything.
#[derive(Debug, Clone, Default)]
pub struct Identities {
    by_arn: BTreeMap<String, Arc<Identity>>,
}

impl Identities {
    pub fn policies(&self, caller: &str) -> Vec<Policy> {
        self.by_arn
            .get(caller)
            .map(|i| i.policies.clone())
            .unwrap_or_default()
    }

    pub fn get(&self, caller: &str) -> Option<&Identity> {
        self.by_arn.get(caller).map(Arc::as_ref)
    }

    pub fn insert(&mut self, arn: &str, policies: Vec<Policy>) {
        self.by_arn.insert(
            arn.to_string(),
            Arc::new(Identity {
                arn: arn.to_string(),
                policies,
            }),
        );
    }

    pub fn arns(&self) -> impl Iterator<Item = &str> {
        self.by_arn.keys().map(String::as_str)
    }

    /// The people of the tests: [`ADMIN_USER`] and [`OPERATOR_ROLE`] with administrator
    /// access, [`TEAM_B_ROLE`] with KMS access.
    pub fn people() -> Identities {
        let mut ids = Identities::default();
        let admin = json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "AdministratorAccess", "Effect": "Allow", "Action": "*", "Resource": "*"}
        ]});
        let admin = Policy::parse(&admin).expect("static policy");
        ids.insert(ADMIN_USER, vec![admin.clone()]);
        ids.insert(OPERATOR_ROLE, vec![admin]);
        let key_admin = json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "KeyAdministrator", "Effect": "Allow", "Action": "kms:*", "Resource": "*"}
        ]});
        ids.insert(
            TEAM_B_ROLE,
            vec![Policy::parse(&key_admin).expect("static policy")],
        );
        let tagger = json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "TagKeysOnly", "Effect": "Allow", "Resource": "*", "Action": [
                "kms:TagResource", "kms:UntagResource", "kms:ListResourceTags",
                "kms:DescribeKey", "kms:ListAliases"
            ]}
        ]});
        ids.insert(
            TAGGER_ROLE,
            vec![Policy::parse(&tagger).expect("static policy")],
        );
        ids
    }

    /// The people, and every role of `template` deployed with `parameters`.
    pub fn deployed(template: &Path, parameters: &[(&str, &str)]) -> Result<Identities, String> {
        let t = Template::load(
            template,
            Stack::new(STACK_NAME, ACCOUNT, HOME_REGION),
            parameters,
        )
        .map_err(|e| e.to_string())?;
        let mut ids = Identities::people();
        for r in roles(&t).map_err(|e| e.to_string())? {
            ids.insert(&r.arn, r.identity_policies());
        }
        Ok(ids)
    }

    /// The repository's `template.yaml` deployed with the parameters that give `cfg` (read once
    /// per distinct set of parameters).
    pub fn for_config(cfg: &Config) -> Identities {
        Identities::for_template(&repository_template(), cfg)
            .unwrap_or_else(|e| panic!("template.yaml cannot be deployed for {cfg:?}: {e}"))
    }

    /// `template` deployed with the parameters that give `cfg` (each template and set of
    /// parameters read once).
    pub fn for_template(template: &Path, cfg: &Config) -> Result<Identities, String> {
        let mut params = template_parameters(cfg);
        params.push(("(template)".into(), template.display().to_string()));
        static CACHE: OnceLock<Mutex<ByParameters>> = OnceLock::new();
        let cache = CACHE.get_or_init(Default::default);
        if let Some(ids) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(&params) {
            return Ok(ids.clone());
        }
        let borrowed: Vec<(&str, &str)> = params
            .iter()
            .filter(|(k, _)| k != "(template)")
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let ids = Identities::deployed(template, &borrowed)?;
        cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(params, ids.clone());
        Ok(ids)
    }
}

/// Identities already read, by the template parameters they were read with.
type ByParameters = BTreeMap<Vec<(String, String)>, Identities>;

/// The repository's SAM template.
pub fn repository_template() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml")
}

/// The template parameters a deployment with `cfg` is made with.
pub fn template_parameters(cfg: &Config) -> Vec<(String, String)> {
    let mut p = vec![
        ("AllowedRegions".to_string(), cfg.allowed_regions.join(" ")),
        ("ReplicationTagKey".to_string(), cfg.tag_key.clone()),
        (
            "PolicyMode".to_string(),
            match cfg.policy_mode {
                PolicyMode::Rewrite => "rewrite",
                PolicyMode::Verbatim => "verbatim",
                PolicyMode::Off => "off",
            }
            .to_string(),
        ),
    ];
    match cfg.removal {
        RemovalPolicy::Retain => p.push(("RemovalPolicy".into(), "Retain".into())),
        RemovalPolicy::ScheduleDeletion {
            pending_window_days,
        } => {
            p.push(("RemovalPolicy".into(), "ScheduleDeletion".into()));
            p.push((
                "PendingWindowInDays".into(),
                pending_window_days.to_string(),
            ));
        }
    }
    if cfg.managed_regions != cfg.allowed_regions {
        p.push(("ManagedRegions".into(), cfg.managed_regions.join(" ")));
    }
    if cfg.consent == kms_replicator::config::Consent::KeyPolicy {
        p.push(("Consent".into(), "key-policy".into()));
    }
    p.sort();
    p
}
