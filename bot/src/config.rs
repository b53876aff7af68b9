//! Configuration: `polity.toml` (or `--config FILE`), then `POLITY_*` environment variables,
//! then `DATABASE_URL`. Read once at start and passed down as values. Unknown keys in the
//! file are refused, so a typo is an error rather than a silent default.

use anyhow::{Context, Result};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
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
    /// The Discord bot, if Polity runs one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discord: Option<DiscordConfig>,
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
}

fn http_listen() -> SocketAddr {
    DEFAULT_HTTP_LISTEN
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self { listen: DEFAULT_HTTP_LISTEN }
    }
}

/// `[discord]`: the bot's token (or `POLITY_DISCORD_TOKEN`), and where Discord is.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DiscordConfig {
    pub token: String,
    /// Discord's API (the default); a proxy or a test server otherwise.
    #[serde(default = "discord_url")]
    pub base_url: String,
}

fn discord_url() -> String {
    polity_discord::DISCORD_URL.to_string()
}

impl fmt::Debug for DiscordConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiscordConfig").field("token", &"[redacted]").field("base_url", &self.base_url).finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Self { database_url: DEFAULT_DATABASE_URL.into(), secret_key: None, discord: None, http: None }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &redact_url(&self.database_url))
            .field("secret_key", &self.secret_key.as_ref().map(|_| "[redacted]"))
            .field("discord", &self.discord)
            .field("http", &self.http)
            .finish()
    }
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
    /// Where `polity run` serves HTTP: `[http] listen`, else [`DEFAULT_HTTP_LISTEN`].
    pub fn http_listen(&self) -> SocketAddr {
        self.http.as_ref().map_or(DEFAULT_HTTP_LISTEN, |h| h.listen)
    }

    /// Whether `polity run` has anything to serve: a platform (Discord) or the HTTP server,
    /// which counts once it is configured (`[http]` or `POLITY_HTTP_LISTEN`), since webhook
    /// platforms need nothing else.
    pub fn has_something_to_run(&self) -> bool {
        self.discord.is_some() || self.http.is_some()
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
            .merge(Env::prefixed("POLITY_").only(&["discord_token"]).map(|_| "discord.token".into()))
            .merge(Env::prefixed("POLITY_").only(&["http_listen"]).map(|_| "http.listen".into()));
        figment.extract().context("reading the configuration (polity.toml and POLITY_* variables)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(redact_url("postgres://u:hunter2@127.0.0.1/db"), "postgres://u:[redacted]@127.0.0.1/db");
        assert_eq!(redact_url("sqlite://polity.db?mode=rwc"), "sqlite://polity.db?mode=rwc");
        let discord = DiscordConfig { token: "MTk4.tok3n".into(), base_url: discord_url() };
        let c = Config {
            database_url: "postgres://u:hunter2@h/db".into(),
            secret_key: Some("k3y".into()),
            discord: Some(discord),
            http: None,
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
        std::fs::write(&f, "[discord]\ntoken = \"t\"\nguild = 1\n").unwrap();
        let err = format!("{:#}", Config::load(Some(&f)).unwrap_err());
        assert!(err.contains("guild"), "{err}");
        std::fs::write(&f, "[discord]\ntoken = \"t\"\n").unwrap();
        let discord = Config::load(Some(&f)).unwrap().discord.unwrap();
        assert_eq!((discord.token.as_str(), discord.base_url.as_str()), ("t", "https://discord.com"));
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
