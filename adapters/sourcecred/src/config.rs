//! What SourceCred is to the host ([`SPEC`]) and a connection's configuration: the instance's
//! address, how often, how patiently and for how long it is read, and whether members are
//! also matched by their Polity name.

use polity_governance::platform::{PlatformSpec, Setting};
use polity_port::AdapterError;
use reqwest::Url;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::time::Duration;

/// What SourceCred is to Polity.
pub static SPEC: PlatformSpec = PlatformSpec {
    cred: true,
    name: "sourcecred",
    title: "SourceCred",
    space: "instance",
    controllers: "whoever runs the SourceCred instance",
    secret: None,
    settings: &[
        Setting {
            name: "url",
            help: "the instance's public address, where output/accounts.json is served, e.g. https://openfoobar.github.io/cred",
            names_space: false,
        },
        Setting {
            name: "match_names",
            help: "true to also match members by their Polity name to SourceCred identity names: only where admins choose members' names",
            names_space: false,
        },
    ],
    env: &[],
};

/// The least time between two reads: an instance changes a few times a day at most.
pub const MIN_REFRESH_SECS: u64 = 60;
/// The longest a read may take: the host gives a connection 30 s to start.
pub const MAX_TIMEOUT_MS: u64 = 25_000;

/// A SourceCred connection's configuration, as written (`[platforms.sourcecred]`, or built by
/// [`polity_port::Adapter::connection_config`] from a connection's settings).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// The instance's site: `output/accounts.json` is read under it.
    pub url: String,
    /// Seconds between reads (at least [`MIN_REFRESH_SECS`]).
    #[serde(default = "refresh_secs")]
    pub refresh_secs: u64,
    /// How old the last good read may be, while reads fail, before lookups are an error.
    #[serde(default = "stale_after_secs")]
    pub stale_after_secs: u64,
    /// How long one read may take, in milliseconds.
    #[serde(default = "timeout_ms")]
    pub timeout_ms: u64,
    /// Whether a member unknown by their linked accounts is matched by their Polity name to
    /// an identity's name. Off unless asked: members choose their names (a platform's
    /// display name), so anyone could take the name of someone with cred.
    #[serde(default)]
    pub match_names: bool,
}

fn refresh_secs() -> u64 {
    300
}

fn stale_after_secs() -> u64 {
    3600
}

fn timeout_ms() -> u64 {
    10_000
}

/// A connection's configuration, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceCredConfig {
    /// The instance's site, as configured.
    pub site: Url,
    /// Where `accounts.json` is read: `output/accounts.json` under the site, or the site
    /// itself when it names a file `accounts.json`.
    pub accounts: Url,
    pub refresh: Duration,
    pub stale_after: Duration,
    pub timeout: Duration,
    /// Whether members are also matched by name ([`RawConfig::match_names`]).
    pub match_names: bool,
}

/// The keys whose values are whole numbers.
const NUMBERS: [&str; 3] = ["refresh_secs", "stale_after_secs", "timeout_ms"];

/// The setting that also matches members by name.
const MATCH_NAMES: &str = "match_names";

impl SourceCredConfig {
    /// Reads a configuration.
    ///
    /// # Errors
    /// [`AdapterError::Config`] naming the key at fault: an unknown key, a missing `url`, an
    /// address that is not http(s), a value out of range, a `match_names` not a boolean.
    pub fn read(config: &Value) -> Result<Self, AdapterError> {
        let bad = |why: String| AdapterError::Config(format!("a SourceCred connection's {why}"));
        let Value::Object(keys) = config else {
            return Err(AdapterError::Config("a SourceCred connection's configuration is not a table".into()));
        };
        if let Some(url) = keys.get("url")
            && !url.is_string()
        {
            return Err(bad(format!("url is {url}, not an address")));
        }
        for key in NUMBERS {
            if let Some(v) = keys.get(key)
                && v.as_u64().is_none()
            {
                return Err(bad(format!("{key} is {v}, not a whole number")));
            }
        }
        if let Some(v) = keys.get(MATCH_NAMES)
            && !v.is_boolean()
        {
            return Err(bad(format!("{MATCH_NAMES} is {v}, not true or false")));
        }
        let raw: RawConfig = serde_json::from_value(config.clone()).map_err(|e| bad(format!("configuration: {e}")))?;
        let site = site(&raw.url).map_err(|why| bad(format!("url `{}` {why}", raw.url)))?;
        if raw.refresh_secs < MIN_REFRESH_SECS {
            return Err(bad(format!(
                "refresh_secs is {}: read an instance at most every {MIN_REFRESH_SECS} s (it changes a few times a day)",
                raw.refresh_secs
            )));
        }
        if raw.stale_after_secs <= raw.refresh_secs {
            return Err(bad(format!(
                "stale_after_secs ({}) must be longer than refresh_secs ({}), or lookups would fail between two reads",
                raw.stale_after_secs, raw.refresh_secs
            )));
        }
        if !(100..=MAX_TIMEOUT_MS).contains(&raw.timeout_ms) {
            return Err(bad(format!("timeout_ms is {}: give 100 to {MAX_TIMEOUT_MS}", raw.timeout_ms)));
        }
        let accounts = accounts_url(&site).map_err(|why| bad(format!("url `{}` {why}", raw.url)))?;
        Ok(Self {
            site,
            accounts,
            refresh: Duration::from_secs(raw.refresh_secs),
            stale_after: Duration::from_secs(raw.stale_after_secs),
            timeout: Duration::from_millis(raw.timeout_ms),
            match_names: raw.match_names,
        })
    }

    /// A community's connection: `url` and `match_names` (`true` or `false`, as written in
    /// its settings; `false` when not given) from its `settings`, the rest from `bot` (the
    /// `[platforms.sourcecred]` table, if there is one) or the defaults. `match_names` is
    /// the connection's own choice: Polity's table does not make it for communities.
    ///
    /// # Errors
    /// [`AdapterError::Config`] without a `url`, with a `match_names` neither `true` nor
    /// `false`, or when [`SourceCredConfig::read`] refuses it.
    pub fn of_connection(bot: Option<&Value>, settings: &Map<String, Value>) -> Result<Value, AdapterError> {
        let Some(url) = settings.get("url").and_then(Value::as_str).map(str::trim).filter(|u| !u.is_empty()) else {
            return Err(AdapterError::Config(format!(
                "a SourceCred connection needs url=... ({})",
                SPEC.setting("url").map_or("the instance's address", |s| s.help)
            )));
        };
        let mut config = Map::new();
        config.insert("url".into(), Value::String(url.to_owned()));
        if let Some(v) = settings.get(MATCH_NAMES) {
            let yes = match v {
                Value::Bool(b) => *b,
                Value::String(s) if s.trim().eq_ignore_ascii_case("true") => true,
                Value::String(s) if s.trim().eq_ignore_ascii_case("false") => false,
                other => {
                    let written = other.as_str().map_or_else(|| other.to_string(), str::to_owned);
                    return Err(AdapterError::Config(format!(
                        "a SourceCred connection's {MATCH_NAMES} is `{written}`: write {MATCH_NAMES}=true or {MATCH_NAMES}=false ({})",
                        SPEC.setting(MATCH_NAMES).map_or("whether members are matched by name", |s| s.help)
                    )));
                }
            };
            config.insert(MATCH_NAMES.into(), Value::Bool(yes));
        }
        for key in NUMBERS {
            if let Some(v) = bot.and_then(|b| b.get(key)) {
                config.insert(key.into(), v.clone());
            }
        }
        let config = Value::Object(config);
        Self::read(&config)?;
        Ok(config)
    }

    /// The site's host (and port, if it names one), as replies name the instance.
    pub fn host(&self) -> String {
        let host = self.site.host_str().unwrap_or("(no host)");
        match self.site.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        }
    }

    /// The site's address, as replies name it (without a trailing `/`).
    pub fn site_name(&self) -> String {
        self.site.as_str().trim_end_matches('/').to_owned()
    }
}

/// An instance's site from what was configured.
fn site(url: &str) -> Result<Url, &'static str> {
    let url = Url::parse(url.trim()).map_err(|_| "is not an address (write it as https://...)")?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("is not an http(s) address");
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("names no host");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("carries a user name or password: give the instance's public address");
    }
    Ok(url)
}

/// Where `accounts.json` is under `site`.
fn accounts_url(site: &Url) -> Result<Url, &'static str> {
    if site.path().ends_with("/accounts.json") {
        return Ok(site.clone());
    }
    let mut base = site.clone();
    base.set_query(None);
    base.set_fragment(None);
    if !base.path().ends_with('/') {
        let path = format!("{}/", base.path());
        base.set_path(&path);
    }
    base.join("output/accounts.json").map_err(|_| "cannot hold output/accounts.json")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn accounts(url: &str) -> String {
        SourceCredConfig::read(&json!({ "url": url })).unwrap().accounts.to_string()
    }

    #[test]
    fn where_accounts_json_is() {
        assert_eq!(
            accounts("https://openfoobar.github.io/cred"),
            "https://openfoobar.github.io/cred/output/accounts.json"
        );
        assert_eq!(
            accounts("https://openfoobar.github.io/cred/"),
            "https://openfoobar.github.io/cred/output/accounts.json"
        );
        assert_eq!(accounts("http://127.0.0.1:6006"), "http://127.0.0.1:6006/output/accounts.json");
        assert_eq!(accounts("https://x.org/a?b=c#d"), "https://x.org/a/output/accounts.json");
        let raw = "https://raw.githubusercontent.com/MetaFam/XP/gh-pages/output/accounts.json";
        assert_eq!(accounts(raw), raw);
    }

    #[test]
    fn defaults_and_names() {
        let c = SourceCredConfig::read(&json!({ "url": " https://openfoobar.github.io/cred " })).unwrap();
        assert_eq!(
            (c.refresh, c.stale_after, c.timeout),
            (Duration::from_secs(300), Duration::from_secs(3600), Duration::from_secs(10))
        );
        assert_eq!(
            (c.host(), c.site_name()),
            ("openfoobar.github.io".into(), "https://openfoobar.github.io/cred".into())
        );
        let c = SourceCredConfig::read(&json!({ "url": "http://127.0.0.1:6006/" })).unwrap();
        assert_eq!((c.host(), c.site_name()), ("127.0.0.1:6006".into(), "http://127.0.0.1:6006".into()));
    }

    #[test]
    fn mistakes_name_the_key() {
        let cases = [
            (json!({ "url": "https://x.org", "refresh": 60 }), "unknown field `refresh`"),
            (json!({}), "missing field `url`"),
            (json!([]), "is not a table"),
            (json!({ "url": 5 }), "url is 5, not an address"),
            (json!({ "url": "x.org" }), "url `x.org` is not an address"),
            (json!({ "url": "ftp://x.org" }), "url `ftp://x.org` is not an http(s) address"),
            (json!({ "url": "https://me:pw@x.org" }), "carries a user name or password"),
            (json!({ "url": "https://x.org", "refresh_secs": "300" }), "refresh_secs is \"300\", not a whole number"),
            (json!({ "url": "https://x.org", "refresh_secs": -1 }), "refresh_secs is -1, not a whole number"),
            (json!({ "url": "https://x.org", "refresh_secs": 59 }), "refresh_secs is 59"),
            (json!({ "url": "https://x.org", "stale_after_secs": 300 }), "stale_after_secs (300) must be longer"),
            (json!({ "url": "https://x.org", "timeout_ms": 60_000 }), "timeout_ms is 60000"),
            (json!({ "url": "https://x.org", "match_names": "true" }), "match_names is \"true\", not true or false"),
        ];
        for (config, says) in cases {
            let e = SourceCredConfig::read(&config).unwrap_err().to_string();
            assert!(e.contains(says), "{config}: {e}");
        }
    }

    #[test]
    fn a_connection_needs_its_url() {
        let e = SourceCredConfig::of_connection(None, &Map::new()).unwrap_err().to_string();
        assert!(e.starts_with("a SourceCred connection needs url=..."), "{e}");
        let mut settings = Map::new();
        settings.insert("url".into(), json!("https://x.org/cred"));
        let bot = json!({ "url": "https://elsewhere.org", "refresh_secs": 600, "token": "ignored" });
        let config = SourceCredConfig::of_connection(Some(&bot), &settings).unwrap();
        assert_eq!(config, json!({ "url": "https://x.org/cred", "refresh_secs": 600 }));
        assert!(!SourceCredConfig::read(&config).unwrap().match_names);
    }

    #[test]
    fn names_are_matched_only_when_a_connection_says_so() {
        assert!(!SourceCredConfig::read(&json!({ "url": "https://x.org" })).unwrap().match_names);
        assert!(SourceCredConfig::read(&json!({ "url": "https://x.org", "match_names": true })).unwrap().match_names);
        let with = |v: Value| {
            let mut settings = Map::new();
            settings.insert("url".into(), json!("https://x.org"));
            settings.insert("match_names".into(), v);
            SourceCredConfig::of_connection(Some(&json!({ "match_names": true })), &settings)
        };
        for (written, yes) in
            [(json!("true"), true), (json!(" TRUE "), true), (json!("false"), false), (json!(true), true)]
        {
            let config = with(written.clone()).unwrap();
            assert_eq!(config["match_names"], json!(yes), "{written}");
            assert_eq!(SourceCredConfig::read(&config).unwrap().match_names, yes, "{written}");
        }
        for bad in [json!("yes"), json!("1"), json!(1)] {
            let e = with(bad.clone()).unwrap_err().to_string();
            assert!(e.contains("write match_names=true or match_names=false"), "{bad}: {e}");
        }
        // Polity's own table does not opt a community in.
        let mut settings = Map::new();
        settings.insert("url".into(), json!("https://x.org"));
        let config = SourceCredConfig::of_connection(Some(&json!({ "match_names": true })), &settings).unwrap();
        assert!(!SourceCredConfig::read(&config).unwrap().match_names);
        assert!(SPEC.setting("match_names").is_some_and(|s| s.help.starts_with("true to also match members")));
    }
}
