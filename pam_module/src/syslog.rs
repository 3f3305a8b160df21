//! Messages to syslog (`LOG_AUTHPRIV`), the place administrators look for PAM problems. Lines name
//! what happened, the user, the service and the remote host; never a secret or an answer.
#![allow(unsafe_code)]

use std::ffi::CString;

/// Logs `message` at `LOG_ERR`: Padlock or the configuration could not be used.
pub fn error(message: &str) {
    log(libc::LOG_ERR, message);
}

/// Logs `message` at `LOG_WARNING`: a login passed without a second factor (failmode `safe`).
pub fn warning(message: &str) {
    log(libc::LOG_WARNING, message);
}

/// Logs `message` at `LOG_NOTICE`: a login refused for the user's answers.
pub fn notice(message: &str) {
    log(libc::LOG_NOTICE, message);
}

/// Logs `message` at `LOG_INFO`: a login passed or was left to the stack.
pub fn info(message: &str) {
    log(libc::LOG_INFO, message);
}

fn log(priority: libc::c_int, message: &str) {
    // Interior NUL bytes could only come from a user name, which is quoted with `{:?}`; drop any.
    let Ok(text) = CString::new(message.replace('\0', "")) else {
        return;
    };
    // SAFETY: both pointers are valid NUL-terminated strings for the duration of the call, and the
    // format string consumes exactly one `%s` argument.
    unsafe { libc::syslog(libc::LOG_AUTHPRIV | priority, c"%s".as_ptr(), text.as_ptr()) };
}
