//! The data directory is private to the server's user: the directory is 0700 and every file
//! the server keeps in it (the SQLite database and its `-wal`/`-shm`/`-journal` files, the local
//! signing key) is 0600. Looser bits found at start are tightened and logged, so a data
//! directory made by an older version or a careless `cp` does not stay readable to other users.

use std::fs;
use std::io::{self, ErrorKind};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Mode of the data directory.
pub const DIR_MODE: u32 = 0o700;
/// Mode of every file the server writes there.
pub const FILE_MODE: u32 = 0o600;

/// Suffixes of the files SQLite keeps next to a database.
const SQLITE_COMPANIONS: [&str; 3] = ["-wal", "-shm", "-journal"];

/// Creates `dir` with mode 0700 (its missing parents with the usual mode), or tightens an
/// existing one that others can access.
pub fn prepare(dir: &Path) -> io::Result<()> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent)?;
    }
    match fs::DirBuilder::new().mode(DIR_MODE).create(dir) {
        Ok(()) => {
            // The umask may have removed bits, never added any; set it exactly anyway.
            fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE))?;
            Ok(())
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => tighten(dir, DIR_MODE),
        Err(e) => Err(e),
    }
}

/// Removes group and other bits from `path` (keeping the owner's) if it has any, and logs it.
fn tighten(path: &Path, mode: u32) -> io::Result<()> {
    let meta = fs::metadata(path)?;
    let current = meta.permissions().mode() & 0o7777;
    if current & 0o077 == 0 {
        return Ok(());
    }
    let kind = if meta.is_dir() { "directory" } else { "file" };
    log::warn!(
        "{kind} {} was accessible to other users (mode {current:o}); setting it to {mode:o}",
        path.display()
    );
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

/// Makes sure `path` exists as a file only its owner can read and write: created empty with
/// mode 0600 if missing, tightened if it has group or other bits.
pub fn private_file(path: &Path) -> io::Result<()> {
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => tighten(path, FILE_MODE),
        Err(e) => Err(e),
    }
}

/// Tightens `path` to 0600 if it exists with group or other bits.
pub fn tighten_if_present(path: &Path) -> io::Result<()> {
    match tighten(path, FILE_MODE) {
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Prepares a SQLite database file before SQLite opens it: its directory exists (created 0700
/// when missing), the file exists with mode 0600 (SQLite creates its `-wal`/`-shm`/`-journal`
/// files with the database's mode), and companions left with looser bits are tightened.
pub fn prepare_sqlite(path: &Path) -> io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // An existing directory may be the administrator's (`sqlite:///var/lib/x/db`): only one
        // we create is made private here; the data directory itself is handled by `prepare`.
        if !dir.exists() {
            prepare(dir)?;
        }
    }
    private_file(path)?;
    for suffix in SQLITE_COMPANIONS {
        tighten_if_present(&companion(path, suffix))?;
    }
    Ok(())
}

fn companion(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn scratch() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rn-datadir-{}", uuid::Uuid::new_v4()));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn creates_and_tightens() {
        let root = scratch();
        let dir = root.join("a").join("data");
        prepare(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        prepare(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);

        let db = dir.join("x.db");
        prepare_sqlite(&db).unwrap();
        assert_eq!(mode(&db), 0o600);
        let wal = companion(&db, "-wal");
        fs::write(&wal, b"").unwrap();
        fs::set_permissions(&wal, fs::Permissions::from_mode(0o644)).unwrap();
        fs::set_permissions(&db, fs::Permissions::from_mode(0o664)).unwrap();
        prepare_sqlite(&db).unwrap();
        assert_eq!(mode(&db), 0o600);
        assert_eq!(mode(&wal), 0o600);
        fs::remove_dir_all(&root).unwrap();
    }
}
