//! Owns migrator's local files: `.migrator/` and its subdirectories are 0700, the files in
//! them 0600, and none is ever opened through a symbolic link (someone else's link must not
//! redirect the journal or a block record).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Creates `dir` (and parents) as 0700; an existing directory is narrowed to 0700.
///
/// # Errors
/// It cannot be created, or is a symbolic link.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    if dir.as_os_str().is_empty() {
        return Ok(());
    }
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_symlink() => {
            return Err(io::Error::other(format!(
                "{} is a symbolic link; migrator keeps its files only in a real directory",
                dir.display()
            )))
        }
        Ok(m) if m.is_dir() => {
            if m.permissions().mode() & 0o077 != 0 {
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
            }
            return Ok(());
        }
        _ => {}
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

fn options() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
    o
}

/// Opens `path` for appending (creating it 0600), never through a symbolic link.
///
/// # Errors
/// It cannot be opened, or is a symbolic link.
pub fn append_private(path: &Path) -> io::Result<File> {
    options().create(true).append(true).open(path)
}

/// Opens `path` for reading and writing (creating it 0600), never through a symbolic link.
///
/// # Errors
/// It cannot be opened, or is a symbolic link.
pub fn open_private(path: &Path) -> io::Result<File> {
    options()
        .create(true)
        .read(true)
        .write(true)
        .truncate(false)
        .open(path)
}

/// Creates or truncates `path` (0600), never through a symbolic link.
///
/// # Errors
/// It cannot be created, or is a symbolic link.
pub fn create_private(path: &Path) -> io::Result<File> {
    options().create(true).write(true).truncate(true).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_private_and_links_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mine = dir.path().join(".migrator");
        private_dir(&mine).unwrap();
        let mode = std::fs::metadata(&mine).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let file = mine.join("journal.jsonl");
        drop(append_private(&file).unwrap());
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let link = mine.join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert!(append_private(&link).is_err(), "a link is not followed");
        assert!(create_private(&link).is_err());
        let dir_link = dir.path().join("elsewhere");
        std::os::unix::fs::symlink(&mine, &dir_link).unwrap();
        assert!(private_dir(&dir_link).is_err());
    }
}
