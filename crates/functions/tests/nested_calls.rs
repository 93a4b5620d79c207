//! `FunctionCtx::run_query` and `run_mutation`: one function calling another inside the caller's
//! transaction, against a real store in a temporary directory.

use livebase_functions::limits::MAX_NESTED_CALL_DEPTH;
use livebase_functions::{Function, FunctionError, Identity, Registry, Runtime, object_validator};
use livebase_store::{Schema, Store, StoreConfig, TableSchema};
use livebase_value::{Object, ObjectField, Validator, Value};

struct App {
    runtime: Runtime,
    _directory: tempfile::TempDir,
}

fn note(text: &str) -> Object {
    Object::from([("text".to_owned(), Value::from(text))])
}

fn notes(store: &Store) -> Vec<Value> {
    let mut tx = store.begin();
    let notes = livebase_query::Query::table("notes").collect(&mut tx).expect("the notes");
    notes.iter().map(|note| note.get("text").cloned().expect("a text")).collect()
}

async fn app() -> App {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let store = Store::open(StoreConfig::new(directory.path())).expect("the store opens");
    store.apply_schema(&Schema { tables: vec![TableSchema::new("notes")] }).await.expect("the schema applies");
    let text = object_validator([("text", ObjectField::required(Validator::String))]);
    let any = Validator::Record(Box::new(Validator::String), Box::new(Validator::Any));
    let mut registry = Registry::new();
    registry
        .register(
            Function::query("notes:count", object_validator([]), |ctx, _| {
                let notes = ctx.db().query(livebase_query::Query::table("notes")).collect()?;
                Ok(Value::Float64(notes.len() as f64))
            })
            .internal(),
        )
        .unwrap()
        .register(Function::mutation("notes:add", text.clone(), |ctx, args| {
            ctx.db().insert("notes", args)?;
            Ok(Value::Null)
        }))
        .unwrap()
        .register(Function::mutation("notes:addThenFail", text.clone(), |ctx, args| {
            ctx.db().insert("notes", args)?;
            Err(FunctionError::user("refused"))
        }))
        .unwrap()
        .register(Function::mutation("notes:addTwice", text, |ctx, args| {
            let before = ctx.run_query("notes:count", Object::new())?;
            ctx.run_mutation("notes:add", args.clone())?;
            // A caught failure of a nested mutation still fails the call: its insert is in the transaction.
            let caught = ctx.run_mutation("notes:addThenFail", args.clone());
            assert!(caught.is_err());
            ctx.run_mutation("notes:add", args)?;
            Ok(before)
        }))
        .unwrap()
        .register(Function::mutation("notes:addViaNested", any.clone(), |ctx, args| {
            let added = ctx.run_mutation("notes:add", args)?;
            let count = ctx.run_query("notes:count", Object::new())?;
            Ok(Value::Array(vec![added, count]))
        }))
        .unwrap()
        .register(Function::query("notes:writeFromQuery", any.clone(), |ctx, _| {
            ctx.run_mutation("notes:add", note("from a query"))
        }))
        .unwrap()
        .register(Function::query("notes:countFromQuery", any.clone(), |ctx, _| {
            ctx.run_query("notes:count", Object::new())
        }))
        .unwrap()
        .register(Function::query("notes:deeper", any, |ctx, args| {
            let Some(Value::Float64(depth)) = args.get("depth") else { return Ok(Value::Float64(0.0)) };
            let next = Object::from([("depth".to_owned(), Value::Float64(depth + 1.0))]);
            match ctx.run_query("notes:deeper", next) {
                Ok(_) => Ok(Value::Float64(*depth)),
                Err(error) => Err(FunctionError::failed(format!("at depth {depth}: {error}"))),
            }
        }))
        .unwrap();
    App { runtime: Runtime::new(store, registry), _directory: directory }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_nested_mutation_commits_with_its_caller_and_its_reads_join_the_callers() {
    let app = app().await;
    let outcome = app.runtime.run_mutation("notes:addViaNested", note("one"), &Identity::Unauthenticated).await;
    assert_eq!(outcome.result, Ok(Value::Array(vec![Value::Null, Value::Float64(1.0)])), "reads its own writes");
    assert!(outcome.ts.is_some());
    assert_eq!(notes(app.runtime.store()), vec![Value::from("one")]);

    // A query calling an internal query: the read lands in the caller's read set.
    let mut outcome =
        app.runtime.run_query("notes:countFromQuery", Object::new(), &Identity::Unauthenticated, None, None);
    assert_eq!(outcome.result, Ok(Value::Float64(1.0)));
    outcome.read_set.normalize();
    let mut commits = app.runtime.store().subscribe();
    app.runtime.run_mutation("notes:add", note("two"), &Identity::Unauthenticated).await.result.unwrap();
    let commit = commits.recv().await.expect("the commit");
    assert!(commit.keys.iter().any(|key| outcome.read_set.contains(key)), "the nested read is the caller's");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_nested_mutation_rolls_back_the_whole_call_even_when_caught() {
    let app = app().await;
    let outcome = app.runtime.run_mutation("notes:addTwice", note("x"), &Identity::Unauthenticated).await;
    let Err(FunctionError::User { message, .. }) = &outcome.result else { panic!("{:?}", outcome.result) };
    assert_eq!(message, "refused");
    assert_eq!(outcome.ts, None);
    assert!(notes(app.runtime.store()).is_empty(), "nothing of the call committed");
}

#[tokio::test(flavor = "multi_thread")]
async fn nested_calls_check_arguments_kinds_writes_and_depth() {
    let app = app().await;
    let bad = Object::from([("text".to_owned(), Value::Float64(1.0))]);
    let outcome = app.runtime.run_mutation("notes:addViaNested", bad, &Identity::Unauthenticated).await;
    let Err(FunctionError::Failed(message)) = &outcome.result else { panic!("{:?}", outcome.result) };
    assert!(message.contains("ArgumentValidationError in `notes:add`"), "{message}");

    let outcome = app.runtime.run_query("notes:writeFromQuery", Object::new(), &Identity::Unauthenticated, None, None);
    let Err(FunctionError::Failed(message)) = &outcome.result else { panic!("{:?}", outcome.result) };
    assert!(message.contains("not allowed in a query"), "{message}");

    let start = Object::from([("depth".to_owned(), Value::Float64(1.0))]);
    let outcome = app.runtime.run_query("notes:deeper", start, &Identity::Unauthenticated, None, None);
    let Err(FunctionError::Failed(message)) = &outcome.result else { panic!("{:?}", outcome.result) };
    assert!(message.contains("MAX_NESTED_CALL_DEPTH"), "{message}");
    // The call at the limit is the one refused its nested call.
    assert!(message.contains(&format!("at depth {MAX_NESTED_CALL_DEPTH}: ")), "{message}");
    assert!(message.starts_with("at depth 1: at depth 2: "), "{message}");
}
