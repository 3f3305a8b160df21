//! The Padlock identity provider.
pub mod crypto;
pub mod domain;
pub mod fsutil;
pub mod secret;
pub mod store;
