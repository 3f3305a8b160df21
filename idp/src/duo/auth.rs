//! The Duo Auth API v2 calls Padlock makes, with their answers typed (Duo Auth API reference:
//! `/auth/v2/check`, `/preauth`, `/auth`, `/auth_status`, `/enroll`, `/enroll_status`). Users are
//! named by their Duo `username`.

use super::client::{DuoClient, DuoError, Verb};
use super::sign;
use padlock_policy::duo::{AuthResult, PreauthResult};
use serde::Deserialize;
use std::time::Duration;

/// Duo's answer to `preauth` (the `devices` list is not used: pushes go to `device=auto`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Preauth {
    /// What Duo would do with this user.
    pub result: PreauthResult,
    /// Duo's sentence for the user (e.g. why they are denied).
    #[serde(default)]
    pub status_msg: String,
}

/// Duo's answer to a synchronous `auth` (passcode) or to `auth_status`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AuthAnswer {
    /// `allow`, `deny` or `waiting`.
    pub result: AuthResult,
    /// Finer status: `allow`, `bypass`, `deny`, `fraud`, `timeout`, `pushed`, …
    #[serde(default)]
    pub status: String,
    /// Duo's sentence for the user.
    #[serde(default)]
    pub status_msg: String,
}

/// A new Duo user waiting for activation (`enroll`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Enrollment {
    /// URL of the activation QR code image (PNG) to show the user.
    pub activation_barcode: String,
    /// Activation code, needed to ask `enroll_status`.
    pub activation_code: String,
    /// Activation link for the phone.
    pub activation_url: String,
    /// When the activation expires, seconds since the epoch.
    pub expiration: u64,
    /// Duo's user id.
    pub user_id: String,
    /// Duo's username.
    pub username: String,
}

/// `enroll_status` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnrollStatus {
    /// The phone was activated.
    Success,
    /// Not yet.
    Waiting,
    /// Unknown or expired activation.
    Invalid,
}

#[derive(Deserialize)]
struct Txid {
    txid: String,
}

/// A push to send.
#[derive(Debug, Clone, Copy)]
pub struct Push<'a> {
    /// Duo username.
    pub username: &'a str,
    /// Duo's `type`: the words the Duo Mobile notification shows before the application name.
    pub kind: &'a str,
    /// Shown as the user in Duo Mobile.
    pub display_username: &'a str,
    /// Shown in the push's details, in order (sent as Duo's URL-encoded `pushinfo`).
    pub pushinfo: &'a [(&'a str, &'a str)],
    /// The address the login comes from, if known.
    pub ipaddr: Option<&'a str>,
}

/// `key=value&…` with each part percent-encoded, in the order given (Duo's `pushinfo`).
#[must_use]
pub fn pushinfo(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", sign::percent_encode(k), sign::percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

impl DuoClient {
    /// `GET /auth/v2/check`: whether the keys are right (a signed no-op).
    ///
    /// # Errors
    /// [`DuoError::Refused`] (HTTP 401) for wrong keys; outages as [`DuoError`] says.
    pub async fn check(&self) -> Result<(), DuoError> {
        self.call::<serde_json::Value>(Verb::Get, "/auth/v2/check", &[])
            .await
            .map(|_| ())
    }

    /// `POST /auth/v2/preauth` for `username`, from `ipaddr` if known.
    ///
    /// # Errors
    /// See [`DuoError`].
    pub async fn preauth(&self, username: &str, ipaddr: Option<&str>) -> Result<Preauth, DuoError> {
        let mut params = vec![("username", username)];
        params.extend(ipaddr.map(|ip| ("ipaddr", ip)));
        self.call(Verb::Post, "/auth/v2/preauth", &params).await
    }

    /// `POST /auth/v2/auth` with `factor=push`, `device=auto`, `async=1`: sends the push and
    /// returns its `txid` at once.
    ///
    /// # Errors
    /// See [`DuoError`].
    pub async fn push(&self, p: &Push<'_>) -> Result<String, DuoError> {
        let info = pushinfo(p.pushinfo);
        let mut params = vec![
            ("username", p.username),
            ("factor", "push"),
            ("device", "auto"),
            ("async", "1"),
            ("type", p.kind),
            ("display_username", p.display_username),
            ("pushinfo", info.as_str()),
        ];
        params.extend(p.ipaddr.map(|ip| ("ipaddr", ip)));
        let t: Txid = self.call(Verb::Post, "/auth/v2/auth", &params).await?;
        Ok(t.txid)
    }

    /// `POST /auth/v2/auth` with `factor=passcode`: Duo checks `passcode` at once.
    ///
    /// # Errors
    /// See [`DuoError`].
    pub async fn passcode(
        &self,
        username: &str,
        passcode: &str,
        ipaddr: Option<&str>,
    ) -> Result<AuthAnswer, DuoError> {
        let mut params = vec![
            ("username", username),
            ("factor", "passcode"),
            ("passcode", passcode),
        ];
        params.extend(ipaddr.map(|ip| ("ipaddr", ip)));
        self.call(Verb::Post, "/auth/v2/auth", &params).await
    }

    /// `GET /auth/v2/auth_status?txid=…`, waiting at most `wait` (and at most the client's
    /// timeout) for Duo, which holds the call until the status changes: a call still open then
    /// answers `waiting`.
    ///
    /// # Errors
    /// See [`DuoError`] (never [`DuoError::NoAnswer`]).
    pub async fn auth_status(&self, txid: &str, wait: Duration) -> Result<AuthAnswer, DuoError> {
        match self
            .call_within(Verb::Get, "/auth/v2/auth_status", &[("txid", txid)], wait)
            .await
        {
            Err(DuoError::NoAnswer(_)) => Ok(AuthAnswer {
                result: AuthResult::Waiting,
                status: "pushed".into(),
                status_msg: String::new(),
            }),
            other => other,
        }
    }

    /// `POST /auth/v2/enroll`: a new Duo user named `username`, activation valid `valid_secs`.
    ///
    /// # Errors
    /// [`DuoError::Refused`] (400) when the username is taken; see [`DuoError`].
    pub async fn enroll(&self, username: &str, valid_secs: u64) -> Result<Enrollment, DuoError> {
        let valid = valid_secs.to_string();
        self.call(
            Verb::Post,
            "/auth/v2/enroll",
            &[("username", username), ("valid_secs", &valid)],
        )
        .await
    }

    /// `POST /auth/v2/enroll_status`: whether the activation of `user_id` completed.
    ///
    /// # Errors
    /// See [`DuoError`].
    pub async fn enroll_status(
        &self,
        user_id: &str,
        activation_code: &str,
    ) -> Result<EnrollStatus, DuoError> {
        self.call(
            Verb::Post,
            "/auth/v2/enroll_status",
            &[("user_id", user_id), ("activation_code", activation_code)],
        )
        .await
    }
}
