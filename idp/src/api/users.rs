//! Users of a company.

use super::{ApiError, ApiJson, Principal, check_scope_token};
use crate::domain::{Outcome, User, normalize_email};
use crate::extract::ClientIp;
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

pub(super) async fn create(
    State(state): State<AppState>,
    p: Principal,
    ClientIp(ip): ClientIp,
    Path(tenant): Path<String>,
    ApiJson(body): ApiJson<NewUser>,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    let tenant = p.company(&state, &tenant).await?;
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
    let tenant = p.company(&state, &tenant).await?;
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

/// `PATCH /api/v1/tenants/{tenant}/users/{user}` body: the fields to change, absent ones kept.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UserChange {
    /// The login email (unique across Padlock, case-insensitive). A user whose Unix name is the
    /// default gets the new local part as Unix name.
    email: Option<String>,
    /// The Unix name; `null` puts back the default, the email's local part.
    #[serde(default, deserialize_with = "present")]
    unix_name: Option<Option<String>>,
    /// The mobile number (E.164, spaces allowed); `null` clears it (codes then go by email).
    #[serde(default, deserialize_with = "present")]
    mobile: Option<Option<String>>,
    /// Refused at every login (its sessions and tokens stop working at once).
    disabled: Option<bool>,
}

/// A field that is present (possibly `null`), as opposed to absent.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// `PATCH /api/v1/tenants/{tenant}/users/{user}` (`user`: id or email) → the user. A changed
/// email is told to the old address. Errors: 403 without `company.manage` for the company, 404
/// for an unknown user, 422 for a malformed email, Unix name or mobile number, or for disabling
/// the company's last enabled administrator, 409 when another user has the email or (in the
/// company) the Unix name (a user's default is the local part of their email), or the user
/// changed since it was read.
pub(super) async fn update(
    State(state): State<AppState>,
    p: Principal,
    ClientIp(ip): ClientIp,
    Path((tenant, user)): Path<(String, String)>,
    ApiJson(body): ApiJson<UserChange>,
) -> Result<Json<UserView>, ApiError> {
    let tenant = p.company(&state, &tenant).await?;
    let read = find_user(&state, &tenant, &user).await?;
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
        if disabled && !read.disabled && read.is_company_admin() {
            let others = state.store.list_users(&tenant.id).await?;
            if !others
                .iter()
                .any(|o| o.id != read.id && o.is_company_admin() && !o.disabled)
            {
                return Err(ApiError::invalid(
                    "disabled",
                    "the company's last enabled administrator cannot be disabled",
                ));
            }
        }
        u.disabled = disabled;
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
    let action = match (read.disabled, u.disabled) {
        (false, true) => "user.disable",
        (true, false) => "user.enable",
        _ => "user.update",
    };
    state
        .audit(Audit {
            tenant: Some(&tenant.id),
            actor: p.actor(),
            action,
            target: &u.email,
            outcome: Outcome::Success,
            source_ip: ip.as_deref(),
        })
        .await?;
    Ok(Json(u.into()))
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
pub(super) async fn unlock(
    State(state): State<AppState>,
    p: Principal,
    ClientIp(ip): ClientIp,
    Path((tenant, user)): Path<(String, String)>,
) -> Result<Json<UserView>, ApiError> {
    let tenant = p.company(&state, &tenant).await?;
    let u = find_user(&state, &tenant, &user).await?;
    // A success clears the failure count, and with it the lock.
    state.store.record_second_factor_success(&u.id).await?;
    state.store.reset_password_failures(&u.email).await?;
    state
        .audit(Audit {
            tenant: Some(&tenant.id),
            actor: p.actor(),
            action: "user.unlock",
            target: &u.email,
            outcome: Outcome::Success,
            source_ip: ip.as_deref(),
        })
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
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TwoFactorChange {
    /// `sms-email`, `totp` or `duo`: one the company offers and the user is enrolled in.
    preferred_method: String,
}

/// `PUT /api/v1/tenants/{tenant}/users/{user}/two-factor` (`company.manage`, DESIGN §2 rule 7):
/// chooses the user's second factor among the methods the company offers (TOTP and Duo only
/// once the user is enrolled). Audited `user.2fa`; the user is told by email. Errors: 401/403,
/// 404, 422 (a method not offered or not enrolled), 409 (the user changed meanwhile).
pub(super) async fn set_two_factor(
    State(state): State<AppState>,
    p: Principal,
    ClientIp(ip): ClientIp,
    Path((tenant, user)): Path<(String, String)>,
    ApiJson(body): ApiJson<TwoFactorChange>,
) -> Result<Json<UserView>, ApiError> {
    let tenant = p.company(&state, &tenant).await?;
    let read = find_user(&state, &tenant, &user).await?;
    refuse_api_account(&read)?;
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
pub(super) async fn reset_totp(
    State(state): State<AppState>,
    p: Principal,
    ClientIp(ip): ClientIp,
    Path((tenant, user)): Path<(String, String)>,
) -> Result<Json<UserView>, ApiError> {
    let tenant = p.company(&state, &tenant).await?;
    let read = find_user(&state, &tenant, &user).await?;
    refuse_api_account(&read)?;
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
    state
        .audit(Audit {
            tenant: Some(&tenant.id),
            actor: p.actor(),
            action,
            target: &new.email,
            outcome: Outcome::Success,
            source_ip: ip,
        })
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
