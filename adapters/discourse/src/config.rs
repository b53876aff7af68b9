//! What Discourse is to Polity ([`SPEC`]) and a connection's configuration
//! ([`DiscourseConfig`]): one forum, an API key and the user it acts as.

use polity_governance::platform::{PlatformSpec, Setting};
use polity_port::AdapterError;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::fmt;
use std::time::Duration;

/// What Discourse is to Polity.
pub static SPEC: PlatformSpec = PlatformSpec {
    cred: false,
    name: "discourse",
    title: "Discourse",
    space: "forum",
    controllers: "an admin of the forum",
    secret: Some(
        "an API key (Admin → API → New API key: for a single user, the one Polity acts as, a moderator; or for all users, with the username setting)",
    ),
    settings: &[
        Setting { name: "url", help: "the forum's address, https://forum.example.org", names_space: false },
        Setting {
            name: "poll_secs",
            help: "how often, in seconds, a Discourse poll Polity started is read until it closes (60 by default)",
            names_space: false,
        },
        Setting {
            name: "username",
            help: "the user Polity acts as (Api-Username): a moderator, so it can delete and recover topics and posts; `system` by default",
            names_space: false,
        },
    ],
    env: &[],
};

/// A connection to one forum.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscourseConfig {
    /// The forum's address (scheme and host, no trailing slash).
    pub url: String,
    pub api_key: String,
    #[serde(default = "system")]
    pub username: String,
    #[serde(default = "timeout_ms")]
    pub timeout_ms: u64,
    /// How often a poll Polity started is read, in seconds.
    #[serde(default = "poll_secs")]
    pub poll_secs: u64,
}

fn system() -> String {
    "system".into()
}

fn timeout_ms() -> u64 {
    10_000
}

fn poll_secs() -> u64 {
    60
}

impl fmt::Debug for DiscourseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiscourseConfig")
            .field("url", &self.url)
            .field("api_key", &"[redacted]")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// A forum's address as Discourse names its instance (`X-Discourse-Instance`): scheme and
/// host, no trailing slash.
pub fn instance_of(url: &str) -> String {
    url.trim().trim_end_matches('/').to_ascii_lowercase()
}

impl DiscourseConfig {
    /// Reads a connection's configuration.
    ///
    /// # Errors
    /// [`AdapterError::Config`] naming what is wrong.
    pub fn read(config: &Value) -> Result<Self, AdapterError> {
        let mut read: Self = serde_json::from_value(config.clone())
            .map_err(|e| AdapterError::Config(format!("[platforms.discourse]: {e}")))?;
        read.url = instance_of(&read.url);
        polity_port::check_secure_url("a Discourse connection's url (the forum's address)", &read.url)?;
        if read.api_key.trim().is_empty() {
            return Err(AdapterError::Config("a Discourse connection needs an API key".into()));
        }
        let name_ok = |n: &str| {
            !n.is_empty() && n.len() <= 60 && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
        };
        if !name_ok(&read.username) {
            return Err(AdapterError::Config(format!("`{}` is not a Discourse username", read.username)));
        }
        if read.timeout_ms == 0 || read.poll_secs == 0 {
            return Err(AdapterError::Config("[platforms.discourse]: timeout_ms and poll_secs must be over 0".into()));
        }
        Ok(read)
    }

    /// A community's connection from its settings and API key.
    ///
    /// # Errors
    /// [`AdapterError::Config`] when they cannot make a connection.
    pub fn for_connection(settings: &Map<String, Value>, secret: Option<&str>) -> Result<Value, AdapterError> {
        let text = |k: &str| settings.get(k).and_then(Value::as_str).map(str::trim);
        let url =
            text("url").ok_or_else(|| AdapterError::Config("a Discourse connection needs url=https://FORUM".into()))?;
        let mut config = json!({ "url": url, "api_key": secret.map(str::trim).unwrap_or_default() });
        if let Some(user) = text("username") {
            config["username"] = json!(user);
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_is_a_forum_a_key_and_a_user() {
        let mut settings = Map::new();
        settings.insert("url".into(), json!("https://Forum.Example.org/"));
        let config = DiscourseConfig::for_connection(&settings, Some("k3y")).unwrap_or_else(|e| panic!("{e}"));
        let read = DiscourseConfig::read(&config).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((read.url.as_str(), read.username.as_str()), ("https://forum.example.org", "system"));
        assert!(!format!("{read:?}").contains("k3y"));
        assert!(DiscourseConfig::for_connection(&settings, None).is_err());
        settings.insert("url".into(), json!("http://forum.example.org"));
        assert!(DiscourseConfig::for_connection(&settings, Some("k")).is_err());
    }
}
