//! `POST /token`: authenticates the client, then hands the request to its grant.

use super::client_auth::authenticate;
use super::error::{OAuthError, OAuthForm};
use super::grant;
use super::tokens::TokenResponse;
use crate::domain::Outcome;
use crate::extract::ClientIp;
use crate::secret::ClientSecret;
use crate::state::{AppState, Audit};
use axum::extract::State;
use axum::http::HeaderMap;
use serde::Deserialize;

/// The token request's parameters (unknown ones are ignored; duplicates are refused).
#[derive(Deserialize)]
pub struct TokenRequest {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<ClientSecret>,
    scope: Option<String>,
}

/// The token endpoint.
pub async fn token(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    OAuthForm(req): OAuthForm<TokenRequest>,
) -> Result<TokenResponse, OAuthError> {
    let grant_type = req
        .grant_type
        .as_deref()
        .ok_or_else(|| OAuthError::invalid_request("grant_type is required"))?;
    if !matches!(grant_type, "client_credentials") {
        return Err(OAuthError::unsupported_grant_type(format!(
            "grant_type `{grant_type}` is not supported"
        )));
    }
    let client = match authenticate(
        &state,
        &headers,
        req.client_id.as_deref(),
        req.client_secret.as_ref(),
    )
    .await
    {
        Ok(c) => c,
        Err(e) => {
            let actor = req.client_id.as_deref().unwrap_or("(basic auth)");
            let event = Audit {
                tenant: None,
                actor,
                action: "client.authenticate",
                target: actor,
                outcome: Outcome::Failure,
                source_ip: ip.as_deref(),
            };
            state.audit(event).await?;
            return Err(e);
        }
    };
    grant::client_credentials::grant(&state, client, req.scope.as_deref(), ip.as_deref()).await
}
