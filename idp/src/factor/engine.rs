//! The second-factor engine: the one piece of code that sends one-time codes and checks answers,
//! for every path that asks for a second factor — the login's factor step (its challenge kept in
//! the login flow), the padlock page's step-up (in the session) and the PAM API (in the PAM
//! transaction, keyed by its `txid`). The rules it applies come from `padlock-policy`:
//! [`CodeChallenge`] (expiry, tries per code, resend spacing and count), the lockout
//! ([`attempt`]), the per-user message limit ([`sms_email::deliver`]) and TOTP replay
//! ([`totp::check`]). A rule changed there changes on every path.
//!
//! Each path keeps its challenge in its own record and lends it to the engine as a [`Slot`]; every
//! write to it is a compare-and-swap, so two requests of one login can never spend the same try
//! or send more codes than the challenge counts.

use super::{attempt, sms_email, totp};
use crate::domain::{Outcome, PamLogin, Tenant, User};
use crate::error::AppError;
use crate::login::locked_message;
use crate::state::{AppState, Audit};
use crate::store::{Digest, StoreResult};
use async_trait::async_trait;
use axum::http::StatusCode;
use padlock_policy::Factor;
use padlock_policy::code::{CodeChallenge, CodeInput, CodeOutcome};
use padlock_policy::decision::{Channel, Decision, DenyReason, decide};
use padlock_policy::lockout::Attempt;
use padlock_policy::totp::TotpOutcome;

/// The record that holds one challenge (a login flow, a session, a PAM transaction), as read at
/// the start of the request.
#[async_trait]
pub(crate) trait Slot: Send {
    /// The digest of the record's id; one-time codes are bound to it, so a code drawn for one
    /// login is worthless in another.
    fn binding(&self) -> &Digest;
    /// The SMS/Email code challenge in play, if any.
    fn code(&self) -> Option<&CodeChallenge>;
    /// Stores the record with `code` in place of its challenge, only if nobody changed the
    /// record since this slot read (or last wrote) it; the slot then holds the new record.
    /// False when another request changed it first (nothing is written).
    async fn put_code(
        &mut self,
        state: &AppState,
        code: Option<CodeChallenge>,
    ) -> StoreResult<bool>;
}

/// Who is asked: the user and their company.
#[derive(Clone, Copy)]
pub(crate) struct Who<'a> {
    /// The user whose factor is checked.
    pub user: &'a User,
    /// Their company (name for messages, TOTP skew).
    pub tenant: &'a Tenant,
}

/// Where the request comes from, for the audit trail and the per-source failure limit.
#[derive(Clone, Copy)]
pub(crate) struct Ctx<'a> {
    /// The audit action (`login.second_factor`, `account.step_up`, `pam.second_factor`).
    pub action: &'a str,
    /// The source address: the browser's, or for PAM the `rhost` the host reported.
    pub ip: Option<&'a str>,
    /// For PAM: the host, service, rhost and tty of the login.
    pub pam: Option<&'a PamLogin>,
    /// What the user does for a new code once one expired or had its last try ("Send a new
    /// code." on the web, "Start the login again." at PAM, which has no resend).
    pub new_code: &'a str,
}

impl Ctx<'_> {
    /// Audits `action` (or this context's action) about `user` with `outcome`.
    pub(crate) async fn audit_as(
        &self,
        state: &AppState,
        user: &User,
        action: &str,
        outcome: Outcome,
    ) -> StoreResult<()> {
        state
            .audit_with(Audit::by_user(user, action, outcome, self.ip), self.pam)
            .await
    }

    /// Audits this context's action about `user` with `outcome`.
    pub(crate) async fn audit(
        &self,
        state: &AppState,
        user: &User,
        outcome: Outcome,
    ) -> StoreResult<()> {
        self.audit_as(state, user, self.action, outcome).await
    }
}

/// What `padlock-policy` decides for `user` of `tenant` now (their current lockout read from the
/// store): the one question every login path asks — the web password step and factor step, and
/// PAM's preauth and auth. `second_factor_requested`: the relying panel asked for `padlock:2fa`.
pub(crate) async fn decision(
    state: &AppState,
    user: &User,
    tenant: &Tenant,
    second_factor_requested: bool,
) -> StoreResult<Decision> {
    let lockout = state.store.lockout_state(&user.id).await?;
    Ok(decide(
        &tenant.two_factor,
        &user.subject(),
        &lockout,
        &state.limits.lockout,
        second_factor_requested,
        state.clock.now(),
    ))
}

/// Whether a challenge for `factor`, begun earlier, may still be answered: the decision now is to
/// ask for that same factor, or a lock (which [`check`] answers itself). False when the user, the
/// company's switch or its methods changed since, so an answer to the old challenge never
/// completes a login the policy would no longer allow that way.
pub(crate) fn still_asked(now: &Decision, factor: &Factor) -> bool {
    match now {
        Decision::Challenge(f) => f == factor,
        Decision::Deny(DenyReason::LockedOut { .. }) => true,
        _ => false,
    }
}

/// The result of [`send_code`].
pub(crate) enum CodeSend {
    /// The code is on its way; the slot holds its challenge.
    Sent,
    /// No code went: the lock, the resend spacing or count, the per-user message limit, or a
    /// failed delivery. The slot is as it was. Status and sentence for the user.
    Refused(StatusCode, String),
    /// Another request changed the record first; nothing was sent.
    Race,
}

/// Sends `who` a new code over `channel` and records it in `slot`. The first code of a slot
/// starts its challenge; later ones are resends, counted against its limits (`at_limit` is the
/// sentence once it sent its last). The code is recorded first and sent after, so parallel
/// requests cannot send more codes than are recorded; a refused or failed send puts the previous
/// challenge back. Nothing is sent while the user's second factor is locked.
pub(crate) async fn send_code(
    state: &AppState,
    slot: &mut dyn Slot,
    who: Who<'_>,
    channel: &Channel,
    ctx: &Ctx<'_>,
    at_limit: &str,
) -> Result<CodeSend, AppError> {
    if let Some(until) = attempt::locked_until(state, who.user, ctx).await? {
        return Ok(CodeSend::Refused(
            StatusCode::FORBIDDEN,
            locked_message(until),
        ));
    }
    let now = state.clock.now();
    let fresh = sms_email::draw(state, slot.binding());
    let previous = slot.code().cloned();
    let next = match previous.clone() {
        None => CodeChallenge::issue_for(fresh.digest, now, state.limits.code_ttl_secs),
        Some(mut ch) => {
            if let Some(refusal) = resend_refusal(
                ch.advance(CodeInput::Resend(fresh.digest), now),
                now,
                at_limit,
            ) {
                return Ok(CodeSend::Refused(StatusCode::TOO_MANY_REQUESTS, refusal));
            }
            ch
        }
    };
    if !slot.put_code(state, Some(next)).await? {
        return Ok(CodeSend::Race);
    }
    if let Err(undelivered) =
        sms_email::deliver(state, who.user, &who.tenant.name, channel, &fresh, ctx).await?
    {
        slot.put_code(state, previous).await?;
        let (status, message) = undelivered.answer(now);
        return Ok(CodeSend::Refused(status, message));
    }
    Ok(CodeSend::Sent)
}

/// The result of [`check`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Checked {
    /// The factor passed; the user's failure count is cleared.
    Passed,
    /// The answer was not accepted. `again`: this challenge takes another answer (false when the
    /// code expired, was spent, had its last try, or this try began the lock).
    Failed {
        /// For the user.
        message: String,
        /// Whether another answer can pass.
        again: bool,
    },
    /// The user's second factor was already locked: nothing was checked.
    Locked {
        /// Seconds since the epoch.
        until: u64,
    },
    /// There is no code in play to check (none was sent, or it was put back).
    NoCode,
    /// Another request changed the record first; nothing was counted.
    Race,
}

/// Checks `typed` (six digits, see [`padlock_policy::code::normalize_code`]) as `who`'s answer
/// to `factor`, keeping the code state in `slot`. Nothing is checked while the user is locked.
/// A guess is counted against the lockout before it is revealed ([`attempt::admit`]) and settled
/// after ([`attempt::settle`]: a pass clears the count, the try that reaches the threshold begins
/// the lock and mails the user). An expired or spent code is no guess and counts nothing. Every
/// outcome is audited under `ctx`.
///
/// Errors: storage failures; [`AppError::Forbidden`] for [`Factor::Duo`], which this build cannot
/// check (fails closed).
pub(crate) async fn check(
    state: &AppState,
    slot: &mut dyn Slot,
    who: Who<'_>,
    factor: &Factor,
    typed: &str,
    ctx: &Ctx<'_>,
) -> Result<Checked, AppError> {
    if let Some(until) = attempt::locked_until(state, who.user, ctx).await? {
        return Ok(Checked::Locked { until });
    }
    let now = state.clock.now();
    let (passed, message, again, locks_until) = match factor {
        Factor::Code { .. } => {
            let Some(mut ch) = slot.code().cloned() else {
                return Ok(Checked::NoCode);
            };
            let digest = sms_email::digest(state, slot.binding(), typed);
            let outcome = ch.advance(CodeInput::Submit(digest), now);
            // The try is spent on the record first (one winner per try), then counted.
            if !slot.put_code(state, Some(ch)).await? {
                return Ok(Checked::Race);
            }
            if outcome != CodeOutcome::Accepted && !outcome.is_failed_guess() {
                ctx.audit(state, who.user, Outcome::Failure).await?;
                return Ok(Checked::Failed {
                    message: code_message(outcome, ctx.new_code),
                    again: false,
                });
            }
            match attempt::admit(state, who.user, ctx).await? {
                Attempt::Locked { until } => return Ok(Checked::Locked { until }),
                Attempt::Admitted { locks_until } => (
                    outcome == CodeOutcome::Accepted,
                    code_message(outcome, ctx.new_code),
                    matches!(outcome, CodeOutcome::Wrong { tries_left } if tries_left > 0),
                    locks_until,
                ),
            }
        }
        Factor::Totp => {
            // Counted before the code is checked: a TOTP check also spends the time step.
            let locks_until = match attempt::admit(state, who.user, ctx).await? {
                Attempt::Locked { until } => return Ok(Checked::Locked { until }),
                Attempt::Admitted { locks_until } => locks_until,
            };
            let skew = who.tenant.two_factor.totp_skew_steps;
            let (passed, message) = match totp::check(state, who.user, skew, typed).await? {
                TotpOutcome::Accepted { .. } => (true, String::new()),
                TotpOutcome::Replayed => (
                    false,
                    "This code was already used. Wait for the next code in your app.".into(),
                ),
                _ => (false, "That code is not right.".into()),
            };
            (passed, message, true, locks_until)
        }
        Factor::Duo => {
            return Err(AppError::Forbidden(DUO_UNAVAILABLE.into()));
        }
    };
    let lock = attempt::settle(state, who, passed, locks_until, ctx).await?;
    let outcome = if passed {
        Outcome::Success
    } else {
        Outcome::Failure
    };
    ctx.audit(state, who.user, outcome).await?;
    if passed {
        return Ok(Checked::Passed);
    }
    Ok(match lock {
        Some(until) => Checked::Failed {
            message: locked_message(until),
            again: false,
        },
        None => Checked::Failed { message, again },
    })
}

/// Why a factor cannot be checked by this build.
pub(crate) const DUO_UNAVAILABLE: &str =
    "This sign-in needs Duo, which this Padlock cannot check yet.";

/// What the user reads after submitting an SMS/Email code that was not accepted; `new_code`
/// says how to get another.
pub(crate) fn code_message(outcome: CodeOutcome, new_code: &str) -> String {
    match outcome {
        CodeOutcome::Accepted => String::new(),
        CodeOutcome::Wrong { tries_left } => format!(
            "That code is not right. {tries_left} more {} for this code.",
            if tries_left == 1 { "try" } else { "tries" }
        ),
        CodeOutcome::Expired => format!("This code has expired. {new_code}"),
        CodeOutcome::TooManyTries => format!("Too many wrong codes. {new_code}"),
        _ => "This code was already used.".into(),
    }
}

/// Why a new code cannot be sent (`None`: it was resent), for the user; `at_limit` is the answer
/// once the challenge sent its last code.
fn resend_refusal(outcome: CodeOutcome, now: u64, at_limit: &str) -> Option<String> {
    match outcome {
        CodeOutcome::Resent { .. } => None,
        CodeOutcome::ResendTooSoon { retry_at } => Some(format!(
            "Wait {} seconds before asking for a new code.",
            retry_at - now
        )),
        _ => Some(at_limit.to_owned()),
    }
}
