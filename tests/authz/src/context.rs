//! The request context: the condition keys AWS sets for one authorization, and their values.
//! A key that is not set is absent, which the condition operators treat in their own way
//! (see [`crate::condition`]).

use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    /// Keys lowercased (condition keys are case-insensitive), with the names as set kept for
    /// messages.
    keys: BTreeMap<String, (String, Vec<String>)>,
}

impl Context {
    /// Sets a single-valued key.
    pub fn set(&mut self, key: &str, value: impl Into<String>) -> &mut Self {
        self.set_all(key, [value.into()])
    }

    /// Sets a multivalued key (`aws:TagKeys`); an empty list leaves it absent.
    pub fn set_all(&mut self, key: &str, values: impl IntoIterator<Item = String>) -> &mut Self {
        let values: Vec<String> = values.into_iter().collect();
        if values.is_empty() {
            self.keys.remove(&key.to_ascii_lowercase());
        } else {
            self.keys
                .insert(key.to_ascii_lowercase(), (key.to_string(), values));
        }
        self
    }

    pub fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.set(key, value);
        self
    }

    pub fn remove(&mut self, key: &str) -> &mut Self {
        self.keys.remove(&key.to_ascii_lowercase());
        self
    }

    pub fn get(&self, key: &str) -> Option<&[String]> {
        self.keys
            .get(&key.to_ascii_lowercase())
            .map(|(_, v)| v.as_slice())
    }

    pub fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Every key set, with its values, under the names it was set with.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.keys.values().map(|(k, v)| (k.as_str(), v.as_slice()))
    }
}
