//! In-memory store for tests: the same semantics as sled, nothing on disk.

use super::{
    AuditCursor, AuditPage, AuditQuery, CODE_TOMBSTONE_SECS, CodeTake, Digest, PendingSetup,
    Rotation, SealedAt, Store, StoreError, StoreResult, unique_key,
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
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

#[derive(Default)]
struct Inner {
    key_check: Option<Sealed>,
    setup_token: Option<PendingSetup>,
    tenants: BTreeMap<TenantId, Tenant>,
    users: BTreeMap<UserId, User>,
    clients: HashMap<ClientId, Client>,
    keys: Vec<SigningKeyRecord>,
    codes: HashMap<Digest, AuthCodeGrant>,
    code_tombstones: HashMap<Digest, (String, Timestamp)>,
    sessions: HashMap<Digest, Session>,
    flows: HashMap<Digest, LoginFlow>,
    pam_transactions: HashMap<Digest, PamTransaction>,
    refresh: HashMap<Digest, (RefreshRecord, bool)>,
    password_links: HashMap<Digest, PasswordLink>,
    revoked: HashMap<String, Timestamp>,
    totp_steps: HashMap<UserId, u64>,
    lockouts: HashMap<UserId, LockoutState>,
    messages: HashMap<UserId, (RateWindow, Timestamp)>,
    password_throttles: HashMap<String, (ThrottleState, Timestamp)>,
    audit: Vec<AuditEvent>,
}

impl Inner {
    /// `Conflict` when the company's id or name (case-insensitive) is taken.
    fn check_new_tenant(&self, tenant: &Tenant) -> StoreResult<()> {
        let key = unique_key(&tenant.name);
        if self.tenants.contains_key(&tenant.id)
            || self.tenants.values().any(|t| unique_key(&t.name) == key)
        {
            return Err(StoreError::Conflict(format!("company {}", tenant.name)));
        }
        Ok(())
    }

    /// `Conflict` when the user's id or email (case-insensitive) is taken.
    fn check_new_user(&self, user: &User) -> StoreResult<()> {
        let key = unique_key(&user.email);
        if self.users.contains_key(&user.id)
            || self.users.values().any(|u| unique_key(&u.email) == key)
        {
            return Err(StoreError::Conflict(format!("user {}", user.email)));
        }
        self.check_unix_name(user)
    }

    /// `Conflict` when another user of the company has the user's Unix name.
    fn check_unix_name(&self, user: &User) -> StoreResult<()> {
        let taken = self.users.values().any(|u| {
            u.id != user.id && u.tenant == user.tenant && u.unix_name() == user.unix_name()
        });
        if taken {
            return Err(StoreError::Conflict(format!(
                "Unix name {}",
                user.unix_name()
            )));
        }
        Ok(())
    }
}

/// A store held in a mutex.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    /// Test hook (see [`MemoryStore::hold_reads`]): a barrier and how many reads it still holds.
    #[cfg(test)]
    held_reads: Mutex<Option<(std::sync::Arc<tokio::sync::Barrier>, usize)>>,
}

impl MemoryStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the next `n` session and login-flow reads wait for each other after reading: `n`
    /// parallel requests then all hold the same record before any of them writes, a race that is
    /// otherwise left to the scheduler.
    #[cfg(test)]
    pub(crate) fn hold_reads(&self, n: usize) {
        *self.held_reads.lock().unwrap() =
            Some((std::sync::Arc::new(tokio::sync::Barrier::new(n)), n));
    }

    #[cfg(test)]
    async fn pass_hold(&self) {
        let barrier = {
            let mut held = self.held_reads.lock().unwrap();
            let Some((barrier, left)) = held.as_mut() else {
                return;
            };
            let barrier = barrier.clone();
            *left -= 1;
            if *left == 0 {
                *held = None;
            }
            barrier
        };
        barrier.wait().await;
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        let mut guard = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }

    /// Replaces the user `user.id` (keeping its email), only if it is still `expected` when
    /// given: false when it is not (nothing written).
    fn replace_user(&self, user: &User, expected: Option<&User>) -> StoreResult<bool> {
        self.with(|i| {
            let Some(old) = i.users.get(&user.id) else {
                return Err(StoreError::NotFound(format!("user {}", user.id)));
            };
            if expected.is_some_and(|e| e != old) {
                return Ok(false);
            }
            let new = match expected {
                // A swap may move the email (unique across Padlock).
                Some(_) => user.clone(),
                None => User {
                    email: old.email.clone(),
                    ..user.clone()
                },
            };
            let key = unique_key(&new.email);
            if unique_key(&old.email) != key
                && i.users
                    .values()
                    .any(|u| u.id != new.id && unique_key(&u.email) == key)
            {
                return Err(StoreError::Conflict(format!("user {}", new.email)));
            }
            if new.unix_name() != old.unix_name() {
                i.check_unix_name(&new)?;
            }
            i.users.insert(new.id.clone(), new);
            Ok(true)
        })
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn init_key_check(&self, check: &Sealed) -> StoreResult<Sealed> {
        Ok(self.with(|i| i.key_check.get_or_insert_with(|| check.clone()).clone()))
    }

    async fn list_sealed(&self) -> StoreResult<Vec<(SealedAt, Sealed)>> {
        Ok(self.with(|i| {
            let mut out = Vec::new();
            if let Some(check) = &i.key_check {
                out.push((SealedAt::KeyCheck, check.clone()));
            }
            for k in &i.keys {
                out.push((SealedAt::SigningKey(k.kid.clone()), k.pkcs8.clone()));
            }
            for t in i.tenants.values() {
                if let Some(duo) = &t.duo {
                    out.push((SealedAt::DuoSecretKey(t.id.clone()), duo.skey.clone()));
                }
            }
            for u in i.users.values() {
                if let Some(totp) = &u.totp {
                    out.push((SealedAt::TotpSeed(u.id.clone()), totp.seed.clone()));
                }
            }
            for (digest, session) in &i.sessions {
                if let Some(pending) = &session.totp_pending {
                    out.push((SealedAt::PendingTotpSeed(*digest), pending.clone()));
                }
            }
            out
        }))
    }

    async fn replace_sealed(&self, at: &SealedAt, old: &Sealed, new: &Sealed) -> StoreResult<bool> {
        Ok(self.with(|i| {
            let slot = match at {
                SealedAt::KeyCheck => i.key_check.as_mut(),
                SealedAt::SigningKey(kid) => i
                    .keys
                    .iter_mut()
                    .find(|k| &k.kid == kid)
                    .map(|k| &mut k.pkcs8),
                SealedAt::DuoSecretKey(id) => i
                    .tenants
                    .get_mut(id)
                    .and_then(|t| t.duo.as_mut())
                    .map(|d| &mut d.skey),
                SealedAt::TotpSeed(id) => i
                    .users
                    .get_mut(id)
                    .and_then(|u| u.totp.as_mut())
                    .map(|t| &mut t.seed),
                SealedAt::PendingTotpSeed(digest) => i
                    .sessions
                    .get_mut(digest)
                    .and_then(|s| s.totp_pending.as_mut()),
            };
            match slot {
                Some(value) if value == old => {
                    *value = new.clone();
                    true
                }
                _ => false,
            }
        }))
    }

    async fn set_setup_token(&self, pending: Option<&PendingSetup>) -> StoreResult<()> {
        self.with(|i| i.setup_token = pending.copied());
        Ok(())
    }

    async fn setup_token(&self) -> StoreResult<Option<PendingSetup>> {
        Ok(self.with(|i| i.setup_token))
    }

    async fn create_tenant(&self, tenant: &Tenant) -> StoreResult<()> {
        self.with(|i| {
            i.check_new_tenant(tenant)?;
            i.tenants.insert(tenant.id.clone(), tenant.clone());
            i.setup_token = None;
            Ok(())
        })
    }

    async fn create_tenant_with_admin(
        &self,
        tenant: &Tenant,
        admin: &User,
        setup: Option<&Digest>,
    ) -> StoreResult<bool> {
        self.with(|i| {
            if let Some(digest) = setup
                && !i.setup_token.is_some_and(|p| p.is(digest))
            {
                return Ok(false);
            }
            i.check_new_tenant(tenant)?;
            i.check_new_user(admin)?;
            i.tenants.insert(tenant.id.clone(), tenant.clone());
            i.users.insert(admin.id.clone(), admin.clone());
            i.setup_token = None;
            Ok(true)
        })
    }

    async fn get_tenant(&self, id: &TenantId) -> StoreResult<Option<Tenant>> {
        Ok(self.with(|i| i.tenants.get(id).cloned()))
    }

    async fn find_tenant_by_name(&self, name: &str) -> StoreResult<Option<Tenant>> {
        let key = unique_key(name);
        Ok(self.with(|i| {
            i.tenants
                .values()
                .find(|t| unique_key(&t.name) == key)
                .cloned()
        }))
    }

    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>> {
        let mut all: Vec<Tenant> = self.with(|i| i.tenants.values().cloned().collect());
        all.sort_by_key(|t| unique_key(&t.name));
        Ok(all)
    }

    async fn update_tenant(&self, tenant: &Tenant) -> StoreResult<()> {
        self.with(|i| match i.tenants.get_mut(&tenant.id) {
            Some(t) => {
                *t = Tenant {
                    name: t.name.clone(),
                    ..tenant.clone()
                };
                Ok(())
            }
            None => Err(StoreError::NotFound(format!("company {}", tenant.id))),
        })
    }

    async fn swap_tenant(&self, old: &Tenant, new: &Tenant) -> StoreResult<bool> {
        self.with(|i| match i.tenants.get_mut(&new.id) {
            Some(t) if t == old => {
                *t = Tenant {
                    name: t.name.clone(),
                    ..new.clone()
                };
                Ok(true)
            }
            Some(_) => Ok(false),
            None => Err(StoreError::NotFound(format!("company {}", new.id))),
        })
    }

    async fn create_user(&self, user: &User) -> StoreResult<()> {
        self.with(|i| {
            i.check_new_user(user)?;
            i.users.insert(user.id.clone(), user.clone());
            Ok(())
        })
    }

    async fn get_user(&self, id: &UserId) -> StoreResult<Option<User>> {
        Ok(self.with(|i| i.users.get(id).cloned()))
    }

    async fn find_user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        let key = unique_key(email);
        Ok(self.with(|i| {
            i.users
                .values()
                .find(|u| unique_key(&u.email) == key)
                .cloned()
        }))
    }

    async fn users_page(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<User>> {
        let after = after.map(unique_key);
        let mut all: Vec<User> = self.with(|i| {
            i.users
                .values()
                .filter(|u| {
                    &u.tenant == tenant && after.as_ref().is_none_or(|a| unique_key(&u.email) > *a)
                })
                .cloned()
                .collect()
        });
        all.sort_by_key(|u| unique_key(&u.email));
        all.truncate(limit);
        Ok(all)
    }

    async fn update_user(&self, user: &User) -> StoreResult<()> {
        self.replace_user(user, None).map(|_| ())
    }

    async fn swap_user(&self, old: &User, new: &User) -> StoreResult<bool> {
        self.replace_user(new, Some(old))
    }

    async fn find_users_by_unix_name(
        &self,
        tenant: &TenantId,
        name: &str,
    ) -> StoreResult<Vec<User>> {
        Ok(self.with(|i| {
            i.users
                .values()
                .filter(|u| &u.tenant == tenant && u.unix_name() == name)
                .cloned()
                .collect()
        }))
    }

    async fn put_client(&self, client: &Client) -> StoreResult<()> {
        self.with(|i| i.clients.insert(client.id.clone(), client.clone()));
        Ok(())
    }

    async fn get_client(&self, id: &ClientId) -> StoreResult<Option<Client>> {
        Ok(self.with(|i| i.clients.get(id).cloned()))
    }

    async fn list_clients(&self) -> StoreResult<Vec<Client>> {
        let mut all: Vec<Client> = self.with(|i| i.clients.values().cloned().collect());
        all.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
        Ok(all)
    }

    async fn delete_client(&self, id: &ClientId) -> StoreResult<bool> {
        Ok(self.with(|i| i.clients.remove(id).is_some()))
    }

    async fn put_signing_key(&self, key: &SigningKeyRecord) -> StoreResult<()> {
        self.with(|i| match i.keys.iter_mut().find(|k| k.kid == key.kid) {
            Some(k) => *k = key.clone(),
            None => i.keys.push(key.clone()),
        });
        Ok(())
    }

    async fn list_signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>> {
        let mut keys = self.with(|i| i.keys.clone());
        keys.sort_by(|a, b| (a.created_at, &a.kid).cmp(&(b.created_at, &b.kid)));
        Ok(keys)
    }

    async fn put_auth_code(&self, digest: &Digest, grant: &AuthCodeGrant) -> StoreResult<()> {
        self.with(|i| i.codes.insert(*digest, grant.clone()));
        Ok(())
    }

    async fn take_auth_code(&self, digest: &Digest) -> StoreResult<CodeTake> {
        Ok(self.with(|i| match i.codes.remove(digest) {
            Some(grant) => {
                i.code_tombstones.insert(
                    *digest,
                    (
                        grant.grant_id.clone(),
                        grant.expires_at + CODE_TOMBSTONE_SECS,
                    ),
                );
                CodeTake::Fresh(grant)
            }
            None => match i.code_tombstones.get(digest) {
                Some((grant_id, _)) => CodeTake::Reused {
                    grant_id: grant_id.clone(),
                },
                None => CodeTake::Unknown,
            },
        }))
    }

    async fn put_session(&self, digest: &Digest, session: &Session) -> StoreResult<()> {
        self.with(|i| i.sessions.insert(*digest, session.clone()));
        Ok(())
    }

    async fn get_session(&self, digest: &Digest) -> StoreResult<Option<Session>> {
        let session = self.with(|i| i.sessions.get(digest).cloned());
        #[cfg(test)]
        self.pass_hold().await;
        Ok(session)
    }

    async fn swap_session(
        &self,
        digest: &Digest,
        expected: &Session,
        new: &Session,
    ) -> StoreResult<bool> {
        Ok(self.with(|i| match i.sessions.get_mut(digest) {
            Some(current) if current == expected => {
                *current = new.clone();
                true
            }
            _ => false,
        }))
    }

    async fn delete_session(&self, digest: &Digest) -> StoreResult<()> {
        self.with(|i| i.sessions.remove(digest));
        Ok(())
    }

    async fn put_login_flow(&self, digest: &Digest, flow: &LoginFlow) -> StoreResult<()> {
        self.with(|i| i.flows.insert(*digest, flow.clone()));
        Ok(())
    }

    async fn get_login_flow(&self, digest: &Digest) -> StoreResult<Option<LoginFlow>> {
        let flow = self.with(|i| i.flows.get(digest).cloned());
        #[cfg(test)]
        self.pass_hold().await;
        Ok(flow)
    }

    async fn swap_login_flow(
        &self,
        digest: &Digest,
        expected: &LoginFlow,
        new: &LoginFlow,
    ) -> StoreResult<bool> {
        Ok(self.with(|i| match i.flows.get_mut(digest) {
            Some(f) if f == expected => {
                *f = new.clone();
                true
            }
            _ => false,
        }))
    }

    async fn take_login_flow(&self, digest: &Digest) -> StoreResult<Option<LoginFlow>> {
        Ok(self.with(|i| i.flows.remove(digest)))
    }

    async fn put_pam_transaction(&self, digest: &Digest, txn: &PamTransaction) -> StoreResult<()> {
        self.with(|i| i.pam_transactions.insert(*digest, txn.clone()));
        Ok(())
    }

    async fn get_pam_transaction(&self, digest: &Digest) -> StoreResult<Option<PamTransaction>> {
        Ok(self.with(|i| i.pam_transactions.get(digest).cloned()))
    }

    async fn swap_pam_transaction(
        &self,
        digest: &Digest,
        expected: &PamTransaction,
        new: &PamTransaction,
    ) -> StoreResult<bool> {
        Ok(self.with(|i| match i.pam_transactions.get_mut(digest) {
            Some(t) if t == expected => {
                *t = new.clone();
                true
            }
            _ => false,
        }))
    }

    async fn take_pam_transaction(&self, digest: &Digest) -> StoreResult<Option<PamTransaction>> {
        Ok(self.with(|i| i.pam_transactions.remove(digest)))
    }

    async fn put_password_link(&self, digest: &Digest, link: &PasswordLink) -> StoreResult<()> {
        self.with(|i| i.password_links.insert(*digest, link.clone()));
        Ok(())
    }

    async fn get_password_link(&self, digest: &Digest) -> StoreResult<Option<PasswordLink>> {
        Ok(self.with(|i| i.password_links.get(digest).cloned()))
    }

    async fn take_password_link(&self, digest: &Digest) -> StoreResult<Option<PasswordLink>> {
        Ok(self.with(|i| i.password_links.remove(digest)))
    }

    async fn put_refresh_token(&self, digest: &Digest, record: &RefreshRecord) -> StoreResult<()> {
        self.with(|i| i.refresh.insert(*digest, (record.clone(), false)));
        Ok(())
    }

    async fn get_refresh_token(
        &self,
        digest: &Digest,
    ) -> StoreResult<Option<(RefreshRecord, bool)>> {
        Ok(self.with(|i| i.refresh.get(digest).cloned()))
    }

    async fn rotate_refresh_token(
        &self,
        old: &Digest,
        new: &Digest,
        record: &RefreshRecord,
    ) -> StoreResult<Rotation> {
        Ok(self.with(|i| match i.refresh.get_mut(old) {
            None => Rotation::Unknown,
            Some((rec, true)) => Rotation::Reused(rec.clone()),
            Some((rec, used)) => {
                *used = true;
                let previous = rec.clone();
                i.refresh.insert(*new, (record.clone(), false));
                Rotation::Rotated(previous)
            }
        }))
    }

    async fn revoke_grant(&self, grant_id: &str, until: Timestamp) -> StoreResult<()> {
        self.with(|i| i.revoked.insert(grant_id.to_owned(), until));
        Ok(())
    }

    async fn revoke_token(&self, jti: &str, until: Timestamp) -> StoreResult<()> {
        self.with(|i| i.revoked.insert(jti.to_owned(), until));
        Ok(())
    }

    async fn is_revoked(&self, id: &str) -> StoreResult<bool> {
        Ok(self.with(|i| i.revoked.contains_key(id)))
    }

    async fn purge_expired(&self, now: Timestamp) -> StoreResult<usize> {
        Ok(self.with(|i| {
            let count = |i: &Inner| {
                i.codes.len()
                    + i.code_tombstones.len()
                    + i.sessions.len()
                    + i.flows.len()
                    + i.pam_transactions.len()
                    + i.refresh.len()
                    + i.password_links.len()
                    + i.revoked.len()
                    + i.messages.len()
                    + i.password_throttles.len()
            };
            let before = count(i);
            i.codes.retain(|_, g| g.expires_at > now);
            i.code_tombstones.retain(|_, (_, until)| *until > now);
            i.sessions.retain(|_, s| s.expires_at > now);
            i.flows.retain(|_, f| f.expires_at > now);
            i.pam_transactions.retain(|_, t| t.expires_at > now);
            i.refresh.retain(|_, (r, _)| r.expires_at > now);
            i.password_links.retain(|_, l| l.expires_at > now);
            i.revoked.retain(|_, until| *until > now);
            i.messages.retain(|_, (_, idle_at)| *idle_at > now);
            i.password_throttles
                .retain(|_, (_, idle_at)| *idle_at > now);
            before - count(i)
        }))
    }

    async fn accept_totp_step(&self, user: &UserId, step: u64) -> StoreResult<bool> {
        Ok(self.with(|i| match i.totp_steps.get(user) {
            Some(last) if *last >= step => false,
            _ => {
                i.totp_steps.insert(user.clone(), step);
                true
            }
        }))
    }

    async fn admit_second_factor_attempt(
        &self,
        user: &UserId,
        now: Timestamp,
        policy: &LockoutPolicy,
    ) -> StoreResult<Attempt> {
        Ok(self.with(|i| {
            let state = i.lockouts.entry(user.clone()).or_default();
            let (next, attempt) = state.admit(now, policy);
            *state = next;
            attempt
        }))
    }

    async fn admit_message(
        &self,
        user: &UserId,
        now: Timestamp,
        limit: &RateLimit,
    ) -> StoreResult<RateAdmission> {
        Ok(self.with(|i| {
            let entry = i.messages.entry(user.clone()).or_default();
            let (next, admission) = std::mem::take(&mut entry.0).admit(now, limit);
            *entry = (next.clone(), next.idle_at(limit));
            admission
        }))
    }

    async fn admit_password_attempt(
        &self,
        login: &str,
        now: Timestamp,
        policy: &ThrottlePolicy,
    ) -> StoreResult<Throttle> {
        Ok(self.with(|i| {
            let entry = i.password_throttles.entry(unique_key(login)).or_default();
            let (next, verdict) = entry.0.admit(now, policy);
            *entry = (next, next.idle_at(policy));
            verdict
        }))
    }

    async fn reset_password_failures(&self, login: &str) -> StoreResult<()> {
        self.with(|i| i.password_throttles.remove(&unique_key(login)));
        Ok(())
    }

    async fn record_second_factor_success(&self, user: &UserId) -> StoreResult<()> {
        self.with(|i| i.lockouts.remove(user));
        Ok(())
    }

    async fn lockout_state(&self, user: &UserId) -> StoreResult<LockoutState> {
        Ok(self.with(|i| i.lockouts.get(user).copied().unwrap_or_default()))
    }

    async fn append_audit(&self, event: &AuditEvent) -> StoreResult<()> {
        self.with(|i| i.audit.push(event.clone()));
        Ok(())
    }

    async fn audit_page(&self, q: &AuditQuery) -> StoreResult<AuditPage> {
        // The recording order is the sequence number; the newest first by (time, sequence), as
        // an index yields them.
        let mut candidates: Vec<(AuditCursor, AuditEvent)> = self.with(|i| {
            i.audit
                .iter()
                .enumerate()
                .map(|(seq, e)| {
                    let cursor = AuditCursor {
                        at: e.at,
                        seq: seq as u64,
                    };
                    (cursor, e.clone())
                })
                .filter(|(c, e)| {
                    q.in_scope(e)
                        && q.since.is_none_or(|s| c.at >= s)
                        && q.before.is_none_or(|b| *c < b)
                })
                .collect()
        });
        candidates.sort_by_key(|(c, _)| std::cmp::Reverse(*c));
        q.page(candidates.into_iter().map(Ok))
    }

    async fn flush(&self) -> StoreResult<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    crate::store_conformance!((super::MemoryStore::new(), ()));
}
