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

/// Draws a code, sends it over `channel` and returns its digest; nothing is stored if sending fails.
pub async fn send_new(
    state: &AppState,
    flow_digest: &[u8; 32],
    company: &str,
    channel: &Channel,
) -> Result<CodeDigest, DeliveryError> {
    let code = new_code();
    state
        .delivery
        .send(
            channel,
            &CodeMessage {
                code: &code,
                company,
            },
        )
        .await?;
    Ok(digest(state, flow_digest, &code))
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
