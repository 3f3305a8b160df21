//! The tokens Padlock issues: JWT access tokens (RFC 9068) and the token endpoint's response body.

use super::error::OAuthError;
use crate::jwt::{self, TYP_ACCESS};
use crate::state::AppState;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Json, Response};
use serde::{Deserialize, Serialize};

/// Claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer.
    pub iss: String,
    /// User id, or the client id for the operator credential.
    pub sub: String,
    /// Audience: Padlock itself (userinfo, the admin API).
    pub aud: String,
    /// Expiry.
    pub exp: u64,
    /// Issued at.
    pub iat: u64,
    /// Token id.
    pub jti: String,
    /// The client it was issued to.
    pub client_id: String,
    /// Granted scopes, space-separated.
    pub scope: String,
    /// The user's company.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// The user's roles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// When the user authenticated (interactive logins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<u64>,
    /// Methods used (interactive logins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amr: Option<Vec<String>>,
    /// Context class (interactive logins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    /// The grant (refresh-token family) the token belongs to; revoking the grant revokes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<String>,
}

impl AccessClaims {
    /// Whether the token grants `scope`.
    #[must_use]
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope.split(' ').any(|s| s == scope)
    }
}

/// Signs an access token with the configured algorithm.
pub fn sign_access(state: &AppState, claims: &AccessClaims) -> Result<String, OAuthError> {
    let keys = state.keys.get();
    let key = keys
        .current(state.tokens.access_token_alg)
        .ok_or_else(|| OAuthError::server_error("no current access-token key"))?;
    Ok(jwt::sign(key, TYP_ACCESS, claims)?)
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    /// The access token.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Granted scopes.
    pub scope: String,
    /// The rotated refresh token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// The ID token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

impl IntoResponse for TokenResponse {
    fn into_response(self) -> Response {
        let mut resp = Json(self).into_response();
        resp.headers_mut()
            .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        resp
    }
}

/// Resolves a requested `scope` against what the client may have: none requested means all
/// allowed; anything not allowed is `invalid_scope`.
pub fn grant_scopes(
    requested: Option<&str>,
    allowed: &[String],
) -> Result<Vec<String>, OAuthError> {
    match requested.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(allowed.to_vec()),
        Some(req) => {
            let mut out: Vec<String> = Vec::new();
            for s in req.split(' ').filter(|s| !s.is_empty()) {
                if !allowed.iter().any(|a| a == s) {
                    return Err(OAuthError::invalid_scope(format!(
                        "scope `{s}` is not allowed for this client"
                    )));
                }
                if !out.iter().any(|o| o == s) {
                    out.push(s.to_owned());
                }
            }
            Ok(out)
        }
    }
}
