use std::time::{SystemTime, UNIX_EPOCH};

/// A commit timestamp: nanoseconds since the Unix epoch.
///
/// Commit timestamps are strictly increasing across the life of a data directory, so they double as
/// log sequence numbers and as the versions clients see on the wire.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct Timestamp(u64);

impl Timestamp {
    pub const ZERO: Timestamp = Timestamp(0);

    pub const fn from_nanos(nanos: u64) -> Timestamp {
        Timestamp(nanos)
    }

    pub const fn nanos(self) -> u64 {
        self.0
    }

    /// The next commit timestamp after `self`: wall clock time, unless the clock is behind the last
    /// commit (a clock step backwards, or more than one commit per nanosecond).
    pub fn next_commit(self) -> Timestamp {
        let successor = self.0.checked_add(1).expect("commit timestamps exhausted u64");
        Timestamp(successor.max(wall_clock_nanos()))
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

pub(crate) fn wall_clock_nanos() -> u64 {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).expect("the clock is before 1970");
    u64::try_from(since_epoch.as_nanos()).expect("the clock is past the year 2554")
}

pub(crate) fn wall_clock_millis_f64() -> f64 {
    wall_clock_nanos() as f64 / 1_000_000.0
}
