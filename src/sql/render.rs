//! Rendering result values (PostgreSQL's binary wire format) as JSON for the table output.
//!
//! Every column is read as raw bytes ([`RawValue`]) and decoded here, so no column type can make
//! a row fail to load: a type without a decoder is shown as a `<type name>` marker.

use std::error::Error;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

use chrono::{Duration, NaiveDate, NaiveDateTime};
use serde_json::Value;
use tokio_postgres::types::{FromSql, Kind, Type};

/// The raw binary bytes of one result value (`None` for NULL); accepts every column type.
#[derive(Debug, Clone, Copy)]
pub struct RawValue<'a>(pub Option<&'a [u8]>);

impl<'a> FromSql<'a> for RawValue<'a> {
    fn from_sql(_ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        Ok(RawValue(Some(raw)))
    }

    fn from_sql_null(_ty: &Type) -> Result<Self, Box<dyn Error + Sync + Send>> {
        Ok(RawValue(None))
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }
}

/// Renders one binary-format value of type `ty` as JSON (`null` for NULL).
pub fn render_value(ty: &Type, raw: Option<&[u8]>) -> Value {
    match raw {
        None => Value::Null,
        Some(bytes) => {
            decode(ty, bytes).unwrap_or_else(|| Value::String(format!("<{}>", ty.name())))
        }
    }
}

fn be<const N: usize>(b: &[u8]) -> Option<[u8; N]> {
    b.try_into().ok()
}

fn utf8(b: &[u8]) -> Option<Value> {
    std::str::from_utf8(b)
        .ok()
        .map(|s| Value::String(s.to_string()))
}

fn decode(ty: &Type, b: &[u8]) -> Option<Value> {
    Some(match *ty {
        Type::BOOL => Value::Bool(*b.first()? != 0),
        Type::INT2 => i16::from_be_bytes(be(b)?).into(),
        Type::INT4 => i32::from_be_bytes(be(b)?).into(),
        Type::INT8 => i64::from_be_bytes(be(b)?).into(),
        Type::OID | Type::XID | Type::CID | Type::REGPROC => u32::from_be_bytes(be(b)?).into(),
        Type::FLOAT4 => {
            let f = f32::from_be_bytes(be(b)?);
            // Go through the shortest f32 text so 0.1f32 shows as 0.1, not 0.10000000149.
            float_json(f.to_string().parse().unwrap_or(f64::from(f)))
        }
        Type::FLOAT8 => float_json(f64::from_be_bytes(be(b)?)),
        Type::NUMERIC => Value::String(decode_numeric(b)?),
        Type::MONEY => Value::String(format_scaled(i64::from_be_bytes(be(b)?), 2)),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::XML | Type::UNKNOWN => {
            utf8(b)?
        }
        Type::CHAR => Value::String(char::from(*b.first()?).to_string()),
        Type::JSON => serde_json::from_slice(b).ok()?,
        Type::JSONB => match b.split_first()? {
            (1, rest) => serde_json::from_slice(rest).ok()?,
            _ => return None,
        },
        Type::UUID => Value::String(format_uuid(b)?),
        Type::BYTEA => {
            let mut s = String::with_capacity(2 + b.len() * 2);
            s.push_str("\\x");
            for byte in b {
                let _ = write!(s, "{byte:02x}");
            }
            Value::String(s)
        }
        Type::DATE => Value::String(format_date(i32::from_be_bytes(be(b)?))?),
        Type::TIME => Value::String(format_time(i64::from_be_bytes(be(b)?))?),
        Type::TIMETZ => {
            let micros = i64::from_be_bytes(be(b.get(..8)?)?);
            // The zone is stored in seconds *west* of UTC.
            let west = i32::from_be_bytes(be(b.get(8..12)?)?);
            Value::String(format!("{}{}", format_time(micros)?, format_offset(-west)))
        }
        Type::TIMESTAMP => Value::String(format_timestamp(i64::from_be_bytes(be(b)?), false)?),
        Type::TIMESTAMPTZ => Value::String(format_timestamp(i64::from_be_bytes(be(b)?), true)?),
        Type::INTERVAL => {
            let micros = i64::from_be_bytes(be(b.get(..8)?)?);
            let days = i32::from_be_bytes(be(b.get(8..12)?)?);
            let months = i32::from_be_bytes(be(b.get(12..16)?)?);
            Value::String(format_interval(months, days, micros))
        }
        Type::INET | Type::CIDR => Value::String(format_inet(b)?),
        Type::MACADDR | Type::MACADDR8 => Value::String(
            b.iter()
                .map(|x| format!("{x:02x}"))
                .collect::<Vec<_>>()
                .join(":"),
        ),
        Type::BIT | Type::VARBIT => {
            let bits = usize::try_from(i32::from_be_bytes(be(b.get(..4)?)?)).ok()?;
            let data = b.get(4..)?;
            let s: String = (0..bits)
                .map(|i| {
                    let byte = data.get(i / 8).copied().unwrap_or(0);
                    if byte & (0x80 >> (i % 8)) != 0 {
                        '1'
                    } else {
                        '0'
                    }
                })
                .collect();
            Value::String(s)
        }
        Type::VOID => Value::Null,
        _ => match ty.kind() {
            Kind::Array(elem) => decode_array(elem, b)?,
            Kind::Domain(base) => decode(base, b)?,
            // Enum labels travel as their text in binary format too.
            Kind::Enum(_) => utf8(b)?,
            // Common text-like extension types (their binary form is the text).
            _ if matches!(ty.name(), "citext" | "ltree" | "lquery") => {
                let text = if ty.name() == "citext" {
                    b
                } else {
                    b.get(1..)?
                };
                utf8(text)?
            }
            _ => return None,
        },
    })
}

fn float_json(f: f64) -> Value {
    if f.is_nan() {
        Value::String("NaN".into())
    } else if f.is_infinite() {
        Value::String(if f > 0.0 { "Infinity" } else { "-Infinity" }.into())
    } else {
        serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
    }
}

/// Decodes PostgreSQL's binary NUMERIC into its exact decimal text (e.g. `12345.6700`).
///
/// Layout: `ndigits: i16, weight: i16, sign: u16, dscale: u16`, then `ndigits` base-10000
/// digits (`i16`); the first digit is worth `10000^weight`; `dscale` is the number of decimal
/// digits shown after the point.
pub fn decode_numeric(b: &[u8]) -> Option<String> {
    let ndigits = usize::try_from(i16::from_be_bytes(be(b.get(0..2)?)?)).ok()?;
    let weight = i64::from(i16::from_be_bytes(be(b.get(2..4)?)?));
    let sign = u16::from_be_bytes(be(b.get(4..6)?)?);
    let dscale = usize::from(u16::from_be_bytes(be(b.get(6..8)?)?) & 0x3fff);
    match sign {
        0xC000 => return Some("NaN".into()),
        0xD000 => return Some("Infinity".into()),
        0xF000 => return Some("-Infinity".into()),
        0x0000 | 0x4000 => {}
        _ => return None,
    }
    let mut digits = Vec::with_capacity(ndigits);
    for i in 0..ndigits {
        let d = i16::from_be_bytes(be(b.get(8 + 2 * i..10 + 2 * i)?)?);
        if !(0..10000).contains(&d) {
            return None;
        }
        digits.push(d);
    }
    let digit_at = |idx: i64| -> i16 {
        usize::try_from(idx)
            .ok()
            .and_then(|i| digits.get(i).copied())
            .unwrap_or(0)
    };
    let mut out = String::new();
    if sign == 0x4000 {
        out.push('-');
    }
    if weight < 0 {
        out.push('0');
    } else {
        for idx in 0..=weight {
            if idx == 0 {
                let _ = write!(out, "{}", digit_at(idx));
            } else {
                let _ = write!(out, "{:04}", digit_at(idx));
            }
        }
    }
    if dscale > 0 {
        out.push('.');
        let mut frac = String::with_capacity(dscale + 4);
        let mut idx = weight + 1;
        while frac.len() < dscale {
            let _ = write!(frac, "{:04}", digit_at(idx));
            idx += 1;
        }
        frac.truncate(dscale);
        out.push_str(&frac);
    }
    Some(out)
}

/// `value / 10^scale` as text with exactly `scale` decimals.
fn format_scaled(value: i64, scale: u32) -> String {
    let div = 10_i128.pow(scale);
    let v = i128::from(value);
    let sign = if v < 0 { "-" } else { "" };
    let abs = v.abs();
    format!(
        "{sign}{}.{:0width$}",
        abs / div,
        abs % div,
        width = scale as usize
    )
}

fn format_uuid(b: &[u8]) -> Option<String> {
    let b: [u8; 16] = be(b)?;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Some(format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    ))
}

fn epoch() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2000, 1, 1)
        .unwrap_or_default()
        .and_time(chrono::NaiveTime::MIN)
}

fn format_date(days: i32) -> Option<String> {
    match days {
        i32::MAX => Some("infinity".into()),
        i32::MIN => Some("-infinity".into()),
        _ => {
            let d = epoch()
                .date()
                .checked_add_signed(Duration::days(i64::from(days)))?;
            Some(d.format("%Y-%m-%d").to_string())
        }
    }
}

/// `.ffffff` with trailing zeros removed, or nothing for whole seconds.
fn fraction(micros: i64) -> String {
    if micros == 0 {
        String::new()
    } else {
        format!(".{micros:06}").trim_end_matches('0').to_string()
    }
}

fn format_time(micros: i64) -> Option<String> {
    if !(0..=86_400_000_000).contains(&micros) {
        return None;
    }
    let secs = micros / 1_000_000;
    Some(format!(
        "{:02}:{:02}:{:02}{}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        fraction(micros % 1_000_000)
    ))
}

fn format_offset(east_secs: i32) -> String {
    let sign = if east_secs < 0 { '-' } else { '+' };
    let abs = east_secs.unsigned_abs();
    let mut s = format!("{sign}{:02}:{:02}", abs / 3600, abs / 60 % 60);
    if !abs.is_multiple_of(60) {
        let _ = write!(s, ":{:02}", abs % 60);
    }
    s
}

/// ISO 8601 (`2024-01-31T10:00:00`); `timestamptz` values are shown in UTC with `+00:00`.
fn format_timestamp(micros: i64, with_tz: bool) -> Option<String> {
    match micros {
        i64::MAX => return Some("infinity".into()),
        i64::MIN => return Some("-infinity".into()),
        _ => {}
    }
    let dt = epoch().checked_add_signed(Duration::microseconds(micros))?;
    let mut s = dt.format("%Y-%m-%dT%H:%M:%S").to_string();
    s.push_str(&fraction(micros.rem_euclid(1_000_000)));
    if with_tz {
        s.push_str("+00:00");
    }
    Some(s)
}

/// PostgreSQL's default (`postgres`) interval style, e.g. `1 year 2 mons 3 days 04:05:06`.
fn format_interval(months: i32, days: i32, micros: i64) -> String {
    let mut parts = Vec::new();
    let unit = |n: i64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let (years, mons) = (i64::from(months) / 12, i64::from(months) % 12);
    if years != 0 {
        parts.push(unit(years, "year", "years"));
    }
    if mons != 0 {
        parts.push(unit(mons, "mon", "mons"));
    }
    if days != 0 {
        parts.push(unit(i64::from(days), "day", "days"));
    }
    if micros != 0 || parts.is_empty() {
        let sign = if micros < 0 { "-" } else { "" };
        let abs = micros.unsigned_abs();
        let secs = abs / 1_000_000;
        parts.push(format!(
            "{sign}{:02}:{:02}:{:02}{}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60,
            fraction((abs % 1_000_000) as i64)
        ));
    }
    parts.join(" ")
}

fn format_inet(b: &[u8]) -> Option<String> {
    let (family, bits, is_cidr, len) = (*b.first()?, *b.get(1)?, *b.get(2)? != 0, *b.get(3)?);
    let addr = b.get(4..4 + usize::from(len))?;
    let (text, max_bits) = match family {
        2 => (Ipv4Addr::from(be::<4>(addr)?).to_string(), 32),
        3 => (Ipv6Addr::from(be::<16>(addr)?).to_string(), 128),
        _ => return None,
    };
    Some(if is_cidr || bits != max_bits {
        format!("{text}/{bits}")
    } else {
        text
    })
}

/// Decodes a binary array (any number of dimensions) into nested JSON arrays.
fn decode_array(elem: &Type, b: &[u8]) -> Option<Value> {
    let ndim = usize::try_from(i32::from_be_bytes(be(b.get(0..4)?)?)).ok()?;
    // Bytes 4..8: has-nulls flag; 8..12: element type oid.
    let mut dims = Vec::with_capacity(ndim);
    for d in 0..ndim {
        let off = 12 + 8 * d;
        dims.push(usize::try_from(i32::from_be_bytes(be(b.get(off..off + 4)?)?)).ok()?);
    }
    if ndim == 0 {
        return Some(Value::Array(Vec::new()));
    }
    let mut rest = b.get(12 + 8 * ndim..)?;
    let total = dims.iter().try_fold(1usize, |acc, d| acc.checked_mul(*d))?;
    let mut elems = Vec::with_capacity(total.min(1 << 16));
    for _ in 0..total {
        let len = i32::from_be_bytes(be(rest.get(0..4)?)?);
        rest = rest.get(4..)?;
        if len < 0 {
            elems.push(Value::Null);
        } else {
            let len = usize::try_from(len).ok()?;
            elems.push(render_value(elem, Some(rest.get(..len)?)));
            rest = rest.get(len..)?;
        }
    }
    // Fold the flat element list into nested arrays, innermost dimension first.
    let mut level = elems;
    for &dim in dims.iter().skip(1).rev() {
        if dim == 0 {
            return Some(Value::Array(Vec::new()));
        }
        let mut chunks = Vec::with_capacity(level.len() / dim);
        let mut it = level.into_iter();
        loop {
            let chunk: Vec<Value> = it.by_ref().take(dim).collect();
            if chunk.is_empty() {
                break;
            }
            chunks.push(Value::Array(chunk));
        }
        level = chunks;
    }
    Some(Value::Array(level))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(ndigits: i16, weight: i16, sign: u16, dscale: u16, digits: &[i16]) -> Vec<u8> {
        let mut v = Vec::new();
        for x in [ndigits, weight] {
            v.extend_from_slice(&x.to_be_bytes());
        }
        for x in [sign, dscale] {
            v.extend_from_slice(&x.to_be_bytes());
        }
        for d in digits {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v
    }

    #[test]
    fn numerics() {
        // 12345.6700 = [1, 2345, 6700], weight 1, dscale 4
        let b = numeric(3, 1, 0, 4, &[1, 2345, 6700]);
        assert_eq!(decode_numeric(&b).as_deref(), Some("12345.6700"));
        // -0.0012 = [12], weight -1, dscale 4
        let b = numeric(1, -1, 0x4000, 4, &[12]);
        assert_eq!(decode_numeric(&b).as_deref(), Some("-0.0012"));
        // 100000000 = [1], weight 2, dscale 0
        let b = numeric(1, 2, 0, 0, &[1]);
        assert_eq!(decode_numeric(&b).as_deref(), Some("100000000"));
        // 0 with scale 2
        let b = numeric(0, 0, 0, 2, &[]);
        assert_eq!(decode_numeric(&b).as_deref(), Some("0.00"));
        assert_eq!(
            decode_numeric(&numeric(0, 0, 0xC000, 0, &[])).as_deref(),
            Some("NaN")
        );
        assert_eq!(decode_numeric(&[1, 2]), None);
    }

    #[test]
    fn intervals_and_times() {
        assert_eq!(
            format_interval(14, 3, 14_706_000_000),
            "1 year 2 mons 3 days 04:05:06"
        );
        assert_eq!(format_interval(0, -1, 0), "-1 days");
        assert_eq!(format_interval(0, 0, 0), "00:00:00");
        assert_eq!(format_interval(0, 0, -1_500_000), "-00:00:01.5");
        assert_eq!(format_time(36_000_123_000).as_deref(), Some("10:00:00.123"));
        assert_eq!(
            format_timestamp(-1, false).as_deref(),
            Some("1999-12-31T23:59:59.999999")
        );
        assert_eq!(format_scaled(-1234, 2), "-12.34");
    }
}
