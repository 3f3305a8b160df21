//! The master key and what it protects: every secret Padlock stores (TOTP seeds, Duo secret keys,
//! token signing private keys) is sealed with AES-256-GCM under a subkey of the master key, one
//! per purpose, with the purpose also as associated data, so a sealed value cannot be moved to
//! another purpose. Keyed digests of one-time values use HMAC-SHA-256 under their own subkeys.
//! Also: random tokens and the digests of client secrets.
//!
//! # Subkeys and sealed formats
//! Subkeys are derived with HKDF-SHA256 (RFC 5869) from the master key: one extract with a fixed
//! salt, one expand per purpose with the info `padlock/v2/seal/<purpose>` (AES-256-GCM keys) or
//! `padlock/v2/digest/<purpose>` (HMAC keys). Compromise of one subkey (a key used, say, in a
//! side-channel-prone place) says nothing about the others or the master key, and no two purposes
//! ever share a key.
//!
//! A [`Sealed`] value is text: format 2 is `v2:` then base64url(nonce ‖ ciphertext ‖ tag) under the
//! purpose's subkey. Format 1, written before subkeys, is the same without the marker, sealed
//! directly under the master key; `:` is not in the base64url alphabet, so the two never mix up.
//! [`MasterKey::open`] reads both; [`MasterKey::seal`] writes format 2 only; at start,
//! [`crate::bootstrap::reseal_under_subkeys`] rewrites every stored format-1 value.

use aws_lc_rs::{aead, digest, hkdf, hmac, rand};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use std::path::Path;
use zeroize::{Zeroize, Zeroizing};

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
/// Plaintext sealed into the store at first start; opening it proves the master key matches.
const KEY_CHECK_PLAINTEXT: &[u8] = b"padlock master key check v1";
/// Sealing purpose of the master-key check.
pub const KEY_CHECK_PURPOSE: &str = "key-check";
/// The marker of format-2 sealed values (sealed under a purpose's subkey).
const FORMAT_2: &str = "v2:";
/// HKDF salt: fixed and public (the master key is already uniformly random; the salt only
/// separates Padlock's derivations from any other use of the same bytes).
const HKDF_SALT: &[u8] = b"padlock master key subkeys";
/// HKDF info prefixes; the purpose follows. Neither is a prefix of the other, so no sealing
/// subkey can equal a digest subkey.
const SEAL_INFO: &[u8] = b"padlock/v2/seal/";
const DIGEST_INFO: &[u8] = b"padlock/v2/digest/";

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
    /// HKDF pseudorandom key, extracted once; each purpose's subkey is expanded from it.
    prk: hkdf::Prk,
    /// The master key itself as an AES-256-GCM key: opens format-1 values, seals nothing.
    format_1: aead::LessSafeKey,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

/// A value sealed with the master key, stored as text (see the module documentation for the
/// formats).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sealed(String);

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealed(..)")
    }
}

impl Sealed {
    /// Whether the value is sealed under its purpose's subkey (format 2); false for a value sealed
    /// directly under the master key by an earlier version, which start-up re-seals.
    #[must_use]
    pub fn uses_subkey(&self) -> bool {
        self.0.starts_with(FORMAT_2)
    }
}

/// `nonce ‖ ciphertext ‖ tag` of `plaintext` under `key`, with `purpose` as associated data.
fn seal_with(
    key: &aead::LessSafeKey,
    purpose: &str,
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::fill(&mut nonce).map_err(|_| CryptoError::Random)?;
    let mut buf = Vec::with_capacity(NONCE_LEN + plaintext.len() + aead::AES_256_GCM.tag_len());
    buf.extend_from_slice(&nonce);
    let mut body = plaintext.to_vec();
    key.seal_in_place_append_tag(
        aead::Nonce::assume_unique_for_key(nonce),
        aead::Aad::from(purpose.as_bytes()),
        &mut body,
    )
    .map_err(|_| CryptoError::Random)?;
    buf.extend_from_slice(&body);
    Ok(buf)
}

/// Opens base64url `nonce ‖ ciphertext ‖ tag` under `key` with `purpose` as associated data.
fn open_with(
    key: &aead::LessSafeKey,
    purpose: &str,
    text: &str,
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let raw = URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| CryptoError::Open)?;
    let (nonce, body) = raw.split_at_checked(NONCE_LEN).ok_or(CryptoError::Open)?;
    let nonce = aead::Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Open)?;
    let mut body = Zeroizing::new(body.to_vec());
    let len = key
        .open_in_place(nonce, aead::Aad::from(purpose.as_bytes()), &mut body)
        .map_err(|_| CryptoError::Open)?
        .len();
    body.truncate(len);
    Ok(body)
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
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, HKDF_SALT).extract(bytes.as_ref());
        MasterKey {
            bytes,
            prk,
            format_1: aead::LessSafeKey::new(unbound),
        }
    }

    /// The AES-256-GCM subkey for sealing `purpose`.
    fn seal_key(&self, purpose: &str) -> aead::LessSafeKey {
        // 32 bytes is far below HKDF-SHA256's 8160-byte limit, so expand cannot fail.
        let info = [SEAL_INFO, purpose.as_bytes()];
        let okm = self
            .prk
            .expand(&info, &aead::AES_256_GCM)
            .unwrap_or_else(|_| unreachable!("HKDF output of 32 bytes"));
        aead::LessSafeKey::new(aead::UnboundKey::from(okm))
    }

    /// Reads a key file (64 hex digits and an optional newline).
    pub fn load(path: &Path) -> Result<MasterKey, CryptoError> {
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|source| {
            CryptoError::KeyFile {
                path: path.display().to_string(),
                source,
            }
        })?);
        Self::from_hex(&text, path)
    }

    /// The key written as hex in `text` (the content of the key file `path`, named in errors).
    ///
    /// # Errors
    /// [`CryptoError::KeyFormat`] when `text` is not 64 hex digits.
    pub fn from_hex(text: &str, path: &Path) -> Result<MasterKey, CryptoError> {
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

    /// Seals `plaintext` for `purpose` (e.g. `"totp-seed"`) under the purpose's subkey
    /// (format 2). Fails only if the system random generator does.
    pub fn seal(&self, purpose: &str, plaintext: &[u8]) -> Result<Sealed, CryptoError> {
        let raw = seal_with(&self.seal_key(purpose), purpose, plaintext)?;
        Ok(Sealed(format!("{FORMAT_2}{}", URL_SAFE_NO_PAD.encode(raw))))
    }

    /// Opens a value sealed for `purpose`, in either format.
    ///
    /// # Errors
    /// [`CryptoError::Open`] when it was sealed with another key or for another purpose, or was
    /// changed.
    pub fn open(&self, purpose: &str, sealed: &Sealed) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        match sealed.0.strip_prefix(FORMAT_2) {
            Some(text) => open_with(&self.seal_key(purpose), purpose, text),
            None => open_with(&self.format_1, purpose, &sealed.0),
        }
    }

    /// A format-1 value sealed for `purpose`, re-sealed under the purpose's subkey; `None` when
    /// `sealed` already uses the subkey.
    ///
    /// # Errors
    /// As [`MasterKey::open`].
    pub fn reseal(&self, purpose: &str, sealed: &Sealed) -> Result<Option<Sealed>, CryptoError> {
        if sealed.uses_subkey() {
            return Ok(None);
        }
        let plaintext = self.open(purpose, sealed)?;
        self.seal(purpose, &plaintext).map(Some)
    }

    /// Seals the way Padlock did before subkeys (format 1), to build old data in tests.
    #[cfg(test)]
    pub(crate) fn seal_format_1(&self, purpose: &str, plaintext: &[u8]) -> Sealed {
        Sealed(URL_SAFE_NO_PAD.encode(seal_with(&self.format_1, purpose, plaintext).unwrap()))
    }

    /// A master-key check sealed the way Padlock did before subkeys, for tests.
    #[cfg(test)]
    pub(crate) fn key_check_format_1(&self) -> Sealed {
        self.seal_format_1(KEY_CHECK_PURPOSE, KEY_CHECK_PLAINTEXT)
    }

    /// The value stored at first start to recognise this key later.
    pub fn key_check(&self) -> Result<Sealed, CryptoError> {
        self.seal(KEY_CHECK_PURPOSE, KEY_CHECK_PLAINTEXT)
    }

    /// Whether `check` (from [`MasterKey::key_check`], either format) was made with this key.
    #[must_use]
    pub fn matches(&self, check: &Sealed) -> bool {
        self.open(KEY_CHECK_PURPOSE, check)
            .is_ok_and(|p| p.as_slice() == KEY_CHECK_PLAINTEXT)
    }

    /// HMAC-SHA-256 of `value` under the subkey of `purpose` (32 bytes), for digests of
    /// low-entropy one-time values (6-digit codes) and tokens derived from secrets (CSRF): a copy
    /// of the database alone does not let anyone brute-force them.
    #[must_use]
    pub fn keyed_digest(&self, purpose: &str, value: &[u8]) -> [u8; 32] {
        // 32 bytes is far below HKDF-SHA256's limit, so expand cannot fail.
        let info = [DIGEST_INFO, purpose.as_bytes()];
        let key = hmac::Key::from(
            self.prk
                .expand(&info, hmac::HMAC_SHA256)
                .unwrap_or_else(|_| unreachable!("HKDF output of 32 bytes")),
        );
        let tag = hmac::sign(&key, value);
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

    /// Format 1 as an independent implementation wrote it (AES-256-GCM under the master key
    /// itself, purpose as associated data, base64url of nonce ‖ ciphertext ‖ tag), for the key
    /// 00 01 … 1f and the nonce a0 … ab.
    const FORMAT_1_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const FORMAT_1_TOTP_SEED: &str =
        "oKGio6Slpqeoqaqr1ypPGXD9NYdbVbbhNE716EeUYCAauEr1kZ3RoidBg0wZMyi8";
    const FORMAT_1_KEY_CHECK: &str =
        "oKGio6SlpqeoqaqrlnkYQSqoaZ8PBPSnYgjgtRXVeXP60iEHvHgX2Nw6SqGN9Etoc6eZ2Vfk3A";

    fn fixture_key() -> MasterKey {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        hex::decode_to_slice(FORMAT_1_KEY, bytes.as_mut()).unwrap();
        MasterKey::from_bytes(bytes)
    }

    #[test]
    fn values_sealed_before_subkeys_still_open_and_are_resealed_under_one() {
        let k = fixture_key();
        let old_seed = Sealed(FORMAT_1_TOTP_SEED.into());
        let old_check = Sealed(FORMAT_1_KEY_CHECK.into());
        assert!(!old_seed.uses_subkey() && !old_check.uses_subkey());
        assert_eq!(
            k.open("totp-seed", &old_seed).unwrap().as_slice(),
            b"12345678901234567890"
        );
        assert!(k.matches(&old_check), "an old data directory still starts");
        assert!(
            k.open("duo-skey", &old_seed).is_err(),
            "purpose still binds"
        );

        let new_seed = k.reseal("totp-seed", &old_seed).unwrap().unwrap();
        assert!(new_seed.uses_subkey());
        assert_eq!(
            k.open("totp-seed", &new_seed).unwrap().as_slice(),
            b"12345678901234567890"
        );
        assert_eq!(k.reseal("totp-seed", &new_seed).unwrap(), None);
        assert!(matches!(
            k.reseal("duo-skey", &old_seed),
            Err(CryptoError::Open)
        ));
        // The test-only format-1 sealer writes what the fixture holds.
        let again = k.seal_format_1("totp-seed", b"x");
        assert!(!again.uses_subkey() && k.open("totp-seed", &again).is_ok());
    }

    /// A format-2 value is not sealed under the master key itself: stripped of its marker, the
    /// master key cannot open it (the subkey is really a different key).
    #[test]
    fn new_values_are_sealed_under_a_subkey_per_purpose() {
        let k = MasterKey::generate().unwrap();
        let s = k.seal("totp-seed", b"seed").unwrap();
        assert!(s.uses_subkey());
        let body = Sealed(s.0.strip_prefix(FORMAT_2).unwrap().to_owned());
        assert!(k.open("totp-seed", &body).is_err());
        assert_ne!(
            k.keyed_digest("login-code", b"123456"),
            k.keyed_digest("csrf", b"123456"),
            "digests of different purposes differ"
        );
        assert_eq!(
            k.keyed_digest("csrf", b"v"),
            k.keyed_digest("csrf", b"v"),
            "and are stable"
        );
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
