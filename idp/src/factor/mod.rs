//! The second-factor step of the login (`/login/factor`). The policy crate chose the factor;
//! [`engine`] sends the codes and checks the answers (the same engine the padlock page's step-up
//! and the PAM API use), with the challenge kept in the login flow; this module renders the
//! page and completes the login with `amr`/`acr` saying what was used.

pub(crate) mod attempt;
pub(crate) mod engine;
pub mod sms_email;
pub mod totp;

use crate::domain::{LoginFlow, LoginStep, Outcome, Session, Tenant, User};
use crate::error::AppError;
use crate::extract::{ClientIp, Form, Query};
use crate::login::{NO_FLOW, complete, flow_of, locked_message};
use crate::session::{self, SESSION_TTL_SECS};
use crate::state::AppState;
use crate::store::{Digest, StoreResult};
use askama::Template;
use askama_web::WebTemplate;
use async_trait::async_trait;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use engine::{Checked, CodeSend, Ctx, Slot, Who};
use padlock_policy::Factor;
use padlock_policy::code::{CodeChallenge, normalize_code};
use padlock_policy::decision::passed as passed_factor;
use serde::Deserialize;

#[derive(Template, WebTemplate)]
#[template(path = "factor.html")]
struct FactorPage {
    flow: String,
    prompt: String,
    can_resend: bool,
    notice: Option<String>,
    error: Option<String>,
}

/// Shown when a code could not be sent; the try is not spent.
pub const SEND_FAILED: &str =
    "Padlock could not send the code. Try again, or contact your administrator.";

fn prompt(factor: &Factor, ttl_secs: u64) -> String {
    match factor {
        Factor::Code { channel } => format!(
            "We sent a 6-digit code {}. It is valid for {}.",
            sms_email::masked(channel),
            validity(ttl_secs)
        ),
        Factor::Totp => "Enter the 6-digit code from your authenticator app.".into(),
        Factor::Duo => "Approve the Duo request.".into(),
    }
}

/// "2 minutes", "45 seconds".
fn validity(secs: u64) -> String {
    if secs.is_multiple_of(60) {
        let minutes = secs / 60;
        format!("{minutes} minute{}", if minutes == 1 { "" } else { "s" })
    } else {
        format!("{secs} seconds")
    }
}

fn page(
    state: &AppState,
    flow: &str,
    factor: &Factor,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
) -> Response {
    let p = FactorPage {
        flow: flow.to_owned(),
        prompt: prompt(factor, state.limits.code_ttl_secs),
        can_resend: matches!(factor, Factor::Code { .. }),
        notice,
        error,
    };
    (status, p).into_response()
}

/// After a correct password, when the policy asks for `factor`: move the flow to the factor step
/// and send the code (if any). The flow moves first, so of two parallel password posts only one
/// sends; a failed send moves it back to the password step.
pub(crate) async fn begin(
    state: &AppState,
    flow_id: &str,
    flow: LoginFlow,
    user: &User,
    tenant: &Tenant,
    factor: Factor,
    ip: Option<&str>,
) -> Result<Response, AppError> {
    if let Factor::Duo = factor {
        // Not reached (the password step answers a Duo user as it answers a wrong password);
        // Duo is not part of this build, so fail closed all the same.
        return Err(AppError::Forbidden(engine::DUO_UNAVAILABLE.into()));
    }
    let mut slot = FlowSlot {
        digest: session::digest(flow_id),
        flow: flow.clone(),
    };
    let at_factor = LoginFlow {
        step: LoginStep::Factor {
            user_id: user.id.clone(),
            factor: factor.clone(),
            code: None,
        },
        ..flow.clone()
    };
    if !slot.replace(state, at_factor).await? {
        return Err(AppError::Forbidden(NO_FLOW.into()));
    }
    let ctx = Ctx {
        action: ACTION,
        ip,
        pam: None,
        new_code: "Send a new code.",
    };
    if let Factor::Code { channel } = &factor {
        let who = Who { user, tenant };
        match engine::send_code(state, &mut slot, who, channel, &ctx, AT_LIMIT).await? {
            CodeSend::Sent => {}
            CodeSend::Race => return Err(AppError::Forbidden(NO_FLOW.into())),
            CodeSend::Refused(status, message) => {
                // Back to the password step (unless another request moved it since).
                slot.replace(state, flow).await?;
                return Ok(crate::login::again(
                    flow_id.to_owned(),
                    user.email.clone(),
                    &message,
                    status,
                ));
            }
        }
    }
    ctx.audit_as(state, user, "login.password", Outcome::Success)
        .await?;
    Ok((
        StatusCode::SEE_OTHER,
        [(header::LOCATION, format!("/login/factor?flow={flow_id}"))],
    )
        .into_response())
}

/// Shown when the company's sign-in settings changed between the password and the factor step.
const CHANGED: &str = "Your company's sign-in settings changed during this sign-in. Go back to the application and start again.";

/// The audit action of the login's factor step.
const ACTION: &str = "login.second_factor";
/// Refusal of a resend once the login's challenge sent its last code.
const AT_LIMIT: &str =
    "No more codes for this sign-in. Go back to the application and start again.";

/// A login flow, lent to [`engine`] as the record that holds its challenge.
struct FlowSlot {
    digest: Digest,
    flow: LoginFlow,
}

impl FlowSlot {
    /// Replaces the flow with `next` if it is still the one this slot holds.
    async fn replace(&mut self, state: &AppState, next: LoginFlow) -> StoreResult<bool> {
        let swapped = state
            .store
            .swap_login_flow(&self.digest, &self.flow, &next)
            .await?;
        if swapped {
            self.flow = next;
        }
        Ok(swapped)
    }
}

#[async_trait]
impl Slot for FlowSlot {
    fn binding(&self) -> &Digest {
        &self.digest
    }

    fn code(&self) -> Option<&CodeChallenge> {
        match &self.flow.step {
            LoginStep::Factor { code, .. } => code.as_ref(),
            LoginStep::Password => None,
        }
    }

    async fn put_code(
        &mut self,
        state: &AppState,
        code: Option<CodeChallenge>,
    ) -> StoreResult<bool> {
        let mut next = self.flow.clone();
        let LoginStep::Factor { code: slot, .. } = &mut next.step else {
            return Ok(false);
        };
        *slot = code;
        self.replace(state, next).await
    }
}

#[derive(Deserialize)]
pub(crate) struct FlowQuery {
    flow: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct FactorForm {
    flow: String,
    code: Option<String>,
    resend: Option<String>,
}

/// The flow at its factor step, with its user.
async fn factor_flow(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
) -> Result<(LoginFlow, User, Factor), AppError> {
    let flow = flow_of(state, headers, id).await?;
    let LoginStep::Factor {
        user_id, factor, ..
    } = flow.step.clone()
    else {
        return Err(AppError::Forbidden(NO_FLOW.into()));
    };
    let user = state
        .store
        .get_user(&user_id)
        .await?
        .filter(|u| !u.disabled && !u.api_account)
        .ok_or_else(|| AppError::Forbidden(NO_FLOW.into()))?;
    Ok((flow, user, factor))
}

pub(crate) async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<FlowQuery>,
) -> Result<Response, AppError> {
    let id = q.flow.ok_or_else(|| AppError::BadRequest(NO_FLOW.into()))?;
    let (_, _, factor) = factor_flow(&state, &headers, &id).await?;
    Ok(page(&state, &id, &factor, StatusCode::OK, None, None))
}

pub(crate) async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    Form(f): Form<FactorForm>,
) -> Result<Response, AppError> {
    let ip = ip.as_deref();
    if let Some(retry_after_secs) = state.refuse_source(ip, "login.second_factor").await? {
        return Err(AppError::TooManyRequests {
            message: TOO_MANY_FROM_HERE.into(),
            retry_after_secs,
        });
    }
    let (flow, user, factor) = factor_flow(&state, &headers, &f.flow).await?;
    let now = state.clock.now();
    let reply = |status, notice: Option<String>, error: Option<String>| {
        page(&state, &f.flow, &factor, status, notice, error)
    };
    let tenant = state
        .store
        .get_tenant(&user.tenant)
        .await?
        .ok_or_else(|| anyhow::anyhow!("user {} has no company", user.id))?;
    let who = Who {
        user: &user,
        tenant: &tenant,
    };
    let ctx = Ctx {
        action: ACTION,
        ip,
        pam: None,
        new_code: "Send a new code.",
    };
    // The decision is asked again, as PAM's auth does: a company whose switch or methods changed
    // since the password step does not complete the login with the old factor.
    let decided = engine::decision(&state, &user, &tenant, flow.request.second_factor_requested);
    if !engine::still_asked(&decided.await?, &factor) {
        ctx.audit_as(&state, &user, "login.denied.changed", Outcome::Failure)
            .await?;
        return Ok(reply(StatusCode::FORBIDDEN, None, Some(CHANGED.into())));
    }
    let mut slot = FlowSlot {
        digest: session::digest(&f.flow),
        flow,
    };
    const RACE: &str = "This sign-in changed in another window. Try again.";

    if f.resend.is_some() {
        let (Factor::Code { channel }, Some(_)) = (&factor, slot.code()) else {
            return Ok(reply(
                StatusCode::BAD_REQUEST,
                None,
                Some("There is no code to resend.".into()),
            ));
        };
        return Ok(
            match engine::send_code(&state, &mut slot, who, channel, &ctx, AT_LIMIT).await? {
                CodeSend::Sent => reply(
                    StatusCode::OK,
                    Some("A new code is on its way. The previous one no longer works.".into()),
                    None,
                ),
                CodeSend::Refused(status, message) => reply(status, None, Some(message)),
                CodeSend::Race => reply(StatusCode::CONFLICT, None, Some(RACE.into())),
            },
        );
    }

    let Some(typed) = f.code.as_deref().and_then(normalize_code) else {
        return Ok(reply(
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            Some("Enter the 6 digits of the code.".into()),
        ));
    };
    match engine::check(&state, &mut slot, who, &factor, &typed, &ctx).await? {
        Checked::Passed => {}
        Checked::Failed { message, .. } => {
            return Ok(reply(StatusCode::UNAUTHORIZED, None, Some(message)));
        }
        Checked::Locked { until } => {
            return Ok(reply(
                StatusCode::FORBIDDEN,
                None,
                Some(locked_message(until)),
            ));
        }
        Checked::NoCode => return Err(AppError::Forbidden(NO_FLOW.into())),
        Checked::Race => return Ok(reply(StatusCode::CONFLICT, None, Some(RACE.into()))),
    }
    let (amr, acr) = passed_factor(&factor);
    let s = Session {
        user_id: user.id.clone(),
        auth_time: now,
        amr,
        acr,
        second_factor_at: Some(now),
        expires_at: now + SESSION_TTL_SECS,
        step_up: None,
        totp_pending: None,
    };
    complete(&state, &f.flow, slot.flow, s).await
}

/// Shown when one source address failed too often.
pub(crate) const TOO_MANY_FROM_HERE: &str =
    "Too many failed attempts from your network. Wait a few minutes, then try again.";

#[cfg(test)]
pub(crate) mod tests;
