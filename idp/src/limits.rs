//! The limits on guessing and flooding, in one place: the second-factor lockout, password
//! throttling and per-user message limits (kept in the store, so every node and every path shares
//! them), and the per-source limits on failures and on new sign-in flows (kept in memory by each
//! node: they slow down one address, the per-account limits are what bound guessing).
//!
//! A source is the socket's peer address, or — when that peer is one of `trusted_proxies` — the
//! client address the proxy reported in `Forwarded` (RFC 7239) or `X-Forwarded-For`.

use forwarded_header_value::ForwardedHeaderValue;
use ipnet::IpNet;
use padlock_policy::lockout::LockoutPolicy;
use padlock_policy::rate::{RateAdmission, RateLimit, RateWindow};
use padlock_policy::throttle::ThrottlePolicy;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// Sources tracked per limit before idle ones are dropped.
const MAX_TRACKED_SOURCES: usize = 100_000;

/// Every limit Padlock applies, with the per-source counters of this node.
pub struct Limits {
    /// Second-factor lockout (`[lockout] max_failures`, `lock_minutes`).
    pub lockout: LockoutPolicy,
    /// Messages per user (`max_messages_per_user` per `message_window_minutes`).
    pub messages: RateLimit,
    /// Password throttling per login name.
    pub passwords: ThrottlePolicy,
    source_failures: RateLimit,
    source_flows: RateLimit,
    trusted_proxies: Vec<IpNet>,
    failures: Mutex<HashMap<IpAddr, RateWindow>>,
    flows: Mutex<HashMap<IpAddr, RateWindow>>,
}

impl Default for Limits {
    fn default() -> Self {
        crate::config::Config::default()
            .limits()
            .unwrap_or_else(|e| panic!("default limits: {e}"))
    }
}

impl Limits {
    /// Limits from their policies; `trusted_proxies` are the peers whose forwarding headers are
    /// believed.
    #[must_use]
    pub fn new(
        lockout: LockoutPolicy,
        messages: RateLimit,
        passwords: ThrottlePolicy,
        source_failures: RateLimit,
        source_flows: RateLimit,
        trusted_proxies: Vec<IpNet>,
    ) -> Limits {
        Limits {
            lockout,
            messages,
            passwords,
            source_failures,
            source_flows,
            trusted_proxies,
            failures: Mutex::default(),
            flows: Mutex::default(),
        }
    }

    fn trusted(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|n| n.contains(&ip))
    }

    /// The client's address for a request whose socket peer is `peer`: the peer itself unless it
    /// is a trusted proxy; then the nearest address in `Forwarded` (else `X-Forwarded-For`) that
    /// is not a trusted proxy, walking from the proxy outwards. Unparseable headers from a trusted
    /// proxy leave the proxy's own address.
    #[must_use]
    pub fn client_addr(&self, peer: IpAddr, headers: &axum::http::HeaderMap) -> IpAddr {
        if !self.trusted(peer) {
            return peer;
        }
        let chain = |name: &str, parse: fn(&str) -> Option<ForwardedHeaderValue>| {
            let values: Vec<&str> = headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            (!values.is_empty()).then(|| parse(&values.join(",")))?
        };
        let parsed = chain("forwarded", |v| {
            ForwardedHeaderValue::from_forwarded(v).ok()
        })
        .or_else(|| {
            chain("x-forwarded-for", |v| {
                ForwardedHeaderValue::from_x_forwarded_for(v).ok()
            })
        });
        let Some(parsed) = parsed else {
            return peer;
        };
        let hops: Vec<IpAddr> = parsed
            .iter()
            .filter_map(forwarded_header_value::ForwardedStanza::forwarded_for_ip)
            .collect();
        hops.iter()
            .rev()
            .find(|ip| !self.trusted(**ip))
            .or_else(|| hops.first())
            .copied()
            .unwrap_or(peer)
    }

    /// When `source` (an address as text) may fail again, if it is over its failure limit now (nothing is counted).
    /// A request without a source is never refused here (its account limits still apply).
    #[must_use]
    pub fn source_refused(&self, source: Option<&str>, now: u64) -> Option<u64> {
        let ip = parse(source)?;
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&ip)?.refused_until(now, &self.source_failures)
    }

    /// Counts one failure (wrong password, client secret or code) from `source` at `now`.
    pub fn record_source_failure(&self, source: Option<&str>, now: u64) {
        if let Some(ip) = parse(source) {
            // Past the limit nothing more needs counting: the source is refused up front.
            let _ = admit(&self.failures, ip, now, &self.source_failures);
        }
    }

    /// Counts one new sign-in flow from `source` at `now`, or refuses it over the limit.
    pub fn admit_flow(&self, source: Option<&str>, now: u64) -> RateAdmission {
        match parse(source) {
            Some(ip) => admit(&self.flows, ip, now, &self.source_flows),
            None => RateAdmission::Admitted,
        }
    }
}

/// A source as [`crate::extract::ClientIp`] gives it.
fn parse(source: Option<&str>) -> Option<IpAddr> {
    source.and_then(|s| s.parse().ok())
}

fn admit(
    map: &Mutex<HashMap<IpAddr, RateWindow>>,
    ip: IpAddr,
    now: u64,
    limit: &RateLimit,
) -> RateAdmission {
    let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
    if map.len() >= MAX_TRACKED_SOURCES {
        map.retain(|_, w| w.idle_at(limit) > now);
    }
    let entry = map.entry(ip).or_default();
    let (next, admission) = std::mem::take(entry).admit(now, limit);
    *entry = next;
    admission
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue};

    fn limits(proxies: &[&str]) -> Limits {
        Limits {
            trusted_proxies: proxies.iter().map(|p| p.parse().unwrap()).collect(),
            ..Limits::default()
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn forwarding_headers_are_believed_only_from_trusted_proxies() {
        let xff = headers(&[("x-forwarded-for", "198.51.100.7")]);
        assert_eq!(
            limits(&[]).client_addr(ip("10.0.0.1"), &xff),
            ip("10.0.0.1")
        );
        let l = limits(&["10.0.0.0/8"]);
        assert_eq!(l.client_addr(ip("10.0.0.1"), &xff), ip("198.51.100.7"));
        // A client cannot hide behind an address it wrote itself: the nearest untrusted hop wins.
        let spoofed = headers(&[("x-forwarded-for", "203.0.113.9, 198.51.100.7, 10.1.1.1")]);
        assert_eq!(l.client_addr(ip("10.0.0.1"), &spoofed), ip("198.51.100.7"));
        let fwd = headers(&[(
            "forwarded",
            "for=203.0.113.9, for=\"[2001:db8::1]:4711\";proto=https",
        )]);
        assert_eq!(l.client_addr(ip("10.0.0.1"), &fwd), ip("2001:db8::1"));
        // Forwarded wins over X-Forwarded-For; garbage leaves the proxy's address.
        let both = headers(&[
            ("forwarded", "for=192.0.2.60"),
            ("x-forwarded-for", "198.51.100.7"),
        ]);
        assert_eq!(l.client_addr(ip("10.0.0.1"), &both), ip("192.0.2.60"));
        let junk = headers(&[("x-forwarded-for", "not an address")]);
        assert_eq!(l.client_addr(ip("10.0.0.1"), &junk), ip("10.0.0.1"));
        assert_eq!(
            l.client_addr(ip("10.0.0.1"), &HeaderMap::new()),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn failures_per_source_are_counted_and_refused() {
        let l = Limits::new(
            LockoutPolicy::default(),
            RateLimit::new(10, 900).unwrap(),
            ThrottlePolicy::default(),
            RateLimit::new(3, 60).unwrap(),
            RateLimit::new(2, 60).unwrap(),
            vec![],
        );
        let a = Some("192.0.2.1");
        for _ in 0..3 {
            assert_eq!(l.source_refused(a, 100), None);
            l.record_source_failure(a, 100);
        }
        assert_eq!(l.source_refused(a, 159), Some(160));
        assert_eq!(l.source_refused(Some("192.0.2.2"), 100), None);
        assert_eq!(l.source_refused(None, 100), None);
        assert_eq!(l.source_refused(a, 160), None);
        assert_eq!(l.admit_flow(a, 1), RateAdmission::Admitted);
        assert_eq!(l.admit_flow(a, 1), RateAdmission::Admitted);
        assert_eq!(l.admit_flow(a, 1), RateAdmission::Refused { retry_at: 61 });
        assert_eq!(l.admit_flow(None, 1), RateAdmission::Admitted);
    }
}
