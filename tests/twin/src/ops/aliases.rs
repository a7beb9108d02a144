//! ListAliases, CreateAlias, UpdateAlias and DeleteAlias: alias names are unique per Region,
//! and each Region's aliases are its own.

use crate::auth::Check;
use crate::state::{err, State};
use crate::trail;
use kms_replicator::model::AliasEntry;
use kms_replicator::op::Op;
use kms_replicator::port::{ErrorKind, KmsResult};
use serde_json::json;

pub(crate) fn list_aliases(
    s: &State,
    caller: &str,
    region: &str,
    key_id: Option<&str>,
) -> KmsResult<Vec<AliasEntry>> {
    let check = Check::without_resource(Op::ListAliases, region);
    s.authorize(caller, Op::ListAliases, region, &check)?;
    let entry = |name: &String, id: &String| AliasEntry {
        name: name.clone(),
        target_key_id: Some(id.clone()),
    };
    Ok(match key_id {
        Some(k) => {
            let id = s.resolve(Op::ListAliases, region, k)?;
            s.aliases
                .of_key(region, &id)
                .map(|n| entry(n, &id))
                .collect()
        }
        None => s
            .aliases
            .in_region(region)
            .map(|(n, id)| entry(n, id))
            .collect(),
    })
}

pub(crate) fn create_alias(
    s: &mut State,
    caller: &str,
    region: &str,
    alias: &str,
    key_id: &str,
) -> KmsResult<()> {
    const OP: Op = Op::CreateAlias;
    alias_name_ok(OP, region, alias)?;
    let id = s.resolve(OP, region, key_id)?;
    authorize_alias(s, caller, OP, region, alias)?;
    s.authorize_key(caller, OP, region, &id, |c| c)?;
    s.manageable(OP, region, &id)?;
    if s.aliases.get(region, alias).is_some() {
        return Err(err(
            ErrorKind::AlreadyExists,
            OP,
            region,
            "AlreadyExistsException",
            format!(
                "An alias with the name arn:aws:kms:{region}:{}:{alias} already exists",
                s.account
            ),
        ));
    }
    s.aliases.insert(region, alias, &id);
    let arn = s.arn(region, &id);
    let params = json!({"aliasName": alias, "targetKeyId": key_id});
    s.push_record(
        trail::Record::new(region, OP, caller, params)
            .key(&arn)
            .alias(alias),
    );
    Ok(())
}

pub(crate) fn update_alias(
    s: &mut State,
    caller: &str,
    region: &str,
    alias: &str,
    key_id: &str,
) -> KmsResult<()> {
    const OP: Op = Op::UpdateAlias;
    alias_name_ok(OP, region, alias)?;
    let id = s.resolve(OP, region, key_id)?;
    authorize_alias(s, caller, OP, region, alias)?;
    s.authorize_key(caller, OP, region, &id, |c| c)?;
    s.manageable(OP, region, &id)?;
    let Some(old) = s.aliases.get(region, alias).cloned() else {
        return Err(err(
            ErrorKind::NotFound,
            OP,
            region,
            "NotFoundException",
            format!(
                "Alias arn:aws:kms:{region}:{}:{alias} is not found.",
                s.account
            ),
        ));
    };
    // UpdateAlias is authorized on the alias, the key it points to now and the new one.
    s.authorize_key(caller, OP, region, &old, |c| c)?;
    s.aliases.insert(region, alias, &id);
    let (arn, old_arn) = (s.arn(region, &id), s.arn(region, &old));
    let params = json!({"aliasName": alias, "targetKeyId": key_id});
    s.push_record(
        trail::Record::new(region, OP, caller, params)
            .key(&arn)
            .key(&old_arn)
            .alias(alias),
    );
    Ok(())
}

pub(crate) fn delete_alias(
    s: &mut State,
    caller: &str,
    region: &str,
    alias: &str,
) -> KmsResult<()> {
    const OP: Op = Op::DeleteAlias;
    let Some(id) = s.aliases.get(region, alias).cloned() else {
        return Err(err(
            ErrorKind::NotFound,
            OP,
            region,
            "NotFoundException",
            format!(
                "Alias arn:aws:kms:{region}:{}:{alias} is not found.",
                s.account
            ),
        ));
    };
    authorize_alias(s, caller, OP, region, alias)?;
    s.authorize_key(caller, OP, region, &id, |c| c)?;
    s.aliases.remove(region, alias);
    let arn = s.arn(region, &id);
    let params = json!({"aliasName": alias});
    s.push_record(
        trail::Record::new(region, OP, caller, params)
            .alias(alias)
            .key(&arn),
    );
    Ok(())
}

/// The alias side of CreateAlias, UpdateAlias and DeleteAlias: an alias has no policy of its
/// own, so an IAM policy on its ARN decides.
fn authorize_alias(s: &State, caller: &str, op: Op, region: &str, alias: &str) -> KmsResult<()> {
    let arn = format!("arn:aws:kms:{region}:{}:{alias}", s.account);
    s.authorize(caller, op, region, &Check::on_alias(op, region, &arn))
}

fn alias_name_ok(op: Op, region: &str, alias: &str) -> KmsResult<()> {
    if !alias.starts_with("alias/") || alias.starts_with("alias/aws/") || alias.len() <= 6 {
        return Err(err(
            ErrorKind::Other,
            op,
            region,
            "ValidationException",
            format!("Alias must start with the prefix \"alias/\" and not \"alias/aws/\": {alias}"),
        ));
    }
    Ok(())
}
