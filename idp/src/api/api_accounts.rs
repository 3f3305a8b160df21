//! API accounts (DESIGN.md §2 rule 8): users of a company that authenticate only by client
//! credentials, with the scopes they were given and never a second factor. Made new, or by
//! setting the flag on an existing user; their secret is generated here (256 bits), returned
//! once, stored only as SHA-256, and can be rotated.

use super::clients::{Credentials, check_name};
use super::users::{UserView, find_user, keep_a_manager};
use super::{
    ApiError, ApiJson, Principal, SCOPE_OPERATOR, TenantParam, TenantUserParam, check_scope_token,
};
use crate::crypto::{random_token, sha256};
use crate::domain::{Client, ClientKind, Tenant, User};
use crate::extract::ClientIp;
use crate::secret::{ClientId, UserId};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use padlock_policy::permission::{Permission, Permissions, scope_permissions};
use serde::Deserialize;

/// `POST /api/v1/tenants/{tenant}/api-accounts` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewApiAccount {
    /// The credential's display name.
    name: String,
    /// The scopes its tokens may carry (e.g. `tenant.admin`, or single permissions such as
    /// `users.manage`); it holds roles of the same names.
    scopes: Vec<String>,
}

/// `PUT /api/v1/tenants/{tenant}/users/{user}/api-account` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ApiAccountFlag {
    /// The credential's display name (default: the user's email).
    name: Option<String>,
    /// The scopes its tokens may carry; what they open is also bounded by the user's roles.
    scopes: Vec<String>,
}

/// Checks an API account's scopes: at least one, well-formed, not `padlock.admin`, and nothing
/// the caller does not hold (403).
fn check_scopes(p: &Principal, scopes: &[String]) -> Result<(), ApiError> {
    if scopes.is_empty() {
        return Err(ApiError::invalid(
            "scopes",
            "an API account needs an explicit list of scopes",
        ));
    }
    for s in scopes {
        check_scope_token("scopes", s)?;
        if s == SCOPE_OPERATOR {
            return Err(ApiError::invalid(
                "scopes",
                "padlock.admin is reserved for the operator credential",
            ));
        }
    }
    p.may_grant(
        scopes
            .iter()
            .fold(Permissions::NONE, |acc, s| acc.union(scope_permissions(s))),
    )
}

/// Stores a new client-credentials client for the API account `user` and returns it with its
/// secret (shown once).
async fn new_credential(
    state: &AppState,
    tenant: &Tenant,
    user: &UserId,
    name: String,
    scopes: Vec<String>,
) -> Result<Credentials, ApiError> {
    let secret = random_token(32);
    let client = Client {
        id: ClientId::generate(),
        name,
        kind: ClientKind::ApiAccount { user: user.clone() },
        secret_sha256: Some(hex::encode(sha256(secret.as_bytes()))),
        scopes,
        tenant: Some(tenant.id.clone()),
        created_at: state.clock.now(),
    };
    state.store.put_client(&client).await?;
    Ok(Credentials {
        client_id: client.id.to_string(),
        client_secret: Some(secret),
        user_id: Some(user.to_string()),
    })
}

/// `POST /api/v1/tenants/{tenant}/api-accounts` (`company.manage`) → 201 `{"client_id",
/// "client_secret", "user_id"}`: a new API account (a user that can never sign in
/// interactively) holding roles named after its scopes. Audited `api_account.create`. Errors:
/// 401/403 (also for scopes granting a permission the caller does not hold), 404, 422.
#[utoipa::path(
    post,
    operation_id = "api_accounts_create",
    path = "/tenants/{tenant}/api-accounts",
    tag = "API accounts",
    summary = "Create an API account (client credentials only, exempt from 2FA)",
    params(TenantParam),
    request_body = NewApiAccount,
    responses((status = 201, description = "{client_id, client_secret, user_id}"), (status = 401, description = "{error, message}"), (status = 403, description = "{error, message}"), (status = 404, description = "{error, message}"), (status = 422, description = "{error, message}")),
)]
pub(super) async fn create(
    State(state): State<AppState>,
    p: Principal,
    ClientIp(ip): ClientIp,
    Path(tenant): Path<String>,
    ApiJson(body): ApiJson<NewApiAccount>,
) -> Result<(StatusCode, Json<Credentials>), ApiError> {
    let tenant = p
        .company(&state, &tenant, &[Permission::CompanyManage])
        .await?;
    let name = check_name(&body.name)?;
    check_scopes(&p, &body.scopes)?;
    let user_id = UserId::generate();
    // Its login name is unreachable and it has no usable password: its only credential is the
    // client secret.
    let account = User {
        id: user_id.clone(),
        tenant: tenant.id.clone(),
        email: format!("{}@api-account.invalid", user_id.as_str()),
        mobile: None,
        password_hash: "!".into(),
        roles: body.scopes.clone(),
        preferred_method: None,
        totp: None,
        duo: None,
        api_account: true,
        unix_name: None,
        disabled: false,
        session_epoch: 0,
        created_at: state.clock.now(),
    };
    state.store.create_user(&account).await?;
    let credentials = new_credential(&state, &tenant, &user_id, name, body.scopes).await?;
    p.audit(
        &state,
        Some(&tenant.id),
        "api_account.create",
        &credentials.client_id,
        ip.as_deref(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(credentials)))
}

/// `PUT /api/v1/tenants/{tenant}/users/{user}/api-account` (`company.manage`) → 201
/// `{"client_id", "client_secret", "user_id"}`: makes an existing user an API account. Their
/// password stops working, their sessions and refresh tokens end, and from now on they
/// authenticate only with this client secret (shown once), never with a second factor. Audited
/// `user.api_account.set`. Errors: 401/403 (also for a user holding, or scopes granting, a
/// permission the caller does not hold), 404, 409 (already an API account; or the user changed
/// meanwhile), 422 (bad scopes; or the company's last person holding `company.manage`).
#[utoipa::path(
    put,
    operation_id = "api_accounts_set_flag",
    path = "/tenants/{tenant}/users/{user}/api-account",
    tag = "API accounts",
    summary = "Make the user an API account: the password stops working, sessions and refresh tokens end, a client secret is returned once (audited user.api_account.set)",
    params(TenantUserParam),
    request_body = ApiAccountFlag,
    responses((status = 201, description = "{client_id, client_secret, user_id}"), (status = 401, description = "{error, message}"), (status = 403, description = "{error, message}"), (status = 404, description = "{error, message}"), (status = 409, description = "{error, message}"), (status = 422, description = "{error, message}")),
)]
pub(super) async fn set_flag(
    State(state): State<AppState>,
    p: Principal,
    ClientIp(ip): ClientIp,
    Path((tenant, user)): Path<(String, String)>,
    ApiJson(body): ApiJson<ApiAccountFlag>,
) -> Result<(StatusCode, Json<Credentials>), ApiError> {
    let tenant = p
        .company(&state, &tenant, &[Permission::CompanyManage])
        .await?;
    let read = find_user(&state, &tenant, &user).await?;
    p.refuse_self(&read)?;
    p.may_change(tenant.permissions_of(&read))?;
    if read.api_account {
        return Err(ApiError::conflict(
            "the user is already an API account: rotate its secret instead",
        ));
    }
    let name = check_name(body.name.as_deref().unwrap_or(&read.email))?;
    check_scopes(&p, &body.scopes)?;
    let mut u = User {
        api_account: true,
        password_hash: "!".into(),
        ..read.clone()
    };
    u.end_sessions();
    keep_a_manager(&state, &tenant, &read, &u).await?;
    if !state.store.swap_user(&read, &u).await? {
        return Err(ApiError::changed("user"));
    }
    let credentials = new_credential(&state, &tenant, &u.id, name, body.scopes).await?;
    p.audit(
        &state,
        Some(&tenant.id),
        "user.api_account.set",
        &u.email,
        ip.as_deref(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(credentials)))
}

/// `DELETE /api/v1/tenants/{tenant}/users/{user}/api-account` (`company.manage`) → the user:
/// clears the flag and revokes the account's client secrets (tokens they got stop working at
/// Padlock). The user has no password yet: send them a set-password link. Audited
/// `user.api_account.clear`. Errors: 401/403, 404, 409 (not an API account; or the user changed
/// meanwhile).
#[utoipa::path(
    delete,
    operation_id = "api_accounts_clear_flag",
    path = "/tenants/{tenant}/users/{user}/api-account",
    tag = "API accounts",
    summary = "Clear the API-account flag and revoke its client secrets; the user then needs a set-password link (audited user.api_account.clear)",
    params(TenantUserParam),
    responses((status = 200, description = "The user"), (status = 401, description = "{error, message}"), (status = 403, description = "{error, message}"), (status = 404, description = "{error, message}"), (status = 409, description = "{error, message}")),
)]
pub(super) async fn clear_flag(
    State(state): State<AppState>,
    p: Principal,
    ClientIp(ip): ClientIp,
    Path((tenant, user)): Path<(String, String)>,
) -> Result<Json<UserView>, ApiError> {
    let tenant = p
        .company(&state, &tenant, &[Permission::CompanyManage])
        .await?;
    let read = find_user(&state, &tenant, &user).await?;
    p.refuse_self(&read)?;
    p.may_change(tenant.permissions_of(&read))?;
    if !read.api_account {
        return Err(ApiError::conflict("the user is not an API account"));
    }
    let mut u = User {
        api_account: false,
        ..read.clone()
    };
    u.end_sessions();
    if !state.store.swap_user(&read, &u).await? {
        return Err(ApiError::changed("user"));
    }
    for c in state.store.list_clients().await? {
        if matches!(&c.kind, ClientKind::ApiAccount { user } if *user == u.id) {
            state.store.delete_client(&c.id).await?;
        }
    }
    p.audit(
        &state,
        Some(&tenant.id),
        "user.api_account.clear",
        &u.email,
        ip.as_deref(),
    )
    .await?;
    Ok(Json(u.into()))
}

/// `POST /api/v1/tenants/{tenant}/api-accounts/{client}/rotate` (`company.manage`) → 200
/// `{"client_id", "client_secret", "user_id"}`: a new secret for the API account's credential;
/// the old one, and every token got with it, stops working at once. Audited `api_account.rotate`. Errors: 401/403, 404 (no
/// such API account credential in the company).
#[utoipa::path(
    post,
    operation_id = "api_accounts_rotate",
    path = "/tenants/{tenant}/api-accounts/{client}/rotate",
    tag = "API accounts",
    summary = "A new client secret for the API account, returned once; the old one stops working (audited api_account.rotate)",
    params(TenantParam, ("client" = String, Path, description = "the API account's client_id")),
    responses((status = 200, description = "{client_id, client_secret, user_id}"), (status = 401, description = "{error, message}"), (status = 403, description = "{error, message}"), (status = 404, description = "{error, message}"), (status = 409, description = "{error, message}")),
)]
pub(super) async fn rotate(
    State(state): State<AppState>,
    p: Principal,
    ClientIp(ip): ClientIp,
    Path((tenant, client)): Path<(String, String)>,
) -> Result<Json<Credentials>, ApiError> {
    let tenant = p
        .company(&state, &tenant, &[Permission::CompanyManage])
        .await?;
    let found = state
        .store
        .get_client(&ClientId::from_string(client.clone()))
        .await?
        .filter(|c| c.tenant.as_ref() == Some(&tenant.id));
    let (mut c, user) = match found {
        Some(c) => match &c.kind {
            ClientKind::ApiAccount { user } => {
                let user = user.clone();
                (c, user)
            }
            _ => {
                return Err(ApiError::not_found(format!(
                    "API account `{client}` not found"
                )));
            }
        },
        None => {
            return Err(ApiError::not_found(format!(
                "API account `{client}` not found"
            )));
        }
    };
    // The secret opens what the account holds: only someone holding all of it may take it.
    let holder = state
        .store
        .get_user(&user)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("API account `{client}` not found")))?;
    p.may_change(tenant.permissions_of(&holder))?;
    // Tokens got with the old secret stop working too (a rotation answers a leak).
    let mut ended = holder.clone();
    ended.end_sessions();
    if !state.store.swap_user(&holder, &ended).await? {
        return Err(ApiError::changed("API account"));
    }
    let secret = random_token(32);
    c.secret_sha256 = Some(hex::encode(sha256(secret.as_bytes())));
    state.store.put_client(&c).await?;
    p.audit(
        &state,
        Some(&tenant.id),
        "api_account.rotate",
        c.id.as_str(),
        ip.as_deref(),
    )
    .await?;
    Ok(Json(Credentials {
        client_id: c.id.to_string(),
        client_secret: Some(secret),
        user_id: Some(user.to_string()),
    }))
}
