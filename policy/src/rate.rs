//! Sliding-window limits on events: messages sent to one user, failures from one source address,
//! sign-in flows started from one source address. One small state per key, applied atomically by
//! the caller (the store for per-user limits, a map in memory for per-source ones).
//!
//! Time rule: an event at `t` counts while `now < t + window_secs`.

use serde::{Deserialize, Serialize};

/// At most `max` events per `window_secs` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    max: u32,
    window_secs: u64,
}

/// A limit that cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RateLimitError {
    /// Zero events allowed, or more than [`MAX_EVENTS`].
    #[error("the number of events must be between 1 and {MAX_EVENTS}, got {0}")]
    Max(u32),
    /// A zero-length window.
    #[error("the window must be at least one second")]
    ZeroWindow,
}

/// The largest `max` a [`RateLimit`] accepts: the window keeps one timestamp per event.
pub const MAX_EVENTS: u32 = 10_000;

impl RateLimit {
    /// `max` events (1 to [`MAX_EVENTS`]) per `window_secs` seconds (at least 1).
    pub fn new(max: u32, window_secs: u64) -> Result<RateLimit, RateLimitError> {
        if max == 0 || max > MAX_EVENTS {
            return Err(RateLimitError::Max(max));
        }
        if window_secs == 0 {
            return Err(RateLimitError::ZeroWindow);
        }
        Ok(RateLimit { max, window_secs })
    }

    /// Events allowed per window.
    #[must_use]
    pub fn max(&self) -> u32 {
        self.max
    }

    /// The window, in seconds.
    #[must_use]
    pub fn window_secs(&self) -> u64 {
        self.window_secs
    }
}

/// The recent events of one key (oldest first, at most `max` of them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateWindow {
    events: Vec<u64>,
}

/// The verdict of [`RateWindow::admit`].
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateAdmission {
    /// The event is allowed and counted.
    Admitted,
    /// Over the limit: the next event is allowed at `retry_at` (seconds since the epoch).
    Refused {
        /// When the oldest counted event leaves the window.
        retry_at: u64,
    },
}

impl RateWindow {
    fn live(&self, now: u64, limit: &RateLimit) -> impl Iterator<Item = u64> + '_ {
        let window = limit.window_secs;
        self.events
            .iter()
            .copied()
            .filter(move |t| now < t.saturating_add(window))
    }

    /// When the next event would be allowed, if not now (nothing is counted).
    #[must_use]
    pub fn refused_until(&self, now: u64, limit: &RateLimit) -> Option<u64> {
        let live: Vec<u64> = self.live(now, limit).collect();
        let over = live.len() >= limit.max as usize;
        over.then(|| {
            live.first()
                .map_or(now, |t| t.saturating_add(limit.window_secs))
        })
    }

    /// Counts one event at `now` if the limit allows it. Returns the state to store and the verdict;
    /// a refused event is not counted.
    pub fn admit(self, now: u64, limit: &RateLimit) -> (RateWindow, RateAdmission) {
        if let Some(retry_at) = self.refused_until(now, limit) {
            return (self, RateAdmission::Refused { retry_at });
        }
        let mut events: Vec<u64> = self.live(now, limit).collect();
        events.push(now);
        (RateWindow { events }, RateAdmission::Admitted)
    }

    /// When this state stops mattering (every counted event has left the window): it may then be
    /// deleted.
    #[must_use]
    pub fn idle_at(&self, limit: &RateLimit) -> u64 {
        self.events
            .last()
            .map_or(0, |t| t.saturating_add(limit.window_secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn limits_are_checked() {
        assert_eq!(RateLimit::new(0, 1), Err(RateLimitError::Max(0)));
        assert_eq!(RateLimit::new(10_001, 1), Err(RateLimitError::Max(10_001)));
        assert_eq!(RateLimit::new(1, 0), Err(RateLimitError::ZeroWindow));
    }

    #[test]
    fn ten_per_fifteen_minutes() {
        let l = RateLimit::new(10, 900).unwrap();
        let mut w = RateWindow::default();
        for i in 0..10 {
            let (next, a) = w.admit(100 + i, &l);
            assert_eq!(a, RateAdmission::Admitted);
            w = next;
        }
        let (w, a) = w.admit(120, &l);
        assert_eq!(a, RateAdmission::Refused { retry_at: 1000 });
        assert_eq!(w.refused_until(999, &l), Some(1000));
        // At exactly 100 + 900 the first event leaves the window.
        let (w, a) = w.admit(1000, &l);
        assert_eq!(a, RateAdmission::Admitted);
        assert_eq!(w.idle_at(&l), 1900);
    }

    proptest! {
        /// No window of `window_secs` seconds ever holds more than `max` admitted events.
        #[test]
        fn never_more_than_max_per_window(max in 1u32..20, window in 1u64..50, gaps in proptest::collection::vec(0u64..10, 0..200)) {
            let l = RateLimit::new(max, window).unwrap();
            let mut w = RateWindow::default();
            let mut now = 0;
            let mut admitted = Vec::new();
            for g in gaps {
                now += g;
                let (next, a) = w.admit(now, &l);
                w = next;
                if a == RateAdmission::Admitted { admitted.push(now); }
            }
            for (i, t) in admitted.iter().enumerate() {
                let in_window = admitted[i..].iter().filter(|u| **u < t + window).count();
                prop_assert!(in_window <= max as usize);
            }
        }
    }
}
