//! The pool of QuickJS engines: worker threads, each owning one engine, that run one call at a time,
//! each in a fresh context, within `MAX_CALL_MEMORY_BYTES` and `MAX_CALL_DURATION`.
//!
//! A call's database lives on the calling thread (a query's or mutation's context borrows its
//! transaction), so the worker does not touch it: every syscall the JavaScript makes travels to the
//! calling thread, which answers it with the [`Host`] it holds and sends the answer back. The calling
//! thread waits for the call meanwhile, as it would for a Rust handler.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::Instant;

use livebase_functions::{FunctionError, LogLevel};
use livebase_value::from_convex_json;
use rquickjs::convert::List;
use rquickjs::{
    CatchResultExt, CaughtError, Coerced, Context, Ctx, Function, Module, Object, Promise, Runtime, WriteOptions,
};

use crate::limits::{
    MAX_CALL_DURATION, MAX_CALL_MEMORY_BYTES, MAX_JS_STACK_BYTES, MAX_JS_WORKERS, WORKER_THREAD_STACK_BYTES,
};

/// The script that installs `console` and `Convex` in every context.
const PRELUDE: &str = include_str!("prelude.js");

/// What to run in a fresh context once the bundle is evaluated.
#[derive(Clone, Debug)]
pub(crate) enum Invocation {
    /// `invokeQuery` or `invokeMutation` of the function `name` exported by `module`, with `args`, the
    /// `convex_encoded_json` of the argument list.
    Call { module: String, name: String, entry: Entry, args: String },
    /// The JSON list of the functions the bundle exports.
    Manifest,
}

/// The library's entry point of a function object for each kind that runs in a transaction.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Entry {
    Query,
    Mutation,
}

impl Entry {
    fn method(self) -> &'static str {
        match self {
            Entry::Query => "invokeQuery",
            Entry::Mutation => "invokeMutation",
        }
    }
}

/// Answers a call's syscalls and keeps its log lines, on the calling thread.
pub(crate) trait Host {
    /// Runs the syscall `op` with its JSON arguments; returns its JSON result.
    fn syscall(&mut self, op: &str, args: &str) -> Result<String, FunctionError>;
    fn log(&mut self, level: LogLevel, message: &str);
}

/// From a worker to the calling thread.
enum Event {
    Syscall { op: String, args: String },
    Log { level: LogLevel, message: String },
    Done(Result<String, FunctionError>),
}

struct Job {
    bundle: Arc<str>,
    invocation: Invocation,
    events: Sender<Event>,
    replies: Receiver<Result<String, FunctionError>>,
}

/// The worker threads. Dropping the engine lets them finish their calls and exit.
pub(crate) struct Engine {
    jobs: Sender<Job>,
}

impl Engine {
    pub(crate) fn start() -> Engine {
        let (jobs, queue) = mpsc::channel::<Job>();
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
        Engine { jobs }
    }

    /// Runs `invocation` against `bundle` on a free worker, answering its syscalls with `host` on this
    /// thread; returns the JSON string the invocation produced.
    pub(crate) fn run(
        &self,
        bundle: &Arc<str>,
        invocation: Invocation,
        host: &mut dyn Host,
    ) -> Result<String, FunctionError> {
        let (events, incoming) = mpsc::channel();
        let (answers, replies) = mpsc::channel();
        let job = Job { bundle: Arc::clone(bundle), invocation, events, replies };
        self.jobs.send(job).map_err(|_| FunctionError::internal("The JavaScript workers have stopped"))?;
        for event in incoming {
            match event {
                Event::Syscall { op, args } => {
                    // The worker waits for this answer; it is gone only if it panicked, reported below.
                    let _ = answers.send(host.syscall(&op, &args));
                }
                Event::Log { level, message } => host.log(level, &message),
                Event::Done(result) => return result,
            }
        }
        Err(FunctionError::internal("A JavaScript worker stopped in the middle of a call"))
    }
}

fn work(queue: &Mutex<Receiver<Job>>) {
    let mut isolate = Isolate::new();
    loop {
        // The lock is held only while waiting for a job, never while running one.
        let job = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(job) = job else { return };
        let Job { bundle, invocation, events, replies } = job;
        let channels = Rc::new(Channels { events: events.clone(), replies });
        let outcome = catch_unwind(AssertUnwindSafe(|| isolate.run(&bundle, &invocation, &channels)));
        let result = outcome.unwrap_or_else(|_| {
            Err(Failure::Fault(FunctionError::internal("The JavaScript engine panicked during the call")))
        });
        let result = result.map_err(|failure| {
            if failure.poisons_engine() {
                // Whatever the call left behind (a heap at its limit, a half-built object) goes with it.
                isolate = Isolate::new();
            }
            failure.into_error()
        });
        // The caller may be gone (its thread panicked): then nobody wants the result.
        let _ = events.send(Event::Done(result));
    }
}

/// The calling thread's ends of one call's channels, shared by the host functions of its context.
struct Channels {
    events: Sender<Event>,
    replies: Receiver<Result<String, FunctionError>>,
}

/// Why a call failed.
enum Failure {
    /// The call's own error, as the function's caller sees it.
    Function(FunctionError),
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
            Failure::Function(error) | Failure::Limit(error) | Failure::Fault(error) => error,
        }
    }
}

/// One QuickJS runtime with its limits. Contexts are made per call; the runtime is kept.
struct Isolate {
    runtime: Runtime,
    /// The last bundle this engine ran, compiled: parsing it again for every call would cost more than
    /// the call.
    compiled: Option<(Arc<str>, Vec<u8>)>,
    /// When the running call must stop; `None` between calls.
    deadline: Rc<Cell<Option<Instant>>>,
    /// Set by the interrupt handler when it stopped the call.
    interrupted: Rc<Cell<bool>>,
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
        Isolate { runtime, compiled: None, deadline, interrupted }
    }

    fn run(&mut self, bundle: &Arc<str>, invocation: &Invocation, channels: &Rc<Channels>) -> Result<String, Failure> {
        let fault = |error: rquickjs::Error| FunctionError::internal(format!("The JavaScript engine failed: {error}"));
        if !self.compiled.as_ref().is_some_and(|(compiled, _)| Arc::ptr_eq(compiled, bundle)) {
            // Compiling runs none of the bundle's code (in a context of its own, dropped after): only
            // a syntax error can fail it, which esbuild would have reported.
            let bytecode = Context::full(&self.runtime)
                .and_then(|context| {
                    context
                        .with(|ctx| Module::declare(ctx, "app.js", bundle.as_bytes())?.write(WriteOptions::default()))
                })
                .map_err(|error| Failure::Fault(fault(error)))?;
            self.compiled = Some((Arc::clone(bundle), bytecode));
        }
        let context = Context::full(&self.runtime).map_err(|error| Failure::Fault(fault(error)))?;
        let (_, bytecode) = self.compiled.as_ref().expect("compiled above");
        self.interrupted.set(false);
        self.deadline.set(Some(Instant::now() + MAX_CALL_DURATION));
        let result = context.with(|ctx| {
            let outcome = run_in(&ctx, bytecode, invocation, channels);
            outcome.map_err(|caught| self.failure(caught))
        });
        self.deadline.set(None);
        drop(context);
        self.runtime.run_gc();
        result
    }

    /// What a caught JavaScript error means for the call.
    fn failure(&self, caught: Caught<'_>) -> Failure {
        if self.interrupted.get() {
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
                if exception.get::<_, Coerced<String>>("name").is_ok_and(|name| name.0 == "InternalError")
                    && message == "out of memory"
                {
                    return Failure::Limit(out_of_memory());
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
            Caught::NeverSettles => Failure::Function(FunctionError::failed(
                "The function's promise never settles: it awaits something that nothing will ever do",
            )),
            Caught::Invalid(why) => Failure::Function(FunctionError::failed(why)),
        }
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
    /// The promise is pending with nothing left to run.
    NeverSettles,
    /// The bundle or invocation is not what the loader made (an export missing, say).
    Invalid(String),
}

impl<'js> From<CaughtError<'js>> for Caught<'js> {
    fn from(error: CaughtError<'js>) -> Caught<'js> {
        Caught::Error(error)
    }
}

fn run_in<'js>(
    ctx: &Ctx<'js>,
    bytecode: &[u8],
    invocation: &Invocation,
    channels: &Rc<Channels>,
) -> Result<String, Caught<'js>> {
    install_host(ctx, channels).catch(ctx)?;
    ctx.eval::<(), _>(PRELUDE).catch(ctx)?;
    // SAFETY: `bytecode` is what `Module::write` made of the bundle in this same engine (`Isolate::run`).
    let declared = unsafe { Module::load(ctx.clone(), bytecode) }.catch(ctx)?;
    let (module, evaluated) = declared.eval().catch(ctx)?;
    settle::<()>(ctx, &evaluated)?;
    let modules: Object = module.get("modules").catch(ctx)?;
    match invocation {
        Invocation::Manifest => {
            let manifest: Function = ctx.globals().get("__livebaseManifest").catch(ctx)?;
            Ok(manifest.call((modules,)).catch(ctx)?)
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
            let promise: Promise = invoke.call((args.as_str(),)).catch(ctx)?;
            settle(ctx, &promise)
        }
    }
}

/// Runs the context's jobs until `promise` settles.
fn settle<'js, T: rquickjs::FromJs<'js>>(ctx: &Ctx<'js>, promise: &Promise<'js>) -> Result<T, Caught<'js>> {
    match promise.finish::<T>() {
        Err(rquickjs::Error::WouldBlock) => Err(Caught::NeverSettles),
        result => Ok(result.catch(ctx)?),
    }
}

/// `globalThis.__livebase`: what the prelude builds `console` and `Convex` on.
fn install_host<'js>(ctx: &Ctx<'js>, channels: &Rc<Channels>) -> rquickjs::Result<()> {
    let host = Object::new(ctx.clone())?;
    let logs = Rc::clone(channels);
    let log = Function::new(ctx.clone(), move |level: String, message: String| {
        let level = match level.as_str() {
            "info" => LogLevel::Info,
            "warn" => LogLevel::Warn,
            "error" => LogLevel::Error,
            _ => LogLevel::Log,
        };
        // A gone caller is noticed by the syscall or the end of the call.
        let _ = logs.events.send(Event::Log { level, message });
    })?;
    let calls = Rc::clone(channels);
    let syscall =
        Function::new(ctx.clone(), move |op: String, args: String| -> List<(bool, String, Option<String>)> {
            let answer = match calls.events.send(Event::Syscall { op, args }) {
                Ok(()) => calls.replies.recv().ok(),
                Err(_) => None,
            };
            match answer {
                Some(Ok(result)) => List((true, result, None)),
                Some(Err(error)) => {
                    let data = error.data().map(|data| livebase_value::to_convex_json(data).to_string());
                    List((false, error.client_message().to_owned(), data))
                }
                None => List((false, "The call's caller is gone".to_owned(), None)),
            }
        })?;
    host.set("log", log)?;
    host.set("syscall", syscall)?;
    ctx.globals().set("__livebase", host)
}
