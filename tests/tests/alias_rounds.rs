//! A replica's aliases are created together: a new key with four aliases, synced to one Region
//! on the twin with a fixed latency on every call, takes the design's six dependent rounds
//! ([`NEW_KEY_ROUNDS`]) and not one more per alias.

use integration_tests::scenarios::NEW_KEY_ROUNDS;
use integration_tests::{as_function, config, primary_policy, PRIMARY_REGION};
use kms_replicator::model::Tag;
use kms_replicator::{Kms, Op, Syncer};
use std::time::{Duration, Instant};
use twin::{Twin, ADMIN_USER, REPLICATE_ROLE};

const LATENCY: Duration = Duration::from_millis(100);
const ALIASES: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_replicas_aliases_take_one_round_however_many_there_are() {
    let twin = Twin::new();
    let cfg = config();
    let admin = twin.with_caller(ADMIN_USER);
    let policy = primary_policy(&twin.account());
    let key = admin.create_key(PRIMARY_REGION, true, Some(&policy), "four aliases", &[]);
    for a in 0..ALIASES {
        admin
            .create_alias(PRIMARY_REGION, &format!("alias/four-{a}"), &key.key_id)
            .await
            .unwrap();
    }
    admin
        .tag_resource(
            PRIMARY_REGION,
            &key.key_id,
            &[Tag::new("replicate-to", "us-west-2")],
        )
        .await
        .unwrap();
    let kms = as_function(&twin, &cfg, REPLICATE_ROLE);
    twin.set_latency(LATENCY);
    twin.reset_calls();

    let started = Instant::now();
    let report = Syncer::new(&kms, &cfg)
        .sync(PRIMARY_REGION, &key.key_id, false)
        .await;
    let wall = started.elapsed();

    assert!(!report.is_retryable_failure(), "{report:?}");
    let created = twin
        .calls()
        .iter()
        .filter(|c| c.op == Op::CreateAlias && c.region == "us-west-2")
        .count();
    assert_eq!(created, ALIASES);
    assert_eq!(twin.aliases("us-west-2").len(), ALIASES);
    // Six rounds at least; one after the other, the aliases would add three more.
    let floor = LATENCY * NEW_KEY_ROUNDS;
    assert!(wall >= floor, "{wall:?} beat the floor {floor:?}");
    assert!(
        wall < floor + LATENCY * 3 / 2,
        "{wall:?}: more than {NEW_KEY_ROUNDS} rounds of {LATENCY:?}"
    );
}
