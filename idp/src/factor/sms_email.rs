//! SMS/Email one-time codes: drawn from the system CSPRNG (uniform over 000000–999999), kept only
//! as an HMAC under the master key bound to the login flow, delivered by SMS or email.

use crate::delivery::{CodeMessage, DeliveryError};
use crate::state::AppState;
use padlock_policy::code::{CodeDigest, code_from_random};
use padlock_policy::decision::Channel;

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

/// Sends `code` over `channel`, worded by the `[messages]` templates.
pub async fn send(
    state: &AppState,
    company: &str,
    channel: &Channel,
    code: &NewCode,
) -> Result<(), DeliveryError> {
    state
        .delivery
        .send(
            channel,
            &CodeMessage {
                code: &code.code,
                company,
            },
        )
        .await
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
