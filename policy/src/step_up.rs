//! Step-up freshness: changing one's own second-factor settings needs a recent second factor.

/// How recently a second factor must have been passed to change 2FA settings: 5 minutes.
pub const STEP_UP_WINDOW_SECS: u64 = 5 * 60;

/// Whether a session may change second-factor settings now.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// A second factor was passed within the window.
    Fresh,
    /// Pass a second factor again first.
    StepUpRequired,
}

/// `last_second_factor_at`: when the session last passed a second factor (`None`: never); `now`
/// in the same seconds. Fresh for `at <= now < at + STEP_UP_WINDOW_SECS`, like every window.
pub fn freshness(last_second_factor_at: Option<u64>, now: u64) -> Freshness {
    match last_second_factor_at {
        // A time in the future (clock skew between nodes) is not trusted as fresh.
        Some(at) if at <= now && now - at < STEP_UP_WINDOW_SECS => Freshness::Fresh,
        _ => Freshness::StepUpRequired,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_minute_window() {
        assert_eq!(freshness(None, 1000), Freshness::StepUpRequired);
        assert_eq!(freshness(Some(1000), 1000), Freshness::Fresh);
        assert_eq!(freshness(Some(1000), 1299), Freshness::Fresh);
        // The window's last second is 1299: at + 300 is already outside.
        assert_eq!(freshness(Some(1000), 1300), Freshness::StepUpRequired);
        assert_eq!(freshness(Some(2000), 1000), Freshness::StepUpRequired);
    }
}
