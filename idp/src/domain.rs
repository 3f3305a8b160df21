//! The records Padlock keeps: companies, users, clients, signing keys, authorization codes and the
//! audit trail. Secrets inside them are [`Sealed`] (encrypted with the master key) or digests.

use crate::crypto::Sealed;
use crate::secret::{ClientId, TenantId, UserId};
use padlock_policy::decision::{Acr, Amr};
use padlock_policy::mobile::E164;
use padlock_policy::permission::{Permissions, Role};
use padlock_policy::{Method, TwoFactorPolicy};
use serde::{Deserialize, Serialize};

/// Seconds since the Unix epoch.
pub type Timestamp = u64;

/// A company.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    /// Identifier.
    pub id: TenantId,
    /// Display name, unique (case-insensitive).
    pub name: String,
    /// The company-wide second-factor policy.
    pub two_factor: TwoFactorPolicy,
    /// The company's Duo Auth API keys.
    pub duo: Option<DuoConfig>,
    /// The company's own roles (named sets of permissions), besides the built-in `admin` and
    /// `user`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<Role>,
    /// The operator company (the one created at `/setup`): its people holding `company.manage`
    /// are operators, acting on every company, PAM host and relying panel after a second factor.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub operator: bool,
    /// Creation time.
    pub created_at: Timestamp,
}

impl Tenant {
    /// What `user`'s roles permit in this company now.
    #[must_use]
    pub fn permissions_of(&self, user: &User) -> Permissions {
        padlock_policy::permission::held(user.roles.iter().map(String::as_str), &self.roles)
    }

    /// Whether `user` is an enabled person (not an API account) holding `company.manage` here:
    /// a company always keeps one.
    #[must_use]
    pub fn is_manager(&self, user: &User) -> bool {
        !user.disabled
            && !user.api_account
            && self
                .permissions_of(user)
                .has(padlock_policy::permission::Permission::CompanyManage)
    }
}

/// A company's Duo Auth API integration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DuoConfig {
    /// Integration key.
    pub ikey: String,
    /// Secret key, sealed with purpose [`DUO_SKEY_PURPOSE`].
    pub skey: Sealed,
    /// API host, e.g. `api-xxxxxxxx.duosecurity.com`.
    pub api_host: String,
}

/// Sealing purpose of Duo secret keys.
pub const DUO_SKEY_PURPOSE: &str = "duo-skey";

/// A user of a company.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Identifier.
    pub id: UserId,
    /// The company.
    pub tenant: TenantId,
    /// Login name, unique across Padlock (case-insensitive).
    pub email: String,
    /// Mobile number for SMS codes.
    pub mobile: Option<E164>,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Roles (e.g. `admin`).
    pub roles: Vec<String>,
    /// The user's chosen method.
    pub preferred_method: Option<Method>,
    /// Confirmed TOTP enrolment.
    pub totp: Option<TotpEnrolment>,
    /// Duo enrolment.
    pub duo: Option<DuoEnrolment>,
    /// Authenticates only by client credentials; never interactively.
    pub api_account: bool,
    /// The PAM user name, if it is not the email's local part.
    pub unix_name: Option<String>,
    /// Refused at every login.
    pub disabled: bool,
    /// Sessions and refresh tokens carry the value this had when the user signed in; raising it
    /// ([`User::end_sessions`]) ends every one of them at once.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub session_epoch: u32,
    /// Creation time.
    pub created_at: Timestamp,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl User {
    /// The name this user has on Unix hosts: `unix_name`, else the email's local part.
    #[must_use]
    pub fn unix_name(&self) -> &str {
        self.unix_name
            .as_deref()
            .unwrap_or_else(|| self.email.split('@').next().unwrap_or(&self.email))
    }

    /// The user as `padlock-policy` decides about them (every path that asks for a decision
    /// builds it here).
    #[must_use]
    pub fn subject(&self) -> padlock_policy::decision::Subject<'_> {
        padlock_policy::decision::Subject {
            email: &self.email,
            mobile: self.mobile.as_ref(),
            preferred: self.preferred_method,
            totp_enrolled: self.totp.is_some(),
            duo_enrolled: self.duo.as_ref().is_some_and(|d| d.active),
            api_account: self.api_account,
            disabled: self.disabled,
        }
    }

    /// Ends every session and refresh token the user holds (disabled, a role removed, made an
    /// API account): those carry the old [`User::session_epoch`].
    pub fn end_sessions(&mut self) {
        self.session_epoch = self.session_epoch.wrapping_add(1);
    }
}

pub use padlock_policy::permission::ROLE_ADMIN;

/// A confirmed TOTP secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TotpEnrolment {
    /// The seed, sealed with purpose [`TOTP_SEED_PURPOSE`].
    pub seed: Sealed,
    /// When it was confirmed.
    pub enrolled_at: Timestamp,
}

/// Sealing purpose of TOTP seeds.
pub const TOTP_SEED_PURPOSE: &str = "totp-seed";

/// A user's Duo enrolment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DuoEnrolment {
    /// Duo's user id (empty for a Duo user linked by username, whose id Duo does not tell).
    pub duo_user_id: String,
    /// Duo's username: what Padlock names the user by in every call.
    #[serde(default)]
    pub username: String,
    /// Whether activation completed (only active enrolments are saved; `false` is read as no
    /// enrolment).
    pub active: bool,
}

/// What a client is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ClientKind {
    /// A web panel federating its login to Padlock.
    RelyingPanel {
        /// Exact redirect URIs.
        redirect_uris: Vec<String>,
        /// Exact post-logout redirect URIs.
        post_logout_redirect_uris: Vec<String>,
        /// Public clients have no secret and must use PKCE.
        public: bool,
        /// ID token signing algorithm.
        id_token_alg: SigningAlg,
    },
    /// An API account's client-credentials identity.
    ApiAccount {
        /// The API-account user it authenticates as.
        user: UserId,
    },
    /// A host running `pam_padlock.so`.
    PamHost,
    /// The operator's own credential (`operator.json`), scope `padlock.admin`.
    Operator,
}

/// An OAuth client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Client {
    /// `client_id`.
    pub id: ClientId,
    /// Display name.
    pub name: String,
    /// What it is.
    pub kind: ClientKind,
    /// SHA-256 of the generated secret, hex; `None` for public clients.
    pub secret_sha256: Option<String>,
    /// Scopes it may obtain.
    pub scopes: Vec<String>,
    /// The company it is bound to (API accounts, PAM hosts).
    pub tenant: Option<TenantId>,
    /// Creation time.
    pub created_at: Timestamp,
}

/// JWS algorithms Padlock signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SigningAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (2048-bit keys).
    RS256,
    /// ECDSA P-256 with SHA-256.
    ES256,
    /// Ed25519.
    EdDSA,
}

impl SigningAlg {
    /// Every algorithm; Padlock keeps one current key of each.
    pub const ALL: [SigningAlg; 3] = [SigningAlg::RS256, SigningAlg::ES256, SigningAlg::EdDSA];
}

/// A signing key as stored: the private key in PKCS#8, sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningKeyRecord {
    /// JWK `kid`.
    pub kid: String,
    /// Algorithm.
    pub alg: SigningAlg,
    /// PKCS#8 DER, sealed with purpose [`SIGNING_KEY_PURPOSE`].
    pub pkcs8: Sealed,
    /// Creation time.
    pub created_at: Timestamp,
    /// When a newer key replaced it (it stays in JWKS until its tokens expire).
    pub retired_at: Option<Timestamp>,
}

/// Sealing purpose of signing keys.
pub const SIGNING_KEY_PURPOSE: &str = "signing-key";

/// What an authorization code stands for until it is exchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthCodeGrant {
    /// The client it was issued to.
    pub client_id: ClientId,
    /// The user who logged in.
    pub user_id: UserId,
    /// The exact redirect URI of the request.
    pub redirect_uri: String,
    /// Granted scopes.
    pub scope: String,
    /// OIDC nonce.
    pub nonce: Option<String>,
    /// PKCE S256 challenge.
    pub code_challenge: Option<String>,
    /// When the user authenticated.
    pub auth_time: Timestamp,
    /// Methods used.
    pub amr: Vec<Amr>,
    /// Context class.
    pub acr: Acr,
    /// Expiry (at most 60 s after issue).
    pub expires_at: Timestamp,
    /// The grant (token family) the code's tokens will belong to; a second redemption revokes it.
    pub grant_id: String,
    /// The user's [`User::session_epoch`] when they signed in: a different one now means the
    /// sign-in was ended (disabled, a role removed, made an API account).
    #[serde(default)]
    pub epoch: u32,
}

/// Whether an audited action succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It succeeded.
    Success,
    /// It was refused or failed.
    Failure,
}

impl Outcome {
    /// `success` or `failure`, as it is serialized.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
    }
}

/// One line of the append-only audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// When.
    pub at: Timestamp,
    /// Which company, if any.
    pub tenant: Option<TenantId>,
    /// Who (user id, client id, `operator`, `setup`).
    pub actor: String,
    /// What (`tenant.create`, `login.password`, …).
    pub action: String,
    /// On what.
    pub target: String,
    /// Result.
    pub outcome: Outcome,
    /// Source address.
    pub source_ip: Option<String>,
    /// For a PAM login: where and through what.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pam: Option<PamLogin>,
}

/// A login through `pam_padlock.so`, as its host reported it (each field at most
/// [`padlock_policy::pam::MAX_FIELD_BYTES`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PamLogin {
    /// The PAM host's client id.
    pub host: String,
    /// `PAM_USER`, as the host sent it.
    pub user: String,
    /// `PAM_SERVICE` (`sshd`, `sudo`, …).
    pub service: String,
    /// `PAM_RHOST`, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rhost: Option<String>,
    /// `PAM_TTY`, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tty: Option<String>,
}

/// Longest email (login name) an account can have, in bytes (RFC 5321's path limit).
pub const MAX_EMAIL_BYTES: usize = 254;

/// Checks and normalises an email address used as a login name (trimmed, at most 254 characters,
/// one `@`, a dotted domain, no spaces or control characters).
pub fn normalize_email(input: &str) -> Result<String, &'static str> {
    let email = input.trim();
    let valid = email.len() <= MAX_EMAIL_BYTES
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if valid {
        Ok(email.to_owned())
    } else {
        Err("enter a valid email address, such as ann@example.com")
    }
}

/// Checks a company name: 1 to 100 characters, no control characters.
pub fn normalize_company_name(input: &str) -> Result<String, &'static str> {
    let name = input.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err("the company name must be 1 to 100 characters");
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(
            normalize_email(" ann@example.com "),
            Ok("ann@example.com".into())
        );
        for bad in [
            "",
            "ann",
            "ann@",
            "@example.com",
            "ann@example",
            "a b@example.com",
            "a@b@example.com",
            "ann@.com",
            "ann@example.com.",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad}");
        }
        assert!(normalize_email(&format!("{}@example.com", "a".repeat(250))).is_err());
    }

    #[test]
    fn company_names() {
        assert_eq!(normalize_company_name(" Acme "), Ok("Acme".into()));
        assert!(normalize_company_name("  ").is_err());
        assert!(normalize_company_name(&"x".repeat(101)).is_err());
        assert!(normalize_company_name("a\u{0}b").is_err());
    }
}

/// A browser session at Padlock (cookie `padlock_session`, stored under the cookie's digest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Who.
    pub user_id: UserId,
    /// When the user last authenticated.
    pub auth_time: Timestamp,
    /// Methods used.
    pub amr: Vec<Amr>,
    /// Context class reached.
    pub acr: Acr,
    /// The user's [`User::session_epoch`] when they signed in: a different one now means the
    /// sign-in was ended (disabled, a role removed, made an API account).
    #[serde(default)]
    pub epoch: u32,
    /// When the user last passed a second factor (step-up freshness).
    pub second_factor_at: Option<Timestamp>,
    /// Expiry.
    pub expires_at: Timestamp,
    /// A step-up code sent from the padlock page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_up: Option<padlock_policy::code::CodeChallenge>,
    /// A TOTP secret shown for enrolment, not yet confirmed (sealed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totp_pending: Option<Sealed>,
    /// A Duo push sent for the padlock page's step-up, not yet settled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duo_push: Option<padlock_policy::duo::DuoPush>,
    /// A Duo activation begun on the padlock page, waiting for the phone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duo_pending: Option<DuoActivation>,
}

/// A Duo user created for enrolment (`/auth/v2/enroll`), waiting for the phone to activate it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DuoActivation {
    /// Duo's user id.
    pub user_id: String,
    /// Duo's username.
    pub username: String,
    /// The activation code (to ask `enroll_status`).
    pub activation_code: String,
    /// The QR code image URL to show.
    pub activation_barcode: String,
    /// The activation link for the phone.
    pub activation_url: String,
    /// When the activation expires, seconds since the epoch.
    pub expires_at: Timestamp,
}

/// A validated authorization request waiting for the user to log in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthRequest {
    /// The relying panel.
    pub client_id: ClientId,
    /// Exact registered redirect URI.
    pub redirect_uri: String,
    /// Granted scopes (requested ∩ allowed), space-separated.
    pub scope: String,
    /// Opaque value returned to the client.
    pub state: Option<String>,
    /// OIDC nonce.
    pub nonce: Option<String>,
    /// PKCE S256 challenge.
    pub code_challenge: Option<String>,
    /// Whether the relying panel asked for `padlock:2fa`.
    pub second_factor_requested: bool,
    /// Email to prefill.
    pub login_hint: Option<String>,
}

/// Where a login flow is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "step")]
pub enum LoginStep {
    /// Waiting for email and password.
    Password,
    /// The password was right; waiting for the second factor.
    Factor {
        /// Who.
        user_id: UserId,
        /// The factor the policy chose.
        factor: padlock_policy::Factor,
        /// The one-time code in play (SMS/Email).
        code: Option<padlock_policy::code::CodeChallenge>,
        /// The Duo push in play.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duo_push: Option<padlock_policy::duo::DuoPush>,
        /// `factor` replaces Duo, whose preauth answered its bypass (refused as a second factor).
        #[serde(default)]
        duo_bypassed: bool,
        /// The user's session generation when the password was accepted: if it moved since
        /// (a new password, disabled, a role removed), this sign-in ends here.
        #[serde(default)]
        epoch: u32,
    },
}

/// One interactive login in progress (stored under the digest of its id; the id is also in a
/// cookie of the browser that started it, which is what binds the form posts to that browser).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginFlow {
    /// The authorization request to answer when the login completes.
    pub request: AuthRequest,
    /// Current step.
    pub step: LoginStep,
    /// Expiry of the flow.
    pub expires_at: Timestamp,
    /// A sign-in to one of Padlock's own pages: the page (a path on Padlock's origin) to go back
    /// to instead of answering a relying panel; `request` then names no registered client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_to: Option<String>,
}

/// One PAM login waiting for its second factor (stored under the digest of its `txid`; the
/// second-factor engine keeps its code challenge here as the web login keeps it in the flow).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PamTransaction {
    /// The user, or `None` for a name Padlock does not know: that challenge never passes.
    pub user_id: Option<UserId>,
    /// What is asked.
    pub factor: padlock_policy::Factor,
    /// The one-time code in play (SMS/Email).
    pub code: Option<padlock_policy::code::CodeChallenge>,
    /// The Duo push in play.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duo_push: Option<padlock_policy::duo::DuoPush>,
    /// `factor` replaces Duo, whose preauth answered its bypass (refused as a second factor).
    #[serde(default)]
    pub duo_bypassed: bool,
    /// Where and through what the login happens (for the audit trail); its `host` began the
    /// transaction, and only that host may answer it.
    pub login: PamLogin,
    /// Expiry, Unix seconds.
    pub expires_at: Timestamp,
}

/// A one-time link to set a password (stored under the digest of its token; 24 h, single use).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordLink {
    /// Whose password it sets.
    pub user_id: UserId,
    /// SHA-256 (hex) of the user's session generation and password hash when the link was made:
    /// once either changes — a password set anywhere, the user disabled, a role removed, the
    /// API-account flag set or cleared — every older link is dead.
    pub password_fingerprint: String,
    /// Expiry.
    pub expires_at: Timestamp,
}

/// A refresh token's record (stored under the token's digest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshRecord {
    /// The grant (token family) it belongs to.
    pub grant_id: String,
    /// The client it was issued to.
    pub client_id: ClientId,
    /// The user.
    pub user_id: UserId,
    /// Granted scopes.
    pub scope: String,
    /// Nonce-free copy of the authentication facts, for ID tokens issued on refresh.
    pub auth_time: Timestamp,
    /// The user's [`User::session_epoch`] when they signed in: a different one now means the
    /// sign-in was ended (disabled, a role removed, made an API account).
    #[serde(default)]
    pub epoch: u32,
    /// Methods used.
    pub amr: Vec<Amr>,
    /// Context class.
    pub acr: Acr,
    /// Expiry.
    pub expires_at: Timestamp,
}

/// A timestamp as RFC 3339 UTC text, for messages.
#[must_use]
pub fn format_time(t: Timestamp) -> String {
    i64::try_from(t)
        .ok()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.to_string())
}
