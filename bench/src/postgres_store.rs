//! Durable commits per second of the engine with its log and checkpoints in PostgreSQL, next to the
//! embedded (SQLite) store in the same run: the same writers and documents, only the storage differs.
//! Each PostgreSQL run uses a fresh schema, named after the process (so that two harnesses running at
//! once do not meet), dropped afterwards.

use livebase_store::{PostgresConfig, StoreConfig};

use crate::Effort;
use crate::commits::{WRITER_COUNTS, engine_run_on};
use crate::postgres::DEFAULT_CONNECTION;
use crate::report::Report;

const SECTION: &str = "Durable commits, embedded store vs PostgreSQL-backed store";

pub fn run(effort: Effort, report: &mut Report) {
    println!("{SECTION}");
    let connection = std::env::var("LIVEBASE_BENCH_POSTGRES").unwrap_or_else(|_| DEFAULT_CONNECTION.to_owned());
    let schema = format!("bench_livebase_store_{}", std::process::id());
    let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    if let Err(error) = tokio.block_on(drop_schema(&connection, &schema)) {
        report.skipped(&format!("engine on PostgreSQL: skipped: no PostgreSQL ({error})"));
        return;
    }
    let settings = tokio.block_on(settings(&connection)).unwrap_or_else(|error| error);
    for writers in WRITER_COUNTS {
        let mut embedded_rates = Vec::new();
        let mut postgres_rates = Vec::new();
        for _ in 0..effort.runs {
            let directory = tempfile::tempdir().expect("temporary directory");
            embedded_rates
                .push(engine_run_on(StoreConfig::new(directory.path()), writers, effort.duration).commits_per_second);
            let config =
                StoreConfig::postgres(PostgresConfig { schema: schema.clone(), ..PostgresConfig::new(&connection) });
            postgres_rates.push(engine_run_on(config, writers, effort.duration).commits_per_second);
            tokio.block_on(drop_schema(&connection, &schema)).expect("drop the benchmark schema");
        }
        let embedded_name = format!("engine on the embedded store, {writers} writers");
        let postgres_name = format!("engine on PostgreSQL, {writers} writers");
        let embedded = report.add(SECTION, &embedded_name, "commits/s", embedded_rates);
        let postgres = report.add(SECTION, &postgres_name, "commits/s", postgres_rates);
        report.compare(
            (&embedded_name, embedded),
            (&format!("{postgres_name} ({settings})"), postgres),
            "commits/s",
            None,
        );
    }
}

pub(crate) async fn drop_schema(connection: &str, schema: &str) -> Result<(), String> {
    let client = connect(connection).await?;
    client.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await.map_err(|error| error.to_string())
}

/// `fsync` and `synchronous_commit`: they decide what a commit costs.
async fn settings(connection: &str) -> Result<String, String> {
    let client = connect(connection).await?;
    let mut settings = Vec::new();
    for setting in ["fsync", "synchronous_commit"] {
        let row = client.query_one(&format!("SHOW {setting}"), &[]).await.map_err(|error| error.to_string())?;
        settings.push(format!("{setting}={}", row.get::<_, String>(0)));
    }
    Ok(settings.join(", "))
}

async fn connect(connection: &str) -> Result<tokio_postgres::Client, String> {
    let (client, driver) =
        tokio_postgres::connect(connection, tokio_postgres::NoTls).await.map_err(|error| error.to_string())?;
    tokio::spawn(driver);
    Ok(client)
}
