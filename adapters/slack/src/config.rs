//! What Slack is to Polity ([`SPEC`]) and its configuration: `[platforms.slack]` for Polity's
//! own Slack app, or a community's own connection built from its settings and bot token.

use polity_governance::platform::{PlatformSpec, Setting};
use polity_port::AdapterError;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::fmt;

/// Slack's Web API.
pub const SLACK_API_URL: &str = "https://slack.com/api";

/// What Slack is to Polity.
pub static SPEC: PlatformSpec = PlatformSpec {
    cred: false,
    name: "slack",
    title: "Slack",
    space: "workspace",
    controllers: "a workspace admin",
    secret: Some("the bot token (xoxb-...)"),
    settings: &[
        Setting {
            name: "workspace",
            help: "the workspace's id (T...): in Slack, the workspace menu → Settings & administration → Workspace settings shows it in the address",
            names_space: true,
        },
        Setting {
            name: "api_url",
            help: "where Slack's Web API is, for a proxy (Slack's own by default)",
            names_space: false,
        },
    ],
    env: &[
        "bot_token",
        "app_token",
        "user_token",
        "signing_secret",
        "client_id",
        "client_secret",
        "redirect_url",
        "api_url",
    ],
};

/// `[platforms.slack]`: Polity's own Slack app, or one community's connection.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// The bot token (`xoxb-...`, or `POLITY_SLACK_BOT_TOKEN`) of the one workspace the app
    /// was installed in by hand. Without it, the app is installed through OAuth
    /// (`client_id`, `client_secret`) in as many workspaces as like, each with its own token.
    #[serde(default)]
    pub bot_token: Option<String>,
    /// The app-level token (`xapp-...`, with `connections:write`) for Socket Mode: events,
    /// slash commands and button presses arrive over a websocket Polity opens, so no public
    /// address is needed. Without it, only effects are performed.
    #[serde(default)]
    pub app_token: Option<String>,
    /// The installing admin's user token (`xoxp-...`, or `POLITY_SLACK_USER_TOKEN`): what a
    /// bot token cannot do for governed actions (delete a member's message, rename a channel
    /// it did not create). Without it those actions are not undone, and votes say so.
    #[serde(default)]
    pub user_token: Option<String>,
    /// The app's signing secret, for requests Slack sends to Polity's HTTP server.
    #[serde(default)]
    pub signing_secret: Option<String>,
    /// The app's client id and secret (Basic Information → App Credentials): with them, a
    /// workspace admin installs Polity from `/slack/install` on Polity's HTTP server, and
    /// Slack's OAuth hands Polity that workspace's tokens.
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub client_secret: Option<String>,
    /// Where Slack sends the installing admin back (`https://HOST/slack/oauth`, one of the
    /// app's Redirect URLs): sent with the install link and the code's exchange. Slack uses
    /// the app's only Redirect URL when it is absent.
    #[serde(default)]
    pub redirect_url: Option<String>,
    /// Slack's page that asks an admin to approve the app (Slack's own by default).
    #[serde(default = "authorize_url")]
    pub authorize_url: String,
    /// Slack's Web API (the default); a proxy or a test server otherwise. Plain `http://`
    /// only to this machine.
    #[serde(default = "slack_api_url")]
    pub api_url: String,
    /// The workspace this connection is for (`T...`); any the token serves when absent.
    #[serde(default)]
    pub workspace: Option<String>,
    /// How long one Web API request may take, in milliseconds, before it counts as a
    /// transient failure.
    #[serde(default = "timeout_ms")]
    pub timeout_ms: u64,
}

fn slack_api_url() -> String {
    SLACK_API_URL.to_string()
}

/// Slack's page where an admin approves an app's install.
pub const SLACK_AUTHORIZE_URL: &str = "https://slack.com/oauth/v2/authorize";

fn authorize_url() -> String {
    SLACK_AUTHORIZE_URL.to_string()
}

fn timeout_ms() -> u64 {
    10_000
}

impl fmt::Debug for SlackConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlackConfig")
            .field("bot_token", &self.bot_token.as_ref().map(|_| "[redacted]"))
            .field("app_token", &self.app_token.as_ref().map(|_| "[redacted]"))
            .field("user_token", &self.user_token.as_ref().map(|_| "[redacted]"))
            .field("signing_secret", &self.signing_secret.as_ref().map(|_| "[redacted]"))
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "[redacted]"))
            .field("redirect_url", &self.redirect_url)
            .field("api_url", &self.api_url)
            .field("workspace", &self.workspace)
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

impl SlackConfig {
    /// Reads `[platforms.slack]` (or a connection's configuration).
    ///
    /// # Errors
    /// [`AdapterError::Config`] naming the key at fault.
    pub fn read(config: &Value) -> Result<Self, AdapterError> {
        let read: Self = serde_json::from_value(config.clone())
            .map_err(|e| AdapterError::Config(format!("[platforms.slack]: {e}")))?;
        match (&read.client_id, &read.client_secret) {
            (Some(id), Some(secret)) if !id.trim().is_empty() && !secret.trim().is_empty() => {}
            (None, None) => {}
            _ => {
                return Err(AdapterError::Config(
                    "[platforms.slack]: client_id and client_secret go together (Basic Information → App Credentials)"
                        .into(),
                ));
            }
        }
        let bot = read.bot_token.as_deref().unwrap_or_default().trim();
        if bot.is_empty() && read.client_id.is_none() {
            return Err(AdapterError::Config(
                "[platforms.slack]: set bot_token (one workspace), or client_id and client_secret (installs through Slack's OAuth)"
                    .into(),
            ));
        }
        if read.bot_token.is_some() && bot.is_empty() {
            return Err(AdapterError::Config("[platforms.slack]: the bot token is empty".into()));
        }
        for (key, url) in
            [("redirect_url", read.redirect_url.as_deref()), ("authorize_url", Some(read.authorize_url.as_str()))]
        {
            if let Some(url) = url {
                polity_port::check_secure_url(&format!("[platforms.slack]: {key}"), url)?;
            }
        }
        // Another kind of Slack token is a mistake; anything else (a placeholder, a proxy's
        // own token) is Slack's to refuse at start.
        if ["xoxp-", "xapp-", "xoxa-", "xoxe-", "xoxr-"].iter().any(|p| bot.starts_with(p)) {
            return Err(AdapterError::Config(
                "[platforms.slack]: bot_token is not a bot token (they start with xoxb-: OAuth & Permissions → Bot User OAuth Token)"
                    .into(),
            ));
        }
        if let Some(app) = &read.app_token
            && !app.trim().starts_with("xapp-")
        {
            return Err(AdapterError::Config(
                "[platforms.slack]: app_token is not an app-level token (they start with xapp-: Basic Information → App-Level Tokens, with connections:write)"
                    .into(),
            ));
        }
        if let Some(user) = &read.user_token
            && !user.trim().starts_with("xoxp-")
        {
            return Err(AdapterError::Config(
                "[platforms.slack]: user_token is not a user token (they start with xoxp-: OAuth & Permissions → User OAuth Token, of a workspace admin)"
                    .into(),
            ));
        }
        if read.signing_secret.as_deref().is_some_and(|s| s.trim().is_empty()) {
            return Err(AdapterError::Config("[platforms.slack]: signing_secret is empty".into()));
        }
        polity_port::check_secure_url("[platforms.slack]: api_url", &read.api_url)?;
        if read.timeout_ms == 0 {
            return Err(AdapterError::Config("[platforms.slack]: timeout_ms must be more than 0".into()));
        }
        if let Some(w) = &read.workspace
            && !is_slack_id(w, 'T')
        {
            return Err(AdapterError::Config(format!(
                "[platforms.slack]: workspace `{w}` is not a Slack workspace id (T...)"
            )));
        }
        Ok(read)
    }

    /// A community's own connection: its bot token (`secret`) and `workspace`, at the API
    /// URL its settings or Polity's own app name. Events reach it through Polity's own app
    /// (an app-level token is never a community's setting).
    ///
    /// # Errors
    /// [`AdapterError::Config`] when the settings cannot make a connection.
    pub fn for_connection(
        bot: Option<&Value>,
        settings: &Map<String, Value>,
        secret: Option<&str>,
    ) -> Result<Value, AdapterError> {
        // The secret holds the bot token, and may hold the app-level token (Socket Mode: the
        // connection's own events) and an admin's user token (governed actions), separated by
        // spaces.
        let tokens: Vec<&str> = secret.unwrap_or_default().split_whitespace().collect();
        let of = |prefix: &str| tokens.iter().find(|t| t.starts_with(prefix)).copied();
        if let Some(other) = tokens.iter().find(|t| !["xoxb-", "xapp-", "xoxp-"].iter().any(|p| t.starts_with(p))) {
            let shown: String = other.chars().take(5).collect();
            return Err(AdapterError::Config(format!(
                "a Slack connection takes tokens that start with xoxb-, xapp- or xoxp-, not `{shown}...`"
            )));
        }
        let Some(token) = of("xoxb-") else {
            return Err(AdapterError::Config("a Slack connection needs the workspace's bot token (xoxb-...)".into()));
        };
        let api_url = settings
            .get("api_url")
            .and_then(Value::as_str)
            .or_else(|| bot.and_then(|b| b.get("api_url")).and_then(Value::as_str))
            .unwrap_or(SLACK_API_URL);
        let mut config = json!({ "bot_token": token, "api_url": api_url });
        if let Some(w) = settings.get("workspace").and_then(Value::as_str) {
            config["workspace"] = json!(w);
        }
        if let Some(app) = of("xapp-") {
            config["app_token"] = json!(app);
        }
        if let Some(user) = of("xoxp-") {
            config["user_token"] = json!(user);
        }
        Self::read(&config)?;
        Ok(config)
    }
}

/// Whether `id` looks like a Slack id starting with `kind` (`T` workspaces, `U`/`W` users,
/// `C`/`G`/`D` conversations): upper-case letters and digits.
pub fn is_slack_id(id: &str, kind: char) -> bool {
    id.len() >= 2
        && id.len() <= 32
        && id.starts_with(kind)
        && id.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configuration_is_read_with_its_defaults_and_unknown_keys_refused() {
        let read =
            SlackConfig::read(&json!({"bot_token": "xoxb-1", "app_token": "xapp-1"})).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read.api_url, SLACK_API_URL);
        assert_eq!(read.timeout_ms, 10_000);
        let unknown = SlackConfig::read(&json!({"bot_token": "xoxb-1", "tokn": "x"}));
        assert!(matches!(unknown, Err(AdapterError::Config(e)) if e.contains("tokn")));
    }

    #[test]
    fn tokens_of_the_wrong_kind_and_cleartext_urls_are_refused() {
        for (config, says) in [
            (json!({"bot_token": "xoxp-1"}), "not a bot token"),
            (json!({"bot_token": "xoxb-1", "app_token": "xoxb-2"}), "not an app-level token"),
            (json!({"bot_token": "xoxb-1", "api_url": "http://slack.example/api"}), "must be https"),
            (json!({"bot_token": "xoxb-1", "workspace": "general"}), "not a Slack workspace id"),
        ] {
            let error = SlackConfig::read(&config).map(|_| ()).unwrap_err().to_string();
            assert!(error.contains(says), "{config}: {error}");
        }
        assert!(SlackConfig::read(&json!({"bot_token": "xoxb-1", "api_url": "http://127.0.0.1:9/api"})).is_ok());
    }

    #[test]
    fn an_app_installed_through_oauth_needs_no_bot_token_and_both_credentials() {
        let oauth =
            json!({"client_id": "1.2", "client_secret": "s", "redirect_url": "https://polity.example/slack/oauth"});
        assert!(SlackConfig::read(&oauth).is_ok());
        for (config, says) in [
            (json!({}), "set bot_token"),
            (json!({"client_id": "1.2"}), "go together"),
            (json!({"client_id": "1.2", "client_secret": ""}), "go together"),
            (
                json!({"client_id": "1.2", "client_secret": "s", "redirect_url": "http://polity.example/slack/oauth"}),
                "must be https",
            ),
        ] {
            let error = SlackConfig::read(&config).map(|_| ()).unwrap_err().to_string();
            assert!(error.contains(says), "{config}: {error}");
        }
    }

    #[test]
    fn the_debug_form_shows_no_token() {
        let read =
            SlackConfig::read(&json!({"bot_token": "xoxb-secret", "app_token": "xapp-secret", "signing_secret": "s3"}))
                .unwrap_or_else(|e| panic!("{e}"));
        let shown = format!("{read:?}");
        assert!(!shown.contains("secret") || !shown.contains("xoxb-secret"), "{shown}");
        assert!(!shown.contains("xoxb-secret") && !shown.contains("xapp-secret") && !shown.contains("s3\""), "{shown}");
    }

    #[test]
    fn a_communitys_connection_takes_its_token_and_workspace() {
        let mut settings = Map::new();
        settings.insert("workspace".into(), json!("T0ABC"));
        let config = SlackConfig::for_connection(None, &settings, Some(" xoxb-own ")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config["bot_token"], "xoxb-own");
        assert_eq!(config["workspace"], "T0ABC");
        assert!(SlackConfig::for_connection(None, &settings, None).is_err());
        let all = SlackConfig::for_connection(None, &settings, Some("xapp-1 xoxb-2\nxoxp-3"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (all["bot_token"].as_str(), all["app_token"].as_str(), all["user_token"].as_str()),
            (Some("xoxb-2"), Some("xapp-1"), Some("xoxp-3"))
        );
        let stray = SlackConfig::for_connection(None, &settings, Some("xoxb-2 hunter2-long-secret"))
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(stray.contains("`hunte...`") && !stray.contains("hunter2"), "{stray}");
    }
}
