//! One SourceCred instance, as read: the last good read of its `accounts.json`, when it was,
//! and why the reads since failed. Reads are conditional GETs; lookups never touch the
//! network (they run on the engine's path) and only take a lock for a pointer's copy.

use crate::accounts::{Accounts, MAX_BODY, ReadError};
use crate::config::SourceCredConfig;
use chrono::{DateTime, Utc};
use polity_governance::script::{CredRecord, CredSource, MemberAccounts};
use reqwest::header::{ETAG, HeaderValue, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED, LOCATION};
use reqwest::{StatusCode, Url};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// Where an instance's time comes from: how old the last good read is.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The system's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// What a read found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Read {
    /// A new document, with this many identities.
    Changed { identities: usize },
    /// The same as before (304 Not Modified).
    Unchanged,
}

/// Why a GET of `accounts.json` failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// No answer, or a server error: it may pass.
    #[error("{0}")]
    Unreachable(String),
    /// 404: nothing is served there.
    #[error("no output/accounts.json at {0}: is this the instance's site?")]
    NotFound(String),
    /// A redirect, which is not followed: the address configured must be where the file is.
    #[error(
        "{url} answered HTTP {status}, to {location}: redirects are not followed, so give url as the address accounts.json is served at"
    )]
    Redirect { url: String, status: String, location: String },
    /// Another status.
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: String },
    /// An answer that is no `accounts.json`.
    #[error("{url} is not a SourceCred accounts.json: {error}")]
    Unreadable { url: String, error: ReadError },
}

/// A read instance: what the connection refreshes and lookups read.
pub struct Instance {
    /// The connection's name, as its `Debug` shows it.
    connection: String,
    host: String,
    /// Whether members are also matched by name.
    match_names: bool,
    site: String,
    accounts_url: Url,
    client: reqwest::Client,
    timeout: Duration,
    stale_after: Duration,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    accounts: Option<Arc<Accounts>>,
    /// When the last good read (a new document or a 304) was.
    good_at: Option<DateTime<Utc>>,
    /// Why the last read failed, when it did.
    failure: Option<String>,
    etag: Option<HeaderValue>,
    last_modified: Option<HeaderValue>,
}

impl fmt::Debug for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instance")
            .field("connection", &self.connection)
            .field("accounts_url", &self.accounts_url.as_str())
            .finish_non_exhaustive()
    }
}

/// The client every read uses: a timeout, no redirects followed (a static site serves
/// `accounts.json` where it is; one that sends the read elsewhere, to another host
/// perhaps, is told to the admin rather than followed silently: [`FetchError::Redirect`]),
/// Polity's User-Agent, and a new connection for each read (reads are minutes apart: a kept
/// connection would be closed by the server by then, and reusing it would fail the read).
///
/// # Errors
/// The TLS backend could not be set up.
pub fn client(config: &SourceCredConfig) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(config.timeout)
        .connect_timeout(config.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent("Polity")
        .pool_max_idle_per_host(0)
        .build()
        .map_err(|e| format!("building the HTTP client: {e}"))
}

impl Instance {
    /// An instance not read yet, for the connection named `connection`.
    ///
    /// # Errors
    /// The HTTP client could not be built.
    pub fn new(config: &SourceCredConfig, connection: &str, clock: Arc<dyn Clock>) -> Result<Self, String> {
        Ok(Self {
            connection: connection.to_owned(),
            host: config.host(),
            match_names: config.match_names,
            site: config.site_name(),
            accounts_url: config.accounts.clone(),
            client: client(config)?,
            timeout: config.timeout,
            stale_after: config.stale_after,
            clock,
            state: Mutex::new(State::default()),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads `accounts.json` once, conditionally on the last read's `ETag` and
    /// `Last-Modified` when there was one. A document that cannot be read keeps the last
    /// good one.
    ///
    /// # Errors
    /// Why the read failed, as lookups will say it.
    pub async fn refresh(&self) -> Result<Read, String> {
        let validators = {
            let state = self.state();
            state.accounts.as_ref().map(|_| (state.etag.clone(), state.last_modified.clone()))
        };
        let fetched = fetch(&self.client, &self.accounts_url, self.timeout, validators).await;
        let now = self.clock.now();
        let mut state = self.state();
        match fetched {
            Ok(Fetched::NotModified) if state.accounts.is_none() => {
                // Asked for nothing conditionally (there was nothing to keep): a server's mistake.
                let why = format!("GET {}: 304 Not Modified to a plain GET", self.accounts_url);
                state.failure = Some(why.clone());
                Err(why)
            }
            Ok(Fetched::NotModified) => {
                state.good_at = Some(now);
                state.failure = None;
                Ok(Read::Unchanged)
            }
            Ok(Fetched::Document { accounts, etag, last_modified }) => {
                let identities = accounts.len();
                *state = State { accounts: Some(accounts), good_at: Some(now), failure: None, etag, last_modified };
                Ok(Read::Changed { identities })
            }
            Err(e) => {
                let why = e.to_string();
                state.failure = Some(why.clone());
                Err(why)
            }
        }
    }

    /// The last good read, unless there is none or it is too old.
    fn current(&self) -> Result<Arc<Accounts>, String> {
        let state = self.state();
        let why = || state.failure.clone().unwrap_or_else(|| "no read has finished yet".into());
        match (&state.accounts, state.good_at) {
            (Some(accounts), Some(at)) => {
                let age = self.clock.now().signed_duration_since(at).to_std().unwrap_or(Duration::ZERO);
                if age <= self.stale_after {
                    Ok(Arc::clone(accounts))
                } else {
                    Err(format!(
                        "SourceCred at {} could not be read since {}: {}",
                        self.site,
                        at.format("%Y-%m-%d %H:%M:%S UTC"),
                        why()
                    ))
                }
            }
            _ => Err(format!("SourceCred at {} has not been read yet: {}", self.site, why())),
        }
    }
}

impl CredSource for Instance {
    fn lookup(&self, member: &MemberAccounts) -> Result<CredRecord, String> {
        Ok(self.current()?.find(member, &self.host, self.match_names))
    }

    fn total(&self) -> Result<f64, String> {
        Ok(self.current()?.total())
    }
}

/// What a GET brought.
pub enum Fetched {
    NotModified,
    Document { accounts: Arc<Accounts>, etag: Option<HeaderValue>, last_modified: Option<HeaderValue> },
}

/// One GET of `url`, conditional on `validators` (the last `ETag` and `Last-Modified`) when
/// given, its body read up to [`MAX_BODY`] and parsed.
///
/// # Errors
/// [`FetchError`]: unreachable (no answer, a timeout, a 5xx), 404, a redirect (never
/// followed), another status, or a body that is not an `accounts.json`.
pub async fn fetch(
    client: &reqwest::Client,
    url: &Url,
    timeout: Duration,
    validators: Option<(Option<HeaderValue>, Option<HeaderValue>)>,
) -> Result<Fetched, FetchError> {
    let mut request = client.get(url.clone());
    if let Some((etag, last_modified)) = validators {
        if let Some(etag) = etag {
            request = request.header(IF_NONE_MATCH, etag);
        }
        if let Some(last_modified) = last_modified {
            request = request.header(IF_MODIFIED_SINCE, last_modified);
        }
    }
    let unreachable = |e: &reqwest::Error| FetchError::Unreachable(format!("GET {url}: {}", describe(e, timeout)));
    let mut response = request.send().await.map_err(|e| unreachable(&e))?;
    let status = response.status();
    if status == StatusCode::NOT_MODIFIED {
        return Ok(Fetched::NotModified);
    }
    if status == StatusCode::NOT_FOUND {
        return Err(FetchError::NotFound(url.to_string()));
    }
    if status.is_redirection() {
        let location = response.headers().get(LOCATION).map_or_else(
            || "no Location".to_owned(),
            |l| String::from_utf8_lossy(l.as_bytes()).chars().take(200).collect(),
        );
        return Err(FetchError::Redirect { url: url.to_string(), status: status.to_string(), location });
    }
    if status.is_server_error() {
        return Err(FetchError::Unreachable(format!("GET {url}: HTTP {status}")));
    }
    if !status.is_success() {
        return Err(FetchError::Status { url: url.to_string(), status: status.to_string() });
    }
    let too_large = || FetchError::Unreadable { url: url.to_string(), error: ReadError::TooLarge };
    if response.content_length().is_some_and(|n| n > MAX_BODY as u64) {
        return Err(too_large());
    }
    let etag = response.headers().get(ETAG).cloned();
    let last_modified = response.headers().get(LAST_MODIFIED).cloned();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| unreachable(&e))? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    let accounts = Accounts::parse(&body).map_err(|error| FetchError::Unreadable { url: url.to_string(), error })?;
    Ok(Fetched::Document { accounts: Arc::new(accounts), etag, last_modified })
}

/// A failed request in a few words: a timeout, a refused connection, a name that does not
/// resolve.
fn describe(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("no answer within {} ms", timeout.as_millis());
    }
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    if e.is_connect() { format!("could not connect ({cause})") } else { cause.to_string() }
}
