//! The Resource Groups Tagging API's `GetResources` for KMS keys.

use super::api::KmsApi;
use super::error::{ApiError, ApiResult};
use super::wire::opt_str;
use kms_replicator::arn::key_arn;
use serde_json::{json, Value};

impl KmsApi {
    /// The Resource Groups Tagging API's `GetResources` for KMS keys: the keys of a Region
    /// whose tags pass every filter. Reads the twin's keys directly (one call, recorded, faulted
    /// and stalled as `GetResources`).
    pub async fn get_resources(&self, caller: &str, region: &str, body: &Value) -> ApiResult {
        let types: Vec<&str> = body
            .get("ResourceTypeFilters")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if !types.is_empty() && !types.iter().any(|t| *t == "kms" || *t == "kms:key") {
            return Ok(json!({"ResourceTagMappingList": [], "PaginationToken": ""}));
        }
        let filters = tag_filters(body);
        let per_page = match body.get("ResourcesPerPage").and_then(Value::as_u64) {
            None => 100,
            Some(n) if (1..=100).contains(&n) => n as usize,
            Some(n) => {
                return Err(ApiError::aws(
                    400,
                    "InvalidParameterException",
                    format!("ResourcesPerPage must be between 1 and 100, not {n}"),
                ))
            }
        }
        .min(self.page_cap());
        let keys = self.twin.with_caller(caller).tag_index(region).await?;
        let matching: Vec<_> = keys
            .iter()
            .filter(|(_, tags)| {
                filters.iter().all(|(fk, fv)| {
                    tags.get(fk)
                        .is_some_and(|v| fv.is_empty() || fv.contains(v))
                })
            })
            .collect();
        let start = match opt_str(body, "PaginationToken").filter(|t| !t.is_empty()) {
            None => 0,
            Some(t) => t
                .strip_prefix("twin-page-")
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|n| *n <= matching.len())
                .ok_or_else(|| {
                    ApiError::aws(
                        400,
                        "PaginationTokenExpiredException",
                        "Invalid pagination token",
                    )
                })?,
        };
        let end = (start + per_page).min(matching.len());
        let token = if end < matching.len() {
            format!("twin-page-{end}")
        } else {
            String::new()
        };
        // Only the page's keys become JSON: a listing of n keys costs O(n) per page, not more.
        let account = self.twin.account();
        let page: Vec<Value> = matching[start..end]
            .iter()
            .map(|(id, tags)| {
                json!({
                    "ResourceARN": key_arn("aws", region, &account, id),
                    "Tags": tags.iter().map(|(tk, tv)| json!({"Key": tk, "Value": tv})).collect::<Vec<_>>(),
                })
            })
            .collect();
        Ok(json!({"ResourceTagMappingList": page, "PaginationToken": token}))
    }
}

/// `TagFilters`: each tag key with the values it may have (any value when none are given).
fn tag_filters(body: &Value) -> Vec<(String, Vec<String>)> {
    body.get("TagFilters")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|f| {
                    let k = f.get("Key")?.as_str()?.to_string();
                    let vals = f
                        .get("Values")
                        .and_then(Value::as_array)
                        .map(|v| {
                            v.iter()
                                .filter_map(|x| x.as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default();
                    Some((k, vals))
                })
                .collect()
        })
        .unwrap_or_default()
}
