//! `POST /introspect` (RFC 7662) and `POST /revoke` (RFC 7009), both for authenticated clients.
//!
//! A client learns about only tokens issued to itself: an access token whose `client_id` is the
//! caller, a refresh token held by the caller. The operator credential and API accounts follow the
//! same rule; Padlock validates its own tokens itself.

use super::client_auth::Authenticated;
use super::error::{OAuthError, OAuthForm};
use super::token::client_of;
use super::tokens::{AccessClaims, verify_access};
use crate::crypto::sha256;
use crate::domain::{Client, Outcome};
use crate::extract::ClientIp;
use crate::jwt::{self, TYP_ACCESS};
use crate::secret::ClientSecret;
use crate::state::{AppState, Audit};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;

#[derive(Deserialize)]
pub(crate) struct TokenParam {
    token: Option<String>,
    client_id: Option<String>,
    client_secret: Option<ClientSecret>,
}

fn inactive() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "active": false }))
}

/// `POST /introspect` (RFC 7662 §2): for a confidential client, the claims of a live token issued
/// to that client (`active: true`, with `auth_time`, `amr` and `acr` where the token has them);
/// `{"active": false}` for every other token — unknown, expired, revoked, rotated, or issued to
/// another client (§2.2: a token the caller may not see is reported inactive).
///
/// # Errors
/// `invalid_client` (401) when client authentication fails or the client is public;
/// `invalid_request` (400) without `token`.
pub(crate) async fn introspect(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    OAuthForm(p): OAuthForm<TokenParam>,
) -> Result<Json<serde_json::Value>, OAuthError> {
    let Authenticated::Confidential(client) = client_of(
        &state,
        &headers,
        p.client_id.as_deref(),
        p.client_secret.as_ref(),
        ip.as_deref(),
    )
    .await?
    else {
        return Err(OAuthError::invalid_client());
    };
    let token = p
        .token
        .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
    if let Ok(c) = verify_access(&state, &token).await {
        if c.client_id != client.id.as_str() {
            return Ok(inactive());
        }
        let mut out = serde_json::json!({
            "active": true, "token_type": "Bearer", "scope": c.scope, "client_id": c.client_id, "sub": c.sub,
            "exp": c.exp, "iat": c.iat, "iss": c.iss, "aud": c.aud, "jti": c.jti, "tenant": c.tenant,
        });
        if let Some(t) = c.auth_time {
            out["auth_time"] = t.into();
        }
        if let Some(amr) = c.amr {
            out["amr"] = amr.into();
        }
        if let Some(acr) = c.acr {
            out["acr"] = acr.into();
        }
        return Ok(Json(out));
    }
    let Some((rec, used)) = state
        .store
        .get_refresh_token(&sha256(token.as_bytes()))
        .await?
    else {
        return Ok(inactive());
    };
    // A refresh token is described only to the client that holds it.
    if used
        || rec.client_id != client.id
        || rec.expires_at <= state.clock.now()
        || state.store.is_revoked(&rec.grant_id).await?
    {
        return Ok(inactive());
    }
    let amr: Vec<&str> = rec.amr.iter().map(|a| a.as_str()).collect();
    Ok(Json(serde_json::json!({
        "active": true, "token_type": "refresh_token", "scope": rec.scope, "client_id": rec.client_id, "sub": rec.user_id, "exp": rec.expires_at, "iss": *state.issuer,
        "auth_time": rec.auth_time, "amr": amr, "acr": rec.acr.as_str(),
    })))
}

pub(crate) async fn revoke(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    OAuthForm(p): OAuthForm<TokenParam>,
) -> Result<StatusCode, OAuthError> {
    let client: Client = match client_of(
        &state,
        &headers,
        p.client_id.as_deref(),
        p.client_secret.as_ref(),
        ip.as_deref(),
    )
    .await?
    {
        Authenticated::Confidential(c) | Authenticated::Public(c) => c,
    };
    let token = p
        .token
        .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
    let now = state.clock.now();
    let until = now + state.tokens.refresh_token_ttl_days * 86_400;
    let mut revoked = None;
    if let Some((rec, _)) = state
        .store
        .get_refresh_token(&sha256(token.as_bytes()))
        .await?
    {
        if rec.client_id == client.id {
            state.store.revoke_grant(&rec.grant_id, until).await?;
            revoked = Some(rec.grant_id);
        }
    } else if let Ok(c) = jwt::verify::<AccessClaims>(&state.keys.get(), &token, TYP_ACCESS)
        && c.client_id == client.id.as_str()
        && c.exp > now
    {
        state.store.revoke_token(&c.jti, c.exp).await?;
        revoked = Some(c.jti);
    }
    if let Some(target) = revoked {
        state
            .audit(Audit {
                tenant: None,
                actor: client.id.as_str(),
                action: "token.revoke",
                target: &target,
                outcome: Outcome::Success,
                source_ip: ip.as_deref(),
            })
            .await?;
    }
    // RFC 7009 §2.2: unknown or foreign tokens get the same 200.
    Ok(StatusCode::OK)
}
