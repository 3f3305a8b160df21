//! `GET|POST /authorize`: validates the request, then answers from the browser's session or starts a
//! login flow. Errors go back to the redirect URI only once the client and the exact redirect URI
//! are known to be valid; before that, the browser gets an error page.

use crate::crypto::random_token;
use crate::domain::{
    AuthCodeGrant, AuthRequest, ClientKind, LoginFlow, LoginStep, Outcome, Session, User,
};
use crate::error::AppError;
use crate::extract::{ClientIp, Query};
use crate::secret::ClientId;
use crate::session::{self, FLOW_TTL_SECS};
use crate::state::{AppState, Audit};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use padlock_policy::decision::credential_allowed;
use padlock_policy::permission::is_admin_scope;
use serde::Deserialize;

/// Authorization codes live at most this long.
pub const CODE_TTL_SECS: u64 = 60;
/// The `acr` a relying panel asks for to force a second factor.
pub const ACR_2FA: &str = "padlock:2fa";
/// Longest `state`, `nonce` or `login_hint` accepted, in bytes: anyone can start a login flow, and
/// the flow keeps these for [`FLOW_TTL_SECS`]. A longer one is `invalid_request`.
pub const MAX_PARAM_BYTES: usize = 1024;

/// Parameters of an authorization request (unknown ones are ignored).
#[derive(Debug, Default, Deserialize)]
pub struct AuthorizeParams {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
    prompt: Option<String>,
    max_age: Option<String>,
    login_hint: Option<String>,
    acr_values: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    request: Option<String>,
    request_uri: Option<String>,
}

/// A redirect to the client carrying `params` (and the issuer, RFC 9207).
pub fn redirect_to(state: &AppState, redirect_uri: &str, params: &[(&str, &str)]) -> Response {
    let mut url = match url::Url::parse(redirect_uri) {
        Ok(u) => u,
        Err(_) => {
            return AppError::BadRequest("The application's redirect address is not valid.".into())
                .into_response();
        }
    };
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
        q.append_pair("iss", &state.issuer);
    }
    (StatusCode::SEE_OTHER, [(header::LOCATION, url.to_string())]).into_response()
}

fn error_redirect(state: &AppState, req: &AuthRequest, error: &str, description: &str) -> Response {
    let mut params = vec![("error", error), ("error_description", description)];
    if let Some(s) = &req.state {
        params.push(("state", s));
    }
    redirect_to(state, &req.redirect_uri, &params)
}

fn valid_pkce_challenge(c: &str) -> bool {
    (43..=128).contains(&c.len())
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// `GET /authorize` (RFC 6749 §4.1.1, OpenID Connect Core §3.1.2.1).
///
/// Until the client and its exact redirect URI are known to be valid, an error is a 400 page and
/// never a redirect. After that, errors go back to the redirect URI with `error`, `state` and
/// `iss` (RFC 6749 §4.1.2.1, RFC 9207): `invalid_request` (no `response_type` or `scope`, bad
/// PKCE, a `state`, `nonce` or `login_hint` over [`MAX_PARAM_BYTES`] bytes, a `max_age` that is
/// not a number of seconds), `unsupported_response_type`, `request_not_supported`,
/// `request_uri_not_supported`, and `login_required` for `prompt=none` without a session that may
/// answer. Success is a 303 to the redirect URI with a `code`, or to `/login` with a new flow.
pub async fn authorize_get(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Query(p): Query<AuthorizeParams>,
) -> Result<Response, AppError> {
    authorize(state, ip, headers, p).await
}

/// `POST /authorize` (form-encoded, same parameters and answers as [`authorize_get`]).
pub async fn authorize_post(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    crate::extract::Form(p): crate::extract::Form<AuthorizeParams>,
) -> Result<Response, AppError> {
    authorize(state, ip, headers, p).await
}

async fn authorize(
    state: AppState,
    ip: Option<String>,
    headers: HeaderMap,
    p: AuthorizeParams,
) -> Result<Response, AppError> {
    let client_id = p.client_id.as_deref().ok_or_else(|| {
        AppError::BadRequest("The request names no application (client_id is missing).".into())
    })?;
    let client = state
        .store
        .get_client(&ClientId::from_string(client_id.to_owned()))
        .await?;
    let Some(client) = client else {
        return Err(AppError::BadRequest(
            "The application is not registered with Padlock.".into(),
        ));
    };
    let ClientKind::RelyingPanel {
        redirect_uris,
        public,
        ..
    } = &client.kind
    else {
        return Err(AppError::BadRequest(
            "This client cannot sign users in.".into(),
        ));
    };
    let redirect_uri = p
        .redirect_uri
        .as_deref()
        .ok_or_else(|| AppError::BadRequest("The request has no redirect_uri.".into()))?;
    if !redirect_uris.iter().any(|u| u == redirect_uri) {
        return Err(AppError::BadRequest(
            "The redirect address is not registered for this application.".into(),
        ));
    }
    // From here on the redirect URI is trusted: errors go back to the application.
    let requested: Vec<&str> = p
        .scope
        .as_deref()
        .unwrap_or("")
        .split(' ')
        .filter(|s| !s.is_empty())
        .collect();
    // Admin scopes come from client credentials only, never from a sign-in through a panel.
    let scope: Vec<&str> = requested
        .iter()
        .copied()
        .filter(|s| client.scopes.iter().any(|a| a == s) && !is_admin_scope(s))
        .collect();
    let over_long = [
        ("state", &p.state),
        ("nonce", &p.nonce),
        ("login_hint", &p.login_hint),
    ]
    .into_iter()
    .find(|(_, v)| v.as_ref().is_some_and(|v| v.len() > MAX_PARAM_BYTES))
    .map(|(name, _)| name);
    let mut req = AuthRequest {
        client_id: client.id.clone(),
        redirect_uri: redirect_uri.to_owned(),
        scope: scope.join(" "),
        // An over-long state is not echoed back either.
        state: p.state.clone().filter(|s| s.len() <= MAX_PARAM_BYTES),
        nonce: p.nonce.clone(),
        code_challenge: None,
        second_factor_requested: p
            .acr_values
            .as_deref()
            .is_some_and(|a| a.split(' ').any(|v| v == ACR_2FA)),
        login_hint: p.login_hint.clone(),
    };
    if let Some(name) = over_long {
        return Ok(error_redirect(
            &state,
            &req,
            "invalid_request",
            &format!("{name} is longer than {MAX_PARAM_BYTES} bytes"),
        ));
    }
    if p.request.is_some() {
        return Ok(error_redirect(
            &state,
            &req,
            "request_not_supported",
            "request objects are not supported",
        ));
    }
    if p.request_uri.is_some() {
        return Ok(error_redirect(
            &state,
            &req,
            "request_uri_not_supported",
            "request_uri is not supported",
        ));
    }
    match p.response_type.as_deref() {
        None => {
            return Ok(error_redirect(
                &state,
                &req,
                "invalid_request",
                "response_type is required",
            ));
        }
        Some("code") => {}
        Some(_) => {
            return Ok(error_redirect(
                &state,
                &req,
                "unsupported_response_type",
                "only response_type=code is supported",
            ));
        }
    }
    if requested.is_empty() {
        return Ok(error_redirect(
            &state,
            &req,
            "invalid_request",
            "scope is required",
        ));
    }
    match (
        p.code_challenge.as_deref(),
        p.code_challenge_method.as_deref(),
    ) {
        (Some(c), Some("S256")) if valid_pkce_challenge(c) => {
            req.code_challenge = Some(c.to_owned())
        }
        (Some(_), Some("S256")) => {
            return Ok(error_redirect(
                &state,
                &req,
                "invalid_request",
                "code_challenge must be 43 to 128 unreserved characters",
            ));
        }
        (Some(_), _) => {
            return Ok(error_redirect(
                &state,
                &req,
                "invalid_request",
                "code_challenge_method must be S256",
            ));
        }
        (None, Some(_)) => {
            return Ok(error_redirect(
                &state,
                &req,
                "invalid_request",
                "code_challenge_method without code_challenge",
            ));
        }
        (None, None) if *public => {
            return Ok(error_redirect(
                &state,
                &req,
                "invalid_request",
                "public clients must use PKCE (S256)",
            ));
        }
        (None, None) => {}
    }
    let prompts: Vec<&str> = p
        .prompt
        .as_deref()
        .unwrap_or("")
        .split(' ')
        .filter(|s| !s.is_empty())
        .collect();
    if prompts.contains(&"none") && prompts.len() > 1 {
        return Ok(error_redirect(
            &state,
            &req,
            "invalid_request",
            "prompt=none cannot be combined with other values",
        ));
    }
    let max_age = match p.max_age.as_deref().map(str::parse::<u64>) {
        None => None,
        Some(Ok(v)) => Some(v),
        Some(Err(_)) => {
            return Ok(error_redirect(
                &state,
                &req,
                "invalid_request",
                "max_age must be a number of seconds",
            ));
        }
    };

    let now = state.clock.now();
    let mut session_user = None;
    if !prompts.contains(&"login")
        && let Some((_, s)) = session::current(&state, &headers).await?
    {
        // A sign-in at t is recent enough for max_age=N while now < t + N (the rule of every
        // window, see crate::clock), so max_age=0 always asks again, as prompt=login does
        // (OpenID Connect Core §3.1.2.1).
        let fresh_enough = max_age.is_none_or(|m| now.saturating_sub(s.auth_time) < m);
        session_user = session_user_allowed(&state, &s, req.second_factor_requested).await?;
        if let Some((user, true)) = &session_user
            && fresh_enough
        {
            state
                .audit(Audit {
                    target: req.client_id.as_str(),
                    ..Audit::by_user(user, "login.sso", Outcome::Success, ip.as_deref())
                })
                .await?;
            return issue_code(&state, &req, &s).await;
        }
    }
    // From here on the request needs a sign-in: it counts against the source's flow limit, so
    // neither new flows nor prompt=none probes (each audited) come without bound.
    if let Some(refusal) = state.limits.admit_flow(ip.as_deref(), now) {
        let retry_after_secs = state
            .refused_source(ip.as_deref(), "authorize", refusal)
            .await?;
        return Err(AppError::TooManyRequests {
            message: "Too many sign-ins were started from your network. Wait a few minutes, then try again.".into(),
            retry_after_secs,
        });
    }
    if prompts.contains(&"none") {
        let event = match &session_user {
            Some((user, _)) => Audit {
                target: req.client_id.as_str(),
                ..Audit::by_user(user, "login.sso", Outcome::Failure, ip.as_deref())
            },
            None => Audit {
                tenant: None,
                actor: "-",
                action: "login.sso",
                target: req.client_id.as_str(),
                outcome: Outcome::Failure,
                source_ip: ip.as_deref(),
            },
        };
        state.audit(event).await?;
        return Ok(error_redirect(
            &state,
            &req,
            "login_required",
            "the user must sign in",
        ));
    }
    let flow = LoginFlow {
        request: req,
        step: LoginStep::Password,
        expires_at: now + FLOW_TTL_SECS,
        return_to: None,
    };
    crate::login::start(&state, &flow).await
}

/// The session's user, and whether the session may answer a new request without a new login:
/// the user is still allowed in, and the session meets the company's current policy (and the
/// panel's request for a second factor).
async fn session_user_allowed(
    state: &AppState,
    s: &Session,
    second_factor_requested: bool,
) -> Result<Option<(User, bool)>, AppError> {
    let Some(user) = state.store.get_user(&s.user_id).await? else {
        return Ok(None);
    };
    let Some(tenant) = state.store.get_tenant(&user.tenant).await? else {
        return Ok(None);
    };
    let allowed = !user.api_account
        && !user.disabled
        && credential_allowed(&tenant.two_factor, s.acr, second_factor_requested);
    Ok(Some((user, allowed)))
}

/// Issues an authorization code for `session`'s user and redirects to the client.
pub async fn issue_code(
    state: &AppState,
    req: &AuthRequest,
    s: &Session,
) -> Result<Response, AppError> {
    let code = random_token(32);
    let grant = AuthCodeGrant {
        client_id: req.client_id.clone(),
        user_id: s.user_id.clone(),
        redirect_uri: req.redirect_uri.clone(),
        scope: req.scope.clone(),
        nonce: req.nonce.clone(),
        code_challenge: req.code_challenge.clone(),
        auth_time: s.auth_time,
        amr: s.amr.clone(),
        acr: s.acr,
        epoch: s.epoch,
        expires_at: state.clock.now() + CODE_TTL_SECS,
        grant_id: random_token(16),
    };
    state
        .store
        .put_auth_code(&crate::crypto::sha256(code.as_bytes()), &grant)
        .await?;
    let mut params = vec![("code", code.as_str())];
    if let Some(st) = &req.state {
        params.push(("state", st));
    }
    Ok(redirect_to(state, &req.redirect_uri, &params))
}
