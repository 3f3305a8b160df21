//! Companies.

use super::{ApiError, ApiJson, Principal, TenantParam};
use crate::domain::{Tenant, normalize_company_name};
use crate::extract::ClientIp;
use crate::secret::TenantId;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use padlock_policy::TwoFactorPolicy;
use padlock_policy::permission::Permission;
use serde::{Deserialize, Serialize};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewTenant {
    name: String,
}

#[derive(Serialize)]
pub(super) struct TenantView {
    id: String,
    name: String,
    two_factor: TwoFactorPolicy,
    duo_configured: bool,
    /// The Duo integration's public half; the secret key is never shown.
    #[serde(skip_serializing_if = "Option::is_none")]
    duo: Option<DuoView>,
    /// The company's own roles (the built-in `admin` and `user` are not listed).
    roles: Vec<padlock_policy::permission::Role>,
    /// The operator company (created at `/setup`): its administrators are operators.
    operator: bool,
}

#[derive(Serialize)]
pub(super) struct DuoView {
    ikey: String,
    api_host: String,
}

impl From<Tenant> for TenantView {
    fn from(t: Tenant) -> Self {
        TenantView {
            id: t.id.to_string(),
            name: t.name,
            two_factor: t.two_factor,
            duo_configured: t.duo.is_some(),
            duo: t.duo.map(|d| DuoView {
                ikey: d.ikey,
                api_host: d.api_host,
            }),
            roles: t.roles,
            operator: t.operator,
        }
    }
}

#[utoipa::path(
    post,
    operation_id = "tenants_create",
    path = "/tenants",
    tag = "companies",
    summary = "Create a company",
    request_body = NewTenant,
    responses((status = 201, description = "The company"), (status = 401, description = "{error, message}"), (status = 403, description = "{error, message}"), (status = 409, description = "{error, message}"), (status = 422, description = "{error, message}")),
)]
pub(super) async fn create(
    State(state): State<AppState>,
    p: Principal,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<NewTenant>,
) -> Result<(StatusCode, Json<TenantView>), ApiError> {
    p.require_operator()?;
    let name = normalize_company_name(&body.name).map_err(|m| ApiError::invalid("name", m))?;
    let tenant = Tenant {
        id: TenantId::generate(),
        name,
        two_factor: TwoFactorPolicy::default(),
        duo: None,
        roles: Vec::new(),
        operator: false,
        created_at: state.clock.now(),
    };
    state.store.create_tenant(&tenant).await?;
    p.audit(
        &state,
        Some(&tenant.id),
        "tenant.create",
        &tenant.name,
        ip.as_deref(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(tenant.into())))
}

#[utoipa::path(
    get,
    operation_id = "tenants_list",
    path = "/tenants",
    tag = "companies",
    summary = "List companies",
    responses((status = 200, description = "The companies, by name"), (status = 401, description = "{error, message}"), (status = 403, description = "{error, message}")),
)]
pub(super) async fn list(
    State(state): State<AppState>,
    p: Principal,
) -> Result<Json<Vec<TenantView>>, ApiError> {
    p.require_operator()?;
    Ok(Json(
        state
            .store
            .list_tenants()
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

#[utoipa::path(
    get,
    operation_id = "tenants_show",
    path = "/tenants/{tenant}",
    tag = "companies",
    summary = "Show a company",
    params(TenantParam),
    responses((status = 200, description = "The company"), (status = 401, description = "{error, message}"), (status = 403, description = "{error, message}"), (status = 404, description = "{error, message}")),
)]
pub(super) async fn show(
    State(state): State<AppState>,
    p: Principal,
    Path(tenant): Path<String>,
) -> Result<Json<TenantView>, ApiError> {
    let tenant = p.company(&state, &tenant, &Permission::EVERY).await?;
    Ok(Json(tenant.into()))
}
