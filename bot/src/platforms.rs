//! The platforms this build of Polity serves: the one file of `bot/` that names them.
//! Adding a platform is its crate (an [`Adapter`]) and one line in [`adapters`].

use polity_governance::platform::PlatformSpec;
use polity_port::Adapter;
use serde_json::Value;
use std::sync::Arc;

/// Every platform's adapter.
pub fn adapters() -> Vec<Arc<dyn Adapter>> {
    vec![
        Arc::new(polity_discord::DiscordAdapter),
        Arc::new(polity_opencollective::OpenCollectiveAdapter),
        Arc::new(polity_sourcecred::SourceCredAdapter),
        Arc::new(polity_slack::SlackAdapter),
        Arc::new(polity_github::GitHubAdapter),
        Arc::new(polity_discourse::DiscourseAdapter),
        Arc::new(polity_loomio::LoomioAdapter),
        Arc::new(polity_reddit::RedditAdapter),
    ]
}

/// A platform's declaration, by name.
pub fn spec(name: &str) -> Option<&'static PlatformSpec> {
    adapters().into_iter().map(|a| a.spec()).find(|s| s.name == name)
}

/// The adapters a runtime knows, and the configuration of the bots it runs
/// (`[platforms.NAME]`).
#[derive(Clone)]
pub struct Registry {
    adapters: Vec<Arc<dyn Adapter>>,
    bots: std::collections::HashMap<String, Value>,
    /// Where platforms reach Polity's HTTP server, for the webhook URLs handed out.
    public_url: String,
}

/// Where platforms reach Polity's HTTP server unless told otherwise.
pub const DEFAULT_PUBLIC_URL: &str = "http://127.0.0.1:8080";

impl Default for Registry {
    /// Every platform of this build ([`adapters`]), no bot running.
    fn default() -> Self {
        Self { adapters: adapters(), bots: std::collections::HashMap::new(), public_url: DEFAULT_PUBLIC_URL.into() }
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.adapters.iter().map(|a| a.spec().name).collect();
        let mut bots: Vec<&String> = self.bots.keys().collect();
        bots.sort();
        f.debug_struct("Registry").field("adapters", &names).field("bots", &bots).finish()
    }
}

impl Registry {
    /// A registry of exactly these adapters.
    pub fn of(adapters: Vec<Arc<dyn Adapter>>) -> Self {
        Self { adapters, bots: std::collections::HashMap::new(), public_url: DEFAULT_PUBLIC_URL.into() }
    }

    /// Adds an adapter, replacing one of the same platform.
    pub fn register(&mut self, adapter: Arc<dyn Adapter>) {
        let name = adapter.spec().name;
        self.adapters.retain(|a| a.spec().name != name);
        self.adapters.push(adapter);
    }

    pub fn adapter(&self, platform: &str) -> Option<&Arc<dyn Adapter>> {
        self.adapters.iter().find(|a| a.spec().name == platform)
    }

    /// Every platform's declaration, in registration order.
    pub fn specs(&self) -> Vec<PlatformSpec> {
        self.adapters.iter().map(|a| *a.spec()).collect()
    }

    /// What every platform of this build declares it offers policies.
    pub fn actions(&self) -> Vec<polity_governance::platform::ActionInfo> {
        self.adapters.iter().flat_map(|a| a.actions()).collect()
    }

    /// Where platforms reach Polity's HTTP server (`[http] public_url`).
    pub fn set_public_url(&mut self, url: &str) {
        self.public_url = url.trim_end_matches('/').to_string();
    }

    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// Records the configuration of Polity's own bot for `platform` (it runs).
    pub fn set_bot(&mut self, platform: &str, config: Value) {
        self.bots.insert(platform.to_string(), config);
    }

    /// The configuration of Polity's own bot for `platform`, if it runs one.
    pub fn bot(&self, platform: &str) -> Option<&Value> {
        self.bots.get(platform)
    }
}
