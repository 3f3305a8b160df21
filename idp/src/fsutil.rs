//! Small file-system helpers for files that hold secrets.
//!
//! - What Padlock writes is private: [`write_new_private`] creates files with mode 0600.
//! - What Padlock reads as a secret (the master key, the SMTP password, the SMS auth token) must
//!   not be open to others: [`read_secret_file`] and [`check_secret_file`] refuse a file that is
//!   group- or world-writable (someone else could swap the secret) or world-readable (anyone on
//!   the host could read it), or owned by a user other than Padlock's or root (its owner could
//!   rewrite it whatever its mode). Group-readable is fine: `root:padlock 0640` is the usual way to
//!   give the service account a file it does not own.

use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use zeroize::Zeroizing;

/// Creates `path` (which must not exist) with mode 0600 and writes `contents` to it, synced.
pub fn write_new_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Mode bits a secret file must not have, with what each means.
const EXPOSING_BITS: [(u32, &str); 3] = [
    (0o004, "world-readable"),
    (0o002, "world-writable"),
    (0o020, "group-writable"),
];

/// Why a secret file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Unreadable {
        /// The file, as configured.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Another user owns the file (it could rewrite it at any time).
    #[error(
        "{path} is owned by uid {owner}: a file holding a secret must belong to the user Padlock \
         runs as (uid {euid}) or to root: run `chown` on it"
    )]
    ForeignOwner {
        /// The file, as configured.
        path: String,
        /// Its owner.
        owner: u32,
        /// The user Padlock runs as.
        euid: u32,
    },
    /// Others can read or change the file.
    #[error(
        "{path} is {exposure} (mode {mode:04o}); a file holding a secret must not be group- or \
         world-writable nor world-readable: run `chmod 600 {path}` (or `chmod 640` with a group \
         Padlock runs as)"
    )]
    Exposed {
        /// The file, as configured.
        path: String,
        /// Its permission bits (`0o644`).
        mode: u32,
        /// The offending bits in words (`world-readable, group-writable`).
        exposure: String,
    },
}

/// The permission problem of a file with permission bits `mode`, if any.
fn exposure(mode: u32) -> Option<String> {
    let words: Vec<&str> = EXPOSING_BITS
        .iter()
        .filter(|(bit, _)| mode & bit != 0)
        .map(|(_, word)| *word)
        .collect();
    (!words.is_empty()).then(|| words.join(", "))
}

/// Opens `path` and checks its owner and permission bits (on the open file, so the file checked is
/// the file read; a symbolic link is followed and its target is what counts).
fn open_secret(path: &Path) -> Result<std::fs::File, SecretFileError> {
    let shown = || path.display().to_string();
    let unreadable = |source| SecretFileError::Unreadable {
        path: shown(),
        source,
    };
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let meta = file.metadata().map_err(unreadable)?;
    let euid = rustix::process::geteuid().as_raw();
    let owner = std::os::unix::fs::MetadataExt::uid(&meta);
    if owner != euid && owner != 0 {
        return Err(SecretFileError::ForeignOwner {
            path: shown(),
            owner,
            euid,
        });
    }
    let mode = meta.permissions().mode() & 0o777;
    match exposure(mode) {
        Some(exposure) => Err(SecretFileError::Exposed {
            path: shown(),
            mode,
            exposure,
        }),
        None => Ok(file),
    }
}

/// Checks that `path` can be opened, belongs to Padlock's user or root, and is neither group- nor
/// world-writable nor world-readable.
///
/// # Errors
/// [`SecretFileError::Unreadable`] when it cannot be opened, [`SecretFileError::ForeignOwner`]
/// when another user owns it, [`SecretFileError::Exposed`] when its mode lets others read or
/// change it.
pub fn check_secret_file(path: &Path) -> Result<(), SecretFileError> {
    open_secret(path).map(drop)
}

/// Reads a secret file as UTF-8 text after the checks of [`check_secret_file`].
///
/// # Errors
/// As [`check_secret_file`]; also [`SecretFileError::Unreadable`] when the content is not UTF-8.
pub fn read_secret_file(path: &Path) -> Result<Zeroizing<String>, SecretFileError> {
    let mut file = open_secret(path)?;
    let mut text = Zeroizing::new(String::new());
    file.read_to_string(&mut text)
        .map_err(|source| SecretFileError::Unreadable {
            path: path.display().to_string(),
            source,
        })?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with_mode(dir: &Path, mode: u32) -> std::path::PathBuf {
        let path = dir.join(format!("secret-{mode:o}"));
        std::fs::write(&path, "s3cret\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    /// A secret file another (non-root) user owns is refused whatever its mode: its owner could
    /// rewrite it. (Giving a file away needs root, as the test suite runs here.)
    #[test]
    fn secret_files_owned_by_another_user_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = file_with_mode(dir.path(), 0o600);
        let me = rustix::process::geteuid().as_raw();
        let other = if me == 4242 { 4243 } else { 4242 };
        std::os::unix::fs::chown(&path, Some(other), None).expect("the suite runs as root");
        let err = read_secret_file(&path).unwrap_err().to_string();
        assert!(err.contains(&format!("owned by uid {other}")), "{err}");
        std::os::unix::fs::chown(&path, Some(me), None).unwrap();
        assert!(read_secret_file(&path).is_ok());
    }

    /// DESIGN.md §9.7: secrets read from files are not group- or world-writable, not
    /// world-readable; group-readable (`root:padlock 0640`) is accepted.
    #[test]
    fn secret_files_open_to_others_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for (mode, problem) in [
            (0o644, Some("world-readable")),
            (0o664, Some("world-readable, group-writable")),
            (0o620, Some("group-writable")),
            (0o602, Some("world-writable")),
            (0o640, None),
            (0o600, None),
            (0o400, None),
        ] {
            let path = file_with_mode(dir.path(), mode);
            match (read_secret_file(&path), problem) {
                (Ok(text), None) => assert_eq!(text.as_str(), "s3cret\n"),
                (
                    Err(SecretFileError::Exposed {
                        mode: m, exposure, ..
                    }),
                    Some(p),
                ) => {
                    assert_eq!((m, exposure.as_str()), (mode, p));
                    let message = check_secret_file(&path).unwrap_err().to_string();
                    assert!(
                        message.contains(&format!("(mode {mode:04o})"))
                            && message.contains(&format!("chmod 600 {}", path.display())),
                        "{message}"
                    );
                }
                (other, _) => panic!("mode {mode:o}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_link_is_judged_by_its_target_and_a_missing_file_is_unreadable() {
        let dir = tempfile::tempdir().unwrap();
        let target = file_with_mode(dir.path(), 0o644);
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(matches!(
            check_secret_file(&link),
            Err(SecretFileError::Exposed { mode: 0o644, .. })
        ));
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
        check_secret_file(&link).unwrap();
        assert!(matches!(
            check_secret_file(&dir.path().join("absent")),
            Err(SecretFileError::Unreadable { .. })
        ));
    }
}
