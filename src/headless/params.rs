//! `--param NAME=VALUE`: papermill-style overrides of top-level names.
//!
//! The value never becomes code. It travels base64-encoded inside a fixed assignment and the
//! kernel reads it with `ast.literal_eval`, which builds literals only (numbers, strings,
//! bytes, tuples, lists, dicts, sets, booleans, `None`) and never calls anything. A value that
//! is not a literal is taken as the string itself, so `-p name=alice` needs no shell quoting
//! of Python quotes. The name must be one a cell defines (checked against the analysis), so it
//! is an identifier and cannot carry code either.

use std::collections::BTreeSet;

use base64::Engine as _;

use crate::notebook::cell::validate_result_name;

/// Most defined names listed in an "unknown name" message.
const LISTED_NAMES: usize = 20;

/// One `--param` override.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// The top-level name it sets.
    pub name: String,
    /// The value as given on the command line.
    pub value: String,
}

/// A `--param` that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    /// Not of the form NAME=VALUE.
    #[error("--param {0:?}: expected NAME=VALUE")]
    Syntax(String),
    /// The name is not a Python identifier.
    #[error("--param {0:?}: the name is not a Python identifier")]
    BadName(String),
    /// No cell defines the name.
    #[error("--param {name}: no cell defines a top-level name {name:?} ({known})")]
    Unknown {
        /// The name asked for.
        name: String,
        /// The names cells do define, for the message.
        known: String,
    },
    /// The same name was given twice.
    #[error("--param {0} is given more than once")]
    Duplicate(String),
}

/// Parses every `--param` and checks each names something a cell defines.
pub fn parse_all(args: &[String], defined: &BTreeSet<String>) -> Result<Vec<Param>, ParamError> {
    let mut params: Vec<Param> = Vec::with_capacity(args.len());
    for arg in args {
        let param = parse(arg)?;
        if params.iter().any(|p| p.name == param.name) {
            return Err(ParamError::Duplicate(param.name));
        }
        if !defined.contains(&param.name) {
            return Err(ParamError::Unknown {
                known: known_names(defined),
                name: param.name,
            });
        }
        params.push(param);
    }
    Ok(params)
}

/// `NAME=VALUE`, split at the first `=`; the value may be empty or contain `=`.
pub fn parse(arg: &str) -> Result<Param, ParamError> {
    let (name, value) = arg
        .split_once('=')
        .ok_or_else(|| ParamError::Syntax(arg.to_string()))?;
    let name = name.trim();
    if name.is_empty() {
        return Err(ParamError::Syntax(arg.to_string()));
    }
    if validate_result_name(name).is_err() {
        return Err(ParamError::BadName(name.to_string()));
    }
    Ok(Param {
        name: name.to_string(),
        value: value.to_string(),
    })
}

fn known_names(defined: &BTreeSet<String>) -> String {
    if defined.is_empty() {
        return "the notebook defines no top-level names".into();
    }
    let mut listed: Vec<&str> = defined
        .iter()
        .take(LISTED_NAMES)
        .map(String::as_str)
        .collect();
    if defined.len() > LISTED_NAMES {
        listed.push("...");
    }
    format!("defined names: {}", listed.join(", "))
}

impl Param {
    /// The Python statement that sets the name: only the identifier and base64 text are
    /// spliced in, and the helper names are private (`_`), so the analysis never sees them.
    pub fn code(&self) -> String {
        let encoded = base64::engine::general_purpose::STANDARD.encode(self.value.as_bytes());
        format!(
            "import ast as _rn_ast, base64 as _rn_base64\n\
             _rn_text = _rn_base64.b64decode(\"{encoded}\").decode(\"utf-8\")\n\
             try:\n    {name} = _rn_ast.literal_eval(_rn_text)\n\
             except Exception:\n    {name} = _rn_text\n\
             del _rn_ast, _rn_base64, _rn_text\n",
            name = self.name
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defined(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn splits_at_the_first_equals_sign() {
        let p = parse("q= a=b ").expect("param");
        assert_eq!((p.name.as_str(), p.value.as_str()), ("q", " a=b "));
        assert_eq!(parse("x=").expect("empty value").value, "");
    }

    #[test]
    fn refuses_malformed_and_unknown_names() {
        assert!(matches!(parse("x"), Err(ParamError::Syntax(_))));
        assert!(matches!(parse("=1"), Err(ParamError::Syntax(_))));
        assert!(matches!(parse("a.b=1"), Err(ParamError::BadName(_))));
        assert!(matches!(parse("class=1"), Err(ParamError::BadName(_))));
        let names = defined(&["n", "rate"]);
        let err = parse_all(&["m=1".into()], &names).expect_err("unknown");
        assert!(err.to_string().contains("defined names: n, rate"), "{err}");
        let twice = parse_all(&["n=1".into(), "n=2".into()], &names);
        assert!(matches!(twice, Err(ParamError::Duplicate(_))));
    }

    #[test]
    fn the_value_reaches_the_code_only_as_base64() {
        let p = Param {
            name: "n".into(),
            value: "__import__('os').system('echo hi')\"\n".into(),
        };
        let code = p.code();
        assert!(!code.contains("__import__"), "{code}");
        assert!(!code.contains("system"), "{code}");
        assert!(
            code.contains("    n = _rn_ast.literal_eval(_rn_text)"),
            "{code}"
        );
    }
}
