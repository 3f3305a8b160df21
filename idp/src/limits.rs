//! The limits on guessing and flooding, in one place: the second-factor lockout, password
//! throttling and per-user message limits (kept in the store, so every node and every path shares
//! them), and the per-source limits on failures and on new sign-in flows (kept in memory by each
//! node: they slow down one address, the per-account limits are what bound guessing).
//!
//! A source is the socket's peer address, or — when that peer is one of `trusted_proxies` — the
//! client address the proxy reported in the one header `proxy_header` names (`X-Forwarded-For`
//! or `Forwarded`, RFC 7239). IPv6 sources count by their /64 network.

use forwarded_header_value::ForwardedHeaderValue;
use ipnet::IpNet;
use padlock_policy::lockout::LockoutPolicy;
use padlock_policy::rate::{RateAdmission, RateLimit, RateWindow};
use padlock_policy::throttle::ThrottlePolicy;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// Sources tracked per limit; past this, idle ones are dropped, and if none is idle the map
/// starts again (the per-account limits still hold).
const MAX_TRACKED_SOURCES: usize = 100_000;

/// Which header a trusted proxy writes the client's address into.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ProxyHeader {
    /// `X-Forwarded-For` (nginx, HAProxy, most load balancers).
    #[default]
    #[serde(rename = "x-forwarded-for")]
    XForwardedFor,
    /// `Forwarded` (RFC 7239).
    #[serde(rename = "forwarded")]
    Forwarded,
}

/// The peers whose forwarding header is believed, and which header that is. Only that one header
/// is read: a proxy that sets `X-Forwarded-For` passes a client's own `Forwarded` through
/// untouched, so reading both would let the client choose its address.
#[derive(Debug, Clone, Default)]
pub struct Proxies {
    /// Addresses or networks of the trusted proxies (`trusted_proxies`).
    pub trusted: Vec<IpNet>,
    /// The header they set (`proxy_header`).
    pub header: ProxyHeader,
}

/// Every limit Padlock applies, with the per-source counters of this node.
pub struct Limits {
    /// Second-factor lockout (`[lockout] max_failures`, `lock_minutes`).
    pub lockout: LockoutPolicy,
    /// Messages per user (`max_messages_per_user` per `message_window_minutes`).
    pub messages: RateLimit,
    /// Password throttling per login name.
    pub passwords: ThrottlePolicy,
    /// How long a one-time code is valid, seconds (`[lockout] code_ttl_secs`, at most 120).
    pub code_ttl_secs: u64,
    source_failures: RateLimit,
    source_flows: RateLimit,
    proxies: Proxies,
    failures: Mutex<HashMap<IpAddr, RateWindow>>,
    flows: Mutex<HashMap<IpAddr, RateWindow>>,
    /// Per source, the end of the last refusal that was audited: one audit event per refusal
    /// period, so refused requests cannot flood the append-only audit log.
    audited: Mutex<HashMap<IpAddr, u64>>,
}

impl Default for Limits {
    fn default() -> Self {
        crate::config::Config::default()
            .limits()
            .unwrap_or_else(|e| panic!("default limits: {e}"))
    }
}

/// A per-source refusal: when the source may try again, and whether this is the first refusal of
/// its period (the one to audit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// Seconds since the epoch.
    pub retry_at: u64,
    /// First refusal until `retry_at`.
    pub first: bool,
}

impl Limits {
    /// Limits from their policies, and the proxies whose forwarding header is believed.
    #[must_use]
    pub fn new(
        lockout: LockoutPolicy,
        messages: RateLimit,
        passwords: ThrottlePolicy,
        source_failures: RateLimit,
        source_flows: RateLimit,
        proxies: Proxies,
    ) -> Limits {
        Limits {
            lockout,
            messages,
            passwords,
            code_ttl_secs: padlock_policy::code::CODE_TTL_SECS,
            source_failures,
            source_flows,
            proxies,
            failures: Mutex::default(),
            flows: Mutex::default(),
            audited: Mutex::default(),
        }
    }

    fn trusted(&self, ip: IpAddr) -> bool {
        self.proxies.trusted.iter().any(|n| n.contains(&ip))
    }

    /// The client's address for a request whose socket peer is `peer` (IPv4-mapped IPv6 addresses
    /// read as IPv4): the peer itself unless it is a trusted proxy; then the nearest address in the
    /// configured forwarding header that is not a trusted proxy, walking from the proxy outwards.
    /// A missing or unparseable header leaves the proxy's own address.
    #[must_use]
    pub fn client_addr(&self, peer: IpAddr, headers: &axum::http::HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusted(peer) {
            return peer;
        }
        let (name, parse): (&str, fn(&str) -> Option<ForwardedHeaderValue>) =
            match self.proxies.header {
                ProxyHeader::XForwardedFor => ("x-forwarded-for", |v| {
                    ForwardedHeaderValue::from_x_forwarded_for(v).ok()
                }),
                ProxyHeader::Forwarded => ("forwarded", |v| {
                    ForwardedHeaderValue::from_forwarded(v).ok()
                }),
            };
        let values: Vec<&str> = headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let Some(parsed) = (!values.is_empty())
            .then(|| parse(&values.join(",")))
            .flatten()
        else {
            return peer;
        };
        let hops: Vec<IpAddr> = parsed
            .iter()
            .filter_map(forwarded_header_value::ForwardedStanza::forwarded_for_ip)
            .map(|ip| ip.to_canonical())
            .collect();
        hops.iter()
            .rev()
            .find(|ip| !self.trusted(**ip))
            .or_else(|| hops.first())
            .copied()
            .unwrap_or(peer)
    }

    /// Whether `source` (an address as text) is over its failure limit now (nothing is counted).
    /// A request without a source is never refused here (its account limits still apply).
    #[must_use]
    pub fn source_refused(&self, source: Option<&str>, now: u64) -> Option<Refusal> {
        let key = source_key(source)?;
        let retry_at = {
            let map = lock(&self.failures);
            map.get(&key)?.refused_until(now, &self.source_failures)?
        };
        Some(self.refusal(key, retry_at))
    }

    /// Counts one failure (wrong password, client secret or code) from `source` at `now`.
    pub fn record_source_failure(&self, source: Option<&str>, now: u64) {
        if let Some(key) = source_key(source) {
            // Past the limit nothing more needs counting: the source is refused up front.
            let _ = admit(&self.failures, key, now, &self.source_failures);
        }
    }

    /// Counts one new sign-in flow (or `prompt=none` request without a session) from `source` at
    /// `now`, or refuses it over the limit.
    pub fn admit_flow(&self, source: Option<&str>, now: u64) -> Option<Refusal> {
        let key = source_key(source)?;
        match admit(&self.flows, key, now, &self.source_flows) {
            RateAdmission::Admitted => None,
            RateAdmission::Refused { retry_at } => Some(self.refusal(key, retry_at)),
        }
    }

    fn refusal(&self, key: IpAddr, retry_at: u64) -> Refusal {
        let mut audited = lock(&self.audited);
        if audited.len() >= MAX_TRACKED_SOURCES {
            audited.clear();
        }
        let first = audited.insert(key, retry_at) != Some(retry_at);
        Refusal { retry_at, first }
    }
}

/// The key a source is counted under: an IPv4 address, or the /64 network of an IPv6 address
/// (one subscriber usually holds a whole /64).
fn source_key(source: Option<&str>) -> Option<IpAddr> {
    let ip: IpAddr = source?.parse().ok()?;
    Some(match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        v4 => v4,
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn admit(
    map: &Mutex<HashMap<IpAddr, RateWindow>>,
    key: IpAddr,
    now: u64,
    limit: &RateLimit,
) -> RateAdmission {
    let mut map = lock(map);
    if map.len() >= MAX_TRACKED_SOURCES && !map.contains_key(&key) {
        map.retain(|_, w| w.idle_at(limit) > now);
        if map.len() >= MAX_TRACKED_SOURCES {
            tracing::warn!(
                sources = map.len(),
                "per-source limits track too many addresses: starting again"
            );
            map.clear();
        }
    }
    let entry = map.entry(key).or_default();
    let (next, admission) = std::mem::take(entry).admit(now, limit);
    *entry = next;
    admission
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue};

    fn limits(proxies: &[&str], header: ProxyHeader) -> Limits {
        Limits {
            proxies: Proxies {
                trusted: proxies.iter().map(|p| p.parse().unwrap()).collect(),
                header,
            },
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
        let none = limits(&[], ProxyHeader::XForwardedFor);
        assert_eq!(none.client_addr(ip("10.0.0.1"), &xff), ip("10.0.0.1"));
        let l = limits(&["10.0.0.0/8"], ProxyHeader::XForwardedFor);
        assert_eq!(l.client_addr(ip("10.0.0.1"), &xff), ip("198.51.100.7"));
        // An IPv4 proxy seen through an IPv6 listener is still the trusted proxy.
        assert_eq!(
            l.client_addr(ip("::ffff:10.0.0.1"), &xff),
            ip("198.51.100.7")
        );
        // A client cannot hide behind an address it wrote itself: the nearest untrusted hop wins.
        let spoofed = headers(&[("x-forwarded-for", "203.0.113.9, 198.51.100.7, 10.1.1.1")]);
        assert_eq!(l.client_addr(ip("10.0.0.1"), &spoofed), ip("198.51.100.7"));
        // Only the configured header is read: a Forwarded header the proxy passed through from
        // the client changes nothing.
        let both = headers(&[
            ("forwarded", "for=192.0.2.60"),
            ("x-forwarded-for", "198.51.100.7"),
        ]);
        assert_eq!(l.client_addr(ip("10.0.0.1"), &both), ip("198.51.100.7"));
        let fwd_only = headers(&[("forwarded", "for=192.0.2.60")]);
        assert_eq!(l.client_addr(ip("10.0.0.1"), &fwd_only), ip("10.0.0.1"));
        let rfc = limits(&["10.0.0.0/8"], ProxyHeader::Forwarded);
        let fwd = headers(&[(
            "forwarded",
            "for=203.0.113.9, for=\"[2001:db8::1]:4711\";proto=https",
        )]);
        assert_eq!(rfc.client_addr(ip("10.0.0.1"), &fwd), ip("2001:db8::1"));
        assert_eq!(rfc.client_addr(ip("10.0.0.1"), &xff), ip("10.0.0.1"));
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
            Proxies::default(),
        );
        let a = Some("192.0.2.1");
        for _ in 0..3 {
            assert_eq!(l.source_refused(a, 100), None);
            l.record_source_failure(a, 100);
        }
        // One audit per refusal period.
        let first = Refusal {
            retry_at: 160,
            first: true,
        };
        assert_eq!(l.source_refused(a, 159), Some(first));
        assert_eq!(
            l.source_refused(a, 159),
            Some(Refusal {
                first: false,
                ..first
            })
        );
        assert_eq!(l.source_refused(Some("192.0.2.2"), 100), None);
        assert_eq!(l.source_refused(None, 100), None);
        assert_eq!(l.source_refused(a, 160), None);
        assert_eq!(l.admit_flow(a, 1), None);
        assert_eq!(l.admit_flow(a, 1), None);
        assert_eq!(
            l.admit_flow(a, 1),
            Some(Refusal {
                retry_at: 61,
                first: true
            })
        );
        assert_eq!(l.admit_flow(None, 1), None);
    }

    #[test]
    fn an_ipv6_source_is_its_64_network() {
        let l = Limits::new(
            LockoutPolicy::default(),
            RateLimit::new(10, 900).unwrap(),
            ThrottlePolicy::default(),
            RateLimit::new(2, 60).unwrap(),
            RateLimit::new(2, 60).unwrap(),
            Proxies::default(),
        );
        l.record_source_failure(Some("2001:db8:1:2::1"), 0);
        l.record_source_failure(Some("2001:db8:1:2:ffff::9"), 0);
        assert!(l.source_refused(Some("2001:db8:1:2:abcd::1"), 1).is_some());
        assert!(l.source_refused(Some("2001:db8:1:3::1"), 1).is_none());
        // An IPv4 client through an IPv6 socket is counted as itself.
        l.record_source_failure(Some("::ffff:192.0.2.7"), 0);
        l.record_source_failure(Some("192.0.2.7"), 0);
        assert!(l.source_refused(Some("192.0.2.7"), 1).is_some());
    }
}
