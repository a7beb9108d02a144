//! The user journeys, one function per step: each does its own setup, makes the calls a
//! person would (printing the AWS CLI command for each), and checks what it claims.

mod audit;
mod crypto;
mod failover;
mod guardrails;
mod tagging;

use crate::demo::Demo;

/// How many steps [`run`] takes.
pub const STEPS: usize = 10;

/// Every step in order, on one key; stops at the first call that fails outright.
pub async fn run(demo: &mut Demo) -> Result<(), String> {
    let key = tagging::create_key_with_aliases(demo).await?;
    tagging::tag_for_two_regions(demo, &key).await?;
    crypto::encrypt_here_decrypt_there(demo, &key).await?;
    tagging::change_policy_and_alias(demo, &key).await?;
    tagging::add_and_remove_regions(demo, &key).await?;
    guardrails::single_region_key_and_region_not_allowed(demo, &key).await?;
    failover::dry_run(demo, &key).await;
    failover::promote(demo, &key).await?;
    crypto::after_failover_and_the_guard(demo, &key).await?;
    audit::audit_events(demo);
    Ok(())
}
