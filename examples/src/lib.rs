//! Runnable clients of Padlock: a relying panel and a service-account client arrive with the OpenID
//! Connect provider; this crate holds them so they build and are checked with the workspace.
