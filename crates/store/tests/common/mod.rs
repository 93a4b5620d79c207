//! Helpers shared by the store's integration tests.
#![allow(dead_code, unused_macros, unused_imports)] // Each test binary uses a different subset.

use std::sync::OnceLock;

use livebase_store::{PostgresConfig, Store, StoreConfig};
use livebase_value::{Object, Value};

/// The PostgreSQL the tests use; each test gets a schema of its own in it.
pub const POSTGRES_VARIABLE: &str = "LIVEBASE_TEST_POSTGRES";
const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";
/// Set (to 1) where PostgreSQL is known to run: its tests then fail instead of being skipped.
const REQUIRE_POSTGRES_VARIABLE: &str = "LIVEBASE_REQUIRE_POSTGRES";

pub fn open(directory: &std::path::Path) -> Store {
    Store::open(StoreConfig::new(directory)).expect("open store")
}

pub fn object(fields: &[(&str, Value)]) -> Object {
    fields.iter().map(|(name, value)| ((*name).to_owned(), value.clone())).collect()
}

pub fn int(document: &livebase_store::Document, field: &str) -> i64 {
    match document.get(field) {
        Some(Value::Int64(value)) => *value,
        other => panic!("field {field} is {other:?}"),
    }
}

/// Where one test's store lives, on either backend; removed when dropped.
pub struct TestDb {
    config: StoreConfig,
    place: Place,
}

enum Place {
    Directory(tempfile::TempDir),
    Schema { url: String, name: String },
}

impl TestDb {
    pub fn sqlite() -> TestDb {
        let directory = tempfile::tempdir().expect("a temporary directory");
        TestDb { config: StoreConfig::new(directory.path()), place: Place::Directory(directory) }
    }

    /// A fresh schema in the test PostgreSQL, or `None` (said loudly) when there is none to use.
    pub fn postgres() -> Option<TestDb> {
        let url = postgres_url()?;
        let name = format!("livebase_test_{:016x}", rand::random::<u64>());
        let config = StoreConfig::postgres(PostgresConfig { schema: name.clone(), ..PostgresConfig::new(&url) });
        Some(TestDb { config, place: Place::Schema { url, name } })
    }

    /// Names this place for another process (see `config_of_place`).
    pub fn place(&self) -> String {
        match &self.place {
            Place::Directory(directory) => format!("sqlite:{}", directory.path().display()),
            Place::Schema { name, .. } => format!("postgres:{name}"),
        }
    }

    /// The configuration of a place named by `place`, in a process that does not own it.
    pub fn config_of_place(place: &str) -> StoreConfig {
        match place.split_once(':') {
            Some(("sqlite", directory)) => StoreConfig::new(directory),
            Some(("postgres", schema)) => {
                let url = postgres_url().expect("the parent process reached PostgreSQL");
                StoreConfig::postgres(PostgresConfig { schema: schema.to_owned(), ..PostgresConfig::new(url) })
            }
            _ => panic!("unknown test place {place}"),
        }
    }

    /// A fresh place on the same backend.
    pub fn another(&self) -> TestDb {
        match self.place {
            Place::Directory(_) => TestDb::sqlite(),
            Place::Schema { .. } => TestDb::postgres().expect("PostgreSQL was reachable a moment ago"),
        }
    }

    pub fn config(&self) -> StoreConfig {
        self.config.clone()
    }

    /// The same place with other settings (checkpoint frequency, lease).
    pub fn with_config(mut self, adjust: impl FnOnce(&mut StoreConfig)) -> TestDb {
        adjust(&mut self.config);
        self
    }

    pub fn open(&self) -> Store {
        Store::open(self.config()).expect("open store")
    }

    /// Rows in the durable log (group commits not yet folded into a checkpoint).
    pub fn log_rows(&self) -> i64 {
        self.query_one_i64("SELECT count(*) FROM log")
    }

    /// Runs SQL against the backend's log database (SQLite `log.sqlite3`, or the test's schema).
    pub fn execute(&self, statement: &str) {
        match &self.place {
            Place::Directory(directory) => {
                let connection = rusqlite::Connection::open(directory.path().join("log.sqlite3")).unwrap();
                connection.execute_batch(statement).unwrap();
            }
            Place::Schema { url, name } => {
                postgres_client(url).batch_execute(&format!("SET search_path TO {name}; {statement}")).unwrap();
            }
        }
    }

    pub fn query_one_i64(&self, query: &str) -> i64 {
        match &self.place {
            Place::Directory(directory) => {
                let connection = rusqlite::Connection::open(directory.path().join("log.sqlite3")).unwrap();
                connection.query_row(query, [], |row| row.get(0)).unwrap()
            }
            Place::Schema { url, name } => {
                let mut client = postgres_client(url);
                client.batch_execute(&format!("SET search_path TO {name}")).unwrap();
                client.query_one(query, &[]).unwrap().get(0)
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Place::Schema { url, name } = &self.place {
            let dropped = postgres_client(url).batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"));
            if let Err(error) = dropped {
                eprintln!("dropping test schema {name} failed: {error}");
            }
        }
    }
}

fn postgres_client(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).expect("the test PostgreSQL was reachable a moment ago")
}

/// The test PostgreSQL's URL if it answers; otherwise prints why its tests are skipped, or fails
/// when `LIVEBASE_REQUIRE_POSTGRES=1` says it must be there.
fn postgres_url() -> Option<String> {
    static REACHABLE: OnceLock<Result<String, String>> = OnceLock::new();
    let reachable = REACHABLE.get_or_init(|| {
        let url = std::env::var(POSTGRES_VARIABLE).unwrap_or_else(|_| DEFAULT_POSTGRES.to_owned());
        let mut config: postgres::Config =
            url.parse().map_err(|error| format!("{POSTGRES_VARIABLE}={url}: {error}"))?;
        config.connect_timeout(std::time::Duration::from_secs(5));
        // Connecting from a plain thread: `postgres` can't block inside an async test's runtime.
        let connected = std::thread::scope(|scope| scope.spawn(|| config.connect(postgres::NoTls).map(drop)).join());
        match connected.expect("connecting does not panic") {
            Ok(()) => Ok(url),
            Err(error) => Err(format!("PostgreSQL not reachable at {url} ({error})")),
        }
    });
    match reachable {
        Ok(url) => Some(url.clone()),
        Err(why) if std::env::var(REQUIRE_POSTGRES_VARIABLE).is_ok_and(|value| value == "1") => {
            panic!("{why}, but {REQUIRE_POSTGRES_VARIABLE}=1 says it must be")
        }
        Err(why) => {
            eprintln!("!!!!! SKIPPED: {why}; set {POSTGRES_VARIABLE} to run the PostgreSQL tests !!!!!");
            None
        }
    }
}

/// One suite, two backends: for each named test body (a `fn(TestDb)`), a test `sqlite::name` and a
/// test `postgres::name` (skipped, loudly, without a PostgreSQL to run on).
macro_rules! on_both_backends {
    ($($test:ident),+ $(,)?) => {
        mod sqlite {
            $(#[test]
            fn $test() {
                super::$test($crate::common::TestDb::sqlite())
            })+
        }
        mod postgres {
            $(#[test]
            fn $test() {
                if let Some(db) = $crate::common::TestDb::postgres() {
                    super::$test(db)
                }
            })+
        }
    };
}
pub(crate) use on_both_backends;
