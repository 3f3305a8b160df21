//! OAuth 2.0 error responses (RFC 6749 §5.2, RFC 6750 §3): JSON bodies, never internal detail.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};

/// An OAuth error answer.
#[derive(Debug)]
pub struct OAuthError {
    status: StatusCode,
    /// The `error` code; `None` only for [`OAuthError::bearer_required`], which has no body.
    pub code: Option<&'static str>,
    description: Option<String>,
    challenge: Option<&'static str>,
    retry_after: Option<u64>,
}

impl OAuthError {
    fn new(status: StatusCode, code: &'static str, description: impl Into<Option<String>>) -> Self {
        OAuthError {
            status,
            code: Some(code),
            description: description.into(),
            challenge: None,
            retry_after: None,
        }
    }

    /// 429 with `Retry-After` (RFC 6585 §4): too many failures from this source address; nothing
    /// was checked. The `error` code is `invalid_request`, the wait is in seconds.
    #[must_use]
    pub fn too_many_failures(retry_after_secs: u64) -> Self {
        OAuthError {
            retry_after: Some(retry_after_secs),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "invalid_request",
                format!(
                    "too many failed requests from this address; retry after {retry_after_secs} seconds"
                ),
            )
        }
    }

    /// Whether this is [`OAuthError::too_many_failures`] (the source was refused up front).
    #[must_use]
    pub fn is_too_many(&self) -> bool {
        self.status == StatusCode::TOO_MANY_REQUESTS
    }

    /// `invalid_request` (400).
    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            description.into(),
        )
    }

    /// `invalid_client` (401 with a `WWW-Authenticate: Basic` challenge). One message for unknown
    /// clients and wrong secrets alike.
    #[must_use]
    pub fn invalid_client() -> Self {
        OAuthError {
            challenge: Some("Basic realm=\"padlock\""),
            ..Self::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client authentication failed".to_owned(),
            )
        }
    }

    /// `invalid_grant` (400).
    pub fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", description.into())
    }

    /// `unauthorized_client` (400).
    pub fn unauthorized_client(description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            description.into(),
        )
    }

    /// `unsupported_grant_type` (400).
    pub fn unsupported_grant_type(description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            description.into(),
        )
    }

    /// `invalid_scope` (400).
    pub fn invalid_scope(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_scope", description.into())
    }

    /// 401 for a request to a bearer-protected endpoint that carries no access token at all
    /// (RFC 6750 §3.1): a `WWW-Authenticate: Bearer realm="padlock"` challenge without an error
    /// code (the client may not have known it needed one) and no body.
    #[must_use]
    pub fn bearer_required() -> Self {
        OAuthError {
            status: StatusCode::UNAUTHORIZED,
            code: None,
            description: None,
            challenge: Some(super::bearer::CHALLENGE),
            retry_after: None,
        }
    }

    /// `invalid_token` (401, RFC 6750 §3.1) for bearer-protected endpoints: the token is
    /// malformed, unknown, expired or revoked.
    #[must_use]
    pub fn invalid_token() -> Self {
        OAuthError {
            challenge: Some(super::bearer::CHALLENGE_INVALID_TOKEN),
            ..Self::new(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "the access token is missing, invalid, expired or revoked".to_owned(),
            )
        }
    }

    /// `insufficient_scope` (403, RFC 6750).
    pub fn insufficient_scope(description: impl Into<String>) -> Self {
        OAuthError {
            challenge: Some(super::bearer::CHALLENGE_INSUFFICIENT_SCOPE),
            ..Self::new(
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                description.into(),
            )
        }
    }

    /// `server_error` (500); the cause is logged here.
    pub fn server_error(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "OAuth request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "the server could not complete the request".to_owned(),
        )
    }
}

impl From<crate::store::StoreError> for OAuthError {
    fn from(e: crate::store::StoreError) -> Self {
        Self::server_error(e)
    }
}

impl From<crate::keys::KeyError> for OAuthError {
    fn from(e: crate::keys::KeyError) -> Self {
        Self::server_error(e)
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut resp = match self.code {
            Some(code) => {
                let mut body = serde_json::json!({ "error": code });
                if let Some(d) = self.description {
                    body["error_description"] = d.into();
                }
                (self.status, Json(body)).into_response()
            }
            None => self.status.into_response(),
        };
        if let Some(c) = self.challenge {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(c));
        }
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp.headers_mut()
            .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        resp
    }
}

/// A form body for the OAuth endpoints; a malformed, duplicated or oversized one is `invalid_request`.
pub struct OAuthForm<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequest<S>
    for OAuthForm<T>
{
    type Rejection = OAuthError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Form::<T>::from_request(req, state).await {
            Ok(axum::Form(v)) => Ok(OAuthForm(v)),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(OAuthError::invalid_request("request body too large"))
            }
            Err(e) => Err(OAuthError::invalid_request(e.body_text())),
        }
    }
}
