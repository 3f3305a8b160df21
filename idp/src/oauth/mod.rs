//! The OAuth 2.0 / OpenID Connect endpoints, written on axum with the specs' names.
pub mod client_auth;
pub mod error;
pub mod grant;
pub mod token;
pub mod tokens;

use crate::state::AppState;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};

/// Routes of the OAuth endpoints.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/jwks", get(jwks))
        .route("/token", post(token::token))
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
