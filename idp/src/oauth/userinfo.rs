//! `GET|POST /userinfo` (OIDC Core §5.3): the bearer token's user, limited to its scopes.

use super::error::OAuthError;
use super::tokens::{token_user, verify_access};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

pub(crate) async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, OAuthError> {
    answer(&state, bearer(&headers)).await
}

pub(crate) async fn post(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<serde_json::Value>, OAuthError> {
    let tokens: Vec<String> = url::form_urlencoded::parse(&body)
        .filter(|(k, _)| k == "access_token")
        .map(|(_, v)| v.into_owned())
        .collect();
    if tokens.len() > 1 {
        return Err(OAuthError::invalid_request(
            "access_token appears more than once",
        ));
    }
    let from_body = tokens.into_iter().next();
    match (bearer(&headers), from_body.as_deref()) {
        (Some(_), Some(_)) => Err(OAuthError::invalid_request(
            "send the access token once, in the header or the body",
        )),
        (h, b) => answer(&state, h.or(b)).await,
    }
}

async fn answer(
    state: &AppState,
    token: Option<&str>,
) -> Result<Json<serde_json::Value>, OAuthError> {
    let claims = verify_access(state, token.ok_or_else(OAuthError::invalid_token)?).await?;
    if !claims.has_scope("openid") {
        return Err(OAuthError::insufficient_scope(
            "userinfo needs the openid scope",
        ));
    }
    // The user now, and the company's policy now: a token minted with less than it requires
    // is refused like an invalid one.
    let Some(user) = token_user(state, &claims).await? else {
        return Err(OAuthError::invalid_token());
    };
    let mut out = serde_json::json!({ "sub": user.id, "tenant": user.tenant, "roles": user.roles });
    if claims.has_scope("email") {
        out["email"] = user.email.clone().into();
    }
    if claims.has_scope("profile") {
        out["preferred_username"] = user.unix_name().into();
    }
    Ok(Json(out))
}
