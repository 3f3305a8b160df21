//! `/login`: the interactive login as a sequence of steps. A flow is started by `/authorize`;
//! its id is both in a cookie and in the form, so a post from another browser (login CSRF) fails.
//! Steps: password → decision by `padlock-policy` (allow, challenge, deny) → session and code.

use crate::domain::{LoginFlow, Outcome, Session, User};
use crate::error::AppError;
use crate::extract::{ClientIp, Form};
use crate::oauth::authorize::issue_code;
use crate::secret::Password;
use crate::session::{self, FLOW_COOKIE, SESSION_COOKIE, SESSION_TTL_SECS};
use crate::state::{AppState, Audit};
use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use padlock_policy::decision::{Decision, DenyReason, Subject, decide};
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
    let flow = flow_of(&state, &headers, &f.flow).await?;
    let ip = ip.as_deref();
    let user = state.store.find_user_by_email(&f.email).await?;
    // The same argon2 work whether or not the user exists; API accounts have no usable hash.
    let ok = state
        .passwords
        .verify(user.as_ref().map(|u| u.password_hash.as_str()), f.password)
        .await;
    let Some(user) = user.filter(|_| ok) else {
        state
            .audit(Audit {
                tenant: None,
                actor: &f.email,
                action: "login.password",
                target: &f.email,
                outcome: Outcome::Failure,
                source_ip: ip,
            })
            .await?;
        return Ok(again(f.flow, f.email, WRONG, StatusCode::UNAUTHORIZED));
    };
    let (decision, tenant) =
        decide_for(&state, &user, flow.request.second_factor_requested).await?;
    match decision {
        Decision::Allow { amr, acr } => {
            state
                .audit(Audit::by_user(
                    &user,
                    "login.password",
                    Outcome::Success,
                    ip,
                ))
                .await?;
            let now = state.clock.now();
            let s = Session {
                user_id: user.id.clone(),
                auth_time: now,
                amr,
                acr,
                second_factor_at: None,
                expires_at: now + SESSION_TTL_SECS,
                step_up: None,
                totp_pending: None,
            };
            complete(&state, &f.flow, flow, s).await
        }
        Decision::Deny(reason) => {
            state
                .audit(Audit::by_user(&user, "login.denied", Outcome::Failure, ip))
                .await?;
            Ok(again(
                f.flow,
                f.email,
                &deny_message(reason),
                StatusCode::FORBIDDEN,
            ))
        }
        Decision::Challenge(factor) => {
            crate::factor::begin(&state, &f.flow, flow, &user, &tenant, factor, ip).await
        }
    }
}

/// The policy decision for `user` after a correct password.
async fn decide_for(
    state: &AppState,
    user: &User,
    second_factor_requested: bool,
) -> Result<(Decision, crate::domain::Tenant), AppError> {
    let tenant = state
        .store
        .get_tenant(&user.tenant)
        .await?
        .ok_or_else(|| anyhow::anyhow!("user {} has no company", user.id))?;
    let lockout = state.store.lockout_state(&user.id).await?;
    let subject = Subject {
        email: &user.email,
        mobile: user.mobile.as_ref(),
        preferred: user.preferred_method,
        totp_enrolled: user.totp.is_some(),
        duo_enrolled: user.duo.as_ref().is_some_and(|d| d.active),
        api_account: user.api_account,
        disabled: user.disabled,
    };
    Ok((
        decide(
            &tenant.two_factor,
            &subject,
            &lockout,
            &state.lockout,
            second_factor_requested,
            state.clock.now(),
        ),
        tenant,
    ))
}

pub(crate) fn deny_message(reason: DenyReason) -> String {
    match reason {
        DenyReason::ApiAccount => "This is an API account: it cannot sign in here. API accounts authenticate with their client credentials only.".into(),
        DenyReason::Disabled => "This account is disabled. Contact your administrator.".into(),
        DenyReason::LockedOut { until } => format!("Too many failed attempts: sign-in is locked until {}.", crate::domain::format_time(until)),
        DenyReason::NoUsableMethod => "Your company requires a second factor you have not set up. Contact your administrator.".into(),
    }
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
    let mut resp = issue_code(state, &flow.request, &s).await?;
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
