//! The Padlock identity provider: storage, HTTP, pages, keys and the `padlock` command line.
//!
//! # Seams
//! - [`store::Store`]: a narrow domain trait with the atomicity in each method; sled by default
//!   ([`store::sled`]), in memory for tests ([`store::memory`]); every backend passes
//!   [`store::conformance`].
//! - [`state::AppState`] is built once by [`server::serve`] (or by a test) and passed to
//!   [`server::app`]; there are no global singletons. Time comes from [`clock::Clock`].
//! - Every second-factor rule is decided by the `padlock-policy` crate, which this crate calls.
//!
//! # Security invariants held here (DESIGN.md §9)
//! - Secrets at rest are sealed under per-purpose subkeys of the master key ([`crypto::MasterKey`]);
//!   a wrong master key is detected at start-up, never read as garbage.
//! - What Padlock writes under its data directory is private to its user
//!   ([`bootstrap::DataDir::open`]); secret files it reads must not be open to others
//!   ([`fsutil::check_secret_file`]).
//! - Client secrets are ≥ 256-bit generated and stored as SHA-256; passwords are argon2id
//!   ([`password::Passwords`]), with the same work for unknown users.
//! - Secret types print `Name([redacted])` ([`secret`]); internal errors are logged, never put in a
//!   response body ([`error::AppError`]).
//! - Every admin change and authentication decision is appended to the audit log
//!   ([`state::AppState::audit`]).

pub mod account;
pub mod api;
pub mod bootstrap;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod delivery;
pub mod domain;
pub mod duo;
pub mod error;
pub mod extract;
pub(crate) mod factor;
pub mod fsutil;
pub mod jwt;
pub mod keys;
pub mod limits;
mod login;
pub mod oauth;
pub mod pam_api;
pub mod password;
pub mod password_link;
pub mod recover;
pub mod remote;
pub mod secret;
pub mod server;
pub mod session;
mod setup;
pub mod state;
pub mod store;
pub mod template;
#[cfg(test)]
pub(crate) mod testing;
pub mod typical;
