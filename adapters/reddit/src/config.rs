//! What Reddit is to Polity ([`SPEC`]) and a connection's configuration ([`RedditConfig`]):
//! one subreddit, the OAuth app Polity is, and the moderator account it acts as.

use polity_governance::platform::{PlatformSpec, Setting};
use polity_port::AdapterError;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::fmt;
use std::time::Duration;

/// Where Reddit hands out access tokens, and where its OAuth API is.
pub const AUTH_URL: &str = "https://www.reddit.com";
pub const API_URL: &str = "https://oauth.reddit.com";

/// What Reddit is to Polity.
pub static SPEC: PlatformSpec = PlatformSpec {
    cred: false,
    name: "reddit",
    title: "Reddit",
    space: "subreddit",
    controllers: "a moderator of the subreddit",
    secret: Some(
        "the app's secret and the moderator account's refresh token, separated by a space (for a script app with grant=password: the app's secret and the account's password)",
    ),
    settings: &[
        Setting { name: "subreddit", help: "the subreddit's name, without r/", names_space: false },
        Setting { name: "client_id", help: "the app's id (reddit.com/prefs/apps, under its name)", names_space: false },
        Setting {
            name: "username",
            help: "the moderator account Polity acts as (it names Polity in its User-Agent, and is never governed)",
            names_space: false,
        },
        Setting {
            name: "grant",
            help: "`refresh_token` (the default: a web or installed app's token for the account) or `password` (a script app the account owns)",
            names_space: false,
        },
        Setting {
            name: "poll_secs",
            help: "how often, in seconds, new posts, comments, the moderation queue and open votes are read (60 by default)",
            names_space: false,
        },
        Setting {
            name: "auth_url",
            help: "where access tokens come from (https://www.reddit.com by default; for a proxy or a test server)",
            names_space: false,
        },
        Setting {
            name: "api_url",
            help: "where Reddit's OAuth API is (https://oauth.reddit.com by default; for a proxy or a test server)",
            names_space: false,
        },
    ],
    env: &[],
};

/// How Polity gets its access tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grant {
    RefreshToken,
    Password,
}

/// A connection to one subreddit.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedditConfig {
    pub subreddit: String,
    pub client_id: String,
    pub client_secret: String,
    pub username: String,
    #[serde(default = "refresh_token")]
    pub grant: Grant,
    /// The refresh token, or with [`Grant::Password`] the account's password.
    pub credential: String,
    #[serde(default = "auth_url")]
    pub auth_url: String,
    #[serde(default = "api_url")]
    pub api_url: String,
    #[serde(default = "timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "poll_secs")]
    pub poll_secs: u64,
}

fn refresh_token() -> Grant {
    Grant::RefreshToken
}

fn auth_url() -> String {
    AUTH_URL.into()
}

fn api_url() -> String {
    API_URL.into()
}

fn timeout_ms() -> u64 {
    10_000
}

fn poll_secs() -> u64 {
    60
}

impl fmt::Debug for RedditConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedditConfig")
            .field("subreddit", &self.subreddit)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("username", &self.username)
            .field("grant", &self.grant)
            .field("credential", &"[redacted]")
            .finish_non_exhaustive()
    }
}

/// Whether `name` can be a subreddit's or an account's name (letters, digits, `_`, `-`).
fn name_ok(name: &str, max: usize) -> bool {
    (2..=max).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A subreddit's name as Polity keeps it: without `r/`, lower case.
pub fn subreddit_of(name: &str) -> String {
    let name = name.trim().trim_start_matches('/');
    name.strip_prefix("r/").unwrap_or(name).trim_end_matches('/').to_ascii_lowercase()
}

impl RedditConfig {
    /// Reads a connection's configuration.
    ///
    /// # Errors
    /// [`AdapterError::Config`] naming what is wrong.
    pub fn read(config: &Value) -> Result<Self, AdapterError> {
        let mut read: Self = serde_json::from_value(config.clone())
            .map_err(|e| AdapterError::Config(format!("[platforms.reddit]: {e}")))?;
        read.subreddit = subreddit_of(&read.subreddit);
        if !name_ok(&read.subreddit, 21) {
            return Err(AdapterError::Config(format!("`{}` is not a subreddit's name", read.subreddit)));
        }
        if !name_ok(&read.username, 20) {
            return Err(AdapterError::Config(format!("`{}` is not a Reddit account's name", read.username)));
        }
        if read.client_id.trim().is_empty() || read.client_id.len() > 64 {
            return Err(AdapterError::Config("a Reddit connection needs the app's client_id".into()));
        }
        if read.credential.trim().is_empty() {
            return Err(AdapterError::Config(
                "a Reddit connection needs the app's secret and a refresh token (or password)".into(),
            ));
        }
        polity_port::check_secure_url("[platforms.reddit]: auth_url", &read.auth_url)?;
        polity_port::check_secure_url("[platforms.reddit]: api_url", &read.api_url)?;
        read.auth_url = read.auth_url.trim_end_matches('/').to_string();
        read.api_url = read.api_url.trim_end_matches('/').to_string();
        if read.timeout_ms == 0 || read.poll_secs == 0 {
            return Err(AdapterError::Config("[platforms.reddit]: timeout_ms and poll_secs must be over 0".into()));
        }
        Ok(read)
    }

    /// A community's connection from its settings and the secret typed privately: the app's
    /// secret and the refresh token (or password), separated by a space. An installed app has
    /// no secret: its secret is then `-`.
    ///
    /// # Errors
    /// [`AdapterError::Config`] when they cannot make a connection.
    pub fn for_connection(settings: &Map<String, Value>, secret: Option<&str>) -> Result<Value, AdapterError> {
        let text = |k: &str| settings.get(k).and_then(Value::as_str).map(str::trim);
        let need = |k: &str| {
            text(k)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| AdapterError::Config(format!("a Reddit connection needs {k}=...")))
        };
        // The app's secret has no space; a password may.
        let typed = secret.unwrap_or_default().trim();
        let Some((app_secret, credential)) =
            typed.split_once(char::is_whitespace).map(|(a, c)| (a, c.trim())).filter(|(_, c)| !c.is_empty())
        else {
            return Err(AdapterError::Config(
                "type the app's secret and the refresh token (or password), separated by a space".into(),
            ));
        };
        let mut config = json!({
            "subreddit": need("subreddit")?,
            "client_id": need("client_id")?,
            "username": need("username")?,
            "client_secret": if app_secret == "-" { "" } else { app_secret },
            "credential": credential,
        });
        if let Some(grant) = text("grant") {
            if !["refresh_token", "password"].contains(&grant) {
                return Err(AdapterError::Config(format!("grant must be refresh_token or password, not `{grant}`")));
            }
            config["grant"] = json!(grant);
        }
        for key in ["auth_url", "api_url"] {
            if let Some(url) = text(key) {
                config[key] = json!(url);
            }
        }
        if let Some(secs) = text("poll_secs") {
            let secs: u64 =
                secs.parse().map_err(|_| AdapterError::Config(format!("poll_secs must be a number, not `{secs}`")))?;
            config["poll_secs"] = json!(secs);
        }
        Self::read(&config)?;
        Ok(config)
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// The User-Agent Reddit requires: `<platform>:<app id>:<version> (by /u/<account>)`.
    pub fn user_agent(&self) -> String {
        format!("server:polity-{}:v{} (by /u/{})", self.client_id, env!("CARGO_PKG_VERSION"), self.username)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Map<String, Value> {
        pairs.iter().map(|(k, v)| ((*k).to_string(), json!(v))).collect()
    }

    #[test]
    fn a_connection_is_a_subreddit_an_app_and_an_account() {
        let s = settings(&[("subreddit", "r/Tidepool/"), ("client_id", "abc123"), ("username", "polity_bot")]);
        let config = RedditConfig::for_connection(&s, Some("s3cret r3fresh")).unwrap_or_else(|e| panic!("{e}"));
        let read = RedditConfig::read(&config).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((read.subreddit.as_str(), read.grant), ("tidepool", Grant::RefreshToken));
        assert_eq!(
            read.user_agent(),
            format!("server:polity-abc123:v{} (by /u/polity_bot)", env!("CARGO_PKG_VERSION"))
        );
        let shown = format!("{read:?}");
        assert!(!shown.contains("s3cret") && !shown.contains("r3fresh"), "{shown}");
        assert!(RedditConfig::for_connection(&s, Some("only-one")).is_err());
        let spaced = RedditConfig::for_connection(&s, Some("s3cret correct horse")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(spaced["credential"], "correct horse", "a password may hold spaces");
        let installed = RedditConfig::for_connection(&s, Some("- r3fresh")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(installed["client_secret"], "");
        let mut bad = s.clone();
        bad.insert("subreddit".into(), json!("no spaces allowed"));
        assert!(RedditConfig::for_connection(&bad, Some("a b")).is_err());
        let mut bad = s.clone();
        bad.insert("grant".into(), json!("magic"));
        assert!(RedditConfig::for_connection(&bad, Some("a b")).is_err());
        let mut bad = s;
        bad.insert("api_url".into(), json!("http://oauth.example.org"));
        assert!(RedditConfig::for_connection(&bad, Some("a b")).is_err());
    }
}
