//! The per-user lockout counter: consecutive failed second-factor attempts lock the second factor.

use serde::{Deserialize, Serialize};

/// NIST SP 800-63B: at most 100 consecutive failed attempts on one authenticator.
pub const NIST_MAX_FAILURES: u32 = 100;
/// Default consecutive failures before the lock.
pub const DEFAULT_MAX_FAILURES: u32 = 10;
/// Default lock duration: 15 minutes.
pub const DEFAULT_LOCK_SECS: u64 = 15 * 60;

/// How many consecutive failures lock the second factor, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LockoutPolicy {
    max_failures: u32,
    lock_secs: u64,
}

/// A lockout configuration that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LockoutError {
    /// Zero or more than [`NIST_MAX_FAILURES`].
    #[error("max_failures must be between 1 and {NIST_MAX_FAILURES} (NIST SP 800-63B), got {0}")]
    MaxFailures(u32),
    /// A zero lock duration would not lock at all.
    #[error("lock duration must be at least one second")]
    ZeroDuration,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        LockoutPolicy {
            max_failures: DEFAULT_MAX_FAILURES,
            lock_secs: DEFAULT_LOCK_SECS,
        }
    }
}

impl LockoutPolicy {
    /// A policy with `max_failures` in `1..=100` and a non-zero lock.
    pub fn new(max_failures: u32, lock_secs: u64) -> Result<Self, LockoutError> {
        if max_failures == 0 || max_failures > NIST_MAX_FAILURES {
            return Err(LockoutError::MaxFailures(max_failures));
        }
        if lock_secs == 0 {
            return Err(LockoutError::ZeroDuration);
        }
        Ok(LockoutPolicy {
            max_failures,
            lock_secs,
        })
    }

    /// Consecutive failures that lock.
    #[must_use]
    pub fn max_failures(&self) -> u32 {
        self.max_failures
    }

    /// Lock duration in seconds.
    #[must_use]
    pub fn lock_secs(&self) -> u64 {
        self.lock_secs
    }
}

/// A user's consecutive second-factor failures and current lock. Stored per user; the store applies
/// [`LockoutState::record_failure`] atomically and returns the new state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockoutState {
    /// Consecutive failures since the last success or the end of the last lock.
    pub failures: u32,
    /// When the current lock began, if the counter reached the threshold.
    pub locked_at: Option<u64>,
}

impl LockoutState {
    /// The end of the lock in force at `now`, if any.
    #[must_use]
    pub fn locked_until(&self, now: u64, policy: &LockoutPolicy) -> Option<u64> {
        let until = self.locked_at?.saturating_add(policy.lock_secs);
        (now < until).then_some(until)
    }

    /// The state after one more failed attempt at `now`. A failure after a lock has ended starts a
    /// new count; failures while locked do not extend the lock.
    #[must_use]
    pub fn record_failure(self, now: u64, policy: &LockoutPolicy) -> LockoutState {
        if self.locked_until(now, policy).is_some() {
            return self;
        }
        let failures = if self.locked_at.is_some() {
            1
        } else {
            self.failures.saturating_add(1)
        };
        let locked_at = (failures >= policy.max_failures).then_some(now);
        LockoutState {
            failures,
            locked_at,
        }
    }

    /// The state after a passed second factor: the count starts again.
    #[must_use]
    pub fn record_success(self) -> LockoutState {
        LockoutState::default()
    }

    /// Lets one attempt at the second factor be checked at `now`, or refuses it while locked.
    ///
    /// An admitted attempt is counted as a failure *before* its answer is checked, so the check and
    /// the count are one step: parallel guesses can never have more than
    /// [`LockoutPolicy::max_failures`] answers checked. A passed attempt then resets the count with
    /// [`LockoutState::record_success`]. Returns the state to store and the verdict.
    pub fn admit(self, now: u64, policy: &LockoutPolicy) -> (LockoutState, Attempt) {
        if let Some(until) = self.locked_until(now, policy) {
            return (self, Attempt::Locked { until });
        }
        let next = self.record_failure(now, policy);
        let locks_until = next.locked_until(now, policy);
        (next, Attempt::Admitted { locks_until })
    }
}

/// The verdict of [`LockoutState::admit`].
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Check the answer. It already counts as a failure; `locks_until` is set when this attempt
    /// reached the threshold, so a wrong answer locks the second factor until then.
    Admitted {
        /// End of the lock that begins if this attempt fails (seconds since the epoch).
        locks_until: Option<u64>,
    },
    /// Locked until `until` (seconds since the epoch): do not check the answer.
    Locked {
        /// End of the lock.
        until: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn configuration_above_nist_limit_is_refused() {
        assert_eq!(
            LockoutPolicy::new(101, 60),
            Err(LockoutError::MaxFailures(101))
        );
        assert_eq!(LockoutPolicy::new(0, 60), Err(LockoutError::MaxFailures(0)));
        assert_eq!(LockoutPolicy::new(5, 0), Err(LockoutError::ZeroDuration));
        assert!(LockoutPolicy::new(100, 60).is_ok());
        assert_eq!(LockoutPolicy::default().max_failures(), 10);
        assert_eq!(LockoutPolicy::default().lock_secs(), 900);
    }

    #[test]
    fn ten_failures_lock_for_fifteen_minutes() {
        let p = LockoutPolicy::default();
        let mut s = LockoutState::default();
        for i in 0..9 {
            s = s.record_failure(1000 + i, &p);
            assert_eq!(s.locked_until(1000 + i, &p), None);
        }
        s = s.record_failure(1009, &p);
        assert_eq!(s.locked_until(1009, &p), Some(1009 + 900));
        assert_eq!(s.locked_until(1009 + 899, &p), Some(1909));
        assert_eq!(s.locked_until(1909, &p), None);
        // Failing while locked does not extend the lock.
        assert_eq!(s.record_failure(1500, &p), s);
        // After the lock a fresh count starts.
        let after = s.record_failure(2000, &p);
        assert_eq!(
            after,
            LockoutState {
                failures: 1,
                locked_at: None
            }
        );
    }

    #[test]
    fn success_resets_the_count() {
        let p = LockoutPolicy::default();
        let s = LockoutState::default()
            .record_failure(1, &p)
            .record_failure(2, &p);
        assert_eq!(s.failures, 2);
        assert_eq!(s.record_success(), LockoutState::default());
    }

    #[test]
    fn admission_counts_before_the_check_and_refuses_while_locked() {
        let p = LockoutPolicy::new(3, 60).unwrap();
        let s = LockoutState::default();
        let (s, a) = s.admit(10, &p);
        assert_eq!(a, Attempt::Admitted { locks_until: None });
        let (s, _) = s.admit(10, &p);
        let (s, a) = s.admit(10, &p);
        assert_eq!(
            a,
            Attempt::Admitted {
                locks_until: Some(70)
            }
        );
        let (s2, a) = s.admit(11, &p);
        assert_eq!(a, Attempt::Locked { until: 70 });
        assert_eq!(s2, s);
        // The lock ends at exactly 70: admitted again, with a fresh count.
        let (s, a) = s.admit(70, &p);
        assert_eq!(a, Attempt::Admitted { locks_until: None });
        assert_eq!(s.failures, 1);
    }

    proptest! {
        /// However many attempts arrive within one lock period, at most `max` are admitted.
        #[test]
        fn at_most_max_admitted_per_lock(max in 1u32..=100, n in 0usize..300) {
            let p = LockoutPolicy::new(max, 900).unwrap();
            let mut s = LockoutState::default();
            let mut admitted = 0u32;
            for _ in 0..n {
                let (next, a) = s.admit(5, &p);
                s = next;
                if matches!(a, Attempt::Admitted { .. }) { admitted += 1; }
            }
            prop_assert!(admitted <= max);
        }

        /// Whatever the sequence, `max` consecutive failures with no success in between always lock.
        #[test]
        fn consecutive_failures_always_lock(max in 1u32..=100, events in proptest::collection::vec(any::<bool>(), 0..300)) {
            let p = LockoutPolicy::new(max, 900).unwrap();
            let mut s = LockoutState::default();
            let mut run = 0u32;
            for (i, fail) in events.iter().enumerate() {
                let now = i as u64; // all within one lock period
                if *fail { s = s.record_failure(now, &p); run += 1; } else if s.locked_until(now, &p).is_none() { s = s.record_success(); run = 0; }
                if run >= max { prop_assert!(s.locked_until(now, &p).is_some()); }
            }
        }
    }
}
