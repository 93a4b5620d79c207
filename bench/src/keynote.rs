//! The functions of SpacetimeDB's public "keynote-2" transfer benchmark (templates/keynote-2 in
//! clockworklabs/SpacetimeDB), with its names and arguments, so that its harness, which drives
//! Convex deployments through the HTTP API, can measure Livebase unmodified. The `keynote` scenario
//! runs our own load generator on the same workload over HTTP against this app served by a child
//! process: transfers/s and latency under uniform and zipf 1.5 account choices, and the total
//! balance checked after each.
//!
//! - `transfer:transfer({amount, from_id, to_id})`: moves `amount` between two accounts found
//!   through `by_account_id`; returns without writing when the accounts are the same, the amount is
//!   not positive, an account is missing or the balance is too low (the harness counts no errors).
//! - `accounts:get_account({id})` -> `{id, balance}` or null.
//! - `seed:seed_range({start, count, initial})`: accounts `start..start + count`.
//! - `seed:clear_accounts({})`: deletes up to [`MAX_CLEARED_PER_CALL`] accounts, returns how many.
//!
//! Arguments arrive as JSON numbers (float64), as the harness sends them; ids and balances are
//! whole numbers well below 2^53, so sums of balances stay exact.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use livebase_functions::{Function, FunctionCtx, FunctionError, Registry, Runtime, object_validator};
use livebase_query::Query;
use livebase_server::{ServerConfig, serve};
use livebase_store::{Document, Schema, Store, StoreConfig, TableSchema};
use livebase_value::{Object, ObjectField, Validator, Value};

use crate::Effort;
use crate::client::HttpCaller;
use crate::report::Report;
use crate::server::{ServerProcess, listen, run_until_stdin_closes};
use crate::transfer::{AccountPicker, Distribution, TransferRun};

const SECTION: &str = "SpacetimeDB keynote-2 workload over the Convex HTTP API";

const ACCOUNTS: &str = "accounts";
const BY_ACCOUNT_ID: &str = "by_account_id";
/// Accounts `seed:clear_accounts` deletes per call, as keynote-2's Convex app does.
pub const MAX_CLEARED_PER_CALL: usize = 4_000;
/// Accounts one `seed:seed_range` call may insert: each is a document and an index entry, and the
/// store takes at most 16,000 writes per transaction.
pub const MAX_SEEDED_PER_CALL: usize = 5_000;

/// The load generator's figures: keynote-2's default account count.
const ACCOUNTS_SEEDED: usize = 100_000;
const INITIAL_BALANCE: f64 = 1_000.0;
/// Requests in flight at once, over as many keep-alive connections.
const CONCURRENCY: usize = 32;

pub fn schema() -> Schema {
    Schema { tables: vec![TableSchema::new(ACCOUNTS).index(BY_ACCOUNT_ID, &["id"])] }
}

pub fn registry() -> Registry {
    let float = || ObjectField::required(Validator::Float64);
    let functions = [
        Function::mutation(
            "transfer:transfer",
            object_validator([("amount", float()), ("from_id", float()), ("to_id", float())]),
            |ctx, args| transfer(ctx, &args).map(|()| Value::Null),
        ),
        Function::query("accounts:get_account", object_validator([("id", float())]), |ctx, args| {
            let account = account(ctx, &args["id"])?;
            Ok(account.map_or(Value::Null, |account| {
                Value::Object(Object::from([
                    ("id".to_owned(), account.object()["id"].clone()),
                    ("balance".to_owned(), account.object()["balance"].clone()),
                ]))
            }))
        }),
        Function::mutation(
            "seed:seed_range",
            object_validator([("start", float()), ("count", float()), ("initial", float())]),
            |ctx, args| seed_range(ctx, &args).map(|()| Value::Null),
        ),
        Function::mutation("seed:clear_accounts", object_validator([]), |ctx, _| {
            let accounts = ctx.db().query(Query::table(ACCOUNTS)).take(MAX_CLEARED_PER_CALL)?;
            for account in &accounts {
                ctx.db().delete(account.id())?;
            }
            Ok(Value::Float64(accounts.len() as f64))
        }),
    ];
    let mut registry = Registry::new();
    for function in functions {
        registry.register(function).expect("the keynote app's functions are valid and distinct");
    }
    registry
}

fn number(value: &Value) -> f64 {
    let Value::Float64(number) = value else { unreachable!("validated as a float64") };
    *number
}

fn account(ctx: &mut FunctionCtx, id: &Value) -> Result<Option<Arc<Document>>, FunctionError> {
    ctx.db().query(Query::table(ACCOUNTS).with_index(BY_ACCOUNT_ID, |range| range.eq("id", id.clone()))).first()
}

fn balance(account: &Document) -> Result<f64, FunctionError> {
    match account.object().get("balance") {
        Some(Value::Float64(balance)) => Ok(*balance),
        _ => Err(FunctionError::failed("an account without a numeric balance")),
    }
}

fn transfer(ctx: &mut FunctionCtx, args: &Object) -> Result<(), FunctionError> {
    let amount = number(&args["amount"]);
    if args["from_id"] == args["to_id"] || amount.is_nan() || amount <= 0.0 {
        return Ok(());
    }
    let (Some(from), Some(to)) = (account(ctx, &args["from_id"])?, account(ctx, &args["to_id"])?) else {
        return Ok(());
    };
    let (from_balance, to_balance) = (balance(&from)?, balance(&to)?);
    if from_balance < amount {
        return Ok(());
    }
    let set_balance = |balance: f64| BTreeMap::from([("balance".to_owned(), Some(Value::Float64(balance)))]);
    ctx.db().patch(from.id(), set_balance(from_balance - amount))?;
    ctx.db().patch(to.id(), set_balance(to_balance + amount))
}

fn seed_range(ctx: &mut FunctionCtx, args: &Object) -> Result<(), FunctionError> {
    let (start, count) = (number(&args["start"]), number(&args["count"]));
    if start.fract() != 0.0 || count.fract() != 0.0 || count < 0.0 || start.abs() > (1u64 << 52) as f64 {
        return Err(FunctionError::user("`start` and `count` must be whole numbers, `count` not negative"));
    }
    if count > MAX_SEEDED_PER_CALL as f64 {
        return Err(FunctionError::user(format!("`count` is over {MAX_SEEDED_PER_CALL} accounts per call")));
    }
    for offset in 0..count as u64 {
        let account = Object::from([
            ("id".to_owned(), Value::Float64(start + offset as f64)),
            ("balance".to_owned(), args["initial"].clone()),
        ]);
        ctx.db().insert(ACCOUNTS, account)?;
    }
    Ok(())
}

/// The `keynote-server` role: this app on a fresh store, until stdin closes.
pub fn serve_keynote_app() {
    let data_dir = std::env::var("LIVEBASE_BENCH_DATA_DIR").expect("the harness names a data directory");
    run_until_stdin_closes(|shutdown| async move {
        let store = Store::open(StoreConfig::new(data_dir)).expect("open store");
        store.apply_schema(&schema()).await.expect("schema");
        let listener = listen().await;
        let config = ServerConfig { shutdown, ..ServerConfig::default() };
        serve(listener, Runtime::new(store, registry()), config).await.expect("serve");
    });
}

/// The keynote scenario: serves the app from a child process, seeds it over HTTP, runs transfers
/// under each distribution, and checks after each distribution's runs that no money appeared or
/// vanished.
pub fn run(effort: Effort, report: &mut Report) {
    println!("{SECTION}");
    let server = ServerProcess::start("keynote-server");
    let caller = HttpCaller::new(server.address);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let seeding = Instant::now();
    runtime.block_on(async {
        for start in (0..ACCOUNTS_SEEDED).step_by(MAX_SEEDED_PER_CALL) {
            let count = MAX_SEEDED_PER_CALL.min(ACCOUNTS_SEEDED - start);
            let args = serde_json::json!({ "start": start, "count": count, "initial": INITIAL_BALANCE });
            caller.call("mutation", "seed:seed_range", args).await.expect("seed");
        }
    });
    report.add(SECTION, &format!("seeding {ACCOUNTS_SEEDED} accounts"), "s", vec![seeding.elapsed().as_secs_f64()]);
    let expected_total = ACCOUNTS_SEEDED as f64 * INITIAL_BALANCE;
    let mut rates = Vec::new();
    for distribution in [Distribution::Uniform, Distribution::Zipf] {
        let runs: Vec<TransferRun> =
            (0..effort.runs).map(|_| runtime.block_on(transfers(&caller, distribution, effort.duration))).collect();
        let name = format!("{}, {CONCURRENCY} in flight", distribution.name());
        rates.push(crate::transfer::add_figures(report, SECTION, &name, &runs));
        let total = runtime.block_on(total_balance(&caller));
        report.add(
            SECTION,
            &format!("{name}: total balance change after the runs"),
            "balance",
            vec![total - expected_total],
        );
        if total == expected_total {
            report.note(format!(
                "keynote-2 over HTTP, {}: total balance unchanged after {} runs ({total} over {ACCOUNTS_SEEDED} \
                 accounts)",
                distribution.name(),
                runs.len()
            ));
        } else {
            report.failed(&format!(
                "keynote-2 over HTTP, {}: the total balance is {total}, not {expected_total}",
                distribution.name()
            ));
        }
    }
    report.compare(
        (&format!("HTTP API, zipf 1.5, {CONCURRENCY} in flight"), rates[1]),
        (&format!("HTTP API, uniform, {CONCURRENCY} in flight"), rates[0]),
        "transfers/s",
        Some(crate::transfer::TARGET_ZIPF_SHARE_OF_UNIFORM),
    );
}

/// Runs transfers of 1 from `CONCURRENCY` tasks for `duration`. A failed call (typically the
/// server giving up after `MAX_TRANSACTION_ATTEMPTS` conflicts on a hot account) commits nothing,
/// so the total balance holds regardless; it is counted and reported.
async fn transfers(caller: &HttpCaller, distribution: Distribution, duration: Duration) -> TransferRun {
    let started = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|task| {
            let caller = caller.clone();
            tokio::spawn(async move {
                let mut picker = AccountPicker::new(ACCOUNTS_SEEDED, distribution, task as u64);
                let mut run = TransferRun::default();
                while started.elapsed() < duration {
                    let (from, to) = picker.pick();
                    let args = serde_json::json!({ "amount": 1, "from_id": from, "to_id": to });
                    let sent = Instant::now();
                    match caller.call("mutation", "transfer:transfer", args).await {
                        Ok(_) => run.latencies_micros.push(sent.elapsed().as_micros() as u64),
                        Err(error) => run.failure(error),
                    }
                }
                run
            })
        })
        .collect();
    TransferRun::gather(tasks, started).await
}

/// The sum of every account's balance, read through `accounts:get_account`.
async fn total_balance(caller: &HttpCaller) -> f64 {
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|task| {
            let caller = caller.clone();
            tokio::spawn(async move {
                let mut sum = 0.0;
                for id in (task..ACCOUNTS_SEEDED).step_by(CONCURRENCY) {
                    let account = caller.call("query", "accounts:get_account", serde_json::json!({ "id": id })).await;
                    sum += account.expect("get_account")["balance"].as_f64().expect("every seeded account exists");
                }
                sum
            })
        })
        .collect();
    let mut total = 0.0;
    for task in tasks {
        total += task.await.expect("balance task");
    }
    total
}

#[cfg(test)]
mod tests {
    use serde_json::{Value as Json, json};

    use super::*;
    use crate::server::InProcess;

    /// The keynote app served in-process on 127.0.0.1:0, called through the real HTTP API.
    async fn start() -> (HttpCaller, InProcess) {
        let server = InProcess::start(&schema(), registry()).await;
        (HttpCaller::new(server.address), server)
    }

    async fn mutation(caller: &HttpCaller, path: &str, args: Json) -> Json {
        caller.call("mutation", path, args).await.unwrap_or_else(|error| panic!("{path}: {error}"))
    }

    async fn balance(caller: &HttpCaller, id: u64) -> Json {
        let account = caller.call("query", "accounts:get_account", json!({ "id": id })).await.expect("get_account");
        account["balance"].clone()
    }

    async fn transfer(caller: &HttpCaller, amount: f64, from_id: u64, to_id: u64) -> Json {
        mutation(caller, "transfer:transfer", json!({ "amount": amount, "from_id": from_id, "to_id": to_id })).await
    }

    #[tokio::test]
    async fn seeded_accounts_are_read_by_id_and_missing_ones_are_null() {
        let (caller, _server) = start().await;
        mutation(&caller, "seed:seed_range", json!({ "start": 10, "count": 3, "initial": 500 })).await;
        let account = caller.call("query", "accounts:get_account", json!({ "id": 12 })).await.expect("get_account");
        assert_eq!(account, json!({ "id": 12.0, "balance": 500.0 }));
        for missing in [9, 13] {
            let account = caller.call("query", "accounts:get_account", json!({ "id": missing })).await;
            assert_eq!(account, Ok(Json::Null), "account {missing}");
        }
    }

    #[tokio::test]
    async fn transfer_moves_the_amount_and_every_refusal_writes_nothing() {
        let (caller, _server) = start().await;
        mutation(&caller, "seed:seed_range", json!({ "start": 0, "count": 2, "initial": 100 })).await;
        assert_eq!(transfer(&caller, 30.0, 0, 1).await, Json::Null);
        assert_eq!((balance(&caller, 0).await, balance(&caller, 1).await), (json!(70.0), json!(130.0)));

        let refused = [
            (30.0, 0, 0, "the same account"),
            (0.0, 0, 1, "a zero amount"),
            (-5.0, 0, 1, "a negative amount"),
            (10.0, 0, 7, "a missing receiver"),
            (10.0, 7, 0, "a missing sender"),
            (71.0, 0, 1, "too low a balance"),
        ];
        for (amount, from_id, to_id, case) in refused {
            assert_eq!(transfer(&caller, amount, from_id, to_id).await, Json::Null, "{case}");
            assert_eq!((balance(&caller, 0).await, balance(&caller, 1).await), (json!(70.0), json!(130.0)), "{case}");
        }
        let account = caller.call("query", "accounts:get_account", json!({ "id": 7 })).await;
        assert_eq!(account, Ok(Json::Null), "a refused transfer creates no account");
    }

    #[tokio::test]
    async fn seed_range_refuses_a_count_over_its_limit() {
        let (caller, _server) = start().await;
        let over = json!({ "start": 0, "count": MAX_SEEDED_PER_CALL + 1, "initial": 1 });
        let error = caller.call("mutation", "seed:seed_range", over).await.expect_err("over the limit");
        assert!(error.contains(&MAX_SEEDED_PER_CALL.to_string()), "{error}");
        let fractional = json!({ "start": 0.5, "count": 1, "initial": 1 });
        assert!(caller.call("mutation", "seed:seed_range", fractional).await.is_err());
        assert_eq!(caller.call("query", "accounts:get_account", json!({ "id": 0 })).await, Ok(Json::Null));
    }

    #[tokio::test]
    async fn clear_accounts_deletes_at_most_its_limit_per_call() {
        let (caller, _server) = start().await;
        let seeded = MAX_CLEARED_PER_CALL + 10;
        for start in (0..seeded).step_by(MAX_SEEDED_PER_CALL) {
            let count = MAX_SEEDED_PER_CALL.min(seeded - start);
            mutation(&caller, "seed:seed_range", json!({ "start": start, "count": count, "initial": 1 })).await;
        }
        let mut deleted = Vec::new();
        for _ in 0..3 {
            deleted.push(mutation(&caller, "seed:clear_accounts", json!({})).await);
        }
        assert_eq!(deleted, [json!(MAX_CLEARED_PER_CALL as f64), json!(10.0), json!(0.0)]);
        for id in [0, seeded - 1] {
            let account = caller.call("query", "accounts:get_account", json!({ "id": id })).await;
            assert_eq!(account, Ok(Json::Null), "account {id}");
        }
    }
}
