//! Storage as a narrow domain trait. Each operation carries the atomicity it needs
//! (`take_auth_code` is get-and-delete, `accept_totp_step` is compare-and-swap,
//! `admit_second_factor_attempt` counts and checks the lockout in one step), so callers never compose races out of reads and
//! writes. Implementations: [`sled::SledStore`] (default, embedded), [`memory::MemoryStore`] (tests);
//! all pass [`conformance`].
//!
//! The store never sees plaintext secrets: they arrive sealed or digested.

use crate::crypto::Sealed;
use crate::domain::{
    AuditEvent, AuthCodeGrant, Client, LoginFlow, PamTransaction, PasswordLink, RefreshRecord,
    Session, SigningKeyRecord, Tenant, Timestamp, User,
};
use crate::secret::{ClientId, TenantId, UserId};
use async_trait::async_trait;
use padlock_policy::lockout::{Attempt, LockoutPolicy, LockoutState};
use padlock_policy::rate::{RateAdmission, RateLimit};
use padlock_policy::throttle::{Throttle, ThrottlePolicy};
use serde::{Deserialize, Serialize};

mod audit_query;
pub mod conformance;
pub mod memory;
pub mod sled;

pub use audit_query::{AUDIT_SCAN_LIMIT, AuditCursor, AuditIndex, AuditPage, AuditQuery};

/// Storage failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique field (tenant name, user email, id) is taken.
    #[error("{0} already exists")]
    Conflict(String),
    /// The record to update does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The storage engine failed.
    #[error("storage: {0}")]
    Backend(String),
    /// A stored record could not be decoded.
    #[error("stored record {0} is corrupt")]
    Corrupt(String),
}

/// Result of a store operation.
pub type StoreResult<T> = Result<T, StoreError>;

/// A 32-byte digest used as the key of single-use values (authorization codes, setup token).
pub type Digest = [u8; 32];

/// Padlock's storage.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Stores the master-key check if none is stored yet and returns the stored one (which proves,
    /// at every later start, that the same master key is in use).
    async fn init_key_check(&self, check: &Sealed) -> StoreResult<Sealed>;

    /// Every sealed value at rest, with where it is kept: the master-key check, signing keys,
    /// Duo secret keys, TOTP seeds and TOTP seeds pending in sessions. For re-sealing them all
    /// when the sealing scheme changes ([`crate::bootstrap::reseal_under_subkeys`]).
    async fn list_sealed(&self) -> StoreResult<Vec<(SealedAt, Sealed)>>;
    /// Replaces the sealed value at `at` with `new`, only if it is still `old` (compare-and-swap:
    /// a concurrent change is never overwritten); the rest of the record is kept. False when the
    /// value changed or the record is gone.
    async fn replace_sealed(&self, at: &SealedAt, old: &Sealed, new: &Sealed) -> StoreResult<bool>;

    /// Replaces the pending `/setup` token (`None` clears it). The token is consumed by
    /// [`Store::create_tenant_with_admin`] and ended by any company's creation.
    async fn set_setup_token(&self, pending: Option<&PendingSetup>) -> StoreResult<()>;
    /// The pending `/setup` token, if any.
    async fn setup_token(&self) -> StoreResult<Option<PendingSetup>>;

    /// Adds a company; `Conflict` when the name (case-insensitive) or id is taken. In the same
    /// atomic step it ends the pending `/setup` token: once a company exists, whoever holds the
    /// first-run link must not create another one with its own administrator.
    async fn create_tenant(&self, tenant: &Tenant) -> StoreResult<()>;
    /// Adds a company and its first administrator in one atomic step: both are stored or
    /// neither. With `setup`, the step happens only while `setup` is the digest of the pending
    /// `/setup` token, and consumes it. Like [`Store::create_tenant`], it ends the pending token.
    ///
    /// Returns `Ok(false)`, having written nothing, when `setup` is given and is not the pending
    /// token. `Conflict` (nothing written, the token kept) when the company's name or id, or the
    /// administrator's email or id, is taken.
    async fn create_tenant_with_admin(
        &self,
        tenant: &Tenant,
        admin: &User,
        setup: Option<&Digest>,
    ) -> StoreResult<bool>;
    /// A company by id.
    async fn get_tenant(&self, id: &TenantId) -> StoreResult<Option<Tenant>>;
    /// A company by name (case-insensitive).
    async fn find_tenant_by_name(&self, name: &str) -> StoreResult<Option<Tenant>>;
    /// All companies, by name.
    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>>;
    /// Replaces a company record (not its name); `NotFound` if absent.
    async fn update_tenant(&self, tenant: &Tenant) -> StoreResult<()>;
    /// Replaces the company record `old` with `new` (not its name) only if the stored record is
    /// still exactly `old`: false when another write came first (nothing is written). `NotFound`
    /// if absent.
    async fn swap_tenant(&self, old: &Tenant, new: &Tenant) -> StoreResult<bool>;

    /// Adds a user; `Conflict` when the email (case-insensitive) or id is taken.
    async fn create_user(&self, user: &User) -> StoreResult<()>;
    /// A user by id.
    async fn get_user(&self, id: &UserId) -> StoreResult<Option<User>>;
    /// A user by email (case-insensitive).
    async fn find_user_by_email(&self, email: &str) -> StoreResult<Option<User>>;
    /// A company's users, by email (case-insensitive): at most `limit`, those after the email
    /// `after` when given.
    async fn users_page(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<User>>;
    /// All of a company's users, by email.
    async fn list_users(&self, tenant: &TenantId) -> StoreResult<Vec<User>> {
        self.users_page(tenant, None, usize::MAX).await
    }
    /// Replaces a user record (not its email); `NotFound` if absent.
    async fn update_user(&self, user: &User) -> StoreResult<()>;
    /// Replaces the user record `old` with `new` only if the stored record is still exactly `old`:
    /// false when another write came first (nothing is written). A changed email moves its
    /// unique index with it. `NotFound` if absent; `Conflict` when `new` takes an email another
    /// user has (case-insensitive) or a Unix name another user of the company has.
    async fn swap_user(&self, old: &User, new: &User) -> StoreResult<bool>;
    /// The users of `tenant` whose [`User::unix_name`] is exactly `name` (PAM logins). More than
    /// one only for duplicates stored before Unix names were unique; callers refuse those.
    async fn find_users_by_unix_name(
        &self,
        tenant: &TenantId,
        name: &str,
    ) -> StoreResult<Vec<User>>;

    /// Adds or replaces a client.
    async fn put_client(&self, client: &Client) -> StoreResult<()>;
    /// A client by id.
    async fn get_client(&self, id: &ClientId) -> StoreResult<Option<Client>>;
    /// Every client, by id.
    async fn list_clients(&self) -> StoreResult<Vec<Client>>;
    /// Removes a client; false when there was none.
    async fn delete_client(&self, id: &ClientId) -> StoreResult<bool>;

    /// Adds or replaces a signing key.
    async fn put_signing_key(&self, key: &SigningKeyRecord) -> StoreResult<()>;
    /// All signing keys, oldest first.
    async fn list_signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>>;

    /// Stores an authorization code under the digest of the code.
    async fn put_auth_code(&self, digest: &Digest, grant: &AuthCodeGrant) -> StoreResult<()>;
    /// Removes the code and leaves a tombstone naming its grant, atomically: the first caller gets
    /// the grant, every later one learns the code was reused (and which grant to revoke).
    async fn take_auth_code(&self, digest: &Digest) -> StoreResult<CodeTake>;

    /// Adds or replaces a browser session.
    async fn put_session(&self, digest: &Digest, session: &Session) -> StoreResult<()>;
    /// A session.
    async fn get_session(&self, digest: &Digest) -> StoreResult<Option<Session>>;
    /// Replaces a session only if it still equals `expected` (step-up code tries on the padlock
    /// page: two posts at once cannot both spend the same try).
    async fn swap_session(
        &self,
        digest: &Digest,
        expected: &Session,
        new: &Session,
    ) -> StoreResult<bool>;
    /// Ends a session.
    async fn delete_session(&self, digest: &Digest) -> StoreResult<()>;

    /// Adds or replaces a login flow.
    async fn put_login_flow(&self, digest: &Digest, flow: &LoginFlow) -> StoreResult<()>;
    /// A login flow.
    async fn get_login_flow(&self, digest: &Digest) -> StoreResult<Option<LoginFlow>>;
    /// Replaces a login flow only if it still equals `expected`: concurrent posts of one flow
    /// cannot both spend the same try.
    async fn swap_login_flow(
        &self,
        digest: &Digest,
        expected: &LoginFlow,
        new: &LoginFlow,
    ) -> StoreResult<bool>;
    /// Removes and returns a login flow (it completes once).
    async fn take_login_flow(&self, digest: &Digest) -> StoreResult<Option<LoginFlow>>;

    /// Adds or replaces a PAM transaction.
    async fn put_pam_transaction(&self, digest: &Digest, txn: &PamTransaction) -> StoreResult<()>;
    /// A PAM transaction.
    async fn get_pam_transaction(&self, digest: &Digest) -> StoreResult<Option<PamTransaction>>;
    /// Replaces a PAM transaction only if it still equals `expected` (two answers of one login
    /// cannot both spend the same try).
    async fn swap_pam_transaction(
        &self,
        digest: &Digest,
        expected: &PamTransaction,
        new: &PamTransaction,
    ) -> StoreResult<bool>;
    /// Removes and returns a PAM transaction (it completes once).
    async fn take_pam_transaction(&self, digest: &Digest) -> StoreResult<Option<PamTransaction>>;

    /// Stores a new refresh token.
    async fn put_refresh_token(&self, digest: &Digest, record: &RefreshRecord) -> StoreResult<()>;

    /// Stores a set-password link under its token's digest.
    async fn put_password_link(&self, digest: &Digest, link: &PasswordLink) -> StoreResult<()>;
    /// The set-password link stored under `digest` (expired ones too, until purged).
    async fn get_password_link(&self, digest: &Digest) -> StoreResult<Option<PasswordLink>>;
    /// Removes and returns the set-password link under `digest`: of two concurrent takes, one gets
    /// it (single use).
    async fn take_password_link(&self, digest: &Digest) -> StoreResult<Option<PasswordLink>>;
    /// A refresh token (`used` tells whether it was already rotated).
    async fn get_refresh_token(
        &self,
        digest: &Digest,
    ) -> StoreResult<Option<(RefreshRecord, bool)>>;
    /// Marks `old` used and stores `new` in one step: exactly one caller rotates a given token.
    async fn rotate_refresh_token(
        &self,
        old: &Digest,
        new: &Digest,
        record: &RefreshRecord,
    ) -> StoreResult<Rotation>;

    /// Revokes a grant: its refresh tokens and the access tokens that carry its id.
    async fn revoke_grant(&self, grant_id: &str, until: Timestamp) -> StoreResult<()>;
    /// Revokes one access token by `jti`, remembered until the token would expire anyway.
    async fn revoke_token(&self, jti: &str, until: Timestamp) -> StoreResult<()>;
    /// Whether a grant or token id was revoked.
    async fn is_revoked(&self, id: &str) -> StoreResult<bool>;

    /// Records `step` as the user's last accepted TOTP step if it is later than the stored one;
    /// false when the step (or a later one) was already accepted.
    async fn accept_totp_step(&self, user: &UserId, step: u64) -> StoreResult<bool>;

    /// Admits one second-factor try of `user` at `now` (seconds) or refuses it while locked, in
    /// one atomic step ([`LockoutState::admit`]): an admitted try already counts as a failure, so
    /// parallel guesses can never get more answers checked than the lockout allows.
    /// [`Store::record_second_factor_success`] clears the count after a passed try.
    async fn admit_second_factor_attempt(
        &self,
        user: &UserId,
        now: Timestamp,
        policy: &LockoutPolicy,
    ) -> StoreResult<Attempt>;
    /// Resets the user's failure count after a passed second factor.
    async fn record_second_factor_success(&self, user: &UserId) -> StoreResult<()>;
    /// The user's current lockout state.
    async fn lockout_state(&self, user: &UserId) -> StoreResult<LockoutState>;

    /// Counts one message (a one-time code by SMS or email) to `user` at `now` (seconds) if the
    /// per-user `limit` allows it, atomically; a refused message is not counted and carries the
    /// time the next one may go.
    async fn admit_message(
        &self,
        user: &UserId,
        now: Timestamp,
        limit: &RateLimit,
    ) -> StoreResult<RateAdmission>;

    /// Admits one password try for the login name `login` (its [`unique_key`], known user or
    /// not, so throttling says nothing about which accounts exist) at `now` (seconds), or refuses
    /// it ([`padlock_policy::throttle::ThrottleState::admit`]), atomically. An admitted try
    /// counts as a failure until [`Store::reset_password_failures`].
    async fn admit_password_attempt(
        &self,
        login: &str,
        now: Timestamp,
        policy: &ThrottlePolicy,
    ) -> StoreResult<Throttle>;
    /// Clears the password failures of `login` after a correct password.
    async fn reset_password_failures(&self, login: &str) -> StoreResult<()>;

    /// Appends to the audit log (there is no way to change or remove an event).
    async fn append_audit(&self, event: &AuditEvent) -> StoreResult<()>;
    /// A page of audit events, newest first, read from an index by company (and user) and
    /// time, filtered as `query` says ([`AuditQuery::page`]).
    async fn audit_page(&self, query: &AuditQuery) -> StoreResult<AuditPage>;
    /// Audit events, optionally of one company and from a time on: the most recent `limit`,
    /// oldest first (pages of [`Store::audit_page`]).
    async fn list_audit(
        &self,
        tenant: Option<&TenantId>,
        since: Option<Timestamp>,
        limit: usize,
    ) -> StoreResult<Vec<AuditEvent>> {
        let query = AuditQuery {
            tenant: tenant.cloned(),
            since,
            ..AuditQuery::default()
        };
        audit_events(self, query, limit).await
    }

    /// Removes expired codes, tombstones, sessions, login flows, PAM transactions, refresh
    /// tokens, revocations, and
    /// message and password-throttle counters that no longer hold anything back.
    /// Returns how many records went.
    async fn purge_expired(&self, now: Timestamp) -> StoreResult<usize>;

    /// Makes everything written so far durable.
    async fn flush(&self) -> StoreResult<()>;
}

/// Where a sealed value is kept ([`Store::list_sealed`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SealedAt {
    /// The master-key check ([`Store::init_key_check`]).
    KeyCheck,
    /// The private key of the signing key with this `kid`.
    SigningKey(String),
    /// The Duo secret key of this company.
    DuoSecretKey(TenantId),
    /// The confirmed TOTP seed of this user.
    TotpSeed(UserId),
    /// The TOTP seed shown for enrolment in the session stored under this digest.
    PendingTotpSeed(Digest),
}

impl SealedAt {
    /// The purpose the value is sealed for.
    #[must_use]
    pub fn purpose(&self) -> &'static str {
        match self {
            SealedAt::KeyCheck => crate::crypto::KEY_CHECK_PURPOSE,
            SealedAt::SigningKey(_) => crate::domain::SIGNING_KEY_PURPOSE,
            SealedAt::DuoSecretKey(_) => crate::domain::DUO_SKEY_PURPOSE,
            SealedAt::TotpSeed(_) | SealedAt::PendingTotpSeed(_) => {
                crate::domain::TOTP_SEED_PURPOSE
            }
        }
    }
}

/// The pending `/setup` token as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingSetup {
    /// SHA-256 of the token printed in the link.
    pub digest: Digest,
    /// When the link was printed, Unix seconds.
    pub issued_at: Timestamp,
}

impl PendingSetup {
    /// Whether `digest` is this token's digest (constant time).
    #[must_use]
    pub fn is(&self, digest: &Digest) -> bool {
        subtle::ConstantTimeEq::ct_eq(&self.digest[..], &digest[..]).into()
    }
}

/// The result of [`Store::take_auth_code`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeTake {
    /// First redemption.
    Fresh(AuthCodeGrant),
    /// The code was already redeemed; this is its grant.
    Reused {
        /// Grant to revoke.
        grant_id: String,
    },
    /// No such code.
    Unknown,
}

/// The result of [`Store::rotate_refresh_token`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// `old` was valid and is now used; `new` is stored. Returns `old`'s record.
    Rotated(RefreshRecord),
    /// `old` had been rotated already: a stolen token is in play; revoke its grant.
    Reused(RefreshRecord),
    /// No such token.
    Unknown,
}

/// A counter stored with the time after which it no longer matters (and may be purged).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Expiring<T> {
    pub value: T,
    pub idle_at: Timestamp,
}

/// How long a redeemed code's tombstone outlives the code, to catch a late replay.
pub const CODE_TOMBSTONE_SECS: Timestamp = 600;

/// The newest `max` events matching `query` (its `before` and `limit` are set here), oldest
/// first, read page by page through [`Store::audit_page`].
///
/// # Errors
/// Storage failures.
pub async fn audit_events<S: Store + ?Sized>(
    store: &S,
    mut query: AuditQuery,
    max: usize,
) -> StoreResult<Vec<AuditEvent>> {
    query.before = None;
    let mut events = Vec::new();
    while events.len() < max {
        query.limit = (max - events.len()).min(10_000);
        let page = store.audit_page(&query).await?;
        events.extend(page.events);
        match page.next {
            Some(next) => query.before = Some(next),
            None => break,
        }
    }
    events.reverse();
    Ok(events)
}

/// The index key of a Unix name within a company: Unix names are compared exactly.
#[must_use]
pub fn unix_name_key(tenant: &TenantId, name: &str) -> Vec<u8> {
    let mut key = tenant.as_str().as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(name.as_bytes());
    key
}

/// The case-insensitive key of unique names (tenant names, emails).
#[must_use]
pub fn unique_key(name: &str) -> String {
    name.trim().to_lowercase()
}
