//! Subscription matching: what one commit costs the server's matcher (`livebase_server::Subscriptions`,
//! the index over every live query's read set) with 1k to 1M idle subscriptions.
//!
//! Each subscription is what `items:get({key: i})` registers while item `i` exists: the catalog
//! lookups of the `items` table and its `by_key` index, and the index from the first entry of value
//! `i` to just after the item's. Each commit is `items:set` of one item: the three index keys it
//! writes (by id, by creation time, by key), one of them inside one subscription's read set: the
//! commit invalidates exactly one subscription, as a point write among many idle readers does. The
//! keys and read sets are the real ones, built from those the app's functions give for one item
//! (checked at the start).
//!
//! Commits are matched one at a time and, as the server does under load, many at once: at 1M
//! subscriptions a lookup misses every cache (one miss costs about as much as all of a commit's
//! matching in cache), and the misses of commits matched together overlap.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use livebase_functions::{Identity, Runtime};
use livebase_server::Subscriptions;
use livebase_store::{
    BY_CREATION_TIME, BY_ID, CREATION_TIME_FIELD, CommitRecord, ID_FIELD, KeyInterval, Store, StoreConfig, Timestamp,
    index_prefix, successor,
};
use livebase_value::{DocumentId, Object, TableNumber, Value, encode_key_value};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::Effort;
use crate::app::{self, ITEMS};
use crate::report::{Report, verdict};

const SECTION: &str = "Subscription matching (server's matcher, in-process)";
pub const IDLE_SUBSCRIPTIONS: [usize; 4] = [1_000, 10_000, 100_000, 1_000_000];
/// Commits prepared ahead of each timed batch, so that building them is not timed.
const COMMITS_PER_BATCH: usize = 10_000;
/// Commits matched in one call: the server's hub matches together what queued on the change stream
/// while it was busy (up to `MAX_COMMITS_MATCHED_TOGETHER`, crates/server/src/hub.rs), and the
/// store sends a group commit's commits at once. 24 is about one group of the durable commits
/// benchmark's 64 writers (24.7 commits per fsync there).
const MATCHED_TOGETHER: usize = 24;
/// The target: matching with 1M idle subscriptions costs at most twice what it does with 1k.
const TARGET_GROWTH: f64 = 2.0;
/// The `items` index `items:get` reads (bench/src/app.rs).
const ITEMS_BY_KEY: &str = "by_key";

pub fn run(effort: Effort, report: &mut Report) {
    println!("{SECTION}");
    let items = ItemsTable::from_the_app();
    let mut medians = Vec::new();
    let mut medians_together = Vec::new();
    for idle in IDLE_SUBSCRIPTIONS {
        let mut rng = StdRng::seed_from_u64(idle as u64);
        let all: Vec<Item> = (0..idle).map(|key| items.item(key as f64, &mut rng)).collect();
        let mut subscriptions = Subscriptions::new(Timestamp::from_nanos(0));
        let registering = Instant::now();
        for (owner, item) in all.iter().enumerate() {
            let read_set = Arc::from(items.read_set(item));
            assert!(subscriptions.register(owner, &read_set, Timestamp::from_nanos(0)), "no commit yet");
        }
        let register_micros = registering.elapsed().as_secs_f64() * 1e6 / idle as f64;
        let mut ts = 0;
        let mut runs = |together| -> Vec<f64> {
            (0..effort.runs)
                .map(|_| {
                    micros_per_commit(&mut subscriptions, &items, &all, &mut rng, &mut ts, together, effort.duration)
                })
                .collect()
        };
        let alone = runs(1);
        let together = runs(MATCHED_TOGETHER);
        medians.push(report.add(SECTION, &format!("one commit, {idle} idle subscriptions"), "µs/commit", alone));
        medians_together.push(report.add(
            SECTION,
            &format!("{MATCHED_TOGETHER} commits matched together, {idle} idle subscriptions"),
            "µs/commit",
            together,
        ));
        report.add(SECTION, &format!("registering one of {idle} subscriptions"), "µs", vec![register_micros]);
    }
    let growth = medians[medians.len() - 1] / medians[0];
    let growth_together = medians_together[medians_together.len() - 1] / medians_together[0];
    report.note(format!(
        "matching: a commit costs {growth:.1}x as much with 1,000,000 idle subscriptions as with 1,000 when it is \
         matched alone, {growth_together:.1}x when {MATCHED_TOGETHER} are matched together; target <= \
         {TARGET_GROWTH}x: alone {}, together {}",
        verdict(growth <= TARGET_GROWTH),
        verdict(growth_together <= TARGET_GROWTH)
    ));
}

/// Applies prepared commits, each invalidating one random subscription, for `duration`, `together`
/// at a time (as the server's hub matches what queued on the change stream while it was busy).
fn micros_per_commit(
    subscriptions: &mut Subscriptions<usize>,
    items: &ItemsTable,
    all: &[Item],
    rng: &mut StdRng,
    ts: &mut u64,
    together: usize,
    duration: Duration,
) -> f64 {
    let mut elapsed = Duration::ZERO;
    let mut commits = 0;
    while elapsed < duration {
        // Each call's commits and the owners they invalidate.
        let calls: Vec<(BTreeSet<usize>, Vec<MatchedCommit>)> = (0..COMMITS_PER_BATCH / together)
            .map(|_| {
                let owners: Vec<usize> = (0..together).map(|_| rng.random_range(0..all.len())).collect();
                let commits = owners
                    .iter()
                    .map(|&owner| {
                        *ts += 1;
                        let keys = items.written_keys(&all[owner]);
                        let ts = Timestamp::from_nanos(*ts);
                        (Arc::new(CommitRecord { ts, changes: Vec::new(), keys, reloaded: false }), true)
                    })
                    .collect();
                (owners.into_iter().collect(), commits)
            })
            .collect();
        let started = Instant::now();
        for (owners, call) in calls {
            let affected = subscriptions.apply(call);
            assert!(affected == owners, "each commit invalidates its one subscription");
        }
        elapsed += started.elapsed();
        commits += COMMITS_PER_BATCH / together * together;
    }
    elapsed.as_secs_f64() * 1e6 / commits as f64
}

/// A commit as the hub hands it to the matcher: with whether it ends its group commit.
type MatchedCommit = (Arc<CommitRecord>, bool);

/// One document of `items`: what its index keys are made of.
struct Item {
    key: f64,
    id: String,
    creation_time: f64,
}

/// The `items` table as the app's functions see it in a fresh store.
struct ItemsTable {
    number: TableNumber,
    /// The catalog lookups every query of `items:get` records, whatever the key.
    catalog_reads: Vec<KeyInterval>,
}

impl ItemsTable {
    /// Runs `items:set` twice (an insert, then a patch) and `items:get` for one key on an in-process
    /// store, and takes the table's number and the catalog lookups from them; checks that what this
    /// module builds for that item is exactly what the patch wrote and the query read.
    fn from_the_app() -> ItemsTable {
        let data = tempfile::tempdir().expect("temporary directory");
        let store = Store::open(StoreConfig::new(data.path())).expect("open store");
        let tokio = tokio::runtime::Runtime::new().expect("tokio runtime");
        tokio.block_on(store.apply_schema(&app::schema())).expect("schema");
        let runtime = Runtime::new(store, app::registry());
        let key = 7.0;
        let set = |sent_at: f64| {
            let args =
                Object::from([("key".to_owned(), Value::Float64(key)), ("sentAt".to_owned(), Value::Float64(sent_at))]);
            let outcome = tokio.block_on(runtime.run_mutation("items:set", args, &Identity::Unauthenticated));
            assert_eq!(outcome.result, Ok(Value::Null), "items:set succeeds");
        };
        set(0.0);
        let mut commits = runtime.store().subscribe();
        set(1.0);
        let patch = commits.try_recv().expect("the patch is published once its mutation returns");
        let args = Object::from([("key".to_owned(), Value::Float64(key))]);
        let mut outcome = runtime.run_query("items:get", args, &Identity::Unauthenticated, None, None);
        let Ok(Value::Object(document)) = outcome.result else { panic!("items:get finds the item") };
        let (Value::String(id), Value::Float64(creation_time)) = (&document[ID_FIELD], &document[CREATION_TIME_FIELD])
        else {
            panic!("documents have an id and a creation time")
        };
        let item = Item { key, id: id.clone(), creation_time: *creation_time };
        let number = runtime.store().snapshot().table_number(ITEMS).expect("items:set created the table");
        let read = outcome.read_set.intervals().to_vec();
        let by_key = index_prefix(number, ITEMS_BY_KEY);
        let catalog_reads = read.iter().filter(|interval| !interval.start.starts_with(&by_key)).cloned().collect();
        let items = ItemsTable { number, catalog_reads };
        assert_eq!(items.read_set(&item), read, "items:get reads what the benchmark registers");
        assert_eq!(items.written_keys(&item), patch.keys, "items:set writes what the benchmark commits");
        items
    }

    /// An item of value `key`, created at some time in the next years.
    fn item(&self, key: f64, rng: &mut StdRng) -> Item {
        let unix_millis = rng.random_range(1.8e12..1.9e12_f64).round();
        let id = DocumentId::generate(self.number, rng, unix_millis as u64).encode();
        Item { key, id, creation_time: unix_millis }
    }

    /// What `items:get({key})` reads while the item exists (sorted and disjoint): the catalog, then
    /// `by_key` from value `key`'s first entry to just after the item's (`.first()` stops there).
    fn read_set(&self, item: &Item) -> Vec<KeyInterval> {
        let first_of_key = self.key(ITEMS_BY_KEY, &[Value::Float64(item.key)]);
        let entry = successor(self.key_of(ITEMS_BY_KEY, item));
        let mut read_set = self.catalog_reads.clone();
        read_set.push(KeyInterval { start: first_of_key, end: entry });
        read_set.sort();
        read_set
    }

    /// The global index keys an update of the item writes, sorted: its unchanged keys by id, by
    /// creation time and by key.
    fn written_keys(&self, item: &Item) -> Vec<Vec<u8>> {
        let mut keys = vec![
            self.key(BY_ID, &[Value::String(item.id.clone())]),
            self.key_of(BY_CREATION_TIME, item),
            self.key_of(ITEMS_BY_KEY, item),
        ];
        keys.sort();
        keys
    }

    /// The item's key in a declared index of `key` or in `by_creation_time`.
    fn key_of(&self, index: &str, item: &Item) -> Vec<u8> {
        let fields = [Value::Float64(item.key), Value::Float64(item.creation_time), Value::String(item.id.clone())];
        let fields = if index == BY_CREATION_TIME { &fields[1..] } else { &fields[..] };
        self.key(index, fields)
    }

    fn key(&self, index: &str, values: &[Value]) -> Vec<u8> {
        let mut key = index_prefix(self.number, index);
        for value in values {
            encode_key_value(&mut key, Some(value));
        }
        key
    }
}
