//! Counting second-factor tries against the user's lockout: the steps [`super::engine`] takes for
//! every path that checks a second factor (the login's factor step, the padlock page's step-up,
//! the PAM API).
//!
//! 1. [`admit`] before an answer is revealed: refused while locked; else the try is counted as a
//!    failure in the same atomic store step, so parallel guesses never get more answers than
//!    the lockout allows.
//! 2. [`settle`] after the answer is known: a pass clears the count; a failure that reached the
//!    threshold began the lock, and the user is told by email — once per lock, because exactly one
//!    admitted try reaches the threshold. Every failure also counts against its source address.

use super::engine::{Ctx, Who};
use crate::domain::{Outcome, User, format_time};
use crate::error::AppError;
use crate::state::AppState;
use padlock_policy::lockout::Attempt;

/// Admits one try of `user` now, or says until when the second factor is locked (a refusal is
/// audited under `ctx`).
pub(crate) async fn admit(
    state: &AppState,
    user: &User,
    ctx: &Ctx<'_>,
) -> Result<Attempt, AppError> {
    let attempt = state
        .store
        .admit_second_factor_attempt(&user.id, state.clock.now(), &state.limits.lockout)
        .await?;
    if let Attempt::Locked { .. } = attempt {
        ctx.audit(state, user, Outcome::Failure).await?;
    }
    Ok(attempt)
}

/// Until when `user`'s second factor is locked, if it is; a request refused for it (a code to
/// check, a code to send) is audited under `ctx`. Nothing is counted.
pub(crate) async fn locked_until(
    state: &AppState,
    user: &User,
    ctx: &Ctx<'_>,
) -> Result<Option<u64>, AppError> {
    let until = state
        .store
        .lockout_state(&user.id)
        .await?
        .locked_until(state.clock.now(), &state.limits.lockout);
    if until.is_some() {
        ctx.audit(state, user, Outcome::Failure).await?;
    }
    Ok(until)
}

/// After an admitted try was checked: `passed` clears the count; a failure is counted against the
/// source address of `ctx` and, when the try reached the threshold (`locks_until` from [`admit`]),
/// mails the user that sign-in is locked. Returns the end of the lock that began, if one did.
pub(crate) async fn settle(
    state: &AppState,
    who: Who<'_>,
    passed: bool,
    locks_until: Option<u64>,
    ctx: &Ctx<'_>,
) -> Result<Option<u64>, AppError> {
    if passed {
        state
            .store
            .record_second_factor_success(&who.user.id)
            .await?;
        return Ok(None);
    }
    state
        .limits
        .record_source_failure(ctx.ip, state.clock.now());
    if let Some(until) = locks_until {
        notify_locked(state, who.user, &who.tenant.name, until);
    }
    Ok(locks_until)
}

/// Tells the user by email that their second factor is locked and until when (in the
/// background, [`AppState::notify`]).
fn notify_locked(state: &AppState, user: &User, company: &str, until: u64) {
    let subject = format!("{company}: sign-in is locked");
    let body = format!(
        "After too many wrong codes, signing in to {company} as {} is locked until {}.\n\n\
         If these attempts were not yours, someone may know your password: change it and tell your administrator.",
        user.email,
        format_time(until)
    );
    state.notify(&user.email, subject, body);
}
