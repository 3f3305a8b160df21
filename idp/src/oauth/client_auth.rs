//! Client authentication at `/token`, `/introspect` and `/revoke`: `client_secret_basic` or
//! `client_secret_post`, never both. Secrets are 256-bit and stored as SHA-256, so a check costs
//! nanoseconds; an unknown client does the same work and gets the same answer as a wrong secret.

use super::error::OAuthError;
use crate::crypto::sha256;
use crate::domain::Client;
use crate::secret::{ClientId, ClientSecret};
use crate::state::AppState;
use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use subtle::ConstantTimeEq;

/// How the client identified itself.
pub enum Authenticated {
    /// Proved its secret.
    Confidential(Client),
    /// A public client naming itself (allowed only where PKCE protects the grant).
    Public(Client),
}

/// Credentials found in the request.
struct Presented {
    id: String,
    secret: Option<ClientSecret>,
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn from_basic(headers: &HeaderMap) -> Result<Option<Presented>, OAuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| OAuthError::invalid_client())?;
    let Some(encoded) = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))
    else {
        return Ok(None);
    };
    let decoded = STANDARD
        .decode(encoded.trim())
        .map_err(|_| OAuthError::invalid_client())?;
    let decoded = String::from_utf8(decoded).map_err(|_| OAuthError::invalid_client())?;
    let (id, secret) = decoded
        .split_once(':')
        .ok_or_else(OAuthError::invalid_client)?;
    // RFC 6749 §2.3.1: both parts are form-urlencoded before Base64.
    let id = percent_decode(id).ok_or_else(OAuthError::invalid_client)?;
    let secret = percent_decode(secret).ok_or_else(OAuthError::invalid_client)?;
    Ok(Some(Presented {
        id,
        secret: Some(ClientSecret::new(secret)),
    }))
}

/// Authenticates the client of a request. `form_id`/`form_secret` are the body's `client_id` and
/// `client_secret`.
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    form_id: Option<&str>,
    form_secret: Option<&ClientSecret>,
) -> Result<Authenticated, OAuthError> {
    let basic = from_basic(headers)?;
    let presented = match (basic, form_id) {
        (Some(_), Some(_)) if form_secret.is_some() => {
            return Err(OAuthError::invalid_request(
                "use one client authentication method, not both",
            ));
        }
        (Some(b), Some(id)) if id != b.id => {
            return Err(OAuthError::invalid_request(
                "client_id does not match the Authorization header",
            ));
        }
        (Some(b), _) => b,
        (None, Some(id)) => Presented {
            id: id.to_owned(),
            secret: form_secret.cloned(),
        },
        (None, None) => return Err(OAuthError::invalid_client()),
    };
    let client = state
        .store
        .get_client(&ClientId::from_string(presented.id))
        .await?;
    let stored = client
        .as_ref()
        .and_then(|c| c.secret_sha256.as_deref())
        .and_then(|h| hex::decode(h).ok());
    match (client, presented.secret) {
        (Some(client), None) if client.secret_sha256.is_none() => Ok(Authenticated::Public(client)),
        (client, Some(secret)) => {
            let digest = sha256(secret.secret().as_bytes());
            // Unknown client: compare against a digest that cannot match, doing the same work.
            let expected = stored.unwrap_or_else(|| vec![0xff; 32]);
            let ok: bool = digest.as_slice().ct_eq(expected.as_slice()).into();
            match client {
                Some(client) if ok => Ok(Authenticated::Confidential(client)),
                _ => Err(OAuthError::invalid_client()),
            }
        }
        (_, None) => Err(OAuthError::invalid_client()),
    }
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn form_urlencoded_credentials() {
        assert_eq!(percent_decode("a%3Ab+c").as_deref(), Some("a:b c"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%4"), None);
    }
}
