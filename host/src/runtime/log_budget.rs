//! How much of a policy's output reaches the server log.
//!
//! Each evaluation keeps a bounded capture (`output`, `sandbox`), but a
//! policy that prints on every gate would still copy that capture into the
//! log thousands of times a second. A [`LogBudget`] lets the first
//! [`LINES_PER_MINUTE`] lines and [`BYTES_PER_MINUTE`] bytes of each minute
//! through, per policy version; the rest are dropped, counted by the
//! caller, and announced once a minute.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Log lines one policy may put into the server log per minute.
pub const LINES_PER_MINUTE: usize = 100;
/// Bytes of log messages one policy may put into the server log per minute.
pub const BYTES_PER_MINUTE: usize = 64 * 1024;

/// The window the budget is counted over.
const WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
struct Window {
    started: Option<Instant>,
    lines: usize,
    bytes: usize,
    refused: bool,
}

/// One policy's log budget, shared by every evaluation of it.
#[derive(Debug, Default)]
pub struct LogBudget {
    window: Mutex<Window>,
}

/// Whether a line may be logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Log it.
    Logged,
    /// Drop it; `first` is the window's first refusal, to be announced.
    Dropped {
        /// Whether this is the first line dropped in the window.
        first: bool,
    },
}

impl LogBudget {
    /// Admits one line of `bytes` bytes in the window that holds `now`, or
    /// refuses it when the window's lines or bytes are used up.
    pub fn admit(&self, bytes: usize, now: Instant) -> Admission {
        // The counts stay whole whatever panicked while holding the lock.
        let mut window = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        let expired = window
            .started
            .is_none_or(|started| now.saturating_duration_since(started) >= WINDOW);
        if expired {
            *window = Window {
                started: Some(now),
                ..Window::default()
            };
        }
        if window.lines < LINES_PER_MINUTE && window.bytes + bytes <= BYTES_PER_MINUTE {
            window.lines += 1;
            window.bytes += bytes;
            return Admission::Logged;
        }
        let first = !window.refused;
        window.refused = true;
        Admission::Dropped { first }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lets_a_minute_s_lines_through_then_refuses_until_the_next_minute() {
        let budget = LogBudget::default();
        let start = Instant::now();
        for n in 0..LINES_PER_MINUTE {
            assert_eq!(budget.admit(10, start), Admission::Logged, "line {n}");
        }
        let later = start + Duration::from_secs(59);
        assert_eq!(budget.admit(10, later), Admission::Dropped { first: true });
        assert_eq!(
            budget.admit(10, later),
            Admission::Dropped { first: false },
            "announced once a window"
        );
        assert_eq!(budget.admit(10, start + WINDOW), Admission::Logged);
    }

    #[test]
    fn long_lines_use_the_bytes_up_first() {
        let budget = LogBudget::default();
        let start = Instant::now();
        let line = 20 * 1024;
        for n in 0..BYTES_PER_MINUTE / line {
            assert_eq!(budget.admit(line, start), Admission::Logged, "line {n}");
        }
        assert_eq!(
            budget.admit(line, start),
            Admission::Dropped { first: true }
        );
        assert_eq!(
            budget.admit(1, start),
            Admission::Logged,
            "a short line still fits"
        );
    }
}
