//! A stateful fake of a Loomio instance's API (`/api/b2`, and an older instance's `/api/b1`)
//! on 127.0.0.1, and the webhook deliveries Loomio would send, for the Loomio adapter's
//! end-to-end tests.
//!
//! As Loomio answers:
//! - `/api/b2` reads a user's key from `Authorization: Bearer` only: a key in the query
//!   string, a wrong key, or none is 403 `{"error":"You are not authorized to access this
//!   page."}`. `/api/b1` reads an older instance's group key from the `api_key` parameter.
//! - `GET /memberships?group_id=`: the group's memberships and their users (`limit`,
//!   `offset`); a group that does not exist is 404, one the key's user is no member of
//!   answers no one.
//! - `POST /polls`: `group_id` (422 `{"errors":{"group":["can't be blank"]}}` without one; 403
//!   for a non-member), `title` (422 when blank), `poll_type` (one of Loomio's), `options`,
//!   `closing_at`; answered `{"polls":[...], "poll_options":[...]}`.
//! - `GET /polls/{id or key}` (403 outside the user's groups, 404 unknown): the poll with
//!   `results` (each option's `voter_count` and `score`; a proposal's names as Loomio names
//!   them for translation, `poll_proposal_options.agree`), `decided_voters_count`,
//!   `undecided_voters_count`, `closed_at`. `GET /polls?group_id=&status=active|closed|all`.
//! - `POST /discussions`: `{"discussions":[...]}`.
//! - [`FakeLoomio::fail_next`] answers 429 "Retry later" (text, as its limiter does);
//!   [`FakeLoomio::lose_next`] performs a request and loses its answer (502).
//! - Webhooks: [`FakeLoomio::deliver`] posts a chat text naming a poll's address, unsigned,
//!   as Loomio's "webhook" integration does.
//!
//! Left out: stances' reasons, outcomes, ranked-choice scoring rules, the rest of the API.

use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// The key of the user Polity acts as, a member of [`GROUP`].
pub const API_KEY: &str = "loomio-user-key-0001";
/// Polity's user.
pub const POLITY_USER: u64 = 1;
/// Members of the group.
pub const ERIN: u64 = 2;
pub const FRANK: u64 = 3;
/// The group a community governs, and another one.
pub const GROUP: u64 = 42;
pub const OTHER_GROUP: u64 = 77;
/// A key of someone in [`OTHER_GROUP`] only.
pub const OUTSIDER_KEY: &str = "loomio-user-key-0009";
/// An older instance's key for [`GROUP`] (`/api/b1`).
pub const GROUP_KEY: &str = "loomio-group-key-42";

#[derive(Clone, Debug)]
pub struct User {
    pub id: u64,
    pub name: String,
    pub key: String,
}

#[derive(Clone, Debug)]
pub struct Poll {
    pub id: u64,
    pub key: String,
    pub group_id: u64,
    pub author_id: u64,
    pub title: String,
    pub details: String,
    pub poll_type: String,
    pub options: Vec<String>,
    pub closing_at: Option<String>,
    pub closed_at: Option<String>,
    /// Each voter's choice.
    pub stances: BTreeMap<u64, String>,
}

#[derive(Debug)]
pub struct State {
    pub users: Vec<User>,
    /// Each group's members.
    pub groups: BTreeMap<u64, Vec<u64>>,
    pub polls: Vec<Poll>,
    pub discussions: Vec<(u64, u64, String)>,
    next: u64,
    /// `(method, path, query, body)` of every request.
    pub requests: Vec<(String, String, String, Value)>,
    failures: HashMap<String, VecDeque<u64>>,
    lost: Vec<String>,
    hook: Option<String>,
}

fn forbidden() -> (StatusCode, Value) {
    (StatusCode::FORBIDDEN, json!({"error": "You are not authorized to access this page."}))
}

fn not_found() -> (StatusCode, Value) {
    (StatusCode::NOT_FOUND, json!({"error": "Not found"}))
}

fn unprocessable(field: &str, error: &str) -> (StatusCode, Value) {
    (StatusCode::UNPROCESSABLE_ENTITY, json!({"errors": { field: [error] }}))
}

const POLL_TYPES: &[&str] = &["proposal", "poll", "count", "score", "ranked_choice", "meeting", "dot_vote"];

impl State {
    fn new() -> Self {
        let users = [
            (POLITY_USER, "Polity", API_KEY),
            (ERIN, "Erin", "erin-key"),
            (FRANK, "Frank", "frank-key"),
            (9, "Oscar", OUTSIDER_KEY),
        ]
        .into_iter()
        .map(|(id, name, key)| User { id, name: name.into(), key: key.into() })
        .collect();
        let groups = [(GROUP, vec![POLITY_USER, ERIN, FRANK]), (OTHER_GROUP, vec![9])].into_iter().collect();
        Self {
            users,
            groups,
            polls: Vec::new(),
            discussions: Vec::new(),
            next: 500,
            requests: Vec::new(),
            failures: HashMap::new(),
            lost: Vec::new(),
            hook: None,
        }
    }

    fn member(&self, user: u64, group: u64) -> bool {
        self.groups.get(&group).is_some_and(|m| m.contains(&user))
    }

    fn poll_json(&self, p: &Poll) -> Value {
        let results: Vec<Value> = p
            .options
            .iter()
            .enumerate()
            .map(|(i, o)| {
                let votes = p.stances.values().filter(|s| *s == o).count();
                let name = if p.poll_type == "proposal" { format!("poll_proposal_options.{o}") } else { o.clone() };
                json!({"id": i + 1, "poll_id": p.id, "name": name, "rank": i + 1, "voter_count": votes, "score": votes as f64, "voter_ids": p.stances.iter().filter(|(_, s)| *s == o).map(|(u, _)| *u).collect::<Vec<_>>()})
            })
            .chain(std::iter::once(json!({"id": -1, "name": "undecided", "voter_count": 0, "score": 0.0})))
            .collect();
        let members = self.groups.get(&p.group_id).map_or(0, Vec::len);
        json!({
            "id": p.id, "key": p.key, "group_id": p.group_id, "author_id": p.author_id, "title": p.title,
            "details": p.details, "details_format": "md", "poll_type": p.poll_type, "closing_at": p.closing_at,
            "closed_at": p.closed_at, "voters_count": members, "decided_voters_count": p.stances.len(),
            "undecided_voters_count": members.saturating_sub(p.stances.len()), "hide_results": "off",
            "poll_option_names": p.options, "results": results,
        })
    }

    fn poll_answer(&self, p: &Poll) -> Value {
        let options: Vec<Value> = p
            .options
            .iter()
            .enumerate()
            .map(|(i, o)| json!({"id": i + 1, "poll_id": p.id, "name": o, "priority": i}))
            .collect();
        json!({"polls": [self.poll_json(p)], "poll_options": options, "users": [], "topics": []})
    }

    fn api(
        &mut self,
        method: &Method,
        path: &str,
        query: &HashMap<String, String>,
        user: u64,
        body: &Value,
    ) -> Result<Value, (StatusCode, Value)> {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let number = |v: Option<&Value>| v.and_then(|g| g.as_u64().or_else(|| g.as_str()?.parse().ok()));
        match (method.as_str(), parts.as_slice()) {
            ("GET", ["memberships"]) => {
                let group = query.get("group_id").and_then(|g| g.parse::<u64>().ok()).ok_or_else(not_found)?;
                let members = self.groups.get(&group).ok_or_else(not_found)?;
                if !members.contains(&user) {
                    return Ok(json!({"memberships": [], "users": []}));
                }
                let limit = query.get("limit").and_then(|l| l.parse().ok()).unwrap_or(50usize);
                let offset = query.get("offset").and_then(|l| l.parse().ok()).unwrap_or(0usize);
                let page: Vec<u64> = members.iter().copied().skip(offset).take(limit).collect();
                let memberships: Vec<Value> = page
                    .iter()
                    .map(|u| json!({"id": 9000 + u, "group_id": group, "user_id": u, "admin": *u == POLITY_USER}))
                    .collect();
                let users: Vec<Value> = page
                    .iter()
                    .filter_map(|u| self.users.iter().find(|x| x.id == *u))
                    .map(|u| json!({"id": u.id, "name": u.name, "username": u.name.to_lowercase()}))
                    .collect();
                Ok(json!({"memberships": memberships, "users": users}))
            }
            ("POST", ["polls"]) => {
                let group = number(body.get("group_id")).ok_or_else(|| unprocessable("group", "can't be blank"))?;
                if !self.groups.contains_key(&group) {
                    return Err(unprocessable("group", "can't be blank"));
                }
                if !self.member(user, group) {
                    return Err(forbidden());
                }
                let title = body.get("title").and_then(Value::as_str).unwrap_or_default().trim().to_string();
                if title.is_empty() {
                    return Err(unprocessable("title", "can't be blank"));
                }
                let poll_type = body.get("poll_type").and_then(Value::as_str).unwrap_or("proposal").to_string();
                if !POLL_TYPES.contains(&poll_type.as_str()) {
                    return Err(unprocessable("poll_type", "is not included in the list"));
                }
                let options: Vec<String> = body
                    .get("options")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect();
                if options.is_empty() {
                    return Err(unprocessable("poll_options", "can't be blank"));
                }
                self.next += 1;
                let id = self.next;
                let poll = Poll {
                    id,
                    key: format!("Pk{id:06}"),
                    group_id: group,
                    author_id: user,
                    title,
                    details: body.get("details").and_then(Value::as_str).unwrap_or_default().to_string(),
                    poll_type,
                    options,
                    closing_at: body.get("closing_at").and_then(Value::as_str).map(str::to_string),
                    closed_at: None,
                    stances: BTreeMap::new(),
                };
                let answer = self.poll_answer(&poll);
                self.polls.push(poll);
                Ok(answer)
            }
            ("GET", ["polls"]) => {
                let group = query.get("group_id").and_then(|g| g.parse::<u64>().ok()).ok_or_else(not_found)?;
                if !self.groups.contains_key(&group) {
                    return Err(not_found());
                }
                if !self.member(user, group) {
                    return Err(forbidden());
                }
                let status = query.get("status").map_or("active", String::as_str);
                let polls: Vec<Value> = self
                    .polls
                    .iter()
                    .rev()
                    .filter(|p| p.group_id == group)
                    .filter(|p| match status {
                        "active" => p.closed_at.is_none(),
                        "closed" => p.closed_at.is_some(),
                        _ => true,
                    })
                    .map(|p| self.poll_json(p))
                    .collect();
                Ok(json!({"polls": polls}))
            }
            ("GET", ["polls", id]) => {
                let p = self.polls.iter().find(|p| p.key == *id || p.id.to_string() == *id).ok_or_else(not_found)?;
                if !self.member(user, p.group_id) {
                    return Err(forbidden());
                }
                Ok(self.poll_answer(p))
            }
            ("POST", ["discussions"]) => {
                let group = number(body.get("group_id")).ok_or_else(|| unprocessable("group", "can't be blank"))?;
                if !self.member(user, group) {
                    return Err(forbidden());
                }
                let title = body.get("title").and_then(Value::as_str).unwrap_or_default().to_string();
                if title.trim().is_empty() {
                    return Err(unprocessable("title", "can't be blank"));
                }
                self.next += 1;
                self.discussions.push((self.next, group, title.clone()));
                Ok(
                    json!({"discussions": [{"id": self.next, "key": format!("Dk{:06}", self.next), "group_id": group, "title": title}]}),
                )
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

/// The fake instance, serving until dropped.
#[derive(Debug)]
pub struct FakeLoomio {
    shared: Arc<Shared>,
    base: String,
    task: JoinHandle<()>,
    http: reqwest::Client,
}

impl Drop for FakeLoomio {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn route(
    AxumState(shared): AxumState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query: HashMap<String, String> = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.replace("%40", "@")))
        .collect();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let answer = {
        let mut s = shared.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.requests.push((
            method.to_string(),
            uri.path().to_string(),
            uri.query().unwrap_or_default().to_string(),
            body.clone(),
        ));
        let asked = format!("{method} {}", uri.path());
        let failing = s.failures.keys().find(|k| asked.starts_with(k.as_str())).cloned();
        let wait = failing.and_then(|k| s.failures.get_mut(&k)).and_then(VecDeque::pop_front);
        let (version, path) = match uri.path().strip_prefix("/api/b2") {
            Some(rest) => ("b2", rest.to_string()),
            None => ("b1", uri.path().strip_prefix("/api/b1").unwrap_or("/nowhere").to_string()),
        };
        let user = match version {
            // The current API reads a user's key from the header only.
            "b2" => bearer.and_then(|k| s.users.iter().find(|u| u.key == k).map(|u| u.id)),
            // The older one, a group key from the parameters: it acts as Polity's user.
            _ => query.get("api_key").filter(|k| *k == GROUP_KEY).map(|_| POLITY_USER),
        };
        if let Some(wait) = wait {
            let mut r = (StatusCode::TOO_MANY_REQUESTS, "Retry later\n").into_response();
            r.headers_mut().insert("retry-after", wait.to_string().parse().unwrap());
            r
        } else if let Some(user) = user {
            let answer = s.api(&method, &path, &query, user, &body);
            let lost = s.lost.iter().position(|k| asked.starts_with(k.as_str()));
            match (answer, lost) {
                (_, Some(at)) => {
                    s.lost.remove(at);
                    (StatusCode::BAD_GATEWAY, "<html>502 Bad Gateway</html>").into_response()
                }
                (Ok(v), None) => (StatusCode::OK, axum::Json(v)).into_response(),
                (Err((status, v)), None) => (status, axum::Json(v)).into_response(),
            }
        } else {
            let (status, v) = forbidden();
            (status, axum::Json(v)).into_response()
        }
    };
    shared.changed.notify_waiters();
    answer
}

impl FakeLoomio {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the fake Loomio");
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Shared { state: Mutex::new(State::new()), changed: Notify::new() });
        let app = axum::Router::new().fallback(route).with_state(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(10)).build().unwrap();
        Self { shared, base, task, http }
    }

    /// The instance's address (the connection's `url`).
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

    /// The next `METHOD /path...` is answered 429 "Retry later" with `Retry-After: wait`.
    pub fn fail_next(&self, method: &str, path: &str, wait: u64) {
        self.lock().failures.entry(format!("{method} {path}")).or_default().push_back(wait);
    }

    /// The next `METHOD /path...` is performed, and its answer lost on the way back (502).
    pub fn lose_next(&self, method: &str, path: &str) {
        self.lock().lost.push(format!("{method} {path}"));
    }

    /// Deliveries go to `url`.
    pub fn set_hook(&self, url: &str) {
        self.lock().hook = Some(url.into());
    }

    /// The poll whose details contain `part`, once made: its key.
    pub async fn poll_with(&self, part: &str) -> String {
        self.until(|s| s.polls.iter().find(|p| p.details.contains(part)).map(|p| p.key.clone())).await
    }

    pub fn poll(&self, key: &str) -> Poll {
        self.with(|s| s.polls.iter().find(|p| p.key == key).cloned().unwrap_or_else(|| panic!("no poll {key}")))
    }

    /// `user` votes `option` in poll `key` (a new vote replaces theirs).
    pub fn vote(&self, user: u64, key: &str, option: &str) {
        self.change(|s| {
            let p = s.polls.iter_mut().find(|p| p.key == key).unwrap_or_else(|| panic!("no poll {key}"));
            assert!(p.closed_at.is_none(), "the poll is closed");
            assert!(p.options.iter().any(|o| o == option), "no option {option}");
            p.stances.insert(user, option.into());
        });
    }

    /// Poll `key` closes (its time came, or its author closed it).
    pub fn close(&self, key: &str) {
        self.change(|s| {
            if let Some(p) = s.polls.iter_mut().find(|p| p.key == key) {
                p.closed_at = Some("2026-12-03T12:00:00.000Z".into());
            }
        });
    }

    /// Posts `text` to the webhook as Loomio's markdown integration does (unsigned); the
    /// answer's status (0: not reached).
    pub async fn deliver(&self, text: &str) -> u16 {
        let Some(url) = self.lock().hook.clone() else { return 0 };
        let body = json!({"text": text, "icon_url": format!("{}/logo.png", self.base), "username": "Loomio"});
        match self.http.post(url).json(&body).send().await {
            Ok(r) => r.status().as_u16(),
            Err(_) => 0,
        }
    }

    /// A poll's address, as Loomio's texts link it.
    pub fn poll_url(&self, key: &str) -> String {
        format!("{}/p/{key}/a-poll", self.base)
    }
}
