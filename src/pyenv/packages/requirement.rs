//! What a notebook may ask to install: a PEP 508 distribution name with an optional PEP 440
//! version specifier. Nothing else reaches pip's command line: no URLs, paths or options.

use std::str::FromStr;

use pep508_rs::pep440_rs::{Version, VersionSpecifiers};
use pep508_rs::PackageName;

/// Longest name or version text accepted.
const MAX_LEN: usize = 200;

/// Why a requested package was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RequirementError {
    /// The name is not a PEP 508 distribution name.
    #[error("'{0}' is not a package name: use a PEP 508 name such as 'scikit-learn' (no URLs, paths or pip options)")]
    Name(String),
    /// The version is not a PEP 440 version or specifier list.
    #[error("'{0}' is not a version: use a PEP 440 version or specifiers such as '1.2.0', '==1.2.0' or '>=1.2,<2'")]
    Version(String),
}

/// A validated request: normalized name and optional specifiers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// The normalized name (PEP 503: lowercase, runs of `-_.` as `-`).
    pub name: String,
    /// The version specifiers, e.g. `==1.2.0` (a bare version means `==`).
    pub version: Option<String>,
}

impl Requirement {
    /// Validates a request's `name` and `version`.
    pub fn parse(name: &str, version: Option<&str>) -> Result<Requirement, RequirementError> {
        let name_text = name.trim();
        if name_text.len() > MAX_LEN {
            return Err(RequirementError::Name(shorten(name_text)));
        }
        // The name grammar wants a letter or digit first and last; the parser lets "" pass.
        let edges_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
        if !edges_ok(name_text.chars().next()) || !edges_ok(name_text.chars().last()) {
            return Err(RequirementError::Name(name_text.to_string()));
        }
        let name = PackageName::from_str(name_text)
            .map_err(|_| RequirementError::Name(name_text.to_string()))?;
        let version = match version.map(str::trim).filter(|v| !v.is_empty()) {
            None => None,
            Some(v) if v.len() > MAX_LEN => return Err(RequirementError::Version(shorten(v))),
            Some(v) => Some(parse_version(v)?),
        };
        Ok(Requirement {
            name: name.to_string(),
            version,
        })
    }

    /// The single argument handed to pip, e.g. `pandas==2.3.3`.
    pub fn pip_arg(&self) -> String {
        format!("{}{}", self.name, self.version.as_deref().unwrap_or(""))
    }
}

/// The start of an overlong input, for the error message.
fn shorten(text: &str) -> String {
    let start: String = text.chars().take(40).collect();
    format!("{start}…")
}

fn parse_version(text: &str) -> Result<String, RequirementError> {
    let refused = || RequirementError::Version(text.to_string());
    // pip would read a leading '-' as an option, whatever the parser thinks of it.
    if text.starts_with('-') {
        return Err(refused());
    }
    if let Ok(version) = Version::from_str(text) {
        return Ok(format!("=={version}"));
    }
    let specifiers = VersionSpecifiers::from_str(text).map_err(|_| refused())?;
    if specifiers.is_empty() {
        return Err(refused());
    }
    Ok(specifiers.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_names_and_specifiers() {
        let r = Requirement::parse("Scikit_Learn", None).unwrap();
        assert_eq!(r.name, "scikit-learn");
        assert_eq!(r.pip_arg(), "scikit-learn");
        let r = Requirement::parse("requests", Some("2.31.0")).unwrap();
        assert_eq!(r.pip_arg(), "requests==2.31.0");
        let r = Requirement::parse("numpy", Some(">=1.2, <3")).unwrap();
        assert_eq!(r.version.as_deref(), Some(">=1.2, <3"));
    }

    #[test]
    fn refuses_everything_else() {
        for name in [
            "",
            "https://evil.example/x.whl",
            "./local",
            "/tmp/pkg",
            "--index-url=https://x",
            "-r",
            "requests; os_name == 'posix'",
            "pkg @ https://x",
            "a b",
            "name\n--pre",
        ] {
            assert!(Requirement::parse(name, None).is_err(), "{name:?}");
        }
        for version in ["latest", "-r req.txt", "==1.0 --index-url x", "@ https://x"] {
            assert!(
                Requirement::parse("requests", Some(version)).is_err(),
                "{version:?}"
            );
        }
    }
}
