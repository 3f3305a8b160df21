//! `/etc/padlock/pam.toml` (or `config=/path` in the PAM line): where Padlock is, how this host
//! proves itself, and how to fail (DESIGN §8).
//!
//! The configuration file and the host-secret file are opened without following a final symbolic
//! link and checked on the opened handle (`fstat`, no race with a rename): a regular file, owned by
//! root, with no read or write permission for group or others. Anything else is refused and the
//! module answers `PAM_AUTHINFO_UNAVAIL` in both failmodes: a local misconfiguration is never a
//! reason to let a login through.

pub use padlock_policy::pam::{FailMode, UnknownUser};
use serde::Deserialize;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// The shortest `timeout_secs`, in seconds: well above Padlock's bound on sending a code during
/// `preauth` (4 s), so a slow mail or SMS gateway is never taken for an unreachable Padlock.
pub const MIN_TIMEOUT_SECS: u64 = 10;

/// Default configuration file.
pub const DEFAULT_PATH: &str = "/etc/padlock/pam.toml";

/// Largest configuration file read, in bytes.
const MAX_CONFIG_BYTES: u64 = 64 * 1024;
/// Largest host-secret file read, in bytes.
const MAX_SECRET_BYTES: u64 = 4 * 1024;
/// Largest CA bundle read (`ca_file` or the system bundle), in bytes.
pub(crate) const MAX_CA_BYTES: u64 = 4 * 1024 * 1024;

/// The module's configuration (DESIGN §8). Keys: `url`, `host_id`, `host_secret_file`, `ca_file`,
/// `timeout_secs`, `failmode`, `unknown_user`, `prompts`, `duo_autopush`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PamConfig {
    /// Padlock's base URL (`https://…`; `http://` only for a local test). No trailing path needed:
    /// calls go to `{url}/pam/v1/…`.
    pub url: String,
    /// The PAM-host credential id (the user half of HTTP Basic).
    pub host_id: String,
    /// File holding the PAM-host secret (surrounding whitespace trimmed); root-owned, mode 0600.
    pub host_secret_file: PathBuf,
    /// CA bundle (PEM) trusted for Padlock's certificate; when set, only these roots are trusted.
    /// When unset, the system bundle at [`crate::client::SYSTEM_CA_BUNDLE`] is used.
    pub ca_file: Option<PathBuf>,
    /// Longest wait for one call to Padlock (connect, send and answer), in seconds, 10 to 120.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Behaviour when Padlock is unreachable (`"secure"`, the default, or `"safe"`).
    #[serde(default)]
    pub failmode: FailMode,
    /// Behaviour for users Padlock does not know (`"deny"`, the default, or `"ignore"`).
    #[serde(default)]
    pub unknown_user: UnknownUser,
    /// Wrong answers allowed per login before `PAM_MAXTRIES`, 1 to 10 (default 3).
    #[serde(default = "default_prompts")]
    pub prompts: u32,
    /// With Duo, send a push at once instead of prompting first (default false).
    #[serde(default)]
    pub duo_autopush: bool,
}

fn default_timeout() -> u64 {
    10
}

fn default_prompts() -> u32 {
    3
}

/// The PAM host's secret, read from `host_secret_file`. Zeroed on drop; `Debug` shows
/// `HostSecret([redacted])`.
pub struct HostSecret(Zeroizing<String>);

impl HostSecret {
    /// The secret's text.
    ///
    /// # Security Warning
    /// This is the credential that lets this host ask Padlock about its users. Never log it or
    /// copy it into a buffer that is not zeroed.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
impl HostSecret {
    /// A secret for tests, without a file.
    pub(crate) fn for_tests(secret: &str) -> HostSecret {
        HostSecret(Zeroizing::new(secret.to_owned()))
    }
}

impl fmt::Debug for HostSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HostSecret([redacted])")
    }
}

/// The module arguments it understands: `config=/path` (anything else is ignored).
/// Returns the configuration file to read, [`DEFAULT_PATH`] when none is given.
#[must_use]
pub fn config_path(args: &[&str]) -> PathBuf {
    args.iter()
        .find_map(|a| a.strip_prefix("config="))
        .map_or_else(|| PathBuf::from(DEFAULT_PATH), PathBuf::from)
}

/// Whether `url` is `http://` to a loopback address (127.0.0.0/8, `[::1]`, `localhost`).
fn is_loopback_http(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Reads, checks ([`open_private`]) and validates the configuration at `path`.
///
/// # Errors
/// A sentence for syslog naming the file and what is wrong with it (unreadable, not private,
/// not TOML, an unknown key, a value out of range).
pub fn load(path: &Path) -> Result<PamConfig, String> {
    if !path.is_absolute() {
        return Err(format!(
            "{}: the configuration file must be given by an absolute path",
            path.display()
        ));
    }
    let file = open_private(path)?;
    let bytes = read_capped(file, MAX_CONFIG_BYTES, path)?;
    let text =
        String::from_utf8(bytes).map_err(|_| format!("{}: not UTF-8 text", path.display()))?;
    let config: PamConfig =
        toml::from_str(&text).map_err(|e| format!("{}: {}", path.display(), e.message()))?;
    if !(config.url.starts_with("https://") || is_loopback_http(&config.url)) {
        return Err(format!(
            "{}: url must start with https:// (http:// only to a loopback address, for a local test: on any other path a listener could answer \"allow\" and read the host secret)",
            path.display()
        ));
    }
    for (key, file) in [
        ("host_secret_file", Some(&config.host_secret_file)),
        ("ca_file", config.ca_file.as_ref()),
    ] {
        if file.is_some_and(|f| !f.is_absolute()) {
            return Err(format!(
                "{}: {key} must be an absolute path (a relative one would be read from the calling program's working directory)",
                path.display()
            ));
        }
    }
    if config.host_id.is_empty()
        || config.host_id.len() > padlock_policy::pam::MAX_FIELD_BYTES
        || config.host_id.contains(':')
        || config.host_id.chars().any(char::is_control)
    {
        return Err(format!(
            "{}: host_id must be 1 to 256 bytes without ':' or control characters",
            path.display()
        ));
    }
    // Padlock answers preauth within SEND_BOUND_SECS (4 s) even when its gateway is slow; a
    // shorter deadline would make a slow gateway look like an unreachable Padlock, which
    // failmode = "safe" lets through.
    if !(MIN_TIMEOUT_SECS..=120).contains(&config.timeout_secs) {
        return Err(format!(
            "{}: timeout_secs must be {MIN_TIMEOUT_SECS} to 120",
            path.display()
        ));
    }
    if config.prompts == 0 || config.prompts > 10 {
        return Err(format!("{}: prompts must be 1 to 10", path.display()));
    }
    Ok(config)
}

/// Reads the host secret from `config.host_secret_file` (checked with [`open_private`]),
/// trimmed of surrounding whitespace.
///
/// # Errors
/// A sentence for syslog (never containing the secret): the file is unreadable, not private,
/// empty, not UTF-8, or holds control characters inside the secret.
pub fn read_host_secret(config: &PamConfig) -> Result<HostSecret, String> {
    let path = &config.host_secret_file;
    let file = open_private(path)?;
    let bytes = Zeroizing::new(read_capped(file, MAX_SECRET_BYTES, path)?);
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| format!("{}: the host secret is not UTF-8 text", path.display()))?;
    let secret = text.trim();
    if secret.is_empty() || secret.chars().any(char::is_control) {
        return Err(format!(
            "{}: the host secret is empty or holds control characters",
            path.display()
        ));
    }
    Ok(HostSecret(Zeroizing::new(secret.to_owned())))
}

/// Opens `path` for reading without following a final symbolic link, then checks the opened file
/// with `fstat`: a regular file, owned by root (uid 0), neither group- nor world-readable or
/// -writable (no bit of `0o066`).
///
/// # Errors
/// A sentence for syslog: the file is missing or unreadable, a symbolic link, not a regular file,
/// not owned by root, or open to group or others.
pub fn open_private(path: &Path) -> Result<File, String> {
    let file = open_no_follow(path)?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot inspect {}: {e}", path.display()))?;
    if !meta.file_type().is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    if meta.uid() != 0 {
        return Err(format!(
            "{} is owned by uid {}, not root; refusing it",
            path.display(),
            meta.uid()
        ));
    }
    if meta.mode() & 0o066 != 0 {
        return Err(format!(
            "{} is readable or writable by group or others (mode {:04o}); chmod 600 it",
            path.display(),
            meta.mode() & 0o7777
        ));
    }
    Ok(file)
}

/// Opens a CA bundle (`ca_file`): links are followed (bundles are often links into
/// `/usr/share/ca-certificates`), but the file reached must be a regular file owned by root and
/// writable by nobody else, or anyone could add a root Padlock's connection would trust.
///
/// # Errors
/// A sentence for syslog naming the file and the problem.
pub(crate) fn open_ca_bundle(path: &Path) -> Result<Vec<u8>, String> {
    let file = File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot inspect {}: {e}", path.display()))?;
    if !meta.file_type().is_file() || meta.uid() != 0 || meta.mode() & 0o022 != 0 {
        return Err(format!(
            "{} must be a regular file owned by root and writable only by root",
            path.display()
        ));
    }
    read_capped(file, MAX_CA_BYTES, path)
}

fn open_no_follow(path: &Path) -> Result<File, String> {
    OpenOptions::new()
        .read(true)
        // O_NONBLOCK: a FIFO planted at the path cannot hang the login; regular files ignore it.
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                format!("{} is a symbolic link; refusing it", path.display())
            } else {
                format!("cannot read {}: {e}", path.display())
            }
        })
}

fn read_capped(file: File, limit: u64, path: &Path) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if bytes.len() as u64 > limit {
        return Err(format!("{} is larger than {limit} bytes", path.display()));
    }
    Ok(bytes)
}

#[cfg(test)]
#[allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]
pub(crate) mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A minimal temporary directory (the module has no dev-dependency on tempfile).
    pub(crate) struct Dir(pub PathBuf);
    impl Dir {
        pub(crate) fn new(tag: &str) -> Dir {
            let p = std::env::temp_dir().join(format!(
                "pam-padlock-test-{}-{tag}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
        /// Writes `name` with `text` and `mode`, owned by the test's user (root in CI).
        pub(crate) fn file(&self, name: &str, text: &str, mode: u32) -> PathBuf {
            let path = self.0.join(name);
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            path
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    const MINIMAL: &str = "url = \"https://login.example.com\"\nhost_id = \"c_1\"\nhost_secret_file = \"/etc/padlock/host.secret\"\n";

    #[test]
    fn defaults_are_fail_secure() {
        let d = Dir::new("defaults");
        let loaded = load(&d.file("pam.toml", MINIMAL, 0o600));
        assert!(loaded.is_ok(), "{loaded:?}");
        let Ok(c) = loaded else { return };
        assert_eq!(c.failmode, FailMode::Secure);
        assert_eq!(c.unknown_user, UnknownUser::Deny);
        assert_eq!(c.timeout_secs, 10);
        assert_eq!(c.prompts, 3);
        assert!(!c.duo_autopush);
    }

    #[test]
    fn every_key_is_read() {
        let d = Dir::new("keys");
        let text = "url = \"https://login.example.com\"\nhost_id = \"c_1\"\nhost_secret_file = \"/s\"\n\
                    ca_file = \"/ca.pem\"\ntimeout_secs = 15\nfailmode = \"safe\"\nunknown_user = \"ignore\"\n\
                    prompts = 2\nduo_autopush = true\n";
        let c = load(&d.file("pam.toml", text, 0o600)).unwrap();
        assert_eq!(c.ca_file, Some(PathBuf::from("/ca.pem")));
        assert_eq!(
            (
                c.timeout_secs,
                c.failmode,
                c.unknown_user,
                c.prompts,
                c.duo_autopush
            ),
            (15, FailMode::Safe, UnknownUser::Ignore, 2, true)
        );
    }

    #[test]
    fn bad_files_are_explained() {
        let d = Dir::new("bad");
        let p = d.file(
            "a.toml",
            "url = \"ftp://x\"\nhost_id = \"c\"\nhost_secret_file = \"/x\"\n",
            0o600,
        );
        assert!(load(&p).is_err_and(|e| e.contains("url must start")));
        // Plain HTTP only to a loopback address.
        for (url, ok) in [
            ("http://login.example.com", false),
            ("http://10.0.0.1:8080", false),
            ("http://127.0.0.1:8080", true),
            ("http://localhost/", true),
            ("http://[::1]:8080", true),
            ("http://127.0.0.1.evil.example", false),
        ] {
            let p = d.file(
                "h.toml",
                &format!("url = \"{url}\"\nhost_id = \"c\"\nhost_secret_file = \"/x\"\n"),
                0o600,
            );
            assert_eq!(load(&p).is_ok(), ok, "{url}");
        }
        let p = d.file(
            "r.toml",
            "url = \"https://x\"\nhost_id = \"c\"\nhost_secret_file = \"host.secret\"\n",
            0o600,
        );
        assert!(load(&p).is_err_and(|e| e.contains("absolute path")));
        let p = d.file(
            "t.toml",
            "url = \"https://x\"\nhost_id = \"c\"\nhost_secret_file = \"/x\"\ntimeout_secs = 9\n",
            0o600,
        );
        assert!(
            load(&p).is_err_and(|e| e.contains("timeout_secs must be 10 to 120")),
            "shorter than Padlock's bound on sending a code"
        );
        let p = d.file(
            "b.toml",
            "url = \"https://x\"\nhost_id = \"c\"\nhost_secret_file = \"/x\"\nfailmode = \"open\"\n",
            0o600,
        );
        assert!(load(&p).is_err_and(|e| e.contains("unknown variant")));
        let p = d.file(
            "c.toml",
            "url = \"https://x\"\nhost_id = \"c:d\"\nhost_secret_file = \"/x\"\n",
            0o600,
        );
        assert!(load(&p).is_err_and(|e| e.contains("host_id")));
        let p = d.file("d.toml", &format!("{MINIMAL}prompts = 0\n"), 0o600);
        assert!(load(&p).is_err_and(|e| e.contains("prompts")));
        assert!(load(Path::new("/nonexistent/pam.toml")).is_err_and(|e| e.contains("cannot read")));
    }

    #[test]
    fn files_open_to_group_or_others_are_refused() {
        let d = Dir::new("modes");
        for mode in [0o640, 0o604, 0o620, 0o602, 0o644, 0o660] {
            let p = d.file(&format!("m{mode:o}.toml"), MINIMAL, mode);
            let r = load(&p);
            assert!(
                r.as_ref().is_err_and(|e| e.contains("group or others")),
                "mode {mode:o}: {r:?}"
            );
        }
        assert!(load(&d.file("ok.toml", MINIMAL, 0o600)).is_ok());
        assert!(load(&d.file("ro.toml", MINIMAL, 0o400)).is_ok());
    }

    #[test]
    fn files_not_owned_by_root_are_refused() {
        let d = Dir::new("owner");
        let p = d.file("pam.toml", MINIMAL, 0o600);
        std::os::unix::fs::chown(&p, Some(65534), Some(65534)).unwrap();
        assert!(load(&p).is_err_and(|e| e.contains("uid 65534")));
        let s = d.file("host.secret", "s3cret\n", 0o600);
        std::os::unix::fs::chown(&s, Some(65534), None).unwrap();
        let mut c = load(&d.file("ok.toml", MINIMAL, 0o600)).unwrap();
        c.host_secret_file = s;
        assert!(read_host_secret(&c).is_err_and(|e| e.contains("not root")));
    }

    #[test]
    fn links_and_non_files_are_refused() {
        let d = Dir::new("links");
        let target = d.file("real.toml", MINIMAL, 0o600);
        let link = d.0.join("link.toml");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(load(&link).is_err_and(|e| e.contains("symbolic link")));
        assert!(load(&d.0).is_err_and(|e| e.contains("not a regular file")));
    }

    #[test]
    fn host_secret_is_trimmed_checked_and_redacted() {
        let d = Dir::new("secret");
        let mut c = load(&d.file("pam.toml", MINIMAL, 0o600)).unwrap();
        c.host_secret_file = d.file("host.secret", "  s3cret-value\n", 0o600);
        let s = read_host_secret(&c).unwrap();
        assert_eq!(s.expose(), "s3cret-value");
        assert_eq!(format!("{s:?}"), "HostSecret([redacted])");
        c.host_secret_file = d.file("open.secret", "s3cret\n", 0o640);
        assert!(read_host_secret(&c).is_err_and(|e| e.contains("group or others")));
        c.host_secret_file = d.file("empty.secret", " \n", 0o600);
        assert!(read_host_secret(&c).is_err_and(|e| e.contains("empty")));
        c.host_secret_file = PathBuf::from("/nonexistent/host.secret");
        assert!(read_host_secret(&c).is_err_and(|e| e.contains("cannot read")));
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
