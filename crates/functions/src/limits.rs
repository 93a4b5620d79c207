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
