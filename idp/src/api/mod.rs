//! `/api/v1`: the admin REST API (JSON). Callers are bearer access tokens Padlock issued by
//! client credentials — `padlock.admin` (the operator credential) for everything, `tenant.admin`
//! or single permissions for one's own company (API accounts) — or people signed in to Padlock
//! (the session cookie; writes carry its CSRF token), with their roles' permissions. The people
//! of the operator company holding `company.manage` are operators once their sign-in passed a
//! second factor. The `padlock` command line uses this API.
//!
//! For a token whose subject is a user, rights are the token's scopes ∩ the permissions of the
//! user's roles *now* ([`padlock_policy::permission::effective`]), and a token (or session) minted
//! at a lower `acr` than the company now requires opens nothing.

mod api_accounts;
mod audit;
mod clients;
mod duo_enrolment;
mod pam_hosts;
mod roles;
mod tenants;
pub(crate) mod two_factor;
mod users;

use crate::oauth::bearer::{self, Bearer, bearer};
use crate::oauth::tokens::{AccessClaims, verify_access};
use crate::secret::TenantId;
use crate::state::AppState;
use crate::store::StoreError;
use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use padlock_policy::permission::{Permission, Permissions, effective};

pub use padlock_policy::permission::{SCOPE_OPERATOR, SCOPE_TENANT_ADMIN};

/// The OpenAPI 3 document's frame: what the handlers' `#[utoipa::path]` annotations do not say.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Padlock admin API",
        version = "1",
        description = "Companies, users, roles, second factors, API accounts, PAM hosts, relying panels, signing keys and the audit trail. Callers: a bearer access token from Padlock's client-credentials grant, or a person's Padlock session (writes carry its CSRF token in X-CSRF-Token)."
    ),
    servers((url = "/api/v1")),
    security(("bearer" = []), ("session" = [])),
    modifiers(&Authentication)
)]
struct ApiDoc;

/// The company named in a path.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub(super) struct TenantParam {
    /// Company id or name.
    tenant: String,
}

/// The company and user named in a path.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub(super) struct TenantUserParam {
    /// Company id or name.
    tenant: String,
    /// User id or email.
    user: String,
}

/// The two ways to call the API, as security schemes.
struct Authentication;

impl utoipa::Modify for Authentication {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme,
        };
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::session::SESSION_COOKIE,
                "A person's Padlock session; writes also need its CSRF token in X-CSRF-Token",
            ))),
        );
    }
}

/// The API's routes and their OpenAPI document, built once from the handlers' annotations: a
/// route is registered only through `routes!`, so it cannot be missing from the document.
fn api() -> &'static (Router<AppState>, String) {
    static API: std::sync::OnceLock<(Router<AppState>, String)> = std::sync::OnceLock::new();
    API.get_or_init(|| {
        use utoipa::OpenApi;
        use utoipa_axum::router::OpenApiRouter;
        use utoipa_axum::routes;
        let (router, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
            .routes(routes!(tenants::list, tenants::create))
            .routes(routes!(tenants::show))
            .routes(routes!(two_factor::update))
            .routes(routes!(users::list, users::create))
            .routes(routes!(users::update))
            .routes(routes!(users::unlock))
            .routes(routes!(users::set_two_factor))
            .routes(routes!(users::totp_confirm, users::reset_totp))
            .routes(routes!(users::totp_enroll))
            .routes(routes!(users::password_link))
            .routes(routes!(duo_enrolment::link, duo_enrolment::remove))
            .routes(routes!(duo_enrolment::enroll))
            .routes(routes!(duo_enrolment::enroll_status))
            .routes(routes!(api_accounts::set_flag, api_accounts::clear_flag))
            .routes(routes!(api_accounts::create))
            .routes(routes!(api_accounts::rotate))
            .routes(routes!(roles::list))
            .routes(routes!(roles::set, roles::remove))
            .routes(routes!(pam_hosts::create))
            .routes(routes!(pam_hosts::list))
            .routes(routes!(pam_hosts::remove))
            .routes(routes!(clients::create_relying_panel))
            .routes(routes!(clients::rotate_keys))
            .routes(routes!(audit::list))
            .routes(routes!(audit::export))
            .split_for_parts();
        let json = doc
            .to_pretty_json()
            .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
        (router, json)
    })
}

/// The API's routes, relative to `/api/v1`, with `GET /openapi.json` (the generated document).
pub fn routes() -> Router<AppState> {
    api().0.clone().route("/openapi.json", get(openapi))
}

/// The generated OpenAPI 3 document of the API, as JSON.
#[must_use]
pub fn openapi_document() -> &'static str {
    &api().1
}

async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        openapi_document(),
    )
}

/// An API error: `{"error": code, "message": text}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    /// 400.
    pub fn bad_request(m: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", m)
    }
    /// 422 for a field that fails validation.
    pub fn invalid(field: &str, m: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            format!("{field}: {m}"),
        )
    }
    /// 409 `conflict`: the record changed since this request read it; nothing was written.
    pub fn changed(what: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("the {what} changed meanwhile; nothing was written, read it again and retry"),
        )
    }
    /// 409 `conflict` for a state that forbids the change (`m` says which and what to do first).
    pub fn conflict(m: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", m)
    }
    /// 502 `upstream_unavailable`: a service Padlock needs for this request (Duo) did not answer.
    pub fn upstream(m: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, "upstream_unavailable", m)
    }
    /// 404.
    pub fn not_found(m: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", m)
    }
    /// 403.
    pub fn forbidden(m: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "insufficient_scope", m)
    }
    /// 401 `invalid_token`: the bearer token is malformed, unknown, expired or revoked.
    fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "a valid bearer access token from this Padlock is required",
        )
    }
    /// 401 `authentication_required`: the request carries no bearer token (its challenge has no
    /// error code, RFC 6750 §3.1).
    fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "authentication_required",
            "a bearer access token from this Padlock is required",
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => Self::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("{what} already exists"),
            ),
            StoreError::NotFound(what) => Self::not_found(format!("{what} not found")),
            other => {
                tracing::error!(error = %other, "admin API storage failure");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "the server could not complete the request",
                )
            }
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        tracing::error!(error = %format!("{e:#}"), "admin API failure");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "the server could not complete the request",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (
            self.status,
            Json(serde_json::json!({ "error": self.code, "message": self.message })),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            let challenge = if self.code == "invalid_token" {
                bearer::CHALLENGE_INVALID_TOKEN
            } else {
                bearer::CHALLENGE
            };
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        resp
    }
}

/// JSON body whose rejections are [`ApiError`]s.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                "request body too large",
            )),
            Err(e) => Err(ApiError::bad_request(e.body_text())),
        }
    }
}

/// The caller of an admin API request, with the company permissions it holds now:
/// - a bearer access token Padlock issued (`Authorization: Bearer …`, the scheme in any case;
///   [`crate::oauth::bearer`]): API accounts and the operator credential, by client credentials;
/// - else a person signed in to Padlock (the session cookie, as the admin console calls the
///   API): their roles' permissions in their company; a request that changes anything must carry
///   the session's CSRF token in `X-CSRF-Token`.
///
/// No token and no session: 401 `authentication_required`; a bad token: 401 `invalid_token`; two
/// `Authorization` headers: 400; a write without the session's CSRF token: 403.
pub struct Principal(Caller);

enum Caller {
    Token {
        claims: AccessClaims,
        rights: Permissions,
    },
    Person {
        user: crate::domain::User,
        rights: Permissions,
        /// The user holds `company.manage` in the operator company.
        operator: bool,
        /// The session passed a second factor (`acr` = `padlock:2fa`).
        second_factor: bool,
    },
}

/// The header a signed-in person's writes carry the session's CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = match bearer(&parts.headers) {
            Bearer::Token(t) => t,
            Bearer::Absent => return person(state, parts).await,
            Bearer::Malformed => return Err(ApiError::unauthorized()),
            Bearer::Repeated => {
                return Err(ApiError::bad_request("send one Authorization header"));
            }
        };
        let claims = verify_access(state, token)
            .await
            .map_err(|_| ApiError::unauthorized())?;
        let rights = rights(state, &claims).await?;
        Ok(Principal(Caller::Token { claims, rights }))
    }
}

/// The person whose live session the request carries (writes checked for its CSRF token), or
/// 401 without one.
async fn person(state: &AppState, parts: &Parts) -> Result<Principal, ApiError> {
    let Some((digest, session)) = crate::session::current(state, &parts.headers).await? else {
        return Err(ApiError::unauthenticated());
    };
    if !parts.method.is_safe() {
        let presented = parts
            .headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        crate::session::check_csrf(state, &digest, presented).map_err(|_| {
            ApiError::forbidden(format!(
                "a change made with a Padlock session needs the session's CSRF token in {CSRF_HEADER}"
            ))
        })?;
    }
    let user = state
        .store
        .get_user(&session.user_id)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    let tenant = state
        .store
        .get_tenant(&user.tenant)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    // A sign-in weaker than the company now requires opens nothing, as for tokens.
    if !padlock_policy::decision::credential_allowed(&tenant.two_factor, session.acr, false) {
        return Err(ApiError::unauthorized());
    }
    let rights = tenant.permissions_of(&user);
    Ok(Principal(Caller::Person {
        operator: tenant.operator && rights.has(Permission::CompanyManage),
        second_factor: session.acr == padlock_policy::decision::Acr::TwoFactor,
        rights,
        user,
    }))
}

/// The company permissions of a verified token now: none for the operator credential (no user,
/// no company; its scope decides); for a user's token, its scopes ∩ what the user's roles permit
/// in their company now — if the token may still be used ([`crate::oauth::tokens::token_user`]),
/// else 401.
async fn rights(state: &AppState, claims: &AccessClaims) -> Result<Permissions, ApiError> {
    if claims.tenant.is_none() {
        return Ok(Permissions::NONE);
    }
    let user = crate::oauth::tokens::token_user(state, claims)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    let tenant = state
        .store
        .get_tenant(&user.tenant)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    Ok(effective(
        claims.scope.split(' '),
        tenant.permissions_of(&user),
    ))
}

impl Principal {
    /// The operator: the operator credential (`padlock.admin`), or a person holding
    /// `company.manage` in the operator company whose session passed a second factor (403 asking
    /// for one when it did not, even if the operator company's second factor is off).
    pub fn require_operator(&self) -> Result<(), ApiError> {
        match &self.0 {
            _ if self.is_operator() => Ok(()),
            Caller::Person { operator: true, .. } => Err(ApiError::forbidden(
                "operator actions need a sign-in that passed a second factor: sign out, then sign in again with your second factor",
            )),
            _ => Err(ApiError::forbidden(format!(
                "this needs scope {SCOPE_OPERATOR}"
            ))),
        }
    }

    fn is_operator(&self) -> bool {
        match &self.0 {
            Caller::Token { claims, .. } => claims.has_scope(SCOPE_OPERATOR),
            Caller::Person {
                operator,
                second_factor,
                ..
            } => *operator && *second_factor,
        }
    }

    /// The company of the caller (none for the operator credential).
    fn own_tenant(&self) -> Option<&str> {
        match &self.0 {
            Caller::Token { claims, .. } => claims.tenant.as_deref(),
            Caller::Person { user, .. } => Some(user.tenant.as_str()),
        }
    }

    /// What this caller may do in its own company: every permission for the operator, else its
    /// token's scopes ∩ its roles, or a person's roles.
    #[must_use]
    pub fn permissions(&self) -> Permissions {
        match &self.0 {
            _ if self.is_operator() => Permissions::ALL,
            Caller::Token { rights, .. } | Caller::Person { rights, .. } => *rights,
        }
    }

    /// The company named `id_or_name` (id or name), if this caller holds one of `any_of` there:
    /// the operator in any company, everyone else in their own. Another company answers 404
    /// exactly as a missing one does, so a caller learns nothing of companies not theirs; its own
    /// without the permission, 403 naming the permissions that would do.
    pub async fn company(
        &self,
        state: &AppState,
        id_or_name: &str,
        any_of: &[Permission],
    ) -> Result<crate::domain::Tenant, ApiError> {
        let tenant = resolve_tenant(state, id_or_name).await?;
        if !self.is_operator() && self.own_tenant() != Some(tenant.id.as_str()) {
            return Err(company_not_found(id_or_name));
        }
        if any_of.iter().any(|p| self.permissions().has(*p)) {
            Ok(tenant)
        } else {
            let names: Vec<&str> = any_of.iter().map(|p| p.name()).collect();
            Err(ApiError::forbidden(format!(
                "this needs permission {} in this company (for a token, scope {SCOPE_TENANT_ADMIN} or {} and a role that holds it)",
                names.join(" or "),
                names.join(" or ")
            )))
        }
    }

    /// Refuses handing out `granted` (roles, scopes, a role's definition) unless the caller holds
    /// all of it: 403 naming what is missing.
    pub fn may_grant(&self, granted: Permissions) -> Result<(), ApiError> {
        let missing = granted.without(self.permissions());
        if missing == Permissions::NONE {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "you cannot grant {}: you do not hold it",
                missing.names().join(", ")
            )))
        }
    }

    /// Refuses changing a user who holds `target` unless the caller holds all of it too (so
    /// `users.manage` cannot disable or re-role an administrator): 403 naming what is missing.
    pub fn may_change(&self, target: Permissions) -> Result<(), ApiError> {
        let missing = target.without(self.permissions());
        if missing == Permissions::NONE {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this user holds {}, which you do not: only someone who holds it may change them",
                missing.names().join(", ")
            )))
        }
    }

    /// Refuses a caller acting on its own credentials or second factor (a password link, the
    /// method, an enrolment, the API-account flag, email or mobile): through the API, a stolen
    /// session or token would otherwise take the account for good. People change their own on
    /// the padlock page, which asks for a fresh second factor first (DESIGN §9 item 6). 403.
    pub fn refuse_self(&self, user: &crate::domain::User) -> Result<(), ApiError> {
        if self.actor() == user.id.as_str() {
            Err(ApiError::forbidden(
                "you cannot change your own sign-in details or second factor through the API: use /account/security, which asks for your second factor first",
            ))
        } else {
            Ok(())
        }
    }

    /// Appends this caller's successful `action` on `target` to the audit trail of `tenant`
    /// (every admin change is audited, DESIGN §9 item 11).
    ///
    /// # Errors
    /// Storage failures (500).
    pub async fn audit(
        &self,
        state: &AppState,
        tenant: Option<&TenantId>,
        action: &str,
        target: &str,
        ip: Option<&str>,
    ) -> Result<(), ApiError> {
        state
            .audit(crate::state::Audit {
                tenant,
                actor: self.actor(),
                action,
                target,
                outcome: crate::domain::Outcome::Success,
                source_ip: ip,
            })
            .await?;
        Ok(())
    }

    /// The actor name for the audit log: the token's subject, or the person's user id.
    #[must_use]
    pub fn actor(&self) -> &str {
        match &self.0 {
            Caller::Token { claims, .. } => &claims.sub,
            Caller::Person { user, .. } => user.id.as_str(),
        }
    }
}

/// Resolves a company given by id or by name.
pub async fn resolve_tenant(
    state: &AppState,
    id_or_name: &str,
) -> Result<crate::domain::Tenant, ApiError> {
    if let Some(t) = state
        .store
        .get_tenant(&TenantId::from_string(id_or_name.to_owned()))
        .await?
    {
        return Ok(t);
    }
    state
        .store
        .find_tenant_by_name(id_or_name)
        .await?
        .ok_or_else(|| company_not_found(id_or_name))
}

fn company_not_found(id_or_name: &str) -> ApiError {
    ApiError::not_found(format!("company `{id_or_name}` not found"))
}

/// Checks a scope or role name (RFC 6749 scope-token characters).
pub fn check_scope_token(field: &str, s: &str) -> Result<(), ApiError> {
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            field,
            format!(
                "`{s}` is not a valid name (printable ASCII, no spaces, quotes or backslashes)"
            ),
        ))
    }
}

#[cfg(test)]
mod permission_tests;
#[cfg(test)]
mod tests;
