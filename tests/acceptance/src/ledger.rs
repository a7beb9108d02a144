//! What this run made, written down before or as soon as it is made: the key id, the Regions it
//! was seen in, the alias names. Cleanup acts on nothing else. With a file, every change is
//! saved at once, so that a run that was killed can still be cleaned up (`--cleanup`); the file
//! is removed when cleanup has left nothing behind.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Made {
    pub run_id: String,
    pub home_region: String,
    /// Every Region the run asked for replicas in (cleanup looks there too).
    pub replica_regions: Vec<String>,
    pub key_id: Option<String>,
    pub key_arn: Option<String>,
    /// The replication tag key the run used (cleanup removes it from the primary).
    pub tag_key: String,
    /// Regions where the key was seen.
    pub key_regions: BTreeSet<String>,
    /// Alias names, recorded before CreateAlias is sent.
    pub aliases: BTreeSet<String>,
}

#[derive(Clone)]
pub struct Ledger {
    made: Arc<Mutex<Made>>,
    file: Option<PathBuf>,
}

impl Ledger {
    /// A new ledger. A file that already exists holds what an earlier run left: it is not
    /// overwritten.
    pub fn create(made: Made, file: Option<&Path>) -> Result<Ledger, String> {
        if let Some(f) = file {
            if f.exists() {
                return Err(format!(
                    "{} holds what an earlier run made and did not clean up: run \
                     `kms-acceptance --cleanup --ledger {}` (make acceptance-cleanup) first",
                    f.display(),
                    f.display()
                ));
            }
        }
        let ledger = Ledger {
            made: Arc::new(Mutex::new(made)),
            file: file.map(Path::to_path_buf),
        };
        ledger.save()?;
        Ok(ledger)
    }

    /// The ledger an earlier run saved.
    pub fn load(file: &Path) -> Result<Ledger, String> {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read the ledger {}: {e}", file.display()))?;
        let made: Made = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not a ledger of this harness: {e}", file.display()))?;
        Ok(Ledger {
            made: Arc::new(Mutex::new(made)),
            file: Some(file.to_path_buf()),
        })
    }

    pub fn made(&self) -> Made {
        self.made.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn change(&self, f: impl FnOnce(&mut Made)) {
        f(&mut self.made.lock().unwrap_or_else(|p| p.into_inner()));
        if let Err(e) = self.save() {
            eprintln!("kms-acceptance: {e}");
        }
    }

    pub fn key(&self, key_id: &str, arn: &str, region: &str) {
        self.change(|m| {
            m.key_id = Some(key_id.to_string());
            m.key_arn = Some(arn.to_string());
            m.key_regions.insert(region.to_string());
        });
    }

    pub fn key_seen_in(&self, region: &str) {
        if !self.made().key_regions.contains(region) {
            self.change(|m| {
                m.key_regions.insert(region.to_string());
            });
        }
    }

    pub fn alias(&self, name: &str) {
        self.change(|m| {
            m.aliases.insert(name.to_string());
        });
    }

    /// Cleanup left nothing behind: the file has no more use.
    pub fn close(&self) {
        if let Some(f) = &self.file {
            let _ = std::fs::remove_file(f);
        }
    }

    fn save(&self) -> Result<(), String> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let text = serde_json::to_string_pretty(&self.made()).map_err(|e| e.to_string())?;
        if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        // Written aside, then renamed: a run killed mid-write leaves the previous ledger whole.
        let partial = file.with_extension("partial");
        std::fs::write(&partial, text)
            .and_then(|_| std::fs::rename(&partial, file))
            .map_err(|e| format!("cannot write the ledger {}: {e}", file.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("kms-acceptance-ledger-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join(name);
        let _ = std::fs::remove_file(&f);
        f
    }

    #[test]
    fn what_a_run_makes_is_on_disk_at_once_and_reads_back_the_same() {
        let f = temp("a.json");
        let l = Ledger::create(
            Made {
                run_id: "r1".into(),
                home_region: "us-east-1".into(),
                ..Made::default()
            },
            Some(&f),
        )
        .unwrap();
        l.key(
            "mrk-1",
            "arn:aws:kms:us-east-1:111122223333:key/mrk-1",
            "us-east-1",
        );
        l.alias("alias/kms-replicator-acceptance-r1");
        l.key_seen_in("us-west-2");
        let back = Ledger::load(&f).unwrap().made();
        assert_eq!(back, l.made());
        assert_eq!(back.key_id.as_deref(), Some("mrk-1"));
        assert_eq!(back.key_regions.len(), 2);
        l.close();
        assert!(!f.exists());
    }

    #[test]
    fn a_ledger_an_earlier_run_left_is_never_overwritten() {
        let f = temp("b.json");
        std::fs::write(&f, "{}").unwrap();
        let e = Ledger::create(Made::default(), Some(&f)).err().unwrap();
        assert!(e.contains("--cleanup --ledger"), "{e}");
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "{}");
        assert!(
            Ledger::load(&f).is_err(),
            "{{}} lacks the fields of a ledger"
        );
        std::fs::remove_file(&f).unwrap();
    }
}
