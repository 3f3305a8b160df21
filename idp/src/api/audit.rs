//! The audit log, read-only: a page of events as JSON (newest first, from the store's index by
//! company, user and time), or an export as CSV or JSON Lines.

use super::{ApiError, Principal};
use crate::domain::AuditEvent;
use crate::state::AppState;
use crate::store::AuditCursor;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use padlock_policy::permission::Permission;
use serde::Deserialize;

/// Most events one call returns.
const MAX_LIMIT: usize = 1000;

/// `GET /api/v1/audit` query.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct AuditParams {
    /// The company (id or name); absent: every company (the operator only).
    tenant: Option<String>,
    /// Events at or after this time, Unix seconds.
    since: Option<u64>,
    /// Events older than this cursor (the `next` of the previous page's `Link` header).
    before: Option<String>,
    /// Events whose actor or target is exactly this (user id, email, client id).
    user: Option<String>,
    /// One action (`user.update`), or every action starting with the text before a final `*`.
    action: Option<String>,
    /// `success` or `failure`.
    #[param(value_type = Option<String>)]
    outcome: Option<crate::domain::Outcome>,
    /// Events per page, 1 to 1000 (default 100).
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

/// `GET /api/v1/audit?tenant=&since=&before=&user=&action=&outcome=&limit=` (`audit.read` for a
/// company; every company needs the operator) → a JSON array of events, newest first. When older
/// events may match, a `Link: <…&before=<cursor>>; rel="next"` header (RFC 8288) gives the next
/// page; a page can hold fewer than `limit` events and still have a next one (a rare filter
/// stops after [`crate::store::AUDIT_SCAN_LIMIT`] examined events). Errors: 401/403, 404
/// (company), 400 (a malformed parameter or cursor).
#[utoipa::path(
    get,
    operation_id = "audit_list",
    path = "/audit",
    tag = "audit",
    summary = "Audit events, newest first, from the index by company, user and time; a Link header (rel=next) gives the next page",
    params(AuditParams),
    responses((status = 200, description = "A page of events, newest first; Link rel=next when more may match"), (status = 400, description = "{error, message}"), (status = 401, description = "{error, message}"), (status = 403, description = "{error, message}"), (status = 404, description = "{error, message}")),
)]
pub(super) async fn list(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<AuditParams>,
) -> Result<Response, ApiError> {
    let tenant = scope(&state, &p, q.tenant.as_deref()).await?;
    let before = q
        .before
        .as_deref()
        .map(str::parse::<AuditCursor>)
        .transpose()
        .map_err(|e| ApiError::bad_request(format!("before: {e}")))?;
    let query = crate::store::AuditQuery {
        tenant,
        since: q.since,
        before,
        user: q.user.clone(),
        action: q.action.clone(),
        outcome: q.outcome,
        limit: q.limit.unwrap_or(100).clamp(1, MAX_LIMIT),
        ..crate::store::AuditQuery::default()
    };
    let page = state.store.audit_page(&query).await?;
    let mut resp = Json(page.events).into_response();
    if let Some(next) = page.next {
        let mut link = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("tenant", q.tenant),
            ("since", q.since.map(|s| s.to_string())),
            ("user", q.user),
            ("action", q.action),
            ("outcome", q.outcome.map(|o| o.as_str().to_owned())),
            ("limit", Some(query.limit.to_string())),
            ("before", Some(next.to_string())),
        ] {
            if let Some(v) = v {
                link.append_pair(k, &v);
            }
        }
        let value = format!("</api/v1/audit?{}>; rel=\"next\"", link.finish());
        if let Ok(v) = header::HeaderValue::from_str(&value) {
            resp.headers_mut().insert(header::LINK, v);
        }
    }
    Ok(resp)
}

/// Most events one export holds.
const MAX_EXPORT: usize = 100_000;

/// `GET /api/v1/audit/export` query: the filters of `/audit`, and the format.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct ExportQuery {
    tenant: Option<String>,
    since: Option<u64>,
    user: Option<String>,
    action: Option<String>,
    #[param(value_type = Option<String>)]
    outcome: Option<crate::domain::Outcome>,
    /// `csv` (default) or `jsonl`.
    format: Option<String>,
}

/// `GET /api/v1/audit/export?tenant=&since=&user=&action=&outcome=&format=csv|jsonl`: the
/// company's events from `since` (Unix seconds) on that pass the filters of `/audit`, oldest first — the newest 100,000 of them when there are more — as a CSV
/// file (a header row, every cell quoted; cells that a spreadsheet would read as a formula are
/// prefixed with `'`, see [`neutralised`]) or as JSON Lines (one event per line, as `/audit`
/// gives it).
/// Errors: 401/403 (the caller; all companies need the operator), 404 (company), 400 (format).
#[utoipa::path(
    get,
    operation_id = "audit_export",
    path = "/audit/export",
    tag = "audit",
    summary = "Export audit events (oldest first, at most 100,000) as CSV (formula-looking cells prefixed with ') or JSON Lines",
    params(ExportQuery),
    responses((status = 200, description = "CSV or JSON Lines"), (status = 400, description = "{error, message}"), (status = 401, description = "{error, message}"), (status = 403, description = "{error, message}"), (status = 404, description = "{error, message}")),
)]
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
    let query = crate::store::AuditQuery {
        tenant,
        since: q.since,
        user: q.user,
        action: q.action,
        outcome: q.outcome,
        ..crate::store::AuditQuery::default()
    };
    let events = crate::store::audit_events(state.store.as_ref(), query, MAX_EXPORT).await?;
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
        let outcome = e.outcome.as_str().to_owned();
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
