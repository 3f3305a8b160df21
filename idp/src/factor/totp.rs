//! TOTP at login: RFC 6238 check by `padlock-policy`, then the store's compare-and-swap makes a
//! time step count once per user, across concurrent logins.

use crate::domain::{TOTP_SEED_PURPOSE, User};
use crate::error::AppError;
use crate::state::AppState;
use padlock_policy::totp::{TotpOutcome, verify};

/// Checks `code` for `user` now; `Accepted` only if the step was not used before.
pub async fn check(
    state: &AppState,
    user: &User,
    skew: u8,
    code: &str,
) -> Result<TotpOutcome, AppError> {
    let Some(enrolment) = &user.totp else {
        return Ok(TotpOutcome::Invalid);
    };
    let seed = state
        .master
        .open(TOTP_SEED_PURPOSE, &enrolment.seed)
        .map_err(anyhow::Error::from)?;
    let outcome =
        verify(&seed, code, state.clock.now(), skew, None).map_err(anyhow::Error::from)?;
    if let TotpOutcome::Accepted { step } = outcome
        && !state.store.accept_totp_step(&user.id, step).await?
    {
        return Ok(TotpOutcome::Replayed);
    }
    Ok(outcome)
}
