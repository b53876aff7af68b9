//! What Open Collective is to Polity ([`SPEC`]) and a connection's configuration
//! ([`OpenCollectiveConfig`]): read once, unknown keys refused, the token never shown.

use polity_governance::platform::{PlatformSpec, Setting};
use polity_port::AdapterError;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::fmt;
use std::time::Duration;

/// Open Collective's GraphQL API v2.
pub const API_URL: &str = "https://api.opencollective.com/graphql/v2";

/// Open Collective's website, where expenses are linked to.
pub const WEBSITE: &str = "https://opencollective.com";

/// What Open Collective is to Polity.
pub static SPEC: PlatformSpec = PlatformSpec {
    cred: false,
    name: "opencollective",
    title: "Open Collective",
    space: "collective",
    controllers: "an admin of the collective",
    secret: Some(
        "a personal token of an admin of the collective (Open Collective → your profile → For developers → Personal tokens, scopes account and expenses; with two-factor authentication on, tick Advanced privileges)",
    ),
    settings: &[
        Setting {
            name: "collective",
            help: "the collective's slug, as in opencollective.com/SLUG",
            names_space: false,
        },
        Setting {
            name: "api",
            help: "where the GraphQL API is (https://api.opencollective.com/graphql/v2 by default; for a proxy or a test server)",
            names_space: false,
        },
    ],
    env: &[],
};

/// A connection to one collective.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenCollectiveConfig {
    /// The collective's slug (`opencollective.com/SLUG`).
    pub collective: String,
    /// A personal token of an admin of the collective.
    pub token: String,
    /// The GraphQL API v2 ([`API_URL`] by default).
    #[serde(default = "api_url")]
    pub api: String,
    /// How long one request may take, in milliseconds.
    #[serde(default = "timeout_ms")]
    pub timeout_ms: u64,
    /// How often the collective's expense activities are polled, in seconds.
    #[serde(default = "poll_secs")]
    pub poll_secs: u64,
}

fn api_url() -> String {
    API_URL.to_string()
}

/// How long one request may take unless the configuration says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

fn timeout_ms() -> u64 {
    10_000
}

fn poll_secs() -> u64 {
    300
}

/// The shortest poll interval accepted: Open Collective allows a token 100 requests a minute.
const MIN_POLL_SECS: u64 = 30;

impl fmt::Debug for OpenCollectiveConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenCollectiveConfig")
            .field("collective", &self.collective)
            .field("token", &"[redacted]")
            .field("api", &self.api)
            .field("timeout_ms", &self.timeout_ms)
            .field("poll_secs", &self.poll_secs)
            .finish()
    }
}

impl OpenCollectiveConfig {
    /// Reads a connection's configuration.
    ///
    /// # Errors
    /// [`AdapterError::Config`] naming the key at fault.
    pub fn read(config: &Value) -> Result<Self, AdapterError> {
        let read: Self = serde_json::from_value(config.clone())
            .map_err(|e| AdapterError::Config(format!("[platforms.opencollective]: {e}")))?;
        if !is_slug(&read.collective) {
            return Err(AdapterError::Config(format!(
                "[platforms.opencollective]: collective `{}` is not a collective's slug (as in opencollective.com/SLUG)",
                read.collective
            )));
        }
        if read.token.trim().is_empty() {
            return Err(AdapterError::Config("[platforms.opencollective]: the token is empty".into()));
        }
        polity_port::check_secure_url("[platforms.opencollective]: api", &read.api)?;
        if read.timeout_ms == 0 {
            return Err(AdapterError::Config("[platforms.opencollective]: timeout_ms must be over 0".into()));
        }
        if read.poll_secs < MIN_POLL_SECS {
            return Err(AdapterError::Config(format!(
                "[platforms.opencollective]: poll_secs must be at least {MIN_POLL_SECS} (Open Collective allows 100 requests a minute)"
            )));
        }
        Ok(read)
    }

    /// The configuration of a community's own connection: the `collective` and `api`
    /// settings (`api` else the bot's, else Open Collective's) and its personal token.
    ///
    /// # Errors
    /// [`AdapterError::Config`] without a token or a collective, or with a malformed one.
    pub fn for_connection(
        bot: Option<&Value>,
        settings: &Map<String, Value>,
        secret: Option<&str>,
    ) -> Result<Value, AdapterError> {
        let Some(token) = secret.map(str::trim).filter(|t| !t.is_empty()) else {
            return Err(AdapterError::Config(
                "an Open Collective connection needs a personal token of an admin of the collective".into(),
            ));
        };
        let Some(collective) = settings.get("collective").and_then(Value::as_str).map(slug_of) else {
            return Err(AdapterError::Config(
                "an Open Collective connection needs collective=SLUG (as in opencollective.com/SLUG)".into(),
            ));
        };
        let from_bot = |key: &str| bot.and_then(|b| b.get(key)).cloned();
        let api = settings
            .get("api")
            .and_then(Value::as_str)
            .map(|a| Value::String(a.trim().to_string()))
            .or_else(|| from_bot("api"))
            .unwrap_or_else(|| Value::String(api_url()));
        let mut config = json!({ "collective": collective, "token": token, "api": api });
        for key in ["timeout_ms", "poll_secs"] {
            if let (Some(value), Some(map)) = (from_bot(key), config.as_object_mut()) {
                map.insert(key.into(), value);
            }
        }
        Self::read(&config)?;
        Ok(config)
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    pub fn poll_every(&self) -> Duration {
        Duration::from_secs(self.poll_secs)
    }
}

/// A collective's slug from what someone typed: the slug itself, or its page's address.
pub fn slug_of(typed: &str) -> String {
    let typed = typed.trim().trim_end_matches('/');
    let slug = typed
        .strip_prefix("https://")
        .or_else(|| typed.strip_prefix("http://"))
        .map_or(typed, |rest| rest.split('/').nth(1).unwrap_or_default());
    slug.to_ascii_lowercase()
}

/// Whether `text` can be a collective's slug (lowercase letters, digits, `-` and `_`).
fn is_slug(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 255
        && text.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slug_is_read_from_a_page_address_too() {
        assert_eq!(slug_of("tidepool"), "tidepool");
        assert_eq!(slug_of(" https://opencollective.com/Tidepool/ "), "tidepool");
        assert_eq!(slug_of("https://opencollective.com/tidepool/expenses/12"), "tidepool");
    }

    #[test]
    fn the_token_is_required_and_never_shown() {
        let settings: Map<String, Value> = json!({"collective": "tidepool"}).as_object().cloned().unwrap();
        let err = OpenCollectiveConfig::for_connection(None, &settings, None).unwrap_err();
        assert!(err.to_string().contains("personal token"), "{err}");
        let config = OpenCollectiveConfig::for_connection(None, &settings, Some("s3cret")).unwrap();
        let read = OpenCollectiveConfig::read(&config).unwrap();
        assert_eq!(read.api, API_URL);
        assert_eq!((read.timeout_ms, read.poll_secs), (10_000, 300));
        assert!(!format!("{read:?}").contains("s3cret"));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        let bad = [
            json!({"collective": "tidepool", "token": "t", "extra": 1}),
            json!({"collective": "Tide pool", "token": "t"}),
            json!({"collective": "tidepool", "token": " "}),
            json!({"collective": "tidepool", "token": "t", "api": "ftp://x"}),
            json!({"collective": "tidepool", "token": "t", "poll_secs": 5}),
        ];
        for config in bad {
            assert!(OpenCollectiveConfig::read(&config).is_err(), "{config}");
        }
    }
}
