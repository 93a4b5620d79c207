//! Scheduled functions, crons and environment variables end to end: a real registry and scheduler
//! against a real store in a temporary directory, restarted by dropping and reopening the store.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use livebase_functions::limits::{
    MAX_ENV_VAR_NAME_LEN, MAX_ENV_VAR_VALUE_BYTES, MAX_ENV_VARS, MAX_JOBS_SCHEDULED_PER_CALL,
    MAX_RUNNING_SCHEDULED_ACTIONS, MAX_SCHEDULE_AHEAD_MILLIS,
};
use livebase_functions::{
    CRON_JOBS_TABLE, CronSchedule, Function, FunctionError, Identity, JobState, Registry, RegistryError, Runtime,
    SCHEDULED_FUNCTIONS_TABLE, ScheduledJob, object_validator,
};
use livebase_store::{Schema, Store, StoreConfig, TableSchema};
use livebase_value::{DocumentId, Object, ObjectField, Validator, Value};
use tokio::sync::Notify;

/// How long a test waits for the scheduler before failing: a guard against hanging, not a pause.
const PATIENCE: Duration = Duration::from_secs(20);

/// The interval of the restart test's cron: long enough that the next run after the missed one is
/// not due while the test looks.
const CRON_INTERVAL: Duration = Duration::from_secs(3);

struct Deployment {
    store: Store,
    runtime: Runtime,
}

/// Opens the store in `directory` (again, after a restart) with the test app's functions.
async fn open(directory: &Path, crons: &[(&str, CronSchedule)], hang: &Arc<Notify>) -> Deployment {
    let store = Store::open(StoreConfig::new(directory)).expect("the store opens");
    store
        .apply_schema(&Schema { tables: vec![TableSchema::new("counters"), TableSchema::new("notes")] })
        .await
        .expect("the schema applies");
    let mut registry = registry(&store, hang);
    for (name, schedule) in crons {
        registry.cron(name, schedule.clone(), "notes:tick", Object::new()).expect("a valid cron");
    }
    Deployment { runtime: Runtime::new(store.clone(), registry), store }
}

fn object(fields: &[(&str, Value)]) -> Object {
    fields.iter().map(|(name, value)| (name.to_string(), value.clone())).collect()
}

fn required(validator: Validator) -> ObjectField {
    ObjectField::required(validator)
}

fn string_arg<'a>(args: &'a Object, field: &str) -> &'a str {
    let Some(Value::String(value)) = args.get(field) else { panic!("`{field}` is validated as a string") };
    value
}

fn counter_id(args: &Object) -> DocumentId {
    DocumentId::decode(string_arg(args, "id")).expect("validated as an id")
}

fn registry(store: &Store, hang: &Arc<Notify>) -> Registry {
    let counter_args = || object_validator([("id", required(Validator::Id("counters".to_owned())))]);
    let mut registry = Registry::new();
    registry
        .register(Function::mutation("counters:create", object_validator([]), |ctx, _| {
            Ok(Value::String(ctx.db().insert("counters", object(&[("n", Value::Int64(0))]))?.encode()))
        }))
        .unwrap()
        .register(
            Function::mutation("counters:increment", counter_args(), |ctx, args| {
                let id = counter_id(&args);
                let Some(Value::Int64(n)) = ctx.db().get(id)?.and_then(|counter| counter.get("n").cloned()) else {
                    return Err(FunctionError::failed("no such counter"));
                };
                ctx.db().patch(id, [("n".to_owned(), Some(Value::Int64(n + 1)))].into())?;
                Ok(Value::Int64(n + 1))
            })
            .internal(),
        )
        .unwrap()
        .register(
            Function::mutation("counters:failAfterWriting", counter_args(), |ctx, args| {
                ctx.db().patch(counter_id(&args), [("n".to_owned(), Some(Value::Int64(1_000)))].into())?;
                Err(FunctionError::user("failed on purpose"))
            })
            .internal(),
        )
        .unwrap()
        .register(
            Function::mutation("counters:incrementCanceledMidway", counter_args(), {
                let store = store.clone();
                let first_attempt = Arc::new(AtomicBool::new(true));
                move |ctx, args| {
                    let id = counter_id(&args);
                    ctx.db().patch(id, [("n".to_owned(), Some(Value::Int64(1)))].into())?;
                    if first_attempt.swap(false, Ordering::SeqCst) {
                        // The job is canceled (committed) while its mutation runs, through a runtime of
                        // its own: one in the registry would keep itself alive.
                        let runtime = Runtime::new(store.clone(), crate::registry(&store, &Arc::default()));
                        let job = runtime.scheduled_jobs().into_iter().find(|job| job.state == JobState::Pending);
                        let args = object(&[("id", Value::String(job.expect("this job").id.encode()))]);
                        let tokio = tokio::runtime::Handle::current();
                        let cancel =
                            move || tokio.block_on(runtime.run_mutation("jobs:cancel", args, &Identity::System));
                        let canceled = std::thread::spawn(cancel).join().expect("the cancel runs");
                        canceled.result.expect("the cancel commits");
                    }
                    Ok(Value::Null)
                }
            })
            .internal(),
        )
        .unwrap()
        .register(Function::mutation(
            "jobs:schedule",
            object_validator([
                ("path", required(Validator::String)),
                ("args", required(Validator::Any)),
                ("delayMs", required(Validator::Float64)),
                ("thenFail", required(Validator::Boolean)),
            ]),
            |ctx, args| {
                let Value::Object(job_args) = args["args"].clone() else { panic!("job args are objects") };
                let Value::Float64(delay) = args["delayMs"] else { unreachable!("validated") };
                ctx.db().insert("notes", object(&[("body", Value::from("scheduling"))]))?;
                let delay = Duration::from_secs_f64(delay / 1_000.0);
                let id = ctx.scheduler().run_after(delay, string_arg(&args, "path"), job_args)?;
                if args["thenFail"] == Value::Boolean(true) {
                    return Err(FunctionError::user("changed my mind"));
                }
                Ok(Value::String(id.encode()))
            },
        ))
        .unwrap()
        .register(Function::mutation(
            "jobs:scheduleMany",
            object_validator([("count", required(Validator::Float64))]),
            |ctx, args| {
                let Value::Float64(count) = args["count"] else { unreachable!("validated") };
                for _ in 0..count as usize {
                    ctx.scheduler().run_at(0.0, "notes:tick", Object::new())?;
                }
                Ok(Value::Null)
            },
        ))
        .unwrap()
        .register(Function::mutation(
            "jobs:cancel",
            object_validator([("id", required(Validator::String))]),
            |ctx, args| {
                ctx.scheduler().cancel(DocumentId::decode(string_arg(&args, "id")).expect("validated"))?;
                Ok(Value::Null)
            },
        ))
        .unwrap()
        .register(Function::action(
            "jobs:cancelFromAction",
            object_validator([("id", required(Validator::String))]),
            |ctx, args| async move {
                ctx.scheduler().cancel(DocumentId::decode(string_arg(&args, "id")).expect("an id")).await?;
                Ok(Value::Null)
            },
        ))
        .unwrap()
        .register(Function::query("jobs:scheduleFromQuery", object_validator([]), |ctx, _| {
            ctx.scheduler().run_after(Duration::ZERO, "notes:tick", Object::new())?;
            Ok(Value::Null)
        }))
        .unwrap()
        .register(Function::action("jobs:scheduleFromAction", counter_args(), |ctx, args| async move {
            let id = ctx.scheduler().run_after(Duration::ZERO, "counters:increment", args).await?;
            Ok(Value::String(id.encode()))
        }))
        .unwrap()
        .register(
            Function::action("counters:incrementTwiceLater", counter_args(), |ctx, args| async move {
                ctx.run_mutation("counters:increment", args.clone()).await?;
                ctx.run_mutation("counters:increment", args).await
            })
            .internal(),
        )
        .unwrap()
        .register(
            Function::action("notes:panic", object_validator([]), |_, _| async move {
                panic!("an action that panics");
            })
            .internal(),
        )
        .unwrap()
        .register(
            Function::action("notes:hang", object_validator([]), {
                let hang = Arc::clone(hang);
                move |_, _| {
                    let hang = Arc::clone(&hang);
                    async move {
                        hang.notified().await;
                        Ok(Value::Null)
                    }
                }
            })
            .internal(),
        )
        .unwrap()
        .register(
            Function::mutation("notes:tick", object_validator([]), |ctx, _| {
                ctx.db().insert("notes", object(&[("body", Value::from("tick"))]))?;
                Ok(Value::Null)
            })
            .internal(),
        )
        .unwrap()
        .register(Function::query("env:greeting", object_validator([]), |ctx, _| {
            Ok(ctx.env("GREETING")?.map_or(Value::Null, Value::String))
        }))
        .unwrap()
        .register(Function::action("env:greetingFromAction", object_validator([]), |ctx, _| async move {
            Ok(ctx.env("GREETING")?.map_or(Value::Null, Value::String))
        }))
        .unwrap();
    registry
}

async fn call(deployment: &Deployment, path: &str, args: Object) -> Result<Value, FunctionError> {
    deployment.runtime.run_mutation(path, args, &Identity::System).await.result
}

async fn new_counter(deployment: &Deployment) -> Value {
    call(deployment, "counters:create", Object::new()).await.expect("a counter")
}

fn counter(deployment: &Deployment, id: &Value) -> i64 {
    let Value::String(id) = id else { panic!("ids are strings") };
    let counter = deployment.store.snapshot().get(DocumentId::decode(id).unwrap()).expect("the counter exists");
    let Some(Value::Int64(n)) = counter.get("n") else { panic!("counters hold `n`") };
    *n
}

fn notes(deployment: &Deployment, body: &str) -> usize {
    let notes = deployment.store.snapshot().documents("notes");
    notes.iter().filter(|note| note.get("body") == Some(&Value::from(body))).count()
}

fn schedule_args(path: &str, args: Object, delay_ms: f64, then_fail: bool) -> Object {
    object(&[
        ("path", Value::from(path)),
        ("args", Value::Object(args)),
        ("delayMs", Value::Float64(delay_ms)),
        ("thenFail", Value::Boolean(then_fail)),
    ])
}

async fn schedule(deployment: &Deployment, path: &str, args: Object, delay_ms: f64) -> DocumentId {
    let Ok(Value::String(id)) = call(deployment, "jobs:schedule", schedule_args(path, args, delay_ms, false)).await
    else {
        panic!("the job is scheduled")
    };
    DocumentId::decode(&id).unwrap()
}

fn job(deployment: &Deployment, id: DocumentId) -> ScheduledJob {
    deployment.runtime.scheduled_jobs().into_iter().find(|job| job.id == id).expect("the job exists")
}

/// Waits, on the change stream, until the scheduled jobs satisfy `done`.
async fn wait_for_jobs(deployment: &Deployment, done: impl Fn(&[ScheduledJob]) -> bool) -> Vec<ScheduledJob> {
    let mut changes = deployment.store.subscribe();
    loop {
        let jobs = deployment.runtime.scheduled_jobs();
        if done(&jobs) {
            return jobs;
        }
        let changed = tokio::time::timeout(PATIENCE, changes.recv()).await;
        changed.unwrap_or_else(|_| panic!("the scheduler did not get there: {jobs:#?}")).expect("the store is open");
    }
}

fn settled(jobs: &[ScheduledJob]) -> bool {
    jobs.iter().all(|job| !matches!(job.state, JobState::Pending | JobState::InProgress))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_mutation_leaves_no_writes_and_no_scheduled_jobs() {
    let directory = tempfile::tempdir().unwrap();
    let deployment = open(directory.path(), &[], &Arc::default()).await;
    let id = new_counter(&deployment).await;
    let args = schedule_args("counters:increment", object(&[("id", id.clone())]), 0.0, true);
    let failed = call(&deployment, "jobs:schedule", args).await;
    assert!(matches!(failed, Err(FunctionError::User { .. })), "{failed:?}");
    assert_eq!(notes(&deployment, "scheduling"), 0, "the failed mutation's insert is gone");
    assert!(deployment.runtime.scheduled_jobs().is_empty(), "and so is its job");
    // The same call that commits leaves both.
    let args = schedule_args("counters:increment", object(&[("id", id)]), 0.0, false);
    call(&deployment, "jobs:schedule", args).await.expect("schedules");
    assert_eq!(notes(&deployment, "scheduling"), 1);
    let jobs = deployment.runtime.scheduled_jobs();
    assert_eq!(jobs.len(), 1);
    assert_eq!((jobs[0].name.as_str(), jobs[0].state), ("counters:increment", JobState::Pending));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_mutations_and_actions_run_once_and_record_their_end() {
    let directory = tempfile::tempdir().unwrap();
    let deployment = open(directory.path(), &[], &Arc::default()).await;
    let scheduler = deployment.runtime.start_scheduler().await.expect("the scheduler starts");
    let id = new_counter(&deployment).await;
    let counter_args = object(&[("id", id.clone())]);
    let incremented = schedule(&deployment, "counters:increment", counter_args.clone(), 0.0).await;
    let failing = schedule(&deployment, "counters:failAfterWriting", counter_args.clone(), 0.0).await;
    let action = schedule(&deployment, "counters:incrementTwiceLater", counter_args.clone(), 0.0).await;
    let unknown = schedule(&deployment, "counters:nowhere", Object::new(), 0.0).await;
    let panicking = schedule(&deployment, "notes:panic", Object::new(), 0.0).await;
    // Scheduled from an action: committed on its own, run like any other.
    let from_action =
        deployment.runtime.run_action("jobs:scheduleFromAction", counter_args, &Identity::System).await.result;
    let Ok(Value::String(from_action)) = from_action else { panic!("{from_action:?}") };
    let jobs = wait_for_jobs(&deployment, |jobs| jobs.len() == 6 && settled(jobs)).await;
    scheduler.stop().await;

    assert_eq!(counter(&deployment, &id), 4, "one increment, two by the action, one scheduled by an action");
    let state = |id| job(&deployment, id).state;
    assert_eq!(state(incremented), JobState::Success);
    assert_eq!(state(action), JobState::Success);
    assert_eq!(state(DocumentId::decode(&from_action).unwrap()), JobState::Success);
    let failing = job(&deployment, failing);
    assert_eq!(failing.state, JobState::Failed);
    assert_eq!(failing.error.as_deref(), Some("failed on purpose"));
    let unknown = job(&deployment, unknown);
    assert_eq!(unknown.state, JobState::Failed);
    assert!(unknown.error.as_deref().unwrap().contains("Could not find function"), "{unknown:?}");
    let panicking = job(&deployment, panicking);
    assert_eq!(panicking.state, JobState::Failed);
    assert!(panicking.error.as_deref().unwrap().contains("an action that panics"), "{panicking:?}");
    for job in &jobs {
        let completed = job.completed_time.expect("a settled job has a completion time");
        assert!(completed >= job.scheduled_time, "{job:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_waits_for_its_time_and_a_canceled_job_never_runs() {
    let directory = tempfile::tempdir().unwrap();
    let deployment = open(directory.path(), &[], &Arc::default()).await;
    let scheduler = deployment.runtime.start_scheduler().await.expect("the scheduler starts");
    let id = new_counter(&deployment).await;
    let counter_args = object(&[("id", id.clone())]);
    let canceled = schedule(&deployment, "counters:increment", counter_args.clone(), 60_000.0).await;
    let canceled_by_action = schedule(&deployment, "counters:increment", counter_args.clone(), 60_000.0).await;
    let later = schedule(&deployment, "counters:increment", counter_args, 300.0).await;
    call(&deployment, "jobs:cancel", object(&[("id", Value::String(canceled.encode()))])).await.expect("cancels");
    let args = object(&[("id", Value::String(canceled_by_action.encode()))]);
    let from_action = deployment.runtime.run_action("jobs:cancelFromAction", args, &Identity::System).await;
    assert_eq!(from_action.result, Ok(Value::Null));
    wait_for_jobs(&deployment, |_| job(&deployment, later).state == JobState::Success).await;
    scheduler.stop().await;
    let later = job(&deployment, later);
    assert!(later.completed_time.unwrap() >= later.scheduled_time, "the timer waited: {later:?}");
    assert_eq!(job(&deployment, canceled).state, JobState::Canceled);
    assert_eq!(job(&deployment, canceled_by_action).state, JobState::Canceled);
    assert_eq!(counter(&deployment, &id), 1);
    // Canceling a finished job leaves it as it was; an id of another table is refused.
    call(&deployment, "jobs:cancel", object(&[("id", Value::String(later.id.encode()))])).await.expect("a no-op");
    assert_eq!(job(&deployment, later.id).state, JobState::Success);
    let Value::String(counter_id) = id else { unreachable!() };
    let wrong = call(&deployment, "jobs:cancel", object(&[("id", Value::String(counter_id))])).await;
    assert!(matches!(&wrong, Err(FunctionError::Failed(m)) if m.contains("not the id of a scheduled function")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mutation_whose_job_is_canceled_while_it_runs_commits_nothing() {
    let directory = tempfile::tempdir().unwrap();
    let deployment = open(directory.path(), &[], &Arc::default()).await;
    let id = new_counter(&deployment).await;
    let canceled = schedule(&deployment, "counters:incrementCanceledMidway", object(&[("id", id.clone())]), 0.0).await;
    let scheduler = deployment.runtime.start_scheduler().await.expect("the scheduler starts");
    wait_for_jobs(&deployment, settled).await;
    scheduler.stop().await;
    // The job's state is checked in the mutation's own transaction: the cancel made the first attempt
    // conflict, and the second found the job canceled and committed nothing.
    assert_eq!(job(&deployment, canceled).state, JobState::Canceled);
    assert_eq!(counter(&deployment, &id), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduling_is_refused_in_queries_beyond_the_limit_and_too_far_ahead() {
    let directory = tempfile::tempdir().unwrap();
    let deployment = open(directory.path(), &[], &Arc::default()).await;
    let query = deployment.runtime.run_query("jobs:scheduleFromQuery", Object::new(), &Identity::System, None, None);
    let Err(FunctionError::Failed(message)) = query.result else { panic!("{:?}", query.result) };
    assert!(message.contains("`scheduler.runAfter` is not allowed in a query"), "{message}");

    let many = |count: usize| object(&[("count", Value::Float64(count as f64))]);
    call(&deployment, "jobs:scheduleMany", many(MAX_JOBS_SCHEDULED_PER_CALL)).await.expect("at the limit");
    let over = call(&deployment, "jobs:scheduleMany", many(MAX_JOBS_SCHEDULED_PER_CALL + 1)).await;
    assert!(matches!(&over, Err(FunctionError::Failed(m)) if m.contains("MAX_JOBS_SCHEDULED_PER_CALL")), "{over:?}");
    assert_eq!(deployment.runtime.scheduled_jobs().len(), MAX_JOBS_SCHEDULED_PER_CALL);

    let ahead = |delay_ms| schedule_args("notes:tick", Object::new(), delay_ms, false);
    call(&deployment, "jobs:schedule", ahead(MAX_SCHEDULE_AHEAD_MILLIS - 1_000.0)).await.expect("under the limit");
    let far = call(&deployment, "jobs:schedule", ahead(MAX_SCHEDULE_AHEAD_MILLIS + 1_000.0)).await;
    assert!(matches!(&far, Err(FunctionError::Failed(m)) if m.contains("MAX_SCHEDULE_AHEAD_MILLIS")), "{far:?}");
    let bad_path = call(&deployment, "jobs:schedule", schedule_args("no such path!", Object::new(), 0.0, false)).await;
    assert!(matches!(bad_path, Err(FunctionError::Failed(_))), "{bad_path:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_and_crons_due_during_downtime_run_after_restart_exactly_once() {
    let directory = tempfile::tempdir().unwrap();
    let crons = [("tick", CronSchedule::Every(CRON_INTERVAL))];
    let hang = Arc::default();

    // Before: the scheduler records the cron's first run, then the deployment stops with a mutation
    // and an action scheduled and due.
    let deployment = open(directory.path(), &crons, &hang).await;
    deployment.runtime.start_scheduler().await.expect("the scheduler starts").stop().await;
    let id = new_counter(&deployment).await;
    let counter_args = object(&[("id", id.clone())]);
    let mutation = schedule(&deployment, "counters:increment", counter_args.clone(), 0.0).await;
    let action = schedule(&deployment, "counters:incrementTwiceLater", counter_args, 0.0).await;
    let crons_table = deployment.store.snapshot().documents(CRON_JOBS_TABLE);
    let [cron] = crons_table.as_slice() else { panic!("one cron: {crons_table:?}") };
    let Some(Value::Float64(missed)) = cron.get("nextRun") else { panic!("{cron:?}") };
    let missed = *missed;
    drop(deployment);

    // Down until the cron's run is due: the time passing is what is tested, nothing to wait for.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64() * 1_000.0;
    tokio::time::sleep(Duration::from_secs_f64(((missed - now) / 1_000.0).max(0.0))).await;

    let deployment = open(directory.path(), &crons, &hang).await;
    let scheduler = deployment.runtime.start_scheduler().await.expect("the scheduler starts");
    let is_tick = |job: &ScheduledJob| job.name == "notes:tick";
    let ran = |jobs: &[ScheduledJob]| jobs.iter().any(is_tick) && settled(jobs);
    wait_for_jobs(&deployment, ran).await;
    scheduler.stop().await;
    drop(deployment);

    // And once more: nothing that ran runs again.
    let deployment = open(directory.path(), &crons, &hang).await;
    let scheduler = deployment.runtime.start_scheduler().await.expect("the scheduler starts");
    scheduler.stop().await;
    assert_eq!(job(&deployment, mutation).state, JobState::Success);
    assert_eq!(job(&deployment, action).state, JobState::Success);
    assert_eq!(counter(&deployment, &id), 3, "the mutation once, the action's two mutations once");
    let jobs = deployment.runtime.scheduled_jobs();
    let ticks: Vec<_> = jobs.iter().filter(|job| is_tick(job)).collect();
    assert_eq!(ticks.iter().filter(|job| job.scheduled_time == missed).count(), 1, "{ticks:#?}");
    let succeeded = ticks.iter().filter(|job| job.state == JobState::Success).count();
    assert_eq!(notes(&deployment, "tick"), succeeded, "every cron run ran its mutation exactly once");
    let crons_table = deployment.store.snapshot().documents(CRON_JOBS_TABLE);
    let Some(Value::Float64(next)) = crons_table[0].get("nextRun") else { panic!() };
    assert!(*next > missed, "the cron moved on from its missed run");
}

/// The stored rows, as user code reads them with `ctx.db.system.get`, have the shape of Convex's
/// (`args` an array holding the arguments, `state` an object with its `kind`); rows of the older shape
/// (`args` an object, `state` a string) that data directories may hold are still run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_are_stored_in_convexs_shape_and_old_shape_rows_still_run() {
    let directory = tempfile::tempdir().unwrap();
    let deployment = open(directory.path(), &[], &Arc::default()).await;
    let id = new_counter(&deployment).await;
    let args = object(&[("id", id.clone())]);
    let succeeding = schedule(&deployment, "counters:increment", args.clone(), 0.0).await;
    let failing = schedule(&deployment, "counters:failAfterWriting", args.clone(), 0.0).await;
    let canceled = schedule(&deployment, "counters:increment", args.clone(), 60_000.0).await;
    call(&deployment, "jobs:cancel", object(&[("id", Value::String(canceled.encode()))])).await.expect("cancels");
    let old_shape = object(&[
        ("name", Value::from("counters:increment")),
        ("args", Value::Object(args.clone())),
        ("scheduledTime", Value::Float64(0.0)),
        ("state", Value::from("pending")),
    ]);
    let (old, _) = deployment
        .store
        .transact(|tx| tx.system_tables().insert(SCHEDULED_FUNCTIONS_TABLE, old_shape.clone()))
        .await
        .expect("an old-shape row is written");

    let scheduler = deployment.runtime.start_scheduler().await.expect("the scheduler starts");
    wait_for_jobs(&deployment, settled).await;
    scheduler.stop().await;
    assert_eq!(counter(&deployment, &id), 2, "the new-shape and the old-shape increment both ran");
    let stored = |job: DocumentId| deployment.store.snapshot().get(job).expect("the job is stored");
    let state = |kind: &str| Value::Object(object(&[("kind", Value::from(kind))]));
    let row = stored(succeeding);
    assert_eq!(row.get("name"), Some(&Value::from("counters:increment")));
    assert_eq!(row.get("args"), Some(&Value::Array(vec![Value::Object(args.clone())])));
    assert!(matches!(row.get("scheduledTime"), Some(Value::Float64(_))), "{row:?}");
    assert!(matches!(row.get("completedTime"), Some(Value::Float64(_))), "{row:?}");
    assert_eq!(row.get("state"), Some(&state("success")));
    let Some(Value::Object(failed)) = stored(failing).get("state").cloned() else { panic!("a state object") };
    assert_eq!(failed.get("kind"), Some(&Value::from("failed")));
    assert!(
        matches!(failed.get("error"), Some(Value::String(error)) if error.contains("failed on purpose")),
        "{failed:?}"
    );
    assert_eq!(stored(canceled).get("state"), Some(&state("canceled")));
    let old = stored(old);
    assert_eq!(old.get("state"), Some(&state("success")), "settling writes the new shape: {old:?}");
    assert_eq!(old.get("error"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_cut_off_by_a_restart_is_failed_not_run_again() {
    let directory = tempfile::tempdir().unwrap();
    let hang = Arc::new(Notify::new());
    let deployment = open(directory.path(), &[], &hang).await;
    let scheduler = deployment.runtime.start_scheduler().await.expect("the scheduler starts");
    let action = schedule(&deployment, "notes:hang", Object::new(), 0.0).await;
    wait_for_jobs(&deployment, |_| job(&deployment, action).state == JobState::InProgress).await;
    scheduler.stop().await;
    drop(deployment);

    let deployment = open(directory.path(), &[], &hang).await;
    let scheduler = deployment.runtime.start_scheduler().await.expect("the scheduler starts");
    let cut_off = job(&deployment, action);
    assert_eq!(cut_off.state, JobState::Failed);
    assert!(cut_off.error.as_deref().unwrap().contains("restarted"), "{cut_off:?}");
    scheduler.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_the_limit_of_scheduled_actions_run_at_once() {
    let directory = tempfile::tempdir().unwrap();
    let hang = Arc::new(Notify::new());
    let deployment = open(directory.path(), &[], &hang).await;
    let scheduler = deployment.runtime.start_scheduler().await.expect("the scheduler starts");
    for _ in 0..=MAX_RUNNING_SCHEDULED_ACTIONS {
        schedule(&deployment, "notes:hang", Object::new(), 0.0).await;
    }
    let count = |jobs: &[ScheduledJob], state| jobs.iter().filter(|job| job.state == state).count();
    let full =
        wait_for_jobs(&deployment, |jobs| count(jobs, JobState::InProgress) == MAX_RUNNING_SCHEDULED_ACTIONS).await;
    assert_eq!(count(&full, JobState::Pending), 1, "the one over the limit waits");
    // One finishes: the waiting one starts in its place.
    hang.notify_one();
    let moved_up = wait_for_jobs(&deployment, |jobs| count(jobs, JobState::Pending) == 0).await;
    assert_eq!(count(&moved_up, JobState::Success), 1);
    assert_eq!(count(&moved_up, JobState::InProgress), MAX_RUNNING_SCHEDULED_ACTIONS);
    scheduler.stop().await;
}

#[test]
fn crons_are_checked_when_declared() {
    let mut registry = Registry::new();
    let every = CronSchedule::Every(Duration::from_secs(3_600));
    registry.cron("purge", every.clone(), "notes:purge", Object::new()).expect("an hourly cron");
    registry.cron("nightly", CronSchedule::Expression("0 3 * * *".into()), "notes:purge", Object::new()).unwrap();
    registry.cron("seconds", CronSchedule::Expression("*/10 * * * * *".into()), "notes:purge", Object::new()).unwrap();
    let duplicate = registry.cron("purge", every.clone(), "notes:purge", Object::new()).err();
    assert_eq!(duplicate, Some(RegistryError::DuplicateCron("purge".into())));
    let invalid =
        |result: Result<&mut Registry, RegistryError>| matches!(result, Err(RegistryError::InvalidCron { .. }));
    assert!(invalid(registry.cron("zero", CronSchedule::Every(Duration::ZERO), "notes:purge", Object::new())));
    assert!(invalid(registry.cron("bad", CronSchedule::Expression("61 * * * *".into()), "notes:purge", Object::new())));
    assert!(invalid(registry.cron(" ", every.clone(), "notes:purge", Object::new())));
    let bad_path = registry.cron("path", every.clone(), "not a path!", Object::new()).err();
    assert!(matches!(bad_path, Some(RegistryError::InvalidPath(_))), "{bad_path:?}");

    let mut full = Registry::new();
    for n in 0..livebase_functions::limits::MAX_CRON_JOBS {
        full.cron(&format!("cron{n}"), every.clone(), "notes:purge", Object::new()).expect("under the limit");
    }
    let over = full.cron("one too many", every, "notes:purge", Object::new()).err();
    assert_eq!(over, Some(RegistryError::TooManyCrons("one too many".into())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_variables_are_stored_bounded_and_read_reactively() {
    let directory = tempfile::tempdir().unwrap();
    let deployment = open(directory.path(), &[], &Arc::default()).await;
    let runtime = &deployment.runtime;
    let greeting = || runtime.run_query("env:greeting", Object::new(), &Identity::Unauthenticated, None, None);
    let before = greeting();
    assert_eq!(before.result, Ok(Value::Null));

    // Setting the variable changes what the query read: a live query would re-run.
    let mut changes = deployment.store.subscribe();
    runtime.set_env("GREETING", "hello").await.expect("sets");
    let commit = changes.recv().await.unwrap();
    let mut read_set = before.read_set.clone();
    read_set.normalize();
    assert!(commit.keys.iter().any(|key| read_set.contains(key)), "the query's read set covers the variable");
    assert_eq!(greeting().result, Ok(Value::from("hello")));
    let from_action = runtime.run_action("env:greetingFromAction", Object::new(), &Identity::System).await;
    assert_eq!(from_action.result, Ok(Value::from("hello")));

    runtime.set_env("GREETING", "hi").await.expect("overwrites");
    runtime.set_env("_OTHER1", "x").await.expect("sets");
    let listed = runtime.list_env().unwrap();
    assert_eq!(
        listed.into_iter().collect::<Vec<_>>(),
        [("GREETING".into(), "hi".into()), ("_OTHER1".into(), "x".into())]
    );
    assert_eq!(runtime.remove_env("_OTHER1").await, Ok(true));
    assert_eq!(runtime.remove_env("_OTHER1").await, Ok(false));
    assert_eq!(runtime.get_env("_OTHER1"), Ok(None));

    let refused = |result: Result<livebase_store::Timestamp, FunctionError>, limit: &str| {
        assert!(matches!(&result, Err(FunctionError::Failed(m)) if m.contains(limit)), "{result:?}");
    };
    let longest = "N".repeat(MAX_ENV_VAR_NAME_LEN);
    runtime.set_env(&longest, "ok").await.expect("a name at the limit");
    refused(runtime.set_env(&format!("{longest}N"), "no").await, "MAX_ENV_VAR_NAME_LEN");
    for bad in ["", "1ABC", "A-B", "A B", "É"] {
        refused(runtime.set_env(bad, "no").await, "Invalid environment variable name");
    }
    runtime.set_env("BIG", &"v".repeat(MAX_ENV_VAR_VALUE_BYTES)).await.expect("a value at the limit");
    refused(runtime.set_env("BIG", &"v".repeat(MAX_ENV_VAR_VALUE_BYTES + 1)).await, "MAX_ENV_VAR_VALUE_BYTES");
    let set = runtime.list_env().unwrap().len();
    for n in set..MAX_ENV_VARS {
        runtime.set_env(&format!("V{n}"), "v").await.expect("under the limit");
    }
    refused(runtime.set_env("ONE_TOO_MANY", "v").await, "MAX_ENV_VARS");
    runtime.set_env("GREETING", "still settable").await.expect("changing one is not adding one");
    drop(deployment);

    let deployment = open(directory.path(), &[], &Arc::default()).await;
    assert_eq!(deployment.runtime.get_env("GREETING"), Ok(Some("still settable".into())), "survives a restart");
    assert_eq!(deployment.runtime.list_env().unwrap().len(), MAX_ENV_VARS);
}
