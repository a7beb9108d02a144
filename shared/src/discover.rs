//! Finding the keys the replicator manages: multi-Region primaries carrying the replication
//! tag, Region by Region.

use crate::config::Config;
use crate::model::KeyInfo;
use crate::port::{Kms, KmsError};

/// The managed primaries whose primary Region is `region`.
pub async fn managed_primaries(
    kms: &dyn Kms,
    cfg: &Config,
    region: &str,
) -> Result<Vec<KeyInfo>, KmsError> {
    let mut out = Vec::new();
    for id in kms.list_keys(region).await? {
        // Multi-Region key ids start with "mrk-": single-Region keys need no further call.
        if !id.starts_with("mrk-") {
            continue;
        }
        let info = kms.describe_key(region, &id).await?;
        if !info.is_primary() || info.state.is_pending_deletion() {
            continue;
        }
        let tags = kms.list_resource_tags(region, &id).await?;
        if tags.iter().any(|t| t.key == cfg.tag_key) {
            out.push(info);
        }
    }
    Ok(out)
}
