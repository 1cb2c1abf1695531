//! Which hosts SQL cells may reach (pure matching, no I/O).
//!
//! A SQL cell runs inside the server process, so a connection string pointing at a local address
//! would reach whatever listens on the server's own loopback (often the notebook store itself,
//! as a superuser) or the cloud metadata service. Refused by default: loopback, unspecified
//! (`0.0.0.0/8`, `::`) and link-local (`169.254.0.0/16`, `fe80::/10`) addresses, with IPv4-mapped
//! IPv6 counted as its IPv4 address, and Unix sockets. `SQL_ALLOWED_HOSTS` lifts the refusal for
//! matching entries; `SQL_DENIED_HOSTS` refuses more, and wins over an allowance.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::config::{ConfigError, SqlHostPolicy};

/// Names of the two settings, for messages.
const ALLOWED_SETTING: &str = "SQL_ALLOWED_HOSTS";
const DENIED_SETTING: &str = "SQL_DENIED_HOSTS";

/// An address range; a single address is a /32 or /128.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    fn new(addr: IpAddr, prefix: u8) -> Option<Cidr> {
        let addr = canonical(addr);
        let max = if addr.is_ipv4() { 32 } else { 128 };
        // `::ffff:10.0.0.0/104` is the IPv4 range 10.0.0.0/8.
        let prefix = match (addr, prefix) {
            (IpAddr::V4(_), p) if p > max => {
                let p = p.checked_sub(96)?;
                (p <= 32).then_some(p)?
            }
            (_, p) => (p <= max).then_some(p)?,
        };
        Some(Cidr { addr, prefix })
    }

    fn single(addr: IpAddr) -> Cidr {
        let addr = canonical(addr);
        let prefix = if addr.is_ipv4() { 32 } else { 128 };
        Cidr { addr, prefix }
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// One entry of `SQL_ALLOWED_HOSTS` / `SQL_DENIED_HOSTS`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Rule {
    /// A host name as written in connection strings (lower case, no trailing dot).
    Name { name: String, port: Option<u16> },
    /// Addresses the connection resolves to.
    Net { net: Cidr, port: Option<u16> },
    /// A Unix socket directory.
    Socket(String),
}

impl Rule {
    fn parse(entry: &str) -> Result<Rule, String> {
        let entry = entry.trim();
        if entry.is_empty() {
            return Err("empty entry".into());
        }
        if entry.starts_with('/') {
            return Ok(Rule::Socket(normalize_socket(entry)));
        }
        if let Some((addr, prefix)) = entry.split_once('/') {
            let addr = strip_brackets(addr)
                .parse::<IpAddr>()
                .map_err(|_| format!("'{entry}' is not a CIDR like 10.0.0.0/8"))?;
            let net = prefix
                .parse::<u8>()
                .ok()
                .and_then(|p| Cidr::new(addr, p))
                .ok_or_else(|| format!("'{entry}' has an invalid prefix length"))?;
            return Ok(Rule::Net { net, port: None });
        }
        if let Ok(ip) = strip_brackets(entry).parse::<IpAddr>() {
            return Ok(Rule::Net {
                net: Cidr::single(ip),
                port: None,
            });
        }
        let (host, port) = split_port(entry)?;
        if let Ok(ip) = strip_brackets(host).parse::<IpAddr>() {
            return Ok(Rule::Net {
                net: Cidr::single(ip),
                port,
            });
        }
        let name = normalize_name(host);
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
        if !valid {
            return Err(format!(
                "'{entry}' is not a host, host:port, IP address or CIDR"
            ));
        }
        Ok(Rule::Name { name, port })
    }

    /// Whether the rule covers a destination (`name` is the host as written, if it was a name).
    fn matches(&self, name: Option<&str>, ip: Option<IpAddr>, port: u16) -> bool {
        match self {
            Rule::Name {
                name: rule,
                port: p,
            } => p.is_none_or(|p| p == port) && name.is_some_and(|n| normalize_name(n) == *rule),
            Rule::Net { net, port: p } => {
                p.is_none_or(|p| p == port) && ip.is_some_and(|ip| net.contains(ip))
            }
            Rule::Socket(_) => false,
        }
    }
}

/// `host:port` (or `[v6]:port`) split; a bare host has no port.
fn split_port(entry: &str) -> Result<(&str, Option<u16>), String> {
    let (host, port) = if let Some(rest) = entry.strip_prefix('[') {
        let (inside, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("'{entry}' has an unclosed '['"))?;
        match after.strip_prefix(':') {
            Some(port) => (inside, Some(port)),
            None if after.is_empty() => (inside, None),
            None => return Err(format!("'{entry}' is not [address]:port")),
        }
    } else {
        match entry.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (entry, None),
        }
    };
    let port = port
        .map(|p| {
            p.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("'{entry}' has an invalid port"))
        })
        .transpose()?;
    Ok((host, port))
}

fn strip_brackets(s: &str) -> &str {
    s.strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(s)
}

/// Host names compare case-insensitively and without the root's trailing dot.
fn normalize_name(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

fn normalize_socket(path: &str) -> String {
    let trimmed = path.trim().trim_end_matches('/');
    if trimmed.is_empty() {
        "/".into()
    } else {
        trimmed.to_string()
    }
}

/// An IPv4-mapped (`::ffff:a.b.c.d`) or IPv4-compatible (`::a.b.c.d`) IPv6 address as the IPv4
/// address it stands for; anything else unchanged.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) if !v6.is_loopback() && !v6.is_unspecified() => match v6.to_ipv4() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        _ => ip,
    }
}

/// Why an address counts as local (refused unless allowed), or None for an ordinary address.
pub fn local_kind(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) if v4.is_loopback() => Some("loopback"),
        // Linux treats 0.0.0.0 as "this host"; the rest of 0.0.0.0/8 is never a real peer.
        IpAddr::V4(v4) if v4.octets()[0] == 0 => Some("unspecified"),
        IpAddr::V4(v4) if v4.is_link_local() => Some("link-local"),
        IpAddr::V6(v6) if v6.is_loopback() => Some("loopback"),
        IpAddr::V6(v6) if v6.is_unspecified() => Some("unspecified"),
        IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80 => Some("link-local"),
        _ => None,
    }
}

/// An IP literal as written in a connection string: `[::1]`, `::1`, `127.0.0.1`, and the
/// shorthand IPv4 forms the C resolver also accepts (`127.1`, `0x7f.0.0.1`, `2130706433`).
pub fn parse_ip_literal(host: &str) -> Option<IpAddr> {
    let host = strip_brackets(host.trim());
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Some(ip);
    }
    parse_inet_aton(host.strip_suffix('.').unwrap_or(host)).map(IpAddr::V4)
}

/// `inet_aton(3)`: one to four parts, each decimal, octal (leading 0) or hex (0x); the last
/// part fills the remaining bytes.
fn parse_inet_aton(s: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut values = Vec::with_capacity(parts.len());
    for part in &parts {
        let (digits, radix) =
            if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
                (hex, 16)
            } else if part.len() > 1 && part.starts_with('0') {
                (&part[1..], 8)
            } else {
                (*part, 10)
            };
        if digits.is_empty() && radix != 16 {
            return None;
        }
        let value = if digits.is_empty() {
            0
        } else {
            if !digits.chars().all(|c| c.is_digit(radix)) {
                return None;
            }
            u64::from_str_radix(digits, radix).ok()?
        };
        values.push(value);
    }
    let (last, head) = values.split_last()?;
    let mut addr: u64 = 0;
    for (i, v) in head.iter().enumerate() {
        if *v > 0xff {
            return None;
        }
        addr |= v << (24 - 8 * i);
    }
    let last_bits = 32 - 8 * head.len();
    if *last >= 1u64 << last_bits {
        return None;
    }
    addr |= last;
    u32::try_from(addr).ok().map(Ipv4Addr::from)
}

/// Why a destination was refused; the message names the setting that decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A local address not covered by `SQL_ALLOWED_HOSTS`.
    Local {
        /// The host as written, with the address it resolved to.
        target: String,
        /// `loopback`, `unspecified` or `link-local`.
        kind: &'static str,
    },
    /// A Unix socket (or an empty host, which means the default socket).
    Socket {
        /// The socket directory.
        path: String,
    },
    /// Matched `SQL_DENIED_HOSTS`.
    Denied {
        /// The host as written (and its address, when resolved).
        target: String,
    },
    /// The settings themselves are invalid; every connection is refused.
    Misconfigured(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Local { target, kind } => write!(
                f,
                "connections to {target} are refused because it is a {kind} address; the \
                 server's administrator can allow it with {ALLOWED_SETTING}"
            ),
            Refusal::Socket { path } => write!(
                f,
                "connections through a Unix socket ({path}) are refused; use a TCP host, or the \
                 server's administrator can allow the socket directory with {ALLOWED_SETTING}"
            ),
            Refusal::Denied { target } => {
                write!(f, "connections to {target} are refused by {DENIED_SETTING}")
            }
            Refusal::Misconfigured(why) => write!(
                f,
                "SQL connections are disabled: {why} (fix {ALLOWED_SETTING} / {DENIED_SETTING})"
            ),
        }
    }
}

impl std::error::Error for Refusal {}

/// The parsed `SQL_ALLOWED_HOSTS` / `SQL_DENIED_HOSTS`.
#[derive(Debug, Clone, Default)]
pub struct HostPolicy {
    allowed: Vec<Rule>,
    denied: Vec<Rule>,
    broken: Option<String>,
}

fn parse_list(name: &'static str, entries: &[String]) -> Result<Vec<Rule>, ConfigError> {
    entries
        .iter()
        .map(|e| Rule::parse(e).map_err(|reason| ConfigError { name, reason }))
        .collect()
}

impl HostPolicy {
    /// Parses the settings; an invalid entry is an error naming its setting.
    pub fn from_settings(settings: &SqlHostPolicy) -> Result<HostPolicy, ConfigError> {
        Ok(HostPolicy {
            allowed: parse_list(ALLOWED_SETTING, &settings.allowed)?,
            denied: parse_list(DENIED_SETTING, &settings.denied)?,
            broken: None,
        })
    }

    /// Like [`HostPolicy::from_settings`], but invalid settings give a policy refusing every
    /// connection (fail closed: an unparsable deny list must not allow anything).
    pub fn from_settings_or_refuse_all(settings: &SqlHostPolicy) -> HostPolicy {
        HostPolicy::from_settings(settings).unwrap_or_else(|e| {
            log::error!("{e}; every SQL connection will be refused");
            HostPolicy {
                broken: Some(e.to_string()),
                ..HostPolicy::default()
            }
        })
    }

    fn usable(&self) -> Result<(), Refusal> {
        match &self.broken {
            Some(why) => Err(Refusal::Misconfigured(why.clone())),
            None => Ok(()),
        }
    }

    /// Checks a TCP destination: `name` is the host as written when it is a name (None for an IP
    /// literal or a `hostaddr`), `ip` the address the connection will use, if known yet.
    pub fn check(&self, name: Option<&str>, ip: Option<IpAddr>, port: u16) -> Result<(), Refusal> {
        self.usable()?;
        let target = || describe(name, ip, port);
        if self.denied.iter().any(|r| r.matches(name, ip, port)) {
            return Err(Refusal::Denied { target: target() });
        }
        let Some(kind) = ip.and_then(local_kind) else {
            return Ok(());
        };
        if self.allowed.iter().any(|r| r.matches(name, ip, port)) {
            return Ok(());
        }
        Err(Refusal::Local {
            target: target(),
            kind,
        })
    }

    /// Checks a Unix socket directory (an empty path stands for the default socket).
    pub fn check_socket(&self, path: &str) -> Result<(), Refusal> {
        self.usable()?;
        let shown = if path.is_empty() {
            "the default socket".to_string()
        } else {
            path.to_string()
        };
        let path = normalize_socket(path);
        let rule = Rule::Socket(path.clone());
        if self.denied.contains(&rule) {
            return Err(Refusal::Denied { target: shown });
        }
        if self.allowed.contains(&rule) {
            return Ok(());
        }
        Err(Refusal::Socket { path: shown })
    }
}

fn describe(name: Option<&str>, ip: Option<IpAddr>, port: u16) -> String {
    let ip = ip.map(|ip| match ip {
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
        IpAddr::V4(v4) => format!("{v4}:{port}"),
    });
    match (name, ip) {
        (Some(n), Some(ip)) => format!("{n} ({ip})"),
        (Some(n), None) => format!("{n}:{port}"),
        (None, Some(ip)) => ip,
        (None, None) => format!("port {port}"),
    }
}

/// The loopback addresses a name like `localhost` or `x.localhost` always means (RFC 6761).
pub fn reserved_loopback(name: &str) -> bool {
    let name = normalize_name(name);
    name == "localhost" || name.ends_with(".localhost")
}

/// IPv4 loopback, for names that are loopback by definition.
pub const LOOPBACK_V4: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// IPv6 loopback.
pub const LOOPBACK_V6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allowed: &[&str], denied: &[&str]) -> HostPolicy {
        HostPolicy::from_settings(&SqlHostPolicy {
            allowed: allowed.iter().map(|s| s.to_string()).collect(),
            denied: denied.iter().map(|s| s.to_string()).collect(),
        })
        .expect("valid policy")
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().expect("ip"))
    }

    #[test]
    fn local_addresses_are_classified() {
        for (addr, kind) in [
            ("127.0.0.1", Some("loopback")),
            ("127.255.1.2", Some("loopback")),
            ("::1", Some("loopback")),
            ("::ffff:127.0.0.1", Some("loopback")),
            ("::127.0.0.1", Some("loopback")),
            ("0.0.0.0", Some("unspecified")),
            ("0.1.2.3", Some("unspecified")),
            ("::", Some("unspecified")),
            ("::ffff:0.0.0.0", Some("unspecified")),
            ("169.254.169.254", Some("link-local")),
            ("::ffff:169.254.169.254", Some("link-local")),
            ("fe80::1", Some("link-local")),
            ("febf::1", Some("link-local")),
            ("fec0::1", None),
            ("10.0.0.1", None),
            ("192.168.1.1", None),
            ("8.8.8.8", None),
            ("2001:db8::1", None),
            ("::ffff:10.0.0.1", None),
        ] {
            assert_eq!(local_kind(addr.parse().unwrap()), kind, "{addr}");
        }
    }

    #[test]
    fn refuses_local_by_default_and_names_the_setting() {
        let p = policy(&[], &[]);
        for addr in [
            "127.0.0.1",
            "::1",
            "0.0.0.0",
            "169.254.169.254",
            "::ffff:127.0.0.1",
        ] {
            let err = p.check(None, ip(addr), 5432).unwrap_err();
            assert!(err.to_string().contains("SQL_ALLOWED_HOSTS"), "{err}");
        }
        let err = p
            .check(Some("localhost"), ip("127.0.0.1"), 5432)
            .unwrap_err();
        assert!(
            err.to_string().contains("localhost (127.0.0.1:5432)"),
            "{err}"
        );
        assert!(p.check(Some("db.example"), ip("10.1.2.3"), 5432).is_ok());
        assert!(p.check(None, ip("203.0.113.9"), 5432).is_ok());
        // A name not resolved yet is not refused (only its addresses can be).
        assert!(p.check(Some("db.example"), None, 5432).is_ok());
    }

    #[test]
    fn allowed_entries_lift_the_refusal() {
        let p = policy(&["127.0.0.1"], &[]);
        assert!(p.check(None, ip("127.0.0.1"), 5432).is_ok());
        assert!(p.check(None, ip("::ffff:127.0.0.1"), 5432).is_ok());
        assert!(p.check(Some("localhost"), ip("127.0.0.1"), 5432).is_ok());
        assert!(p.check(None, ip("127.0.0.2"), 5432).is_err());
        assert!(p.check(None, ip("::1"), 5432).is_err());

        let p = policy(&["127.0.0.0/8", "::1/128"], &[]);
        assert!(p.check(None, ip("127.9.9.9"), 1).is_ok());
        assert!(p.check(None, ip("::1"), 1).is_ok());
        assert!(p.check(None, ip("169.254.169.254"), 1).is_err());

        let p = policy(&["localhost:5432"], &[]);
        assert!(p.check(Some("LOCALHOST."), ip("::1"), 5432).is_ok());
        assert!(p.check(Some("localhost"), ip("127.0.0.1"), 5433).is_err());
        // A name rule does not cover the same address written as a literal.
        assert!(p.check(None, ip("127.0.0.1"), 5432).is_err());

        let p = policy(&["[::1]:6543", "127.0.0.1:5432"], &[]);
        assert!(p.check(None, ip("::1"), 6543).is_ok());
        assert!(p.check(None, ip("::1"), 5432).is_err());
        assert!(p.check(None, ip("127.0.0.1"), 5432).is_ok());
        assert!(p.check(None, ip("127.0.0.1"), 6543).is_err());
    }

    #[test]
    fn denied_entries_win() {
        let p = policy(&["127.0.0.1", "10.0.0.0/8"], &["127.0.0.1", "10.9.0.0/16"]);
        let err = p.check(None, ip("127.0.0.1"), 5432).unwrap_err();
        assert!(matches!(err, Refusal::Denied { .. }), "{err:?}");
        assert!(err.to_string().contains("SQL_DENIED_HOSTS"), "{err}");
        // Deny lists also cover ordinary addresses and names.
        assert!(p.check(None, ip("10.9.1.1"), 5432).is_err());
        assert!(p.check(None, ip("10.8.1.1"), 5432).is_ok());
        let p = policy(&[], &["db.internal", "::ffff:192.0.2.0/120"]);
        assert!(p.check(Some("DB.internal"), None, 5432).is_err());
        assert!(p.check(Some("db.internal"), ip("192.0.2.1"), 5432).is_err());
        assert!(p.check(None, ip("192.0.2.77"), 5432).is_err());
        assert!(p.check(None, ip("192.0.3.1"), 5432).is_ok());
    }

    #[test]
    fn sockets_are_refused_unless_allowed() {
        let p = policy(&[], &[]);
        let err = p.check_socket("/var/run/postgresql").unwrap_err();
        assert!(err.to_string().contains("SQL_ALLOWED_HOSTS"), "{err}");
        assert!(p.check_socket("").is_err());
        let p = policy(&["/var/run/postgresql/"], &[]);
        assert!(p.check_socket("/var/run/postgresql").is_ok());
        assert!(p.check_socket("/tmp").is_err());
        let p = policy(&["/tmp"], &["/tmp"]);
        assert!(matches!(
            p.check_socket("/tmp"),
            Err(Refusal::Denied { .. })
        ));
    }

    #[test]
    fn invalid_entries_are_errors_naming_the_setting() {
        for bad in [
            "10.0.0.0/33",
            "::1/129",
            "x/8",
            "host:0",
            "host:99999",
            "a b",
            "[::1",
        ] {
            let err = HostPolicy::from_settings(&SqlHostPolicy {
                allowed: vec![bad.into()],
                denied: Vec::new(),
            })
            .unwrap_err();
            assert_eq!(err.name, "SQL_ALLOWED_HOSTS", "{bad}");
        }
        let err = HostPolicy::from_settings(&SqlHostPolicy {
            allowed: Vec::new(),
            denied: vec!["10.0.0.0/x".into()],
        })
        .unwrap_err();
        assert_eq!(err.name, "SQL_DENIED_HOSTS");
        let broken = HostPolicy::from_settings_or_refuse_all(&SqlHostPolicy {
            allowed: Vec::new(),
            denied: vec!["10.0.0.0/x".into()],
        });
        assert!(matches!(
            broken.check(Some("db.example"), ip("10.0.0.1"), 5432),
            Err(Refusal::Misconfigured(_))
        ));
    }

    #[test]
    fn parses_ip_literals_like_the_resolver() {
        for (text, want) in [
            ("127.0.0.1", "127.0.0.1"),
            ("[::1]", "::1"),
            ("::ffff:127.0.0.1", "::ffff:127.0.0.1"),
            ("127.1", "127.0.0.1"),
            ("0x7f.0.0.1", "127.0.0.1"),
            ("0177.0.0.1", "127.0.0.1"),
            ("2130706433", "127.0.0.1"),
            ("0", "0.0.0.0"),
            ("169.254.43518", "169.254.169.254"),
            ("127.0.0.1.", "127.0.0.1"),
        ] {
            assert_eq!(parse_ip_literal(text), ip(want), "{text}");
        }
        for text in [
            "localhost",
            "db.example",
            "1.2.3.4.5",
            "256.0.0.1",
            "08.0.0.1",
            "",
            "1..2",
        ] {
            assert_eq!(parse_ip_literal(text), None, "{text}");
        }
        assert!(reserved_loopback("LocalHost."));
        assert!(reserved_loopback("app.localhost"));
        assert!(!reserved_loopback("localhost.example"));
    }
}
