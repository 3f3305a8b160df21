//! Property tests of the parsers exposed to the network, through the whole router in process:
//! the `/authorize` query and form, the `/token` form, and bearer tokens in headers and bodies.
//! Whatever arrives, Padlock answers without a panic and without a 500, and `/authorize` never
//! redirects anywhere but the registered redirect URI or its own `/login`.

use super::flow_tests::{CB, World, urlencode, world};
use crate::testing::{basic, call};
use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, header};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// Cases per property: enough to reach odd corners, few enough to keep the suite quick.
const CASES: u32 = 128;

/// Runs `property` on `CASES` values of `strategy` against one world.
fn check<S: Strategy>(
    strategy: S,
    property: impl Fn(&World, &tokio::runtime::Runtime, S::Value) -> Result<(), TestCaseError>,
) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let w = rt.block_on(world());
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    });
    if let Err(e) = runner.run(&strategy, |v| property(&w, &rt, v)) {
        panic!("{e}");
    }
}

/// Sends `req` and checks the answer is not a server error.
fn answer(
    w: &World,
    rt: &tokio::runtime::Runtime,
    req: Request<Body>,
) -> Result<crate::testing::Reply, TestCaseError> {
    let what = format!("{} {}", req.method(), req.uri());
    let r = rt.block_on(call(&w.state, req));
    prop_assert!(
        !r.status.is_server_error(),
        "{what} answered {}: {}",
        r.status,
        r.body
    );
    Ok(r)
}

/// Any text: short mostly, sometimes around the 1 KiB bound.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => ".{0,24}",
        1 => "[a-z]{1020,1030}",
        1 => "[0-9 ]{0,8}",
    ]
}

/// Parameter names: those the endpoints read (so duplicates happen) and anything else.
fn key(known: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(known).prop_map(str::to_owned),
        1 => ".{0,12}",
    ]
}

/// A form-encoded parameter list, sometimes after a valid client and redirect URI.
fn params(known: &'static [&'static str], valid_prefix: String) -> impl Strategy<Value = String> {
    (
        any::<bool>(),
        proptest::collection::vec((key(known), text()), 0..8),
    )
        .prop_map(move |(prefixed, pairs)| {
            let mut out = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in &pairs {
                out.append_pair(k, v);
            }
            let pairs = out.finish();
            if prefixed {
                format!("{valid_prefix}&{pairs}")
            } else {
                pairs
            }
        })
}

/// Raw query strings of URI characters, percent signs and separators included.
fn raw_query() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9%&=+._~!$'()*,;:@/?-]{0,200}"
}

/// Raw bodies: any bytes.
fn raw_body() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..400)
}

const AUTHORIZE_KEYS: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "prompt",
    "max_age",
    "login_hint",
    "acr_values",
    "code_challenge",
    "code_challenge_method",
    "request",
    "request_uri",
];

fn authorize_prefix() -> String {
    format!(
        "response_type=code&client_id=c_panel&redirect_uri={}&scope=openid",
        urlencode(CB)
    )
}

/// `/authorize` redirects only to the registered redirect URI or to its own login page.
fn redirects_home(r: &crate::testing::Reply) -> Result<(), TestCaseError> {
    if let Some(loc) = r.headers.get(header::LOCATION) {
        let loc = loc.to_str().unwrap_or("");
        prop_assert!(
            loc.starts_with(&format!("{CB}?")) || loc.starts_with("/login?flow="),
            "redirect to {loc}"
        );
    }
    Ok(())
}

#[test]
fn authorize_query_strings() {
    let strategy = prop_oneof![params(AUTHORIZE_KEYS, authorize_prefix()), raw_query(),];
    check(strategy, |w, rt, q| {
        let Ok(req) = Request::get(format!("/authorize?{q}")).body(Body::empty()) else {
            return Ok(()); // not a URI at all: the HTTP layer refuses it before Padlock
        };
        redirects_home(&answer(w, rt, req)?)
    });
}

#[test]
fn authorize_forms() {
    let strategy = prop_oneof![
        params(AUTHORIZE_KEYS, authorize_prefix()).prop_map(String::into_bytes),
        raw_body(),
    ];
    check(strategy, |w, rt, body| {
        let req = Request::post("/authorize")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .unwrap();
        redirects_home(&answer(w, rt, req)?)
    });
}

const TOKEN_KEYS: &[&str] = &[
    "grant_type",
    "client_id",
    "client_secret",
    "scope",
    "code",
    "redirect_uri",
    "code_verifier",
    "refresh_token",
];

/// An `Authorization` header for `/token`: none, the panel's real credentials, Basic with any
/// text, or any bytes a header may hold.
fn client_auth() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        Just(None),
        Just(Some(basic("c_panel", "c_panel-secret").into_bytes())),
        (text(), text()).prop_map(|(id, secret)| Some(basic(&id, &secret).into_bytes())),
        "Basic .{0,40}".prop_map(|s| Some(s.into_bytes())),
        proptest::collection::vec(any::<u8>(), 0..80).prop_map(Some),
    ]
}

#[test]
fn token_forms() {
    let grant = prop_oneof![
        Just("grant_type=authorization_code".to_owned()),
        Just("grant_type=refresh_token".to_owned()),
        Just("grant_type=client_credentials".to_owned()),
    ];
    let body = prop_oneof![
        (grant, params(TOKEN_KEYS, String::new()))
            .prop_map(|(g, p)| format!("{g}&{p}").into_bytes()),
        params(TOKEN_KEYS, "grant_type=authorization_code".into()).prop_map(String::into_bytes),
        raw_body(),
    ];
    check((body, client_auth()), |w, rt, (body, auth)| {
        let mut req = Request::post("/token")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .unwrap();
        if let Some(v) = auth.and_then(|a| HeaderValue::from_bytes(&a).ok()) {
            req.headers_mut().insert(header::AUTHORIZATION, v);
        }
        answer(w, rt, req)?;
        Ok(())
    });
}

/// Bearer credentials: any header bytes, `Bearer` in some case with any text, JWT-shaped junk.
fn bearer_header() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..120),
        ("(?i:bearer)", "[ \t]{0,3}", text())
            .prop_map(|(s, sp, t)| format!("{s}{sp}{t}").into_bytes()),
        (
            "[A-Za-z0-9_-]{0,40}",
            "[A-Za-z0-9_-]{0,40}",
            "[A-Za-z0-9_-]{0,40}"
        )
            .prop_map(|(a, b, c)| format!("Bearer {a}.{b}.{c}").into_bytes()),
    ]
}

#[test]
fn bearer_tokens_in_headers_and_bodies() {
    let endpoint = proptest::sample::select(
        &[
            (Method::GET, "/userinfo"),
            (Method::POST, "/userinfo"),
            (Method::GET, "/api/v1/tenants"),
            (Method::POST, "/introspect"),
            (Method::POST, "/revoke"),
        ][..],
    );
    let body = prop_oneof![
        params(&["access_token", "token", "token_type_hint"], String::new())
            .prop_map(String::into_bytes),
        raw_body(),
    ];
    check(
        (endpoint, proptest::option::of(bearer_header()), body),
        |w, rt, ((method, path), header_value, body)| {
            let mut req = Request::builder()
                .method(method.clone())
                .uri(path)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(body))
                .unwrap();
            if matches!(path, "/introspect" | "/revoke") {
                // The token goes in the body; the client authenticates with Basic.
                req.headers_mut().insert(
                    header::AUTHORIZATION,
                    HeaderValue::from_str(&basic("c_panel", "c_panel-secret")).unwrap(),
                );
            } else if let Some(v) = header_value.and_then(|h| HeaderValue::from_bytes(&h).ok()) {
                req.headers_mut().insert(header::AUTHORIZATION, v);
            }
            answer(w, rt, req)?;
            Ok(())
        },
    );
}
