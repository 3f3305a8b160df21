//! The SMS/Email one-time-code challenge: a small state machine driven by [`CodeChallenge::advance`].
//!
//! The caller generates the 6-digit code from a CSPRNG, keeps only its keyed digest (this crate never
//! sees the code or the key) and passes digests in. A wrong try here is also a failure for the user's
//! [`crate::lockout::LockoutState`]; a resend gives the new code its own 5 tries but never touches
//! that per-user counter.

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

/// Number of digits in a code.
pub const CODE_DIGITS: usize = 6;
/// A code is valid for 2 minutes: the default, and the most a company may configure
/// (DESIGN §9 item 3).
pub const CODE_TTL_SECS: u64 = 120;
/// The shortest validity a code may be given, in seconds.
pub const MIN_CODE_TTL_SECS: u64 = 5;
/// Wrong tries allowed per code.
pub const MAX_WRONG_TRIES: u8 = 5;
/// Minimum wait between two sends of one challenge.
pub const RESEND_INTERVAL_SECS: u64 = 30;
/// Codes one challenge may send (the first one included).
pub const MAX_SENDS: u8 = 5;

/// A keyed digest of a code (computed by the caller, e.g. HMAC-SHA-256).
pub type CodeDigest = [u8; 32];

/// Where a challenge is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CodeState {
    /// Waiting for the code.
    Pending,
    /// The code was accepted; the challenge is spent.
    Accepted,
    /// The current code had [`MAX_WRONG_TRIES`] wrong tries; only a new code helps.
    Exhausted,
}

/// One pending SMS/Email code step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeChallenge {
    digest: CodeDigest,
    issued_at: u64,
    wrong_tries: u8,
    sends: u8,
    state: CodeState,
    /// How long each code of this challenge is valid, seconds (records from before it existed
    /// read as [`CODE_TTL_SECS`]).
    #[serde(default = "default_ttl")]
    ttl_secs: u64,
}

fn default_ttl() -> u64 {
    CODE_TTL_SECS
}

/// Something the user did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeInput {
    /// Submitted a code, given as its digest.
    Submit(CodeDigest),
    /// Asked for a new code; the digest is the new code's, which the caller delivers if accepted.
    Resend(CodeDigest),
}

/// What happened.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeOutcome {
    /// Right code, in time, first use.
    Accepted,
    /// Wrong code; `tries_left` more for this code.
    Wrong {
        /// Tries left for this code.
        tries_left: u8,
    },
    /// The code is older than its validity (at most [`CODE_TTL_SECS`]); ask for a new one.
    Expired,
    /// This code had its [`MAX_WRONG_TRIES`]; ask for a new one.
    TooManyTries,
    /// The challenge was already passed.
    AlreadyUsed,
    /// A new code replaces the old one; valid until `expires_at`.
    Resent {
        /// Expiry of the new code.
        expires_at: u64,
    },
    /// Resend refused: wait until `retry_at`.
    ResendTooSoon {
        /// When a resend is allowed.
        retry_at: u64,
    },
    /// Resend refused: this challenge sent [`MAX_SENDS`] codes; start the login again.
    ResendLimit,
}

impl CodeOutcome {
    /// Whether this outcome is a failed guess that counts toward the user's lockout.
    #[must_use]
    pub fn is_failed_guess(self) -> bool {
        matches!(self, CodeOutcome::Wrong { .. } | CodeOutcome::TooManyTries)
    }
}

impl CodeChallenge {
    /// A challenge whose first code (digest `digest`) was sent at `now`, valid for
    /// [`CODE_TTL_SECS`].
    #[must_use]
    pub fn issue(digest: CodeDigest, now: u64) -> CodeChallenge {
        Self::issue_for(digest, now, CODE_TTL_SECS)
    }

    /// Like [`CodeChallenge::issue`], with codes valid for `ttl_secs` seconds, kept within
    /// [`MIN_CODE_TTL_SECS`]..=[`CODE_TTL_SECS`] (a longer validity is never granted).
    #[must_use]
    pub fn issue_for(digest: CodeDigest, now: u64, ttl_secs: u64) -> CodeChallenge {
        CodeChallenge {
            digest,
            issued_at: now,
            wrong_tries: 0,
            sends: 1,
            state: CodeState::Pending,
            ttl_secs: ttl_secs.clamp(MIN_CODE_TTL_SECS, CODE_TTL_SECS),
        }
    }

    /// When the current code expires.
    #[must_use]
    pub fn expires_at(&self) -> u64 {
        self.issued_at
            .saturating_add(self.ttl_secs.min(CODE_TTL_SECS))
    }

    /// Where the challenge is.
    #[must_use]
    pub fn state(&self) -> CodeState {
        self.state
    }

    /// Wrong tries on the current code.
    #[must_use]
    pub fn wrong_tries(&self) -> u8 {
        self.wrong_tries
    }

    /// Applies one input at `now`.
    pub fn advance(&mut self, input: CodeInput, now: u64) -> CodeOutcome {
        match input {
            CodeInput::Submit(digest) => self.submit(&digest, now),
            CodeInput::Resend(digest) => self.resend(digest, now),
        }
    }

    fn submit(&mut self, digest: &CodeDigest, now: u64) -> CodeOutcome {
        match self.state {
            CodeState::Accepted => return CodeOutcome::AlreadyUsed,
            CodeState::Exhausted => return CodeOutcome::TooManyTries,
            CodeState::Pending => {}
        }
        if now >= self.expires_at() {
            return CodeOutcome::Expired;
        }
        if bool::from(self.digest.ct_eq(digest)) {
            self.state = CodeState::Accepted;
            return CodeOutcome::Accepted;
        }
        self.wrong_tries = self.wrong_tries.saturating_add(1);
        if self.wrong_tries >= MAX_WRONG_TRIES {
            self.state = CodeState::Exhausted;
            return CodeOutcome::TooManyTries;
        }
        CodeOutcome::Wrong {
            tries_left: MAX_WRONG_TRIES - self.wrong_tries,
        }
    }

    fn resend(&mut self, digest: CodeDigest, now: u64) -> CodeOutcome {
        if self.state == CodeState::Accepted {
            return CodeOutcome::AlreadyUsed;
        }
        if self.sends >= MAX_SENDS {
            return CodeOutcome::ResendLimit;
        }
        let retry_at = self.issued_at.saturating_add(RESEND_INTERVAL_SECS);
        if now < retry_at {
            return CodeOutcome::ResendTooSoon { retry_at };
        }
        *self = CodeChallenge {
            digest,
            issued_at: now,
            wrong_tries: 0,
            sends: self.sends + 1,
            state: CodeState::Pending,
            ttl_secs: self.ttl_secs,
        };
        CodeOutcome::Resent {
            expires_at: self.expires_at(),
        }
    }
}

/// Normalises what a person typed (spaces and dashes dropped) into a 6-digit code, or `None`.
#[must_use]
pub fn normalize_code(input: &str) -> Option<String> {
    let code: String = input
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '\t'))
        .collect();
    (code.len() == CODE_DIGITS && code.bytes().all(|b| b.is_ascii_digit())).then_some(code)
}

/// Maps a uniformly random `u32` to a 6-digit code, or `None` when the value falls in the biased
/// tail and the caller must draw again (rejection sampling keeps every code equally likely).
#[must_use]
pub fn code_from_random(r: u32) -> Option<String> {
    const SPACE: u32 = 1_000_000;
    const LIMIT: u32 = u32::MAX - (u32::MAX % SPACE);
    (r < LIMIT).then(|| format!("{:06}", r % SPACE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configured_validity_is_kept_within_bounds() {
        let d = [1u8; 32];
        assert_eq!(CodeChallenge::issue_for(d, 100, 10).expires_at(), 110);
        assert_eq!(
            CodeChallenge::issue_for(d, 100, 3600).expires_at(),
            100 + CODE_TTL_SECS,
            "never longer than the invariant"
        );
        assert_eq!(
            CodeChallenge::issue_for(d, 100, 0).expires_at(),
            100 + MIN_CODE_TTL_SECS
        );
        let mut c = CodeChallenge::issue_for(d, 100, 10);
        assert_eq!(c.advance(CodeInput::Submit(d), 110), CodeOutcome::Expired);
        // A resent code keeps the challenge's validity.
        let mut c2 = CodeChallenge::issue_for(d, 100, 10);
        assert_eq!(
            c2.advance(CodeInput::Resend([2; 32]), 130),
            CodeOutcome::Resent { expires_at: 140 }
        );
    }
    use proptest::prelude::*;

    const RIGHT: CodeDigest = [7; 32];
    const WRONG: CodeDigest = [9; 32];

    #[test]
    fn right_code_in_time_is_accepted_once() {
        let mut c = CodeChallenge::issue(RIGHT, 100);
        assert_eq!(
            c.advance(CodeInput::Submit(RIGHT), 219),
            CodeOutcome::Accepted
        );
        assert_eq!(
            c.advance(CodeInput::Submit(RIGHT), 220),
            CodeOutcome::AlreadyUsed
        );
    }

    #[test]
    fn code_expires_after_two_minutes() {
        let mut c = CodeChallenge::issue(RIGHT, 100);
        assert_eq!(c.expires_at(), 220);
        assert_eq!(
            c.advance(CodeInput::Submit(RIGHT), 220),
            CodeOutcome::Expired
        );
        assert!(!CodeOutcome::Expired.is_failed_guess());
    }

    #[test]
    fn fifth_wrong_try_exhausts_the_code() {
        let mut c = CodeChallenge::issue(RIGHT, 0);
        for left in (1..MAX_WRONG_TRIES).rev() {
            assert_eq!(
                c.advance(CodeInput::Submit(WRONG), 1),
                CodeOutcome::Wrong { tries_left: left }
            );
        }
        assert_eq!(
            c.advance(CodeInput::Submit(WRONG), 1),
            CodeOutcome::TooManyTries
        );
        assert_eq!(
            c.advance(CodeInput::Submit(RIGHT), 1),
            CodeOutcome::TooManyTries
        );
        assert!(CodeOutcome::TooManyTries.is_failed_guess());
    }

    #[test]
    fn resend_is_rate_limited_and_replaces_the_code() {
        let mut c = CodeChallenge::issue(RIGHT, 0);
        assert_eq!(
            c.advance(CodeInput::Resend(WRONG), 29),
            CodeOutcome::ResendTooSoon { retry_at: 30 }
        );
        assert_eq!(
            c.advance(CodeInput::Resend(WRONG), 30),
            CodeOutcome::Resent { expires_at: 150 }
        );
        // The old code no longer works, the new one does.
        assert_eq!(
            c.advance(CodeInput::Submit(RIGHT), 31),
            CodeOutcome::Wrong { tries_left: 4 }
        );
        assert_eq!(
            c.advance(CodeInput::Submit(WRONG), 32),
            CodeOutcome::Accepted
        );
    }

    #[test]
    fn at_most_five_sends_per_challenge() {
        let mut c = CodeChallenge::issue(RIGHT, 0);
        for i in 1..u64::from(MAX_SENDS) {
            assert!(matches!(
                c.advance(CodeInput::Resend(RIGHT), i * 30),
                CodeOutcome::Resent { .. }
            ));
        }
        assert_eq!(
            c.advance(CodeInput::Resend(RIGHT), 10_000),
            CodeOutcome::ResendLimit
        );
    }

    #[test]
    fn normalize_and_generate() {
        assert_eq!(normalize_code(" 123 456 "), Some("123456".into()));
        assert_eq!(normalize_code("12345"), None);
        assert_eq!(normalize_code("12345a"), None);
        assert_eq!(normalize_code("１２３４５６"), None);
        assert_eq!(code_from_random(42), Some("000042".into()));
        assert_eq!(code_from_random(u32::MAX), None);
        assert_eq!(code_from_random(1_234_567), Some("234567".into()));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Submit(bool),
        Resend,
        Wait(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            any::<bool>().prop_map(Op::Submit),
            Just(Op::Resend),
            (0u64..200).prop_map(Op::Wait)
        ]
    }

    proptest! {
        /// No sequence of inputs accepts a code twice, after expiry, after its 5th wrong try, or a
        /// code that is not the current one.
        #[test]
        fn code_invariants(ops in proptest::collection::vec(op(), 0..60)) {
            let mut now = 0u64;
            let mut generation = 0u8;
            let digest = |g: u8| [g; 32];
            let mut c = CodeChallenge::issue(digest(0), now);
            let mut accepted = 0;
            for op in ops {
                match op {
                    Op::Wait(s) => now += s,
                    Op::Resend => {
                        let before = c.clone();
                        if let CodeOutcome::Resent { .. } = c.advance(CodeInput::Resend(digest(generation + 1)), now) {
                            generation += 1;
                            prop_assert_eq!(c.wrong_tries(), 0);
                        } else {
                            prop_assert_eq!(&c, &before);
                        }
                    }
                    Op::Submit(right) => {
                        let d = if right { digest(generation) } else { [255; 32] };
                        let before = c.clone();
                        let out = c.advance(CodeInput::Submit(d), now);
                        if out == CodeOutcome::Accepted {
                            accepted += 1;
                            prop_assert!(right);
                            prop_assert!(now < before.expires_at());
                            prop_assert!(before.wrong_tries() < MAX_WRONG_TRIES);
                            prop_assert_eq!(before.state(), CodeState::Pending);
                        }
                    }
                }
                prop_assert!(c.wrong_tries() <= MAX_WRONG_TRIES);
            }
            prop_assert!(accepted <= 1);
        }
    }
}
