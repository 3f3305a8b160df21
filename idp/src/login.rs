//! `/login`: the interactive login as a sequence of steps. A flow is started by `/authorize`;
//! its id is both in a cookie and in the form, so a post from another browser (login CSRF) fails.
//! Steps: password → decision by `padlock-policy` (allow, challenge, deny) → session and code.

use crate::domain::{LoginFlow, LoginStep, Outcome, Session, User};
use crate::error::AppError;
use crate::extract::{ClientIp, Form, Query};
use crate::oauth::authorize::issue_code;
use crate::secret::Password;
use crate::session::{self, FLOW_COOKIE, FLOW_TTL_SECS, SESSION_COOKIE, SESSION_TTL_SECS};
use crate::state::{AppState, Audit};
use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use padlock_policy::decision::{Decision, DenyReason};
use padlock_policy::throttle::Throttle;
use serde::Deserialize;
use subtle::ConstantTimeEq;

#[derive(Template, WebTemplate)]
#[template(path = "login.html")]
struct LoginPage {
    flow: String,
    email: String,
    error: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct FlowQuery {
    flow: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    flow: String,
    email: String,
    password: Password,
}

pub(crate) const NO_FLOW: &str = "This sign-in page was not opened by an application, or it expired. Go back to the application and sign in from there.";
const WRONG: &str = "The email or the password is not right.";
const OUT_OF_STEP: &str = "This sign-in already passed its password step. Continue on the code page, or start again from the application.";

/// The flow named by `id`, if this browser started it and it has not expired.
pub(crate) async fn flow_of(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
) -> Result<LoginFlow, AppError> {
    let same_browser = session::cookie(state, headers, FLOW_COOKIE)
        .is_some_and(|c| bool::from(c.as_bytes().ct_eq(id.as_bytes())));
    if !same_browser {
        return Err(AppError::Forbidden(NO_FLOW.into()));
    }
    let flow = state.store.get_login_flow(&session::digest(id)).await?;
    flow.filter(|f| f.expires_at > state.clock.now())
        .ok_or_else(|| AppError::Forbidden(NO_FLOW.into()))
}

pub(crate) async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<FlowQuery>,
) -> Result<Response, AppError> {
    let id = q.flow.ok_or_else(|| AppError::BadRequest(NO_FLOW.into()))?;
    let flow = flow_of(&state, &headers, &id).await?;
    Ok(LoginPage {
        flow: id,
        email: flow.request.login_hint.unwrap_or_default(),
        error: None,
    }
    .into_response())
}

pub(crate) fn again(flow: String, email: String, error: &str, status: StatusCode) -> Response {
    (
        status,
        LoginPage {
            flow,
            email,
            error: Some(error.to_owned()),
        },
    )
        .into_response()
}

pub(crate) async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    Form(f): Form<LoginForm>,
) -> Result<Response, AppError> {
    let ip = ip.as_deref();
    if let Some(retry_after_secs) = state.refuse_source(ip, "login.password").await? {
        return Err(AppError::TooManyRequests {
            message: crate::factor::TOO_MANY_FROM_HERE.into(),
            retry_after_secs,
        });
    }
    let flow = flow_of(&state, &headers, &f.flow).await?;
    // A password posted to a flow past its password step (say, to draw another code) is refused.
    if flow.step != LoginStep::Password {
        return Ok(again(f.flow, f.email, OUT_OF_STEP, StatusCode::CONFLICT));
    }
    let now = state.clock.now();
    // Counted before the password is checked, by login name, whether or not the account exists.
    // A name longer than any account's email cannot sign in: it is not stored, it still costs the
    // one hash every failure costs.
    let throttle = if f.email.len() <= crate::domain::MAX_EMAIL_BYTES {
        state
            .store
            .admit_password_attempt(&f.email, now, &state.limits.passwords)
            .await?
    } else {
        Throttle::Admitted
    };
    match throttle {
        Throttle::Admitted => {}
        Throttle::Wait { retry_at } => {
            let m = format!(
                "Too many wrong passwords for this email. Wait {} seconds, then try again.",
                retry_at.saturating_sub(now).max(1)
            );
            return Ok(again(f.flow, f.email, &m, StatusCode::TOO_MANY_REQUESTS));
        }
        Throttle::Locked { until } => {
            let m = format!(
                "Too many wrong passwords: signing in with this email is locked until {}.",
                crate::domain::format_time(until)
            );
            return Ok(again(f.flow, f.email, &m, StatusCode::TOO_MANY_REQUESTS));
        }
    }
    let user = state.store.find_user_by_email(&f.email).await?;
    // The same argon2 work whether or not the user exists; API accounts have no usable hash.
    let ok = state
        .passwords
        .verify(user.as_ref().map(|u| u.password_hash.as_str()), f.password)
        .await;
    let (user, action) = match user {
        Some(u) if ok => {
            let (decision, tenant) = decide_for(&state, &u, &flow).await?;
            match decision {
                Decision::Allow { amr, acr } => {
                    state.store.reset_password_failures(&f.email).await?;
                    state
                        .audit(Audit::by_user(&u, "login.password", Outcome::Success, ip))
                        .await?;
                    let s = Session {
                        user_id: u.id.clone(),
                        auth_time: now,
                        amr,
                        acr,
                        epoch: u.session_epoch,
                        second_factor_at: None,
                        expires_at: now + SESSION_TTL_SECS,
                        step_up: None,
                        totp_pending: None,
                        duo_push: None,
                        duo_pending: None,
                    };
                    return complete(&state, &f.flow, flow, s).await;
                }
                Decision::Challenge(factor) => {
                    state.store.reset_password_failures(&f.email).await?;
                    return crate::factor::begin(&state, &f.flow, flow, &u, &tenant, factor, ip)
                        .await;
                }
                // An account that may not sign in here gets the answer a wrong password gets, so
                // the answer never tells that the password was right; the audit says why.
                Decision::Deny(reason) => (Some(u), deny_action(reason)),
            }
        }
        other => (other, "login.password"),
    };
    state.limits.record_source_failure(ip, now);
    let event = match &user {
        Some(u) => Audit::by_user(u, action, Outcome::Failure, ip),
        None => Audit {
            tenant: None,
            actor: &f.email,
            action,
            target: &f.email,
            outcome: Outcome::Failure,
            source_ip: ip,
        },
    };
    state.audit(event).await?;
    Ok(again(f.flow, f.email, WRONG, StatusCode::UNAUTHORIZED))
}

/// The audit action of a refused sign-in with a right password.
fn deny_action(reason: DenyReason) -> &'static str {
    match reason {
        DenyReason::ApiAccount => "login.denied.api_account",
        DenyReason::Disabled => "login.denied.disabled",
        DenyReason::LockedOut { .. } => "login.denied.locked",
        DenyReason::NoUsableMethod => "login.denied.no_method",
    }
}

/// Whether the sign-in of `flow` asks for a second factor whatever the company's switch says: the
/// panel asked for one (`acr_values`), or an operator (a person holding `company.manage` in the
/// operator company) signs in to Padlock's own pages — operator actions need one.
pub(crate) fn asks_second_factor(
    flow: &LoginFlow,
    tenant: &crate::domain::Tenant,
    user: &User,
) -> bool {
    flow.request.second_factor_requested
        || (flow.request.client_id.as_str() == OWN_PAGES
            && tenant.operator
            && tenant.is_manager(user))
}

/// The policy decision for `user` after a correct password in the sign-in `flow`.
async fn decide_for(
    state: &AppState,
    user: &User,
    flow: &LoginFlow,
) -> Result<(Decision, crate::domain::Tenant), AppError> {
    let tenant = state
        .store
        .get_tenant(&user.tenant)
        .await?
        .ok_or_else(|| anyhow::anyhow!("user {} has no company", user.id))?;
    let requested = asks_second_factor(flow, &tenant, user);
    let decision = crate::factor::engine::decision(state, user, &tenant, requested).await?;
    Ok((decision, tenant))
}

/// What a user past the password step reads while their second factor is locked.
pub(crate) fn locked_message(until: u64) -> String {
    format!(
        "Too many failed attempts: sign-in is locked until {}.",
        crate::domain::format_time(until)
    )
}

/// Starts the login `flow`: stores it under a fresh id, sets the flow cookie that binds it to this
/// browser, and sends the browser to the password step. Errors: storage failures.
pub(crate) async fn start(state: &AppState, flow: &LoginFlow) -> Result<Response, AppError> {
    let flow_id = crate::crypto::random_token(32);
    state
        .store
        .put_login_flow(&session::digest(&flow_id), flow)
        .await?;
    let cookie = session::set_cookie(state, FLOW_COOKIE, &flow_id, FLOW_TTL_SECS);
    Ok((
        StatusCode::SEE_OTHER,
        [(header::SET_COOKIE, cookie)],
        [(header::LOCATION, format!("/login?flow={flow_id}"))],
    )
        .into_response())
}

/// The client id a sign-in to Padlock's own pages carries (no registered client has it: client
/// ids are generated with a `c_` prefix).
const OWN_PAGES: &str = "padlock";

/// Sends the browser through Padlock's own sign-in (the same steps as a panel's, the company's
/// second factor included) and back to `path` afterwards. `path` must be a path on Padlock's own
/// origin (`/…`, not `//…`, no backslash or control character); anything else is refused (400).
/// Each such sign-in counts against the source's flow limit, as `/authorize` does (429).
pub(crate) async fn sign_in_to(
    state: &AppState,
    path: &str,
    ip: Option<&str>,
) -> Result<Response, AppError> {
    if !is_own_path(path) {
        return Err(AppError::BadRequest(
            "only a page of this Padlock can be returned to".into(),
        ));
    }
    let now = state.clock.now();
    if let Some(refusal) = state.limits.admit_flow(ip, now) {
        let retry_after_secs = state.refused_source(ip, "authorize", refusal).await?;
        return Err(AppError::TooManyRequests {
            message: "Too many sign-ins were started from your network. Wait a few minutes, then try again.".into(),
            retry_after_secs,
        });
    }
    let flow = LoginFlow {
        request: crate::domain::AuthRequest {
            client_id: crate::secret::ClientId::from_string(OWN_PAGES.into()),
            redirect_uri: String::new(),
            scope: String::new(),
            state: None,
            nonce: None,
            code_challenge: None,
            second_factor_requested: false,
            login_hint: None,
        },
        step: LoginStep::Password,
        expires_at: now + FLOW_TTL_SECS,
        return_to: Some(path.to_owned()),
    };
    start(state, &flow).await
}

/// A path on this origin: `/` then no second `/` or `\\` at the start, no backslash or control
/// character anywhere (so no browser reads it as another host).
pub(crate) fn is_own_path(path: &str) -> bool {
    path.starts_with('/')
        && !path.starts_with("//")
        && !path.contains('\\')
        && !path.chars().any(char::is_control)
}

/// Ends the flow: starts the session, clears the flow cookie, answers the application.
pub(crate) async fn complete(
    state: &AppState,
    flow_id: &str,
    flow: LoginFlow,
    s: Session,
) -> Result<Response, AppError> {
    if state
        .store
        .take_login_flow(&session::digest(flow_id))
        .await?
        .is_none()
    {
        return Err(AppError::Forbidden(NO_FLOW.into()));
    }
    let cookie = session::start(state, &s).await?;
    let mut resp = match &flow.return_to {
        // A sign-in to Padlock's own page: back to it, no code for anyone.
        Some(path) => (StatusCode::SEE_OTHER, [(header::LOCATION, path.clone())]).into_response(),
        None => issue_code(state, &flow.request, &s).await?,
    };
    let h = resp.headers_mut();
    h.append(
        header::SET_COOKIE,
        session::set_cookie(state, SESSION_COOKIE, &cookie, SESSION_TTL_SECS),
    );
    h.append(
        header::SET_COOKIE,
        session::set_cookie(state, FLOW_COOKIE, "", 0),
    );
    Ok(resp)
}

#[cfg(test)]
#[path = "login_tests.rs"]
mod tests;
