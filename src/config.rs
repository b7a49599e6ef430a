//! One `Config`, from defaults, a TOML file, `STEWARD_*` variables and flags
//! (later wins).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::domain::network::Network;
use crate::store::sqlite_url;

/// Where Steward listens by default.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7440";
/// Where Steward keeps its data by default.
pub const DEFAULT_DATA_DIR: &str = "./steward-data";
/// The largest request body by default (1 MiB).
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;
/// How many deployments keep their per-host details by default.
pub const DEFAULT_KEEP_DEPLOYMENTS: u64 = 1000;
/// Seconds for a request's headers to arrive, by default.
pub const DEFAULT_HEADER_TIMEOUT: u64 = 10;
/// Seconds a connection may sit idle (nothing in progress, nothing moving), by default.
pub const DEFAULT_IDLE_TIMEOUT: u64 = 60;
/// Seconds for a whole request body to arrive, by default.
pub const DEFAULT_BODY_TIMEOUT: u64 = 30;
/// Seconds between looks for others' commits without a notification, by default.
pub const DEFAULT_CATCH_UP_EVERY: u64 = 30;

/// The running configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub database_url: String,
    pub data_dir: PathBuf,
    /// Prefix of the Director routes: empty, or like `/icingaweb2`.
    pub base_path: String,
    pub body_limit: usize,
    pub log_json: bool,
    /// Reverse proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<IpAddr>,
    /// Icinga's ticket salt; generated and kept in the database when unset.
    pub ticket_salt: Option<String>,
    /// How many of the newest deployments keep their per-host details.
    pub keep_deployments: u64,
    /// `/metrics` without authentication (otherwise a user with `api`).
    pub metrics_public: bool,
    /// The PEM certificate chain to serve HTTPS with; set together with `tls_key`.
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of `tls_cert`; set together with it.
    pub tls_key: Option<PathBuf>,
    /// Time for a request's headers to arrive.
    pub header_timeout: Duration,
    /// An open connection with nothing in progress and nothing moving for
    /// this long is closed.
    pub idle_timeout: Duration,
    /// Time for a whole request body to arrive (`408` after it).
    pub body_timeout: Duration,
    /// Connections open at once; `None`: what the open files limit allows.
    pub max_connections: Option<usize>,
    /// How often the server looks for what others committed (replicas,
    /// the CLI) without being notified: the bound on how late a lost
    /// notification is made up for.
    pub catch_up_every: Duration,
    /// When not empty, the only networks pushed to (see
    /// [`crate::domain::network::push_allowed`]).
    pub push_networks: Vec<Network>,
}

impl Config {
    /// A configuration for tests and embedding: a database URL, defaults otherwise.
    pub fn for_database(database_url: &str, data_dir: &Path) -> Self {
        Self {
            listen: DEFAULT_LISTEN
                .parse()
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 7440))),
            database_url: database_url.to_owned(),
            data_dir: data_dir.to_owned(),
            base_path: String::new(),
            body_limit: DEFAULT_BODY_LIMIT,
            log_json: false,
            trusted_proxies: Vec::new(),
            ticket_salt: None,
            keep_deployments: DEFAULT_KEEP_DEPLOYMENTS,
            metrics_public: false,
            tls_cert: None,
            tls_key: None,
            header_timeout: Duration::from_secs(DEFAULT_HEADER_TIMEOUT),
            idle_timeout: Duration::from_secs(DEFAULT_IDLE_TIMEOUT),
            body_timeout: Duration::from_secs(DEFAULT_BODY_TIMEOUT),
            catch_up_every: Duration::from_secs(DEFAULT_CATCH_UP_EVERY),
            max_connections: None,
            push_networks: Vec::new(),
        }
    }
}

/// The options every command that touches the database takes.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConfigArgs {
    /// TOML configuration file.
    #[arg(long, env = "STEWARD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:7440].
    #[arg(long, env = "STEWARD_LISTEN")]
    pub listen: Option<String>,
    /// Database URL, sqlite://PATH or postgres://... [default: SQLite in the data directory].
    #[arg(long = "database", env = "STEWARD_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Data directory [default: ./steward-data].
    #[arg(long, env = "STEWARD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Base path of the Director routes, e.g. /icingaweb2 [default: none].
    #[arg(long, env = "STEWARD_BASE_PATH")]
    pub base_path: Option<String>,
    /// Largest request body in bytes [default: 1048576].
    #[arg(long, env = "STEWARD_BODY_LIMIT")]
    pub body_limit: Option<usize>,
    /// Log as JSON lines.
    #[arg(long, env = "STEWARD_LOG_JSON")]
    pub log_json: Option<bool>,
    /// A reverse proxy whose X-Forwarded-For is trusted (repeatable; comma-separated in the variable).
    #[arg(
        long = "trusted-proxy",
        env = "STEWARD_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<IpAddr>,
    /// The salt of Icinga PKI tickets (the ApiListener's ticket_salt).
    #[arg(long, env = "STEWARD_TICKET_SALT", hide_env_values = true)]
    pub ticket_salt: Option<String>,
    /// How many of the newest deployments keep their per-host details [default: 1000].
    #[arg(long, env = "STEWARD_KEEP_DEPLOYMENTS")]
    pub keep_deployments: Option<u64>,
    /// Serve /metrics without authentication [default: false: a user with `api`].
    #[arg(long, env = "STEWARD_METRICS_PUBLIC")]
    pub metrics_public: Option<bool>,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key).
    #[arg(long, value_name = "FILE", env = "STEWARD_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert (PKCS#8, RSA or EC).
    #[arg(long, value_name = "FILE", env = "STEWARD_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Seconds for a request's headers to arrive [default: 10].
    #[arg(long, value_name = "SECONDS", env = "STEWARD_HEADER_TIMEOUT")]
    pub header_timeout: Option<u64>,
    /// Seconds an open connection may do nothing before it is closed [default: 60].
    #[arg(long, value_name = "SECONDS", env = "STEWARD_IDLE_TIMEOUT")]
    pub idle_timeout: Option<u64>,
    /// Seconds for a whole request body to arrive [default: 30].
    #[arg(long, value_name = "SECONDS", env = "STEWARD_BODY_TIMEOUT")]
    pub body_timeout: Option<u64>,
    /// Connections open at once [default: the open files limit less 256].
    #[arg(long, env = "STEWARD_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Seconds between looks for what replicas and the CLI committed, in
    /// case a notification was lost [default: 30].
    #[arg(long, value_name = "SECONDS", env = "STEWARD_CATCH_UP_EVERY")]
    pub catch_up_every: Option<u64>,
    /// Push only to hosts whose address is inside one of these networks
    /// (ADDRESS/PREFIX) [default: anywhere].
    #[arg(
        long = "push-network",
        value_name = "NETWORK",
        env = "STEWARD_PUSH_NETWORKS",
        value_delimiter = ','
    )]
    pub push_networks: Vec<Network>,
}

/// The keys a configuration file may set.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    database_url: Option<String>,
    data_dir: Option<PathBuf>,
    base_path: Option<String>,
    body_limit: Option<usize>,
    log_json: Option<bool>,
    trusted_proxies: Option<Vec<IpAddr>>,
    ticket_salt: Option<String>,
    keep_deployments: Option<u64>,
    metrics_public: Option<bool>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    header_timeout: Option<u64>,
    idle_timeout: Option<u64>,
    body_timeout: Option<u64>,
    max_connections: Option<usize>,
    catch_up_every: Option<u64>,
    push_networks: Option<Vec<String>>,
}

impl ConfigArgs {
    /// Merges defaults, the file, the environment and the flags.
    pub fn load(&self) -> Result<Config, String> {
        let file = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                toml::from_str::<FileConfig>(&text)
                    .map_err(|e| format!("invalid configuration in {}: {e}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let listen = self
            .listen
            .clone()
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen: SocketAddr = listen
            .parse()
            .map_err(|_| format!("invalid listen address \"{listen}\""))?;
        let data_dir = self
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let database_url = self
            .database_url
            .clone()
            .or(file.database_url)
            .unwrap_or_else(|| sqlite_url(&data_dir));
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            return Err("the database URL must start with sqlite:// or postgres://".into());
        }
        let base_path = normalise_base_path(
            &self
                .base_path
                .clone()
                .or(file.base_path)
                .unwrap_or_default(),
        )?;
        let body_limit = self
            .body_limit
            .or(file.body_limit)
            .unwrap_or(DEFAULT_BODY_LIMIT);
        let log_json = self.log_json.or(file.log_json).unwrap_or(false);
        let trusted_proxies = if self.trusted_proxies.is_empty() {
            file.trusted_proxies.unwrap_or_default()
        } else {
            self.trusted_proxies.clone()
        };
        let ticket_salt = self
            .ticket_salt
            .clone()
            .or(file.ticket_salt)
            .filter(|s| !s.is_empty());
        let keep_deployments = self
            .keep_deployments
            .or(file.keep_deployments)
            .unwrap_or(DEFAULT_KEEP_DEPLOYMENTS);
        if keep_deployments == 0 {
            return Err("keep_deployments must be at least 1".into());
        }
        let tls_cert = self.tls_cert.clone().or(file.tls_cert);
        let tls_key = self.tls_key.clone().or(file.tls_key);
        match (&tls_cert, &tls_key) {
            (Some(_), None) => {
                return Err("tls_cert is set but tls_key is not: HTTPS needs the certificate's private key too (--tls-key, STEWARD_TLS_KEY or tls_key in the file)".into());
            }
            (None, Some(_)) => {
                return Err("tls_key is set but tls_cert is not: HTTPS needs the certificate too (--tls-cert, STEWARD_TLS_CERT or tls_cert in the file)".into());
            }
            _ => {}
        }
        let metrics_public = self.metrics_public.or(file.metrics_public).unwrap_or(false);
        let seconds = |flag: Option<u64>, file: Option<u64>, default: u64, what: &str| match flag
            .or(file)
            .unwrap_or(default)
        {
            0 => Err(format!("{what} must be at least 1 second")),
            n => Ok(Duration::from_secs(n)),
        };
        let header_timeout = seconds(
            self.header_timeout,
            file.header_timeout,
            DEFAULT_HEADER_TIMEOUT,
            "header_timeout",
        )?;
        let idle_timeout = seconds(
            self.idle_timeout,
            file.idle_timeout,
            DEFAULT_IDLE_TIMEOUT,
            "idle_timeout",
        )?;
        let body_timeout = seconds(
            self.body_timeout,
            file.body_timeout,
            DEFAULT_BODY_TIMEOUT,
            "body_timeout",
        )?;
        let catch_up_every = seconds(
            self.catch_up_every,
            file.catch_up_every,
            DEFAULT_CATCH_UP_EVERY,
            "catch_up_every",
        )?;
        let push_networks = if self.push_networks.is_empty() {
            file.push_networks
                .unwrap_or_default()
                .iter()
                .map(|n| {
                    n.parse::<Network>()
                        .map_err(|e| format!("push_networks: {e}"))
                })
                .collect::<Result<Vec<_>, _>>()?
        } else {
            self.push_networks.clone()
        };
        let max_connections = self.max_connections.or(file.max_connections);
        if max_connections == Some(0) {
            return Err("max_connections must be at least 1".into());
        }
        Ok(Config {
            push_networks,
            catch_up_every,
            header_timeout,
            idle_timeout,
            body_timeout,
            max_connections,
            metrics_public,
            tls_cert,
            tls_key,
            keep_deployments,
            ticket_salt,
            trusted_proxies,
            listen,
            database_url,
            data_dir,
            base_path,
            body_limit,
            log_json,
        })
    }
}

/// `""`, `/`, `icingaweb2/` and `/icingaweb2` become `""` or `/icingaweb2`.
fn normalise_base_path(raw: &str) -> Result<String, String> {
    let trimmed = raw.trim().trim_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    if trimmed.contains(['?', '#', '{', '}', ' ']) {
        return Err(format!("invalid base path \"{raw}\""));
    }
    Ok(format!("/{trimmed}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A configuration file holding `text`, in a directory of its own
    /// named after `test`.
    fn config_file(test: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("steward-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("steward.toml");
        std::fs::write(&path, text).expect("write");
        path
    }

    /// The configuration `path` gives, with no flags.
    fn load_file(path: &Path) -> Result<Config, String> {
        ConfigArgs {
            config: Some(path.to_owned()),
            ..ConfigArgs::default()
        }
        .load()
    }

    #[test]
    fn defaults_need_no_configuration() {
        let config = ConfigArgs::default().load().expect("defaults load");
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        assert!(config.database_url.starts_with("sqlite://./steward-data/"));
        assert_eq!(config.base_path, "");
    }

    #[test]
    fn flags_win_over_the_file() {
        let path = config_file(
            "config",
            "listen = \"127.0.0.1:9000\"\nbase_path = \"icingaweb2/\"\n",
        );
        let config = load_file(&path).expect("loads");
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.base_path, "/icingaweb2");
        let args = ConfigArgs {
            config: Some(path),
            listen: Some("127.0.0.1:9001".into()),
            ..ConfigArgs::default()
        };
        assert_eq!(args.load().expect("loads").listen.port(), 9001);
    }

    #[test]
    fn push_networks_come_from_the_file_or_the_flags_and_bad_ones_are_refused() {
        let path = config_file(
            "config-nets",
            "push_networks = [\"127.0.0.0/8\", \"::1\"]\n",
        );
        let from_file = load_file(&path).expect("loads");
        let shown: Vec<String> = from_file
            .push_networks
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(shown, ["127.0.0.0/8", "::1/128"]);
        let flags = ConfigArgs {
            config: Some(path.clone()),
            push_networks: vec!["127.0.0.2".parse().expect("a network")],
            ..ConfigArgs::default()
        }
        .load()
        .expect("loads");
        let shown: Vec<String> = flags
            .push_networks
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(shown, ["127.0.0.2/32"], "the flags win");
        assert!(
            ConfigArgs::default()
                .load()
                .expect("loads")
                .push_networks
                .is_empty()
        );
        let path = config_file("config-nets-bad", "push_networks = [\"127.0.0.0/33\"]\n");
        let refused = load_file(&path).expect_err("a bad network");
        assert!(refused.starts_with("push_networks:"), "{refused}");
    }

    #[test]
    fn unknown_file_keys_and_bad_urls_are_refused() {
        let path = config_file("config-bad", "lisen = \"x\"\n");
        assert!(load_file(&path).is_err());
        assert!(
            ConfigArgs {
                database_url: Some("mysql://x".into()),
                ..ConfigArgs::default()
            }
            .load()
            .is_err()
        );
    }

    #[test]
    fn tls_needs_both_the_certificate_and_the_key_or_neither() {
        let neither = ConfigArgs::default().load().expect("plain http loads");
        assert_eq!((neither.tls_cert, neither.tls_key), (None, None));

        let both = ConfigArgs {
            tls_cert: Some("cert.pem".into()),
            tls_key: Some("key.pem".into()),
            ..ConfigArgs::default()
        }
        .load()
        .expect("both load");
        assert_eq!(both.tls_cert, Some(PathBuf::from("cert.pem")));
        assert_eq!(both.tls_key, Some(PathBuf::from("key.pem")));

        let cert_only = ConfigArgs {
            tls_cert: Some("cert.pem".into()),
            ..ConfigArgs::default()
        }
        .load()
        .expect_err("a certificate alone is refused");
        assert!(cert_only.contains("--tls-key"), "{cert_only}");
        let key_only = ConfigArgs {
            tls_key: Some("key.pem".into()),
            ..ConfigArgs::default()
        }
        .load()
        .expect_err("a key alone is refused");
        assert!(key_only.contains("--tls-cert"), "{key_only}");
    }

    #[test]
    fn tls_files_may_come_half_from_the_file_and_half_from_flags() {
        let path = config_file("config-tls", "tls_cert = \"/etc/steward/cert.pem\"\n");
        assert!(load_file(&path).is_err());
        let config = ConfigArgs {
            config: Some(path),
            tls_key: Some("/etc/steward/key.pem".into()),
            ..ConfigArgs::default()
        }
        .load()
        .expect("the file's certificate and the flag's key load");
        assert_eq!(
            config.tls_cert,
            Some(PathBuf::from("/etc/steward/cert.pem"))
        );
        assert_eq!(config.tls_key, Some(PathBuf::from("/etc/steward/key.pem")));
    }
}
