//! Token signing keys: one current key per algorithm (RS256, ES256, EdDSA), generated on first start,
//! stored sealed, parsed once into memory. Retired keys stay loaded for verification and JWKS until
//! their tokens expire.

use crate::crypto::{CryptoError, MasterKey};
use crate::domain::{SIGNING_KEY_PURPOSE, SigningAlg, SigningKeyRecord, Timestamp};
use crate::store::{Store, StoreError};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Key handling failures.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Generating a key failed.
    #[error("could not generate a {0:?} signing key")]
    Generate(SigningAlg),
    /// A stored key did not parse.
    #[error("stored signing key {0} is not a valid key")]
    Parse(String),
    /// Signing failed.
    #[error("signing failed")]
    Sign,
    /// Sealing or opening failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

enum Pair {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// A parsed signing key.
pub struct SigningKey {
    /// JWK `kid`.
    pub kid: String,
    /// Algorithm.
    pub alg: SigningAlg,
    /// Whether this is the key new tokens are signed with.
    pub current: bool,
    pair: Pair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// The public key bytes: DER `RSAPublicKey` (RSA), uncompressed point (EC), raw 32 bytes (Ed25519).
    #[must_use]
    pub fn public_key(&self) -> &[u8] {
        match &self.pair {
            Pair::Rsa(k) => k.public_key().as_ref(),
            Pair::Ec(k) => k.public_key().as_ref(),
            Pair::Ed(k) => k.public_key().as_ref(),
        }
    }

    /// RSA modulus and exponent, big-endian without leading zeros (RSA keys only).
    #[must_use]
    pub fn rsa_components(&self) -> Option<(Vec<u8>, Vec<u8>)> {
        match &self.pair {
            Pair::Rsa(k) => {
                let p = k.public_key();
                Some((
                    p.modulus().big_endian_without_leading_zero().to_vec(),
                    p.exponent().big_endian_without_leading_zero().to_vec(),
                ))
            }
            _ => None,
        }
    }

    /// Signs `message` with this key's JWS algorithm.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let rng = SystemRandom::new();
        match &self.pair {
            Pair::Rsa(k) => {
                let mut sig = vec![0; k.public_modulus_len()];
                k.sign(&signature::RSA_PKCS1_SHA256, &rng, message, &mut sig)
                    .map_err(|_| KeyError::Sign)?;
                Ok(sig)
            }
            Pair::Ec(k) => Ok(k
                .sign(&rng, message)
                .map_err(|_| KeyError::Sign)?
                .as_ref()
                .to_vec()),
            Pair::Ed(k) => Ok(k.sign(message).as_ref().to_vec()),
        }
    }
}

/// How long a retired key stays published (and accepted) after its replacement: longer than any
/// token it signed lives.
pub const RETIRED_KEY_RETENTION_SECS: u64 = 24 * 3600;

/// All loaded signing keys, and their JWKS document serialised once.
#[derive(Debug)]
pub struct Keys {
    keys: Vec<SigningKey>,
    jwks: bytes::Bytes,
}

impl Keys {
    /// The current key for `alg`.
    #[must_use]
    pub fn current(&self, alg: SigningAlg) -> Option<&SigningKey> {
        self.keys.iter().find(|k| k.alg == alg && k.current)
    }

    /// Every loaded key (current and retired), oldest first.
    #[must_use]
    pub fn all(&self) -> &[SigningKey] {
        &self.keys
    }

    /// The JWKS document (`{"keys": [...]}`), serialised once at load.
    #[must_use]
    pub fn jwks(&self) -> bytes::Bytes {
        self.jwks.clone()
    }

    /// Retires the current key of every algorithm and makes a new one current. Retired keys stay
    /// published for [`RETIRED_KEY_RETENTION_SECS`].
    pub async fn rotate(
        store: &dyn Store,
        master: &MasterKey,
        now: Timestamp,
    ) -> Result<Keys, KeyError> {
        for mut record in store.list_signing_keys().await? {
            if record.retired_at.is_none() {
                record.retired_at = Some(now);
                store.put_signing_key(&record).await?;
            }
        }
        // The new keys must sort after the retired ones even within the same second.
        Self::load_or_create(store, master, now + 1).await
    }

    /// Loads the stored keys, generating and storing a key for every algorithm that has none.
    pub async fn load_or_create(
        store: &dyn Store,
        master: &MasterKey,
        now: Timestamp,
    ) -> Result<Keys, KeyError> {
        let mut records = store.list_signing_keys().await?;
        for alg in SigningAlg::ALL {
            if !records
                .iter()
                .any(|r| r.alg == alg && r.retired_at.is_none())
            {
                let record = generate(alg, master, now)?;
                store.put_signing_key(&record).await?;
                tracing::info!(kid = %record.kid, ?alg, "generated signing key");
                records.push(record);
            }
        }
        records.sort_by(|a, b| (a.created_at, &a.kid).cmp(&(b.created_at, &b.kid)));
        records.retain(|r| {
            r.retired_at
                .is_none_or(|at| now.saturating_sub(at) < RETIRED_KEY_RETENTION_SECS)
        });
        let mut keys = Vec::with_capacity(records.len());
        for r in &records {
            // The newest unretired key of an algorithm is current.
            let current = r.retired_at.is_none()
                && !records.iter().any(|o| {
                    o.alg == r.alg && o.retired_at.is_none() && o.created_at > r.created_at
                });
            keys.push(parse(r, master, current)?);
        }
        let jwks = serde_json::to_vec(
            &serde_json::json!({ "keys": keys.iter().map(crate::jwt::jwk).collect::<Vec<_>>() }),
        )
        .map_err(|_| KeyError::Sign)?;
        Ok(Keys {
            keys,
            jwks: jwks.into(),
        })
    }
}

/// The keys in use, swapped whole on rotation; readers take a cheap `Arc` snapshot.
#[derive(Debug)]
pub struct KeyRing(std::sync::RwLock<std::sync::Arc<Keys>>);

impl KeyRing {
    /// A ring holding `keys`.
    #[must_use]
    pub fn new(keys: Keys) -> KeyRing {
        KeyRing(std::sync::RwLock::new(std::sync::Arc::new(keys)))
    }

    /// The current snapshot.
    #[must_use]
    pub fn get(&self) -> std::sync::Arc<Keys> {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Replaces the keys (after a rotation).
    pub fn replace(&self, keys: Keys) {
        *self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = std::sync::Arc::new(keys);
    }
}

fn generate(
    alg: SigningAlg,
    master: &MasterKey,
    now: Timestamp,
) -> Result<SigningKeyRecord, KeyError> {
    let fail = |_| KeyError::Generate(alg);
    let pkcs8: Vec<u8> = match alg {
        SigningAlg::RS256 => RsaKeyPair::generate(KeySize::Rsa2048)
            .map_err(fail)?
            .as_der()
            .map_err(fail)?
            .as_ref()
            .to_vec(),
        SigningAlg::ES256 => EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)
            .map_err(fail)?
            .to_pkcs8v1()
            .map_err(fail)?
            .as_ref()
            .to_vec(),
        SigningAlg::EdDSA => Ed25519KeyPair::generate()
            .map_err(fail)?
            .to_pkcs8v1()
            .map_err(fail)?
            .as_ref()
            .to_vec(),
    };
    let pkcs8 = zeroize::Zeroizing::new(pkcs8);
    let sealed = master.seal(SIGNING_KEY_PURPOSE, &pkcs8)?;
    let kid = URL_SAFE_NO_PAD.encode(&crate::crypto::sha256(&pkcs8)[..12]);
    Ok(SigningKeyRecord {
        kid,
        alg,
        pkcs8: sealed,
        created_at: now,
        retired_at: None,
    })
}

fn parse(r: &SigningKeyRecord, master: &MasterKey, current: bool) -> Result<SigningKey, KeyError> {
    let der = master.open(SIGNING_KEY_PURPOSE, &r.pkcs8)?;
    let bad = |_| KeyError::Parse(r.kid.clone());
    let pair = match r.alg {
        SigningAlg::RS256 => Pair::Rsa(RsaKeyPair::from_pkcs8(&der).map_err(bad)?),
        SigningAlg::ES256 => Pair::Ec(
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &der)
                .map_err(bad)?,
        ),
        SigningAlg::EdDSA => Pair::Ed(Ed25519KeyPair::from_pkcs8(&der).map_err(bad)?),
    };
    Ok(SigningKey {
        kid: r.kid.clone(),
        alg: r.alg,
        current,
        pair,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_FIXED, ED25519, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey,
    };

    #[tokio::test]
    async fn keys_are_created_once_and_sign_verifiably() {
        let store = MemoryStore::new();
        let master = MasterKey::generate().unwrap();
        let keys = Keys::load_or_create(&store, &master, 100).await.unwrap();
        assert_eq!(keys.all().len(), 3);
        let again = Keys::load_or_create(&store, &master, 200).await.unwrap();
        let kids = |k: &Keys| k.all().iter().map(|k| k.kid.clone()).collect::<Vec<_>>();
        assert_eq!(
            kids(&keys),
            kids(&again),
            "a restart loads, it does not regenerate"
        );

        for (alg, verify_alg) in [
            (
                SigningAlg::RS256,
                &RSA_PKCS1_2048_8192_SHA256 as &dyn signature::VerificationAlgorithm,
            ),
            (SigningAlg::ES256, &ECDSA_P256_SHA256_FIXED),
            (SigningAlg::EdDSA, &ED25519),
        ] {
            let k = again.current(alg).unwrap();
            let sig = k.sign(b"header.payload").unwrap();
            UnparsedPublicKey::new(verify_alg, k.public_key())
                .verify(b"header.payload", &sig)
                .unwrap();
            assert!(
                UnparsedPublicKey::new(verify_alg, k.public_key())
                    .verify(b"header.other", &sig)
                    .is_err()
            );
        }
    }

    #[tokio::test]
    async fn wrong_master_key_cannot_load_keys() {
        let store = MemoryStore::new();
        Keys::load_or_create(&store, &MasterKey::generate().unwrap(), 1)
            .await
            .unwrap();
        let err = Keys::load_or_create(&store, &MasterKey::generate().unwrap(), 2)
            .await
            .unwrap_err();
        assert!(matches!(err, KeyError::Crypto(CryptoError::Open)));
    }

    #[tokio::test]
    async fn rotation_keeps_the_previous_key_published() {
        let store = MemoryStore::new();
        let master = MasterKey::generate().unwrap();
        let before = Keys::load_or_create(&store, &master, 1000).await.unwrap();
        let old = before.current(SigningAlg::ES256).unwrap().kid.clone();
        let after = Keys::rotate(&store, &master, 2000).await.unwrap();
        let new = after.current(SigningAlg::ES256).unwrap().kid.clone();
        assert_ne!(old, new);
        assert_eq!(after.all().len(), 6);
        let jwks: serde_json::Value = serde_json::from_slice(&after.jwks()).unwrap();
        let kids: Vec<&str> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap())
            .collect();
        assert!(kids.contains(&old.as_str()) && kids.contains(&new.as_str()));
        let later = Keys::load_or_create(&store, &master, 2000 + RETIRED_KEY_RETENTION_SECS)
            .await
            .unwrap();
        assert_eq!(
            later.all().len(),
            3,
            "retired keys leave after the retention period"
        );
        assert!(later.all().iter().all(|k| k.current));
    }

    #[tokio::test]
    async fn newest_unretired_key_is_current() {
        let store = MemoryStore::new();
        let master = MasterKey::generate().unwrap();
        let first = Keys::load_or_create(&store, &master, 1).await.unwrap();
        let newer = generate(SigningAlg::ES256, &master, 50).unwrap();
        store.put_signing_key(&newer).await.unwrap();
        let keys = Keys::load_or_create(&store, &master, 60).await.unwrap();
        assert_eq!(keys.current(SigningAlg::ES256).unwrap().kid, newer.kid);
        assert!(
            keys.all()
                .iter()
                .any(|k| k.kid == first.current(SigningAlg::ES256).unwrap().kid && !k.current)
        );
    }
}
