//! What Padlock makes of Duo's answers (Duo Auth API v2: `preauth`, `auth`, `auth_status`). Duo
//! is a second factor only when the user answered it: an approved push or an accepted passcode.
//! Duo's own "bypass" — `allow` at preauth, or `status: bypass` on an auth — is a per-user way past
//! the second factor set outside Padlock, so it is never taken as one (DESIGN §2 rule 1).

use crate::decision::{Factor, Subject, resolve_factor};
use crate::tenant::{Method, TwoFactorPolicy};
use serde::{Deserialize, Serialize};

/// Longest wait for one push, in seconds, before Padlock counts it as unanswered (Duo's own push
/// timeout is 60 s as well).
pub const PUSH_TIMEOUT_SECS: u64 = 60;

/// Duo's `preauth` result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PreauthResult {
    /// The user is enrolled: authenticate them.
    Auth,
    /// Duo would let the user in without a factor (bypass status, or an "allow" policy).
    Allow,
    /// Duo refuses the user (locked out, disabled, or a policy denies them).
    Deny,
    /// The user is not enrolled in Duo.
    Enroll,
}

/// What a login does once Duo's preauth answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterPreauth {
    /// Ask Duo: a push (or a passcode).
    AskDuo,
    /// Duo's bypass is not a second factor: the login continues with `fallback` (SMS/Email when
    /// the company offers it, else another method the user is enrolled in), or is refused when
    /// there is none.
    BypassRefused {
        /// The factor asked instead.
        fallback: Option<Factor>,
    },
    /// Duo refuses the user; no login.
    Denied,
    /// Duo does not know the user (any more): they must set Duo up again. No login with Duo.
    NotEnrolled,
}

/// Decides the login's next step from Duo's preauth `result` for `subject` of a company with
/// `policy`.
#[must_use]
pub fn after_preauth(
    policy: &TwoFactorPolicy,
    subject: &Subject<'_>,
    result: PreauthResult,
) -> AfterPreauth {
    match result {
        PreauthResult::Auth => AfterPreauth::AskDuo,
        PreauthResult::Deny => AfterPreauth::Denied,
        PreauthResult::Enroll => AfterPreauth::NotEnrolled,
        PreauthResult::Allow => AfterPreauth::BypassRefused {
            fallback: bypass_fallback(policy, subject),
        },
    }
}

/// The factor asked instead of Duo when Duo answered its bypass: the one the user would be asked
/// for if Duo were not theirs, SMS/Email first.
#[must_use]
pub fn bypass_fallback(policy: &TwoFactorPolicy, subject: &Subject<'_>) -> Option<Factor> {
    let subject = Subject {
        preferred: Some(Method::SmsEmail),
        duo_enrolled: false,
        ..subject.clone()
    };
    resolve_factor(policy, &subject)
}

/// Shortest Duo passcode: Duo Mobile's, and most hardware tokens'.
pub const MIN_PASSCODE_DIGITS: usize = 6;
/// Longest Duo passcode Padlock sends: SMS passcodes have 7 digits, some tokens 8. Duo's bypass
/// codes (9 digits) are a per-user way past the second factor and are refused unsent.
pub const MAX_PASSCODE_DIGITS: usize = 8;

/// A typed Duo passcode made ready to send: spaces and dashes removed, then 6 to 8 digits; `None`
/// for anything else (nothing is sent to Duo, and no try is counted).
#[must_use]
pub fn normalize_passcode(typed: &str) -> Option<String> {
    let digits: String = typed.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    ((MIN_PASSCODE_DIGITS..=MAX_PASSCODE_DIGITS).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit()))
    .then_some(digits)
}

/// Duo's `result` of an `auth` or `auth_status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthResult {
    /// Granted (or bypassed: see the `status`).
    Allow,
    /// Refused.
    Deny,
    /// A push is still waiting for the user.
    Waiting,
}

/// A push in flight: Duo's transaction id and when it was sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DuoPush {
    /// Duo's `txid`; empty while the push is being sent (the record is claimed first, so of two
    /// requests only one pushes).
    pub txid: String,
    /// Seconds since the epoch when the push was sent.
    pub pushed_at: u64,
    /// Whether its status was asked already (Duo answers the first ask at once and holds the
    /// later ones until the status changes). Only PAM decoys set it, to mirror that.
    #[serde(default)]
    pub polled: bool,
}

/// Where a push stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// The user has not answered yet; ask again.
    Waiting,
    /// The user approved: the second factor passed.
    Approved,
    /// The user denied it (or reported it as fraud).
    Denied,
    /// Nobody answered within the push window (`[duo] push_timeout_secs`, at most
    /// [`PUSH_TIMEOUT_SECS`]) or Duo's own timeout.
    TimedOut,
    /// Duo allowed it without the user (bypass): refused, never a second factor.
    Bypassed,
}

impl DuoPush {
    /// Whether `now` (Unix seconds) is at or past `pushed_at + timeout_secs` (seconds).
    #[must_use]
    pub fn expired(&self, now: u64, timeout_secs: u64) -> bool {
        now >= self.pushed_at.saturating_add(timeout_secs)
    }

    /// The outcome of this push from Duo's `auth_status` answer (`result` and `status`), at `now`
    /// (Unix seconds), with a window of `timeout_secs`.
    /// Past `timeout_secs` an unanswered push is [`PushOutcome::TimedOut`], whatever Duo says.
    #[must_use]
    pub fn outcome(
        &self,
        result: AuthResult,
        status: &str,
        now: u64,
        timeout_secs: u64,
    ) -> PushOutcome {
        match verdict(result, status) {
            PushOutcome::Waiting if self.expired(now, timeout_secs) => PushOutcome::TimedOut,
            v => v,
        }
    }
}

/// Duo's `result`/`status` of an auth (push or passcode) read as Padlock reads it: only `allow`
/// with status `allow` passes; `allow` for any other status (`bypass`) is refused.
#[must_use]
pub fn verdict(result: AuthResult, status: &str) -> PushOutcome {
    match (result, status) {
        (AuthResult::Allow, "allow") => PushOutcome::Approved,
        (AuthResult::Allow, _) => PushOutcome::Bypassed,
        (AuthResult::Waiting, _) => PushOutcome::Waiting,
        (AuthResult::Deny, "timeout") => PushOutcome::TimedOut,
        (AuthResult::Deny, _) => PushOutcome::Denied,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::Channel;
    use crate::tenant::Methods;

    fn duo_user() -> Subject<'static> {
        Subject {
            email: "ann@example.com",
            mobile: None,
            preferred: Some(Method::Duo),
            totp_enrolled: false,
            duo_enrolled: true,
            api_account: false,
            disabled: false,
        }
    }

    fn policy(sms_email: bool) -> TwoFactorPolicy {
        TwoFactorPolicy {
            enabled: true,
            methods: Methods {
                sms_email,
                totp: false,
                duo: true,
            },
            duo_configured: true,
            ..TwoFactorPolicy::default()
        }
    }

    #[test]
    fn each_preauth_result_has_its_step() {
        let p = policy(true);
        let s = duo_user();
        assert_eq!(
            after_preauth(&p, &s, PreauthResult::Auth),
            AfterPreauth::AskDuo
        );
        assert_eq!(
            after_preauth(&p, &s, PreauthResult::Deny),
            AfterPreauth::Denied
        );
        assert_eq!(
            after_preauth(&p, &s, PreauthResult::Enroll),
            AfterPreauth::NotEnrolled
        );
        assert_eq!(
            after_preauth(&p, &s, PreauthResult::Allow),
            AfterPreauth::BypassRefused {
                fallback: Some(Factor::Code {
                    channel: Channel::Email("ann@example.com".into())
                })
            }
        );
    }

    #[test]
    fn a_bypass_without_another_method_is_a_refusal_not_a_pass() {
        let s = duo_user();
        assert_eq!(
            after_preauth(&policy(false), &s, PreauthResult::Allow),
            AfterPreauth::BypassRefused { fallback: None }
        );
    }

    #[test]
    fn passcodes_are_six_to_eight_digits_and_bypass_codes_are_refused() {
        assert_eq!(normalize_passcode("123 456").as_deref(), Some("123456"));
        assert_eq!(normalize_passcode("1234567").as_deref(), Some("1234567"));
        assert_eq!(normalize_passcode("1234-5678").as_deref(), Some("12345678"));
        for bad in ["", "12345", "123456789", "12345a", "１２３４５６", "push"] {
            assert_eq!(normalize_passcode(bad), None, "{bad}");
        }
    }

    #[test]
    fn only_allow_with_status_allow_passes() {
        assert_eq!(verdict(AuthResult::Allow, "allow"), PushOutcome::Approved);
        assert_eq!(verdict(AuthResult::Allow, "bypass"), PushOutcome::Bypassed);
        assert_eq!(verdict(AuthResult::Allow, ""), PushOutcome::Bypassed);
        assert_eq!(verdict(AuthResult::Deny, "deny"), PushOutcome::Denied);
        assert_eq!(verdict(AuthResult::Deny, "fraud"), PushOutcome::Denied);
        assert_eq!(verdict(AuthResult::Deny, "timeout"), PushOutcome::TimedOut);
        assert_eq!(verdict(AuthResult::Waiting, "pushed"), PushOutcome::Waiting);
    }

    #[test]
    fn an_unanswered_push_times_out_after_the_window_whatever_duo_says() {
        let p = DuoPush {
            txid: "t".into(),
            pushed_at: 1000,
            polled: false,
        };
        let w = PUSH_TIMEOUT_SECS;
        assert_eq!(
            p.outcome(AuthResult::Waiting, "pushed", 1000 + w - 1, w),
            PushOutcome::Waiting
        );
        assert_eq!(
            p.outcome(AuthResult::Waiting, "pushed", 1000 + w, w),
            PushOutcome::TimedOut
        );
        // An answer that arrives is still read as it is.
        assert_eq!(
            p.outcome(AuthResult::Allow, "allow", 1000 + w, w),
            PushOutcome::Approved
        );
    }
}
