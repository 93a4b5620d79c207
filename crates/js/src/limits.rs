//! Every bound the JavaScript runtime enforces, in one place. What a function may read and write is
//! bounded further by the store's and the query layer's limits, through the syscalls.

use std::time::Duration;

/// Bytes of JavaScript heap one call may use, the app's bundle it evaluates included (QuickJS's
/// runtime memory limit). A call allocating past it fails with an error naming this limit; the
/// worker's engine is then replaced, so nothing of it outlives the call.
pub const MAX_CALL_MEMORY_BYTES: usize = 64 << 20;

/// How long one query or mutation call may take in JavaScript, from loading the bundle to its
/// promise settling (Convex: 1 s of user code). Checked by QuickJS's interrupt handler while code
/// runs, so a loop without end fails its call with an error naming this limit.
pub const MAX_CALL_DURATION: Duration = Duration::from_secs(1);

/// Bytes of native stack JavaScript may use before deep recursion fails with a `RangeError`.
pub const MAX_JS_STACK_BYTES: usize = 1 << 20;

/// Bytes of stack of each worker thread: room for JavaScript's stack and the Rust around it.
pub const WORKER_THREAD_STACK_BYTES: usize = 8 * MAX_JS_STACK_BYTES;

/// Worker threads running JavaScript, each with an engine of its own (at most this many, and no
/// more than the machine has cores). Calls beyond them wait for a free worker.
pub const MAX_JS_WORKERS: usize = 16;

/// Query streams (`ctx.db.query(..)` being iterated) one call may hold open at once. Each holds a
/// planned query; a function opening streams in a loop without finishing them fails instead.
pub const MAX_OPEN_QUERY_STREAMS: usize = 1_024;
