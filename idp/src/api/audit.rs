//! The audit log, read-only.

use super::{ApiError, Principal, resolve_tenant};
use crate::domain::AuditEvent;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;

/// Most events one call returns.
const MAX_LIMIT: usize = 1000;

#[derive(Deserialize)]
pub(super) struct AuditQuery {
    tenant: Option<String>,
    since: Option<u64>,
    limit: Option<usize>,
}

pub(super) async fn list(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Vec<AuditEvent>>, ApiError> {
    let tenant = match &q.tenant {
        Some(t) => {
            let t = resolve_tenant(&state, t).await?;
            p.require_tenant_admin(&t.id)?;
            Some(t.id)
        }
        None => {
            p.require_operator()?;
            None
        }
    };
    let limit = q.limit.unwrap_or(100).clamp(1, MAX_LIMIT);
    Ok(Json(
        state
            .store
            .list_audit(tenant.as_ref(), q.since, limit)
            .await?,
    ))
}
