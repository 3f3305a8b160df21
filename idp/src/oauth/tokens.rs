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
    /// The user's session generation when the token was issued: once it moves (a new password or
    /// secret, disabled, a role removed), Padlock no longer accepts the token.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub epoch: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
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

/// Claims of an ID token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdClaims {
    /// Issuer.
    pub iss: String,
    /// User id.
    pub sub: String,
    /// The relying panel.
    pub aud: String,
    /// Expiry.
    pub exp: u64,
    /// Issued at.
    pub iat: u64,
    /// When the user authenticated.
    pub auth_time: u64,
    /// The request's nonce.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// Half-hash of the access token.
    pub at_hash: String,
    /// Email (scope `email`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The user's company.
    pub tenant: String,
    /// The user's roles.
    pub roles: Vec<String>,
    /// Methods used.
    pub amr: Vec<String>,
    /// Context class.
    pub acr: String,
}

/// What an interactive grant (code or refresh) hands out tokens for.
pub struct UserGrant<'a> {
    /// The relying panel.
    pub client: &'a crate::domain::Client,
    /// The user.
    pub user: &'a crate::domain::User,
    /// Granted scopes, space-separated.
    pub scope: &'a str,
    /// Authentication facts.
    pub auth_time: u64,
    /// Methods used.
    pub amr: &'a [padlock_policy::decision::Amr],
    /// Context class.
    pub acr: padlock_policy::decision::Acr,
    /// The request's nonce (code grant only).
    pub nonce: Option<&'a str>,
    /// The token family.
    pub grant_id: &'a str,
}

/// Signs the access token and, for `openid` scope, the ID token of an interactive grant.
/// Returns (access token, ID token).
pub fn sign_user_tokens(
    state: &AppState,
    g: &UserGrant<'_>,
) -> Result<(String, Option<String>), OAuthError> {
    let now = state.clock.now();
    let amr: Vec<String> = g.amr.iter().map(|a| a.as_str().to_owned()).collect();
    let claims = AccessClaims {
        iss: state.issuer.to_string(),
        sub: g.user.id.to_string(),
        aud: state.issuer.to_string(),
        exp: now + state.tokens.access_token_ttl_secs,
        iat: now,
        jti: crate::crypto::random_token(16),
        client_id: g.client.id.to_string(),
        scope: g.scope.to_owned(),
        tenant: Some(g.user.tenant.to_string()),
        roles: g.user.roles.clone(),
        auth_time: Some(g.auth_time),
        amr: Some(amr.clone()),
        acr: Some(g.acr.as_str().to_owned()),
        gid: Some(g.grant_id.to_owned()),
        epoch: g.user.session_epoch,
    };
    let access = sign_access(state, &claims)?;
    if !g.scope.split(' ').any(|s| s == "openid") {
        return Ok((access, None));
    }
    let alg = match &g.client.kind {
        crate::domain::ClientKind::RelyingPanel { id_token_alg, .. } => *id_token_alg,
        _ => crate::domain::SigningAlg::RS256,
    };
    let keys = state.keys.get();
    let key = keys
        .current(alg)
        .ok_or_else(|| OAuthError::server_error("no current ID-token key"))?;
    let id = IdClaims {
        iss: state.issuer.to_string(),
        sub: g.user.id.to_string(),
        aud: g.client.id.to_string(),
        exp: now + state.tokens.id_token_ttl_secs,
        iat: now,
        auth_time: g.auth_time,
        nonce: g.nonce.map(str::to_owned),
        at_hash: jwt::half_hash(alg, &access),
        email: g
            .scope
            .split(' ')
            .any(|s| s == "email")
            .then(|| g.user.email.clone()),
        tenant: g.user.tenant.to_string(),
        roles: g.user.roles.clone(),
        amr,
        acr: g.acr.as_str().to_owned(),
    };
    Ok((access, Some(jwt::sign(key, jwt::TYP_JWT, &id)?)))
}

/// The scopes of an interactive grant without the admin scopes, which only the client-credentials
/// grant issues (grants stored before that rule may still carry them).
#[must_use]
pub fn interactive_scope(scope: &str) -> String {
    scope
        .split(' ')
        .filter(|s| !s.is_empty() && !padlock_policy::permission::is_admin_scope(s))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The user of an interactive grant (authorization code or refresh token) if they may still get
/// tokens: not disabled, not an API account, their sessions not ended since the grant began
/// (`epoch`, [`crate::domain::User::end_sessions`]), and the grant's `acr` meets their company's current
/// policy (a grant minted with a password alone dies when the company turns its second factor on).
/// Errors: `invalid_grant` for each refusal, `server_error` when storage fails.
pub async fn grant_user(
    state: &AppState,
    user_id: &crate::secret::UserId,
    acr: padlock_policy::decision::Acr,
    epoch: u32,
) -> Result<crate::domain::User, OAuthError> {
    let user = state
        .store
        .get_user(user_id)
        .await?
        .filter(|u| !u.disabled && !u.api_account && u.session_epoch == epoch)
        .ok_or_else(|| OAuthError::invalid_grant("the user can no longer sign in"))?;
    let tenant = state
        .store
        .get_tenant(&user.tenant)
        .await?
        .ok_or_else(|| OAuthError::invalid_grant("the user can no longer sign in"))?;
    if !padlock_policy::decision::credential_allowed(&tenant.two_factor, acr, false) {
        return Err(OAuthError::invalid_grant(
            "the company now requires a second factor: the user must sign in again",
        ));
    }
    Ok(user)
}

/// The user a verified access token speaks for, if the token may still be used at Padlock (as the
/// resource server of `/userinfo` and `/api/v1`): the user exists and is not disabled, and the
/// token's `acr` meets the company's current policy. A token without `acr` comes from client
/// credentials and speaks only for an API account. `None` for every refusal and for tokens without
/// a user (the operator credential).
pub async fn token_user(
    state: &AppState,
    claims: &AccessClaims,
) -> Result<Option<crate::domain::User>, crate::store::StoreError> {
    use padlock_policy::decision::{Acr, credential_allowed};
    let Some(user) = state
        .store
        .get_user(&crate::secret::UserId::from_string(claims.sub.clone()))
        .await?
        .filter(|u| {
            !u.disabled
                && u.session_epoch == claims.epoch
                && claims.tenant.as_deref() == Some(u.tenant.as_str())
        })
    else {
        return Ok(None);
    };
    let allowed = match claims.acr.as_deref() {
        None => user.api_account,
        Some(acr) => {
            let acr = Acr::parse(acr).unwrap_or(Acr::OneFactor);
            let policy = state
                .store
                .get_tenant(&user.tenant)
                .await?
                .map(|t| t.two_factor);
            !user.api_account && policy.is_some_and(|p| credential_allowed(&p, acr, false))
        }
    };
    Ok(allowed.then_some(user))
}

/// When a refresh token issued or rotated at `now` (seconds) for a sign-in at `auth_time` expires:
/// `refresh_token_ttl_days` after `now` (idle lifetime), but never later than
/// `refresh_token_max_days` after `auth_time` (absolute lifetime, which rotation cannot extend).
#[must_use]
pub fn refresh_expiry(tokens: &crate::config::TokensConfig, auth_time: u64, now: u64) -> u64 {
    const DAY: u64 = 86_400;
    now.saturating_add(tokens.refresh_token_ttl_days.saturating_mul(DAY))
        .min(auth_time.saturating_add(tokens.refresh_token_max_days.saturating_mul(DAY)))
}

/// Verifies an access token presented to Padlock: signature, issuer, audience, expiry, and that
/// neither the token nor its grant was revoked.
pub async fn verify_access(state: &AppState, token: &str) -> Result<AccessClaims, OAuthError> {
    let claims: AccessClaims = jwt::verify(&state.keys.get(), token, TYP_ACCESS)
        .map_err(|_| OAuthError::invalid_token())?;
    if claims.iss != *state.issuer || claims.aud != *state.issuer || claims.exp <= state.clock.now()
    {
        return Err(OAuthError::invalid_token());
    }
    if state.store.is_revoked(&claims.jti).await?
        || match &claims.gid {
            Some(g) => state.store.is_revoked(g).await?,
            None => false,
        }
    {
        return Err(OAuthError::invalid_token());
    }
    Ok(claims)
}
