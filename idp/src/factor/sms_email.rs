//! SMS/Email one-time codes: drawn from the system CSPRNG (uniform over 000000–999999), kept only
//! as an HMAC under the master key bound to the login flow, delivered by SMS or email.

use super::engine::Ctx;
use crate::delivery::CodeMessage;
use crate::domain::{Outcome, User};
use crate::error::AppError;
use crate::state::AppState;
use axum::http::StatusCode;
use padlock_policy::code::{CodeDigest, code_from_random};
use padlock_policy::decision::Channel;
use padlock_policy::rate::RateAdmission;

/// A fresh 6-digit code.
fn new_code() -> String {
    loop {
        let mut b = [0u8; 4];
        // The system RNG failing means the machine cannot do cryptography at all.
        aws_lc_rs::rand::fill(&mut b)
            .unwrap_or_else(|_| panic!("system random number generator failed"));
        if let Some(code) = code_from_random(u32::from_le_bytes(b)) {
            return code;
        }
    }
}

/// The stored digest of `code` for the flow whose id digests to `flow_digest`.
#[must_use]
pub fn digest(state: &AppState, flow_digest: &[u8; 32], code: &str) -> CodeDigest {
    state.master.keyed_digest(
        "login-code",
        format!("{}:{code}", hex::encode(flow_digest)).as_bytes(),
    )
}

/// A freshly drawn code: the digest is stored, the code itself only ever goes to the user.
pub struct NewCode {
    code: String,
    /// What the store keeps.
    pub digest: CodeDigest,
}

/// Draws a code for the flow (or session) whose id digests to `flow_digest`. Callers record its
/// digest first and send it after, so parallel requests cannot send more codes than are recorded.
#[must_use]
pub fn draw(state: &AppState, flow_digest: &[u8; 32]) -> NewCode {
    let code = new_code();
    let digest = digest(state, flow_digest, &code);
    NewCode { code, digest }
}

/// Why a code did not go out. The caller puts back what it recorded for the code.
pub(crate) enum Undelivered {
    /// The user had `max_messages_per_user` codes in the window; the next may go at `retry_at`.
    Limited {
        /// Seconds since the epoch.
        retry_at: u64,
    },
    /// The gateway or mail server failed (logged).
    Failed,
}

impl Undelivered {
    /// The status and sentence for the page.
    pub(crate) fn answer(&self, now: u64) -> (StatusCode, String) {
        match self {
            Undelivered::Limited { retry_at } => (
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "Too many codes were sent to you recently. The next one can be sent in {}.",
                    wait_text(retry_at.saturating_sub(now))
                ),
            ),
            Undelivered::Failed => (StatusCode::BAD_GATEWAY, super::SEND_FAILED.to_owned()),
        }
    }
}

/// "45 seconds", "3 minutes".
fn wait_text(secs: u64) -> String {
    match secs {
        0..=1 => "1 second".into(),
        2..=90 => format!("{secs} seconds"),
        _ => format!("{} minutes", secs.div_ceil(60)),
    }
}

/// Sends `code` to `user` over `channel`, worded by the `[messages]` templates — if the per-user
/// message limit allows it. Every path that sends a code goes through here, so the limit holds
/// whatever the path (first send, resend, a new flow, the padlock page's step-up, PAM). A send
/// that fails still counts (the gateway may have delivered it). A refusal or failure is audited
/// as `second_factor.send` under `ctx`.
pub(crate) async fn deliver(
    state: &AppState,
    user: &User,
    company: &str,
    channel: &Channel,
    code: &NewCode,
    ctx: &Ctx<'_>,
) -> Result<Result<(), Undelivered>, AppError> {
    let now = state.clock.now();
    let result = match state
        .store
        .admit_message(&user.id, now, &state.limits.messages)
        .await?
    {
        RateAdmission::Refused { retry_at } => Err(Undelivered::Limited { retry_at }),
        RateAdmission::Admitted => {
            let message = CodeMessage {
                code: &code.code,
                company,
            };
            match state.delivery.send(channel, &message).await {
                Ok(()) => Ok(()),
                Err(e) => {
                    tracing::error!(error = %e, user = %user.id, "could not send a one-time code");
                    Err(Undelivered::Failed)
                }
            }
        }
    };
    if result.is_err() {
        ctx.audit_as(state, user, "second_factor.send", Outcome::Failure)
            .await?;
    }
    Ok(result)
}

/// Where the code went, for the page: `+••• ••• 1234` or `a•••@example.com`.
#[must_use]
pub fn masked(channel: &Channel) -> String {
    match channel {
        Channel::Sms(n) => format!("by SMS to {}", n.masked()),
        Channel::Email(e) => {
            let (local, domain) = e.split_once('@').unwrap_or((e, ""));
            format!(
                "by email to {}\u{2022}\u{2022}\u{2022}@{domain}",
                local.chars().next().unwrap_or('?')
            )
        }
    }
}
