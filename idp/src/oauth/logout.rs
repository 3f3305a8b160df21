//! `GET|POST /logout` (OpenID Connect RP-Initiated Logout 1.0): ends the Padlock session and returns
//! to the panel's registered post-logout URI, if it names one.
//!
//! Any site can send a browser here, so a request ends the session at once only when its
//! `id_token_hint` names the signed-in user. Without a hint, or with a hint for another user,
//! Padlock asks first (§2: the OP MUST ask the End-User when no `id_token_hint` was given or when
//! it does not belong to the signed-in End-User): a page whose form posts back here with a CSRF
//! token bound to the session ([`crate::session::csrf_token`]). Only that post ends the session;
//! a post from elsewhere, which cannot know the token, gets the same question.

use super::authorize::redirect_to;
use super::tokens::IdClaims;
use crate::domain::{ClientKind, Outcome};
use crate::error::AppError;
use crate::extract::{ClientIp, Query};
use crate::jwt::{self, TYP_JWT};
use crate::secret::ClientId;
use crate::session::{self, SESSION_COOKIE};
use crate::state::{AppState, Audit};
use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

#[derive(Template, WebTemplate)]
#[template(path = "signed_out.html")]
struct SignedOut;

/// "Sign out of Padlock?": the question asked before ending a session on a request that did not
/// prove it comes from the signed-in user's panel.
#[derive(Template, WebTemplate)]
#[template(path = "logout_confirm.html")]
struct Confirm {
    email: String,
    csrf: String,
    client_id: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
}

#[derive(Deserialize, Default)]
pub(crate) struct LogoutParams {
    id_token_hint: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
    client_id: Option<String>,
    /// The confirmation form's CSRF token; read from a POST body only.
    csrf: Option<String>,
}

pub(crate) async fn get(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Query(p): Query<LogoutParams>,
) -> Result<Response, AppError> {
    // A GET never confirms: a link or an image could carry the token to another site.
    let p = LogoutParams { csrf: None, ..p };
    logout(state, ip, headers, p).await
}

pub(crate) async fn post(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    crate::extract::Form(p): crate::extract::Form<LogoutParams>,
) -> Result<Response, AppError> {
    logout(state, ip, headers, p).await
}

async fn logout(
    state: AppState,
    ip: Option<String>,
    headers: HeaderMap,
    p: LogoutParams,
) -> Result<Response, AppError> {
    // The hint may be expired; only its signature and audience matter here.
    let hinted: Option<IdClaims> = match p.id_token_hint.as_deref() {
        Some(t) => Some(jwt::verify(&state.keys.get(), t, TYP_JWT).map_err(|_| {
            AppError::BadRequest("The id_token_hint is not a token from this Padlock.".into())
        })?),
        None => None,
    };
    let client_id = match (&hinted, p.client_id.as_deref()) {
        (Some(h), Some(c)) if h.aud != c => {
            return Err(AppError::BadRequest(
                "client_id does not match the id_token_hint.".into(),
            ));
        }
        (Some(h), _) => Some(h.aud.clone()),
        (None, c) => c.map(str::to_owned),
    };
    let target = match p.post_logout_redirect_uri.as_deref() {
        None => None,
        Some(uri) => {
            let client = match &client_id {
                Some(c) => {
                    state
                        .store
                        .get_client(&ClientId::from_string(c.clone()))
                        .await?
                }
                None => None,
            };
            let registered = client.is_some_and(|c| matches!(&c.kind, ClientKind::RelyingPanel { post_logout_redirect_uris, .. } if post_logout_redirect_uris.iter().any(|u| u == uri)));
            if !registered {
                return Err(AppError::BadRequest(
                    "The post-logout address is not registered for this application.".into(),
                ));
            }
            Some(uri.to_owned())
        }
    };
    if let Some((digest, s)) = session::current(&state, &headers).await? {
        let user = state.store.get_user(&s.user_id).await?;
        let confirmed = match p.csrf.as_deref() {
            Some(token) => {
                session::check_csrf(&state, &digest, token)?;
                true
            }
            None => false,
        };
        let hint_names_user = hinted.as_ref().is_some_and(|h| h.sub == s.user_id.as_str());
        if !confirmed && !hint_names_user {
            let page = Confirm {
                email: user.map(|u| u.email).unwrap_or_default(),
                csrf: session::csrf_token(&state, &digest),
                client_id: client_id.filter(|_| target.is_some()),
                post_logout_redirect_uri: target,
                state: p.state,
            };
            return Ok(page.into_response());
        }
        state.store.delete_session(&digest).await?;
        let event = match &user {
            Some(u) => Audit::by_user(u, "logout", Outcome::Success, ip.as_deref()),
            None => Audit {
                tenant: None,
                actor: s.user_id.as_str(),
                action: "logout",
                target: s.user_id.as_str(),
                outcome: Outcome::Success,
                source_ip: ip.as_deref(),
            },
        };
        state.audit(event).await?;
    }
    let clear = session::set_cookie(&state, SESSION_COOKIE, "", 0);
    let mut resp = match target {
        Some(uri) => {
            let params: Vec<(&str, &str)> = p
                .state
                .as_deref()
                .map(|s| vec![("state", s)])
                .unwrap_or_default();
            redirect_to(&state, &uri, &params)
        }
        None => SignedOut.into_response(),
    };
    resp.headers_mut().append(header::SET_COOKIE, clear);
    Ok(resp)
}
