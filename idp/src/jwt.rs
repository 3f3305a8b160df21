//! Compact JWS for Padlock's own tokens: signing with the in-memory keys and verifying tokens
//! Padlock issued (access tokens presented to `/userinfo`, `/introspect`, `/api/v1`). Only the
//! algorithms Padlock signs with are accepted, and the algorithm must match the key: `alg: none`
//! and algorithm confusion are refused.

use crate::domain::SigningAlg;
use crate::keys::{KeyError, Keys, SigningKey};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ED25519, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey,
    VerificationAlgorithm,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// JWT `typ` of access tokens (RFC 9068).
pub const TYP_ACCESS: &str = "at+jwt";
/// JWT `typ` of ID tokens.
pub const TYP_JWT: &str = "JWT";

/// Why a presented token is not acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not three base64url parts of JSON.
    #[error("malformed token")]
    Malformed,
    /// Unknown key, wrong algorithm or bad signature.
    #[error("invalid signature")]
    Signature,
    /// Wrong `typ`.
    #[error("wrong token type")]
    Type,
}

#[derive(Serialize)]
struct Header<'a> {
    alg: SigningAlg,
    kid: &'a str,
    typ: &'a str,
}

/// Signs `claims` with `key` as a compact JWS.
pub fn sign<C: Serialize>(key: &SigningKey, typ: &str, claims: &C) -> Result<String, KeyError> {
    let header = serde_json::to_vec(&Header {
        alg: key.alg,
        kid: &key.kid,
        typ,
    })
    .map_err(|_| KeyError::Sign)?;
    let payload = serde_json::to_vec(claims).map_err(|_| KeyError::Sign)?;
    let mut out = String::with_capacity(header.len() * 2 + payload.len() * 2 + 350);
    URL_SAFE_NO_PAD.encode_string(header, &mut out);
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(payload, &mut out);
    let sig = key.sign(out.as_bytes())?;
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(sig, &mut out);
    Ok(out)
}

fn verification_alg(alg: SigningAlg) -> &'static dyn VerificationAlgorithm {
    match alg {
        SigningAlg::RS256 => &RSA_PKCS1_2048_8192_SHA256,
        SigningAlg::ES256 => &ECDSA_P256_SHA256_FIXED,
        SigningAlg::EdDSA => &ED25519,
    }
}

#[derive(serde::Deserialize)]
struct PresentedHeader {
    alg: String,
    kid: Option<String>,
    typ: Option<String>,
}

/// Verifies a token Padlock signed and returns its claims. Expiry and audience are the caller's.
pub fn verify<C: DeserializeOwned>(keys: &Keys, token: &str, typ: &str) -> Result<C, JwtError> {
    let mut parts = token.splitn(3, '.');
    let (Some(h), Some(p), Some(s)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(JwtError::Malformed);
    };
    let header: PresentedHeader =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).map_err(|_| JwtError::Malformed)?)
            .map_err(|_| JwtError::Malformed)?;
    let key = keys
        .all()
        .iter()
        .find(|k| Some(k.kid.as_str()) == header.kid.as_deref())
        .ok_or(JwtError::Signature)?;
    if serde_json::to_value(key.alg)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .as_deref()
        != Some(header.alg.as_str())
    {
        return Err(JwtError::Signature);
    }
    if header
        .typ
        .as_deref()
        .is_some_and(|t| !t.eq_ignore_ascii_case(typ))
        || (header.typ.is_none() && typ != TYP_JWT)
    {
        return Err(JwtError::Type);
    }
    let sig = URL_SAFE_NO_PAD.decode(s).map_err(|_| JwtError::Malformed)?;
    let signed = &token[..h.len() + 1 + p.len()];
    UnparsedPublicKey::new(verification_alg(key.alg), key.public_key())
        .verify(signed.as_bytes(), &sig)
        .map_err(|_| JwtError::Signature)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).map_err(|_| JwtError::Malformed)?)
        .map_err(|_| JwtError::Malformed)
}

/// The public JWK of a key (RFC 7517/7518/8037).
#[must_use]
pub fn jwk(key: &SigningKey) -> serde_json::Value {
    let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
    match key.alg {
        SigningAlg::RS256 => {
            let (n, e) = key.rsa_components().unwrap_or_default();
            serde_json::json!({ "kty": "RSA", "use": "sig", "alg": "RS256", "kid": key.kid, "n": b64(&n), "e": b64(&e) })
        }
        SigningAlg::ES256 => {
            // Uncompressed point: 0x04 || x || y.
            let point = key.public_key();
            let (x, y) = point
                .get(1..)
                .map_or((&[][..], &[][..]), |xy| xy.split_at(xy.len() / 2));
            serde_json::json!({ "kty": "EC", "use": "sig", "alg": "ES256", "kid": key.kid, "crv": "P-256", "x": b64(x), "y": b64(y) })
        }
        SigningAlg::EdDSA => {
            serde_json::json!({ "kty": "OKP", "use": "sig", "alg": "EdDSA", "kid": key.kid, "crv": "Ed25519", "x": b64(key.public_key()) })
        }
    }
}

/// `at_hash`/`c_hash`: base64url of the left half of SHA-256 (RS256, ES256) or SHA-512 (EdDSA) of `value`.
#[must_use]
pub fn half_hash(alg: SigningAlg, value: &str) -> String {
    use aws_lc_rs::digest;
    let d = match alg {
        SigningAlg::RS256 | SigningAlg::ES256 => digest::digest(&digest::SHA256, value.as_bytes()),
        SigningAlg::EdDSA => digest::digest(&digest::SHA512, value.as_bytes()),
    };
    let bytes = d.as_ref();
    URL_SAFE_NO_PAD.encode(bytes.get(..bytes.len() / 2).unwrap_or(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::MasterKey;
    use crate::store::memory::MemoryStore;

    #[tokio::test]
    async fn sign_verify_and_refuse_tampering() {
        let keys = Keys::load_or_create(&MemoryStore::new(), &MasterKey::generate().unwrap(), 1)
            .await
            .unwrap();
        for alg in SigningAlg::ALL {
            let key = keys.current(alg).unwrap();
            let t = sign(key, TYP_ACCESS, &serde_json::json!({"sub": "u1"})).unwrap();
            let claims: serde_json::Value = verify(&keys, &t, TYP_ACCESS).unwrap();
            assert_eq!(claims["sub"], "u1");
            assert_eq!(
                verify::<serde_json::Value>(&keys, &t, TYP_JWT).unwrap_err(),
                JwtError::Type
            );
            let mut parts: Vec<&str> = t.split('.').collect();
            let forged = URL_SAFE_NO_PAD.encode(br#"{"sub":"admin"}"#);
            parts[1] = &forged;
            assert_eq!(
                verify::<serde_json::Value>(&keys, &parts.join("."), TYP_ACCESS).unwrap_err(),
                JwtError::Signature
            );
        }
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"at+jwt"}"#),
            URL_SAFE_NO_PAD.encode(br#"{"sub":"x"}"#)
        );
        assert_eq!(
            verify::<serde_json::Value>(&keys, &none, TYP_ACCESS).unwrap_err(),
            JwtError::Signature
        );
        // An ES256 kid with a header claiming RS256 is refused (algorithm confusion).
        let es = keys.current(SigningAlg::ES256).unwrap();
        let t = sign(es, TYP_ACCESS, &serde_json::json!({})).unwrap();
        let (_, rest) = t.split_once('.').unwrap();
        let header = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"alg":"RS256","kid":"{}","typ":"at+jwt"}}"#,
            es.kid
        ));
        assert_eq!(
            verify::<serde_json::Value>(&keys, &format!("{header}.{rest}"), TYP_ACCESS)
                .unwrap_err(),
            JwtError::Signature
        );
        assert_eq!(
            verify::<serde_json::Value>(&keys, "a.b", TYP_ACCESS).unwrap_err(),
            JwtError::Malformed
        );
    }

    #[test]
    fn at_hash_matches_the_openid_example() {
        // OpenID Connect Core A.3: access_token "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y" -> at_hash "77QmUPtjPfzWtF2AnpK9RQ".
        assert_eq!(
            half_hash(
                SigningAlg::RS256,
                "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"
            ),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
    }
}
