//! A stateful fake of Reddit's OAuth token endpoint and its API (`oauth.reddit.com`) on
//! 127.0.0.1, serving one subreddit, for the Reddit adapter's end-to-end tests.
//!
//! As Reddit answers:
//! - `POST /api/v1/access_token` with HTTP Basic (the app's id and secret; 401 with
//!   `WWW-Authenticate: Basic realm="reddit"` otherwise): `grant_type=refresh_token` (an
//!   unknown token is 400 `{"error":"invalid_grant"}`) or `password` (a wrong one is 200
//!   `{"error":"invalid_grant"}`, as Reddit does); a token lasts `expires_in` 3600 s. With
//!   [`State::rotate`], each refresh hands out a new refresh token and the one used stops
//!   working (single-use refresh tokens).
//! - Every API call needs `Authorization: bearer TOKEN`: an unknown or expired one is 401
//!   `{"message":"Unauthorized","error":401}` with `www-authenticate: Bearer realm="reddit",
//!   error="invalid_token"`. A User-Agent not in Reddit's form (`... (by /u/NAME)`) is
//!   throttled: 429.
//! - Rate limit: 1000 calls in a ten-minute window (Reddit's 100 a minute, averaged over
//!   ten), told in `x-ratelimit-used`, `x-ratelimit-remaining` (a float) and
//!   `x-ratelimit-reset` (the window's seconds left); over it, 429 with `retry-after`.
//!   [`FakeReddit::fail_next`] answers 429 at once.
//! - `GET /api/info?id=FULLNAME,...`: those things as a listing.
//! - Listings (`/r/SUB/new`, `/r/SUB/comments`, `/r/SUB/about/modqueue`, `/user/NAME/...`,
//!   `/message/sent`): `{"kind":"Listing","data":{"after","before","children":[{"kind":"t3",
//!   "data":{...}}]}}`, newest first, `limit` (at most 100) and `after`. `GET
//!   /comments/ID?comment=C`: `[post listing, comment listing]`, the comment with its
//!   replies nested.
//! - Moderation (`/api/remove`, `/api/approve`, `/api/lock`) by a moderator only (403
//!   otherwise); `/api/remove` takes a removal as spam unless `spam=false`. `/api/comment`,
//!   `/api/editusertext` (the author only), `/api/submit`, `/api/compose` answer
//!   `api_type=json`'s shape, their refusals as `json.errors` with a 200 (`THREAD_LOCKED`,
//!   `NOT_AUTHOR`, `USER_DOESNT_EXIST`, `TOO_LONG`).
//!
//! Left out: everything else of Reddit, scopes, "more" children, votes on scores.

use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

pub const SUBREDDIT: &str = "tidepool";
pub const CLIENT_ID: &str = "p0l1tyApp";
pub const CLIENT_SECRET: &str = "app-secret-0001";
pub const REFRESH_TOKEN: &str = "refresh-token-0001";
/// The moderator account Polity acts as.
pub const BOT: &str = "polity_bot";
/// The subreddit's other moderator and its approved users.
pub const MOD: &str = "alice_mod";
pub const ERIN: &str = "erin";
pub const FRANK: &str = "frank";
/// Someone who only posts.
pub const STRANGER: &str = "mallory";
/// Calls a window allows, and its length.
pub const BUDGET: u32 = 1000;
pub const WINDOW: std::time::Duration = std::time::Duration::from_secs(600);

#[derive(Clone, Debug)]
pub struct Thing {
    /// The fullname (`t3_...`, `t1_...`).
    pub name: String,
    pub subreddit: String,
    pub author: String,
    pub title: String,
    pub body: String,
    pub url: String,
    /// The post of a comment, and what it replies to.
    pub link_id: String,
    pub parent_id: String,
    pub created: i64,
    pub removed: bool,
    pub spam: bool,
    pub approved: bool,
    pub locked: bool,
    pub reports: u32,
}

impl Thing {
    fn id(&self) -> &str {
        &self.name[3..]
    }

    fn data(&self) -> Value {
        let mut d = json!({
            "id": self.id(), "name": self.name, "author": self.author, "subreddit": self.subreddit,
            "created_utc": self.created as f64, "approved": self.approved, "locked": self.locked,
            "removed": self.removed, "spam": self.spam, "num_reports": self.reports,
            "banned_by": if self.removed { json!(BOT) } else { Value::Null },
            "removed_by_category": if self.removed { json!("moderator") } else { Value::Null },
        });
        if self.name.starts_with("t3_") {
            d["title"] = json!(self.title);
            d["selftext"] = json!(self.body);
            d["url"] = json!(self.url);
            d["is_self"] = json!(self.url.is_empty());
            d["permalink"] = json!(format!("/r/{}/comments/{}/x/", self.subreddit, self.id()));
        } else {
            d["body"] = json!(self.body);
            d["link_id"] = json!(self.link_id);
            d["parent_id"] = json!(self.parent_id);
            d["permalink"] = json!(format!("/r/{}/comments/{}/x/{}/", self.subreddit, &self.link_id[3..], self.id()));
        }
        d
    }

    fn child(&self) -> Value {
        json!({ "kind": &self.name[..2], "data": self.data() })
    }
}

#[derive(Debug)]
pub struct State {
    pub things: Vec<Thing>,
    /// Private messages: (from, to, subject, text).
    pub messages: Vec<(String, String, String, String)>,
    pub moderators: Vec<String>,
    pub contributors: Vec<String>,
    pub users: HashSet<String>,
    clock: i64,
    next: u64,
    tokens: HashMap<String, bool>,
    pub tokens_issued: u32,
    /// The refresh tokens that work, and whether each use hands out a new one in place of
    /// the one used (single-use refresh tokens).
    refresh_tokens: HashSet<String>,
    pub rotate: bool,
    /// Calls in the current window, and when it began.
    pub used: u32,
    window: std::time::Instant,
    /// `(method, path, form or query)` of every call.
    pub requests: Vec<(String, String, String)>,
    failures: HashMap<String, VecDeque<u64>>,
    lost: Vec<String>,
}

fn listing(children: Vec<Value>, after: Option<String>) -> Value {
    json!({"kind": "Listing", "data": {"after": after, "before": null, "dist": children.len(), "modhash": null, "children": children}})
}

fn json_errors(code: &str, message: &str, field: &str) -> Value {
    json!({"json": {"errors": [[code, message, field]]}})
}

fn base36(mut n: u64) -> String {
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    while n > 0 {
        out.push(digits[(n % 36) as usize]);
        n /= 36;
    }
    out.reverse();
    String::from_utf8(out).unwrap()
}

impl State {
    fn new() -> Self {
        Self {
            things: Vec::new(),
            messages: Vec::new(),
            moderators: vec![BOT.into(), MOD.into()],
            contributors: vec![ERIN.into(), FRANK.into()],
            users: [BOT, MOD, ERIN, FRANK, STRANGER].into_iter().map(String::from).collect(),
            clock: 1_764_000_000,
            next: 1_000_000,
            tokens: HashMap::new(),
            tokens_issued: 0,
            refresh_tokens: [REFRESH_TOKEN.to_string()].into_iter().collect(),
            rotate: false,
            used: 0,
            window: std::time::Instant::now(),
            requests: Vec::new(),
            failures: HashMap::new(),
            lost: Vec::new(),
        }
    }

    /// Makes a post (`t3`) or comment (`t1`) as `author`.
    fn make(&mut self, kind: &str, author: &str, title: &str, body: &str, url: &str, parent: Option<&str>) -> Thing {
        self.next += 1;
        self.clock += 7;
        let name = format!("{kind}_{}", base36(self.next));
        let (link_id, parent_id) = match parent {
            Some(p) => {
                let link = if p.starts_with("t3_") {
                    p.to_string()
                } else {
                    self.things.iter().find(|t| t.name == p).map(|t| t.link_id.clone()).unwrap_or_default()
                };
                (link, p.to_string())
            }
            None => (String::new(), String::new()),
        };
        let subreddit = parent
            .and_then(|p| self.things.iter().find(|t| t.name == p))
            .map_or_else(|| SUBREDDIT.to_string(), |t| t.subreddit.clone());
        let thing = Thing {
            name,
            subreddit,
            author: author.into(),
            title: title.into(),
            body: body.into(),
            url: url.into(),
            link_id,
            parent_id,
            created: self.clock,
            removed: false,
            spam: false,
            approved: false,
            locked: false,
            reports: 0,
        };
        self.things.push(thing.clone());
        thing
    }

    pub fn thing(&self, name: &str) -> Option<&Thing> {
        self.things.iter().find(|t| t.name == name)
    }

    fn page(&self, items: Vec<&Thing>, query: &HashMap<String, String>) -> Value {
        let limit = query.get("limit").and_then(|l| l.parse().ok()).unwrap_or(25usize).clamp(1, 100);
        let start = query.get("after").and_then(|a| items.iter().position(|t| &t.name == a)).map_or(0, |at| at + 1);
        let page: Vec<&Thing> = items.iter().skip(start).take(limit).copied().collect();
        let after = (start + page.len() < items.len()).then(|| page.last().map(|t| t.name.clone())).flatten();
        listing(page.iter().map(|t| t.child()).collect(), after)
    }

    fn newest(&self, f: impl Fn(&Thing) -> bool) -> Vec<&Thing> {
        let mut items: Vec<&Thing> = self.things.iter().filter(|t| f(t)).collect();
        items.sort_by_key(|t| std::cmp::Reverse(t.created));
        items
    }

    fn api(
        &mut self,
        method: &str,
        path: &str,
        query: &HashMap<String, String>,
        form: &HashMap<String, String>,
    ) -> Result<Value, (StatusCode, Value)> {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let sub_ok = |s: &str| s.eq_ignore_ascii_case(SUBREDDIT);
        let moderator = self.moderators.iter().any(|m| m == BOT);
        let forbidden = || (StatusCode::FORBIDDEN, json!({"message": "Forbidden", "error": 403}));
        let not_found = || (StatusCode::NOT_FOUND, json!({"message": "Not Found", "error": 404}));
        let field = |k: &str| form.get(k).cloned().unwrap_or_default();
        match (method, parts.as_slice()) {
            ("GET", ["api", "v1", "me"]) => Ok(json!({"name": BOT, "id": "bot1"})),
            ("GET", ["r", s, "about"]) if sub_ok(s) => {
                Ok(json!({"kind": "t5", "data": {"display_name": SUBREDDIT, "user_is_moderator": moderator}}))
            }
            ("GET", ["r", s, "about", list @ ("moderators" | "contributors")]) if sub_ok(s) => {
                if !moderator {
                    return Err(forbidden());
                }
                let names = if *list == "moderators" { &self.moderators } else { &self.contributors };
                let children: Vec<Value> =
                    names.iter().map(|n| json!({"name": n, "id": format!("t2_{n}"), "date": 1.7e9})).collect();
                Ok(json!({"kind": "UserList", "data": {"children": children}}))
            }
            ("GET", ["r", s, "new"]) if sub_ok(s) => Ok(self.page(self.newest(|t| t.name.starts_with("t3_")), query)),
            ("GET", ["r", s, "comments"]) if sub_ok(s) => {
                Ok(self.page(self.newest(|t| t.name.starts_with("t1_")), query))
            }
            ("GET", ["r", s, "about", "modqueue"]) if sub_ok(s) => {
                if !moderator {
                    return Err(forbidden());
                }
                Ok(self.page(self.newest(|t| t.reports > 0 && !t.approved && !t.removed), query))
            }
            ("GET", ["r", _, ..]) => Err(not_found()),
            ("GET", ["user", name, which @ ("comments" | "submitted")]) => {
                let kind = if *which == "comments" { "t1_" } else { "t3_" };
                Ok(self.page(self.newest(|t| t.author == *name && t.name.starts_with(kind)), query))
            }
            ("GET", ["api", "info"]) => {
                let wanted: Vec<&str> = query.get("id").map(|ids| ids.split(',').collect()).unwrap_or_default();
                let children: Vec<Value> =
                    self.things.iter().filter(|t| wanted.contains(&t.name.as_str())).map(Thing::child).collect();
                Ok(listing(children, None))
            }
            ("GET", ["message", "sent"]) => {
                let children: Vec<Value> = self
                    .messages
                    .iter()
                    .rev()
                    .filter(|m| m.0 == BOT)
                    .map(|(_, to, subject, text)| json!({"kind": "t4", "data": {"dest": to, "subject": subject, "body": text}}))
                    .collect();
                Ok(listing(children, None))
            }
            ("GET", ["comments", id]) => {
                let post = self.thing(&format!("t3_{id}")).ok_or_else(not_found)?.clone();
                fn tree(s: &State, parent: &str, depth: u32) -> Value {
                    let mut kids: Vec<&Thing> = s.things.iter().filter(|t| t.parent_id == parent).collect();
                    kids.sort_by_key(|t| t.created);
                    let children: Vec<Value> = kids
                        .iter()
                        .map(|t| {
                            let mut c = t.child();
                            c["data"]["replies"] = if depth > 1 { tree(s, &t.name, depth - 1) } else { json!("") };
                            c
                        })
                        .collect();
                    listing(children, None)
                }
                let comments = match query.get("comment") {
                    Some(c) => {
                        let t = self.thing(&format!("t1_{c}")).ok_or_else(not_found)?;
                        let mut child = t.child();
                        child["data"]["replies"] = tree(self, &t.name, 9);
                        listing(vec![child], None)
                    }
                    None => tree(self, &post.name, 10),
                };
                Ok(json!([listing(vec![post.child()], None), comments]))
            }
            ("POST", ["api", verb @ ("remove" | "approve" | "lock")]) => {
                if !moderator {
                    return Err(forbidden());
                }
                let id = field("id");
                let t = self.things.iter_mut().find(|t| t.name == id).ok_or_else(not_found)?;
                match *verb {
                    "remove" => {
                        t.removed = true;
                        t.approved = false;
                        // Reddit takes a removal as spam unless told otherwise.
                        t.spam = form.get("spam").is_none_or(|s| s != "false");
                    }
                    "approve" => {
                        t.removed = false;
                        t.spam = false;
                        t.approved = true;
                    }
                    _ => t.locked = true,
                }
                Ok(json!({}))
            }
            ("POST", ["api", "comment"]) => {
                let parent = field("thing_id");
                let text = field("text");
                let Some(target) = self.thing(&parent).cloned() else {
                    return Ok(json_errors("NO_THING_ID", "that thing does not exist", "parent"));
                };
                if target.locked {
                    return Ok(json_errors("THREAD_LOCKED", "Comments are locked.", "parent"));
                }
                if text.chars().count() > 10_000 {
                    return Ok(json_errors("TOO_LONG", "this is too long (max: 10000)", "text"));
                }
                let made = self.make("t1", BOT, "", &text, "", Some(&parent));
                Ok(json!({"json": {"errors": [], "data": {"things": [made.child()]}}}))
            }
            ("POST", ["api", "editusertext"]) => {
                let id = field("thing_id");
                let text = field("text");
                let t = self.things.iter_mut().find(|t| t.name == id).ok_or_else(not_found)?;
                if t.author != BOT {
                    return Ok(json_errors("NOT_AUTHOR", "you can't do that", "thing_id"));
                }
                t.body = text;
                let child = t.child();
                Ok(json!({"json": {"errors": [], "data": {"things": [child]}}}))
            }
            ("POST", ["api", "submit"]) => {
                if !sub_ok(&field("sr")) {
                    return Ok(json_errors("SUBREDDIT_NOEXIST", "that subreddit doesn't exist", "sr"));
                }
                let title = field("title");
                if title.trim().is_empty() || title.chars().count() > 300 {
                    return Ok(json_errors("NO_TEXT", "we need something here", "title"));
                }
                let made = self.make("t3", BOT, &title, &field("text"), &field("url"), None);
                Ok(
                    json!({"json": {"errors": [], "data": {"id": made.id(), "name": made.name, "url": format!("https://www.reddit.com/r/{SUBREDDIT}/comments/{}/x/", made.id())}}}),
                )
            }
            ("POST", ["api", "compose"]) => {
                let to = field("to");
                if !self.users.contains(&to) {
                    return Ok(json_errors("USER_DOESNT_EXIST", "that user doesn't exist", "to"));
                }
                self.messages.push((BOT.into(), to, field("subject"), field("text")));
                Ok(json!({"json": {"errors": []}}))
            }
            _ => Err(not_found()),
        }
    }
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    changed: Notify,
}

/// The fake Reddit, serving until dropped.
#[derive(Debug)]
pub struct FakeReddit {
    shared: Arc<Shared>,
    base: String,
    task: JoinHandle<()>,
}

impl Drop for FakeReddit {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A form or query value, `application/x-www-form-urlencoded`.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (bytes[i], hex) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(b)) => {
                out.push(b);
                i += 2;
            }
            (b, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn pairs(s: &str) -> HashMap<String, String> {
    s.split('&').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (decode(k), decode(v))).collect()
}

fn basic(user: &str, secret: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}")))
}

async fn route(
    AxumState(shared): AxumState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let text = String::from_utf8_lossy(&body).to_string();
    let form = pairs(&text);
    let query = pairs(uri.query().unwrap_or_default());
    let answer = {
        let mut s = shared.state.lock().unwrap_or_else(PoisonError::into_inner);
        let path = uri.path().to_string();
        s.requests.push((
            method.to_string(),
            path.clone(),
            if method == Method::POST { text.clone() } else { uri.query().unwrap_or_default().to_string() },
        ));
        let asked = format!("{method} {path}");
        if s.window.elapsed() >= WINDOW {
            s.window = std::time::Instant::now();
            s.used = 0;
        }
        if path == "/api/v1/access_token" {
            token(&mut s, &header("authorization"), &form)
        } else {
            let failing = s.failures.keys().find(|k| asked.starts_with(k.as_str())).cloned();
            let wait = failing.and_then(|k| s.failures.get_mut(&k)).and_then(VecDeque::pop_front);
            let bearer = header("authorization");
            let token = bearer
                .strip_prefix("bearer ")
                .or_else(|| bearer.strip_prefix("Bearer "))
                .unwrap_or_default()
                .to_string();
            let ua = header("user-agent");
            if let Some(wait) = wait {
                limited(wait, &s)
            } else if !ua.contains(" (by /u/") {
                limited(600, &s)
            } else if s.tokens.get(&token) != Some(&true) {
                let mut r = (StatusCode::UNAUTHORIZED, axum::Json(json!({"message": "Unauthorized", "error": 401})))
                    .into_response();
                r.headers_mut()
                    .insert("www-authenticate", "Bearer realm=\"reddit\", error=\"invalid_token\"".parse().unwrap());
                r
            } else if s.used >= BUDGET {
                let left = WINDOW.saturating_sub(s.window.elapsed()).as_secs().max(1);
                limited(left, &s)
            } else {
                s.used += 1;
                let answer = s.api(method.as_str(), &path, &query, &form);
                let lost = s.lost.iter().position(|k| asked.starts_with(k.as_str()));
                let mut r = match (answer, lost) {
                    (_, Some(at)) => {
                        s.lost.remove(at);
                        (StatusCode::BAD_GATEWAY, "<html>502 Bad Gateway</html>").into_response()
                    }
                    (Ok(v), None) => (StatusCode::OK, axum::Json(v)).into_response(),
                    (Err((status, v)), None) => (status, axum::Json(v)).into_response(),
                };
                rate_headers(&mut r, &s);
                r
            }
        }
    };
    shared.changed.notify_waiters();
    answer
}

fn rate_headers(r: &mut Response, s: &State) {
    let h = r.headers_mut();
    h.insert("x-ratelimit-used", s.used.to_string().parse().unwrap());
    h.insert("x-ratelimit-remaining", format!("{:.1}", f64::from(BUDGET.saturating_sub(s.used))).parse().unwrap());
    let left = WINDOW.saturating_sub(s.window.elapsed()).as_secs();
    h.insert("x-ratelimit-reset", left.to_string().parse().unwrap());
}

fn limited(wait: u64, s: &State) -> Response {
    let mut r = (StatusCode::TOO_MANY_REQUESTS, [("content-type", "text/html")], "<html>Too Many Requests</html>")
        .into_response();
    r.headers_mut().insert("retry-after", wait.to_string().parse().unwrap());
    rate_headers(&mut r, s);
    r
}

fn token(s: &mut State, authorization: &str, form: &HashMap<String, String>) -> Response {
    if authorization != basic(CLIENT_ID, CLIENT_SECRET) {
        let mut r =
            (StatusCode::UNAUTHORIZED, axum::Json(json!({"message": "Unauthorized", "error": 401}))).into_response();
        r.headers_mut().insert("www-authenticate", "Basic realm=\"reddit\"".parse().unwrap());
        return r;
    }
    let granted = match form.get("grant_type").map(String::as_str) {
        Some("refresh_token") => {
            let used = form.get("refresh_token").cloned().unwrap_or_default();
            if !s.refresh_tokens.contains(&used) {
                return (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "invalid_grant"}))).into_response();
            }
            if s.rotate {
                s.refresh_tokens.remove(&used);
            }
            true
        }
        Some("password") => {
            form.get("username").map(String::as_str) == Some(BOT)
                && form.get("password").map(String::as_str) == Some("hunter2")
        }
        _ => return (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "unsupported_grant_type"}))).into_response(),
    };
    if !granted {
        // Reddit answers a wrong password with a 200.
        return (StatusCode::OK, axum::Json(json!({"error": "invalid_grant"}))).into_response();
    }
    s.tokens_issued += 1;
    let access = format!("access-{}", s.tokens_issued);
    s.tokens.insert(access.clone(), true);
    let mut answer = json!({"access_token": access, "token_type": "bearer", "expires_in": 3600, "scope": "*"});
    if s.rotate && form.get("grant_type").map(String::as_str) == Some("refresh_token") {
        let next = format!("refresh-token-r{}", s.tokens_issued);
        s.refresh_tokens.insert(next.clone());
        answer["refresh_token"] = json!(next);
    }
    (StatusCode::OK, axum::Json(answer)).into_response()
}

impl FakeReddit {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the fake Reddit");
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Shared { state: Mutex::new(State::new()), changed: Notify::new() });
        let app = axum::Router::new().fallback(route).with_state(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { shared, base, task }
    }

    /// Where both the token endpoint and the API are (the connection's `auth_url` and `api_url`).
    pub fn url(&self) -> String {
        self.base.clone()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn with<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        f(&self.lock())
    }

    pub fn change<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let out = f(&mut self.lock());
        self.shared.changed.notify_waiters();
        out
    }

    pub async fn until<T>(&self, f: impl Fn(&State) -> Option<T>) -> T {
        loop {
            let changed = self.shared.changed.notified();
            if let Some(t) = f(&self.lock()) {
                return t;
            }
            changed.await;
        }
    }

    /// `author` posts in the subreddit; its fullname.
    pub fn submit(&self, author: &str, title: &str, text: &str) -> String {
        self.change(|s| s.make("t3", author, title, text, "", None).name)
    }

    /// `author` posts in another subreddit the account also moderates; its fullname.
    pub fn submit_elsewhere(&self, author: &str, subreddit: &str, title: &str) -> String {
        self.change(|s| {
            let mut t = s.make("t3", author, title, "", "", None);
            t.subreddit = subreddit.into();
            if let Some(made) = s.things.iter_mut().find(|x| x.name == t.name) {
                made.subreddit = subreddit.into();
            }
            t.name
        })
    }

    /// `author` replies to `parent`; the reply's fullname.
    pub fn reply(&self, author: &str, parent: &str, body: &str) -> String {
        self.change(|s| s.make("t1", author, "", body, "", Some(parent)).name)
    }

    pub fn thing(&self, name: &str) -> Thing {
        self.with(|s| s.thing(name).cloned().unwrap_or_else(|| panic!("no {name}")))
    }

    /// Every access token handed out expires.
    pub fn expire_tokens(&self) {
        self.change(|s| s.tokens.values_mut().for_each(|v| *v = false));
    }

    /// `n` calls of the window are used already.
    pub fn use_up(&self, n: u32) {
        self.change(|s| s.used = n);
    }

    /// The next `METHOD /path...` is answered 429 with `Retry-After: wait`.
    pub fn fail_next(&self, method: &str, path: &str, wait: u64) {
        self.change(|s| s.failures.entry(format!("{method} {path}")).or_default().push_back(wait));
    }

    /// The next `METHOD /path...` is performed, and its answer lost (502).
    pub fn lose_next(&self, method: &str, path: &str) {
        self.change(|s| s.lost.push(format!("{method} {path}")));
    }

    /// Polity's comment under `post` whose text contains `part`, once made: its fullname.
    pub async fn bot_comment(&self, post: &str, part: &str) -> String {
        self.until(|s| {
            s.things
                .iter()
                .find(|t| t.author == BOT && t.link_id == post && t.body.contains(part))
                .map(|t| t.name.clone())
        })
        .await
    }

    /// The calls made to `METHOD path`.
    pub fn calls(&self, method: &str, path: &str) -> Vec<String> {
        self.with(|s| {
            s.requests.iter().filter(|(m, p, _)| m == method && p == path).map(|(_, _, b)| b.clone()).collect()
        })
    }
}
