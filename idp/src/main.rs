//! The `padlock` binary: everything lives in the library so tests run the same code.
fn main() -> std::process::ExitCode {
    padlock_idp::cli::main()
}
