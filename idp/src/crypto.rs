//! The master key and what it protects: every secret at rest (TOTP seeds, Duo secret keys, signing
//! private keys, delivery credentials) is sealed with AES-256-GCM under the master key, with the
//! record's purpose as associated data so a sealed value cannot be moved to another purpose.
//! Also: random tokens and the digests of client secrets and one-time values.

use aws_lc_rs::{aead, digest, hmac, rand};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use std::path::Path;
use zeroize::{Zeroize, Zeroizing};

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
/// Plaintext sealed into the store at first start; opening it proves the master key matches.
const KEY_CHECK_PLAINTEXT: &[u8] = b"padlock master key check v1";

/// Errors of the master key and sealed values.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The master key file could not be read or written.
    #[error("master key file {path}: {source}")]
    KeyFile {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The master key file does not hold 64 hex digits.
    #[error("master key file {0} is not a 256-bit hex key")]
    KeyFormat(String),
    /// A sealed value did not open: wrong master key or tampered data.
    #[error("a sealed value could not be opened (wrong master key or corrupted data)")]
    Open,
    /// The platform random generator failed.
    #[error("the system random number generator failed")]
    Random,
}

/// The 256-bit master key. Never printed, zeroized on drop.
pub struct MasterKey {
    bytes: Zeroizing<[u8; KEY_LEN]>,
    key: aead::LessSafeKey,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

/// A value sealed with the master key: nonce and ciphertext+tag, stored as base64url text.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sealed(String);

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealed(..)")
    }
}

impl MasterKey {
    /// A new random key.
    pub fn generate() -> Result<MasterKey, CryptoError> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        rand::fill(bytes.as_mut()).map_err(|_| CryptoError::Random)?;
        Ok(Self::from_bytes(bytes))
    }

    fn from_bytes(bytes: Zeroizing<[u8; KEY_LEN]>) -> MasterKey {
        // AES-256 accepts any 32-byte key, so this cannot fail.
        let unbound = aead::UnboundKey::new(&aead::AES_256_GCM, bytes.as_ref())
            .unwrap_or_else(|_| unreachable!("32-byte AES-256-GCM key"));
        MasterKey {
            bytes,
            key: aead::LessSafeKey::new(unbound),
        }
    }

    /// Reads a key file (64 hex digits and an optional newline).
    pub fn load(path: &Path) -> Result<MasterKey, CryptoError> {
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|source| {
            CryptoError::KeyFile {
                path: path.display().to_string(),
                source,
            }
        })?);
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        hex::decode_to_slice(text.trim(), bytes.as_mut())
            .map_err(|_| CryptoError::KeyFormat(path.display().to_string()))?;
        Ok(Self::from_bytes(bytes))
    }

    /// Writes the key to a new file readable by the owner only (fails if the file exists).
    pub fn save_new(&self, path: &Path) -> Result<(), CryptoError> {
        let mut text = hex::encode(self.bytes.as_ref());
        text.push('\n');
        let result = crate::fsutil::write_new_private(path, text.as_bytes());
        text.zeroize();
        result.map_err(|source| CryptoError::KeyFile {
            path: path.display().to_string(),
            source,
        })
    }

    /// Seals `plaintext` for `purpose` (e.g. `"totp-seed"`).
    pub fn seal(&self, purpose: &str, plaintext: &[u8]) -> Result<Sealed, CryptoError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce).map_err(|_| CryptoError::Random)?;
        let mut buf = Vec::with_capacity(NONCE_LEN + plaintext.len() + aead::AES_256_GCM.tag_len());
        buf.extend_from_slice(&nonce);
        let mut body = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(purpose.as_bytes()),
                &mut body,
            )
            .map_err(|_| CryptoError::Random)?;
        buf.extend_from_slice(&body);
        Ok(Sealed(URL_SAFE_NO_PAD.encode(buf)))
    }

    /// Opens a value sealed for `purpose`.
    pub fn open(&self, purpose: &str, sealed: &Sealed) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let raw = URL_SAFE_NO_PAD
            .decode(&sealed.0)
            .map_err(|_| CryptoError::Open)?;
        let (nonce, body) = raw.split_at_checked(NONCE_LEN).ok_or(CryptoError::Open)?;
        let nonce = aead::Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Open)?;
        let mut body = Zeroizing::new(body.to_vec());
        let len = self
            .key
            .open_in_place(nonce, aead::Aad::from(purpose.as_bytes()), &mut body)
            .map_err(|_| CryptoError::Open)?
            .len();
        body.truncate(len);
        Ok(body)
    }

    /// The value stored at first start to recognise this key later.
    pub fn key_check(&self) -> Result<Sealed, CryptoError> {
        self.seal("key-check", KEY_CHECK_PLAINTEXT)
    }

    /// Whether `check` (from [`MasterKey::key_check`]) was made with this key.
    #[must_use]
    pub fn matches(&self, check: &Sealed) -> bool {
        self.open("key-check", check)
            .is_ok_and(|p| p.as_slice() == KEY_CHECK_PLAINTEXT)
    }

    /// HMAC-SHA-256 under a subkey of the master key, for digests of low-entropy one-time values
    /// (6-digit codes): a copy of the database alone does not let anyone brute-force them.
    #[must_use]
    pub fn keyed_digest(&self, purpose: &str, value: &[u8]) -> [u8; 32] {
        let key = hmac::Key::new(hmac::HMAC_SHA256, self.bytes.as_ref());
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(purpose.as_bytes());
        ctx.update(&[0]);
        ctx.update(value);
        let tag = ctx.sign();
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }
}

/// `n` random bytes as base64url text (`n` = 32 gives a 256-bit secret).
#[must_use]
pub fn random_token(n: usize) -> String {
    let mut bytes = Zeroizing::new(vec![0u8; n]);
    // The system RNG failing means the machine cannot do cryptography at all.
    rand::fill(&mut bytes).unwrap_or_else(|_| panic!("system random number generator failed"));
    URL_SAFE_NO_PAD.encode(bytes.as_slice())
}

/// SHA-256 of a high-entropy secret (client secrets, tokens): a check costs nanoseconds, and a
/// 256-bit secret needs no slow hash.
#[must_use]
pub fn sha256(value: &[u8]) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, value);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_purpose_binding() {
        let k = MasterKey::generate().unwrap();
        let s = k.seal("totp-seed", b"12345678901234567890").unwrap();
        assert_eq!(
            k.open("totp-seed", &s).unwrap().as_slice(),
            b"12345678901234567890"
        );
        assert!(matches!(k.open("duo-skey", &s), Err(CryptoError::Open)));
        let other = MasterKey::generate().unwrap();
        assert!(matches!(
            other.open("totp-seed", &s),
            Err(CryptoError::Open)
        ));
        assert!(!s.0.contains("1234567890"));
    }

    #[test]
    fn key_check_detects_wrong_key() {
        let k = MasterKey::generate().unwrap();
        let check = k.key_check().unwrap();
        assert!(k.matches(&check));
        assert!(!MasterKey::generate().unwrap().matches(&check));
    }

    #[test]
    fn key_file_round_trip_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let k = MasterKey::generate().unwrap();
        k.save_new(&path).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let again = MasterKey::load(&path).unwrap();
        assert!(again.matches(&k.key_check().unwrap()));
        assert!(
            k.save_new(&path).is_err(),
            "an existing key is never overwritten"
        );
        std::fs::write(&path, "not hex").unwrap();
        assert!(matches!(
            MasterKey::load(&path),
            Err(CryptoError::KeyFormat(_))
        ));
        assert!(!format!("{k:?}").contains(&hex::encode(k.bytes.as_ref())));
    }

    #[test]
    fn tampered_sealed_value_does_not_open() {
        let k = MasterKey::generate().unwrap();
        let Sealed(mut text) = k.seal("x", b"secret").unwrap();
        let last = text.pop().unwrap();
        text.push(if last == 'A' { 'B' } else { 'A' });
        assert!(k.open("x", &Sealed(text)).is_err());
        assert!(k.open("x", &Sealed("!!".into())).is_err());
        assert!(k.open("x", &Sealed(String::new())).is_err());
    }
}
