//! Reactive pagination under churn, over WebSocket: clients each hold `PAGES` consecutive pages of
//! `rows:page` (rows in `key` order), loaded as the official `usePaginatedQuery` loads them (the
//! first page from no cursor, each next one from the previous page's `continueCursor`; the server
//! pins each page's end in the query journal), while a writer inserts and deletes rows across the
//! whole key range at a steady rate. The pages start out covering the whole table (the last one
//! reaches its end), so every write changes one page of every client.
//!
//! Latency runs from the writer's call to a client receiving the page that shows the write (a row
//! appearing or disappearing): the mutation, its durable commit, matching, the re-run of the page
//! and the Transition. Every insert has a fresh key, so each key is inserted and deleted at most
//! once and a page's change tells which write it shows. After each run, once every client has
//! caught up with the writer's last commit, each client's pages concatenated must be exactly the
//! table's rows in key order: no duplicates, no gaps. The server is a separate process; the clients
//! and the writer run in this one.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use livebase_server::CancellationToken;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value as Json, json};
use tokio::sync::Notify;
use tokio::time::MissedTickBehavior;

use crate::Effort;
use crate::client::{HttpCaller, Socket, SyncClient, now_micros, read_messages, timestamp_nanos};
use crate::report::{Report, percentile};
use crate::server::ServerProcess;

const SECTION: &str = "Reactive pagination churn (WebSocket, server in its own process)";
/// Clients holding pages; fewer with `--quick`.
const CLIENTS: usize = 100;
const QUICK_CLIENTS: usize = 20;
const PAGES: usize = 8;
const PAGE_SIZE: usize = 25;
/// Rows before the churn: the last page is half full, so it reaches the end of the table
/// (`isDone`) and the pages together hold every row.
const INITIAL_ROWS: usize = (PAGES - 1) * PAGE_SIZE + PAGE_SIZE / 2;
/// The writer's steady rate; writes alternate between an insert and a delete, so the table keeps
/// its size while rows come and go all over the key range. Every write reaches every client.
const WRITES_PER_SECOND: usize = 50;
/// Keys are drawn from `0..KEY_SPACE` (exact as float64); no key is inserted twice.
const KEY_SPACE: u64 = 1 << 40;
/// `usePaginatedQuery`'s `id` in the pagination options (the official client numbers its
/// paginated queries; the server ignores it).
const PAGINATION_ID: f64 = 1.0;
/// Connections set up at once.
const CONNECTS_AT_ONCE: usize = 32;
/// How long the clients may take to catch up with the writer's last commit before the run fails.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(30);

/// A row as a page holds it.
#[derive(Clone, PartialEq, Eq, Debug)]
struct Row {
    id: String,
    key: u64,
}

/// What a client holds: its pages, and the timestamp of the last Transition it received.
#[derive(Default)]
struct View {
    pages: Vec<Vec<Row>>,
    ts: u64,
}

/// When the writer sent the insert and the delete of a key (its clock, µs).
#[derive(Default, Clone, Copy)]
struct Sent {
    inserted: Option<f64>,
    deleted: Option<f64>,
}

/// What the writer did and the clients saw, shared by the clients' reader tasks.
struct Churn {
    sent: Mutex<HashMap<u64, Sent>>,
    views: Vec<Mutex<View>>,
    /// Every change's latency since the last `take_latencies`: one run's.
    latencies_micros: Mutex<Vec<u64>>,
    page_updates: AtomicU64,
    progress: Notify,
    /// The first failed query or fatal error a client received.
    error: Mutex<Option<String>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Churn {
    fn record(&self, client: usize, message: &Json) {
        if message["type"] != "Transition" {
            if message["type"] == "FatalError" {
                lock(&self.error).get_or_insert_with(|| format!("client {client}: {message}"));
            }
            return;
        }
        let received_at = now_micros();
        let mut latencies = Vec::new();
        let mut view = lock(&self.views[client]);
        for modification in message["modifications"].as_array().map(Vec::as_slice).unwrap_or_default() {
            if modification["type"] == "QueryFailed" {
                lock(&self.error).get_or_insert_with(|| format!("client {client}: {modification}"));
                continue;
            }
            if modification["type"] != "QueryUpdated" {
                continue;
            }
            let page = modification["queryId"].as_u64().expect("a query id") as usize;
            let rows = rows_of(&modification["value"]["page"]);
            let old: HashSet<u64> = view.pages[page].iter().map(|row| row.key).collect();
            let new: HashSet<u64> = rows.iter().map(|row| row.key).collect();
            let sent = lock(&self.sent);
            let inserted = new.difference(&old).filter_map(|key| sent.get(key)?.inserted);
            let deleted = old.difference(&new).filter_map(|key| sent.get(key)?.deleted);
            latencies.extend(inserted.chain(deleted).map(|at| (received_at - at).max(0.0) as u64));
            view.pages[page] = rows;
            self.page_updates.fetch_add(1, Ordering::Relaxed);
        }
        view.ts = view.ts.max(timestamp_nanos(&message["endVersion"]["ts"]));
        drop(view);
        lock(&self.latencies_micros).extend(latencies);
        self.progress.notify_waiters();
    }

    /// Waits until every client has received a Transition at `ts` or later; false after `timeout`.
    async fn wait_for_all(&self, ts: u64, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let progress = self.progress.notified();
            tokio::pin!(progress);
            progress.as_mut().enable();
            if self.views.iter().all(|view| lock(view).ts >= ts) {
                return true;
            }
            if tokio::time::timeout_at(deadline, progress).await.is_err() {
                return false;
            }
        }
    }

    fn take_latencies(&self) -> Vec<u64> {
        std::mem::take(&mut *lock(&self.latencies_micros))
    }
}

/// The rows of a page or of `rows:all`.
fn rows_of(rows: &Json) -> Vec<Row> {
    let rows = rows.as_array().unwrap_or_else(|| panic!("rows are an array: {rows}"));
    rows.iter()
        .map(|row| Row {
            id: row["_id"].as_str().expect("a row has an id").to_owned(),
            key: row["key"].as_f64().expect("a row has a key") as u64,
        })
        .collect()
}

/// The writer: one sync-protocol connection, calling `rows:insert` and `rows:delete` one after
/// another, with its own list of the keys the table holds.
struct Writer {
    client: SyncClient,
    live: Vec<u64>,
    used: HashSet<u64>,
    rng: StdRng,
    writes: u64,
    /// The commit timestamp of the last write.
    last_ts: u64,
}

impl Writer {
    /// Inserts a row with a fresh key, or deletes a random row.
    async fn write(&mut self, churn: &Churn, insert: bool) {
        let key = if insert {
            let key = std::iter::repeat_with(|| self.rng.random_range(0..KEY_SPACE))
                .find(|key| self.used.insert(*key))
                .expect("an unused key");
            self.live.push(key);
            key
        } else {
            assert!(!self.live.is_empty(), "a delete needs a row");
            self.live.swap_remove(self.rng.random_range(0..self.live.len()))
        };
        // Recorded before the call: a client may see the write before the writer sees its answer.
        {
            let at = Some(now_micros());
            let mut sent = lock(&churn.sent);
            let entry = sent.entry(key).or_default();
            if insert { entry.inserted = at } else { entry.deleted = at }
        }
        let path = if insert { "rows:insert" } else { "rows:delete" };
        let response = self.client.mutate(path, json!({"key": key as f64})).await;
        self.last_ts = timestamp_nanos(&response["ts"]);
        self.writes += 1;
    }
}

/// Connects client `client` and loads its pages as `usePaginatedQuery` does; returns its socket
/// and its view.
async fn open_client(address: SocketAddr, client: usize) -> (Socket, View) {
    let mut sync = SyncClient::connect(address).await;
    let mut view = View::default();
    let mut cursor = Json::Null;
    for page in 0..PAGES {
        let options = json!({"numItems": PAGE_SIZE as f64, "cursor": cursor, "id": PAGINATION_ID});
        let transition = sync.subscribe([(page as u32, "rows:page", json!({"paginationOpts": options}))]).await;
        let result = transition["modifications"]
            .as_array()
            .and_then(|modifications| {
                modifications.iter().find(|m| m["type"] == "QueryUpdated" && m["queryId"] == page)
            })
            .map(|modification| &modification["value"])
            .unwrap_or_else(|| panic!("client {client}: page {page} has no result: {transition}"));
        assert_eq!(result["isDone"], page == PAGES - 1, "client {client}: only the last page reaches the end");
        view.pages.push(rows_of(&result["page"]));
        view.ts = timestamp_nanos(&transition["endVersion"]["ts"]);
        cursor = result["continueCursor"].clone();
    }
    (sync.socket, view)
}

/// Whether every client's pages, concatenated, are the table's rows in key order; the table must
/// also hold exactly the keys the writer left in it.
async fn check(churn: &Churn, caller: &HttpCaller, live: &[u64]) -> Result<usize, String> {
    let table = rows_of(&caller.call("query", "rows:all", json!({})).await?);
    let mut expected = live.to_vec();
    expected.sort_unstable();
    let keys: Vec<u64> = table.iter().map(|row| row.key).collect();
    if keys != expected {
        return Err(format!("the table holds {} rows, not the {} the writer left", keys.len(), expected.len()));
    }
    for (client, view) in churn.views.iter().enumerate() {
        let view = lock(view);
        let pages: Vec<&Row> = view.pages.iter().flatten().collect();
        if pages.iter().copied().ne(&table) {
            return Err(mismatch(client, &pages, &table));
        }
    }
    Ok(table.len())
}

/// What is wrong with a client's concatenated pages.
fn mismatch(client: usize, pages: &[&Row], table: &[Row]) -> String {
    let mut seen = HashSet::new();
    let duplicates = pages.iter().filter(|row| !seen.insert(&row.id)).count();
    let in_table: HashSet<&String> = table.iter().map(|row| &row.id).collect();
    let extra = pages.iter().filter(|row| !in_table.contains(&row.id)).count();
    let missing = table.iter().filter(|row| !seen.contains(&row.id)).count();
    let first_difference = pages.iter().zip(table).position(|(page, row)| *page != row);
    format!(
        "client {client}'s pages hold {} rows, the table {}: {duplicates} duplicates, {missing} missing, \
         {extra} not in the table, first difference at {first_difference:?}",
        pages.len(),
        table.len()
    )
}

pub fn run(effort: Effort, report: &mut Report) {
    println!("{SECTION}");
    let clients = if effort.quick { QUICK_CLIENTS } else { CLIENTS };
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let server = ServerProcess::start("server");
    let caller = HttpCaller::new(server.address);
    tokio.block_on(async {
        println!("  {clients} clients: loading {PAGES} pages of {PAGE_SIZE} each");
        let (mut writer, churn, stop_readers) = set_up(server.address, clients).await;
        measure(&mut writer, &churn, &caller, clients, effort, report).await;
        stop_readers.cancel();
    });
}

/// Seeds `INITIAL_ROWS` rows, then connects `clients` clients, each loading its pages; returns
/// the writer, what the clients see, and the token that stops their readers.
async fn set_up(address: SocketAddr, clients: usize) -> (Writer, Arc<Churn>, CancellationToken) {
    let mut writer = Writer {
        client: SyncClient::connect(address).await,
        live: Vec::new(),
        used: HashSet::new(),
        rng: StdRng::seed_from_u64(8),
        writes: 0,
        last_ts: 0,
    };
    let mut churn = Churn {
        sent: Mutex::default(),
        views: Vec::new(),
        latencies_micros: Mutex::default(),
        page_updates: AtomicU64::new(0),
        progress: Notify::new(),
        error: Mutex::default(),
    };
    for _ in 0..INITIAL_ROWS {
        writer.write(&churn, true).await;
    }
    let opened: Vec<(Socket, View)> = futures_util::stream::iter(0..clients)
        .map(|client| open_client(address, client))
        .buffered(CONNECTS_AT_ONCE)
        .collect()
        .await;
    let mut sockets = Vec::new();
    for (socket, view) in opened {
        sockets.push(socket);
        churn.views.push(Mutex::new(view));
    }
    let churn = Arc::new(churn);
    let stop_readers = CancellationToken::new();
    for (client, socket) in sockets.into_iter().enumerate() {
        let churn = Arc::clone(&churn);
        tokio::spawn(read_messages(socket, stop_readers.clone(), move |message| {
            churn.record(client, &serde_json::from_str(message).expect("the server sends JSON"));
        }));
    }
    (writer, churn, stop_readers)
}

async fn measure(
    writer: &mut Writer,
    churn: &Churn,
    caller: &HttpCaller,
    clients: usize,
    effort: Effort,
    report: &mut Report,
) {
    let name = format!("{clients} clients x {PAGES} pages of {PAGE_SIZE}");
    let (mut p50, mut p99, mut updates, mut writes) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut rows = 0;
    for run in 0..effort.runs {
        churn.take_latencies();
        let updates_before = churn.page_updates.load(Ordering::Relaxed);
        let writes_before = writer.writes;
        let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / WRITES_PER_SECOND as f64));
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let started = Instant::now();
        while started.elapsed() < effort.duration {
            ticks.tick().await;
            let insert = writer.writes.is_multiple_of(2);
            writer.write(churn, insert).await;
        }
        let writing = started.elapsed();
        if !churn.wait_for_all(writer.last_ts, CATCH_UP_TIMEOUT).await {
            report.failed(&format!("pagination churn, run {run}: a client did not catch up in {CATCH_UP_TIMEOUT:?}"));
            return;
        }
        let elapsed = started.elapsed();
        if let Some(error) = lock(&churn.error).take() {
            report.failed(&format!("pagination churn, run {run}: {error}"));
            return;
        }
        match check(churn, caller, &writer.live).await {
            Ok(table_rows) => rows = table_rows,
            Err(problem) => {
                report.failed(&format!("pagination churn, run {run}: {problem}"));
                return;
            }
        }
        let latencies = churn.take_latencies();
        p50.push(percentile(&latencies, 0.50) / 1e3);
        p99.push(percentile(&latencies, 0.99) / 1e3);
        updates.push((churn.page_updates.load(Ordering::Relaxed) - updates_before) as f64 / elapsed.as_secs_f64());
        writes.push((writer.writes - writes_before) as f64 / writing.as_secs_f64());
    }
    report.add(SECTION, &format!("{name}: page update latency p50"), "ms", p50);
    report.add(SECTION, &format!("{name}: page update latency p99"), "ms", p99);
    report.add(SECTION, &format!("{name}: page updates delivered"), "updates/s", updates);
    report.add(SECTION, &format!("{name}: writes (inserts and deletes)"), "writes/s", writes);
    report.note(format!(
        "pagination churn: after each of {} runs, every client's {PAGES} pages concatenated were exactly the \
         table's {rows} rows in key order (no duplicates, no gaps)",
        effort.runs
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app;
    use crate::server::InProcess;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pinned_pages_follow_the_churn_and_the_check_catches_a_lost_row() {
        let server = InProcess::start(&app::schema(), app::registry()).await;
        let caller = HttpCaller::new(server.address);
        let address = server.address;

        let (mut writer, churn, stop_readers) = set_up(address, 2).await;
        assert_eq!(check(&churn, &caller, &writer.live).await, Ok(INITIAL_ROWS), "the pages as loaded");
        for write in 0..40 {
            writer.write(&churn, write % 2 == 0).await;
        }
        assert!(churn.wait_for_all(writer.last_ts, CATCH_UP_TIMEOUT).await, "the clients caught up");
        assert_eq!(check(&churn, &caller, &writer.live).await, Ok(INITIAL_ROWS), "the pages after the churn");
        assert!(churn.take_latencies().len() >= 40, "each client saw changes");
        assert_eq!(*lock(&churn.error), None);

        stop_readers.cancel();
        let lost = lock(&churn.views[1]).pages[3].remove(0);
        let problem = check(&churn, &caller, &writer.live).await.expect_err("a lost row");
        assert!(problem.starts_with("client 1's pages") && problem.contains("1 missing"), "{problem}");
        {
            let mut view = lock(&churn.views[1]);
            view.pages[3].insert(0, lost.clone());
            view.pages[4].insert(0, lost);
        }
        let problem = check(&churn, &caller, &writer.live).await.expect_err("a duplicate");
        assert!(problem.contains("1 duplicates"), "{problem}");
    }
}
