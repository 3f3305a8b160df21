//! `pam_padlock.so`: adds the Padlock second factor to PAM logins (ssh, sudo, su, console).
//!
//! The module is thin: read the configuration, get the user, ask Padlock's PAM API, converse, map
//! the answer to a PAM code. It never reads Padlock's database. Every entry point runs behind
//! `catch_unwind` (done by `pam_hooks!`), and every failure maps to a deliberate code:
//!
//! - configuration missing or invalid, or Padlock unreachable → `PAM_AUTHINFO_UNAVAIL`
//!   (`failmode = "secure"`, the default);
//! - users out of scope (`unknown_user = "ignore"`) → `PAM_IGNORE`, never `PAM_SUCCESS`;
//! - a non-UTF-8 user name → `PAM_USER_UNKNOWN`.
//!
//! Until the client of Padlock's `/pam/v1` API lands, `pam_sm_authenticate` validates its
//! configuration and the user, then answers `PAM_AUTHINFO_UNAVAIL`: the stack fails closed.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod config;
mod syslog;

use pam::constants::{PamFlag, PamResultCode};
use pam::module::{PamHandle, PamHooks};
use std::ffi::CStr;

/// The module type behind the PAM entry points.
pub struct PadlockPam;

// The macro defines the `extern "C"` entry points (`no_mangle`), which the unsafe_code lint flags.
#[allow(unsafe_code)]
mod hooks {
    pam::pam_hooks!(PadlockPam);
    use super::PadlockPam;
}

impl PamHooks for PadlockPam {
    fn sm_authenticate(pamh: &mut PamHandle, args: Vec<&CStr>, _flags: PamFlag) -> PamResultCode {
        let args: Vec<&str> = args.iter().filter_map(|a| a.to_str().ok()).collect();
        let path = config::config_path(&args);
        let config = match config::load(&path) {
            Ok(c) => c,
            Err(e) => {
                syslog::error(&format!("pam_padlock: {e}; refusing the login"));
                return PamResultCode::PAM_AUTHINFO_UNAVAIL;
            }
        };
        let user = match pamh.get_user(None) {
            Ok(u) => u,
            Err(PamResultCode::PAM_SYSTEM_ERR) => {
                syslog::error("pam_padlock: the user name is not valid UTF-8; refusing the login");
                return PamResultCode::PAM_USER_UNKNOWN;
            }
            Err(code) => return code,
        };
        syslog::error(&format!(
            "pam_padlock: cannot check the second factor of {user:?}: this build has no client for {} yet; refusing the login",
            config.url
        ));
        PamResultCode::PAM_AUTHINFO_UNAVAIL
    }

    fn sm_setcred(_pamh: &mut PamHandle, _args: Vec<&CStr>, _flags: PamFlag) -> PamResultCode {
        // A second factor grants no credentials of its own.
        PamResultCode::PAM_SUCCESS
    }
}
