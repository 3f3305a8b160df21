//! Decoys: what `/pam/v1` answers for a Unix name that is no user of the host's company, so that
//! names cannot be told apart from users by the API or the prompt (DESIGN §8).
//!
//! A decoy takes the shape of a real user of the company, chosen by weighted rendezvous hashing of
//! the name under the master key (the same name always gets the same shape while the company's
//! users stay as they are, the shapes come in proportion to how many users have each, and a
//! change in that mix moves only a few names): an SMS
//! code to a number of that user's country (the masked tail, too, comes from the digest), an
//! email code to `<first letter of the name>•••@<that user's mail domain>`, the authenticator
//! app, Duo (a push nobody answers, a passcode never right; refused like Duo users while the
//! company's Duo is down), or the refusal a user without a usable method gets. It never sends anything
//! and never passes, yet it counts like a user: its tries and messages go to the lockout and the
//! per-user message window of a synthetic id derived from the same digest, so a decoy locks and
//! runs out of codes exactly when a user would.
//!
//! The shapes of a company are read from its users at most once a minute ([`DecoyShapes`]): a
//! decoy is no security decision, and a name probe does not scan the user table.

use crate::domain::{Tenant, User};
use crate::secret::{TenantId, UserId};
use crate::state::AppState;
use crate::store::StoreResult;
use padlock_policy::Factor;
use padlock_policy::decision::{Channel, Decision, decide};
use padlock_policy::lockout::LockoutState;
use padlock_policy::mobile::E164;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// How long a company's decoy shapes are reused before its users are read again, in seconds.
pub const SHAPES_TTL_SECS: u64 = 60;

/// What a real user's preauth looks like, without who they are.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Shape {
    /// The company's second factor is off.
    Allow,
    /// A code by SMS; the number without its last four digits.
    Sms { head: String },
    /// A code by email to this domain.
    Email { domain: String },
    /// The authenticator app.
    Totp,
    /// Duo: a push or passcode prompt that never passes.
    Duo,
    /// No usable method.
    NoMethod,
}

/// The shapes of one company, with how many users have each.
struct Shapes {
    read_at: u64,
    counts: Vec<(Shape, u64)>,
}

/// Per company, the shapes its decoys take; shared by the PAM API's requests.
#[derive(Default)]
pub struct DecoyShapes {
    by_tenant: Mutex<HashMap<TenantId, Shapes>>,
}

/// What a decoy preauth does.
pub(super) enum Decoy {
    /// Refuse as a user of this shape is refused (no usable method; Duo while it is down).
    Deny(&'static str),
    /// Challenge with this factor (never sent).
    Challenge(Factor),
}

/// The decoy for `name` in `tenant`, and the synthetic user id its counters use.
pub(super) async fn decoy_for(
    state: &AppState,
    tenant: &Tenant,
    name: &str,
) -> StoreResult<(Decoy, UserId)> {
    let digest = state.master.keyed_digest(
        "pam-decoy",
        format!("{}\0{name}", tenant.id.as_str()).as_bytes(),
    );
    let id = UserId::from_string(format!("decoy_{}", hex::encode(&digest[..16])));
    let tail = u64::from_le_bytes(digest[24..32].try_into().unwrap_or_default()) % 10_000;
    let shape = shape_of(state, tenant, name).await?;
    let email = |domain: &str| {
        let first: String = name
            .chars()
            .filter(|c| c.is_alphanumeric())
            .take(1)
            .collect();
        let first = if first.is_empty() { "u".into() } else { first };
        Channel::Email(format!("{first}@{domain}"))
    };
    let decoy = match shape {
        // With the second factor off every user is allowed; a name that is no user still gets a
        // code prompt, which tells it apart (docs/pam.md says so).
        Shape::Allow => Decoy::Challenge(Factor::Code {
            channel: email("example.com"),
        }),
        Shape::Sms { head } => match E164::parse(&format!("{head}{tail:04}")) {
            Ok(number) => Decoy::Challenge(Factor::Code {
                channel: Channel::Sms(number),
            }),
            Err(_) => Decoy::Challenge(Factor::Code {
                channel: email("example.com"),
            }),
        },
        Shape::Email { domain } => Decoy::Challenge(Factor::Code {
            channel: email(&domain),
        }),
        Shape::Totp => Decoy::Challenge(Factor::Totp),
        // While the company's Duo is down its Duo users are refused: so are their decoys.
        Shape::Duo
            if tenant
                .duo
                .as_ref()
                .is_some_and(|d| state.duo.failing(&d.api_host)) =>
        {
            Decoy::Deny(crate::factor::engine::DUO_DOWN)
        }
        Shape::Duo => Decoy::Challenge(Factor::Duo),
        Shape::NoMethod => Decoy::Deny(super::NO_METHOD),
    };
    Ok((decoy, id))
}

/// The shape of `name`'s decoy among the company's shapes (read from its users when the cached
/// ones are older than [`SHAPES_TTL_SECS`]): weighted rendezvous hashing, each shape scoring
/// `-ln(u) / count` with `u` uniform from a keyed digest of (company, name, shape); the lowest
/// wins. A shape is thus chosen with probability count / total, and a change in one count moves
/// only the names whose winner it changes.
async fn shape_of(state: &AppState, tenant: &Tenant, name: &str) -> StoreResult<Shape> {
    let now = state.clock.now();
    let cached = {
        let map = state
            .pam_decoys
            .by_tenant
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(&tenant.id)
            .filter(|s| now.saturating_sub(s.read_at) < SHAPES_TTL_SECS)
            .map(|s| s.counts.clone())
    };
    let counts = match cached {
        Some(c) => c,
        None => {
            let counts = count_shapes(tenant, &state.store.list_users(&tenant.id).await?, state);
            let mut map = state
                .pam_decoys
                .by_tenant
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            map.insert(
                tenant.id.clone(),
                Shapes {
                    read_at: now,
                    counts: counts.clone(),
                },
            );
            counts
        }
    };
    let score = |shape: &Shape, count: u64| {
        let d = state.master.keyed_digest(
            "pam-decoy-shape",
            format!("{}\0{name}\0{shape:?}", tenant.id.as_str()).as_bytes(),
        );
        let bits = u64::from_le_bytes(d[..8].try_into().unwrap_or_default()) >> 11;
        // Uniform in (0, 1]: 53 random bits, never zero.
        #[allow(clippy::cast_precision_loss)]
        let u = (bits as f64 + 1.0) / (1u64 << 53) as f64;
        #[allow(clippy::cast_precision_loss)]
        let weight = count as f64;
        -u.ln() / weight
    };
    Ok(counts
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(shape, n)| (score(&shape, n), shape))
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map_or(
            Shape::Email {
                domain: "example.com".into(),
            },
            |(_, shape)| shape,
        ))
}

/// How many of the company's people (not API accounts, not disabled) have each shape now.
fn count_shapes(tenant: &Tenant, users: &[User], state: &AppState) -> Vec<(Shape, u64)> {
    let mut counts: BTreeMap<Shape, u64> = BTreeMap::new();
    let fresh = LockoutState::default();
    for user in users.iter().filter(|u| !u.api_account && !u.disabled) {
        let decision = decide(
            &tenant.two_factor,
            &user.subject(),
            &fresh,
            &state.limits.lockout,
            false,
            state.clock.now(),
        );
        let shape = match decision {
            Decision::Allow { .. } => Shape::Allow,
            Decision::Challenge(Factor::Code {
                channel: Channel::Sms(n),
            }) => Shape::Sms {
                head: n
                    .as_str()
                    .get(..n.as_str().len().saturating_sub(4))
                    .unwrap_or("")
                    .to_owned(),
            },
            Decision::Challenge(Factor::Code {
                channel: Channel::Email(e),
            }) => Shape::Email {
                domain: e
                    .rsplit_once('@')
                    .map_or("example.com", |(_, d)| d)
                    .to_owned(),
            },
            Decision::Challenge(Factor::Totp) => Shape::Totp,
            Decision::Challenge(Factor::Duo) => Shape::Duo,
            Decision::Deny(_) => Shape::NoMethod,
        };
        *counts.entry(shape).or_default() += 1;
    }
    counts.into_iter().collect()
}
