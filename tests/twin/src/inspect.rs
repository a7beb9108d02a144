//! What tests read back from the twin: the call log, the CloudTrail records, the audit
//! events, a key as it stands, a Region's aliases, the account and its default key policy.

use crate::policy::default_policy;
use crate::state::{Call, Twin, TwinKey};
use kms_replicator::port::AuditEvent;
use serde_json::Value;
use std::collections::BTreeMap;

impl Twin {
    pub fn account(&self) -> String {
        self.lock().account.clone()
    }

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
            .in_region(region)
            .map(|(n, k)| (n.clone(), k.clone()))
            .collect()
    }

    pub fn default_policy(&self) -> String {
        default_policy(&self.lock().account)
    }
}
