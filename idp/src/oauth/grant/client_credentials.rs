//! `grant_type=client_credentials`: the only way API accounts (and the operator credential) get
//! tokens. API accounts are exempt from the second factor here, and only here; they get exactly the
//! scopes they were given.

use crate::crypto::random_token;
use crate::domain::{ClientKind, Outcome};
use crate::oauth::client_auth::Authenticated;
use crate::oauth::error::OAuthError;
use crate::oauth::tokens::{AccessClaims, TokenResponse, grant_scopes, sign_access};
use crate::state::{AppState, Audit};

/// Issues an access token to an authenticated confidential client.
pub async fn grant(
    state: &AppState,
    client: Authenticated,
    scope: Option<&str>,
    ip: Option<&str>,
) -> Result<TokenResponse, OAuthError> {
    let Authenticated::Confidential(client) = client else {
        return Err(OAuthError::unauthorized_client(
            "public clients cannot use client credentials",
        ));
    };
    let (sub, tenant, roles, epoch) = match &client.kind {
        ClientKind::Operator => (client.id.to_string(), None, Vec::new(), 0),
        ClientKind::ApiAccount { user } => {
            let account = state
                .store
                .get_user(user)
                .await?
                .filter(|u| u.api_account && !u.disabled);
            let Some(account) = account else {
                audit(state, &client.id.to_string(), None, Outcome::Failure, ip).await?;
                return Err(OAuthError::unauthorized_client(
                    "this API account is disabled",
                ));
            };
            (
                account.id.to_string(),
                Some(account.tenant.to_string()),
                account.roles.clone(),
                account.session_epoch,
            )
        }
        ClientKind::RelyingPanel { .. } | ClientKind::PamHost => {
            return Err(OAuthError::unauthorized_client(
                "this client may not use the client_credentials grant",
            ));
        }
    };
    let scopes = grant_scopes(scope, &client.scopes)?;
    let now = state.clock.now();
    let claims = AccessClaims {
        iss: state.issuer.to_string(),
        sub,
        aud: state.issuer.to_string(),
        exp: now + state.tokens.access_token_ttl_secs,
        iat: now,
        jti: random_token(16),
        client_id: client.id.to_string(),
        scope: scopes.join(" "),
        tenant: tenant.clone(),
        roles,
        auth_time: None,
        amr: None,
        acr: None,
        gid: None,
        epoch,
    };
    let access_token = sign_access(state, &claims)?;
    audit(
        state,
        client.id.as_str(),
        tenant.as_deref(),
        Outcome::Success,
        ip,
    )
    .await?;
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: state.tokens.access_token_ttl_secs,
        scope: claims.scope,
        refresh_token: None,
        id_token: None,
    })
}

async fn audit(
    state: &AppState,
    client: &str,
    tenant: Option<&str>,
    outcome: Outcome,
    ip: Option<&str>,
) -> Result<(), OAuthError> {
    let tenant = tenant.map(|t| crate::secret::TenantId::from_string(t.to_owned()));
    state
        .audit(Audit {
            tenant: tenant.as_ref(),
            actor: client,
            action: "token.client_credentials",
            target: client,
            outcome,
            source_ip: ip,
        })
        .await?;
    Ok(())
}
