//! The company-wide 2FA switch: `PUT /api/v1/tenants/{tenant}/two-factor`. The moment it is
//! saved it applies to every user of the company (the policy is read at every login); there is no
//! per-user exemption to set.

use super::tenants::TenantView;
use super::{ApiError, ApiJson, Principal, TenantParam};
use crate::domain::DuoConfig;
use crate::duo::client::{DuoError, Integration};
use crate::extract::ClientIp;
use crate::secret::DuoSecretKey;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use padlock_policy::permission::Permission;
use padlock_policy::{Method, Methods, TwoFactorPolicy};
use serde::Deserialize;

pub use crate::domain::DUO_SKEY_PURPOSE;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct DuoKeys {
    ikey: String,
    #[schema(value_type = String)]
    skey: DuoSecretKey,
    api_host: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TwoFactorUpdate {
    enabled: bool,
    /// Method names (`sms-email`, `totp`, `duo`); absent keeps the current set.
    methods: Option<Vec<String>>,
    totp_skew_steps: Option<u8>,
    duo: Option<DuoKeys>,
}

/// Checks the shape of Duo keys: returns the API host name, lower-cased.
fn check_duo(d: &DuoKeys) -> Result<String, ApiError> {
    if d.ikey.len() != 20 || !d.ikey.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(ApiError::invalid(
            "duo.ikey",
            "a Duo integration key is 20 letters and digits",
        ));
    }
    if d.skey.secret().len() != 40 || !d.skey.secret().bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::invalid(
            "duo.skey",
            "a Duo secret key is 40 characters",
        ));
    }
    let host = d.api_host.trim().to_ascii_lowercase();
    if !is_duo_api_host(&host) {
        return Err(ApiError::invalid(
            "duo.api_host",
            "give the API hostname of the Auth API application, e.g. api-xxxxxxxx.duosecurity.com",
        ));
    }
    Ok(host)
}

/// `api-<letters and digits>.duosecurity.com` (or Duo Federal's `.duofederal.com`): a plain host
/// name of Duo's, no scheme, port or path, so the keys are only ever sent to Duo.
fn is_duo_api_host(host: &str) -> bool {
    let Some(label) = host.strip_prefix("api-").and_then(|h| {
        h.strip_suffix(".duosecurity.com")
            .or_else(|| h.strip_suffix(".duofederal.com"))
    }) else {
        return false;
    };
    !label.is_empty() && label.len() <= 32 && label.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Asks Duo whether the keys are right (`/auth/v2/check`) before they are saved.
async fn check_with_duo(state: &AppState, d: &DuoKeys, host: &str) -> Result<(), ApiError> {
    let client = state.duo.client_for(Integration {
        ikey: d.ikey.clone(),
        skey: d.skey.clone(),
        api_host: host.to_owned(),
    });
    match client.check().await {
        Ok(()) => Ok(()),
        Err(e @ DuoError::Refused { .. }) => Err(ApiError::invalid(
            "duo",
            format!("Duo refused these keys: {}", e.message()),
        )),
        Err(e) => {
            tracing::warn!(error = %e, "checking Duo keys");
            Err(ApiError::upstream(format!(
                "the Duo keys could not be checked, so they were not saved: {e}"
            )))
        }
    }
}

#[utoipa::path(
    put,
    operation_id = "two_factor_update",
    path = "/tenants/{tenant}/two-factor",
    tag = "companies",
    summary = "Turn company-wide two-factor authentication on or off, choose methods, set Duo keys (checked with Duo's /auth/v2/check before they are saved; the secret key is never returned)",
    params(TenantParam),
    request_body = TwoFactorUpdate,
    responses((status = 200, description = "The company"), (status = 401, description = "{error, message}"), (status = 403, description = "{error, message}"), (status = 404, description = "{error, message}"), (status = 409, description = "{error, message}"), (status = 422, description = "{error, message}"), (status = 502, description = "{error, message}")),
)]
pub(super) async fn update(
    State(state): State<AppState>,
    p: Principal,
    ClientIp(ip): ClientIp,
    Path(tenant): Path<String>,
    ApiJson(body): ApiJson<TwoFactorUpdate>,
) -> Result<Json<TenantView>, ApiError> {
    let mut tenant = p
        .company(&state, &tenant, &[Permission::CompanyManage])
        .await?;
    let read = tenant.clone();
    if let Some(d) = &body.duo {
        let host = check_duo(d)?;
        check_with_duo(&state, d, &host).await?;
        let skey = state
            .master
            .seal(DUO_SKEY_PURPOSE, d.skey.secret().as_bytes())
            .map_err(anyhow::Error::from)?;
        tenant.duo = Some(DuoConfig {
            ikey: d.ikey.clone(),
            skey,
            api_host: host,
        });
    }
    let methods = match &body.methods {
        None => tenant.two_factor.methods,
        Some(names) => {
            let mut list = Vec::new();
            for n in names {
                list.push(Method::parse(n).ok_or_else(|| {
                    ApiError::invalid(
                        "methods",
                        format!("`{n}` is not one of sms-email, totp, duo"),
                    )
                })?);
            }
            Methods::from_list(&list)
        }
    };
    let policy = TwoFactorPolicy {
        enabled: body.enabled,
        methods,
        totp_skew_steps: body
            .totp_skew_steps
            .unwrap_or(tenant.two_factor.totp_skew_steps),
        duo_configured: tenant.duo.is_some(),
    };
    policy
        .validate()
        .map_err(|e| ApiError::invalid("two_factor", e))?;
    let was = tenant.two_factor.enabled;
    tenant.two_factor = policy;
    // Only over the record this request read (a Duo key check takes time): another
    // administrator's change meanwhile is never undone.
    if !state.store.swap_tenant(&read, &tenant).await? {
        return Err(ApiError::changed("company"));
    }
    let action = match (was, policy.enabled) {
        (false, true) => "tenant.2fa.enable",
        (true, false) => "tenant.2fa.disable",
        _ => "tenant.2fa.update",
    };
    let methods: Vec<&str> = policy.methods.iter().map(Method::as_str).collect();
    let target = format!("{} methods={}", tenant.name, methods.join(","));
    p.audit(&state, Some(&tenant.id), action, &target, ip.as_deref())
        .await?;
    Ok(Json(tenant.into()))
}
