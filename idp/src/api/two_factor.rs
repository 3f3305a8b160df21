//! The company-wide 2FA switch: `PUT /api/v1/tenants/{tenant}/two-factor`. The moment it is
//! saved it applies to every user of the company (the policy is read at every login); there is no
//! per-user exemption to set.

use super::tenants::TenantView;
use super::{ApiError, ApiJson, Principal, resolve_tenant};
use crate::domain::{DuoConfig, Outcome};
use crate::extract::ClientIp;
use crate::secret::ClientSecret;
use crate::state::{AppState, Audit};
use axum::Json;
use axum::extract::{Path, State};
use padlock_policy::{Method, Methods, TwoFactorPolicy};
use serde::Deserialize;

pub use crate::domain::DUO_SKEY_PURPOSE;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DuoKeys {
    ikey: String,
    skey: ClientSecret,
    api_host: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TwoFactorUpdate {
    enabled: bool,
    /// Method names (`sms-email`, `totp`, `duo`); absent keeps the current set.
    methods: Option<Vec<String>>,
    totp_skew_steps: Option<u8>,
    duo: Option<DuoKeys>,
}

fn check_duo(d: &DuoKeys) -> Result<(), ApiError> {
    if d.ikey.len() != 20 || !d.ikey.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(ApiError::invalid(
            "duo.ikey",
            "a Duo integration key is 20 letters and digits",
        ));
    }
    if d.skey.secret().len() != 40 {
        return Err(ApiError::invalid(
            "duo.skey",
            "a Duo secret key is 40 characters",
        ));
    }
    let host = d.api_host.trim();
    if host.is_empty() || host.contains(['/', ':', ' ']) || !host.contains('.') {
        return Err(ApiError::invalid(
            "duo.api_host",
            "give the API hostname, e.g. api-xxxxxxxx.duosecurity.com",
        ));
    }
    Ok(())
}

pub(super) async fn update(
    State(state): State<AppState>,
    p: Principal,
    ClientIp(ip): ClientIp,
    Path(tenant): Path<String>,
    ApiJson(body): ApiJson<TwoFactorUpdate>,
) -> Result<Json<TenantView>, ApiError> {
    let mut tenant = resolve_tenant(&state, &tenant).await?;
    p.require_tenant_admin(&tenant.id)?;
    if let Some(d) = &body.duo {
        check_duo(d)?;
        let skey = state
            .master
            .seal(DUO_SKEY_PURPOSE, d.skey.secret().as_bytes())
            .map_err(anyhow::Error::from)?;
        tenant.duo = Some(DuoConfig {
            ikey: d.ikey.clone(),
            skey,
            api_host: d.api_host.trim().to_owned(),
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
    state.store.update_tenant(&tenant).await?;
    let action = match (was, policy.enabled) {
        (false, true) => "tenant.2fa.enable",
        (true, false) => "tenant.2fa.disable",
        _ => "tenant.2fa.update",
    };
    let methods: Vec<&str> = policy.methods.iter().map(Method::as_str).collect();
    let target = format!("{} methods={}", tenant.name, methods.join(","));
    state
        .audit(Audit {
            tenant: Some(&tenant.id),
            actor: p.actor(),
            action,
            target: &target,
            outcome: Outcome::Success,
            source_ip: ip.as_deref(),
        })
        .await?;
    Ok(Json(tenant.into()))
}
