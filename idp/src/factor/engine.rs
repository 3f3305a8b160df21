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
use crate::duo::auth::Push;
use crate::duo::client::{DuoClient, DuoError};
use crate::error::AppError;
use crate::login::locked_message;
use crate::state::{AppState, Audit};
use crate::store::{Digest, StoreResult};
use async_trait::async_trait;
use axum::http::StatusCode;
use padlock_policy::Factor;
use padlock_policy::code::{CodeChallenge, CodeInput, CodeOutcome};
use padlock_policy::decision::{Channel, Decision, DenyReason, decide};
use padlock_policy::duo::{
    AfterPreauth, DuoPush, PushOutcome, after_preauth, bypass_fallback, verdict,
};
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
    /// The Duo push in play, if any.
    fn push(&self) -> Option<&DuoPush>;
    /// Stores the record with `code` and `push` in place of its challenges, only if nobody
    /// changed the record since this slot read (or last wrote) it; the slot then holds the new
    /// record. False when another request changed it first (nothing is written).
    async fn put(
        &mut self,
        state: &AppState,
        code: Option<CodeChallenge>,
        push: Option<DuoPush>,
    ) -> StoreResult<bool>;

    /// [`Slot::put`] with the push kept.
    async fn put_code(
        &mut self,
        state: &AppState,
        code: Option<CodeChallenge>,
    ) -> StoreResult<bool> {
        let push = self.push().cloned();
        self.put(state, code, push).await
    }

    /// [`Slot::put`] with the code kept.
    async fn put_push(&mut self, state: &AppState, push: Option<DuoPush>) -> StoreResult<bool> {
        let code = self.code().cloned();
        self.put(state, code, push).await
    }
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

/// Whether a challenge for `factor`, begun earlier, may still be answered by `who`: the decision
/// now is to ask for that same factor — or for Duo, when the challenge replaced Duo because Duo's
/// preauth answered its bypass (`duo_bypassed`) and `factor` is still what that falls back to
/// ([`padlock_policy::duo::bypass_fallback`]) — or a lock (which [`check`] answers itself).
/// False when the user, the company's switch or its methods changed since, so an answer to the
/// old challenge never completes a login the policy would no longer allow that way.
pub(crate) fn still_asked(
    now: &Decision,
    factor: &Factor,
    duo_bypassed: bool,
    who: Who<'_>,
) -> bool {
    match now {
        Decision::Challenge(Factor::Duo) if duo_bypassed => {
            bypass_fallback(&who.tenant.two_factor, &who.user.subject()).as_ref() == Some(factor)
        }
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
/// For [`Factor::Duo`], `typed` is a Duo passcode ([`padlock_policy::duo::normalize_passcode`])
/// that Duo checks; any Duo error (unavailable, a refusal, an unreadable answer) fails the try,
/// never passes it — the try stays counted, but counts against the source address only if it
/// began the lock.
///
/// Errors: storage failures.
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
            let locks_until = match attempt::admit(state, who.user, ctx).await? {
                Attempt::Locked { until } => return Ok(Checked::Locked { until }),
                Attempt::Admitted { locks_until } => locks_until,
            };
            match duo_passcode(state, who, typed, ctx).await? {
                Some((passed, message)) => (passed, message, true, locks_until),
                // Duo unavailable: the try stays counted, but is no failure of this source
                // (unless it began the lock, whose notice goes out as usual).
                None if locks_until.is_some() => (false, DUO_DOWN.into(), true, locks_until),
                None => {
                    return Ok(Checked::Failed {
                        message: DUO_DOWN.into(),
                        again: true,
                    });
                }
            }
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

/// Shown when Duo cannot be reached or answers nothing usable: no login, and no weaker factor.
pub(crate) const DUO_DOWN: &str = "Duo cannot be reached right now, so this sign-in cannot be checked. Try again in a few minutes.";
/// Shown when Duo no longer knows the user.
pub(crate) const DUO_NOT_ENROLLED: &str = "Your Duo enrolment is no longer active in Duo, so this sign-in cannot be checked. Ask your administrator to set up Duo for you again, or to remove it so you can set it up yourself under Security settings (/account/security).";
/// Shown when Duo would let the user in without a check and the company offers nothing else.
pub(crate) const DUO_BYPASS_REFUSED: &str = "Duo is set to let you in without a check, which this company does not accept, and no other sign-in method is available to you. Contact your administrator.";

/// Duo's client for `tenant`; `None` when the company has no Duo keys or they cannot be opened
/// (the latter logged; the user reads [`DUO_DOWN`]).
pub(crate) fn duo_client(state: &AppState, tenant: &Tenant) -> Option<DuoClient> {
    let config = tenant.duo.as_ref()?;
    match state.duo.client(&state.master, config) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::error!(tenant = %tenant.id, error = %e, "the company's Duo integration cannot be used");
            None
        }
    }
}

/// Saves the Duo user `username` (Duo's `duo_user_id`, empty when linked by name) as the active
/// Duo enrolment of `read` and makes Duo their method, only over the record as read (the Duo
/// calls before this took time: an administrator who disabled the user or removed their Duo
/// meanwhile is never undone). `None`: the user changed or is gone. Errors: storage failures.
pub(crate) async fn save_duo_enrolment(
    state: &AppState,
    read: &User,
    duo_user_id: String,
    username: String,
) -> StoreResult<Option<User>> {
    let user = User {
        duo: Some(crate::domain::DuoEnrolment {
            duo_user_id,
            username,
            active: true,
        }),
        preferred_method: Some(padlock_policy::Method::Duo),
        ..read.clone()
    };
    match state.store.swap_user(read, &user).await {
        Ok(true) => Ok(Some(user)),
        Ok(false) | Err(crate::store::StoreError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The user's Duo username, if their Duo enrolment is active.
fn duo_username(user: &User) -> Option<&str> {
    user.duo
        .as_ref()
        .filter(|d| d.active && !d.username.is_empty())
        .map(|d| d.username.as_str())
}

/// `ip` if it is an IP address (Duo's `ipaddr`; a PAM `rhost` may be a host name).
fn ipaddr(ip: Option<&str>) -> Option<&str> {
    ip.filter(|i| i.parse::<std::net::IpAddr>().is_ok())
}

/// What Duo's preauth means for a login that asked for Duo.
#[derive(Debug)]
pub(crate) enum DuoStart {
    /// Ask Duo: push or passcode.
    Ask,
    /// Duo's bypass is refused; ask this factor instead.
    Instead(Factor),
    /// No login: the sentence says why.
    Refused(String),
}

/// Asks Duo's preauth about `who` and decides with `padlock-policy` what the login does
/// ([`padlock_policy::duo::after_preauth`]). Audited: `duo.bypass_refused`, `duo.denied`,
/// `duo.not_enrolled` (refused until an administrator sets Duo up again or removes it),
/// `duo.unavailable`. Waits at most `[duo] timeout_secs` for Duo (the PAM API bounds the whole at
/// 4 s). Errors: storage failures.
pub(crate) async fn duo_start(
    state: &AppState,
    who: Who<'_>,
    ctx: &Ctx<'_>,
) -> Result<DuoStart, AppError> {
    let (Some(client), Some(username)) = (duo_client(state, who.tenant), duo_username(who.user))
    else {
        ctx.audit_as(state, who.user, "duo.unavailable", Outcome::Failure)
            .await?;
        return Ok(DuoStart::Refused(DUO_DOWN.into()));
    };
    let started = std::time::Instant::now();
    let asked = client.preauth(username, ipaddr(ctx.ip)).await;
    observed(state, who.tenant, started, &asked);
    let answer = match asked {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(user = %who.user.id, error = %e, "Duo preauth failed");
            ctx.audit_as(state, who.user, "duo.unavailable", Outcome::Failure)
                .await?;
            return Ok(DuoStart::Refused(DUO_DOWN.into()));
        }
    };
    let step = after_preauth(&who.tenant.two_factor, &who.user.subject(), answer.result);
    Ok(match step {
        AfterPreauth::AskDuo => DuoStart::Ask,
        AfterPreauth::BypassRefused { fallback } => {
            ctx.audit_as(state, who.user, "duo.bypass_refused", Outcome::Failure)
                .await?;
            match fallback {
                Some(f) => DuoStart::Instead(f),
                None => DuoStart::Refused(DUO_BYPASS_REFUSED.into()),
            }
        }
        AfterPreauth::Denied => {
            ctx.audit_as(state, who.user, "duo.denied", Outcome::Failure)
                .await?;
            DuoStart::Refused(duo_said("Duo refused this sign-in.", &answer.status_msg))
        }
        AfterPreauth::NotEnrolled => {
            // Not a reason to fall back to a weaker factor (a Duo account moved, or the company's
            // keys now point at another Duo account): refused until Duo is set up again.
            ctx.audit_as(state, who.user, "duo.not_enrolled", Outcome::Failure)
                .await?;
            DuoStart::Refused(DUO_NOT_ENROLLED.into())
        }
    })
}

/// `ours`, followed by Duo's own sentence when it sent one (control characters removed, at
/// most 200 characters).
fn duo_said(ours: &str, theirs: &str) -> String {
    let theirs: String = theirs
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    if theirs.trim().is_empty() {
        ours.to_owned()
    } else {
        format!("{ours} Duo says: {}", theirs.trim())
    }
}

/// The result of [`push`].
pub(crate) enum PushSend {
    /// The push is on its way; the slot holds it.
    Sent,
    /// No push went (locked, one already waiting, Duo unavailable): status and sentence.
    Refused(StatusCode, String),
    /// Another request changed the record first.
    Race,
}

/// The words and details of a push: Duo's `type` and the `pushinfo` pairs, in order.
#[derive(Clone, Copy)]
pub(crate) struct PushText<'a> {
    /// Duo's `type`, shown before the application name in Duo Mobile.
    pub kind: &'a str,
    /// `pushinfo`: what the login is (company and application, or PAM host, service, rhost).
    pub info: &'a [(&'a str, &'a str)],
}

/// Sends `who` a Duo push (`device=auto`, asynchronous) and keeps it in `slot`. The push is one
/// try: it is counted against the lockout before it goes ([`attempt::admit`]) and settled by
/// [`push_status`], so unanswered pushes lock the second factor like wrong codes do; the try that
/// begins the lock sends nothing (nothing passes while locked). One push waits at a time: the
/// slot is claimed before anything is counted or sent, so of two requests only one pushes. A try
/// whose send failed (Duo unavailable) stays counted. Duo Auth API `/auth/v2/auth`, `factor=push`,
/// `device=auto`, `async=1`.
///
/// Refusals: 403 (locked, or this try would begin the lock), 409 (a push is waiting), 503 (Duo
/// unavailable). Errors: storage failures.
pub(crate) async fn push(
    state: &AppState,
    slot: &mut dyn Slot,
    who: Who<'_>,
    text: PushText<'_>,
    ctx: &Ctx<'_>,
) -> Result<PushSend, AppError> {
    if let Some(until) = attempt::locked_until(state, who.user, ctx).await? {
        return Ok(PushSend::Refused(
            StatusCode::FORBIDDEN,
            locked_message(until),
        ));
    }
    let now = state.clock.now();
    if slot
        .push()
        .is_some_and(|p| !p.expired(now, state.duo.push_timeout_secs))
    {
        return Ok(PushSend::Refused(
            StatusCode::CONFLICT,
            "A Duo push is already waiting for your answer.".into(),
        ));
    }
    let (Some(client), Some(username)) = (duo_client(state, who.tenant), duo_username(who.user))
    else {
        ctx.audit_as(state, who.user, "duo.unavailable", Outcome::Failure)
            .await?;
        return Ok(PushSend::Refused(
            StatusCode::SERVICE_UNAVAILABLE,
            DUO_DOWN.into(),
        ));
    };
    let claimed = DuoPush {
        txid: String::new(),
        pushed_at: now,
        polled: false,
    };
    if !slot.put_push(state, Some(claimed)).await? {
        return Ok(PushSend::Race);
    }
    match attempt::admit(state, who.user, ctx).await? {
        Attempt::Admitted { locks_until: None } => {}
        Attempt::Locked { until } => {
            slot.put_push(state, None).await?;
            return Ok(PushSend::Refused(
                StatusCode::FORBIDDEN,
                locked_message(until),
            ));
        }
        Attempt::Admitted {
            locks_until: Some(until),
        } => {
            slot.put_push(state, None).await?;
            attempt::settle(state, who, false, Some(until), ctx).await?;
            ctx.audit(state, who.user, Outcome::Failure).await?;
            return Ok(PushSend::Refused(
                StatusCode::FORBIDDEN,
                locked_message(until),
            ));
        }
    }
    let started = std::time::Instant::now();
    let sent = client
        .push(&Push {
            username,
            kind: text.kind,
            display_username: &who.user.email,
            pushinfo: text.info,
            ipaddr: ipaddr(ctx.ip),
        })
        .await;
    observed(state, who.tenant, started, &sent);
    let txid = match sent {
        Ok(txid) => txid,
        Err(e) => {
            tracing::warn!(user = %who.user.id, error = %e, "Duo push failed");
            slot.put_push(state, None).await?;
            ctx.audit_as(state, who.user, "duo.unavailable", Outcome::Failure)
                .await?;
            return Ok(PushSend::Refused(
                StatusCode::SERVICE_UNAVAILABLE,
                DUO_DOWN.into(),
            ));
        }
    };
    let pushed = DuoPush {
        txid,
        pushed_at: now,
        polled: false,
    };
    if !slot.put_push(state, Some(pushed)).await? {
        return Ok(PushSend::Race);
    }
    ctx.audit_as(state, who.user, "duo.push", Outcome::Success)
        .await?;
    Ok(PushSend::Sent)
}

/// Records how a call to `tenant`'s Duo went that began at `started`: its time (when Duo
/// answered) for the PAM decoys' waits, and whether Duo was unavailable.
fn observed<T>(
    state: &AppState,
    tenant: &Tenant,
    started: std::time::Instant,
    result: &Result<T, DuoError>,
) {
    if let Some(d) = &tenant.duo {
        state
            .duo
            .note(&d.api_host, result.as_ref().is_err_and(DuoError::is_outage));
    }
    if result.is_ok() {
        state.duo.call_time.record_since(started);
    }
}

/// Where the push of a slot stands after [`push_status`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PushState {
    /// Not answered yet.
    Waiting,
    /// Approved: the second factor passed.
    Passed,
    /// Denied, timed out, or bypassed (refused): the sentence for the user, and whether another
    /// try may follow (false when this one began the lock).
    Failed {
        /// For the user.
        message: String,
        /// Whether another push or passcode may be tried.
        again: bool,
    },
    /// Duo could not be asked; the push stays in play.
    Unavailable,
    /// No push is in play (none sent, or another request settled it).
    NoPush,
}

/// Asks Duo about the slot's push, waiting at most `wait` (Duo holds `auth_status` until the
/// status changes), and settles it once it is answered: the one request that clears the push
/// from the slot settles the try counted when it was sent ([`attempt::settle`]). Past
/// `[duo] push_timeout_secs` an unanswered push has timed out. `wait` is capped by the time left
/// in that window and by `[duo] timeout_secs`. One request at a time asks Duo about a push;
/// another meanwhile hears that it is still waiting. An approval that arrives while the user's
/// second factor is locked does not pass. A Duo error leaves the push in play
/// ([`PushState::Unavailable`]). Errors: storage failures.
pub(crate) async fn push_status(
    state: &AppState,
    slot: &mut dyn Slot,
    who: Who<'_>,
    ctx: &Ctx<'_>,
    wait: std::time::Duration,
) -> Result<PushState, AppError> {
    let Some(pushed) = slot.push().cloned() else {
        return Ok(PushState::NoPush);
    };
    if pushed.txid.is_empty() {
        // Being sent by another request.
        return Ok(PushState::Waiting);
    }
    let window = state.duo.push_timeout_secs;
    let now = state.clock.now();
    let outcome = if pushed.expired(now, window) {
        PushOutcome::TimedOut
    } else {
        let Some(_claim) = state.duo.claim_poll(&pushed.txid) else {
            return Ok(PushState::Waiting);
        };
        let Some(client) = duo_client(state, who.tenant) else {
            return Ok(PushState::Unavailable);
        };
        let left = std::time::Duration::from_secs(pushed.pushed_at + window - now);
        let started = std::time::Instant::now();
        let asked = client.auth_status(&pushed.txid, wait.min(left)).await;
        observed(state, who.tenant, started, &asked);
        match asked {
            Ok(a) => pushed.outcome(a.result, &a.status, state.clock.now(), window),
            Err(e) => {
                tracing::warn!(user = %who.user.id, error = %e, "Duo auth_status failed");
                return Ok(PushState::Unavailable);
            }
        }
    };
    if outcome == PushOutcome::Waiting {
        return Ok(PushState::Waiting);
    }
    if !slot.put_push(state, None).await? {
        return Ok(PushState::NoPush);
    }
    if outcome == PushOutcome::Approved
        && let Some(until) = attempt::locked_until(state, who.user, ctx).await?
    {
        // Its try was counted when it was sent; nothing passes while locked.
        return Ok(PushState::Failed {
            message: locked_message(until),
            again: false,
        });
    }
    let passed = outcome == PushOutcome::Approved;
    attempt::settle(state, who, passed, None, ctx).await?;
    if outcome == PushOutcome::Bypassed {
        ctx.audit_as(state, who.user, "duo.bypass_refused", Outcome::Failure)
            .await?;
    }
    ctx.audit(
        state,
        who.user,
        if passed {
            Outcome::Success
        } else {
            Outcome::Failure
        },
    )
    .await?;
    if passed {
        return Ok(PushState::Passed);
    }
    Ok(PushState::Failed {
        message: push_message(outcome).into(),
        again: true,
    })
}

/// What the user reads about a push that did not pass.
fn push_message(outcome: PushOutcome) -> &'static str {
    match outcome {
        PushOutcome::TimedOut => "Duo push timed out.",
        PushOutcome::Bypassed => {
            "Duo let this push through without your answer, which this company does not accept."
        }
        _ => "Duo push denied.",
    }
}

/// Duo's check of a passcode, for [`check`]: (passed, sentence when not), or `None` when Duo
/// could not be asked (audited `duo.unavailable`).
async fn duo_passcode(
    state: &AppState,
    who: Who<'_>,
    typed: &str,
    ctx: &Ctx<'_>,
) -> Result<Option<(bool, String)>, AppError> {
    let (Some(client), Some(username)) = (duo_client(state, who.tenant), duo_username(who.user))
    else {
        ctx.audit_as(state, who.user, "duo.unavailable", Outcome::Failure)
            .await?;
        return Ok(None);
    };
    let started = std::time::Instant::now();
    let answer = client.passcode(username, typed, ipaddr(ctx.ip)).await;
    observed(state, who.tenant, started, &answer);
    Ok(Some(match answer {
        Ok(a) => match verdict(a.result, &a.status) {
            PushOutcome::Approved => (true, String::new()),
            PushOutcome::Bypassed => {
                ctx.audit_as(state, who.user, "duo.bypass_refused", Outcome::Failure)
                    .await?;
                (false, push_message(PushOutcome::Bypassed).into())
            }
            _ => (false, "That Duo passcode is not right.".into()),
        },
        Err(e) => {
            tracing::warn!(user = %who.user.id, error = %e, "Duo passcode check failed");
            ctx.audit_as(state, who.user, "duo.unavailable", Outcome::Failure)
                .await?;
            return Ok(None);
        }
    }))
}
