//! Oneshot tests of the second-factor step: SMS/Email codes through the development outbox, TOTP,
//! the per-code and per-user limits, and delivery failure.

use crate::clock::Clock;
use crate::config::Config;
use crate::delivery::Delivery;
use crate::domain::{Outcome, TOTP_SEED_PURPOSE, TotpEnrolment};
use crate::jwt::{self, TYP_JWT};
use crate::oauth::flow_tests::{
    CB, PW, World, authorize_uri, exchange, location, login, query, set_cookie, with_cookie, world,
};
use crate::oauth::tokens::IdClaims;
use crate::testing::{Reply, call, call_parallel, get, post_form, statuses_parallel};
use axum::http::StatusCode;
use padlock_policy::mobile::E164;
use padlock_policy::{Method, Methods};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A world whose company has 2FA on with `methods`, codes going to a known outbox.
pub(crate) async fn world_2fa(methods: &[Method]) -> (World, PathBuf) {
    let mut w = world().await;
    let dir = crate::state::test_outbox();
    w.state.delivery = Arc::new(Delivery::from_config(&Config::default(), &dir).unwrap());
    let mut t = w.state.store.get_tenant(&w.tenant).await.unwrap().unwrap();
    t.two_factor.enabled = true;
    t.two_factor.methods = Methods::from_list(methods);
    w.state.store.update_tenant(&t).await.unwrap();
    (w, dir)
}

/// The newest message in the outbox: (file name, recipient, the 6-digit code).
pub(crate) fn last_code(dir: &Path) -> (String, String, String) {
    let mut files: Vec<_> = std::fs::read_dir(dir.join("outbox"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let path = files.last().expect("a message in the outbox");
    let text = std::fs::read_to_string(path).unwrap();
    let to = text
        .lines()
        .next()
        .unwrap()
        .trim_start_matches("To: ")
        .to_owned();
    let body = text.lines().find(|l| l.contains("sign-in code.")).unwrap();
    (
        path.file_name().unwrap().to_string_lossy().into_owned(),
        to,
        body[..6].to_owned(),
    )
}

/// Password step; returns the flow id and its cookie (the reply must send the browser to the factor page).
pub(crate) async fn to_factor(w: &World) -> (String, String) {
    let (r, session) = login(w, &authorize_uri(&w.panel, ""), "ann@acme.example", PW).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(session.is_empty(), "no session before the second factor");
    let loc = location(&r);
    assert!(loc.starts_with("/login/factor?flow="), "{loc}");
    let flow = loc.split("flow=").nth(1).unwrap().to_owned();
    let cookie = format!("padlock_flow={flow}");
    (flow, cookie)
}

pub(crate) async fn submit(w: &World, flow: &str, cookie: &str, body: &str) -> Reply {
    call(
        &w.state,
        with_cookie(
            post_form("/login/factor", format!("flow={flow}&{body}")),
            cookie,
        ),
    )
    .await
}

async fn id_claims(w: &World, r: &Reply) -> IdClaims {
    let code = query(&location(r))["code"].clone();
    let t = exchange(w, &code, "").await.json();
    jwt::verify(
        &w.state.keys.get(),
        t["id_token"].as_str().unwrap(),
        TYP_JWT,
    )
    .unwrap()
}

#[tokio::test]
async fn email_code_completes_the_login_with_second_factor_claims() {
    let (w, dir) = world_2fa(&[Method::SmsEmail]).await;
    let (flow, cookie) = to_factor(&w).await;
    let page = call(
        &w.state,
        with_cookie(get(&format!("/login/factor?flow={flow}")), &cookie),
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body
            .contains("by email to a\u{2022}\u{2022}\u{2022}@acme.example"),
        "{}",
        page.body
    );
    let (file, to, code) = last_code(&dir);
    assert!(file.ends_with("-email.txt"));
    assert_eq!(to, "ann@acme.example");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let r = submit(&w, &flow, &cookie, &format!("code={wrong}")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.body.contains("4 more tries for this code"), "{}", r.body);
    let r = submit(&w, &flow, &cookie, "code=12a").await;
    assert_eq!(
        r.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "malformed input spends no try"
    );
    let r = submit(
        &w,
        &flow,
        &cookie,
        &format!("code={}%20{}", &code[..3], &code[3..]),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(location(&r).starts_with(CB));
    assert!(set_cookie(&r, "padlock_session").is_some());
    let claims = id_claims(&w, &r).await;
    assert_eq!(claims.amr, ["pwd", "email"]);
    assert_eq!(claims.acr, "padlock:2fa");
    assert_eq!(
        w.state.store.lockout_state(&w.user).await.unwrap().failures,
        0,
        "success resets the count"
    );
    let audit = w.state.store.list_audit(None, None, 20).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == "login.second_factor" && e.outcome == Outcome::Success)
    );
}

#[tokio::test]
async fn sms_when_the_user_has_a_valid_mobile() {
    let (w, dir) = world_2fa(&[Method::SmsEmail]).await;
    give_ann_a_mobile(&w).await;
    let (flow, cookie) = to_factor(&w).await;
    let (file, to, code) = last_code(&dir);
    assert!(file.ends_with("-sms.txt"));
    assert_eq!(to, "+15551234567");
    let page = call(
        &w.state,
        with_cookie(get(&format!("/login/factor?flow={flow}")), &cookie),
    )
    .await;
    assert!(
        page.body
            .contains("by SMS to +1 \u{2022}\u{2022}\u{2022} \u{2022}\u{2022}\u{2022} 4567")
    );
    let r = submit(&w, &flow, &cookie, &format!("code={code}")).await;
    assert_eq!(id_claims(&w, &r).await.amr, ["pwd", "sms"]);
}

/// DESIGN.md §9.3: codes expire after 120 s; resends are limited and replace the code.
#[tokio::test]
async fn codes_expire_and_resends_are_limited() {
    let (w, dir) = world_2fa(&[Method::SmsEmail]).await;
    let (flow, cookie) = to_factor(&w).await;
    let (_, _, first) = last_code(&dir);
    w.clock.advance(10);
    let r = submit(&w, &flow, &cookie, "resend=1").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.body.contains("Wait 20 seconds"));
    w.clock.advance(110);
    let r = submit(&w, &flow, &cookie, &format!("code={first}")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.body.contains("expired"), "{}", r.body);
    assert_eq!(
        w.state.store.lockout_state(&w.user).await.unwrap().failures,
        0,
        "a late code is not a guess"
    );
    let r = submit(&w, &flow, &cookie, "resend=1").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("A new code is on its way"));
    let (_, _, second) = last_code(&dir);
    if second != first {
        let r = submit(&w, &flow, &cookie, &format!("code={first}")).await;
        assert_eq!(
            r.status,
            StatusCode::UNAUTHORIZED,
            "the old code no longer works"
        );
    }
    let r = submit(&w, &flow, &cookie, &format!("code={second}")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    // Single use: the completed flow is gone.
    let r = submit(&w, &flow, &cookie, &format!("code={second}")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

/// DESIGN.md §9.3 and §9.4: 5 wrong tries per code; 10 consecutive failures lock the user for
/// 15 minutes, and a new code does not reset the count.
#[tokio::test]
async fn wrong_codes_exhaust_the_code_then_lock_the_user() {
    let (w, dir) = world_2fa(&[Method::SmsEmail]).await;
    let (flow, cookie) = to_factor(&w).await;
    let (_, _, code) = last_code(&dir);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for i in 1..=5 {
        let r = submit(&w, &flow, &cookie, &format!("code={wrong}")).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        if i == 5 {
            assert!(r.body.contains("Too many wrong codes"), "{}", r.body);
        }
    }
    let r = submit(&w, &flow, &cookie, &format!("code={code}")).await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "the right code after the 5th wrong try is refused"
    );
    w.clock.advance(30);
    assert_eq!(
        submit(&w, &flow, &cookie, "resend=1").await.status,
        StatusCode::OK
    );
    let (_, _, code) = last_code(&dir);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..3 {
        submit(&w, &flow, &cookie, &format!("code={wrong}")).await;
    }
    assert_eq!(
        w.state.store.lockout_state(&w.user).await.unwrap().failures,
        9,
        "the resend did not reset the count"
    );
    let r = submit(&w, &flow, &cookie, &format!("code={wrong}")).await;
    assert!(r.body.contains("locked until"), "{}", r.body);
    let r = submit(&w, &flow, &cookie, &format!("code={code}")).await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "locked: even the right code is refused"
    );
    // Nor is a new code sent while locked; both refusals are audited.
    w.clock.advance(30);
    let sent = std::fs::read_dir(dir.join("outbox")).unwrap().count();
    let r = submit(&w, &flow, &cookie, "resend=1").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert_eq!(std::fs::read_dir(dir.join("outbox")).unwrap().count(), sent);
    let audit = w
        .state
        .store
        .list_audit(Some(&w.tenant), None, 100)
        .await
        .unwrap();
    assert!(
        audit
            .iter()
            .rev()
            .take(2)
            .all(|e| e.action == "login.second_factor" && e.outcome == Outcome::Failure)
    );
    // A new login is refused at the password step while the lock lasts — with the answer a wrong
    // password gets, so a guesser learns nothing — and works after it. The user was told by email.
    let (r, _) = login(&w, &authorize_uri(&w.panel, ""), "ann@acme.example", PW).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.body.contains("The email or the password is not right."));
    assert_eq!(lock_notices(&dir).await, 1, "one notice per lock");
    w.clock.advance(15 * 60);
    to_factor(&w).await;
}

/// How many lock notices the outbox in `dir` holds, once the first has arrived (they are sent in
/// the background; waits up to 10 s for the first).
pub(crate) async fn lock_notices(dir: &Path) -> usize {
    let count = || {
        std::fs::read_dir(dir.join("outbox"))
            .map(|entries| {
                entries
                    .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
                    .filter(|m| m.contains("sign-in is locked") && m.contains("locked until"))
                    .count()
            })
            .unwrap_or(0)
    };
    for _ in 0..1000 {
        if count() > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // A second notice, if one were sent, would have had the same time to arrive.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    count()
}

/// Enrols Ann's authenticator app and makes it her preferred method; returns its seed.
pub(crate) async fn enrol_totp(w: &World) -> Vec<u8> {
    let seed = b"0123456789abcdefghij".to_vec();
    let mut u = w.state.store.get_user(&w.user).await.unwrap().unwrap();
    u.totp = Some(TotpEnrolment {
        seed: w.state.master.seal(TOTP_SEED_PURPOSE, &seed).unwrap(),
        enrolled_at: 0,
    });
    u.preferred_method = Some(Method::Totp);
    w.state.store.update_user(&u).await.unwrap();
    seed
}

/// DESIGN.md §9.5: a TOTP step is accepted once.
#[tokio::test]
async fn totp_login_and_replay() {
    let (w, _) = world_2fa(&[Method::SmsEmail, Method::Totp]).await;
    let seed = enrol_totp(&w).await;
    let seed = seed.as_slice();
    let (flow, cookie) = to_factor(&w).await;
    let page = call(
        &w.state,
        with_cookie(get(&format!("/login/factor?flow={flow}")), &cookie),
    )
    .await;
    assert!(page.body.contains("authenticator app") && !page.body.contains("Send a new code"));
    let code = padlock_policy::totp::code_at(seed, w.clock.now()).unwrap();
    let r = submit(&w, &flow, &cookie, &format!("code={code}")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(id_claims(&w, &r).await.amr, ["pwd", "otp"]);
    let (flow, cookie) = to_factor(&w).await;
    let r = submit(&w, &flow, &cookie, &format!("code={code}")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.body.contains("already used"), "{}", r.body);
    w.clock.advance(30);
    let next = padlock_policy::totp::code_at(seed, w.clock.now()).unwrap();
    assert_eq!(
        submit(&w, &flow, &cookie, &format!("code={next}"))
            .await
            .status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn a_dead_sms_gateway_is_reported_and_spends_nothing() {
    let (mut w, _) = world_2fa(&[Method::SmsEmail]).await;
    let config =
        Config::parse("[sms]\nprovider = \"webhook\"\nwebhook_url = \"http://127.0.0.1:9/send\"\n")
            .unwrap();
    w.state.delivery =
        Arc::new(Delivery::from_config(&config, &crate::state::test_outbox()).unwrap());
    give_ann_a_mobile(&w).await;
    let (r, session) = login(&w, &authorize_uri(&w.panel, ""), "ann@acme.example", PW).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert!(r.body.contains("could not send the code"), "{}", r.body);
    assert!(session.is_empty());
    assert_eq!(
        w.state.store.lockout_state(&w.user).await.unwrap().failures,
        0
    );
    let audit = w.state.store.list_audit(None, None, 10).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == "second_factor.send" && e.outcome == Outcome::Failure)
    );
    // The flow went back to the password step: the page asks for the password again.
    let field = "name=\"flow\" value=\"";
    let at = r.body.find(field).expect("flow field") + field.len();
    let flow = &r.body[at..at + r.body[at..].find('"').unwrap()];
    let stored = w
        .state
        .store
        .get_login_flow(&crate::session::digest(flow))
        .await
        .unwrap()
        .expect("the flow is kept");
    assert_eq!(stored.step, crate::domain::LoginStep::Password);
}

/// A resend that cannot be delivered puts the previous code back: it still works.
#[tokio::test]
async fn a_failed_resend_keeps_the_previous_code() {
    let (mut w, dir) = world_2fa(&[Method::SmsEmail]).await;
    let (flow, cookie) = to_factor(&w).await;
    let (_, _, first) = last_code(&dir);
    let outbox = w.state.delivery.clone();
    let dead = Config::parse(
        "[email]\nsmtp_host = \"127.0.0.1\"\nsmtp_port = 9\nfrom = \"Padlock <p@acme.example>\"\n",
    )
    .unwrap();
    w.state.delivery = Arc::new(Delivery::from_config(&dead, &dir).unwrap());
    w.clock.advance(31);
    let r = submit(&w, &flow, &cookie, "resend=1").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.body);
    assert!(r.body.contains("could not send the code"), "{}", r.body);
    w.state.delivery = outbox;
    let r = submit(&w, &flow, &cookie, &format!("code={first}")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
}

/// An SMS webhook that takes `delay_ms` to answer each request; counts the messages it got.
pub(crate) fn slow_sms_gateway(delay_ms: u64) -> (Config, Arc<std::sync::atomic::AtomicUsize>) {
    let peer = crate::testing::HttpPeer::start(vec![(200, "{}")], delay_ms);
    let config = Config::parse(&format!(
        "[sms]\nprovider = \"webhook\"\nwebhook_url = \"{}/send\"\n",
        peer.url
    ))
    .unwrap();
    (config, peer.requests)
}

/// Gives Ann a mobile number, so that her codes go through the SMS delivery.
pub(crate) async fn give_ann_a_mobile(w: &World) {
    let mut u = w.state.store.get_user(&w.user).await.unwrap().unwrap();
    u.mobile = Some(E164::parse("+15551234567").unwrap());
    w.state.store.update_user(&u).await.unwrap();
}

/// "Send a new code" posted four times at once while the gateway is slow: the new code is recorded
/// before it is sent, so exactly one more message goes out.
#[tokio::test]
async fn parallel_resends_send_one_message() {
    let (mut w, _) = world_2fa(&[Method::SmsEmail]).await;
    let (config, sent) = slow_sms_gateway(300);
    w.state.delivery =
        Arc::new(Delivery::from_config(&config, &crate::state::test_outbox()).unwrap());
    give_ann_a_mobile(&w).await;
    let (flow, cookie) = to_factor(&w).await;
    assert_eq!(sent.load(std::sync::atomic::Ordering::SeqCst), 1);
    w.clock.advance(31);
    let answers = statuses_parallel(&w.state, 4, || {
        with_cookie(
            post_form("/login/factor", format!("flow={flow}&resend=1")),
            &cookie,
        )
    })
    .await;
    assert_eq!(
        sent.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "answers: {answers:?}"
    );
    assert_eq!(
        answers.iter().filter(|s| **s == StatusCode::OK).count(),
        1,
        "{answers:?}"
    );
}

/// The same password form posted three times at once: the flow moves to the factor step before
/// the code is sent, so one code goes out and the other posts find the flow already moved on.
#[tokio::test]
async fn parallel_password_posts_send_one_code() {
    let (mut w, _) = world_2fa(&[Method::SmsEmail]).await;
    let (config, sent) = slow_sms_gateway(300);
    w.state.delivery =
        Arc::new(Delivery::from_config(&config, &crate::state::test_outbox()).unwrap());
    give_ann_a_mobile(&w).await;
    let r = call(&w.state, get(&authorize_uri(&w.panel, ""))).await;
    let (flow, _) = set_cookie(&r, "padlock_flow").expect("flow cookie");
    let answers = statuses_parallel(&w.state, 3, || {
        with_cookie(
            post_form(
                "/login",
                format!("flow={flow}&email=ann%40acme.example&password={PW}"),
            ),
            &format!("padlock_flow={flow}"),
        )
    })
    .await;
    assert_eq!(
        sent.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "answers: {answers:?}"
    );
    assert_eq!(
        answers
            .iter()
            .filter(|s| **s == StatusCode::SEE_OTHER)
            .count(),
        1,
        "{answers:?}"
    );
}

/// DESIGN.md §9.3 under parallel requests: four wrong codes posted at once, all reading the flow
/// before any writes it. The compare-and-swap lets one try through and turns the others away, so
/// one try is spent and the right code still works.
#[tokio::test]
async fn parallel_guesses_spend_each_try_once() {
    let (w, dir) = world_2fa(&[Method::SmsEmail]).await;
    let (flow, cookie) = to_factor(&w).await;
    let (_, _, code) = last_code(&dir);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    w.memory.hold_reads(4);
    let mut checked = 0;
    for r in call_parallel(&w.state, 4, || {
        with_cookie(
            post_form("/login/factor", format!("flow={flow}&code={wrong}")),
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
    assert_eq!(
        w.state.store.lockout_state(&w.user).await.unwrap().failures,
        1
    );
    let r = submit(&w, &flow, &cookie, &format!("code={code}")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
}

/// The decision is asked again at the factor step (as PAM's auth does): a company that drops the
/// factor a login began with, or turns its second factor off, ends that login — even with the
/// right code.
#[tokio::test]
async fn a_change_of_the_companys_methods_ends_a_login_in_progress() {
    let (w, _) = world_2fa(&[Method::SmsEmail, Method::Totp]).await;
    let seed = enrol_totp(&w).await;
    for change in ["methods", "switch"] {
        let (flow, cookie) = to_factor(&w).await;
        let mut t = w.state.store.get_tenant(&w.tenant).await.unwrap().unwrap();
        let before = t.clone();
        match change {
            "methods" => t.two_factor.methods = Methods::from_list(&[Method::SmsEmail]),
            _ => t.two_factor.enabled = false,
        }
        w.state.store.update_tenant(&t).await.unwrap();
        w.clock.advance(30);
        let code = padlock_policy::totp::code_at(&seed, w.clock.now()).unwrap();
        let r = submit(&w, &flow, &cookie, &format!("code={code}")).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{change}: {}", r.body);
        assert!(r.body.contains("settings changed"), "{change}: {}", r.body);
        w.state.store.update_tenant(&before).await.unwrap();
    }
    let audit = w
        .state
        .store
        .list_audit(Some(&w.tenant), None, 100)
        .await
        .unwrap();
    assert_eq!(
        audit
            .iter()
            .filter(|e| e.action == "login.denied.changed")
            .count(),
        2
    );
}

/// A sign-in that passed the password and waits for the second factor ends when the user's
/// sessions are ended meanwhile (a new password, disabled, a role removed): a right code then
/// opens nothing.
#[tokio::test]
async fn ending_a_users_sessions_ends_a_sign_in_waiting_for_its_second_factor() {
    let (w, _) = world_2fa(&[Method::SmsEmail, Method::Totp]).await;
    let seed = enrol_totp(&w).await;
    let (flow, cookie) = to_factor(&w).await;
    let mut ann = w
        .state
        .store
        .find_user_by_email("ann@acme.example")
        .await
        .unwrap()
        .unwrap();
    let read = ann.clone();
    ann.end_sessions();
    assert!(w.state.store.swap_user(&read, &ann).await.unwrap());
    w.clock.advance(30);
    let code = padlock_policy::totp::code_at(&seed, w.clock.now()).unwrap();
    let r = submit(&w, &flow, &cookie, &format!("code={code}")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(
        !r.headers
            .get_all(axum::http::header::SET_COOKIE)
            .iter()
            .any(|c| c.to_str().unwrap().starts_with("padlock_session=")),
        "no session"
    );
    // A new sign-in works.
    let (flow, cookie) = to_factor(&w).await;
    w.clock.advance(30);
    let code = padlock_policy::totp::code_at(&seed, w.clock.now()).unwrap();
    let r = submit(&w, &flow, &cookie, &format!("code={code}")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
}
