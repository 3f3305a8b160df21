//! The OAuth 2.0 / OpenID Connect endpoints, written on axum with the specs' names.
pub mod authorize;
pub mod bearer;
pub mod client_auth;
pub mod discovery;
pub mod error;
pub mod grant;
mod introspect;
mod logout;
pub mod token;
pub mod tokens;
mod userinfo;

use crate::state::AppState;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};

/// Routes of the OAuth endpoints.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .route(
            "/authorize",
            get(authorize::authorize_get).post(authorize::authorize_post),
        )
        .route("/login", get(crate::login::page).post(crate::login::submit))
        .route(
            "/login/factor",
            get(crate::factor::show).post(crate::factor::submit),
        )
        .route("/token", post(token::token))
        .route("/userinfo", get(userinfo::get).post(userinfo::post))
        .route("/introspect", post(introspect::introspect))
        .route("/revoke", post(introspect::revoke))
        .route("/logout", get(logout::get).post(logout::post))
}

/// `GET /.well-known/openid-configuration`, from bytes serialised at start-up.
async fn discovery(State(state): State<AppState>) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        state.discovery.clone(),
    )
}

/// `GET /jwks`: the public keys, current and recently retired, from bytes serialised at load.
async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "application/jwk-set+json"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        state.keys.get().jwks(),
    )
}

#[cfg(test)]
mod tests;

#[cfg(test)]
pub(crate) mod flow_tests;

#[cfg(test)]
mod recheck_tests;

#[cfg(test)]
mod https_tests;

#[cfg(test)]
mod logout_tests;

#[cfg(test)]
mod prop_tests;

#[cfg(test)]
mod resource_tests;

#[cfg(test)]
mod authorize_tests;
