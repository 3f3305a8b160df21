//! Enrolling an authenticator app (DESIGN.md §2 rule 4): a new seed, the otpauth QR code that
//! shows it, and the confirmation that needs one valid code. The padlock page (the user for
//! themself) and the admin API (an administrator scanning with the user's device) share it.

use crate::crypto::Sealed;
use crate::domain::{TOTP_SEED_PURPOSE, Tenant, TotpEnrolment, User};
use crate::state::AppState;
use padlock_policy::Method;
use padlock_policy::totp::{SECRET_LEN, TotpOutcome, verify};

/// What an enrolment shows: the QR code (PNG, base64), the secret as base32 text for typing in,
/// and the `otpauth://totp/…` URI (issuer `Padlock (<company>)`, account the user's email).
pub struct TotpSetup {
    /// PNG image, base64.
    pub qr_base64: String,
    /// The seed, base32 (RFC 4648).
    pub secret: String,
    /// The otpauth URI the QR code holds.
    pub uri: String,
}

/// A new random seed of [`SECRET_LEN`] bytes, sealed with purpose [`TOTP_SEED_PURPOSE`].
///
/// # Errors
/// The system random number generator or sealing failed.
pub fn new_seed(state: &AppState) -> anyhow::Result<Sealed> {
    let mut seed = zeroize::Zeroizing::new([0u8; SECRET_LEN]);
    aws_lc_rs::rand::fill(seed.as_mut())
        .map_err(|_| anyhow::anyhow!("system random number generator failed"))?;
    Ok(state.master.seal(TOTP_SEED_PURPOSE, seed.as_ref())?)
}

/// The QR code, text secret and URI of the sealed `seed` for `user` of `tenant`.
///
/// # Errors
/// The seed does not open under the master key, or the QR code cannot be drawn.
pub fn setup(
    state: &AppState,
    tenant: &Tenant,
    user: &User,
    seed: &Sealed,
) -> anyhow::Result<TotpSetup> {
    let seed = state.master.open(TOTP_SEED_PURPOSE, seed)?;
    let totp = totp_rs::Builder::new()
        .with_secret(seed.to_vec())
        .with_issuer(Some(format!("Padlock ({})", tenant.name.replace(':', " "))))
        .with_account_name(user.email.replace(':', " "))
        .build()
        .map_err(|e| anyhow::anyhow!("TOTP enrolment: {e}"))?;
    Ok(TotpSetup {
        qr_base64: totp
            .to_qr_base64()
            .map_err(|e| anyhow::anyhow!("TOTP QR code: {e}"))?,
        uri: totp
            .to_url()
            .map_err(|e| anyhow::anyhow!("TOTP URI: {e}"))?,
        secret: totp_rs::Secret::from(seed.to_vec()).to_base32(),
    })
}

/// Confirms an enrolment of the sealed `seed` with `code` (RFC 6238, the company's skew): on a
/// right code, the code's time step counts as used (it cannot be replayed at the next login) and
/// the user as it should be stored — enrolled, TOTP their method — is returned for the caller to
/// write over `read`. `None` for a wrong code (nothing written).
///
/// # Errors
/// The seed does not open, or storage fails.
pub async fn confirm(
    state: &AppState,
    tenant: &Tenant,
    read: &User,
    seed: Sealed,
    code: &str,
) -> anyhow::Result<Option<User>> {
    let now = state.clock.now();
    let outcome = {
        let plain = state.master.open(TOTP_SEED_PURPOSE, &seed)?;
        verify(&plain, code, now, tenant.two_factor.totp_skew_steps, None)?
    };
    let TotpOutcome::Accepted { step } = outcome else {
        return Ok(None);
    };
    state.store.accept_totp_step(&read.id, step).await?;
    Ok(Some(User {
        totp: Some(TotpEnrolment {
            seed,
            enrolled_at: now,
        }),
        preferred_method: Some(Method::Totp),
        ..read.clone()
    }))
}
