//! One serving instance per SQLite file. SQLite has no way to tell two servers apart, and two
//! rooms for one notebook in two processes would each believe they are its only writer, so a
//! second `serve` on the same file refuses to start instead of silently losing edits.
//!
//! The lock is an exclusive `flock` on the database file itself: it follows the file (not the
//! path it was named by), is released by the kernel when the process dies however it dies, and
//! does not interact with SQLite's own POSIX record locks.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum InstanceLockError {
    /// Another process holds it.
    #[error(
        "another reactive-notebook instance{holder} is already serving the SQLite database {path}; \
         SQLite supports one instance per file: stop the other one, use another DATA_DIR, or use \
         PostgreSQL (DATABASE_URL=postgres://...) for several instances"
    )]
    Held {
        /// The database file.
        path: String,
        /// " (pid N)" when the holder wrote its pid, else empty.
        holder: String,
    },
    /// The file could not be opened or locked.
    #[error("cannot lock the SQLite database {path}: {source}")]
    Io {
        /// The database file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Held for as long as the server serves; dropping it releases the file.
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
    path: PathBuf,
}

impl InstanceLock {
    /// Takes the lock on the SQLite database at `path` (which must exist), or says who has it.
    pub fn acquire(path: &Path) -> Result<InstanceLock, InstanceLockError> {
        let io = |source| InstanceLockError::Io {
            path: path.display().to_string(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(InstanceLockError::Held {
                    path: path.display().to_string(),
                    holder: holder_of(path)
                        .map(|pid| format!(" (pid {pid})"))
                        .unwrap_or_default(),
                })
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        // The pid goes in a side file: the database file itself belongs to SQLite.
        if let Err(e) = write_pid(&pid_file(path)) {
            log::debug!("could not record the pid next to {}: {e}", path.display());
        }
        log::info!("holding the instance lock on {}", path.display());
        Ok(InstanceLock {
            _file: file,
            path: path.to_path_buf(),
        })
    }
}

impl Drop for InstanceLock {
    fn drop(&mut self) {
        // The flock goes with the file handle; the pid note would only mislead the next reader.
        let _ = std::fs::remove_file(pid_file(&self.path));
    }
}

fn pid_file(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".pid");
    PathBuf::from(name)
}

fn write_pid(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(crate::data_dir::FILE_MODE)
        .open(path)?;
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    writeln!(file, "{}", std::process::id())
}

fn holder_of(path: &Path) -> Option<u32> {
    let mut text = String::new();
    File::open(pid_file(path))
        .ok()?
        .take(32)
        .read_to_string(&mut text)
        .ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_file_is_refused_until_the_first_is_dropped() {
        let dir = std::env::temp_dir().join(format!("rn-lock-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("notebooks.db");
        std::fs::write(&db, b"").unwrap();
        let first = InstanceLock::acquire(&db).unwrap();
        let err = InstanceLock::acquire(&db).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, InstanceLockError::Held { .. }), "{text}");
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        drop(first);
        let again = InstanceLock::acquire(&db);
        assert!(again.is_ok(), "{again:?}");
        drop(again);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
