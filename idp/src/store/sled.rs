//! The default store: embedded sled in `<data_dir>/db`. Records are JSON; unique names have index
//! trees updated in the same transaction as the record. sled types do not leave this file.

use super::{
    AuditCursor, AuditIndex, AuditPage, AuditQuery, CODE_TOMBSTONE_SECS, CodeTake, Digest,
    Expiring, PendingSetup, Rotation, SealedAt, Store, StoreError, StoreResult, unique_key,
    unix_name_key,
};
use crate::crypto::Sealed;
use crate::domain::{
    AuditEvent, AuthCodeGrant, Client, LoginFlow, PamTransaction, PasswordLink, RefreshRecord,
    Session, SigningKeyRecord, Tenant, Timestamp, User,
};
use crate::secret::{ClientId, TenantId, UserId};
use async_trait::async_trait;
use padlock_policy::lockout::{Attempt, LockoutPolicy, LockoutState};
use padlock_policy::rate::{RateAdmission, RateLimit, RateWindow};
use padlock_policy::throttle::{Throttle, ThrottlePolicy, ThrottleState};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use std::path::Path;

const KEY_CHECK: &[u8] = b"key_check";
const SETUP_TOKEN: &[u8] = b"setup_token";
/// Present once the Unix-name index was built from the users stored before it existed.
const UNIX_NAMES_INDEXED: &[u8] = b"unix_names_indexed";
/// Present once the per-company user index was built from the users stored before it existed.
const TENANT_USERS_INDEXED: &[u8] = b"tenant_users_indexed";
/// Present once the audit index (with its outcome and action ranges) was built from the events
/// stored before it existed.
const AUDIT_INDEXED: &[u8] = b"audit_indexed_2";

/// The per-company user index key: the company, then the email's unique key (so a company's
/// users are one ordered range).
fn tenant_user_key(tenant: &TenantId, email: &str) -> Vec<u8> {
    unix_name_key(tenant, &unique_key(email))
}

/// The start of an audit index range: `kind` (`a` every event; within a company: `t` all of its
/// events, `u` a user's, `o` an outcome's, `x` an action's), then each part as a 2-byte
/// big-endian length and its bytes.
fn audit_scope(kind: u8, parts: &[&str]) -> Vec<u8> {
    let mut key = vec![kind];
    for p in parts {
        let bytes = &p.as_bytes()[..p.len().min(usize::from(u16::MAX))];
        key.extend_from_slice(&u16::try_from(bytes.len()).unwrap_or(u16::MAX).to_be_bytes());
        key.extend_from_slice(bytes);
    }
    key
}

/// `scope` followed by the position (time, then sequence, big-endian: byte order is time order).
fn audit_key(scope: &[u8], c: AuditCursor) -> Vec<u8> {
    let mut key = scope.to_vec();
    key.extend_from_slice(&c.at.to_be_bytes());
    key.extend_from_slice(&c.seq.to_be_bytes());
    key
}

/// The position at the end of an audit index key.
fn audit_cursor(key: &[u8]) -> StoreResult<AuditCursor> {
    let tail = key
        .len()
        .checked_sub(16)
        .map(|i| &key[i..])
        .ok_or_else(|| StoreError::Corrupt("audit index".into()))?;
    let (at, seq) = tail.split_at(8);
    let word = |b: &[u8]| u64::from_be_bytes(b.try_into().unwrap_or([0; 8]));
    Ok(AuditCursor {
        at: word(at),
        seq: word(seq),
    })
}

/// The range of `index` ([`AuditQuery::index`]).
fn audit_index_scope(index: AuditIndex<'_>) -> Vec<u8> {
    match index {
        AuditIndex::All => audit_scope(b'a', &[]),
        AuditIndex::Tenant(t) => audit_scope(b't', &[t.as_str()]),
        AuditIndex::User(t, u) => audit_scope(b'u', &[t.as_str(), u]),
        AuditIndex::Outcome(t, o) => audit_scope(b'o', &[t.as_str(), o.as_str()]),
        AuditIndex::Action(t, a) => audit_scope(b'x', &[t.as_str(), a]),
    }
}

/// Every index key of `e` recorded at `c`: in every range it belongs to.
fn audit_index_keys(e: &AuditEvent, c: AuditCursor) -> Vec<Vec<u8>> {
    let mut scopes = vec![AuditIndex::All];
    if let Some(t) = &e.tenant {
        scopes.extend([
            AuditIndex::Tenant(t),
            AuditIndex::User(t, &e.actor),
            AuditIndex::Outcome(t, e.outcome),
            AuditIndex::Action(t, &e.action),
        ]);
        if e.target != e.actor {
            scopes.push(AuditIndex::User(t, &e.target));
        }
    }
    scopes
        .into_iter()
        .map(|scope| audit_key(&audit_index_scope(scope), c))
        .collect()
}

/// An authorization code, live or redeemed (a tombstone naming its grant).
#[derive(Serialize, Deserialize)]
enum StoredCode {
    Live(AuthCodeGrant),
    Redeemed { grant_id: String, until: Timestamp },
}

/// A refresh token and whether it was rotated.
#[derive(Serialize, Deserialize)]
struct StoredRefresh {
    record: RefreshRecord,
    used: bool,
}

/// Removes the entries of `tree` whose decoded value is expired at `now`.
fn purge<T: DeserializeOwned>(
    tree: &sled::Tree,
    expired: impl Fn(&T) -> bool,
) -> StoreResult<usize> {
    let mut n = 0;
    for entry in tree.iter() {
        let (k, v) = entry.map_err(backend)?;
        // Undecodable entries are left for an operator to look at, not silently dropped.
        if serde_json::from_slice::<T>(&v).is_ok_and(|t| expired(&t))
            && tree
                .compare_and_swap(&k, Some(&v), None::<&[u8]>)
                .map_err(backend)?
                .is_ok()
        {
            n += 1;
        }
    }
    Ok(n)
}

/// sled-backed store.
pub struct SledStore {
    db: sled::Db,
    meta: sled::Tree,
    tenants: sled::Tree,
    tenant_names: sled::Tree,
    users: sled::Tree,
    user_emails: sled::Tree,
    /// [`unix_name_key`] → the ids of the users with that Unix name, comma-separated (one, except
    /// for duplicates stored before the index existed).
    user_unix_names: sled::Tree,
    /// Company id, 0, email's unique key → user id: a company's users in email order.
    tenant_users: sled::Tree,
    clients: sled::Tree,
    keys: sled::Tree,
    codes: sled::Tree,
    sessions: sled::Tree,
    flows: sled::Tree,
    pam_transactions: sled::Tree,
    refresh: sled::Tree,
    password_links: sled::Tree,
    revoked: sled::Tree,
    totp_steps: sled::Tree,
    lockouts: sled::Tree,
    messages: sled::Tree,
    password_throttles: sled::Tree,
    audit: sled::Tree,
    /// [`audit_index_keys`] → nothing: the events of a company, a user, or all, in time order.
    audit_index: sled::Tree,
}

fn backend(e: sled::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn encode<T: Serialize>(value: &T) -> StoreResult<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| StoreError::Backend(format!("encoding: {e}")))
}

fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> StoreResult<T> {
    serde_json::from_slice(bytes).map_err(|_| StoreError::Corrupt(what.to_owned()))
}

fn get<T: DeserializeOwned>(tree: &sled::Tree, what: &str, key: &[u8]) -> StoreResult<Option<T>> {
    tree.get(key)
        .map_err(backend)?
        .map(|v| decode(what, &v))
        .transpose()
}

fn all<T: DeserializeOwned>(tree: &sled::Tree, what: &str) -> StoreResult<Vec<T>> {
    tree.iter()
        .values()
        .map(|v| decode(what, &v.map_err(backend)?))
        .collect()
}

/// The records of `tree` that decode; each one that does not is logged (by key) and skipped.
fn decodable<T: DeserializeOwned>(tree: &sled::Tree, what: &str) -> StoreResult<Vec<T>> {
    let mut out = Vec::new();
    for entry in tree.iter() {
        let (k, v) = entry.map_err(backend)?;
        match serde_json::from_slice(&v) {
            Ok(t) => out.push(t),
            Err(_) => tracing::error!(
                record = %String::from_utf8_lossy(&k),
                "stored {what} record is corrupt: skipped"
            ),
        }
    }
    Ok(out)
}

/// Replaces the record under `key` by `f(current)` with a compare-and-swap loop (`f` may run more
/// than once: it must be pure) and returns `f`'s verdict. `None` from `f` deletes the record.
fn update<T, R>(
    tree: &sled::Tree,
    what: &str,
    key: &[u8],
    f: impl Fn(Option<T>) -> (Option<T>, R),
) -> StoreResult<R>
where
    T: Serialize + DeserializeOwned,
{
    loop {
        let old = tree.get(key).map_err(backend)?;
        let current = old.as_deref().map(|v| decode(what, v)).transpose()?;
        let (next, verdict) = f(current);
        let new = next.map(|n| encode(&n)).transpose()?;
        if tree
            .compare_and_swap(key, old, new)
            .map_err(backend)?
            .is_ok()
        {
            return Ok(verdict);
        }
    }
}

/// The stored form of the pending `/setup` token: the digest, then the issue time (big-endian).
fn encode_setup(p: &PendingSetup) -> Vec<u8> {
    let mut v = p.digest.to_vec();
    v.extend_from_slice(&p.issued_at.to_be_bytes());
    v
}

/// Reads [`encode_setup`]'s form. A bare 32-byte digest (written before tokens had an issue time)
/// reads as issued at 0: long expired, and replaced at the next start.
fn decode_setup(v: &[u8]) -> StoreResult<PendingSetup> {
    let corrupt = || StoreError::Corrupt("setup token".into());
    let (digest, rest) = v.split_at_checked(32).ok_or_else(corrupt)?;
    let issued_at = match rest {
        [] => 0,
        time => u64::from_be_bytes(time.try_into().map_err(|_| corrupt())?),
    };
    Ok(PendingSetup {
        digest: digest.try_into().map_err(|_| corrupt())?,
        issued_at,
    })
}

type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

/// Inserts `tenant` (encoded as `value`) and its name index entry, refusing a taken id or name.
fn insert_tenant(
    tenants: &TransactionalTree,
    names: &TransactionalTree,
    tenant: &Tenant,
    value: &[u8],
) -> TxResult<()> {
    let (id, name) = (tenant.id.as_str(), unique_key(&tenant.name));
    if tenants.get(id)?.is_some() || names.get(name.as_bytes())?.is_some() {
        return Err(ConflictableTransactionError::Abort(StoreError::Conflict(
            format!("company {}", tenant.name),
        )));
    }
    names.insert(name.as_bytes(), id)?;
    tenants.insert(id, value)?;
    Ok(())
}

/// Inserts `user` (encoded as `value`) and its email and Unix-name index entries, refusing a
/// taken id, email, or Unix name within the company.
fn insert_user(
    (users, emails, unix_names, tenant_users): UserTrees<'_>,
    user: &User,
    value: &[u8],
) -> TxResult<()> {
    let (id, email) = (user.id.as_str(), unique_key(&user.email));
    if users.get(id)?.is_some() || emails.get(email.as_bytes())?.is_some() {
        return Err(ConflictableTransactionError::Abort(StoreError::Conflict(
            format!("user {}", user.email),
        )));
    }
    claim_unix_name(unix_names, user)?;
    emails.insert(email.as_bytes(), id)?;
    tenant_users.insert(tenant_user_key(&user.tenant, &user.email), id)?;
    users.insert(id, value)?;
    Ok(())
}

/// The trees a user's record and indexes live in: users, emails, Unix names, per-company users.
type UserTrees<'a> = (
    &'a TransactionalTree,
    &'a TransactionalTree,
    &'a TransactionalTree,
    &'a TransactionalTree,
);

fn unix_name_taken(user: &User) -> ConflictableTransactionError<StoreError> {
    ConflictableTransactionError::Abort(StoreError::Conflict(format!(
        "Unix name {}",
        user.unix_name()
    )))
}

/// Points the user's Unix-name index entry at the user; `Conflict` when another user holds it.
fn claim_unix_name(unix_names: &TransactionalTree, user: &User) -> TxResult<()> {
    let key = unix_name_key(&user.tenant, user.unix_name());
    match unix_names.get(&key)? {
        Some(ids) if ids.as_ref() != user.id.as_str().as_bytes() => Err(unix_name_taken(user)),
        _ => {
            unix_names.insert(key, user.id.as_str())?;
            Ok(())
        }
    }
}

/// Takes the user out of the index entry of their (old) Unix name.
fn release_unix_name(unix_names: &TransactionalTree, user: &User) -> TxResult<()> {
    let key = unix_name_key(&user.tenant, user.unix_name());
    if let Some(ids) = unix_names.get(&key)? {
        let rest: Vec<&[u8]> = ids
            .split(|b| *b == b',')
            .filter(|id| *id != user.id.as_str().as_bytes())
            .collect();
        if rest.is_empty() {
            unix_names.remove(key)?;
        } else {
            unix_names.insert(key, rest.join(&b','))?;
        }
    }
    Ok(())
}

/// Applies `change` to the record under `key` with [`update`]'s compare-and-swap. False when the
/// record is absent or `change` returns false (then nothing changes).
fn update_record<T: Serialize + DeserializeOwned>(
    tree: &sled::Tree,
    what: &str,
    key: &[u8],
    change: impl Fn(&mut T) -> bool,
) -> StoreResult<bool> {
    update(tree, what, key, |current: Option<T>| match current {
        None => (None, false),
        Some(mut record) => {
            let changed = change(&mut record);
            (Some(record), changed)
        }
    })
}

/// Maps a transaction result whose abort value is a [`StoreError`].
fn tx<T>(r: Result<T, TransactionError<StoreError>>) -> StoreResult<T> {
    r.map_err(|e| match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => backend(e),
    })
}

impl SledStore {
    /// Replaces the user `user.id` (keeping its email and the Unix-name index right), only if
    /// it is still `expected` when given: false when it is not (nothing written).
    async fn replace_user(&self, user: &User, expected: Option<&User>) -> StoreResult<bool> {
        let id = user.id.as_str();
        tx((
            &self.users,
            &self.user_emails,
            &self.user_unix_names,
            &self.tenant_users,
        )
            .transaction(|(users, emails, unix_names, by_tenant)| {
                let Some(old) = users.get(id)? else {
                    return Err(ConflictableTransactionError::Abort(StoreError::NotFound(
                        format!("user {id}"),
                    )));
                };
                let old: User =
                    decode("user", &old).map_err(ConflictableTransactionError::Abort)?;
                if expected.is_some_and(|e| *e != old) {
                    return Ok(false);
                }
                let new = match expected {
                    // A swap may move the email, and its unique index with it.
                    Some(_) => user.clone(),
                    None => User {
                        email: old.email.clone(),
                        ..user.clone()
                    },
                };
                let (old_key, new_key) = (unique_key(&old.email), unique_key(&new.email));
                if old_key != new_key {
                    if emails.get(new_key.as_bytes())?.is_some() {
                        return Err(ConflictableTransactionError::Abort(StoreError::Conflict(
                            format!("user {}", new.email),
                        )));
                    }
                    emails.remove(old_key.as_bytes())?;
                    emails.insert(new_key.as_bytes(), id)?;
                    by_tenant.remove(tenant_user_key(&old.tenant, &old.email))?;
                    by_tenant.insert(tenant_user_key(&new.tenant, &new.email), id)?;
                }
                if new.unix_name() != old.unix_name() {
                    release_unix_name(unix_names, &old)?;
                    claim_unix_name(unix_names, &new)?;
                }
                users.insert(
                    id,
                    encode(&new).map_err(ConflictableTransactionError::Abort)?,
                )?;
                Ok(true)
            }))
    }

    /// Opens (or creates) the database in `dir`, with a page cache of `cache_bytes`.
    pub fn open(dir: &Path, cache_bytes: u64) -> StoreResult<SledStore> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .open()
            .map_err(backend)?;
        let tree = |name: &str| db.open_tree(name).map_err(backend);
        let store = SledStore {
            meta: tree("meta")?,
            tenants: tree("tenants")?,
            tenant_names: tree("tenant_names")?,
            users: tree("users")?,
            user_emails: tree("user_emails")?,
            user_unix_names: tree("user_unix_names")?,
            tenant_users: tree("tenant_users")?,
            clients: tree("clients")?,
            keys: tree("signing_keys")?,
            codes: tree("auth_codes")?,
            sessions: tree("sessions")?,
            flows: tree("login_flows")?,
            pam_transactions: tree("pam_transactions")?,
            refresh: tree("refresh_tokens")?,
            password_links: tree("password_links")?,
            revoked: tree("revoked")?,
            totp_steps: tree("totp_steps")?,
            lockouts: tree("lockouts")?,
            messages: tree("message_windows")?,
            password_throttles: tree("password_throttles")?,
            audit: tree("audit")?,
            audit_index: tree("audit_index")?,
            db,
        };
        store.index_unix_names()?;
        store.index_tenant_users()?;
        store.index_audit()?;
        Ok(store)
    }

    /// Builds the Unix-name index from the stored users, once (data written before the index
    /// existed). Duplicates share one entry listing every holder, so lookups see them all and
    /// refuse the name until an administrator renames one.
    fn index_unix_names(&self) -> StoreResult<()> {
        if self
            .meta
            .contains_key(UNIX_NAMES_INDEXED)
            .map_err(backend)?
        {
            return Ok(());
        }
        let mut index: std::collections::BTreeMap<Vec<u8>, Vec<String>> = Default::default();
        for user in decodable::<User>(&self.users, "user")? {
            index
                .entry(unix_name_key(&user.tenant, user.unix_name()))
                .or_default()
                .push(user.id.as_str().to_owned());
        }
        for (key, ids) in index {
            self.user_unix_names
                .insert(key, ids.join(",").as_bytes())
                .map_err(backend)?;
        }
        self.meta
            .insert(UNIX_NAMES_INDEXED, &[1u8])
            .map_err(backend)?;
        Ok(())
    }

    /// Builds the per-company user index from the stored users, once.
    fn index_tenant_users(&self) -> StoreResult<()> {
        if self
            .meta
            .contains_key(TENANT_USERS_INDEXED)
            .map_err(backend)?
        {
            return Ok(());
        }
        for user in decodable::<User>(&self.users, "user")? {
            self.tenant_users
                .insert(tenant_user_key(&user.tenant, &user.email), user.id.as_str())
                .map_err(backend)?;
        }
        self.meta
            .insert(TENANT_USERS_INDEXED, &[1u8])
            .map_err(backend)?;
        Ok(())
    }

    /// Builds the audit index from the stored events, once (logging its progress: a large log
    /// takes a while).
    fn index_audit(&self) -> StoreResult<()> {
        if self.meta.contains_key(AUDIT_INDEXED).map_err(backend)? {
            return Ok(());
        }
        // An index of an earlier layout goes; the events are the truth.
        self.audit_index.clear().map_err(backend)?;
        let total = self.audit.len();
        for (n, entry) in self.audit.iter().enumerate() {
            let (k, v) = entry.map_err(backend)?;
            let seq = u64::from_be_bytes(k.as_ref().try_into().unwrap_or([0; 8]));
            let Ok(e) = decode::<AuditEvent>("audit event", &v) else {
                continue;
            };
            for key in audit_index_keys(&e, AuditCursor { at: e.at, seq }) {
                self.audit_index.insert(key, &[]).map_err(backend)?;
            }
            if n > 0 && n % 100_000 == 0 {
                tracing::info!(done = n, total, "indexing the audit log");
            }
        }
        self.meta.insert(AUDIT_INDEXED, &[1u8]).map_err(backend)?;
        Ok(())
    }

    /// Replaces an existing record, keeping its unique name (`keep`), refusing absent ones.
    fn replace<T: Serialize + DeserializeOwned>(
        tree: &sled::Tree,
        what: &str,
        id: &str,
        value: &T,
        keep: impl Fn(&T, &T) -> T,
    ) -> StoreResult<()> {
        loop {
            let Some(old_bytes) = tree.get(id).map_err(backend)? else {
                return Err(StoreError::NotFound(format!("{what} {id}")));
            };
            let old: T = decode(what, &old_bytes)?;
            let new = encode(&keep(&old, value))?;
            if tree
                .compare_and_swap(id, Some(old_bytes), Some(new))
                .map_err(backend)?
                .is_ok()
            {
                return Ok(());
            }
        }
    }
}

#[async_trait]
impl Store for SledStore {
    async fn init_key_check(&self, check: &Sealed) -> StoreResult<Sealed> {
        let fresh = encode(check)?;
        match self
            .meta
            .compare_and_swap(KEY_CHECK, None::<&[u8]>, Some(fresh))
            .map_err(backend)?
        {
            Ok(()) => Ok(check.clone()),
            Err(existing) => decode("key check", &existing.current.unwrap_or_default()),
        }
    }

    async fn list_sealed(&self) -> StoreResult<Vec<(SealedAt, Sealed)>> {
        let mut out = Vec::new();
        if let Some(v) = self.meta.get(KEY_CHECK).map_err(backend)? {
            out.push((SealedAt::KeyCheck, decode("key check", &v)?));
        }
        for k in all::<SigningKeyRecord>(&self.keys, "signing key")? {
            out.push((SealedAt::SigningKey(k.kid), k.pkcs8));
        }
        // One undecodable company or user must not stop every start: it is named in the log and
        // left for the operator, as every other read of it reports it.
        for t in decodable::<Tenant>(&self.tenants, "company")? {
            if let Some(duo) = t.duo {
                out.push((SealedAt::DuoSecretKey(t.id), duo.skey));
            }
        }
        for u in decodable::<User>(&self.users, "user")? {
            if let Some(totp) = u.totp {
                out.push((SealedAt::TotpSeed(u.id), totp.seed));
            }
        }
        for entry in self.sessions.iter() {
            let (k, v) = entry.map_err(backend)?;
            // Sessions are short-lived: an undecodable one is left to expire, as purging does.
            if let Ok(session) = serde_json::from_slice::<Session>(&v)
                && let Some(pending) = session.totp_pending
                && let Ok(digest) = Digest::try_from(k.as_ref())
            {
                out.push((SealedAt::PendingTotpSeed(digest), pending));
            }
        }
        Ok(out)
    }

    async fn replace_sealed(&self, at: &SealedAt, old: &Sealed, new: &Sealed) -> StoreResult<bool> {
        let swap = |slot: Option<&mut Sealed>| match slot {
            Some(value) if value == old => {
                *value = new.clone();
                true
            }
            _ => false,
        };
        match at {
            SealedAt::KeyCheck => Ok(self
                .meta
                .compare_and_swap(KEY_CHECK, Some(encode(old)?), Some(encode(new)?))
                .map_err(backend)?
                .is_ok()),
            SealedAt::SigningKey(kid) => {
                let mut key = None;
                for entry in self.keys.iter() {
                    let (k, v) = entry.map_err(backend)?;
                    if decode::<SigningKeyRecord>("signing key", &v)?.kid == *kid {
                        key = Some(k);
                        break;
                    }
                }
                let Some(key) = key else {
                    return Ok(false);
                };
                update_record(
                    &self.keys,
                    "signing key",
                    &key,
                    |r: &mut SigningKeyRecord| swap(Some(&mut r.pkcs8)),
                )
            }
            SealedAt::DuoSecretKey(id) => update_record(
                &self.tenants,
                "company",
                id.as_str().as_bytes(),
                |t: &mut Tenant| swap(t.duo.as_mut().map(|d| &mut d.skey)),
            ),
            SealedAt::TotpSeed(id) => update_record(
                &self.users,
                "user",
                id.as_str().as_bytes(),
                |u: &mut User| swap(u.totp.as_mut().map(|t| &mut t.seed)),
            ),
            SealedAt::PendingTotpSeed(digest) => {
                update_record(&self.sessions, "session", digest, |s: &mut Session| {
                    swap(s.totp_pending.as_mut())
                })
            }
        }
    }

    async fn set_setup_token(&self, pending: Option<&PendingSetup>) -> StoreResult<()> {
        match pending {
            Some(p) => self.meta.insert(SETUP_TOKEN, encode_setup(p)),
            None => self.meta.remove(SETUP_TOKEN),
        }
        .map_err(backend)?;
        Ok(())
    }

    async fn setup_token(&self) -> StoreResult<Option<PendingSetup>> {
        self.meta
            .get(SETUP_TOKEN)
            .map_err(backend)?
            .map(|v| decode_setup(&v))
            .transpose()
    }

    async fn create_tenant(&self, tenant: &Tenant) -> StoreResult<()> {
        let value = encode(tenant)?;
        tx(
            (&self.meta, &self.tenants, &self.tenant_names).transaction(
                |(meta, tenants, names)| {
                    insert_tenant(tenants, names, tenant, &value)?;
                    meta.remove(SETUP_TOKEN)?;
                    Ok(())
                },
            ),
        )
    }

    async fn create_tenant_with_admin(
        &self,
        tenant: &Tenant,
        admin: &User,
        setup: Option<&Digest>,
    ) -> StoreResult<bool> {
        let (tenant_value, admin_value) = (encode(tenant)?, encode(admin)?);
        let trees = (
            &self.meta,
            &self.tenants,
            &self.tenant_names,
            &self.users,
            &self.user_emails,
            &self.user_unix_names,
            &self.tenant_users,
        );
        tx(trees.transaction(
            |(meta, tenants, names, users, emails, unix_names, by_tenant)| {
                if let Some(digest) = setup {
                    let pending = meta
                        .get(SETUP_TOKEN)?
                        .map(|v| decode_setup(&v))
                        .transpose()
                        .map_err(ConflictableTransactionError::Abort)?;
                    if !pending.is_some_and(|p| p.is(digest)) {
                        return Ok(false);
                    }
                }
                insert_tenant(tenants, names, tenant, &tenant_value)?;
                insert_user((users, emails, unix_names, by_tenant), admin, &admin_value)?;
                meta.remove(SETUP_TOKEN)?;
                Ok(true)
            },
        ))
    }

    async fn get_tenant(&self, id: &TenantId) -> StoreResult<Option<Tenant>> {
        get(&self.tenants, "company", id.as_str().as_bytes())
    }

    async fn find_tenant_by_name(&self, name: &str) -> StoreResult<Option<Tenant>> {
        match self.tenant_names.get(unique_key(name)).map_err(backend)? {
            Some(id) => get(&self.tenants, "company", &id),
            None => Ok(None),
        }
    }

    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>> {
        let mut tenants: Vec<Tenant> = all(&self.tenants, "company")?;
        tenants.sort_by_key(|t| unique_key(&t.name));
        Ok(tenants)
    }

    async fn update_tenant(&self, tenant: &Tenant) -> StoreResult<()> {
        Self::replace(
            &self.tenants,
            "company",
            tenant.id.as_str(),
            tenant,
            |old, new| Tenant {
                name: old.name.clone(),
                ..new.clone()
            },
        )
    }

    async fn swap_tenant(&self, old: &Tenant, new: &Tenant) -> StoreResult<bool> {
        let id = new.id.as_str();
        let Some(stored) = self.tenants.get(id).map_err(backend)? else {
            return Err(StoreError::NotFound(format!("company {id}")));
        };
        if decode::<Tenant>("company", &stored)? != *old {
            return Ok(false);
        }
        let value = encode(&Tenant {
            name: old.name.clone(),
            ..new.clone()
        })?;
        Ok(self
            .tenants
            .compare_and_swap(id, Some(stored), Some(value))
            .map_err(backend)?
            .is_ok())
    }

    async fn create_user(&self, user: &User) -> StoreResult<()> {
        let value = encode(user)?;
        tx((
            &self.users,
            &self.user_emails,
            &self.user_unix_names,
            &self.tenant_users,
        )
            .transaction(|(users, emails, unix_names, by_tenant)| {
                insert_user((users, emails, unix_names, by_tenant), user, &value)
            }))
    }

    async fn get_user(&self, id: &UserId) -> StoreResult<Option<User>> {
        get(&self.users, "user", id.as_str().as_bytes())
    }

    async fn find_user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        match self.user_emails.get(unique_key(email)).map_err(backend)? {
            Some(id) => get(&self.users, "user", &id),
            None => Ok(None),
        }
    }

    async fn users_page(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<User>> {
        use std::ops::Bound;
        let prefix = unix_name_key(tenant, "");
        let start = match after {
            Some(a) => Bound::Excluded(tenant_user_key(tenant, a)),
            None => Bound::Included(prefix.clone()),
        };
        let mut users = Vec::new();
        for entry in self
            .tenant_users
            .range::<Vec<u8>, _>((start, Bound::Unbounded))
        {
            let (k, id) = entry.map_err(backend)?;
            if !k.starts_with(&prefix) || users.len() >= limit {
                break;
            }
            if let Some(u) = get::<User>(&self.users, "user", &id)? {
                users.push(u);
            }
        }
        Ok(users)
    }

    async fn update_user(&self, user: &User) -> StoreResult<()> {
        self.replace_user(user, None).await.map(|_| ())
    }

    async fn swap_user(&self, old: &User, new: &User) -> StoreResult<bool> {
        self.replace_user(new, Some(old)).await
    }

    async fn find_users_by_unix_name(
        &self,
        tenant: &TenantId,
        name: &str,
    ) -> StoreResult<Vec<User>> {
        let Some(ids) = self
            .user_unix_names
            .get(unix_name_key(tenant, name))
            .map_err(backend)?
        else {
            return Ok(Vec::new());
        };
        let mut found = Vec::new();
        for id in ids.split(|b| *b == b',') {
            if let Some(user) = get::<User>(&self.users, "user", id)?
                && &user.tenant == tenant
                && user.unix_name() == name
            {
                found.push(user);
            }
        }
        Ok(found)
    }

    async fn put_client(&self, client: &Client) -> StoreResult<()> {
        self.clients
            .insert(client.id.as_str(), encode(client)?)
            .map_err(backend)?;
        Ok(())
    }

    async fn get_client(&self, id: &ClientId) -> StoreResult<Option<Client>> {
        get(&self.clients, "client", id.as_str().as_bytes())
    }

    async fn list_clients(&self) -> StoreResult<Vec<Client>> {
        decodable(&self.clients, "client")
    }

    async fn delete_client(&self, id: &ClientId) -> StoreResult<bool> {
        Ok(self.clients.remove(id.as_str()).map_err(backend)?.is_some())
    }

    async fn put_signing_key(&self, key: &SigningKeyRecord) -> StoreResult<()> {
        // Keyed by creation time then kid, so iteration is oldest first.
        let mut k = key.created_at.to_be_bytes().to_vec();
        k.extend_from_slice(key.kid.as_bytes());
        self.keys.insert(k, encode(key)?).map_err(backend)?;
        Ok(())
    }

    async fn list_signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>> {
        all(&self.keys, "signing key")
    }

    async fn put_auth_code(&self, digest: &Digest, grant: &AuthCodeGrant) -> StoreResult<()> {
        self.codes
            .insert(digest, encode(&StoredCode::Live(grant.clone()))?)
            .map_err(backend)?;
        Ok(())
    }

    async fn take_auth_code(&self, digest: &Digest) -> StoreResult<CodeTake> {
        // One atomic read-modify-write: a live code becomes a tombstone; only one caller sees it live.
        let previous = self
            .codes
            .fetch_and_update(digest, |old| {
                let old = old?;
                match serde_json::from_slice::<StoredCode>(old) {
                    Ok(StoredCode::Live(g)) => serde_json::to_vec(&StoredCode::Redeemed {
                        until: g.expires_at + CODE_TOMBSTONE_SECS,
                        grant_id: g.grant_id,
                    })
                    .ok(),
                    _ => Some(old.to_vec()),
                }
            })
            .map_err(backend)?;
        Ok(
            match previous
                .map(|v| decode::<StoredCode>("authorization code", &v))
                .transpose()?
            {
                Some(StoredCode::Live(g)) => CodeTake::Fresh(g),
                Some(StoredCode::Redeemed { grant_id, .. }) => CodeTake::Reused { grant_id },
                None => CodeTake::Unknown,
            },
        )
    }

    async fn put_session(&self, digest: &Digest, session: &Session) -> StoreResult<()> {
        self.sessions
            .insert(digest, encode(session)?)
            .map_err(backend)?;
        Ok(())
    }

    async fn get_session(&self, digest: &Digest) -> StoreResult<Option<Session>> {
        get(&self.sessions, "session", digest)
    }

    async fn swap_session(
        &self,
        digest: &Digest,
        expected: &Session,
        new: &Session,
    ) -> StoreResult<bool> {
        Ok(self
            .sessions
            .compare_and_swap(digest, Some(encode(expected)?), Some(encode(new)?))
            .map_err(backend)?
            .is_ok())
    }

    async fn delete_session(&self, digest: &Digest) -> StoreResult<()> {
        self.sessions.remove(digest).map_err(backend)?;
        Ok(())
    }

    async fn put_login_flow(&self, digest: &Digest, flow: &LoginFlow) -> StoreResult<()> {
        self.flows.insert(digest, encode(flow)?).map_err(backend)?;
        Ok(())
    }

    async fn get_login_flow(&self, digest: &Digest) -> StoreResult<Option<LoginFlow>> {
        get(&self.flows, "login flow", digest)
    }

    async fn swap_login_flow(
        &self,
        digest: &Digest,
        expected: &LoginFlow,
        new: &LoginFlow,
    ) -> StoreResult<bool> {
        // JSON encoding is deterministic, so equal records have equal bytes.
        Ok(self
            .flows
            .compare_and_swap(digest, Some(encode(expected)?), Some(encode(new)?))
            .map_err(backend)?
            .is_ok())
    }

    async fn take_login_flow(&self, digest: &Digest) -> StoreResult<Option<LoginFlow>> {
        self.flows
            .remove(digest)
            .map_err(backend)?
            .map(|v| decode("login flow", &v))
            .transpose()
    }

    async fn put_pam_transaction(&self, digest: &Digest, txn: &PamTransaction) -> StoreResult<()> {
        self.pam_transactions
            .insert(digest, encode(txn)?)
            .map_err(backend)?;
        Ok(())
    }

    async fn get_pam_transaction(&self, digest: &Digest) -> StoreResult<Option<PamTransaction>> {
        get(&self.pam_transactions, "PAM transaction", digest)
    }

    async fn swap_pam_transaction(
        &self,
        digest: &Digest,
        expected: &PamTransaction,
        new: &PamTransaction,
    ) -> StoreResult<bool> {
        // JSON encoding is deterministic, so equal records have equal bytes.
        Ok(self
            .pam_transactions
            .compare_and_swap(digest, Some(encode(expected)?), Some(encode(new)?))
            .map_err(backend)?
            .is_ok())
    }

    async fn take_pam_transaction(&self, digest: &Digest) -> StoreResult<Option<PamTransaction>> {
        self.pam_transactions
            .remove(digest)
            .map_err(backend)?
            .map(|v| decode("PAM transaction", &v))
            .transpose()
    }

    async fn put_password_link(&self, digest: &Digest, link: &PasswordLink) -> StoreResult<()> {
        self.password_links
            .insert(digest, encode(link)?)
            .map_err(backend)?;
        Ok(())
    }

    async fn get_password_link(&self, digest: &Digest) -> StoreResult<Option<PasswordLink>> {
        get(&self.password_links, "set-password link", digest)
    }

    async fn take_password_link(&self, digest: &Digest) -> StoreResult<Option<PasswordLink>> {
        self.password_links
            .remove(digest)
            .map_err(backend)?
            .map(|v| decode("set-password link", &v))
            .transpose()
    }

    async fn put_refresh_token(&self, digest: &Digest, record: &RefreshRecord) -> StoreResult<()> {
        self.refresh
            .insert(
                digest,
                encode(&StoredRefresh {
                    record: record.clone(),
                    used: false,
                })?,
            )
            .map_err(backend)?;
        Ok(())
    }

    async fn get_refresh_token(
        &self,
        digest: &Digest,
    ) -> StoreResult<Option<(RefreshRecord, bool)>> {
        Ok(
            get::<StoredRefresh>(&self.refresh, "refresh token", digest)?
                .map(|s| (s.record, s.used)),
        )
    }

    async fn rotate_refresh_token(
        &self,
        old: &Digest,
        new: &Digest,
        record: &RefreshRecord,
    ) -> StoreResult<Rotation> {
        let new_value = encode(&StoredRefresh {
            record: record.clone(),
            used: false,
        })?;
        tx(self.refresh.transaction(|t| {
            let Some(bytes) = t.get(old)? else {
                return Ok(Rotation::Unknown);
            };
            let mut stored: StoredRefresh = serde_json::from_slice(&bytes).map_err(|_| {
                ConflictableTransactionError::Abort(StoreError::Corrupt("refresh token".into()))
            })?;
            if stored.used {
                return Ok(Rotation::Reused(stored.record));
            }
            stored.used = true;
            let used = serde_json::to_vec(&stored).map_err(|e| {
                ConflictableTransactionError::Abort(StoreError::Backend(e.to_string()))
            })?;
            t.insert(&old[..], used)?;
            t.insert(&new[..], new_value.clone())?;
            Ok(Rotation::Rotated(stored.record))
        }))
    }

    async fn revoke_grant(&self, grant_id: &str, until: Timestamp) -> StoreResult<()> {
        self.revoked
            .insert(grant_id, &until.to_be_bytes())
            .map_err(backend)?;
        Ok(())
    }

    async fn revoke_token(&self, jti: &str, until: Timestamp) -> StoreResult<()> {
        self.revoked
            .insert(jti, &until.to_be_bytes())
            .map_err(backend)?;
        Ok(())
    }

    async fn is_revoked(&self, id: &str) -> StoreResult<bool> {
        self.revoked.contains_key(id).map_err(backend)
    }

    async fn purge_expired(&self, now: Timestamp) -> StoreResult<usize> {
        let mut n = purge::<StoredCode>(&self.codes, |c| match c {
            StoredCode::Live(g) => g.expires_at <= now,
            StoredCode::Redeemed { until, .. } => *until <= now,
        })?;
        n += purge::<Session>(&self.sessions, |s| s.expires_at <= now)?;
        n += purge::<LoginFlow>(&self.flows, |f| f.expires_at <= now)?;
        n += purge::<PamTransaction>(&self.pam_transactions, |t| t.expires_at <= now)?;
        n += purge::<StoredRefresh>(&self.refresh, |r| r.record.expires_at <= now)?;
        n += purge::<PasswordLink>(&self.password_links, |l| l.expires_at <= now)?;
        n += purge::<Expiring<RateWindow>>(&self.messages, |m| m.idle_at <= now)?;
        n += purge::<Expiring<ThrottleState>>(&self.password_throttles, |t| t.idle_at <= now)?;
        for entry in self.revoked.iter() {
            let (k, v) = entry.map_err(backend)?;
            let until = v
                .as_ref()
                .try_into()
                .map(u64::from_be_bytes)
                .unwrap_or(u64::MAX);
            if until <= now
                && self
                    .revoked
                    .compare_and_swap(&k, Some(&v), None::<&[u8]>)
                    .map_err(backend)?
                    .is_ok()
            {
                n += 1;
            }
        }
        Ok(n)
    }

    async fn accept_totp_step(&self, user: &UserId, step: u64) -> StoreResult<bool> {
        let previous = self
            .totp_steps
            .fetch_and_update(user.as_str(), |old| {
                let last = old.and_then(|o| o.try_into().ok()).map(u64::from_be_bytes);
                Some(last.map_or(step, |l| l.max(step)).to_be_bytes().to_vec())
            })
            .map_err(backend)?;
        let last = previous
            .and_then(|o| o.as_ref().try_into().ok())
            .map(u64::from_be_bytes);
        Ok(last.is_none_or(|l| l < step))
    }

    async fn admit_second_factor_attempt(
        &self,
        user: &UserId,
        now: Timestamp,
        policy: &LockoutPolicy,
    ) -> StoreResult<Attempt> {
        update(
            &self.lockouts,
            "lockout",
            user.as_str().as_bytes(),
            |old: Option<LockoutState>| {
                let (next, attempt) = old.unwrap_or_default().admit(now, policy);
                (Some(next), attempt)
            },
        )
    }

    async fn admit_message(
        &self,
        user: &UserId,
        now: Timestamp,
        limit: &RateLimit,
    ) -> StoreResult<RateAdmission> {
        update(
            &self.messages,
            "message window",
            user.as_str().as_bytes(),
            |old: Option<Expiring<RateWindow>>| {
                let (next, admission) = old.map(|o| o.value).unwrap_or_default().admit(now, limit);
                let idle_at = next.idle_at(limit);
                (
                    Some(Expiring {
                        value: next,
                        idle_at,
                    }),
                    admission,
                )
            },
        )
    }

    async fn admit_password_attempt(
        &self,
        login: &str,
        now: Timestamp,
        policy: &ThrottlePolicy,
    ) -> StoreResult<Throttle> {
        update(
            &self.password_throttles,
            "password throttle",
            unique_key(login).as_bytes(),
            |old: Option<Expiring<ThrottleState>>| {
                let (next, verdict) = old.map(|o| o.value).unwrap_or_default().admit(now, policy);
                let idle_at = next.idle_at(policy);
                (
                    Some(Expiring {
                        value: next,
                        idle_at,
                    }),
                    verdict,
                )
            },
        )
    }

    async fn reset_password_failures(&self, login: &str) -> StoreResult<()> {
        self.password_throttles
            .remove(unique_key(login).as_bytes())
            .map_err(backend)?;
        Ok(())
    }

    async fn record_second_factor_success(&self, user: &UserId) -> StoreResult<()> {
        self.lockouts.remove(user.as_str()).map_err(backend)?;
        Ok(())
    }

    async fn lockout_state(&self, user: &UserId) -> StoreResult<LockoutState> {
        get(&self.lockouts, "lockout", user.as_str().as_bytes()).map(Option::unwrap_or_default)
    }

    async fn append_audit(&self, event: &AuditEvent) -> StoreResult<()> {
        let seq = self.db.generate_id().map_err(backend)?;
        let value = encode(event)?;
        let keys = audit_index_keys(event, AuditCursor { at: event.at, seq });
        tx(
            (&self.audit, &self.audit_index).transaction(|(audit, index)| {
                audit.insert(&seq.to_be_bytes(), value.as_slice())?;
                for k in &keys {
                    index.insert(k.as_slice(), &[])?;
                }
                Ok(())
            }),
        )
    }

    async fn audit_page(&self, q: &AuditQuery) -> StoreResult<AuditPage> {
        use std::ops::Bound;
        let scope = audit_index_scope(q.index());
        let from = AuditCursor {
            at: q.since.unwrap_or(0),
            seq: 0,
        };
        let to = match q.before {
            Some(b) => Bound::Excluded(audit_key(&scope, b)),
            None => Bound::Included(audit_key(
                &scope,
                AuditCursor {
                    at: u64::MAX,
                    seq: u64::MAX,
                },
            )),
        };
        let candidates = self
            .audit_index
            .range::<Vec<u8>, _>((Bound::Included(audit_key(&scope, from)), to))
            .rev()
            .map(|entry| {
                let (k, _) = entry.map_err(backend)?;
                let c = audit_cursor(&k)?;
                let e = get::<AuditEvent>(&self.audit, "audit event", &c.seq.to_be_bytes())?
                    .ok_or_else(|| StoreError::Corrupt("audit index".into()))?;
                Ok((c, e))
            });
        q.page(candidates)
    }

    async fn flush(&self) -> StoreResult<()> {
        self.db.flush_async().await.map_err(backend)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::MasterKey;
    use crate::store::conformance::{tenant, user};

    crate::store_conformance!({
        let dir = tempfile::tempdir().unwrap();
        (SledStore::open(dir.path(), 8 << 20).unwrap(), dir)
    });

    #[tokio::test]
    async fn users_and_audit_events_stored_before_their_indexes_are_indexed_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let t = tenant("Acme");
        let event = |i: u64| AuditEvent {
            at: 100 + i,
            tenant: Some(t.id.clone()),
            actor: "ann".into(),
            action: "login.password".into(),
            target: "ann@acme.example".into(),
            outcome: crate::domain::Outcome::Success,
            source_ip: None,
            pam: None,
        };
        {
            let store = SledStore::open(dir.path(), 8 << 20).unwrap();
            store.create_tenant(&t).await.unwrap();
            for email in ["bob@acme.example", "ann@acme.example"] {
                store.create_user(&user(&t, email)).await.unwrap();
            }
            for i in 0..5 {
                store.append_audit(&event(i)).await.unwrap();
            }
            // As an older Padlock left them: events and users, no indexes.
            store.tenant_users.clear().unwrap();
            store.audit_index.clear().unwrap();
            store.meta.remove(TENANT_USERS_INDEXED).unwrap();
            store.meta.remove(AUDIT_INDEXED).unwrap();
            store.flush().await.unwrap();
        }
        let store = SledStore::open(dir.path(), 8 << 20).unwrap();
        let emails: Vec<String> = store
            .list_users(&t.id)
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.email)
            .collect();
        assert_eq!(emails, ["ann@acme.example", "bob@acme.example"]);
        let q = AuditQuery {
            tenant: Some(t.id.clone()),
            user: Some("ann".into()),
            ..AuditQuery::default()
        };
        let page = store.audit_page(&q).await.unwrap();
        assert_eq!(page.events, (0..5).rev().map(event).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn unix_names_stored_before_the_index_are_indexed_and_duplicates_reported() {
        let dir = tempfile::tempdir().unwrap();
        let t = tenant("Acme");
        let (ann, other) = (user(&t, "ann@acme.example"), user(&t, "ann2@acme.example"));
        {
            let store = SledStore::open(dir.path(), 8 << 20).unwrap();
            store.create_tenant(&t).await.unwrap();
            store.create_user(&ann).await.unwrap();
            store.create_user(&other).await.unwrap();
            // As an older Padlock left them: no index, and two users with one Unix name.
            let dup = User {
                unix_name: Some("ann".into()),
                ..other.clone()
            };
            store
                .users
                .insert(dup.id.as_str(), encode(&dup).unwrap())
                .unwrap();
            store.user_unix_names.clear().unwrap();
            store.meta.remove(UNIX_NAMES_INDEXED).unwrap();
            store.flush().await.unwrap();
        }
        let store = SledStore::open(dir.path(), 8 << 20).unwrap();
        let found = store.find_users_by_unix_name(&t.id, "ann").await.unwrap();
        assert_eq!(
            found.len(),
            2,
            "both holders are found, so PAM refuses the name"
        );
        let report = crate::bootstrap::duplicate_unix_names(&store)
            .await
            .unwrap();
        assert_eq!(report.len(), 1);
        assert_eq!(
            (report[0].0.as_str(), report[0].1.as_str()),
            ("Acme", "ann")
        );
        // Renaming one of them resolves it; the name is then unique again.
        let renamed = User {
            unix_name: Some("ann2".into()),
            ..found.iter().find(|u| u.id == other.id).unwrap().clone()
        };
        store.update_user(&renamed).await.unwrap();
        let found = store.find_users_by_unix_name(&t.id, "ann").await.unwrap();
        assert_eq!(found.iter().map(|u| &u.id).collect::<Vec<_>>(), [&ann.id]);
        assert!(
            crate::bootstrap::duplicate_unix_names(&store)
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn records_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let t = tenant("Acme");
        {
            let store = SledStore::open(dir.path(), 8 << 20).unwrap();
            store.create_tenant(&t).await.unwrap();
            store.flush().await.unwrap();
        }
        let store = SledStore::open(dir.path(), 8 << 20).unwrap();
        assert_eq!(store.find_tenant_by_name("acme").await.unwrap(), Some(t));
    }

    /// One corrupt user record does not stop the start-up scan of sealed values: the others are
    /// still listed (and re-sealed), the corrupt one is left for the operator.
    #[tokio::test]
    async fn a_corrupt_record_does_not_stop_the_sealed_value_scan() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path(), 8 << 20).unwrap();
        let master = MasterKey::generate().unwrap();
        let t = tenant("Acme");
        store.create_tenant(&t).await.unwrap();
        let mut u = user(&t, "ann@acme.example");
        u.totp = Some(crate::domain::TotpEnrolment {
            seed: master
                .seal(crate::domain::TOTP_SEED_PURPOSE, b"seed")
                .unwrap(),
            enrolled_at: 0,
        });
        store.create_user(&u).await.unwrap();
        store
            .users
            .insert("broken", b"{not json".as_slice())
            .unwrap();
        let sealed = store.list_sealed().await.unwrap();
        assert!(
            sealed
                .iter()
                .any(|(at, _)| *at == SealedAt::TotpSeed(u.id.clone()))
        );
        assert!(matches!(
            store
                .get_user(&crate::secret::UserId::from_string("broken".into()))
                .await,
            Err(StoreError::Corrupt(_))
        ));
    }

    /// A setup token stored before tokens had an issue time (a bare digest) reads as issued at
    /// 0: expired, so an old link does not work for ever.
    #[tokio::test]
    async fn a_setup_token_without_issue_time_reads_as_expired() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path(), 8 << 20).unwrap();
        store.meta.insert(SETUP_TOKEN, &[7u8; 32]).unwrap();
        assert_eq!(
            store.setup_token().await.unwrap(),
            Some(PendingSetup {
                digest: [7; 32],
                issued_at: 0
            })
        );
        store.meta.insert(SETUP_TOKEN, vec![7u8; 35]).unwrap();
        assert!(matches!(
            store.setup_token().await,
            Err(StoreError::Corrupt(_))
        ));
    }

    /// DESIGN.md §9.7: a TOTP seed stored through the domain types is not on disk in the clear.
    #[tokio::test]
    async fn sealed_secrets_are_not_on_disk_in_the_clear() {
        let dir = tempfile::tempdir().unwrap();
        let key = MasterKey::generate().unwrap();
        let seed = b"PLAINTEXT-TOTP-SEED-0123456789";
        let t = tenant("Acme");
        let mut u = user(&t, "ann@example.com");
        u.totp = Some(crate::domain::TotpEnrolment {
            seed: key.seal(crate::domain::TOTP_SEED_PURPOSE, seed).unwrap(),
            enrolled_at: 1,
        });
        {
            let store = SledStore::open(dir.path(), 8 << 20).unwrap();
            store.create_tenant(&t).await.unwrap();
            store.create_user(&u).await.unwrap();
            store.flush().await.unwrap();
        }
        let mut found_email = false;
        for entry in walk(dir.path()) {
            let bytes = std::fs::read(&entry).unwrap();
            assert!(
                !bytes.windows(seed.len()).any(|w| w == seed),
                "seed in clear in {entry:?}"
            );
            found_email |= bytes.windows(15).any(|w| w == b"ann@example.com");
        }
        assert!(found_email, "the scan must see the user record at all");
    }

    fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(walk(&p))
            } else {
                out.push(p)
            }
        }
        out
    }
}
