//! Settings: one typed struct, layered defaults -> TOML file -> `CONFAB_*` environment ->
//! command-line flags, validated once at start and then passed down.

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Every setting of a node. Each field is also `CONFAB_<FIELD>` in the environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// HTTP and WebSocket address.
    pub listen: SocketAddr,
    /// Where the embedded store keeps its files (and the VAPID key, on any store).
    pub data_dir: PathBuf,
    /// Which store: empty or `sqlite` for the embedded one under `data_dir`, or a
    /// PostgreSQL URL, `postgres://user[:password]@host[:port]/database`, for several nodes
    /// on one database. The password is never logged.
    pub store: String,
    /// Connections to PostgreSQL this node may hold.
    pub store_connections: usize,
    /// The cluster bus: empty for this process only (one node), or NATS server URLs
    /// separated by commas, `nats://a:4222,nats://b:4222`, for several nodes (with a
    /// PostgreSQL store they share).
    pub bus: String,
    /// The base URL clients use to reach this node (told by discovery and `reconnect`).
    /// Empty: `http://` + `listen`.
    pub public_url: String,
    /// This node's region, a name of the operator's choosing (`eu-west`); discovery offers
    /// clients the nodes of their region first. Empty: none.
    pub region: String,
    /// Which client addresses are in which region, for clients that do not name theirs:
    /// `client_regions = { eu-west = ["10.1.0.0/16"], us-east = ["10.2.0.0/16"] }`.
    pub client_regions: std::collections::BTreeMap<String, Vec<IpNet>>,
    /// This node's id, 0-1023, part of every message id it assigns. Unset: the node claims
    /// a free one in the store at start. Either way the id is leased in the store, so two
    /// live nodes never share one (a node whose configured id is held refuses to start).
    pub node_id: Option<u16>,
    /// How often clients should heartbeat, told to them in `welcome`.
    pub heartbeat_interval_ms: u64,
    /// Silence after which a device (and a user with no other device) is offline.
    pub presence_timeout_ms: u64,
    /// How long a new WebSocket may take to send `hello` before it is closed with 4002.
    pub hello_timeout_ms: u64,
    /// Sessions this node accepts before answering `overloaded`.
    pub max_sessions: usize,
    /// Frames a session may have waiting to be written before it is closed with 4008.
    pub session_queue: usize,
    /// Writes a user may make to conversation logs per second, sustained: messages, and
    /// group creation, renames and member changes (which write system messages).
    pub send_rate_per_sec: u32,
    /// The same, in a burst.
    pub send_burst: u32,
    /// Groups one user may make in any 24 hours.
    pub groups_per_day: u32,
    /// MiB of message text each user may have stored (what they sent, as UTF-8); past it
    /// their sends are refused with `quota_exceeded`.
    pub user_quota_mb: u64,
    /// Lookups of users by username, direct conversations opened, and people never talked
    /// with before added to groups, per user per minute (bursts up to the same number):
    /// what keeps the user directory from being harvested.
    pub lookup_rate_per_min: u32,
    /// Searches per user per minute (bursts up to the same number): a search of a common
    /// word costs the store more than a page of history.
    pub search_rate_per_min: u32,
    /// Where to serve `/metrics` on its own (for example `127.0.0.1:9100`, or a private
    /// interface the monitoring reaches). Unset: `/metrics` is on `listen`, answered only to
    /// clients connecting from `trusted_proxies` themselves (loopback by default).
    pub metrics_listen: Option<SocketAddr>,
    /// Signups and logins one IP address may attempt per minute.
    pub auth_rate_per_min: u32,
    /// Networks of the load balancers or reverse proxies in front of the node: from them,
    /// the client's address is read from `X-Forwarded-For`, and the per-address connection
    /// caps do not apply (they carry many clients). Anyone else's `X-Forwarded-For` is
    /// ignored.
    pub trusted_proxies: Vec<IpNet>,
    /// Open TCP connections one client address (an IPv6 /64) may hold, WebSocket sessions
    /// included.
    pub max_connections_per_ip: usize,
    /// WebSocket connections one client address may have open that have not yet said
    /// `hello`; more are answered `429 rate_limited`.
    pub hello_pending_per_ip: usize,
    /// How long a client may take to send a request's headers, and how long a kept-alive
    /// connection may sit idle between requests, before it is closed.
    pub http_header_timeout_ms: u64,
    /// How long a client may take to send a request's body.
    pub http_body_timeout_ms: u64,
    /// Most writes the store commits in one transaction (group commit).
    pub commit_batch_max: usize,
    /// Longest a send may be expected to wait for its commit; past it, under overload, the
    /// send is answered `overloaded` with `retry_after_ms` instead of being queued.
    pub commit_wait_budget_ms: u64,
    /// Read connections of the embedded store.
    pub read_connections: usize,
    /// Argon2id memory cost in KiB (19456 is OWASP's minimum; lower only for load tests).
    pub password_hash_memory_kib: u32,
    /// Argon2id time cost (iterations).
    pub password_hash_iterations: u32,
    /// How long shutdown waits for sessions to leave before closing them.
    pub drain_timeout_ms: u64,
    /// Log format: `text` or `json`.
    pub log_format: LogFormat,
    /// Which logs to write, as a `tracing` filter: `info`, `debug`, `confab_server=debug`.
    pub log: String,
    /// Put a preview of the message text in push notifications. Off: pushes say only who
    /// wrote and how many messages are unread, since they pass through Google's or Apple's
    /// servers.
    pub push_preview: bool,
    /// Accept `http://` and loopback or private-network Web Push endpoints. For tests and
    /// local development only: on a public server it lets clients make it call internal
    /// addresses.
    pub push_allow_http_endpoints: bool,
    /// The VAPID contact (`sub`): a `mailto:` or `https:` URL push services can reach you at.
    pub push_vapid_subject: String,
    /// The VAPID private key, PKCS#8 PEM. Empty: generated on first start and kept in
    /// `data_dir/vapid.pem`.
    pub push_vapid_private_key: String,
    /// Path of the FCM service-account JSON file. Empty: no FCM.
    pub push_fcm_service_account: String,
    /// Base URL of the FCM HTTP v1 API.
    pub push_fcm_url: String,
    /// Path of the APNs token-signing key (`AuthKey_XXXX.p8`). Empty: no APNs.
    pub push_apns_key_file: String,
    /// The APNs key's id (10 characters).
    pub push_apns_key_id: String,
    /// The Apple developer team id.
    pub push_apns_team_id: String,
    /// The app's bundle id, sent as `apns-topic`.
    pub push_apns_topic: String,
    /// Base URL of APNs (`https://api.sandbox.push.apple.com` for development builds).
    pub push_apns_url: String,
    /// Pushes sent at once.
    pub push_concurrency: usize,
    /// The longest a push to one user's subscriptions (sent side by side) may take; what
    /// has not answered by then is retried with backoff, and a host that keeps missing it
    /// is not called for a while.
    pub push_timeout_ms: u64,
    /// After a push, further messages in the same conversation wait this long and then go
    /// as one notification, so a burst does not buzz a phone once per message.
    pub push_collapse_ms: u64,
    /// The first retry's delay; each next one doubles, up to 5 minutes, with jitter.
    pub push_retry_base_ms: u64,
    /// Attempts before a push is given up.
    pub push_max_attempts: u32,
    /// How long push services keep a notification for a device that is offline.
    pub push_ttl_secs: u64,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// For people at a terminal.
    Text,
    /// One JSON object per line, for collectors.
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./confab-data"),
            store: String::new(),
            store_connections: 16,
            bus: String::new(),
            public_url: String::new(),
            region: String::new(),
            client_regions: std::collections::BTreeMap::new(),
            node_id: None,
            heartbeat_interval_ms: 5_000,
            presence_timeout_ms: 30_000,
            hello_timeout_ms: 10_000,
            max_sessions: 100_000,
            session_queue: 256,
            send_rate_per_sec: 20,
            send_burst: 100,
            auth_rate_per_min: 60,
            user_quota_mb: 1024,
            lookup_rate_per_min: 60,
            search_rate_per_min: 60,
            metrics_listen: None,
            groups_per_day: 100,
            // Loopback: a proxy on the same machine, or local tools.
            trusted_proxies: vec![
                IpNet::V4(ipnet::Ipv4Net::new_assert(
                    std::net::Ipv4Addr::new(127, 0, 0, 0),
                    8,
                )),
                IpNet::from(std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST)),
            ],
            max_connections_per_ip: 512,
            hello_pending_per_ip: 16,
            http_header_timeout_ms: 10_000,
            http_body_timeout_ms: 30_000,
            commit_batch_max: 1024,
            commit_wait_budget_ms: 250,
            read_connections: 4,
            password_hash_memory_kib: 19_456,
            password_hash_iterations: 2,
            drain_timeout_ms: 5_000,
            log_format: LogFormat::Text,
            log: "info".into(),
            push_preview: false,
            push_allow_http_endpoints: false,
            push_vapid_subject: "mailto:admin@localhost".into(),
            push_vapid_private_key: String::new(),
            push_fcm_service_account: String::new(),
            push_fcm_url: "https://fcm.googleapis.com".into(),
            push_apns_key_file: String::new(),
            push_apns_key_id: String::new(),
            push_apns_team_id: String::new(),
            push_apns_topic: String::new(),
            push_apns_url: "https://api.push.apple.com".into(),
            push_concurrency: 64,
            push_timeout_ms: 10_000,
            push_collapse_ms: 2_000,
            push_retry_base_ms: 1_000,
            push_max_attempts: 10,
            push_ttl_secs: 86_400,
        }
    }
}

/// A setting that is out of range, or a config source that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or environment could not be parsed.
    #[error("could not read the configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    /// A value is out of range.
    #[error("setting `{setting}` {problem}")]
    Invalid {
        /// The setting's name.
        setting: &'static str,
        /// What is wrong and what to do.
        problem: String,
    },
}

impl Config {
    /// Layers defaults, the optional TOML `file`, `CONFAB_*` variables and `overrides`
    /// (settings given as flags), then validates.
    pub fn load(file: Option<&Path>, overrides: &[(&str, String)]) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.exists() {
                return Err(ConfigError::Invalid {
                    setting: "config",
                    problem: format!("names {}, which does not exist", file.display()),
                });
            }
            figment = figment.merge(Toml::file(file));
        }
        // Only the settings: a CONFAB_ variable that names none (a script's own) is left out
        // here and warned about at start (`stray_env`), not an error.
        let names = setting_names();
        figment = figment.merge(
            Env::prefixed("CONFAB_").filter(move |key| names.iter().any(|n| key == n.as_str())),
        );
        for (key, value) in overrides {
            // Parsed as the environment's values are, so "9" is a number and "true" a bool.
            let value: figment::value::Value = value.parse().unwrap_or_else(|never| match never {});
            figment = figment.merge(Serialized::default(key, value));
        }
        let config: Config = figment.extract().map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    /// The settings of a config file's `toml` text over the defaults, validated: what
    /// [`Config::load`] makes of a file when no variable or flag overrides it.
    pub fn parse(toml: &str) -> Result<Self, ConfigError> {
        let config: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(toml))
            .extract()
            .map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    /// The `CONFAB_*` environment variables that name no setting: ignored, and worth a
    /// warning (a misspelt setting looks just like one).
    pub fn stray_env() -> Vec<String> {
        let names = setting_names();
        let mut stray: Vec<String> = std::env::vars_os()
            .filter_map(|(key, _)| key.into_string().ok())
            .filter(|key| {
                key.strip_prefix("CONFAB_")
                    .is_some_and(|rest| !names.contains(&rest.to_ascii_lowercase()))
            })
            .collect();
        stray.sort();
        stray
    }

    /// Checks every setting's range, naming the first one that is wrong.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn check(ok: bool, setting: &'static str, problem: &str) -> Result<(), ConfigError> {
            if ok {
                Ok(())
            } else {
                Err(ConfigError::Invalid {
                    setting,
                    problem: problem.to_owned(),
                })
            }
        }
        check(
            self.node_id.is_none_or(|id| id < 1024),
            "node_id",
            "must be 0 to 1023",
        )?;
        check(
            self.heartbeat_interval_ms >= 100,
            "heartbeat_interval_ms",
            "must be at least 100",
        )?;
        check(
            self.presence_timeout_ms > self.heartbeat_interval_ms,
            "presence_timeout_ms",
            "must be longer than heartbeat_interval_ms, or every device flickers offline",
        )?;
        check(
            (100..=60_000).contains(&self.hello_timeout_ms),
            "hello_timeout_ms",
            "must be 100 to 60000",
        )?;
        check(self.max_sessions > 0, "max_sessions", "must be at least 1")?;
        check(
            self.session_queue >= 16,
            "session_queue",
            "must be at least 16",
        )?;
        check(
            self.send_rate_per_sec > 0,
            "send_rate_per_sec",
            "must be at least 1",
        )?;
        check(self.send_burst > 0, "send_burst", "must be at least 1")?;
        check(
            self.auth_rate_per_min > 0,
            "auth_rate_per_min",
            "must be at least 1",
        )?;
        check(
            (1..=100_000).contains(&self.commit_batch_max),
            "commit_batch_max",
            "must be 1 to 100000",
        )?;
        check(
            (10..=60_000).contains(&self.commit_wait_budget_ms),
            "commit_wait_budget_ms",
            "must be 10 to 60000",
        )?;
        check(
            (1..=64).contains(&self.read_connections),
            "read_connections",
            "must be 1 to 64",
        )?;
        check(
            self.password_hash_memory_kib >= 8,
            "password_hash_memory_kib",
            "must be at least 8",
        )?;
        check(
            self.password_hash_iterations >= 1,
            "password_hash_iterations",
            "must be at least 1",
        )?;
        check(
            self.push_vapid_subject.starts_with("mailto:")
                || self.push_vapid_subject.starts_with("https://"),
            "push_vapid_subject",
            "must be a mailto: or https: URL (RFC 8292)",
        )?;
        check(
            self.lookup_rate_per_min >= 1,
            "lookup_rate_per_min",
            "must be at least 1",
        )?;
        check(
            self.search_rate_per_min >= 1,
            "search_rate_per_min",
            "must be at least 1",
        )?;
        check(
            self.groups_per_day >= 1,
            "groups_per_day",
            "must be at least 1",
        )?;
        check(
            self.store.is_empty()
                || self.store == "sqlite"
                || self.store.starts_with("postgres://")
                || self.store.starts_with("postgresql://"),
            "store",
            "must be empty, `sqlite`, or a postgres:// URL",
        )?;
        if !self.bus.is_empty() {
            crate::bus::nats::servers::parse(&self.bus).map_err(|problem| {
                ConfigError::Invalid {
                    setting: "bus",
                    problem,
                }
            })?;
            check(
                self.postgres_url().is_some(),
                "bus",
                "needs a store the nodes share: set store to a postgres:// URL",
            )?;
            check(
                !self.public_url.is_empty() || !self.listen.ip().is_unspecified(),
                "public_url",
                "must be set in a cluster when listen is 0.0.0.0 or [::]: discovery and \
                 reconnect tell clients this node's address",
            )?;
        }
        check(
            (1..=1024).contains(&self.store_connections),
            "store_connections",
            "must be 1 to 1024",
        )?;
        check(
            self.user_quota_mb >= 1,
            "user_quota_mb",
            "must be at least 1",
        )?;
        check(
            self.max_connections_per_ip >= 1,
            "max_connections_per_ip",
            "must be at least 1",
        )?;
        check(
            self.hello_pending_per_ip >= 1,
            "hello_pending_per_ip",
            "must be at least 1",
        )?;
        check(
            (100..=600_000).contains(&self.http_header_timeout_ms),
            "http_header_timeout_ms",
            "must be 100 to 600000",
        )?;
        check(
            (100..=600_000).contains(&self.http_body_timeout_ms),
            "http_body_timeout_ms",
            "must be 100 to 600000",
        )?;
        check(
            (1..=1024).contains(&self.push_concurrency),
            "push_concurrency",
            "must be 1 to 1024",
        )?;
        check(
            (100..=60_000).contains(&self.push_timeout_ms),
            "push_timeout_ms",
            "must be 100 to 60000",
        )?;
        check(
            (1..=100).contains(&self.push_max_attempts),
            "push_max_attempts",
            "must be 1 to 100",
        )?;
        check(
            self.push_retry_base_ms >= 1,
            "push_retry_base_ms",
            "must be at least 1",
        )?;
        check(
            self.push_apns_key_file.is_empty()
                || !(self.push_apns_key_id.is_empty()
                    || self.push_apns_team_id.is_empty()
                    || self.push_apns_topic.is_empty()),
            "push_apns_key_file",
            "needs push_apns_key_id, push_apns_team_id and push_apns_topic too",
        )?;
        check(
            self.public_url.is_empty()
                || self.public_url.starts_with("http://")
                || self.public_url.starts_with("https://"),
            "public_url",
            "must start with http:// or https://",
        )?;
        Ok(())
    }

    /// The PostgreSQL URL of `store`, when it names one.
    pub fn postgres_url(&self) -> Option<&str> {
        (self.store.starts_with("postgres://") || self.store.starts_with("postgresql://"))
            .then_some(self.store.as_str())
    }

    /// `store` fit for a log line: a URL's password is replaced by `***`.
    pub fn store_for_logs(&self) -> String {
        let Some(url) = self.postgres_url() else {
            return format!("sqlite in {}", self.data_dir.display());
        };
        match url::Url::parse(url) {
            Ok(mut parsed) => {
                if parsed.password().is_some() {
                    let _ = parsed.set_password(Some("***"));
                }
                parsed.to_string()
            }
            Err(_) => "postgres (unparsable URL)".into(),
        }
    }

    /// The region of a client at `ip` by `client_regions`, if it is in one.
    pub fn client_region(&self, ip: std::net::IpAddr) -> Option<&str> {
        self.client_regions
            .iter()
            .find(|(_, nets)| nets.iter().any(|net| net.contains(&ip)))
            .map(|(region, _)| region.as_str())
    }

    /// The base URL clients use for this node.
    pub fn public_url(&self) -> String {
        if self.public_url.is_empty() {
            format!("http://{}", self.listen)
        } else {
            self.public_url.trim_end_matches('/').to_owned()
        }
    }

    /// A TOML file with every setting at its default, for `confab config`. Settings unset
    /// by default are shown commented out, with an example value.
    pub fn example_toml() -> String {
        let mut toml = toml::to_string(&Config::default()).unwrap_or_default();
        toml.push_str(
            "\n# Unset by default:\n\
             # node_id = 1                        # 0-1023; unset: the lowest free id, claimed in the store\n\
             # metrics_listen = \"127.0.0.1:9100\"  # serve /metrics there only\n",
        );
        toml
    }
}

/// Every setting's name (the config file's keys).
fn setting_names() -> Vec<String> {
    match serde_json::to_value(Config::default()) {
        Ok(serde_json::Value::Object(settings)) => settings.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
// figment's Jail hands back its large error type by design.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_layering_works() {
        Config::default().validate().unwrap();
        figment::Jail::expect_with(|jail| {
            jail.create_file("confab.toml", "listen = \"127.0.0.1:9000\"\nnode_id = 7\n")?;
            jail.set_env("CONFAB_NODE_ID", "8");
            let c = Config::load(Some(Path::new("confab.toml")), &[]).unwrap();
            assert_eq!(c.listen.port(), 9000);
            assert_eq!(c.node_id, Some(8), "the environment overrides the file");
            let c = Config::load(None, &[("node_id", "9".into())]).unwrap();
            assert_eq!(c.node_id, Some(9), "flags override the environment");
            Ok(())
        });
    }

    #[test]
    fn lists_and_optional_addresses_come_from_the_environment() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("CONFAB_TRUSTED_PROXIES", r#"["10.0.0.0/8", "fd00::/8"]"#);
            jail.set_env("CONFAB_METRICS_LISTEN", "127.0.0.1:9100");
            let c = Config::load(None, &[]).unwrap();
            assert_eq!(
                c.trusted_proxies,
                vec![
                    "10.0.0.0/8".parse().unwrap(),
                    "fd00::/8".parse::<IpNet>().unwrap()
                ]
            );
            assert_eq!(c.metrics_listen, Some("127.0.0.1:9100".parse().unwrap()));
            jail.set_env("CONFAB_TRUSTED_PROXIES", r#"["not a network"]"#);
            let e = Config::load(None, &[]).unwrap_err().to_string();
            assert!(e.to_lowercase().contains("trusted_proxies"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn the_store_url_is_logged_without_its_password() {
        let c = Config {
            store: "postgres://confab:s3cret@db.internal:5432/confab".into(),
            ..Config::default()
        };
        c.validate().unwrap();
        assert_eq!(c.postgres_url(), Some(c.store.as_str()));
        let shown = c.store_for_logs();
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(
            shown.contains("confab:***@db.internal:5432/confab"),
            "{shown}"
        );
        let bad = Config {
            store: "mysql://x".into(),
            ..Config::default()
        };
        assert!(bad.validate().unwrap_err().to_string().contains("store"));
        assert_eq!(Config::default().postgres_url(), None);
    }

    #[test]
    fn a_bus_needs_nats_urls_and_a_shared_store() {
        let on_postgres = |bus: &str| Config {
            store: "postgres://confab@db/confab".into(),
            bus: bus.into(),
            ..Config::default()
        };
        on_postgres("nats://a:4222,nats://b:4222")
            .validate()
            .unwrap();
        let e = on_postgres("redis://a").validate().unwrap_err().to_string();
        assert!(e.contains("`bus`") && e.contains("nats://"), "{e}");
        let alone = Config {
            bus: "nats://a:4222".into(),
            ..Config::default()
        };
        let e = alone.validate().unwrap_err().to_string();
        assert!(e.contains("postgres://"), "{e}");
    }

    #[test]
    fn bad_values_name_the_setting() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("CONFAB_NODE_ID", "5000");
            let e = Config::load(None, &[]).unwrap_err().to_string();
            assert!(e.contains("node_id"), "{e}");
            // A variable that names no setting is not one: left out, and warned about.
            jail.set_env("CONFAB_NODE_ID", "1");
            jail.set_env("CONFAB_NO_SUCH_SETTING", "1");
            let c = Config::load(None, &[]).unwrap();
            assert_eq!(c.node_id, Some(1));
            assert!(Config::stray_env().contains(&"CONFAB_NO_SUCH_SETTING".to_owned()));
            assert!(!Config::stray_env().contains(&"CONFAB_NODE_ID".to_owned()));
            // The file stays strict: an unknown key there is a mistake in the file.
            jail.create_file("confab.toml", "no_such_setting = 1\n")?;
            let e = Config::load(Some(Path::new("confab.toml")), &[])
                .unwrap_err()
                .to_string();
            assert!(e.contains("no_such_setting"), "{e}");
            Ok(())
        });
    }
}
