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
