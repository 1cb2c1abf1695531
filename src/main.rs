//! Command line: `serve` (default), `migrate`, `token --user ID`, `check [--json]`,
//! `run PATH [-o OUT] [-p NAME=VALUE]...`. Every setting flag is accepted before or after the
//! subcommand.

use clap::{Parser, Subcommand};

use reactive_notebook::auth::{mint_local_token, AuthMode};
use reactive_notebook::check;
use reactive_notebook::config::{Config, Settings};
use reactive_notebook::db::migrate;
use reactive_notebook::headless::{self, RunArgs};
use reactive_notebook::server;

/// A server for reactive Python and SQL notebooks.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    settings: Settings,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print a sign-in token for local mode.
    Token {
        /// The user id to sign in as.
        #[arg(long)]
        user: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 30 * 24 * 3600)]
        ttl: u64,
    },
    /// Check what this host can and cannot do (database, keys, DATA_DIR, sandbox, Python,
    /// disk); exits non-zero when an item fails.
    Check {
        /// Print JSON instead of one line per item.
        #[arg(long)]
        json: bool,
    },
    /// Run a notebook file (.ipynb or percent-format .py) in a sandboxed kernel, without the
    /// server or its database, and optionally write its outputs (.ipynb or .html). Exits 0 when
    /// every cell succeeded, 1 when one failed, 2 on bad usage or input, 130 on Ctrl+C.
    Run(RunArgs),
}

fn main() {
    let _ = dotenvy::dotenv();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            // One clear line naming the setting; clap's usage text would bury it.
            let rendered = e.render().to_string();
            eprintln!(
                "{}",
                rendered
                    .lines()
                    .next()
                    .unwrap_or("error: invalid arguments")
            );
            std::process::exit(2);
        }
    };
    // A headless run talks to its user on stderr itself; the server's info lines (kernel
    // spawned, sandbox layers) would only bury that, so it logs warnings unless RUST_LOG says.
    let default_filter = if matches!(cli.command, Some(Command::Run(_))) {
        "warn"
    } else {
        "info"
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default_filter))
        .init();
    if let Some(Command::Check { json }) = cli.command {
        std::process::exit(run_check(cli.settings, json));
    }
    let config = match cli.settings.into_config() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    if let Some(Command::Run(args)) = cli.command {
        std::process::exit(headless::main(args, &config));
    }
    let code = match actix_web::rt::System::new().block_on(run(cli.command, config)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    };
    std::process::exit(code);
}

async fn run(command: Option<Command>, config: Config) -> Result<(), String> {
    match command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config).await,
        Command::Migrate => {
            let applied = migrate::run_pending(&config.database)
                .await
                .map_err(|e| e.to_string())?;
            if applied.is_empty() {
                println!("database is up to date");
            } else {
                for version in applied {
                    println!("applied {version}");
                }
            }
            Ok(())
        }
        // Handled in main before the settings are validated.
        Command::Check { .. } => Err("check runs on its own".into()),
        // Handled in main: it needs no server runtime.
        Command::Run(_) => Err("run runs on its own".into()),
        Command::Token { user, ttl } => {
            if config.auth.jwt_key.is_some()
                || config.auth.jwks_url.is_some()
                || config.auth.secret_key.is_some()
            {
                return Err("tokens are minted by Clerk when CLERK_* keys are set".into());
            }
            let token =
                mint_local_token(&config.data_dir, &user, ttl).map_err(|e| e.to_string())?;
            println!("{token}");
            Ok(())
        }
    }
}

async fn serve(config: Config) -> Result<(), String> {
    let running = server::start(config).await.map_err(|e| e.to_string())?;
    if running.verifier.mode() == AuthMode::Local {
        match running.verifier.mint("local", 30 * 24 * 3600) {
            Ok(token) => {
                let url = format!("http://{}/#token={token}", running.addr);
                log::info!("local sign-in mode; open {url}");
            }
            Err(e) => log::error!("could not mint the local sign-in token: {e}"),
        }
    }
    running.run_until_signal().await.map_err(|e| e.to_string())
}

/// Runs `check`; an invalid setting is its first (failed) item rather than an early exit.
fn run_check(settings: Settings, json: bool) -> i32 {
    let report = match settings.into_config() {
        Ok(config) => actix_web::rt::System::new().block_on(check::run(&config)),
        Err(e) => check::config_failed(&e.to_string()),
    };
    if json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    i32::from(report.failed())
}
