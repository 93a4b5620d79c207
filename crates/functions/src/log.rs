//! `console.log` for functions: lines collected per call, bounded, returned with the result
//! (`logLines` on the wire) and emitted to `tracing` once the call is over.

use std::fmt;

use crate::limits::{MAX_LOG_LINE_BYTES, MAX_LOG_LINES};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    Log,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    fn tag(self) -> &'static str {
        match self {
            LogLevel::Log => "LOG",
            LogLevel::Info => "INFO",
            LogLevel::Warn => "WARN",
            LogLevel::Error => "ERROR",
        }
    }
}

/// One line a function logged. Displays as the wire form, `[LEVEL] message`, which Convex's clients
/// parse to replay the line in the browser console.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    pub level: LogLevel,
    pub message: String,
    /// The message was cut to `MAX_LOG_LINE_BYTES`.
    pub truncated: bool,
}

impl fmt::Display for LogLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.level.tag(), self.message)?;
        if self.truncated {
            f.write_str(" (truncated)")?;
        }
        Ok(())
    }
}

/// The lines of one call (one attempt, for a retried mutation).
#[derive(Debug, Default)]
pub(crate) struct LogCollector {
    lines: Vec<LogLine>,
    omitted: usize,
}

impl LogCollector {
    pub(crate) fn log(&mut self, level: LogLevel, message: &str) {
        let cut = message.floor_char_boundary(MAX_LOG_LINE_BYTES);
        let truncated = cut < message.len();
        self.push(LogLine { level, message: message[..cut].to_owned(), truncated });
    }

    /// Adds lines already bounded by another call (an action's nested query, say).
    pub(crate) fn extend(&mut self, lines: Vec<LogLine>) {
        for line in lines {
            self.push(line);
        }
    }

    fn push(&mut self, line: LogLine) {
        assert!(line.message.len() <= MAX_LOG_LINE_BYTES);
        if self.lines.len() == MAX_LOG_LINES {
            self.omitted += 1;
        } else {
            self.lines.push(line);
        }
    }

    /// The lines, with one more at the end saying how many were dropped, if any were.
    pub(crate) fn finish(self) -> Vec<LogLine> {
        let LogCollector { mut lines, omitted } = self;
        if omitted > 0 {
            let message = format!("Log overflow: {omitted} more lines omitted (at most {MAX_LOG_LINES} per call)");
            lines.push(LogLine { level: LogLevel::Warn, message, truncated: false });
        }
        lines
    }
}

/// Emits a finished call's lines to `tracing`, so server operators see what functions log.
pub(crate) fn emit(function: &dyn fmt::Display, lines: &[LogLine]) {
    for line in lines {
        match line.level {
            LogLevel::Log | LogLevel::Info => {
                tracing::info!(target: "livebase_functions::console", %function, "{line}")
            }
            LogLevel::Warn => tracing::warn!(target: "livebase_functions::console", %function, "{line}"),
            LogLevel::Error => tracing::error!(target: "livebase_functions::console", %function, "{line}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_cut_at_the_limit_and_marked() {
        let mut logs = LogCollector::default();
        logs.log(LogLevel::Log, &"a".repeat(MAX_LOG_LINE_BYTES));
        logs.log(LogLevel::Info, &"b".repeat(MAX_LOG_LINE_BYTES + 1));
        // A multi-byte character straddling the limit is dropped whole, never split.
        logs.log(LogLevel::Warn, &format!("{}é", "c".repeat(MAX_LOG_LINE_BYTES - 1)));
        let lines = logs.finish();
        assert_eq!(lines.len(), 3);
        assert!(!lines[0].truncated);
        assert_eq!(lines[0].message.len(), MAX_LOG_LINE_BYTES);
        assert!(lines[1].truncated);
        assert_eq!(lines[1].message.len(), MAX_LOG_LINE_BYTES);
        assert!(lines[1].to_string().starts_with("[INFO] bbb") && lines[1].to_string().ends_with("b (truncated)"));
        assert!(lines[2].truncated);
        assert_eq!(lines[2].message.len(), MAX_LOG_LINE_BYTES - 1);
    }

    #[test]
    fn lines_past_the_limit_are_counted_in_one_marker() {
        let mut logs = LogCollector::default();
        for n in 0..MAX_LOG_LINES {
            logs.log(LogLevel::Log, &n.to_string());
        }
        let mut full = LogCollector::default();
        full.extend(logs.finish());
        assert_eq!(full.lines.len(), MAX_LOG_LINES, "exactly the limit needs no marker");
        full.log(LogLevel::Error, "one too many");
        full.log(LogLevel::Error, "two too many");
        let lines = full.finish();
        assert_eq!(lines.len(), MAX_LOG_LINES + 1);
        assert_eq!(lines[MAX_LOG_LINES - 1].message, (MAX_LOG_LINES - 1).to_string());
        let marker = lines.last().expect("a marker");
        assert_eq!(marker.level, LogLevel::Warn);
        assert!(marker.message.starts_with("Log overflow: 2 more lines omitted"), "{}", marker.message);
    }
}
