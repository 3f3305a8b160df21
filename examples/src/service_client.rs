//! A service account using Padlock: client credentials for an access token, then a call to the admin
//! API with it. API accounts are exempt from the second factor only here, and get only their scopes.
//!
//! ```text
//! padlock api-account add --tenant Acme --name directory-sync --scope tenant.admin
//! PADLOCK_URL=http://127.0.0.1:8080 CLIENT_ID=c_… CLIENT_SECRET=… TENANT=Acme \
//!     cargo run -p padlock-examples --bin service-client
//! ```
//! prints the company's users as JSON.

use std::process::ExitCode;

fn env(name: &str) -> Result<String, String> {
    std::env::var(name)
        .map_err(|_| format!("set {name} (see the comment at the top of service_client.rs)"))
}

async fn run() -> Result<serde_json::Value, String> {
    let url = env("PADLOCK_URL")?.trim_end_matches('/').to_owned();
    let (id, secret, tenant) = (env("CLIENT_ID")?, env("CLIENT_SECRET")?, env("TENANT")?);
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{url}/token"))
        .basic_auth(&id, Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .map_err(|e| format!("cannot reach {url}: {e}"))?;
    let token: serde_json::Value = resp.json().await.map_err(|e| e.to_string())?;
    let Some(access) = token["access_token"].as_str() else {
        return Err(format!(
            "token refused: {}",
            token["error_description"]
                .as_str()
                .or(token["error"].as_str())
                .unwrap_or("unknown error")
        ));
    };
    let tenant: String = tenant
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let users = http
        .get(format!("{url}/api/v1/tenants/{tenant}/users"))
        .bearer_auth(access)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = users.status();
    let body: serde_json::Value = users.json().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!(
            "API refused ({status}): {}",
            body["message"].as_str().unwrap_or("")
        ));
    }
    Ok(serde_json::json!({ "scope": token["scope"], "users": body }))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run().await {
        Ok(v) => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("service-client: {e}");
            ExitCode::FAILURE
        }
    }
}
