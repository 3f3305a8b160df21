//! `AppError`: how a failed request is answered. Internal detail goes to the log, never the body.

use askama::Template;
use askama_web::WebTemplate;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// The generic error page.
#[derive(Template, WebTemplate)]
#[template(path = "error.html")]
pub struct ErrorPage {
    /// Heading.
    pub title: &'static str,
    /// Explanation for the person reading it.
    pub message: String,
}

/// A request that failed.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Nothing here.
    #[error("not found")]
    NotFound,
    /// Not signed in, with a message the user may see.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// Refused, with a message the user may see.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// Malformed, with a message the user may see.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// Too many requests or failures; retry after the given seconds (`Retry-After`).
    #[error("too many requests: {message}")]
    TooManyRequests {
        /// What the user may read.
        message: String,
        /// Seconds to wait.
        retry_after_secs: u64,
    },
    /// The request body is over [`crate::server::MAX_BODY_BYTES`].
    #[error("request body too large")]
    TooLarge,
    /// Anything else; logged, answered with a generic page.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<crate::store::StoreError> for AppError {
    fn from(e: crate::store::StoreError) -> Self {
        AppError::Internal(e.into())
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let mut retry_after = None;
        let (status, title, message) = match self {
            AppError::NotFound => (
                StatusCode::NOT_FOUND,
                "Not found",
                "There is nothing at this address.".to_owned(),
            ),
            AppError::Unauthorized(m) => (StatusCode::UNAUTHORIZED, "Sign in first", m),
            AppError::Forbidden(m) => (StatusCode::FORBIDDEN, "Not allowed", m),
            AppError::BadRequest(m) => (StatusCode::BAD_REQUEST, "Bad request", m),
            AppError::TooManyRequests {
                message,
                retry_after_secs,
            } => {
                retry_after = Some(retry_after_secs);
                (StatusCode::TOO_MANY_REQUESTS, "Too many attempts", message)
            }
            AppError::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "Request too large",
                "The request was larger than Padlock accepts.".to_owned(),
            ),
            AppError::Internal(e) => {
                tracing::error!(error = %format!("{e:#}"), "request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "Padlock could not complete this request. The details are in the server log."
                        .to_owned(),
                )
            }
        };
        let mut resp = (status, ErrorPage { title, message }).into_response();
        if let Some(secs) = retry_after {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        resp
    }
}
