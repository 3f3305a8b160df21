//! `POST /token`: authenticates the client, then hands the request to its grant.

use super::client_auth::{Authenticated, authenticate};
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
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
}

/// Authenticates the client of an OAuth endpoint request, auditing failures. A source address over
/// its failure limit is refused (429) before anything is checked; each failure counts against it.
pub async fn client_of(
    state: &AppState,
    headers: &HeaderMap,
    id: Option<&str>,
    secret: Option<&ClientSecret>,
    ip: Option<&str>,
) -> Result<Authenticated, OAuthError> {
    if let Some(retry_after) = state.refuse_source(ip, "client.authenticate").await? {
        return Err(OAuthError::too_many_failures(retry_after));
    }
    match authenticate(state, headers, id, secret).await {
        Ok(c) => Ok(c),
        Err(e) => {
            state.limits.record_source_failure(ip, state.clock.now());
            let actor = id.unwrap_or("(basic auth)");
            state
                .audit(Audit {
                    tenant: None,
                    actor,
                    action: "client.authenticate",
                    target: actor,
                    outcome: Outcome::Failure,
                    source_ip: ip,
                })
                .await?;
            Err(e)
        }
    }
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
    if !matches!(
        grant_type,
        "authorization_code" | "refresh_token" | "client_credentials"
    ) {
        return Err(OAuthError::unsupported_grant_type(format!(
            "grant_type `{grant_type}` is not supported"
        )));
    }
    let ip = ip.as_deref();
    let client = client_of(
        &state,
        &headers,
        req.client_id.as_deref(),
        req.client_secret.as_ref(),
        ip,
    )
    .await?;
    match grant_type {
        "authorization_code" => {
            let code = grant::authorization_code::CodeRequest {
                code: req.code.as_deref(),
                redirect_uri: req.redirect_uri.as_deref(),
                code_verifier: req.code_verifier.as_deref(),
            };
            grant::authorization_code::grant(&state, client, code, ip).await
        }
        "refresh_token" => {
            grant::refresh_token::grant(
                &state,
                client,
                req.refresh_token.as_deref(),
                req.scope.as_deref(),
                ip,
            )
            .await
        }
        _ => grant::client_credentials::grant(&state, client, req.scope.as_deref(), ip).await,
    }
}
