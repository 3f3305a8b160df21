//! Set-password links: a one-time link an administrator (`users.manage`) has Padlock make for a
//! user — a new user, one whose password is lost, a former API account. It works for
//! [`LINK_TTL_SECS`] and once: the page `/account/set-password?token=…` sets the password, ends
//! the user's sessions and refresh tokens and clears their password throttle. A link also dies
//! when the password changes any other way (another link, the padlock page), because it names the
//! password it replaces. The token travels in a hidden field, so it is also the form's CSRF token.

use crate::crypto::{random_token, sha256};
use crate::domain::{Outcome, PasswordLink, Timestamp, User};
use crate::error::AppError;
use crate::extract::{ClientIp, Form, Query};
use crate::password::MIN_PASSWORD_LEN;
use crate::secret::{LinkToken, Password};
use crate::state::{AppState, Audit};
use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

/// How long a set-password link works: 24 hours, in seconds.
pub const LINK_TTL_SECS: u64 = 24 * 3600;

/// The path of the set-password page.
pub const PATH: &str = "/account/set-password";

const DEAD_LINK: &str = "This link is not valid: it was already used, it expired (a link works \
     for 24 hours), or the password was changed since. Ask your administrator for a new one.";

/// The fingerprint of a user's current password and session generation that a link names: a
/// new password, or anything that ends the user's sessions (disabled, the API-account flag set
/// or cleared, a role removed), kills the link.
fn fingerprint(user: &User) -> String {
    hex::encode(sha256(
        format!("{}\n{}", user.session_epoch, user.password_hash).as_bytes(),
    ))
}

/// Makes a set-password link for `user` (not an API account: the caller checks) and returns its
/// URL (`<issuer>/account/set-password?token=<256-bit token>`) and expiry (Unix seconds). Only
/// the token's SHA-256 is stored.
///
/// # Errors
/// Storage failures.
pub async fn issue(
    state: &AppState,
    user: &User,
) -> Result<(String, Timestamp), crate::store::StoreError> {
    let token = random_token(32);
    let expires_at = state.clock.now() + LINK_TTL_SECS;
    let link = PasswordLink {
        user_id: user.id.clone(),
        password_fingerprint: fingerprint(user),
        expires_at,
    };
    state
        .store
        .put_password_link(&sha256(token.as_bytes()), &link)
        .await?;
    Ok((
        format!("{}{PATH}?token={token}", state.issuer.trim_end_matches('/')),
        expires_at,
    ))
}

/// The user a link's token sets the password of, if the link is live: stored, not expired, its
/// user still there, enabled, not an API account, with the password and session generation the
/// link was made for.
async fn live(state: &AppState, token: &LinkToken) -> Result<(PasswordLink, User), AppError> {
    let dead = || AppError::Forbidden(DEAD_LINK.into());
    let link = state
        .store
        .get_password_link(&sha256(token.secret().as_bytes()))
        .await?
        .filter(|l| l.expires_at > state.clock.now())
        .ok_or_else(dead)?;
    let user = state
        .store
        .get_user(&link.user_id)
        .await?
        .filter(|u| !u.api_account && !u.disabled && fingerprint(u) == link.password_fingerprint)
        .ok_or_else(dead)?;
    Ok((link, user))
}

#[derive(Template, WebTemplate)]
#[template(path = "set_password.html")]
struct SetPasswordPage {
    token: String,
    email: String,
    error: Option<String>,
    min_password: usize,
}

#[derive(Template, WebTemplate)]
#[template(path = "set_password_done.html")]
struct SetPasswordDone {
    email: String,
}

#[derive(Deserialize)]
pub(crate) struct LinkQuery {
    token: Option<LinkToken>,
}

#[derive(Deserialize)]
pub(crate) struct SetPasswordForm {
    token: LinkToken,
    password: Password,
    password_confirm: Password,
}

/// `GET /account/set-password?token=…`: the form, or 403 for a dead link.
pub(crate) async fn form(
    State(state): State<AppState>,
    Query(q): Query<LinkQuery>,
) -> Result<Response, AppError> {
    let token = q
        .token
        .ok_or_else(|| AppError::Forbidden(DEAD_LINK.into()))?;
    let (_, user) = live(&state, &token).await?;
    Ok(SetPasswordPage {
        token: token.secret().to_owned(),
        email: user.email,
        error: None,
        min_password: MIN_PASSWORD_LEN,
    }
    .into_response())
}

/// `POST /account/set-password`: sets the password if the link is live and the password
/// acceptable (422 with the form again otherwise, the link unused). Audited `user.password.set`.
pub(crate) async fn submit(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Form(f): Form<SetPasswordForm>,
) -> Result<Response, AppError> {
    let (link, read) = live(&state, &f.token).await?;
    let refusal = crate::password::refusal(&f.password)
        .map(|why| format!("The password {why}."))
        .or_else(|| (f.password != f.password_confirm).then(|| "The two passwords differ.".into()));
    if let Some(error) = refusal {
        return Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            SetPasswordPage {
                token: f.token.secret().to_owned(),
                email: read.email,
                error: Some(error),
                min_password: MIN_PASSWORD_LEN,
            },
        )
            .into_response());
    }
    // Single use: of two submissions of one link, one takes it.
    if state
        .store
        .take_password_link(&sha256(f.token.secret().as_bytes()))
        .await?
        .as_ref()
        != Some(&link)
    {
        return Err(AppError::Forbidden(DEAD_LINK.into()));
    }
    let password_hash = state
        .passwords
        .hash(f.password)
        .await
        .map_err(anyhow::Error::from)?;
    let mut user = User {
        password_hash,
        ..read.clone()
    };
    user.end_sessions();
    if !state.store.swap_user(&read, &user).await? {
        return Err(AppError::Forbidden(
            "Your account changed while the password was being set; nothing was saved. Ask your \
             administrator for a new link."
                .into(),
        ));
    }
    state.store.reset_password_failures(&user.email).await?;
    state
        .audit(Audit::by_user(
            &user,
            "user.password.set",
            Outcome::Success,
            ip.as_deref(),
        ))
        .await?;
    Ok(SetPasswordDone { email: user.email }.into_response())
}

#[cfg(test)]
#[path = "password_link_tests.rs"]
mod tests;
