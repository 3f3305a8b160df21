//! The audit log, read-only: a page of events as JSON, or an export as CSV or JSON Lines.

use super::{ApiError, Principal};
use crate::domain::AuditEvent;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use padlock_policy::permission::Permission;
use serde::Deserialize;

/// Most events one call returns.
const MAX_LIMIT: usize = 1000;

#[derive(Deserialize)]
pub(super) struct AuditQuery {
    tenant: Option<String>,
    since: Option<u64>,
    limit: Option<usize>,
}

/// The company a query names (checked against the caller), or every company for the operator.
async fn scope(
    state: &AppState,
    p: &Principal,
    tenant: Option<&str>,
) -> Result<Option<crate::secret::TenantId>, ApiError> {
    match tenant {
        Some(t) => Ok(Some(
            p.company(state, t, &[Permission::AuditRead]).await?.id,
        )),
        None => {
            p.require_operator()?;
            Ok(None)
        }
    }
}

pub(super) async fn list(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Vec<AuditEvent>>, ApiError> {
    let tenant = scope(&state, &p, q.tenant.as_deref()).await?;
    let limit = q.limit.unwrap_or(100).clamp(1, MAX_LIMIT);
    Ok(Json(
        state
            .store
            .list_audit(tenant.as_ref(), q.since, limit)
            .await?,
    ))
}

/// Most events one export holds.
const MAX_EXPORT: usize = 100_000;

#[derive(Deserialize)]
pub(super) struct ExportQuery {
    tenant: Option<String>,
    since: Option<u64>,
    /// `csv` (default) or `jsonl`.
    format: Option<String>,
}

/// `GET /api/v1/audit/export?tenant=&since=&format=csv|jsonl`: the company's events from `since`
/// (Unix seconds) on, oldest first — the newest 100,000 of them when there are more — as a CSV
/// file (a header row, every cell quoted; cells that a spreadsheet would read as a formula are
/// prefixed with `'`, see [`neutralised`]) or as JSON Lines (one event per line, as `/audit`
/// gives it).
/// Errors: 401/403 (the caller; all companies need the operator), 404 (company), 400 (format).
pub(super) async fn export(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    let format = q.format.as_deref().unwrap_or("csv");
    if !matches!(format, "csv" | "jsonl") {
        return Err(ApiError::bad_request("format: csv or jsonl"));
    }
    let tenant = scope(&state, &p, q.tenant.as_deref()).await?;
    let events = state
        .store
        .list_audit(tenant.as_ref(), q.since, MAX_EXPORT)
        .await?;
    let (body, content_type, name) = if format == "csv" {
        (csv(&events)?, "text/csv; charset=utf-8", "audit.csv")
    } else {
        let mut out = String::new();
        for e in &events {
            out.push_str(&serde_json::to_string(e).map_err(anyhow::Error::from)?);
            out.push('\n');
        }
        (out, "application/x-ndjson", "audit.jsonl")
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response())
}

/// `events` as CSV, formula-looking cells neutralised.
fn csv(events: &[AuditEvent]) -> Result<String, ApiError> {
    // Every cell quoted: a `;` or a tab inside a cell must not split it where a spreadsheet
    // splits on those.
    let mut w = csv::WriterBuilder::new()
        .quote_style(csv::QuoteStyle::Always)
        .from_writer(Vec::new());
    let header = [
        "at",
        "tenant",
        "actor",
        "action",
        "target",
        "outcome",
        "source_ip",
        "pam_host",
        "pam_user",
        "pam_service",
        "pam_rhost",
        "pam_tty",
    ];
    w.write_record(header).map_err(anyhow::Error::from)?;
    for e in events {
        let at = time::OffsetDateTime::from_unix_timestamp(i64::try_from(e.at).unwrap_or(0))
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default();
        let pam = e.pam.as_ref();
        let outcome = serde_json::to_value(e.outcome)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let cells = [
            at,
            e.tenant
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            e.actor.clone(),
            e.action.clone(),
            e.target.clone(),
            outcome,
            e.source_ip.clone().unwrap_or_default(),
            pam.map(|p| p.host.clone()).unwrap_or_default(),
            pam.map(|p| p.user.clone()).unwrap_or_default(),
            pam.map(|p| p.service.clone()).unwrap_or_default(),
            pam.and_then(|p| p.rhost.clone()).unwrap_or_default(),
            pam.and_then(|p| p.tty.clone()).unwrap_or_default(),
        ];
        w.write_record(cells.iter().map(|c| neutralised(c)))
            .map_err(anyhow::Error::from)?;
    }
    let bytes = w.into_inner().map_err(|e| anyhow::anyhow!("CSV: {e}"))?;
    Ok(String::from_utf8(bytes).map_err(anyhow::Error::from)?)
}

/// `cell` as a spreadsheet reads it as text: a cell whose first character after any spaces is
/// `=`, `+`, `-`, `@` (or their full-width forms), or that starts with a tab, carriage return, line
/// feed or NUL (a formula, OWASP "CSV injection") gets a `'` before it.
pub(super) fn neutralised(cell: &str) -> String {
    let first = cell.trim_start_matches(' ').chars().next();
    let formula = matches!(
        first,
        Some('=' | '+' | '-' | '@' | '\u{ff1d}' | '\u{ff0b}' | '\u{ff0d}' | '\u{ff20}')
    ) || cell.starts_with(['\t', '\r', '\n', '\0']);
    if formula {
        format!("'{cell}")
    } else {
        cell.to_owned()
    }
}
