//! `AppState`: everything a handler needs, built once in [`crate::server::serve`] (or by a test) and
//! passed to [`crate::server::app`]. No global singletons.

use crate::clock::Clock;
use crate::config::TokensConfig;
use crate::crypto::MasterKey;
use crate::domain::{AuditEvent, Outcome, PamLogin};
use crate::keys::KeyRing;
use crate::password::Passwords;
use crate::secret::TenantId;
use crate::store::{Store, StoreResult};
use std::sync::Arc;

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub struct AppState {
    /// Storage.
    pub store: Arc<dyn Store>,
    /// The master key (sealing secrets at rest, keyed digests).
    pub master: Arc<MasterKey>,
    /// Parsed signing keys.
    pub keys: Arc<KeyRing>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// argon2id hashing.
    pub passwords: Passwords,
    /// Issuer URL, without a trailing slash.
    pub issuer: Arc<str>,
    /// Lockout, throttling and rate limits.
    pub limits: Arc<crate::limits::Limits>,
    /// Token algorithms and lifetimes.
    pub tokens: TokensConfig,
    /// The discovery document, serialised once.
    pub discovery: bytes::Bytes,
    /// Senders of one-time codes.
    pub delivery: Arc<crate::delivery::Delivery>,
    /// The shapes PAM decoys take, per company.
    pub pam_decoys: Arc<crate::pam_api::DecoyShapes>,
    /// Duo's Auth API, for the companies that use it.
    pub duo: Arc<crate::duo::Duo>,
}

/// The fields of an audit event that vary; time comes from the state's clock.
pub struct Audit<'a> {
    /// Company concerned.
    pub tenant: Option<&'a TenantId>,
    /// Who acted.
    pub actor: &'a str,
    /// What was done.
    pub action: &'a str,
    /// On what.
    pub target: &'a str,
    /// Result.
    pub outcome: Outcome,
    /// Where from.
    pub source_ip: Option<&'a str>,
}

impl<'a> Audit<'a> {
    /// An event about `user`, acted by the user themself (logins, second factor, own settings).
    #[must_use]
    pub fn by_user(
        user: &'a crate::domain::User,
        action: &'a str,
        outcome: Outcome,
        source_ip: Option<&'a str>,
    ) -> Self {
        Audit {
            tenant: Some(&user.tenant),
            actor: user.id.as_str(),
            action,
            target: &user.email,
            outcome,
            source_ip,
        }
    }
}

impl AppState {
    /// Refuses a request from a source address that is over its failure limit, before anything
    /// is checked. Returns the seconds to wait.
    pub async fn refuse_source(&self, ip: Option<&str>, action: &str) -> StoreResult<Option<u64>> {
        let now = self.clock.now();
        match self.limits.source_refused(ip, now) {
            None => Ok(None),
            Some(refusal) => self.refused_source(ip, action, refusal).await.map(Some),
        }
    }

    /// Audits a per-source refusal (the first of its period only, so refused requests cannot
    /// flood the append-only log) and returns the seconds to wait, at least 1.
    pub async fn refused_source(
        &self,
        ip: Option<&str>,
        action: &str,
        refusal: crate::limits::Refusal,
    ) -> StoreResult<u64> {
        if refusal.first {
            self.audit(Audit {
                tenant: None,
                actor: ip.unwrap_or("-"),
                action: "ratelimit.source",
                target: action,
                outcome: Outcome::Failure,
                source_ip: ip,
            })
            .await?;
        }
        Ok(refusal.retry_at.saturating_sub(self.clock.now()).max(1))
    }

    /// Emails `to` a notice (no code: a lock, an unlock, a changed setting) in the background: the
    /// answer does not wait for the mail, nor tells by taking longer what was sent. A failed send
    /// is logged.
    pub fn notify(&self, to: &str, subject: String, body: String) {
        let (delivery, to) = (self.delivery.clone(), to.to_owned());
        tokio::spawn(async move {
            if let Err(e) = delivery.notice(&to, &subject, &body).await {
                tracing::warn!(error = %e, subject, "could not send a notice");
            }
        });
    }

    /// Appends to the audit log (and mirrors it to the service log).
    pub async fn audit(&self, a: Audit<'_>) -> StoreResult<()> {
        self.audit_with(a, None).await
    }

    /// Like [`AppState::audit`], for a decision about a PAM login: the event also names the
    /// host, service, rhost and tty.
    pub async fn audit_with(&self, a: Audit<'_>, pam: Option<&PamLogin>) -> StoreResult<()> {
        let (actor, target) = (bounded(a.actor), bounded(a.target));
        tracing::info!(target: "padlock::audit", actor = actor, action = a.action, target = target, outcome = ?a.outcome, ip = a.source_ip, pam = ?pam);
        self.store
            .append_audit(&AuditEvent {
                at: self.clock.now(),
                tenant: a.tenant.cloned(),
                actor,
                action: a.action.to_owned(),
                target,
                outcome: a.outcome,
                source_ip: a.source_ip.map(str::to_owned),
                pam: pam.cloned(),
            })
            .await
    }
}

/// Longest actor or target an audit event keeps, in bytes (they may be typed by an attacker).
pub const AUDIT_FIELD_MAX_BYTES: usize = 256;

/// `text` cut to [`AUDIT_FIELD_MAX_BYTES`] on a character boundary.
fn bounded(text: &str) -> String {
    let mut end = text.len().min(AUDIT_FIELD_MAX_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// An in-memory state with a manual clock, for handler tests.
#[cfg(test)]
pub(crate) async fn test_state() -> (AppState, Arc<crate::clock::ManualClock>) {
    test_state_on(Arc::new(crate::store::memory::MemoryStore::new())).await
}

/// [`test_state`] on a given in-memory store (for tests that use its hooks).
#[cfg(test)]
pub(crate) async fn test_state_on(
    memory: Arc<crate::store::memory::MemoryStore>,
) -> (AppState, Arc<crate::clock::ManualClock>) {
    let store: Arc<dyn Store> = memory;
    let master = MasterKey::generate().expect("master key");
    let clock = Arc::new(crate::clock::ManualClock::at(1_800_000_000));
    let keys = crate::keys::Keys::load_or_create(store.as_ref(), &master, clock.now())
        .await
        .expect("keys");
    let state = AppState {
        store,
        master: Arc::new(master),
        keys: Arc::new(KeyRing::new(keys)),
        clock: clock.clone(),
        passwords: Passwords::new(2).expect("passwords"),
        issuer: "http://padlock.test".into(),
        limits: Arc::default(),
        tokens: TokensConfig::default(),
        discovery: crate::oauth::discovery::document("http://padlock.test"),
        delivery: Arc::new(
            crate::delivery::Delivery::from_config(
                &crate::config::Config::default(),
                &test_outbox(),
            )
            .expect("outbox"),
        ),
        pam_decoys: Arc::default(),
        // Nothing listens there: a test that needs Duo points this at its peer.
        duo: Arc::new(
            crate::duo::Duo::new(
                Some("http://127.0.0.1:9".into()),
                std::time::Duration::from_secs(2),
                60,
            )
            .expect("duo"),
        ),
    };
    (state, clock)
}

/// A fresh directory for a test state's development outbox (`<dir>/outbox/`).
#[cfg(test)]
pub(crate) fn test_outbox() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("padlock-test-{}", crate::crypto::random_token(8)));
    std::fs::create_dir_all(&dir).expect("outbox dir");
    dir
}
