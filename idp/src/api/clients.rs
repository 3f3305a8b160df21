//! Relying panels, API accounts and signing-key rotation. Secrets are generated here (256 bits),
//! returned once, and stored only as SHA-256.

use super::{ApiError, ApiJson, Principal, check_scope_token};
use crate::crypto::{random_token, sha256};
use crate::domain::{Client, ClientKind, Outcome, SigningAlg};
use crate::extract::ClientIp;
use crate::keys::Keys;
use crate::secret::ClientId;
use crate::state::{AppState, Audit};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use padlock_policy::permission::is_admin_scope;
use serde::{Deserialize, Serialize};

/// Scopes a relying panel gets when none are given.
const DEFAULT_PANEL_SCOPES: [&str; 3] = ["openid", "profile", "email"];

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewPanel {
    name: String,
    redirect_uris: Vec<String>,
    #[serde(default)]
    post_logout_redirect_uris: Vec<String>,
    #[serde(default)]
    public: bool,
    #[schema(value_type = Option<String>)]
    id_token_alg: Option<SigningAlg>,
    scopes: Option<Vec<String>>,
}

#[derive(Serialize)]
pub(super) struct Credentials {
    pub(super) client_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) client_secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) user_id: Option<String>,
}

/// An absolute http(s) URI without a fragment (exact-match redirect targets).
fn check_redirect(field: &str, uri: &str) -> Result<(), ApiError> {
    let rest = uri
        .strip_prefix("https://")
        .or_else(|| uri.strip_prefix("http://"));
    let host_ok = rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/'));
    if !host_ok || uri.contains('#') || uri.chars().any(char::is_whitespace) || uri.len() > 2000 {
        return Err(ApiError::invalid(
            field,
            format!("`{uri}` must be an absolute http(s) URI without a fragment"),
        ));
    }
    Ok(())
}

pub(super) fn check_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ApiError::invalid("name", "must be 1 to 100 characters"));
    }
    Ok(name.to_owned())
}

#[utoipa::path(
    post,
    operation_id = "clients_create_relying_panel",
    path = "/clients",
    tag = "relying panels",
    summary = "Register a relying panel",
    request_body = NewPanel,
    responses((status = 201, description = "{client_id, client_secret}"), (status = 401, description = "{error, message}"), (status = 403, description = "{error, message}"), (status = 422, description = "{error, message}")),
)]
pub(super) async fn create_relying_panel(
    State(state): State<AppState>,
    p: Principal,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<NewPanel>,
) -> Result<(StatusCode, Json<Credentials>), ApiError> {
    p.require_operator()?;
    let name = check_name(&body.name)?;
    if body.redirect_uris.is_empty() {
        return Err(ApiError::invalid(
            "redirect_uris",
            "at least one is required",
        ));
    }
    for u in &body.redirect_uris {
        check_redirect("redirect_uris", u)?;
    }
    for u in &body.post_logout_redirect_uris {
        check_redirect("post_logout_redirect_uris", u)?;
    }
    let scopes = body
        .scopes
        .unwrap_or_else(|| DEFAULT_PANEL_SCOPES.map(String::from).to_vec());
    for s in &scopes {
        check_scope_token("scopes", s)?;
        if is_admin_scope(s) {
            return Err(ApiError::invalid(
                "scopes",
                format!(
                    "{s} is an admin scope: it is issued only to API accounts and the operator credential, never through a relying panel"
                ),
            ));
        }
    }
    let secret = (!body.public).then(|| random_token(32));
    let client = Client {
        id: ClientId::generate(),
        name,
        kind: ClientKind::RelyingPanel {
            redirect_uris: body.redirect_uris,
            post_logout_redirect_uris: body.post_logout_redirect_uris,
            public: body.public,
            id_token_alg: body.id_token_alg.unwrap_or(SigningAlg::RS256),
        },
        secret_sha256: secret.as_ref().map(|s| hex::encode(sha256(s.as_bytes()))),
        scopes,
        tenant: None,
        created_at: state.clock.now(),
    };
    state.store.put_client(&client).await?;
    p.audit(
        &state,
        None,
        "client.create",
        client.id.as_str(),
        ip.as_deref(),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(Credentials {
            client_id: client.id.to_string(),
            client_secret: secret,
            user_id: None,
        }),
    ))
}

#[derive(Serialize)]
pub(super) struct Rotated {
    current: Vec<String>,
    published: Vec<String>,
}

#[utoipa::path(
    post,
    operation_id = "clients_rotate_keys",
    path = "/keys/rotate",
    tag = "signing keys",
    summary = "Rotate the signing keys",
    responses((status = 200, description = "{current, published}"), (status = 401, description = "{error, message}"), (status = 403, description = "{error, message}")),
)]
pub(super) async fn rotate_keys(
    State(state): State<AppState>,
    p: Principal,
    ClientIp(ip): ClientIp,
) -> Result<Json<Rotated>, ApiError> {
    p.require_operator()?;
    let keys = Keys::rotate(state.store.as_ref(), &state.master, state.clock.now())
        .await
        .map_err(anyhow::Error::from)?;
    let view = Rotated {
        current: keys
            .all()
            .iter()
            .filter(|k| k.current)
            .map(|k| k.kid.clone())
            .collect(),
        published: keys.all().iter().map(|k| k.kid.clone()).collect(),
    };
    state.keys.replace(keys);
    state
        .audit(Audit {
            tenant: None,
            actor: p.actor(),
            action: "keys.rotate",
            target: &view.current.join(","),
            outcome: Outcome::Success,
            source_ip: ip.as_deref(),
        })
        .await?;
    Ok(Json(view))
}
