//! A user's Duo enrolment, configured by a company administrator (`tenant.admin` of the company,
//! or an operator) from the API or `padlock user duo`; the user's own path is the padlock page.
//! The administrator vouches for what they link: no push goes to the Duo user. `POST …/users/{user}/duo/enroll` creates the Duo
//! user and returns Duo's activation QR code and link for the user's phone; `POST
//! …/users/{user}/duo/enroll-status` saves the enrolment once Duo says the phone is active; `PUT
//! …/users/{user}/duo` links an existing Duo user Duo can authenticate; `DELETE …/users/{user}/duo`
//! removes the enrolment.
//!
//! Errors of every handler: 401/403 (the caller), 404 (company or user), 422 (an API account; a
//! company that does not offer Duo or whose keys do not open; Duo refused the request; a bad
//! username; preauth did not answer `auth`), 502 (Duo unavailable or its answer unreadable).

use super::users::{UserView, second_factor_target};
use super::{ApiError, ApiJson, Principal, TenantUserParam};
use crate::domain::{Tenant, User};
use crate::duo::auth::EnrollStatus;
use crate::duo::client::{DuoClient, DuoError};
use crate::extract::ClientIp;
use crate::factor::engine;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use padlock_policy::Method;
use padlock_policy::duo::PreauthResult;
use serde::{Deserialize, Serialize};

/// How long an activation made here stays valid, seconds (Duo's `valid_secs`).
const ACTIVATION_SECS: u64 = 24 * 60 * 60;

/// The company's Duo client, or 422 when the company does not offer Duo.
fn client(state: &AppState, tenant: &Tenant) -> Result<DuoClient, ApiError> {
    if !tenant.two_factor.methods.duo {
        return Err(ApiError::invalid("duo", "the company does not offer Duo"));
    }
    engine::duo_client(state, tenant)
        .ok_or_else(|| ApiError::invalid("duo", "the company has no usable Duo keys"))
}

/// A Duo call's failure as the API answers it: Duo's refusal 422 with its message, an outage 502.
fn duo_failed(e: &DuoError) -> ApiError {
    match e {
        DuoError::Refused { .. } => {
            ApiError::invalid("duo", format!("Duo refused: {}", e.message()))
        }
        other => {
            tracing::warn!(error = %other, "Duo call from the admin API failed");
            ApiError::upstream(format!("Duo cannot be reached: {other}"))
        }
    }
}

/// [`engine::save_duo_enrolment`] over `user` as read, or 409 when it changed meanwhile.
async fn save(
    state: &AppState,
    user: User,
    duo_user_id: String,
    username: String,
) -> Result<User, ApiError> {
    engine::save_duo_enrolment(state, &user, duo_user_id, username)
        .await?
        .ok_or_else(|| ApiError::changed("user"))
}

/// Duo's activation for a new Duo user.
#[derive(Serialize)]
pub(super) struct Activation {
    user_id: String,
    username: String,
    activation_code: String,
    activation_barcode: String,
    activation_url: String,
    expiration: u64,
}

/// `POST /api/v1/tenants/{tenant}/users/{user}/duo/enroll`: creates a Duo user named by the
/// user's email (Duo Auth API `/auth/v2/enroll`), its activation valid 24 hours
/// ([`ACTIVATION_SECS`]). Nothing is saved until `enroll-status` says it is active.
#[utoipa::path(
    post,
    operation_id = "duo_enrolment_enroll",
    path = "/tenants/{tenant}/users/{user}/duo/enroll",
    tag = "second factor",
    summary = "Create a Duo user named by the user's email (Duo /auth/v2/enroll) and return Duo's activation for the user's phone; nothing is saved until enroll-status says success",
    params(TenantUserParam),
    responses((status = 201, description = "Duo's activation (QR code, link) to show"), (status = 401, description = "{error, message}"), (status = 403, description = "{error, message}"), (status = 404, description = "{error, message}"), (status = 422, description = "{error, message}"), (status = 502, description = "{error, message}")),
)]
pub(super) async fn enroll(
    State(state): State<AppState>,
    p: Principal,
    ClientIp(ip): ClientIp,
    Path((tenant, user)): Path<(String, String)>,
) -> Result<(StatusCode, Json<Activation>), ApiError> {
    let (tenant, user) = second_factor_target(&state, &p, &tenant, &user).await?;
    let e = client(&state, &tenant)?
        .enroll(&user.email, ACTIVATION_SECS)
        .await
        .map_err(|e| duo_failed(&e))?;
    p.audit(
        &state,
        Some(&user.tenant),
        "user.duo.enroll",
        &user.email,
        ip.as_deref(),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(Activation {
            user_id: e.user_id,
            username: e.username,
            activation_code: e.activation_code,
            activation_barcode: e.activation_barcode,
            activation_url: e.activation_url,
            expiration: e.expiration,
        }),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct StatusBody {
    user_id: String,
    activation_code: String,
}

#[derive(Serialize)]
pub(super) struct StatusView {
    /// `success` (saved), `waiting` or `invalid` (expired or unknown).
    status: &'static str,
    user: UserView,
}

/// `POST /api/v1/tenants/{tenant}/users/{user}/duo/enroll-status`: asks Duo whether the
/// activation of `user_id` completed (`/auth/v2/enroll_status`); on `success` the user's email —
/// the name `enroll` gives the Duo user — is saved as the Duo username with that `user_id`
/// (Padlock does not check that they come from this user's `enroll`: the administrator vouches),
/// and Duo becomes the user's method.
#[utoipa::path(
    post,
    operation_id = "duo_enrolment_enroll_status",
    path = "/tenants/{tenant}/users/{user}/duo/enroll-status",
    tag = "second factor",
    summary = "Ask Duo whether the activation of user_id completed (Duo /auth/v2/enroll_status); on success the user's email is saved as the Duo username (the name enroll gives the Duo user) with the given user_id, and Duo becomes the user's method",
    params(TenantUserParam),
    request_body = StatusBody,
    responses((status = 200, description = "Whether the activation completed"), (status = 401, description = "{error, message}"), (status = 403, description = "{error, message}"), (status = 404, description = "{error, message}"), (status = 409, description = "{error, message}"), (status = 422, description = "{error, message}"), (status = 502, description = "{error, message}")),
)]
pub(super) async fn enroll_status(
    State(state): State<AppState>,
    p: Principal,
    ClientIp(ip): ClientIp,
    Path((tenant, user)): Path<(String, String)>,
    ApiJson(body): ApiJson<StatusBody>,
) -> Result<Json<StatusView>, ApiError> {
    let (tenant, user) = second_factor_target(&state, &p, &tenant, &user).await?;
    let status = client(&state, &tenant)?
        .enroll_status(&body.user_id, &body.activation_code)
        .await
        .map_err(|e| duo_failed(&e))?;
    let (status, user) = match status {
        EnrollStatus::Success => {
            // The Duo user `enroll` made is named by the user's email.
            let username = user.email.clone();
            let user = save(&state, user, body.user_id, username).await?;
            p.audit(
                &state,
                Some(&user.tenant),
                "user.duo.enrolled",
                &user.email,
                ip.as_deref(),
            )
            .await?;
            ("success", user)
        }
        EnrollStatus::Waiting => ("waiting", user),
        EnrollStatus::Invalid => ("invalid", user),
    };
    Ok(Json(StatusView {
        status,
        user: user.into(),
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct LinkBody {
    username: String,
}

/// `PUT /api/v1/tenants/{tenant}/users/{user}/duo`: links the existing Duo user `username`, which
/// Duo's preauth must be able to authenticate (`auth`); Duo becomes the user's method.
#[utoipa::path(
    put,
    operation_id = "duo_enrolment_link",
    path = "/tenants/{tenant}/users/{user}/duo",
    tag = "second factor",
    summary = "Link the user to an existing Duo user (Duo's preauth must answer `auth`); Duo becomes the user's method",
    params(TenantUserParam),
    request_body = LinkBody,
    responses((status = 200, description = "The user"), (status = 401, description = "{error, message}"), (status = 403, description = "{error, message}"), (status = 404, description = "{error, message}"), (status = 409, description = "{error, message}"), (status = 422, description = "{error, message}"), (status = 502, description = "{error, message}")),
)]
pub(super) async fn link(
    State(state): State<AppState>,
    p: Principal,
    ClientIp(ip): ClientIp,
    Path((tenant, user)): Path<(String, String)>,
    ApiJson(body): ApiJson<LinkBody>,
) -> Result<Json<UserView>, ApiError> {
    let (tenant, user) = second_factor_target(&state, &p, &tenant, &user).await?;
    let username = body.username.trim();
    if username.is_empty() || username.len() > 100 || username.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "username",
            "1 to 100 characters, no control characters",
        ));
    }
    let pre = client(&state, &tenant)?
        .preauth(username, None)
        .await
        .map_err(|e| duo_failed(&e))?;
    if pre.result != PreauthResult::Auth {
        return Err(ApiError::invalid(
            "username",
            "Duo cannot authenticate that user (not enrolled in Duo, bypassed, or denied)",
        ));
    }
    let user = save(&state, user, String::new(), username.to_owned()).await?;
    p.audit(
        &state,
        Some(&user.tenant),
        "user.duo.link",
        &user.email,
        ip.as_deref(),
    )
    .await?;
    Ok(Json(user.into()))
}

/// `DELETE /api/v1/tenants/{tenant}/users/{user}/duo`: removes the user's Duo enrolment (in
/// Padlock; the Duo user stays in Duo). A user whose method was Duo is then asked for SMS/Email
/// (or TOTP they set up) if the company offers it, else refused until Duo is set up again.
#[utoipa::path(
    delete,
    operation_id = "duo_enrolment_remove",
    path = "/tenants/{tenant}/users/{user}/duo",
    tag = "second factor",
    summary = "Remove the user's Duo enrolment (in Padlock only). A company that also offers SMS/Email (or TOTP the user set up) then asks for that; in a company that offers only Duo the user is refused until linked or enrolled again",
    params(TenantUserParam),
    responses((status = 200, description = "The user"), (status = 401, description = "{error, message}"), (status = 403, description = "{error, message}"), (status = 404, description = "{error, message}"), (status = 409, description = "{error, message}"), (status = 422, description = "{error, message}")),
)]
pub(super) async fn remove(
    State(state): State<AppState>,
    p: Principal,
    ClientIp(ip): ClientIp,
    Path((tenant, user)): Path<(String, String)>,
) -> Result<Json<UserView>, ApiError> {
    let (_, read) = second_factor_target(&state, &p, &tenant, &user).await?;
    let mut user = read.clone();
    user.duo = None;
    if user.preferred_method == Some(Method::Duo) {
        user.preferred_method = None;
    }
    if !state.store.swap_user(&read, &user).await? {
        return Err(ApiError::changed("user"));
    }
    p.audit(
        &state,
        Some(&user.tenant),
        "user.duo.remove",
        &user.email,
        ip.as_deref(),
    )
    .await?;
    Ok(Json(user.into()))
}
