//! Live-query fan-out over WebSocket: 1 to 10,000 clients subscribed to one query, or each to a
//! query of its own, while a writer (on a connection of its own) sets the queried document at a
//! steady rate. Latency runs from the writer's call to a client receiving the new value: the
//! mutation, its durable commit, matching, the re-run of the query and the Transition. Livebase's
//! commit-to-client latency, the measure, runs from the commit's timestamp (wall-clock
//! nanoseconds, taken by the committer before the commit is made durable) to the same moment. The
//! server is a separate process; the clients run in this one, on the same clock.
//!
//! The baseline is the physical limit of the same delivery: a minimal tokio-tungstenite
//! broadcaster relaying the writer's message, the same bytes as Livebase's Transition, to the same
//! clients. Throughput is measured closed-loop, the writer at most `ROUNDS_IN_FLIGHT` writes
//! ahead of the slowest client, as client updates per second: a client that receives a newer
//! value has the older one too (Livebase sends the latest result, not every intermediate one).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use livebase_server::CancellationToken;
use serde_json::{Value as Json, json};
use tokio::sync::Notify;
use tokio::time::MissedTickBehavior;
use tokio_tungstenite::tungstenite::Message;

use crate::Effort;
use crate::client::{QueryUpdates, Socket, SyncClient, mutation_message, next_json, now_micros, read_messages};
use crate::report::{Chart, Report, percentile, verdict};
use crate::server::ServerProcess;

const SECTION: &str = "Live-query fan-out (WebSocket, server in its own process)";
pub const CLIENT_COUNTS: [usize; 4] = [1, 100, 1_000, 10_000];
/// Connections opened at once while setting up, within the listener's backlog.
const CONNECTS_AT_ONCE: usize = 256;
/// The steady write rate of the latency runs: at most this many writes per second, and fewer for
/// many clients, so that the clients (in this process, on the same two cores as the server) are
/// sent at most `UPDATES_PER_SECOND` updates per second in all.
const MAX_WRITES_PER_SECOND: usize = 100;
const UPDATES_PER_SECOND: usize = 20_000;
/// Writes of the throughput runs not yet seen by every client.
const ROUNDS_IN_FLIGHT: usize = 4;
/// How long the last writes of a run may take to reach every client before the run counts as
/// having lost updates.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The issues' targets for fan-out.
const TARGET_P99_MILLIS_10K: f64 = 100.0;
const TARGET_P50_MILLIS_1: f64 = 1.0;
const TARGET_SHARE_OF_BROADCASTER: f64 = 0.5;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    /// Every client subscribed to `items:get({key: 0})`.
    OneQuery,
    /// Client `i` subscribed to `items:get({key: i})`; each write sets one client's item.
    DistinctQueries,
    /// The raw broadcaster; every client gets every message.
    Broadcaster,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::OneQuery => "Livebase, one query",
            Target::DistinctQueries => "Livebase, distinct queries",
            Target::Broadcaster => "raw broadcaster",
        }
    }

    /// The clients a write reaches: all of them, or the one whose item it sets.
    fn reached_by(self, write: usize, clients: usize) -> std::ops::Range<usize> {
        match self {
            Target::DistinctQueries => write % clients..write % clients + 1,
            Target::OneQuery | Target::Broadcaster => 0..clients,
        }
    }

    fn writes_per_second(self, clients: usize) -> usize {
        match self {
            Target::DistinctQueries => MAX_WRITES_PER_SECOND,
            Target::OneQuery | Target::Broadcaster => (UPDATES_PER_SECOND / clients).clamp(1, MAX_WRITES_PER_SECOND),
        }
    }
}

/// What the clients saw, shared by their reader tasks. Each client's reader writes only its own
/// entries, so that the harness's 10,000 readers do not queue on one lock: the clients share the
/// server's two cores, and what they spend is taken from it.
struct Deliveries {
    clients: Vec<ClientDeliveries>,
    /// The client `wait_for` is blocked on (`usize::MAX`: none): only its reader wakes the waiter.
    awaited_client: AtomicUsize,
    progress: Notify,
    /// The last Transition client 0 received, as text: the bytes the broadcaster is given to send.
    sample: Mutex<Option<Json>>,
    /// The first mutation of the writer that failed.
    writer_error: Mutex<Option<String>>,
}

#[derive(Default)]
struct ClientDeliveries {
    /// The newest `sentAt` received (an f64's bits: positive floats order as their bits).
    newest: AtomicU64,
    /// Every update's latency since the last `take_latencies`, from the writer's call and, for
    /// Livebase, from the commit its Transition is at (the newest commit it shows, which is the
    /// update's own but for writes closer together than the latency; the broadcaster relays a
    /// recorded Transition, whose timestamp is no commit's): one run's, at most its writes.
    latencies_micros: Mutex<(Vec<u64>, Vec<u64>)>,
}

impl Deliveries {
    fn new(clients: usize) -> Deliveries {
        Deliveries {
            clients: (0..clients).map(|_| ClientDeliveries::default()).collect(),
            awaited_client: AtomicUsize::new(usize::MAX),
            progress: Notify::new(),
            sample: Mutex::default(),
            writer_error: Mutex::default(),
        }
    }

    /// `from_commits`: the message is Livebase's, whose `endVersion` is a commit's timestamp.
    fn record(&self, client: usize, message: &str, from_commits: bool) {
        let received_at = now_micros();
        let updates = QueryUpdates::read(message);
        let mut newest = 0.0f64;
        {
            let mut latencies = self.clients[client].latencies_micros.lock().unwrap_or_else(PoisonError::into_inner);
            for sent_at in updates.sent_at {
                newest = newest.max(sent_at);
                latencies.0.push((received_at - sent_at).max(0.0) as u64);
                if from_commits {
                    let committed_at = updates.end_ts_nanos.expect("a Transition has an end version") as f64 / 1e3;
                    latencies.1.push((received_at - committed_at).max(0.0) as u64);
                }
            }
        }
        if newest == 0.0 {
            return;
        }
        if client == 0 {
            let message = serde_json::from_str(message).expect("the server sends JSON");
            *self.sample.lock().unwrap_or_else(PoisonError::into_inner) = Some(message);
        }
        // Sequentially consistent with `wait_for`'s store of the client it waits on and its load of
        // `newest`: either the waiter sees this update, or this reader sees the waiter.
        self.clients[client].newest.fetch_max(newest.to_bits(), Ordering::SeqCst);
        if self.awaited_client.load(Ordering::SeqCst) == client {
            self.progress.notify_waiters();
        }
    }

    fn has_seen(&self, client: usize, sent_at: f64) -> bool {
        f64::from_bits(self.clients[client].newest.load(Ordering::SeqCst)) >= sent_at
    }

    /// Waits until `clients` have all seen `sent_at` (or newer); false after `timeout`. Clients
    /// only move forward, so it waits on them one at a time, in order.
    async fn wait_for(&self, clients: std::ops::Range<usize>, sent_at: f64, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut next = clients.start;
        loop {
            while next < clients.end && self.has_seen(next, sent_at) {
                next += 1;
            }
            if next == clients.end {
                self.awaited_client.store(usize::MAX, Ordering::SeqCst);
                return true;
            }
            let progress = self.progress.notified();
            tokio::pin!(progress);
            progress.as_mut().enable();
            self.awaited_client.store(next, Ordering::SeqCst);
            if self.has_seen(next, sent_at) {
                continue;
            }
            if tokio::time::timeout_at(deadline, progress).await.is_err() {
                self.awaited_client.store(usize::MAX, Ordering::SeqCst);
                return false;
            }
        }
    }

    /// The latencies from the writer's call and, for Livebase, from the commit.
    fn take_latencies(&self) -> (Vec<u64>, Vec<u64>) {
        let (mut from_calls, mut from_commits) = (Vec::new(), Vec::new());
        for client in &self.clients {
            let mut latencies = client.latencies_micros.lock().unwrap_or_else(PoisonError::into_inner);
            from_calls.append(&mut latencies.0);
            from_commits.append(&mut latencies.1);
        }
        (from_calls, from_commits)
    }
}

/// Who sets the value: a sync-protocol client calling `items:set`, or a raw socket handing the
/// broadcaster a Transition to relay. Neither waits for an answer: mutations on one socket run in
/// order, and the Convex clients pipeline them the same way.
struct Writer {
    sink: SplitSink<Socket, Message>,
    kind: WriterKind,
}

enum WriterKind {
    Livebase { next_request: u32 },
    Raw { template: Json },
}

impl Writer {
    /// Connects; a task reads what the server answers and records failed mutations.
    async fn start(address: SocketAddr, template: Option<Json>, deliveries: &Arc<Deliveries>) -> Writer {
        let (kind, socket) = match template {
            None => (WriterKind::Livebase { next_request: 0 }, SyncClient::connect(address).await.socket),
            Some(template) => (WriterKind::Raw { template }, crate::client::open(address, "/").await),
        };
        let (sink, mut answers) = socket.split();
        let deliveries = Arc::clone(deliveries);
        tokio::spawn(async move {
            while let Some(Ok(Message::Text(text))) = answers.next().await {
                let answer: Json = serde_json::from_str(&text).expect("the server sends JSON");
                if answer["type"] == "MutationResponse" && answer["success"] != true {
                    deliveries
                        .writer_error
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .get_or_insert(answer.to_string());
                }
            }
        });
        Writer { sink, kind }
    }

    async fn write(&mut self, key: usize, sent_at: f64) {
        let message = match &mut self.kind {
            WriterKind::Livebase { next_request } => {
                *next_request += 1;
                mutation_message(*next_request, "items:set", json!({"key": key as f64, "sentAt": sent_at}))
            }
            WriterKind::Raw { template } => {
                let modifications = template["modifications"].as_array_mut().expect("a Transition has modifications");
                for modification in modifications {
                    modification["value"]["sentAt"] = json!(sent_at);
                }
                template.clone()
            }
        };
        self.sink.send(Message::text(message.to_string())).await.expect("send a write");
    }
}

/// The server, its clients and the writer of one target and client count.
struct Setup {
    target: Target,
    clients: usize,
    deliveries: Arc<Deliveries>,
    writer: Writer,
    writes: usize,
    stop_readers: CancellationToken,
    /// Subscribers are spread over them round robin; the writer is on the first.
    servers: Vec<ServerProcess>,
}

impl Setup {
    async fn start(
        target: Target,
        clients: usize,
        broadcaster_template: Option<Json>,
        servers: Vec<ServerProcess>,
    ) -> Setup {
        let addresses: Vec<SocketAddr> = servers.iter().map(|server| server.address).collect();
        let sockets: Vec<Socket> = futures_util::stream::iter(0..clients)
            .map(|client| open_subscriber(target, addresses[client % addresses.len()], client))
            .buffered(CONNECTS_AT_ONCE)
            .collect()
            .await;
        let deliveries = Arc::new(Deliveries::new(clients));
        let from_commits = target != Target::Broadcaster;
        let stop_readers = CancellationToken::new();
        for (client, socket) in sockets.into_iter().enumerate() {
            let deliveries = Arc::clone(&deliveries);
            tokio::spawn(read_messages(socket, stop_readers.clone(), move |message| {
                deliveries.record(client, message, from_commits)
            }));
        }
        let writer = Writer::start(addresses[0], broadcaster_template, &deliveries).await;
        Setup { target, clients, deliveries, writer, writes: 0, stop_readers, servers }
    }

    /// Writes at the steady rate for `duration`; returns what the clients saw, or `None` if some
    /// client did not get its last update within `DRAIN_TIMEOUT`.
    async fn latency_run(&mut self, duration: Duration) -> Option<LatencyRun> {
        let servers_cpu_before = self.servers_cpu_seconds();
        let clients_cpu_before = crate::cpu_seconds("/proc/self/stat");
        let period = Duration::from_secs_f64(1.0 / self.target.writes_per_second(self.clients) as f64);
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let started = Instant::now();
        // The newest write to each client is the one to wait for at the end: at most one per client.
        let mut last = VecDeque::new();
        while started.elapsed() < duration {
            ticks.tick().await;
            last.push_back(self.write().await);
            if last.len() > self.clients {
                last.pop_front();
            }
        }
        for (reached, sent_at) in last {
            if !self.deliveries.wait_for(reached, sent_at, DRAIN_TIMEOUT).await {
                return None;
            }
        }
        let servers_cpu = self.servers_cpu_seconds() - servers_cpu_before;
        let clients_cpu = crate::cpu_seconds("/proc/self/stat") - clients_cpu_before;
        let (latencies, from_commits) = self.deliveries.take_latencies();
        // At the steady rate every update reaches a client in a message of its own.
        let updates = latencies.len().max(1) as f64;
        Some(LatencyRun {
            latencies,
            from_commits,
            servers_cpu_micros_per_update: servers_cpu * 1e6 / updates,
            clients_cpu_micros_per_update: clients_cpu * 1e6 / updates,
        })
    }

    /// Writes as fast as the slowest client keeps up for `duration`; returns client updates per
    /// second and the servers' CPU time per client update, in microseconds.
    async fn throughput_run(&mut self, duration: Duration) -> Option<(f64, f64)> {
        let mut in_flight = VecDeque::new();
        let cpu_before = self.servers_cpu_seconds();
        let started = Instant::now();
        let mut rounds = 0;
        while started.elapsed() < duration {
            if in_flight.len() == ROUNDS_IN_FLIGHT {
                let (reached, sent_at) = in_flight.pop_front().expect("rounds in flight");
                if !self.deliveries.wait_for(reached, sent_at, DRAIN_TIMEOUT).await {
                    return None;
                }
                rounds += 1;
            }
            in_flight.push_back(self.write().await);
        }
        let elapsed = started.elapsed();
        let writes = rounds + in_flight.len();
        for (reached, sent_at) in in_flight {
            if !self.deliveries.wait_for(reached, sent_at, DRAIN_TIMEOUT).await {
                return None;
            }
        }
        let cpu = self.servers_cpu_seconds() - cpu_before;
        self.deliveries.take_latencies();
        let updates = writes * self.clients;
        Some(((rounds * self.clients) as f64 / elapsed.as_secs_f64(), cpu * 1e6 / updates as f64))
    }

    fn servers_cpu_seconds(&self) -> f64 {
        self.servers.iter().map(ServerProcess::cpu_seconds).sum()
    }

    /// One write; returns the clients it reaches and its `sentAt`.
    async fn write(&mut self) -> (std::ops::Range<usize>, f64) {
        let reached = self.target.reached_by(self.writes, self.clients);
        self.writes += 1;
        let sent_at = now_micros();
        self.writer.write(reached.start, sent_at).await;
        (reached, sent_at)
    }
}

/// What the clients saw in one latency run, and what it cost the two sides of the loopback.
struct LatencyRun {
    /// From the writer's call and, for Livebase, from the commit (see [`Deliveries::take_latencies`]).
    latencies: Vec<u64>,
    from_commits: Vec<u64>,
    servers_cpu_micros_per_update: f64,
    /// This process's: the clients' reader tasks and the writer.
    clients_cpu_micros_per_update: f64,
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.stop_readers.cancel();
    }
}

/// Opens client `client`'s connection and subscribes it (Livebase), or just connects (broadcaster).
async fn open_subscriber(target: Target, address: SocketAddr, client: usize) -> Socket {
    if target == Target::Broadcaster {
        let mut socket = crate::client::open(address, "/").await;
        let ready = next_json(&mut socket).await.expect("the broadcaster says it is ready");
        assert_eq!(ready.to_string(), crate::broadcaster::READY, "the broadcaster's first message");
        return socket;
    }
    let key = if target == Target::OneQuery { 0 } else { client };
    let mut sync = SyncClient::connect(address).await;
    sync.subscribe([(0, "items:get", json!({"key": key as f64}))]).await;
    sync.socket
}

/// Median figures of one target at one client count, for the findings and the charts.
#[derive(Default, Clone, Copy)]
pub(crate) struct Medians {
    pub(crate) p50_millis: f64,
    pub(crate) p99_millis: f64,
    /// Livebase's, from the commit.
    commit_p50_millis: Option<f64>,
    pub(crate) updates_per_second: Option<f64>,
}

pub fn run(effort: Effort, report: &mut Report) {
    println!("{SECTION}");
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let mut medians: Vec<(Target, usize, Medians)> = Vec::new();
    let mut templates: Vec<Json> = Vec::new();
    for target in [Target::OneQuery, Target::DistinctQueries, Target::Broadcaster] {
        for (index, clients) in CLIENT_COUNTS.into_iter().enumerate() {
            let template = (target == Target::Broadcaster).then(|| templates[index].clone());
            let (figures, sample) = tokio.block_on(measure(target, clients, template, effort, report));
            if target == Target::OneQuery {
                templates.push(sample.expect("client 0 received a Transition"));
            }
            medians.push((target, clients, figures));
        }
    }
    findings(report, &medians);
}

async fn measure(
    target: Target,
    clients: usize,
    template: Option<Json>,
    effort: Effort,
    report: &mut Report,
) -> (Medians, Option<Json>) {
    let name = format!("{}, {clients} clients", target.name());
    println!("  {name}: connecting");
    let server = ServerProcess::start(if target == Target::Broadcaster { "broadcaster" } else { "server" });
    let setup = Setup::start(target, clients, template, vec![server]).await;
    measure_setup(setup, SECTION, &name, effort, report).await
}

/// `clients` subscribed to one query, spread over `servers` (round robin), and the writer on the
/// first of them; the figures go in `section`, named after `name`.
pub(crate) async fn measure_one_query(
    section: &str,
    name: &str,
    clients: usize,
    servers: Vec<ServerProcess>,
    effort: Effort,
    report: &mut Report,
) -> Medians {
    println!("  {name}: connecting");
    let setup = Setup::start(Target::OneQuery, clients, None, servers).await;
    measure_setup(setup, section, name, effort, report).await.0
}

/// Measures `setup`'s latency and throughput; also returns the last Transition client 0 received.
async fn measure_setup(
    mut setup: Setup,
    section: &str,
    name: &str,
    effort: Effort,
    report: &mut Report,
) -> (Medians, Option<Json>) {
    let (target, clients) = (setup.target, setup.clients);
    // One write first: the item exists and every connection is warm before anything is measured.
    let (reached, sent_at) = setup.write().await;
    assert!(setup.deliveries.wait_for(reached, sent_at, DRAIN_TIMEOUT).await, "{name}: the first write arrived");
    setup.deliveries.take_latencies();
    let (mut p50, mut p99, mut max, mut rates, mut cpu) = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut commit_p50, mut commit_p99) = (Vec::new(), Vec::new());
    let (mut servers_cpu, mut clients_cpu) = (Vec::new(), Vec::new());
    for _ in 0..effort.runs {
        let Some(LatencyRun { latencies, from_commits, servers_cpu_micros_per_update, clients_cpu_micros_per_update }) =
            setup.latency_run(effort.duration).await
        else {
            report.note(format!("{name}: updates were lost or took over {DRAIN_TIMEOUT:?}: run dropped"));
            continue;
        };
        servers_cpu.push(servers_cpu_micros_per_update);
        clients_cpu.push(clients_cpu_micros_per_update);
        p50.push(percentile(&latencies, 0.50) / 1e3);
        p99.push(percentile(&latencies, 0.99) / 1e3);
        max.push(percentile(&latencies, 1.0) / 1e3);
        if !from_commits.is_empty() {
            commit_p50.push(percentile(&from_commits, 0.50) / 1e3);
            commit_p99.push(percentile(&from_commits, 0.99) / 1e3);
        }
        if target != Target::DistinctQueries {
            match setup.throughput_run(effort.duration).await {
                Some((rate, cpu_micros)) => {
                    rates.push(rate);
                    cpu.push(cpu_micros);
                }
                None => {
                    report.note(format!("{name}: throughput run dropped: a client fell behind by {DRAIN_TIMEOUT:?}"))
                }
            }
        }
    }
    let writes = target.writes_per_second(clients);
    let mut medians = Medians::default();
    if !p50.is_empty() {
        medians.p50_millis = report.add(section, &format!("{name}: latency p50 at {writes} writes/s"), "ms", p50);
        medians.p99_millis = report.add(section, &format!("{name}: latency p99 at {writes} writes/s"), "ms", p99);
        report.add(section, &format!("{name}: latency max at {writes} writes/s"), "ms", max);
        // The two cores are shared: a write reaches its last client after about
        // clients x (server + clients' CPU per update) / 2 cores.
        report.add(section, &format!("{name}: server CPU per update at {writes} writes/s"), "µs", servers_cpu);
        report.add(section, &format!("{name}: clients' CPU per update at {writes} writes/s"), "µs", clients_cpu);
    }
    if !commit_p50.is_empty() {
        let figure = |quantile| format!("{name}: commit-to-client latency {quantile} at {writes} writes/s");
        medians.commit_p50_millis = Some(report.add(section, &figure("p50"), "ms", commit_p50));
        report.add(section, &figure("p99"), "ms", commit_p99);
    }
    if !rates.is_empty() {
        medians.updates_per_second =
            Some(report.add(section, &format!("{name}: updates delivered"), "updates/s", rates));
        report.add(section, &format!("{name}: server CPU per update delivered"), "µs", cpu);
    }
    if let Some(error) = setup.deliveries.writer_error.lock().unwrap_or_else(PoisonError::into_inner).as_ref() {
        report.note(format!("{name}: a write failed: {error}"));
    }
    let sample = setup.deliveries.sample.lock().unwrap_or_else(PoisonError::into_inner).clone();
    (medians, sample)
}

fn findings(report: &mut Report, medians: &[(Target, usize, Medians)]) {
    let find = |target: Target, clients: usize| {
        medians.iter().find(|(t, c, _)| *t == target && *c == clients).map(|(_, _, medians)| *medians)
    };
    if let Some(one) = find(Target::OneQuery, 1)
        && let Some(commit_p50) = one.commit_p50_millis
    {
        report.note(format!(
            "fan-out: 1 client, commit-to-client latency p50 {commit_p50:.2} ms; target <= {TARGET_P50_MILLIS_1} ms: {} \
             (from the writer's call, which adds sending and running the mutation: p50 {:.2} ms)",
            verdict(commit_p50 <= TARGET_P50_MILLIS_1),
            one.p50_millis,
        ));
    }
    if let Some(many) = find(Target::OneQuery, 10_000) {
        // The broadcaster delivers the same bytes to the same clients doing nothing else: its p99 is
        // what this machine's kernel and the clients sharing its cores allow any server.
        let floor = find(Target::Broadcaster, 10_000).map_or_else(String::new, |raw| {
            let below = if raw.p99_millis > TARGET_P99_MILLIS_10K {
                ", so the target is below this machine's floor"
            } else {
                ""
            };
            format!(" (the raw broadcaster's p99 with the same clients: {:.1} ms{below})", raw.p99_millis)
        });
        report.note(format!(
            "fan-out: 10,000 clients on one query, p99 {:.1} ms; target <= {TARGET_P99_MILLIS_10K} ms: {}{floor}",
            many.p99_millis,
            verdict(many.p99_millis <= TARGET_P99_MILLIS_10K)
        ));
    }
    for clients in CLIENT_COUNTS {
        let livebase = find(Target::OneQuery, clients).and_then(|medians| medians.updates_per_second);
        let raw = find(Target::Broadcaster, clients).and_then(|medians| medians.updates_per_second);
        if let (Some(livebase), Some(raw)) = (livebase, raw) {
            report.compare(
                (&format!("one query, {clients} clients"), livebase),
                (&format!("raw broadcaster, {clients} clients"), raw),
                "client updates/s",
                Some(TARGET_SHARE_OF_BROADCASTER),
            );
        }
    }
    let series = |value: fn(&Medians) -> Option<f64>, targets: &[Target]| {
        targets
            .iter()
            .map(|target| {
                let points = CLIENT_COUNTS
                    .iter()
                    .filter_map(|clients| find(*target, *clients).and_then(|m| value(&m)).map(|v| (*clients as f64, v)))
                    .collect();
                (target.name().to_owned(), points)
            })
            .collect::<Vec<(String, Vec<(f64, f64)>)>>()
    };
    let all = [Target::OneQuery, Target::DistinctQueries, Target::Broadcaster];
    let mut latency = series(|m| Some(m.p99_millis).filter(|p99| *p99 > 0.0), &all);
    for (name, _) in &mut latency {
        *name += " (p99)";
    }
    latency.extend(
        series(|m| Some(m.p50_millis).filter(|p50| *p50 > 0.0), &all)
            .into_iter()
            .map(|(name, points)| (name + " (p50)", points)),
    );
    report.chart(Chart {
        file: "fanout-latency.png".to_owned(),
        title: "Write-to-client latency against subscribed clients".to_owned(),
        x_label: "subscribed clients".to_owned(),
        y_label: "latency (ms)".to_owned(),
        series: latency,
    });
    report.chart(Chart {
        file: "fanout-throughput.png".to_owned(),
        title: "Client updates per second against subscribed clients".to_owned(),
        x_label: "subscribed clients".to_owned(),
        y_label: "updates/s".to_owned(),
        series: series(|m| m.updates_per_second, &[Target::OneQuery, Target::Broadcaster]),
    });
}
