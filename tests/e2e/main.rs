//! End-to-end tests: the real `padlock` binary over real sockets, and `pam_padlock.so` loaded by a
//! real PAM stack (`pamtester` under `pam_wrapper`, and a real `sshd` logged into by a scripted SSH
//! client). Build the workspace first (`cargo build --workspace`): the binaries are found next to
//! this test executable.

mod account;
mod browser;
mod cli;
mod delivery;
mod duo_login;
mod duo_standin;
mod examples;
mod harness;
mod oidc;
mod pam;
mod pam_login;
mod serve;
mod smtp;
mod sshd;
