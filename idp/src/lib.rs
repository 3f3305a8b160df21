//! The Padlock identity provider.
pub mod config;
pub mod crypto;
pub mod domain;
pub mod fsutil;
pub mod keys;
pub mod password;
pub mod secret;
pub mod store;
