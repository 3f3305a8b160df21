//! Extractors whose rejections are Padlock errors (same page format as every other error).

use crate::error::AppError;
use crate::state::AppState;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use std::net::SocketAddr;

/// `application/x-www-form-urlencoded` body; a malformed one is a 400 error page.
pub struct Form<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Form<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Form::<T>::from_request(req, state).await {
            Ok(axum::Form(v)) => Ok(Form(v)),
            Err(e) if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
                Err(AppError::TooLarge)
            }
            Err(e) => Err(AppError::BadRequest(format!(
                "The form could not be read: {}",
                e.body_text()
            ))),
        }
    }
}

/// A query string; a malformed or duplicated parameter is a 400 error page (not axum's plain
/// text).
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(e) => Err(AppError::BadRequest(format!(
                "The address could not be read: {}",
                e.body_text()
            ))),
        }
    }
}

/// The client's address: the socket peer, or the address a trusted proxy forwarded
/// ([`crate::limits::Limits::client_addr`]). Absent when the server runs without connect info
/// (in-process tests), unless a test sets a [`ConnectInfo`] extension.
pub struct ClientIp(pub Option<String>);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(
            parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| {
                state
                    .limits
                    .client_addr(c.0.ip(), &parts.headers)
                    .to_string()
            }),
        ))
    }
}
