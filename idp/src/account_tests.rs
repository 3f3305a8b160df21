//! Oneshot tests of the padlock page: session, step-up freshness, CSRF, preferences, TOTP enrolment.

use crate::clock::Clock;
use crate::config::Config;
use crate::delivery::Delivery;
use crate::factor::tests::{
    give_ann_a_mobile, last_code, slow_sms_gateway, submit, to_factor, world_2fa,
};
use crate::oauth::flow_tests::{PW, World, authorize_uri, login, set_cookie, with_cookie, world};
use crate::testing::{Reply, call, call_parallel, csrf_field, get, post_form, statuses_parallel};
use axum::http::StatusCode;
use padlock_policy::Method;
use std::sync::Arc;

async fn page(w: &World, cookie: &str) -> Reply {
    call(&w.state, with_cookie(get("/account/security"), cookie)).await
}

/// Ann as stored now.
async fn ann(w: &World) -> crate::domain::User {
    w.state.store.get_user(&w.user).await.unwrap().unwrap()
}

/// Asks for a step-up code (`code` = `None`) or confirms one.
async fn step_up(w: &World, cookie: &str, csrf: &str, code: Option<&str>) -> Reply {
    let body = match code {
        Some(code) => format!("csrf={csrf}&code={code}"),
        None => format!("csrf={csrf}"),
    };
    post(w, cookie, "/account/security/step-up", &body).await
}

async fn post(w: &World, cookie: &str, path: &str, body: &str) -> Reply {
    call(
        &w.state,
        with_cookie(post_form(path, body.to_owned()), cookie),
    )
    .await
}

/// A session that passed the email code (fresh for 5 minutes) on a company offering `methods`.
async fn fresh_session(methods: &[Method]) -> (World, std::path::PathBuf, String) {
    let (w, dir) = world_2fa(methods).await;
    let (flow, cookie) = to_factor(&w).await;
    let (_, _, code) = last_code(&dir);
    let r = submit(&w, &flow, &cookie, &format!("code={code}")).await;
    let session = set_cookie(&r, "padlock_session").unwrap().0;
    (w, dir, format!("padlock_session={session}"))
}

/// A world whose codes go to a fresh outbox, and Ann signed in with her password only (2FA off):
/// returns the outbox directory and her session cookie.
async fn password_only_session() -> (World, std::path::PathBuf, String) {
    let mut w = world().await;
    let dir = crate::state::test_outbox();
    w.state.delivery = Arc::new(Delivery::from_config(&Config::default(), &dir).unwrap());
    let (_, session) = login(&w, &authorize_uri(&w.panel, ""), "ann@acme.example", PW).await;
    (w, dir, format!("padlock_session={session}"))
}

/// Opened without a session, the page sends the browser through Padlock's own sign-in — the
/// company's second factor included — and back to the page; nothing is issued to any panel.
#[tokio::test]
async fn the_page_signs_people_in_and_comes_back() {
    let (w, dir) = world_2fa(&[Method::SmsEmail]).await;
    let (r, session) = login(&w, "/account/security", "ann@acme.example", PW).await;
    assert!(session.is_empty(), "no session before the second factor");
    let to = crate::oauth::flow_tests::location(&r);
    assert!(to.starts_with("/login/factor?flow="), "{to}");
    let flow = to.split("flow=").nth(1).unwrap().to_owned();
    let (_, _, code) = last_code(&dir);
    let r = submit(
        &w,
        &flow,
        &format!("padlock_flow={flow}"),
        &format!("code={code}"),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(crate::oauth::flow_tests::location(&r), "/account/security");
    let session = set_cookie(&r, "padlock_session").unwrap().0;
    let r = page(&w, &format!("padlock_session={session}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("ann@acme.example"), "{}", r.body);
    // A form post without a session is refused, not redirected.
    let r = call(
        &w.state,
        post_form(
            "/account/security/preferences",
            "csrf=x&preferred=totp&mobile=",
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[test]
fn only_paths_of_this_origin_are_returned_to() {
    for ok in ["/account/security", "/admin", "/admin/users?x=1"] {
        assert!(crate::login::is_own_path(ok), "{ok}");
    }
    for bad in [
        "//evil.example/",
        "/\\evil.example",
        "https://evil.example/",
        "evil",
        "",
        "/a\nb",
    ] {
        assert!(!crate::login::is_own_path(bad), "{bad:?}");
    }
}

/// DESIGN.md §9.6: changing one's own 2FA settings needs a second factor within the last 5 minutes.
#[tokio::test]
async fn changes_need_a_fresh_second_factor() {
    let (w, dir, cookie) = password_only_session().await;
    let p = page(&w, &cookie).await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(p.body.contains("Confirm it is you") && !p.body.contains("Preferred method"));
    let token = csrf_field(&p);
    let r = post(
        &w,
        &cookie,
        "/account/security/preferences",
        &format!("csrf={token}&preferred=sms-email&mobile=%2B15551234567"),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "a password-only session cannot change settings"
    );
    assert!(ann(&w).await.mobile.is_none());

    let r = step_up(&w, &cookie, &token, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let (_, to, code) = last_code(&dir);
    assert_eq!(to, "ann@acme.example");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let r = step_up(&w, &cookie, &token, Some(wrong)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.body.contains("4 more tries for this code"), "{}", r.body);
    assert_eq!(
        w.state.store.lockout_state(&w.user).await.unwrap().failures,
        1,
        "step-up failures count toward the lockout"
    );
    let r = step_up(&w, &cookie, &token, Some(&code)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("Preferred method"));
    let r = post(
        &w,
        &cookie,
        "/account/security/preferences",
        &format!("csrf={token}&preferred=sms-email&mobile=%2B1%20555%20123%204567"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(ann(&w).await.mobile.unwrap().as_str(), "+15551234567");

    w.clock.advance(301);
    let r = post(
        &w,
        &cookie,
        "/account/security/preferences",
        &format!("csrf={token}&preferred=sms-email&mobile="),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "stale after 5 minutes");
    assert!(ann(&w).await.mobile.is_some());
    let r = post(
        &w,
        &cookie,
        "/account/security/preferences",
        "csrf=forged&preferred=sms-email&mobile=",
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn bad_input_leaves_the_settings_untouched() {
    let (w, _, cookie) = fresh_session(&[Method::SmsEmail, Method::Totp]).await;
    let token = csrf_field(&page(&w, &cookie).await);
    for (body, message) in [
        (
            format!("csrf={token}&preferred=sms-email&mobile=555-1234"),
            "Mobile number",
        ),
        (
            format!("csrf={token}&preferred=totp&mobile="),
            "Set up an authenticator app",
        ),
        (
            format!("csrf={token}&preferred=duo&mobile="),
            "does not offer",
        ),
    ] {
        let r = post(&w, &cookie, "/account/security/preferences", &body).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(r.body.contains(message), "{}", r.body);
    }
    let u = ann(&w).await;
    assert!(u.mobile.is_none() && u.preferred_method.is_none() && u.totp.is_none());
}

#[tokio::test]
async fn totp_enrolment_is_saved_only_with_a_valid_code() {
    let (w, _, cookie) = fresh_session(&[Method::SmsEmail, Method::Totp]).await;
    let token = csrf_field(&page(&w, &cookie).await);
    let r = post(
        &w,
        &cookie,
        "/account/security/totp/start",
        &format!("csrf={token}"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("src=\"data:image/png;base64,"));
    let at = r.body.find("otpauth://totp/").expect("otpauth URI");
    let uri = &r.body[at..r.body[at..].find('"').unwrap() + at];
    assert!(
        uri.contains("issuer=Padlock%20%28Acme%29") || uri.contains("issuer=Padlock%20(Acme)"),
        "{uri}"
    );
    assert!(
        uri.contains("ann%40acme.example") || uri.contains("ann@acme.example"),
        "{uri}"
    );
    let secret = uri
        .split("secret=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let seed = totp_rs::Secret::try_from_base32(secret).unwrap();
    assert!(
        r.body.contains(&format!("<code>{secret}</code>")),
        "the secret is shown as text too"
    );
    assert_eq!(
        qr_text(&r.body),
        uri.replace("&#38;", "&").replace("&amp;", "&"),
        "the QR code holds the otpauth URI"
    );

    let now = w.clock.now();
    let good = padlock_policy::totp::code_at(seed.as_ref(), now).unwrap();
    let bad = if good == "000000" { "111111" } else { "000000" };
    let r = post(
        &w,
        &cookie,
        "/account/security/totp/confirm",
        &format!("csrf={token}&code={bad}"),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(ann(&w).await.totp.is_none(), "a wrong code saves nothing");
    let r = post(
        &w,
        &cookie,
        "/account/security/totp/confirm",
        &format!("csrf={token}&code={good}"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let u = ann(&w).await;
    assert!(u.totp.is_some());
    assert_eq!(u.preferred_method, Some(Method::Totp));
    let audit = w.state.store.list_audit(None, None, 30).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == "account.totp.enrol"
                && e.outcome == crate::domain::Outcome::Success)
    );

    // The next login asks for the app's code; the enrolment code itself cannot be replayed.
    let (flow, fcookie) = to_factor(&w).await;
    let r = submit(&w, &flow, &fcookie, &format!("code={good}")).await;
    assert!(r.body.contains("already used"), "{}", r.body);
    w.clock.advance(30);
    let next = padlock_policy::totp::code_at(seed.as_ref(), w.clock.now()).unwrap();
    assert_eq!(
        submit(&w, &flow, &fcookie, &format!("code={next}"))
            .await
            .status,
        StatusCode::SEE_OTHER
    );
}

/// Decodes the page's QR image (a PNG data URI) back to its text, as a phone camera would.
fn qr_text(body: &str) -> String {
    use base64::Engine as _;
    let start = body.find("data:image/png;base64,").expect("QR data URI") + 22;
    let b64 = &body[start..start + body[start..].find('"').unwrap()];
    let png = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let image = image::load_from_memory_with_format(&png, image::ImageFormat::Png)
        .expect("a PNG")
        .to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare_from_greyscale(
        image.width() as usize,
        image.height() as usize,
        |x, y| image.get_pixel(x as u32, y as u32)[0],
    );
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the image");
    grids[0].decode().expect("a readable QR code").1
}

/// Four step-up code requests at once while the gateway is slow: the code is recorded in the
/// session before it is sent, so one message goes out and the others are told to retry or wait.
#[tokio::test]
async fn parallel_step_up_requests_send_one_message() {
    let mut w = world().await;
    let (config, sent) = slow_sms_gateway(300);
    w.state.delivery =
        Arc::new(Delivery::from_config(&config, &crate::state::test_outbox()).unwrap());
    give_ann_a_mobile(&w).await;
    let (_, session) = login(&w, &authorize_uri(&w.panel, ""), "ann@acme.example", PW).await;
    let cookie = format!("padlock_session={session}");
    let token = csrf_field(&page(&w, &cookie).await);
    let answers = statuses_parallel(&w.state, 4, || {
        with_cookie(
            post_form("/account/security/step-up", format!("csrf={token}")),
            &cookie,
        )
    })
    .await;
    assert_eq!(
        sent.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "answers: {answers:?}"
    );
    assert!(
        answers.iter().all(|s| [
            StatusCode::OK,
            StatusCode::CONFLICT,
            StatusCode::TOO_MANY_REQUESTS
        ]
        .contains(s)),
        "{answers:?}"
    );
}

/// Four wrong step-up codes posted at once, all reading the session before any writes it: the
/// session compare-and-swap lets one try through, so the right code still works after.
#[tokio::test]
async fn parallel_step_up_guesses_spend_each_try_once() {
    let (w, dir, cookie) = password_only_session().await;
    let token = csrf_field(&page(&w, &cookie).await);
    let r = step_up(&w, &cookie, &token, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let (_, _, code) = last_code(&dir);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    w.memory.hold_reads(4);
    let mut checked = 0;
    for r in call_parallel(&w.state, 4, || {
        with_cookie(
            post_form(
                "/account/security/step-up",
                format!("csrf={token}&code={wrong}"),
            ),
            &cookie,
        )
    })
    .await
    {
        if r.body.contains("That code is not right. 4 more tries") {
            checked += 1;
        } else {
            assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
        }
    }
    assert_eq!(checked, 1, "guesses checked against the same try");
    let r = step_up(&w, &cookie, &token, Some(&code)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("Preferred method"));
}

/// Step-up codes follow the login's limits: 30 seconds apart, at most 5, until one is confirmed.
#[tokio::test]
async fn step_up_codes_are_limited() {
    let (w, dir, cookie) = password_only_session().await;
    let token = csrf_field(&page(&w, &cookie).await);
    let send = || step_up(&w, &cookie, &token, None);
    assert_eq!(send().await.status, StatusCode::OK);
    let r = send().await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.body.contains("Wait 30 seconds"), "{}", r.body);
    for _ in 1..padlock_policy::code::MAX_SENDS {
        w.clock.advance(31);
        let r = send().await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    w.clock.advance(31);
    let r = send().await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.body.contains("No more codes for now"), "{}", r.body);
    let sent = std::fs::read_dir(dir.join("outbox")).unwrap().count();
    assert_eq!(sent, usize::from(padlock_policy::code::MAX_SENDS));
    // The last code sent still confirms the session.
    let (_, _, code) = last_code(&dir);
    let r = step_up(&w, &cookie, &token, Some(&code)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("Preferred method"));
}

/// The step-up asks for the user's current second factor — the one their sign-in asks for — so a
/// code by email can never stand in for the authenticator app it would let them replace.
#[tokio::test]
async fn step_up_asks_for_the_users_current_factor() {
    let (w, dir) = world_2fa(&[Method::SmsEmail, Method::Totp]).await;
    let seed = crate::factor::tests::enrol_totp(&w).await;
    let seed = seed.as_slice();
    let (flow, cookie) = to_factor(&w).await;
    let code = padlock_policy::totp::code_at(seed, w.clock.now()).unwrap();
    let r = submit(&w, &flow, &cookie, &format!("code={code}")).await;
    let session = format!(
        "padlock_session={}",
        set_cookie(&r, "padlock_session").unwrap().0
    );
    w.clock.advance(301);
    let p = page(&w, &session).await;
    assert!(
        p.body.contains("code from your authenticator app"),
        "{}",
        p.body
    );
    assert!(!p.body.contains("Send me a code"));
    let token = csrf_field(&p);
    // Asking for a code sends nothing.
    let r = step_up(&w, &session, &token, None).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    let next = padlock_policy::totp::code_at(seed, w.clock.now()).unwrap();
    let wrong = if next == "000000" { "111111" } else { "000000" };
    let r = step_up(&w, &session, &token, Some(wrong)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        w.state.store.lockout_state(&w.user).await.unwrap().failures,
        1,
        "a wrong app code counts toward the lockout"
    );
    let r = step_up(&w, &session, &token, Some(&next)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("Preferred method"));
    assert!(
        !dir.join("outbox").exists() || std::fs::read_dir(dir.join("outbox")).unwrap().count() == 0,
        "no code was sent by SMS or email"
    );
}

#[tokio::test]
async fn a_user_changes_their_password_after_the_step_up() {
    let (w, dir, cookie) = fresh_session(&[Method::SmsEmail]).await;
    let csrf = csrf_field(&page(&w, &cookie).await);
    let change = |new: &str, again: &str| {
        format!(
            "csrf={csrf}&password={}&confirm={}",
            crate::oauth::flow_tests::urlencode(new),
            crate::oauth::flow_tests::urlencode(again)
        )
    };
    let path = "/account/security/password";
    let r = post(&w, &cookie, path, &change("short", "short")).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    let new = "a brand new passphrase";
    let r = post(&w, &cookie, path, &change(new, "a different passphrase")).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert!(r.body.contains("The two passwords differ."), "{}", r.body);
    let r = post(&w, &cookie, path, &change(new, new)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("Password changed."), "{}", r.body);
    // The old password no longer signs in; the new one does.
    let (r, _) = login(&w, &authorize_uri(&w.panel, ""), "ann@acme.example", PW).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    let (r, _) = login(&w, &authorize_uri(&w.panel, ""), "ann@acme.example", new).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let audit = w
        .state
        .store
        .list_audit(Some(&w.tenant), None, 50)
        .await
        .unwrap();
    assert!(audit.iter().any(|e| e.action == "account.password"));
    // Ann is told by email (sent in the background).
    crate::testing::notices(&dir, "your password was changed", 1).await;
}

/// An operator (a person holding company.manage in the operator company) signing in to Padlock's
/// own pages passes a second factor even with that company's switch off, so their session can
/// take operator actions; signing in to a panel, or as an administrator of another company, asks
/// for the password alone there.
#[tokio::test]
async fn operators_pass_a_second_factor_at_padlocks_own_sign_in() {
    let mut w = world().await;
    let dir = crate::state::test_outbox();
    w.state.delivery = Arc::new(Delivery::from_config(&Config::default(), &dir).unwrap());
    // Not the operator company: the password alone.
    let (_, session) = login(&w, "/account/security", "ann@acme.example", PW).await;
    assert!(!session.is_empty(), "signed in with the password");
    let t = w.state.store.get_tenant(&w.tenant).await.unwrap().unwrap();
    let marked = crate::domain::Tenant {
        operator: true,
        ..t.clone()
    };
    assert!(w.state.store.swap_tenant(&t, &marked).await.unwrap());
    let (r, session) = login(&w, "/account/security", "ann@acme.example", PW).await;
    assert!(session.is_empty(), "no session before the second factor");
    let to = crate::oauth::flow_tests::location(&r);
    assert!(to.starts_with("/login/factor?flow="), "{to}");
    let flow = to.split("flow=").nth(1).unwrap().to_owned();
    let (_, _, code) = last_code(&dir);
    let r = submit(
        &w,
        &flow,
        &format!("padlock_flow={flow}"),
        &format!("code={code}"),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let session = set_cookie(&r, "padlock_session").unwrap().0;
    let stored = w
        .state
        .store
        .get_session(&crate::session::digest(&session))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.acr, padlock_policy::decision::Acr::TwoFactor);
    // A panel's sign-in follows the company's switch (off).
    let (_, session) = login(&w, &authorize_uri(&w.panel, ""), "ann@acme.example", PW).await;
    assert!(
        !session.is_empty(),
        "the panel's sign-in needs the password alone"
    );
}
