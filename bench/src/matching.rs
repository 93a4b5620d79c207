//! Subscription matching: what one commit costs the server's matcher (`livebase_server::Subscriptions`,
//! the interval index over every live query's read set) with 1k to 1M idle subscriptions.
//!
//! Each subscription is what `items:get({key: i})` registers: one interval of an index covering the
//! keys of value `i`. Each commit writes one document, so three index keys (by id, by creation
//! time, by key), one of them inside one subscription's interval: the commit invalidates exactly one
//! subscription, as a point write among many idle readers does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use livebase_server::Subscriptions;
use livebase_store::{CommitRecord, KeyInterval, Timestamp};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::Effort;
use crate::report::{Report, verdict};

const SECTION: &str = "Subscription matching (server's matcher, in-process)";
pub const IDLE_SUBSCRIPTIONS: [usize; 4] = [1_000, 10_000, 100_000, 1_000_000];
/// Commits prepared ahead of each timed batch, so that building them is not timed.
const COMMITS_PER_BATCH: usize = 10_000;
/// The target: matching with 1M idle subscriptions costs at most twice what it does with 1k.
const TARGET_GROWTH: f64 = 2.0;

/// Made-up index prefixes: index keys start with their index's identity.
const BY_ID: u8 = 1;
const BY_CREATION_TIME: u8 = 2;
const BY_KEY: u8 = 3;

pub fn run(effort: Effort, report: &mut Report) {
    println!("{SECTION}");
    let mut medians = Vec::new();
    for idle in IDLE_SUBSCRIPTIONS {
        let mut subscriptions = Subscriptions::new(Timestamp::from_nanos(0));
        let registering = Instant::now();
        for owner in 0..idle {
            let interval = KeyInterval { start: value_key(owner as u64), end: value_key(owner as u64 + 1) };
            assert!(subscriptions.register(owner, &Arc::from([interval]), Timestamp::from_nanos(0)), "no commit yet");
        }
        let register_micros = registering.elapsed().as_secs_f64() * 1e6 / idle as f64;
        let mut rng = StdRng::seed_from_u64(idle as u64);
        let mut ts = 0;
        let runs = (0..effort.runs)
            .map(|_| micros_per_commit(&mut subscriptions, idle, &mut rng, &mut ts, effort.duration))
            .collect();
        medians.push(report.add(SECTION, &format!("one commit, {idle} idle subscriptions"), "µs/commit", runs));
        report.add(SECTION, &format!("registering one of {idle} subscriptions"), "µs", vec![register_micros]);
    }
    let growth = medians[medians.len() - 1] / medians[0];
    report.note(format!(
        "matching: a commit costs {growth:.1}x as much with 1,000,000 idle subscriptions as with 1,000; target <= \
         {TARGET_GROWTH}x: {}",
        verdict(growth <= TARGET_GROWTH)
    ));
}

/// Applies prepared commits, each invalidating one random subscription, for `duration`.
fn micros_per_commit(
    subscriptions: &mut Subscriptions<usize>,
    idle: usize,
    rng: &mut StdRng,
    ts: &mut u64,
    duration: Duration,
) -> f64 {
    let mut elapsed = Duration::ZERO;
    let mut commits = 0;
    while elapsed < duration {
        let batch: Vec<(usize, Arc<CommitRecord>)> = (0..COMMITS_PER_BATCH)
            .map(|_| {
                *ts += 1;
                let owner = rng.random_range(0..idle);
                (owner, commit(Timestamp::from_nanos(*ts), owner as u64, rng))
            })
            .collect();
        let started = Instant::now();
        for (owner, commit) in batch {
            let affected = subscriptions.apply(commit, true);
            assert!(affected.len() == 1 && affected.contains(&owner), "the commit invalidates its one subscription");
        }
        elapsed += started.elapsed();
        commits += COMMITS_PER_BATCH;
    }
    elapsed.as_secs_f64() * 1e6 / commits as f64
}

/// A key of index `by_key` for value `value`: the prefix every document with that value shares.
fn value_key(value: u64) -> Vec<u8> {
    let mut key = vec![BY_KEY];
    key.extend_from_slice(&value.to_be_bytes());
    key
}

/// The index keys one written document has: by id, by creation time, and by key (value `value`).
fn commit(ts: Timestamp, value: u64, rng: &mut StdRng) -> Arc<CommitRecord> {
    let id: [u8; 16] = rng.random();
    let with_id = |mut key: Vec<u8>| {
        key.extend_from_slice(&id);
        key
    };
    let mut keys = vec![
        with_id(vec![BY_ID]),
        with_id([&[BY_CREATION_TIME][..], &ts.nanos().to_be_bytes()].concat()),
        with_id(value_key(value)),
    ];
    keys.sort();
    Arc::new(CommitRecord { ts, changes: Vec::new(), keys, reloaded: false })
}
