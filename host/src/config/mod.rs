//! `wcp serve` settings (contract §1.1): each from a flag, else the
//! environment (`WCP_<FLAG>`), else the TOML file named by `--config`
//! (same keys, snake_case), else the default.
//!
//! Values are validated here, not by clap, so that a bad value from any of
//! the three sources gets the same one-line error naming where it came from.
//! The environment is read through a lookup function so tests never mutate
//! the process environment.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde::Deserialize;

mod values;

pub use values::{DatabaseUrl, parse_duration};
use values::{check_origin, is_http_url};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Readable lines for a terminal.
    #[default]
    Human,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Resolved, validated settings of the server.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Holds `wcp.db` and the artifact cache.
    pub data_dir: PathBuf,
    /// The PostgreSQL database replicas share; `None` is SQLite in
    /// `data_dir`.
    pub database_url: Option<DatabaseUrl>,
    /// The policy directory (contract §6.1).
    pub policy_dir: PathBuf,
    /// Lay the example policies out in `policy_dir` when it does not exist
    /// yet. True only when no policy directory was given, so `policy_dir` is
    /// the default `<data-dir>/policies`; a directory someone named is
    /// never written to.
    pub seed_examples: bool,
    /// How often the policy directory is rescanned.
    pub policy_rescan: Duration,
    /// Tenants file; `None` is community mode.
    pub tenants: Option<PathBuf>,
    /// How long an approval stays pending.
    pub approval_ttl: Duration,
    /// Longest pause of the sweeper that expires approvals no request
    /// touches; see [`ServeConfig::sweep_interval`]. No flag: tests shorten it.
    pub approval_sweep: Duration,
    /// Limit of `in_progress` workflows per tenant; `None` is unlimited.
    pub max_concurrent_workflows: Option<u32>,
    /// Origins allowed by CORS, exactly as browsers send them.
    pub cors_origins: Vec<String>,
    /// Base of `approval_url`, without a trailing `/`.
    pub public_base_url: Option<String>,
    /// Log line format.
    pub log_format: LogFormat,
    /// Time a connection has to send a complete request head, from its
    /// opening or its previous response (so also how long an idle
    /// keep-alive connection is kept).
    pub header_timeout: Duration,
    /// Time a request body has to arrive in full, from the end of its head;
    /// a slower one gets 408.
    pub body_timeout: Duration,
    /// Connections open at once; never more than the descriptor limit
    /// allows (`server`).
    pub max_connections: usize,
    /// Time requests in flight get to finish after SIGTERM or Ctrl-C.
    pub shutdown_grace: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        let data_dir = PathBuf::from("./data");
        ServeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            policy_dir: data_dir.join("policies"),
            seed_examples: true,
            data_dir,
            database_url: None,
            policy_rescan: Duration::from_secs(30),
            tenants: None,
            approval_ttl: Duration::from_secs(24 * 3600),
            approval_sweep: Duration::from_secs(60),
            max_concurrent_workflows: None,
            cors_origins: vec!["http://localhost:3000".into()],
            public_base_url: None,
            log_format: LogFormat::Human,
            // hyper's own default. Behind a load balancer, raise it above
            // the balancer's idle timeout, which must close first.
            header_timeout: Duration::from_secs(30),
            // A 16 MiB policy upload at half a megabyte a second.
            body_timeout: Duration::from_secs(30),
            max_connections: 10_000,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Shortest sweeper pause, so a tiny TTL never makes it spin.
const MIN_SWEEP: Duration = Duration::from_millis(10);

impl ServeConfig {
    /// How often the approval sweeper runs: `approval_sweep` (60 s by
    /// default, the contract's "at least every 60 s"), shorter when the TTL
    /// is shorter, so an untouched hold is expired at most about one TTL
    /// late; never under 10 ms.
    pub fn sweep_interval(&self) -> Duration {
        self.approval_sweep.min(self.approval_ttl).max(MIN_SWEEP)
    }
}

/// A setting that cannot be used; the message names it and its source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

/// The flags of `wcp serve`. Every flag can also be set by the environment
/// variable `WCP_<FLAG>` or by the same key (snake_case) in `--config`.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// TOML file with any of the settings below [env: WCP_CONFIG]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on [env: WCP_LISTEN] [default: 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Data directory, holds wcp.db [env: WCP_DATA_DIR] [default: ./data]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL database shared by replicas, postgres://user[:password]@host:port/db; without it, SQLite in the data directory [env: WCP_DATABASE_URL]
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// Policy directory [env: WCP_POLICY_DIR] [default: <data-dir>/policies]
    #[arg(long, value_name = "DIR")]
    pub policy_dir: Option<PathBuf>,
    /// Rescan interval of the policy directory [env: WCP_POLICY_RESCAN] [default: 30s]
    #[arg(long, value_name = "DURATION")]
    pub policy_rescan: Option<String>,
    /// Tenants file; unset is community mode [env: WCP_TENANTS]
    #[arg(long, value_name = "FILE")]
    pub tenants: Option<PathBuf>,
    /// How long an approval stays pending [env: WCP_APPROVAL_TTL] [default: 24h]
    #[arg(long, value_name = "DURATION")]
    pub approval_ttl: Option<String>,
    /// Limit of running workflows per tenant; unset is unlimited [env: WCP_MAX_CONCURRENT_WORKFLOWS]
    #[arg(long, value_name = "N")]
    pub max_concurrent_workflows: Option<String>,
    /// Allowed CORS origin, repeatable [env: WCP_CORS_ORIGIN, comma-separated] [default: http://localhost:3000]
    #[arg(long, value_name = "ORIGIN")]
    pub cors_origin: Vec<String>,
    /// Base URL for approval links; unset sends none [env: WCP_PUBLIC_BASE_URL]
    #[arg(long, value_name = "URL")]
    pub public_base_url: Option<String>,
    /// Log format: human or json [env: WCP_LOG_FORMAT] [default: human]
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Time a connection has to send a request head, from its opening or its previous response; also the keep-alive idle timeout [env: WCP_HEADER_TIMEOUT] [default: 30s]
    #[arg(long, value_name = "DURATION")]
    pub header_timeout: Option<String>,
    /// Time a request body has to arrive, from the end of its head; slower ones get 408 [env: WCP_BODY_TIMEOUT] [default: 30s]
    #[arg(long, value_name = "DURATION")]
    pub body_timeout: Option<String>,
    /// Connections open at once, at most the descriptor limit allows [env: WCP_MAX_CONNECTIONS] [default: 10000]
    #[arg(long, value_name = "N")]
    pub max_connections: Option<String>,
    /// Time requests in flight get to finish after SIGTERM or Ctrl-C [env: WCP_SHUTDOWN_GRACE] [default: 10s]
    #[arg(long, value_name = "DURATION")]
    pub shutdown_grace: Option<String>,
}

/// The config file; unknown keys are an error, so a typo is not ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    policy_dir: Option<PathBuf>,
    policy_rescan: Option<String>,
    tenants: Option<PathBuf>,
    approval_ttl: Option<String>,
    max_concurrent_workflows: Option<u64>,
    cors_origin: Option<OneOrMany>,
    public_base_url: Option<String>,
    log_format: Option<String>,
    header_timeout: Option<String>,
    body_timeout: Option<String>,
    max_connections: Option<u64>,
    shutdown_grace: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// A raw value and where it came from, for error messages.
struct Raw {
    value: String,
    source: String,
}

impl ServeArgs {
    /// Resolves the settings against the process environment.
    pub fn resolve_from_env(self) -> Result<ServeConfig, ConfigError> {
        self.resolve(|name| std::env::var(name).ok())
    }

    /// Resolves the settings: flag > environment > file > default.
    pub fn resolve(self, env: impl Fn(&str) -> Option<String>) -> Result<ServeConfig, ConfigError> {
        let env = |name: &str| env(name).filter(|value| !value.is_empty());
        let file = match self.config.or_else(|| env("WCP_CONFIG").map(PathBuf::from)) {
            Some(path) => read_file(&path)?,
            None => FileConfig::default(),
        };
        let pick = |flag: Option<String>, name: &str, from_file: Option<String>| -> Option<Raw> {
            let var = format!("WCP_{}", name.replace('-', "_").to_uppercase());
            if let Some(value) = flag {
                return Some(Raw {
                    value,
                    source: format!("--{name}"),
                });
            }
            if let Some(value) = env(&var) {
                return Some(Raw {
                    value,
                    source: format!("--{name} (from {var})"),
                });
            }
            from_file.map(|value| Raw {
                value,
                source: format!(
                    "--{name} (from the config file key {})",
                    name.replace('-', "_")
                ),
            })
        };
        let path_of = |p: Option<PathBuf>| p.map(|p| p.to_string_lossy().into_owned());

        let defaults = ServeConfig::default();
        let listen = match pick(self.listen, "listen", file.listen) {
            None => defaults.listen,
            Some(raw) => raw
                .value
                .parse()
                .map_err(|_| raw.invalid("expected an address with a port, like 127.0.0.1:8080"))?,
        };
        let data_dir = pick(path_of(self.data_dir), "data-dir", path_of(file.data_dir))
            .map_or(defaults.data_dir, |raw| PathBuf::from(raw.value));
        let database_url = match pick(self.database_url, "database-url", file.database_url) {
            None => None,
            Some(raw) => Some(DatabaseUrl::parse(&raw.value).ok_or_else(|| {
                // The value is not repeated: it may hold a password.
                ConfigError(format!(
                    "invalid {} value: expected a postgres:// URL",
                    raw.source
                ))
            })?),
        };
        let given_policy_dir = pick(
            path_of(self.policy_dir),
            "policy-dir",
            path_of(file.policy_dir),
        );
        let seed_examples = given_policy_dir.is_none();
        let policy_dir = given_policy_dir
            .map_or_else(|| data_dir.join("policies"), |raw| PathBuf::from(raw.value));
        let policy_rescan = pick(self.policy_rescan, "policy-rescan", file.policy_rescan)
            .map_or(Ok(defaults.policy_rescan), |raw| raw.duration())?;
        let tenants = pick(path_of(self.tenants), "tenants", path_of(file.tenants))
            .map(|raw| PathBuf::from(raw.value));
        let approval_ttl = pick(self.approval_ttl, "approval-ttl", file.approval_ttl)
            .map_or(Ok(defaults.approval_ttl), |raw| raw.duration())?;
        let max_concurrent_workflows = pick(
            self.max_concurrent_workflows,
            "max-concurrent-workflows",
            file.max_concurrent_workflows.map(|n| n.to_string()),
        )
        .map(Raw::count)
        .transpose()?;
        let file_origins = file.cors_origin.map(|origins| match origins {
            OneOrMany::One(origin) => origin,
            OneOrMany::Many(origins) => origins.join(","),
        });
        let flag_origins = (!self.cors_origin.is_empty()).then(|| self.cors_origin.join(","));
        let cors_origins = match pick(flag_origins, "cors-origin", file_origins) {
            None => defaults.cors_origins,
            Some(raw) => raw
                .value
                .split(',')
                .map(str::trim)
                .filter(|origin| !origin.is_empty())
                .map(|origin| check_origin(origin).map_err(|why| raw.invalid(why)))
                .collect::<Result<_, _>>()?,
        };
        let public_base_url = match pick(
            self.public_base_url,
            "public-base-url",
            file.public_base_url,
        ) {
            None => None,
            Some(raw) if is_http_url(&raw.value) => {
                Some(raw.value.trim_end_matches('/').to_owned())
            }
            Some(raw) => return Err(raw.invalid("expected an http:// or https:// URL")),
        };
        let log_format = match pick(self.log_format, "log-format", file.log_format) {
            None => defaults.log_format,
            Some(raw) => match raw.value.as_str() {
                "human" => LogFormat::Human,
                "json" => LogFormat::Json,
                _ => return Err(raw.invalid("expected human or json")),
            },
        };
        let header_timeout = pick(self.header_timeout, "header-timeout", file.header_timeout)
            .map_or(Ok(defaults.header_timeout), |raw| raw.duration())?;
        let body_timeout = pick(self.body_timeout, "body-timeout", file.body_timeout)
            .map_or(Ok(defaults.body_timeout), |raw| raw.duration())?;
        let max_connections = match pick(
            self.max_connections,
            "max-connections",
            file.max_connections.map(|n| n.to_string()),
        ) {
            None => defaults.max_connections,
            Some(raw) => raw.count()? as usize,
        };
        let shutdown_grace = pick(self.shutdown_grace, "shutdown-grace", file.shutdown_grace)
            .map_or(Ok(defaults.shutdown_grace), |raw| raw.duration())?;
        Ok(ServeConfig {
            listen,
            data_dir,
            database_url,
            policy_dir,
            seed_examples,
            policy_rescan,
            tenants,
            approval_ttl,
            approval_sweep: defaults.approval_sweep,
            max_concurrent_workflows,
            cors_origins,
            public_base_url,
            log_format,
            header_timeout,
            body_timeout,
            max_connections,
            shutdown_grace,
        })
    }
}

impl Raw {
    fn invalid(&self, expected: &str) -> ConfigError {
        ConfigError(format!(
            "invalid {} value {:?}: {expected}",
            self.source, self.value
        ))
    }

    /// A whole number of at least 1 that fits a `u32`.
    fn count(self) -> Result<u32, ConfigError> {
        self.value
            .parse::<u32>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| self.invalid("expected a whole number of at least 1"))
    }

    fn duration(self) -> Result<Duration, ConfigError> {
        parse_duration(&self.value).ok_or_else(|| {
            self.invalid("expected a positive duration with a unit, like 30s, 15m or 24h")
        })
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        ConfigError(format!(
            "cannot read config file {}: {error}",
            path.display()
        ))
    })?;
    toml::from_str(&text).map_err(|error| {
        let message = error.message().replace('\n', " ");
        ConfigError(format!("invalid config file {}: {message}", path.display()))
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::io::Write;

    use super::*;

    fn resolve(args: ServeArgs, env: &[(&str, &str)]) -> Result<ServeConfig, ConfigError> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        args.resolve(|name| env.get(name).cloned())
    }

    fn config_file(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        file.write_all(text.as_bytes()).expect("write");
        file
    }

    #[test]
    fn defaults_follow_the_contract() {
        let config = resolve(ServeArgs::default(), &[]).expect("valid");
        assert_eq!(config, ServeConfig::default());
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.policy_dir, PathBuf::from("./data/policies"));
        assert_eq!(config.policy_rescan, Duration::from_secs(30));
        assert_eq!(config.approval_ttl, Duration::from_secs(86_400));
        assert_eq!(config.cors_origins, ["http://localhost:3000"]);
    }

    #[test]
    fn flag_beats_env_beats_file_beats_default() {
        let file = config_file(
            "listen = \"127.0.0.1:1000\"\npolicy_rescan = \"5m\"\napproval_ttl = \"2h\"\n\
             data_dir = \"/file\"\ncors_origin = [\"http://a.test\", \"https://b.test:8443\"]\n",
        );
        let args = ServeArgs {
            config: Some(file.path().to_owned()),
            listen: Some("127.0.0.1:3000".into()),
            ..ServeArgs::default()
        };
        let env = [
            ("WCP_LISTEN", "127.0.0.1:2000"),
            ("WCP_POLICY_RESCAN", "10s"),
        ];
        let config = resolve(args, &env).expect("valid");
        assert_eq!(config.listen.port(), 3000, "flag over env and file");
        assert_eq!(
            config.policy_rescan,
            Duration::from_secs(10),
            "env over file"
        );
        assert_eq!(
            config.approval_ttl,
            Duration::from_secs(7200),
            "file over default"
        );
        assert_eq!(config.data_dir, PathBuf::from("/file"));
        assert_eq!(
            config.policy_dir,
            PathBuf::from("/file/policies"),
            "derived from data dir"
        );
        assert_eq!(
            config.cors_origins,
            ["http://a.test", "https://b.test:8443"]
        );
        assert_eq!(config.max_concurrent_workflows, None);
    }

    #[test]
    fn a_database_url_selects_postgres_and_never_shows_its_password() {
        let url = "postgres://wcp:s3cret@db.internal:5432/wcp";
        let from_env = resolve(ServeArgs::default(), &[("WCP_DATABASE_URL", url)]).expect("valid");
        let chosen = from_env.database_url.expect("a database URL");
        assert_eq!(chosen.expose(), url);
        let shown = format!("{chosen:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(
            shown.contains("postgres://wcp:***@db.internal:5432/wcp"),
            "{shown}"
        );
        let file = config_file("database_url = \"postgresql://u@h/d\"\n");
        let from_file = resolve(
            ServeArgs {
                config: Some(file.path().to_owned()),
                ..ServeArgs::default()
            },
            &[],
        )
        .expect("valid");
        assert_eq!(
            from_file.database_url.as_ref().map(DatabaseUrl::expose),
            Some("postgresql://u@h/d")
        );
        let error = resolve(
            ServeArgs {
                database_url: Some("mysql://root:hunter2@h/d".into()),
                ..ServeArgs::default()
            },
            &[],
        )
        .expect_err("not PostgreSQL");
        assert!(error.to_string().contains("--database-url"), "{error}");
        assert!(!error.to_string().contains("hunter2"), "{error}");
        assert_eq!(
            resolve(ServeArgs::default(), &[])
                .expect("valid")
                .database_url,
            None
        );
    }

    #[test]
    fn only_the_default_policy_dir_is_seeded_with_examples() {
        let default = resolve(ServeArgs::default(), &[]).expect("valid");
        assert!(default.seed_examples, "default <data-dir>/policies");
        let file = config_file("policy_dir = \"/srv/policies\"\n");
        // (name, flags, environment): each names the policy directory.
        type Given<'a> = (&'a str, ServeArgs, Vec<(&'a str, &'a str)>);
        let given: [Given; 3] = [
            (
                "flag",
                ServeArgs {
                    policy_dir: Some("./data/policies".into()),
                    ..ServeArgs::default()
                },
                vec![],
            ),
            (
                "environment",
                ServeArgs::default(),
                vec![("WCP_POLICY_DIR", "/srv/policies")],
            ),
            (
                "config file",
                ServeArgs {
                    config: Some(file.path().to_owned()),
                    ..ServeArgs::default()
                },
                vec![],
            ),
        ];
        for (name, args, env) in given {
            let config = resolve(args, &env).expect(name);
            assert!(!config.seed_examples, "{name}: {config:?}");
        }
    }

    #[test]
    fn connection_limits_come_from_flags_env_and_file() {
        let file = config_file(
            "header_timeout = \"5s\"\nbody_timeout = \"1m\"\nmax_connections = 64\n\
             shutdown_grace = \"2s\"\n",
        );
        let args = ServeArgs {
            config: Some(file.path().to_owned()),
            shutdown_grace: Some("500ms".into()),
            ..ServeArgs::default()
        };
        let config = resolve(args, &[("WCP_MAX_CONNECTIONS", "32")]).expect("valid");
        assert_eq!(config.header_timeout, Duration::from_secs(5));
        assert_eq!(config.body_timeout, Duration::from_secs(60));
        assert_eq!(config.max_connections, 32, "env over file");
        assert_eq!(config.shutdown_grace, Duration::from_millis(500));
        let defaults = ServeConfig::default();
        assert_eq!(defaults.header_timeout, Duration::from_secs(30));
        assert_eq!(defaults.body_timeout, Duration::from_secs(30));
        assert_eq!(defaults.max_connections, 10_000);
        assert_eq!(defaults.shutdown_grace, Duration::from_secs(10));
    }

    #[test]
    fn the_config_file_can_come_from_the_environment() {
        let file = config_file("max_concurrent_workflows = 7\nlog_format = \"json\"\n");
        let path = file.path().to_string_lossy().into_owned();
        let config = resolve(ServeArgs::default(), &[("WCP_CONFIG", &path)]).expect("valid");
        assert_eq!(config.max_concurrent_workflows, Some(7));
        assert_eq!(config.log_format, LogFormat::Json);
    }

    #[test]
    fn repeated_flags_and_comma_separated_env_origins() {
        let args = ServeArgs {
            cors_origin: vec!["http://one.test".into(), "http://two.test".into()],
            ..ServeArgs::default()
        };
        assert_eq!(resolve(args, &[]).expect("valid").cors_origins.len(), 2);
        let env = [("WCP_CORS_ORIGIN", "http://x.test, http://y.test")];
        let config = resolve(ServeArgs::default(), &env).expect("valid");
        assert_eq!(config.cors_origins, ["http://x.test", "http://y.test"]);
    }

    #[test]
    fn durations_need_a_unit_and_must_be_positive() {
        let cases = [
            ("30s", Some(30)),
            ("15m", Some(900)),
            ("24h", Some(86_400)),
            ("2d", Some(172_800)),
            ("30", None),
            ("0s", None),
            ("-5s", None),
            ("5 weeks", None),
            ("", None),
        ];
        for (text, seconds) in cases {
            assert_eq!(
                parse_duration(text),
                seconds.map(Duration::from_secs),
                "{text}"
            );
        }
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
    }

    #[test]
    fn bad_values_give_one_line_naming_the_setting_and_source() {
        let file = config_file("listen = 5\n");
        let typo = config_file("listn = \"x\"\n");
        // (name, flags, environment, expected part of the message)
        type Case = (
            &'static str,
            ServeArgs,
            Vec<(&'static str, &'static str)>,
            &'static str,
        );
        let cases: Vec<Case> = vec![
            (
                "bad listen flag",
                ServeArgs {
                    listen: Some("localhost".into()),
                    ..Default::default()
                },
                vec![],
                "invalid --listen value \"localhost\"",
            ),
            (
                "bad env duration",
                ServeArgs::default(),
                vec![("WCP_APPROVAL_TTL", "tomorrow")],
                "invalid --approval-ttl (from WCP_APPROVAL_TTL) value \"tomorrow\"",
            ),
            (
                "zero workflows",
                ServeArgs::default(),
                vec![("WCP_MAX_CONCURRENT_WORKFLOWS", "0")],
                "--max-concurrent-workflows",
            ),
            (
                "zero connections",
                ServeArgs {
                    max_connections: Some("0".into()),
                    ..Default::default()
                },
                vec![],
                "invalid --max-connections value \"0\"",
            ),
            (
                "header timeout without a unit",
                ServeArgs::default(),
                vec![("WCP_HEADER_TIMEOUT", "30")],
                "invalid --header-timeout (from WCP_HEADER_TIMEOUT) value \"30\"",
            ),
            (
                "zero body timeout",
                ServeArgs {
                    body_timeout: Some("0s".into()),
                    ..Default::default()
                },
                vec![],
                "invalid --body-timeout value \"0s\"",
            ),
            (
                "wildcard origin",
                ServeArgs {
                    cors_origin: vec!["*".into()],
                    ..Default::default()
                },
                vec![],
                "--cors-origin",
            ),
            (
                "origin with a path",
                ServeArgs::default(),
                vec![("WCP_CORS_ORIGIN", "http://a.test/")],
                "--cors-origin (from WCP_CORS_ORIGIN)",
            ),
            (
                "log format",
                ServeArgs {
                    log_format: Some("xml".into()),
                    ..Default::default()
                },
                vec![],
                "expected human or json",
            ),
            (
                "public url",
                ServeArgs {
                    public_base_url: Some("ftp://x".into()),
                    ..Default::default()
                },
                vec![],
                "--public-base-url",
            ),
            (
                "wrong type in the file",
                ServeArgs {
                    config: Some(file.path().to_owned()),
                    ..Default::default()
                },
                vec![],
                "invalid config file",
            ),
            (
                "unknown key in the file",
                ServeArgs {
                    config: Some(typo.path().to_owned()),
                    ..Default::default()
                },
                vec![],
                "listn",
            ),
            (
                "missing file",
                ServeArgs {
                    config: Some("/nonexistent/wcp.toml".into()),
                    ..Default::default()
                },
                vec![],
                "cannot read config file /nonexistent/wcp.toml",
            ),
        ];
        for (name, args, env, needle) in cases {
            let message = resolve(args, &env).expect_err(name).to_string();
            assert!(message.contains(needle), "{name}: {message}");
            assert!(!message.contains('\n'), "{name}: {message}");
        }
    }

    #[test]
    fn the_sweeper_runs_at_least_every_minute_and_never_spins() {
        let with = |ttl: Duration, sweep: Duration| ServeConfig {
            approval_ttl: ttl,
            approval_sweep: sweep,
            ..ServeConfig::default()
        };
        let minute = Duration::from_secs(60);
        // (name, ttl, sweep setting, interval)
        let cases = [
            ("default", Duration::from_secs(86_400), minute, minute),
            (
                "short ttl",
                Duration::from_secs(5),
                minute,
                Duration::from_secs(5),
            ),
            ("zero ttl", Duration::ZERO, minute, MIN_SWEEP),
            (
                "short sweep",
                Duration::from_secs(86_400),
                Duration::from_millis(20),
                Duration::from_millis(20),
            ),
        ];
        for (name, ttl, sweep, interval) in cases {
            assert_eq!(with(ttl, sweep).sweep_interval(), interval, "{name}");
        }
    }

    #[test]
    fn the_tenants_file_comes_from_the_flag_env_or_config_file() {
        let args = ServeArgs {
            tenants: Some("tenants.toml".into()),
            ..Default::default()
        };
        let config = resolve(args, &[]).expect("accepted and stored");
        assert_eq!(config.tenants, Some(PathBuf::from("tenants.toml")));
        assert_eq!(
            resolve(ServeArgs::default(), &[])
                .expect("defaults")
                .tenants,
            None
        );
    }
}
