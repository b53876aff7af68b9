//! What Loomio is to Polity ([`SPEC`]) and a connection's configuration ([`LoomioConfig`]):
//! one group on one Loomio instance, and the API key of the user Polity acts as.

use polity_governance::platform::{PlatformSpec, Setting};
use polity_port::AdapterError;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::fmt;
use std::time::Duration;

/// Loomio's own instance.
pub const LOOMIO_URL: &str = "https://www.loomio.com";

/// What Loomio is to Polity.
pub static SPEC: PlatformSpec = PlatformSpec {
    cred: false,
    name: "loomio",
    title: "Loomio",
    space: "group",
    controllers: "an admin of the Loomio group",
    secret: Some(
        "the API key of the Loomio user Polity acts as (Profile → API key), a member of the group; or, on an older instance, the group's API key",
    ),
    settings: &[
        Setting {
            name: "group_id",
            help: "the Loomio group's number (in its address, or the group's settings)",
            names_space: false,
        },
        Setting { name: "url", help: "the Loomio instance, https://www.loomio.com by default", names_space: false },
        Setting {
            name: "api",
            help: "`b2` (a user's API key, the default) or `b1` (an older instance's group key)",
            names_space: false,
        },
        Setting {
            name: "poll_secs",
            help: "how often, in seconds, a Loomio poll Polity started is read until it closes (60 by default); it is also read at its closing time and whenever Loomio's webhook says something happened",
            names_space: false,
        },
    ],
    env: &[],
};

/// Which of Loomio's APIs a key is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApiVersion {
    /// `/api/b2`: a user's key, sent as `Authorization: Bearer`.
    B2,
    /// `/api/b1`: an older instance's per-group key, sent as `api_key` (the only way it reads it).
    B1,
}

/// A connection to one Loomio group.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoomioConfig {
    #[serde(default = "loomio_url")]
    pub url: String,
    pub group_id: u64,
    pub api_key: String,
    #[serde(default = "b2")]
    pub api: ApiVersion,
    #[serde(default = "timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "poll_secs")]
    pub poll_secs: u64,
}

fn loomio_url() -> String {
    LOOMIO_URL.into()
}

fn b2() -> ApiVersion {
    ApiVersion::B2
}

fn timeout_ms() -> u64 {
    10_000
}

fn poll_secs() -> u64 {
    60
}

impl fmt::Debug for LoomioConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoomioConfig")
            .field("url", &self.url)
            .field("group_id", &self.group_id)
            .field("api_key", &"[redacted]")
            .field("api", &self.api)
            .finish_non_exhaustive()
    }
}

/// The space a connection governs: the group on its instance.
pub fn space_of(url: &str, group: u64) -> String {
    format!("{}/g/{group}", url.trim().trim_end_matches('/').to_ascii_lowercase())
}

impl LoomioConfig {
    /// Reads a connection's configuration.
    ///
    /// # Errors
    /// [`AdapterError::Config`] naming what is wrong.
    pub fn read(config: &Value) -> Result<Self, AdapterError> {
        let mut read: Self = serde_json::from_value(config.clone())
            .map_err(|e| AdapterError::Config(format!("[platforms.loomio]: {e}")))?;
        read.url = read.url.trim().trim_end_matches('/').to_ascii_lowercase();
        polity_port::check_secure_url("a Loomio connection's url (the instance)", &read.url)?;
        if read.api_key.trim().is_empty() {
            return Err(AdapterError::Config("a Loomio connection needs an API key".into()));
        }
        if read.group_id == 0 {
            return Err(AdapterError::Config("a Loomio connection needs the group's number, group_id".into()));
        }
        if read.timeout_ms == 0 || read.poll_secs == 0 {
            return Err(AdapterError::Config("[platforms.loomio]: timeout_ms and poll_secs must be over 0".into()));
        }
        Ok(read)
    }

    /// A community's connection from its settings and API key.
    ///
    /// # Errors
    /// [`AdapterError::Config`] when they cannot make a connection.
    pub fn for_connection(settings: &Map<String, Value>, secret: Option<&str>) -> Result<Value, AdapterError> {
        let text = |k: &str| settings.get(k).and_then(Value::as_str).map(str::trim);
        let number = |k: &str| -> Result<Option<u64>, AdapterError> {
            match settings.get(k) {
                None => Ok(None),
                Some(Value::Number(n)) => {
                    n.as_u64().map(Some).ok_or_else(|| AdapterError::Config(format!("{k} must be a whole number")))
                }
                Some(v) => {
                    let s = v.as_str().unwrap_or_default().trim();
                    s.parse()
                        .map(Some)
                        .map_err(|_| AdapterError::Config(format!("{k} must be a whole number, not `{s}`")))
                }
            }
        };
        let group = number("group_id")?
            .ok_or_else(|| AdapterError::Config("a Loomio connection needs group_id=NUMBER".into()))?;
        let mut config = json!({ "group_id": group, "api_key": secret.map(str::trim).unwrap_or_default() });
        if let Some(url) = text("url") {
            config["url"] = json!(url);
        }
        if let Some(api) = text("api") {
            if !["b1", "b2"].contains(&api) {
                return Err(AdapterError::Config(format!("api must be b2 or b1, not `{api}`")));
            }
            config["api"] = json!(api);
        }
        if let Some(secs) = number("poll_secs")? {
            config["poll_secs"] = json!(secs);
        }
        Self::read(&config)?;
        Ok(config)
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// The group this connection governs, as a space.
    pub fn space(&self) -> String {
        space_of(&self.url, self.group_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_is_a_group_and_a_key() {
        let mut settings = Map::new();
        assert!(LoomioConfig::for_connection(&settings, Some("k3y")).is_err(), "no group");
        settings.insert("group_id".into(), json!("42"));
        let config = LoomioConfig::for_connection(&settings, Some("k3y")).unwrap_or_else(|e| panic!("{e}"));
        let read = LoomioConfig::read(&config).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((read.url.as_str(), read.group_id, read.api), (LOOMIO_URL, 42, ApiVersion::B2));
        assert_eq!(read.space(), "https://www.loomio.com/g/42");
        assert!(!format!("{read:?}").contains("k3y"));
        assert!(LoomioConfig::for_connection(&settings, None).is_err(), "no key");
        settings.insert("api".into(), json!("b3"));
        assert!(LoomioConfig::for_connection(&settings, Some("k")).is_err());
        settings.insert("api".into(), json!("b1"));
        settings.insert("url".into(), json!("http://loomio.example.org"));
        let e = LoomioConfig::for_connection(&settings, Some("k")).unwrap_err().to_string();
        assert!(e.contains("must be https"), "{e}");
        settings.insert("group_id".into(), json!("forty-two"));
        assert!(LoomioConfig::for_connection(&settings, Some("k")).is_err());
        let unknown = json!({ "group_id": 1, "api_key": "k", "colour": "blue" });
        assert!(LoomioConfig::read(&unknown).is_err(), "unknown keys are refused");
    }
}
