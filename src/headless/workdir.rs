//! The kernel's working directory for one run: a fresh private folder under the system's
//! temporary directory, removed when the run ends, however it ends.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// A private temporary folder, removed with everything in it when dropped.
#[derive(Debug)]
pub struct WorkDir(PathBuf);

impl WorkDir {
    /// Creates `reactive-notebook-run-<uuid>` (mode 0700) in the temporary directory.
    pub fn create() -> std::io::Result<WorkDir> {
        let path = std::env::temp_dir().join(format!(
            "reactive-notebook-run-{}",
            uuid::Uuid::new_v4().simple()
        ));
        // `create`, not `create_all`: an existing path (a planted symlink) is an error.
        std::fs::DirBuilder::new().mode(0o700).create(&path)?;
        Ok(WorkDir(path))
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        match std::fs::remove_dir_all(&self.0) {
            Ok(()) => log::debug!("removed {}", self.0.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => log::warn!("could not remove {}: {e}", self.0.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_folder_goes_with_its_contents() {
        let dir = WorkDir::create().expect("temp dir");
        let path = dir.path().to_path_buf();
        std::fs::create_dir(path.join("sub")).expect("sub dir");
        std::fs::write(path.join("sub/file"), b"x").expect("file");
        drop(dir);
        assert!(!path.exists());
    }
}
