//! `/pam/v1`: the API `pam_padlock.so` calls (DESIGN §5, §8). A PAM host authenticates with its
//! credential by HTTP Basic (a wrong or unknown host gets 401, the same body after the same
//! work). The user is the company user whose Unix name is `PAM_USER`, in the host's company.
//!
//! `preauth` asks `padlock-policy` what this login needs — exactly the decision of the web login
//! after a correct password — and answers `allow` (the company's second factor is off), `deny`
//! (API account, disabled, locked, no usable method) or a `challenge`, whose code is sent and
//! whose answers are checked by the same second-factor [`engine`] as the web login's, with the
//! challenge kept in a PAM transaction keyed by its `txid`: the same codes, tries, resend and
//! message limits, lockout and audit. A name Padlock does not know gets a [`decoy`]: the answer a
//! real user of the company would get, that never passes and sends nothing, so names cannot be
//! probed. Every decision is audited with the host, service, rhost and tty.

mod decoy;

pub use decoy::DecoyShapes;

use crate::api::ApiJson;
use crate::crypto::random_token;
use crate::domain::{ClientKind, Outcome, PamLogin, PamTransaction};
use crate::error::AppError;
use crate::extract::ClientIp;
use crate::factor::engine::{
    self, Checked, CodeSend, Ctx, DuoStart, PushSend, PushState, PushText, Slot, Who,
};
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
use padlock_policy::code::{CodeChallenge, CodeInput, CodeOutcome, normalize_code};
use padlock_policy::decision::{Decision, DenyReason};
use padlock_policy::duo::{DuoPush, normalize_passcode};
use padlock_policy::lockout::Attempt;
use padlock_policy::pam::{
    AuthRequest, AuthResponse, MAX_FIELD_BYTES, PamMethod, PreauthRequest, PreauthResponse,
    UnknownUser,
};
use serde::Deserialize;

/// How long a PAM transaction stays answerable, in seconds (a code itself expires sooner).
pub const TRANSACTION_TTL_SECS: u64 = 300;

/// The longest `preauth` spends sending a code, in seconds: past it the login is refused ("could
/// not send the code"). `pam_padlock.so`'s `timeout_secs` is longer (it is at least 10), so a
/// slow mail or SMS gateway can never look like an unreachable Padlock to a module in
/// `failmode = "safe"`.
pub const SEND_BOUND_SECS: u64 = 4;

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

/// The PAM host of a request, proven by HTTP Basic with its credential. A valid credential is
/// never refused; a failed one is counted against its source address and audited
/// (`pam_host.authenticate`), and a source over its failure limit gets 429.
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
        let ClientIp(ip) = ClientIp::from_request_parts(parts, state)
            .await
            .map_err(|_| refused())?;
        let ip = ip.as_deref();
        // The credential is checked first, and a valid one is never refused: a host is not shut
        // out by other failures from its address (its local users, a shared NAT). Basic only:
        // the same digest comparison for a wrong secret, an unknown host and a client that is
        // not a PAM host.
        if let Ok(Authenticated::Confidential(c)) =
            authenticate(state, &parts.headers, None, None).await
            && let (ClientKind::PamHost, Some(tenant)) = (&c.kind, &c.tenant)
        {
            return Ok(Host {
                tenant: tenant.clone(),
                id: c.id,
            });
        }
        // Failed tries are limited per source and audited.
        if let Some(retry_after) = state.refuse_source(ip, "pam_host.authenticate").await? {
            return Err(PamError(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_failures",
                format!(
                    "too many failed attempts from this address; retry after {retry_after} seconds"
                ),
            ));
        }
        state.limits.record_source_failure(ip, state.clock.now());
        state
            .audit(Audit {
                tenant: None,
                actor: "(basic auth)",
                action: "pam_host.authenticate",
                target: "(basic auth)",
                outcome: Outcome::Failure,
                source_ip: ip,
            })
            .await?;
        Err(refused())
    }
}

impl Host {
    /// The company the host is bound to.
    async fn company(&self, state: &AppState) -> Result<crate::domain::Tenant, PamError> {
        let tenant = state.store.get_tenant(&self.tenant).await?;
        Ok(tenant
            .ok_or_else(|| anyhow::anyhow!("PAM host {} has no company", self.id))
            .map_err(AppError::from)?)
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

/// An optional [`field`], owned.
fn optional(name: &str, value: Option<&str>) -> Result<Option<String>, PamError> {
    value.map(|v| field(name, v).map(str::to_owned)).transpose()
}

/// The source address for the per-source limits and the audit: the `rhost` the host reported,
/// when it is an IP address (the HTTP peer is the host itself, shared by all its users; with
/// sshd's `UseDNS yes` rhost is a name, and only the per-user limits apply).
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
        new_code: "Start the login again.",
    }
}

/// The audit action of PAM second-factor answers.
const ACTION: &str = "pam.second_factor";
const TOO_MANY_FROM_HERE: &str =
    "Too many failed attempts from your network. Wait a few minutes, then try again.";
const AMBIGUOUS: &str = "This user name belongs to more than one account of your company. Ask your administrator to give each a different Unix name.";
const AT_LIMIT: &str = "No more codes for this login. Start again.";
const EXPIRED: &str = "This login expired. Start again.";
const CHANGED: &str = "Your company's sign-in settings changed during this login. Start again.";
const NO_METHOD: &str =
    "Your company requires a second factor you have not set up. Contact your administrator.";
const TOO_SLOW: &str =
    "Padlock could not send the code in time. Try again, or contact your administrator.";

/// The audit actor of a PAM user name that is no user (marked, so it never reads as a user id).
fn unix_actor(name: &str) -> String {
    format!("unix:{name}")
}

/// Audits a decision about a name that is no user (or several) of the host's company.
async fn audit_name(
    state: &AppState,
    host: &Host,
    login: &PamLogin,
    action: &str,
) -> StoreResult<()> {
    let actor = unix_actor(&login.user);
    let event = Audit {
        tenant: Some(&host.tenant),
        actor: &actor,
        action,
        target: &actor,
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
        rhost: optional("rhost", req.rhost.as_deref())?,
        tty: optional("tty", req.tty.as_deref())?,
    };
    let ctx = ctx(&login);
    let deny = |message: &str| {
        Ok(Json(PreauthResponse::Deny {
            message: message.to_owned(),
        }))
    };
    if state.refuse_source(ctx.ip, "pam.preauth").await?.is_some() {
        return deny(TOO_MANY_FROM_HERE);
    }
    // Each preauth starts a login, like a new sign-in flow at /authorize: limited per source.
    if let Some(refusal) = state.limits.admit_flow(ctx.ip, state.clock.now()) {
        state.refused_source(ctx.ip, "pam.preauth", refusal).await?;
        return deny(TOO_MANY_FROM_HERE);
    }
    let tenant = host.company(&state).await?;
    let mut users = state
        .store
        .find_users_by_unix_name(&tenant.id, name)
        .await?;
    let user = match (users.pop(), users.is_empty()) {
        (Some(user), true) => user,
        (None, _) => {
            audit_name(&state, &host, &login, "pam.unknown_user").await?;
            if req.unknown_user == UnknownUser::Ignore {
                return Ok(Json(PreauthResponse::Unknown));
            }
            return Ok(Json(decoy_preauth(&state, &tenant, login).await?));
        }
        (Some(_), false) => {
            audit_name(&state, &host, &login, "pam.denied.ambiguous").await?;
            return deny(AMBIGUOUS);
        }
    };
    let mut duo_bypassed = false;
    let factor = match engine::decision(&state, &user, &tenant, false).await? {
        Decision::Allow { .. } => {
            ctx.audit_as(&state, &user, "pam.allow", Outcome::Success)
                .await?;
            return Ok(Json(PreauthResponse::Allow));
        }
        Decision::Deny(reason) => {
            let (action, message) = refusal(reason);
            ctx.audit_as(&state, &user, action, Outcome::Failure)
                .await?;
            return deny(message);
        }
        Decision::Challenge(Factor::Duo) => {
            let who = Who {
                user: &user,
                tenant: &tenant,
            };
            // Duo's preauth first. A Duo outage is Duo's, not Padlock's: a refusal in both
            // failmodes, never a weaker factor. Bounded well inside the module's shortest
            // timeout, so a slow Duo never looks like an unreachable Padlock (which `safe` lets
            // through).
            let asked = engine::duo_start(&state, who, &ctx);
            match tokio::time::timeout(std::time::Duration::from_secs(SEND_BOUND_SECS), asked).await
            {
                Ok(started) => match started? {
                    DuoStart::Ask => Factor::Duo,
                    DuoStart::Instead(f) => {
                        duo_bypassed = true;
                        f
                    }
                    DuoStart::Refused(message) => return deny(&message),
                },
                Err(_) => {
                    if let Some(d) = &tenant.duo {
                        state.duo.note(&d.api_host, true);
                    }
                    tracing::error!(user = %user.id, "Duo's preauth took longer than {SEND_BOUND_SECS} s: refused");
                    ctx.audit_as(&state, &user, "duo.unavailable", Outcome::Failure)
                        .await?;
                    return deny(engine::DUO_DOWN);
                }
            }
        }
        Decision::Challenge(factor) => factor,
    };
    let txid = random_token(32);
    let mut slot = TxnSlot::new(
        &txid,
        PamTransaction {
            user_id: Some(user.id.clone()),
            factor: factor.clone(),
            code: None,
            duo_push: None,
            duo_bypassed,
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
        let sending = engine::send_code(&state, &mut slot, who, channel, &ctx, AT_LIMIT);
        let refused = match tokio::time::timeout(
            std::time::Duration::from_secs(SEND_BOUND_SECS),
            sending,
        )
        .await
        {
            Ok(sent) => match sent? {
                CodeSend::Sent => None,
                CodeSend::Refused(_, message) => Some(message),
                CodeSend::Race => Some(CHANGED.to_owned()),
            },
            Err(_) => {
                tracing::error!(user = %user.id, "sending a PAM login's code took longer than {SEND_BOUND_SECS} s: refused");
                ctx.audit_as(&state, &user, "second_factor.send", Outcome::Failure)
                    .await?;
                Some(TOO_SLOW.to_owned())
            }
        };
        if let Some(message) = refused {
            state.store.take_pam_transaction(&slot.digest).await?;
            return Ok(Json(PreauthResponse::Deny { message }));
        }
    }
    ctx.audit_as(&state, &user, "pam.challenge", Outcome::Success)
        .await?;
    Ok(Json(challenge(txid, &factor)))
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
        DenyReason::LockedOut { .. } => ("pam.denied.locked", LOCKED),
        DenyReason::NoUsableMethod => ("pam.denied.no_method", NO_METHOD),
    }
}

const LOCKED: &str =
    "Too many failed attempts: your second factor is locked for now. Try again later.";

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

/// The preauth of a name that is no user: the answer a real user of the company would get
/// ([`decoy`]), counted against the decoy's own lockout and message window like a user's, stored
/// like a real transaction with a code no one can type, sent nowhere; it takes about as long as
/// real sends take lately (at most [`SEND_BOUND_SECS`]).
async fn decoy_preauth(
    state: &AppState,
    tenant: &crate::domain::Tenant,
    login: PamLogin,
) -> Result<PreauthResponse, PamError> {
    let now = state.clock.now();
    let (decoy, id) = decoy::decoy_for(state, tenant, &login.user).await?;
    let factor = match decoy {
        decoy::Decoy::Deny(message) => {
            return Ok(PreauthResponse::Deny {
                message: message.into(),
            });
        }
        decoy::Decoy::Challenge(factor) => factor,
    };
    if state
        .store
        .lockout_state(&id)
        .await?
        .locked_until(now, &state.limits.lockout)
        .is_some()
    {
        return Ok(PreauthResponse::Deny {
            message: LOCKED.into(),
        });
    }
    let code = if let Factor::Code { .. } = factor {
        if let padlock_policy::rate::RateAdmission::Refused { retry_at } = state
            .store
            .admit_message(&id, now, &state.limits.messages)
            .await?
        {
            let (_, message) = sms_email::Undelivered::Limited { retry_at }.answer(now);
            return Ok(PreauthResponse::Deny { message });
        }
        let Factor::Code { channel } = &factor else {
            unreachable!("inside the code decoy's branch");
        };
        let wait = state.delivery.typical_send_time(channel).clamp(
            DECOY_MIN_WAIT,
            std::time::Duration::from_secs(SEND_BOUND_SECS),
        );
        tokio::time::sleep(wait).await;
        // A digest no typed code can produce.
        let mut unreachable = [0u8; 32];
        aws_lc_rs::rand::fill(&mut unreachable)
            .map_err(|_| AppError::from(anyhow::anyhow!("the random generator failed")))?;
        Some(CodeChallenge::issue_for(
            unreachable,
            now,
            state.limits.code_ttl_secs,
        ))
    } else {
        if factor == Factor::Duo {
            // A real Duo user's preauth asks Duo first.
            tokio::time::sleep(duo_wait(state)).await;
        }
        None
    };
    let txid = random_token(32);
    let txn = PamTransaction {
        user_id: None,
        factor: factor.clone(),
        code,
        duo_push: None,
        duo_bypassed: false,
        login,
        expires_at: now + TRANSACTION_TTL_SECS,
    };
    state
        .store
        .put_pam_transaction(&session::digest(&txid), &txn)
        .await?;
    Ok(challenge(txid, &factor))
}

/// The least a decoy waits for its "send", so it is not instant before any real send was timed.
const DECOY_MIN_WAIT: std::time::Duration = std::time::Duration::from_millis(50);

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

    fn push(&self) -> Option<&DuoPush> {
        self.txn.duo_push.as_ref()
    }

    async fn put(
        &mut self,
        state: &AppState,
        code: Option<CodeChallenge>,
        duo_push: Option<DuoPush>,
    ) -> StoreResult<bool> {
        let next = PamTransaction {
            code,
            duo_push,
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
        .filter(|t| t.login.host == host.id.as_str() && t.expires_at > state.clock.now())
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
        // An unknown, expired, completed or other host's transaction: refused and audited.
        let actor = format!("pam-host:{}", host.id.as_str());
        let event = Audit {
            tenant: Some(&host.tenant),
            actor: &actor,
            action: "pam.transaction_unknown",
            target: &actor,
            outcome: Outcome::Failure,
            source_ip: None,
        };
        state.audit(event).await?;
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
    let factor = slot.txn.factor.clone();
    // Duo: an empty answer asks for a push; anything else is a passcode.
    let push = factor == Factor::Duo && answer.is_empty();
    let typed = match (&factor, push) {
        (_, true) => Some(String::new()),
        (Factor::Duo, false) => normalize_passcode(answer),
        _ => normalize_code(answer),
    };
    let Some(typed) = typed else {
        let message = match factor {
            Factor::Duo => "Enter the 6 to 8 digits of a Duo passcode, or press Enter for a push.",
            _ => "Enter the 6 digits of the code.",
        };
        return Ok(Json(AuthResponse::Retry {
            message: message.into(),
        }));
    };
    let tenant = host.company(&state).await?;
    let Some(user_id) = slot.txn.user_id.clone() else {
        if push {
            return decoy_push(&state, &tenant, &mut slot).await;
        }
        return decoy_answer(&state, &host, &tenant, &mut slot, &typed, &ctx).await;
    };
    let user = match still_the_user(&state, &slot, &user_id, &tenant, &ctx).await? {
        Ok(user) => user,
        Err(refused) => return Ok(Json(refused)),
    };
    let who = Who {
        user: &user,
        tenant: &tenant,
    };
    if push {
        let host_name = state
            .store
            .get_client(&host.id)
            .await?
            .map_or_else(|| host.id.to_string(), |c| c.name);
        let info = [
            ("host", host_name.as_str()),
            ("service", login.service.as_str()),
            ("rhost", login.rhost.as_deref().unwrap_or("")),
        ];
        let text = PushText {
            kind: PUSH_KIND,
            info: &info,
        };
        let answer = match engine::push(&state, &mut slot, who, text, &ctx).await? {
            // A push already waiting is the one to poll.
            PushSend::Sent | PushSend::Refused(StatusCode::CONFLICT, _) => AuthResponse::Pending,
            PushSend::Refused(_, message) => AuthResponse::Deny { message },
            PushSend::Race => AuthResponse::Retry {
                message: "This login changed meanwhile. Try again.".into(),
            },
        };
        if let AuthResponse::Deny { .. } = answer {
            state.store.take_pam_transaction(&slot.digest).await?;
        }
        return Ok(Json(answer));
    }
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

/// Duo's `type` for a PAM login: Duo Mobile shows "<type>: <application>".
const PUSH_KIND: &str = "Login";
/// Longest one `auth_status` call waits on Duo (the module's own timeout is at least 10 s).
const PUSH_POLL: std::time::Duration = std::time::Duration::from_secs(5);

/// The transaction's user, if the decision is still to ask them what the transaction asks: a
/// user disabled, made an API account or locked since preauth, or a company whose settings
/// changed, does not pass with the old transaction (it is ended, and the answer says why).
async fn still_the_user(
    state: &AppState,
    slot: &TxnSlot,
    user_id: &crate::secret::UserId,
    tenant: &crate::domain::Tenant,
    ctx: &Ctx<'_>,
) -> Result<Result<crate::domain::User, AuthResponse>, PamError> {
    let user = state.store.get_user(user_id).await?;
    let now_decision = match &user {
        Some(u) => Some(engine::decision(state, u, tenant, false).await?),
        None => None,
    };
    let asked = |u: &crate::domain::User, d: &Decision| {
        let who = Who { user: u, tenant };
        engine::still_asked(d, &slot.txn.factor, slot.txn.duo_bypassed, who)
    };
    Ok(match (user, now_decision) {
        (Some(user), Some(d)) if asked(&user, &d) => Ok(user),
        (Some(user), Some(Decision::Deny(reason))) => {
            state.store.take_pam_transaction(&slot.digest).await?;
            let (action, message) = refusal(reason);
            ctx.audit_as(state, &user, action, Outcome::Failure).await?;
            Err(AuthResponse::Deny {
                message: message.into(),
            })
        }
        (user, _) => {
            state.store.take_pam_transaction(&slot.digest).await?;
            if let Some(user) = &user {
                ctx.audit_as(state, user, "pam.denied.changed", Outcome::Failure)
                    .await?;
            }
            Err(AuthResponse::Deny {
                message: CHANGED.into(),
            })
        }
    })
}

/// A decoy's push: it "goes" (after the time a push to Duo typically takes; counted against the
/// decoy's lockout as a user's push is, the try that locks sending nothing) and is never
/// answered, so polling it times out as an unanswered push does.
async fn decoy_push(
    state: &AppState,
    tenant: &crate::domain::Tenant,
    slot: &mut TxnSlot,
) -> Result<Json<AuthResponse>, PamError> {
    let now = state.clock.now();
    let (_, id) = decoy::decoy_for(state, tenant, &slot.txn.login.user).await?;
    if slot
        .txn
        .duo_push
        .as_ref()
        .is_some_and(|p| !p.expired(now, state.duo.push_timeout_secs))
    {
        return Ok(Json(AuthResponse::Pending));
    }
    let answer = match state
        .store
        .admit_second_factor_attempt(&id, now, &state.limits.lockout)
        .await?
    {
        Attempt::Locked { until } => AuthResponse::Deny {
            message: locked_message(until),
        },
        Attempt::Admitted {
            locks_until: Some(until),
        } => {
            // The try that begins a lock is a failure from its source, as a user's is.
            state
                .limits
                .record_source_failure(source(&slot.txn.login), now);
            AuthResponse::Deny {
                message: locked_message(until),
            }
        }
        Attempt::Admitted { locks_until: None } => {
            tokio::time::sleep(duo_wait(state)).await;
            let pushed = DuoPush {
                txid: random_token(16),
                pushed_at: now,
                polled: false,
            };
            slot.put_push(state, Some(pushed)).await?;
            AuthResponse::Pending
        }
    };
    if let AuthResponse::Deny { .. } = answer {
        state.store.take_pam_transaction(&slot.digest).await?;
    }
    Ok(Json(answer))
}

/// How long a decoy waits where a real user's answer waits on Duo: Duo's typical call time lately.
fn duo_wait(state: &AppState) -> std::time::Duration {
    state.duo.call_time.get().clamp(
        DECOY_MIN_WAIT,
        std::time::Duration::from_secs(SEND_BOUND_SECS),
    )
}

/// The answer to a decoy: the steps a real answer takes, against the decoy's own lockout — wrong
/// every time, locking when a user would lock.
async fn decoy_answer(
    state: &AppState,
    host: &Host,
    tenant: &crate::domain::Tenant,
    slot: &mut TxnSlot,
    typed: &str,
    ctx: &Ctx<'_>,
) -> Result<Json<AuthResponse>, PamError> {
    let now = state.clock.now();
    let (_, id) = decoy::decoy_for(state, tenant, &slot.txn.login.user).await?;
    let policy = &state.limits.lockout;
    let answer = if let Some(until) = state
        .store
        .lockout_state(&id)
        .await?
        .locked_until(now, policy)
    {
        AuthResponse::Deny {
            message: locked_message(until),
        }
    } else {
        let duo = slot.txn.factor == Factor::Duo;
        if duo {
            // A real Duo passcode is checked by Duo.
            tokio::time::sleep(duo_wait(state)).await;
        }
        let mut spent = None;
        if let Some(mut ch) = slot.txn.code.clone() {
            let digest = sms_email::digest(state, &slot.digest, typed);
            let outcome = ch.advance(CodeInput::Submit(digest), now);
            slot.put_code(state, Some(ch)).await?;
            spent = Some(outcome);
        }
        match spent {
            Some(outcome) if !outcome.is_failed_guess() => AuthResponse::Deny {
                message: engine::code_message(outcome, ctx.new_code),
            },
            _ => match state
                .store
                .admit_second_factor_attempt(&id, now, policy)
                .await?
            {
                Attempt::Locked { until } => AuthResponse::Deny {
                    message: locked_message(until),
                },
                Attempt::Admitted {
                    locks_until: Some(until),
                } => {
                    // The try that locks is a failure from its source, as a user's is.
                    state.limits.record_source_failure(ctx.ip, now);
                    AuthResponse::Deny {
                        message: locked_message(until),
                    }
                }
                Attempt::Admitted { locks_until: None } => {
                    state.limits.record_source_failure(ctx.ip, now);
                    match spent {
                        Some(CodeOutcome::Wrong { tries_left }) if tries_left > 0 => {
                            AuthResponse::Retry {
                                message: engine::code_message(
                                    CodeOutcome::Wrong { tries_left },
                                    ctx.new_code,
                                ),
                            }
                        }
                        Some(outcome) => AuthResponse::Deny {
                            message: engine::code_message(outcome, ctx.new_code),
                        },
                        None => AuthResponse::Retry {
                            message: if duo {
                                "That Duo passcode is not right."
                            } else {
                                "That code is not right."
                            }
                            .into(),
                        },
                    }
                }
            },
        }
    };
    audit_name(state, host, &slot.txn.login, ACTION).await?;
    if let AuthResponse::Deny { .. } = answer {
        state.store.take_pam_transaction(&slot.digest).await?;
    }
    Ok(Json(answer))
}

#[derive(Deserialize)]
pub(crate) struct StatusQuery {
    txid: String,
}

/// `GET /pam/v1/auth_status?txid=…`: the state of the transaction's Duo push, waiting up to
/// [`PUSH_POLL`] for Duo. `pending` while unanswered; `allow` once approved; `retry` (a wrong
/// try, with the reason: denied, timed out) so the module may prompt again; `deny` when the
/// login ends (locked, Duo unavailable, the transaction unknown or its decision changed).
pub(crate) async fn auth_status(
    State(state): State<AppState>,
    host: Host,
    Query(q): Query<StatusQuery>,
) -> Result<Json<AuthResponse>, PamError> {
    let Some(mut slot) = transaction(&state, &host, &q.txid).await? else {
        return Ok(Json(AuthResponse::Deny {
            message: EXPIRED.into(),
        }));
    };
    let login = slot.txn.login.clone();
    let ctx = ctx(&login);
    let tenant = host.company(&state).await?;
    let Some(user_id) = slot.txn.user_id.clone() else {
        return decoy_status(&state, &mut slot).await;
    };
    let user = match still_the_user(&state, &slot, &user_id, &tenant, &ctx).await? {
        Ok(user) => user,
        Err(refused) => return Ok(Json(refused)),
    };
    let who = Who {
        user: &user,
        tenant: &tenant,
    };
    let answer = match engine::push_status(&state, &mut slot, who, &ctx, PUSH_POLL).await? {
        // Asked again: the wait on Duo took time, and the company or the user may have changed.
        PushState::Passed => match still_the_user(&state, &slot, &user_id, &tenant, &ctx).await? {
            Ok(_) => AuthResponse::Allow,
            Err(refused) => return Ok(Json(refused)),
        },
        PushState::Waiting => AuthResponse::Pending,
        PushState::Failed {
            message,
            again: true,
        } => AuthResponse::Retry { message },
        PushState::Failed { message, .. } => AuthResponse::Deny { message },
        PushState::Unavailable => AuthResponse::Deny {
            message: engine::DUO_DOWN.into(),
        },
        PushState::NoPush => AuthResponse::Retry {
            message: NO_PUSH.into(),
        },
    };
    if matches!(answer, AuthResponse::Allow | AuthResponse::Deny { .. }) {
        state.store.take_pam_transaction(&slot.digest).await?;
    }
    Ok(Json(answer))
}

/// A decoy push's status, as Duo answers a push nobody answers: the first ask at once, later ones
/// held until the push times out or [`PUSH_POLL`] passes; the timeout is a wrong try from the
/// login's source, as a real one is.
async fn decoy_status(
    state: &AppState,
    slot: &mut TxnSlot,
) -> Result<Json<AuthResponse>, PamError> {
    let Some(pushed) = slot.txn.duo_push.clone() else {
        return Ok(Json(AuthResponse::Retry {
            message: NO_PUSH.into(),
        }));
    };
    let window = state.duo.push_timeout_secs;
    let now = state.clock.now();
    if !pushed.expired(now, window) {
        if !pushed.polled {
            let polled = DuoPush {
                polled: true,
                ..pushed
            };
            slot.put_push(state, Some(polled)).await?;
            return Ok(Json(AuthResponse::Pending));
        }
        let left = std::time::Duration::from_secs(pushed.pushed_at + window - now);
        tokio::time::sleep(PUSH_POLL.min(left)).await;
        if !pushed.expired(state.clock.now(), window) {
            return Ok(Json(AuthResponse::Pending));
        }
    }
    slot.put_push(state, None).await?;
    state
        .limits
        .record_source_failure(source(&slot.txn.login), state.clock.now());
    Ok(Json(AuthResponse::Retry {
        message: "Duo push timed out.".into(),
    }))
}

/// When no push waits for the transaction.
const NO_PUSH: &str = "No Duo push is waiting. Press Enter for a new one.";

#[cfg(test)]
mod tests;
