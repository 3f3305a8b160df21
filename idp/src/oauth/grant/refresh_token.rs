//! `grant_type=refresh_token`: every use rotates the token; presenting a token that was already
//! rotated means it was copied, so the whole family (grant) is revoked. A token lives
//! `refresh_token_ttl_days` after its last use and never past `refresh_token_max_days` after the
//! sign-in; it dies, with its grant, when its `acr` no longer meets the company's policy.

use crate::crypto::{random_token, sha256};
use crate::domain::{Outcome, RefreshRecord};
use crate::oauth::client_auth::Authenticated;
use crate::oauth::error::OAuthError;
use crate::oauth::tokens::{
    TokenResponse, UserGrant, grant_user, interactive_scope, refresh_expiry, sign_user_tokens,
};
use crate::state::{AppState, Audit};
use crate::store::Rotation;

/// Rotates a refresh token and issues new tokens.
pub async fn grant(
    state: &AppState,
    client: Authenticated,
    token: Option<&str>,
    scope: Option<&str>,
    ip: Option<&str>,
) -> Result<TokenResponse, OAuthError> {
    let client = match client {
        Authenticated::Confidential(c) | Authenticated::Public(c) => c,
    };
    let token = token.ok_or_else(|| OAuthError::invalid_request("refresh_token is required"))?;
    let old = sha256(token.as_bytes());
    let now = state.clock.now();
    let invalid = || OAuthError::invalid_grant("the refresh token is not valid");
    let Some((current, _)) = state.store.get_refresh_token(&old).await? else {
        return Err(invalid());
    };
    // Bound to its client: another client's token is simply not valid here.
    if current.client_id != client.id
        || current.expires_at <= now
        || state.store.is_revoked(&current.grant_id).await?
    {
        return Err(invalid());
    }
    let granted = interactive_scope(&current.scope);
    let scope = match scope.map(str::trim).filter(|s| !s.is_empty()) {
        None => granted.clone(),
        Some(s) if s.split(' ').all(|x| granted.split(' ').any(|c| c == x)) => s.to_owned(),
        Some(_) => {
            return Err(OAuthError::invalid_scope(
                "a refresh can only narrow the granted scopes",
            ));
        }
    };
    // The company's policy now, before anything is rotated: a grant minted under a weaker policy
    // is revoked, so its access tokens stop working at Padlock too.
    let user = match grant_user(state, &current.user_id, current.acr, current.epoch).await {
        Ok(user) => user,
        Err(e) => {
            state
                .store
                .revoke_grant(&current.grant_id, current.expires_at)
                .await?;
            let tenant = state
                .store
                .get_user(&current.user_id)
                .await?
                .map(|u| u.tenant);
            let event = Audit {
                tenant: tenant.as_ref(),
                actor: client.id.as_str(),
                action: "token.refresh",
                target: current.user_id.as_str(),
                outcome: Outcome::Failure,
                source_ip: ip,
            };
            state.audit(event).await?;
            return Err(e);
        }
    };
    let new = random_token(32);
    let record = RefreshRecord {
        scope: scope.clone(),
        expires_at: refresh_expiry(&state.tokens, current.auth_time, now),
        ..current.clone()
    };
    match state
        .store
        .rotate_refresh_token(&old, &sha256(new.as_bytes()), &record)
        .await?
    {
        Rotation::Rotated(_) => {}
        Rotation::Reused(rec) => {
            state
                .store
                .revoke_grant(
                    &rec.grant_id,
                    now + state.tokens.refresh_token_ttl_days * 86_400,
                )
                .await?;
            let event = Audit {
                tenant: None,
                actor: client.id.as_str(),
                action: "token.refresh_reused",
                target: &rec.grant_id,
                outcome: Outcome::Failure,
                source_ip: ip,
            };
            state.audit(event).await?;
            return Err(OAuthError::invalid_grant(
                "the refresh token was already used; its grant is revoked",
            ));
        }
        Rotation::Unknown => return Err(invalid()),
    }
    let RefreshRecord {
        auth_time,
        amr,
        acr,
        grant_id,
        ..
    } = &record;
    let grant = UserGrant {
        client: &client,
        user: &user,
        scope: &scope,
        auth_time: *auth_time,
        amr,
        acr: *acr,
        nonce: None,
        grant_id,
    };
    let (access_token, id_token) = sign_user_tokens(state, &grant)?;
    let event = Audit {
        tenant: Some(&user.tenant),
        actor: client.id.as_str(),
        action: "token.refresh",
        target: user.id.as_str(),
        outcome: Outcome::Success,
        source_ip: ip,
    };
    state.audit(event).await?;
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: state.tokens.access_token_ttl_secs,
        scope,
        refresh_token: Some(new),
        id_token,
    })
}
