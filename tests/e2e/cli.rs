//! The management commands against a running server, as an operator types them.

use crate::harness::{Server, http, operator, padlock};

#[test]
fn operator_manages_companies_clients_and_api_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let d = dir.path();

    let acme = operator(d, &["tenant", "create", "Acme Hosting"]);
    assert_eq!(acme["name"], "Acme Hosting");
    std::fs::write(d.join("pw"), "correct-horse-battery\n").unwrap();
    let ann = operator(
        d,
        &[
            "user",
            "add",
            "--tenant",
            "Acme Hosting",
            "--email",
            "ann@acme.example",
            "--password-file",
            "pw",
            "--role",
            "admin",
            "--mobile",
            "+15551234567",
        ],
    );
    assert_eq!(ann["email"], "ann@acme.example");
    let users = operator(
        d,
        &["user", "list", "--tenant", acme["id"].as_str().unwrap()],
    );
    assert_eq!(users["users"][0]["roles"][0], "admin");

    let panel = operator(
        d,
        &[
            "client",
            "add",
            "--name",
            "Panel",
            "--redirect-uri",
            "https://panel.example.com/cb",
            "--id-token-alg",
            "ES256",
        ],
    );
    assert!(panel["client_secret"].as_str().unwrap().len() >= 43);
    let spa = operator(
        d,
        &[
            "client",
            "add",
            "--name",
            "SPA",
            "--redirect-uri",
            "http://127.0.0.1:3000/cb",
            "--public",
        ],
    );
    assert!(spa.get("client_secret").is_none());

    let acct = operator(
        d,
        &[
            "api-account",
            "add",
            "--tenant",
            "Acme Hosting",
            "--name",
            "backups",
            "--scope",
            "backup.run",
        ],
    );
    let token = http()
        .post(format!("{}/token", server.url))
        .basic_auth(
            acct["client_id"].as_str().unwrap(),
            acct["client_secret"].as_str(),
        )
        .form(&[("grant_type", "client_credentials")])
        .send()
        .unwrap();
    assert_eq!(token.status(), 200);
    assert_eq!(
        token.json::<serde_json::Value>().unwrap()["scope"],
        "backup.run"
    );

    let tenants = operator(d, &["tenant", "list"]);
    assert_eq!(tenants["tenants"].as_array().unwrap().len(), 1);
    let rotated = operator(d, &["keys", "rotate"]);
    assert_eq!(rotated["current"].as_array().unwrap().len(), 3);
    assert_eq!(rotated["published"].as_array().unwrap().len(), 6);
    let audit = operator(
        d,
        &[
            "audit",
            "list",
            "--tenant",
            "Acme Hosting",
            "--since",
            "2020-01-01T00:00:00Z",
        ],
    );
    let actions: Vec<&str> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for a in [
        "tenant.create",
        "user.create",
        "api_account.create",
        "token.client_credentials",
    ] {
        assert!(actions.contains(&a), "{a} in {actions:?}");
    }

    // Plain output names what was created; errors are one line with the reason.
    let out = padlock(
        &[
            "tenant",
            "create",
            "Acme Hosting",
            "--credentials",
            "data/operator.json",
        ],
        d,
    );
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "padlock: company Acme Hosting already exists (HTTP 409)"
    );
    let out = padlock(
        &[
            "tenant",
            "create",
            "Beta",
            "--credentials",
            "data/operator.json",
        ],
        d,
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("created company Beta (t_"));

    assert!(server.stop().success());
    let out = padlock(
        &["tenant", "list", "--credentials", "data/operator.json"],
        d,
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot reach Padlock at http://127.0.0.1:"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = padlock(&["tenant", "list", "--credentials", "nope.json"], d);
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("cannot read the operator credential nope.json")
    );
}

/// `padlock pam-host add|list|remove` against the real server; the credential works at
/// `/pam/v1` until it is removed.
#[test]
fn operator_manages_pam_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let d = dir.path();
    operator(d, &["tenant", "create", "Acme"]);
    std::fs::write(d.join("pw"), "correct-horse-battery\n").unwrap();
    operator(
        d,
        &[
            "user",
            "add",
            "--tenant",
            "Acme",
            "--email",
            "ann@acme.example",
            "--password-file",
            "pw",
        ],
    );
    let host = operator(
        d,
        &["pam-host", "add", "--tenant", "Acme", "--name", "bastion"],
    );
    let (id, secret) = (
        host["host_id"].as_str().unwrap().to_owned(),
        host["host_secret"].as_str().unwrap().to_owned(),
    );
    assert!(secret.len() >= 43, "256 bits: {secret}");
    let listed = operator(d, &["pam-host", "list", "--tenant", "Acme"]);
    assert_eq!(listed["pam_hosts"][0]["host_id"], id.as_str());
    assert_eq!(listed["pam_hosts"][0]["name"], "bastion");
    assert!(!listed.to_string().contains(&secret));
    let preauth = |secret: &str| {
        http()
            .post(format!("{}/pam/v1/preauth", server.url))
            .basic_auth(&id, Some(secret))
            .json(&serde_json::json!({ "user": "ann", "service": "sshd" }))
            .send()
            .unwrap()
    };
    let r = preauth(&secret);
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<serde_json::Value>().unwrap()["result"], "allow");
    assert_eq!(preauth("wrong").status(), 401);
    // ann's Unix name changes: PAM now knows her by the new one.
    let ann = operator(
        d,
        &[
            "user",
            "edit",
            "--tenant",
            "Acme",
            "ann@acme.example",
            "--unix-name",
            "anne",
        ],
    );
    assert_eq!(ann["unix_name"], "anne");
    let r = http()
        .post(format!("{}/pam/v1/preauth", server.url))
        .basic_auth(&id, Some(&secret))
        .json(&serde_json::json!({ "user": "anne", "service": "sshd" }))
        .send()
        .unwrap();
    assert_eq!(r.json::<serde_json::Value>().unwrap()["result"], "allow");
    // An administrator unlocks her (nothing locked here: the command answers all the same).
    let unlocked = operator(
        d,
        &["user", "unlock", "--tenant", "Acme", "ann@acme.example"],
    );
    assert_eq!(unlocked["email"], "ann@acme.example");
    // Disabled, she is refused at PAM; enabled again, allowed.
    let edit = |flag: &str| {
        operator(
            d,
            &["user", "edit", "--tenant", "Acme", "ann@acme.example", flag],
        )
    };
    assert_eq!(edit("--disable")["disabled"], true);
    let answer = |name: &str| {
        http()
            .post(format!("{}/pam/v1/preauth", server.url))
            .basic_auth(&id, Some(&secret))
            .json(&serde_json::json!({ "user": name, "service": "sshd" }))
            .send()
            .unwrap()
            .json::<serde_json::Value>()
            .unwrap()
    };
    assert_eq!(answer("anne")["result"], "deny");
    assert_eq!(edit("--enable")["disabled"], false);
    assert_eq!(answer("anne")["result"], "allow");
    // The company's audit, exported: CSV with a header row, or JSON Lines.
    let export = |format: &str| {
        let out = crate::harness::padlock(
            &[
                "audit",
                "export",
                "--tenant",
                "Acme",
                "--format",
                format,
                "--credentials",
                "data/operator.json",
            ],
            d,
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let csv = export("csv");
    assert!(
        csv.starts_with(r#""at","tenant","actor","action","target","outcome""#),
        "{csv}"
    );
    assert!(
        csv.contains(r#","user.disable","ann@acme.example","success","#),
        "{csv}"
    );
    let jsonl = export("jsonl");
    let events: Vec<serde_json::Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        events.iter().any(|e| e["action"] == "user.unlock"),
        "{jsonl}"
    );
    let removed = operator(d, &["pam-host", "remove", &id]);
    assert_eq!(removed["removed"], id.as_str());
    assert_eq!(preauth(&secret).status(), 401);
    assert_eq!(
        operator(d, &["pam-host", "list"])["pam_hosts"],
        serde_json::json!([])
    );
    let out = padlock(
        &[
            "pam-host",
            "remove",
            &id,
            "--credentials",
            "data/operator.json",
        ],
        d,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
}

/// Company Acme with Ann (admin) and Bob (user), password `correct-horse-battery`, made with the
/// CLI against the running server of `d`.
fn acme_with_ann_and_bob(d: &std::path::Path) {
    operator(d, &["tenant", "create", "Acme"]);
    std::fs::write(d.join("pw"), "correct-horse-battery\n").unwrap();
    for (email, role) in [("ann@acme.example", "admin"), ("bob@acme.example", "user")] {
        let args = [
            "user",
            "add",
            "--tenant",
            "Acme",
            "--email",
            email,
            "--password-file",
            "pw",
            "--role",
            role,
        ];
        operator(d, &args);
    }
}

/// A client-credentials token for (id, secret), or the status `/token` answered.
fn client_token(server: &Server, v: &serde_json::Value) -> Result<String, u16> {
    let r = http()
        .post(format!("{}/token", server.url))
        .basic_auth(
            v["client_id"].as_str().unwrap(),
            v["client_secret"].as_str(),
        )
        .form(&[("grant_type", "client_credentials")])
        .send()
        .unwrap();
    match r.status().as_u16() {
        200 => Ok(r.json::<serde_json::Value>().unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned()),
        s => Err(s),
    }
}

/// `padlock role …`, `user update --role`, `api-account set|rotate|clear` and `user
/// set-password-link` against the real server: a users.manage-only account opens only the users
/// routes, a rotated secret stops working, and the emailed link sets the password once.
#[test]
fn operator_manages_roles_api_accounts_and_password_links() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let d = dir.path();
    acme_with_ann_and_bob(d);
    let role = operator(
        d,
        &[
            "role",
            "set",
            "--tenant",
            "Acme",
            "helpdesk",
            "--permission",
            "users.manage",
        ],
    );
    assert_eq!(role["permissions"], serde_json::json!(["users.manage"]));
    let roles = operator(d, &["role", "list", "--tenant", "Acme"]);
    let names: Vec<&str> = roles["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin", "user", "helpdesk"]);
    let bob = operator(
        d,
        &[
            "user",
            "update",
            "--tenant",
            "Acme",
            "bob@acme.example",
            "--role",
            "helpdesk",
        ],
    );
    assert_eq!(bob["roles"], serde_json::json!(["helpdesk"]));
    // A role held by someone cannot be removed; the refusal says who holds it.
    let out = padlock(
        &[
            "role",
            "remove",
            "--tenant",
            "Acme",
            "helpdesk",
            "--credentials",
            "data/operator.json",
        ],
        d,
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("bob@acme.example still holds role `helpdesk`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // An API account asking for users.manage alone.
    let acct = operator(
        d,
        &[
            "api-account",
            "add",
            "--tenant",
            "Acme",
            "--name",
            "sync",
            "--scope",
            "users.manage",
        ],
    );
    let t = client_token(&server, &acct).unwrap();
    let api = |method: reqwest::Method, path: &str, t: &str, body: serde_json::Value| {
        http()
            .request(method, format!("{}/api/v1{path}", server.url))
            .bearer_auth(t)
            .json(&body)
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(
        api(
            reqwest::Method::GET,
            "/tenants/Acme/users",
            &t,
            serde_json::Value::Null
        ),
        200
    );
    assert_eq!(
        api(
            reqwest::Method::PUT,
            "/tenants/Acme/two-factor",
            &t,
            serde_json::json!({"enabled": true})
        ),
        403
    );
    assert_eq!(
        api(
            reqwest::Method::PATCH,
            "/tenants/Acme/users/bob@acme.example",
            &t,
            serde_json::json!({"roles": ["admin"]})
        ),
        403
    );
    let rotated = operator(
        d,
        &[
            "api-account",
            "rotate",
            "--tenant",
            "Acme",
            acct["client_id"].as_str().unwrap(),
        ],
    );
    assert_eq!(
        client_token(&server, &acct),
        Err(401),
        "the old secret stops working"
    );
    assert!(client_token(&server, &rotated).is_ok());

    // A set-password link, emailed and printed once, sets the password once.
    let link = operator(
        d,
        &[
            "user",
            "set-password-link",
            "--tenant",
            "Acme",
            "bob@acme.example",
        ],
    );
    let url = link["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{}/account/set-password?token=", server.url)),
        "{url}"
    );
    let page = http().get(url).send().unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().unwrap().contains("bob@acme.example"));
    let token = url.split_once("token=").unwrap().1;
    let set = |pw: &str| {
        http()
            .post(format!("{}/account/set-password", server.url))
            .form(&[("token", token), ("password", pw), ("password_confirm", pw)])
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(set("a-new-long-password"), 200);
    assert_eq!(set("another-long-password"), 403, "used once");
    assert_eq!(http().get(url).send().unwrap().status(), 403);

    // Bob becomes an API account (a secret, once), then a person again (the secret is revoked).
    let flagged = operator(
        d,
        &[
            "api-account",
            "set",
            "--tenant",
            "Acme",
            "bob@acme.example",
            "--scope",
            "openid",
        ],
    );
    assert!(client_token(&server, &flagged).is_ok());
    let cleared = operator(
        d,
        &[
            "api-account",
            "clear",
            "--tenant",
            "Acme",
            "bob@acme.example",
        ],
    );
    assert_eq!(cleared["api_account"], false);
    assert_eq!(client_token(&server, &flagged), Err(401));
    operator(
        d,
        &[
            "user",
            "update",
            "--tenant",
            "Acme",
            "bob@acme.example",
            "--no-roles",
        ],
    );
    let removed = operator(d, &["role", "remove", "--tenant", "Acme", "helpdesk"]);
    assert_eq!(removed["removed"], "helpdesk");
    // Pages: users by email, audit events newest first with filters; `next` continues.
    let first = operator(d, &["user", "list", "--tenant", "Acme", "--limit", "1"]);
    assert_eq!(first["users"][0]["email"], "ann@acme.example");
    let next = first["next"].as_str().unwrap();
    let second = operator(
        d,
        &[
            "user", "list", "--tenant", "Acme", "--limit", "1", "--after", next,
        ],
    );
    assert_eq!(second["users"][0]["email"], "bob@acme.example");
    let roles = operator(
        d,
        &[
            "audit", "list", "--tenant", "Acme", "--action", "role.*", "--limit", "1",
        ],
    );
    assert_eq!(roles["events"][0]["action"], "role.delete", "newest first");
    let older = operator(
        d,
        &[
            "audit",
            "list",
            "--tenant",
            "Acme",
            "--action",
            "role.*",
            "--limit",
            "1",
            "--before",
            roles["next"].as_str().unwrap(),
        ],
    );
    assert_eq!(older["events"][0]["action"], "role.set");
    let failures = operator(
        d,
        &[
            "audit",
            "list",
            "--tenant",
            "Acme",
            "--user",
            "bob@acme.example",
            "--outcome",
            "failure",
        ],
    );
    assert!(
        failures["events"].as_array().unwrap().is_empty(),
        "{failures}"
    );
    let audit = operator(d, &["audit", "list", "--tenant", "Acme"]);
    let actions: Vec<&str> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for a in [
        "role.set",
        "user.roles",
        "api_account.rotate",
        "user.password_link",
        "user.password.set",
        "user.api_account.set",
        "user.api_account.clear",
        "role.delete",
    ] {
        assert!(actions.contains(&a), "{a} in {actions:?}");
    }
    assert!(server.stop().success());
}

/// Signs in at Padlock's own sign-in (the padlock page sends the browser there) with `email` and
/// `password`; true when the password is accepted (the company has no second factor here).
fn own_sign_in(base: &str, email: &str, password: &str) -> bool {
    let r = http()
        .get(format!("{base}/account/security"))
        .send()
        .unwrap();
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let flow = location.split("flow=").nth(1).unwrap().to_owned();
    let r = http()
        .post(format!("{base}/login"))
        .header("cookie", &cookie)
        .form(&[
            ("flow", flow.as_str()),
            ("email", email),
            ("password", password),
        ])
        .send()
        .unwrap();
    r.headers()
        .get("location")
        .is_some_and(|l| l.to_str().unwrap() == "/account/security")
}

/// `padlock recover-admin` refuses while the server holds the data directory and for anyone but
/// an enabled administrator; with the server stopped it sets a generated password (printed once)
/// that signs in, and the old one no longer does.
#[test]
fn recover_admin_sets_an_administrators_password_offline() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = Server::start(d, &[]);
    acme_with_ann_and_bob(d);
    assert!(own_sign_in(
        &server.url,
        "ann@acme.example",
        "correct-horse-battery"
    ));
    let recover = |email: &str| {
        padlock(
            &["recover-admin", "--data-dir", "data", "--email", email],
            d,
        )
    };
    let out = recover("ann@acme.example");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("data"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(server.stop().success());

    for (email, why) in [
        (
            "bob@acme.example",
            "is not an enabled company administrator",
        ),
        ("nobody@acme.example", "no user has the email"),
    ] {
        let out = recover(email);
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(why),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = recover("ann@acme.example");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let password = text
        .split(": ")
        .nth(1)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(password.len(), 24, "{text}");

    let server = Server::start(d, &[]);
    assert!(
        own_sign_in(&server.url, "ann@acme.example", &password),
        "the new password signs in"
    );
    assert!(
        !own_sign_in(&server.url, "ann@acme.example", "correct-horse-battery"),
        "the old one does not"
    );
    let audit = operator(
        d,
        &[
            "audit",
            "list",
            "--tenant",
            "Acme",
            "--action",
            "user.password.recover",
            "--url",
            &server.url,
        ],
    );
    assert_eq!(audit["events"][0]["actor"], "recover-admin");
    assert!(server.stop().success());
}
