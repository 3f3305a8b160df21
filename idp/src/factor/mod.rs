//! The second-factor step of the login (`/login/factor`). The policy crate chose the factor; this
//! module challenges, checks, counts failures toward the lockout, and completes the login with
//! `amr`/`acr` saying what was used. Every try is written with a compare-and-swap on the flow, so
//! parallel posts cannot spend the same try twice.

pub(crate) mod attempt;
pub mod sms_email;
pub mod totp;

use crate::domain::{LoginFlow, LoginStep, Outcome, Session, Tenant, User};
use crate::error::AppError;
use crate::extract::{ClientIp, Form, Query};
use crate::login::{NO_FLOW, complete, flow_of, locked_message};
use crate::session::{self, SESSION_TTL_SECS};
use crate::state::{AppState, Audit};
use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use padlock_policy::Factor;
use padlock_policy::code::{CodeChallenge, CodeInput, CodeOutcome, normalize_code};
use padlock_policy::decision::passed as passed_factor;
use padlock_policy::lockout::Attempt;
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
        // Not reached (the password step answers a Duo user as it answers a wrong password);
        // Duo is not part of this build, so fail closed all the same.
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
        && let Err(undelivered) =
            sms_email::deliver(state, user, &tenant.name, channel, code, ip).await?
    {
        // Back to the password step (unless another request moved it since).
        state
            .store
            .swap_login_flow(&flow_digest, &next, &flow)
            .await?;
        let (status, message) = undelivered.answer(state.clock.now());
        return Ok(crate::login::again(
            flow_id.to_owned(),
            user.email.clone(),
            &message,
            status,
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
    let ip = ip.as_deref();
    if let Some(retry_after_secs) = state.refuse_source(ip, "login.second_factor").await? {
        return Err(AppError::TooManyRequests {
            message: TOO_MANY_FROM_HERE.into(),
            retry_after_secs,
        });
    }
    let (flow, user, factor, code) = factor_flow(&state, &headers, &f.flow).await?;
    let now = state.clock.now();
    let reply = |status, notice: Option<String>, error: Option<String>| {
        page(&f.flow, &factor, status, notice, error)
    };
    let locked = |until| reply(StatusCode::FORBIDDEN, None, Some(locked_message(until)));
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
    // While locked nothing is checked and nothing is sent.
    if let Some(until) = attempt::locked_until(&state, &user, "login.second_factor", ip).await? {
        return Ok(locked(until));
    }

    if f.resend.is_some() {
        let (Factor::Code { channel }, Some(mut ch)) = (&factor, code) else {
            return Ok(reply(
                StatusCode::BAD_REQUEST,
                None,
                Some("There is no code to resend.".into()),
            ));
        };
        // Record the new code first, then send it: parallel resends cannot send more codes than
        // the challenge counts. A refused or failed send puts the previous challenge back.
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
        if let Err(undelivered) =
            sms_email::deliver(&state, &user, &tenant.name, channel, &fresh, ip).await?
        {
            store_challenge(&flow_with(ch), previous).await?;
            let (status, message) = undelivered.answer(now);
            return Ok(reply(status, None, Some(message)));
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
    // (passed, what to tell the user, the lock this try may begin); `None`: not a guess (an
    // expired or spent code), nothing is counted.
    let checked =
        match (&factor, code) {
            (Factor::Code { .. }, Some(mut ch)) => {
                let outcome = ch.advance(
                    CodeInput::Submit(sms_email::digest(&state, &flow_digest, &typed)),
                    now,
                );
                // The try is spent on the flow first (one winner per try), then counted.
                if !store_challenge(&flow, ch).await? {
                    return Ok(reply(StatusCode::CONFLICT, None, Some(RACE.into())));
                }
                if outcome == CodeOutcome::Accepted || outcome.is_failed_guess() {
                    match attempt::admit(&state, &user, "login.second_factor", ip).await? {
                        Attempt::Locked { until } => return Ok(locked(until)),
                        Attempt::Admitted { locks_until } => Ok((
                            outcome == CodeOutcome::Accepted,
                            code_message(outcome),
                            locks_until,
                        )),
                    }
                } else {
                    Err(code_message(outcome))
                }
            }
            (Factor::Totp, _) => {
                // Counted before the code is checked: a TOTP check also spends the time step.
                let locks_until =
                    match attempt::admit(&state, &user, "login.second_factor", ip).await? {
                        Attempt::Locked { until } => return Ok(locked(until)),
                        Attempt::Admitted { locks_until } => locks_until,
                    };
                let (passed, message) =
                    match totp::check(&state, &user, tenant.two_factor.totp_skew_steps, &typed)
                        .await?
                    {
                        TotpOutcome::Accepted { .. } => (true, String::new()),
                        TotpOutcome::Replayed => (
                            false,
                            "This code was already used. Wait for the next code in your app."
                                .into(),
                        ),
                        _ => (false, "That code is not right.".into()),
                    };
                Ok((passed, message, locks_until))
            }
            _ => return Err(AppError::Forbidden(NO_FLOW.into())),
        };
    let (passed, message, locks_until) = match checked {
        Ok(c) => c,
        // Not a guess: nothing counted.
        Err(message) => {
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
    };
    let lock = attempt::settle(&state, &user, &tenant.name, passed, locks_until, ip).await?;
    state
        .audit(Audit::by_user(
            &user,
            "login.second_factor",
            if passed {
                Outcome::Success
            } else {
                Outcome::Failure
            },
            ip,
        ))
        .await?;
    if !passed {
        let message = match lock {
            Some(until) => locked_message(until),
            None => message,
        };
        return Ok(reply(StatusCode::UNAUTHORIZED, None, Some(message)));
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
    complete(&state, &f.flow, flow, s).await
}

/// Shown when one source address failed too often.
pub(crate) const TOO_MANY_FROM_HERE: &str =
    "Too many failed attempts from your network. Wait a few minutes, then try again.";

#[cfg(test)]
pub(crate) mod tests;
