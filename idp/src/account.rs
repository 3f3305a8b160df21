//! `/account/security`: the padlock page. A signed-in user chooses their preferred method among
//! those the company offers, sets a mobile number and enrols an authenticator app (QR code, saved
//! only once a code from it is right). Any change needs a second factor passed within the last
//! 5 minutes (`padlock_policy::step_up`); the step-up asks for the user's current second factor,
//! the one their sign-in would ask for (a code by SMS/email, or their authenticator app). Every
//! form carries a CSRF token bound to the session. A session minted under a weaker policy than the
//! company's current one (password only, then the company turned its second factor on) opens
//! nothing here.

use crate::domain::{DuoActivation, DuoEnrolment, Outcome, Session, Tenant, User};
use crate::duo::auth::EnrollStatus;
use crate::duo::client::{DuoClient, DuoError};
use crate::error::AppError;
use crate::extract::{ClientIp, Form};
use crate::factor::engine::{
    self, Checked, CodeSend, Ctx, PushSend, PushState, PushText, Slot, Who,
};
use crate::factor::sms_email;
use crate::factor::totp_enrolment::{self, TotpSetup};
use crate::secret::Password;
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
use padlock_policy::decision::{ChoiceRefusal, choosable, credential_allowed, resolve_factor};
use padlock_policy::duo::{DuoPush, PreauthResult, normalize_passcode};
use padlock_policy::mobile::E164;
use padlock_policy::step_up::{Freshness, freshness};
use serde::Deserialize;

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
    /// The company offers Duo (and has its keys).
    duo_offered: bool,
    /// The user's Duo username, when their enrolment is active.
    duo_enrolled: Option<String>,
    /// A Duo activation waiting for the phone.
    duo_pending: Option<DuoActivation>,
    notice: Option<String>,
    error: Option<String>,
}

/// How the page asks the user to confirm it is them.
enum StepUp {
    /// A code sent over this channel (the text says where).
    Code(String),
    /// A code from the authenticator app.
    Totp,
    /// A Duo push or passcode.
    Duo,
    /// No way here (no usable method): the sentence says why.
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
    "You are not signed in (or your session ended). Open this page again to sign in.";
const SIGN_IN_AGAIN: &str =
    "Your company now requires a second factor. Open this page again to sign in with it.";

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

const NO_METHOD: &str =
    "Your company requires a second factor you have not set up. Contact your administrator.";

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
    let totp_setup = c
        .session
        .totp_pending
        .as_ref()
        .map(|seed| totp_enrolment::setup(state, &c.tenant, &c.user, seed))
        .transpose()?;
    let page = AccountPage {
        email: c.user.email.clone(),
        company: c.tenant.name.clone(),
        company_2fa: c.tenant.two_factor.enabled,
        csrf: session::csrf_token(state, &c.digest),
        fresh: is_fresh(state, &c.session),
        step_up: match step_up_factor(c) {
            Some(Factor::Code { channel }) => StepUp::Code(sms_email::masked(&channel)),
            Some(Factor::Totp) => StepUp::Totp,
            Some(Factor::Duo) => StepUp::Duo,
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
        duo_offered: offered.duo && c.tenant.duo.is_some(),
        duo_enrolled: c
            .user
            .duo
            .as_ref()
            .filter(|d| d.active)
            .map(|d| d.username.clone()),
        duo_pending: c.session.duo_pending.clone(),
        notice,
        error,
    };
    // Duo's activation QR code is an image on Duo's API host: this page alone may load it.
    let img_src = c
        .session
        .duo_pending
        .as_ref()
        .and_then(|p| url::Url::parse(&p.activation_barcode).ok())
        .filter(|u| matches!(u.scheme(), "https" | "http"))
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    let csp = format!(
        "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: {img_src}; frame-ancestors 'none'"
    );
    Ok((
        status,
        [
            (header::CACHE_CONTROL, "no-store".to_owned()),
            (header::CONTENT_SECURITY_POLICY, csp),
        ],
        page,
    )
        .into_response())
}

/// The page's own path (where Padlock's sign-in comes back to).
const PAGE: &str = "/account/security";

/// `GET /account/security`. Without a session (or with one the company's policy no longer
/// accepts), Padlock's own sign-in first, then back here.
pub(crate) async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
) -> Result<Response, AppError> {
    match context(&state, &headers).await {
        Ok(c) => render(&state, &c, StatusCode::OK, None, None),
        Err(AppError::Unauthorized(_)) => {
            crate::login::sign_in_to(&state, PAGE, ip.as_deref()).await
        }
        Err(e) => Err(e),
    }
}

#[derive(Deserialize)]
pub(crate) struct CsrfForm {
    csrf: String,
    code: Option<String>,
    /// Step-up with Duo: send a push and wait for it.
    push: Option<String>,
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
        Some(f) => f,
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
    if factor == Factor::Duo && f.push.is_some() {
        let info = [
            ("company", tenant.name.as_str()),
            ("application", "Padlock"),
        ];
        let text = PushText {
            kind: "Confirm it is you",
            info: &info,
        };
        let settled = push_and_wait(&state, &mut slot, who, text, &ctx).await?;
        let c = slot.0;
        return match settled {
            Ok(()) => stepped_up(&state, c).await,
            Err((status, message)) => render(&state, &c, status, None, Some(message)),
        };
    }
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
            let typed = match factor {
                Factor::Duo => typed.and_then(normalize_passcode),
                _ => typed.and_then(normalize_code),
            };
            let Some(typed) = typed else {
                let m = match factor {
                    Factor::Totp => "Enter the 6-digit code from your authenticator app.",
                    Factor::Duo => "Enter the 6 to 8 digits of a Duo passcode, or ask for a push.",
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
            let c = slot.0;
            match checked {
                Checked::Passed => stepped_up(&state, c).await,
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

    fn push(&self) -> Option<&DuoPush> {
        self.0.session.duo_push.as_ref()
    }

    async fn put(
        &mut self,
        state: &AppState,
        code: Option<CodeChallenge>,
        push: Option<DuoPush>,
    ) -> StoreResult<bool> {
        let next = Session {
            step_up: code,
            duo_push: push,
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

/// Marks the session of `c` as having passed a second factor now (fresh for 5 minutes).
async fn stepped_up(state: &AppState, mut c: Context) -> Result<Response, AppError> {
    let before = c.session.clone();
    c.session.step_up = None;
    c.session.second_factor_at = Some(state.clock.now());
    if !state
        .store
        .swap_session(&c.digest, &before, &c.session)
        .await?
    {
        return race(state, &c);
    }
    let m = "Confirmed. You can change your settings for the next 5 minutes.";
    render(state, &c, StatusCode::OK, Some(m.into()), None)
}

/// Sends `who` a Duo push kept in the session and waits for its answer (Duo holds each status
/// call until the user answers; the wait ends at `[duo] push_timeout_secs`). `Err`: the status
/// and sentence of a push that did not pass.
async fn push_and_wait(
    state: &AppState,
    slot: &mut SessionSlot,
    who: Who<'_>,
    text: PushText<'_>,
    ctx: &Ctx<'_>,
) -> Result<Result<(), (StatusCode, String)>, AppError> {
    match engine::push(state, slot, who, text, ctx).await? {
        PushSend::Sent => {}
        PushSend::Refused(status, message) => return Ok(Err((status, message))),
        PushSend::Race => {
            return Ok(Err((
                StatusCode::CONFLICT,
                "This page changed in another window. Try again.".into(),
            )));
        }
    }
    loop {
        let wait = std::time::Duration::from_secs(state.duo.push_timeout_secs);
        match engine::push_status(state, slot, who, ctx, wait).await? {
            PushState::Waiting => {}
            PushState::Passed => return Ok(Ok(())),
            PushState::Failed { message, .. } => {
                return Ok(Err((StatusCode::UNAUTHORIZED, message)));
            }
            PushState::Unavailable => {
                return Ok(Err((
                    StatusCode::SERVICE_UNAVAILABLE,
                    engine::DUO_DOWN.into(),
                )));
            }
            PushState::NoPush => {
                return Ok(Err((
                    StatusCode::CONFLICT,
                    "This page changed in another window. Try again.".into(),
                )));
            }
        }
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
    let method = match choosable(&c.tenant.two_factor, &c.user.subject(), &f.preferred) {
        Ok(m) => m,
        Err(why) => {
            let m = match why {
                ChoiceRefusal::NotOffered => "Your company does not offer that method.",
                ChoiceRefusal::NotEnrolled(Method::Duo) => "Set up Duo below before choosing it.",
                ChoiceRefusal::NotEnrolled(_) => {
                    "Set up an authenticator app below before choosing it."
                }
            };
            return render(
                &state,
                &c,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                Some(m.into()),
            );
        }
    };
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
    let read = c.user.clone();
    let before = (c.user.preferred_method, c.user.mobile.clone());
    c.user.preferred_method = Some(method);
    c.user.mobile = mobile;
    // Only over the record this request read: an administrator's change meanwhile (a disabled
    // account, say) is never undone by this save.
    if !state.store.swap_user(&read, &c.user).await? {
        return race(&state, &c);
    }
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
    c.session.totp_pending = Some(totp_enrolment::new_seed(&state)?);
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
    let code = f.code.as_deref().unwrap_or("");
    let Some(enrolled) = totp_enrolment::confirm(&state, &c.tenant, &c.user, sealed, code).await?
    else {
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
    let read = std::mem::replace(&mut c.user, enrolled);
    if !state.store.swap_user(&read, &c.user).await? {
        return race(&state, &c);
    }
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

/// How long a Duo activation started here stays valid, in seconds (Duo's `valid_secs`).
const DUO_ACTIVATION_SECS: u64 = 15 * 60;

/// A settings change that needs Duo: the signed-in user of the form post (CSRF checked, the session
/// fresh) and their company's Duo client, or the refusal page (also when the company does not
/// offer Duo).
async fn duo_changing(
    state: &AppState,
    headers: &HeaderMap,
    csrf: &str,
) -> Result<Result<(Context, DuoClient), Response>, AppError> {
    let c = match changing(state, headers, csrf).await? {
        Ok(c) => c,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let client = c
        .tenant
        .two_factor
        .methods
        .duo
        .then(|| engine::duo_client(state, &c.tenant))
        .flatten();
    Ok(match client {
        Some(client) => Ok((c, client)),
        None => Err(render(
            state,
            &c,
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            Some("Your company does not offer Duo.".into()),
        )?),
    })
}

/// Saves `username` as the user's active Duo enrolment and makes Duo their method.
async fn save_duo(
    state: &AppState,
    c: &mut Context,
    duo_user_id: String,
    username: String,
    ip: Option<&str>,
) -> Result<Response, AppError> {
    let Some(user) = engine::save_duo_enrolment(state, &c.user, duo_user_id, username).await?
    else {
        return race(state, c);
    };
    c.user = user;
    state
        .audit(Audit::by_user(
            &c.user,
            "account.duo.enrol",
            Outcome::Success,
            ip,
        ))
        .await?;
    render(
        state,
        c,
        StatusCode::OK,
        Some("Duo is set up and is now your second factor.".into()),
        None,
    )
}

/// `POST /account/security/duo/start`: creates the user's Duo user (`/auth/v2/enroll`, named by
/// their email) and shows Duo's activation QR code and link; nothing is saved until Duo says the
/// phone is activated ([`duo_check`]). Needs a fresh step-up.
pub(crate) async fn duo_start(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    Form(f): Form<CsrfForm>,
) -> Result<Response, AppError> {
    let (mut c, client) = match duo_changing(&state, &headers, &f.csrf).await? {
        Ok(both) => both,
        Err(refusal) => return Ok(refusal),
    };
    let enrolment = match client.enroll(&c.user.email, DUO_ACTIVATION_SECS).await {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(user = %c.user.id, error = %e, "Duo enroll failed");
            state
                .audit(Audit::by_user(
                    &c.user,
                    "account.duo.enrol",
                    Outcome::Failure,
                    ip.as_deref(),
                ))
                .await?;
            let message = match e {
                DuoError::Refused { .. } => format!(
                    "Duo refused to create your Duo user ({}). If you already use Duo, link it by its username below.",
                    e.message()
                ),
                _ => engine::DUO_DOWN.into(),
            };
            return render(&state, &c, StatusCode::BAD_GATEWAY, None, Some(message));
        }
    };
    let pending = Some(DuoActivation {
        user_id: enrolment.user_id,
        username: enrolment.username,
        activation_code: enrolment.activation_code,
        activation_barcode: enrolment.activation_barcode,
        activation_url: enrolment.activation_url,
        expires_at: enrolment.expiration,
    });
    if !set_duo_pending(&state, &mut c, pending).await? {
        return race(&state, &c);
    }
    render(&state, &c, StatusCode::OK, None, None)
}

/// Stores the session of `c` with `pending` as its Duo activation, if no other request changed the
/// session since it was read (a Duo call came between); false otherwise (nothing written).
async fn set_duo_pending(
    state: &AppState,
    c: &mut Context,
    pending: Option<DuoActivation>,
) -> StoreResult<bool> {
    let next = Session {
        duo_pending: pending,
        ..c.session.clone()
    };
    let swapped = state
        .store
        .swap_session(&c.digest, &c.session, &next)
        .await?;
    if swapped {
        c.session = next;
    }
    Ok(swapped)
}

/// `POST /account/security/duo/check`: asks Duo whether the activation begun by [`duo_start`]
/// completed (`/auth/v2/enroll_status`); once it did, saves the enrolment and makes Duo the
/// user's method.
pub(crate) async fn duo_check(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    Form(f): Form<CsrfForm>,
) -> Result<Response, AppError> {
    let (mut c, client) = match duo_changing(&state, &headers, &f.csrf).await? {
        Ok(both) => both,
        Err(refusal) => return Ok(refusal),
    };
    let Some(pending) = c.session.duo_pending.clone() else {
        return render(
            &state,
            &c,
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            Some("Start the Duo setup first.".into()),
        );
    };
    match client
        .enroll_status(&pending.user_id, &pending.activation_code)
        .await
    {
        Ok(EnrollStatus::Success) => {
            if !set_duo_pending(&state, &mut c, None).await? {
                return race(&state, &c);
            }
            save_duo(
                &state,
                &mut c,
                pending.user_id,
                pending.username,
                ip.as_deref(),
            )
            .await
        }
        Ok(EnrollStatus::Waiting) => render(
            &state,
            &c,
            StatusCode::OK,
            Some(
                "Duo Mobile is not activated yet. Scan the code with it, then check again.".into(),
            ),
            None,
        ),
        Ok(EnrollStatus::Invalid) => {
            if !set_duo_pending(&state, &mut c, None).await? {
                return race(&state, &c);
            }
            render(
                &state,
                &c,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                Some("This activation has expired. Start the Duo setup again.".into()),
            )
        }
        Err(e) => {
            tracing::warn!(user = %c.user.id, error = %e, "Duo enroll_status failed");
            render(
                &state,
                &c,
                StatusCode::BAD_GATEWAY,
                None,
                Some(engine::DUO_DOWN.into()),
            )
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct LinkForm {
    csrf: String,
    username: String,
}

/// `POST /account/security/duo/link`: links an existing Duo user by `username`. Duo's preauth
/// must know them, and they must approve a push sent to that Duo user (so whoever types a name
/// cannot bind someone else's phone); then the enrolment is saved and Duo becomes the user's
/// method. The push counts as a try against the lockout like every other.
pub(crate) async fn duo_link(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    Form(f): Form<LinkForm>,
) -> Result<Response, AppError> {
    let (c, client) = match duo_changing(&state, &headers, &f.csrf).await? {
        Ok(both) => both,
        Err(refusal) => return Ok(refusal),
    };
    let username = f.username.trim();
    if username.is_empty() || username.len() > 100 || username.chars().any(char::is_control) {
        return render(
            &state,
            &c,
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            Some("Enter your Duo username.".into()),
        );
    }
    let ipaddr = ip.as_deref();
    match client
        .preauth(
            username,
            ipaddr.filter(|i| i.parse::<std::net::IpAddr>().is_ok()),
        )
        .await
    {
        Ok(p) if p.result == PreauthResult::Auth => {}
        Ok(_) => {
            return render(
                &state,
                &c,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                Some("Duo cannot send that user a push (not enrolled, bypassed or refused). Check the username, or set up a new Duo user.".into()),
            );
        }
        Err(e) => {
            tracing::warn!(user = %c.user.id, error = %e, "Duo preauth (link) failed");
            return render(
                &state,
                &c,
                StatusCode::BAD_GATEWAY,
                None,
                Some(engine::DUO_DOWN.into()),
            );
        }
    }
    // The user as they would be once linked: the push goes to that Duo user.
    let mut linked = c.user.clone();
    linked.duo = Some(DuoEnrolment {
        duo_user_id: String::new(),
        username: username.to_owned(),
        active: true,
    });
    let tenant = c.tenant.clone();
    let who = Who {
        user: &linked,
        tenant: &tenant,
    };
    let ctx = Ctx {
        action: "account.duo.link",
        ip: ipaddr,
        pam: None,
        new_code: "Send a new code.",
    };
    let info = [
        ("company", tenant.name.as_str()),
        ("application", "Padlock"),
    ];
    let text = PushText {
        kind: "Link to Padlock",
        info: &info,
    };
    let mut slot = SessionSlot(c);
    let settled = push_and_wait(&state, &mut slot, who, text, &ctx).await?;
    let mut c = slot.0;
    match settled {
        Ok(()) => save_duo(&state, &mut c, String::new(), username.to_owned(), ipaddr).await,
        Err((status, message)) => render(&state, &c, status, None, Some(message)),
    }
}

#[derive(Deserialize)]
pub(crate) struct PasswordForm {
    csrf: String,
    password: Password,
    confirm: Password,
}

/// `POST /account/security/password`: the signed-in user sets a new password (12 to 1024
/// characters, typed twice). Needs a fresh step-up; written only over the user as this request
/// read it. Audited `account.password`; the user is told by email.
pub(crate) async fn password(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    Form(f): Form<PasswordForm>,
) -> Result<Response, AppError> {
    let mut c = match changing(&state, &headers, &f.csrf).await? {
        Ok(c) => c,
        Err(refusal) => return Ok(refusal),
    };
    let refused = |why: String| {
        render(
            &state,
            &c,
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            Some(why),
        )
    };
    if let Some(why) = crate::password::refusal(&f.password) {
        return refused(format!("The new password {why}."));
    }
    if f.password != f.confirm {
        return refused("The two passwords differ.".into());
    }
    let hash = state
        .passwords
        .hash(f.password)
        .await
        .map_err(anyhow::Error::from)?;
    let read = c.user.clone();
    c.user.password_hash = hash;
    c.user.end_sessions();
    if !state.store.swap_user(&read, &c.user).await? {
        return race(&state, &c);
    }
    // This session stays; every other one, and every refresh token, ends with the old password.
    c.session.epoch = c.user.session_epoch;
    state.store.put_session(&c.digest, &c.session).await?;
    state
        .audit(Audit::by_user(
            &c.user,
            "account.password",
            Outcome::Success,
            ip.as_deref(),
        ))
        .await?;
    let company = &c.tenant.name;
    state.notify(
        &c.user.email,
        format!("{company}: your password was changed"),
        format!(
            "The password for signing in to {company} as {} was changed.\n\n\
             If you did not change it, tell your administrator at once.",
            c.user.email
        ),
    );
    render(
        &state,
        &c,
        StatusCode::OK,
        Some("Password changed. Your other sessions were signed out.".into()),
        None,
    )
}
