//! Password hashing with argon2id, off the async runtime and bounded by a semaphore sized to the
//! cores. Verification of an unknown user runs against a dummy hash so that it takes the same time
//! as a wrong password (no user enumeration by timing).

use crate::secret::Password;
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Shortest password Padlock accepts (NIST SP 800-63B asks for at least 8; admins get 12).
pub const MIN_PASSWORD_LEN: usize = 12;
/// Longest password Padlock accepts (bounds the hashing work an attacker can ask for).
pub const MAX_PASSWORD_LEN: usize = 1024;

/// Why `password` cannot be a new password, if it cannot: fewer than [`MIN_PASSWORD_LEN`]
/// characters, or more than [`MAX_PASSWORD_LEN`] bytes.
#[must_use]
pub fn refusal(password: &Password) -> Option<String> {
    let text = password.secret();
    (text.chars().count() < MIN_PASSWORD_LEN || text.len() > MAX_PASSWORD_LEN)
        .then(|| format!("must be {MIN_PASSWORD_LEN} to {MAX_PASSWORD_LEN} characters"))
}

/// Password hashing failures.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// Hashing failed.
    #[error("password hashing failed")]
    Hash,
    /// The hashing task was cancelled.
    #[error("password hashing was interrupted")]
    Interrupted,
}

/// argon2id behind a semaphore.
#[derive(Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
    dummy: Arc<str>,
    verifications: Arc<std::sync::atomic::AtomicU64>,
}

impl Passwords {
    /// A hasher allowing `parallel` concurrent hashes.
    pub fn new(parallel: usize) -> Result<Passwords, PasswordError> {
        let dummy = hash_blocking(&Password::new("padlock-dummy-password".into()))?;
        Ok(Passwords {
            permits: Arc::new(Semaphore::new(parallel.max(1))),
            dummy: dummy.into(),
            verifications: Arc::default(),
        })
    }

    /// Hashes a new password (argon2id, random salt) into a PHC string.
    pub async fn hash(&self, password: Password) -> Result<String, PasswordError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| PasswordError::Interrupted)?;
        tokio::task::spawn_blocking(move || hash_blocking(&password))
            .await
            .map_err(|_| PasswordError::Interrupted)?
    }

    /// Verifies `password` against `phc`. With `None` (unknown user) or a stored value that is
    /// not a hash (API accounts have none) it does the same argon2 work against a dummy hash and
    /// fails: every refusal costs exactly one verification.
    pub async fn verify(&self, phc: Option<&str>, password: Password) -> bool {
        let Ok(_permit) = self.permits.acquire().await else {
            return false;
        };
        let stored = phc.filter(|p| PasswordHash::new(p).is_ok());
        let usable = stored.is_some();
        let phc = stored.map_or_else(|| self.dummy.to_string(), str::to_owned);
        let counter = self.verifications.clone();
        let ok = tokio::task::spawn_blocking(move || {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            PasswordHash::new(&phc).is_ok_and(|h| {
                Argon2::default()
                    .verify_password(password.secret().as_bytes(), &h)
                    .is_ok()
            })
        })
        .await
        .unwrap_or(false);
        ok && usable
    }

    /// How many argon2 verifications this hasher ran (for tests and metrics).
    #[must_use]
    pub fn verifications(&self) -> u64 {
        self.verifications
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

fn hash_blocking(password: &Password) -> Result<String, PasswordError> {
    let mut salt = [0u8; 16];
    aws_lc_rs::rand::fill(&mut salt).map_err(|_| PasswordError::Hash)?;
    let salt = SaltString::encode_b64(&salt).map_err(|_| PasswordError::Hash)?;
    Ok(Argon2::default()
        .hash_password(password.secret().as_bytes(), &salt)
        .map_err(|_| PasswordError::Hash)?
        .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_and_verify() {
        let p = Passwords::new(2).unwrap();
        let phc = p
            .hash(Password::new("correct horse battery".into()))
            .await
            .unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(
            p.verify(Some(&phc), Password::new("correct horse battery".into()))
                .await
        );
        assert!(
            !p.verify(Some(&phc), Password::new("wrong horse battery".into()))
                .await
        );
        assert!(
            !p.verify(None, Password::new("padlock-dummy-password".into()))
                .await,
            "unknown user never passes"
        );
        assert!(!p.verify(Some("not a phc"), Password::new("x".into())).await);
    }
}
