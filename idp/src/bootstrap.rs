//! Start-up of a data directory: lock it, find or create the master key, prove it matches the
//! database, create signing keys, the operator credential and (until the first company exists) the
//! one-time `/setup` token. Every failure is a [`StartError`] that reads well as one line.

use crate::crypto::{CryptoError, MasterKey, random_token, sha256};
use crate::domain::{Client, ClientKind};
use crate::keys::KeyError;
use crate::secret::ClientId;
use crate::store::{PendingSetup, Store, StoreError};
use serde::Serialize;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// Why `padlock serve` could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration has problems.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// Address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The data directory is unusable.
    #[error("data directory {path}: {reason}")]
    DataDir {
        /// The directory.
        path: String,
        /// Why.
        reason: String,
    },
    /// Another process holds the data directory.
    #[error(
        "data directory {path} is locked: another padlock (pid {holder}) is using it; stop it first"
    )]
    Locked {
        /// The directory.
        path: String,
        /// The holder's pid as recorded in the lock file.
        holder: String,
    },
    /// The master key is missing, unreadable or not the one the data was sealed with.
    #[error("master key: {0}")]
    MasterKey(String),
    /// Storage failed.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// Signing keys failed.
    #[error("signing keys: {0}")]
    Keys(#[from] KeyError),
    /// Something else on the file system.
    #[error("{0}")]
    Io(String),
}

/// An open, locked data directory. The lock is held until this is dropped.
pub struct DataDir {
    root: PathBuf,
    _lock: File,
}

/// What Padlock writes in its data directory; [`DataDir::open`] makes each private. Other entries
/// (an operator's own files, the master key, whose mode is the operator's choice within the rules
/// of [`crate::fsutil::check_secret_file`]) are left alone.
const WRITTEN_ENTRIES: [&str; 4] = ["db", "outbox", "operator.json", "padlock.lock"];

/// The process's effective user id.
fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Makes `path` private if others can reach it: a directory becomes `mode & 0700 | 0700`, a file
/// `mode & 0700`, recursively through directories. A symbolic link, or an entry owned by another
/// user, is an error naming it (it was not written by Padlock). Returns how many entries were
/// changed; an entry that cannot be changed is an error naming it.
fn make_private(path: &Path) -> Result<usize, String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(format!("cannot inspect {}: {e}", path.display())),
    };
    // What Padlock writes is its own: a link or another user's entry here was planted (say while
    // the directory was open to others) and would send keys, codes or the database elsewhere.
    if meta.file_type().is_symlink() {
        return Err(format!(
            "{} is a symbolic link; Padlock writes there and does not follow links in its data directory: remove it",
            path.display()
        ));
    }
    if std::os::unix::fs::MetadataExt::uid(&meta) != euid() {
        return Err(format!(
            "{} is owned by uid {}, not by the user Padlock runs as (uid {}): remove it or `chown` it",
            path.display(),
            std::os::unix::fs::MetadataExt::uid(&meta),
            euid()
        ));
    }
    let mode = meta.permissions().mode() & 0o777;
    let mut changed = 0;
    if mode & 0o077 != 0 {
        let private = if meta.is_dir() {
            mode & 0o700 | 0o700
        } else {
            mode & 0o700
        };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(private)).map_err(|e| {
            format!(
                "{} has mode {mode:04o} and cannot be made private: {e}",
                path.display()
            )
        })?;
        changed += 1;
    }
    if meta.is_dir() {
        let entries =
            std::fs::read_dir(path).map_err(|e| format!("cannot list {}: {e}", path.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("cannot list {}: {e}", path.display()))?;
            changed += make_private(&entry.path())?;
        }
    }
    Ok(changed)
}

impl DataDir {
    /// Creates (mode 0700), checks and locks the data directory `root`.
    ///
    /// A symbolic link is resolved first: the target is what is checked and used. The directory
    /// must be owned by the user Padlock runs as. If others can reach it, it is tightened to 0700
    /// (with a warning in the log), and so is everything Padlock wrote in it ([`WRITTEN_ENTRIES`]:
    /// directories 0700, files 0600), so a directory created by hand with mode 0755, or sled files
    /// written under a loose umask, stop being readable by others.
    ///
    /// # Errors
    /// [`StartError::DataDir`] when `root` is not a directory, cannot be created, is owned by
    /// another user, or holds something that cannot be made private; [`StartError::Locked`] when
    /// another process holds it.
    pub fn open(root: &Path) -> Result<DataDir, StartError> {
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
        let display = root.display().to_string();
        let bad = |reason: String| StartError::DataDir {
            path: display.clone(),
            reason,
        };
        if root.exists() && !root.is_dir() {
            return Err(bad("exists and is not a directory".into()));
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .map_err(|e| bad(format!("cannot create it: {e}")))?;
        let resolved =
            std::fs::canonicalize(root).map_err(|e| bad(format!("cannot resolve it: {e}")))?;
        let shown = if resolved == root {
            String::new()
        } else {
            format!(" (resolved to {})", resolved.display())
        };
        let meta =
            std::fs::metadata(&resolved).map_err(|e| bad(format!("cannot inspect it: {e}")))?;
        if meta.uid() != euid() {
            return Err(bad(format!(
                "is owned by uid {} but Padlock runs as uid {}{shown}; a data directory another user owns is not private: `chown` it to the user Padlock runs as",
                meta.uid(),
                euid()
            )));
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            std::fs::set_permissions(&resolved, std::fs::Permissions::from_mode(0o700)).map_err(
                |e| {
                    bad(format!(
                        "has mode {mode:04o} and cannot be made private{shown}: {e}"
                    ))
                },
            )?;
            tracing::warn!(path = %resolved.display(), from = format!("{mode:04o}"), "data directory was open to other users: tightened to 0700");
        }
        let lock_path = resolved.join("padlock.lock");
        let mut lock = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            // A link planted here would have the pid written over its target.
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&lock_path)
            .map_err(|e| bad(format!("not writable: {e}")))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&lock_path)
                    .unwrap_or_default()
                    .trim()
                    .to_owned();
                return Err(StartError::Locked {
                    path: display,
                    holder: if holder.is_empty() {
                        "unknown".into()
                    } else {
                        holder
                    },
                });
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(bad(format!("cannot lock {}: {e}", lock_path.display())));
            }
        }
        lock.set_len(0)
            .and_then(|()| write!(lock, "{}", std::process::id()))
            .map_err(|e| bad(format!("not writable: {e}")))?;
        let mut tightened = 0;
        for entry in WRITTEN_ENTRIES {
            tightened += make_private(&resolved.join(entry)).map_err(bad)?;
        }
        if tightened > 0 {
            tracing::warn!(path = %resolved.display(), entries = tightened, "files in the data directory were open to other users: made private (directories 0700, files 0600)");
        }
        Ok(DataDir {
            root: resolved,
            _lock: lock,
        })
    }

    /// The directory, resolved (absolute, without symbolic links).
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The sled database directory.
    #[must_use]
    pub fn db_path(&self) -> PathBuf {
        self.root.join("db")
    }

    /// The operator credential file.
    #[must_use]
    pub fn operator_path(&self) -> PathBuf {
        self.root.join("operator.json")
    }
}

/// Loads the master key, or creates it (mode 0600) for a fresh database, and proves it matches the
/// database. An existing key file that others can read or change is refused
/// ([`crate::fsutil::check_secret_file`]), as is a wrong or missing key for a database with data.
pub async fn master_key(path: &Path, store: &dyn Store) -> Result<MasterKey, StartError> {
    let created = !path.exists();
    let key = if created {
        let key = MasterKey::generate().map_err(|e| StartError::MasterKey(e.to_string()))?;
        // Written before the database records its check, so a crash never leaves a database sealed
        // under a key that is nowhere on disk.
        key.save_new(path)
            .map_err(|e| StartError::MasterKey(e.to_string()))?;
        tracing::info!(path = %path.display(), "created master key");
        key
    } else {
        // Read through the checked handle: the file checked is the file read.
        let text = crate::fsutil::read_secret_file(path)
            .map_err(|e| StartError::MasterKey(format!("master_key_file: {e}")))?;
        MasterKey::from_hex(&text, path).map_err(|e| StartError::MasterKey(e.to_string()))?
    };
    let check = key
        .key_check()
        .map_err(|e| StartError::MasterKey(e.to_string()))?;
    let stored = store.init_key_check(&check).await?;
    if key.matches(&stored) {
        return Ok(key);
    }
    if created {
        // The database was sealed under a key that is no longer there; do not leave a decoy.
        let _ = std::fs::remove_file(path);
        return Err(StartError::MasterKey(format!(
            "{} is missing but the data directory holds data sealed with a master key; restore the key file",
            path.display()
        )));
    }
    Err(StartError::MasterKey(format!(
        "{} is not the key this data directory was created with (wrong or replaced master key)",
        path.display()
    )))
}

/// Re-seals every stored value still sealed directly under the master key (by versions before
/// subkeys) under its purpose's subkey; run at start once the master key is proven. Returns how
/// many values were re-sealed (0 once done: running it again changes nothing).
///
/// A value changed meanwhile is left to its writer, who sealed it the new way. A value that does
/// not open (a corrupt record: the key itself was proven) is logged and left as it is; it fails
/// when used, as it did before.
///
/// # Errors
/// [`StartError::Store`] when storage fails; [`StartError::MasterKey`] when the random generator
/// does.
pub async fn reseal_under_subkeys(store: &dyn Store, key: &MasterKey) -> Result<usize, StartError> {
    let mut resealed = 0;
    for (at, old) in store.list_sealed().await? {
        match key.reseal(at.purpose(), &old) {
            Ok(None) => {}
            Ok(Some(new)) => {
                if store.replace_sealed(&at, &old, &new).await? {
                    resealed += 1;
                }
            }
            Err(CryptoError::Open) => {
                tracing::error!(at = ?at, "a stored secret does not open with the master key; it is left as it is");
            }
            Err(e) => return Err(StartError::MasterKey(e.to_string())),
        }
    }
    if resealed > 0 {
        tracing::info!(
            count = resealed,
            "re-sealed stored secrets under per-purpose subkeys of the master key"
        );
    }
    Ok(resealed)
}

/// Marks the company created at `/setup` as the operator company in data written before the
/// mark existed: the oldest company, if the audit holds its creation by `setup` (read from that
/// company's index, so this costs a few reads). Returns its name when one was marked; nothing
/// when a company is marked already, or none was made by `/setup`.
///
/// # Errors
/// Storage failures.
pub async fn mark_operator_company(store: &dyn Store) -> Result<Option<String>, StartError> {
    let tenants = store.list_tenants().await?;
    if tenants.iter().any(|t| t.operator) {
        return Ok(None);
    }
    let Some(oldest) = tenants.iter().min_by_key(|t| t.created_at) else {
        return Ok(None);
    };
    let query = crate::store::AuditQuery {
        tenant: Some(oldest.id.clone()),
        user: Some("setup".into()),
        action: Some("tenant.create".into()),
        limit: 1,
        ..crate::store::AuditQuery::default()
    };
    if store.audit_page(&query).await?.events.is_empty() {
        return Ok(None);
    }
    let marked = crate::domain::Tenant {
        operator: true,
        ..oldest.clone()
    };
    store.swap_tenant(oldest, &marked).await?;
    Ok(Some(oldest.name.clone()))
}

/// Unix names that more than one user of a company holds (stored before Unix names were
/// unique): `(company name, Unix name, the users' emails)`. Such a name can log in through
/// `pam_padlock.so` as nobody until an administrator renames all but one; `serve` logs each at
/// start.
///
/// # Errors
/// [`StartError::Store`] when storage fails.
pub async fn duplicate_unix_names(
    store: &dyn Store,
) -> Result<Vec<(String, String, Vec<String>)>, StartError> {
    let mut found = Vec::new();
    for tenant in store.list_tenants().await? {
        let mut by_name: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for user in store.list_users(&tenant.id).await? {
            by_name
                .entry(user.unix_name().to_owned())
                .or_default()
                .push(user.email.clone());
        }
        found.extend(
            by_name
                .into_iter()
                .filter(|(_, emails)| emails.len() > 1)
                .map(|(name, emails)| (tenant.name.clone(), name, emails)),
        );
    }
    Ok(found)
}

/// The operator credential file's content.
#[derive(Serialize)]
struct OperatorFile<'a> {
    issuer: &'a str,
    client_id: &'a str,
    client_secret: &'a str,
}

/// The scope of the operator credential.
pub const OPERATOR_SCOPE: &str = padlock_policy::permission::SCOPE_OPERATOR;

/// Creates `operator.json` (0600) and its client if the file does not exist.
pub async fn ensure_operator(
    dir: &DataDir,
    store: &dyn Store,
    issuer: &str,
    now: u64,
) -> Result<(), StartError> {
    let path = dir.operator_path();
    if path.exists() {
        return Ok(());
    }
    let secret = zeroize::Zeroizing::new(random_token(32));
    let client = Client {
        id: ClientId::generate(),
        name: "operator".into(),
        kind: ClientKind::Operator,
        secret_sha256: Some(hex::encode(sha256(secret.as_bytes()))),
        scopes: vec![OPERATOR_SCOPE.into()],
        tenant: None,
        created_at: now,
    };
    store.put_client(&client).await?;
    let body = zeroize::Zeroizing::new(
        serde_json::to_string_pretty(&OperatorFile {
            issuer,
            client_id: client.id.as_str(),
            client_secret: &secret,
        })
        .map_err(|e| StartError::Io(e.to_string()))?,
    );
    crate::fsutil::write_new_private(&path, body.as_bytes())
        .map_err(|e| StartError::Io(format!("cannot write {}: {e}", path.display())))?;
    tracing::info!(path = %path.display(), client_id = %client.id, "created operator credential");
    Ok(())
}

/// How long a `/setup` link works after it is printed: 24 hours. A restart while no company
/// exists prints a new one.
pub const SETUP_LINK_TTL_SECS: u64 = 24 * 3600;

/// While no company exists, replaces the `/setup` token with a fresh one issued at `now` (Unix
/// seconds) and returns the link to print. Once a company exists there is nothing to set up: any
/// token still pending (left by an earlier version) is ended and `None` returned.
pub async fn setup_link(
    store: &dyn Store,
    issuer: &str,
    now: u64,
) -> Result<Option<String>, StartError> {
    if !store.list_tenants().await?.is_empty() {
        store.set_setup_token(None).await?;
        return Ok(None);
    }
    let token = random_token(32);
    store
        .set_setup_token(Some(&PendingSetup {
            digest: sha256(token.as_bytes()),
            issued_at: now,
        }))
        .await?;
    Ok(Some(format!("{issuer}/setup?token={token}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[tokio::test]
    async fn the_company_made_at_setup_is_marked_the_operator_company_once() {
        use crate::domain::{AuditEvent, Outcome};
        use crate::store::conformance::tenant;
        let store = crate::store::memory::MemoryStore::new();
        assert_eq!(
            mark_operator_company(&store).await.unwrap(),
            None,
            "no company"
        );
        let (first, later) = (tenant("Ops"), tenant("Acme"));
        let later = crate::domain::Tenant {
            created_at: first.created_at + 10,
            ..later
        };
        store.create_tenant(&first).await.unwrap();
        store.create_tenant(&later).await.unwrap();
        assert_eq!(
            mark_operator_company(&store).await.unwrap(),
            None,
            "not made at /setup (no audit of it)"
        );
        let made = |t: &crate::domain::Tenant, actor: &str| AuditEvent {
            at: t.created_at,
            tenant: Some(t.id.clone()),
            actor: actor.into(),
            action: "tenant.create".into(),
            target: t.name.clone(),
            outcome: Outcome::Success,
            source_ip: None,
            pam: None,
        };
        store.append_audit(&made(&later, "setup")).await.unwrap();
        assert_eq!(
            mark_operator_company(&store).await.unwrap(),
            None,
            "only the oldest company can be the one made at /setup"
        );
        store.append_audit(&made(&first, "setup")).await.unwrap();
        assert_eq!(
            mark_operator_company(&store).await.unwrap().as_deref(),
            Some("Ops")
        );
        assert!(store.get_tenant(&first.id).await.unwrap().unwrap().operator);
        assert!(!store.get_tenant(&later.id).await.unwrap().unwrap().operator);
        assert_eq!(mark_operator_company(&store).await.unwrap(), None, "once");
    }

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
    }

    fn write(p: &Path, mode: u32) {
        std::fs::write(p, "x").unwrap();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn mkdir(p: &Path, mode: u32) {
        std::fs::create_dir(p).unwrap();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// A data directory made 0755 by hand, and files an earlier run wrote under a loose umask,
    /// become private; files Padlock did not write are left alone.
    #[test]
    fn a_loose_data_dir_and_what_padlock_wrote_in_it_are_made_private() {
        let parent = tempfile::tempdir().unwrap();
        let root = parent.path().join("data");
        mkdir(&root, 0o755);
        mkdir(&root.join("db"), 0o755);
        write(&root.join("db/conf"), 0o644);
        mkdir(&root.join("db/blobs"), 0o775);
        write(&root.join("db/blobs/1"), 0o664);
        mkdir(&root.join("outbox"), 0o755);
        write(&root.join("outbox/1-email.txt"), 0o644);
        write(&root.join("operator.json"), 0o644);
        write(&root.join("master.key"), 0o640);
        write(&root.join("notes.txt"), 0o644);

        let dir = DataDir::open(&root).unwrap();
        assert_eq!(mode(&root), 0o700);
        for (path, expected) in [
            ("db", 0o700),
            ("db/conf", 0o600),
            ("db/blobs", 0o700),
            ("db/blobs/1", 0o600),
            ("outbox", 0o700),
            ("outbox/1-email.txt", 0o600),
            ("operator.json", 0o600),
            ("padlock.lock", 0o600),
            ("master.key", 0o640),
            ("notes.txt", 0o644),
        ] {
            assert_eq!(mode(&root.join(path)), expected, "{path}");
        }
        drop(dir);
    }

    /// Entries planted in a data directory (say while it was open to others) are refused, never
    /// followed: a link named like the lock file would have the pid written over the master key, a
    /// link or another user's directory in place of `db` or `outbox` would send the database or the
    /// codes elsewhere.
    #[test]
    fn planted_links_and_foreign_entries_are_refused() {
        let parent = tempfile::tempdir().unwrap();
        let root = parent.path().join("data");
        mkdir(&root, 0o777);
        write(&root.join("master.key"), 0o600);
        std::fs::write(root.join("master.key"), "keep me").unwrap();
        std::os::unix::fs::symlink(root.join("master.key"), root.join("padlock.lock")).unwrap();
        let err = DataDir::open(&root).err().expect("refused").to_string();
        assert!(
            err.contains("padlock.lock") || err.contains("not writable"),
            "{err}"
        );
        assert_eq!(
            std::fs::read_to_string(root.join("master.key")).unwrap(),
            "keep me"
        );
        std::fs::remove_file(root.join("padlock.lock")).unwrap();

        let elsewhere = parent.path().join("elsewhere");
        mkdir(&elsewhere, 0o700);
        std::os::unix::fs::symlink(&elsewhere, root.join("outbox")).unwrap();
        let err = DataDir::open(&root).err().expect("refused").to_string();
        assert!(
            err.contains("outbox") && err.contains("symbolic link"),
            "{err}"
        );
        std::fs::remove_file(root.join("outbox")).unwrap();

        mkdir(&root.join("db"), 0o700);
        std::os::unix::fs::chown(root.join("db"), Some(4242), None)
            .expect("the suite runs as root");
        let err = DataDir::open(&root).err().expect("refused").to_string();
        assert!(
            err.contains("db") && err.contains("owned by uid 4242"),
            "{err}"
        );
        std::fs::remove_dir(root.join("db")).unwrap();
        assert!(DataDir::open(&root).is_ok(), "clean again: it starts");
    }

    #[test]
    fn a_symlinked_data_dir_is_checked_at_its_target() {
        let parent = tempfile::tempdir().unwrap();
        let real = parent.path().join("real");
        mkdir(&real, 0o755);
        let link = parent.path().join("data");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let dir = DataDir::open(&link).unwrap();
        assert_eq!(dir.path(), std::fs::canonicalize(&real).unwrap());
        assert_eq!(mode(&real), 0o700);
        assert!(real.join("padlock.lock").exists());
    }

    #[test]
    fn a_data_dir_owned_by_another_user_is_refused() {
        let parent = tempfile::tempdir().unwrap();
        let real = parent.path().join("real");
        mkdir(&real, 0o700);
        let other = if euid() == 65534 { 65533 } else { 65534 };
        if let Err(e) = std::os::unix::fs::chown(&real, Some(other), None) {
            // Only root can give a directory away; the check itself needs no privilege.
            eprintln!("skipped: cannot chown as uid {}: {e}", euid());
            return;
        }
        let link = parent.path().join("data");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let err = DataDir::open(&link).err().expect("refused").to_string();
        assert!(
            err.contains(&format!(
                "is owned by uid {other} but Padlock runs as uid {}",
                euid()
            )) && err.contains(&format!(
                "resolved to {}",
                std::fs::canonicalize(&real).unwrap().display()
            )),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(!real.join("padlock.lock").exists(), "nothing written");
    }

    /// What an earlier version left in a store: every kind of sealed value, sealed directly
    /// under the master key (format 1). Returns the plaintexts by where they are.
    async fn old_data(
        store: &dyn Store,
        master: &MasterKey,
    ) -> Vec<(crate::store::SealedAt, Vec<u8>)> {
        use crate::domain::{
            DUO_SKEY_PURPOSE, DuoConfig, SIGNING_KEY_PURPOSE, TOTP_SEED_PURPOSE, TotpEnrolment,
        };
        use crate::store::SealedAt;
        let mut plain = Vec::new();
        store
            .init_key_check(&master.key_check_format_1())
            .await
            .unwrap();
        crate::keys::Keys::load_or_create(store, master, 100)
            .await
            .unwrap();
        for mut r in store.list_signing_keys().await.unwrap() {
            let der = master.open(SIGNING_KEY_PURPOSE, &r.pkcs8).unwrap();
            r.pkcs8 = master.seal_format_1(SIGNING_KEY_PURPOSE, &der);
            store.put_signing_key(&r).await.unwrap();
            plain.push((SealedAt::SigningKey(r.kid.clone()), der.to_vec()));
        }
        let mut t = crate::store::conformance::tenant("Acme");
        t.duo = Some(DuoConfig {
            ikey: "DIXXXXXXXXXXXXXXXXXX".into(),
            skey: master.seal_format_1(DUO_SKEY_PURPOSE, b"duo-secret-key"),
            api_host: "api-x.duosecurity.com".into(),
        });
        store.create_tenant(&t).await.unwrap();
        plain.push((
            SealedAt::DuoSecretKey(t.id.clone()),
            b"duo-secret-key".to_vec(),
        ));
        let mut u = crate::store::conformance::user(&t, "ann@example.com");
        u.totp = Some(TotpEnrolment {
            seed: master.seal_format_1(TOTP_SEED_PURPOSE, b"12345678901234567890"),
            enrolled_at: 1,
        });
        store.create_user(&u).await.unwrap();
        plain.push((
            SealedAt::TotpSeed(u.id.clone()),
            b"12345678901234567890".to_vec(),
        ));
        let session = crate::domain::Session {
            user_id: u.id.clone(),
            auth_time: 1,
            amr: vec![],
            acr: padlock_policy::decision::Acr::OneFactor,
            epoch: 0,
            second_factor_at: None,
            expires_at: 4_000_000_000,
            step_up: None,
            totp_pending: Some(master.seal_format_1(TOTP_SEED_PURPOSE, b"pending-seed")),
            duo_push: None,
            duo_pending: None,
        };
        store.put_session(&[5; 32], &session).await.unwrap();
        plain.push((SealedAt::PendingTotpSeed([5; 32]), b"pending-seed".to_vec()));
        plain
    }

    /// A data directory from before subkeys starts: the key check, signing keys, Duo secret
    /// keys, TOTP seeds and pending TOTP seeds all open, and after start-up nothing is left sealed
    /// directly under the master key.
    async fn old_data_opens_and_is_resealed(store: &dyn Store, dir: &Path) {
        let key_path = dir.join("master.key");
        let original = MasterKey::generate().unwrap();
        original.save_new(&key_path).unwrap();
        let plain = old_data(store, &original).await;
        let kids =
            |k: &crate::keys::Keys| k.all().iter().map(|k| k.kid.clone()).collect::<Vec<_>>();
        let sealed = store.list_sealed().await.unwrap();
        assert_eq!(sealed.len(), plain.len() + 1, "and the key check");
        assert!(sealed.iter().all(|(_, v)| !v.uses_subkey()));

        // The start-up steps of `serve`.
        let master = master_key(&key_path, store).await.unwrap();
        assert_eq!(
            reseal_under_subkeys(store, &master).await.unwrap(),
            plain.len() + 1
        );
        let keys = crate::keys::Keys::load_or_create(store, &master, 200)
            .await
            .unwrap();
        assert_eq!(keys.all().len(), 3, "the old keys load; none is generated");

        let sealed = store.list_sealed().await.unwrap();
        assert!(
            sealed.iter().all(|(_, v)| v.uses_subkey()),
            "nothing is left sealed the old way"
        );
        for (at, text) in &plain {
            let (_, now) = sealed.iter().find(|(a, _)| a == at).unwrap();
            assert_eq!(
                master.open(at.purpose(), now).unwrap().as_slice(),
                text.as_slice(),
                "{at:?}"
            );
        }
        assert_eq!(reseal_under_subkeys(store, &master).await.unwrap(), 0);
        let again = master_key(&key_path, store).await.unwrap();
        let reloaded = crate::keys::Keys::load_or_create(store, &again, 300)
            .await
            .unwrap();
        assert_eq!(kids(&reloaded), kids(&keys));
    }

    #[tokio::test]
    async fn old_data_opens_and_is_resealed_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::memory::MemoryStore::new();
        old_data_opens_and_is_resealed(&store, dir.path()).await;
    }

    #[tokio::test]
    async fn old_data_opens_and_is_resealed_in_sled() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        {
            let store = crate::store::sled::SledStore::open(&db, 8 << 20).unwrap();
            old_data_opens_and_is_resealed(&store, dir.path()).await;
            store.flush().await.unwrap();
        }
        let store = crate::store::sled::SledStore::open(&db, 8 << 20).unwrap();
        assert!(
            store
                .list_sealed()
                .await
                .unwrap()
                .iter()
                .all(|(_, v)| v.uses_subkey()),
            "the new sealing is what was stored"
        );
    }
}
