//! How long something has typically taken lately: an exponential moving average of durations
//! (weight 1/8), lock-free. PAM decoys wait this long so that a name that is no user answers about
//! as slowly as a real one whose answer needed a code send or a call to Duo.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A moving average of durations, in microseconds; zero before the first.
#[derive(Debug, Default)]
pub struct TypicalTime(AtomicU64);

impl TypicalTime {
    /// Adds the time since `started`. Races between writers lose an update, which only slows the
    /// average down.
    pub fn record_since(&self, started: Instant) {
        let took = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let old = self.0.load(Ordering::Relaxed);
        let new = if old == 0 {
            took
        } else {
            old - old / 8 + took / 8
        };
        self.0.store(new, Ordering::Relaxed);
    }

    /// The average (zero before the first record).
    #[must_use]
    pub fn get(&self) -> Duration {
        Duration::from_micros(self.0.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_at_zero_then_follows_what_it_records() {
        let t = TypicalTime::default();
        assert_eq!(t.get(), Duration::ZERO);
        t.record_since(Instant::now() - Duration::from_millis(80));
        let first = t.get();
        assert!(first >= Duration::from_millis(80), "{first:?}");
        for _ in 0..50 {
            t.record_since(Instant::now());
        }
        assert!(
            t.get() < first / 10,
            "{:?} moves toward the new times",
            t.get()
        );
    }
}
