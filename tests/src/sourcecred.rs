//! A fake SourceCred instance: the static site an instance's workflow deploys (GitHub Pages,
//! or `sourcecred serve`), serving `output/accounts.json` on 127.0.0.1, at the root and under
//! any path prefix (`/cred/output/accounts.json`, as a project page is).
//!
//! As a static host answers it: `ETag` (a hash of the body, quoted) and `Last-Modified` (an
//! hour later at each change, from 2021-01-10), `304 Not Modified` with no body to a
//! matching `If-None-Match` (or, without one, to an `If-Modified-Since` equal to the
//! `Last-Modified`), `404` for any other path. The document is written in SourceCred's own
//! shape ([`CredAccount`], [`accounts_json`]: keys sorted, one line, weekly intervals,
//! `totalCred` the sum of `cred`, balances in atto-grain strings), or set raw
//! ([`FakeSourceCred::set_body`]) to serve what no instance would.
//!
//! A test makes it fail ([`FakeSourceCred::answer_status`]: every request answered with that
//! status until [`FakeSourceCred::serve`]), sends every request elsewhere
//! ([`FakeSourceCred::redirect_to`]: a `301` with a `Location`, as a site that moved
//! answers), drops either validator
//! ([`FakeSourceCred::set_validators`]), and reads what it received
//! ([`FakeSourceCred::requests`], [`FakeSourceCred::not_modified`]); waits are on its state
//! ([`FakeSourceCred::until_requests`]), wrapped in the caller's own timeout.

use axum::body::Body;
use axum::extract::State as Extract;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;
use serde_json::{Value, json};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot};

/// When the first document was deployed (2021-01-10 00:00:00 UTC), in seconds.
pub const FIRST_DEPLOY: u64 = 1_610_236_800;
/// A week, in milliseconds: the length of SourceCred's intervals.
pub const WEEK_MS: u64 = 604_800_000;
/// One grain, in atto-grain.
pub const GRAIN: u128 = 1_000_000_000_000_000_000;

/// Alias addresses as SourceCred's plugins write them: `N`, then NUL-separated parts, with
/// a trailing NUL.
pub mod alias {
    fn address(parts: &[&str]) -> String {
        let mut address = String::from("N\0");
        for part in parts {
            address.push_str(part);
            address.push('\0');
        }
        address
    }

    /// A Discord member (a user snowflake): `N\0sourcecred\0discord\0MEMBER\0user\0<id>\0`.
    pub fn discord(user_id: &str) -> String {
        address(&["sourcecred", "discord", "MEMBER", "user", user_id])
    }

    /// A GitHub user (its login, as GitHub cases it):
    /// `N\0sourcecred\0github\0USERLIKE\0USER\0<login>\0`.
    pub fn github(login: &str) -> String {
        address(&["sourcecred", "github", "USERLIKE", "USER", login])
    }

    /// A GitHub bot: `N\0sourcecred\0github\0USERLIKE\0BOT\0<login>\0`.
    pub fn github_bot(login: &str) -> String {
        address(&["sourcecred", "github", "USERLIKE", "BOT", login])
    }

    /// A Discourse user of `server`: `N\0sourcecred\0discourse\0user\0<server>\0<username>\0`.
    pub fn discourse(server: &str, username: &str) -> String {
        address(&["sourcecred", "discourse", "user", server, username])
    }

    /// Another identity, merged into this one: `N\0sourcecred\0core\0IDENTITY\0<id>\0`.
    pub fn identity(id: &str) -> String {
        address(&["sourcecred", "core", "IDENTITY", id])
    }
}

/// One account of `accounts.json`, built as a ledger holds it (v0.11's shape: `active`,
/// `allocationHistory`, `balance`, `identity`, `mergedIdentityIds`, `paid`,
/// `payoutAddresses`).
#[derive(Clone, Debug, PartialEq)]
pub struct CredAccount {
    pub id: String,
    pub name: String,
    pub subtype: String,
    /// `(address, description)`.
    pub aliases: Vec<(String, String)>,
    /// Cred per week, oldest first.
    pub cred: Vec<f64>,
    /// Atto-grain.
    pub balance: u128,
    pub paid: u128,
    pub active: bool,
}

impl CredAccount {
    /// A `USER` identity named `name` (SourceCred's rules: `A-Z`, `a-z`, `0-9`, `-`), with
    /// an id made from its name, no aliases, no cred, no grain.
    pub fn user(name: &str) -> Self {
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
            "{name:?} is not a SourceCred identity name"
        );
        Self {
            id: id_of(name),
            name: name.into(),
            subtype: "USER".into(),
            aliases: Vec::new(),
            cred: Vec::new(),
            balance: 0,
            paid: 0,
            active: true,
        }
    }

    /// A `BOT` identity.
    pub fn bot(name: &str) -> Self {
        Self { subtype: "BOT".into(), active: false, ..Self::user(name) }
    }

    /// Its Discord account, as the Discord plugin describes it (`discord/<name>#0001`).
    pub fn discord(self, user_id: &str) -> Self {
        let description = format!("discord/{}#0001", self.name);
        self.alias(&alias::discord(user_id), &description)
    }

    /// Its account `username` on the Discourse forum at `server`.
    pub fn discourse(self, server: &str, username: &str) -> Self {
        let description = format!("discourse/[@{username}]({server}/u/{username}/)");
        self.alias(&alias::discourse(server, username), &description)
    }

    /// Its GitHub account.
    pub fn github(self, login: &str) -> Self {
        self.alias(&alias::github(login), &format!("github/[@{login}](https://github.com/{login})"))
    }

    pub fn alias(mut self, address: &str, description: &str) -> Self {
        self.aliases.push((address.into(), description.into()));
        self
    }

    /// Its cred, week by week.
    pub fn cred(mut self, per_week: &[f64]) -> Self {
        self.cred = per_week.to_vec();
        self
    }

    /// Its balance, in atto-grain (`12_500_000_000_000_000_000` is 12.5 grain; see [`GRAIN`]).
    pub fn balance(mut self, atto_grain: u128) -> Self {
        self.balance = atto_grain;
        self
    }

    pub fn total_cred(&self) -> f64 {
        self.cred.iter().sum()
    }

    /// The account as `accounts.json` holds it, over `weeks` intervals (cred padded with 0).
    pub fn to_json(&self, weeks: usize) -> Value {
        let mut cred = self.cred.clone();
        cred.resize(weeks.max(cred.len()), 0.0);
        json!({
            "account": {
                "active": self.active,
                "allocationHistory": [],
                "balance": self.balance.to_string(),
                "identity": {
                    "address": alias::identity(&self.id),
                    "aliases": self.aliases.iter().map(|(a, d)| json!({"address": a, "description": d})).collect::<Vec<_>>(),
                    "id": self.id,
                    "name": self.name,
                    "subtype": self.subtype,
                },
                "mergedIdentityIds": [self.id],
                "paid": self.paid.to_string(),
                "payoutAddresses": {},
            },
            "cred": cred,
            "totalCred": self.total_cred(),
        })
    }
}

/// A 22-character base64url id, as SourceCred's UUIDs are, made from `seed`.
pub fn id_of(seed: &str) -> String {
    const DIGITS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut hasher = DefaultHasher::new();
    seed.hash(&mut hasher);
    let mut bits = (u128::from(hasher.finish()) << 64) | u128::from(hasher.finish().rotate_left(17) ^ 0x9e37_79b9);
    (0..22)
        .map(|_| {
            let digit = DIGITS[(bits % 64) as usize] as char;
            bits /= 64;
            digit
        })
        .collect()
}

/// `output/accounts.json` for `accounts`: weekly intervals (as many as the longest cred),
/// no unclaimed aliases.
pub fn accounts_json(accounts: &[CredAccount]) -> Value {
    let weeks = accounts.iter().map(|a| a.cred.len()).max().unwrap_or(0);
    let start = FIRST_DEPLOY * 1000 - WEEK_MS * weeks as u64;
    let intervals: Vec<Value> = (0..weeks as u64)
        .map(|w| json!({"endTimeMs": start + WEEK_MS * (w + 1), "startTimeMs": start + WEEK_MS * w}))
        .collect();
    json!({
        "accounts": accounts.iter().map(|a| a.to_json(weeks)).collect::<Vec<_>>(),
        "intervals": intervals,
        "unclaimedAliases": [],
    })
}

/// One request the fake received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub path: String,
    pub if_none_match: Option<String>,
    pub if_modified_since: Option<String>,
    pub user_agent: Option<String>,
    /// What it was answered.
    pub status: u16,
}

/// What the fake serves and what it saw.
#[derive(Debug)]
pub struct State {
    body: Vec<u8>,
    etag: String,
    last_modified: String,
    deploys: u64,
    /// Every request is answered with this status instead, when set.
    failing: Option<u16>,
    /// Every request is answered `301 Moved Permanently` to this address instead, when set.
    moved_to: Option<String>,
    send_etag: bool,
    send_last_modified: bool,
    pub requests: Vec<Seen>,
}

impl State {
    fn deploy(&mut self, body: Vec<u8>) {
        let mut hasher = DefaultHasher::new();
        body.hash(&mut hasher);
        self.etag = format!("\"{:016x}\"", hasher.finish());
        self.last_modified = http_date(FIRST_DEPLOY + 3600 * self.deploys);
        self.deploys += 1;
        self.body = body;
    }

    /// Whether the request's validators match what is served: `If-None-Match` first, as
    /// HTTP says, else `If-Modified-Since`.
    fn not_modified(&self, headers: &HeaderMap) -> bool {
        if let Some(tags) = header_text(headers, header::IF_NONE_MATCH) {
            return self.send_etag
                && tags.split(',').map(|t| t.trim().trim_start_matches("W/")).any(|t| t == "*" || t == self.etag);
        }
        header_text(headers, header::IF_MODIFIED_SINCE)
            .is_some_and(|since| self.send_last_modified && since == self.last_modified)
    }
}

struct Shared {
    state: Mutex<State>,
    changed: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn change<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let out = f(&mut self.lock());
        self.changed.notify_waiters();
        out
    }
}

/// The fake instance's site. Dropping it stops the server.
pub struct FakeSourceCred {
    shared: Arc<Shared>,
    url: String,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for FakeSourceCred {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            // The server may have stopped already; then there is nothing to stop.
            let _already_stopped = stop.send(());
        }
    }
}

impl FakeSourceCred {
    /// Starts the site on a free port of 127.0.0.1, serving an instance with no accounts.
    pub async fn start() -> FakeSourceCred {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the fake SourceCred site");
        let url = format!("http://{}", listener.local_addr().expect("the fake site's address"));
        let mut state = State {
            body: Vec::new(),
            etag: String::new(),
            last_modified: String::new(),
            deploys: 0,
            failing: None,
            moved_to: None,
            send_etag: true,
            send_last_modified: true,
            requests: Vec::new(),
        };
        state.deploy(accounts_json(&[]).to_string().into_bytes());
        let shared = Arc::new(Shared { state: Mutex::new(state), changed: Notify::new() });
        let app = axum::Router::new().fallback(handle).with_state(Arc::clone(&shared));
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    // Dropped or sent: either way, stop.
                    let _either = stopped.await;
                })
                .await
                .expect("serve the fake SourceCred site");
        });
        FakeSourceCred { shared, url, stop: Some(stop) }
    }

    /// The site, `http://127.0.0.1:PORT` (`accounts.json` is at `/output/accounts.json`).
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The site under a path prefix, as a GitHub project page is (`http://127.0.0.1:PORT/cred`).
    pub fn url_under(&self, prefix: &str) -> String {
        format!("{}/{}", self.url, prefix.trim_matches('/'))
    }

    /// Deploys `accounts` ([`accounts_json`]): a new body, `ETag` and `Last-Modified`.
    pub fn set_accounts(&self, accounts: &[CredAccount]) {
        self.set_json(&accounts_json(accounts));
    }

    /// Deploys `doc`, written as SourceCred writes it (one line, keys sorted).
    pub fn set_json(&self, doc: &Value) {
        self.set_body(sorted(doc).to_string());
    }

    /// Deploys any body at all (malformed JSON, a document of another shape).
    pub fn set_body(&self, body: impl Into<Vec<u8>>) {
        let body = body.into();
        self.shared.change(|s| s.deploy(body));
    }

    /// Answers every request with `status` (a 500, a 404) until [`Self::serve`].
    pub fn answer_status(&self, status: u16) {
        self.shared.change(|s| s.failing = Some(status));
    }

    /// Answers every request `301 Moved Permanently` with `Location: location` until
    /// [`Self::serve`].
    pub fn redirect_to(&self, location: &str) {
        let location = location.to_owned();
        self.shared.change(|s| s.moved_to = Some(location));
    }

    /// Serves the document again.
    pub fn serve(&self) {
        self.shared.change(|s| {
            s.failing = None;
            s.moved_to = None;
        });
    }

    /// Whether answers carry an `ETag` and a `Last-Modified` (both do by default); a
    /// validator not sent is not honoured either.
    pub fn set_validators(&self, etag: bool, last_modified: bool) {
        self.shared.change(|s| {
            s.send_etag = etag;
            s.send_last_modified = last_modified;
        });
    }

    /// The `ETag` served now, quoted.
    pub fn etag(&self) -> String {
        self.shared.lock().etag.clone()
    }

    /// The `Last-Modified` served now.
    pub fn last_modified(&self) -> String {
        self.shared.lock().last_modified.clone()
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<Seen> {
        self.shared.lock().requests.clone()
    }

    /// How many requests it received.
    pub fn request_count(&self) -> usize {
        self.shared.lock().requests.len()
    }

    /// How many requests were answered 304 Not Modified.
    pub fn not_modified(&self) -> usize {
        self.shared.lock().requests.iter().filter(|r| r.status == 304).count()
    }

    /// Waits until it has received at least `n` requests.
    pub async fn until_requests(&self, n: usize) {
        loop {
            let changed = self.shared.changed.notified();
            if self.request_count() >= n {
                return;
            }
            changed.await;
        }
    }
}

async fn handle(Extract(shared): Extract<Arc<Shared>>, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path().to_owned();
    shared.change(|s| {
        let response = answer(s, &method, &path, &headers);
        s.requests.push(Seen {
            path: path.clone(),
            if_none_match: header_text(&headers, header::IF_NONE_MATCH),
            if_modified_since: header_text(&headers, header::IF_MODIFIED_SINCE),
            user_agent: header_text(&headers, header::USER_AGENT),
            status: response.status().as_u16(),
        });
        response
    })
}

fn answer(s: &State, method: &Method, path: &str, headers: &HeaderMap) -> Response {
    if let Some(status) = s.failing {
        return page(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
    }
    if let Some(location) = &s.moved_to {
        let mut r = page(StatusCode::MOVED_PERMANENTLY);
        if let Ok(location) = HeaderValue::from_str(location) {
            r.headers_mut().insert(header::LOCATION, location);
        }
        return r;
    }
    if method != Method::GET && method != Method::HEAD {
        return page(StatusCode::METHOD_NOT_ALLOWED);
    }
    if path != "/output/accounts.json" && !path.ends_with("/output/accounts.json") {
        return page(StatusCode::NOT_FOUND);
    }
    let mut response = if s.not_modified(headers) {
        status_only(StatusCode::NOT_MODIFIED, Body::empty())
    } else {
        let mut r = status_only(StatusCode::OK, Body::from(s.body.clone()));
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
        r
    };
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=600"));
    if s.send_etag {
        h.insert(header::ETAG, HeaderValue::from_str(&s.etag).expect("an ETag is a header value"));
    }
    if s.send_last_modified {
        h.insert(header::LAST_MODIFIED, HeaderValue::from_str(&s.last_modified).expect("a date is a header value"));
    }
    response
}

fn status_only(status: StatusCode, body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
}

/// An error page, as a static host answers.
fn page(status: StatusCode) -> Response {
    let mut r = status_only(status, Body::from(format!("<!DOCTYPE html><title>{status}</title>")));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    r
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// `doc` with every object's keys sorted, as `json-stable-stringify` writes it.
fn sorted(doc: &Value) -> Value {
    match doc {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(keys.into_iter().map(|k| (k.clone(), sorted(&map[k]))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// An HTTP date (`Sun, 10 Jan 2021 00:00:00 GMT`) from seconds since 1970.
pub fn http_date(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let days = secs / 86_400;
    let (h, m, s) = (secs % 86_400 / 3600, secs % 3600 / 60, secs % 60);
    // Howard Hinnant's civil_from_days, for days since 1970-01-01.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!("{}, {day:02} {} {year} {h:02}:{m:02}:{s:02} GMT", DAYS[(days % 7) as usize], MONTHS[(month - 1) as usize])
}
