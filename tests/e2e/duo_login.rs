//! Duo end to end: the real `padlock` and `pam_padlock.so` against the Duo stand-in
//! (`tests/peers/duo_standin.py`, which verifies every request's signature with Duo's own
//! `duo_client`). A company saves its Duo keys (checked with Duo first), Ann links her phone on
//! the padlock page and chooses Duo; then web logins and PAM logins go through Duo's preauth,
//! pushes and passcodes, with the stand-in scripted to approve, deny, stay silent, bypass, lock,
//! forget the enrolment, rate-limit or be down.
//!
//! Timings are short: the stand-in's pushes time out after 2 s (`--push-timeout-secs`), Padlock's
//! after 5 s (`[duo] push_timeout_secs`), and every wait polls against a deadline.

use crate::duo_standin::{DuoStandin, PASSCODE};
use crate::harness::{http, operator, padlock, write_secret};
use crate::oidc::{CB, PW, Provider};
use crate::pam::{Conversation, pamtester_conversation_with, reply, turn};
use crate::pam_login::{SERVICE, Site};
use base64::Engine as _;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

/// The stand-in Duo user Ann's Padlock account is linked to; tests re-script it with
/// [`DuoStandin::add_user`] before the login under test.
const PHONE: &str = "ann-phone";
const EMAIL: &str = "ann@acme.example";
const DUO_PROMPT: &str = "Duo passcode, or press Enter for a push to your phone: ";
/// What the web factor page says while a push waits (the page then reloads itself).
const PUSH_WAITING: &str = "A Duo push is on its way";
const DUO_DOWN: &str = "Duo cannot be reached";

// --- Fixture ------------------------------------------------------------------------------------

/// Acme with Duo: the stand-in, Padlock pointed at it, Acme's keys saved, a PAM host, and Ann
/// signed in (a fresh session, after an emailed code).
struct DuoSite {
    site: Site,
    duo: DuoStandin,
    /// Ann's `padlock_session=…` cookie.
    session: String,
    dir: tempfile::TempDir,
}

/// Extra configuration of a fixture.
#[derive(Default, Clone, Copy)]
struct Setup {
    /// `[lockout] max_failures`.
    max_failures: Option<u32>,
    /// Lines added to the PAM module's config.
    pam: &'static str,
}

impl DuoSite {
    /// Acme with Duo and Ann linked to [`PHONE`] (an approver), Duo her preferred method.
    fn new() -> DuoSite {
        DuoSite::with(Setup::default())
    }

    fn with(setup: Setup) -> DuoSite {
        let s = DuoSite::company(setup);
        s.duo.add_user(PHONE, "approver");
        let (status, page) = s.link(PHONE);
        assert_eq!(status, 200, "{page}");
        assert!(page.contains("Duo is set up"), "{page}");
        s.prefer_duo();
        s
    }

    /// Acme with its Duo keys saved, Ann signed in with an emailed code; no Duo link yet.
    fn company(setup: Setup) -> DuoSite {
        let dir = tempfile::tempdir().unwrap();
        let duo = DuoStandin::start_with(&["--push-timeout-secs", "2"]);
        let mut toml = format!(
            "[testing]\nduo_base_url = \"{}\"\n[duo]\npush_timeout_secs = 5\n",
            duo.base_url
        );
        if let Some(n) = setup.max_failures {
            toml.push_str(&format!("[lockout]\nmax_failures = {n}\n"));
        }
        std::fs::write(dir.path().join("padlock.toml"), toml).unwrap();
        let site = Site::new(dir.path(), &["-c", "padlock.toml"], "", setup.pam);
        let saved = save_keys(dir.path(), &duo, &duo.skey);
        assert!(saved.status.success(), "{}", text(&saved));
        let session = sign_in_with_emailed_code(&site.p, dir.path());
        DuoSite {
            site,
            duo,
            session,
            dir,
        }
    }

    fn p(&self) -> &Provider {
        &self.site.p
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.p().server.url)
    }

    /// The padlock page's CSRF token for Ann's session.
    fn csrf(&self) -> String {
        let page = self.account_get();
        between(&page, "name=\"csrf\" value=\"", "\"")
    }

    fn account_get(&self) -> String {
        let r = http()
            .get(self.url("/account/security"))
            .header("cookie", &self.session)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        r.text().unwrap()
    }

    /// A form post to the padlock page as Ann (CSRF added): status and page.
    fn account_post(&self, path: &str, form: &[(&str, &str)]) -> (u16, String) {
        let csrf = self.csrf();
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(form);
        let r = http()
            .post(self.url(path))
            .header("cookie", &self.session)
            .form(&all)
            .send()
            .unwrap();
        (r.status().as_u16(), r.text().unwrap())
    }

    /// Links Ann to the existing Duo user `username` (Padlock pushes to it and waits for the
    /// answer); returns the page.
    fn link(&self, username: &str) -> (u16, String) {
        self.account_post("/account/security/duo/link", &[("username", username)])
    }

    fn prefer_duo(&self) {
        let (status, page) = self.account_post(
            "/account/security/preferences",
            &[("preferred", "duo"), ("mobile", "")],
        );
        assert_eq!(status, 200, "{page}");
        assert!(page.contains("Saved."), "{page}");
    }

    /// The audit actions (with outcomes) recorded for Acme so far.
    fn audit(&self) -> Vec<Value> {
        let v = operator(self.path(), &["audit", "list", "--tenant", "Acme"]);
        v["events"].as_array().unwrap().clone()
    }

    fn audited(&self, action: &str) -> bool {
        self.audit().iter().any(|e| e["action"] == action)
    }

    /// Messages in the development outbox.
    fn outbox(&self) -> usize {
        std::fs::read_dir(self.path().join("data/outbox")).map_or(0, Iterator::count)
    }

    /// Requests the stand-in received for `path`.
    fn duo_requests(&self, path: &str) -> Vec<Value> {
        self.duo
            .requests()
            .into_iter()
            .filter(|r| r["path"] == path)
            .collect()
    }

    /// Ann's password step in a new browser: (flow, flow cookie, the answer).
    fn password(&self) -> (String, String, Page) {
        let r = http().get(authorize_url(self.p())).send().unwrap();
        assert_eq!(r.status(), 303);
        let cookie = first_cookie(&r);
        let location = r.headers()["location"].to_str().unwrap().to_owned();
        let flow = location.split("flow=").nth(1).unwrap().to_owned();
        let r = http()
            .post(self.url("/login"))
            .header("cookie", &cookie)
            .form(&[("flow", flow.as_str()), ("email", EMAIL), ("password", PW)])
            .send()
            .unwrap();
        (flow, cookie, Page::of(r))
    }

    /// Ann's password step, which must lead to the factor page; returns the flow, its cookie and
    /// the factor page.
    fn to_factor(&self) -> (String, String, Page) {
        let (flow, cookie, answer) = self.password();
        assert_eq!(answer.status, 303, "{answer:?}");
        let to = answer.location.clone().unwrap();
        assert!(to.starts_with("/login/factor?flow="), "{to}");
        let page = Page::of(
            http()
                .get(self.url(&to))
                .header("cookie", &cookie)
                .send()
                .unwrap(),
        );
        (flow, cookie, page)
    }

    fn factor_post(&self, flow: &str, cookie: &str, form: &[(&str, &str)]) -> Page {
        let mut all = vec![("flow", flow)];
        all.extend_from_slice(form);
        Page::of(
            http()
                .post(self.url("/login/factor"))
                .header("cookie", cookie)
                .form(&all)
                .send()
                .unwrap(),
        )
    }

    /// Reloads the waiting factor page (`wait=1`, as its meta refresh does) until the push is
    /// settled: returns the first answer that is not "still waiting".
    fn until_settled(&self, flow: &str, cookie: &str) -> Page {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let page = Page::of(
                http()
                    .get(self.url(&format!("/login/factor?flow={flow}&wait=1")))
                    .header("cookie", cookie)
                    .send()
                    .unwrap(),
            );
            if page.status != 200 || !page.body.contains(PUSH_WAITING) {
                return page;
            }
            assert!(
                Instant::now() < deadline,
                "the push is still waiting: {page:?}"
            );
        }
    }

    /// The ID token's claims for the login that redirected to `back` (code exchanged at /token).
    fn id_claims(&self, back: &Page) -> Value {
        let back = url::Url::parse(back.location.as_deref().unwrap()).unwrap();
        let code = back
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_else(|| panic!("no code in {back}"));
        let r = http()
            .post(self.url("/token"))
            .basic_auth(&self.p().client_id, Some(&self.p().client_secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", CB),
            ])
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        let tokens: Value = r.json().unwrap();
        let payload = tokens["id_token"]
            .as_str()
            .unwrap()
            .split('.')
            .nth(1)
            .unwrap();
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    /// A PAM login of `ann` from rhost 192.0.2.7.
    fn pam(&self, turns: Vec<crate::pam::Turn<'_>>) -> Conversation {
        pamtester_conversation_with(&self.site.dir, SERVICE, "ann", &["rhost=192.0.2.7"], turns)
    }
}

/// An HTTP answer, read.
#[derive(Debug)]
struct Page {
    status: u16,
    location: Option<String>,
    body: String,
    cookies: Vec<String>,
}

impl Page {
    fn of(r: reqwest::blocking::Response) -> Page {
        let location = r
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned());
        let cookies = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
            .collect();
        Page {
            status: r.status().as_u16(),
            location,
            body: r.text().unwrap(),
            cookies,
        }
    }

    /// Asserts a redirect back to the panel with a code.
    fn assert_signed_in(&self) {
        assert_eq!(self.status, 303, "{self:?}");
        let to = self.location.as_deref().unwrap();
        assert!(to.starts_with(CB) && to.contains("code="), "{to}");
    }
}

fn first_cookie(r: &reqwest::blocking::Response) -> String {
    r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

fn authorize_url(p: &Provider) -> String {
    format!(
        "{}/authorize?response_type=code&client_id={}&redirect_uri={}&scope=openid&state=s",
        p.server.url,
        p.client_id,
        url::form_urlencoded::byte_serialize(CB.as_bytes()).collect::<String>()
    )
}

/// The text of `page` between `start` and the next `end`.
fn between(page: &str, start: &str, end: &str) -> String {
    let at = page
        .find(start)
        .unwrap_or_else(|| panic!("{start} not in {page}"))
        + start.len();
    page[at..].split(end).next().unwrap().to_owned()
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `padlock tenant 2fa Acme --enable --methods sms-email,duo` with the stand-in's ikey and host
/// and the secret key `skey` (from a 0600 file), as the operator; not checked.
fn save_keys(dir: &Path, duo: &DuoStandin, skey: &str) -> std::process::Output {
    save_keys_for(dir, duo, skey, &duo.api_host)
}

/// [`save_keys`] with `host` as the Duo API host.
fn save_keys_for(dir: &Path, duo: &DuoStandin, skey: &str, host: &str) -> std::process::Output {
    write_secret(&dir.join("duo.skey"), &format!("{skey}\n"));
    padlock(
        &[
            "tenant",
            "2fa",
            "Acme",
            "--enable",
            "--methods",
            "sms-email,duo",
            "--duo-ikey",
            &duo.ikey,
            "--duo-skey-file",
            "duo.skey",
            "--duo-host",
            host,
            "--credentials",
            "data/operator.json",
            "--json",
        ],
        dir,
    )
}

/// Ann signs in with the code emailed to the development outbox; returns her session cookie
/// (fresh: she just passed a second factor).
fn sign_in_with_emailed_code(p: &Provider, dir: &Path) -> String {
    let (flow, cookie) = crate::account::password(p);
    let code = crate::account::outbox_code(dir);
    let r = crate::account::factor(p, &flow, &cookie, &code);
    let page = Page::of(r);
    page.assert_signed_in();
    page.cookies
        .iter()
        .find(|c| c.starts_with("padlock_session="))
        .unwrap_or_else(|| panic!("no session cookie: {page:?}"))
        .clone()
}

// --- Company keys -------------------------------------------------------------------------------

/// Keys Duo refuses are not saved, and the CLI says why in Duo's words; right keys are saved
/// after Duo's `/auth/v2/check` (signed, verified by the stand-in), and the answer names the
/// integration key and host but never the secret key.
#[test]
fn duo_keys_are_checked_with_duo_before_they_are_saved() {
    let dir = tempfile::tempdir().unwrap();
    let duo = DuoStandin::start();
    std::fs::write(
        dir.path().join("padlock.toml"),
        format!("[testing]\nduo_base_url = \"{}\"\n", duo.base_url),
    )
    .unwrap();
    let _p =
        crate::oidc::provider_serving(dir.path(), CB, crate::oidc::BYE, &["-c", "padlock.toml"]);
    let wrong_skey = "w".repeat(40);
    let refused = save_keys(dir.path(), &duo, &wrong_skey);
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(
        text(&refused).contains("Duo refused these keys: Invalid signature"),
        "{}",
        text(&refused)
    );
    let tenants = operator(dir.path(), &["tenant", "list"]);
    let acme = &tenants["tenants"][0];
    assert_eq!(acme["two_factor"]["duo_configured"], false, "{tenants}");
    let check = duo.wait_request("/auth/v2/check");
    assert_eq!(
        (&check["verified"], &check["status"]),
        (&json!(false), &json!(401))
    );

    // Only a Duo API host name is accepted: the keys are never sent anywhere else.
    let elsewhere = save_keys_for(dir.path(), &duo, &duo.skey, "keys.attacker.example");
    assert!(!elsewhere.status.success(), "{}", text(&elsewhere));
    assert!(
        text(&elsewhere).contains("duosecurity.com"),
        "{}",
        text(&elsewhere)
    );
    assert_eq!(
        duo.requests().len(),
        1,
        "no request for a host that is not Duo's"
    );

    let saved = save_keys(dir.path(), &duo, &duo.skey);
    assert!(saved.status.success(), "{}", text(&saved));
    let answer: Value = serde_json::from_slice(&saved.stdout).unwrap();
    assert_eq!(
        answer["duo"],
        json!({"ikey": duo.ikey, "api_host": duo.api_host}),
        "{answer}"
    );
    assert!(!text(&saved).contains(&duo.skey));
    let check = duo.wait_request("/auth/v2/check");
    assert_eq!(
        (&check["verified"], &check["status"]),
        (&json!(true), &json!(200))
    );
    let tenants = operator(dir.path(), &["tenant", "list"]);
    assert_eq!(
        tenants["tenants"][0]["two_factor"]["duo_configured"], true,
        "{tenants}"
    );
    assert!(!tenants.to_string().contains(&duo.skey));
}

// --- Enrolment on the padlock page --------------------------------------------------------------

/// The padlock page enrols a new phone with Duo (`/auth/v2/enroll` named by the user's email):
/// it shows Duo's QR code and activation link, says "not activated yet" until the phone opens
/// the link, then "Duo is set up"; chosen as the preferred method, the next login pushes to that
/// Duo user.
#[test]
fn duo_enrolment_on_the_padlock_page_shows_the_qr_code_and_activates() {
    let s = DuoSite::company(Setup::default());
    let page = s.account_get();
    assert!(page.contains("/account/security/duo/start"), "{page}");
    let (status, page) = s.account_post("/account/security/duo/start", &[]);
    assert_eq!(status, 200, "{page}");
    let enroll = s.duo.wait_request("/auth/v2/enroll");
    assert_eq!(enroll["verified"], true);
    assert_eq!(enroll["params"]["username"], EMAIL, "{enroll}");
    let qr = between(&between(&page, "id=\"duo-qr\"", ">"), "src=\"", "\"");
    assert!(qr.contains("/frame/qr?value="), "{qr}");
    let activation = between(&page, "id=\"duo-activation\" href=\"", "\"").replace("&amp;", "&");
    assert!(
        activation.starts_with(&format!("{}/iphone/", s.duo.base_url)),
        "{activation}"
    );

    let (status, page) = s.account_post("/account/security/duo/check", &[]);
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("not activated yet"), "{page}");
    assert!(!page.contains("Duo is set up"), "{page}");

    let phone = http().get(&activation).send().unwrap();
    assert_eq!(phone.status(), 200);
    let (status, page) = s.account_post("/account/security/duo/check", &[]);
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Duo is set up"), "{page}");
    s.prefer_duo();

    let (flow, cookie, page) = s.to_factor();
    assert!(page.body.contains(PUSH_WAITING), "{page:?}");
    let push = s.duo.wait_request("/auth/v2/auth");
    assert_eq!(push["params"]["username"], EMAIL, "{push}");
    s.until_settled(&flow, &cookie).assert_signed_in();
}

/// Linking an existing Duo user needs that user to approve a push: a denied push links nothing,
/// and the login still asks for the emailed code.
#[test]
fn duo_link_needs_an_approved_push() {
    let s = DuoSite::company(Setup::default());
    s.duo.add_user(PHONE, "denier");
    let (status, page) = s.link(PHONE);
    assert_ne!(status, 200, "{page}");
    assert!(page.contains("Duo push denied."), "{page}");
    assert!(!page.contains("Duo is set up"), "{page}");
    let push = s.duo.wait_request("/auth/v2/auth");
    assert_eq!(push["params"]["username"], PHONE);
    let (status, page) = s.account_post(
        "/account/security/preferences",
        &[("preferred", "duo"), ("mobile", "")],
    );
    assert_ne!(
        status, 200,
        "Duo cannot be chosen before it is set up: {page}"
    );
    let sent = s.outbox();
    let (_, _, page) = s.to_factor();
    assert!(!page.body.contains(PUSH_WAITING), "{page:?}");
    assert_eq!(
        s.outbox(),
        sent + 1,
        "the login falls back to an emailed code"
    );
}

// --- Web login ----------------------------------------------------------------------------------

/// An approved push completes the login: the push goes at the password step, names the company
/// and the panel, the page reloads itself until Duo answers, and the tokens say two factors
/// (`amr` pwd + mfa, `acr` padlock:2fa). No email is sent.
#[test]
fn duo_push_approved_completes_the_web_login_with_two_factor_tokens() {
    let s = DuoSite::new();
    let sent = s.outbox();
    let (flow, cookie, page) = s.to_factor();
    assert_eq!(page.status, 200);
    assert!(page.body.contains(PUSH_WAITING), "{page:?}");
    assert!(
        page.body.contains("http-equiv=\"refresh\"")
            && page
                .body
                .contains(&format!("url=/login/factor?flow={flow}&amp;wait=1")),
        "the page reloads itself: {}",
        page.body
    );
    let pushes = s.duo_requests("/auth/v2/auth");
    let push = pushes.last().expect("a push went at the password step");
    assert_eq!(push["verified"], true);
    assert_eq!(push["params"]["username"], PHONE);
    assert_eq!(push["params"]["factor"], "push");
    assert_eq!(
        push["pushinfo"],
        json!({"company": "Acme", "application": "Panel"}),
        "{push}"
    );
    let back = s.until_settled(&flow, &cookie);
    back.assert_signed_in();
    let claims = s.id_claims(&back);
    assert_eq!(claims["amr"], json!(["pwd", "mfa"]), "{claims}");
    assert_eq!(claims["acr"], "padlock:2fa", "{claims}");
    assert_eq!(s.outbox(), sent, "no email code for a Duo user");
    // Every call Padlock made (keys check, link, preauth, push, status) carried a signature
    // that Duo's own library accepts.
    let calls: Vec<Value> = s
        .duo
        .requests()
        .into_iter()
        .filter(|r| r["path"].as_str().unwrap().starts_with("/auth/v2/"))
        .collect();
    assert!(calls.len() >= 6, "{calls:?}");
    assert!(
        calls
            .iter()
            .all(|r| r["verified"] == true && r["status"] == 200),
        "{calls:?}"
    );
    assert!(
        s.audit()
            .iter()
            .any(|e| e["action"] == "login.second_factor" && e["outcome"] == "success"),
        "{:?}",
        s.audit()
    );
}

/// A denied push fails ("Duo push denied.") without signing in; a wrong Duo passcode is refused
/// with its own sentence; the right one (checked by Duo) signs in.
#[test]
fn duo_denied_push_then_wrong_and_right_passcodes() {
    let s = DuoSite::new();
    s.duo.add_user(PHONE, "denier");
    let (flow, cookie, _) = s.to_factor();
    let denied = s.until_settled(&flow, &cookie);
    assert_ne!(denied.status, 303, "{denied:?}");
    assert!(denied.body.contains("Duo push denied."), "{denied:?}");

    let wrong = s.factor_post(&flow, &cookie, &[("code", "654321")]);
    assert_eq!(wrong.status, 401, "{wrong:?}");
    assert!(
        wrong.body.contains("That Duo passcode is not right."),
        "{wrong:?}"
    );
    let right = s.factor_post(&flow, &cookie, &[("code", PASSCODE)]);
    right.assert_signed_in();
    let passcodes: Vec<Value> = s
        .duo_requests("/auth/v2/auth")
        .into_iter()
        .filter(|r| r["params"]["factor"] == "passcode")
        .collect();
    assert_eq!(
        passcodes.len(),
        2,
        "Duo checked both passcodes: {passcodes:?}"
    );
    assert!(passcodes.iter().all(|r| r["params"]["username"] == PHONE));
    let claims = s.id_claims(&right);
    assert_eq!(claims["amr"], json!(["pwd", "mfa"]), "{claims}");
}

/// A push nobody answers times out ("Duo push timed out."); `push=1` sends another, which,
/// approved, signs in.
#[test]
fn duo_unanswered_push_times_out_and_another_push_signs_in() {
    let s = DuoSite::new();
    s.duo.add_user(PHONE, "silent");
    let (flow, cookie, _) = s.to_factor();
    let timed_out = s.until_settled(&flow, &cookie);
    assert_ne!(timed_out.status, 303, "{timed_out:?}");
    assert!(
        timed_out.body.contains("Duo push timed out."),
        "{timed_out:?}"
    );

    s.duo.add_user(PHONE, "approver");
    let again = s.factor_post(&flow, &cookie, &[("push", "1")]);
    assert_eq!(again.status, 200, "{again:?}");
    assert!(again.body.contains(PUSH_WAITING), "{again:?}");
    s.until_settled(&flow, &cookie).assert_signed_in();
    assert_eq!(
        s.duo_requests("/auth/v2/auth").len(),
        3,
        "link, first push, second push"
    );
}

/// Duo's preauth `allow` (the user is bypassed in Duo) is not a second factor: no push, the login
/// asks for an emailed code instead, and `duo.bypass_refused` is audited.
#[test]
fn duo_bypass_is_refused_and_the_login_asks_for_an_emailed_code() {
    let s = DuoSite::new();
    s.duo.add_user(PHONE, "bypassed");
    let pushes = s.duo_requests("/auth/v2/auth").len();
    let sent = s.outbox();
    let (flow, cookie, page) = s.to_factor();
    assert!(!page.body.contains(PUSH_WAITING), "{page:?}");
    assert_eq!(s.outbox(), sent + 1, "an emailed code instead");
    assert_eq!(s.duo_requests("/auth/v2/auth").len(), pushes, "no push");
    assert!(s.audited("duo.bypass_refused"), "{:?}", s.audit());
    let code = crate::account::outbox_code(s.path());
    s.factor_post(&flow, &cookie, &[("code", code.as_str())])
        .assert_signed_in();
}

/// Duo's preauth `deny` (the user is locked in Duo) ends the login at once with Duo's refusal;
/// no push, no emailed code.
#[test]
fn duo_locked_user_is_refused() {
    let s = DuoSite::new();
    s.duo.add_user(PHONE, "locked");
    let pushes = s.duo_requests("/auth/v2/auth").len();
    let sent = s.outbox();
    let (_, _, answer) = s.password();
    assert_eq!(answer.status, 403, "{answer:?}");
    assert!(
        answer.body.contains("Duo refused this sign-in"),
        "{answer:?}"
    );
    assert_eq!(s.outbox(), sent, "no weaker factor");
    assert_eq!(s.duo_requests("/auth/v2/auth").len(), pushes, "no push");
    assert!(s.audited("duo.denied"), "{:?}", s.audit());
}

/// Duo's preauth `enroll` (Duo no longer knows the user's phone) refuses that login with a
/// sentence saying so; the next login falls back to the emailed code.
#[test]
fn duo_enrolment_gone_refuses_until_an_administrator_acts() {
    let s = DuoSite::new();
    s.duo.add_user(PHONE, "unenrolled");
    let sent = s.outbox();
    for _ in 0..2 {
        // Refused every time: no weaker factor because Duo lost the user.
        let (_, _, answer) = s.password();
        assert_eq!(answer.status, 403, "{answer:?}");
        assert!(
            answer.body.contains("Duo enrolment is no longer active"),
            "{answer:?}"
        );
        assert_eq!(s.outbox(), sent);
    }
    assert!(s.audited("duo.not_enrolled"), "{:?}", s.audit());
    // The administrator removes the enrolment: Ann falls back to the emailed code.
    let v = operator(
        s.path(),
        &["user", "duo", "--tenant", "Acme", EMAIL, "--remove"],
    );
    assert_eq!(v["duo_username"], Value::Null, "{v}");
    let (flow, cookie, page) = s.to_factor();
    assert!(!page.body.contains(PUSH_WAITING), "{page:?}");
    assert_eq!(s.outbox(), sent + 1);
    let code = crate::account::outbox_code(s.path());
    s.factor_post(&flow, &cookie, &[("code", code.as_str())])
        .assert_signed_in();
    // … or links her Duo user again once Duo knows it.
    s.duo.add_user(PHONE, "approver");
    let v = operator(
        s.path(),
        &["user", "duo", "--tenant", "Acme", EMAIL, "--link", PHONE],
    );
    assert_eq!(v["duo_username"], PHONE, "{v}");
    assert_eq!(v["preferred_method"], "duo", "{v}");
    assert!(s.audited("user.duo.link"));
}

/// Duo down (HTTP 503 from its load balancer, or nothing listening) refuses the login with
/// "Duo cannot be reached": no session, no code, no emailed code instead. Duo going down while
/// a push waits refuses too.
#[test]
fn duo_outage_refuses_the_login_and_sends_no_email() {
    let mut s = DuoSite::new();
    let sent = s.outbox();
    s.duo.outage(true);
    let (_, _, answer) = s.password();
    assert!(matches!(answer.status, 403 | 503), "{answer:?}");
    assert!(answer.body.contains(DUO_DOWN), "{answer:?}");
    assert!(answer.location.is_none());
    assert!(s.audited("duo.unavailable"), "{:?}", s.audit());

    // Down while the push waits: the reload says so and does not sign in.
    s.duo.outage(false);
    s.duo.add_user(PHONE, "silent");
    let (flow, cookie, page) = s.to_factor();
    assert!(page.body.contains(PUSH_WAITING), "{page:?}");
    s.duo.outage(true);
    let page = Page::of(
        http()
            .get(s.url(&format!("/login/factor?flow={flow}&wait=1")))
            .header("cookie", &cookie)
            .send()
            .unwrap(),
    );
    assert_ne!(page.status, 303, "{page:?}");
    assert!(page.body.contains(DUO_DOWN), "{page:?}");
    let code = s.factor_post(&flow, &cookie, &[("code", PASSCODE)]);
    assert_ne!(code.status, 303, "{code:?}");
    assert!(code.body.contains(DUO_DOWN), "{code:?}");

    // Nothing listening at all.
    let gone = DuoStandin::start();
    drop(std::mem::replace(&mut s.duo, gone));
    let (_, _, answer) = s.password();
    assert!(matches!(answer.status, 403 | 503), "{answer:?}");
    assert!(answer.body.contains(DUO_DOWN), "{answer:?}");
    assert_eq!(s.outbox(), sent, "never an emailed code instead");
}

/// Duo answering 429 once (with `Retry-After: 1`) is retried: the login goes through.
#[test]
fn duo_rate_limit_is_retried_and_the_login_works() {
    let s = DuoSite::new();
    s.duo.rate_limit(1, Some(1));
    let (flow, cookie, page) = s.to_factor();
    assert!(page.body.contains(PUSH_WAITING), "{page:?}");
    s.until_settled(&flow, &cookie).assert_signed_in();
    let log = s.duo.requests();
    let limited = log
        .iter()
        .position(|r| r["status"] == 429)
        .expect("the stand-in answered 429 once");
    assert_eq!(
        log[limited + 1]["path"],
        log[limited]["path"],
        "the same call again: {log:?}"
    );
    assert_eq!(log[limited + 1]["status"], 200, "{log:?}");
}

/// Failed pushes and wrong passcodes count toward the second-factor lockout: with
/// `max_failures = 3`, a denied push and two wrong passcodes lock, and then even the right
/// passcode is refused.
#[test]
fn duo_failures_count_toward_the_lockout() {
    let s = DuoSite::with(Setup {
        max_failures: Some(3),
        ..Setup::default()
    });
    s.duo.add_user(PHONE, "denier");
    let (flow, cookie, _) = s.to_factor();
    let denied = s.until_settled(&flow, &cookie);
    assert!(denied.body.contains("Duo push denied."), "{denied:?}");
    let wrong = s.factor_post(&flow, &cookie, &[("code", "111111")]);
    assert_eq!(wrong.status, 401, "{wrong:?}");
    let third = s.factor_post(&flow, &cookie, &[("code", "222222")]);
    assert_ne!(third.status, 303, "{third:?}");
    assert!(
        third.body.contains("sign-in is locked"),
        "the third failure locks: {third:?}"
    );
    let right = s.factor_post(&flow, &cookie, &[("code", PASSCODE)]);
    assert_ne!(right.status, 303, "{right:?}");
    assert!(right.body.contains("sign-in is locked"), "{right:?}");
    // A new login is refused at the password step (with the answer a wrong password gets, as
    // for any account that may not sign in), and sends no push.
    s.duo.add_user(PHONE, "approver");
    let pushes = s.duo_requests("/auth/v2/auth").len();
    let (_, _, answer) = s.password();
    assert_eq!(answer.status, 401, "{answer:?}");
    assert!(s.audited("login.denied.locked"), "{:?}", s.audit());
    assert_eq!(
        s.duo_requests("/auth/v2/auth").len(),
        pushes,
        "no push while locked"
    );
}

/// The Duo secret key appears nowhere: not in the server's log after keys, link, logins and
/// failures, nor in the API answers and CLI output, nor in the audit.
#[test]
fn duo_secret_key_never_appears_in_answers_logs_or_cli_output() {
    let s = DuoSite::new();
    let (flow, cookie, _) = s.to_factor();
    s.until_settled(&flow, &cookie).assert_signed_in();
    s.duo.add_user(PHONE, "denier");
    let (flow, cookie, _) = s.to_factor();
    s.until_settled(&flow, &cookie);
    // Duo failing: Padlock logs why, still without the key.
    s.duo.outage(true);
    let (_, _, refused) = s.password();
    assert!(refused.body.contains(DUO_DOWN), "{refused:?}");
    s.duo.outage(false);
    // Keys Duo refuses: the CLI says so without echoing the key it was given.
    let wrong = "v".repeat(40);
    let out = save_keys(s.path(), &s.duo, &wrong);
    assert!(!out.status.success());
    assert!(!text(&out).contains(&wrong), "{}", text(&out));
    let skey = s.duo.skey.clone();
    for args in [
        &["tenant", "list"][..],
        &["audit", "list", "--tenant", "Acme"][..],
    ] {
        let v = operator(s.path(), args);
        assert!(!v.to_string().contains(&skey), "{args:?}: {v}");
    }
    let plain = padlock(
        &["tenant", "list", "--credentials", "data/operator.json"],
        s.path(),
    );
    assert!(!text(&plain).contains(&skey), "{}", text(&plain));
    let account = s.account_get();
    assert!(!account.contains(&skey));
    // At rest the key is sealed (DESIGN §9 item 7): no file of the data directory holds it.
    let mut files = vec![s.path().join("data")];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes.windows(skey.len()).any(|w| w == skey.as_bytes()),
                "{} holds the Duo secret key",
                path.display()
            );
        }
    }
    let DuoSite { site, .. } = s;
    let (_, log) = site.p.server.stop_with_stderr();
    assert!(
        log.contains("action=\"duo.push\"") && log.contains("Duo preauth failed"),
        "the Duo calls are in this log: {log}"
    );
    assert!(!log.contains(&skey), "{log}");
}

// --- PAM ----------------------------------------------------------------------------------------

/// At PAM, Enter sends a push (naming the PAM host, the service and the rhost) and the module
/// polls until "Duo push approved."; a Duo passcode typed at the same prompt passes too.
#[test]
fn duo_pam_push_and_passcode() {
    let s = DuoSite::new();
    let c = s.pam(vec![reply(DUO_PROMPT, "")]);
    assert!(c.success, "{}", c.transcript);
    assert!(
        c.transcript.contains("Duo push approved."),
        "{}",
        c.transcript
    );
    let push = s
        .duo_requests("/auth/v2/auth")
        .into_iter()
        .next_back()
        .unwrap();
    assert_eq!(push["params"]["username"], PHONE);
    assert_eq!(
        push["pushinfo"],
        json!({"host": "test", "service": SERVICE, "rhost": "192.0.2.7"}),
        "{push}"
    );
    assert!(!s.duo_requests("/auth/v2/auth_status").is_empty());

    let c = s.pam(vec![reply(DUO_PROMPT, PASSCODE)]);
    assert!(c.success, "{}", c.transcript);
    let passcode = s
        .duo_requests("/auth/v2/auth")
        .into_iter()
        .next_back()
        .unwrap();
    assert_eq!(passcode["params"]["factor"], "passcode", "{passcode}");
    assert!(
        s.audit()
            .iter()
            .any(|e| e["action"] == "pam.second_factor" && e["outcome"] == "success")
    );
}

/// A denied push at PAM is a wrong try: the module says "Duo push denied." and prompts again;
/// a wrong passcode is another wrong try; the push after that, approved, passes.
#[test]
fn duo_pam_denied_push_is_a_wrong_try_and_the_prompt_comes_back() {
    let s = DuoSite::new();
    s.duo.add_user(PHONE, "denier");
    let c = s.pam(vec![
        reply(DUO_PROMPT, ""),
        turn(DUO_PROMPT, |since| {
            assert!(since.contains("Duo push denied."), "{since}");
            "654321".into()
        }),
        turn(DUO_PROMPT, |since| {
            assert!(since.contains("That Duo passcode is not right."), "{since}");
            s.duo.add_user(PHONE, "approver");
            String::new()
        }),
    ]);
    assert!(c.success, "{}", c.transcript);
    assert!(
        c.transcript.contains("Duo push approved."),
        "{}",
        c.transcript
    );

    // Three wrong tries end the login (PAM_MAXTRIES).
    s.duo.add_user(PHONE, "denier");
    let c = s.pam(vec![
        reply(DUO_PROMPT, ""),
        reply(DUO_PROMPT, "654321"),
        reply(DUO_PROMPT, ""),
    ]);
    assert!(!c.success, "{}", c.transcript);
    assert!(
        c.transcript.contains("exhausted maximum number of retries"),
        "{}",
        c.transcript
    );
}

/// `duo_autopush = true`: the push goes at once, announced by an info line, with no prompt.
#[test]
fn duo_pam_autopush_pushes_without_a_prompt() {
    let s = DuoSite::with(Setup {
        pam: "duo_autopush = true\n",
        ..Setup::default()
    });
    let c = s.pam(vec![]);
    assert!(c.success, "{}", c.transcript);
    assert!(
        c.transcript.contains("Sending a Duo push"),
        "{}",
        c.transcript
    );
    assert!(
        c.transcript.contains("Duo push approved."),
        "{}",
        c.transcript
    );
    assert!(!c.transcript.contains(DUO_PROMPT), "{}", c.transcript);
}

/// A Duo outage is not a Padlock outage: PAM refuses in `failmode = "safe"` as in `"secure"`,
/// with Padlock's sentence, and sends no email code.
#[test]
fn duo_pam_outage_is_refused_in_both_failmodes() {
    let s = DuoSite::new();
    let sent = s.outbox();
    s.duo.outage(true);
    for mode in ["secure", "safe"] {
        s.site
            .configure(&s.p().server.url, &format!("failmode = \"{mode}\"\n"));
        let c = s.pam(vec![]);
        assert!(!c.success, "{mode}: {}", c.transcript);
        assert!(c.transcript.contains(DUO_DOWN), "{mode}: {}", c.transcript);
        assert!(
            !c.transcript.contains(DUO_PROMPT),
            "{mode}: {}",
            c.transcript
        );
    }
    assert_eq!(s.outbox(), sent);
}

/// At PAM as on the web, Duo's bypass is not a second factor: the module asks for the emailed
/// code instead (and `duo.bypass_refused` is audited); a user Duo locked is refused before any
/// prompt, with Duo's refusal.
#[test]
fn duo_pam_bypass_asks_for_the_emailed_code_and_a_duo_lock_refuses() {
    let s = DuoSite::new();
    s.duo.add_user(PHONE, "bypassed");
    let pushes = s.duo_requests("/auth/v2/auth").len();
    let c = s.pam(vec![turn("Verification code (sent by email to ", |_| {
        crate::account::outbox_code(s.path())
    })]);
    assert!(c.success, "{}", c.transcript);
    assert!(!c.transcript.contains(DUO_PROMPT), "{}", c.transcript);
    assert_eq!(s.duo_requests("/auth/v2/auth").len(), pushes, "no push");
    assert!(
        s.audit()
            .iter()
            .any(|e| e["action"] == "duo.bypass_refused" && e["pam"]["service"] == SERVICE),
        "{:?}",
        s.audit()
    );

    s.duo.add_user(PHONE, "locked");
    let sent = s.outbox();
    let c = s.pam(vec![]);
    assert!(!c.success, "{}", c.transcript);
    assert!(
        c.transcript.contains("Duo refused this sign-in"),
        "{}",
        c.transcript
    );
    assert!(!c.transcript.contains(DUO_PROMPT), "{}", c.transcript);
    assert_eq!(s.outbox(), sent, "no emailed code instead");
}

/// In Chromium with JavaScript off, the factor page waits for the push by reloading itself and
/// lands on the panel once Duo approves; Duo's activation QR image (from the stand-in, Duo's
/// host) loads in the padlock page despite its Content-Security-Policy.
#[test]
fn duo_pages_work_in_a_browser_without_javascript() {
    let s = DuoSite::new();
    s.duo.add_user(PHONE, "approver");
    let shots = crate::browser::shots();
    let v = crate::browser::run_script(
        "duo_push.mjs",
        &[
            authorize_url(s.p()).as_str(),
            s.p().server.url.as_str(),
            EMAIL,
            PW,
            s.session.as_str(),
            shots.to_str().unwrap(),
        ],
    );
    assert_eq!(
        v["waited"], true,
        "the factor page waited for the push: {v}"
    );
    assert_eq!(v["signed_in"], true, "{v}");
    assert_eq!(v["qr_loaded"], true, "{v}");
    assert_eq!(s.duo_requests("/auth/v2/enroll").len(), 1);
}

/// The padlock page's step-up for a Duo user: a push (approved → the settings open for 5
/// minutes; denied → refused and counted) or a Duo passcode.
#[test]
fn duo_step_up_on_the_padlock_page() {
    let s = DuoSite::new();
    // Ann's session is fresh (a test cannot wait 5 minutes for it to age); the step-up endpoint
    // answers for any session, with Ann's current factor, Duo.
    s.duo.add_user(PHONE, "denier");
    let (status, page) = s.account_post("/account/security/step-up", &[("push", "1")]);
    assert_eq!(status, 401, "{page}");
    assert!(page.contains("Duo push denied."), "{page}");
    s.duo.add_user(PHONE, "approver");
    let (status, page) = s.account_post("/account/security/step-up", &[("push", "1")]);
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Confirmed."), "{page}");
    let (status, page) = s.account_post("/account/security/step-up", &[("code", "12345")]);
    assert_eq!(status, 422, "{page}");
    let (status, page) = s.account_post("/account/security/step-up", &[("code", PASSCODE)]);
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Confirmed."), "{page}");
    let pushes: Vec<Value> = s
        .duo_requests("/auth/v2/auth")
        .into_iter()
        .filter(|r| r["params"]["factor"] == "push")
        .collect();
    let last = pushes.last().unwrap();
    assert_eq!(last["params"]["type"], "Confirm it is you", "{last}");
    assert!(s.audited("account.step_up"));
}

/// Padlock's signatures hold for what Duo sees with spaces, `+`, `~`, `'` and non-ASCII letters
/// in the username and pushinfo: every request of a link and a pushed login verifies with Duo's
/// own client library in the stand-in.
#[test]
fn duo_signatures_hold_for_non_ascii_spaces_plus_and_tilde() {
    let s = DuoSite::company(Setup::default());
    let name = "Zoë Åström+duo ~O'Hara";
    s.duo.add_user(name, "approver");
    let (status, page) = s.link(name);
    assert_eq!(status, 200, "{page}");
    let (flow, cookie, page) = s.to_factor();
    assert!(page.body.contains(PUSH_WAITING), "{page:?}");
    s.until_settled(&flow, &cookie).assert_signed_in();
    let signed: Vec<Value> = s
        .duo
        .requests()
        .into_iter()
        .filter(|r| {
            r["path"].as_str().unwrap().starts_with("/auth/v2/") && r["path"] != "/auth/v2/ping"
        })
        .collect();
    assert!(signed.len() >= 5, "{signed:?}");
    for r in &signed {
        assert_eq!(r["verified"], true, "{r}");
    }
    assert!(
        signed
            .iter()
            .any(|r| r["params"]["username"] == name && r["params"]["factor"] == "push"),
        "{signed:?}"
    );
}
