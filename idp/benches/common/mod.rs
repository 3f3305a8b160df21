//! What the in-process benches share: an [`AppState`] over a given store, as `padlock serve`
//! builds one, without sockets.

use padlock_idp::clock::{Clock, ManualClock};
use padlock_idp::config::{Config, TokensConfig};
use padlock_idp::crypto::MasterKey;
use padlock_idp::delivery::Delivery;
use padlock_idp::duo::Duo;
use padlock_idp::keys::{KeyRing, Keys};
use padlock_idp::password::Passwords;
use padlock_idp::state::AppState;
use padlock_idp::store::Store;
use std::sync::Arc;
use std::time::Duration;

/// The state of a Padlock at `http://padlock.bench` on `store`, with `master`, its signing keys
/// loaded or made, and Duo's calls sent to `duo_url` when given.
pub async fn app_state(
    store: Arc<dyn Store>,
    master: MasterKey,
    clock: Arc<ManualClock>,
    duo_url: Option<String>,
) -> AppState {
    let keys = Keys::load_or_create(store.as_ref(), &master, clock.now())
        .await
        .unwrap();
    let outbox = std::env::temp_dir().join("padlock-bench-outbox");
    AppState {
        store,
        master: Arc::new(master),
        keys: Arc::new(KeyRing::new(keys)),
        clock,
        passwords: Passwords::new(2).unwrap(),
        issuer: "http://padlock.bench".into(),
        limits: Default::default(),
        tokens: TokensConfig::default(),
        discovery: padlock_idp::oauth::discovery::document("http://padlock.bench"),
        delivery: Arc::new(Delivery::from_config(&Config::default(), &outbox).unwrap()),
        pam_decoys: Arc::default(),
        duo: Arc::new(Duo::new(duo_url, Duration::from_secs(10), 60).unwrap()),
    }
}
