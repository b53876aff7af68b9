//! Configuration: `polity.toml` (or `--config FILE`), then `POLITY_*` environment variables,
//! then `DATABASE_URL`. Read once at start and passed down as values. Unknown keys in the
//! file are refused, so a typo is an error rather than a silent default.

use anyhow::{Context, Result};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

/// The embedded default: a SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://polity.db?mode=rwc";

/// Where the HTTP server listens unless told otherwise: this machine only, port 8080.
pub const DEFAULT_HTTP_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);

#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `sqlite://FILE?mode=rwc` (the default) or `postgres://...`.
    pub database_url: String,
    /// Base64 of 32 bytes; encrypts stored secrets (tokens, API keys, webhook secrets).
    pub secret_key: Option<String>,
    /// Polity's own bots: `[platforms.NAME]`, each read by its platform's adapter (unknown
    /// keys refused there), with `POLITY_{NAME}_{KEY}` overriding the keys the adapter allows.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub platforms: BTreeMap<String, serde_json::Value>,

    /// The HTTP server (health, metrics, webhooks), when `[http]` or `POLITY_HTTP_LISTEN`
    /// says something about it. `polity run` serves it on [`DEFAULT_HTTP_LISTEN`] otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpConfig>,
}

/// `[http]`: where the HTTP server listens (or `POLITY_HTTP_LISTEN`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// An address and port, `127.0.0.1:8080` by default; `0.0.0.0:8080` for every interface,
    /// port 0 for any free port.
    #[serde(default = "http_listen")]
    pub listen: SocketAddr,
    /// The address platforms reach this server at (`https://polity.example.org`, or
    /// `POLITY_HTTP_PUBLIC_URL`), for the webhook URLs `/integration add` hands out; by
    /// default `http://` and `listen`.
    #[serde(default)]
    pub public_url: Option<String>,
}

fn http_listen() -> SocketAddr {
    DEFAULT_HTTP_LISTEN
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self { listen: DEFAULT_HTTP_LISTEN, public_url: None }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self { database_url: DEFAULT_DATABASE_URL.into(), secret_key: None, platforms: BTreeMap::new(), http: None }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &redact_url(&self.database_url))
            .field("secret_key", &self.secret_key.as_ref().map(|_| "[redacted]"))
            // The tables hold tokens: their names only.
            .field("platforms", &self.platforms.keys().collect::<Vec<_>>())
            .field("http", &self.http)
            .finish()
    }
}

/// The `[platforms.NAME]` key an environment variable (`POLITY_` taken off, lower case) sets:
/// `discord_token` is `platforms.discord.token` when Discord's adapter allows `token`.
fn platform_key(var: &str) -> Option<String> {
    crate::platforms::adapters().iter().map(|a| a.spec()).find_map(|spec| {
        let key = var.strip_prefix(spec.name)?.strip_prefix('_')?;
        spec.env.contains(&key).then(|| format!("platforms.{}.{key}", spec.name))
    })
}

/// A database URL with any password hidden, for logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:[redacted]{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

impl Config {
    /// Where platforms deliver webhooks: `[http] public_url` without a trailing `/`, else
    /// `http://` and where the server listens.
    pub fn http_public_url(&self) -> String {
        match self.http.as_ref().and_then(|h| h.public_url.as_deref()) {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => format!("http://{}", self.http_listen()),
        }
    }

    /// Where `polity run` serves HTTP: `[http] listen`, else [`DEFAULT_HTTP_LISTEN`].
    pub fn http_listen(&self) -> SocketAddr {
        self.http.as_ref().map_or(DEFAULT_HTTP_LISTEN, |h| h.listen)
    }

    /// Whether `polity run` has anything to serve: a platform's bot or the HTTP server,
    /// which counts once it is configured (`[http]` or `POLITY_HTTP_LISTEN`), since webhook
    /// platforms need nothing else.
    pub fn has_something_to_run(&self) -> bool {
        !self.platforms.is_empty() || self.http.is_some()
    }

    /// Loads the configuration.
    ///
    /// # Errors
    /// When the file cannot be read or has unknown or malformed keys.
    pub fn load(file: Option<&Path>) -> Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(f) => {
                if !f.exists() {
                    anyhow::bail!("the configuration file {} does not exist", f.display());
                }
                figment = figment.merge(Toml::file_exact(f));
            }
            None => figment = figment.merge(Toml::file("polity.toml")),
        }
        figment = figment
            .merge(Env::prefixed("POLITY_").only(&["database_url", "secret_key"]))
            .merge(Env::raw().only(&["database_url"]))
            .merge(
                Env::prefixed("POLITY_")
                    .filter_map(|key| platform_key(&key.as_str().to_ascii_lowercase()).map(Into::into)),
            )
            .merge(Env::prefixed("POLITY_").only(&["http_listen"]).map(|_| "http.listen".into()))
            .merge(Env::prefixed("POLITY_").only(&["http_public_url"]).map(|_| "http.public_url".into()));
        // A bot's table where it was before every platform was hosted the same way.
        for adapter in crate::platforms::adapters() {
            let name = adapter.spec().name;
            if figment.find_value(name).is_ok() {
                anyhow::bail!("`[{name}]` is now `[platforms.{name}]` in polity.toml (with the same keys)");
            }
        }
        let config: Self =
            figment.extract().context("reading the configuration (polity.toml and POLITY_* variables)")?;
        for (name, table) in &config.platforms {
            let Some(adapter) = crate::platforms::adapters().into_iter().find(|a| a.spec().name == name) else {
                let known: Vec<&str> = crate::platforms::adapters().iter().map(|a| a.spec().name).collect();
                anyhow::bail!(
                    "`[platforms.{name}]`: Polity has no platform named {name} (it has {})",
                    known.join(", ")
                );
            };
            adapter.check(table)?;
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(redact_url("postgres://u:hunter2@127.0.0.1/db"), "postgres://u:[redacted]@127.0.0.1/db");
        assert_eq!(redact_url("sqlite://polity.db?mode=rwc"), "sqlite://polity.db?mode=rwc");
        let discord = serde_json::json!({ "token": "MTk4.tok3n" });
        let c = Config {
            database_url: "postgres://u:hunter2@h/db".into(),
            secret_key: Some("k3y".into()),
            platforms: BTreeMap::from([("discord".to_string(), discord)]),
            ..Config::default()
        };
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("k3y") && !shown.contains("tok3n"), "{shown}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let dir = std::env::temp_dir().join(format!("polity-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("polity.toml");
        std::fs::write(&f, "database_url = \"sqlite::memory:\"\ndatabse = 1\n").unwrap();
        let err = format!("{:#}", Config::load(Some(&f)).unwrap_err());
        assert!(err.contains("databse"), "{err}");
        std::fs::write(&f, "database_url = \"sqlite::memory:\"\n").unwrap();
        assert_eq!(Config::load(Some(&f)).unwrap().database_url, "sqlite::memory:");
        std::fs::write(&f, "[platforms.discord]\ntoken = \"t\"\nguild = 1\n").unwrap();
        let err = format!("{:#}", Config::load(Some(&f)).unwrap_err());
        assert!(err.contains("guild") && err.contains("[platforms.discord]"), "{err}");
        std::fs::write(&f, "[platforms.nowhere]\ntoken = \"t\"\n").unwrap();
        let err = format!("{:#}", Config::load(Some(&f)).unwrap_err());
        assert!(err.contains("no platform named nowhere") && err.contains("discord"), "{err}");
        std::fs::write(&f, "[discord]\ntoken = \"t\"\n").unwrap();
        let err = format!("{:#}", Config::load(Some(&f)).unwrap_err());
        assert!(err.contains("[platforms.discord]"), "{err}");
        std::fs::write(&f, "[platforms.discord]\ntoken = \"t\"\n").unwrap();
        let config = Config::load(Some(&f)).unwrap();
        assert!(config.has_something_to_run());
        assert_eq!(config.platforms["discord"], serde_json::json!({ "token": "t" }));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_http_server_listens_where_http_says() {
        let dir = std::env::temp_dir().join(format!("polity-config-http-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("polity.toml");
        std::fs::write(&f, "database_url = \"sqlite::memory:\"\n").unwrap();
        let c = Config::load(Some(&f)).unwrap();
        assert!(c.http.is_none() && !c.has_something_to_run());
        assert_eq!(c.http_listen().to_string(), "127.0.0.1:8080");
        // `[http]` alone is configured, on the default address.
        std::fs::write(&f, "[http]\n").unwrap();
        let c = Config::load(Some(&f)).unwrap();
        assert!(c.has_something_to_run());
        assert_eq!(c.http_listen(), DEFAULT_HTTP_LISTEN);
        std::fs::write(&f, "[http]\nlisten = \"0.0.0.0:9000\"\n").unwrap();
        assert_eq!(Config::load(Some(&f)).unwrap().http_listen().to_string(), "0.0.0.0:9000");
        std::fs::write(&f, "[http]\nlisten = \"127.0.0.1:0\"\nport = 1\n").unwrap();
        let err = format!("{:#}", Config::load(Some(&f)).unwrap_err());
        assert!(err.contains("port"), "{err}");
        std::fs::write(&f, "[http]\nlisten = \"not an address\"\n").unwrap();
        let err = format!("{:#}", Config::load(Some(&f)).unwrap_err());
        assert!(err.contains("listen"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
