//! ARNs of KMS keys and aliases.

/// The parts of `arn:<partition>:kms:<region>:<account>:<resource>` that matter here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsArn<'a> {
    pub partition: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    /// `key/<id>` or `alias/<name>`
    pub resource: &'a str,
}

pub fn parse_kms_arn(s: &str) -> Option<KmsArn<'_>> {
    let mut parts = s.splitn(6, ':');
    let (arn, partition, service, region, account, resource) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if arn != "arn" || service != "kms" || region.is_empty() {
        return None;
    }
    Some(KmsArn {
        partition,
        region,
        account,
        resource,
    })
}

/// The key id inside a key ARN, or the input itself when it is already an id.
pub fn key_id_of(key: &str) -> &str {
    match parse_kms_arn(key) {
        Some(arn) => arn.resource.strip_prefix("key/").unwrap_or(arn.resource),
        None => key,
    }
}

/// The Region named by a key or alias ARN, if the reference is an ARN.
pub fn region_of(key: &str) -> Option<&str> {
    parse_kms_arn(key).map(|a| a.region)
}

pub fn key_arn(partition: &str, region: &str, account: &str, key_id: &str) -> String {
    format!("arn:{partition}:kms:{region}:{account}:key/{key_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_and_alias_arns_parse() {
        let a = parse_kms_arn("arn:aws:kms:us-west-2:111122223333:key/mrk-1").unwrap();
        assert_eq!(
            (a.region, a.account, a.resource),
            ("us-west-2", "111122223333", "key/mrk-1")
        );
        let a = parse_kms_arn("arn:aws-us-gov:kms:us-gov-west-1:1:alias/app").unwrap();
        assert_eq!((a.partition, a.resource), ("aws-us-gov", "alias/app"));
        assert!(parse_kms_arn("arn:aws:s3:::bucket").is_none());
        assert!(parse_kms_arn("mrk-1").is_none());
    }

    #[test]
    fn key_id_comes_out_of_arns_and_ids_pass_through() {
        assert_eq!(key_id_of("arn:aws:kms:us-west-2:1:key/mrk-1"), "mrk-1");
        assert_eq!(key_id_of("mrk-1"), "mrk-1");
        assert_eq!(key_id_of("alias/app"), "alias/app");
    }
}
