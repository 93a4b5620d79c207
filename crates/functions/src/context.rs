//! What a handler gets: for queries and mutations a [`FunctionCtx`] (the database inside the call's
//! transaction, the caller's identity, a fixed clock, logging); for actions an [`ActionCtx`] (no
//! database: it runs other functions).

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use livebase_query::{Journal, PaginationOptions, PaginationResult, Query, QueryStream};
use livebase_store::{Document, Transaction};
use livebase_value::{DocumentId, Object, Value};

use crate::env;
use crate::error::FunctionError;
use crate::fetch::{HttpRequest, HttpResponse};
use crate::limits::MAX_NESTED_CALL_DEPTH;
use crate::log::{LogCollector, LogLevel};
use crate::registry::{FunctionKind, Handler};
use crate::runtime::{Caller, RunOnce, Runtime, catch_panic, check_returns, now_millis};
use crate::scheduler::{self, check_scheduled_count};

/// Who is calling.
#[derive(Clone, Debug, PartialEq)]
pub enum Identity {
    /// A client without a token.
    Unauthenticated,
    /// A client with a verified token.
    User(UserIdentity),
    /// The server itself (scheduled jobs, crons): may call internal functions.
    System,
    /// An operator holding the deployment's admin key: may call internal functions.
    Admin,
}

impl Identity {
    pub(crate) fn may_call_internal(&self) -> bool {
        matches!(self, Identity::System | Identity::Admin)
    }
}

/// A verified user, from the claims of their token (Convex's `UserIdentity`).
#[derive(Clone, Debug, PartialEq)]
pub struct UserIdentity {
    /// Unique across issuers: `issuer|subject`.
    pub token_identifier: String,
    pub subject: String,
    pub issuer: String,
    /// The token's other claims (`name`, `email`, ...).
    pub claims: Object,
}

/// `ctx.auth()`.
pub struct Auth<'a> {
    identity: &'a Identity,
}

impl<'a> Auth<'a> {
    /// The calling user, or `None` for an unauthenticated client, the server itself or an admin.
    pub fn get_user_identity(&self) -> Option<&'a UserIdentity> {
        match self.identity {
            Identity::User(user) => Some(user),
            Identity::Unauthenticated | Identity::System | Identity::Admin => None,
        }
    }
}

/// The database as a query or mutation sees it: one transaction. A query's refuses writes at run time
/// rather than by type, since functions in other languages reach it through the same calls.
pub struct Database<'a> {
    tx: &'a mut Transaction,
    journal: &'a mut Journal,
    /// Resolves table numbers to names, for `normalize_id`.
    writable: bool,
}

impl<'a> Database<'a> {
    pub(crate) fn new(tx: &'a mut Transaction, journal: &'a mut Journal, writable: bool) -> Self {
        Database { tx, journal, writable }
    }

    pub fn get(&mut self, id: DocumentId) -> Result<Option<Arc<Document>>, FunctionError> {
        Ok(self.tx.get(id)?)
    }

    /// Runs `query` with one of the terminals of the returned [`QueryRun`].
    pub fn query(&mut self, query: Query) -> QueryRun<'_, 'a> {
        QueryRun { db: self, query }
    }

    /// The id `id` as an id of `table`, or `None` when it is not an id or belongs to another table
    /// (Convex's `ctx.db.normalizeId`).
    pub fn normalize_id(&self, table: &str, id: &str) -> Option<DocumentId> {
        let id = DocumentId::decode(id).ok()?;
        (self.tx.table_name(id.table())? == table).then_some(id)
    }

    /// The next result of a stream started in this call ([`QueryRun::stream`]), recording in the read
    /// set exactly what it returns. For runtimes whose functions read results one at a time across
    /// calls into them (TypeScript's `for await` over a query).
    pub fn next(&mut self, stream: &mut QueryStream) -> Result<Option<Arc<Document>>, FunctionError> {
        Ok(stream.next(self.tx)?)
    }

    pub fn insert(&mut self, table: &str, fields: Object) -> Result<DocumentId, FunctionError> {
        self.check_writable("db.insert")?;
        Ok(self.tx.insert(table, fields)?)
    }

    /// Shallow-merges `changes` into a document: `Some` sets a field, `None` removes it.
    pub fn patch(&mut self, id: DocumentId, changes: BTreeMap<String, Option<Value>>) -> Result<(), FunctionError> {
        self.check_writable("db.patch")?;
        Ok(self.tx.patch(id, changes)?)
    }

    pub fn replace(&mut self, id: DocumentId, fields: Object) -> Result<(), FunctionError> {
        self.check_writable("db.replace")?;
        Ok(self.tx.replace(id, fields)?)
    }

    pub fn delete(&mut self, id: DocumentId) -> Result<(), FunctionError> {
        self.check_writable("db.delete")?;
        Ok(self.tx.delete(id)?)
    }

    pub(crate) fn check_writable(&self, operation: &str) -> Result<(), FunctionError> {
        if self.writable {
            return Ok(());
        }
        Err(FunctionError::failed(format!(
            "`{operation}` is not allowed in a query: queries only read (write in a mutation)"
        )))
    }
}

/// A query about to run: pick a terminal.
pub struct QueryRun<'db, 'tx> {
    db: &'db mut Database<'tx>,
    query: Query,
}

impl QueryRun<'_, '_> {
    pub fn collect(self) -> Result<Vec<Arc<Document>>, FunctionError> {
        Ok(self.query.collect(self.db.tx)?)
    }

    pub fn take(self, n: usize) -> Result<Vec<Arc<Document>>, FunctionError> {
        Ok(self.query.take(self.db.tx, n)?)
    }

    pub fn first(self) -> Result<Option<Arc<Document>>, FunctionError> {
        Ok(self.query.first(self.db.tx)?)
    }

    /// The only result, if any; more than one fails the call.
    pub fn unique(self) -> Result<Option<Arc<Document>>, FunctionError> {
        Ok(self.query.unique(self.db.tx)?)
    }

    /// A stream of the results, read one at a time with [`Database::next`].
    pub fn stream(self) -> Result<QueryStream, FunctionError> {
        Ok(self.query.stream(self.db.tx)?)
    }

    /// One page. Its end is kept in the call's journal, so a re-run of the query keeps the page's end.
    pub fn paginate(self, options: &PaginationOptions) -> Result<PaginationResult, FunctionError> {
        Ok(self.query.paginate(self.db.tx, self.db.journal, options)?)
    }
}

/// The context of a query or a mutation (one type: see [`Database`]).
pub struct FunctionCtx<'a> {
    db: Database<'a>,
    identity: &'a Identity,
    /// Whether the handler looked at `identity`: if not, the result is every caller's.
    identity_read: Cell<bool>,
    now: f64,
    logs: LogCollector,
    jobs_scheduled: usize,
    /// Finds the functions `run_query` and `run_mutation` call.
    runtime: &'a Runtime,
    /// Calls around this one, itself included (1 for a call from outside).
    depth: usize,
    /// The first error of a nested mutation: its writes may be half done in the shared transaction,
    /// so the whole call fails with it, even when the caller caught it.
    nested_failure: Option<FunctionError>,
}

impl<'a> FunctionCtx<'a> {
    pub(crate) fn new(db: Database<'a>, identity: &'a Identity, now: f64, runtime: &'a Runtime) -> FunctionCtx<'a> {
        FunctionCtx {
            db,
            identity,
            identity_read: Cell::new(false),
            now,
            logs: LogCollector::default(),
            jobs_scheduled: 0,
            runtime,
            depth: 1,
            nested_failure: None,
        }
    }

    /// Runs the query at `path` (public or internal) inside this call's transaction (Convex's
    /// `ctx.runQuery` in a query or mutation): its arguments and result are validated, what it reads
    /// joins this call's read set and its log lines this call's. Calls nest at most
    /// `MAX_NESTED_CALL_DEPTH` deep.
    pub fn run_query(&mut self, path: &str, args: Object) -> Result<Value, FunctionError> {
        self.run_nested(path, FunctionKind::Query, args)
    }

    /// Runs the mutation at `path` inside this mutation's transaction (`ctx.runMutation`): its writes
    /// commit with the caller's, or not at all. There are no sub-transactions: when the nested
    /// mutation fails, the whole call fails with its error, even if the caller catches it.
    pub fn run_mutation(&mut self, path: &str, args: Object) -> Result<Value, FunctionError> {
        self.db.check_writable("ctx.runMutation")?;
        let result = self.run_nested(path, FunctionKind::Mutation, args);
        if let Err(error) = &result {
            self.nested_failure.get_or_insert_with(|| error.clone());
        }
        result
    }

    fn run_nested(&mut self, path: &str, kind: FunctionKind, args: Object) -> Result<Value, FunctionError> {
        if self.depth >= MAX_NESTED_CALL_DEPTH {
            return Err(FunctionError::failed(format!(
                "Queries and mutations may call one another at most {MAX_NESTED_CALL_DEPTH} deep \
                 (MAX_NESTED_CALL_DEPTH): a function called itself without end?"
            )));
        }
        let caller = Caller::outside(self.identity).nested();
        let (function, args) = self.runtime.prepare(path, kind, &caller, args, &*self.db.tx)?;
        let (Handler::Query(handler) | Handler::Mutation(handler)) = &function.handler else {
            unreachable!("prepare checked the kind")
        };
        let database = Database::new(&mut *self.db.tx, &mut *self.db.journal, kind == FunctionKind::Mutation);
        let mut nested = FunctionCtx::new(database, self.identity, self.now, self.runtime);
        nested.depth = self.depth + 1;
        nested.jobs_scheduled = self.jobs_scheduled;
        let result = catch_panic(&function.path, || handler(&mut nested, args));
        self.jobs_scheduled = nested.jobs_scheduled;
        if nested.identity_read() {
            self.identity_read.set(true);
        }
        if let Some(failure) = nested.nested_failure.take() {
            self.nested_failure.get_or_insert(failure);
        }
        self.logs.extend(nested.into_logs().finish());
        result.and_then(|value| check_returns(&function, value, &*self.db.tx))
    }

    /// The error of a nested mutation that failed, which the whole call fails with.
    pub(crate) fn take_nested_failure(&mut self) -> Option<FunctionError> {
        self.nested_failure.take()
    }

    /// Schedules and cancels jobs in this call's transaction: they exist only if the mutation commits.
    pub fn scheduler(&mut self) -> Scheduler<'_, 'a> {
        Scheduler { ctx: self }
    }

    /// An environment variable of the deployment (`process.env`). The read is recorded, so a query
    /// re-runs when environment variables change.
    pub fn env(&mut self, name: &str) -> Result<Option<String>, FunctionError> {
        Ok(env::get(self.db.tx, name)?)
    }

    /// Every environment variable of the deployment, by name (`Object.keys(process.env)`), recorded as
    /// [`FunctionCtx::env`] records its read.
    pub fn env_vars(&mut self) -> Result<BTreeMap<String, String>, FunctionError> {
        Ok(env::list(self.db.tx)?)
    }

    pub fn db(&mut self) -> &mut Database<'a> {
        &mut self.db
    }

    pub fn auth(&self) -> Auth<'a> {
        self.identity_read.set(true);
        Auth { identity: self.identity }
    }

    pub(crate) fn identity_read(&self) -> bool {
        self.identity_read.get()
    }

    /// Milliseconds since the Unix epoch, read once when the run (or the mutation's attempt) started:
    /// a function sees no time pass, so what it computes depends on its inputs only.
    pub fn now(&self) -> f64 {
        self.now
    }

    /// `console.log` and friends.
    pub fn log(&mut self, level: LogLevel, message: impl fmt::Display) {
        self.logs.log(level, &message.to_string());
    }

    pub(crate) fn into_logs(self) -> LogCollector {
        self.logs
    }
}

/// `ctx.scheduler` of a mutation: writes go into the mutation's transaction.
pub struct Scheduler<'c, 'a> {
    ctx: &'c mut FunctionCtx<'a>,
}

impl Scheduler<'_, '_> {
    /// Schedules the mutation or action at `path` to run `delay` after this call started.
    pub fn run_after(&mut self, delay: Duration, path: &str, args: Object) -> Result<DocumentId, FunctionError> {
        self.schedule("scheduler.runAfter", self.ctx.now + delay.as_secs_f64() * 1_000.0, path, args)
    }

    /// Schedules the mutation or action at `path` to run at `time`, milliseconds since the Unix epoch
    /// (a time past runs as soon as possible).
    pub fn run_at(&mut self, time: f64, path: &str, args: Object) -> Result<DocumentId, FunctionError> {
        self.schedule("scheduler.runAt", time, path, args)
    }

    /// Cancels a job that has not finished.
    pub fn cancel(&mut self, id: DocumentId) -> Result<(), FunctionError> {
        self.ctx.db.check_writable("scheduler.cancel")?;
        scheduler::cancel(self.ctx.db.tx, id, self.ctx.now)
    }

    fn schedule(&mut self, operation: &str, at: f64, path: &str, args: Object) -> Result<DocumentId, FunctionError> {
        self.ctx.db.check_writable(operation)?;
        check_scheduled_count(self.ctx.jobs_scheduled)?;
        self.ctx.jobs_scheduled += 1;
        scheduler::schedule(self.ctx.db.tx, path, args, at, self.ctx.now)
    }
}

/// The context of an action. Cheap to clone; clones share the action's log.
#[derive(Clone)]
pub struct ActionCtx {
    runtime: Runtime,
    caller: Caller,
    logs: Arc<Mutex<LogCollector>>,
    /// Jobs scheduled by this action and its clones.
    jobs_scheduled: Arc<AtomicUsize>,
}

impl ActionCtx {
    pub(crate) fn new(runtime: Runtime, caller: Caller, logs: Arc<Mutex<LogCollector>>) -> ActionCtx {
        ActionCtx { runtime, caller, logs, jobs_scheduled: Arc::default() }
    }

    /// Schedules and cancels jobs, each in a transaction of its own.
    pub fn scheduler(&self) -> ActionScheduler<'_> {
        ActionScheduler { ctx: self }
    }

    /// An environment variable of the deployment (`process.env`), as of the latest commit.
    pub fn env(&self, name: &str) -> Result<Option<String>, FunctionError> {
        self.runtime.get_env(name)
    }

    /// Every environment variable of the deployment, by name, as of the latest commit.
    pub fn env_vars(&self) -> Result<BTreeMap<String, String>, FunctionError> {
        self.runtime.list_env()
    }

    pub fn auth(&self) -> Auth<'_> {
        Auth { identity: &self.caller.identity }
    }

    pub fn log(&self, level: LogLevel, message: impl fmt::Display) {
        self.logs.lock().unwrap_or_else(PoisonError::into_inner).log(level, &message.to_string());
    }

    /// Sends an HTTP request and reads the whole response, within the `MAX_FETCH_*` limits. A
    /// response with an error status is still a response; failing to get one is an error.
    pub async fn fetch(&self, request: HttpRequest) -> Result<HttpResponse, FunctionError> {
        crate::fetch::fetch(self.runtime.http_client(), request).await
    }

    /// Runs a query (public or internal) at the latest snapshot, as the action's caller.
    pub async fn run_query(&self, path: &str, args: Object) -> Result<Value, FunctionError> {
        let outcome = self.runtime.call_query(path, args, &self.caller.nested(), None, None);
        self.keep_logs(outcome.log_lines);
        outcome.result
    }

    /// Runs a mutation (public or internal) in its own transaction, as the action's caller.
    pub async fn run_mutation(&self, path: &str, args: Object) -> Result<Value, FunctionError> {
        let outcome = self.runtime.call_mutation(path, args, &self.caller.nested(), RunOnce::Unrecorded).await;
        self.keep_logs(outcome.log_lines);
        outcome.result
    }

    /// Runs another action (public or internal), up to `MAX_ACTION_DEPTH` deep.
    pub async fn run_action(&self, path: &str, args: Object) -> Result<Value, FunctionError> {
        let caller = self.caller.nested_action()?;
        let outcome = self.runtime.call_action(path, args, caller).await;
        self.keep_logs(outcome.log_lines);
        outcome.result
    }

    fn keep_logs(&self, lines: Vec<crate::LogLine>) {
        self.logs.lock().unwrap_or_else(PoisonError::into_inner).extend(lines);
    }
}

/// `ctx.scheduler` of an action: each call commits on its own.
pub struct ActionScheduler<'c> {
    ctx: &'c ActionCtx,
}

impl ActionScheduler<'_> {
    /// Schedules the mutation or action at `path` to run `delay` from now.
    pub async fn run_after(&self, delay: Duration, path: &str, args: Object) -> Result<DocumentId, FunctionError> {
        self.run_at(now_millis() + delay.as_secs_f64() * 1_000.0, path, args).await
    }

    /// Schedules the mutation or action at `path` to run at `time`, milliseconds since the Unix epoch.
    pub async fn run_at(&self, time: f64, path: &str, args: Object) -> Result<DocumentId, FunctionError> {
        check_scheduled_count(self.ctx.jobs_scheduled.fetch_add(1, Ordering::Relaxed))?;
        let now = now_millis();
        let store = self.ctx.runtime.store();
        let (scheduled, _) = store.transact(|tx| Ok(scheduler::schedule(tx, path, args.clone(), time, now))).await?;
        scheduled
    }

    /// Cancels a job that has not finished.
    pub async fn cancel(&self, id: DocumentId) -> Result<(), FunctionError> {
        let now = now_millis();
        let (canceled, _) = self.ctx.runtime.store().transact(|tx| Ok(scheduler::cancel(tx, id, now))).await?;
        canceled
    }
}
