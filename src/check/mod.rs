//! `reactive-notebook check`: what this host can and cannot do, one line per item with
//! ok/warn/fail and a hint. It reads and probes only; nothing is created or migrated.

mod database;
mod host;
mod python;
mod report;

pub use report::{Item, Level, Report};

use crate::auth::{probe_key_source, KeyProbe};
use crate::config::{Config, DatabaseTarget};

/// Runs every check against `config` (already parsed, so the first item is ok).
pub async fn run(config: &Config) -> Report {
    let mut items = vec![Item::ok("config", describe_config(config))];
    items.push(database::check(&config.database).await);
    items.push(key_source(config).await);
    items.push(host::data_dir(&config.data_dir));
    items.push(host::sandbox(&config.kernel_limits));
    items.push(python::check(config).await);
    items.push(assistant(config));
    items.push(host::free_disk(&config.data_dir));
    Report { items }
}

/// The report when the settings themselves are invalid: nothing else can be checked.
pub fn config_failed(error: &str) -> Report {
    Report {
        items: vec![Item::fail(
            "config",
            error.to_string(),
            "fix that setting (environment, .env or --flag) and run check again",
        )],
    }
}

fn describe_config(config: &Config) -> String {
    let database = match &config.database {
        DatabaseTarget::Postgres(_) => "postgresql".to_string(),
        DatabaseTarget::Sqlite(path) => format!("sqlite {}", path.display()),
    };
    format!(
        "parsed (bind {}, database {database}, DATA_DIR {})",
        config.bind,
        config.data_dir.display()
    )
}

async fn key_source(config: &Config) -> Item {
    const NAME: &str = "auth";
    let http = reqwest::Client::new();
    match probe_key_source(&config.auth, &config.data_dir, http).await {
        Ok(KeyProbe::Loaded(what)) => Item::ok(NAME, what),
        Ok(KeyProbe::LocalKeyMissing(path)) => Item::ok(
            NAME,
            format!(
                "local sign-in mode; {} does not exist yet (serve creates it)",
                path.display()
            ),
        ),
        Err(e) => Item::fail(
            NAME,
            e.to_string(),
            "check CLERK_JWT_KEY / CLERK_JWKS_URL / CLERK_SECRET_KEY and that the JWKS URL is reachable from this host",
        ),
    }
}

fn assistant(config: &Config) -> Item {
    const NAME: &str = "assistant";
    if config.anthropic_api_key.is_some() {
        Item::ok(
            NAME,
            format!(
                "ANTHROPIC_API_KEY set (model {}, {})",
                config.anthropic_model, config.anthropic_base_url
            ),
        )
    } else {
        Item::warn(
            NAME,
            "ANTHROPIC_API_KEY is not set: the assistant is disabled".into(),
            "set ANTHROPIC_API_KEY to enable it (everything else works without it)",
        )
    }
}
