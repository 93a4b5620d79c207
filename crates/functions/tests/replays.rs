//! Mutations called with a client's request key run at most once: replays get the recorded result.

use std::time::Duration;

use livebase_functions::limits::{
    MAX_MUTATION_REPLAYS_PER_SESSION, MAX_REPLAYABLE_RESULT_BYTES, MUTATION_REPLAY_RETENTION,
};
use livebase_functions::{
    Function, FunctionError, Identity, MUTATION_REPLAYS_TABLE, MutationOutcome, Registry, RequestKey, Runtime,
    object_validator,
};
use livebase_query::Query;
use livebase_store::{Schema, Store, StoreConfig, TableSchema};
use livebase_value::{Object, ObjectField, Validator, Value, encode_key_value};

struct App {
    runtime: Runtime,
    store: Store,
    _directory: tempfile::TempDir,
}

/// `events:add` inserts an event and returns how many there are; `events:addWhenOpen` fails until a
/// `gates` document exists; `events:addReturning({size})` returns that many bytes.
async fn app() -> App {
    let directory = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(directory.path())).unwrap();
    let tables = vec![TableSchema::new("events"), TableSchema::new("gates")];
    store.apply_schema(&Schema { tables }).await.unwrap();
    let mut registry = Registry::new();
    let add = |ctx: &mut livebase_functions::FunctionCtx<'_>| -> Result<Value, FunctionError> {
        ctx.db().insert("events", Object::new())?;
        Ok(Value::Int64(ctx.db().query(Query::table("events")).collect()?.len() as i64))
    };
    registry
        .register(Function::mutation("events:add", object_validator([]), move |ctx, _| add(ctx)))
        .unwrap()
        .register(Function::mutation("events:addWhenOpen", object_validator([]), move |ctx, _| {
            if ctx.db().query(Query::table("gates")).collect()?.is_empty() {
                return Err(FunctionError::user("closed"));
            }
            add(ctx)
        }))
        .unwrap()
        .register(Function::mutation(
            "events:addReturning",
            object_validator([("size", ObjectField::required(Validator::Float64))]),
            move |ctx, args| {
                add(ctx)?;
                let Value::Float64(size) = args["size"] else { unreachable!("validated") };
                Ok(Value::Bytes(vec![1; size as usize]))
            },
        ))
        .unwrap();
    App { runtime: Runtime::new(store.clone(), registry), store, _directory: directory }
}

fn key(session: &str, request: u32) -> RequestKey {
    RequestKey { session: session.to_owned(), request }
}

const SESSION: &str = "4c2d8f0e-1b7a-4c55-9e0a-2f3b6d7e8a91";
const OTHER_SESSION: &str = "0a1b2c3d-4e5f-4061-8273-9485a6b7c8d9";

impl App {
    async fn once(&self, path: &str, args: Object, request: &RequestKey) -> MutationOutcome {
        self.runtime.run_mutation_once(path, args, &Identity::Unauthenticated, request).await
    }

    async fn add(&self, request: &RequestKey) -> MutationOutcome {
        self.once("events:add", Object::new(), request).await
    }

    fn events(&self) -> usize {
        self.store.snapshot().document_count("events")
    }

    fn records(&self) -> usize {
        self.store.snapshot().document_count(MUTATION_REPLAYS_TABLE)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_request_gets_the_recorded_result_without_running_again() {
    let app = app().await;
    let first = app.add(&key(SESSION, 7)).await;
    assert_eq!(first.result.as_ref().unwrap(), &Value::Int64(1));
    let replay = app.add(&key(SESSION, 7)).await;
    assert_eq!(replay.result.unwrap(), Value::Int64(1), "the original result");
    assert!(replay.ts.unwrap() >= first.ts.unwrap(), "a replay's Transition must reach the original commit");
    assert_eq!(app.events(), 1, "the replay ran nothing");
    // Another request of the session, or the same number in another session, is a new call.
    assert_eq!(app.add(&key(SESSION, 8)).await.result.unwrap(), Value::Int64(2));
    assert_eq!(app.add(&key(OTHER_SESSION, 7)).await.result.unwrap(), Value::Int64(3));
    // A mutation called without a key records nothing.
    app.runtime.run_mutation("events:add", Object::new(), &Identity::Unauthenticated).await.result.unwrap();
    assert_eq!((app.events(), app.records()), (4, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_mutation_records_nothing_so_its_replay_runs() {
    let app = app().await;
    let request = key(SESSION, 0);
    let closed = app.once("events:addWhenOpen", Object::new(), &request).await;
    assert_eq!(closed.result.unwrap_err().data(), Some(&Value::from("closed")));
    assert_eq!((app.events(), app.records()), (0, 0));
    app.store.transact(|tx| tx.insert("gates", Object::new())).await.unwrap();
    let replay = app.once("events:addWhenOpen", Object::new(), &request).await;
    assert_eq!(replay.result.unwrap(), Value::Int64(1));
    assert_eq!((app.events(), app.records()), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_keeps_its_newest_records_only() {
    let app = app().await;
    let limit = u32::try_from(MAX_MUTATION_REPLAYS_PER_SESSION).unwrap();
    for request in 0..=limit {
        app.add(&key(SESSION, request)).await.result.unwrap();
    }
    app.add(&key(OTHER_SESSION, 0)).await.result.unwrap();
    assert_eq!(app.records(), MAX_MUTATION_REPLAYS_PER_SESSION + 1, "one session at the limit, one record beside");
    // The oldest record of the session went; the one after it is still there.
    let runs = app.events();
    assert_eq!(app.add(&key(SESSION, 1)).await.result.unwrap(), Value::Int64(2));
    assert_eq!(app.events(), runs);
    app.add(&key(SESSION, 0)).await.result.unwrap();
    assert_eq!(app.events(), runs + 1, "a request older than the kept ones runs again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_too_large_to_record_fails_the_mutation_and_commits_nothing() {
    let app = app().await;
    let encoded_len = |size: usize| {
        let mut encoded = Vec::new();
        encode_key_value(&mut encoded, Some(&Value::Bytes(vec![1; size])));
        encoded.len()
    };
    let largest = MAX_REPLAYABLE_RESULT_BYTES - (encoded_len(0));
    assert_eq!(encoded_len(largest), MAX_REPLAYABLE_RESULT_BYTES);
    let size = |size: usize| Object::from([("size".to_owned(), Value::Float64(size as f64))]);
    let fits = app.once("events:addReturning", size(largest), &key(SESSION, 0)).await;
    assert_eq!(fits.result.unwrap(), Value::Bytes(vec![1; largest]));
    let too_large = app.once("events:addReturning", size(largest + 1), &key(SESSION, 1)).await;
    let message = too_large.result.unwrap_err().client_message().to_owned();
    assert!(message.contains("MAX_REPLAYABLE_RESULT_BYTES"), "{message}");
    assert_eq!((app.events(), app.records()), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_deletes_the_records_older_than_the_retention() {
    let app = app().await;
    for request in 0..3 {
        app.add(&key(SESSION, request)).await.result.unwrap();
    }
    assert_eq!(app.runtime.prune_mutation_replays(MUTATION_REPLAY_RETENTION).await.unwrap(), 0);
    assert_eq!(app.records(), 3);
    assert_eq!(app.runtime.prune_mutation_replays(Duration::ZERO).await.unwrap(), 3);
    assert_eq!(app.records(), 0);
    // Past the retention a replay is a new call.
    assert_eq!(app.add(&key(SESSION, 0)).await.result.unwrap(), Value::Int64(4));
}
