//! `grant_type=authorization_code`: one redemption per code, within 60 s, by the client it was
//! issued to, with the exact redirect URI and (when a challenge was sent) the PKCE verifier.
//! A second redemption revokes everything the first one produced.

use crate::crypto::{random_token, sha256};
use crate::domain::{ClientKind, Outcome, RefreshRecord};
use crate::oauth::client_auth::Authenticated;
use crate::oauth::error::OAuthError;
use crate::oauth::tokens::{
    TokenResponse, UserGrant, grant_user, interactive_scope, refresh_expiry, sign_user_tokens,
};
use crate::state::{AppState, Audit};
use crate::store::CodeTake;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;

/// The code grant's parameters.
pub struct CodeRequest<'a> {
    /// The code.
    pub code: Option<&'a str>,
    /// The redirect URI of the authorization request.
    pub redirect_uri: Option<&'a str>,
    /// PKCE verifier.
    pub code_verifier: Option<&'a str>,
}

/// Exchanges a code for tokens.
pub async fn grant(
    state: &AppState,
    client: Authenticated,
    req: CodeRequest<'_>,
    ip: Option<&str>,
) -> Result<TokenResponse, OAuthError> {
    let client = match client {
        Authenticated::Confidential(c) | Authenticated::Public(c) => c,
    };
    if !matches!(client.kind, ClientKind::RelyingPanel { .. }) {
        return Err(OAuthError::unauthorized_client(
            "this client may not use the authorization_code grant",
        ));
    }
    let code = req
        .code
        .ok_or_else(|| OAuthError::invalid_request("code is required"))?;
    let now = state.clock.now();
    let g = match state.store.take_auth_code(&sha256(code.as_bytes())).await? {
        CodeTake::Fresh(g) => g,
        CodeTake::Reused { grant_id } => {
            state
                .store
                .revoke_grant(
                    &grant_id,
                    now + state.tokens.refresh_token_ttl_days * 86_400,
                )
                .await?;
            let event = Audit {
                tenant: None,
                actor: client.id.as_str(),
                action: "token.code_reused",
                target: &grant_id,
                outcome: Outcome::Failure,
                source_ip: ip,
            };
            state.audit(event).await?;
            return Err(OAuthError::invalid_grant(
                "the authorization code was already used; the tokens it produced are revoked",
            ));
        }
        CodeTake::Unknown => {
            return Err(OAuthError::invalid_grant(
                "the authorization code is not valid",
            ));
        }
    };
    if g.client_id != client.id {
        return Err(OAuthError::invalid_grant(
            "the authorization code was issued to another client",
        ));
    }
    if now >= g.expires_at {
        return Err(OAuthError::invalid_grant("the authorization code expired"));
    }
    if req.redirect_uri != Some(g.redirect_uri.as_str()) {
        return Err(OAuthError::invalid_grant(
            "redirect_uri does not match the authorization request",
        ));
    }
    match (&g.code_challenge, req.code_verifier) {
        (Some(challenge), Some(verifier)) => {
            let computed = URL_SAFE_NO_PAD.encode(sha256(verifier.as_bytes()));
            if !bool::from(computed.as_bytes().ct_eq(challenge.as_bytes())) {
                return Err(OAuthError::invalid_grant(
                    "the PKCE code_verifier does not match",
                ));
            }
        }
        (Some(_), None) => {
            return Err(OAuthError::invalid_grant(
                "code_verifier is required: the authorization request sent a code_challenge",
            ));
        }
        // A verifier for a request that sent no challenge is a downgrade attempt.
        (None, Some(_)) => {
            return Err(OAuthError::invalid_grant(
                "code_verifier sent but the authorization request had no code_challenge",
            ));
        }
        (None, None) => {}
    }
    let user = grant_user(state, &g.user_id, g.acr, g.epoch).await?;
    let scope = interactive_scope(&g.scope);

    let grant = UserGrant {
        client: &client,
        user: &user,
        scope: &scope,
        auth_time: g.auth_time,
        amr: &g.amr,
        acr: g.acr,
        nonce: g.nonce.as_deref(),
        grant_id: &g.grant_id,
    };
    let (access_token, id_token) = sign_user_tokens(state, &grant)?;
    let refresh = random_token(32);
    let record = RefreshRecord {
        grant_id: g.grant_id.clone(),
        client_id: client.id.clone(),
        user_id: user.id.clone(),
        scope: scope.clone(),
        auth_time: g.auth_time,
        amr: g.amr.clone(),
        acr: g.acr,
        epoch: g.epoch,
        expires_at: refresh_expiry(&state.tokens, g.auth_time, now),
    };
    state
        .store
        .put_refresh_token(&sha256(refresh.as_bytes()), &record)
        .await?;
    let event = Audit {
        tenant: Some(&user.tenant),
        actor: client.id.as_str(),
        action: "token.authorization_code",
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
        refresh_token: Some(refresh),
        id_token,
    })
}
