//! Throttling of password guesses for one account (NIST SP 800-63B §5.2.2): the first few failures
//! are free, then each failure doubles the wait before the next try (capped), and a run of
//! [`ThrottlePolicy::max_failures`] consecutive failures locks password sign-in for the lock time.
//! After that hard stop the count is kept: each later try is one guess per lock time, until a
//! correct password resets the count (or the record is forgotten after
//! [`HARD_STOP_MEMORY_SECS`] of quiet).
//!
//! Like [`crate::lockout`], a try is counted *before* the password is checked, so parallel guesses
//! cannot get more checks than the throttle allows.

use crate::lockout::NIST_MAX_FAILURES;
use serde::{Deserialize, Serialize};

/// Default failures before the first delay.
pub const DEFAULT_FREE_FAILURES: u32 = 5;
/// Default longest delay between two tries: 5 minutes.
pub const DEFAULT_MAX_DELAY_SECS: u64 = 300;
/// Default consecutive failures that lock password sign-in.
pub const DEFAULT_MAX_FAILURES: u32 = 100;
/// Default length of that lock: 1 hour.
pub const DEFAULT_LOCK_SECS: u64 = 3600;

/// How long an account that reached the hard stop is remembered without any try: 30 days.
pub const HARD_STOP_MEMORY_SECS: u64 = 30 * 86_400;

/// How password failures of one account are throttled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ThrottlePolicy {
    free_failures: u32,
    max_delay_secs: u64,
    max_failures: u32,
    lock_secs: u64,
}

/// A throttle configuration that cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ThrottleError {
    /// The hard stop must be 1 to 100 failures, and above the free failures.
    #[error(
        "the failures that lock must be 1 to {NIST_MAX_FAILURES} (NIST SP 800-63B) and more than the free failures, got {0}"
    )]
    MaxFailures(u32),
    /// A zero delay cap or lock would not throttle.
    #[error("delays and locks must be at least one second")]
    Zero,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        ThrottlePolicy {
            free_failures: DEFAULT_FREE_FAILURES,
            max_delay_secs: DEFAULT_MAX_DELAY_SECS,
            max_failures: DEFAULT_MAX_FAILURES,
            lock_secs: DEFAULT_LOCK_SECS,
        }
    }
}

impl ThrottlePolicy {
    /// `free_failures` tries without delay; then waits of 1, 2, 4 … seconds, at most
    /// `max_delay_secs`; `max_failures` (at most 100) consecutive failures lock for `lock_secs`.
    pub fn new(
        free_failures: u32,
        max_delay_secs: u64,
        max_failures: u32,
        lock_secs: u64,
    ) -> Result<ThrottlePolicy, ThrottleError> {
        if max_failures == 0 || max_failures > NIST_MAX_FAILURES || max_failures <= free_failures {
            return Err(ThrottleError::MaxFailures(max_failures));
        }
        if max_delay_secs == 0 || lock_secs == 0 {
            return Err(ThrottleError::Zero);
        }
        Ok(ThrottlePolicy {
            free_failures,
            max_delay_secs,
            max_failures,
            lock_secs,
        })
    }

    /// The wait after `failures` consecutive failures, in seconds (0 while they are free).
    #[must_use]
    pub fn delay_after(&self, failures: u32) -> u64 {
        if failures < self.free_failures {
            return 0;
        }
        let doublings = failures - self.free_failures;
        1u64.checked_shl(doublings)
            .unwrap_or(u64::MAX)
            .min(self.max_delay_secs)
    }

    /// Consecutive failures that lock.
    #[must_use]
    pub fn max_failures(&self) -> u32 {
        self.max_failures
    }

    /// Length of the lock, seconds.
    #[must_use]
    pub fn lock_secs(&self) -> u64 {
        self.lock_secs
    }
}

/// One account's consecutive password failures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThrottleState {
    /// Consecutive failures (tries counted before their check).
    pub failures: u32,
    /// When the last try was counted.
    pub last_at: u64,
}

/// The verdict of [`ThrottleState::admit`].
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Throttle {
    /// Check the password; the try already counts as a failure until a success resets it.
    Admitted,
    /// Too soon after the last failure: try again at `retry_at` (seconds since the epoch).
    Wait {
        /// When the next try is allowed.
        retry_at: u64,
    },
    /// Password sign-in is locked until `until` (seconds since the epoch).
    Locked {
        /// End of the lock.
        until: u64,
    },
}

impl ThrottleState {
    /// Whether a try at `now` would be refused, and how (without counting anything).
    #[must_use]
    pub fn refusal(&self, now: u64, policy: &ThrottlePolicy) -> Option<Throttle> {
        if self.failures >= policy.max_failures {
            let until = self.last_at.saturating_add(policy.lock_secs);
            return (now < until).then_some(Throttle::Locked { until });
        }
        let retry_at = self
            .last_at
            .saturating_add(policy.delay_after(self.failures));
        (self.failures > 0 && now < retry_at).then_some(Throttle::Wait { retry_at })
    }

    /// Counts one try at `now` if allowed. Returns the state to store and the verdict; a refused
    /// try is not counted. Past the hard stop the count stays, so a failed try locks again at once.
    pub fn admit(self, now: u64, policy: &ThrottlePolicy) -> (ThrottleState, Throttle) {
        if let Some(refusal) = self.refusal(now, policy) {
            return (self, refusal);
        }
        (
            ThrottleState {
                failures: self.failures.saturating_add(1),
                last_at: now,
            },
            Throttle::Admitted,
        )
    }

    /// When this state may be deleted: once no wait or lock is left, and for an account past the
    /// hard stop only after [`HARD_STOP_MEMORY_SECS`] without a try.
    #[must_use]
    pub fn idle_at(&self, policy: &ThrottlePolicy) -> u64 {
        let keep = if self.failures >= policy.max_failures {
            HARD_STOP_MEMORY_SECS.max(policy.lock_secs)
        } else {
            policy.lock_secs.max(policy.max_delay_secs)
        };
        self.last_at.saturating_add(keep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn policy_limits() {
        assert_eq!(
            ThrottlePolicy::new(5, 300, 101, 60),
            Err(ThrottleError::MaxFailures(101))
        );
        assert_eq!(
            ThrottlePolicy::new(5, 300, 5, 60),
            Err(ThrottleError::MaxFailures(5))
        );
        assert_eq!(ThrottlePolicy::new(5, 0, 100, 60), Err(ThrottleError::Zero));
        let p = ThrottlePolicy::default();
        assert_eq!(
            (0..8).map(|n| p.delay_after(n)).collect::<Vec<_>>(),
            vec![0, 0, 0, 0, 0, 1, 2, 4]
        );
        assert_eq!(p.delay_after(40), 300);
        assert_eq!(p.delay_after(u32::MAX), 300);
    }

    #[test]
    fn free_tries_then_doubling_waits_then_a_lock() {
        let p = ThrottlePolicy::new(2, 8, 6, 1000).unwrap();
        let mut s = ThrottleState::default();
        for _ in 0..2 {
            let (n, t) = s.admit(100, &p);
            assert_eq!(t, Throttle::Admitted);
            s = n;
        }
        // Two failures at 100: the next try waits 1 s.
        assert_eq!(s.admit(100, &p).1, Throttle::Wait { retry_at: 101 });
        let (s, _) = s.admit(101, &p);
        assert_eq!(s.admit(102, &p).1, Throttle::Wait { retry_at: 103 });
        let (s, _) = s.admit(103, &p);
        let (s, _) = s.admit(107, &p);
        assert_eq!(s.failures, 5);
        assert_eq!(s.admit(114, &p).1, Throttle::Wait { retry_at: 115 });
        let (s, _) = s.admit(115, &p);
        assert_eq!(s.failures, 6);
        assert_eq!(s.admit(500, &p).1, Throttle::Locked { until: 1115 });
        // After the hard stop: one try per lock time, until a right password resets the count.
        let (s, t) = s.admit(1115, &p);
        assert_eq!(t, Throttle::Admitted);
        assert_eq!(s.admit(1116, &p).1, Throttle::Locked { until: 2115 });
        assert_eq!(s.idle_at(&p), 1115 + HARD_STOP_MEMORY_SECS);
    }

    proptest! {
        /// No sequence of tries gets more than `max_failures` checks before the lock ends.
        #[test]
        fn at_most_max_failures_checked_while_locked(times in proptest::collection::vec(0u64..2000, 0..400)) {
            let p = ThrottlePolicy::default();
            let mut s = ThrottleState::default();
            let mut sorted = times;
            sorted.sort_unstable();
            let mut admitted = 0u32;
            for now in sorted {
                let (n, t) = s.admit(now, &p);
                s = n;
                if t == Throttle::Admitted { admitted += 1; }
            }
            // 2000 s is within the first lock (3600 s), so the lock is never passed.
            prop_assert!(admitted <= p.max_failures());
        }
    }
}
