//! Padlock's PAM API (`/pam/v1`, DESIGN §5 and §8): the JSON bodies `pam_padlock.so` and the
//! server exchange, defined once here so the two sides cannot drift, and the module's decision
//! of which PAM result each answer or transport failure becomes.
//!
//! The conversation: `POST /pam/v1/preauth` ([`PreauthRequest`] → [`PreauthResponse`]); on a
//! challenge the module prompts and sends each answer with `POST /pam/v1/auth` ([`AuthRequest`]
//! → [`AuthResponse`]); a Duo push is followed with `GET /pam/v1/auth_status?txid=…` (also an
//! [`AuthResponse`]). Every call carries the PAM host's credential by HTTP Basic.

use serde::{Deserialize, Serialize};

/// Longest user name, service, rhost, tty or answer the module sends and the server accepts, in
/// bytes. Longer values are refused (never truncated).
pub const MAX_FIELD_BYTES: usize = 256;

/// Body of `POST /pam/v1/preauth`: who is logging in, where, and through what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreauthRequest {
    /// `PAM_USER`: matched to a Padlock user by `unix_name` within the host's company.
    pub user: String,
    /// `PAM_SERVICE` (`sshd`, `sudo`, `su`, `login`).
    pub service: String,
    /// `PAM_RHOST`: the remote host, when the service reports one (ssh).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rhost: Option<String>,
    /// `PAM_TTY`, when the service reports one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tty: Option<String>,
    /// The module's `unknown_user` setting: with [`UnknownUser::Ignore`] a user Padlock does not
    /// know is answered [`PreauthResponse::Unknown`]; otherwise with a challenge that cannot pass.
    #[serde(default)]
    pub unknown_user: UnknownUser,
}

/// What to do with users Padlock does not know (the module's `unknown_user` key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownUser {
    /// Challenge them all the same, with a challenge that cannot pass (no user enumeration).
    #[default]
    Deny,
    /// Tell the module, which answers `PAM_IGNORE`: the rest of the stack decides.
    Ignore,
}

/// What the module does when Padlock cannot be reached (the module's `failmode` key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailMode {
    /// Refuse the login (`PAM_AUTHINFO_UNAVAIL`).
    #[default]
    Secure,
    /// Let the login through with a syslog warning — only when Padlock is unreachable
    /// ([`CallFailure::Unreachable`]), never when its answer is untrusted.
    Safe,
}

/// Why a call to Padlock gave no usable answer (DESIGN §8 "Failmode").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallFailure {
    /// Padlock itself cannot be reached: connection refused or reset, name resolution failure,
    /// connect or read timeout, HTTP 502, 503 or 504.
    Unreachable,
    /// Something answered, but not a Padlock the host trusts: a TLS or certificate failure, 401
    /// (wrong host secret), any other unexpected status, a body that is not the expected JSON.
    Untrusted,
}

/// Where in the login a call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// `preauth`: Padlock has not said yet whether this login needs a second factor.
    Preauth,
    /// After Padlock asked for a second factor (`auth`, `auth_status`).
    Challenge,
}

impl CallFailure {
    /// The PAM result of a call that failed at `stage` under `failmode`: only an unreachable
    /// Padlock at [`Stage::Preauth`] in [`FailMode::Safe`] lets the login through. Once Padlock
    /// has asked for a second factor it was reachable, and a failure afterwards — which a local
    /// user can bring about by suspending `sudo` or `su` past the deadline — refuses the login.
    pub fn verdict(self, failmode: FailMode, stage: Stage) -> Verdict {
        match (self, failmode, stage) {
            (CallFailure::Unreachable, FailMode::Safe, Stage::Preauth) => Verdict::Success,
            _ => Verdict::AuthInfoUnavail,
        }
    }
}

/// What the user is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PamMethod {
    /// A 6-digit code Padlock sent by SMS or email.
    Code,
    /// A code from the user's authenticator app.
    Totp,
    /// Duo: a passcode, or an empty answer for a push.
    Duo,
}

/// Answer to `POST /pam/v1/preauth`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum PreauthResponse {
    /// The company has its second factor off: nothing to ask.
    Allow,
    /// Padlock has no such user in the host's company; only answered when the request said
    /// [`UnknownUser::Ignore`].
    Unknown,
    /// The user may not log in (an API account, a disabled user, a locked second factor); the
    /// module shows `message` and refuses.
    Deny {
        /// One sentence for the user.
        message: String,
    },
    /// Ask the user; answers go to `/pam/v1/auth` with `txid`.
    Challenge {
        /// The transaction id (opaque, single login).
        txid: String,
        /// What is asked.
        method: PamMethod,
        /// The prompt to show, ending in ": ".
        prompt: String,
    },
}

/// Body of `POST /pam/v1/auth`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthRequest {
    /// From the challenge.
    pub txid: String,
    /// What the user typed (never empty: an empty answer is a wrong try the module does not send,
    /// except for Duo, where it asks for a push).
    pub answer: String,
}

/// Answer to `POST /pam/v1/auth` and `GET /pam/v1/auth_status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum AuthResponse {
    /// The second factor passed.
    Allow,
    /// The answer was wrong; the same challenge takes another (the module may prompt again).
    Retry {
        /// One sentence for the user.
        message: String,
    },
    /// The challenge is over (locked, expired, spent, unknown transaction): refuse the login.
    Deny {
        /// One sentence for the user.
        message: String,
    },
    /// A Duo push is on its way; poll `auth_status`.
    Pending,
}

/// What the module returns to PAM (mapped one-to-one onto `PAM_*` codes by the module).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Verdict {
    /// `PAM_SUCCESS`.
    Success,
    /// `PAM_AUTH_ERR`.
    AuthErr,
    /// `PAM_MAXTRIES`: every allowed prompt was answered wrongly.
    MaxTries,
    /// `PAM_AUTHINFO_UNAVAIL`: Padlock's answer cannot be trusted or was not understood.
    AuthInfoUnavail,
    /// `PAM_IGNORE`: the user is out of scope; the rest of the stack decides.
    Ignore,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_unreachable_padlock_at_preauth_in_safe_mode_lets_a_login_through() {
        assert_eq!(
            CallFailure::Unreachable.verdict(FailMode::Safe, Stage::Preauth),
            Verdict::Success
        );
        for (failure, mode, stage) in [
            (CallFailure::Unreachable, FailMode::Secure, Stage::Preauth),
            (CallFailure::Unreachable, FailMode::Safe, Stage::Challenge),
            (CallFailure::Unreachable, FailMode::Secure, Stage::Challenge),
            (CallFailure::Untrusted, FailMode::Safe, Stage::Preauth),
            (CallFailure::Untrusted, FailMode::Secure, Stage::Preauth),
            (CallFailure::Untrusted, FailMode::Safe, Stage::Challenge),
        ] {
            assert_eq!(
                failure.verdict(mode, stage),
                Verdict::AuthInfoUnavail,
                "{failure:?} {mode:?} {stage:?}"
            );
        }
    }

    #[test]
    fn wire_shapes() {
        let challenge = PreauthResponse::Challenge {
            txid: "t".into(),
            method: PamMethod::Totp,
            prompt: "Code from your authenticator app: ".into(),
        };
        let text = r#"{"result":"challenge","txid":"t","method":"totp","prompt":"Code from your authenticator app: "}"#;
        assert_eq!(
            serde_json::to_string(&challenge).ok().as_deref(),
            Some(text)
        );
        let req: Result<PreauthRequest, _> =
            serde_json::from_str(r#"{"user":"ann","service":"sshd"}"#);
        assert!(req.is_ok_and(|r| r.unknown_user == UnknownUser::Deny && r.rhost.is_none()));
    }
}
