//! Who the twin lets do what: the deployment its roles come from, the undocumented context keys
//! it sets, extra principals a test needs (another team, a principal with one narrow
//! permission), or no authorization at all for tests of KMS's other semantics.

use crate::auth::{Authorization, Identities, Undocumented};
use crate::state::Twin;
use authz::Policy;
use kms_replicator::Config;
use std::collections::BTreeSet;
use std::path::Path;

impl Twin {
    /// The function roles are those of `template.yaml` deployed with the parameters that give
    /// `cfg` (AllowedRegions, RemovalPolicy, PolicyMode, ...); principals added with
    /// [`Twin::add_identity`] are kept.
    pub fn deploy(&self, cfg: &Config) -> &Twin {
        self.deploy_identities(Identities::for_config(cfg))
    }

    /// Like [`Twin::deploy`], from another copy of the template (`kms-twin --template`).
    pub fn deploy_template(&self, template: &Path, cfg: &Config) -> Result<&Twin, String> {
        Ok(self.deploy_identities(Identities::for_template(template, cfg)?))
    }

    fn deploy_identities(&self, mut ids: Identities) -> &Twin {
        let mut s = self.lock();
        for arn in s
            .auth
            .identities
            .arns()
            .map(str::to_string)
            .collect::<Vec<_>>()
        {
            if ids.get(&arn).is_none() {
                let policies = s.auth.identities.policies(&arn);
                ids.insert(&arn, policies);
            }
        }
        s.auth.identities = ids;
        self
    }

    /// A principal of the account and its identity policies (replacing any it had).
    pub fn add_identity(&self, arn: &str, policies: Vec<Policy>) {
        self.lock().auth.identities.insert(arn, policies);
    }

    /// Authorization on (the default) or off (tests of KMS semantics that are not about it).
    pub fn set_authorization(&self, enabled: bool) {
        self.lock().auth.enabled = enabled;
    }

    /// The context keys that AWS does not document for a check and that the twin sets; the
    /// others are left out of the request context.
    pub fn set_undocumented_keys(&self, present: BTreeSet<Undocumented>) {
        self.lock().auth.undocumented = present;
    }

    /// From now on, every authorization check is recorded (see [`Twin::checks_made`]).
    pub fn record_checks(&self) {
        self.lock().checks_made = Some(std::sync::Mutex::new(Vec::new()));
    }

    /// The checks recorded since [`Twin::record_checks`].
    pub fn checks_made(&self) -> Vec<crate::auth::CheckRecord> {
        self.lock()
            .checks_made
            .as_ref()
            .map(|m| m.lock().unwrap_or_else(|p| p.into_inner()).clone())
            .unwrap_or_default()
    }

    /// The twin's authorization as it stands (for tests that evaluate a check directly).
    pub fn authorization(&self) -> Authorization {
        self.lock().auth.clone()
    }
}
