//! What GitHub is to Polity ([`SPEC`]) and a connection's configuration ([`GitHubConfig`]):
//! one repository, and either a fine-grained personal access token or a GitHub App (its id
//! and private key). Read once, unknown keys refused, no secret ever shown.

use polity_governance::platform::{PlatformSpec, Setting};
use polity_port::AdapterError;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::fmt;
use std::time::Duration;

/// GitHub's REST API.
pub const API_URL: &str = "https://api.github.com";

/// What GitHub is to Polity.
pub static SPEC: PlatformSpec = PlatformSpec {
    cred: false,
    name: "github",
    title: "GitHub",
    space: "repository",
    controllers: "an admin of the repository",
    secret: Some(
        "a fine-grained personal access token for the repository (Settings → Developer settings → Personal access tokens → Fine-grained tokens; permissions: Issues, Pull requests and Contents read and write, Webhooks read and write, Metadata read), or with app_id set, the GitHub App's private key (the whole .pem file)",
    ),
    settings: &[
        Setting { name: "repo", help: "the repository, as OWNER/NAME", names_space: false },
        Setting {
            name: "app_id",
            help: "the GitHub App's id (its settings page, About → App ID), when Polity acts as a GitHub App installed on the repository; the secret is then the App's private key",
            names_space: false,
        },
        Setting {
            name: "hook_id",
            help: "the repository webhook's id (the number at the end of its settings page's address), so Polity can ask GitHub to deliver again what it missed; not needed with a GitHub App",
            names_space: false,
        },
        Setting {
            name: "reactions_secs",
            help: "how often, in seconds, the reactions on open votes are read back (GitHub sends nothing when someone reacts): 60 by default; each read is one request",
            names_space: false,
        },
        Setting {
            name: "api_url",
            help: "where GitHub's REST API is (https://api.github.com by default; GitHub Enterprise Server: https://HOST/api/v3)",
            names_space: false,
        },
    ],
    env: &[],
};

/// A connection to one repository.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitHubConfig {
    /// `OWNER/NAME`.
    pub repo: String,
    /// A fine-grained personal access token (`github_pat_...`) or a classic one.
    #[serde(default)]
    pub token: Option<String>,
    /// The GitHub App's id, when Polity is an App installed on the repository.
    #[serde(default)]
    pub app_id: Option<u64>,
    /// The App's private key, PEM (PKCS#1, as GitHub hands it out, or PKCS#8).
    #[serde(default)]
    pub private_key: Option<String>,
    /// The repository webhook's id, for redeliveries with a token.
    #[serde(default)]
    pub hook_id: Option<u64>,
    #[serde(default = "api_url")]
    pub api_url: String,
    /// How long one request may take, in milliseconds.
    #[serde(default = "timeout_ms")]
    pub timeout_ms: u64,
    /// How often missed deliveries are looked for, in seconds.
    #[serde(default = "poll_secs")]
    pub poll_secs: u64,
    /// How often open votes' reactions are read back, in seconds (GitHub sends no event for a
    /// reaction).
    #[serde(default = "reactions_secs")]
    pub reactions_secs: u64,
}

fn api_url() -> String {
    API_URL.to_string()
}

fn timeout_ms() -> u64 {
    10_000
}

fn poll_secs() -> u64 {
    300
}

fn reactions_secs() -> u64 {
    60
}

impl fmt::Debug for GitHubConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitHubConfig")
            .field("repo", &self.repo)
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .field("app_id", &self.app_id)
            .field("private_key", &self.private_key.as_ref().map(|_| "[redacted]"))
            .field("hook_id", &self.hook_id)
            .field("api_url", &self.api_url)
            .finish_non_exhaustive()
    }
}

/// Whether `repo` is `OWNER/NAME` as GitHub allows them.
pub fn is_repo(repo: &str) -> bool {
    let Some((owner, name)) = repo.split_once('/') else { return false };
    let part = |p: &str| {
        !p.is_empty() && p.len() <= 100 && p.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    };
    part(owner) && part(name) && name != "." && name != ".."
}

impl GitHubConfig {
    /// Reads a connection's configuration.
    ///
    /// # Errors
    /// [`AdapterError::Config`] naming the key at fault.
    pub fn read(config: &Value) -> Result<Self, AdapterError> {
        let read: Self = serde_json::from_value(config.clone())
            .map_err(|e| AdapterError::Config(format!("[platforms.github]: {e}")))?;
        if !is_repo(&read.repo) {
            return Err(AdapterError::Config(format!(
                "[platforms.github]: repo `{}` is not a repository as OWNER/NAME",
                read.repo
            )));
        }
        match (&read.token, read.app_id, &read.private_key) {
            (Some(t), None, None) if !t.trim().is_empty() => {}
            (None, Some(_), Some(key)) if key.contains("PRIVATE KEY-----") => {}
            (None, Some(_), _) => {
                return Err(AdapterError::Config(
                    "a GitHub App connection needs the App's private key (the whole .pem file, from the App's settings → Private keys)".into(),
                ));
            }
            _ => {
                return Err(AdapterError::Config(
                    "a GitHub connection needs a token, or an App's id (app_id) and private key".into(),
                ));
            }
        }
        polity_port::check_secure_url("[platforms.github]: api_url", &read.api_url)?;
        if read.timeout_ms == 0 {
            return Err(AdapterError::Config("[platforms.github]: timeout_ms must be over 0".into()));
        }
        if read.poll_secs < 60 || read.reactions_secs == 0 {
            return Err(AdapterError::Config(
                "[platforms.github]: poll_secs must be at least 60 and reactions_secs at least 1".into(),
            ));
        }
        Ok(read)
    }

    /// A community's connection from its settings and secret (a token, or with `app_id` the
    /// App's private key).
    ///
    /// # Errors
    /// [`AdapterError::Config`] when they cannot make a connection.
    pub fn for_connection(settings: &Map<String, Value>, secret: Option<&str>) -> Result<Value, AdapterError> {
        let text = |k: &str| settings.get(k).and_then(Value::as_str).map(str::trim);
        let number = |k: &str| -> Result<Option<u64>, AdapterError> {
            match settings.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Number(n)) => Ok(n.as_u64()),
                Some(Value::String(s)) => s
                    .trim()
                    .parse()
                    .map(Some)
                    .map_err(|_| AdapterError::Config(format!("`{k}` must be a number, not `{s}`"))),
                Some(other) => Err(AdapterError::Config(format!("`{k}` must be a number, not {other}"))),
            }
        };
        let repo =
            text("repo").ok_or_else(|| AdapterError::Config("a GitHub connection needs repo=OWNER/NAME".into()))?;
        let mut config = json!({ "repo": repo });
        if let Some(url) = text("api_url") {
            config["api_url"] = json!(url);
        }
        if let Some(hook) = number("hook_id")? {
            config["hook_id"] = json!(hook);
        }
        if let Some(secs) = number("reactions_secs")? {
            config["reactions_secs"] = json!(secs);
        }
        let secret = secret.map(str::trim).filter(|s| !s.is_empty());
        match number("app_id")? {
            Some(app) => {
                config["app_id"] = json!(app);
                if let Some(key) = secret {
                    config["private_key"] = json!(key);
                }
            }
            None => {
                if let Some(token) = secret {
                    config["token"] = json!(token);
                }
            }
        }
        GitHubConfig::read(&config)?;
        Ok(config)
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    pub fn owner_and_name(&self) -> (&str, &str) {
        self.repo.split_once('/').unwrap_or((self.repo.as_str(), ""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_takes_a_token_or_an_apps_key() {
        let mut settings = Map::new();
        settings.insert("repo".into(), json!("tidepool/garden"));
        let token = GitHubConfig::for_connection(&settings, Some("github_pat_1")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(token["token"], "github_pat_1");
        settings.insert("app_id".into(), json!("42"));
        let key = "-----BEGIN RSA PRIVATE KEY-----\nMII\n-----END RSA PRIVATE KEY-----\n";
        let app = GitHubConfig::for_connection(&settings, Some(key)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((app["app_id"].as_u64(), app.get("token")), (Some(42), None));
        assert!(GitHubConfig::for_connection(&settings, Some("not a key")).is_err());
        let shown = format!("{:?}", GitHubConfig::read(&app).unwrap_or_else(|e| panic!("{e}")));
        assert!(!shown.contains("MII"), "{shown}");
    }

    #[test]
    fn repositories_are_owner_slash_name() {
        for good in ["a/b", "Tide-pool/garden.rs", "x_y/z"] {
            assert!(is_repo(good), "{good}");
        }
        for bad in ["", "a", "a/", "/b", "a/b/c", "a/..", "a b/c", "a/b?x"] {
            assert!(!is_repo(bad), "{bad}");
        }
    }
}
