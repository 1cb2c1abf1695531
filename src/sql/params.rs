//! Converting Python values (as JSON from the kernel) into bound SQL parameters.
//!
//! The server reports each parameter's type when the statement is prepared; every value is
//! converted to that type here, so a value is always sent as data and never spliced into SQL.
//!
//! Integers, floats and booleans are sent in PostgreSQL's binary format. Every other type
//! (numeric, date, timestamp, uuid, json, text, enums, intervals, ...) is sent in PostgreSQL's
//! *text* format (`ToSql::encode_format`), after being validated and normalised here, and the
//! server's own input function parses it. This keeps NUMERIC exact without a decimal crate and
//! lets any type with a text form accept a Python `str`.

use std::error::Error;
use std::fmt::Write as _;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime};
use serde_json::Value;
// `to_sql` must name the buffer type; this is the re-export the `to_sql_checked!` macro uses.
use tokio_postgres::types::private::BytesMut;
use tokio_postgres::types::{to_sql_checked, Format, IsNull, Kind, ToSql, Type};

/// A parameter value ready to be bound for a parameter of a known type.
#[derive(Debug, Clone, PartialEq)]
pub enum PgParam {
    /// SQL NULL.
    Null,
    /// `bool`, binary.
    Bool(bool),
    /// `int2`, binary.
    Int2(i16),
    /// `int4`, binary.
    Int4(i32),
    /// `int8`, binary.
    Int8(i64),
    /// `oid`, binary.
    Oid(u32),
    /// `float4`, binary.
    Float4(f32),
    /// `float8`, binary.
    Float8(f64),
    /// Raw bytes (`bytea`), binary.
    Bytes(Vec<u8>),
    /// Any other type, sent in PostgreSQL's text format and parsed by the server.
    Literal(String),
}

impl ToSql for PgParam {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        match self {
            PgParam::Null => return Ok(IsNull::Yes),
            PgParam::Bool(v) => out.extend_from_slice(&[u8::from(*v)]),
            PgParam::Int2(v) => out.extend_from_slice(&v.to_be_bytes()),
            PgParam::Int4(v) => out.extend_from_slice(&v.to_be_bytes()),
            PgParam::Int8(v) => out.extend_from_slice(&v.to_be_bytes()),
            PgParam::Oid(v) => out.extend_from_slice(&v.to_be_bytes()),
            PgParam::Float4(v) => out.extend_from_slice(&v.to_be_bytes()),
            PgParam::Float8(v) => out.extend_from_slice(&v.to_be_bytes()),
            PgParam::Bytes(v) => out.extend_from_slice(v),
            PgParam::Literal(v) => out.extend_from_slice(v.as_bytes()),
        }
        Ok(IsNull::No)
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    fn encode_format(&self, _ty: &Type) -> Format {
        match self {
            PgParam::Literal(_) => Format::Text,
            _ => Format::Binary,
        }
    }

    to_sql_checked!();
}

/// A Python value as sent by the kernel.
#[derive(Debug, Clone, PartialEq)]
enum PyValue {
    None,
    Bool(bool),
    /// An int, kept as its decimal text (Python ints are unbounded).
    Int(String),
    Float(f64),
    Str(String),
    Date(String),
    DateTime(String),
    Time(String),
    Decimal(String),
    /// Structured data the kernel sent as JSON (e.g. a dict or list).
    Json(Value),
    Unsupported(String),
}

impl PyValue {
    fn from_json(v: &Value) -> Result<PyValue, String> {
        let tag = v.get("type").and_then(Value::as_str).unwrap_or("");
        let value = v.get("value");
        let text = || -> Result<String, String> {
            match value {
                Some(Value::String(s)) => Ok(s.clone()),
                Some(Value::Number(n)) => Ok(n.to_string()),
                _ => Err(format!("malformed {tag} value from the kernel")),
            }
        };
        Ok(match tag {
            "none" => PyValue::None,
            "bool" => match value {
                Some(Value::Bool(b)) => PyValue::Bool(*b),
                _ => return Err("malformed bool value from the kernel".into()),
            },
            "int" => {
                let s = text()?;
                // Large Python ints may arrive as floats (e.g. 1e+21); keep the integral text.
                match s.parse::<f64>() {
                    _ if is_integer_text(&s) => PyValue::Int(s),
                    Ok(f) if f.is_finite() && f.fract() == 0.0 => PyValue::Int(format!("{f:.0}")),
                    _ => return Err(format!("malformed int value from the kernel: {s}")),
                }
            }
            "float" => match value {
                Some(Value::Number(n)) => match n.as_f64() {
                    Some(f) => PyValue::Float(f),
                    None => return Err("malformed float value from the kernel".into()),
                },
                Some(Value::String(s)) => match parse_float(s) {
                    Some(f) => PyValue::Float(f),
                    None => return Err(format!("malformed float value from the kernel: {s}")),
                },
                _ => return Err("malformed float value from the kernel".into()),
            },
            "str" => PyValue::Str(text()?),
            "date" => PyValue::Date(text()?),
            "datetime" => PyValue::DateTime(text()?),
            "time" => PyValue::Time(text()?),
            "decimal" => PyValue::Decimal(text()?),
            "json" | "dict" | "list" | "tuple" => match value {
                Some(v) => PyValue::Json(v.clone()),
                None => PyValue::Unsupported(tag.to_string()),
            },
            "unsupported" => PyValue::Unsupported(
                v.get("python_type")
                    .and_then(Value::as_str)
                    .unwrap_or("object")
                    .to_string(),
            ),
            "" => return Err("malformed value from the kernel (no type)".into()),
            other => PyValue::Unsupported(other.to_string()),
        })
    }

    /// How the value is named in error messages, e.g. `str 'abc'`.
    fn describe(&self) -> String {
        match self {
            PyValue::None => "None".into(),
            PyValue::Bool(b) => format!("bool {}", if *b { "True" } else { "False" }),
            PyValue::Int(s) => format!("int {s}"),
            PyValue::Float(f) => format!("float {}", py_float(*f)),
            PyValue::Str(s) => format!("str {}", py_repr_str(s)),
            PyValue::Date(s) => format!("date {s}"),
            PyValue::DateTime(s) => format!("datetime {s}"),
            PyValue::Time(s) => format!("time {s}"),
            PyValue::Decimal(s) => format!("Decimal {s}"),
            PyValue::Json(_) => "JSON value".into(),
            PyValue::Unsupported(t) => t.clone(),
        }
    }

    /// The value's Python `str()` form, used for text-like parameters.
    fn text_form(&self) -> Option<String> {
        Some(match self {
            PyValue::Bool(b) => if *b { "True" } else { "False" }.to_string(),
            PyValue::Int(s) | PyValue::Str(s) | PyValue::Decimal(s) => s.clone(),
            PyValue::Float(f) => py_float(*f),
            PyValue::Date(s) | PyValue::Time(s) => s.clone(),
            PyValue::DateTime(s) => s.replacen('T', " ", 1),
            PyValue::Json(v) => v.to_string(),
            PyValue::None | PyValue::Unsupported(_) => return None,
        })
    }
}

/// Converts the kernel's JSON encoding of a Python value into a parameter of type `ty`;
/// the error is a human-readable reason such as `cannot use str 'abc' as integer`.
pub fn convert_value(value: &Value, ty: &Type) -> Result<PgParam, String> {
    let py = PyValue::from_json(value)?;
    if py == PyValue::None {
        return Ok(PgParam::Null);
    }
    if let PyValue::Unsupported(t) = &py {
        return Err(format!(
            "cannot pass a Python {t} as a SQL parameter (supported: int, float, str, bool, None, \
             date, datetime, Decimal)"
        ));
    }
    convert_py(&py, ty)
}

/// The type to declare for a parameter whose type PostgreSQL cannot infer from the query
/// (SQLSTATE 42P18), chosen from the Python value.
pub fn infer_type(value: &Value) -> Type {
    match PyValue::from_json(value) {
        Ok(PyValue::Int(_)) => Type::INT8,
        Ok(PyValue::Float(_)) => Type::FLOAT8,
        Ok(PyValue::Bool(_)) => Type::BOOL,
        Ok(PyValue::Decimal(_)) => Type::NUMERIC,
        Ok(PyValue::Date(_)) => Type::DATE,
        Ok(PyValue::Time(_)) => Type::TIME,
        Ok(PyValue::DateTime(s)) => match parse_datetime(&s) {
            Some(ParsedDateTime::Aware(_)) => Type::TIMESTAMPTZ,
            _ => Type::TIMESTAMP,
        },
        Ok(PyValue::Json(_)) => Type::JSONB,
        _ => Type::TEXT,
    }
}

fn convert_py(py: &PyValue, ty: &Type) -> Result<PgParam, String> {
    let fail = || format!("cannot use {} as {}", py.describe(), type_label(ty));
    match *ty {
        Type::INT2 => int_value(py).ok_or_else(fail).and_then(|i| {
            i16::try_from(i)
                .map(PgParam::Int2)
                .map_err(|_| out_of_range(py, ty))
        }),
        Type::INT4 => int_value(py).ok_or_else(fail).and_then(|i| {
            i32::try_from(i)
                .map(PgParam::Int4)
                .map_err(|_| out_of_range(py, ty))
        }),
        Type::INT8 => int_value(py).ok_or_else(fail).and_then(|i| {
            i64::try_from(i)
                .map(PgParam::Int8)
                .map_err(|_| out_of_range(py, ty))
        }),
        Type::OID => int_value(py).ok_or_else(fail).and_then(|i| {
            u32::try_from(i)
                .map(PgParam::Oid)
                .map_err(|_| out_of_range(py, ty))
        }),
        Type::FLOAT4 => float_value(py)
            .map(|f| PgParam::Float4(f as f32))
            .ok_or_else(fail),
        Type::FLOAT8 => float_value(py).map(PgParam::Float8).ok_or_else(fail),
        Type::NUMERIC => numeric_text(py).map(PgParam::Literal).ok_or_else(fail),
        Type::BOOL => bool_value(py).map(PgParam::Bool).ok_or_else(fail),
        Type::DATE => date_text(py).map(PgParam::Literal).ok_or_else(fail),
        Type::TIMESTAMP => timestamp_text(py, false)
            .map(PgParam::Literal)
            .ok_or_else(fail),
        Type::TIMESTAMPTZ => timestamp_text(py, true)
            .map(PgParam::Literal)
            .ok_or_else(fail),
        Type::TIME => time_text(py).map(PgParam::Literal).ok_or_else(fail),
        Type::UUID => match py {
            PyValue::Str(s) => uuid::Uuid::parse_str(s.trim())
                .map(|u| PgParam::Literal(u.hyphenated().to_string()))
                .map_err(|_| fail()),
            _ => Err(fail()),
        },
        Type::JSON | Type::JSONB => json_text(py).map(PgParam::Literal).ok_or_else(fail),
        Type::BYTEA => match py {
            PyValue::Str(s) => Ok(PgParam::Bytes(s.as_bytes().to_vec())),
            _ => Err(fail()),
        },
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN | Type::CHAR => {
            py.text_form().map(PgParam::Literal).ok_or_else(fail)
        }
        _ => match ty.kind() {
            Kind::Domain(base) => convert_py(py, base),
            // Arrays, intervals, enums, network types, ...: a str in PostgreSQL's text syntax
            // (e.g. '{1,2,3}' or '1 day'), or any scalar's text form, parsed by the server.
            _ => py.text_form().map(PgParam::Literal).ok_or_else(fail),
        },
    }
}

fn out_of_range(py: &PyValue, ty: &Type) -> String {
    format!("{} is out of range for {}", py.describe(), type_label(ty))
}

/// The SQL name used for a type in error messages.
fn type_label(ty: &Type) -> String {
    match *ty {
        Type::INT2 => "smallint".into(),
        Type::INT4 => "integer".into(),
        Type::INT8 => "bigint".into(),
        Type::FLOAT4 => "real".into(),
        Type::FLOAT8 => "double precision".into(),
        Type::BOOL => "boolean".into(),
        Type::TIMESTAMPTZ => "timestamp with time zone".into(),
        Type::TIMESTAMP => "timestamp without time zone".into(),
        Type::VARCHAR => "character varying".into(),
        Type::BPCHAR => "character".into(),
        _ => ty.name().to_string(),
    }
}

/// Python-style `repr` of a string, shortened for error messages.
fn py_repr_str(s: &str) -> String {
    let short: String = s.chars().take(60).collect();
    let ellipsis = if short.len() < s.len() { "..." } else { "" };
    format!(
        "'{}{ellipsis}'",
        short.replace('\\', "\\\\").replace('\'', "\\'")
    )
}

/// Python-style text of a float (`1.0`, `nan`, `inf`).
fn py_float(f: f64) -> String {
    if f.is_nan() {
        "nan".into()
    } else if f.is_infinite() {
        if f > 0.0 { "inf" } else { "-inf" }.into()
    } else if f.fract() == 0.0 && f.abs() < 1e16 {
        format!("{f:.1}")
    } else {
        format!("{f}")
    }
}

fn is_integer_text(s: &str) -> bool {
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

fn parse_float(s: &str) -> Option<f64> {
    match s.trim().to_ascii_lowercase().as_str() {
        "nan" => Some(f64::NAN),
        "inf" | "infinity" | "+inf" | "+infinity" => Some(f64::INFINITY),
        "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
        t => t.parse::<f64>().ok(),
    }
}

/// Whether `s` is a plain decimal number (optional sign, digits, point, exponent).
fn is_decimal_text(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits_ok = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = !(int_part.is_empty() && frac_part.is_empty())
        && digits_ok(int_part)
        && digits_ok(frac_part);
    let exponent_ok = exponent.is_none_or(is_integer_text);
    mantissa_ok && exponent_ok
}

fn int_value(py: &PyValue) -> Option<i128> {
    match py {
        PyValue::Int(s) => s.parse().ok().or(Some(if s.starts_with('-') {
            i128::MIN
        } else {
            i128::MAX
        })),
        PyValue::Float(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e30 => {
            Some(*f as i128)
        }
        PyValue::Decimal(s) | PyValue::Str(s) => {
            let t = s.trim();
            if is_integer_text(t) {
                t.parse().ok().or(Some(if t.starts_with('-') {
                    i128::MIN
                } else {
                    i128::MAX
                }))
            } else if is_decimal_text(t) && matches!(py, PyValue::Decimal(_)) {
                // Decimal('5.00') is an integral value.
                let f: f64 = t.parse().ok()?;
                (f.fract() == 0.0 && f.abs() < 1e30).then_some(f as i128)
            } else {
                None
            }
        }
        _ => None,
    }
}

fn float_value(py: &PyValue) -> Option<f64> {
    match py {
        PyValue::Int(s) => s.parse().ok(),
        PyValue::Float(f) => Some(*f),
        PyValue::Decimal(s) | PyValue::Str(s) => {
            let t = s.trim();
            if is_decimal_text(t) {
                t.parse().ok()
            } else {
                parse_float(t)
            }
        }
        _ => None,
    }
}

fn numeric_text(py: &PyValue) -> Option<String> {
    let special = |f: f64| {
        if f.is_nan() {
            "NaN"
        } else if f > 0.0 {
            "Infinity"
        } else {
            "-Infinity"
        }
        .to_string()
    };
    match py {
        PyValue::Int(s) => Some(s.clone()),
        PyValue::Float(f) if f.is_finite() => Some(format!("{f}")),
        PyValue::Float(f) => Some(special(*f)),
        PyValue::Decimal(s) | PyValue::Str(s) => {
            let t = s.trim();
            if is_decimal_text(t) {
                Some(t.to_string())
            } else {
                match t.to_ascii_lowercase().as_str() {
                    "nan" | "inf" | "infinity" | "+inf" | "+infinity" | "-inf" | "-infinity" => {
                        parse_float(t).map(special)
                    }
                    _ => None,
                }
            }
        }
        _ => None,
    }
}

fn bool_value(py: &PyValue) -> Option<bool> {
    match py {
        PyValue::Bool(b) => Some(*b),
        PyValue::Int(s) if s == "0" || s == "1" => Some(s == "1"),
        PyValue::Str(s) => match s.trim().to_ascii_lowercase().as_str() {
            "t" | "true" | "y" | "yes" | "on" | "1" => Some(true),
            "f" | "false" | "n" | "no" | "off" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn is_infinity_word(s: &str) -> bool {
    matches!(s.to_ascii_lowercase().as_str(), "infinity" | "-infinity")
}

fn parse_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok()
}

/// A datetime with or without a UTC offset.
enum ParsedDateTime {
    Naive(NaiveDateTime),
    Aware(DateTime<FixedOffset>),
}

fn parse_datetime(s: &str) -> Option<ParsedDateTime> {
    let t = s.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Some(ParsedDateTime::Aware(dt));
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M%:z",
    ] {
        if let Ok(dt) = DateTime::parse_from_str(t, fmt) {
            return Some(ParsedDateTime::Aware(dt));
        }
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(t, fmt) {
            return Some(ParsedDateTime::Naive(dt));
        }
    }
    parse_date(t).map(|d| ParsedDateTime::Naive(d.and_time(NaiveTime::MIN)))
}

fn date_text(py: &PyValue) -> Option<String> {
    match py {
        PyValue::Date(s) => parse_date(s).map(|d| d.format("%Y-%m-%d").to_string()),
        PyValue::Str(s) if is_infinity_word(s.trim()) => Some(s.trim().to_string()),
        PyValue::Str(s) | PyValue::DateTime(s) => match parse_datetime(s)? {
            ParsedDateTime::Naive(dt) => Some(dt.date().format("%Y-%m-%d").to_string()),
            ParsedDateTime::Aware(dt) => Some(dt.date_naive().format("%Y-%m-%d").to_string()),
        },
        _ => None,
    }
}

/// Timestamps are sent as text. An aware datetime keeps its offset for `timestamptz`; for a
/// plain `timestamp` it is converted to UTC (the session time zone) first. A naive datetime
/// for `timestamptz` is read in the session time zone, which the runner sets to UTC.
fn timestamp_text(py: &PyValue, with_tz: bool) -> Option<String> {
    const FMT: &str = "%Y-%m-%d %H:%M:%S%.f";
    match py {
        PyValue::Str(s) if is_infinity_word(s.trim()) => Some(s.trim().to_string()),
        PyValue::Str(s) | PyValue::DateTime(s) | PyValue::Date(s) => match parse_datetime(s)? {
            ParsedDateTime::Naive(dt) => Some(dt.format(FMT).to_string()),
            ParsedDateTime::Aware(dt) if with_tz => {
                Some(dt.format("%Y-%m-%d %H:%M:%S%.f%:z").to_string())
            }
            ParsedDateTime::Aware(dt) => Some(dt.naive_utc().format(FMT).to_string()),
        },
        _ => None,
    }
}

fn time_text(py: &PyValue) -> Option<String> {
    match py {
        PyValue::Time(s) | PyValue::Str(s) => {
            let t = s.trim();
            ["%H:%M:%S%.f", "%H:%M"]
                .iter()
                .any(|f| NaiveTime::parse_from_str(t, f).is_ok())
                .then(|| t.to_string())
        }
        _ => None,
    }
}

/// JSON text for a `json`/`jsonb` parameter. A `str` holding valid JSON (e.g. from
/// `json.dumps`) is used as that JSON document; any other `str` becomes a JSON string.
fn json_text(py: &PyValue) -> Option<String> {
    Some(match py {
        PyValue::Str(s) => match serde_json::from_str::<Value>(s) {
            Ok(_) => s.clone(),
            Err(_) => Value::String(s.clone()).to_string(),
        },
        PyValue::Json(v) => v.to_string(),
        PyValue::Bool(b) => b.to_string(),
        PyValue::Int(s) => s.clone(),
        PyValue::Float(f) if f.is_finite() => serde_json::Number::from_f64(*f)?.to_string(),
        PyValue::Decimal(s) if is_decimal_text(s.trim()) => {
            let t = s.trim().trim_start_matches('+');
            // JSON numbers need a digit before and after the point.
            let mut out = String::new();
            let (sign, rest) = t.strip_prefix('-').map_or(("", t), |r| ("-", r));
            let rest = if rest.starts_with('.') {
                format!("0{rest}")
            } else {
                rest.to_string()
            };
            let rest = rest.replace(".e", ".0e").replace(".E", ".0E");
            let rest = if rest.ends_with('.') {
                format!("{rest}0")
            } else {
                rest
            };
            let _ = write!(out, "{sign}{rest}");
            serde_json::from_str::<Value>(&out).ok()?;
            out
        }
        PyValue::Date(s) | PyValue::DateTime(s) | PyValue::Time(s) | PyValue::Decimal(s) => {
            Value::String(s.clone()).to_string()
        }
        PyValue::Float(_) | PyValue::None | PyValue::Unsupported(_) => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ints_are_range_checked() {
        assert_eq!(
            convert_value(&json!({"type":"int","value":5}), &Type::INT4),
            Ok(PgParam::Int4(5))
        );
        let err = convert_value(&json!({"type":"int","value":70000}), &Type::INT2).unwrap_err();
        assert_eq!(err, "int 70000 is out of range for smallint");
        let err = convert_value(&json!({"type":"str","value":"abc"}), &Type::INT4).unwrap_err();
        assert_eq!(err, "cannot use str 'abc' as integer");
        let err = convert_value(&json!({"type":"float","value":1.5}), &Type::INT8).unwrap_err();
        assert_eq!(err, "cannot use float 1.5 as bigint");
    }

    #[test]
    fn numeric_and_json_are_text() {
        assert_eq!(
            convert_value(&json!({"type":"decimal","value":"1.23"}), &Type::NUMERIC),
            Ok(PgParam::Literal("1.23".into()))
        );
        assert!(convert_value(&json!({"type":"str","value":"1.2.3"}), &Type::NUMERIC).is_err());
        assert_eq!(
            convert_value(&json!({"type":"str","value":"hi"}), &Type::JSONB),
            Ok(PgParam::Literal("\"hi\"".into()))
        );
        assert_eq!(
            convert_value(&json!({"type":"decimal","value":".5"}), &Type::JSON),
            Ok(PgParam::Literal("0.5".into()))
        );
    }

    #[test]
    fn decimal_syntax() {
        for ok in ["1", "-1.5", "+.5", "5.", "1e10", "1.5E-3"] {
            assert!(is_decimal_text(ok), "{ok}");
        }
        for bad in ["", ".", "abc", "1e", "1.2.3", "--1", "1e1.5"] {
            assert!(!is_decimal_text(bad), "{bad}");
        }
    }

    #[test]
    fn timestamps() {
        let v = json!({"type":"datetime","value":"2024-01-31T10:00:00+02:00"});
        assert_eq!(
            convert_value(&v, &Type::TIMESTAMPTZ),
            Ok(PgParam::Literal("2024-01-31 10:00:00+02:00".into()))
        );
        assert_eq!(
            convert_value(&v, &Type::TIMESTAMP),
            Ok(PgParam::Literal("2024-01-31 08:00:00".into()))
        );
        let err = convert_value(
            &json!({"type":"unsupported","python_type":"list"}),
            &Type::TEXT,
        )
        .unwrap_err();
        assert!(err.contains("Python list"), "{err}");
    }
}
