//! Every bound the JavaScript runtime enforces, in one place. What a function may read and write is
//! bounded further by the store's and the query layer's limits, through the syscalls.

use std::time::Duration;

use livebase_functions::limits::MAX_NESTED_CALL_DEPTH;

/// Bytes of JavaScript heap one engine (QuickJS runtime) may use: the context it keeps with the
/// app's bundle loaded, and the running call's allocations. A call allocating past it fails with an
/// error naming this limit; the worker's engine is then replaced, so nothing of it outlives the call.
pub const MAX_CALL_MEMORY_BYTES: usize = 64 << 20;

/// How long one query or mutation call may take in JavaScript, from loading the bundle to its
/// promise settling (Convex: 1 s of user code); for an action, how long its JavaScript may run, the
/// time it waits for its async syscalls left out. Checked by QuickJS's interrupt handler while code
/// runs, so a loop without end fails its call with an error naming this limit.
pub const MAX_CALL_DURATION: Duration = Duration::from_secs(1);

/// Bytes of native stack JavaScript may use before deep recursion fails with a `RangeError`.
pub const MAX_JS_STACK_BYTES: usize = 1 << 20;

/// Bytes of stack of each worker thread: room for JavaScript's stack and the Rust around it, for each
/// engine a worker may run at once (an action's, then one per query or mutation nested in the call
/// before, up to `MAX_NESTED_CALL_DEPTH`). Reserved, not committed, until used.
pub const WORKER_THREAD_STACK_BYTES: usize = (MAX_NESTED_CALL_DEPTH + 1) * 2 * MAX_JS_STACK_BYTES;

/// Worker threads running JavaScript, each with an engine of its own (at most this many, and no
/// more than the machine has cores). Calls beyond them wait for a free worker.
pub const MAX_JS_WORKERS: usize = 16;

/// Query and mutation calls waiting for a free worker. A caller finding the queue full waits for
/// room, so a burst of calls queues at most this many.
pub const MAX_QUEUED_JS_CALLS: usize = 1_024;

/// Events (log lines, syscalls) a worker may send ahead of the thread or task driving its call; it
/// waits for the driver beyond them.
pub const MAX_PENDING_JS_EVENTS: usize = 256;

/// How long an action (or HTTP action) may take in all, waiting for its calls and `fetch`es included
/// (Convex: 10 minutes). Its JavaScript, the time it runs rather than waits, is bounded further by
/// `MAX_CALL_DURATION`.
pub const MAX_ACTION_DURATION: Duration = livebase_functions::limits::MAX_ACTION_DURATION;

/// Async syscalls (`ctx.runQuery`, `fetch`, ...) one action may have under way at once (Convex: 1,000
/// concurrent operations). One more fails with an error naming this limit.
pub const MAX_PENDING_ASYNC_SYSCALLS: usize = 1_000;

/// JavaScript actions running at once, each on a thread of its own (an action waits on the calls it
/// makes, so actions never wait for one another's threads). One more fails with an error naming
/// this limit rather than waiting, which a nested action could do forever.
pub const MAX_RUNNING_JS_ACTIONS: usize = 64;

/// Threads of finished actions kept, with their engines, for the next actions.
pub const MAX_IDLE_ACTION_WORKERS: usize = 8;

/// Query streams (`ctx.db.query(..)` being iterated) one call may hold open at once. Each holds a
/// planned query; a function opening streams in a loop without finishing them fails instead.
pub const MAX_OPEN_QUERY_STREAMS: usize = 1_024;

/// Bytes of a bundle (the app's functions as one ES module, the npm libraries included) that is
/// loaded or deployed. Every context evaluates the whole bundle within
/// `MAX_CALL_MEMORY_BYTES`, so a bundle this large already leaves a call little room.
pub const MAX_BUNDLE_BYTES: usize = 8 << 20;

/// Bytes one `crypto.getRandomValues` call may fill (Convex's limit, and the Web Crypto spec's): a
/// larger array fails with a `QuotaExceededError` naming this limit.
pub const MAX_RANDOM_VALUES_BYTES: usize = 65_536;

/// Calls one context serves (prelude, web APIs and bundle loaded once) before the engine replaces it
/// with a fresh one: module-level state an app keeps between calls, and whatever garbage QuickJS's
/// collector misses, live at most this long.
pub const MAX_CALLS_PER_CONTEXT: usize = 1_000;
