//! The platform host's port: what every platform's adapter implements and hands over, so
//! the host (`polity run`) serves any platform the same way.
//!
//! - [`Adapter`]: a platform's declaration ([`PlatformSpec`]: its settings, its secret, what
//!   its spaces are called), its configuration read by its own type (unknown keys refused),
//!   starting a [`Connection`] (Polity's own bot from `[platforms.NAME]`, or a community's
//!   own connection from its stored settings and secret), a real, cheap, authenticated test
//!   call for `/integration test`, and its webhooks, if it takes any.
//! - [`Connection`]: a running connection. It hands the host [`Incoming`]s on the sender it
//!   was started with, hands out ([`Scopes`]) the [`Platform`] that performs effects in the
//!   spaces of one community (and nowhere else), says when it gave up, and stops cleanly.
//! - [`incoming`]: the neutral inbound vocabulary: events with their dedup keys, spaces with
//!   their members, (re)connections, commands waiting for their answer, secrets typed
//!   privately.
//! - [`webhook`]: a webhook platform's pure `verify_and_parse` and the signature helpers.
//!
//! Which community governs a space is decided by the host, once, the same way for every
//! platform; an adapter only says which spaces it serves and who controls them.

pub mod incoming;
pub mod webhook;

pub use incoming::{CommandCall, Event, Incoming, Install, Installed, Recorded, SecretTyped, SpaceInfo};
pub use polity_governance::platform::{ActionInfo, BoxFuture, Platform, PlatformSpec, Setting};
pub use polity_governance::script::{CredRecord, CredSource, MemberAccounts};
use serde_json::{Map, Value};
use std::sync::Arc;
use tokio::sync::mpsc;
pub use webhook::WebhookPlatform;

/// What a connection is started with.
#[derive(Debug)]
pub struct Start {
    /// The connection's name: the platform of every ref it hands over (`discord` for
    /// Polity's own Discord bot, the connection's own name for a community's).
    pub connection: String,
    /// Where its inputs go.
    pub events: mpsc::Sender<Incoming>,
    /// The spaces Polity's own app was installed in through the platform's own install flow
    /// (Slack's OAuth), as the host stored them ([`Incoming::Installed`]); empty for a
    /// community's own connection.
    pub installs: Vec<Install>,
}

impl Start {
    /// A start with no stored installs.
    pub fn new(connection: impl Into<String>, events: mpsc::Sender<Incoming>) -> Self {
        Self { connection: connection.into(), events, installs: Vec::new() }
    }
}

/// Hands out a running connection's platform for one community.
pub trait Scopes: Send + Sync {
    /// The platform that performs effects in `spaces` (one community's) and nowhere else:
    /// with no spaces, nowhere.
    fn platform(&self, spaces: &[String]) -> Arc<dyn Platform>;
}

/// One of a connection's polls: its name (unique within the connection) and how often it
/// runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PollSpec {
    pub name: &'static str,
    pub every: std::time::Duration,
}

/// What one poll read: its events (deduplicated by their keys like any other, so reading
/// the same item twice changes nothing), and where the next poll starts.
#[derive(Debug, Default)]
pub struct Polled {
    pub events: Vec<Event>,
    /// The platform's cursor after these events; `None` keeps the one there was.
    pub cursor: Option<String>,
}

/// A connection's polls. The host keeps when each is due in its store, so polls join its
/// wake-ups and survive restarts, and runs each off its serving loop.
pub trait Poller: Send + Sync {
    fn polls(&self) -> Vec<PollSpec>;

    /// Runs poll `name` from `cursor` (where the last one got to, `None` the first time).
    fn poll(
        &self,
        name: &str,
        cursor: Option<String>,
    ) -> BoxFuture<'static, Result<Polled, polity_governance::platform::PlatformError>>;
}

/// Why a connection did not start.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AdapterError {
    /// The configuration is wrong (an unknown or missing key, a malformed value).
    #[error("{0}")]
    Config(String),
    /// The platform could not be reached or refused to start.
    #[error("{0}")]
    Start(String),
}

/// Why `/integration test` failed, as its reply says it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TestFailure {
    /// The platform refused the token or key (401).
    #[error("the platform refused the credentials: {0}")]
    BadCredentials(String),
    /// The credentials work but lack a permission, or cannot see the space (403, 404).
    #[error("a permission is missing: {0}")]
    MissingPermission(String),
    /// No answer: a refused connection, a timeout, a name that does not resolve, a 5xx.
    #[error("the platform could not be reached: {0}")]
    Unreachable(String),
    /// Anything else, with the platform's own words.
    #[error("{0}")]
    Other(String),
}

/// How Polity's log treats the lines of a platform's client libraries (by `tracing` target,
/// a prefix such as `serenity`).
#[derive(Clone, Copy, Debug, Default)]
pub struct LogLines {
    /// Targets whose debug and trace lines may carry secrets (raw frames, tokens in URLs):
    /// never logged, whatever `RUST_LOG` says.
    pub secret_detail: &'static [&'static str],
    /// Targets whose info lines are left out unless `RUST_LOG` asks for them (Polity says
    /// itself how connecting goes).
    pub quiet: &'static [&'static str],
    /// A library that logs its failed attempts to connect at warn, and keeps trying: its
    /// target, and how to read a line's message (why, in words for an operator, and when it
    /// tries again), so `polity run` can say why a bot waits.
    pub connect_attempts: Option<ConnectAttempts>,
}

/// See [`LogLines::connect_attempts`].
#[derive(Clone, Copy, Debug)]
pub struct ConnectAttempts {
    pub target: &'static str,
    pub read: ReadAttempt,
}

/// Reads a log line's message: the failed attempt it tells of (why, and when the library
/// tries again), if it tells of one.
pub type ReadAttempt = fn(&str) -> Option<(String, Option<std::time::Duration>)>;

/// A platform, as the host sees it.
pub trait Adapter: Send + Sync {
    /// What the platform declares about itself.
    fn spec(&self) -> &'static PlatformSpec;

    /// How Polity's log treats the lines of the platform's client libraries.
    fn log_lines(&self) -> LogLines {
        LogLines::default()
    }

    /// Reads `[platforms.NAME]` with the adapter's own configuration type, without starting
    /// anything.
    ///
    /// # Errors
    /// [`AdapterError::Config`] naming the key at fault (unknown keys are refused).
    fn check(&self, config: &Value) -> Result<(), AdapterError>;

    /// Starts a connection from `config` (as [`Adapter::check`] reads it, or as
    /// [`Adapter::connection_config`] built it).
    fn start(&self, config: Value, start: Start) -> BoxFuture<'static, Result<Box<dyn Connection>, AdapterError>>;

    /// The configuration a community's own connection starts with: its stored `settings`
    /// and `secret`, over `bot` (Polity's own bot's configuration, if it runs one: where the
    /// platform is).
    ///
    /// # Errors
    /// [`AdapterError::Config`] when the settings cannot make a connection.
    fn connection_config(
        &self,
        bot: Option<&Value>,
        settings: &Map<String, Value>,
        secret: Option<&str>,
    ) -> Result<Value, AdapterError>;

    /// `/integration test`: a real, cheap, authenticated call with `config`, for a connection
    /// with `settings` (the space it names must be reachable). What works, or what failed.
    fn test(&self, config: Value, settings: Map<String, Value>) -> BoxFuture<'static, Result<String, TestFailure>>;

    /// Its webhook deliveries, if it takes any on the host's HTTP server.
    fn webhooks(&self) -> Option<Arc<dyn WebhookPlatform>> {
        None
    }

    /// The actions, triggers and processes its connections offer policies (what
    /// [`Platform::actions`] says), known without a connection: policies naming others are
    /// caught before they are installed.
    fn actions(&self) -> Vec<ActionInfo> {
        Vec::new()
    }
}

/// What an [`Endpoint`] answers: a status, a body of `content_type`, and more headers
/// (`Location`, `Set-Cookie`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointAnswer {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    pub headers: Vec<(&'static str, String)>,
}

impl EndpointAnswer {
    /// A plain-text answer.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Self { status, content_type: "text/plain; charset=utf-8", body: body.into(), headers: Vec::new() }
    }

    /// A JSON answer.
    pub fn json(status: u16, body: &Value) -> Self {
        Self { status, content_type: "application/json", body: body.to_string(), headers: Vec::new() }
    }

    /// A redirect (302) to `location`.
    pub fn redirect(location: String) -> Self {
        Self { headers: vec![("location", location)], ..Self::text(302, "") }
    }

    /// The same answer with one more header.
    #[must_use]
    pub fn with_header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }
}

/// Requests a platform's app sends to Polity's HTTP server (not a community's webhook): the
/// host hands over each with its raw body, and the endpoint checks its signature before
/// anything else.
pub trait Endpoint: Send + Sync {
    /// Answers a `POST /hooks/{platform}/{path}`. `now` is for signatures that carry a time.
    fn handle(
        &self,
        path: &str,
        headers: &http::HeaderMap,
        body: &[u8],
        now: chrono::DateTime<chrono::Utc>,
    ) -> BoxFuture<'static, EndpointAnswer>;

    /// Answers a `GET /{platform}/{path}` (`query` as sent, without its `?`): pages a person's
    /// browser is sent to, such as Slack's install link and OAuth redirect. None by default.
    fn page(
        &self,
        path: &str,
        query: &str,
        headers: &http::HeaderMap,
        now: chrono::DateTime<chrono::Utc>,
    ) -> BoxFuture<'static, EndpointAnswer> {
        let _ = (path, query, headers, now);
        Box::pin(std::future::ready(EndpointAnswer::text(404, "no such page\n")))
    }
}

/// A running connection.
pub trait Connection: Send {
    /// What hands out its platforms, one community's at a time.
    fn scopes(&self) -> Arc<dyn Scopes>;

    /// What it reads on a schedule, if anything (a platform without webhooks, or one whose
    /// missed deliveries are read again).
    fn poller(&self) -> Option<Arc<dyn Poller>> {
        None
    }

    /// What it knows of members that policies read (a SourceCred instance's cred), if
    /// anything: asked on behalf of the community whose connection this is, and no other.
    fn cred(&self) -> Option<Arc<dyn CredSource>> {
        None
    }

    /// What it answers on Polity's HTTP server under `/hooks/{platform}/{path}` (Polity's own
    /// app's requests: Slack's events, slash commands and button presses over HTTP), if
    /// anything. Only Polity's own bots' endpoints are served.
    fn endpoint(&self) -> Option<Arc<dyn Endpoint>> {
        None
    }

    /// Resolves when the connection stops by itself, with why: a failure it cannot get past
    /// (the platform refused the token). Pending for ever while it runs.
    fn stopped(&mut self) -> BoxFuture<'_, Result<(), String>>;

    /// Closes the connection.
    fn shutdown(self: Box<Self>) -> BoxFuture<'static, ()>;
}

/// Checks that `url` (named `what` in the error) is an https address, or a plain http one to
/// this machine (a test server, a proxy beside Polity), so that a token or key sent there
/// never crosses a network in the clear. The host is compared whole: `http://127.0.0.1.example.org`
/// is not this machine.
///
/// # Errors
/// [`AdapterError::Config`] saying what is wrong with it.
pub fn check_secure_url(what: &str, url: &str) -> Result<(), AdapterError> {
    let parsed = url::Url::parse(url).map_err(|e| AdapterError::Config(format!("{what} `{url}` is not a URL: {e}")))?;
    let local = matches!(parsed.host(), Some(url::Host::Domain("localhost")))
        || matches!(parsed.host(), Some(url::Host::Ipv4(ip)) if ip.is_loopback())
        || matches!(parsed.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback());
    match parsed.scheme() {
        "https" if parsed.host().is_some() => Ok(()),
        "http" if local => Ok(()),
        _ => Err(AdapterError::Config(format!("{what} `{url}` must be https (plain http only to this machine)"))),
    }
}

#[cfg(test)]
mod url_tests {
    use super::check_secure_url;

    #[test]
    fn only_https_or_this_machine_is_a_secure_url() {
        for good in
            ["https://forum.example.org", "http://127.0.0.1:8080/api", "http://localhost:3000", "http://[::1]:9/"]
        {
            assert!(check_secure_url("url", good).is_ok(), "{good}");
        }
        for bad in [
            "http://forum.example.org",
            "http://127.0.0.1.example.org/",
            "http://localhost.example.org",
            "http://localhost@evil.example.org/",
            "ftp://127.0.0.1/",
            "forum.example.org",
            "",
        ] {
            let e = check_secure_url("url", bad).unwrap_err().to_string();
            assert!(e.contains(&format!("`{bad}`")), "{e}");
        }
    }
}

/// Polity's own hold on a connection's calls after a platform's rate limit (a 429's
/// `Retry-After`, a budget spent): every call is refused until it has passed, and nothing
/// ever sleeps on it. A longer hold already there stays. Shared by the HTTP platforms.
#[derive(Debug, Default)]
pub struct Hold(std::sync::Mutex<Option<tokio::time::Instant>>);

impl Hold {
    /// Holds every call for `wait` from now.
    pub fn hold(&self, wait: std::time::Duration) {
        let until = tokio::time::Instant::now() + wait;
        let mut held = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if held.is_none_or(|h| h < until) {
            *held = Some(until);
        }
    }

    /// How long calls are still held, if they are.
    pub fn remaining(&self) -> Option<std::time::Duration> {
        let held = *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        held.and_then(|until| until.checked_duration_since(tokio::time::Instant::now())).filter(|d| !d.is_zero())
    }
}

#[cfg(test)]
mod hold_tests {
    use super::Hold;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_hold_lasts_its_time_and_a_shorter_one_does_not_cut_it() {
        let hold = Hold::default();
        assert_eq!(hold.remaining(), None);
        hold.hold(Duration::from_secs(60));
        hold.hold(Duration::from_secs(5));
        assert_eq!(hold.remaining(), Some(Duration::from_secs(60)));
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(hold.remaining(), None);
    }
}
