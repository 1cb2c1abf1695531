//! A notebook's package layer: `DATA_DIR/packages/<notebook id>/`, a pip `--prefix` the
//! notebook's installer writes and its kernel reads (on `PYTHONPATH`, mounted read-only).

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use tokio::process::Command;

/// Records which requirement each installed package was installed as.
const MANIFEST: &str = "installed.json";

/// Asks an interpreter where pip puts packages under a prefix (the same scheme pip uses).
const SITE_DIRS_SCRIPT: &str = r#"
import json, sys, sysconfig
prefix = sys.argv[1]
try:
    scheme = sysconfig.get_preferred_scheme("prefix")
except AttributeError:
    scheme = "posix_prefix"
names = {"base": prefix, "platbase": prefix, "installed_base": prefix, "installed_platbase": prefix}
print(json.dumps(sorted({sysconfig.get_path(k, scheme, names) for k in ("purelib", "platlib")})))
"#;

/// Site-packages directories relative to a layer's root, by interpreter.
type SiteDirsCache = HashMap<String, Vec<PathBuf>>;

/// A prefix no layer has, to read the site-packages layout relative to any prefix.
const PROBE_PREFIX: &str = "/reactive-notebook-layer-probe";

/// Asks `python` where packages land under a prefix, relative to it.
async fn relative_site_dirs(python: &str) -> Result<Vec<PathBuf>, String> {
    let out = Command::new(python)
        .arg("-I")
        .arg("-c")
        .arg(SITE_DIRS_SCRIPT)
        .arg(PROBE_PREFIX)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("cannot run {python}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{python} cannot name its site-packages: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let dirs: Vec<PathBuf> = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("{python} answered the site-packages query oddly: {e}"))?;
    dirs.iter()
        .map(|d| {
            d.strip_prefix(PROBE_PREFIX)
                .map(Path::to_path_buf)
                .ok()
                .filter(|r| r.is_relative() && !r.as_os_str().is_empty())
                .ok_or_else(|| {
                    format!("{python} puts packages outside the prefix: {}", d.display())
                })
        })
        .collect()
}

/// One notebook's layer.
#[derive(Debug, Clone)]
pub struct Layer {
    /// The prefix directory.
    pub root: PathBuf,
}

impl Layer {
    /// The layer of `notebook_id` under `data_dir`.
    pub fn for_notebook(data_dir: &Path, notebook_id: &str) -> Layer {
        // Ids are server-made UUIDs; anything else must not name another path.
        let safe: String = notebook_id
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        Layer {
            root: data_dir.join("packages").join(safe),
        }
    }

    /// Where packages land inside the layer for `python` (its site-packages directories).
    pub async fn site_dirs(&self, python: &str) -> Result<Vec<PathBuf>, String> {
        // The directories relative to the prefix depend on the interpreter only, so Python is
        // asked once per interpreter, not once per notebook (a kernel start waits for it).
        static CACHE: OnceLock<Mutex<SiteDirsCache>> = OnceLock::new();
        let cache = CACHE.get_or_init(Mutex::default);
        let found = cache.lock().ok().and_then(|c| c.get(python).cloned());
        let relative = match found {
            Some(relative) => relative,
            None => {
                let relative = relative_site_dirs(python).await?;
                if let Ok(mut c) = cache.lock() {
                    c.insert(python.to_string(), relative.clone());
                }
                relative
            }
        };
        Ok(relative.iter().map(|r| self.root.join(r)).collect())
    }

    /// Creates the layer and its (empty) site-packages so a kernel can mount and import from it
    /// before anything is installed; readable by kernels, writable by the server only.
    /// An install may be running meanwhile (the layer then belongs to the installer's uid):
    /// an existing layer is left as it is.
    pub fn ensure(&self, site_dirs: &[PathBuf]) -> std::io::Result<()> {
        if self.root.is_dir() && site_dirs.iter().all(|d| d.is_dir()) {
            return Ok(());
        }
        for dir in site_dirs {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::create_dir_all(&self.root)?;
        self.release()
    }

    /// After an install (which ran as another uid): everything back to the server's uid, read-
    /// and traversable by every kernel uid, writable by none.
    pub fn release(&self) -> std::io::Result<()> {
        // SAFETY: getuid/getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        release_tree(&self.root, uid, gid)
    }

    /// The file recording what is installed (its change tells kernels to look again).
    pub fn manifest(&self) -> PathBuf {
        self.root.join(MANIFEST)
    }

    /// Requirements installed so far, by name.
    pub fn installed(&self) -> BTreeMap<String, String> {
        std::fs::read(self.root.join(MANIFEST))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    /// Records `name` as installed from `requirement` (or forgets it with `None`).
    pub fn record(&self, name: &str, requirement: Option<&str>) -> std::io::Result<()> {
        let mut installed = self.installed();
        match requirement {
            Some(req) => installed.insert(name.to_string(), req.to_string()),
            None => installed.remove(name),
        };
        let text = serde_json::to_vec_pretty(&installed).map_err(std::io::Error::other)?;
        let tmp = self.root.join(format!("{MANIFEST}.tmp"));
        std::fs::write(&tmp, text)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))?;
        std::fs::rename(tmp, self.root.join(MANIFEST))
    }

    /// Deletes the layer (its notebook is gone).
    pub fn remove(&self) -> std::io::Result<()> {
        match std::fs::remove_dir_all(&self.root) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

fn release_tree(path: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() {
        return std::os::unix::fs::lchown(path, Some(uid), Some(gid));
    }
    use std::os::unix::fs::MetadataExt;
    if meta.uid() != uid {
        std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
    }
    let mode = if meta.is_dir() {
        0o755
    } else {
        // Keep the execute bits pip set; readable by all, writable by the owner only.
        (meta.mode() & 0o755) | 0o644
    };
    if meta.mode() & 0o7777 != mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    if meta.is_dir() {
        for entry in std::fs::read_dir(path)? {
            release_tree(&entry?.path(), uid, gid)?;
        }
    }
    Ok(())
}
