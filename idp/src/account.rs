//! `/account/security`: the padlock page. A signed-in user chooses their preferred method among
//! those the company offers, sets a mobile number and enrols an authenticator app (QR code, saved
//! only once a code from it is right). Any change needs a second factor passed within the last
//! 5 minutes (`padlock_policy::step_up`); the step-up asks for the user's current second factor,
//! the one their sign-in would ask for (a code by SMS/email, or their authenticator app). Every
//! form carries a CSRF token bound to the session. A session minted under a weaker policy than the
//! company's current one (password only, then the company turned its second factor on) opens
//! nothing here.

use crate::domain::{Outcome, Session, TOTP_SEED_PURPOSE, Tenant, TotpEnrolment, User};
use crate::error::AppError;
use crate::extract::{ClientIp, Form};
use crate::factor::engine::{self, Checked, CodeSend, Ctx, Slot, Who};
use crate::factor::sms_email;
use crate::session;
use crate::state::{AppState, Audit};
use crate::store::{Digest, StoreResult};
use askama::Template;
use askama_web::WebTemplate;
use async_trait::async_trait;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use padlock_policy::Factor;
use padlock_policy::Method;
use padlock_policy::code::{CodeChallenge, normalize_code};
use padlock_policy::decision::{credential_allowed, resolve_factor};
use padlock_policy::mobile::E164;
use padlock_policy::step_up::{Freshness, freshness};
use padlock_policy::totp::{SECRET_LEN, TotpOutcome, verify};
use serde::Deserialize;

/// What the TOTP enrolment shows.
pub struct TotpSetup {
    qr_base64: String,
    secret: String,
    uri: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "account.html")]
struct AccountPage {
    email: String,
    company: String,
    company_2fa: bool,
    csrf: String,
    fresh: bool,
    step_up: StepUp,
    step_up_sent: bool,
    methods: Vec<(&'static str, &'static str, bool)>,
    mobile: String,
    totp_offered: bool,
    totp_enrolled: bool,
    totp_setup: Option<TotpSetup>,
    notice: Option<String>,
    error: Option<String>,
}

/// How the page asks the user to confirm it is them.
enum StepUp {
    /// A code sent over this channel (the text says where).
    Code(String),
    /// A code from the authenticator app.
    Totp,
    /// No way here (Duo, or no usable method): the sentence says why.
    Unavailable(&'static str),
}

/// The signed-in user of a request.
struct Context {
    digest: Digest,
    session: Session,
    user: User,
    tenant: Tenant,
}

const SIGN_IN_FIRST: &str =
    "Sign in through one of your company's applications first, then open this page again.";
const SIGN_IN_AGAIN: &str = "Your company now requires a second factor. Sign in again through one of your company's applications, then open this page again.";

async fn context(state: &AppState, headers: &HeaderMap) -> Result<Context, AppError> {
    let (digest, session) = session::current(state, headers)
        .await?
        .ok_or_else(|| AppError::Unauthorized(SIGN_IN_FIRST.into()))?;
    let user = state
        .store
        .get_user(&session.user_id)
        .await?
        .filter(|u| !u.disabled && !u.api_account)
        .ok_or_else(|| AppError::Unauthorized(SIGN_IN_FIRST.into()))?;
    let tenant = state
        .store
        .get_tenant(&user.tenant)
        .await?
        .ok_or_else(|| anyhow::anyhow!("user {} has no company", user.id))?;
    if !credential_allowed(&tenant.two_factor, session.acr, false) {
        return Err(AppError::Unauthorized(SIGN_IN_AGAIN.into()));
    }
    Ok(Context {
        digest,
        session,
        user,
        tenant,
    })
}

fn is_fresh(state: &AppState, s: &Session) -> bool {
    freshness(s.second_factor_at, state.clock.now()) == Freshness::Fresh
}

/// The factor the step-up asks for: the one the user's sign-in would ask for now.
fn step_up_factor(c: &Context) -> Option<Factor> {
    resolve_factor(&c.tenant.two_factor, &c.user.subject())
}

const DUO_UNAVAILABLE: &str =
    "Your second factor is Duo, which this Padlock cannot check yet. Contact your administrator.";
const NO_METHOD: &str =
    "Your company requires a second factor you have not set up. Contact your administrator.";

/// The otpauth QR and text secret for `seed`.
fn totp_setup(c: &Context, seed: &[u8]) -> Result<TotpSetup, AppError> {
    let totp = totp_rs::Builder::new()
        .with_secret(seed.to_vec())
        .with_issuer(Some(format!(
            "Padlock ({})",
            c.tenant.name.replace(':', " ")
        )))
        .with_account_name(c.user.email.replace(':', " "))
        .build()
        .map_err(|e| anyhow::anyhow!("TOTP enrolment: {e}"))?;
    let qr_base64 = totp
        .to_qr_base64()
        .map_err(|e| anyhow::anyhow!("TOTP QR code: {e}"))?;
    let uri = totp
        .to_url()
        .map_err(|e| anyhow::anyhow!("TOTP URI: {e}"))?;
    Ok(TotpSetup {
        qr_base64,
        secret: totp_rs::Secret::from(seed.to_vec()).to_base32(),
        uri,
    })
}

fn render(
    state: &AppState,
    c: &Context,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
) -> Result<Response, AppError> {
    let offered = c.tenant.two_factor.methods;
    let label = |m: Method| match m {
        Method::SmsEmail => "Code by SMS or email",
        Method::Totp => "Authenticator app (TOTP)",
        Method::Duo => "Duo",
    };
    let current = c.user.preferred_method.unwrap_or(Method::SmsEmail);
    let mut methods: Vec<_> = offered
        .iter()
        .map(|m| (m.as_str(), label(m), m == current))
        .collect();
    if methods.is_empty() {
        methods.push((Method::SmsEmail.as_str(), label(Method::SmsEmail), true));
    }
    let totp_setup = match &c.session.totp_pending {
        Some(sealed) => Some(totp_setup(
            c,
            &state
                .master
                .open(TOTP_SEED_PURPOSE, sealed)
                .map_err(anyhow::Error::from)?,
        )?),
        None => None,
    };
    let page = AccountPage {
        email: c.user.email.clone(),
        company: c.tenant.name.clone(),
        company_2fa: c.tenant.two_factor.enabled,
        csrf: session::csrf_token(state, &c.digest),
        fresh: is_fresh(state, &c.session),
        step_up: match step_up_factor(c) {
            Some(Factor::Code { channel }) => StepUp::Code(sms_email::masked(&channel)),
            Some(Factor::Totp) => StepUp::Totp,
            Some(Factor::Duo) => StepUp::Unavailable(DUO_UNAVAILABLE),
            None => StepUp::Unavailable(NO_METHOD),
        },
        step_up_sent: c.session.step_up.is_some(),
        methods,
        mobile: c
            .user
            .mobile
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        totp_offered: offered.totp,
        totp_enrolled: c.user.totp.is_some(),
        totp_setup,
        notice,
        error,
    };
    Ok((status, [(header::CACHE_CONTROL, "no-store")], page).into_response())
}

pub(crate) async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let c = context(&state, &headers).await?;
    render(&state, &c, StatusCode::OK, None, None)
}

#[derive(Deserialize)]
pub(crate) struct CsrfForm {
    csrf: String,
    code: Option<String>,
}

/// The answer when another request changed the session first (its try or code is not spent).
fn race(state: &AppState, c: &Context) -> Result<Response, AppError> {
    render(
        state,
        c,
        StatusCode::CONFLICT,
        None,
        Some("This page changed in another window. Try again.".into()),
    )
}

/// Step-up: confirms it is the user with their current second factor, through the same
/// [`engine`] as the login. For a code by SMS/email, a post without `code` sends one (the first
/// starts a challenge kept in the session; later ones count against its limits until a step-up
/// passes) and a post with it checks it; for TOTP the post carries the app's code. A passed
/// step-up marks the session fresh for 5 minutes.
pub(crate) async fn step_up(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    Form(f): Form<CsrfForm>,
) -> Result<Response, AppError> {
    let ip = ip.as_deref();
    if let Some(retry_after_secs) = state.refuse_source(ip, STEP_UP).await? {
        return Err(AppError::TooManyRequests {
            message: crate::factor::TOO_MANY_FROM_HERE.into(),
            retry_after_secs,
        });
    }
    let c = context(&state, &headers).await?;
    session::check_csrf(&state, &c.digest, &f.csrf)?;
    let ctx = Ctx {
        action: STEP_UP,
        ip,
        pam: None,
        new_code: "Send a new code.",
    };
    let factor = match step_up_factor(&c) {
        Some(f @ (Factor::Code { .. } | Factor::Totp)) => f,
        Some(Factor::Duo) => {
            return render(
                &state,
                &c,
                StatusCode::FORBIDDEN,
                None,
                Some(DUO_UNAVAILABLE.into()),
            );
        }
        None => {
            return render(
                &state,
                &c,
                StatusCode::FORBIDDEN,
                None,
                Some(NO_METHOD.into()),
            );
        }
    };
    let (user, tenant) = (c.user.clone(), c.tenant.clone());
    let who = Who {
        user: &user,
        tenant: &tenant,
    };
    let mut slot = SessionSlot(c);
    match (&factor, f.code.as_deref()) {
        (Factor::Code { channel }, None) => {
            let at_limit =
                "No more codes for now. Sign out, sign in again, then confirm it is you.";
            let sent = engine::send_code(&state, &mut slot, who, channel, &ctx, at_limit).await?;
            let c = slot.0;
            match sent {
                CodeSend::Sent => {
                    let notice = format!("We sent a code {}.", sms_email::masked(channel));
                    render(&state, &c, StatusCode::OK, Some(notice), None)
                }
                CodeSend::Refused(status, message) => {
                    render(&state, &c, status, None, Some(message))
                }
                CodeSend::Race => race(&state, &c),
            }
        }
        (_, typed) => {
            let Some(typed) = typed.and_then(normalize_code) else {
                let m = match factor {
                    Factor::Totp => "Enter the 6-digit code from your authenticator app.",
                    _ => "Ask for a code, then enter its 6 digits.",
                };
                return render(
                    &state,
                    &slot.0,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    None,
                    Some(m.into()),
                );
            };
            let checked = engine::check(&state, &mut slot, who, &factor, &typed, &ctx).await?;
            let mut c = slot.0;
            match checked {
                Checked::Passed => {
                    let before = c.session.clone();
                    c.session.step_up = None;
                    c.session.second_factor_at = Some(state.clock.now());
                    if !state
                        .store
                        .swap_session(&c.digest, &before, &c.session)
                        .await?
                    {
                        return race(&state, &c);
                    }
                    let m = "Confirmed. You can change your settings for the next 5 minutes.";
                    render(&state, &c, StatusCode::OK, Some(m.into()), None)
                }
                Checked::Failed { message, .. } => {
                    render(&state, &c, StatusCode::UNAUTHORIZED, None, Some(message))
                }
                Checked::Locked { until } => {
                    let m = crate::login::locked_message(until);
                    render(&state, &c, StatusCode::FORBIDDEN, None, Some(m))
                }
                Checked::NoCode => {
                    let m = "Ask for a code, then enter its 6 digits.";
                    render(
                        &state,
                        &c,
                        StatusCode::UNPROCESSABLE_ENTITY,
                        None,
                        Some(m.into()),
                    )
                }
                Checked::Race => race(&state, &c),
            }
        }
    }
}

/// The audit action of the padlock page's step-up.
const STEP_UP: &str = "account.step_up";

/// The signed-in session, lent to [`engine`] as the record that holds the step-up's challenge.
struct SessionSlot(Context);

#[async_trait]
impl Slot for SessionSlot {
    fn binding(&self) -> &Digest {
        &self.0.digest
    }

    fn code(&self) -> Option<&CodeChallenge> {
        self.0.session.step_up.as_ref()
    }

    async fn put_code(
        &mut self,
        state: &AppState,
        code: Option<CodeChallenge>,
    ) -> StoreResult<bool> {
        let next = Session {
            step_up: code,
            ..self.0.session.clone()
        };
        let swapped = state
            .store
            .swap_session(&self.0.digest, &self.0.session, &next)
            .await?;
        if swapped {
            self.0.session = next;
        }
        Ok(swapped)
    }
}

/// The signed-in user of a form post that changes settings: CSRF checked, and the session fresh
/// (else the refusal page to send back).
async fn changing(
    state: &AppState,
    headers: &HeaderMap,
    csrf: &str,
) -> Result<Result<Context, Response>, AppError> {
    let c = context(state, headers).await?;
    session::check_csrf(state, &c.digest, csrf)?;
    Ok(match stale(state, &c) {
        Some(refusal) => Err(refusal),
        None => Ok(c),
    })
}

/// The refusal to show when the session did not pass a second factor in the last 5 minutes.
fn stale(state: &AppState, c: &Context) -> Option<Response> {
    if is_fresh(state, &c.session) {
        return None;
    }
    let refusal = render(
        state,
        c,
        StatusCode::FORBIDDEN,
        None,
        Some("Confirm it is you first: changing your second factor needs a fresh code.".into()),
    );
    Some(refusal.unwrap_or_else(IntoResponse::into_response))
}

#[derive(Deserialize)]
pub(crate) struct Preferences {
    csrf: String,
    preferred: String,
    mobile: String,
}

pub(crate) async fn preferences(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    Form(f): Form<Preferences>,
) -> Result<Response, AppError> {
    let mut c = match changing(&state, &headers, &f.csrf).await? {
        Ok(c) => c,
        Err(refusal) => return Ok(refusal),
    };
    let method = Method::parse(&f.preferred)
        .filter(|m| c.tenant.two_factor.methods.offers(*m) || *m == Method::SmsEmail);
    let Some(method) = method else {
        return render(
            &state,
            &c,
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            Some("Your company does not offer that method.".into()),
        );
    };
    if method == Method::Totp && c.user.totp.is_none() {
        return render(
            &state,
            &c,
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            Some("Set up an authenticator app below before choosing it.".into()),
        );
    }
    if method == Method::Duo {
        return render(
            &state,
            &c,
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            Some("Duo enrolment is not available on this Padlock yet.".into()),
        );
    }
    let mobile = match f.mobile.trim() {
        "" => None,
        m => match E164::parse(m) {
            Ok(n) => Some(n),
            Err(e) => {
                return render(
                    &state,
                    &c,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    None,
                    Some(format!("Mobile number: {e}.")),
                );
            }
        },
    };
    let before = (c.user.preferred_method, c.user.mobile.clone());
    c.user.preferred_method = Some(method);
    c.user.mobile = mobile;
    state.store.update_user(&c.user).await?;
    if before != (c.user.preferred_method, c.user.mobile.clone()) {
        state
            .audit(Audit::by_user(
                &c.user,
                "account.preferences",
                Outcome::Success,
                ip.as_deref(),
            ))
            .await?;
    }
    render(&state, &c, StatusCode::OK, Some("Saved.".into()), None)
}

pub(crate) async fn totp_start(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Result<Response, AppError> {
    let mut c = match changing(&state, &headers, &f.csrf).await? {
        Ok(c) => c,
        Err(refusal) => return Ok(refusal),
    };
    if !c.tenant.two_factor.methods.totp {
        return render(
            &state,
            &c,
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            Some("Your company does not offer authenticator apps.".into()),
        );
    }
    let mut seed = zeroize::Zeroizing::new([0u8; SECRET_LEN]);
    aws_lc_rs::rand::fill(seed.as_mut())
        .map_err(|_| anyhow::anyhow!("system random number generator failed"))?;
    c.session.totp_pending = Some(
        state
            .master
            .seal(TOTP_SEED_PURPOSE, seed.as_ref())
            .map_err(anyhow::Error::from)?,
    );
    state.store.put_session(&c.digest, &c.session).await?;
    render(&state, &c, StatusCode::OK, None, None)
}

pub(crate) async fn totp_confirm(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    Form(f): Form<CsrfForm>,
) -> Result<Response, AppError> {
    let mut c = match changing(&state, &headers, &f.csrf).await? {
        Ok(c) => c,
        Err(refusal) => return Ok(refusal),
    };
    let Some(sealed) = c.session.totp_pending.clone() else {
        return render(
            &state,
            &c,
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            Some("Start the authenticator setup first.".into()),
        );
    };
    let seed = state
        .master
        .open(TOTP_SEED_PURPOSE, &sealed)
        .map_err(anyhow::Error::from)?;
    let now = state.clock.now();
    let outcome = verify(
        &seed,
        f.code.as_deref().unwrap_or(""),
        now,
        c.tenant.two_factor.totp_skew_steps,
        None,
    )
    .map_err(anyhow::Error::from)?;
    let TotpOutcome::Accepted { step } = outcome else {
        state
            .audit(Audit::by_user(
                &c.user,
                "account.totp.enrol",
                Outcome::Failure,
                ip.as_deref(),
            ))
            .await?;
        return render(
            &state,
            &c,
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            Some(
                "That code is not right. Check the time on your phone and try the next code."
                    .into(),
            ),
        );
    };
    // The confirming code's step counts as used, so it cannot be replayed at the next login.
    state.store.accept_totp_step(&c.user.id, step).await?;
    c.user.totp = Some(TotpEnrolment {
        seed: sealed,
        enrolled_at: now,
    });
    c.user.preferred_method = Some(Method::Totp);
    state.store.update_user(&c.user).await?;
    c.session.totp_pending = None;
    state.store.put_session(&c.digest, &c.session).await?;
    state
        .audit(Audit::by_user(
            &c.user,
            "account.totp.enrol",
            Outcome::Success,
            ip.as_deref(),
        ))
        .await?;
    render(
        &state,
        &c,
        StatusCode::OK,
        Some("Your authenticator app is set up; it is now your second factor.".into()),
        None,
    )
}

#[cfg(test)]
#[path = "account_tests.rs"]
mod tests;
