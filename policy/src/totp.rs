//! RFC 6238 TOTP acceptance (SHA-1, 6 digits, 30 s) with skew and replay protection.
//!
//! The store keeps each user's last accepted step and updates it with a compare-and-swap, so the
//! "at most once per step" rule holds across concurrent logins; this function decides which step a
//! code belongs to and whether that step is still acceptable.

use totp_rs::{Algorithm, Builder, Totp};

/// TOTP step length in seconds.
pub const STEP_SECS: u64 = 30;
/// Digits per code.
pub const DIGITS: u8 = 6;
/// Bytes of a generated TOTP secret (160 bits, RFC 4226's recommendation).
pub const SECRET_LEN: usize = 20;

/// The result of [`verify`].
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TotpOutcome {
    /// The code matches `step`, which is later than the last accepted step.
    Accepted {
        /// The matched time step; the caller stores it as the user's last accepted step.
        step: u64,
    },
    /// The code matches a step already used (or older than the last used one).
    Replayed,
    /// The code matches no step in the window.
    Invalid,
    /// Not a 6-digit code.
    Malformed,
}

/// A TOTP secret that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("TOTP secret must be at least 128 bits")]
pub struct SecretTooShort;

fn totp(secret: &[u8], skew: u8) -> Result<Totp, SecretTooShort> {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS)
        .with_step_duration(STEP_SECS)
        .with_skew(u16::from(skew))
        .with_secret(secret.to_vec())
        .build()
        .map_err(|_| SecretTooShort)
}

/// Checks `code` at `now` within `skew` steps either side, refusing steps at or before
/// `last_accepted_step`.
pub fn verify(
    secret: &[u8],
    code: &str,
    now: u64,
    skew: u8,
    last_accepted_step: Option<u64>,
) -> Result<TotpOutcome, SecretTooShort> {
    let totp = totp(secret, skew)?;
    let Some(code) = crate::code::normalize_code(code) else {
        return Ok(TotpOutcome::Malformed);
    };
    let origin = now / STEP_SECS;
    let window = origin.saturating_sub(u64::from(skew))..=origin.saturating_add(u64::from(skew));
    // Check every step of the window (not just the first match) so a fresh step is found even if an
    // older, already-used step happens to produce the same digits.
    let mut replayed = false;
    for step in window {
        if totp.generate(step * STEP_SECS).to_string() == code {
            if last_accepted_step.is_some_and(|last| step <= last) {
                replayed = true;
            } else {
                return Ok(TotpOutcome::Accepted { step });
            }
        }
    }
    Ok(if replayed {
        TotpOutcome::Replayed
    } else {
        TotpOutcome::Invalid
    })
}

/// The code for `time`, as an authenticator app would show it (used to display and test enrolment).
pub fn code_at(secret: &[u8], time: u64) -> Result<String, SecretTooShort> {
    Ok(totp(secret, 0)?.generate(time).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// RFC 6238 Appendix B, SHA-1 rows, truncated to 6 digits (the last 6 of the 8-digit values).
    const RFC6238_SHA1: &[(u64, &str)] = &[
        (59, "94287082"),
        (1_111_111_109, "07081804"),
        (1_111_111_111, "14050471"),
        (1_234_567_890, "89005924"),
        (2_000_000_000, "69279037"),
        (20_000_000_000, "65353130"),
    ];
    const RFC_SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn rfc6238_appendix_b_vectors() {
        for (time, eight) in RFC6238_SHA1 {
            let six = &eight[2..];
            assert_eq!(code_at(RFC_SECRET, *time).unwrap(), six, "time {time}");
            assert_eq!(
                verify(RFC_SECRET, six, *time, 0, None).unwrap(),
                TotpOutcome::Accepted { step: time / 30 }
            );
        }
    }

    #[test]
    fn skew_window() {
        let code = code_at(RFC_SECRET, 59).unwrap(); // step 1
        assert_eq!(
            verify(RFC_SECRET, &code, 89, 1, None).unwrap(),
            TotpOutcome::Accepted { step: 1 }
        );
        assert_eq!(
            verify(RFC_SECRET, &code, 119, 1, None).unwrap(),
            TotpOutcome::Invalid
        );
        assert_eq!(
            verify(RFC_SECRET, &code, 119, 2, None).unwrap(),
            TotpOutcome::Accepted { step: 1 }
        );
        assert_eq!(
            verify(RFC_SECRET, &code, 89, 0, None).unwrap(),
            TotpOutcome::Invalid
        );
    }

    #[test]
    fn a_step_is_accepted_once() {
        let code = code_at(RFC_SECRET, 1_234_567_890).unwrap();
        let step = 1_234_567_890 / 30;
        assert_eq!(
            verify(RFC_SECRET, &code, 1_234_567_890, 1, Some(step)).unwrap(),
            TotpOutcome::Replayed
        );
        assert_eq!(
            verify(RFC_SECRET, &code, 1_234_567_890, 1, Some(step + 1)).unwrap(),
            TotpOutcome::Replayed
        );
        assert_eq!(
            verify(RFC_SECRET, &code, 1_234_567_890, 1, Some(step - 1)).unwrap(),
            TotpOutcome::Accepted { step }
        );
    }

    #[test]
    fn malformed_and_short_secret() {
        assert_eq!(
            verify(RFC_SECRET, "12a456", 59, 1, None).unwrap(),
            TotpOutcome::Malformed
        );
        assert_eq!(
            verify(RFC_SECRET, "", 59, 1, None).unwrap(),
            TotpOutcome::Malformed
        );
        assert_eq!(verify(b"short", "123456", 59, 1, None), Err(SecretTooShort));
    }

    proptest! {
        /// Replaying an accepted code, at any later time, is never accepted again.
        #[test]
        fn accepted_step_never_accepted_again(secret in proptest::collection::vec(any::<u8>(), 16..40), t in 0u64..4_000_000_000, later in 0u64..200, skew in 0u8..=4) {
            let code = code_at(&secret, t).unwrap();
            let TotpOutcome::Accepted { step } = verify(&secret, &code, t, skew, None).unwrap() else {
                return Err(TestCaseError::fail("own code refused"));
            };
            let again = verify(&secret, &code, t + later, skew, Some(step)).unwrap();
            let reaccepted = matches!(again, TotpOutcome::Accepted { step: s } if s <= step);
            prop_assert!(!reaccepted);
        }
    }
}
