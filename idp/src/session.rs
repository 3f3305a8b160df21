//! Browser state: the session cookie (`padlock_session`) and the login-flow cookie
//! (`padlock_flow`). Both are random 256-bit values; the store keeps only their SHA-256.
//! Cookies are `HttpOnly`, `SameSite=Lax`, `Path=/`, and under an https issuer also `Secure` and
//! named with the `__Host-` prefix (`__Host-padlock_session`, `__Host-padlock_flow`; RFC 6265bis
//! §4.1.3.2), so a sibling subdomain can neither set nor shadow them. Forms posted by a signed-in
//! browser carry a CSRF token bound to its session ([`csrf_token`], [`check_csrf`]).

use crate::crypto::{random_token, sha256};
use crate::domain::Session;
use crate::error::AppError;
use crate::state::AppState;
use crate::store::{Digest, StoreResult};
use axum::http::{HeaderMap, HeaderValue, header};
use subtle::ConstantTimeEq;

/// Session cookie name (base name: under an https issuer it goes out as `__Host-padlock_session`).
pub const SESSION_COOKIE: &str = "padlock_session";
/// Login-flow cookie name (base name: under an https issuer it goes out as `__Host-padlock_flow`).
pub const FLOW_COOKIE: &str = "padlock_flow";
/// The prefix browsers accept only on a `Secure`, `Path=/` cookie without `Domain`.
const HOST_PREFIX: &str = "__Host-";
/// How long a browser session lasts.
pub const SESSION_TTL_SECS: u64 = 12 * 3600;
/// How long a login flow may take.
pub const FLOW_TTL_SECS: u64 = 15 * 60;

fn https(state: &AppState) -> bool {
    state.issuer.starts_with("https://")
}

/// The name cookie `name` (a base name such as [`SESSION_COOKIE`]) has on the wire: with the
/// `__Host-` prefix when the issuer is https, as given otherwise.
#[must_use]
pub fn cookie_name(state: &AppState, name: &str) -> String {
    if https(state) {
        format!("{HOST_PREFIX}{name}")
    } else {
        name.to_owned()
    }
}

/// A `Set-Cookie` value for cookie `name` (a base name; see [`cookie_name`]) with `value`, living
/// `max_age` seconds; `max_age` 0 deletes the cookie.
#[must_use]
pub fn set_cookie(state: &AppState, name: &str, value: &str, max_age: u64) -> HeaderValue {
    let secure = if https(state) { "; Secure" } else { "" };
    let name = cookie_name(state, name);
    let text = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}");
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The value of cookie `name` (a base name; see [`cookie_name`]) in the request. Under an https
/// issuer only the `__Host-` cookie counts: a plain one may have been set by another host.
#[must_use]
pub fn cookie(state: &AppState, headers: &HeaderMap, name: &str) -> Option<String> {
    raw_cookie(headers, &cookie_name(state, name))
}

/// The value of the cookie named exactly `name`.
fn raw_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// The digest under which a cookie value is stored.
#[must_use]
pub fn digest(value: &str) -> Digest {
    sha256(value.as_bytes())
}

/// The request's live session, if any: stored, `now < expires_at`, and its user still signs in
/// interactively with the sign-in it began (not disabled, not made an API account, sessions not
/// ended since: [`crate::domain::User::end_sessions`]).
pub async fn current(
    state: &AppState,
    headers: &HeaderMap,
) -> StoreResult<Option<(Digest, Session)>> {
    let Some(value) = cookie(state, headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let d = digest(&value);
    let Some(s) = state
        .store
        .get_session(&d)
        .await?
        .filter(|s| s.expires_at > state.clock.now())
    else {
        return Ok(None);
    };
    let live = state
        .store
        .get_user(&s.user_id)
        .await?
        .is_some_and(|u| !u.disabled && !u.api_account && u.session_epoch == s.epoch);
    Ok(live.then_some((d, s)))
}

/// Stores a new session and returns its cookie value.
pub async fn start(state: &AppState, session: &Session) -> StoreResult<String> {
    let value = random_token(32);
    state.store.put_session(&digest(&value), session).await?;
    Ok(value)
}

/// The CSRF token of the forms a session posts: 128 bits of a keyed digest (master key, purpose
/// `csrf`) of the session's digest, as 32 hex characters. It lives as long as the session and
/// cannot be computed without the master key.
#[must_use]
pub fn csrf_token(state: &AppState, session: &Digest) -> String {
    hex::encode(&state.master.keyed_digest("csrf", session)[..16])
}

/// Checks a form's CSRF token against the session stored under `session` (in constant time).
///
/// # Errors
/// [`AppError::Forbidden`] when `presented` is not that session's token: the form came from
/// another site, or from a session that has since ended.
pub fn check_csrf(state: &AppState, session: &Digest, presented: &str) -> Result<(), AppError> {
    if bool::from(
        csrf_token(state, session)
            .as_bytes()
            .ct_eq(presented.as_bytes()),
    ) {
        Ok(())
    } else {
        Err(AppError::Forbidden(
            "This form expired or did not come from Padlock. Reload the page and try again.".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_named_cookie() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; padlock_flow=xyz"),
        );
        h.append(
            header::COOKIE,
            HeaderValue::from_static("padlock_session=s1"),
        );
        assert_eq!(raw_cookie(&h, FLOW_COOKIE).as_deref(), Some("xyz"));
        assert_eq!(raw_cookie(&h, SESSION_COOKIE).as_deref(), Some("s1"));
        assert_eq!(raw_cookie(&h, "b"), None);
    }
}
