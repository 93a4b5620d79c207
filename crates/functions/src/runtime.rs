//! The one way functions are called, whatever language they are written in: resolve the path, check
//! the caller may call it and the arguments, run the handler in the right context (catching panics),
//! check the return value, and hand back the result with the log lines.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use livebase_query::{CursorKey, Journal};
use livebase_store::limits::MAX_RETAINED_SNAPSHOTS;
use livebase_store::{ReadSet, Store, Timestamp};
use livebase_value::{DocumentId, IdTableResolver, Object, Value};
use tokio::sync::{OnceCell, watch};

use crate::context::{ActionCtx, Database, FunctionCtx, Identity};
use crate::env;
use crate::error::FunctionError;
use crate::fetch::{HttpRequest, HttpResponse};
use crate::limits::{
    MAX_ACTION_DEPTH, MAX_ACTION_DURATION, MAX_HTTP_ACTION_RESPONSE_BYTES, MAX_REPLAYS_PRUNED_PER_COMMIT,
};
use crate::log::{LogCollector, LogLine, emit};
use crate::path::FunctionPath;
use crate::registry::{ActionFuture, FunctionKind, Handler, Registered, Registry, Visibility};
use crate::replays::{self, RequestKey};
use crate::scheduler::{self, JobState, ScheduledJob};

/// A query's run.
#[derive(Debug)]
pub struct QueryOutcome {
    pub result: Result<Value, FunctionError>,
    pub log_lines: Vec<LogLine>,
    /// What the run read: a commit writing into it may change the result.
    pub read_set: ReadSet,
    /// The journal for the next run of the same query (`None` when it paginated nothing).
    pub journal: Option<String>,
    /// The snapshot the query read.
    pub ts: Timestamp,
    /// Whether the query looked at the caller's identity (`ctx.auth()`): if not, its result is the
    /// same for every caller.
    pub read_identity: bool,
}

/// A mutation's run.
#[derive(Debug)]
pub struct MutationOutcome {
    pub result: Result<Value, FunctionError>,
    /// The last attempt's lines: earlier attempts conflicted and were thrown away, logs included.
    pub log_lines: Vec<LogLine>,
    /// The commit, when the mutation succeeded.
    pub ts: Option<Timestamp>,
}

/// An action's run.
#[derive(Debug)]
pub struct ActionOutcome {
    pub result: Result<Value, FunctionError>,
    /// The action's lines, then those of the functions it ran, in the order they finished.
    pub log_lines: Vec<LogLine>,
}

/// An HTTP action's run.
#[derive(Debug)]
pub struct HttpActionOutcome {
    /// What to answer: the handler's response, or the runtime's when there was none to give.
    pub response: HttpResponse,
    /// The action's lines, then those of the functions it ran, in the order they finished.
    pub log_lines: Vec<LogLine>,
}

/// Who is calling and from where.
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    pub(crate) identity: Identity,
    /// May call internal functions: the server itself, or a function calling another.
    internal: bool,
    /// Actions around this call (0 for a call from outside).
    action_depth: usize,
}

impl Caller {
    pub(crate) fn outside(identity: &Identity) -> Caller {
        Caller { identity: identity.clone(), internal: identity.may_call_internal(), action_depth: 0 }
    }

    /// A call made by the function this caller runs: same identity, internal functions allowed.
    pub(crate) fn nested(&self) -> Caller {
        Caller { internal: true, ..self.clone() }
    }

    pub(crate) fn nested_action(&self) -> Result<Caller, FunctionError> {
        if self.action_depth >= MAX_ACTION_DEPTH {
            return Err(FunctionError::failed(format!(
                "Actions may nest at most {MAX_ACTION_DEPTH} deep (MAX_ACTION_DEPTH): an action ran itself without end?"
            )));
        }
        Ok(self.nested())
    }
}

/// Runs the functions of one registry against one store. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<RuntimeInner>,
}

struct RuntimeInner {
    store: Store,
    /// Replaced whole by `replace_registry`; a call keeps the function it started with.
    registry: RwLock<Arc<Registry>>,
    /// Bumped after every `replace_registry`, for whoever must rerun what the old functions computed.
    registry_version: watch::Sender<u64>,
    /// Held while a new version of the app is put in place (see [`Runtime::app_replacement`]).
    replacing: tokio::sync::Mutex<()>,
    cursor_key: CursorKey,
    /// Set once `_mutation_replays` has its index, declared on first use.
    replays_declared: OnceCell<()>,
    /// Built on the first `fetch`: most runtimes never reach the network.
    http_client: OnceLock<reqwest::Client>,
}

/// What makes a mutation's run count once, written in the mutation's own transaction.
#[derive(Clone, Copy)]
pub(crate) enum RunOnce<'a> {
    /// Nothing: the caller does not retry the call.
    Unrecorded,
    /// A scheduled job, settled by the run.
    Job(DocumentId),
    /// A client's request, whose result is recorded for replays.
    Request(&'a RequestKey),
}

impl Runtime {
    pub fn new(store: Store, registry: Registry) -> Runtime {
        let cursor_key = CursorKey::new(store.secret());
        let replays_declared = OnceCell::new();
        Runtime {
            inner: Arc::new(RuntimeInner {
                store,
                registry: RwLock::new(Arc::new(registry)),
                registry_version: watch::Sender::new(0),
                replacing: tokio::sync::Mutex::new(()),
                cursor_key,
                replays_declared,
                http_client: OnceLock::new(),
            }),
        }
    }

    /// The store the functions run against (its change stream drives live queries).
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Runs a query at the latest snapshot, or at `at` while that state is retained. `journal` is what
    /// the previous run of the same query returned.
    pub fn run_query(
        &self,
        path: &str,
        args: Object,
        identity: &Identity,
        journal: Option<&str>,
        at: Option<Timestamp>,
    ) -> QueryOutcome {
        self.call_query(path, args, &Caller::outside(identity), journal, at)
    }

    /// Runs a mutation in one serializable transaction, again from the start on every conflict.
    pub async fn run_mutation(&self, path: &str, args: Object, identity: &Identity) -> MutationOutcome {
        self.call_mutation(path, args, &Caller::outside(identity), RunOnce::Unrecorded).await
    }

    /// Runs a mutation at most once per `request`: the first run that commits records its result
    /// (see `MUTATION_REPLAY_RETENTION`), and a later call with the same key gets that result, no log
    /// lines, and a timestamp at or after the original commit, without running again.
    pub async fn run_mutation_once(
        &self,
        path: &str,
        args: Object,
        identity: &Identity,
        request: &RequestKey,
    ) -> MutationOutcome {
        if let Err(error) = self.declare_replays().await {
            return MutationOutcome { result: Err(error), log_lines: Vec::new(), ts: None };
        }
        self.call_mutation(path, args, &Caller::outside(identity), RunOnce::Request(request)).await
    }

    /// Deletes the replay records older than `retention` (the server runs this every so often with
    /// `MUTATION_REPLAY_RETENTION`); returns how many.
    pub async fn prune_mutation_replays(&self, retention: Duration) -> Result<usize, FunctionError> {
        self.declare_replays().await?;
        let cutoff = now_millis() - retention.as_secs_f64() * 1_000.0;
        let mut pruned = 0;
        // Ends: every pass deletes a full batch older than a cutoff fixed before the first, and no
        // record is created that old.
        loop {
            let (batch, _) = self.inner.store.transact(|tx| replays::prune(tx, cutoff)).await?;
            pruned += batch;
            if batch < MAX_REPLAYS_PRUNED_PER_COMMIT {
                return Ok(pruned);
            }
        }
    }

    async fn declare_replays(&self) -> Result<(), FunctionError> {
        let store = &self.inner.store;
        self.inner
            .replays_declared
            .get_or_try_init(|| async { store.apply_system_schema(&replays::schema()).await.map(drop) })
            .await?;
        Ok(())
    }

    /// Runs an action as a task of its own.
    pub async fn run_action(&self, path: &str, args: Object, identity: &Identity) -> ActionOutcome {
        self.call_action(path, args, Caller::outside(identity)).await
    }

    /// Runs the HTTP action routed for `request` as a task of its own, within `MAX_ACTION_DURATION`.
    /// Without a matching route the response is a 404; when the handler fails it is a 500 carrying
    /// the error's client message (the full error goes to the log), as it is when the handler's
    /// response has a status outside 100-999 or a body over `MAX_HTTP_ACTION_RESPONSE_BYTES`.
    pub async fn run_http_action(&self, request: HttpRequest, identity: &Identity) -> HttpActionOutcome {
        let registry = self.registry();
        let Some(route) = registry.http().lookup(&request.method, request.path()) else {
            let response = HttpResponse::text(404, format!("No HttpAction routed for {}", request.path()));
            return HttpActionOutcome { response, log_lines: Vec::new() };
        };
        let name = route.name();
        let logs = Arc::new(Mutex::new(LogCollector::default()));
        let caller = Caller { action_depth: 1, ..Caller::outside(identity) };
        let ctx = ActionCtx::new(self.clone(), caller, Arc::clone(&logs));
        let result = match catch_panic(&name, || Ok((route.handler)(ctx, request))) {
            Ok(work) => within_action_duration(&name, run_isolated(&name, work)).await,
            Err(error) => Err(error),
        };
        let result = result.and_then(check_http_response);
        let log_lines = take_logs(&logs);
        finish(&name, &result, &log_lines);
        let response = result.unwrap_or_else(|error| HttpResponse::text(500, error.client_message()));
        HttpActionOutcome { response, log_lines }
    }

    pub(crate) fn call_query(
        &self,
        path: &str,
        args: Object,
        caller: &Caller,
        journal: Option<&str>,
        at: Option<Timestamp>,
    ) -> QueryOutcome {
        let store = &self.inner.store;
        let latest = store.snapshot().ts();
        let (mut tx, ts) = match at.map(|at| (store.begin_at(at), at)) {
            None => {
                let tx = store.begin();
                let ts = tx.begin_ts();
                (tx, ts)
            }
            Some((Some(tx), at)) => (tx, at),
            Some((None, at)) => {
                let why = if at > latest {
                    format!("it is after the latest commit ({latest})")
                } else {
                    format!(
                        "that state is no longer retained (the states of the last {MAX_RETAINED_SNAPSHOTS} \
                         commits are: MAX_RETAINED_SNAPSHOTS; the latest is {latest})"
                    )
                };
                let error = FunctionError::failed(format!("Can't run a query at timestamp {at}: {why}"));
                return QueryOutcome {
                    result: Err(error),
                    log_lines: Vec::new(),
                    read_set: ReadSet::new(),
                    journal: None,
                    ts: latest,
                    read_identity: false,
                };
            }
        };
        let prepared = self
            .prepare(path, FunctionKind::Query, caller, args, &tx)
            .and_then(|(function, args)| Ok((function, args, Journal::new(self.inner.cursor_key.clone(), journal)?)));
        let (function, args, mut journal) = match prepared {
            Ok(prepared) => prepared,
            Err(error) => {
                let read_set = ReadSet::new();
                let journal = None;
                return QueryOutcome {
                    result: Err(error),
                    log_lines: Vec::new(),
                    read_set,
                    journal,
                    ts,
                    read_identity: false,
                };
            }
        };
        let Handler::Query(handler) = &function.handler else { unreachable!("prepare checked the kind") };
        let database = Database::new(&mut tx, &mut journal, false);
        let mut ctx = FunctionCtx::new(database, &caller.identity, now_millis(), self);
        let result = catch_panic(&function.path, || handler(&mut ctx, args));
        let read_identity = ctx.identity_read();
        let log_lines = ctx.into_logs().finish();
        let result = result.and_then(|value| check_returns(&function, value, &tx));
        assert!(tx.is_read_only(), "the database of a query refuses writes");
        finish(&function.path, &result, &log_lines);
        let (read_set, journal) = (tx.read_set().clone(), journal.finish());
        QueryOutcome { result, log_lines, read_set, journal, ts, read_identity }
    }

    /// Runs a mutation. For a scheduled job, settles the job in the mutation's own transaction (or
    /// commits nothing when the job is no longer pending), so the job runs exactly once. For a
    /// client's request, answers from the recorded result if there is one, else records it.
    pub(crate) async fn call_mutation(
        &self,
        path: &str,
        args: Object,
        caller: &Caller,
        once: RunOnce<'_>,
    ) -> MutationOutcome {
        let store = &self.inner.store;
        let (function, args) = match self.prepare(path, FunctionKind::Mutation, caller, args, &store.snapshot()) {
            Ok(prepared) => prepared,
            Err(error) => return MutationOutcome { result: Err(error), log_lines: Vec::new(), ts: None },
        };
        let Handler::Mutation(handler) = &function.handler else { unreachable!("prepare checked the kind") };
        let mut logs = LogCollector::default();
        let committed = store
            .transact(|tx| {
                if let RunOnce::Request(request) = once
                    && let Some(recorded) = replays::find(tx, request)?
                {
                    // The transaction stays read-only: its timestamp is its snapshot's, which holds the record.
                    logs = LogCollector::default();
                    return Ok(Ok(recorded));
                }
                let mut journal =
                    Journal::new(self.inner.cursor_key.clone(), None).expect("starting without a journal never fails");
                let database = Database::new(&mut *tx, &mut journal, true);
                let now = now_millis();
                let mut ctx = FunctionCtx::new(database, &caller.identity, now, self);
                let result = catch_panic(&function.path, || handler(&mut ctx, args.clone()));
                let result = result.and_then(|value| ctx.take_nested_failure().map_or(Ok(value), Err));
                // Each attempt starts a fresh log: only the attempt that counts is reported.
                logs = ctx.into_logs();
                let mut result = result.and_then(|value| check_returns(&function, value, &*tx));
                if let (RunOnce::Request(request), Ok(value)) = (once, &result)
                    && let Err(error) = replays::record(tx, request, value)?
                {
                    result = Err(error);
                }
                if result.is_err() {
                    // A failed mutation commits nothing: swap its writes for an empty transaction, whose
                    // commit is a no-op that returns once what the failure followed from is durable.
                    *tx = store.begin_latest();
                }
                if let RunOnce::Job(job) = once
                    && !scheduler::settle(tx, job, JobState::Pending, &result, now)?
                {
                    *tx = store.begin_latest();
                    let why = format!("Scheduled job `{}` is no longer pending: not run", job.encode());
                    return Ok(Err(FunctionError::failed(why)));
                }
                Ok(result)
            })
            .await;
        let log_lines = logs.finish();
        let (result, ts) = match committed {
            Ok((Ok(value), ts)) => (Ok(value), Some(ts)),
            Ok((Err(error), _)) => (Err(error), None),
            Err(error) => (Err(error.into()), None),
        };
        finish(&function.path, &result, &log_lines);
        MutationOutcome { result, log_lines, ts }
    }

    pub(crate) async fn call_action(&self, path: &str, args: Object, caller: Caller) -> ActionOutcome {
        self.call_action_with(path, args, caller, |path, work| async move { run_isolated(&path, work).await }).await
    }

    /// Runs an action in the calling task, for a caller that isolates panics itself (the scheduler).
    pub(crate) async fn call_action_here(&self, path: &str, args: Object, caller: Caller) -> ActionOutcome {
        self.call_action_with(path, args, caller, |_, work| work).await
    }

    /// Runs an action, its handler's work driven to the end by `drive`.
    async fn call_action_with<F>(
        &self,
        path: &str,
        args: Object,
        caller: Caller,
        drive: impl FnOnce(FunctionPath, ActionFuture) -> F,
    ) -> ActionOutcome
    where
        F: Future<Output = Result<Value, FunctionError>>,
    {
        let (function, args) =
            match self.prepare(path, FunctionKind::Action, &caller, args, &self.inner.store.snapshot()) {
                Ok(prepared) => prepared,
                Err(error) => return ActionOutcome { result: Err(error), log_lines: Vec::new() },
            };
        let Handler::Action(handler) = &function.handler else { unreachable!("prepare checked the kind") };
        let logs = Arc::new(Mutex::new(LogCollector::default()));
        let caller = Caller { action_depth: caller.action_depth + 1, ..caller };
        assert!(caller.action_depth <= MAX_ACTION_DEPTH, "`nested_action` checks the depth before the call");
        let ctx = ActionCtx::new(self.clone(), caller, Arc::clone(&logs));
        let result = match catch_panic(&function.path, || Ok(handler(ctx, args))) {
            Ok(work) => within_action_duration(&function.path, drive(function.path.clone(), work)).await,
            Err(error) => Err(error),
        };
        let result = result.and_then(|value| check_returns(&function, value, &self.inner.store.snapshot()));
        let log_lines = take_logs(&logs);
        finish(&function.path, &result, &log_lines);
        ActionOutcome { result, log_lines }
    }

    pub(crate) fn http_client(&self) -> &reqwest::Client {
        self.inner.http_client.get_or_init(crate::fetch::client)
    }

    /// The functions, crons and routes calls use now.
    pub(crate) fn registry(&self) -> Arc<Registry> {
        Arc::clone(&self.inner.registry.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Serves `registry`'s functions, crons and routes from now on (a new version of the app): calls
    /// under way finish on the functions they started with. The stored crons are made to match the
    /// new ones first, so when that fails nothing changes. Then [`Runtime::registry_version`] moves.
    pub async fn replace_registry(&self, registry: Registry) -> Result<(), FunctionError> {
        let now = now_millis();
        self.inner.store.transact(|tx| scheduler::sync_crons(tx, registry.crons(), now)).await?;
        *self.inner.registry.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(registry);
        self.inner.registry_version.send_modify(|version| *version += 1);
        Ok(())
    }

    /// Waits for any other replacement of the app to finish. Hold the guard across everything one
    /// replacement does (its schema, then [`Runtime::replace_registry`]): a `livebase dev` reload and a
    /// deploy at the same moment would otherwise interleave and leave one's schema with the other's
    /// functions.
    pub async fn app_replacement(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.inner.replacing.lock().await
    }

    /// How many times the registry was replaced, as it moves: a live query's result is stale when it
    /// does.
    pub fn registry_version(&self) -> watch::Receiver<u64> {
        self.inner.registry_version.subscribe()
    }

    /// The kind of the function at `path`, if there is one (public or internal: callers that may not
    /// see internal functions are refused when they call it).
    pub fn function_kind(&self, path: &FunctionPath) -> Option<FunctionKind> {
        self.registry().get(path).map(|function| function.kind())
    }

    /// Every scheduled job (`_scheduled_functions`) as of the latest commit, in order of scheduling.
    pub fn scheduled_jobs(&self) -> Vec<ScheduledJob> {
        scheduler::jobs(&self.inner.store.snapshot())
    }

    /// Sets an environment variable of the deployment. Names match `[A-Za-z_][A-Za-z0-9_]*` and are at
    /// most `MAX_ENV_VAR_NAME_LEN` characters; values at most `MAX_ENV_VAR_VALUE_BYTES`; a deployment
    /// has at most `MAX_ENV_VARS`.
    pub async fn set_env(&self, name: &str, value: &str) -> Result<Timestamp, FunctionError> {
        env::check_name(name)?;
        env::check_value(name, value)?;
        let (set, ts) = self.inner.store.transact(|tx| env::set(tx, name, value)).await?;
        if set { Ok(ts) } else { Err(env::too_many(name)) }
    }

    /// The value of an environment variable, as of the latest commit.
    pub fn get_env(&self, name: &str) -> Result<Option<String>, FunctionError> {
        Ok(env::get(&mut self.inner.store.begin(), name)?)
    }

    /// Every environment variable, by name, as of the latest commit.
    pub fn list_env(&self) -> Result<BTreeMap<String, String>, FunctionError> {
        Ok(env::list(&mut self.inner.store.begin())?)
    }

    /// Removes an environment variable; `false` when it was not set.
    pub async fn remove_env(&self, name: &str) -> Result<bool, FunctionError> {
        let (removed, _) = self.inner.store.transact(|tx| env::remove(tx, name)).await?;
        Ok(removed)
    }

    /// Finds the function, checks the caller may run it as `kind`, and validates the arguments.
    pub(crate) fn prepare(
        &self,
        path: &str,
        kind: FunctionKind,
        caller: &Caller,
        args: Object,
        tables: &dyn IdTableResolver,
    ) -> Result<(Arc<Registered>, Object), FunctionError> {
        let path = FunctionPath::parse(path)?;
        let visible = |function: &&Arc<Registered>| function.visibility == Visibility::Public || caller.internal;
        // An internal function is as absent to clients as an unknown one: its existence is not theirs to know.
        let Some(function) = self.registry().get(&path).filter(visible).cloned() else {
            let public = if caller.internal { "" } else { "public " };
            return Err(FunctionError::failed(format!("Could not find {public}function for '{path}'")));
        };
        if function.kind() != kind {
            return Err(FunctionError::failed(format!(
                "Trying to execute {path} as {kind}, but it is defined as {}.",
                function.kind()
            )));
        }
        let args = Value::Object(args);
        if let Err(error) = function.args.validate(&args, tables) {
            return Err(FunctionError::failed(format!("ArgumentValidationError in `{path}`: {error}")));
        }
        let Value::Object(args) = args else { unreachable!("wrapped above") };
        Ok((function, args))
    }
}

fn check_http_response(response: HttpResponse) -> Result<HttpResponse, FunctionError> {
    if !(100..=999).contains(&response.status) {
        return Err(FunctionError::failed(format!(
            "An HTTP action answered with status {}: a status is 100 to 999",
            response.status
        )));
    }
    if response.body.len() > MAX_HTTP_ACTION_RESPONSE_BYTES {
        return Err(FunctionError::failed(format!(
            "An HTTP action answered with {} bytes: at most {MAX_HTTP_ACTION_RESPONSE_BYTES} \
             (MAX_HTTP_ACTION_RESPONSE_BYTES)",
            response.body.len()
        )));
    }
    Ok(response)
}

/// The lines an action logged. Clones of its context may outlive the call (tasks the action
/// spawned): the lines are taken out, not shared.
fn take_logs(logs: &Mutex<LogCollector>) -> Vec<LogLine> {
    std::mem::take(&mut *logs.lock().unwrap_or_else(PoisonError::into_inner)).finish()
}

/// Runs `work` as a task of its own, so a panic while it is polled fails this call and nothing else.
async fn run_isolated<T: Send + 'static>(
    name: &(dyn fmt::Display + Sync),
    work: impl Future<Output = Result<T, FunctionError>> + Send + 'static,
) -> Result<T, FunctionError> {
    tokio::spawn(work).await.unwrap_or_else(|failure| {
        let why = match failure.try_into_panic() {
            Ok(payload) => format!("panicked: {}", panic_message(payload.as_ref())),
            Err(failure) => format!("was stopped: {failure}"),
        };
        Err(FunctionError::internal(format!("`{name}` {why}")))
    })
}

/// Fails an action's `work` once it has run `MAX_ACTION_DURATION`.
async fn within_action_duration<T>(
    name: &(dyn fmt::Display + Sync),
    work: impl Future<Output = Result<T, FunctionError>>,
) -> Result<T, FunctionError> {
    tokio::time::timeout(MAX_ACTION_DURATION, work).await.unwrap_or_else(|_| {
        Err(FunctionError::failed(format!(
            "`{name}` ran longer than {MAX_ACTION_DURATION:?} (MAX_ACTION_DURATION) and was stopped"
        )))
    })
}

pub(crate) fn check_returns(
    function: &Registered,
    value: Value,
    tables: &dyn IdTableResolver,
) -> Result<Value, FunctionError> {
    if let Some(returns) = &function.returns
        && let Err(error) = returns.validate(&value, tables)
    {
        return Err(FunctionError::failed(format!("ReturnsValidationError in `{}`: {error}", function.path)));
    }
    Ok(value)
}

/// Runs a handler, turning a panic into an internal error of this call.
pub(crate) fn catch_panic<T>(
    name: &dyn fmt::Display,
    run: impl FnOnce() -> Result<T, FunctionError>,
) -> Result<T, FunctionError> {
    // Unwind safety: whatever the handler was changing (its context, its transaction) is thrown away
    // with the failed call, never looked at again.
    catch_unwind(AssertUnwindSafe(run)).unwrap_or_else(|payload| {
        Err(FunctionError::internal(format!("`{name}` panicked: {}", panic_message(payload.as_ref()))))
    })
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    match (payload.downcast_ref::<&str>(), payload.downcast_ref::<String>()) {
        (Some(message), _) => message,
        (None, Some(message)) => message,
        (None, None) => "(a panic without a message)",
    }
}

/// Reports a finished call to `tracing`: its log lines, and its internal error, which only the server
/// gets to see in full.
fn finish<T>(name: &dyn fmt::Display, result: &Result<T, FunctionError>, log_lines: &[LogLine]) {
    emit(name, log_lines);
    if let Err(FunctionError::Internal(message)) = result {
        tracing::error!(function = %name, "{message}");
    }
}

pub(crate) fn now_millis() -> f64 {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).expect("the clock is before 1970");
    since_epoch.as_secs_f64() * 1_000.0
}
