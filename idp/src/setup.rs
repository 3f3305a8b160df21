//! `/setup`: the first-run page. Reachable only with the one-time token printed by `padlock serve`
//! while no company exists; it creates the first company and its administrator in one atomic
//! step, then the token is dead. The token also dies when a company is created any other way
//! (`padlock tenant create`), and [`SETUP_LINK_TTL_SECS`] after it was printed. The token travels in
//! a hidden field, so it is also the form's CSRF token.

use crate::bootstrap::SETUP_LINK_TTL_SECS;
use crate::crypto::sha256;
use crate::domain::{Outcome, ROLE_ADMIN, Tenant, User, normalize_company_name, normalize_email};
use crate::error::AppError;
use crate::extract::{ClientIp, Form, Query};
use crate::password::MIN_PASSWORD_LEN;
use crate::secret::{Password, SetupToken, TenantId, UserId};
use crate::state::{AppState, Audit};
use crate::store::Digest;
use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use padlock_policy::TwoFactorPolicy;
use serde::Deserialize;

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
const EXPIRED_TOKEN: &str = "This setup link has expired: a link works for 24 hours. \
     Restart `padlock serve` to get a new one.";
const ALREADY_SET_UP: &str = "Padlock is already set up: a company exists, so this setup link no longer works. \
     Companies and users are added with `padlock tenant create` and `padlock user add`.";

/// The digest of `token` if it is the pending `/setup` token, not expired, and no company exists;
/// otherwise the refusal to show.
async fn pending_token(state: &AppState, token: &SetupToken) -> Result<Digest, AppError> {
    let digest = sha256(token.secret().as_bytes());
    let Some(pending) = state.store.setup_token().await?.filter(|p| p.is(&digest)) else {
        return Err(AppError::Forbidden(DEAD_TOKEN.into()));
    };
    if state.clock.now() >= pending.issued_at.saturating_add(SETUP_LINK_TTL_SECS) {
        return Err(AppError::Forbidden(EXPIRED_TOKEN.into()));
    }
    // Creating a company ends the token in the store; this also refuses a token that outlived a
    // company created before that rule, or brought in by other means.
    if !state.store.list_tenants().await?.is_empty() {
        return Err(AppError::Forbidden(ALREADY_SET_UP.into()));
    }
    Ok(digest)
}

pub(crate) async fn form(
    State(state): State<AppState>,
    Query(q): Query<SetupQuery>,
) -> Result<Response, AppError> {
    let token = q
        .token
        .ok_or_else(|| AppError::Forbidden(NO_TOKEN.into()))?;
    pending_token(&state, &token).await?;
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
    if let Some(why) = crate::password::refusal(&f.password) {
        return Err(format!("The password {why}."));
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
    let digest = pending_token(&state, &f.token).await?;
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

    let now = state.clock.now();
    let tenant = Tenant {
        id: TenantId::generate(),
        name: company.clone(),
        two_factor: TwoFactorPolicy::default(),
        duo: None,
        roles: Vec::new(),
        operator: true,
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
        session_epoch: 0,
        created_at: now,
    };
    // One atomic step that also consumes the token: never a company without its administrator,
    // and on a conflict nothing is written and the link still works for a retry.
    if !state
        .store
        .create_tenant_with_admin(&tenant, &admin, Some(&digest))
        .await?
    {
        return Err(AppError::Forbidden(DEAD_TOKEN.into()));
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
