//! `/etc/padlock/pam.toml` (or `config=/path` in the PAM line): where the IdP is and how to fail.

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Default configuration file.
pub const DEFAULT_PATH: &str = "/etc/padlock/pam.toml";

/// What to do when the IdP cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailMode {
    /// Refuse the login (`PAM_AUTHINFO_UNAVAIL`).
    #[default]
    Secure,
    /// Let the login through with a syslog warning.
    Safe,
}

/// What to do with users Padlock does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownUser {
    /// Challenge anyway and fail (no user enumeration).
    #[default]
    Deny,
    /// `PAM_IGNORE`: the rest of the stack decides.
    Ignore,
}

/// The module's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PamConfig {
    /// Padlock's base URL.
    pub url: String,
    /// The PAM-host credential id.
    pub host_id: String,
    /// File holding the PAM-host secret.
    pub host_secret_file: PathBuf,
    /// Extra CA bundle for Padlock's TLS certificate.
    pub ca_file: Option<PathBuf>,
    /// Overall deadline of each call to Padlock, in seconds.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Behaviour when Padlock is unreachable.
    #[serde(default)]
    pub failmode: FailMode,
    /// Behaviour for users Padlock does not know.
    #[serde(default)]
    pub unknown_user: UnknownUser,
}

fn default_timeout() -> u64 {
    10
}

/// The module arguments it understands: `config=/path`.
#[must_use]
pub fn config_path(args: &[&str]) -> PathBuf {
    args.iter()
        .find_map(|a| a.strip_prefix("config="))
        .map_or_else(|| PathBuf::from(DEFAULT_PATH), PathBuf::from)
}

/// Reads and checks the configuration; the error is a sentence for syslog.
pub fn load(path: &Path) -> Result<PamConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let config: PamConfig =
        toml::from_str(&text).map_err(|e| format!("{}: {}", path.display(), e.message()))?;
    if !(config.url.starts_with("https://") || config.url.starts_with("http://")) {
        return Err(format!(
            "{}: url must start with https:// (or http:// for a local test)",
            path.display()
        ));
    }
    if config.timeout_secs == 0 || config.timeout_secs > 120 {
        return Err(format!("{}: timeout_secs must be 1 to 120", path.display()));
    }
    Ok(config)
}

#[cfg(test)]
#[allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile_lite::Dir, PathBuf) {
        let dir = tempfile_lite::Dir::new();
        let path = dir.0.join("pam.toml");
        std::fs::write(&path, text).ok();
        (dir, path)
    }

    /// A minimal temporary directory (the module has no dev-dependency on tempfile).
    mod tempfile_lite {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Dir {
                let p = std::env::temp_dir().join(format!(
                    "pam-padlock-test-{}-{:?}",
                    std::process::id(),
                    std::thread::current().id()
                ));
                let _ = std::fs::create_dir_all(&p);
                Dir(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[test]
    fn defaults_are_fail_secure() {
        let (_d, p) = write(
            "url = \"https://login.example.com\"\nhost_id = \"c_1\"\nhost_secret_file = \"/etc/padlock/host.secret\"\n",
        );
        let loaded = load(&p);
        assert!(loaded.is_ok(), "{loaded:?}");
        let Ok(c) = loaded else { return };
        assert_eq!(c.failmode, FailMode::Secure);
        assert_eq!(c.unknown_user, UnknownUser::Deny);
        assert_eq!(c.timeout_secs, 10);
    }

    #[test]
    fn bad_files_are_explained() {
        let (_d, p) = write("url = \"ftp://x\"\nhost_id = \"c\"\nhost_secret_file = \"/x\"\n");
        assert!(load(&p).is_err_and(|e| e.contains("url must start")));
        let (_d, p) = write(
            "url = \"https://x\"\nhost_id = \"c\"\nhost_secret_file = \"/x\"\nfailmode = \"open\"\n",
        );
        assert!(load(&p).is_err_and(|e| e.contains("unknown variant")));
        assert!(load(Path::new("/nonexistent/pam.toml")).is_err_and(|e| e.contains("cannot read")));
    }

    #[test]
    fn config_argument() {
        assert_eq!(
            config_path(&["debug", "config=/tmp/p.toml"]),
            PathBuf::from("/tmp/p.toml")
        );
        assert_eq!(config_path(&[]), PathBuf::from(DEFAULT_PATH));
    }
}
