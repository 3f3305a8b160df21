//! Users of a company.

use super::{ApiError, ApiJson, Principal, TenantParam, TenantUserParam};
use crate::domain::{Outcome, User, normalize_email};
use crate::extract::ClientIp;
use crate::factor::totp_enrolment;
use crate::secret::{Password, UserId};
use crate::state::{AppState, Audit};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use padlock_policy::Method;
use padlock_policy::mobile::E164;
use padlock_policy::permission::{Permission, builtin_role, held};
use serde::{Deserialize, Serialize};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewUser {
    email: String,
    #[schema(value_type = String)]
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
    /// The Duo username of an active Duo enrolment.
    duo_username: Option<String>,
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
            duo_username: u.duo.filter(|d| d.active).map(|d| d.username),
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

#[utoipa::path(
    post,
    operation_id = "users_create",
    path = "/tenants/{tenant}/users",
    tag = "users",
    summary = "Create a user",
    params(TenantParam),
    request_body = NewUser,
    responses((status = 201, description = "{id, email}"), (status = 401, description = "{error, message}"), (status = 403, description = "{error, message}"), (status = 404, description = "{error, message}"), (status = 409, description = "{error, message}"), (status = 422, description = "{error, message}")),
)]
pub(super) async fn create(
    State(state): State<AppState>,
    p: Principal,
    ClientIp(ip): ClientIp,
    Path(tenant): Path<String>,
    ApiJson(body): ApiJson<NewUser>,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    let tenant = p
        .company(&state, &tenant, &[Permission::UsersManage])
        .await?;
    let email = normalize_email(&body.email).map_err(|m| ApiError::invalid("email", m))?;
    if let Some(why) = crate::password::refusal(&body.password) {
        return Err(ApiError::invalid("password", why));
    }
    let mobile = body
        .mobile
        .as_deref()
        .filter(|m| !m.trim().is_empty())
        .map(E164::parse)
        .transpose()
        .map_err(|e| ApiError::invalid("mobile", e))?;
    check_roles(&p, &tenant, &body.roles)?;
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
        session_epoch: 0,
        created_at: state.clock.now(),
    };
    state.store.create_user(&user).await?;
    p.audit(
        &state,
        Some(&tenant.id),
        "user.create",
        &user.email,
        ip.as_deref(),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(Created {
            id: user.id.to_string(),
            email: user.email,
        }),
    ))
}

/// `GET /api/v1/tenants/{tenant}/users?after=&limit=` (`users.manage` or `company.manage`) → a
/// JSON array of users in email order (case-insensitive), read from the company's index; when the
/// page is full a `Link: <…?after=<email>&limit=>; rel="next"` header (RFC 8288) gives the next.
/// Errors: 401/403, 404 (company), 400 (a malformed parameter).
#[utoipa::path(
    get,
    operation_id = "users_list",
    path = "/tenants/{tenant}/users",
    tag = "users",
    summary = "The company's users in email order; a Link header (rel=next) gives the next page when this one is full",
    params(TenantParam, UsersPage),
    responses((status = 200, description = "A page of users; Link rel=next when more"), (status = 400, description = "{error, message}"), (status = 401, description = "{error, message}"), (status = 403, description = "{error, message}"), (status = 404, description = "{error, message}")),
)]
pub(super) async fn list(
    State(state): State<AppState>,
    p: Principal,
    Path(tenant): Path<String>,
    Query(q): Query<UsersPage>,
) -> Result<Response, ApiError> {
    let tenant = p
        .company(
            &state,
            &tenant,
            &[Permission::UsersManage, Permission::CompanyManage],
        )
        .await?;
    let limit = q.limit.unwrap_or(MAX_USERS_PAGE).clamp(1, MAX_USERS_PAGE);
    let users = state
        .store
        .users_page(&tenant.id, q.after.as_deref(), limit)
        .await?;
    let next = (users.len() == limit)
        .then(|| users.last().map(|u| u.email.clone()))
        .flatten();
    let mut resp = Json(users.into_iter().map(UserView::from).collect::<Vec<_>>()).into_response();
    if let Some(after) = next {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("after", &after)
            .append_pair("limit", &limit.to_string())
            .finish();
        let value = format!(
            "</api/v1/tenants/{}/users?{query}>; rel=\"next\"",
            tenant.id
        );
        if let Ok(v) = axum::http::HeaderValue::from_str(&value) {
            resp.headers_mut().insert(axum::http::header::LINK, v);
        }
    }
    Ok(resp)
}

/// Most users one page holds (and the default).
const MAX_USERS_PAGE: usize = 1000;

/// `GET /api/v1/tenants/{tenant}/users` query.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct UsersPage {
    /// Users after this email (case-insensitive), as the previous page's `Link` gave it.
    after: Option<String>,
    /// Users per page, 1 to 1000 (default 1000).
    limit: Option<usize>,
}

/// `PATCH /api/v1/tenants/{tenant}/users/{user}` body: the fields to change, absent ones kept.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct UserChange {
    /// The login email (unique across Padlock, case-insensitive). A user whose Unix name is the
    /// default gets the new local part as Unix name.
    email: Option<String>,
    /// The Unix name; `null` puts back the default, the email's local part.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable)]
    unix_name: Option<Option<String>>,
    /// The mobile number (E.164, spaces allowed); `null` clears it (codes then go by email).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable)]
    mobile: Option<Option<String>>,
    /// Refused at every login (its sessions and tokens stop working at once).
    disabled: Option<bool>,
    /// The user's roles (built-in or the company's own), replacing the current list; removing one
    /// ends the user's sessions and refresh tokens.
    roles: Option<Vec<String>>,
}

/// A field that is present (possibly `null`), as opposed to absent.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// `PATCH /api/v1/tenants/{tenant}/users/{user}` (`users.manage`; `user`: id or email) → the
/// user. A changed email is told to both addresses. Disabling the user or removing one of their
/// roles ends their sessions and refresh tokens. Errors: 403 without `users.manage`, for a user
/// holding a permission the caller does not, or for roles granting one; 404 for an unknown user;
/// 422 for a malformed email, Unix name or mobile number, an unknown role, or for leaving the
/// company without an enabled person holding `company.manage`; 409 when another user has the
/// email or (in the company) the Unix name (a user's default is the local part of their email),
/// or the user changed since it was read.
#[utoipa::path(
    patch,
    operation_id = "users_update",
    path = "/tenants/{tenant}/users/{user}",
    tag = "users",
    summary = "Change a user: email and mobile (company.manage), Unix name, roles, disabled; absent fields are kept",
    params(TenantUserParam),
    request_body = UserChange,
    responses((status = 200, description = "The user"), (status = 401, description = "{error, message}"), (status = 403, description = "{error, message}"), (status = 404, description = "{error, message}"), (status = 409, description = "{error, message}"), (status = 422, description = "{error, message}")),
)]
pub(super) async fn update(
    State(state): State<AppState>,
    p: Principal,
    ClientIp(ip): ClientIp,
    Path((tenant, user)): Path<(String, String)>,
    ApiJson(body): ApiJson<UserChange>,
) -> Result<Json<UserView>, ApiError> {
    let tenant = p
        .company(&state, &tenant, &[Permission::UsersManage])
        .await?;
    let read = find_user(&state, &tenant, &user).await?;
    p.may_change(tenant.permissions_of(&read))?;
    if body.email.is_some() || body.mobile.is_some() {
        // Where the user's codes go is part of their second factor (DESIGN §2 rule 7).
        if !p.permissions().has(Permission::CompanyManage) {
            return Err(ApiError::forbidden(
                "changing a user's email or mobile number (where their codes go) needs permission company.manage",
            ));
        }
        p.refuse_self(&read)?;
    }
    let mut u = read.clone();
    if let Some(email) = &body.email {
        u.email = normalize_email(email).map_err(|m| ApiError::invalid("email", m))?;
    }
    if let Some(change) = body.unix_name {
        if let Some(n) = &change {
            check_unix_name(n)?;
        }
        u.unix_name = change;
    }
    if let Some(change) = body.mobile {
        u.mobile = change
            .map(|m| E164::parse(&m).map_err(|e| ApiError::invalid("mobile", e)))
            .transpose()?;
    }
    if let Some(disabled) = body.disabled {
        u.disabled = disabled;
    }
    if let Some(roles) = body.roles {
        check_roles(&p, &tenant, &roles)?;
        u.roles = roles;
    }
    keep_a_manager(&state, &tenant, &read, &u).await?;
    if (u.disabled && !read.disabled) || read.roles.iter().any(|r| !u.roles.contains(r)) {
        u.end_sessions();
    }
    if u != read && !state.store.swap_user(&read, &u).await? {
        return Err(ApiError::changed("user"));
    }
    if u.email != read.email {
        // Both addresses are told; the old one does not learn the new (it may be the lost one).
        let company = &tenant.name;
        for to in [&read.email, &u.email] {
            state.notify(
                to,
                format!("{company}: your sign-in email was changed"),
                format!(
                    "An administrator of {company} changed the email you sign in with (it was {}).\n\n\
                     If you did not expect this, tell your administrator.",
                    read.email
                ),
            );
        }
    }
    // One event per kind of change: the switch, the roles, the other fields.
    let mut actions = Vec::new();
    match (read.disabled, u.disabled) {
        (false, true) => actions.push("user.disable"),
        (true, false) => actions.push("user.enable"),
        _ => {}
    }
    if read.roles != u.roles {
        actions.push("user.roles");
    }
    let others = User {
        disabled: read.disabled,
        roles: read.roles.clone(),
        session_epoch: read.session_epoch,
        ..u.clone()
    };
    if others != read || actions.is_empty() {
        actions.push("user.update");
    }
    for action in actions {
        p.audit(&state, Some(&tenant.id), action, &u.email, ip.as_deref())
            .await?;
    }
    Ok(Json(u.into()))
}

/// Checks that every one of `roles` is a role of `tenant` (built-in or its own) and that the
/// caller holds every permission they carry. 422 for an unknown role, 403 for escalation.
pub(super) fn check_roles(
    p: &Principal,
    tenant: &crate::domain::Tenant,
    roles: &[String],
) -> Result<(), ApiError> {
    for r in roles {
        if builtin_role(r).is_none() && !tenant.roles.iter().any(|c| c.name == *r) {
            return Err(ApiError::invalid(
                "roles",
                format!("`{r}` is not a role of this company"),
            ));
        }
    }
    p.may_grant(held(roles.iter().map(String::as_str), &tenant.roles))
}

/// 422 when `read` becoming `new` would leave `tenant` without an enabled person (not an API
/// account) holding `company.manage`: someone must always be able to manage the company.
pub(super) async fn keep_a_manager(
    state: &AppState,
    tenant: &crate::domain::Tenant,
    read: &User,
    new: &User,
) -> Result<(), ApiError> {
    if tenant.is_manager(read) && !tenant.is_manager(new) {
        let users = state.store.list_users(&tenant.id).await?;
        if !users
            .iter()
            .any(|o| o.id != read.id && tenant.is_manager(o))
        {
            return Err(ApiError::invalid(
                "user",
                "this is the company's last enabled person holding company.manage: give the \
                 permission to someone else first",
            ));
        }
    }
    Ok(())
}

/// The user of `tenant` named `user` (an id or an email), or 404.
pub(super) async fn find_user(
    state: &AppState,
    tenant: &crate::domain::Tenant,
    user: &str,
) -> Result<User, ApiError> {
    let found = match state
        .store
        .get_user(&UserId::from_string(user.to_owned()))
        .await?
    {
        Some(u) => Some(u),
        None => state.store.find_user_by_email(user).await?,
    };
    found
        .filter(|u| u.tenant == tenant.id)
        .ok_or_else(|| ApiError::not_found(format!("user `{user}` not found")))
}

/// `POST /api/v1/tenants/{tenant}/users/{user}/unlock` (`company.manage`): ends the user's
/// second-factor lock and clears their failure count and their password throttle, so they can
/// sign in again at once. Audited `user.unlock`; the user is told by email (sent in the
/// background; a failed send is logged). Errors: 401/403 (the caller), 404 (company or user).
#[utoipa::path(
    post,
    operation_id = "users_unlock",
    path = "/tenants/{tenant}/users/{user}/unlock",
    tag = "second factor",
    summary = "End the user's second-factor lock and clear their failure count and password throttle (audited user.unlock; the user is told by email)",
    params(TenantUserParam),
    responses((status = 200, description = "The user"), (status = 401, description = "{error, message}"), (status = 403, description = "{error, message}"), (status = 404, description = "{error, message}")),
)]
pub(super) async fn unlock(
    State(state): State<AppState>,
    p: Principal,
    ClientIp(ip): ClientIp,
    Path((tenant, user)): Path<(String, String)>,
) -> Result<Json<UserView>, ApiError> {
    let tenant = p
        .company(&state, &tenant, &[Permission::CompanyManage])
        .await?;
    let u = find_user(&state, &tenant, &user).await?;
    p.may_change(tenant.permissions_of(&u))?;
    // A success clears the failure count, and with it the lock.
    state.store.record_second_factor_success(&u.id).await?;
    state.store.reset_password_failures(&u.email).await?;
    p.audit(
        &state,
        Some(&tenant.id),
        "user.unlock",
        &u.email,
        ip.as_deref(),
    )
    .await?;
    let company = &tenant.name;
    state.notify(
        &u.email,
        format!("{company}: sign-in unlocked"),
        format!(
            "An administrator of {company} unlocked signing in as {}: wrong codes and passwords \
             no longer hold you back.\n\nIf you did not ask for this, tell your administrator.",
            u.email
        ),
    );
    Ok(Json(u.into()))
}

/// `PUT /api/v1/tenants/{tenant}/users/{user}/two-factor` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TwoFactorChange {
    /// `sms-email`, `totp` or `duo`: one the company offers and the user is enrolled in.
    preferred_method: String,
}

/// `PUT /api/v1/tenants/{tenant}/users/{user}/two-factor` (`company.manage`, DESIGN §2 rule 7):
/// chooses the user's second factor among the methods the company offers (TOTP and Duo only
/// once the user is enrolled). Audited `user.2fa`; the user is told by email. Errors: 401/403,
/// 404, 422 (a method not offered or not enrolled), 409 (the user changed meanwhile).
#[utoipa::path(
    put,
    operation_id = "users_set_two_factor",
    path = "/tenants/{tenant}/users/{user}/two-factor",
    tag = "second factor",
    summary = "Choose the user's second factor among the methods the company offers (TOTP and Duo once the user is enrolled); audited user.2fa, the user told by email",
    params(TenantUserParam),
    request_body = TwoFactorChange,
    responses((status = 200, description = "The user"), (status = 401, description = "{error, message}"), (status = 403, description = "{error, message}"), (status = 404, description = "{error, message}"), (status = 409, description = "{error, message}"), (status = 422, description = "{error, message}")),
)]
pub(super) async fn set_two_factor(
    State(state): State<AppState>,
    p: Principal,
    ClientIp(ip): ClientIp,
    Path((tenant, user)): Path<(String, String)>,
    ApiJson(body): ApiJson<TwoFactorChange>,
) -> Result<Json<UserView>, ApiError> {
    let (tenant, read) = second_factor_target(&state, &p, &tenant, &user).await?;
    let method = padlock_policy::decision::choosable(
        &tenant.two_factor,
        &read.subject(),
        &body.preferred_method,
    )
    .map_err(|why| {
        ApiError::invalid(
            "preferred_method",
            match why {
                padlock_policy::decision::ChoiceRefusal::NotOffered => {
                    "the company does not offer that method"
                }
                padlock_policy::decision::ChoiceRefusal::NotEnrolled(_) => {
                    "the user is not enrolled in that method"
                }
            },
        )
    })?;
    let u = User {
        preferred_method: Some(method),
        ..read.clone()
    };
    changed_second_factor(&state, &p, &tenant, read, u, "user.2fa", ip.as_deref()).await
}

/// `DELETE /api/v1/tenants/{tenant}/users/{user}/totp` (`company.manage`): removes the user's
/// authenticator-app enrolment (a lost phone); a user whose method was TOTP falls back to the
/// company's other method. Audited `user.totp.reset`; the user is told by email. Errors:
/// 401/403, 404, 409 (the user changed meanwhile), 422 (an API account; or the company offers
/// no other method the user could sign in with).
#[utoipa::path(
    delete,
    operation_id = "users_reset_totp",
    path = "/tenants/{tenant}/users/{user}/totp",
    tag = "second factor",
    summary = "Remove the user's authenticator-app enrolment (a lost phone); a user whose method was TOTP falls back to the company's other method; audited user.totp.reset, the user told by email",
    params(TenantUserParam),
    responses((status = 200, description = "The user"), (status = 401, description = "{error, message}"), (status = 403, description = "{error, message}"), (status = 404, description = "{error, message}"), (status = 409, description = "{error, message}"), (status = 422, description = "{error, message}")),
)]
pub(super) async fn reset_totp(
    State(state): State<AppState>,
    p: Principal,
    ClientIp(ip): ClientIp,
    Path((tenant, user)): Path<(String, String)>,
) -> Result<Json<UserView>, ApiError> {
    let (tenant, read) = second_factor_target(&state, &p, &tenant, &user).await?;
    let u = User {
        totp: None,
        preferred_method: read.preferred_method.filter(|m| *m != Method::Totp),
        ..read.clone()
    };
    if tenant.two_factor.enabled
        && padlock_policy::decision::resolve_factor(&tenant.two_factor, &u.subject()).is_none()
    {
        return Err(ApiError::invalid(
            "totp",
            "the company offers no other method this user can use: they could not sign in",
        ));
    }
    changed_second_factor(
        &state,
        &p,
        &tenant,
        read,
        u,
        "user.totp.reset",
        ip.as_deref(),
    )
    .await
}

/// The company (checked: `company.manage`) and the user whose second factor an administrator
/// configures: not the caller themself ([`Principal::refuse_self`]), not someone holding more
/// than the caller ([`Principal::may_change`]), not an API account (422).
pub(super) async fn second_factor_target(
    state: &AppState,
    p: &Principal,
    tenant: &str,
    user: &str,
) -> Result<(crate::domain::Tenant, User), ApiError> {
    let tenant = p
        .company(state, tenant, &[Permission::CompanyManage])
        .await?;
    let u = find_user(state, &tenant, user).await?;
    p.refuse_self(&u)?;
    p.may_change(tenant.permissions_of(&u))?;
    refuse_api_account(&u)?;
    Ok((tenant, u))
}

/// 422 for an API account: it has no second factor to configure.
fn refuse_api_account(user: &User) -> Result<(), ApiError> {
    if user.api_account {
        return Err(ApiError::invalid(
            "user",
            "an API account has no second factor",
        ));
    }
    Ok(())
}

/// Writes an administrator's change of `read`'s second factor (`new`) over the user as read,
/// audits `action` and tells the user by email what their second factor now is.
async fn changed_second_factor(
    state: &AppState,
    p: &Principal,
    tenant: &crate::domain::Tenant,
    read: User,
    new: User,
    action: &str,
    ip: Option<&str>,
) -> Result<Json<UserView>, ApiError> {
    if new != read && !state.store.swap_user(&read, &new).await? {
        return Err(ApiError::changed("user"));
    }
    p.audit(state, Some(&tenant.id), action, &new.email, ip)
        .await?;
    let now = match padlock_policy::decision::resolve_factor(&tenant.two_factor, &new.subject()) {
        Some(padlock_policy::Factor::Totp) => "a code from your authenticator app",
        Some(padlock_policy::Factor::Duo) => "Duo",
        Some(padlock_policy::Factor::Code { .. }) => "a code by SMS or email",
        None => "no method you can use yet: ask your administrator",
    };
    let company = &tenant.name;
    state.notify(
        &new.email,
        format!("{company}: your second factor was changed"),
        format!(
            "An administrator of {company} changed how you confirm sign-ins as {}: from now on, \
             {now}.\n\nIf you did not expect this, tell your administrator.",
            new.email
        ),
    );
    Ok(Json(new.into()))
}

/// `POST /api/v1/tenants/{tenant}/users/{user}/set-password-link` answer: shown once.
#[derive(Serialize)]
pub(super) struct PasswordLinkView {
    /// The one-time link (24 h); also emailed to the user.
    url: String,
    /// Its expiry, Unix seconds.
    expires_at: u64,
}

/// `POST /api/v1/tenants/{tenant}/users/{user}/set-password-link` (`users.manage`) → 201
/// `{"url", "expires_at"}`: a one-time link ([`crate::password_link`]) that sets the user's
/// password, valid 24 hours; emailed to the user through the configured delivery (in the
/// background; a failed send is logged) and shown once here. Audited `user.password_link`.
/// Errors: 401/403 (also for a user holding a permission the caller does not), 404, 422 (an
/// API account has no password).
#[utoipa::path(
    post,
    operation_id = "users_password_link",
    path = "/tenants/{tenant}/users/{user}/set-password-link",
    tag = "users",
    summary = "A one-time link (24 h) that sets the user's password, emailed to them and returned once (audited user.password_link)",
    params(TenantUserParam),
    responses((status = 201, description = "{url, expires_at}"), (status = 401, description = "{error, message}"), (status = 403, description = "{error, message}"), (status = 404, description = "{error, message}"), (status = 422, description = "{error, message}")),
)]
pub(super) async fn password_link(
    State(state): State<AppState>,
    p: Principal,
    ClientIp(ip): ClientIp,
    Path((tenant, user)): Path<(String, String)>,
) -> Result<(StatusCode, Json<PasswordLinkView>), ApiError> {
    let tenant = p
        .company(&state, &tenant, &[Permission::UsersManage])
        .await?;
    let u = find_user(&state, &tenant, &user).await?;
    p.refuse_self(&u)?;
    p.may_change(tenant.permissions_of(&u))?;
    if u.api_account {
        return Err(ApiError::invalid(
            "user",
            "an API account has no password: clear its API-account flag first",
        ));
    }
    let (url, expires_at) = crate::password_link::issue(&state, &u).await?;
    p.audit(
        &state,
        Some(&tenant.id),
        "user.password_link",
        &u.email,
        ip.as_deref(),
    )
    .await?;
    let company = &tenant.name;
    state.notify(
        &u.email,
        format!("{company}: set your password"),
        format!(
            "An administrator of {company} sent you a link to set the password you sign in with \
             as {}. It works once, for 24 hours:\n\n{url}\n\nIf you did not expect this, tell your \
             administrator.",
            u.email
        ),
    );
    Ok((
        StatusCode::CREATED,
        Json(PasswordLinkView { url, expires_at }),
    ))
}

/// `POST /api/v1/tenants/{tenant}/users/{user}/totp/enroll` answer: what to scan with the user's
/// device, and the enrolment to confirm with one of its codes.
#[derive(Serialize)]
pub(super) struct TotpEnrolView {
    /// The seed, base32, to type in.
    secret: String,
    /// The `otpauth://totp/…` URI.
    otpauth_uri: String,
    /// The QR code of the URI, PNG in base64.
    qr_png_base64: String,
    /// Opaque: send it back with a code to `PUT …/totp` (the seed, sealed; valid until
    /// `expires_at`).
    enrolment: String,
    /// Unix seconds.
    expires_at: u64,
}

/// How long an administrator has to confirm a TOTP enrolment: 10 minutes, in seconds.
const TOTP_ENROL_SECS: u64 = 600;

/// Sealing purpose of a TOTP enrolment in flight at the admin API.
const TOTP_ENROLMENT_PURPOSE: &str = "totp-enrolment";

/// The sealed body of an enrolment in flight: whose, until when, and the sealed seed.
#[derive(Serialize, Deserialize)]
struct Enrolment {
    user: String,
    expires_at: u64,
    seed: crate::crypto::Sealed,
}

/// The company (offering TOTP) and the user (not an API account) of a TOTP enrolment.
async fn totp_target(
    state: &AppState,
    p: &Principal,
    tenant: &str,
    user: &str,
) -> Result<(crate::domain::Tenant, User), ApiError> {
    let (tenant, u) = second_factor_target(state, p, tenant, user).await?;
    if !tenant.two_factor.methods.totp {
        return Err(ApiError::invalid(
            "totp",
            "the company does not offer authenticator apps",
        ));
    }
    Ok((tenant, u))
}

/// `POST /api/v1/tenants/{tenant}/users/{user}/totp/enroll` (`company.manage`, DESIGN §2 rule
/// 6): starts enrolling an authenticator app on the user's behalf — a new seed, shown as a QR
/// code for the administrator to scan with the user's device. Nothing is stored until `PUT
/// …/totp` confirms it with a code. Errors: 401/403, 404, 422 (an API account; the company does
/// not offer TOTP).
#[utoipa::path(
    post,
    operation_id = "users_totp_enroll",
    path = "/tenants/{tenant}/users/{user}/totp/enroll",
    tag = "second factor",
    summary = "Start enrolling an authenticator app on the user's behalf: a new seed as QR code, secret and otpauth URI, and an opaque enrolment valid 10 minutes; nothing is stored yet",
    params(TenantUserParam),
    responses((status = 201, description = "{secret, otpauth_uri, qr_png_base64, enrolment, expires_at}"), (status = 401, description = "{error, message}"), (status = 403, description = "{error, message}"), (status = 404, description = "{error, message}"), (status = 422, description = "{error, message}")),
)]
pub(super) async fn totp_enroll(
    State(state): State<AppState>,
    p: Principal,
    Path((tenant, user)): Path<(String, String)>,
) -> Result<(StatusCode, Json<TotpEnrolView>), ApiError> {
    let (tenant, u) = totp_target(&state, &p, &tenant, &user).await?;
    let seed = totp_enrolment::new_seed(&state)?;
    let setup = totp_enrolment::setup(&state, &tenant, &u, &seed)?;
    let expires_at = state.clock.now() + TOTP_ENROL_SECS;
    let body = serde_json::to_vec(&Enrolment {
        user: u.id.to_string(),
        expires_at,
        seed,
    })
    .map_err(anyhow::Error::from)?;
    let sealed = state
        .master
        .seal(TOTP_ENROLMENT_PURPOSE, &body)
        .map_err(anyhow::Error::from)?;
    let enrolment = serde_json::to_value(&sealed)
        .map_err(anyhow::Error::from)?
        .as_str()
        .unwrap_or_default()
        .to_owned();
    Ok((
        StatusCode::CREATED,
        Json(TotpEnrolView {
            secret: setup.secret,
            otpauth_uri: setup.uri,
            qr_png_base64: setup.qr_base64,
            enrolment,
            expires_at,
        }),
    ))
}

/// `PUT /api/v1/tenants/{tenant}/users/{user}/totp` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TotpConfirm {
    /// From `POST …/totp/enroll`.
    #[schema(value_type = String)]
    enrolment: crate::crypto::Sealed,
    /// A current code from the user's device.
    code: String,
}

/// `PUT /api/v1/tenants/{tenant}/users/{user}/totp` (`company.manage`): confirms an enrolment
/// begun with `POST …/totp/enroll` with one valid code (RFC 6238); the app becomes the user's
/// method. Audited `user.totp.enrol` (a wrong code too, as a failure); the user is told by
/// email. Errors: 401/403, 404, 409 (the user changed meanwhile), 422 (a wrong code; an
/// enrolment that is not this user's, expired or forged; an API account; TOTP not offered).
#[utoipa::path(
    put,
    operation_id = "users_totp_confirm",
    path = "/tenants/{tenant}/users/{user}/totp",
    tag = "second factor",
    summary = "Confirm an enrolment with one valid code from the user's device; the app becomes the user's method (audited user.totp.enrol; the user is told by email)",
    params(TenantUserParam),
    request_body = TotpConfirm,
    responses((status = 200, description = "The user"), (status = 401, description = "{error, message}"), (status = 403, description = "{error, message}"), (status = 404, description = "{error, message}"), (status = 409, description = "{error, message}"), (status = 422, description = "{error, message}")),
)]
pub(super) async fn totp_confirm(
    State(state): State<AppState>,
    p: Principal,
    ClientIp(ip): ClientIp,
    Path((tenant, user)): Path<(String, String)>,
    ApiJson(body): ApiJson<TotpConfirm>,
) -> Result<Json<UserView>, ApiError> {
    let (tenant, read) = totp_target(&state, &p, &tenant, &user).await?;
    let bad = || {
        ApiError::invalid(
            "enrolment",
            "not an enrolment of this user that is still valid: start again",
        )
    };
    let opened = state
        .master
        .open(TOTP_ENROLMENT_PURPOSE, &body.enrolment)
        .map_err(|_| bad())?;
    let e: Enrolment = serde_json::from_slice(&opened).map_err(|_| bad())?;
    if e.user != read.id.as_str() || e.expires_at <= state.clock.now() {
        return Err(bad());
    }
    let Some(enrolled) =
        totp_enrolment::confirm(&state, &tenant, &read, e.seed, body.code.trim()).await?
    else {
        state
            .audit(Audit {
                tenant: Some(&tenant.id),
                actor: p.actor(),
                action: "user.totp.enrol",
                target: &read.email,
                outcome: Outcome::Failure,
                source_ip: ip.as_deref(),
            })
            .await?;
        return Err(ApiError::invalid(
            "code",
            "that code is not right: check the device's clock and try the next code",
        ));
    };
    changed_second_factor(
        &state,
        &p,
        &tenant,
        read,
        enrolled,
        "user.totp.enrol",
        ip.as_deref(),
    )
    .await
}
