//! The transfer workload of SpacetimeDB's "keynote" benchmark: accounts with balances and a
//! `transfer(from, to, amount)` mutation that reads both balances and writes both. Accounts are
//! chosen uniformly, then by a zipf(1.5) law so that a few accounts take most transfers (contention).
//! 64 clients keep several transfers in flight each; at the end the total balance must be what it
//! was. PostgreSQL runs the same workload as SERIALIZABLE transactions from 64 connections.

use std::sync::Arc;
use std::time::{Duration, Instant};

use livebase_functions::{Identity, Runtime};
use livebase_store::{Store, StoreConfig};
use livebase_value::{Object, Value};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution as _, Zipf};

use crate::Effort;
use crate::app::{self, ACCOUNTS};
use crate::postgres::Postgres;
use crate::report::{Report, percentile};

const SECTION: &str = "Transfers (SpacetimeDB's keynote workload)";
const ACCOUNT_COUNT: usize = 100_000;
const INITIAL_BALANCE: i64 = 1_000_000_000;
/// Each transfer moves one unit: no run can drain an account.
const AMOUNT: i64 = 1;
const CLIENTS: usize = 64;
/// Transfers each engine client keeps in flight. A PostgreSQL connection runs one transaction at a
/// time, so there each client has one.
const IN_FLIGHT_PER_CLIENT: usize = 4;
const ZIPF_ALPHA: f64 = 1.5;
/// Accounts created per loading transaction, below the store's 16,000-write limit.
const ACCOUNTS_PER_TRANSACTION: usize = 10_000;

/// The transfer issue's targets: a multiple of PostgreSQL, and contention costing at most half.
const TARGET_TIMES_POSTGRES: f64 = 10.0;
pub const TARGET_ZIPF_SHARE_OF_UNIFORM: f64 = 0.5;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Distribution {
    Uniform,
    Zipf,
}

impl Distribution {
    pub fn name(self) -> &'static str {
        match self {
            Distribution::Uniform => "uniform",
            Distribution::Zipf => "zipf 1.5",
        }
    }
}

/// Picks the two distinct accounts of each transfer, by account number.
pub struct AccountPicker {
    rng: StdRng,
    accounts: usize,
    zipf: Option<Zipf<f64>>,
}

impl AccountPicker {
    /// `seed` makes each client's sequence of transfers repeatable.
    pub fn new(accounts: usize, distribution: Distribution, seed: u64) -> AccountPicker {
        assert!(accounts >= 2, "a transfer needs two accounts");
        let zipf = (distribution == Distribution::Zipf)
            .then(|| Zipf::new(accounts as f64, ZIPF_ALPHA).expect("a valid zipf distribution"));
        AccountPicker { rng: StdRng::seed_from_u64(seed), accounts, zipf }
    }

    fn account(&mut self) -> usize {
        match &self.zipf {
            // Zipf ranks start at 1: rank 1 is the hottest account.
            Some(zipf) => zipf.sample(&mut self.rng) as usize - 1,
            None => self.rng.random_range(0..self.accounts),
        }
    }

    pub fn pick(&mut self) -> (usize, usize) {
        let from = self.account();
        // Bounded: under zipf(1.5) the hottest account is drawn about 38% of the time.
        for _ in 0..1_000 {
            let to = self.account();
            if to != from {
                return (from, to);
            }
        }
        unreachable!("1,000 draws all hit account {from}")
    }
}

/// What clients saw during one run.
#[derive(Default)]
pub struct TransferRun {
    pub latencies_micros: Vec<u64>,
    /// Attempts that conflicted and were retried (PostgreSQL only: the engine retries inside).
    pub retries: u64,
    pub failures: u64,
    pub first_failure: Option<String>,
    pub elapsed: Duration,
}

impl TransferRun {
    pub fn failure(&mut self, error: String) {
        self.failures += 1;
        self.first_failure.get_or_insert(error);
    }

    pub fn merge(&mut self, other: TransferRun) {
        self.latencies_micros.extend(other.latencies_micros);
        self.retries += other.retries;
        self.failures += other.failures;
        if self.first_failure.is_none() {
            self.first_failure = other.first_failure;
        }
    }

    /// Waits for every load task started at `started` and merges their runs into one.
    pub async fn gather(tasks: Vec<tokio::task::JoinHandle<TransferRun>>, started: Instant) -> TransferRun {
        let mut total = TransferRun::default();
        for task in tasks {
            total.merge(task.await.expect("transfer task"));
        }
        total.elapsed = started.elapsed();
        total
    }

    fn per_second(&self) -> f64 {
        self.latencies_micros.len() as f64 / self.elapsed.as_secs_f64()
    }
}

pub fn run(effort: Effort, report: &mut Report) {
    println!("{SECTION}");
    let tokio = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let directory = tempfile::tempdir().expect("temporary directory");
    let store = Store::open(StoreConfig::new(directory.path())).expect("open store");
    store.apply_schema_blocking(&app::schema()).expect("schema");
    let ids = load_accounts(&store);
    let functions = Runtime::new(store.clone(), app::registry());
    let mut engine_rates = Vec::new();
    for distribution in [Distribution::Uniform, Distribution::Zipf] {
        let runs: Vec<TransferRun> = (0..effort.runs)
            .map(|_| {
                let run = tokio.block_on(engine_transfers(&functions, &ids, distribution, effort.duration));
                assert_eq!(engine_total(&store), total(), "the engine's transfers kept the total balance");
                run
            })
            .collect();
        engine_rates.push(add_figures(report, SECTION, &format!("engine, {}", distribution.name()), &runs));
    }
    report.note(format!(
        "transfers: the engine's total balance was unchanged after every run ({} accounts)",
        ACCOUNT_COUNT
    ));
    report.compare(
        ("engine, zipf 1.5", engine_rates[1]),
        ("engine, uniform", engine_rates[0]),
        "transfers/s",
        Some(TARGET_ZIPF_SHARE_OF_UNIFORM),
    );
    let postgres = match tokio.block_on(Postgres::connect(CLIENTS)) {
        Ok(postgres) => postgres,
        Err(error) => {
            report.skipped(&format!("PostgreSQL transfers: skipped: no PostgreSQL ({error})"));
            return;
        }
    };
    report.context("PostgreSQL (baselines)", &postgres.settings);
    tokio.block_on(postgres.create_accounts(ACCOUNT_COUNT, INITIAL_BALANCE));
    for (distribution, engine_rate) in [Distribution::Uniform, Distribution::Zipf].into_iter().zip(engine_rates) {
        let runs: Vec<TransferRun> = (0..effort.runs)
            .map(|_| {
                let run = tokio.block_on(postgres.transfers(CLIENTS, ACCOUNT_COUNT, distribution, effort.duration));
                assert_eq!(tokio.block_on(postgres.total_balance()), total(), "PostgreSQL kept the total balance");
                run
            })
            .collect();
        let retries = runs.iter().map(|run| run.retries as f64 / run.latencies_micros.len().max(1) as f64).collect();
        let name = format!("PostgreSQL SERIALIZABLE, {}", distribution.name());
        let postgres_rate = add_figures(report, SECTION, &name, &runs);
        report.add(SECTION, &format!("{name}: serialization retries per transfer"), "retries", retries);
        report.compare(
            (&format!("engine, {}", distribution.name()), engine_rate),
            (&name, postgres_rate),
            "transfers/s",
            Some(TARGET_TIMES_POSTGRES),
        );
    }
    tokio.block_on(postgres.drop_tables());
}

fn total() -> i64 {
    ACCOUNT_COUNT as i64 * INITIAL_BALANCE
}

/// Creates the accounts; returns their ids by account number.
fn load_accounts(store: &Store) -> Arc<[String]> {
    for _ in 0..ACCOUNT_COUNT / ACCOUNTS_PER_TRANSACTION {
        store
            .transact_blocking(|tx| {
                for _ in 0..ACCOUNTS_PER_TRANSACTION {
                    tx.insert(ACCOUNTS, Object::from([("balance".to_owned(), Value::Int64(INITIAL_BALANCE))]))?;
                }
                Ok(())
            })
            .expect("load accounts");
    }
    let accounts = store.snapshot().documents(ACCOUNTS);
    assert_eq!(accounts.len(), ACCOUNT_COUNT);
    accounts.iter().map(|account| account.id().encode()).collect()
}

fn engine_total(store: &Store) -> i64 {
    store
        .snapshot()
        .documents(ACCOUNTS)
        .iter()
        .map(|account| app::balance_of(account.object()).expect("every account has a balance"))
        .sum()
}

/// `CLIENTS * IN_FLIGHT_PER_CLIENT` tasks each run one `accounts:transfer` after another.
async fn engine_transfers(
    functions: &Runtime,
    ids: &Arc<[String]>,
    distribution: Distribution,
    duration: Duration,
) -> TransferRun {
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS * IN_FLIGHT_PER_CLIENT)
        .map(|task| {
            let functions = functions.clone();
            let ids = Arc::clone(ids);
            let mut picker = AccountPicker::new(ids.len(), distribution, task as u64);
            tokio::spawn(async move {
                let mut run = TransferRun::default();
                while Instant::now() < deadline {
                    let (from, to) = picker.pick();
                    let args = Object::from([
                        ("from".to_owned(), Value::String(ids[from].clone())),
                        ("to".to_owned(), Value::String(ids[to].clone())),
                        ("amount".to_owned(), Value::Int64(AMOUNT)),
                    ]);
                    let sent = Instant::now();
                    let outcome = functions.run_mutation("accounts:transfer", args, &Identity::Unauthenticated).await;
                    match outcome.result {
                        Ok(_) => run.latencies_micros.push(sent.elapsed().as_micros() as u64),
                        Err(error) => run.failure(error.to_string()),
                    }
                }
                run
            })
        })
        .collect();
    TransferRun::gather(tasks, started).await
}

/// Records rate and latency figures of `runs` in `section`; returns the median rate.
pub fn add_figures(report: &mut Report, section: &str, name: &str, runs: &[TransferRun]) -> f64 {
    let failures: u64 = runs.iter().map(|run| run.failures).sum();
    if let Some(error) = runs.iter().find_map(|run| run.first_failure.as_ref()) {
        report.note(format!("{name}: {failures} transfers failed over {} runs, e.g. {error}", runs.len()));
    }
    let rates = runs.iter().map(TransferRun::per_second).collect();
    let p50 = runs.iter().map(|run| percentile(&run.latencies_micros, 0.50)).collect();
    let p99 = runs.iter().map(|run| percentile(&run.latencies_micros, 0.99)).collect();
    let rate = report.add(section, &format!("{name}: transfers"), "transfers/s", rates);
    report.add(section, &format!("{name}: latency p50"), "µs", p50);
    report.add(section, &format!("{name}: latency p99"), "µs", p99);
    rate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfers_are_between_two_distinct_accounts_in_range() {
        for distribution in [Distribution::Uniform, Distribution::Zipf] {
            let mut picker = AccountPicker::new(1_000, distribution, 7);
            for _ in 0..10_000 {
                let (from, to) = picker.pick();
                assert!(from != to && from < 1_000 && to < 1_000, "({from}, {to})");
            }
        }
    }

    #[test]
    fn zipf_concentrates_on_the_first_accounts() {
        let mut picker = AccountPicker::new(100_000, Distribution::Zipf, 7);
        let draws = 10_000;
        let hottest = (0..draws).filter(|_| picker.account() == 0).count();
        // Zipf(1.5) gives rank 1 a share of 1/zeta(1.5), about 38%.
        assert!((3_300..4_300).contains(&hottest), "account 0 drawn {hottest} times of {draws}");
        let mut uniform = AccountPicker::new(100_000, Distribution::Uniform, 7);
        assert!((0..draws).filter(|_| uniform.account() == 0).count() < 10);
    }

    #[test]
    fn a_transfer_moves_money_and_bad_transfers_change_nothing() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let store = Store::open(StoreConfig::new(directory.path())).expect("open store");
        store.apply_schema_blocking(&app::schema()).expect("schema");
        let account = |balance| Object::from([("balance".to_owned(), Value::Int64(balance))]);
        let ((a, b), _) = store
            .transact_blocking(|tx| Ok((tx.insert(ACCOUNTS, account(10))?, tx.insert(ACCOUNTS, account(0))?)))
            .expect("accounts");
        let functions = Runtime::new(store.clone(), app::registry());
        let transfer = |from: &livebase_value::DocumentId, to: &livebase_value::DocumentId, amount| {
            let args = Object::from([
                ("from".to_owned(), Value::String(from.encode())),
                ("to".to_owned(), Value::String(to.encode())),
                ("amount".to_owned(), Value::Int64(amount)),
            ]);
            let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            tokio.block_on(functions.run_mutation("accounts:transfer", args, &Identity::Unauthenticated)).result
        };
        let balances = || {
            let snapshot = store.snapshot();
            [a, b].map(|id| app::balance_of(snapshot.get(id).expect("account").object()).expect("balance"))
        };
        transfer(&a, &b, 4).expect("a valid transfer");
        assert_eq!(balances(), [6, 4]);
        for (from, to, amount, problem) in
            [(&a, &b, 7, "insufficient funds"), (&a, &a, 1, "two accounts"), (&a, &b, 0, "positive")]
        {
            let error = transfer(from, to, amount).expect_err(problem).to_string();
            assert!(error.contains(problem), "{error}");
            assert_eq!(balances(), [6, 4], "a refused transfer changes nothing");
        }
    }
}
