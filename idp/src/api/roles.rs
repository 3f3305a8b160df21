//! A company's roles: the built-in `admin` and `user`, and its own named sets of permissions
//! (DESIGN.md §4 Role).

use super::{ApiError, ApiJson, Principal, TenantParam};
use crate::domain::Tenant;
use crate::extract::ClientIp;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use padlock_policy::permission::{
    Permission, Permissions, ROLE_ADMIN, ROLE_USER, Role, check_role_name,
};
use serde::{Deserialize, Serialize};

/// A role as the API shows it.
#[derive(Serialize)]
pub(super) struct RoleView {
    name: String,
    /// The permissions' names (`company.manage`, `users.manage`, `audit.read`).
    permissions: Permissions,
    /// `admin` and `user`: they cannot be changed or deleted.
    built_in: bool,
}

/// `GET /api/v1/tenants/{tenant}/roles` (`users.manage` or `company.manage`) → the built-in
/// roles, then the company's own in the order they were made. Errors: 401/403, 404.
#[utoipa::path(
    get,
    operation_id = "roles_list",
    path = "/tenants/{tenant}/roles",
    tag = "roles",
    summary = "The built-in roles (admin, user) and the company's own, with their permissions",
    params(TenantParam),
    responses((status = 200, description = "[{name, permissions, built_in}]"), (status = 401, description = "{error, message}"), (status = 403, description = "{error, message}"), (status = 404, description = "{error, message}")),
)]
pub(super) async fn list(
    State(state): State<AppState>,
    p: Principal,
    Path(tenant): Path<String>,
) -> Result<Json<Vec<RoleView>>, ApiError> {
    let tenant = p
        .company(
            &state,
            &tenant,
            &[Permission::UsersManage, Permission::CompanyManage],
        )
        .await?;
    let built_in = [
        (ROLE_ADMIN, Permissions::ALL),
        (ROLE_USER, Permissions::NONE),
    ]
    .into_iter()
    .map(|(name, permissions)| RoleView {
        name: name.into(),
        permissions,
        built_in: true,
    });
    let own = tenant.roles.into_iter().map(|r| RoleView {
        name: r.name,
        permissions: r.permissions,
        built_in: false,
    });
    Ok(Json(built_in.chain(own).collect()))
}

/// `PUT /api/v1/tenants/{tenant}/roles/{role}` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RoleBody {
    /// Every permission the role holds (may be empty).
    #[schema(value_type = Vec<String>)]
    permissions: Permissions,
}

/// `PUT /api/v1/tenants/{tenant}/roles/{role}` (`company.manage`): creates the company's role
/// `role` or replaces its permissions; its holders' rights change at once. Audited `role.set`.
/// Errors: 401/403 (also for granting a permission the caller does not hold), 404, 422 (a
/// malformed or built-in name; an unknown permission; or leaving the company without an enabled
/// person holding `company.manage`), 409 (the company changed meanwhile).
#[utoipa::path(
    put,
    operation_id = "roles_set",
    path = "/tenants/{tenant}/roles/{role}",
    tag = "roles",
    summary = "Create the company's role or replace its permissions (audited role.set); nobody grants a permission they do not hold",
    params(TenantParam, ("role" = String, Path, description = "the role's name")),
    request_body = RoleBody,
    responses((status = 200, description = "{name, permissions, built_in}"), (status = 400, description = "{error, message}"), (status = 401, description = "{error, message}"), (status = 403, description = "{error, message}"), (status = 404, description = "{error, message}"), (status = 409, description = "{error, message}"), (status = 422, description = "{error, message}")),
)]
pub(super) async fn set(
    State(state): State<AppState>,
    p: Principal,
    ClientIp(ip): ClientIp,
    Path((tenant, role)): Path<(String, String)>,
    ApiJson(body): ApiJson<RoleBody>,
) -> Result<Json<RoleView>, ApiError> {
    let read = p
        .company(&state, &tenant, &[Permission::CompanyManage])
        .await?;
    check_role_name(&role).map_err(|e| ApiError::invalid("role", e))?;
    p.may_grant(body.permissions)?;
    // Replacing a role also takes from its holders: only someone holding what it held may.
    if let Some(old) = read.roles.iter().find(|r| r.name == role) {
        p.may_grant(old.permissions)?;
    }
    let mut next = read.clone();
    let new = Role {
        name: role.clone(),
        permissions: body.permissions,
    };
    match next.roles.iter_mut().find(|r| r.name == role) {
        Some(r) => *r = new,
        None => next.roles.push(new),
    }
    write(&state, &p, &read, &next, "role.set", &role, ip.as_deref()).await?;
    Ok(Json(RoleView {
        name: role,
        permissions: body.permissions,
        built_in: false,
    }))
}

/// `DELETE /api/v1/tenants/{tenant}/roles/{role}` (`company.manage`) → `{"removed": role}`:
/// deletes the company's own role. Audited `role.delete`. Errors: 401/403, 404 (no such role of the company), 409 (a user
/// still holds it — take it from them first — or the company changed meanwhile).
#[utoipa::path(
    delete,
    operation_id = "roles_remove",
    path = "/tenants/{tenant}/roles/{role}",
    tag = "roles",
    summary = "Delete the company's role; refused while a user holds it (audited role.delete)",
    params(TenantParam, ("role" = String, Path, description = "the role's name")),
    responses((status = 200, description = "{removed}"), (status = 401, description = "{error, message}"), (status = 403, description = "{error, message}"), (status = 404, description = "{error, message}"), (status = 409, description = "{error, message}")),
)]
pub(super) async fn remove(
    State(state): State<AppState>,
    p: Principal,
    ClientIp(ip): ClientIp,
    Path((tenant, role)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let read = p
        .company(&state, &tenant, &[Permission::CompanyManage])
        .await?;
    if let Some(old) = read.roles.iter().find(|r| r.name == role) {
        p.may_grant(old.permissions)?;
    }
    let mut next = read.clone();
    next.roles.retain(|r| r.name != role);
    if next.roles.len() == read.roles.len() {
        return Err(ApiError::not_found(format!("role `{role}` not found")));
    }
    let users = state.store.list_users(&read.id).await?;
    if let Some(u) = users.iter().find(|u| u.roles.contains(&role)) {
        return Err(ApiError::conflict(format!(
            "{} still holds role `{role}`: take it from them first",
            u.email
        )));
    }
    write(
        &state,
        &p,
        &read,
        &next,
        "role.delete",
        &role,
        ip.as_deref(),
    )
    .await?;
    Ok(Json(serde_json::json!({ "removed": role })))
}

/// Writes `next` over the company as `read` (compare-and-swap) unless that leaves it without an
/// enabled person holding `company.manage`, and audits `action` on `role`.
async fn write(
    state: &AppState,
    p: &Principal,
    read: &Tenant,
    next: &Tenant,
    action: &str,
    role: &str,
    ip: Option<&str>,
) -> Result<(), ApiError> {
    let users = state.store.list_users(&read.id).await?;
    if users.iter().any(|u| read.is_manager(u)) && !users.iter().any(|u| next.is_manager(u)) {
        return Err(ApiError::invalid(
            "permissions",
            "no enabled person of the company would hold company.manage any more",
        ));
    }
    if !state.store.swap_tenant(read, next).await? {
        return Err(ApiError::changed("company"));
    }
    p.audit(state, Some(&read.id), action, role, ip).await?;
    Ok(())
}
