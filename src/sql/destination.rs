//! Where a connection string would connect, checked against the [`HostPolicy`].
//!
//! [`check_without_dns`] is the early check when a connection string is saved (IP literals,
//! `localhost`, sockets). [`resolve_and_pin`] is the authoritative one before every connection:
//! each host is resolved once, every address must pass, and the returned configuration connects
//! to exactly those addresses (`hostaddr`, keeping the host name), so a DNS answer that changes
//! between the check and the connection (DNS rebinding) cannot redirect it.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use tokio_postgres::config::Host;
use tokio_postgres::Config;

use super::host_policy::{parse_ip_literal, reserved_loopback, HostPolicy, Refusal, LOOPBACK_V4};

/// The port libpq and tokio-postgres use when none is given.
const DEFAULT_PORT: u16 = 5432;
/// Most hosts one connection string may list (each is resolved before connecting).
const MAX_HOSTS: usize = 16;
/// Most addresses of one host name that are tried.
const MAX_ADDRS_PER_HOST: usize = 16;

/// Why a connection string cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DestinationError {
    /// The policy refuses a destination.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The host list is malformed (counts of hosts, addresses and ports disagree, too many).
    #[error("{0}")]
    Invalid(String),
    /// A host name could not be resolved.
    #[error("could not resolve {host}: {reason}")]
    Resolve {
        /// The host name.
        host: String,
        /// Why.
        reason: String,
    },
}

/// One host entry of a connection string.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Dest {
    /// A TCP host: its name as written (None when it is an IP literal), and the address when
    /// known without DNS (an IP literal or an explicit `hostaddr`).
    Tcp {
        name: Option<String>,
        ip: Option<IpAddr>,
        port: u16,
    },
    /// A Unix socket directory (empty: the default socket) and the port naming its file.
    Socket { path: String, port: u16 },
}

/// The host entries of a parsed configuration, paired with their `hostaddr` and port the way
/// tokio-postgres pairs them.
fn destinations(config: &Config) -> Result<Vec<Dest>, DestinationError> {
    let hosts = config.get_hosts();
    let addrs = config.get_hostaddrs();
    let ports = config.get_ports();
    if hosts.is_empty() && addrs.is_empty() {
        // No host at all means libpq's default Unix socket.
        return Ok(vec![Dest::Socket {
            path: String::new(),
            port: ports.first().copied().unwrap_or(DEFAULT_PORT),
        }]);
    }
    if !hosts.is_empty() && !addrs.is_empty() && hosts.len() != addrs.len() {
        return Err(DestinationError::Invalid(format!(
            "the connection string lists {} hosts but {} hostaddrs",
            hosts.len(),
            addrs.len()
        )));
    }
    let count = hosts.len().max(addrs.len());
    if count > MAX_HOSTS {
        return Err(DestinationError::Invalid(format!(
            "the connection string lists {count} hosts; at most {MAX_HOSTS} are allowed"
        )));
    }
    if ports.len() > 1 && ports.len() != count {
        return Err(DestinationError::Invalid(
            "the connection string has a different number of ports and hosts".into(),
        ));
    }
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let port = ports
            .get(i)
            .or_else(|| ports.first())
            .copied()
            .unwrap_or(DEFAULT_PORT);
        let dest = match (hosts.get(i), addrs.get(i)) {
            // An explicit hostaddr is where the connection goes; the name only labels it.
            (_, Some(ip)) => Dest::Tcp {
                name: None,
                ip: Some(*ip),
                port,
            },
            (Some(Host::Unix(path)), None) => Dest::Socket {
                path: path_text(path),
                port,
            },
            (Some(Host::Tcp(host)), None) if host.trim().is_empty() => Dest::Socket {
                path: String::new(),
                port,
            },
            (Some(Host::Tcp(host)), None) => match parse_ip_literal(host) {
                Some(ip) => Dest::Tcp {
                    name: None,
                    ip: Some(ip),
                    port,
                },
                None => Dest::Tcp {
                    name: Some(host.clone()),
                    ip: None,
                    port,
                },
            },
            (None, None) => continue,
        };
        out.push(dest);
    }
    Ok(out)
}

fn path_text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// The checks possible without DNS, for saving a connection string: sockets, IP literals and
/// `localhost` names are refused unless allowed, denied names and addresses are refused.
/// A string tokio-postgres cannot parse passes (it fails later, when a cell connects).
pub fn check_without_dns(policy: &HostPolicy, conn: &str) -> Result<(), DestinationError> {
    let Ok(config) = conn.parse::<Config>() else {
        return Ok(());
    };
    for dest in destinations(&config)? {
        match dest {
            Dest::Socket { path, .. } => policy.check_socket(&path)?,
            Dest::Tcp { name, ip, port } => {
                // `localhost` always resolves to a loopback address (RFC 6761).
                let ip = ip.or_else(|| {
                    name.as_deref()
                        .filter(|n| reserved_loopback(n))
                        .map(|_| LOOPBACK_V4)
                });
                policy.check(name.as_deref(), ip, port)?;
            }
        }
    }
    Ok(())
}

/// Resolves every host of `config`, checks every address, and returns a configuration that
/// connects only to the checked addresses (or to an allowed socket).
pub async fn resolve_and_pin(
    policy: &HostPolicy,
    config: &Config,
    dns_timeout: Duration,
) -> Result<Config, DestinationError> {
    let mut pinned = copy_settings(config);
    for dest in destinations(config)? {
        match dest {
            Dest::Socket { path, port } => {
                policy.check_socket(&path)?;
                if path.is_empty() {
                    // Allowed only by an explicit entry, which names a directory, never "".
                    return Err(Refusal::Socket { path }.into());
                }
                // A socket has no hostaddr, and hosts and hostaddrs must pair up one to one.
                if !pinned.get_hostaddrs().is_empty() {
                    return Err(mixed());
                }
                pinned.host_path(&path);
                pinned.port(port);
            }
            Dest::Tcp {
                name,
                ip: Some(ip),
                port,
            } => {
                policy.check(name.as_deref(), Some(ip), port)?;
                pin_tcp(&mut pinned, name.as_deref(), ip, port)?;
            }
            Dest::Tcp {
                name: Some(name),
                ip: None,
                port,
            } => {
                // A denied name is refused before any DNS query is made for it.
                policy.check(Some(&name), None, port)?;
                let ips = resolve(&name, port, dns_timeout).await?;
                for ip in &ips {
                    policy.check(Some(&name), Some(*ip), port)?;
                }
                for ip in ips {
                    pin_tcp(&mut pinned, Some(&name), ip, port)?;
                }
            }
            Dest::Tcp {
                name: None,
                ip: None,
                ..
            } => {}
        }
    }
    Ok(pinned)
}

fn mixed() -> DestinationError {
    DestinationError::Invalid("a connection string cannot mix Unix sockets and TCP hosts".into())
}

fn pin_tcp(
    pinned: &mut Config,
    name: Option<&str>,
    ip: IpAddr,
    port: u16,
) -> Result<(), DestinationError> {
    if pinned.get_hosts().len() != pinned.get_hostaddrs().len() {
        return Err(mixed());
    }
    // The name stays as the host (for TLS server names); the connection goes to `ip`.
    pinned.host(name.map_or_else(|| ip.to_string(), str::to_string));
    pinned.hostaddr(ip);
    pinned.port(port);
    Ok(())
}

async fn resolve(name: &str, port: u16, limit: Duration) -> Result<Vec<IpAddr>, DestinationError> {
    let failed = |reason: String| DestinationError::Resolve {
        host: name.to_string(),
        reason,
    };
    let found = tokio::time::timeout(limit, tokio::net::lookup_host((name, port)))
        .await
        .map_err(|_| failed(format!("timed out after {} s", limit.as_secs())))?
        .map_err(|e| failed(e.to_string()))?;
    let mut ips: Vec<IpAddr> = Vec::new();
    for addr in found {
        if !ips.contains(&addr.ip()) && ips.len() < MAX_ADDRS_PER_HOST {
            ips.push(addr.ip());
        }
    }
    if ips.is_empty() {
        return Err(failed("no addresses".into()));
    }
    Ok(ips)
}

/// A configuration with every setting of `config` except its hosts, addresses and ports.
fn copy_settings(config: &Config) -> Config {
    let mut out = Config::new();
    if let Some(user) = config.get_user() {
        out.user(user);
    }
    if let Some(password) = config.get_password() {
        out.password(password);
    }
    if let Some(dbname) = config.get_dbname() {
        out.dbname(dbname);
    }
    if let Some(options) = config.get_options() {
        out.options(options);
    }
    if let Some(name) = config.get_application_name() {
        out.application_name(name);
    }
    if let Some(timeout) = config.get_connect_timeout() {
        out.connect_timeout(*timeout);
    }
    if let Some(timeout) = config.get_tcp_user_timeout() {
        out.tcp_user_timeout(*timeout);
    }
    out.ssl_mode(config.get_ssl_mode())
        .ssl_negotiation(config.get_ssl_negotiation())
        .keepalives(config.get_keepalives())
        .keepalives_idle(config.get_keepalives_idle())
        .target_session_attrs(config.get_target_session_attrs())
        .channel_binding(config.get_channel_binding())
        .load_balance_hosts(config.get_load_balance_hosts());
    if let Some(interval) = config.get_keepalives_interval() {
        out.keepalives_interval(interval);
    }
    if let Some(retries) = config.get_keepalives_retries() {
        out.keepalives_retries(retries);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SqlHostPolicy;

    fn policy(allowed: &[&str], denied: &[&str]) -> HostPolicy {
        HostPolicy::from_settings(&SqlHostPolicy {
            allowed: allowed.iter().map(|s| s.to_string()).collect(),
            denied: denied.iter().map(|s| s.to_string()).collect(),
        })
        .expect("valid policy")
    }

    #[test]
    fn static_check_refuses_literals_sockets_and_localhost() {
        let p = policy(&[], &[]);
        for conn in [
            "postgres://u:p@127.0.0.1/db",
            "postgres://u:p@127.0.0.1:6543/db",
            "postgres://u@localhost/db",
            "postgres://u@LOCALHOST./db",
            "postgres://u@[::1]:5432/db",
            "postgres://u@[::ffff:127.0.0.1]/db",
            "postgres://u@0.0.0.0/db",
            "postgres://u@[::]/db",
            "postgres://u@169.254.169.254/db",
            "postgres://u@[fe80::1]/db",
            "postgres://u@127.1/db",
            "postgres://u@2130706433/db",
            "postgres://u@db.example,127.0.0.1/db",
            "postgres://u@db.example/db?host=%2Fvar%2Frun%2Fpostgresql",
            "postgres://u@%2Fvar%2Frun%2Fpostgresql/db",
            "postgres://u@db.example/db?hostaddr=127.0.0.1",
            "host=/var/run/postgresql user=u",
            "host=db.example,localhost user=u",
            "host='' user=u",
            "user=u dbname=x",
        ] {
            let Err(err) = check_without_dns(&p, conn) else {
                panic!("{conn} passed");
            };
            assert!(
                err.to_string().contains("SQL_ALLOWED_HOSTS"),
                "{conn}: {err}"
            );
        }
        for conn in [
            "postgres://u:p@db.example/db",
            "postgres://u@10.0.0.5:5433/db",
            "postgres://u@[2001:db8::1]/db",
            "host=a.example,b.example port=1,2 user=u",
            "not a connection string ===",
        ] {
            assert!(check_without_dns(&p, conn).is_ok(), "{conn}");
        }
    }

    #[test]
    fn static_check_applies_allow_and_deny_lists() {
        let p = policy(
            &["127.0.0.1", "/var/run/postgresql"],
            &["10.0.0.0/8", "evil.example"],
        );
        assert!(check_without_dns(&p, "postgres://u@127.0.0.1/db").is_ok());
        assert!(check_without_dns(&p, "postgres://u@localhost/db").is_ok());
        assert!(check_without_dns(&p, "host=/var/run/postgresql user=u").is_ok());
        assert!(check_without_dns(&p, "postgres://u@[::1]/db").is_err());
        for conn in ["postgres://u@10.1.1.1/db", "postgres://u@EVIL.example/db"] {
            let err = check_without_dns(&p, conn).unwrap_err();
            assert!(
                err.to_string().contains("SQL_DENIED_HOSTS"),
                "{conn}: {err}"
            );
        }
    }

    #[tokio::test]
    async fn pins_checked_addresses() {
        let p = policy(&["127.0.0.1"], &[]);
        let config: Config = "postgres://u:pw@127.0.0.1:5433,localhost:5434/db?application_name=x"
            .parse()
            .unwrap();
        let pinned = resolve_and_pin(&p, &config, Duration::from_secs(5)).await;
        // `localhost` may also resolve to ::1, which is not allowed: all addresses must pass.
        match pinned {
            Ok(pinned) => {
                assert!(pinned.get_hostaddrs().iter().all(|ip| *ip == LOOPBACK_V4));
                assert_eq!(pinned.get_hosts().len(), pinned.get_hostaddrs().len());
                assert_eq!(pinned.get_hosts()[0], Host::Tcp("127.0.0.1".into()));
                assert_eq!(pinned.get_hosts()[1], Host::Tcp("localhost".into()));
                assert_eq!(pinned.get_ports(), &[5433, 5434]);
                assert_eq!(pinned.get_user(), Some("u"));
                assert_eq!(pinned.get_password(), Some(&b"pw"[..]));
                assert_eq!(pinned.get_dbname(), Some("db"));
                assert_eq!(pinned.get_application_name(), Some("x"));
            }
            Err(DestinationError::Refused(Refusal::Local { target, .. })) => {
                assert!(target.contains("::1"), "{target}");
            }
            Err(e) => panic!("unexpected {e}"),
        }
        let refused = resolve_and_pin(
            &policy(&[], &[]),
            &"postgres://u@localhost/db".parse().unwrap(),
            Duration::from_secs(5),
        )
        .await;
        assert!(
            matches!(refused, Err(DestinationError::Refused(_))),
            "{refused:?}"
        );
        let denied = resolve_and_pin(
            &policy(&["localhost"], &["localhost"]),
            &"postgres://u@localhost/db".parse().unwrap(),
            Duration::from_secs(5),
        )
        .await;
        assert!(
            matches!(
                denied,
                Err(DestinationError::Refused(Refusal::Denied { .. }))
            ),
            "{denied:?}"
        );
    }

    #[test]
    fn malformed_host_lists_are_errors() {
        let config: Config = "host=a,b hostaddr=10.0.0.1 user=u".parse().unwrap();
        assert!(matches!(
            destinations(&config),
            Err(DestinationError::Invalid(_))
        ));
        let many = (0..20)
            .map(|i| format!("h{i}"))
            .collect::<Vec<_>>()
            .join(",");
        let config: Config = format!("host={many} user=u").parse().unwrap();
        assert!(matches!(
            destinations(&config),
            Err(DestinationError::Invalid(_))
        ));
    }
}
