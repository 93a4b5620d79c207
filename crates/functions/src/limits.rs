//! Every bound the function layer enforces, in one place. What a function may read and write is bounded
//! by the store's transaction limits (`livebase_store::limits`) and the query layer's
//! (`livebase_query::limits`).

/// Characters of a function path (`module/path:function`). Paths arrive from clients, so they are
/// bounded before anything else looks at them.
pub const MAX_FUNCTION_PATH_LEN: usize = 256;

/// Log lines one call keeps (Convex: 256). Later lines are counted, not kept, and one marker line at
/// the end says how many were dropped.
pub const MAX_LOG_LINES: usize = 256;

/// Bytes of one log line's message. Longer messages are cut (on a character boundary) and marked as
/// truncated, since log lines travel to the client with every result.
pub const MAX_LOG_LINE_BYTES: usize = 4_096;

/// Actions nested inside one another (an action running an action running ...), counting the outermost
/// one. Bounds runaway recursion, which would otherwise grow without end: every level is a task.
pub const MAX_ACTION_DEPTH: usize = 8;

/// Queries and mutations nested inside one another through `FunctionCtx::run_query` and `run_mutation`
/// (Convex's `ctx.runQuery` / `ctx.runMutation` inside a query or mutation), counting the outermost
/// one. Bounds runaway recursion: every level is a handler on the calling thread's stack.
pub const MAX_NESTED_CALL_DEPTH: usize = 8;

/// Jobs one mutation or action may schedule (Convex: 1,000). Bounds how much one call can enqueue.
pub const MAX_JOBS_SCHEDULED_PER_CALL: usize = 1_000;

/// Milliseconds ahead a job may be scheduled: 5 years (as Convex). Catches a seconds-for-milliseconds
/// mix-up, and keeps scheduled times finite.
pub const MAX_SCHEDULE_AHEAD_MILLIS: f64 = 5.0 * 365.0 * 24.0 * 3_600.0 * 1_000.0;

/// Scheduled actions running at once. Due actions beyond it wait for a running one to finish, so a
/// burst of jobs cannot start unbounded tasks.
pub const MAX_RUNNING_SCHEDULED_ACTIONS: usize = 16;

/// Crons an app declares.
pub const MAX_CRON_JOBS: usize = 256;

/// Characters of an environment variable's name (Convex: 40).
pub const MAX_ENV_VAR_NAME_LEN: usize = 40;

/// Bytes of an environment variable's value (Convex: 8 KiB).
pub const MAX_ENV_VAR_VALUE_BYTES: usize = 8 * 1_024;

/// Environment variables of a deployment (Convex: 100).
pub const MAX_ENV_VARS: usize = 100;

/// How long a mutation's result is kept for a replay of its request after a reconnect. A client
/// reconnecting later than this (after a long sleep, say) runs again those of its mutations whose
/// answer it never got. Bounds the records to what the deployment commits in this time.
pub const MUTATION_REPLAY_RETENTION: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// Results of one client session kept for replays; the oldest goes when a mutation records one
/// more. At least the sync layer's `MAX_PENDING_MUTATIONS`: a client answered in order replays only
/// its newest requests, at most that many.
pub const MAX_MUTATION_REPLAYS_PER_SESSION: usize = 1_000;

/// Bytes of a mutation's result (its key encoding) when the call is recorded for replays: the
/// record must fit in one document (`livebase_value::MAX_DOCUMENT_SIZE`) with its session and
/// request id.
pub const MAX_REPLAYABLE_RESULT_BYTES: usize = livebase_value::MAX_DOCUMENT_SIZE - 1_024;

/// Expired replay records deleted by one pruning transaction, well inside the store's write limits.
pub const MAX_REPLAYS_PRUNED_PER_COMMIT: usize = 1_000;

/// How long an action may run (Convex: 10 minutes). Past it the call fails and its task is dropped,
/// so a hung action cannot hold its resources forever.
pub const MAX_ACTION_DURATION: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// How long one outgoing HTTP request of an action may take, connecting and reading the whole
/// response included.
pub const MAX_FETCH_DURATION: std::time::Duration = std::time::Duration::from_secs(60);

/// Bytes of an outgoing request's body.
pub const MAX_FETCH_REQUEST_BYTES: usize = 16 * 1_024 * 1_024;

/// Bytes of a response to an outgoing request: it is read whole into the action's memory.
pub const MAX_FETCH_RESPONSE_BYTES: usize = 16 * 1_024 * 1_024;

/// Redirects an outgoing request follows before failing.
pub const MAX_FETCH_REDIRECTS: usize = 10;

/// Routes (method and path or prefix) an app defines for HTTP actions.
pub const MAX_HTTP_ROUTES: usize = 1_024;

/// Bytes of an HTTP action's request body (Convex: 20 MiB). The server refuses larger requests with
/// 413 before the body is read in full.
pub const MAX_HTTP_ACTION_REQUEST_BYTES: usize = 20 << 20;

/// Bytes of an HTTP action's response body (Convex: 20 MiB). A larger response is replaced by a 500
/// naming this limit.
pub const MAX_HTTP_ACTION_RESPONSE_BYTES: usize = 20 << 20;

/// How long a finished scheduled job (succeeded, failed or canceled) stays in
/// `_scheduled_functions` before the scheduler deletes it (Convex: 7 days). Keeps the table, which
/// the scheduler reads whole, to what recent jobs fill.
pub const FINISHED_JOB_RETENTION: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3_600);

/// Finished jobs deleted by one pruning transaction, well inside the store's write limits.
pub const MAX_JOBS_PRUNED_PER_COMMIT: usize = 1_000;
