//! Refusing a caller after repeated failures (contract §1.2): more than
//! 10 failed authentications within 60 s answer 429 with `Retry-After`,
//! even for the right secret, until enough of them age out of the window.
//! The authenticator counts by client id and source address together;
//! here a key is any string.
//!
//! Keys hold attacker-chosen client ids, so they are tracked by their
//! SHA-256 (32 bytes however long the id), each keeps at most
//! `max_failures + 1` instants (the newest, all the answers need), and ids
//! with no failure left in the window are dropped once many are tracked.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// Tracked client ids from which a new one first drops those with no
/// failure in the window.
pub const MAX_TRACKED: usize = 10_000;

type Key = [u8; 32];

/// Counts failed authentications per client id in a sliding window.
pub struct FailureLimiter {
    max_failures: usize,
    window: Duration,
    /// Failure instants per client id, oldest first, all within the window
    /// as of the last access.
    failures: Mutex<HashMap<Key, VecDeque<Instant>>>,
}

impl fmt::Debug for FailureLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FailureLimiter")
            .field("max_failures", &self.max_failures)
            .field("window", &self.window)
            .field("tracked", &self.tracked())
            .finish()
    }
}

impl FailureLimiter {
    /// Allows `max_failures` within any `window`; the server uses (10, 60 s).
    pub fn new(max_failures: usize, window: Duration) -> FailureLimiter {
        FailureLimiter {
            max_failures,
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// If `client_id` already has more than max_failures failures within the window ending at `now`: Some(time until enough of them age out that it no longer does). Else None.
    pub fn blocked(&self, client_id: &str, now: Instant) -> Option<Duration> {
        let key = key(client_id);
        let mut failures = self.failures();
        let times = failures.get_mut(&key)?;
        self.prune(times, now);
        let retry = self.retry(times, now);
        if times.is_empty() {
            failures.remove(&key);
        }
        retry
    }

    /// Records a failure at `now`; returns what `blocked` would return right after it.
    pub fn record_failure(&self, client_id: &str, now: Instant) -> Option<Duration> {
        let key = key(client_id);
        let mut failures = self.failures();
        // A scan of at most MAX_TRACKED ids costs far less than the argon2
        // check that preceded the failure.
        if failures.len() >= MAX_TRACKED && !failures.contains_key(&key) {
            failures.retain(|_, times| times.back().is_some_and(|t| self.within(*t, now)));
        }
        let times = failures.entry(key).or_default();
        self.prune(times, now);
        // Callers read the clock before waiting for the lock: keep order.
        let at = times.partition_point(|t| *t <= now);
        times.insert(at, now);
        // Only the newest max_failures + 1 decide whether and how long.
        while times.len() > self.max_failures.saturating_add(1) {
            times.pop_front();
        }
        self.retry(times, now)
    }

    /// How many client ids have failures on record.
    pub fn tracked(&self) -> usize {
        self.failures().len()
    }

    /// Whether a failure at `at` still counts at `now`.
    fn within(&self, at: Instant, now: Instant) -> bool {
        now.saturating_duration_since(at) < self.window
    }

    fn prune(&self, times: &mut VecDeque<Instant>, now: Instant) {
        while times.front().is_some_and(|t| !self.within(*t, now)) {
            times.pop_front();
        }
    }

    /// With more than max_failures in the window: until the one that must
    /// age out last (the (n - max)-th oldest) leaves it.
    fn retry(&self, times: &VecDeque<Instant>, now: Instant) -> Option<Duration> {
        let index = times
            .len()
            .checked_sub(self.max_failures.saturating_add(1))?;
        let last_to_go = times.get(index)?;
        Some((*last_to_go + self.window).saturating_duration_since(now))
    }

    fn failures(&self) -> MutexGuard<'_, HashMap<Key, VecDeque<Instant>>> {
        // Counts are whole after any panic: keep using them.
        self.failures.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn key(client_id: &str) -> Key {
    Sha256::digest(client_id.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(60);

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn the_eleventh_failure_in_a_minute_blocks_until_the_first_ages_out() {
        let limiter = FailureLimiter::new(10, WINDOW);
        let t0 = Instant::now();
        for n in 0..10 {
            let at = t0 + secs(n);
            assert_eq!(limiter.blocked("acme-ci", at), None, "before failure {n}");
            assert_eq!(limiter.record_failure("acme-ci", at), None, "failure {n}");
        }
        // Failures at t0 .. t0+9 s; the 11th at t0+10 s.
        assert_eq!(
            limiter.record_failure("acme-ci", t0 + secs(10)),
            Some(secs(50))
        );
        assert_eq!(limiter.blocked("acme-ci", t0 + secs(10)), Some(secs(50)));
        assert_eq!(limiter.blocked("acme-ci", t0 + secs(30)), Some(secs(30)));
        assert_eq!(
            limiter.blocked("acme-ci", t0 + secs(60) - Duration::from_millis(1)),
            Some(Duration::from_millis(1))
        );
        // Other ids are not affected.
        assert_eq!(limiter.blocked("acme-ops", t0 + secs(30)), None);
        // The first failure left the window: 10 remain, not blocked.
        assert_eq!(limiter.blocked("acme-ci", t0 + secs(60)), None);
        // One more makes 11 again (t0+1 s .. t0+10 s and now): until t0+1 s ages out.
        assert_eq!(
            limiter.record_failure("acme-ci", t0 + secs(60)),
            Some(secs(1))
        );
        assert_eq!(limiter.blocked("acme-ci", t0 + secs(61)), None);
        // A minute after the last failure nothing is on record.
        assert_eq!(limiter.blocked("acme-ci", t0 + secs(120)), None);
        assert_eq!(limiter.tracked(), 0);
    }

    #[test]
    fn a_burst_blocks_for_the_whole_window() {
        let limiter = FailureLimiter::new(10, WINDOW);
        let t0 = Instant::now();
        for _ in 0..10 {
            assert_eq!(limiter.record_failure("acme-ci", t0), None);
        }
        assert_eq!(limiter.record_failure("acme-ci", t0), Some(WINDOW));
        // A failure while blocked counts too: two must leave, both at t0.
        assert_eq!(
            limiter.record_failure("acme-ci", t0 + secs(5)),
            Some(secs(55))
        );
        assert_eq!(limiter.blocked("acme-ci", t0 + secs(59)), Some(secs(1)));
        // At t0+60 s only the one at t0+5 s is left.
        assert_eq!(limiter.blocked("acme-ci", t0 + secs(60)), None);
        assert_eq!(limiter.record_failure("acme-ci", t0 + secs(60)), None);
    }

    #[test]
    fn the_retry_is_until_enough_failures_leave_the_window() {
        let limiter = FailureLimiter::new(2, WINDOW);
        let t0 = Instant::now();
        assert_eq!(limiter.record_failure("c", t0), None);
        assert_eq!(limiter.record_failure("c", t0 + secs(10)), None);
        assert_eq!(limiter.record_failure("c", t0 + secs(20)), Some(secs(40)));
        // 4 failures: both t0 and t0+10 s must leave.
        assert_eq!(limiter.record_failure("c", t0 + secs(30)), Some(secs(40)));
        assert_eq!(limiter.blocked("c", t0 + secs(65)), Some(secs(5)));
        assert_eq!(limiter.blocked("c", t0 + secs(70)), None);
    }

    #[test]
    fn failures_recorded_out_of_order_count_by_their_instant() {
        let limiter = FailureLimiter::new(1, WINDOW);
        let t0 = Instant::now();
        assert_eq!(limiter.record_failure("c", t0 + secs(5)), None);
        // Read the clock earlier, got the lock later.
        assert_eq!(limiter.record_failure("c", t0 + secs(3)), Some(secs(60)));
        assert_eq!(limiter.blocked("c", t0 + secs(63)), None);
    }

    #[test]
    fn idle_client_ids_are_dropped_once_many_are_tracked() {
        let limiter = FailureLimiter::new(10, WINDOW);
        let t0 = Instant::now();
        for n in 0..MAX_TRACKED {
            limiter.record_failure(&format!("guess-{n}"), t0);
        }
        limiter.record_failure("recent", t0 + secs(30));
        assert_eq!(limiter.tracked(), MAX_TRACKED + 1);
        // Past the window of the guesses, the next new id drops them.
        limiter.record_failure("another", t0 + secs(61));
        assert_eq!(limiter.tracked(), 2);
        assert_eq!(limiter.blocked("recent", t0 + secs(61)), None);
    }

    #[test]
    fn long_ids_are_tracked_in_constant_space() {
        let limiter = FailureLimiter::new(0, WINDOW);
        let t0 = Instant::now();
        let id = "x".repeat(100_000);
        assert_eq!(limiter.record_failure(&id, t0), Some(WINDOW));
        assert_eq!(limiter.blocked(&id, t0 + secs(1)), Some(secs(59)));
        assert_eq!(limiter.blocked(&"x".repeat(99_999), t0), None);
    }
}
