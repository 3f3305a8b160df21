//! Start-up of a data directory: lock it, find or create the master key, prove it matches the
//! database, create signing keys, the operator credential and (until the first company exists) the
//! one-time `/setup` token. Every failure is a [`StartError`] that reads well as one line.

use crate::crypto::{CryptoError, MasterKey, random_token, sha256};
use crate::domain::{Client, ClientKind};
use crate::keys::KeyError;
use crate::secret::ClientId;
use crate::store::{Store, StoreError};
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

impl DataDir {
    /// Creates (mode 0700) and locks the directory.
    pub fn open(root: &Path) -> Result<DataDir, StartError> {
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
        let lock_path = root.join("padlock.lock");
        let mut lock = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
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
        Ok(DataDir {
            root: root.to_owned(),
            _lock: lock,
        })
    }

    /// The directory.
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
        crate::fsutil::check_secret_file(path)
            .map_err(|e| StartError::MasterKey(format!("master_key_file: {e}")))?;
        MasterKey::load(path).map_err(|e| match e {
            CryptoError::KeyFile { path, source } => {
                StartError::MasterKey(format!("cannot read {path}: {source}"))
            }
            other => StartError::MasterKey(other.to_string()),
        })?
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

/// The operator credential file's content.
#[derive(Serialize)]
struct OperatorFile<'a> {
    issuer: &'a str,
    client_id: &'a str,
    client_secret: &'a str,
}

/// The scope of the operator credential.
pub const OPERATOR_SCOPE: &str = "padlock.admin";

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

/// While no company exists, replaces the `/setup` token and returns the link to print.
pub async fn setup_link(store: &dyn Store, issuer: &str) -> Result<Option<String>, StartError> {
    if !store.list_tenants().await?.is_empty() {
        return Ok(None);
    }
    let token = random_token(32);
    store.set_setup_token(&sha256(token.as_bytes())).await?;
    Ok(Some(format!("{issuer}/setup?token={token}")))
}
