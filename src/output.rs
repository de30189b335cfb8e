//! Files and folders genarm writes for the user. Three promises:
//! - checked before the work that fills them ([`check_file_target`]): a sweep of an hour does
//!   not end in "no such folder";
//! - whole or not at all: written under a temporary name in the same folder, then renamed;
//! - with the modes any other program would give them (0666 / 0777 less the umask, or the
//!   mode of the file being replaced), not the private 0600 / 0700 of temporary files.
//!
//! Errors name the path the user gave, never the temporary one.

use std::fs::Permissions;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The process's umask, read once from /proc (reading it with umask(2) would briefly change
/// it for every thread); 022 where /proc does not say.
fn umask() -> u32 {
    static UMASK: OnceLock<u32> = OnceLock::new();
    *UMASK.get_or_init(|| {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix("Umask:"))
                    .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
            })
            .unwrap_or(0o022)
    })
}

/// The mode a new file gets from an ordinary `open(O_CREAT, 0666)`.
pub fn new_file_mode() -> u32 {
    0o666 & !umask()
}

/// The mode a new folder gets from an ordinary `mkdir(0777)`.
pub fn new_dir_mode() -> u32 {
    0o777 & !umask()
}

/// The folder `path` goes into ("." for a bare file name).
pub fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Before long work: can a file be written at `path`? Its folder must exist and take a new
/// file (tried for real, then removed), and `path` must not be a folder. The message names
/// `flag` and the path.
pub fn check_file_target(path: &Path, flag: &str) -> anyhow::Result<()> {
    let shown = path.display();
    if path.is_dir() {
        anyhow::bail!("{flag} {shown}: is a folder, not a file");
    }
    let dir = parent_of(path);
    if !dir.is_dir() {
        anyhow::bail!(
            "{flag} {shown}: the folder {} does not exist",
            dir.display()
        );
    }
    let probe = tempfile::Builder::new()
        .prefix(".genarm-check-")
        .tempfile_in(&dir);
    match probe {
        Ok(probe) => {
            let _ = probe.close();
            Ok(())
        }
        Err(e) => anyhow::bail!("{flag} {shown}: cannot write into {}: {e}", dir.display()),
    }
}

/// Write `bytes` to `path` whole or not at all. A replaced file keeps its mode; a new one gets
/// [`new_file_mode`]. The error is the bare io error (the caller names the path: no temporary
/// name ever shows).
pub fn write_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let Some(name) = path.file_name() else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a file name",
        ));
    };
    let temp = path.with_file_name(format!(
        ".{}.genarm-{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let mode = std::fs::metadata(path)
        .map_or_else(|_| new_file_mode(), |m| m.permissions().mode() & 0o7777);
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&temp)?;
        file.write_all(bytes)?;
        // open() applies the umask; a replaced file's mode is kept exactly.
        file.set_permissions(Permissions::from_mode(mode))?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

/// Give a temporary file the mode of a new file, before it is renamed into place.
pub fn set_new_file_mode(file: &std::fs::File) -> std::io::Result<()> {
    file.set_permissions(Permissions::from_mode(new_file_mode()))
}

/// Give a staged folder (made by `tempfile`, 0700) and everything in it the modes of new
/// folders and files, before it is renamed into place.
pub fn publish_tree(dir: &Path) -> std::io::Result<()> {
    std::fs::set_permissions(dir, Permissions::from_mode(new_dir_mode()))?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            publish_tree(&path)?;
        } else {
            std::fs::set_permissions(&path, Permissions::from_mode(new_file_mode()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn new_files_get_the_usual_mode_and_replaced_files_keep_theirs() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("a.csv");
        write_file(&fresh, b"x").unwrap();
        assert_eq!(std::fs::read(&fresh).unwrap(), b"x");
        // What `touch` would have made here, independently of our umask reading.
        let touched = dir.path().join("touched");
        std::fs::File::create(&touched).unwrap();
        assert_eq!(mode(&fresh), mode(&touched));
        std::fs::set_permissions(&fresh, Permissions::from_mode(0o640)).unwrap();
        write_file(&fresh, b"y").unwrap();
        assert_eq!(mode(&fresh), 0o640);
        assert_eq!(std::fs::read(&fresh).unwrap(), b"y");
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn targets_are_checked_before_the_work() {
        let dir = tempfile::tempdir().unwrap();
        let ok = dir.path().join("out.csv");
        check_file_target(&ok, "--out").unwrap();
        assert!(!ok.exists(), "the check leaves nothing behind");
        let missing = dir.path().join("nope/out.csv");
        let e = check_file_target(&missing, "--out")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("--out ") && e.contains("does not exist"),
            "{e}"
        );
        let e = check_file_target(dir.path(), "--out")
            .unwrap_err()
            .to_string();
        assert!(e.contains("is a folder"), "{e}");
    }

    #[test]
    fn errors_never_name_the_temporary_file() {
        let e = write_file(Path::new("/nonexistent-genarm/x.csv"), b"x").unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
        assert!(!e.to_string().contains(".genarm-"), "{e}");
    }

    #[test]
    fn a_published_tree_has_ordinary_modes() {
        let root = tempfile::tempdir().unwrap();
        let staged = tempfile::Builder::new().tempdir_in(root.path()).unwrap();
        std::fs::create_dir(staged.path().join("sub")).unwrap();
        let file = staged.path().join("sub/w.safetensors");
        std::fs::write(&file, b"w").unwrap();
        std::fs::set_permissions(&file, Permissions::from_mode(0o600)).unwrap();
        publish_tree(staged.path()).unwrap();
        let plain_dir = root.path().join("plain");
        std::fs::create_dir(&plain_dir).unwrap();
        assert_eq!(mode(staged.path()), mode(&plain_dir));
        assert_eq!(mode(&file), new_file_mode());
    }
}
