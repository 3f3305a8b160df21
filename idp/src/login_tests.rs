//! Oneshot tests of guessing and flooding limits at sign-in (hardening items 3 and 4): messages per
//! user on every sending path, out-of-step posts, count-then-check lockout under parallel guesses,
//! password throttling, one answer and one hash for every failed sign-in, the lock notice, and the
//! per-source limits.

use crate::clock::Clock;
use crate::domain::Outcome;
use crate::factor::tests::{enrol_totp, last_code, submit, to_factor, world_2fa};
use crate::limits::Limits;
use crate::oauth::flow_tests::{
    PW, World, authorize_uri, location, login, set_cookie, urlencode, with_cookie, world,
};
use crate::testing::{Reply, call, call_parallel, get, post_form, post_form_basic};
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use padlock_policy::Method;
use padlock_policy::lockout::LockoutPolicy;
use padlock_policy::rate::RateLimit;
use padlock_policy::throttle::ThrottlePolicy;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

/// Limits with `messages` per user, the given password throttle and per-source limits, and
/// `proxies` trusted.
fn limits(
    messages: u32,
    passwords: ThrottlePolicy,
    source_failures: u32,
    source_flows: u32,
    proxies: &[&str],
) -> Arc<Limits> {
    Arc::new(Limits::new(
        LockoutPolicy::default(),
        RateLimit::new(messages, 900).unwrap(),
        passwords,
        RateLimit::new(source_failures, 600).unwrap(),
        RateLimit::new(source_flows, 600).unwrap(),
        crate::limits::Proxies {
            trusted: proxies.iter().map(|p| p.parse().unwrap()).collect(),
            header: crate::limits::ProxyHeader::XForwardedFor,
        },
    ))
}

fn outbox_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir.join("outbox"))
        .map(|d| {
            d.map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
                .collect()
        })
        .unwrap_or_default()
}

/// A new flow: its id and cookie.
async fn new_flow(w: &World) -> (String, String) {
    let r = call(&w.state, get(&authorize_uri(&w.panel, ""))).await;
    let (flow, _) = set_cookie(&r, "padlock_flow").expect("flow cookie");
    let cookie = format!("padlock_flow={flow}");
    (flow, cookie)
}

async fn password(w: &World, flow: &str, cookie: &str, email: &str, pw: &str) -> Reply {
    let form = format!(
        "flow={flow}&email={}&password={}",
        urlencode(email),
        urlencode(pw)
    );
    call(&w.state, with_cookie(post_form("/login", form), cookie)).await
}

fn from(mut req: Request<Body>, ip: &str) -> Request<Body> {
    let addr: SocketAddr = format!("{ip}:40000").parse().unwrap();
    req.extensions_mut().insert(ConnectInfo(addr));
    req
}

/// Every path that sends a code counts against one per-user limit: the first send, "send a new
/// code", a new flow, and the padlock page's step-up. A refusal says when, sends nothing, and does
/// not count toward the lockout; a password posted again on a flow past its password step is
/// refused without sending.
#[tokio::test]
async fn every_path_that_sends_a_code_counts_against_one_limit_per_user() {
    let (mut w, dir) = world_2fa(&[Method::SmsEmail]).await;
    w.state.limits = limits(4, ThrottlePolicy::default(), 100, 100, &[]);
    // 1. First send.
    let (flow, cookie) = to_factor(&w).await;
    // Out of step: the password again on the same flow sends nothing.
    let r = password(&w, &flow, &cookie, "ann@acme.example", PW).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert_eq!(outbox_files(&dir).len(), 1);
    // 2. Resend.
    w.clock.advance(30);
    assert_eq!(
        submit(&w, &flow, &cookie, "resend=1").await.status,
        StatusCode::OK
    );
    // 3. A new flow; its code completes a sign-in.
    let (flow2, cookie2) = to_factor(&w).await;
    let (_, _, code) = last_code(&dir);
    let r = submit(&w, &flow2, &cookie2, &format!("code={code}")).await;
    let session = format!(
        "padlock_session={}",
        set_cookie(&r, "padlock_session").unwrap().0
    );
    // 4. The padlock page's step-up.
    let page = call(&w.state, with_cookie(get("/account/security"), &session)).await;
    let csrf = crate::testing::csrf_field(&page);
    let r = call(
        &w.state,
        with_cookie(
            post_form("/account/security/step-up", format!("csrf={csrf}")),
            &session,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(outbox_files(&dir).len(), 4);
    // The fifth, by any path, is refused with the time it may go.
    let (flow3, cookie3) = new_flow(&w).await;
    let r = password(&w, &flow3, &cookie3, "ann@acme.example", PW).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    assert!(r.body.contains("next one can be sent in"), "{}", r.body);
    w.clock.advance(30);
    let r = submit(&w, &flow, &cookie, "resend=1").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    assert_eq!(outbox_files(&dir).len(), 4);
    assert_eq!(
        w.state.store.lockout_state(&w.user).await.unwrap().failures,
        0,
        "refused sends are not failures"
    );
    // The refused flow went back to its password step: it works once a message left the window.
    w.clock.advance(900 - 60);
    let r = password(&w, &flow3, &cookie3, "ann@acme.example", PW).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
}

/// DESIGN.md §9.4 under parallel guesses: the lockout is counted in the same step as it is
/// checked, so 60 TOTP guesses at once get exactly 10 answers checked and 50 refusals.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_totp_guesses_never_get_more_checks_than_the_lockout() {
    let (w, dir) = world_2fa(&[Method::Totp]).await;
    let seed = enrol_totp(&w).await;
    let (flow, cookie) = to_factor(&w).await;
    let code = padlock_policy::totp::code_at(&seed, w.clock.now()).unwrap();
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let replies = call_parallel(&w.state, 60, || {
        with_cookie(
            post_form("/login/factor", format!("flow={flow}&code={wrong}")),
            &cookie,
        )
    })
    .await;
    let checked = replies
        .iter()
        .filter(|r| r.status == StatusCode::UNAUTHORIZED)
        .count();
    let refused = replies
        .iter()
        .filter(|r| r.status == StatusCode::FORBIDDEN)
        .count();
    assert_eq!((checked, refused), (10, 50));
    // The right code is refused while locked, and the user was told once by email.
    let r = submit(&w, &flow, &cookie, &format!("code={code}")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(crate::factor::tests::lock_notices(&dir).await, 1);
}

/// NIST SP 800-63B §5.2.2: failed passwords for one account are throttled with growing delays and
/// a hard stop; refused tries cost no hash; a right password resets the count.
#[tokio::test]
async fn password_guessing_is_throttled() {
    let mut w = world().await;
    w.state.limits = limits(
        10,
        ThrottlePolicy::new(5, 300, 8, 3600).unwrap(),
        1000,
        1000,
        &[],
    );
    let (flow, cookie) = new_flow(&w).await;
    for _ in 0..5 {
        let r = password(&w, &flow, &cookie, "ann@acme.example", "wrong-password").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let hashed = w.state.passwords.verifications();
    // The sixth try comes too soon: refused without checking, even with the right password.
    let r = password(&w, &flow, &cookie, "ann@acme.example", PW).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    assert!(r.body.contains("Wait 1 seconds"), "{}", r.body);
    // Throttling is by login name, whatever its case.
    let r = password(&w, &flow, &cookie, "ANN@acme.example", PW).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        w.state.passwords.verifications(),
        hashed,
        "refused tries cost no hash"
    );
    // Doubling waits, then a hard stop at 8 failures.
    for wait in [1, 2, 4] {
        w.clock.advance(wait);
        let r = password(&w, &flow, &cookie, "ann@acme.example", "wrong-password").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    w.clock.advance(8);
    let r = password(&w, &flow, &cookie, "ann@acme.example", PW).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.body.contains("locked until"), "{}", r.body);
    w.clock.advance(3600);
    let (flow, cookie) = new_flow(&w).await;
    let r = password(&w, &flow, &cookie, "ann@acme.example", PW).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    // A success resets the count: five wrong tries in a row are free again.
    let (flow, cookie) = new_flow(&w).await;
    for _ in 0..5 {
        let r = password(&w, &flow, &cookie, "ann@acme.example", "wrong-password").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
}

/// Every way a sign-in fails gives the same answer and costs exactly one password hash: an
/// unknown email, a wrong password, an API account, a disabled account, a locked second factor,
/// and an account with no usable second factor (the last four with the right password).
#[tokio::test]
async fn every_failed_sign_in_looks_the_same_and_costs_one_hash() {
    let (w, _) = world_2fa(&[Method::SmsEmail]).await;
    let ann = w.state.store.get_user(&w.user).await.unwrap().unwrap();
    type Setup = fn(&mut crate::domain::User, &mut padlock_policy::TwoFactorPolicy);
    let cases: [(&str, &str, &str, Setup); 7] = [
        ("unknown email", "nobody@acme.example", PW, |_, _| {}),
        (
            "wrong password",
            "ann@acme.example",
            "wrong-password",
            |_, _| {},
        ),
        ("API account", "ann@acme.example", PW, |u, _| {
            u.api_account = true
        }),
        ("disabled", "ann@acme.example", PW, |u, _| u.disabled = true),
        ("locked second factor", "ann@acme.example", PW, |_, _| {}),
        ("no usable method", "ann@acme.example", PW, |_, p| {
            p.methods = padlock_policy::Methods::from_list(&[Method::Totp]);
        }),
        ("an email longer than any account's", "a@b", PW, |_, _| {}),
    ];
    let long_email = format!("{}@acme.example", "x".repeat(300));
    for (name, email, pw, setup) in cases {
        let email = if email == "a@b" {
            long_email.as_str()
        } else {
            email
        };
        let mut user = ann.clone();
        let mut tenant = w.state.store.get_tenant(&w.tenant).await.unwrap().unwrap();
        let original = tenant.two_factor;
        setup(&mut user, &mut tenant.two_factor);
        w.state.store.update_user(&user).await.unwrap();
        w.state.store.update_tenant(&tenant).await.unwrap();
        if name == "locked second factor" {
            for _ in 0..10 {
                let _ = w
                    .state
                    .store
                    .admit_second_factor_attempt(&w.user, w.clock.now(), &w.state.limits.lockout)
                    .await
                    .unwrap();
            }
        }
        let (flow, cookie) = new_flow(&w).await;
        let before = w.state.passwords.verifications();
        let r = password(&w, &flow, &cookie, email, pw).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{name}: {}", r.body);
        assert!(
            r.body.contains("The email or the password is not right."),
            "{name}: {}",
            r.body
        );
        assert!(r.headers.get(header::SET_COOKIE).is_none(), "{name}");
        assert_eq!(w.state.passwords.verifications(), before + 1, "{name}");
        // Back to normal for the next case.
        w.state.store.update_user(&ann).await.unwrap();
        tenant.two_factor = original;
        w.state.store.update_tenant(&tenant).await.unwrap();
        w.state
            .store
            .record_second_factor_success(&w.user)
            .await
            .unwrap();
        w.state.store.reset_password_failures(email).await.unwrap();
    }
    // The audit says what really happened, in the company's trail.
    let audit = w
        .state
        .store
        .list_audit(Some(&w.tenant), None, 50)
        .await
        .unwrap();
    for action in [
        "login.denied.api_account",
        "login.denied.disabled",
        "login.denied.locked",
        "login.denied.no_method",
    ] {
        assert!(audit.iter().any(|e| e.action == action), "{action}");
    }
    assert!(
        audit
            .iter()
            .any(|e| e.action == "login.password" && e.outcome == Outcome::Failure),
        "a wrong password for a known user is in the company's trail"
    );
}

/// Failures per source address: over the limit, every request from that address that could fail
/// is refused with 429 and Retry-After before anything is checked, and audited; other addresses
/// and successful traffic are not held back.
#[tokio::test]
async fn failures_are_limited_per_source_address() {
    let mut w = world().await;
    w.state.limits = limits(10, ThrottlePolicy::default(), 3, 1000, &["10.0.0.0/8"]);
    let (flow, cookie) = new_flow(&w).await;
    let secret = format!("{}-secret", w.panel);
    // A wrong password for `email` from `peer`, naming `forwarded` as the client if given.
    let attempt = |email: &str, peer: &str, forwarded: Option<&'static str>| {
        let mut req = with_cookie(
            post_form(
                "/login",
                format!(
                    "flow={flow}&email={}&password=wrong-password",
                    urlencode(email)
                ),
            ),
            &cookie,
        );
        if let Some(client) = forwarded {
            req.headers_mut()
                .insert("x-forwarded-for", client.parse().unwrap());
        }
        from(req, peer)
    };
    // A refresh with an unknown token, authenticated with `client_secret`.
    let token_request = |client_secret: &str| {
        let req = post_form_basic(
            "/token",
            &w.panel,
            client_secret,
            "grant_type=refresh_token&refresh_token=x",
        );
        from(req, "192.0.2.1")
    };
    // Successful client authentication is never counted.
    for _ in 0..20 {
        let r = call(&w.state, token_request(&secret)).await;
        assert_eq!(r.json()["error"], "invalid_grant");
    }
    // Three failures of different kinds from one address, on different accounts.
    let status = |req| async { call(&w.state, req).await.status };
    assert_eq!(
        status(attempt("a@acme.example", "192.0.2.1", None)).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(attempt("b@acme.example", "192.0.2.1", None)).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(token_request("not-the-secret")).await,
        StatusCode::UNAUTHORIZED
    );
    // Now that address is refused everywhere, right secret or not, before any check.
    let before = w.state.passwords.verifications();
    let r = call(&w.state, attempt("c@acme.example", "192.0.2.1", None)).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers.contains_key(header::RETRY_AFTER));
    assert_eq!(w.state.passwords.verifications(), before);
    let r = call(&w.state, token_request(&secret)).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers[header::RETRY_AFTER], "600");
    // Another address is not held back; behind a trusted proxy the forwarded client counts.
    assert_eq!(
        status(attempt("d@acme.example", "192.0.2.2", None)).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(attempt("d@acme.example", "10.0.0.5", Some("192.0.2.1"))).await,
        StatusCode::TOO_MANY_REQUESTS,
        "the forwarded client is refused"
    );
    assert_eq!(
        status(attempt("d@acme.example", "10.0.0.5", Some("198.51.100.9"))).await,
        StatusCode::UNAUTHORIZED
    );
    let audit = w.state.store.list_audit(None, None, 100).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == "ratelimit.source" && e.source_ip.as_deref() == Some("192.0.2.1"))
    );
}

/// Unauthenticated `/authorize` flow creation is limited per source address.
#[tokio::test]
async fn new_sign_in_flows_are_limited_per_source_address() {
    let mut w = world().await;
    w.state.limits = limits(10, ThrottlePolicy::default(), 100, 2, &[]);
    for _ in 0..2 {
        let r = call(
            &w.state,
            from(get(&authorize_uri(&w.panel, "")), "192.0.2.1"),
        )
        .await;
        assert!(location(&r).starts_with("/login?flow="));
    }
    let r = call(
        &w.state,
        from(get(&authorize_uri(&w.panel, "")), "192.0.2.1"),
    )
    .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers.contains_key(header::RETRY_AFTER));
    let r = call(
        &w.state,
        from(get(&authorize_uri(&w.panel, "")), "192.0.2.2"),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let audit = w.state.store.list_audit(None, None, 10).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == "ratelimit.source" && e.target == "authorize")
    );
}

/// Every authentication decision is in its company's trail: single sign-on, its refusal, and a
/// failed password; an attacker-typed email is cut to 256 bytes.
#[tokio::test]
async fn sign_in_decisions_are_in_the_company_audit_trail() {
    let w = world().await;
    let (_, session) = login(&w, &authorize_uri(&w.panel, ""), "ann@acme.example", PW).await;
    let cookie = format!("padlock_session={session}");
    let r = call(
        &w.state,
        with_cookie(get(&authorize_uri(&w.panel, "&prompt=none")), &cookie),
    )
    .await;
    assert!(location(&r).contains("code="));
    let r = call(&w.state, get(&authorize_uri(&w.panel, "&prompt=none"))).await;
    assert!(location(&r).contains("login_required"));
    let audit = w
        .state
        .store
        .list_audit(Some(&w.tenant), None, 50)
        .await
        .unwrap();
    assert!(
        audit.iter().any(|e| e.action == "login.sso"
            && e.outcome == Outcome::Success
            && e.target == w.panel)
    );
    let all = w.state.store.list_audit(None, None, 50).await.unwrap();
    assert!(
        all.iter()
            .any(|e| e.action == "login.sso" && e.outcome == Outcome::Failure)
    );
    let long = format!("{}@acme.example", "é".repeat(200));
    let (flow, cookie) = new_flow(&w).await;
    password(&w, &flow, &cookie, &long, "wrong-password").await;
    let last = w
        .state
        .store
        .list_audit(None, None, 1)
        .await
        .unwrap()
        .remove(0);
    assert!(
        last.actor.len() <= 256 && last.target.len() <= 256,
        "{}",
        last.actor.len()
    );
    assert!(last.actor.starts_with("éé"));
}

/// An administrator changes Ann's email: she signs in under the new address (in any case; same
/// account, same password), no longer under the old one, and the old address is told.
#[tokio::test]
async fn an_email_change_keeps_sign_in_working_under_the_new_address() {
    let (w, dir) = world_2fa(&[Method::SmsEmail]).await;
    let (id, secret) = crate::testing::operator(&w.state).await;
    let t = crate::testing::token(&w.state, &id, &secret).await;
    let r = call(
        &w.state,
        crate::testing::json_request(
            "PATCH",
            &format!(
                "/api/v1/tenants/{}/users/ann@acme.example",
                w.tenant.as_str()
            ),
            &t,
            &serde_json::json!({ "email": "Ann.Smith@acme.example" }),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["email"], "Ann.Smith@acme.example");
    let (flow, cookie) = new_flow(&w).await;
    let r = password(&w, &flow, &cookie, "ann@acme.example", PW).await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "the old address no longer signs in"
    );
    let (flow, cookie) = new_flow(&w).await;
    let r = password(&w, &flow, &cookie, "ann.smith@acme.example", PW).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let (_, to, code) = last_code(&dir);
    assert_eq!(to, "Ann.Smith@acme.example", "codes go to the new address");
    let r = submit(&w, &flow, &cookie, &format!("code={code}")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let ann = w.state.store.get_user(&w.user).await.unwrap().unwrap();
    assert_eq!(ann.email, "Ann.Smith@acme.example");
    let told = crate::testing::notices(&dir, "sign-in email was changed", 2).await;
    assert!(
        told.iter().any(|t| t.starts_with("To: ann@acme.example")),
        "the old address is told: {told:?}"
    );
}
