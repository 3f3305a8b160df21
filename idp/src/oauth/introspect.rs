//! `POST /introspect` (RFC 7662) and `POST /revoke` (RFC 7009), both for authenticated clients.
//!
//! A client learns about, and revokes, only tokens issued to itself: an access token whose
//! `client_id` is the caller, a refresh token held by the caller. The operator credential and API
//! accounts follow the same rule; Padlock validates its own tokens itself.

use super::client_auth::Authenticated;
use super::error::{OAuthError, OAuthForm};
use super::token::client_of;
use super::tokens::{AccessClaims, grant_user, token_user, verify_access};
use crate::crypto::sha256;
use crate::domain::{Client, Outcome};
use crate::extract::ClientIp;
use crate::jwt::{self, TYP_ACCESS};
use crate::secret::{ClientSecret, TenantId};
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
    // A PAM host's credential is for /pam/v1 only.
    if client.kind == crate::domain::ClientKind::PamHost {
        return Err(OAuthError::invalid_client());
    }
    let token = p
        .token
        .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
    if let Ok(c) = verify_access(&state, &token).await {
        // Described only to its own client, and only while its user may still use it (the
        // company's policy now; the operator credential's tokens have no user).
        if c.client_id != client.id.as_str()
            || (c.tenant.is_some() && token_user(&state, &c).await?.is_none())
        {
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
        || grant_user(&state, &rec.user_id, rec.acr, rec.epoch)
            .await
            .is_err()
    {
        return Ok(inactive());
    }
    let amr: Vec<&str> = rec.amr.iter().map(|a| a.as_str()).collect();
    Ok(Json(serde_json::json!({
        "active": true, "token_type": "refresh_token", "scope": rec.scope, "client_id": rec.client_id, "sub": rec.user_id, "exp": rec.expires_at, "iss": *state.issuer,
        "auth_time": rec.auth_time, "amr": amr, "acr": rec.acr.as_str(),
    })))
}

/// `POST /revoke` (RFC 7009 §2.1): revokes a token issued to the calling client. A refresh token
/// takes its whole grant with it (the access tokens issued from it included); an access token is
/// revoked alone, remembered until it would have expired.
///
/// # Errors
/// `invalid_client` (401) when client authentication fails; `invalid_request` (400) without
/// `token`; `unauthorized_client` (400) for a live token issued to another client (§2.1: the
/// request is refused, and the token stays valid). Unknown and expired tokens are answered 200
/// like revoked ones (§2.2): there is nothing left to revoke.
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
    // A PAM host's credential is for /pam/v1 only.
    if client.kind == crate::domain::ClientKind::PamHost {
        return Err(OAuthError::invalid_client());
    }
    let token = p
        .token
        .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
    let now = state.clock.now();
    let until = now + state.tokens.refresh_token_ttl_days * 86_400;
    // (grant or token id, its company, whether it is the caller's)
    let found: Option<(String, Option<TenantId>, bool)> = if let Some((rec, _)) = state
        .store
        .get_refresh_token(&sha256(token.as_bytes()))
        .await?
    {
        let tenant = state.store.get_user(&rec.user_id).await?.map(|u| u.tenant);
        if rec.client_id == client.id {
            state.store.revoke_grant(&rec.grant_id, until).await?;
            Some((rec.grant_id, tenant, true))
        } else {
            (rec.expires_at > now).then_some((rec.grant_id, tenant, false))
        }
    } else if let Ok(c) = jwt::verify::<AccessClaims>(&state.keys.get(), &token, TYP_ACCESS)
        && c.exp > now
    {
        let tenant = c.tenant.map(TenantId::from_string);
        let own = c.client_id == client.id.as_str();
        if own {
            state.store.revoke_token(&c.jti, c.exp).await?;
        }
        Some((c.jti, tenant, own))
    } else {
        None
    };
    let Some((target, tenant, own)) = found else {
        // RFC 7009 §2.2: unknown or expired tokens get the same 200.
        return Ok(StatusCode::OK);
    };
    state
        .audit(Audit {
            tenant: tenant.as_ref(),
            actor: client.id.as_str(),
            action: "token.revoke",
            target: &target,
            outcome: if own {
                Outcome::Success
            } else {
                Outcome::Failure
            },
            source_ip: ip.as_deref(),
        })
        .await?;
    if own {
        Ok(StatusCode::OK)
    } else {
        Err(OAuthError::unauthorized_client(
            "the token was not issued to this client",
        ))
    }
}
