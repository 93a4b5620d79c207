//! The call interface end to end: a real registry run against a real store in a temporary directory.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use livebase_functions::limits::{MAX_ACTION_DEPTH, MAX_LOG_LINES};
use livebase_functions::{
    Function, FunctionCtx, FunctionError, INTERNAL_ERROR_MESSAGE, Identity, LogLevel, Registry, RegistryError, Runtime,
    UserIdentity, object_validator, pagination_options, pagination_opts_validator, pagination_result,
};
use livebase_query::{Order, Query};
use livebase_store::{Schema, Store, StoreConfig, TableSchema, Timestamp};
use livebase_value::{DocumentId, Object, ObjectField, Validator, Value};

struct App {
    runtime: Runtime,
    store: Store,
    /// Attempts of `counters:conflictOnce` so far.
    conflict_attempts: Arc<AtomicUsize>,
    _directory: tempfile::TempDir,
}

async fn app() -> App {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let store = Store::open(StoreConfig::new(directory.path())).expect("the store opens");
    store
        .apply_schema(&Schema {
            tables: vec![
                TableSchema::new("centers"),
                TableSchema::new("counters"),
                TableSchema::new("notes"),
                TableSchema::new("students").index("by_center_status", &["centerId", "status"]),
            ],
        })
        .await
        .expect("the schema applies");
    let conflict_attempts = Arc::new(AtomicUsize::new(0));
    let runtime = Runtime::new(store.clone(), registry(&store, &conflict_attempts));
    App { runtime, store, conflict_attempts, _directory: directory }
}

async fn insert(store: &Store, table: &str, fields: Object) -> (DocumentId, Timestamp) {
    store.transact(|tx| tx.insert(table, fields.clone())).await.expect("the insert commits")
}

fn required(validator: Validator) -> ObjectField {
    ObjectField::required(validator)
}

fn object(fields: &[(&str, Value)]) -> Object {
    fields.iter().map(|(name, value)| (name.to_string(), value.clone())).collect()
}

/// The id in `args[field]`, which the args validator checked is an id of `table`.
fn id_arg(ctx: &mut FunctionCtx<'_>, args: &Object, field: &str, table: &str) -> DocumentId {
    let Some(Value::String(id)) = args.get(field) else { panic!("`{field}` is validated as a string") };
    ctx.db().normalize_id(table, id).expect("validated as an id of the table")
}

fn counter_value(ctx: &mut FunctionCtx<'_>, id: DocumentId) -> Result<i64, FunctionError> {
    let counter = ctx.db().get(id)?.ok_or_else(|| FunctionError::failed("no such counter"))?;
    match counter.get("n") {
        Some(Value::Int64(n)) => Ok(*n),
        other => panic!("counters hold an int64 `n`, not {other:?}"),
    }
}

fn set_counter(ctx: &mut FunctionCtx<'_>, id: DocumentId, n: i64) -> Result<(), FunctionError> {
    ctx.db().patch(id, BTreeMap::from([("n".to_owned(), Some(Value::Int64(n)))]))
}

fn every_validator() -> Validator {
    object_validator([
        ("any", required(Validator::Any)),
        ("null", required(Validator::Null)),
        ("boolean", required(Validator::Boolean)),
        ("string", required(Validator::String)),
        ("float64", required(Validator::Float64)),
        ("int64", required(Validator::Int64)),
        ("bytes", required(Validator::Bytes)),
        ("id", required(Validator::Id("centers".to_owned()))),
        ("literal", required(Validator::Literal(Value::from("exact")))),
        ("array", required(Validator::Array(Box::new(Validator::Int64)))),
        (
            "object",
            required(object_validator([
                ("a", required(Validator::String)),
                ("b", ObjectField::optional(Validator::Int64)),
            ])),
        ),
        ("record", required(Validator::Record(Box::new(Validator::String), Box::new(Validator::Float64)))),
        ("union", required(Validator::Union(vec![Validator::String, Validator::Int64]))),
        ("optional", ObjectField::optional(Validator::String)),
    ])
}

fn registry(store: &Store, conflict_attempts: &Arc<AtomicUsize>) -> Registry {
    let no_args = || object_validator([]);
    let counter_args = || object_validator([("id", required(Validator::Id("counters".to_owned())))]);
    let mut registry = Registry::new();
    registry
        .register(Function::query("validators:echo", every_validator(), |_, args| Ok(Value::Object(args))))
        .unwrap()
        .register(Function::query(
            "ids:normalize",
            object_validator([("table", required(Validator::String)), ("id", required(Validator::String))]),
            |ctx, args| {
                let (Value::String(table), Value::String(id)) = (&args["table"], &args["id"]) else { unreachable!() };
                Ok(ctx.db().normalize_id(table, id).map_or(Value::Null, |id| Value::String(id.encode())))
            },
        ))
        .unwrap()
        .register(Function::mutation("counters:create", no_args(), |ctx, _| {
            let id = ctx.db().insert("counters", object(&[("n", Value::Int64(0))]))?;
            Ok(Value::String(id.encode()))
        }))
        .unwrap()
        .register(Function::query("counters:get", counter_args(), |ctx, args| {
            let id = id_arg(ctx, &args, "id", "counters");
            Ok(Value::Int64(counter_value(ctx, id)?))
        }))
        .unwrap()
        .register(Function::mutation("counters:increment", counter_args(), |ctx, args| {
            let id = id_arg(ctx, &args, "id", "counters");
            let n = counter_value(ctx, id)?;
            ctx.log(LogLevel::Log, format!("from {n}"));
            set_counter(ctx, id, n + 1)?;
            Ok(Value::Int64(n + 1))
        }))
        .unwrap()
        .register(Function::mutation("counters:conflictOnce", counter_args(), {
            let store = store.clone();
            let attempts = Arc::clone(conflict_attempts);
            move |ctx, args| {
                let id = id_arg(ctx, &args, "id", "counters");
                let n = counter_value(ctx, id)?;
                let attempt = attempts.fetch_add(1, Ordering::SeqCst) + 1;
                ctx.log(LogLevel::Info, format!("attempt {attempt} read {n}"));
                if attempt == 1 {
                    // A commit lands between this attempt's read and its commit: the attempt must conflict.
                    let store = store.clone();
                    let write = move || {
                        store.transact_blocking(|tx| tx.patch(id, BTreeMap::from([("n".into(), Some(100.into()))])))
                    };
                    std::thread::spawn(write).join().expect("the writer runs").expect("the write commits");
                }
                set_counter(ctx, id, n + 1)?;
                Ok(Value::Int64(n + 1))
            }
        }))
        .unwrap()
        .register(Function::mutation("notes:failAfterWrite", no_args(), |ctx, _| {
            ctx.db().insert("notes", object(&[("body", Value::from("never"))]))?;
            Err(FunctionError::user(Value::Object(object(&[
                ("code", Value::from("TAKEN")),
                ("slot", Value::Int64(3)),
            ]))))
        }))
        .unwrap()
        .register(Function::mutation("notes:panicAfterWrite", no_args(), |ctx, _| {
            ctx.db().insert("notes", object(&[("body", Value::from("never"))]))?;
            ctx.log(LogLevel::Warn, "about to panic");
            panic!("the handler's bug");
        }))
        .unwrap()
        .register(
            Function::mutation("notes:badReturn", no_args(), |ctx, _| {
                ctx.db().insert("notes", object(&[("body", Value::from("never"))]))?;
                Ok(Value::Int64(1))
            })
            .returns(Validator::String),
        )
        .unwrap()
        .register(Function::mutation(
            "notes:add",
            object_validator([("body", required(Validator::String))]),
            |ctx, args| Ok(Value::String(ctx.db().insert("notes", args)?.encode())),
        ))
        .unwrap()
        .register(Function::mutation("notes:writeSystemTable", no_args(), |ctx, _| {
            ctx.db().insert("_scheduled_functions", Object::new())?;
            Ok(Value::Null)
        }))
        .unwrap()
        .register(Function::query("notes:tryWrite", no_args(), |ctx, _| {
            ctx.db().insert("notes", object(&[("body", Value::from("never"))]))?;
            Ok(Value::Null)
        }))
        .unwrap()
        .register(Function::query("notes:list", no_args(), |ctx, _| {
            let notes = ctx.db().query(Query::table("notes")).collect()?;
            let bodies = notes.iter().map(|note| note.get("body").cloned().unwrap_or(Value::Null)).collect();
            Ok(Value::Array(bodies))
        }))
        .unwrap()
        .register(Function::query("clock:twice", no_args(), |ctx, _| {
            Ok(Value::Array(vec![Value::Float64(ctx.now()), Value::Float64(ctx.now())]))
        }))
        .unwrap()
        .register(Function::query("auth:whoami", no_args(), |ctx, _| {
            Ok(ctx.auth().get_user_identity().map_or(Value::Null, |user| Value::from(user.token_identifier.as_str())))
        }))
        .unwrap()
        .register(Function::query("private:secret", no_args(), |_, _| Ok(Value::from("internal data"))).internal())
        .unwrap()
        .register(
            Function::query("returns:checked", object_validator([("value", required(Validator::Any))]), |_, args| {
                Ok(args["value"].clone())
            })
            .returns(Validator::String),
        )
        .unwrap()
        .register(Function::query("logs:many", object_validator([("n", required(Validator::Int64))]), |ctx, args| {
            let Value::Int64(n) = args["n"] else { unreachable!() };
            for line in 0..n {
                ctx.log(LogLevel::Log, line);
            }
            Ok(Value::Null)
        }))
        .unwrap()
        .register(Function::query("logs:thenPanic", no_args(), |ctx, _| {
            ctx.log(LogLevel::Error, "before the panic");
            panic!("the query's bug")
        }))
        .unwrap()
        .register(Function::query(
            "students:listByCenter",
            object_validator([
                ("centerId", required(Validator::Id("centers".into()))),
                ("paginationOpts", required(pagination_opts_validator())),
            ]),
            |ctx, args| {
                let students = Query::table("students")
                    .with_index("by_center_status", |q| q.eq("centerId", args["centerId"].clone()))
                    .order(Order::Desc);
                let page = ctx.db().query(students).paginate(&pagination_options(&args["paginationOpts"])?)?;
                Ok(pagination_result(&page))
            },
        ))
        .unwrap()
        .register(Function::action("actions:orchestrate", no_args(), |ctx, _| async move {
            ctx.log(LogLevel::Log, "starting");
            let secret = ctx.run_query("private:secret", Object::new()).await?;
            let counter = ctx.run_mutation("counters:create", Object::new()).await?;
            let Value::String(counter) = counter else { unreachable!() };
            ctx.run_mutation("counters:increment", object(&[("id", Value::String(counter.clone()))])).await?;
            let n = ctx.run_query("counters:get", object(&[("id", Value::String(counter))])).await?;
            Ok(Value::Array(vec![secret, n]))
        }))
        .unwrap()
        .register(Function::action(
            "actions:nest",
            object_validator([("levels", required(Validator::Int64))]),
            |ctx, args| async move {
                let Value::Int64(levels) = args["levels"] else { unreachable!() };
                if levels == 0 {
                    return Ok(Value::Int64(0));
                }
                let below = ctx.run_action("actions:nest", object(&[("levels", Value::Int64(levels - 1))])).await?;
                let Value::Int64(below) = below else { unreachable!() };
                Ok(Value::Int64(below + 1))
            },
        ))
        .unwrap()
        .register(Function::action("actions:panic", no_args(), |ctx, _| async move {
            ctx.log(LogLevel::Error, "about to panic");
            if ctx.auth().get_user_identity().is_none() {
                panic!("the action's bug");
            }
            Ok(Value::Null)
        }))
        .unwrap();
    registry
}

fn query(app: &App, path: &str, args: Object) -> Result<Value, FunctionError> {
    app.runtime.run_query(path, args, &Identity::Unauthenticated, None, None).result
}

async fn mutation(app: &App, path: &str, args: Object) -> Result<Value, FunctionError> {
    app.runtime.run_mutation(path, args, &Identity::Unauthenticated).await.result
}

fn failure(result: Result<Value, FunctionError>) -> String {
    match result {
        Err(FunctionError::Failed(message)) => message,
        other => panic!("expected a failure visible to the client, got {other:?}"),
    }
}

async fn new_counter(app: &App) -> Value {
    mutation(app, "counters:create", Object::new()).await.expect("a counter")
}

fn valid_echo_args(center: &str) -> Object {
    object(&[
        ("any", Value::Bytes(vec![1])),
        ("null", Value::Null),
        ("boolean", Value::Boolean(true)),
        ("string", Value::from("s")),
        ("float64", Value::Float64(1.5)),
        ("int64", Value::Int64(7)),
        ("bytes", Value::Bytes(vec![0, 1])),
        ("id", Value::from(center)),
        ("literal", Value::from("exact")),
        ("array", Value::Array(vec![Value::Int64(1), Value::Int64(2)])),
        ("object", Value::Object(object(&[("a", Value::from("x"))]))),
        ("record", Value::Object(object(&[("k", Value::Float64(2.0))]))),
        ("union", Value::Int64(3)),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_validator_checks_function_arguments_and_names_the_bad_field() {
    let app = app().await;
    let (center, _) = insert(&app.store, "centers", Object::new()).await;
    let (student, _) = insert(&app.store, "students", Object::new()).await;
    let valid = valid_echo_args(&center.encode());
    assert_eq!(query(&app, "validators:echo", valid.clone()), Ok(Value::Object(valid.clone())));

    let with = |field: &str, value: Value| {
        let mut args = valid.clone();
        args.insert(field.to_owned(), value);
        failure(query(&app, "validators:echo", args))
    };
    let wrong_types = [
        ("null", Value::Boolean(false)),
        ("boolean", Value::Null),
        ("string", Value::Int64(1)),
        ("float64", Value::Int64(1)),
        ("int64", Value::Float64(1.0)),
        ("bytes", Value::from("bytes")),
        ("id", Value::from("not an id")),
        ("literal", Value::from("other")),
        ("array", Value::Int64(1)),
        ("object", Value::Array(Vec::new())),
        ("record", Value::Null),
        ("union", Value::Boolean(true)),
        ("optional", Value::Null),
    ];
    for (field, value) in wrong_types {
        let message = with(field, value);
        assert!(message.starts_with("ArgumentValidationError in `validators:echo`: "), "{message}");
        assert!(message.contains(&format!("`{field}`")), "{field}: {message}");
    }
    let nested = [
        ("array", Value::Array(vec![Value::Int64(1), Value::from("two")]), "`array[1]`"),
        ("object", Value::Object(object(&[("a", Value::Int64(1))])), "`object.a`"),
        ("object", Value::Object(object(&[("a", Value::from("x")), ("c", Value::Null)])), "`object.c`"),
        ("object", Value::Object(Object::new()), "`object.a`"),
        ("record", Value::Object(object(&[("k", Value::from("v"))])), "`record.k`"),
    ];
    for (field, value, path) in nested {
        let message = with(field, value);
        assert!(message.contains(path), "{path}: {message}");
    }
    // An id of the wrong table names both tables.
    let message = with("id", Value::String(student.encode()));
    assert!(message.contains("`id`") && message.contains("centers") && message.contains("students"), "{message}");

    let mut missing = valid.clone();
    missing.remove("string");
    let message = failure(query(&app, "validators:echo", missing));
    assert!(message.contains("`string`") && message.contains("missing"), "{message}");

    let mut extra = valid.clone();
    extra.insert("surprise".to_owned(), Value::Null);
    let message = failure(query(&app, "validators:echo", extra));
    assert!(message.contains("`surprise`") && message.contains("not in the object validator"), "{message}");

    let mut optional_given = valid;
    optional_given.insert("optional".to_owned(), Value::from("here"));
    assert!(query(&app, "validators:echo", optional_given).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn normalize_id_accepts_only_ids_of_the_table() {
    let app = app().await;
    let (center, _) = insert(&app.store, "centers", Object::new()).await;
    let normalize = |table: &str, id: &str| {
        query(&app, "ids:normalize", object(&[("table", Value::from(table)), ("id", Value::from(id))])).unwrap()
    };
    assert_eq!(normalize("centers", &center.encode()), Value::String(center.encode()));
    assert_eq!(normalize("students", &center.encode()), Value::Null);
    assert_eq!(normalize("centers", "not an id"), Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_to_the_wrong_function_fail_clearly() {
    let app = app().await;
    assert_eq!(
        failure(query(&app, "nope:nothing", Object::new())),
        "Could not find public function for 'nope:nothing'"
    );
    // Internal functions are as absent to clients as unknown ones.
    let hidden = failure(query(&app, "private:secret", Object::new()));
    assert_eq!(hidden, "Could not find public function for 'private:secret'");
    let from_server = app.runtime.run_query("private:secret", Object::new(), &Identity::System, None, None);
    assert_eq!(from_server.result, Ok(Value::from("internal data")));
    assert_eq!(
        failure(query(&app, "counters:create", Object::new())),
        "Trying to execute counters:create as Query, but it is defined as Mutation."
    );
    assert_eq!(
        failure(mutation(&app, "notes:list", Object::new()).await),
        "Trying to execute notes:list as Mutation, but it is defined as Query."
    );
    let as_action = app.runtime.run_action("notes:list", Object::new(), &Identity::Unauthenticated).await;
    assert_eq!(failure(as_action.result), "Trying to execute notes:list as Action, but it is defined as Query.");
    let message = failure(query(&app, "bad path:x", Object::new()));
    assert!(message.starts_with("Invalid function path `bad path:x`"), "{message}");
    // `notes.js:list` is `notes:list`.
    assert_eq!(query(&app, "notes.js:list", Object::new()), Ok(Value::Array(Vec::new())));
}

#[test]
fn registration_refuses_bad_names_duplicates_and_non_object_args() {
    let noop = |path: &str| Function::query(path, object_validator([]), |_, _| Ok(Value::Null));
    let mut registry = Registry::new();
    registry.register(noop("students")).unwrap();
    for duplicate in ["students:default", "students.js", "students.js:default"] {
        let error = registry.register(noop(duplicate)).map(|_| ()).unwrap_err();
        assert_eq!(error.to_string(), "Function `students:default` is registered twice");
    }
    let error = registry.register(noop("students:bad-name")).map(|_| ()).unwrap_err();
    assert!(matches!(&error, RegistryError::InvalidPath(path) if path.path == "students:bad-name"), "{error}");
    let error = registry
        .register(Function::mutation("students:create", Validator::String, |_, _| Ok(Value::Null)))
        .map(|_| ())
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "The arguments validator of `students:create` must be an object validator (`v.object({...})`), not `v.string()`"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_mutation_writes_nothing_and_its_user_error_data_round_trips() {
    let app = app().await;
    let outcome = app.runtime.run_mutation("notes:failAfterWrite", Object::new(), &Identity::Unauthenticated).await;
    let data = Value::Object(object(&[("code", Value::from("TAKEN")), ("slot", Value::Int64(3))]));
    let error = outcome.result.unwrap_err();
    assert_eq!(error.data(), Some(&data));
    assert_eq!(error.client_message(), data.to_string());
    assert_eq!(outcome.ts, None);
    let returned_wrong = mutation(&app, "notes:badReturn", Object::new()).await;
    let message = failure(returned_wrong);
    assert!(message.starts_with("ReturnsValidationError in `notes:badReturn`: "), "{message}");
    assert_eq!(query(&app, "notes:list", Object::new()), Ok(Value::Array(Vec::new())));
    // A string's message is the string itself.
    assert_eq!(FunctionError::user("Slot taken").client_message(), "Slot taken");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn return_values_are_validated() {
    let app = app().await;
    assert_eq!(query(&app, "returns:checked", object(&[("value", Value::from("ok"))])), Ok(Value::from("ok")));
    let message = failure(query(&app, "returns:checked", object(&[("value", Value::Int64(1))])));
    assert!(message.starts_with("ReturnsValidationError in `returns:checked`: "), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_cannot_write_and_a_mutation_cannot_write_system_tables() {
    let app = app().await;
    assert_eq!(
        failure(query(&app, "notes:tryWrite", Object::new())),
        "`db.insert` is not allowed in a query: queries only read (write in a mutation)"
    );
    assert_eq!(query(&app, "notes:list", Object::new()), Ok(Value::Array(Vec::new())));
    let message = failure(mutation(&app, "notes:writeSystemTable", Object::new()).await);
    assert!(message.starts_with("Table `_scheduled_functions` is a system table"), "{message}");
    // The same handler shape writes fine as a mutation.
    mutation(&app, "notes:add", object(&[("body", Value::from("hi"))])).await.unwrap();
    assert_eq!(query(&app, "notes:list", Object::new()), Ok(Value::Array(vec![Value::from("hi")])));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_of_a_query_at_one_timestamp_agree() {
    let app = app().await;
    let counter = new_counter(&app).await;
    let args = object(&[("id", counter.clone())]);
    let first = app.runtime.run_query("counters:get", args.clone(), &Identity::Unauthenticated, None, None);
    let again = app.runtime.run_query("counters:get", args.clone(), &Identity::Unauthenticated, None, Some(first.ts));
    assert_eq!(first.result, Ok(Value::Int64(0)));
    assert_eq!((&again.result, again.ts), (&first.result, first.ts));
    assert!(!first.read_set.is_empty());
    assert_eq!(again.read_set, first.read_set);

    // After a commit, the earlier timestamp still reads the state as it was then.
    mutation(&app, "counters:increment", args.clone()).await.unwrap();
    let past = app.runtime.run_query("counters:get", args.clone(), &Identity::Unauthenticated, None, Some(first.ts));
    assert_eq!((past.result, past.ts), (Ok(Value::Int64(0)), first.ts));
    let latest = app.runtime.run_query("counters:get", args.clone(), &Identity::Unauthenticated, None, None);
    assert_eq!(latest.result, Ok(Value::Int64(1)));
    let future = Timestamp::from_nanos(u64::MAX);
    let ahead = app.runtime.run_query("counters:get", args, &Identity::Unauthenticated, None, Some(future));
    assert!(failure(ahead.result).contains("it is after the latest commit"));

    // The clock stands still within a run.
    let Ok(Value::Array(times)) = query(&app, "clock:twice", Object::new()) else { panic!() };
    assert_eq!(times[0], times[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_increments_all_count() {
    const TASKS: i64 = 8;
    const INCREMENTS: i64 = 50;
    let app = Arc::new(app().await);
    let counter = new_counter(&app).await;
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let (app, args) = (Arc::clone(&app), object(&[("id", counter.clone())]));
            tokio::spawn(async move {
                for _ in 0..INCREMENTS {
                    let outcome = app.runtime.run_mutation("counters:increment", args.clone(), &Identity::System).await;
                    outcome.result.expect("the increment commits");
                    // Only the attempt that committed reports its line.
                    assert_eq!(outcome.log_lines.len(), 1);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("the task finishes");
    }
    assert_eq!(query(&app, "counters:get", object(&[("id", counter)])), Ok(Value::Int64(TASKS * INCREMENTS)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflicting_mutation_reruns_and_reports_only_its_last_attempt() {
    let app = app().await;
    let counter = new_counter(&app).await;
    let args = object(&[("id", counter.clone())]);
    let outcome = app.runtime.run_mutation("counters:conflictOnce", args.clone(), &Identity::Unauthenticated).await;
    assert_eq!(outcome.result, Ok(Value::Int64(101)));
    assert_eq!(app.conflict_attempts.load(Ordering::SeqCst), 2);
    let lines: Vec<String> = outcome.log_lines.iter().map(ToString::to_string).collect();
    assert_eq!(lines, ["[INFO] attempt 2 read 100"]);
    assert_eq!(query(&app, "counters:get", args), Ok(Value::Int64(101)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panics_fail_only_their_call_and_commit_nothing() {
    let app = app().await;
    let outcome = app.runtime.run_mutation("notes:panicAfterWrite", Object::new(), &Identity::Unauthenticated).await;
    let error = outcome.result.unwrap_err();
    assert_eq!(error, FunctionError::internal("`notes:panicAfterWrite` panicked: the handler's bug"));
    assert_eq!(error.client_message(), INTERNAL_ERROR_MESSAGE);
    assert_eq!(outcome.ts, None);
    // The lines logged before the panic are kept.
    assert_eq!(outcome.log_lines.iter().map(ToString::to_string).collect::<Vec<_>>(), ["[WARN] about to panic"]);
    assert_eq!(query(&app, "notes:list", Object::new()), Ok(Value::Array(Vec::new())));

    let action = app.runtime.run_action("actions:panic", Object::new(), &Identity::Unauthenticated).await;
    assert_eq!(action.result, Err(FunctionError::internal("`actions:panic` panicked: the action's bug")));
    assert_eq!(action.log_lines.len(), 1);
    // The server goes on.
    mutation(&app, "notes:add", object(&[("body", Value::from("after"))])).await.unwrap();
    assert_eq!(query(&app, "notes:list", Object::new()), Ok(Value::Array(vec![Value::from("after")])));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_lines_are_bounded_per_call() {
    let app = app().await;
    let run = |n: usize| {
        let args = object(&[("n", Value::Int64(n as i64))]);
        app.runtime.run_query("logs:many", args, &Identity::Unauthenticated, None, None).log_lines
    };
    let at_limit = run(MAX_LOG_LINES);
    assert_eq!(at_limit.len(), MAX_LOG_LINES);
    assert_eq!(at_limit[0].to_string(), "[LOG] 0");
    let over = run(MAX_LOG_LINES + 1);
    assert_eq!(over.len(), MAX_LOG_LINES + 1);
    assert_eq!(over[MAX_LOG_LINES - 1], at_limit[MAX_LOG_LINES - 1]);
    let marker = over[MAX_LOG_LINES].to_string();
    assert!(marker.starts_with("[WARN] Log overflow: 1 more lines omitted"), "{marker}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_see_the_callers_identity() {
    let app = app().await;
    let user = UserIdentity {
        token_identifier: "https://issuer|user-1".to_owned(),
        subject: "user-1".to_owned(),
        issuer: "https://issuer".to_owned(),
        claims: Object::new(),
    };
    let run = |identity: &Identity| app.runtime.run_query("auth:whoami", Object::new(), identity, None, None).result;
    assert_eq!(run(&Identity::User(user)), Ok(Value::from("https://issuer|user-1")));
    assert_eq!(run(&Identity::Unauthenticated), Ok(Value::Null));
    assert_eq!(run(&Identity::System), Ok(Value::Null));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_run_says_whether_it_read_the_callers_identity() {
    let app = app().await;
    let run = |path: &str, args: Object| app.runtime.run_query(path, args, &Identity::Unauthenticated, None, None);
    let whoami = run("auth:whoami", Object::new());
    assert_eq!((whoami.result, whoami.read_identity), (Ok(Value::Null), true));
    let counter = object(&[("id", new_counter(&app).await)]);
    let get = run("counters:get", counter);
    assert_eq!((get.result, get.read_identity), (Ok(Value::Int64(0)), false), "its result is every caller's");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_run_internal_queries_and_mutations_and_collect_their_logs() {
    let app = app().await;
    let outcome = app.runtime.run_action("actions:orchestrate", Object::new(), &Identity::Unauthenticated).await;
    assert_eq!(outcome.result, Ok(Value::Array(vec![Value::from("internal data"), Value::Int64(1)])));
    let lines: Vec<String> = outcome.log_lines.iter().map(ToString::to_string).collect();
    assert_eq!(lines, ["[LOG] starting", "[LOG] from 0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_nest_up_to_the_limit() {
    let app = app().await;
    let nest = |levels: usize| {
        let args = object(&[("levels", Value::Int64(levels as i64))]);
        app.runtime.run_action("actions:nest", args, &Identity::Unauthenticated)
    };
    // `levels` more actions below the outermost one.
    assert_eq!(nest(MAX_ACTION_DEPTH - 1).await.result, Ok(Value::Int64(MAX_ACTION_DEPTH as i64 - 1)));
    let message = failure(nest(MAX_ACTION_DEPTH).await.result);
    assert!(message.contains(&format!("at most {MAX_ACTION_DEPTH} deep")), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paginated_queries_keep_their_pages_end_through_the_journal() {
    let app = app().await;
    let (center, _) = insert(&app.store, "centers", Object::new()).await;
    let student = object(&[("centerId", Value::String(center.encode())), ("status", Value::from("active"))]);
    for _ in 0..4 {
        insert(&app.store, "students", student.clone()).await;
    }
    let args = object(&[
        ("centerId", Value::String(center.encode())),
        ("paginationOpts", Value::Object(object(&[("numItems", Value::Float64(2.0)), ("cursor", Value::Null)]))),
    ]);
    let page_len = |outcome: &livebase_functions::QueryOutcome| match &outcome.result {
        Ok(Value::Object(page)) => match &page["page"] {
            Value::Array(items) => items.len(),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    };
    let run = |journal: Option<&str>| {
        app.runtime.run_query("students:listByCenter", args.clone(), &Identity::Unauthenticated, journal, None)
    };
    let first = run(None);
    assert_eq!(page_len(&first), 2);
    let journal = first.journal.clone().expect("a paginated query keeps a journal");
    // Newest first: a new student lands inside the first page, which grows instead of pushing one out.
    insert(&app.store, "students", student).await;
    assert_eq!(page_len(&run(Some(&journal))), 3);
    assert_eq!(page_len(&run(None)), 2);
    let message = failure(run(Some("garbage")).result);
    assert!(message.starts_with("InvalidCursor"), "{message}");
}

/// Collects the messages of `tracing` events on the current thread.
#[derive(Default)]
struct Recorder {
    events: std::sync::Mutex<Vec<(tracing::Level, String)>>,
}

impl tracing::Subscriber for Recorder {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        self.events.lock().unwrap().push((*event.metadata().level(), message.0));
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn log_lines_and_internal_errors_reach_tracing() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let app = runtime.block_on(app());
    let recorder = Arc::new(Recorder::default());
    let outcome = tracing::subscriber::with_default(Arc::clone(&recorder), || {
        app.runtime.run_query("logs:thenPanic", Object::new(), &Identity::Unauthenticated, None, None)
    });
    assert_eq!(outcome.result.unwrap_err().client_message(), INTERNAL_ERROR_MESSAGE);
    let events = recorder.events.lock().unwrap().clone();
    assert_eq!(
        events,
        [
            (tracing::Level::ERROR, "[ERROR] before the panic".to_owned()),
            (tracing::Level::ERROR, "`logs:thenPanic` panicked: the query's bug".to_owned()),
        ]
    );
}

#[tokio::test]
async fn replacements_of_the_app_take_turns() {
    let app = app().await;
    let first = app.runtime.app_replacement().await;
    let mut second = std::pin::pin!(app.runtime.app_replacement());
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(second.as_mut().poll(&mut context).is_pending(), "a second replacement waits for the first");
    drop(first);
    assert!(second.as_mut().poll(&mut context).is_ready(), "and goes ahead once it is done");
}
