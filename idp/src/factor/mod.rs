//! The second-factor step of the login (`/login/factor`). The policy crate chose the factor; this
//! module challenges, checks, counts failures toward the lockout, and completes the login with
//! `amr`/`acr` saying what was used. Every try is written with a compare-and-swap on the flow, so
//! parallel posts cannot spend the same try twice.

pub mod sms_email;
pub mod totp;

use crate::domain::{LoginFlow, LoginStep, Outcome, Session, Tenant, User};
use crate::error::AppError;
use crate::extract::{ClientIp, Form};
use crate::login::{NO_FLOW, complete, deny_message, flow_of};
use crate::session::{self, SESSION_TTL_SECS};
use crate::state::{AppState, Audit};
use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use padlock_policy::Factor;
use padlock_policy::code::{CodeChallenge, CodeInput, CodeOutcome, normalize_code};
use padlock_policy::decision::{DenyReason, passed};
use padlock_policy::totp::TotpOutcome;
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

fn prompt(factor: &Factor) -> String {
    match factor {
        Factor::Code { channel } => format!(
            "We sent a 6-digit code {}. It is valid for 2 minutes.",
            sms_email::masked(channel)
        ),
        Factor::Totp => "Enter the 6-digit code from your authenticator app.".into(),
        Factor::Duo => "Approve the Duo request.".into(),
    }
}

fn page(
    flow: &str,
    factor: &Factor,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
) -> Response {
    let p = FactorPage {
        flow: flow.to_owned(),
        prompt: prompt(factor),
        can_resend: matches!(factor, Factor::Code { .. }),
        notice,
        error,
    };
    (status, p).into_response()
}

/// What the user reads after submitting an SMS/Email code that was not accepted.
pub(crate) fn code_message(outcome: CodeOutcome) -> String {
    match outcome {
        CodeOutcome::Accepted => String::new(),
        CodeOutcome::Wrong { tries_left } => format!(
            "That code is not right. {tries_left} more {} for this code.",
            if tries_left == 1 { "try" } else { "tries" }
        ),
        CodeOutcome::Expired => "This code has expired. Send a new code.".into(),
        CodeOutcome::TooManyTries => "Too many wrong codes. Send a new code.".into(),
        _ => "This code was already used.".into(),
    }
}

/// Why a new code cannot be sent (`None`: it was resent), for the user; `at_limit` is the answer
/// once the challenge sent its last code.
pub(crate) fn resend_refusal(outcome: CodeOutcome, now: u64, at_limit: &str) -> Option<String> {
    match outcome {
        CodeOutcome::Resent { .. } => None,
        CodeOutcome::ResendTooSoon { retry_at } => Some(format!(
            "Wait {} seconds before asking for a new code.",
            retry_at - now
        )),
        _ => Some(at_limit.to_owned()),
    }
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
    let flow_digest = session::digest(flow_id);
    let fresh = match &factor {
        Factor::Code { channel } => Some((channel.clone(), sms_email::draw(state, &flow_digest))),
        Factor::Totp => None,
        // Duo is not part of this build: fail closed.
        Factor::Duo => {
            return Err(AppError::Forbidden(
                "This sign-in needs Duo, which this Padlock cannot check yet.".into(),
            ));
        }
    };
    let next = LoginFlow {
        step: LoginStep::Factor {
            user_id: user.id.clone(),
            factor,
            code: fresh
                .as_ref()
                .map(|(_, c)| CodeChallenge::issue(c.digest, state.clock.now())),
        },
        ..flow.clone()
    };
    if !state
        .store
        .swap_login_flow(&flow_digest, &flow, &next)
        .await?
    {
        return Err(AppError::Forbidden(NO_FLOW.into()));
    }
    if let Some((channel, code)) = &fresh
        && let Err(e) = sms_email::send(state, &tenant.name, channel, code).await
    {
        tracing::error!(error = %e, user = %user.id, "could not send a sign-in code");
        // Spend nothing: back to the password step (unless another request moved it since).
        state
            .store
            .swap_login_flow(&flow_digest, &next, &flow)
            .await?;
        state
            .audit(Audit::by_user(
                user,
                "second_factor.send",
                Outcome::Failure,
                ip,
            ))
            .await?;
        return Ok(crate::login::again(
            flow_id.to_owned(),
            user.email.clone(),
            SEND_FAILED,
            StatusCode::BAD_GATEWAY,
        ));
    }
    state
        .audit(Audit::by_user(user, "login.password", Outcome::Success, ip))
        .await?;
    Ok((
        StatusCode::SEE_OTHER,
        [(header::LOCATION, format!("/login/factor?flow={flow_id}"))],
    )
        .into_response())
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
) -> Result<(LoginFlow, User, Factor, Option<CodeChallenge>), AppError> {
    let flow = flow_of(state, headers, id).await?;
    let LoginStep::Factor {
        user_id,
        factor,
        code,
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
    Ok((flow, user, factor, code))
}

pub(crate) async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<FlowQuery>,
) -> Result<Response, AppError> {
    let id = q.flow.ok_or_else(|| AppError::BadRequest(NO_FLOW.into()))?;
    let (_, _, factor, _) = factor_flow(&state, &headers, &id).await?;
    Ok(page(&id, &factor, StatusCode::OK, None, None))
}

pub(crate) async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    Form(f): Form<FactorForm>,
) -> Result<Response, AppError> {
    let (flow, user, factor, code) = factor_flow(&state, &headers, &f.flow).await?;
    let ip = ip.as_deref();
    let now = state.clock.now();
    let reply = |status, notice: Option<String>, error: Option<String>| {
        page(&f.flow, &factor, status, notice, error)
    };
    let lockout = state.store.lockout_state(&user.id).await?;
    if let Some(until) = lockout.locked_until(now, &state.lockout) {
        state
            .audit(Audit::by_user(
                &user,
                "login.second_factor",
                Outcome::Failure,
                ip,
            ))
            .await?;
        return Ok(reply(
            StatusCode::FORBIDDEN,
            None,
            Some(deny_message(DenyReason::LockedOut { until })),
        ));
    }
    let tenant = state
        .store
        .get_tenant(&user.tenant)
        .await?
        .ok_or_else(|| anyhow::anyhow!("user {} has no company", user.id))?;
    let flow_digest = session::digest(&f.flow);
    // The flow with `ch` as its code challenge.
    let flow_with = |ch: CodeChallenge| LoginFlow {
        step: LoginStep::Factor {
            user_id: user.id.clone(),
            factor: factor.clone(),
            code: Some(ch),
        },
        ..flow.clone()
    };
    // Replaces `expected` by the flow with `ch`, if no other request changed it first.
    let store_challenge = |expected: &LoginFlow, ch: CodeChallenge| {
        let next = flow_with(ch);
        let (state, expected, flow_digest) = (&state, expected.clone(), flow_digest);
        async move {
            state
                .store
                .swap_login_flow(&flow_digest, &expected, &next)
                .await
        }
    };
    const RACE: &str = "This sign-in changed in another window. Try again.";

    if f.resend.is_some() {
        let (Factor::Code { channel }, Some(mut ch)) = (&factor, code) else {
            return Ok(reply(
                StatusCode::BAD_REQUEST,
                None,
                Some("There is no code to resend.".into()),
            ));
        };
        // Record the new code first, then send it: parallel resends cannot send more codes than
        // the challenge counts. A failed send puts the previous challenge back.
        let fresh = sms_email::draw(&state, &flow_digest);
        let previous = ch.clone();
        if let Some(refusal) = resend_refusal(
            ch.advance(CodeInput::Resend(fresh.digest), now),
            now,
            "No more codes for this sign-in. Go back to the application and start again.",
        ) {
            return Ok(reply(StatusCode::TOO_MANY_REQUESTS, None, Some(refusal)));
        }
        if !store_challenge(&flow, ch.clone()).await? {
            return Ok(reply(StatusCode::CONFLICT, None, Some(RACE.into())));
        }
        if let Err(e) = sms_email::send(&state, &tenant.name, channel, &fresh).await {
            tracing::error!(error = %e, user = %user.id, "could not resend a sign-in code");
            let recorded = flow_with(ch);
            store_challenge(&recorded, previous).await?;
            state
                .audit(Audit::by_user(
                    &user,
                    "second_factor.send",
                    Outcome::Failure,
                    ip,
                ))
                .await?;
            return Ok(reply(
                StatusCode::BAD_GATEWAY,
                None,
                Some(SEND_FAILED.into()),
            ));
        }
        return Ok(reply(
            StatusCode::OK,
            Some("A new code is on its way. The previous one no longer works.".into()),
            None,
        ));
    }

    let Some(typed) = f.code.as_deref().and_then(normalize_code) else {
        return Ok(reply(
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            Some("Enter the 6 digits of the code.".into()),
        ));
    };
    // (passed, counts toward the lockout, what to tell the user)
    let (ok, counted, message) = match (&factor, code) {
        (Factor::Code { .. }, Some(mut ch)) => {
            let outcome = ch.advance(
                CodeInput::Submit(sms_email::digest(&state, &flow_digest, &typed)),
                now,
            );
            if !store_challenge(&flow, ch).await? {
                return Ok(reply(StatusCode::CONFLICT, None, Some(RACE.into())));
            }
            (
                outcome == CodeOutcome::Accepted,
                outcome.is_failed_guess(),
                code_message(outcome),
            )
        }
        (Factor::Totp, _) => {
            match totp::check(&state, &user, tenant.two_factor.totp_skew_steps, &typed).await? {
                TotpOutcome::Accepted { .. } => (true, false, String::new()),
                TotpOutcome::Replayed => (
                    false,
                    true,
                    "This code was already used. Wait for the next code in your app.".into(),
                ),
                _ => (false, true, "That code is not right.".into()),
            }
        }
        _ => return Err(AppError::Forbidden(NO_FLOW.into())),
    };
    if !ok {
        let mut message = message;
        if counted {
            let after = state
                .store
                .record_failed_attempt(&user.id, now, &state.lockout)
                .await?;
            if let Some(until) = after.locked_until(now, &state.lockout) {
                message = deny_message(DenyReason::LockedOut { until });
            }
        }
        state
            .audit(Audit::by_user(
                &user,
                "login.second_factor",
                Outcome::Failure,
                ip,
            ))
            .await?;
        return Ok(reply(StatusCode::UNAUTHORIZED, None, Some(message)));
    }
    state.store.record_second_factor_success(&user.id).await?;
    state
        .audit(Audit::by_user(
            &user,
            "login.second_factor",
            Outcome::Success,
            ip,
        ))
        .await?;
    let (amr, acr) = passed(&factor);
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
    complete(&state, &f.flow, flow, s).await
}

#[cfg(test)]
pub(crate) mod tests;
