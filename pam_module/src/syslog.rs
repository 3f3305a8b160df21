//! Messages to syslog (auth facility), the place administrators look for PAM problems.
#![allow(unsafe_code)]

use std::ffi::CString;

/// Logs `message` at `LOG_ERR` to `LOG_AUTHPRIV`.
pub fn error(message: &str) {
    // Interior NUL bytes cannot occur in our messages except through a user name; drop them.
    let Ok(text) = CString::new(message.replace('\0', "")) else {
        return;
    };
    // SAFETY: both pointers are valid NUL-terminated strings for the duration of the call, and the
    // format string consumes exactly one `%s` argument.
    unsafe {
        libc::syslog(
            libc::LOG_AUTHPRIV | libc::LOG_ERR,
            c"%s".as_ptr(),
            text.as_ptr(),
        )
    };
}
