//! PAM hosts (operator only): the credential a host running `pam_padlock.so` calls `/pam/v1`
//! with, bound to one company. The secret is generated here (256 bits), returned once, and stored
//! only as SHA-256, like client secrets (DESIGN §9 item 7).

use super::clients::check_name;
use super::{ApiError, ApiJson, Principal, TenantParam, resolve_tenant};
use crate::crypto::{random_token, sha256};
use crate::domain::{Client, ClientKind};
use crate::extract::ClientIp;
use crate::secret::ClientId;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewHost {
    name: String,
}

/// A new host's credential, shown once.
#[derive(Serialize)]
pub(super) struct HostCredential {
    host_id: String,
    host_secret: String,
}

/// `POST /api/v1/tenants/{tenant}/pam-hosts` `{"name"}` → 201 `{"host_id","host_secret"}`.
/// Errors: 403 without `padlock.admin`, 404 for an unknown company, 422 for a bad name.
#[utoipa::path(
    post,
    operation_id = "pam_hosts_create",
    path = "/tenants/{tenant}/pam-hosts",
    tag = "PAM hosts",
    summary = "Create a PAM host credential bound to the company (the secret is shown once)",
    params(TenantParam),
    request_body = NewHost,
    responses((status = 201, description = "{host_id, host_secret} (the secret shown once)"), (status = 401, description = "{error, message}"), (status = 403, description = "{error, message}"), (status = 404, description = "{error, message}"), (status = 422, description = "{error, message}")),
)]
pub(super) async fn create(
    State(state): State<AppState>,
    p: Principal,
    ClientIp(ip): ClientIp,
    Path(tenant): Path<String>,
    ApiJson(body): ApiJson<NewHost>,
) -> Result<(StatusCode, Json<HostCredential>), ApiError> {
    p.require_operator()?;
    let tenant = resolve_tenant(&state, &tenant).await?;
    let name = check_name(&body.name)?;
    let secret = random_token(32);
    let host = Client {
        id: ClientId::generate(),
        name,
        kind: ClientKind::PamHost,
        secret_sha256: Some(hex::encode(sha256(secret.as_bytes()))),
        scopes: Vec::new(),
        tenant: Some(tenant.id.clone()),
        created_at: state.clock.now(),
    };
    state.store.put_client(&host).await?;
    p.audit(
        &state,
        Some(&tenant.id),
        "pam_host.create",
        host.id.as_str(),
        ip.as_deref(),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(HostCredential {
            host_id: host.id.to_string(),
            host_secret: secret,
        }),
    ))
}

/// One PAM host as listed (never its secret).
#[derive(Serialize)]
pub(super) struct HostView {
    host_id: String,
    name: String,
    tenant: String,
    /// Unix seconds.
    created_at: u64,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    tenant: Option<String>,
}

/// `GET /api/v1/pam-hosts[?tenant=ID_OR_NAME]` → the PAM hosts, by name.
#[utoipa::path(
    get,
    operation_id = "pam_hosts_list",
    path = "/pam-hosts",
    tag = "PAM hosts",
    summary = "List PAM hosts (never their secrets)",
    params(ListQuery),
    responses((status = 200, description = "The PAM hosts, by name"), (status = 401, description = "{error, message}"), (status = 403, description = "{error, message}"), (status = 404, description = "{error, message}")),
)]
pub(super) async fn list(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<HostView>>, ApiError> {
    p.require_operator()?;
    let only = match q.tenant {
        Some(t) => Some(resolve_tenant(&state, &t).await?.id),
        None => None,
    };
    let mut hosts: Vec<HostView> = state
        .store
        .list_clients()
        .await?
        .into_iter()
        .filter(|c| c.kind == ClientKind::PamHost)
        .filter_map(|c| Some((c.tenant.clone()?, c)))
        .filter(|(t, _)| only.as_ref().is_none_or(|o| o == t))
        .map(|(t, c)| HostView {
            host_id: c.id.to_string(),
            name: c.name,
            tenant: t.to_string(),
            created_at: c.created_at,
        })
        .collect();
    hosts.sort_by(|a, b| (&a.name, &a.host_id).cmp(&(&b.name, &b.host_id)));
    Ok(Json(hosts))
}

/// `DELETE /api/v1/pam-hosts/{host_id}` → 200 `{"removed": host_id}`; the host's next call gets
/// 401. 404 when no PAM host has that id.
#[utoipa::path(
    delete,
    operation_id = "pam_hosts_remove",
    path = "/pam-hosts/{host}",
    tag = "PAM hosts",
    summary = "Remove a PAM host: its next call to /pam/v1 is refused",
    params(("host" = String, Path, description = "the host_id")),
    responses((status = 200, description = "{removed}"), (status = 401, description = "{error, message}"), (status = 403, description = "{error, message}"), (status = 404, description = "{error, message}")),
)]
pub(super) async fn remove(
    State(state): State<AppState>,
    p: Principal,
    ClientIp(ip): ClientIp,
    Path(host): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    p.require_operator()?;
    let id = ClientId::from_string(host);
    let found = state
        .store
        .get_client(&id)
        .await?
        .filter(|c| c.kind == ClientKind::PamHost)
        .ok_or_else(|| ApiError::not_found(format!("PAM host `{}` not found", id.as_str())))?;
    state.store.delete_client(&id).await?;
    p.audit(
        &state,
        found.tenant.as_ref(),
        "pam_host.remove",
        id.as_str(),
        ip.as_deref(),
    )
    .await?;
    Ok(Json(serde_json::json!({ "removed": id.as_str() })))
}
