//! The blocking HTTPS client of Padlock's PAM API (`/pam/v1`, DESIGN §5 and §8), and the
//! classification of every way a call can fail into [`CallFailure`].
//!
//! - No async runtime and no thread: ureq does the I/O on the calling thread, and names are
//!   resolved by [`NoThreadResolver`] (ureq's own resolver starts a thread whenever a timeout is
//!   set, and that thread could outlive the login). A name lookup is therefore bounded by the
//!   system resolver's own limits (`resolv.conf` `timeout`/`attempts`), not by `timeout_secs`;
//!   configure an IP address or a name in `/etc/hosts` where that matters.
//! - The calling process's environment is ignored: no proxy (`HTTPS_PROXY`, `ALL_PROXY`, …; ureq
//!   would read them by default), no `SSL_CERT_FILE`/`SSL_CERT_DIR`. Trust comes only from
//!   `ca_file` or, when unset, the system bundle at [`SYSTEM_CA_BUNDLE`].
//! - Deadlines: each call gets at most `timeout_secs` (connect, send, answer and body together).
//!   Calls outside Duo polling share a budget of [`BUDGET_FACTOR`] × `timeout_secs` of time spent
//!   waiting on Padlock per login (time the user spends typing is not counted); once it is spent
//!   the next call fails as a timeout. Duo polling has its own window (see `flow`).
//! - Answers: only HTTP 200 with the expected JSON, at most [`MAX_BODY_BYTES`]; no redirect is
//!   followed.

use crate::config::{self, HostSecret, PamConfig};
use base64::Engine as _;
use padlock_policy::pam::{
    AuthRequest, AuthResponse, CallFailure, PreauthRequest, PreauthResponse,
};
use serde::de::DeserializeOwned;
use std::fmt;
use std::net::ToSocketAddrs;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use ureq::config::Config;
use ureq::http::Uri;
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig, TlsProvider};
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};
use ureq::{Agent, Error};
use zeroize::{Zeroize, Zeroizing};

/// Trusted roots when `ca_file` is not set: Debian's bundle of the system's CAs.
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Largest response body accepted, in bytes; a larger one is [`CallFailure::Untrusted`].
pub const MAX_BODY_BYTES: u64 = 64 * 1024;

/// Calls outside Duo polling may wait on Padlock for at most this many × `timeout_secs` per login.
pub const BUDGET_FACTOR: u32 = 3;

/// Why a call to Padlock gave no usable answer: the DESIGN §8 class, and a sentence for syslog
/// (never containing the host secret or an answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    /// Unreachable (failmode decides) or untrusted (always refused).
    pub failure: CallFailure,
    /// What happened, for syslog.
    pub detail: String,
}

impl CallError {
    fn new(failure: CallFailure, detail: impl Into<String>) -> CallError {
        CallError {
            failure,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let class = match self.failure {
            CallFailure::Unreachable => "unreachable",
            CallFailure::Untrusted => "untrusted answer",
        };
        write!(f, "{class}: {}", self.detail)
    }
}

/// A client of one Padlock for one login: holds the host credential (zeroed on drop), the
/// per-call timeout and what is left of the login's budget.
pub struct Client {
    agent: Agent,
    base: String,
    authorization: Zeroizing<String>,
    timeout: Duration,
    budget: Duration,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("authorization", &"[redacted]")
            .field("timeout", &self.timeout)
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Builds the client from the configuration and the host secret: reads the trusted roots
    /// (`ca_file`, or [`SYSTEM_CA_BUNDLE`]) when the URL is `https`, and sets every ureq option
    /// that would otherwise consult the environment.
    ///
    /// # Errors
    /// A sentence for syslog when the roots cannot be read or hold no certificate (a local
    /// problem: the caller refuses with `PAM_AUTHINFO_UNAVAIL` in both failmodes).
    pub fn new(config: &PamConfig, secret: &HostSecret) -> Result<Client, String> {
        let timeout = Duration::from_secs(config.timeout_secs);
        let mut tls = TlsConfig::builder()
            .provider(TlsProvider::Rustls)
            .unversioned_rustls_crypto_provider(Arc::new(
                rustls::crypto::aws_lc_rs::default_provider(),
            ));
        if config.url.starts_with("https://") {
            let roots = match &config.ca_file {
                Some(path) => read_roots(path, config::open_ca_bundle(path)?)?,
                None => {
                    let path = Path::new(SYSTEM_CA_BUNDLE);
                    let bytes = std::fs::read(path)
                        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                    read_roots(path, bytes)?
                }
            };
            tls = tls.root_certs(RootCerts::Specific(Arc::new(roots)));
        }
        let agent_config: Config = Agent::config_builder()
            .proxy(None)
            .tls_config(tls.build())
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("pam_padlock/", env!("CARGO_PKG_VERSION")))
            .timeout_global(Some(timeout))
            .build();
        let agent = Agent::with_parts(agent_config, DefaultConnector::new(), NoThreadResolver);
        let mut credentials = Zeroizing::new(format!("{}:{}", config.host_id, secret.expose()));
        let authorization = Zeroizing::new(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(credentials.as_bytes())
        ));
        credentials.zeroize();
        Ok(Client {
            agent,
            base: config.url.trim_end_matches('/').to_owned(),
            authorization,
            timeout,
            budget: timeout.saturating_mul(BUDGET_FACTOR),
        })
    }

    /// `POST /pam/v1/preauth`: who is logging in; counted against the login's budget.
    ///
    /// # Errors
    /// [`CallError`] classified as in DESIGN §8 (see [`classify`] and [`classify_status`]).
    pub fn preauth(&mut self, request: &PreauthRequest) -> Result<PreauthResponse, CallError> {
        let body = Zeroizing::new(serde_json::to_vec(request).map_err(|e| {
            CallError::new(
                CallFailure::Untrusted,
                format!("cannot encode preauth: {e}"),
            )
        })?);
        let limit = self.take_budget()?;
        let started = Instant::now();
        let result = self.post("/pam/v1/preauth", &body, limit);
        self.spend(started.elapsed());
        result
    }

    /// `POST /pam/v1/auth` with `answer` (serialised into a buffer zeroed after the call);
    /// counted against the login's budget.
    ///
    /// # Errors
    /// [`CallError`] classified as in DESIGN §8.
    pub fn auth(&mut self, txid: &str, answer: &str) -> Result<AuthResponse, CallError> {
        let mut request = AuthRequest {
            txid: txid.to_owned(),
            answer: answer.to_owned(),
        };
        let encoded = serde_json::to_vec(&request);
        request.answer.zeroize();
        let body = Zeroizing::new(encoded.map_err(|e| {
            CallError::new(CallFailure::Untrusted, format!("cannot encode auth: {e}"))
        })?);
        let limit = self.take_budget()?;
        let started = Instant::now();
        let result = self.post("/pam/v1/auth", &body, limit);
        self.spend(started.elapsed());
        result
    }

    /// `GET /pam/v1/auth_status?txid=…` (Duo push polling), waiting at most the smaller of
    /// `timeout_secs` and `cap`; not counted against the budget (the poll window bounds it).
    ///
    /// # Errors
    /// [`CallError`] classified as in DESIGN §8.
    pub fn auth_status(&mut self, txid: &str, cap: Duration) -> Result<AuthResponse, CallError> {
        let limit = self.timeout.min(cap);
        if limit.is_zero() {
            return Err(CallError::new(
                CallFailure::Unreachable,
                "auth_status: no time left to wait",
            ));
        }
        let response = self
            .agent
            .get(format!("{}/pam/v1/auth_status", self.base))
            .query("txid", txid)
            .header("authorization", self.authorization.as_str())
            .header("accept", "application/json")
            .config()
            .timeout_global(Some(limit))
            .build()
            .call();
        read_answer("auth_status", response)
    }

    fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &[u8],
        limit: Duration,
    ) -> Result<T, CallError> {
        let response = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("authorization", self.authorization.as_str())
            .header("content-type", "application/json")
            .header("accept", "application/json")
            .config()
            .timeout_global(Some(limit))
            .build()
            .send(body);
        read_answer(path.trim_start_matches("/pam/v1/"), response)
    }

    /// What a call may still wait: `timeout_secs`, or less when the budget is nearly spent.
    fn take_budget(&self) -> Result<Duration, CallError> {
        let limit = self.timeout.min(self.budget);
        if limit.is_zero() {
            return Err(CallError::new(
                CallFailure::Unreachable,
                format!(
                    "this login's {BUDGET_FACTOR} × timeout_secs of waiting on Padlock is spent"
                ),
            ));
        }
        Ok(limit)
    }

    fn spend(&mut self, elapsed: Duration) {
        self.budget = self.budget.saturating_sub(elapsed);
    }
}

/// Reads a 200 answer as `T`, or classifies what went wrong.
fn read_answer<T: DeserializeOwned>(
    call: &str,
    response: Result<ureq::http::Response<ureq::Body>, Error>,
) -> Result<T, CallError> {
    let mut response =
        response.map_err(|e| CallError::new(classify(&e), format!("{call}: {e}")))?;
    let status = response.status().as_u16();
    if status != 200 {
        let what = if status == 401 {
            " (Padlock refused this host's credential: check host_id and host_secret_file)"
        } else {
            ""
        };
        return Err(CallError::new(
            classify_status(status),
            format!("{call}: HTTP {status}{what}"),
        ));
    }
    let body = response
        .body_mut()
        .with_config()
        .limit(MAX_BODY_BYTES)
        .read_to_vec()
        .map_err(|e| CallError::new(classify(&e), format!("{call}: reading the answer: {e}")))?;
    serde_json::from_slice(&body).map_err(|e| {
        CallError::new(
            CallFailure::Untrusted,
            format!("{call}: the answer is not the expected JSON ({e})"),
        )
    })
}

/// The class of a non-200 HTTP status: 502, 503 and 504 mean Padlock is down behind its proxy
/// ([`CallFailure::Unreachable`]); every other status, 401 included, is
/// [`CallFailure::Untrusted`] (DESIGN §8).
#[must_use]
pub fn classify_status(status: u16) -> CallFailure {
    match status {
        502..=504 => CallFailure::Unreachable,
        _ => CallFailure::Untrusted,
    }
}

/// The class of a transport error (DESIGN §8): [`CallFailure::Unreachable`] only for a refused or
/// reset connection, a failed name lookup, or a connect or read timeout; everything else — TLS and
/// certificate failures, protocol errors, a body over [`MAX_BODY_BYTES`], a redirect — is
/// [`CallFailure::Untrusted`].
#[must_use]
pub fn classify(error: &Error) -> CallFailure {
    use std::io::ErrorKind;
    match error {
        Error::Timeout(_) | Error::HostNotFound => CallFailure::Unreachable,
        Error::StatusCode(status) => classify_status(*status),
        Error::Io(e) => match e.kind() {
            ErrorKind::ConnectionRefused
            | ErrorKind::ConnectionReset
            | ErrorKind::TimedOut
            | ErrorKind::WouldBlock => CallFailure::Unreachable,
            // rustls reports handshake and certificate failures as InvalidData; like every other
            // I/O error they say something answered that is not a Padlock this host trusts.
            _ => CallFailure::Untrusted,
        },
        _ => CallFailure::Untrusted,
    }
}

/// Parses a PEM bundle into roots.
fn read_roots(path: &Path, pem: Vec<u8>) -> Result<Vec<Certificate<'static>>, String> {
    let mut roots = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(PemItem::Certificate(cert)) => roots.push(cert),
            Ok(_) => {}
            Err(e) => return Err(format!("{}: not a PEM bundle: {e}", path.display())),
        }
    }
    if roots.is_empty() {
        return Err(format!("{}: no certificate in it", path.display()));
    }
    Ok(roots)
}

/// Resolves names on the calling thread (ureq's default resolver starts a thread per lookup when a
/// timeout is set, and that thread may outlive the login). A failed lookup is
/// [`Error::HostNotFound`], hence [`CallFailure::Unreachable`].
#[derive(Debug)]
struct NoThreadResolver;

impl Resolver for NoThreadResolver {
    fn resolve(
        &self,
        uri: &Uri,
        _config: &Config,
        _timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, Error> {
        let host = uri
            .host()
            .ok_or_else(|| Error::BadUri(format!("{uri}: no host")))?;
        // IPv6 literals arrive bracketed.
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = uri
            .port_u16()
            .or(match uri.scheme_str() {
                Some("https") => Some(443),
                Some("http") => Some(80),
                _ => None,
            })
            .ok_or_else(|| Error::BadUri(format!("{uri}: no port")))?;
        let found = (host, port)
            .to_socket_addrs()
            .map_err(|_| Error::HostNotFound)?;
        let mut addrs = self.empty();
        for addr in found {
            if addrs.try_push(addr).is_err() {
                break;
            }
        }
        if addrs.is_empty() {
            return Err(Error::HostNotFound);
        }
        Ok(addrs)
    }
}

#[cfg(test)]
mod tests;
