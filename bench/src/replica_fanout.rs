//! Live-query fan-out across nodes: the same clients subscribed to one query, spread over a writer
//! and two read replicas (three processes on one PostgreSQL schema), against all of them on one
//! node, also on PostgreSQL, so that only the fan-out differs. Mutations go to the writer; a replica
//! learns of each commit from PostgreSQL (`NOTIFY`, then a read of the log table), applies it and
//! pushes its clients' updates as the writer does. Measured as the one-node fan-out scenario
//! measures (`fanout.rs`): latency from the writer's call and from the commit, and client updates
//! delivered per second. Every setup gets a fresh schema, dropped afterwards.
//!
//! On a 2-core machine the three servers, PostgreSQL and the clients share the same two cores:
//! replicas add work (following the log, re-running the query on each node) without adding any CPU,
//! so what they are for, spreading sockets and re-runs over more machines, cannot show here.

use livebase_functions::Runtime;
use livebase_server::{ServerConfig, serve};
use livebase_store::{PostgresConfig, Store, StoreConfig};
use tokio::net::TcpListener;

use crate::Effort;
use crate::app;
use crate::fanout::{Medians, measure_one_query};
use crate::postgres::DEFAULT_CONNECTION;
use crate::postgres_store::drop_schema;
use crate::report::Report;
use crate::server::{ServerProcess, announce, run_until_stdin_closes};

const SECTION: &str = "Fan-out across nodes: 1 writer + 2 read replicas vs 1 node (both on PostgreSQL)";
/// Clients in all, on one node or spread over three.
const CLIENT_COUNTS: [usize; 2] = [100, 1_000];
/// The PostgreSQL the harness and its `postgres-node` children use (a libpq string or URL).
const CONNECTION_VARIABLE: &str = "LIVEBASE_BENCH_POSTGRES";
/// The schema a `postgres-node` child serves.
const SCHEMA_VARIABLE: &str = "LIVEBASE_BENCH_SCHEMA";
/// Set for a `postgres-node` child that is a read replica rather than the writer.
const REPLICA_VARIABLE: &str = "LIVEBASE_BENCH_REPLICA";
const CAVEAT: &str = "fan-out across nodes: measured on one machine, whose cores the writer, both replicas, \
                      PostgreSQL and the clients share; replicas add work here without adding CPU, so this \
                      shows their cost and correctness, not the scaling they give on separate machines";

pub fn run(effort: Effort, report: &mut Report) {
    println!("{SECTION}");
    let connection = std::env::var(CONNECTION_VARIABLE).unwrap_or_else(|_| DEFAULT_CONNECTION.to_owned());
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let schema = |layout: &str, clients: usize| format!("bench_livebase_{layout}_{clients}_{}", std::process::id());
    if let Err(error) = tokio.block_on(drop_schema(&connection, &schema("probe", 0))) {
        report.skipped(&format!("fan-out across nodes: skipped: no PostgreSQL ({error})"));
        return;
    }
    report.note(CAVEAT.to_owned());
    for clients in CLIENT_COUNTS {
        let one_node = format!("1 node, {clients} clients");
        let one_node_schema = schema("one_node", clients);
        let servers = vec![node(&connection, &one_node_schema, false)];
        let alone = tokio.block_on(measure_one_query(SECTION, &one_node, clients, servers, effort, report));
        tokio.block_on(drop_schema(&connection, &one_node_schema)).expect("drop the benchmark schema");

        let spread = format!("1 writer + 2 replicas, {clients} clients");
        let spread_schema = schema("replicas", clients);
        // The writer first: it creates the tables and the app's schema that the replicas load.
        let writer = node(&connection, &spread_schema, false);
        let servers = vec![writer, node(&connection, &spread_schema, true), node(&connection, &spread_schema, true)];
        let replicated = tokio.block_on(measure_one_query(SECTION, &spread, clients, servers, effort, report));
        tokio.block_on(drop_schema(&connection, &spread_schema)).expect("drop the benchmark schema");
        compare(report, (&spread, replicated), (&one_node, alone));
    }
}

fn compare(report: &mut Report, spread: (&str, Medians), one_node: (&str, Medians)) {
    if let (Some(replicated), Some(alone)) = (spread.1.updates_per_second, one_node.1.updates_per_second) {
        report.compare((spread.0, replicated), (one_node.0, alone), "client updates/s", None);
    }
    report.note(format!(
        "fan-out across nodes: {} p50/p99 {:.1}/{:.1} ms from the writer's call, {} {:.1}/{:.1} ms",
        spread.0, spread.1.p50_millis, spread.1.p99_millis, one_node.0, one_node.1.p50_millis, one_node.1.p99_millis
    ));
}

/// Starts a `postgres-node` child on `schema`: the writer, or a read replica of it.
fn node(connection: &str, schema: &str, replica: bool) -> ServerProcess {
    let mut env = vec![(CONNECTION_VARIABLE, connection), (SCHEMA_VARIABLE, schema)];
    if replica {
        env.push((REPLICA_VARIABLE, "1"));
    }
    ServerProcess::start_with_env("postgres-node", &env)
}

/// The `postgres-node` role: the benchmark app on the PostgreSQL schema the harness names, as its
/// writer or a read replica, until stdin closes. It says its port once it serves the app's schema.
pub fn serve_postgres_node() {
    let connection = std::env::var(CONNECTION_VARIABLE).expect("the harness names the PostgreSQL");
    let schema = std::env::var(SCHEMA_VARIABLE).expect("the harness names the schema");
    let replica = std::env::var_os(REPLICA_VARIABLE).is_some();
    run_until_stdin_closes(move |shutdown| async move {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("local address");
        let postgres = PostgresConfig {
            schema,
            advertise_url: Some(format!("http://{address}")),
            ..PostgresConfig::new(connection)
        };
        let store = if replica {
            Store::open(StoreConfig::replica_of(postgres)).expect("open the read replica")
        } else {
            let store = Store::open(StoreConfig::postgres(postgres)).expect("open the writer's store");
            store.apply_schema(&app::schema()).await.expect("schema");
            store
        };
        // Writer and replicas derive the same key from the instance secret they share.
        let admin_key = Some(livebase_server::admin_key::admin_key(&store));
        announce(&listener);
        let config = ServerConfig { shutdown, admin_key, ..ServerConfig::default() };
        serve(listener, Runtime::new(store, app::registry()), config).await.expect("serve");
    });
}
