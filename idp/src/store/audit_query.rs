//! Reading the audit log a page at a time, newest first: what a page asks for
//! ([`AuditQuery`]), where the next page starts ([`AuditCursor`]), and the one filter every
//! backend applies, so that sled, memory and later backends page identically.

use crate::domain::{AuditEvent, Outcome, Timestamp};
use crate::secret::TenantId;

/// Most events one page query examines (default of [`AuditQuery::scan_limit`]): past it the page
/// ends early, possibly with fewer events than asked, and its `next` cursor continues the scan.
/// It bounds the work of a filter that matches rarely.
pub const AUDIT_SCAN_LIMIT: usize = 2_000;

/// A position in the audit log: an event's time (Unix seconds) and the order it was recorded in.
/// Events are ordered by `(at, seq)`. Written as `<at>.<seq>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct AuditCursor {
    /// The event's time.
    pub at: Timestamp,
    /// Its recording sequence number (unique per store).
    pub seq: u64,
}

impl std::fmt::Display for AuditCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.at, self.seq)
    }
}

impl std::str::FromStr for AuditCursor {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = "a cursor is <seconds>.<sequence>, as a previous page's `next` gave it";
        let (at, seq) = s.split_once('.').ok_or(bad)?;
        Ok(AuditCursor {
            at: at.parse().map_err(|_| bad)?,
            seq: seq.parse().map_err(|_| bad)?,
        })
    }
}

/// Which audit events to read; the newest come first.
#[derive(Debug, Clone)]
pub struct AuditQuery {
    /// Only this company's events (else every event: the operator).
    pub tenant: Option<TenantId>,
    /// Only events at or after this time (Unix seconds).
    pub since: Option<Timestamp>,
    /// Only events strictly older than this position (the previous page's `next`).
    pub before: Option<AuditCursor>,
    /// Only events whose actor or target is exactly this (a user id, an email, a client id).
    pub user: Option<String>,
    /// Only this action (`user.update`), or every action starting with the text before a final
    /// `*` (`login.*`).
    pub action: Option<String>,
    /// Only this outcome.
    pub outcome: Option<Outcome>,
    /// Most events in the page.
    pub limit: usize,
    /// Most events examined ([`AUDIT_SCAN_LIMIT`]).
    pub scan_limit: usize,
}

impl Default for AuditQuery {
    fn default() -> Self {
        AuditQuery {
            tenant: None,
            since: None,
            before: None,
            user: None,
            action: None,
            outcome: None,
            limit: 100,
            scan_limit: AUDIT_SCAN_LIMIT,
        }
    }
}

/// A page of audit events, newest first, and where the next (older) page starts when there may
/// be more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditPage {
    /// The events.
    pub events: Vec<AuditEvent>,
    /// Give it as `before` to read on; `None` when nothing older matches.
    pub next: Option<AuditCursor>,
}

/// The index range a query reads: the narrowest its filters allow within a company (a user's
/// events, then failures, then one action), else the company's, or every event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditIndex<'a> {
    /// Every event (the operator, no company given).
    All,
    /// A company's events.
    Tenant(&'a TenantId),
    /// A company's events whose actor or target is the user.
    User(&'a TenantId, &'a str),
    /// A company's events with this outcome.
    Outcome(&'a TenantId, Outcome),
    /// A company's events of exactly this action.
    Action(&'a TenantId, &'a str),
}

impl AuditQuery {
    /// The index this query reads.
    #[must_use]
    pub fn index(&self) -> AuditIndex<'_> {
        let Some(t) = &self.tenant else {
            return AuditIndex::All;
        };
        if let Some(u) = &self.user {
            AuditIndex::User(t, u)
        } else if self.outcome == Some(Outcome::Failure) {
            AuditIndex::Outcome(t, Outcome::Failure)
        } else if let Some(a) = self.action.as_deref().filter(|a| !a.ends_with('*')) {
            AuditIndex::Action(t, a)
        } else {
            AuditIndex::Tenant(t)
        }
    }

    /// Whether `e` is in the range of events this query examines ([`AuditQuery::index`]).
    #[must_use]
    pub fn in_scope(&self, e: &AuditEvent) -> bool {
        let of = |t: &TenantId| e.tenant.as_ref() == Some(t);
        match self.index() {
            AuditIndex::All => true,
            AuditIndex::Tenant(t) => of(t),
            AuditIndex::User(t, u) => of(t) && (e.actor == u || e.target == u),
            AuditIndex::Outcome(t, o) => of(t) && e.outcome == o,
            AuditIndex::Action(t, a) => of(t) && e.action == a,
        }
    }

    fn user_matches(&self, e: &AuditEvent) -> bool {
        self.user
            .as_deref()
            .is_none_or(|u| e.actor == u || e.target == u)
    }

    /// Whether an examined event goes into the page.
    #[must_use]
    pub fn matches(&self, e: &AuditEvent) -> bool {
        let action = match self.action.as_deref() {
            None => true,
            Some(a) => match a.strip_suffix('*') {
                Some(prefix) => e.action.starts_with(prefix),
                None => e.action == a,
            },
        };
        self.in_scope(e)
            && self.user_matches(e)
            && action
            && self.outcome.is_none_or(|o| e.outcome == o)
            && self.since.is_none_or(|s| e.at >= s)
    }

    /// Builds the page from the events in scope, newest first, that are older than `before` and
    /// not older than `since` (as an index yields them): examines at most `scan_limit`, keeps at
    /// most `limit` matches. Every backend pages through this.
    ///
    /// # Errors
    /// The first error `candidates` yields.
    pub fn page<E>(
        &self,
        candidates: impl Iterator<Item = Result<(AuditCursor, AuditEvent), E>>,
    ) -> Result<AuditPage, E> {
        let mut events = Vec::new();
        let mut last = None;
        for (examined, item) in candidates.enumerate() {
            if examined == self.scan_limit.max(1) {
                return Ok(AuditPage { events, next: last });
            }
            let (cursor, e) = item?;
            last = Some(cursor);
            if self.matches(&e) {
                events.push(e);
                if events.len() == self.limit.max(1) {
                    return Ok(AuditPage { events, next: last });
                }
            }
        }
        Ok(AuditPage { events, next: None })
    }
}
