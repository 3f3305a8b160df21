//! The HTTP application (`app`) and the `padlock serve` process around it (`serve`).

use crate::bootstrap::{self, DataDir, StartError};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::error::AppError;
use crate::keys::{KeyRing, Keys};
use crate::password::Passwords;
use crate::state::AppState;
use crate::store::Store;
use crate::store::sled::SledStore;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Json};
use axum::routing::{get, post};
use std::net::SocketAddr;
use std::sync::Arc;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::set_header::SetResponseHeaderLayer;

/// Largest request body Padlock reads (forms and JSON are small).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// `Strict-Transport-Security` sent when the issuer is https: browsers then use https for this
/// host for a year (RFC 6797 §6.1). No `includeSubDomains` or `preload`: Padlock does not own the
/// other hosts of its domain, and preloading is the domain owner's decision.
pub const HSTS: &str = "max-age=31536000";

/// The router with every route and layer.
pub fn app(state: AppState) -> Router {
    let https = state.issuer.starts_with("https://");
    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/setup", get(crate::setup::form).post(crate::setup::submit))
        .route("/account/security", get(crate::account::show))
        .route("/account/security/step-up", post(crate::account::step_up))
        .route("/account/security/preferences", post(crate::account::preferences))
        .route("/account/security/totp/start", post(crate::account::totp_start))
        .route("/account/security/totp/confirm", post(crate::account::totp_confirm))
        .route("/account/security/duo/start", post(crate::account::duo_start))
        .route("/account/security/duo/check", post(crate::account::duo_check))
        .route("/account/security/duo/link", post(crate::account::duo_link))
        .route("/account/security/password", post(crate::account::password))
        .route(crate::password_link::PATH, get(crate::password_link::form).post(crate::password_link::submit))
        .merge(crate::oauth::routes())
        .nest("/api/v1", crate::api::routes())
        .nest("/pam/v1", crate::pam_api::routes())
        .fallback(|| async { AppError::NotFound })
        .with_state(state)
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(SetResponseHeaderLayer::if_not_present(header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .layer(SetResponseHeaderLayer::overriding(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(SetResponseHeaderLayer::overriding(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        // Links carry one-time tokens: never leak them to other sites.
        .layer(SetResponseHeaderLayer::overriding(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            // No form-action: browsers apply it to the redirect after a form post, and the login
            // forms end in a redirect to the relying panel's own origin.
            HeaderValue::from_static("default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'"),
        ));
    if https {
        router.layer(SetResponseHeaderLayer::overriding(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        ))
    } else {
        router
    }
}

async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    match state.store.setup_token().await {
        Ok(_) => (StatusCode::OK, Json(serde_json::json!({ "status": "ok" }))),
        Err(e) => {
            tracing::error!(error = %e, "health check: storage failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({ "status": "storage unavailable" })),
            )
        }
    }
}

/// Runs `padlock serve` until SIGINT or SIGTERM, then flushes storage.
///
/// Sets the process umask to 0077 first: every file this process creates, sled's database files
/// and snapshots included (sled opens them with default modes), is private to the user Padlock
/// runs as. [`DataDir::open`] tightens what an earlier run left open.
pub async fn serve(mut config: Config) -> Result<(), StartError> {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let problems = config.validate();
    if !problems.is_empty() {
        return Err(StartError::Config(
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        ));
    }
    let limits = config
        .limits()
        .map_err(|e| StartError::Config(e.to_string()))?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Listen {
            addr: config.listen,
            source,
        })?;
    config.listen = listener
        .local_addr()
        .map_err(|e| StartError::Io(e.to_string()))?;
    let issuer = config.issuer();

    let dir = DataDir::open(&config.data_dir)?;
    let store: Arc<dyn Store> = Arc::new(SledStore::open(
        &dir.db_path(),
        config.cache_mb.saturating_mul(1 << 20),
    )?);
    let master = bootstrap::master_key(&config.master_key_path(), store.as_ref()).await?;
    bootstrap::reseal_under_subkeys(store.as_ref(), &master).await?;
    for (company, name, emails) in bootstrap::duplicate_unix_names(store.as_ref()).await? {
        tracing::warn!(
            company = %company,
            unix_name = %name,
            users = %emails.join(", "),
            "several users share one Unix name: PAM logins with it are refused until an administrator gives each a different one (padlock user update --tenant COMPANY USER --unix-name NAME)"
        );
    }
    if let Some(company) = bootstrap::mark_operator_company(store.as_ref()).await? {
        tracing::info!(company = %company, "marked the company created at /setup as the operator company");
    }
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let keys = Keys::load_or_create(store.as_ref(), &master, clock.now()).await?;
    bootstrap::ensure_operator(&dir, store.as_ref(), &issuer, clock.now()).await?;
    let setup_link = bootstrap::setup_link(store.as_ref(), &issuer, clock.now()).await?;
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let passwords = Passwords::new(cores).map_err(|e| StartError::Io(e.to_string()))?;

    let state = AppState {
        store: store.clone(),
        master: Arc::new(master),
        keys: Arc::new(KeyRing::new(keys)),
        clock,
        passwords,
        issuer: issuer.clone().into(),
        limits: Arc::new(limits),
        tokens: config.tokens,
        discovery: crate::oauth::discovery::document(&issuer),
        delivery: Arc::new(
            crate::delivery::Delivery::from_config(&config, dir.path())
                .map_err(StartError::Config)?,
        ),
        pam_decoys: Arc::default(),
        duo: Arc::new(
            config
                .duo
                .build(config.testing.as_ref())
                .map_err(StartError::Config)?,
        ),
    };

    let shutdown = shutdown_signal()?;
    if let Some(link) = setup_link {
        println!(
            "Padlock has no company yet. Open this one-time link to create the first company and its administrator:"
        );
        println!();
        println!("    {link}");
        println!();
        tracing::warn!("waiting for first-run setup through the link printed on standard output");
    }
    // Printed last: scripts and tests wait for this line.
    println!(
        "Padlock listening on http://{} (issuer {issuer}, data in {})",
        config.listen,
        dir.path().display()
    );

    tokio::spawn(purge_expired(state.clone()));
    let service = app(state).into_make_service_with_connect_info::<SocketAddr>();
    let served = axum::serve(listener, service)
        .with_graceful_shutdown(shutdown)
        .await;
    store.flush().await?;
    tracing::info!("stopped; storage flushed");
    served.map_err(|e| StartError::Io(format!("server: {e}")))
}

/// Installs the SIGINT/SIGTERM handlers now (before anyone can see the server is up) and returns
/// the future that completes on the first of them.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>, StartError> {
    use tokio::signal::unix::{SignalKind, signal};
    let install = |kind| {
        signal(kind).map_err(|e| StartError::Io(format!("cannot install signal handler: {e}")))
    };
    let mut int = install(SignalKind::interrupt())?;
    let mut term = install(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {},
            _ = term.recv() => {},
        }
        tracing::info!("shutting down");
    })
}

/// Every minute, drops expired codes, sessions, login flows, refresh tokens and revocations.
async fn purge_expired(state: AppState) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
    loop {
        tick.tick().await;
        match state.store.purge_expired(state.clock.now()).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(removed = n, "purged expired records"),
            Err(e) => tracing::warn!(error = %e, "purging expired records failed"),
        }
    }
}
