//! The second-factor step of the login (`/login/factor`). The policy crate chose the factor;
//! [`engine`] sends the codes and checks the answers (the same engine the padlock page's step-up
//! and the PAM API use), with the challenge kept in the login flow; this module renders the
//! page and completes the login with `amr`/`acr` saying what was used.

pub(crate) mod attempt;
pub(crate) mod engine;
pub mod sms_email;
pub mod totp;
pub mod totp_enrolment;

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
use engine::{Checked, CodeSend, Ctx, DuoStart, PushSend, PushState, PushText, Slot, Who};
use padlock_policy::Factor;
use padlock_policy::code::{CodeChallenge, normalize_code};
use padlock_policy::decision::passed as passed_factor;
use padlock_policy::duo::{DuoPush, normalize_passcode};
use serde::Deserialize;

#[derive(Template, WebTemplate)]
#[template(path = "factor.html")]
struct FactorPage {
    flow: String,
    prompt: String,
    can_resend: bool,
    /// Duo: push and passcode forms instead of the code form.
    duo: bool,
    /// Duo: a push is waiting; the page reloads itself (no JavaScript) to ask again.
    waiting: bool,
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
        Factor::Duo => {
            "Approve the Duo push on your phone, or type a passcode from Duo Mobile.".into()
        }
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
    page_with(state, flow, factor, false, status, notice, error)
}

/// [`page`], saying whether a Duo push is waiting (the page then reloads itself).
fn page_with(
    state: &AppState,
    flow: &str,
    factor: &Factor,
    waiting: bool,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
) -> Response {
    let p = FactorPage {
        flow: flow.to_owned(),
        prompt: prompt(factor, state.limits.code_ttl_secs),
        can_resend: matches!(factor, Factor::Code { .. }),
        duo: matches!(factor, Factor::Duo),
        waiting,
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
    let ctx = Ctx {
        action: ACTION,
        ip,
        pam: None,
        new_code: "Send a new code.",
    };
    let who = Who { user, tenant };
    let mut duo_bypassed = false;
    let factor = match factor {
        Factor::Duo => match engine::duo_start(state, who, &ctx).await? {
            DuoStart::Ask => Factor::Duo,
            DuoStart::Instead(f) => {
                duo_bypassed = true;
                f
            }
            DuoStart::Refused(message) => {
                return Ok(crate::login::again(
                    flow_id.to_owned(),
                    user.email.clone(),
                    &message,
                    StatusCode::FORBIDDEN,
                ));
            }
        },
        f => f,
    };
    let mut slot = FlowSlot {
        digest: session::digest(flow_id),
        flow: flow.clone(),
    };
    let at_factor = LoginFlow {
        step: LoginStep::Factor {
            user_id: user.id.clone(),
            factor: factor.clone(),
            code: None,
            duo_push: None,
            duo_bypassed,
            epoch: user.session_epoch,
        },
        ..flow.clone()
    };
    if !slot.replace(state, at_factor).await? {
        return Err(AppError::Forbidden(NO_FLOW.into()));
    }
    let sent = match &factor {
        Factor::Code { channel } => {
            engine::send_code(state, &mut slot, who, channel, &ctx, AT_LIMIT).await?
        }
        Factor::Duo => match send_push(state, &mut slot, who, &ctx).await? {
            PushSend::Sent => CodeSend::Sent,
            PushSend::Refused(status, message) => CodeSend::Refused(status, message),
            PushSend::Race => CodeSend::Race,
        },
        Factor::Totp => CodeSend::Sent,
    };
    {
        match sent {
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

/// Duo's `type` for a web sign-in: Duo Mobile shows "<type>: <application>".
const PUSH_KIND: &str = "Sign-in";
/// Longest a self-reloading Duo page waits on Duo per load.
const PUSH_POLL: std::time::Duration = std::time::Duration::from_secs(8);

/// Sends the login's Duo push, naming the company and the relying panel (Duo's `pushinfo`).
async fn send_push(
    state: &AppState,
    slot: &mut FlowSlot,
    who: Who<'_>,
    ctx: &Ctx<'_>,
) -> Result<PushSend, AppError> {
    let application = match slot.flow.return_to {
        // A sign-in to Padlock's own pages.
        Some(_) => "Padlock".to_owned(),
        None => state
            .store
            .get_client(&slot.flow.request.client_id)
            .await?
            .map_or_else(|| slot.flow.request.client_id.to_string(), |c| c.name),
    };
    let info = [
        ("company", who.tenant.name.as_str()),
        ("application", application.as_str()),
    ];
    let text = PushText {
        kind: PUSH_KIND,
        info: &info,
    };
    engine::push(state, slot, who, text, ctx).await
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

    fn push(&self) -> Option<&DuoPush> {
        match &self.flow.step {
            LoginStep::Factor { duo_push, .. } => duo_push.as_ref(),
            LoginStep::Password => None,
        }
    }

    async fn put(
        &mut self,
        state: &AppState,
        code: Option<CodeChallenge>,
        push: Option<DuoPush>,
    ) -> StoreResult<bool> {
        let mut next = self.flow.clone();
        let LoginStep::Factor {
            code: code_slot,
            duo_push,
            ..
        } = &mut next.step
        else {
            return Ok(false);
        };
        *code_slot = code;
        *duo_push = push;
        self.replace(state, next).await
    }
}

#[derive(Deserialize)]
pub(crate) struct FlowQuery {
    flow: Option<String>,
    /// Set by the Duo page's reload: ask Duo whether the push was answered.
    wait: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct FactorForm {
    flow: String,
    /// The code (SMS/Email, TOTP) or Duo passcode.
    code: Option<String>,
    resend: Option<String>,
    /// Duo: send a (new) push.
    push: Option<String>,
}

/// The flow at its factor step, with its user.
async fn factor_flow(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
) -> Result<(LoginFlow, User, Factor), AppError> {
    let flow = flow_of(state, headers, id).await?;
    let LoginStep::Factor {
        user_id,
        factor,
        epoch,
        ..
    } = flow.step.clone()
    else {
        return Err(AppError::Forbidden(NO_FLOW.into()));
    };
    let user = state
        .store
        .get_user(&user_id)
        .await?
        .filter(|u| !u.disabled && !u.api_account && u.session_epoch == epoch)
        .ok_or_else(|| AppError::Forbidden(NO_FLOW.into()))?;
    Ok((flow, user, factor))
}

pub(crate) async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    Query(q): Query<FlowQuery>,
) -> Result<Response, AppError> {
    let id = q.flow.ok_or_else(|| AppError::BadRequest(NO_FLOW.into()))?;
    let (flow, user, factor) = factor_flow(&state, &headers, &id).await?;
    let mut slot = FlowSlot {
        digest: session::digest(&id),
        flow,
    };
    if factor != Factor::Duo || slot.push().is_none() {
        return Ok(page(&state, &id, &factor, StatusCode::OK, None, None));
    }
    if q.wait.is_none() {
        return Ok(page_with(
            &state,
            &id,
            &factor,
            true,
            StatusCode::OK,
            None,
            None,
        ));
    }
    // The reload of a waiting Duo page: ask Duo (it holds the call until the user answers).
    let tenant = company_of(&state, &user).await?;
    let ctx = Ctx {
        action: ACTION,
        ip: ip.as_deref(),
        pam: None,
        new_code: "Send a new code.",
    };
    let who = Who {
        user: &user,
        tenant: &tenant,
    };
    if let Some(refusal) = changed(&state, &id, &slot.flow, &factor, who, &ctx).await? {
        return Ok(refusal);
    }
    let reply = |waiting, error: Option<String>| {
        page_with(&state, &id, &factor, waiting, StatusCode::OK, None, error)
    };
    Ok(
        match engine::push_status(&state, &mut slot, who, &ctx, PUSH_POLL).await? {
            PushState::Passed => {
                // Asked again: the wait on Duo took time, and the company or the user may have
                // changed meanwhile.
                if let Some(refusal) = changed(&state, &id, &slot.flow, &factor, who, &ctx).await? {
                    return Ok(refusal);
                }
                return finish(&state, &id, slot.flow, &user, &factor).await;
            }
            PushState::Waiting => reply(true, None),
            PushState::Failed { message, .. } => reply(false, Some(message)),
            PushState::Unavailable => reply(true, Some(engine::DUO_DOWN.into())),
            PushState::NoPush => reply(false, None),
        },
    )
}

/// The refusal page (audited `login.denied.changed`) when the decision for the login of `flow`
/// no longer asks for its `factor` — the company's switch or methods, or the user, changed since
/// the password step — or `None` while it still does.
async fn changed(
    state: &AppState,
    flow_id: &str,
    flow: &LoginFlow,
    factor: &Factor,
    who: Who<'_>,
    ctx: &Ctx<'_>,
) -> Result<Option<Response>, AppError> {
    let requested = crate::login::asks_second_factor(flow, who.tenant, who.user);
    let decided = engine::decision(state, who.user, who.tenant, requested).await?;
    let bypassed = matches!(
        flow.step,
        LoginStep::Factor {
            duo_bypassed: true,
            ..
        }
    );
    if engine::still_asked(&decided, factor, bypassed, who) {
        return Ok(None);
    }
    ctx.audit_as(state, who.user, "login.denied.changed", Outcome::Failure)
        .await?;
    Ok(Some(page(
        state,
        flow_id,
        factor,
        StatusCode::FORBIDDEN,
        None,
        Some(CHANGED.into()),
    )))
}

/// The user's company.
async fn company_of(state: &AppState, user: &User) -> Result<Tenant, AppError> {
    Ok(state
        .store
        .get_tenant(&user.tenant)
        .await?
        .ok_or_else(|| anyhow::anyhow!("user {} has no company", user.id))?)
}

/// Completes the login of `user`, who passed the password and then `factor`.
async fn finish(
    state: &AppState,
    flow_id: &str,
    flow: LoginFlow,
    user: &User,
    factor: &Factor,
) -> Result<Response, AppError> {
    let now = state.clock.now();
    let (amr, acr) = passed_factor(factor);
    let s = Session {
        user_id: user.id.clone(),
        auth_time: now,
        amr,
        acr,
        epoch: user.session_epoch,
        second_factor_at: Some(now),
        expires_at: now + SESSION_TTL_SECS,
        step_up: None,
        totp_pending: None,
        duo_push: None,
        duo_pending: None,
    };
    complete(state, flow_id, flow, s).await
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
    let reply = |status, notice: Option<String>, error: Option<String>| {
        page(&state, &f.flow, &factor, status, notice, error)
    };
    let tenant = company_of(&state, &user).await?;
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
    if let Some(refusal) = changed(&state, &f.flow, &flow, &factor, who, &ctx).await? {
        return Ok(refusal);
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

    if factor == Factor::Duo && f.push.is_some() {
        return Ok(match send_push(&state, &mut slot, who, &ctx).await? {
            PushSend::Sent => page_with(&state, &f.flow, &factor, true, StatusCode::OK, None, None),
            PushSend::Refused(status, message) => reply(status, None, Some(message)),
            PushSend::Race => reply(StatusCode::CONFLICT, None, Some(RACE.into())),
        });
    }
    let typed = match &factor {
        Factor::Duo => f.code.as_deref().and_then(normalize_passcode),
        _ => f.code.as_deref().and_then(normalize_code),
    };
    let Some(typed) = typed else {
        let what = match &factor {
            Factor::Duo => "Enter the 6 to 8 digits of a Duo passcode.",
            _ => "Enter the 6 digits of the code.",
        };
        return Ok(reply(
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            Some(what.into()),
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
    finish(&state, &f.flow, slot.flow, &user, &factor).await
}

/// Shown when one source address failed too often.
pub(crate) const TOO_MANY_FROM_HERE: &str =
    "Too many failed attempts from your network. Wait a few minutes, then try again.";

#[cfg(test)]
pub(crate) mod tests;
