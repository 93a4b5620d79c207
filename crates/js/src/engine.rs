//! The QuickJS engines: worker threads, each owning engines that run one call at a time, within
//! `MAX_CALL_MEMORY_BYTES` and `MAX_CALL_DURATION`.
//!
//! An engine keeps the context it made for a bundle (prelude, web APIs and bundle loaded) for the
//! next calls of that bundle, as a Convex isolate does: loading the bundle costs far more than most
//! calls. So module-level state of the app may persist between calls. What differs per call reaches
//! the context through a slot the host functions read ([`Kept::current`]) and the prelude's
//! `begin`. The context is dropped, for a fresh one, with a new bundle, after any call that hit a
//! limit, failed inside QuickJS, or left work behind (pending jobs or syscalls), when its bundle read
//! `process.env` while loading (the value would outlive a change of the variables), and after
//! `MAX_CALLS_PER_CONTEXT` calls, which bounds what leaks between calls.
//!
//! A call's database lives on the calling thread (a query's or mutation's context borrows its
//! transaction), so the worker does not touch it: every syscall the JavaScript makes travels to the
//! calling thread, which answers it with the [`Host`] it holds and sends the answer back. The calling
//! thread waits for the call meanwhile, as it would for a Rust handler.
//!
//! Actions (and HTTP actions) are driven by a tokio task instead ([`Engine::run_async`]): their
//! `Convex.asyncSyscall`s leave a promise pending in the worker, which keeps running the context's
//! jobs and, with nothing left to run, waits for the task to settle one (`ctx.runQuery`, `fetch`,
//! ...); many can be under way at once. Each action gets a thread of its own (reused when idle), since
//! an action waits on other calls: sharing the query and mutation workers could leave every worker
//! waiting.
//!
//! A call made while a syscall of another is being answered (`ctx.runQuery` inside a mutation or an
//! action) runs on the worker of the call it serves, on the engine of the next depth, while that
//! worker waits anyway: nested calls never wait for a free worker, so they cannot deadlock the pool.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::thread;
use std::time::Instant;

use livebase_functions::limits::MAX_NESTED_CALL_DEPTH;
use livebase_functions::{ActionCtx, FunctionError, HttpRequest, HttpResponse, LogLevel};
use livebase_value::from_convex_json;
use rquickjs::convert::List;
use rquickjs::{
    ArrayBuffer, CatchResultExt, CaughtError, Coerced, Context, Ctx, Function, Module, Object, Persistent, Promise,
    Runtime, WriteOptions,
};
use tokio::task::JoinSet;

use crate::limits::{
    MAX_ACTION_DURATION, MAX_CALL_DURATION, MAX_CALL_MEMORY_BYTES, MAX_CALLS_PER_CONTEXT, MAX_IDLE_ACTION_WORKERS,
    MAX_JS_STACK_BYTES, MAX_JS_WORKERS, MAX_PENDING_ASYNC_SYSCALLS, MAX_PENDING_JS_EVENTS, MAX_QUEUED_JS_CALLS,
    MAX_RUNNING_JS_ACTIONS, WORKER_THREAD_STACK_BYTES,
};
use crate::syscalls;

/// The script that installs `console`, `Convex` and `process` in every context.
const PRELUDE: &str = include_str!("prelude.js");

/// Replies in flight to one call at most: an answer to each pending async syscall, and a nested call
/// from each syscall being answered.
const REPLY_CAPACITY: usize = 2 * MAX_PENDING_ASYNC_SYSCALLS + 1;

/// What to run in a context once the bundle is evaluated.
#[derive(Clone, Debug)]
pub(crate) enum Invocation {
    /// `invokeQuery`, `invokeMutation` or `invokeAction` of the function `name` exported by `module`,
    /// with `args`, the `convex_encoded_json` of the argument list.
    Call { module: String, name: String, entry: Entry, args: String },
    /// `invokeHttpAction` of the route the `http` module's router has for `request`; its `Response`
    /// read whole. Only for [`Engine::run_async`].
    Http(HttpRequest),
    /// The JSON manifest of the bundle: its functions and HTTP routes.
    Manifest,
    /// What the bundle's `config` export resolves to (the app's schema, crons and auth config as
    /// JSON), given `env`, the JSON object `process.env` holds meanwhile.
    Config { env: String },
}

/// The library's entry point of a function object, by kind.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Entry {
    Query,
    Mutation,
    Action,
}

impl Entry {
    fn method(self) -> &'static str {
        match self {
            Entry::Query => "invokeQuery",
            Entry::Mutation => "invokeMutation",
            Entry::Action => "invokeAction",
        }
    }
}

/// What an invocation produced.
#[derive(Debug)]
pub(crate) enum Output {
    /// A JSON string: a function's `convex_encoded_json` result, the manifest, the config.
    Json(String),
    /// An HTTP action's response.
    Response(HttpResponse),
}

/// Answers a call's syscalls and keeps its log lines, on the calling thread.
pub(crate) trait Host {
    /// Runs the syscall `op` with its JSON arguments; returns its JSON result.
    fn syscall(&mut self, op: &str, args: &str) -> Result<String, FunctionError>;
    fn log(&mut self, level: LogLevel, message: &str);
}

/// From a worker to the call's driver.
enum Event {
    /// A syscall the worker waits on, answered by [`Reply::Answer`].
    Syscall {
        op: String,
        args: String,
    },
    /// A syscall whose promise the JavaScript keeps pending, answered by [`Reply::Settled`].
    AsyncSyscall {
        id: u64,
        op: String,
        args: String,
    },
    Log {
        level: LogLevel,
        message: String,
    },
    Done(Result<Output, FunctionError>),
}

/// From a call's driver to its worker.
enum Reply {
    Answer(Result<String, FunctionError>),
    Settled {
        id: u64,
        result: Result<String, FunctionError>,
    },
    /// A call made while a syscall of this one is answered: the worker runs it first, one engine deeper.
    Nested(Job),
}

/// Where a worker sends a call's events: a thread waiting for them, or a tokio task.
enum Events {
    Blocking(SyncSender<Event>),
    Async(tokio::sync::mpsc::Sender<Event>),
}

impl Events {
    /// Sends `event`, waiting while the driver is `MAX_PENDING_JS_EVENTS` behind; `false` when the
    /// driver is gone.
    fn send(&self, event: Event) -> bool {
        match self {
            Events::Blocking(events) => events.send(event).is_ok(),
            Events::Async(events) => events.blocking_send(event).is_ok(),
        }
    }

    fn is_async(&self) -> bool {
        matches!(self, Events::Async(_))
    }
}

struct Job {
    bundle: Arc<str>,
    invocation: Invocation,
    /// `process.env` as JSON: an action's, read when it starts; the config's; none (`{}`) while the
    /// functions are listed. `None` for calls whose `process.env` reads each variable through a syscall.
    env: Option<String>,
    events: Events,
    replies: Receiver<Reply>,
}

thread_local! {
    /// The calls whose syscall this thread is answering, innermost last: a call it makes meanwhile
    /// runs nested on the innermost's worker.
    static ANSWERING: RefCell<Vec<SyncSender<Reply>>> = const { RefCell::new(Vec::new()) };
}

tokio::task_local! {
    /// The action whose async syscall this task answers: a call it makes runs nested on its worker.
    static ACTION: SyncSender<Reply>;
}

/// Marks this thread as answering a syscall of the call `replies` goes to, until dropped.
struct Answering;

impl Answering {
    fn start(replies: &SyncSender<Reply>) -> Answering {
        ANSWERING.with_borrow_mut(|calls| calls.push(replies.clone()));
        Answering
    }
}

impl Drop for Answering {
    fn drop(&mut self) {
        ANSWERING.with_borrow_mut(|calls| calls.pop());
    }
}

/// The worker threads. Dropping the engine lets them finish their calls and exit.
pub(crate) struct Engine {
    jobs: SyncSender<Job>,
    actions: Arc<ActionWorkers>,
}

impl Engine {
    pub(crate) fn start() -> Engine {
        let (jobs, queue) = mpsc::sync_channel::<Job>(MAX_QUEUED_JS_CALLS);
        let queue = Arc::new(Mutex::new(queue));
        let cores = thread::available_parallelism().map_or(1, usize::from);
        for n in 0..cores.min(MAX_JS_WORKERS) {
            let queue = Arc::clone(&queue);
            thread::Builder::new()
                .name(format!("livebase-js-{n}"))
                .stack_size(WORKER_THREAD_STACK_BYTES)
                .spawn(move || work(&queue))
                .expect("spawning a JavaScript worker thread");
        }
        Engine { jobs, actions: Arc::default() }
    }

    /// Runs `invocation` against `bundle` on a free worker (or nested on the worker of the call whose
    /// syscall this thread answers), answering its syscalls with `host` on this thread; returns the
    /// JSON string the invocation produced.
    pub(crate) fn run(
        &self,
        bundle: &Arc<str>,
        invocation: Invocation,
        host: &mut dyn Host,
    ) -> Result<String, FunctionError> {
        let (events, incoming) = mpsc::sync_channel(MAX_PENDING_JS_EVENTS);
        let (answers, replies) = mpsc::sync_channel(REPLY_CAPACITY);
        let env = match &invocation {
            Invocation::Config { env } => Some(env.clone()),
            Invocation::Manifest => Some("{}".to_owned()),
            Invocation::Call { .. } | Invocation::Http(_) => None,
        };
        let job = Job { bundle: Arc::clone(bundle), invocation, env, events: Events::Blocking(events), replies };
        let nested_in =
            ANSWERING.with_borrow(|calls| calls.last().cloned()).or_else(|| ACTION.try_with(Clone::clone).ok());
        match nested_in {
            Some(call) => call.send(Reply::Nested(job)).map_err(|_| worker_gone())?,
            None => self.jobs.send(job).map_err(|_| FunctionError::internal("The JavaScript workers have stopped"))?,
        }
        for event in incoming {
            match event {
                Event::Syscall { op, args } => {
                    let answering = Answering::start(&answers);
                    let answer = host.syscall(&op, &args);
                    drop(answering);
                    // The worker waits for this answer; it is gone only if it panicked, reported below.
                    let _ = answers.send(Reply::Answer(answer));
                }
                Event::AsyncSyscall { .. } => {
                    unreachable!("a blocking call's worker answers asyncSyscall synchronously")
                }
                Event::Log { level, message } => host.log(level, &message),
                Event::Done(result) => {
                    return result.map(|output| match output {
                        Output::Json(json) => json,
                        Output::Response(_) => unreachable!("HTTP actions run with `run_async`"),
                    });
                }
            }
        }
        Err(worker_gone())
    }

    /// Runs an action's `invocation` on a thread of its own, answering its syscalls (many at once)
    /// with `ctx` in tasks of this one.
    pub(crate) async fn run_async(
        &self,
        bundle: &Arc<str>,
        invocation: Invocation,
        ctx: &ActionCtx,
    ) -> Result<Output, FunctionError> {
        let env = Some(serde_json::to_string(&ctx.env_vars()?).expect("a map of strings serializes"));
        let (events, mut incoming) = tokio::sync::mpsc::channel(MAX_PENDING_JS_EVENTS);
        let (answers, replies) = mpsc::sync_channel(REPLY_CAPACITY);
        let job = Job { bundle: Arc::clone(bundle), invocation, env, events: Events::Async(events), replies };
        self.actions.start(job)?;
        // Aborted when the call ends or is dropped (at `MAX_ACTION_DURATION`): nothing outlives it.
        let mut under_way = JoinSet::new();
        let mut ids = HashMap::new();
        loop {
            tokio::select! {
                event = incoming.recv() => match event {
                    Some(Event::AsyncSyscall { id, op, args }) => {
                        let ctx = ctx.clone();
                        let work = async move { syscalls::action_syscall(&ctx, &op, &args).await };
                        let task = under_way.spawn(ACTION.scope(answers.clone(), work));
                        ids.insert(task.id(), id);
                    }
                    Some(Event::Log { level, message }) => ctx.log(level, message),
                    Some(Event::Done(result)) => return result,
                    Some(Event::Syscall { .. }) => unreachable!("an action's worker refuses blocking syscalls itself"),
                    None => return Err(worker_gone()),
                },
                Some(joined) = under_way.join_next_with_id(), if !under_way.is_empty() => {
                    let (task, result) = match joined {
                        Ok((task, result)) => (task, result),
                        Err(error) => (error.id(), Err(FunctionError::internal(format!("A syscall failed: {error}")))),
                    };
                    let id = ids.remove(&task).expect("every syscall task is recorded when spawned");
                    // Fails only once the worker is gone, which the next event reports.
                    if let Err(mpsc::TrySendError::Full(_)) = answers.try_send(Reply::Settled { id, result }) {
                        unreachable!("REPLY_CAPACITY holds every reply a call can have in flight");
                    }
                }
            }
        }
    }
}

fn worker_gone() -> FunctionError {
    FunctionError::internal("A JavaScript worker stopped in the middle of a call")
}

fn work(queue: &Mutex<Receiver<Job>>) {
    let levels = levels();
    loop {
        // The lock is held only while waiting for a job, never while running one.
        let job = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(job) = job else { return };
        serve(&levels, 0, job);
    }
}

/// The threads running actions: one per running action, at most `MAX_RUNNING_JS_ACTIONS`; up to
/// `MAX_IDLE_ACTION_WORKERS` finished ones wait for the next action with their engines warm.
#[derive(Default)]
struct ActionWorkers {
    idle: Mutex<Vec<SyncSender<Job>>>,
    running: AtomicUsize,
}

impl ActionWorkers {
    fn start(self: &Arc<Self>, mut job: Job) -> Result<(), FunctionError> {
        if self.running.fetch_add(1, Ordering::SeqCst) >= MAX_RUNNING_JS_ACTIONS {
            self.running.fetch_sub(1, Ordering::SeqCst);
            return Err(FunctionError::failed(format!(
                "More than {MAX_RUNNING_JS_ACTIONS} JavaScript actions are running (MAX_RUNNING_JS_ACTIONS): \
                 try again later"
            )));
        }
        loop {
            let idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
            let Some(worker) = idle else { break };
            match worker.send(job) {
                Ok(()) => return Ok(()),
                Err(mpsc::SendError(back)) => job = back,
            }
        }
        let workers = Arc::downgrade(self);
        let spawned = thread::Builder::new()
            .name("livebase-js-action".to_owned())
            .stack_size(WORKER_THREAD_STACK_BYTES)
            .spawn(move || work_on_actions(&workers, job));
        spawned.map(drop).map_err(|error| {
            self.running.fetch_sub(1, Ordering::SeqCst);
            FunctionError::internal(format!("Can't start a thread for a JavaScript action: {error}"))
        })
    }
}

fn work_on_actions(workers: &Weak<ActionWorkers>, mut job: Job) {
    let levels = levels();
    loop {
        serve(&levels, 0, job);
        // The engine is gone: so are its callers.
        let Some(pool) = workers.upgrade() else { return };
        pool.running.fetch_sub(1, Ordering::SeqCst);
        let (sender, next) = mpsc::sync_channel(1);
        {
            let mut idle = pool.idle.lock().unwrap_or_else(PoisonError::into_inner);
            if idle.len() >= MAX_IDLE_ACTION_WORKERS {
                return;
            }
            idle.push(sender);
        }
        drop(pool);
        let Ok(next) = next.recv() else { return };
        job = next;
    }
}

/// The engines of one worker thread, one per depth of nesting (a call nested in one of this worker's
/// calls runs on the next), each made when first needed.
type Levels = Rc<[RefCell<Option<Isolate>>]>;

fn levels() -> Levels {
    // An action's engine, and one for each query or mutation it can nest.
    (0..=MAX_NESTED_CALL_DEPTH).map(|_| RefCell::new(None)).collect()
}

/// Runs `job` on the engine at `depth` and sends its result.
fn serve(levels: &Levels, depth: usize, job: Job) {
    let Job { bundle, invocation, env, events, replies } = job;
    let Some(level) = levels.get(depth) else {
        let error = FunctionError::internal(format!("Calls nest deeper than the {} engines of a worker", levels.len()));
        events.send(Event::Done(Err(error)));
        return;
    };
    let mut slot = level.borrow_mut();
    let isolate = slot.get_or_insert_with(Isolate::new);
    let until = events.is_async().then(|| Instant::now() + MAX_ACTION_DURATION);
    let call = Rc::new(Call {
        env,
        events,
        replies,
        levels: Rc::clone(levels),
        depth,
        pending: Cell::new(0),
        deadline: Rc::clone(&isolate.deadline),
        until,
    });
    let outcome = catch_unwind(AssertUnwindSafe(|| isolate.run(&bundle, &invocation, &call)));
    let result = outcome.unwrap_or_else(|_| {
        Err(Failure::Fault(FunctionError::internal("The JavaScript engine panicked during the call")))
    });
    let result = result.map_err(|failure| {
        if failure.poisons_engine() {
            // Whatever the call left behind (a heap at its limit, a half-built object) goes with it.
            *slot = None;
        }
        failure.into_error()
    });
    // The caller may be gone (its thread panicked): then nobody wants the result.
    call.events.send(Event::Done(result));
}

/// One call on a worker, shared by the host functions of its context.
struct Call {
    env: Option<String>,
    events: Events,
    replies: Receiver<Reply>,
    levels: Levels,
    depth: usize,
    /// Async syscalls started and not settled.
    pending: Cell<usize>,
    /// The engine's interrupt deadline, paused while an action waits for its syscalls.
    deadline: Rc<Cell<Option<Instant>>>,
    /// When an action must be done, `MAX_ACTION_DURATION` after it started; `None` for other calls.
    until: Option<Instant>,
}

/// Why a call stopped waiting for its syscalls.
enum Stop {
    TooLong,
    CallerGone,
}

impl Call {
    /// The answer to the syscall just sent, running the calls nested meanwhile; `None` when the
    /// caller is gone.
    fn answer(&self) -> Option<Result<String, FunctionError>> {
        loop {
            match self.replies.recv().ok()? {
                Reply::Answer(answer) => return Some(answer),
                Reply::Nested(job) => serve(&self.levels, self.depth + 1, job),
                Reply::Settled { .. } => unreachable!("a blocking call's worker never waits on async syscalls"),
            }
        }
    }

    /// The next settled async syscall, running the calls nested meanwhile. The time waited does
    /// not count as running JavaScript.
    fn settled(&self) -> Result<(u64, Result<String, FunctionError>), Stop> {
        let until = self.until.expect("only actions leave syscalls pending");
        let left = self.deadline.take().map(|deadline| deadline.saturating_duration_since(Instant::now()));
        let settled = loop {
            match self.replies.recv_timeout(until.saturating_duration_since(Instant::now())) {
                Ok(Reply::Settled { id, result }) => break Ok((id, result)),
                Ok(Reply::Nested(job)) => serve(&self.levels, self.depth + 1, job),
                Ok(Reply::Answer(_)) => unreachable!("an action's worker sends no blocking syscalls"),
                Err(RecvTimeoutError::Timeout) => break Err(Stop::TooLong),
                Err(RecvTimeoutError::Disconnected) => break Err(Stop::CallerGone),
            }
        };
        self.deadline.set(left.map(|left| Instant::now() + left));
        settled
    }
}

/// Why a call failed.
enum Failure {
    /// The call's own error, as the function's caller sees it.
    Function(FunctionError),
    /// The call's own error, after which its context may hold half-done work (a promise that never
    /// settles, an action stopped while waiting, a QuickJS `InternalError` such as a stack
    /// overflow): the context is replaced.
    Abandoned(FunctionError),
    /// A limit stopped the call; the engine is replaced.
    Limit(FunctionError),
    /// The engine itself failed; it is replaced.
    Fault(FunctionError),
}

impl Failure {
    fn poisons_engine(&self) -> bool {
        matches!(self, Failure::Limit(_) | Failure::Fault(_))
    }

    fn into_error(self) -> FunctionError {
        match self {
            Failure::Function(error) | Failure::Abandoned(error) | Failure::Limit(error) | Failure::Fault(error) => {
                error
            }
        }
    }
}

/// One QuickJS runtime with its limits, and the context it keeps for the calls of one bundle.
struct Isolate {
    /// Dropped before the runtime it lives in.
    kept: Option<Kept>,
    runtime: Runtime,
    /// The last bundle this engine ran, compiled: parsing it again for every new context would cost
    /// more than a call.
    compiled: Option<(Arc<str>, Vec<u8>)>,
    /// When the running call must stop; `None` between calls and while an action waits.
    deadline: Rc<Cell<Option<Instant>>>,
    /// Set by the interrupt handler when it stopped the call.
    interrupted: Rc<Cell<bool>>,
}

/// A context with the prelude, the web APIs and a bundle loaded, kept for the bundle's next calls.
struct Kept {
    bundle: Arc<str>,
    /// The bundle's exports: `modules` (each module's exports by its path) and `config`.
    exports: Persistent<Object<'static>>,
    /// The prelude's `begin(envJson, isAction)`, which sets up each call.
    begin: Persistent<Function<'static>>,
    /// The prelude's `settle(id, ok, result, errorData)`, which settles an async syscall's promise.
    settle: Persistent<Function<'static>>,
    /// The call the context's host functions serve; `None` between calls. One per context, so that
    /// a job a replaced context left behind can never act for a later call.
    current: Rc<RefCell<Option<Rc<Call>>>>,
    calls: usize,
    /// Last, so that the values above are freed while it lives.
    context: Context,
}

impl Isolate {
    fn new() -> Isolate {
        let runtime = Runtime::new().expect("allocating a JavaScript runtime");
        runtime.set_memory_limit(MAX_CALL_MEMORY_BYTES);
        runtime.set_max_stack_size(MAX_JS_STACK_BYTES);
        let deadline: Rc<Cell<Option<Instant>>> = Rc::default();
        let interrupted: Rc<Cell<bool>> = Rc::default();
        let (until, stopped) = (Rc::clone(&deadline), Rc::clone(&interrupted));
        runtime.set_interrupt_handler(Some(Box::new(move || {
            let late = until.get().is_some_and(|deadline| Instant::now() >= deadline);
            if late {
                stopped.set(true);
            }
            late
        })));
        Isolate { kept: None, runtime, compiled: None, deadline, interrupted }
    }

    fn run(&mut self, bundle: &Arc<str>, invocation: &Invocation, call: &Rc<Call>) -> Result<Output, Failure> {
        if self.kept.as_ref().is_some_and(|kept| !Arc::ptr_eq(&kept.bundle, bundle)) {
            self.kept = None;
        }
        self.interrupted.set(false);
        self.deadline.set(Some(Instant::now() + MAX_CALL_DURATION));
        let result = self.run_kept(bundle, invocation, call);
        self.deadline.set(None);
        // The config's dynamic imports run their modules' top-level code during the call, reading
        // `process.env` as the config sees it.
        let reusable = result.as_ref().err().is_none_or(|failure| matches!(failure, Failure::Function(_)))
            && !matches!(invocation, Invocation::Config { .. })
            && call.pending.get() == 0
            && !self.runtime.is_job_pending()
            && self.kept.as_ref().is_some_and(|kept| kept.calls < MAX_CALLS_PER_CONTEXT);
        if !reusable {
            self.kept = None;
            self.runtime.run_gc();
        }
        result
    }

    /// Runs `invocation` in the kept context, made first if there is none.
    fn run_kept(&mut self, bundle: &Arc<str>, invocation: &Invocation, call: &Rc<Call>) -> Result<Output, Failure> {
        let interrupted = Rc::clone(&self.interrupted);
        let failure = |caught: Caught<'_>| failure(interrupted.get(), caught);
        let begin = |kept: &Kept| {
            kept.context.with(|ctx| {
                let begin = kept.begin.clone().restore(&ctx).map_err(|error| Failure::Fault(fault(error)))?;
                begin
                    .call((call.env.as_deref(), call.events.is_async()))
                    .catch(&ctx)
                    .map_err(|caught| failure(caught.into()))
            })
        };
        // Loading calls `begin` for the call itself.
        let unchanged = match &self.kept {
            Some(kept) => {
                let _serving = Serving::start(&kept.current, call);
                begin(kept)?
            }
            None => false,
        };
        if !unchanged {
            // None yet, or the bundle's module-level code read variables that have changed since.
            self.kept = None;
            let current = Rc::default();
            let _serving = Serving::start(&current, call);
            self.compile(bundle)?;
            let (_, bytecode) = self.compiled.as_ref().expect("compiled above");
            let context = Context::full(&self.runtime).map_err(|error| Failure::Fault(fault(error)))?;
            let kept = context.with(|ctx| {
                let loaded = load_in(&ctx, bytecode, call, &current).map_err(failure)?;
                Ok(Kept {
                    bundle: Arc::clone(bundle),
                    exports: Persistent::save(&ctx, loaded.exports),
                    begin: Persistent::save(&ctx, loaded.begin),
                    settle: Persistent::save(&ctx, loaded.settle),
                    current: Rc::clone(&current),
                    calls: 0,
                    context: context.clone(),
                })
            })?;
            self.kept = Some(kept);
        }
        let kept = self.kept.as_mut().expect("made above");
        kept.calls += 1;
        let _serving = Serving::start(&kept.current, call);
        kept.context.with(|ctx| {
            let restored = (kept.exports.clone().restore(&ctx), kept.settle.clone().restore(&ctx));
            let (exports, settle) = match restored {
                (Ok(exports), Ok(settle)) => (exports, settle),
                (Err(error), _) | (_, Err(error)) => return Err(Failure::Fault(fault(error))),
            };
            let settler = Settler { call, settle };
            invoke_in(&ctx, &exports, &settler, invocation).map_err(failure)
        })
    }

    /// The bundle as bytecode, compiled once per bundle. Compiling runs none of the bundle's code (in
    /// a context of its own, dropped after): only a syntax error can fail it, which esbuild would have
    /// reported.
    fn compile(&mut self, bundle: &Arc<str>) -> Result<(), Failure> {
        if !self.compiled.as_ref().is_some_and(|(compiled, _)| Arc::ptr_eq(compiled, bundle)) {
            let bytecode = Context::full(&self.runtime)
                .and_then(|context| {
                    context
                        .with(|ctx| Module::declare(ctx, "app.js", bundle.as_bytes())?.write(WriteOptions::default()))
                })
                .map_err(|error| Failure::Fault(fault(error)))?;
            self.compiled = Some((Arc::clone(bundle), bytecode));
        }
        Ok(())
    }
}

fn fault(error: rquickjs::Error) -> FunctionError {
    FunctionError::internal(format!("The JavaScript engine failed: {error}"))
}

/// What a caught JavaScript error means for the call, `interrupted` when the interrupt handler
/// stopped it.
fn failure(interrupted: bool, caught: Caught<'_>) -> Failure {
    if interrupted {
        return Failure::Limit(FunctionError::failed(format!(
            "The function ran longer than {MAX_CALL_DURATION:?} (MAX_CALL_DURATION) and was stopped"
        )));
    }
    match caught {
        Caught::Error(CaughtError::Error(rquickjs::Error::Allocation)) => Failure::Limit(out_of_memory()),
        Caught::Error(CaughtError::Error(error)) => {
            Failure::Fault(FunctionError::internal(format!("The JavaScript engine failed: {error}")))
        }
        Caught::Error(CaughtError::Exception(exception)) => {
            let message = exception.message().unwrap_or_default();
            // QuickJS's own errors (out of memory, stack overflow) may leave the context half-done.
            if exception.get::<_, Coerced<String>>("name").is_ok_and(|name| name.0 == "InternalError") {
                if message == "out of memory" {
                    return Failure::Limit(out_of_memory());
                }
                return Failure::Abandoned(thrown(exception.as_object(), &message));
            }
            Failure::Function(thrown(exception.as_object(), &message))
        }
        Caught::Error(CaughtError::Value(value)) => match value.as_object() {
            Some(object) => Failure::Function(thrown(object, "")),
            None => {
                let shown = value.get::<Coerced<String>>().map_or_else(|_| "a value".to_owned(), |shown| shown.0);
                Failure::Function(FunctionError::failed(format!("Uncaught {shown}")))
            }
        },
        Caught::NeverSettles => Failure::Abandoned(FunctionError::failed(
            "The function's promise never settles: it awaits something that nothing will ever do",
        )),
        Caught::Stopped(Stop::TooLong) => Failure::Abandoned(FunctionError::failed(format!(
            "The action ran longer than {MAX_ACTION_DURATION:?} (MAX_ACTION_DURATION) and was stopped"
        ))),
        Caught::Stopped(Stop::CallerGone) => Failure::Abandoned(FunctionError::internal("The call's caller is gone")),
        Caught::Invalid(why) => Failure::Function(FunctionError::failed(why)),
    }
}

fn out_of_memory() -> FunctionError {
    FunctionError::failed(format!(
        "The function used more than {MAX_CALL_MEMORY_BYTES} bytes of memory (MAX_CALL_MEMORY_BYTES) and was stopped"
    ))
}

/// A thrown object: a `ConvexError` (its `data` serialized by the library) becomes a user error with
/// that data; anything else fails the call with its name and message.
fn thrown(object: &Object<'_>, message: &str) -> FunctionError {
    if let Ok(data) = object.get::<_, String>("data")
        && object.get::<_, rquickjs::Value>("ConvexErrorSymbol").is_ok_and(|marker| !marker.is_undefined())
        && let Ok(data) = serde_json::from_str(&data)
        && let Ok(data) = from_convex_json(&data)
    {
        return FunctionError::User { message: message.to_owned(), data };
    }
    let name = object.get::<_, Coerced<String>>("name").map_or_else(|_| "Error".to_owned(), |name| name.0);
    FunctionError::failed(format!("Uncaught {name}: {message}"))
}

enum Caught<'js> {
    Error(CaughtError<'js>),
    /// The promise is pending with nothing left to run and no syscall under way.
    NeverSettles,
    /// An action stopped waiting for its syscalls.
    Stopped(Stop),
    /// The bundle or invocation is not what the loader made (an export missing, say).
    Invalid(String),
}

impl<'js> From<CaughtError<'js>> for Caught<'js> {
    fn from(error: CaughtError<'js>) -> Caught<'js> {
        Caught::Error(error)
    }
}

/// Makes a context's host functions serve `call` until dropped.
struct Serving<'s>(&'s RefCell<Option<Rc<Call>>>);

impl Serving<'_> {
    fn start<'s>(slot: &'s RefCell<Option<Rc<Call>>>, call: &Rc<Call>) -> Serving<'s> {
        *slot.borrow_mut() = Some(Rc::clone(call));
        Serving(slot)
    }
}

impl Drop for Serving<'_> {
    fn drop(&mut self) {
        self.0.borrow_mut().take();
    }
}

/// What loading the prelude, the web APIs and a bundle into a context gave.
struct Loaded<'js> {
    exports: Object<'js>,
    begin: Function<'js>,
    settle: Function<'js>,
}

/// Loads the prelude, the web APIs and the bundle `bytecode` into a fresh context, for `call`.
fn load_in<'js>(
    ctx: &Ctx<'js>,
    bytecode: &[u8],
    call: &Rc<Call>,
    current: &Rc<RefCell<Option<Rc<Call>>>>,
) -> Result<Loaded<'js>, Caught<'js>> {
    let host = install_host(ctx, current).catch(ctx)?;
    ctx.eval::<(), _>(PRELUDE).catch(ctx)?;
    crate::web::install(ctx).catch(ctx)?;
    let begin: Function = host.get("begin").catch(ctx)?;
    begin.call::<_, bool>((call.env.as_deref(), call.events.is_async())).catch(ctx)?;
    let settler = Settler { call, settle: host.get("settle").catch(ctx)? };
    // SAFETY: `bytecode` is what `Module::write` made of the bundle in this same engine (`Isolate::compile`).
    let declared = unsafe { Module::load(ctx.clone(), bytecode) }.catch(ctx)?;
    let (module, evaluated) = declared.eval().catch(ctx)?;
    settler.settle::<()>(ctx, &evaluated)?;
    let loaded: Function = host.get("loaded").catch(ctx)?;
    loaded.call::<_, ()>(()).catch(ctx)?;
    Ok(Loaded { exports: module.namespace().catch(ctx)?, begin, settle: settler.settle })
}

/// Runs `invocation` against the bundle's `exports`, in a context `load_in` made.
fn invoke_in<'js>(
    ctx: &Ctx<'js>,
    exports: &Object<'js>,
    settler: &Settler<'_, 'js>,
    invocation: &Invocation,
) -> Result<Output, Caught<'js>> {
    let modules: Object = exports.get("modules").catch(ctx)?;
    match invocation {
        Invocation::Manifest => {
            let manifest: Function = ctx.globals().get("__livebaseManifest").catch(ctx)?;
            Ok(Output::Json(manifest.call((modules,)).catch(ctx)?))
        }
        Invocation::Config { .. } => {
            let config: Function = exports.get("config").catch(ctx)?;
            let promise: Promise = config.call(()).catch(ctx)?;
            Ok(Output::Json(settler.settle(ctx, &promise)?))
        }
        Invocation::Call { module, name, entry, args } => {
            let exports: Option<Object> = modules.get(module.as_str()).catch(ctx)?;
            let function: Option<Object> = match exports {
                Some(exports) => exports.get(name.as_str()).catch(ctx)?,
                None => None,
            };
            let Some(function) = function else {
                return Err(Caught::Invalid(format!("The bundle exports no function `{name}` from `{module}`")));
            };
            let invoke: Option<Function> = function.get(entry.method()).catch(ctx)?;
            let Some(invoke) = invoke else {
                return Err(Caught::Invalid(format!("`{module}:{name}` has no `{}`", entry.method())));
            };
            let promise: Promise = match entry {
                // An action's entry point also takes a request id, which only Convex's own syscalls use.
                Entry::Action => invoke.call(("", args.as_str())).catch(ctx)?,
                Entry::Query | Entry::Mutation => invoke.call((args.as_str(),)).catch(ctx)?,
            };
            Ok(Output::Json(settler.settle(ctx, &promise)?))
        }
        Invocation::Http(request) => {
            let router: Option<Object> = match modules.get::<_, Option<Object>>("http").catch(ctx)? {
                Some(http) => http.get("default").catch(ctx)?,
                None => None,
            };
            let Some(router) = router else {
                return Err(Caught::Invalid("The bundle has no `http` module exporting a router".to_owned()));
            };
            let handle: Function = ctx.globals().get("__livebaseHttp").catch(ctx)?;
            let headers: Vec<Vec<String>> =
                request.headers.iter().map(|(name, value)| vec![name.clone(), value.clone()]).collect();
            let body = ArrayBuffer::new_copy(ctx.clone(), &request.body).catch(ctx)?;
            let promise: Promise = handle
                .call((router, request.path(), request.url.as_str(), request.method.as_str(), headers, body))
                .catch(ctx)?;
            let response: Object = settler.settle(ctx, &promise)?;
            let status: u16 = response.get("status").catch(ctx)?;
            let headers: Vec<Vec<String>> = response.get("headers").catch(ctx)?;
            let headers = headers
                .into_iter()
                .filter_map(|pair| <[String; 2]>::try_from(pair).ok())
                .map(|[name, value]| (name, value))
                .collect();
            let body: ArrayBuffer = response.get("body").catch(ctx)?;
            // SAFETY: no JavaScript runs while the bytes are copied.
            let body = unsafe { body.as_bytes() }.unwrap_or_default().to_vec();
            Ok(Output::Response(HttpResponse { status, headers, body }))
        }
    }
}

/// Settles promises of a call: runs the context's jobs, and an action's async syscalls as they end.
struct Settler<'c, 'js> {
    call: &'c Call,
    /// The prelude's `settle(id, ok, result, errorData)`, which resolves or rejects a syscall's promise.
    settle: Function<'js>,
}

impl<'js> Settler<'_, 'js> {
    /// Runs the context's jobs until `promise` settles, waiting for syscalls while it is pending.
    fn settle<T: rquickjs::FromJs<'js>>(&self, ctx: &Ctx<'js>, promise: &Promise<'js>) -> Result<T, Caught<'js>> {
        loop {
            match promise.finish::<T>() {
                Err(rquickjs::Error::WouldBlock) => {}
                result => return Ok(result.catch(ctx)?),
            }
            if self.call.pending.get() == 0 {
                return Err(Caught::NeverSettles);
            }
            let (id, result) = self.call.settled().map_err(Caught::Stopped)?;
            self.call.pending.set(self.call.pending.get() - 1);
            let (ok, message, data) = outcome(result);
            self.settle.call::<_, ()>((id as f64, ok, message, data)).catch(ctx)?;
        }
    }
}

/// A syscall's result as the prelude takes it: `(true, resultJson, None)` or
/// `(false, message, errorDataJson)`.
fn outcome(result: Result<String, FunctionError>) -> (bool, String, Option<String>) {
    match result {
        Ok(result) => (true, result, None),
        Err(error) => {
            let data = error.data().map(|data| livebase_value::to_convex_json(data).to_string());
            (false, error.client_message().to_owned(), data)
        }
    }
}

/// `globalThis.__livebase`: what the prelude builds `console`, `Convex` and `process` on. Its
/// functions serve the call in `current` (the context outlives calls): an action's `asyncSyscall`s go
/// through `startSyscall(id, op, args)`, answered later; other calls' are answered at once through
/// `syscall`.
fn install_host<'js>(ctx: &Ctx<'js>, current: &Rc<RefCell<Option<Rc<Call>>>>) -> rquickjs::Result<Object<'js>> {
    let host = Object::new(ctx.clone())?;
    let running = Rc::clone(current);
    let log = Function::new(ctx.clone(), move |level: String, message: String| {
        let level = match level.as_str() {
            "info" => LogLevel::Info,
            "warn" => LogLevel::Warn,
            "error" => LogLevel::Error,
            _ => LogLevel::Log,
        };
        // A gone caller is noticed by the syscall or the end of the call.
        if let Some(call) = running.borrow().as_ref() {
            call.events.send(Event::Log { level, message });
        }
    })?;
    host.set("log", log)?;
    let running = Rc::clone(current);
    let syscall =
        Function::new(ctx.clone(), move |op: String, args: String| -> List<(bool, String, Option<String>)> {
            let Some(call) = running.borrow().clone() else {
                return List((false, NO_CALL.to_owned(), None));
            };
            if call.events.is_async() {
                // Every syscall an action may make is async: the blocking ones read a transaction.
                return List((false, format!("The syscall `{op}` is not available in actions"), None));
            }
            let answer = if call.events.send(Event::Syscall { op, args }) { call.answer() } else { None };
            match answer {
                Some(answer) => List(outcome(answer)),
                None => List((false, "The call's caller is gone".to_owned(), None)),
            }
        })?;
    host.set("syscall", syscall)?;
    let running = Rc::clone(current);
    let start = Function::new(ctx.clone(), move |id: f64, op: String, args: String| -> Option<String> {
        let Some(call) = running.borrow().clone() else { return Some(NO_CALL.to_owned()) };
        if call.pending.get() >= MAX_PENDING_ASYNC_SYSCALLS {
            return Some(format!(
                "An action may have at most {MAX_PENDING_ASYNC_SYSCALLS} calls under way at once \
                 (MAX_PENDING_ASYNC_SYSCALLS): await some first"
            ));
        }
        if !call.events.send(Event::AsyncSyscall { id: id as u64, op, args }) {
            return Some("The call's caller is gone".to_owned());
        }
        call.pending.set(call.pending.get() + 1);
        None
    })?;
    host.set("startSyscall", start)?;
    ctx.globals().set("__livebase", host.clone())?;
    Ok(host)
}

/// Why a host function refuses to serve code that runs outside a call of its context: a job a
/// replaced context left pending, run while a later call runs the runtime's jobs.
const NO_CALL: &str = "No call is under way";
