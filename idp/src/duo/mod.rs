//! Duo Auth API v2: a small client of Duo's service — request signing ([`sign`]), the signed HTTP
//! exchange with its deadlines, back-off and typed errors ([`client`]), and the calls Padlock makes
//! ([`auth`]: `check`, `preauth`, `auth`, `auth_status`, `enroll`, `enroll_status`).
//!
//! [`Duo`] is the part Padlock's state holds: the shared HTTP client and the timing, from which it
//! makes a [`client::DuoClient`] for one company's integration.

pub mod auth;
pub mod client;
pub mod sign;

use crate::crypto::MasterKey;
use crate::domain::{DUO_SKEY_PURPOSE, DuoConfig};
use crate::secret::DuoSecretKey;
use client::{DuoClient, DuoError, Integration};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Default of `[duo] timeout_secs` (10 s): the longest wait for one Duo call (connect, send,
/// answer), retries after a 429 included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait to connect to Duo; past it Duo counts as unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Padlock's access to Duo: one HTTP client for every company, and where Duo is.
#[derive(Debug, Clone)]
pub struct Duo {
    http: reqwest::Client,
    /// `[testing] duo_base_url`: replaces `https://<api_host>` for every company.
    base_url: Option<String>,
    /// Longest wait for one call.
    timeout: Duration,
    /// How long a Duo call (preauth, push, passcode) typically takes: what a PAM decoy waits.
    pub call_time: Arc<crate::typical::TypicalTime>,
    /// API hosts whose last call met an outage, and when: PAM decoys refuse as users are
    /// refused while a company's Duo is down.
    failing: Arc<Mutex<HashMap<String, Instant>>>,
    /// Pushes whose status a request is asking Duo about right now (one at a time per push).
    polling: Arc<Mutex<HashSet<String>>>,
    /// Longest wait for one push, in seconds ([`padlock_policy::duo::PUSH_TIMEOUT_SECS`] unless
    /// `[duo] push_timeout_secs` says less).
    pub push_timeout_secs: u64,
}

impl Duo {
    /// Duo reached at `https://<api_host>`, or at `base_url` for every company when given (tests).
    /// `timeout`: the longest wait for one call; `push_timeout_secs`: for one push.
    ///
    /// # Errors
    /// The HTTP client cannot be built (TLS roots unavailable).
    pub fn new(
        base_url: Option<String>,
        timeout: Duration,
        push_timeout_secs: u64,
    ) -> Result<Duo, String> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT.min(timeout))
            .user_agent(concat!("padlock/", env!("CARGO_PKG_VERSION")))
            .no_proxy()
            // Duo answers where it is asked; a redirect is not followed (nor the keys with it).
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("the HTTP client for Duo: {e}"))?;
        Ok(Duo {
            http,
            base_url: base_url.map(|u| u.trim_end_matches('/').to_owned()),
            timeout,
            call_time: Arc::default(),
            failing: Arc::default(),
            polling: Arc::default(),
            push_timeout_secs,
        })
    }

    /// A client for one company's integration, its secret key opened with `master`.
    ///
    /// # Errors
    /// [`DuoError::Config`] when the sealed secret key cannot be opened or is not text.
    pub fn client(&self, master: &MasterKey, config: &DuoConfig) -> Result<DuoClient, DuoError> {
        let skey = master
            .open(DUO_SKEY_PURPOSE, &config.skey)
            .map_err(|e| DuoError::Config(format!("the Duo secret key cannot be opened: {e}")))?;
        let skey = String::from_utf8(skey.to_vec())
            .map_err(|_| DuoError::Config("the Duo secret key is not text".into()))?;
        Ok(self.client_for(Integration {
            ikey: config.ikey.clone(),
            skey: DuoSecretKey::new(skey),
            api_host: config.api_host.clone(),
        }))
    }

    /// Records how a call to the integration at `api_host` went: `outage` when Duo was
    /// unavailable (see [`DuoError::is_outage`]), else it answered.
    pub fn note(&self, api_host: &str, outage: bool) {
        let mut failing = self.failing.lock().unwrap_or_else(PoisonError::into_inner);
        if outage {
            failing.insert(api_host.to_owned(), Instant::now());
        } else {
            failing.remove(api_host);
        }
    }

    /// Whether the integration at `api_host` met an outage in the last 60 s (`FAILING_FOR`) and
    /// has not answered since.
    #[must_use]
    pub fn failing(&self, api_host: &str) -> bool {
        self.failing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(api_host)
            .is_some_and(|at| at.elapsed() < FAILING_FOR)
    }

    /// Claims the right to ask Duo about push `txid` now; `None` while another request does
    /// (its answer settles the push). The claim ends when the guard drops.
    #[must_use]
    pub fn claim_poll(&self, txid: &str) -> Option<PollClaim> {
        let mut polling = self.polling.lock().unwrap_or_else(PoisonError::into_inner);
        polling.insert(txid.to_owned()).then(|| PollClaim {
            polling: self.polling.clone(),
            txid: txid.to_owned(),
        })
    }

    /// A client for `integration` (its secret key already opened): used by [`Duo::client`] and to
    /// check new keys before they are saved.
    #[must_use]
    pub fn client_for(&self, integration: Integration) -> DuoClient {
        let base = self
            .base_url
            .clone()
            .unwrap_or_else(|| format!("https://{}", integration.api_host));
        DuoClient::new(self.http.clone(), base, integration, self.timeout)
    }
}

/// How long an outage keeps counting for [`Duo::failing`] without another call.
const FAILING_FOR: Duration = Duration::from_secs(60);

/// The right to ask Duo about one push ([`Duo::claim_poll`]); released on drop.
#[derive(Debug)]
pub struct PollClaim {
    polling: Arc<Mutex<HashSet<String>>>,
    txid: String,
}

impl Drop for PollClaim {
    fn drop(&mut self) {
        self.polling
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.txid);
    }
}
