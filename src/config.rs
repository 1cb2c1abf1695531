//! Settings from the environment (a `.env` file is read too) and command-line flags.

use std::path::PathBuf;

use clap::Args;

/// Where notebooks are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseTarget {
    /// A PostgreSQL URL (`postgres://` or `postgresql://`).
    Postgres(String),
    /// A SQLite database file.
    Sqlite(PathBuf),
}

/// How tokens are verified; all optional (none set = local sign-in mode).
#[derive(Debug, Clone, Default)]
pub struct AuthSettings {
    /// PEM public key text (`CLERK_JWT_KEY`), `\n` escapes accepted.
    pub jwt_key: Option<String>,
    /// A JWKS URL (`CLERK_JWKS_URL`).
    pub jwks_url: Option<String>,
    /// Clerk Backend API secret key (`CLERK_SECRET_KEY`), used to fetch the JWKS.
    pub secret_key: Option<String>,
    /// Clerk Backend API base URL (`CLERK_API_URL`).
    pub api_url: String,
    /// Accepted `azp` values (`CLERK_AUTHORIZED_PARTIES`); empty = not checked.
    pub authorized_parties: Vec<String>,
    /// Required `iss` (`CLERK_ISSUER`).
    pub issuer: Option<String>,
    /// Publishable key handed to the web UI (`CLERK_PUBLISHABLE_KEY`).
    pub publishable_key: Option<String>,
    /// Minimum seconds between two JWKS refetches caused by an unknown `kid`.
    pub jwks_refetch_interval_secs: u64,
}

/// How much of the kernel sandbox to use (`KERNEL_SANDBOX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SandboxMode {
    /// Every layer this host supports; missing ones are logged.
    Auto,
    /// Refuse to start kernels unless namespaces, Landlock and seccomp are all available.
    Strict,
    /// No sandbox (rlimits only), logged as a warning.
    Off,
}

/// The network a kernel gets (`KERNEL_NETWORK`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KernelNetwork {
    /// The host's network.
    Full,
    /// An empty network namespace (loopback only, reaching nothing outside the kernel).
    None,
}

/// Limits and isolation applied to every kernel.
#[derive(Debug, Clone)]
pub struct KernelLimits {
    /// Sandbox mode.
    pub sandbox: SandboxMode,
    /// Network access.
    pub network: KernelNetwork,
    /// Most processes (and threads) one kernel may run (`RLIMIT_NPROC`, `pids.max`).
    pub max_procs: u64,
    /// Largest file a kernel may write, in MiB (`RLIMIT_FSIZE`).
    pub max_file_mb: u64,
    /// Size of the kernel's private `/tmp`, in MiB.
    pub tmp_mb: u64,
    /// Most open files per kernel process (`RLIMIT_NOFILE`).
    pub max_open_files: u64,
    /// A writable cgroup v2 directory to create per-kernel cgroups in (None = auto-detect).
    pub cgroup: Option<PathBuf>,
    /// CPU limit per kernel in CPUs (`cpu.max`), when a cgroup is available.
    pub cpus: Option<f64>,
    /// First uid (and gid) of the range kernels run as when the server runs as root: each live
    /// kernel gets its own, so their process counts and files never mix.
    pub uid: u32,
}

impl Default for KernelLimits {
    fn default() -> Self {
        KernelLimits {
            sandbox: SandboxMode::Auto,
            network: KernelNetwork::Full,
            max_procs: 256,
            max_file_mb: 1024,
            tmp_mb: 256,
            max_open_files: 1024,
            cgroup: None,
            cpus: None,
            uid: 100_000,
        }
    }
}

/// Per-user and server-wide quotas.
#[derive(Debug, Clone)]
pub struct Quotas {
    /// Live kernels one user may hold.
    pub kernels_per_user: usize,
    /// Live kernels on this server.
    pub max_kernels: usize,
    /// Notebooks one user may own.
    pub notebooks_per_user: u64,
    /// Cells one notebook may hold.
    pub cells_per_notebook: u64,
}

impl Quotas {
    /// Defaults; `MAX_KERNELS` is the host's memory divided by the kernel memory limit.
    pub fn defaults_for(kernel_memory_mb: u64) -> Quotas {
        Quotas {
            kernels_per_user: 4,
            max_kernels: default_max_kernels(kernel_memory_mb),
            notebooks_per_user: 1000,
            cells_per_notebook: 20000,
        }
    }
}

/// Host memory / per-kernel memory, at least 1 (64 when either is unknown or unlimited).
pub fn default_max_kernels(kernel_memory_mb: u64) -> usize {
    // SAFETY: sysconf only reads system constants.
    let (pages, page_size) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    if kernel_memory_mb == 0 || pages <= 0 || page_size <= 0 {
        return 64;
    }
    let total_mb = (pages as u64).saturating_mul(page_size as u64) / (1024 * 1024);
    usize::try_from((total_mb / kernel_memory_mb).max(1)).unwrap_or(64)
}

/// Which hosts SQL cells may connect to, beyond the default refusal of local addresses.
#[derive(Debug, Clone, Default)]
pub struct SqlHostPolicy {
    /// Hosts, `host:port` pairs or CIDRs allowed even though they are local
    /// (`SQL_ALLOWED_HOSTS`).
    pub allowed: Vec<String>,
    /// Hosts, `host:port` pairs or CIDRs always refused (`SQL_DENIED_HOSTS`).
    pub denied: Vec<String>,
}

/// Several instances on one PostgreSQL (ignored on SQLite, which is single-instance).
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// The address other instances reach this one at (`INSTANCE_URL`; None = `http://` + the
    /// bound address).
    pub instance_url: Option<String>,
    /// Seconds a notebook lease lasts without renewal (`LEASE_SECS`): how long a dead
    /// instance's notebooks wait before another instance takes them.
    pub lease_secs: u64,
    /// Shared secret instances prove forwarded requests with (`CLUSTER_SECRET`); None = no
    /// forwarding, and forwarded identities are refused.
    pub secret: Option<String>,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            instance_url: None,
            lease_secs: 10,
            secret: None,
        }
    }
}

/// Everything the server needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on.
    pub bind: String,
    /// The notebook store.
    pub database: DatabaseTarget,
    /// Directory for the SQLite file, the local signing key and kernel working directories.
    pub data_dir: PathBuf,
    /// CORS origins allowed to call the API (empty = same origin only).
    pub allowed_origins: Vec<String>,
    /// Token verification settings.
    pub auth: AuthSettings,
    /// Python interpreter for kernels; with `managed_python`, the host interpreter the managed
    /// virtualenv is created from and kernels' fallback if provisioning fails.
    pub python: String,
    /// `PYTHON` is unset: the server provisions its own virtualenv under `DATA_DIR/python/`.
    pub managed_python: bool,
    /// Install the managed environment offline from wheels in this directory (`PYTHON_WHEELS_DIR`).
    pub python_wheels_dir: Option<PathBuf>,
    /// Per-cell execution limit in seconds.
    pub kernel_timeout_secs: u64,
    /// Kernel memory limit in MiB (0 = none).
    pub kernel_memory_mb: u64,
    /// Sandbox and resource limits of every kernel.
    pub kernel_limits: KernelLimits,
    /// Per-user and server-wide quotas.
    pub quotas: Quotas,
    /// Spare kernels kept started for new notebooks (`KERNEL_POOL`; 0 = none).
    pub kernel_pool: usize,
    /// Which hosts SQL cells may reach.
    pub sql_hosts: SqlHostPolicy,
    /// Seconds a notebook room lingers with no sessions and no work before it stops.
    pub room_idle_secs: u64,
    /// Seconds a WebSocket may wait before authenticating.
    pub ws_auth_timeout_secs: u64,
    /// Seconds a WebSocket session may outlive its token before it is closed.
    pub ws_auth_grace_secs: u64,
    /// Seconds an invite code stays valid (`INVITE_TTL_SECS`).
    pub invite_ttl_secs: u64,
    /// Serve the web UI from this directory instead of the embedded copy.
    pub static_dir: Option<PathBuf>,
    /// Apply pending migrations when serving.
    pub migrate_on_start: bool,
    /// Anthropic API key for the assistant.
    pub anthropic_api_key: Option<String>,
    /// Anthropic API base URL.
    pub anthropic_base_url: String,
    /// Anthropic model name.
    pub anthropic_model: String,
    /// Bearer token `/metrics` requires (`METRICS_TOKEN`); None = open.
    pub metrics_token: Option<String>,
    /// Seconds between two looks of the scheduler for due schedules (`SCHEDULE_TICK_SECS`).
    pub schedule_tick_secs: u64,
    /// Accept 6-field cron expressions with a leading seconds field (`SCHEDULE_ALLOW_SECONDS`).
    pub schedule_allow_seconds: bool,
    /// Recorded runs kept per notebook; older ones are deleted (`RUN_HISTORY`).
    pub run_history: usize,
    /// Leases and forwarding between instances.
    pub cluster: ClusterSettings,
}

impl Config {
    /// Defaults for everything, storing data under `data_dir` (SQLite, local sign-in).
    pub fn with_data_dir(data_dir: impl Into<PathBuf>) -> Config {
        let data_dir = data_dir.into();
        Config {
            bind: "127.0.0.1:8000".into(),
            database: DatabaseTarget::Sqlite(data_dir.join("notebooks.db")),
            data_dir,
            allowed_origins: Vec::new(),
            auth: AuthSettings {
                api_url: DEFAULT_CLERK_API_URL.into(),
                jwks_refetch_interval_secs: 30,
                ..AuthSettings::default()
            },
            python: "python3".into(),
            managed_python: false,
            python_wheels_dir: None,
            kernel_timeout_secs: 300,
            kernel_memory_mb: 2048,
            kernel_limits: KernelLimits::default(),
            quotas: Quotas::defaults_for(2048),
            // The command line defaults to 1; built in code (tests, tools) there is none.
            kernel_pool: 0,
            sql_hosts: SqlHostPolicy::default(),
            room_idle_secs: 300,
            ws_auth_timeout_secs: 10,
            ws_auth_grace_secs: 30,
            invite_ttl_secs: 7 * 24 * 3600,
            static_dir: None,
            migrate_on_start: true,
            anthropic_api_key: None,
            anthropic_base_url: DEFAULT_ANTHROPIC_URL.into(),
            anthropic_model: DEFAULT_ANTHROPIC_MODEL.into(),
            metrics_token: None,
            schedule_tick_secs: 15,
            schedule_allow_seconds: false,
            run_history: 100,
            cluster: ClusterSettings::default(),
        }
    }
}

const DEFAULT_CLERK_API_URL: &str = "https://api.clerk.com";
const DEFAULT_ANTHROPIC_URL: &str = "https://api.anthropic.com";
const DEFAULT_ANTHROPIC_MODEL: &str = "claude-sonnet-4-5";

/// Settings as read from flags and environment variables (see the README's table).
/// Every flag is `global`, so it goes before or after the subcommand (`serve --no-migrate`).
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Address to listen on.
    #[arg(long, global = true, env = "BIND", default_value = "127.0.0.1:8000")]
    pub bind: String,
    /// PostgreSQL URL or `sqlite://PATH`; unset = SQLite file `notebooks.db` in DATA_DIR.
    #[arg(long, global = true, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// Data directory.
    #[arg(long, global = true, env = "DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Comma-separated CORS origins.
    #[arg(long, global = true, env = "ALLOWED_ORIGINS", default_value = "")]
    pub allowed_origins: String,
    /// Clerk PEM public key.
    #[arg(long, global = true, env = "CLERK_JWT_KEY", hide_env_values = true)]
    pub clerk_jwt_key: Option<String>,
    /// JWKS URL.
    #[arg(long, global = true, env = "CLERK_JWKS_URL")]
    pub clerk_jwks_url: Option<String>,
    /// Clerk secret key (JWKS from the Backend API).
    #[arg(long, global = true, env = "CLERK_SECRET_KEY", hide_env_values = true)]
    pub clerk_secret_key: Option<String>,
    /// Clerk Backend API base URL.
    #[arg(long, global = true, env = "CLERK_API_URL", default_value = DEFAULT_CLERK_API_URL)]
    pub clerk_api_url: String,
    /// Comma-separated accepted `azp` values.
    #[arg(
        long,
        global = true,
        env = "CLERK_AUTHORIZED_PARTIES",
        default_value = ""
    )]
    pub clerk_authorized_parties: String,
    /// Required token issuer.
    #[arg(long, global = true, env = "CLERK_ISSUER")]
    pub clerk_issuer: Option<String>,
    /// Clerk publishable key for the web UI.
    #[arg(long, global = true, env = "CLERK_PUBLISHABLE_KEY")]
    pub clerk_publishable_key: Option<String>,
    /// Python interpreter for kernels; unset = a virtualenv the server provisions in DATA_DIR/python.
    #[arg(long, global = true, env = "PYTHON")]
    pub python: Option<String>,
    /// Install the managed environment offline from the wheels in this directory.
    #[arg(long, global = true, env = "PYTHON_WHEELS_DIR")]
    pub python_wheels_dir: Option<PathBuf>,
    /// Per-cell execution limit in seconds.
    #[arg(long, global = true, env = "KERNEL_TIMEOUT_SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub kernel_timeout_secs: u64,
    /// Kernel memory limit in MiB (0 = none).
    #[arg(long, global = true, env = "KERNEL_MEMORY_MB", default_value_t = 2048)]
    pub kernel_memory_mb: u64,
    /// Kernel sandbox: auto, strict or off.
    #[arg(
        long,
        global = true,
        env = "KERNEL_SANDBOX",
        value_enum,
        default_value = "auto"
    )]
    pub kernel_sandbox: SandboxMode,
    /// Kernel network: full or none.
    #[arg(
        long,
        global = true,
        env = "KERNEL_NETWORK",
        value_enum,
        default_value = "full"
    )]
    pub kernel_network: KernelNetwork,
    /// Most processes and threads per kernel.
    #[arg(long, global = true, env = "KERNEL_MAX_PROCS", default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..))]
    pub kernel_max_procs: u64,
    /// Largest file a kernel may write, in MiB.
    #[arg(long, global = true, env = "KERNEL_MAX_FILE_MB", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub kernel_max_file_mb: u64,
    /// Size of each kernel's private /tmp, in MiB.
    #[arg(long, global = true, env = "KERNEL_TMP_MB", default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..))]
    pub kernel_tmp_mb: u64,
    /// A writable cgroup v2 directory for per-kernel cgroups (default: auto-detect).
    #[arg(long, global = true, env = "KERNEL_CGROUP")]
    pub kernel_cgroup: Option<PathBuf>,
    /// CPUs per kernel (cgroup cpu.max), e.g. 0.5 or 2.
    #[arg(long, global = true, env = "KERNEL_CPUS")]
    pub kernel_cpus: Option<f64>,
    /// First uid (and gid) of the range kernels run as when the server runs as root.
    #[arg(long, global = true, env = "KERNEL_UID", default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub kernel_uid: u32,
    /// Live kernels per user.
    #[arg(long, global = true, env = "KERNELS_PER_USER", default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..))]
    pub kernels_per_user: u64,
    /// Live kernels on this server (default: memory / KERNEL_MEMORY_MB).
    #[arg(long, global = true, env = "MAX_KERNELS", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_kernels: Option<u64>,
    /// Spare kernels kept started, so a new notebook's first run does not wait for Python.
    #[arg(long, global = true, env = "KERNEL_POOL", default_value_t = 1)]
    pub kernel_pool: u64,
    /// Notebooks per user.
    #[arg(long, global = true, env = "NOTEBOOKS_PER_USER", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub notebooks_per_user: u64,
    /// Cells per notebook.
    #[arg(long, global = true, env = "CELLS_PER_NOTEBOOK", default_value_t = 20000, value_parser = clap::value_parser!(u64).range(1..))]
    pub cells_per_notebook: u64,
    /// Comma-separated hosts, host:port pairs or CIDRs SQL cells may reach although local.
    #[arg(long, global = true, env = "SQL_ALLOWED_HOSTS", default_value = "")]
    pub sql_allowed_hosts: String,
    /// Comma-separated hosts, host:port pairs or CIDRs SQL cells may never reach.
    #[arg(long, global = true, env = "SQL_DENIED_HOSTS", default_value = "")]
    pub sql_denied_hosts: String,
    /// Seconds an idle notebook keeps its kernel.
    #[arg(long, global = true, env = "ROOM_IDLE_SECS", default_value_t = 300)]
    pub room_idle_secs: u64,
    /// Seconds a WebSocket session may outlive its token.
    #[arg(long, global = true, env = "WS_AUTH_GRACE_SECS", default_value_t = 30)]
    pub ws_auth_grace_secs: u64,
    /// Seconds an invite code stays valid (default 7 days).
    #[arg(long, global = true, env = "INVITE_TTL_SECS", default_value_t = 7 * 24 * 3600)]
    pub invite_ttl_secs: u64,
    /// Serve the web UI from this directory instead of the embedded copy.
    #[arg(long, global = true, env = "STATIC_DIR")]
    pub static_dir: Option<PathBuf>,
    /// Do not apply pending migrations at start.
    #[arg(long, global = true)]
    pub no_migrate: bool,
    /// Anthropic API key for the assistant.
    #[arg(long, global = true, env = "ANTHROPIC_API_KEY", hide_env_values = true)]
    pub anthropic_api_key: Option<String>,
    /// Anthropic API base URL.
    #[arg(long, global = true, env = "ANTHROPIC_BASE_URL", default_value = DEFAULT_ANTHROPIC_URL)]
    pub anthropic_base_url: String,
    /// Anthropic model.
    #[arg(long, global = true, env = "ANTHROPIC_MODEL", default_value = DEFAULT_ANTHROPIC_MODEL)]
    pub anthropic_model: String,
    /// Bearer token required by GET /metrics (unset: open).
    #[arg(long, global = true, env = "METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// Seconds between two looks of the scheduler for due schedules.
    #[arg(long, global = true, env = "SCHEDULE_TICK_SECS", default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub schedule_tick_secs: u64,
    /// Accept 6-field cron expressions whose first field is seconds.
    #[arg(long, global = true, env = "SCHEDULE_ALLOW_SECONDS", default_value_t = false, action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub schedule_allow_seconds: bool,
    /// Recorded runs kept per notebook (older ones are deleted).
    #[arg(long, global = true, env = "RUN_HISTORY", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub run_history: u64,
    /// The URL other instances reach this one at (default: http:// + the bound address).
    #[arg(long, global = true, env = "INSTANCE_URL")]
    pub instance_url: Option<String>,
    /// Seconds a notebook lease lasts without renewal.
    #[arg(long, global = true, env = "LEASE_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub lease_secs: u64,
    /// Shared secret that authenticates forwarding between instances.
    #[arg(long, global = true, env = "CLUSTER_SECRET", hide_env_values = true)]
    pub cluster_secret: Option<String>,
}

/// A setting that cannot be used, with the reason.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting {name}: {reason}")]
pub struct ConfigError {
    /// The setting's name.
    pub name: &'static str,
    /// Why it is invalid.
    pub reason: String,
}

fn non_empty(value: Option<String>) -> Option<String> {
    value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

fn comma_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// Parses a `DATABASE_URL` value.
pub fn parse_database_url(url: &str) -> Result<DatabaseTarget, ConfigError> {
    let bad = |reason: &str| ConfigError {
        name: "DATABASE_URL",
        reason: reason.to_string(),
    };
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        url::Url::parse(url).map_err(|e| bad(&format!("not a valid URL ({e})")))?;
        Ok(DatabaseTarget::Postgres(url.to_string()))
    } else if let Some(path) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        if path.is_empty() {
            return Err(bad("sqlite URL has no file path"));
        }
        Ok(DatabaseTarget::Sqlite(PathBuf::from(path)))
    } else {
        Err(bad("expected postgres://, postgresql:// or sqlite://PATH"))
    }
}

impl Settings {
    /// Validates the settings into a [`Config`].
    pub fn into_config(self) -> Result<Config, ConfigError> {
        let mut config = Config::with_data_dir(self.data_dir.clone());
        if self.bind.parse::<std::net::SocketAddr>().is_err() && !self.bind.contains(':') {
            return Err(ConfigError {
                name: "BIND",
                reason: format!("'{}' is not HOST:PORT", self.bind),
            });
        }
        config.bind = self.bind;
        if let Some(url) = non_empty(self.database_url) {
            config.database = parse_database_url(&url)?;
        }
        config.allowed_origins = comma_list(&self.allowed_origins);
        for origin in &config.allowed_origins {
            if origin != "*" && url::Url::parse(origin).is_err() {
                return Err(ConfigError {
                    name: "ALLOWED_ORIGINS",
                    reason: format!("'{origin}' is not an origin like https://example.com"),
                });
            }
        }
        config.auth.jwt_key = non_empty(self.clerk_jwt_key);
        config.auth.jwks_url = non_empty(self.clerk_jwks_url);
        config.auth.secret_key = non_empty(self.clerk_secret_key);
        config.auth.api_url = self.clerk_api_url.trim_end_matches('/').to_string();
        config.auth.authorized_parties = comma_list(&self.clerk_authorized_parties);
        config.auth.issuer = non_empty(self.clerk_issuer);
        config.auth.publishable_key = non_empty(self.clerk_publishable_key);
        if let Some(jwks) = &config.auth.jwks_url {
            url::Url::parse(jwks).map_err(|e| ConfigError {
                name: "CLERK_JWKS_URL",
                reason: format!("not a valid URL ({e})"),
            })?;
        }
        url::Url::parse(&config.auth.api_url).map_err(|e| ConfigError {
            name: "CLERK_API_URL",
            reason: format!("not a valid URL ({e})"),
        })?;
        match non_empty(self.python) {
            Some(python) => config.python = python,
            None => config.managed_python = true,
        }
        config.python_wheels_dir = self.python_wheels_dir;
        config.kernel_timeout_secs = self.kernel_timeout_secs;
        config.kernel_memory_mb = self.kernel_memory_mb;
        if let Some(cpus) = self.kernel_cpus {
            if !(cpus.is_finite() && cpus > 0.0) {
                return Err(ConfigError {
                    name: "KERNEL_CPUS",
                    reason: format!("'{cpus}' is not a positive number of CPUs"),
                });
            }
        }
        config.kernel_limits = KernelLimits {
            sandbox: self.kernel_sandbox,
            network: self.kernel_network,
            max_procs: self.kernel_max_procs,
            max_file_mb: self.kernel_max_file_mb,
            tmp_mb: self.kernel_tmp_mb,
            max_open_files: 1024,
            cgroup: self.kernel_cgroup,
            cpus: self.kernel_cpus,
            uid: self.kernel_uid,
        };
        let to_usize = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        config.quotas = Quotas {
            kernels_per_user: to_usize(self.kernels_per_user),
            max_kernels: self
                .max_kernels
                .map(to_usize)
                .unwrap_or_else(|| default_max_kernels(self.kernel_memory_mb)),
            notebooks_per_user: self.notebooks_per_user,
            cells_per_notebook: self.cells_per_notebook,
        };
        config.kernel_pool = to_usize(self.kernel_pool);
        config.sql_hosts = SqlHostPolicy {
            allowed: comma_list(&self.sql_allowed_hosts),
            denied: comma_list(&self.sql_denied_hosts),
        };
        crate::sql::host_policy::HostPolicy::from_settings(&config.sql_hosts)?;
        config.room_idle_secs = self.room_idle_secs;
        config.ws_auth_grace_secs = self.ws_auth_grace_secs;
        config.invite_ttl_secs = self.invite_ttl_secs.max(1);
        config.static_dir = self.static_dir;
        config.migrate_on_start = !self.no_migrate;
        config.anthropic_api_key = non_empty(self.anthropic_api_key);
        config.anthropic_base_url = self.anthropic_base_url.trim_end_matches('/').to_string();
        config.anthropic_model = self.anthropic_model;
        config.metrics_token = non_empty(self.metrics_token);
        config.schedule_tick_secs = self.schedule_tick_secs;
        config.schedule_allow_seconds = self.schedule_allow_seconds;
        config.run_history = to_usize(self.run_history);
        let instance_url = non_empty(self.instance_url);
        if let Some(url) = &instance_url {
            let parsed = url::Url::parse(url).map_err(|e| ConfigError {
                name: "INSTANCE_URL",
                reason: format!("not a valid URL ({e})"),
            })?;
            // Instances talk over the internal network; the bridge's WebSocket client has no
            // TLS, so an https:// address would forward REST but never bridge a tab.
            if parsed.scheme() != "http" {
                return Err(ConfigError {
                    name: "INSTANCE_URL",
                    reason: format!(
                        "'{url}' is not an http:// URL (instances talk over the internal network)"
                    ),
                });
            }
        }
        config.cluster = ClusterSettings {
            instance_url: instance_url.map(|u| u.trim_end_matches('/').to_string()),
            lease_secs: self.lease_secs,
            secret: non_empty(self.cluster_secret),
        };
        Ok(config)
    }
}
