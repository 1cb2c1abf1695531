//! Tiny pure-Python wheels built on the spot, for offline package installs in tests.

use std::path::Path;

/// Writes a wheel of distribution `dist` 1.0 holding module `module` (with `VALUE = 42`)
/// into `dir`, using the test interpreter's zipfile.
pub fn build_probe_wheel(dir: &Path, dist: &str, module: &str) {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let script = r#"
import sys, zipfile
folder, dist, module = sys.argv[1:4]
stem = dist.replace("-", "_")
info = f"{stem}-1.0.dist-info"
files = {
    f"{module}/__init__.py": "VALUE = 42\n",
    f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n",
    f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
files[f"{info}/RECORD"] = "".join(f"{name},,\n" for name in files) + f"{info}/RECORD,,\n"
with zipfile.ZipFile(f"{folder}/{stem}-1.0-py3-none-any.whl", "w") as z:
    for name, text in files.items():
        z.writestr(name, text)
"#;
    let status = std::process::Command::new(&python)
        .arg("-c")
        .arg(script)
        .arg(dir)
        .arg(dist)
        .arg(module)
        .status()
        .expect("run python to build the test wheel");
    assert!(status.success(), "building the test wheel failed");
}
