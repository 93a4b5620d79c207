//! Crash safety with a real process: a child process commits as fast as it can and reports each
//! acknowledged commit; the test kills it with SIGKILL at random moments, recovers the data directory
//! and checks that every acknowledged commit is there, whole, and that no commit is there in part.
//!
//! The child is this same test binary, re-run with `CRASH_CHILD_PLACE` set (see `crash_child`).
//! Both backends: on PostgreSQL the killed child's lease is left to expire, and the recovering
//! store waits for it, as a restarted node would.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{TestDb, int, object};
use livebase_store::{Storage, Store, StoreConfig};
use livebase_value::Value;
use rand::Rng;

const ROUNDS: usize = 20;
/// Each PostgreSQL round waits for the killed child's lease to expire.
const POSTGRES_ROUNDS: usize = 8;
/// Rounds between two checks by opening the store in the test (the other rounds' children recover
/// from the previous child's crash).
const VERIFY_EVERY: usize = 4;
/// Short, so recovery after a kill waits little, yet several renewals long for a loaded machine.
const POSTGRES_LEASE_TTL: Duration = Duration::from_secs(2);
const WRITERS: usize = 4;
/// Documents each commit writes; all or none of them must survive.
const DOCUMENTS_PER_COMMIT: i64 = 3;
const CHILD_PLACE_VARIABLE: &str = "CRASH_CHILD_PLACE";

fn config(mut config: StoreConfig) -> StoreConfig {
    // Frequent checkpoints, so some kills land in the middle of one.
    config.checkpoint_after_commits = 200;
    if let Storage::Postgres(postgres) = &mut config.storage {
        postgres.lease_ttl = POSTGRES_LEASE_TTL;
        postgres.lease_wait = 5 * POSTGRES_LEASE_TTL;
    }
    config
}

fn kill_9_never_loses_an_acknowledged_commit(db: TestDb) {
    let mut rng = rand::rng();
    let mut acknowledged: BTreeSet<(i64, i64)> = BTreeSet::new();
    let rounds = if matches!(db.config().storage, Storage::Postgres(_)) { POSTGRES_ROUNDS } else { ROUNDS };
    for round in 0..rounds {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash_child", "--ignored", "--nocapture", "--test-threads=1"])
            .env(CHILD_PLACE_VARIABLE, db.place())
            .env("CRASH_CHILD_ROUND", round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (lines_sender, lines) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in stdout.lines() {
                let Ok(line) = line else { break };
                if lines_sender.send(line).is_err() {
                    break;
                }
            }
        });
        // Wait for the first acknowledgement (an event, not a guess), then let it run a random while.
        let mut round_acks = Vec::new();
        loop {
            let line =
                lines.recv_timeout(Duration::from_secs(60)).expect("the child acknowledges a commit within a minute");
            if let Some(ack) = parse_ack(&line) {
                round_acks.push(ack);
                break;
            }
        }
        // Every other round dies young, before the first checkpoint holds what it recovered.
        let lifetime = if round % 2 == 0 { 0..40 } else { 0..300 };
        std::thread::sleep(Duration::from_millis(rng.random_range(lifetime)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        round_acks.extend(lines.try_iter().filter_map(|line| parse_ack(&line)));
        acknowledged.extend(round_acks);

        // Opening here and closing cleanly checkpoints everything; most rounds skip it, so that the
        // next child recovers from a crash, whose log it must keep until a checkpoint holds it.
        if round % VERIFY_EVERY == VERIFY_EVERY - 1 || round == rounds - 1 {
            let store = Store::open(config(db.config())).expect("recovery after kill -9");
            verify(&store, &acknowledged, round);
        }
    }
    assert!(acknowledged.len() > rounds, "the children committed work: {}", acknowledged.len());
}

common::on_both_backends!(kill_9_never_loses_an_acknowledged_commit);

fn parse_ack(line: &str) -> Option<(i64, i64)> {
    let mut parts = line.strip_prefix("ACK ")?.split(' ');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

fn verify(store: &Store, acknowledged: &BTreeSet<(i64, i64)>, round: usize) {
    let mut parts: BTreeMap<(i64, i64), i64> = BTreeMap::new();
    for document in store.snapshot().documents("parts") {
        *parts.entry((int(&document, "writer"), int(&document, "sequence"))).or_default() += 1;
    }
    for (commit, count) in &parts {
        assert_eq!(*count, DOCUMENTS_PER_COMMIT, "round {round}: commit {commit:?} survived in part");
    }
    for commit in acknowledged {
        assert!(parts.contains_key(commit), "round {round}: acknowledged commit {commit:?} was lost");
    }
    // Each writer's progress document moves in the same commits as its parts.
    for document in store.snapshot().documents("progress") {
        let writer = int(&document, "writer");
        let last = int(&document, "sequence");
        let committed = parts.keys().filter(|(w, _)| *w == writer).count() as i64;
        assert_eq!(committed, last + 1, "round {round}: writer {writer}'s progress matches its parts");
    }
}

/// The child: writers that each commit `DOCUMENTS_PER_COMMIT` parts plus a progress update per
/// commit, forever, printing `ACK writer sequence` after each acknowledged commit.
#[test]
#[ignore = "run by kill_9_never_loses_an_acknowledged_commit as a child process"]
fn crash_child() {
    let Ok(place) = std::env::var(CHILD_PLACE_VARIABLE) else { return };
    let round: i64 = std::env::var("CRASH_CHILD_ROUND").unwrap().parse().unwrap();
    let store = Store::open(config(TestDb::config_of_place(&place))).unwrap();
    std::thread::scope(|scope| {
        for writer in 0..WRITERS as i64 {
            let store = store.clone();
            // Writer ids are unique across rounds, so every round starts each writer afresh.
            let writer = round * WRITERS as i64 + writer;
            scope.spawn(move || {
                let (progress, _) = store
                    .transact_blocking(|tx| {
                        tx.insert(
                            "progress",
                            object(&[("writer", Value::Int64(writer)), ("sequence", Value::Int64(-1))]),
                        )
                    })
                    .unwrap();
                for sequence in 0.. {
                    store
                        .transact_blocking(|tx| {
                            for part in 0..DOCUMENTS_PER_COMMIT {
                                let fields = [
                                    ("writer", Value::Int64(writer)),
                                    ("sequence", Value::Int64(sequence)),
                                    ("part", Value::Int64(part)),
                                ];
                                tx.insert("parts", object(&fields))?;
                            }
                            tx.replace(
                                progress,
                                object(&[("writer", Value::Int64(writer)), ("sequence", Value::Int64(sequence))]),
                            )
                        })
                        .unwrap();
                    use std::io::Write;
                    let mut stdout = std::io::stdout().lock();
                    writeln!(stdout, "ACK {writer} {sequence}").unwrap();
                    stdout.flush().unwrap();
                }
            });
        }
    });
}
