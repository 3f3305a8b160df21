//! `/setup`: the first-run page. Reachable only with the one-time token printed by the first
//! `padlock serve`; it creates the first company and its administrator, then the token is dead.
//! The token travels in a hidden field, so it is also the form's CSRF token.

use crate::crypto::sha256;
use crate::domain::{Outcome, ROLE_ADMIN, Tenant, User, normalize_company_name, normalize_email};
use crate::error::AppError;
use crate::extract::{ClientIp, Form};
use crate::password::{MAX_PASSWORD_LEN, MIN_PASSWORD_LEN};
use crate::secret::{Password, SetupToken, TenantId, UserId};
use crate::state::{AppState, Audit};
use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use padlock_policy::TwoFactorPolicy;
use serde::Deserialize;
use subtle::ConstantTimeEq;

#[derive(Template, WebTemplate)]
#[template(path = "setup.html")]
struct SetupPage {
    token: String,
    company: String,
    email: String,
    error: Option<String>,
    min_password: usize,
}

#[derive(Template, WebTemplate)]
#[template(path = "setup_done.html")]
struct SetupDone {
    company: String,
    email: String,
}

#[derive(Deserialize)]
pub(crate) struct SetupQuery {
    token: Option<SetupToken>,
}

#[derive(Deserialize)]
pub(crate) struct SetupForm {
    token: SetupToken,
    company: String,
    email: String,
    password: Password,
    password_confirm: Password,
}

const NO_TOKEN: &str =
    "This page needs the one-time setup link that `padlock serve` printed when it first started.";
const DEAD_TOKEN: &str = "This setup link is not valid: it was already used, or a newer link replaced it. \
     Restart `padlock serve` on a data directory without a company to get a new one.";

async fn token_is_pending(state: &AppState, token: &SetupToken) -> Result<bool, AppError> {
    let digest = sha256(token.secret().as_bytes());
    Ok(state
        .store
        .setup_token()
        .await?
        .is_some_and(|pending| pending.ct_eq(&digest).into()))
}

pub(crate) async fn form(
    State(state): State<AppState>,
    Query(q): Query<SetupQuery>,
) -> Result<Response, AppError> {
    let token = q
        .token
        .ok_or_else(|| AppError::Forbidden(NO_TOKEN.into()))?;
    if !token_is_pending(&state, &token).await? {
        return Err(AppError::Forbidden(DEAD_TOKEN.into()));
    }
    Ok(SetupPage {
        token: token.secret().to_owned(),
        company: String::new(),
        email: String::new(),
        error: None,
        min_password: MIN_PASSWORD_LEN,
    }
    .into_response())
}

/// Why the form cannot be accepted as filled in.
fn check(f: &SetupForm) -> Result<(String, String), String> {
    let company = normalize_company_name(&f.company)?;
    let email = normalize_email(&f.email)?;
    let len = f.password.secret().chars().count();
    if len < MIN_PASSWORD_LEN || f.password.secret().len() > MAX_PASSWORD_LEN {
        return Err(format!(
            "The password must be {MIN_PASSWORD_LEN} to {MAX_PASSWORD_LEN} characters."
        ));
    }
    if f.password != f.password_confirm {
        return Err("The two passwords differ.".into());
    }
    Ok((company, email))
}

pub(crate) async fn submit(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Form(f): Form<SetupForm>,
) -> Result<Response, AppError> {
    if !token_is_pending(&state, &f.token).await? {
        return Err(AppError::Forbidden(DEAD_TOKEN.into()));
    }
    let (company, email) = match check(&f) {
        Ok(v) => v,
        // The token stays valid: nothing was consumed, the person fixes the form and retries.
        Err(e) => {
            return Ok((
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                SetupPage {
                    token: f.token.secret().to_owned(),
                    company: f.company,
                    email: f.email,
                    error: Some(e.trim_end_matches('.').to_owned() + "."),
                    min_password: MIN_PASSWORD_LEN,
                },
            )
                .into_response());
        }
    };
    let password_hash = state
        .passwords
        .hash(f.password.clone())
        .await
        .map_err(anyhow::Error::from)?;

    let digest = sha256(f.token.secret().as_bytes());
    if !state.store.take_setup_token(&digest).await? {
        return Err(AppError::Forbidden(DEAD_TOKEN.into()));
    }
    let now = state.clock.now();
    let tenant = Tenant {
        id: TenantId::generate(),
        name: company.clone(),
        two_factor: TwoFactorPolicy::default(),
        duo: None,
        created_at: now,
    };
    let admin = User {
        id: UserId::generate(),
        tenant: tenant.id.clone(),
        email: email.clone(),
        mobile: None,
        password_hash,
        roles: vec![ROLE_ADMIN.to_owned()],
        preferred_method: None,
        totp: None,
        duo: None,
        api_account: false,
        unix_name: None,
        disabled: false,
        created_at: now,
    };
    let created = async {
        state.store.create_tenant(&tenant).await?;
        state.store.create_user(&admin).await
    }
    .await;
    if let Err(e) = created {
        // Give the token back so the operator can retry with the same link.
        state.store.set_setup_token(&digest).await?;
        return Err(e.into());
    }
    let ip = ip.as_deref();
    state
        .audit(Audit {
            tenant: Some(&tenant.id),
            actor: "setup",
            action: "tenant.create",
            target: &tenant.name,
            outcome: Outcome::Success,
            source_ip: ip,
        })
        .await?;
    state
        .audit(Audit {
            tenant: Some(&tenant.id),
            actor: "setup",
            action: "user.create",
            target: &admin.email,
            outcome: Outcome::Success,
            source_ip: ip,
        })
        .await?;
    Ok(SetupDone { company, email }.into_response())
}

#[cfg(test)]
#[path = "setup_tests.rs"]
mod tests;
