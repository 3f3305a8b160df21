//! `/pam/v1`: the API `pam_padlock.so` calls (DESIGN §5, §8). A PAM host authenticates with its
//! credential by HTTP Basic (a wrong or unknown host gets 401, the same body after the same
//! work). The user is the company user whose Unix name is `PAM_USER`, in the host's company.
//!
//! `preauth` asks `padlock-policy` what this login needs — exactly the decision of the web login
//! after a correct password — and answers `allow` (the company's second factor is off), `deny`
//! (API account, disabled, locked, no usable method) or a `challenge`, whose code is sent and
//! whose answers are checked by the same second-factor [`engine`] as the web login's, with the
//! challenge kept in a PAM transaction keyed by its `txid`: the same codes, tries, resend and
//! message limits, lockout and audit. A name Padlock does not know gets a challenge of the same
//! shape that can never pass (no code is sent; its answer takes the time a real send takes), so
//! names cannot be probed. Every decision is audited with the host, service, rhost and tty.

use crate::api::ApiJson;
use crate::crypto::random_token;
use crate::domain::{ClientKind, Outcome, PamLogin, PamTransaction, Tenant, User};
use crate::error::AppError;
use crate::factor::engine::{self, Checked, Ctx, Sent, Slot, Who};
use crate::factor::sms_email;
use crate::login::locked_message;
use crate::oauth::client_auth::{Authenticated, authenticate};
use crate::secret::ClientId;
use crate::session;
use crate::state::{AppState, Audit};
use crate::store::{Digest, StoreResult};
use async_trait::async_trait;
use axum::Router;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use padlock_policy::Factor;
use padlock_policy::code::{CodeChallenge, normalize_code};
use padlock_policy::decision::{Channel, Decision, DenyReason, Subject, decide};
use padlock_policy::mobile::E164;
use padlock_policy::pam::{
    AuthRequest, AuthResponse, MAX_FIELD_BYTES, PamMethod, PreauthRequest, PreauthResponse,
    UnknownUser,
};
use serde::Deserialize;

/// How long a PAM transaction stays answerable, in seconds (a code itself expires sooner).
pub const TRANSACTION_TTL_SECS: u64 = 300;

/// The routes, relative to `/pam/v1`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/preauth", post(preauth))
        .route("/auth", post(auth))
        .route("/auth_status", get(auth_status))
}

/// A PAM API refusal: `{"error", "message"}`.
pub struct PamError(StatusCode, &'static str, String);

impl IntoResponse for PamError {
    fn into_response(self) -> Response {
        let mut resp = (
            self.0,
            Json(serde_json::json!({ "error": self.1, "message": self.2 })),
        )
            .into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"padlock-pam\""),
            );
        }
        resp
    }
}

impl From<AppError> for PamError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Forbidden(m) => PamError(StatusCode::FORBIDDEN, "forbidden", m),
            other => {
                tracing::error!(error = ?other, "PAM API failure");
                PamError(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "the server could not complete the request".into(),
                )
            }
        }
    }
}

impl From<crate::store::StoreError> for PamError {
    fn from(e: crate::store::StoreError) -> Self {
        AppError::from(e).into()
    }
}

fn invalid(field: &str, m: &str) -> PamError {
    PamError(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        format!("{field}: {m}"),
    )
}

/// The PAM host of a request, proven by HTTP Basic with its credential.
pub struct Host {
    id: ClientId,
    tenant: crate::secret::TenantId,
}

impl FromRequestParts<AppState> for Host {
    type Rejection = PamError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PamError> {
        let refused = || {
            PamError(
                StatusCode::UNAUTHORIZED,
                "invalid_host",
                "a valid PAM host credential is required (HTTP Basic host_id:host_secret)".into(),
            )
        };
        // Basic only: the same digest comparison for a wrong secret, an unknown host and a
        // client that is not a PAM host.
        match authenticate(state, &parts.headers, None, None).await {
            Ok(Authenticated::Confidential(c)) => match (c.kind, c.tenant) {
                (ClientKind::PamHost, Some(tenant)) => Ok(Host { id: c.id, tenant }),
                _ => Err(refused()),
            },
            _ => Err(refused()),
        }
    }
}

/// A field the host reported: at most [`MAX_FIELD_BYTES`], no control characters.
fn field<'a>(name: &str, value: &'a str) -> Result<&'a str, PamError> {
    if value.len() > MAX_FIELD_BYTES || value.chars().any(char::is_control) {
        return Err(invalid(
            name,
            "must be at most 256 bytes without control characters",
        ));
    }
    Ok(value)
}

/// The source address for the per-source limit and the audit: the `rhost` the host reported, when
/// it is an IP address (the HTTP peer is the host itself, shared by all its users).
fn source(login: &PamLogin) -> Option<&str> {
    login
        .rhost
        .as_deref()
        .filter(|r| r.parse::<std::net::IpAddr>().is_ok())
}

fn ctx(login: &PamLogin) -> Ctx<'_> {
    Ctx {
        action: ACTION,
        ip: source(login),
        pam: Some(login),
    }
}

/// The audit action of PAM second-factor answers.
const ACTION: &str = "pam.second_factor";
const TOO_MANY_FROM_HERE: &str =
    "Too many failed attempts from your network. Wait a few minutes, then try again.";

/// Audits a decision about a name that is no user (or several).
async fn audit_name(
    state: &AppState,
    host: &Host,
    name: &str,
    action: &str,
    login: &PamLogin,
) -> StoreResult<()> {
    let event = Audit {
        tenant: Some(&host.tenant),
        actor: name,
        action,
        target: name,
        outcome: Outcome::Failure,
        source_ip: source(login),
    };
    state.audit_with(event, Some(login)).await
}

/// `POST /pam/v1/preauth`.
pub(crate) async fn preauth(
    State(state): State<AppState>,
    host: Host,
    ApiJson(req): ApiJson<PreauthRequest>,
) -> Result<Json<PreauthResponse>, PamError> {
    if req.user.is_empty() {
        return Err(invalid("user", "must not be empty"));
    }
    let name = field("user", &req.user)?;
    let login = PamLogin {
        host: host.id.as_str().to_owned(),
        user: name.to_owned(),
        service: field("service", &req.service)?.to_owned(),
        rhost: req
            .rhost
            .as_deref()
            .map(|r| field("rhost", r))
            .transpose()?
            .map(str::to_owned),
        tty: req
            .tty
            .as_deref()
            .map(|t| field("tty", t))
            .transpose()?
            .map(str::to_owned),
    };
    let ctx = ctx(&login);
    if state.refuse_source(ctx.ip, "pam.preauth").await?.is_some() {
        return Ok(Json(PreauthResponse::Deny {
            message: TOO_MANY_FROM_HERE.into(),
        }));
    }
    let tenant = state
        .store
        .get_tenant(&host.tenant)
        .await?
        .ok_or_else(|| anyhow::anyhow!("PAM host {} has no company", host.id))
        .map_err(AppError::from)?;
    let mut users = state
        .store
        .find_users_by_unix_name(&tenant.id, name)
        .await?;
    let user = match (users.pop(), users.is_empty()) {
        (Some(user), true) => user,
        (None, _) => {
            audit_name(&state, &host, name, "pam.unknown_user", &login).await?;
            if req.unknown_user == UnknownUser::Ignore {
                return Ok(Json(PreauthResponse::Unknown));
            }
            return Ok(Json(decoy(&state, &host, &tenant, name, login).await?));
        }
        (Some(_), false) => {
            audit_name(&state, &host, name, "pam.denied.ambiguous", &login).await?;
            return Ok(Json(PreauthResponse::Deny {
                message: AMBIGUOUS.into(),
            }));
        }
    };
    let lockout = state.store.lockout_state(&user.id).await?;
    let decision = decide(
        &tenant.two_factor,
        &subject(&user),
        &lockout,
        &state.limits.lockout,
        false,
        state.clock.now(),
    );
    let factor = match decision {
        Decision::Allow { .. } => {
            ctx.audit_as(&state, &user, "pam.allow", Outcome::Success)
                .await?;
            return Ok(Json(PreauthResponse::Allow));
        }
        Decision::Deny(reason) => {
            let (action, message) = refusal(reason);
            ctx.audit_as(&state, &user, action, Outcome::Failure)
                .await?;
            return Ok(Json(PreauthResponse::Deny {
                message: message.into(),
            }));
        }
        // Duo is not part of this build: fail closed, as the web login does.
        Decision::Challenge(Factor::Duo) => {
            ctx.audit_as(
                &state,
                &user,
                "pam.denied.duo_unavailable",
                Outcome::Failure,
            )
            .await?;
            return Ok(Json(PreauthResponse::Deny {
                message: engine::DUO_UNAVAILABLE.into(),
            }));
        }
        Decision::Challenge(factor) => factor,
    };
    let txid = random_token(32);
    let mut slot = TxnSlot::new(
        &txid,
        PamTransaction {
            host: host.id.clone(),
            user_id: Some(user.id.clone()),
            factor: factor.clone(),
            code: None,
            login: login.clone(),
            expires_at: state.clock.now() + TRANSACTION_TTL_SECS,
        },
    );
    state
        .store
        .put_pam_transaction(&slot.digest, &slot.txn)
        .await?;
    if let Factor::Code { channel } = &factor {
        let who = Who {
            user: &user,
            tenant: &tenant,
        };
        match engine::send_code(&state, &mut slot, who, channel, &ctx, AT_LIMIT).await? {
            Sent::Sent => {}
            Sent::Refused(_, message) => {
                state.store.take_pam_transaction(&slot.digest).await?;
                return Ok(Json(PreauthResponse::Deny { message }));
            }
            Sent::Race => {
                state.store.take_pam_transaction(&slot.digest).await?;
                return Ok(Json(PreauthResponse::Deny {
                    message: "This login changed meanwhile. Try again.".into(),
                }));
            }
        }
    }
    ctx.audit_as(&state, &user, "pam.challenge", Outcome::Success)
        .await?;
    Ok(Json(challenge(txid, &factor)))
}

const AMBIGUOUS: &str = "This user name belongs to more than one account of your company. Ask your administrator to give each a different Unix name.";
const AT_LIMIT: &str = "No more codes for this login. Start again.";
const EXPIRED: &str = "This login expired. Start again.";

fn subject(user: &User) -> Subject<'_> {
    Subject {
        email: &user.email,
        mobile: user.mobile.as_ref(),
        preferred: user.preferred_method,
        totp_enrolled: user.totp.is_some(),
        duo_enrolled: user.duo.as_ref().is_some_and(|d| d.active),
        api_account: user.api_account,
        disabled: user.disabled,
    }
}

/// The audit action and the sentence for the user of a refused login.
fn refusal(reason: DenyReason) -> (&'static str, &'static str) {
    match reason {
        DenyReason::ApiAccount => (
            "pam.denied.api_account",
            "This is an API account: it cannot log in interactively.",
        ),
        DenyReason::Disabled => (
            "pam.denied.disabled",
            "This account is disabled. Contact your administrator.",
        ),
        DenyReason::LockedOut { .. } => (
            "pam.denied.locked",
            "Too many failed attempts: your second factor is locked for now. Try again later.",
        ),
        DenyReason::NoUsableMethod => (
            "pam.denied.no_method",
            "Your company requires a second factor you have not set up. Contact your administrator.",
        ),
    }
}

/// The challenge as the module shows it.
fn challenge(txid: String, factor: &Factor) -> PreauthResponse {
    let (method, prompt) = match factor {
        Factor::Code { channel } => (
            PamMethod::Code,
            format!("Verification code (sent {}): ", sms_email::masked(channel)),
        ),
        Factor::Totp => (PamMethod::Totp, "Code from your authenticator app: ".into()),
        Factor::Duo => (
            PamMethod::Duo,
            "Duo passcode, or press Enter for a push to your phone: ".into(),
        ),
    };
    PreauthResponse::Challenge {
        txid,
        method,
        prompt,
    }
}

/// The challenge for a name that is no user of the company: shaped like the company's usual one
/// (an email code to `n•••@<the company's usual mail domain>` when it offers codes, else the
/// authenticator app), stored like a real one with a code that can never be typed, sent nowhere;
/// answering it takes the time a real send takes now.
async fn decoy(
    state: &AppState,
    host: &Host,
    tenant: &Tenant,
    name: &str,
    login: PamLogin,
) -> Result<PreauthResponse, PamError> {
    let now = state.clock.now();
    let factor = if tenant.two_factor.methods.sms_email || !tenant.two_factor.methods.totp {
        Factor::Code {
            channel: decoy_channel(&state.store.list_users(&tenant.id).await?, name),
        }
    } else {
        Factor::Totp
    };
    let txid = random_token(32);
    let code = matches!(factor, Factor::Code { .. }).then(|| {
        // A digest no typed code can produce: it is not the digest of any string.
        let mut unreachable = [0u8; 32];
        aws_lc_rs::rand::fill(&mut unreachable).ok();
        CodeChallenge::issue(unreachable, now)
    });
    if code.is_some() {
        tokio::time::sleep(state.delivery.typical_send_time()).await;
    }
    let txn = PamTransaction {
        host: host.id.clone(),
        user_id: None,
        factor: factor.clone(),
        code,
        login,
        expires_at: now + TRANSACTION_TTL_SECS,
    };
    state
        .store
        .put_pam_transaction(&session::digest(&txid), &txn)
        .await?;
    Ok(challenge(txid, &factor))
}

/// Where a decoy's code claims to go, shaped like most of the company's users' codes: by SMS
/// when most have a mobile number (a number of the usual country with random last digits — only
/// the country and the last four show), else by email to `<first letter of name>@<the usual mail
/// domain>` (`example.com` for a company without users).
fn decoy_channel(users: &[User], name: &str) -> Channel {
    let people: Vec<&User> = users.iter().filter(|u| !u.api_account).collect();
    let with_mobile: Vec<&E164> = people.iter().filter_map(|u| u.mobile.as_ref()).collect();
    if !with_mobile.is_empty() && with_mobile.len() * 2 >= people.len() {
        let usual = most_common(with_mobile.iter().map(|m| m.country_code()));
        if let Some(number) = with_mobile
            .iter()
            .find(|m| m.country_code() == usual)
            .and_then(|m| {
                let mut random = [0u8; 2];
                aws_lc_rs::rand::fill(&mut random).ok()?;
                let tail = u16::from_le_bytes(random) % 10_000;
                let head = m.as_str().get(..m.as_str().len() - 4)?;
                E164::parse(&format!("{head}{tail:04}")).ok()
            })
        {
            return Channel::Sms(number);
        }
    }
    let domain = most_common(
        people
            .iter()
            .filter_map(|u| u.email.rsplit_once('@').map(|(_, d)| d)),
    );
    let domain = if domain.is_empty() {
        "example.com"
    } else {
        domain
    };
    let local: String = name
        .chars()
        .filter(|c| c.is_alphanumeric())
        .take(1)
        .collect();
    let local = if local.is_empty() { "u".into() } else { local };
    Channel::Email(format!("{local}@{domain}"))
}

/// The most frequent of `items` (`""` when there are none).
fn most_common<'a>(items: impl Iterator<Item = &'a str>) -> &'a str {
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for item in items {
        *counts.entry(item).or_default() += 1;
    }
    counts
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .map_or("", |(item, _)| item)
}

/// A PAM transaction, lent to [`engine`] as the record that holds its challenge.
struct TxnSlot {
    digest: Digest,
    txn: PamTransaction,
}

impl TxnSlot {
    fn new(txid: &str, txn: PamTransaction) -> TxnSlot {
        TxnSlot {
            digest: session::digest(txid),
            txn,
        }
    }
}

#[async_trait]
impl Slot for TxnSlot {
    fn binding(&self) -> &Digest {
        &self.digest
    }

    fn code(&self) -> Option<&CodeChallenge> {
        self.txn.code.as_ref()
    }

    async fn put_code(
        &mut self,
        state: &AppState,
        code: Option<CodeChallenge>,
    ) -> StoreResult<bool> {
        let next = PamTransaction {
            code,
            ..self.txn.clone()
        };
        let swapped = state
            .store
            .swap_pam_transaction(&self.digest, &self.txn, &next)
            .await?;
        if swapped {
            self.txn = next;
        }
        Ok(swapped)
    }
}

/// The live transaction `txid` of `host`, if any.
async fn transaction(
    state: &AppState,
    host: &Host,
    txid: &str,
) -> Result<Option<TxnSlot>, PamError> {
    if txid.len() > MAX_FIELD_BYTES {
        return Err(invalid("txid", "unknown transaction"));
    }
    let slot_digest = session::digest(txid);
    let txn = state.store.get_pam_transaction(&slot_digest).await?;
    Ok(txn
        .filter(|t| t.host == host.id && t.expires_at > state.clock.now())
        .map(|txn| TxnSlot {
            digest: slot_digest,
            txn,
        }))
}

/// `POST /pam/v1/auth`.
pub(crate) async fn auth(
    State(state): State<AppState>,
    host: Host,
    ApiJson(req): ApiJson<AuthRequest>,
) -> Result<Json<AuthResponse>, PamError> {
    let answer = field("answer", &req.answer)?;
    let Some(mut slot) = transaction(&state, &host, &req.txid).await? else {
        return Ok(Json(AuthResponse::Deny {
            message: EXPIRED.into(),
        }));
    };
    let login = slot.txn.login.clone();
    let ctx = ctx(&login);
    if state.refuse_source(ctx.ip, ACTION).await?.is_some() {
        return Ok(Json(AuthResponse::Deny {
            message: TOO_MANY_FROM_HERE.into(),
        }));
    }
    let Some(typed) = normalize_code(answer) else {
        return Ok(Json(AuthResponse::Retry {
            message: "Enter the 6 digits of the code.".into(),
        }));
    };
    let user = match &slot.txn.user_id {
        Some(id) => state
            .store
            .get_user(id)
            .await?
            .filter(|u| !u.disabled && !u.api_account),
        None => None,
    };
    let tenant = state.store.get_tenant(&host.tenant).await?;
    let (Some(user), Some(tenant)) = (user, tenant) else {
        return decoy_answer(&state, &mut slot, &typed, &ctx).await;
    };
    let who = Who {
        user: &user,
        tenant: &tenant,
    };
    let factor = slot.txn.factor.clone();
    let answer = match engine::check(&state, &mut slot, who, &factor, &typed, &ctx).await? {
        Checked::Passed => AuthResponse::Allow,
        Checked::Failed {
            message,
            again: true,
        } => AuthResponse::Retry { message },
        Checked::Failed { message, .. } => AuthResponse::Deny { message },
        Checked::Locked { until } => AuthResponse::Deny {
            message: locked_message(until),
        },
        Checked::NoCode => AuthResponse::Deny {
            message: EXPIRED.into(),
        },
        Checked::Race => AuthResponse::Retry {
            message: "This login changed meanwhile. Enter the code again.".into(),
        },
    };
    if matches!(answer, AuthResponse::Allow | AuthResponse::Deny { .. }) {
        state.store.take_pam_transaction(&slot.digest).await?;
    }
    Ok(Json(answer))
}

/// The answer to a challenge that cannot pass (an unknown name, or a user removed or disabled
/// since preauth): the same steps and messages as a wrong answer to a real one.
async fn decoy_answer(
    state: &AppState,
    slot: &mut TxnSlot,
    typed: &str,
    ctx: &Ctx<'_>,
) -> Result<Json<AuthResponse>, PamError> {
    state
        .limits
        .record_source_failure(ctx.ip, state.clock.now());
    let answer = match slot.txn.code.clone() {
        Some(mut ch) => {
            let digest = sms_email::digest(state, &slot.digest, typed);
            let outcome = ch.advance(
                padlock_policy::code::CodeInput::Submit(digest),
                state.clock.now(),
            );
            slot.put_code(state, Some(ch)).await?;
            let message = engine::code_message(outcome);
            match outcome {
                padlock_policy::code::CodeOutcome::Wrong { tries_left } if tries_left > 0 => {
                    AuthResponse::Retry { message }
                }
                _ => AuthResponse::Deny { message },
            }
        }
        None => AuthResponse::Retry {
            message: "That code is not right.".into(),
        },
    };
    let name = ctx.pam.map_or("", |p| p.user.as_str());
    let event = Audit {
        tenant: None,
        actor: name,
        action: ACTION,
        target: name,
        outcome: Outcome::Failure,
        source_ip: ctx.ip,
    };
    state.audit_with(event, ctx.pam).await?;
    if let AuthResponse::Deny { .. } = answer {
        state.store.take_pam_transaction(&slot.digest).await?;
    }
    Ok(Json(answer))
}

#[derive(Deserialize)]
pub(crate) struct StatusQuery {
    txid: String,
}

/// `GET /pam/v1/auth_status?txid=…`: the state of a Duo push. This build sends no pushes
/// (Duo is refused at preauth), so every live transaction answers that there is nothing to wait
/// for.
pub(crate) async fn auth_status(
    State(state): State<AppState>,
    host: Host,
    Query(q): Query<StatusQuery>,
) -> Result<Json<AuthResponse>, PamError> {
    let message = match transaction(&state, &host, &q.txid).await? {
        Some(_) => "This login has no push to wait for.",
        None => EXPIRED,
    };
    Ok(Json(AuthResponse::Deny {
        message: message.into(),
    }))
}

#[cfg(test)]
#[path = "pam_api_tests.rs"]
mod tests;
