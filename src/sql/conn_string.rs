//! Validating notebook connection strings and hiding their passwords.

/// Why a connection string was refused.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConnStringError(pub String);

/// Accepts only `postgres://` / `postgresql://` URLs with a host.
pub fn validate(conn: &str) -> Result<(), ConnStringError> {
    let lower = conn.to_ascii_lowercase();
    if !(lower.starts_with("postgres://") || lower.starts_with("postgresql://")) {
        return Err(ConnStringError(
            "connection_string must be a postgres:// or postgresql:// URL".into(),
        ));
    }
    let url = url::Url::parse(conn)
        .map_err(|e| ConnStringError(format!("connection_string is not a valid URL: {e}")))?;
    if url.host_str().is_none_or(str::is_empty) && !url.query_pairs().any(|(k, _)| k == "host") {
        return Err(ConnStringError("connection_string has no host".into()));
    }
    Ok(())
}

/// The connection string with any password (in the user info or a `password` query parameter)
/// replaced by `***`, so it can be shown to clients and written to logs.
pub fn mask_password(conn: &str) -> String {
    let Ok(mut url) = url::Url::parse(conn) else {
        return "***".into();
    };
    if url.password().is_some() && url.set_password(Some("***")).is_err() {
        return "***".into();
    }
    let has_query_password = url
        .query_pairs()
        .any(|(k, _)| k.eq_ignore_ascii_case("password"));
    if has_query_password {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                if k.eq_ignore_ascii_case("password") {
                    (k.into_owned(), "***".to_string())
                } else {
                    (k.into_owned(), v.into_owned())
                }
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string().replace("%2A%2A%2A", "***")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_user_info_and_query_passwords() {
        assert_eq!(
            mask_password("postgres://bob:s3cret@db:5432/x"),
            "postgres://bob:***@db:5432/x"
        );
        assert_eq!(
            mask_password("postgresql://db/x?user=a&password=s3cret"),
            "postgresql://db/x?user=a&password=***"
        );
        assert_eq!(mask_password("postgres://db/x"), "postgres://db/x");
    }

    #[test]
    fn validates_scheme_and_host() {
        assert!(validate("postgres://u:p@localhost/db").is_ok());
        assert!(validate("postgresql://localhost").is_ok());
        assert!(validate("mysql://localhost/db").is_err());
        assert!(validate("not a url").is_err());
        assert!(validate("postgres://").is_err());
    }
}
