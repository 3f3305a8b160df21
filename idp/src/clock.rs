//! Time as a dependency: handlers read `now` from the state's clock, tests set it.
//!
//! # Windows
//! Time is whole seconds since the Unix epoch. Everything that is valid for N seconds from t —
//! an authorization code, an access or ID token (`exp`), a refresh token, a session, a login flow,
//! a one-time code, a lockout, the step-up window, a revocation record (`until`), a sign-in for
//! `max_age` — is valid for `t <= now < t + N` and over from `now >= t + N` on. So a check reads
//! `now < expires_at` (valid) or `expires_at <= now` (over), never `<=` on the valid side; a
//! window of 0 seconds is never open (`max_age=0` always asks for a new sign-in).

use std::sync::atomic::{AtomicU64, Ordering};

/// A source of the current time in seconds since the Unix epoch.
pub trait Clock: Send + Sync + 'static {
    /// Now.
    fn now(&self) -> u64;
}

/// The system clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

/// A clock that tests move by hand.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// A clock at `now`.
    #[must_use]
    pub fn at(now: u64) -> Self {
        ManualClock(AtomicU64::new(now))
    }

    /// Moves the clock forward.
    pub fn advance(&self, secs: u64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}
