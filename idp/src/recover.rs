//! `padlock recover-admin` (DESIGN.md §6): with the server stopped, sets a new password for a
//! person holding `company.manage` — the way back in when a company's administrators have lost
//! theirs. It opens the data directory itself (so it refuses while `padlock serve` holds it),
//! ends the administrator's sessions and refresh tokens, clears their password throttle, and
//! writes `user.password.recover` to the company's audit trail. Their second factor stays: they
//! sign in with the new password and the company's second factor as usual.

use crate::bootstrap::{DataDir, StartError};
use crate::crypto::random_token;
use crate::domain::{AuditEvent, Outcome, User};
use crate::password::Passwords;
use crate::secret::Password;
use crate::store::Store;
use crate::store::sled::SledStore;
use std::path::Path;

/// Why a recovery did not happen (each reads well as one line).
#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    /// The data directory cannot be opened (another process holds it, or it is unusable).
    #[error(transparent)]
    DataDir(#[from] StartError),
    /// No user has that email.
    #[error("no user has the email {0}")]
    NoSuchUser(String),
    /// The user does not hold `company.manage`, is disabled, or is an API account.
    #[error(
        "{0} is not an enabled company administrator (a person holding company.manage): recover-admin sets only their passwords"
    )]
    NotAdmin(String),
    /// The given password is refused.
    #[error("the new password {0}")]
    WeakPassword(String),
    /// Storage or hashing failed.
    #[error("{0}")]
    Failed(String),
}

/// What a recovery did.
pub struct Recovered {
    /// The administrator.
    pub email: String,
    /// The company's name.
    pub company: String,
    /// The generated password, when none was given (to show once).
    pub generated: Option<String>,
}

fn failed(e: impl std::fmt::Display) -> RecoverError {
    RecoverError::Failed(e.to_string())
}

/// Sets the password of the administrator `email` in the sled store under `data_dir`: `password`
/// when given (checked like any new password), else a generated one (144 bits, 24 characters,
/// returned to show once). `now` is the time of the audit event (Unix seconds).
///
/// # Errors
/// [`RecoverError`]: the directory is held or unusable, the user is unknown or not an
/// administrator, the password is refused, or storage fails. Nothing is written on error.
pub async fn recover_admin(
    data_dir: &Path,
    email: &str,
    password: Option<Password>,
    now: u64,
) -> Result<Recovered, RecoverError> {
    let dir = DataDir::open(data_dir)?;
    let store = SledStore::open(&dir.db_path(), 16 << 20).map_err(failed)?;
    let read = store
        .find_user_by_email(email)
        .await
        .map_err(failed)?
        .ok_or_else(|| RecoverError::NoSuchUser(email.to_owned()))?;
    let tenant = store
        .get_tenant(&read.tenant)
        .await
        .map_err(failed)?
        .ok_or_else(|| RecoverError::NoSuchUser(email.to_owned()))?;
    if !tenant.is_manager(&read) {
        return Err(RecoverError::NotAdmin(read.email));
    }
    let (password, generated) = match password {
        Some(p) => {
            if let Some(why) = crate::password::refusal(&p) {
                return Err(RecoverError::WeakPassword(why.to_string()));
            }
            (p, None)
        }
        None => {
            let text = random_token(18);
            (Password::new(text.clone()), Some(text))
        }
    };
    let passwords = Passwords::new(1).map_err(failed)?;
    let password_hash = passwords.hash(password).await.map_err(failed)?;
    let mut user = User {
        password_hash,
        ..read.clone()
    };
    user.end_sessions();
    if !store.swap_user(&read, &user).await.map_err(failed)? {
        return Err(failed("the user changed while this ran; run it again"));
    }
    store
        .reset_password_failures(&user.email)
        .await
        .map_err(failed)?;
    store
        .append_audit(&AuditEvent {
            at: now,
            tenant: Some(tenant.id.clone()),
            actor: "recover-admin".into(),
            action: "user.password.recover".into(),
            target: user.email.clone(),
            outcome: Outcome::Success,
            source_ip: None,
            pam: None,
        })
        .await
        .map_err(failed)?;
    store.flush().await.map_err(failed)?;
    Ok(Recovered {
        email: user.email,
        company: tenant.name,
        generated,
    })
}
