//! Users of a company.

use super::{ApiError, ApiJson, Principal, check_scope_token, resolve_tenant};
use crate::domain::{Outcome, User, normalize_email};
use crate::extract::ClientIp;
use crate::password::{MAX_PASSWORD_LEN, MIN_PASSWORD_LEN};
use crate::secret::{Password, UserId};
use crate::state::{AppState, Audit};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use padlock_policy::Method;
use padlock_policy::mobile::E164;
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewUser {
    email: String,
    password: Password,
    mobile: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
    unix_name: Option<String>,
}

#[derive(Serialize)]
pub(super) struct UserView {
    id: String,
    email: String,
    mobile: Option<String>,
    roles: Vec<String>,
    api_account: bool,
    unix_name: String,
    disabled: bool,
    preferred_method: Option<Method>,
    totp_enrolled: bool,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        UserView {
            unix_name: u.unix_name().to_owned(),
            id: u.id.to_string(),
            email: u.email,
            mobile: u.mobile.map(String::from),
            roles: u.roles,
            api_account: u.api_account,
            disabled: u.disabled,
            preferred_method: u.preferred_method,
            totp_enrolled: u.totp.is_some(),
        }
    }
}

#[derive(Serialize)]
pub(super) struct Created {
    id: String,
    email: String,
}

fn check_unix_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && !name.starts_with('-')
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.')
        });
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "unix_name",
            "use 1 to 32 of a-z 0-9 _ - . (not starting with -)",
        ))
    }
}

pub(super) async fn create(
    State(state): State<AppState>,
    p: Principal,
    ClientIp(ip): ClientIp,
    Path(tenant): Path<String>,
    ApiJson(body): ApiJson<NewUser>,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    let tenant = resolve_tenant(&state, &tenant).await?;
    p.require_tenant_admin(&tenant.id)?;
    let email = normalize_email(&body.email).map_err(|m| ApiError::invalid("email", m))?;
    let len = body.password.secret().chars().count();
    if len < MIN_PASSWORD_LEN || body.password.secret().len() > MAX_PASSWORD_LEN {
        return Err(ApiError::invalid(
            "password",
            format!("must be {MIN_PASSWORD_LEN} to {MAX_PASSWORD_LEN} characters"),
        ));
    }
    let mobile = body
        .mobile
        .as_deref()
        .filter(|m| !m.trim().is_empty())
        .map(E164::parse)
        .transpose()
        .map_err(|e| ApiError::invalid("mobile", e))?;
    for r in &body.roles {
        check_scope_token("roles", r)?;
    }
    if let Some(n) = &body.unix_name {
        check_unix_name(n)?;
    }
    let password_hash = state
        .passwords
        .hash(body.password)
        .await
        .map_err(anyhow::Error::from)?;
    let user = User {
        id: UserId::generate(),
        tenant: tenant.id.clone(),
        email,
        mobile,
        password_hash,
        roles: body.roles,
        preferred_method: None,
        totp: None,
        duo: None,
        api_account: false,
        unix_name: body.unix_name,
        disabled: false,
        created_at: state.clock.now(),
    };
    state.store.create_user(&user).await?;
    state
        .audit(Audit {
            tenant: Some(&tenant.id),
            actor: p.actor(),
            action: "user.create",
            target: &user.email,
            outcome: Outcome::Success,
            source_ip: ip.as_deref(),
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(Created {
            id: user.id.to_string(),
            email: user.email,
        }),
    ))
}

pub(super) async fn list(
    State(state): State<AppState>,
    p: Principal,
    Path(tenant): Path<String>,
) -> Result<Json<Vec<UserView>>, ApiError> {
    let tenant = resolve_tenant(&state, &tenant).await?;
    p.require_tenant_admin(&tenant.id)?;
    Ok(Json(
        state
            .store
            .list_users(&tenant.id)
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

/// `PATCH /api/v1/tenants/{tenant}/users/{user}` body: the fields to change, absent ones kept
/// (for now the Unix name; `null` puts back the default, the email's local part).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UserChange {
    #[serde(default, deserialize_with = "present")]
    unix_name: Option<Option<String>>,
}

/// A field that is present (possibly `null`), as opposed to absent.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// `PATCH /api/v1/tenants/{tenant}/users/{user}` (`user`: id or email) → the user. Errors: 403
/// without `company.manage` for the company, 404 for an unknown user, 422 for a malformed Unix
/// name, 409 when another user of the company has it (a user's default is the local part of
/// their email).
pub(super) async fn update(
    State(state): State<AppState>,
    p: Principal,
    ClientIp(ip): ClientIp,
    Path((tenant, user)): Path<(String, String)>,
    ApiJson(body): ApiJson<UserChange>,
) -> Result<Json<UserView>, ApiError> {
    let tenant = resolve_tenant(&state, &tenant).await?;
    p.require_tenant_admin(&tenant.id)?;
    let found = match state
        .store
        .get_user(&UserId::from_string(user.clone()))
        .await?
    {
        Some(u) => Some(u),
        None => state.store.find_user_by_email(&user).await?,
    };
    let mut u = found
        .filter(|u| u.tenant == tenant.id)
        .ok_or_else(|| ApiError::not_found(format!("user `{user}` not found")))?;
    if let Some(change) = body.unix_name {
        if let Some(n) = &change {
            check_unix_name(n)?;
        }
        u.unix_name = change;
        state.store.update_user(&u).await?;
    }
    state
        .audit(Audit {
            tenant: Some(&tenant.id),
            actor: p.actor(),
            action: "user.update",
            target: &u.email,
            outcome: Outcome::Success,
            source_ip: ip.as_deref(),
        })
        .await?;
    Ok(Json(u.into()))
}
