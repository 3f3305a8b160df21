//! `GET|POST /userinfo` (OIDC Core §5.3): the bearer token's user, limited to its scopes.

use super::bearer::{Bearer, bearer};
use super::error::OAuthError;
use super::tokens::{token_user, verify_access};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;

/// The token of the `Authorization` header, if it has one; no token at all is `Ok(None)`.
fn header_token(headers: &HeaderMap) -> Result<Option<&str>, OAuthError> {
    match bearer(headers) {
        Bearer::Absent => Ok(None),
        Bearer::Token(t) => Ok(Some(t)),
        Bearer::Malformed => Err(OAuthError::invalid_token()),
        Bearer::Repeated => Err(OAuthError::invalid_request("send one Authorization header")),
    }
}

pub(crate) async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, OAuthError> {
    answer(&state, header_token(&headers)?).await
}

/// `POST /userinfo`: the token in the header or, form-encoded, as `access_token` in the body
/// (RFC 6750 §2.2), never both.
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
    match (header_token(&headers)?, from_body.as_deref()) {
        (Some(_), Some(_)) => Err(OAuthError::invalid_request(
            "send the access token once, in the header or the body",
        )),
        (h, b) => answer(&state, h.or(b)).await,
    }
}

/// The claims of the token's user. No token: [`OAuthError::bearer_required`]; a bad one:
/// `invalid_token`; one without `openid`: `insufficient_scope`.
async fn answer(
    state: &AppState,
    token: Option<&str>,
) -> Result<Json<serde_json::Value>, OAuthError> {
    let Some(token) = token else {
        return Err(OAuthError::bearer_required());
    };
    let claims = verify_access(state, token).await?;
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
