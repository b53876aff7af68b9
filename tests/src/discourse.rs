//! A stateful fake of a Discourse forum's REST API on 127.0.0.1, and the webhook deliveries
//! Discourse would send, for the Discourse adapter's end-to-end tests.
//!
//! As Discourse answers:
//! - `Api-Key` and `Api-Username` on every request: an unknown key, or a key given for one
//!   user used as another, is 403 `{"errors":["You are not permitted to view the requested
//!   resource. The API username or key is invalid."],"error_type":"invalid_access"}`.
//! - `POST /posts.json`: a topic (`title`, `raw`, `category`), a reply (`topic_id`, `raw`) or
//!   a private message (`archetype: private_message`, `target_recipients`). A title under 15
//!   characters, a post under 20, a title already used by a topic that is not deleted, or the
//!   same text posted again by the same user, are 422 with Discourse's `errors`
//!   ("Title has already been used", "Body is too similar to what you recently posted").
//! - Only staff (a moderator or an admin) delete or recover another's topic or post (403
//!   `invalid_access`); `DELETE /t/{id}.json`, `PUT /t/{id}/recover`, `DELETE
//!   /posts/{id}.json`, `PUT /posts/{id}/recover`; a topic deleted is hidden (404) from
//!   `GET /t/{id}.json` to anyone but staff; `PUT /t/{id}/status.json` closes one.
//! - [`FakeDiscourse::fail_next`] answers 429 with `Retry-After` (and `extras.wait_seconds`);
//!   [`FakeDiscourse::lose_next`] performs a request and loses its answer (502).
//! - `GET /posts.json`: the latest posts (20, newest first, with `raw`) as `latest_posts`.
//! - Webhooks: a topic made by a user ([`FakeDiscourse::create_topic`]) is delivered as
//!   Discourse delivers it, twice (`topic_created` and its first post's `post_created`),
//!   with `X-Discourse-Instance`, `X-Discourse-Event-Id`, `X-Discourse-Event-Type`,
//!   `X-Discourse-Event` and `X-Discourse-Event-Signature: sha256=HMAC(secret, body)`.
//!
//! - Polls: a post's `[poll]` (its `* option` lines) shows in `GET /posts/{id}.json` as
//!   `polls` (status, options with their `html` and `votes`, `voters`);
//!   [`FakeDiscourse::vote_poll`] and [`FakeDiscourse::close_poll`] act as the forum's users.
//!
//! Left out: categories' permissions, other poll types, uploads, the rest of the API.

use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// The key of all users (Polity's), and the moderator Polity acts as.
pub const API_KEY: &str = "d1s-c0urse-all-users-key";
pub const MODERATOR: &str = "polity";
/// Members of the forum.
pub const ERIN: &str = "erin";
pub const FRANK: &str = "frank";
/// The category a policy governs, and one it does not.
pub const PROPOSALS: u64 = 5;
pub const GENERAL: u64 = 6;

#[derive(Clone, Debug)]
pub struct Post {
    pub id: u64,
    pub topic_id: u64,
    pub post_number: u64,
    pub user: String,
    pub raw: String,
    pub deleted: bool,
    pub poll: Option<Poll>,
}

/// A post's `[poll]`: its options with who voted for each, open or closed.
#[derive(Clone, Debug)]
pub struct Poll {
    pub closed: bool,
    pub options: Vec<(String, Vec<String>)>,
}

/// The `[poll]` of a post's text, as Discourse's poll plugin reads it: `* option` lines.
fn poll_of(raw: &str) -> Option<Poll> {
    let start = raw.find("[poll")?;
    let end = raw[start..].find("[/poll]")? + start;
    let options: Vec<(String, Vec<String>)> = raw[start..end]
        .lines()
        .filter_map(|l| l.trim().strip_prefix("* "))
        .map(|o| (o.trim().to_string(), Vec::new()))
        .collect();
    (options.len() >= 2).then_some(Poll { closed: false, options })
}

#[derive(Clone, Debug)]
pub struct Topic {
    pub id: u64,
    pub title: String,
    pub category: u64,
    pub user: String,
    pub deleted: bool,
    pub closed: bool,
    pub private_to: Option<String>,
}

/// Everything the fake knows.
#[derive(Debug)]
pub struct State {
    /// Usernames with whether they are staff.
    users: BTreeMap<String, bool>,
    pub topics: BTreeMap<u64, Topic>,
    pub posts: Vec<Post>,
    next: u64,
    event_id: u64,
    hook: Option<(String, String)>,
    pub requests: Vec<(String, String, Value)>,
    failures: HashMap<String, VecDeque<u64>>,
    /// Requests performed whose answer is then lost (502).
    lost: Vec<String>,
}

fn invalid_access() -> (StatusCode, Value) {
    (
        StatusCode::FORBIDDEN,
        json!({"errors": ["You are not permitted to view the requested resource. The API username or key is invalid."], "error_type": "invalid_access"}),
    )
}

fn not_found() -> (StatusCode, Value) {
    (
        StatusCode::NOT_FOUND,
        json!({"errors": ["The requested URL or resource could not be found."], "error_type": "not_found"}),
    )
}

fn unprocessable(error: &str) -> (StatusCode, Value) {
    (StatusCode::UNPROCESSABLE_ENTITY, json!({"action": "create_post", "errors": [error]}))
}

impl State {
    fn new() -> Self {
        let users = [(MODERATOR, true), (ERIN, false), (FRANK, false), ("system", true)]
            .into_iter()
            .map(|(u, staff)| (u.to_string(), staff))
            .collect();
        Self {
            users,
            topics: BTreeMap::new(),
            posts: Vec::new(),
            next: 100,
            event_id: 40,
            hook: None,
            requests: Vec::new(),
            failures: HashMap::new(),
            lost: Vec::new(),
        }
    }

    /// The texts of the private messages to `user`.
    pub fn messages_to(&self, user: &str) -> Vec<String> {
        self.topics
            .values()
            .filter(|t| t.private_to.as_deref().is_some_and(|to| to.split(',').any(|u| u.trim() == user)))
            .flat_map(|t| self.posts.iter().filter(move |p| p.topic_id == t.id).map(|p| p.raw.clone()))
            .collect()
    }

    fn id(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    fn topic_json(&self, t: &Topic) -> Value {
        json!({"id": t.id, "title": t.title, "fancy_title": t.title, "slug": t.title.to_lowercase().replace(' ', "-"),
            "category_id": t.category, "archetype": if t.private_to.is_some() { "private_message" } else { "regular" },
            "closed": t.closed, "deleted_at": if t.deleted { json!("2026-12-01T12:00:00.000Z") } else { Value::Null },
            "created_by": {"id": 1, "username": t.user}, "posts_count": self.posts.iter().filter(|p| p.topic_id == t.id).count()})
    }

    fn post_json(&self, p: &Post) -> Value {
        let topic = self.topics.get(&p.topic_id);
        json!({"id": p.id, "topic_id": p.topic_id, "post_number": p.post_number, "username": p.user, "raw": p.raw,
            "cooked": format!("<p>{}</p>", p.raw), "topic_title": topic.map(|t| t.title.clone()),
            "category_id": topic.map(|t| t.category), "deleted_at": if p.deleted { json!("2026-12-01T12:00:00.000Z") } else { Value::Null }})
    }

    /// Makes a post (a topic's first, a reply, or a private message) as `user`.
    fn create(&mut self, user: &str, body: &Value) -> Result<(Post, Option<Topic>), (StatusCode, Value)> {
        let raw = body.get("raw").and_then(Value::as_str).unwrap_or_default().to_string();
        if raw.trim().chars().count() < 20 {
            return Err(unprocessable("Body is too short (minimum is 20 characters)"));
        }
        if self.posts.iter().any(|p| p.user == user && p.raw == raw && !p.deleted) {
            return Err(unprocessable("Body is too similar to what you recently posted"));
        }
        let (topic_id, topic) = match body.get("topic_id").and_then(|t| t.as_u64().or_else(|| t.as_str()?.parse().ok()))
        {
            Some(id) => {
                let t = self.topics.get(&id).filter(|t| !t.deleted).ok_or_else(not_found)?;
                if t.closed {
                    return Err(unprocessable("This topic is closed; it no longer accepts new replies."));
                }
                (id, None)
            }
            None => {
                let title = body.get("title").and_then(Value::as_str).unwrap_or_default().to_string();
                if title.trim().chars().count() < 15 {
                    return Err(unprocessable("Title is too short (minimum is 15 characters)"));
                }
                if self.topics.values().any(|t| t.title.eq_ignore_ascii_case(&title) && !t.deleted) {
                    return Err(unprocessable("Title has already been used"));
                }
                let private = body.get("archetype").and_then(Value::as_str) == Some("private_message");
                let private_to = if private {
                    let to = body.get("target_recipients").and_then(Value::as_str).unwrap_or_default().to_string();
                    if to.is_empty() || to.split(',').any(|u| !self.users.contains_key(u.trim())) {
                        return Err(unprocessable("You must select a valid user"));
                    }
                    Some(to)
                } else {
                    None
                };
                let category = body
                    .get("category")
                    .and_then(|c| c.as_u64().or_else(|| c.as_str()?.parse().ok()))
                    .unwrap_or(GENERAL);
                let id = self.id();
                let topic = Topic { id, title, category, user: user.into(), deleted: false, closed: false, private_to };
                self.topics.insert(id, topic.clone());
                (id, Some(topic))
            }
        };
        let number = self.posts.iter().filter(|p| p.topic_id == topic_id).count() as u64 + 1;
        let poll = poll_of(&raw);
        let post = Post { id: self.id(), topic_id, post_number: number, user: user.into(), raw, deleted: false, poll };
        self.posts.push(post.clone());
        Ok((post, topic))
    }

    fn api(&mut self, method: &Method, path: &str, user: &str, body: &Value) -> Result<Value, (StatusCode, Value)> {
        let staff = self.users.get(user).copied().unwrap_or(false);
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let number = |s: &str| s.trim_end_matches(".json").parse::<u64>().map_err(|_| not_found());
        match (method.as_str(), parts.as_slice()) {
            ("GET", ["u", name]) => {
                let name = name.trim_end_matches(".json");
                let staff = *self.users.get(name).ok_or_else(not_found)?;
                Ok(json!({"user": {"id": 1, "username": name, "moderator": staff, "admin": false}}))
            }
            ("POST", ["posts.json"]) => {
                let (post, _) = self.create(user, body)?;
                Ok(self.post_json(&post))
            }
            ("GET", ["posts.json"]) => {
                // The latest posts the key's user can see, newest first, with their `raw`.
                let latest: Vec<Value> = self
                    .posts
                    .iter()
                    .rev()
                    .filter(|p| !p.deleted)
                    .filter(|p| {
                        self.topics.get(&p.topic_id).is_none_or(|t| {
                            t.private_to.as_deref().is_none_or(|to| staff || to.split(',').any(|u| u.trim() == user))
                        })
                    })
                    .take(20)
                    .map(|p| self.post_json(p))
                    .collect();
                Ok(json!({"latest_posts": latest}))
            }
            ("GET", ["posts", id]) => {
                let id = number(id)?;
                let p = self.posts.iter().find(|p| p.id == id && (!p.deleted || staff)).ok_or_else(not_found)?;
                let mut v = self.post_json(p);
                if let Some(poll) = &p.poll {
                    let voters: std::collections::BTreeSet<&String> =
                        poll.options.iter().flat_map(|(_, v)| v).collect();
                    v["polls"] = json!([{
                        "name": "poll", "type": "regular", "status": if poll.closed { "closed" } else { "open" },
                        "results": "always", "public": true, "voters": voters.len(),
                        "options": poll.options.iter().enumerate().map(|(i, (html, who))| json!({"id": format!("{i:032x}"), "html": html, "votes": who.len()})).collect::<Vec<_>>(),
                    }]);
                }
                Ok(v)
            }
            ("GET", ["t", id]) => {
                let t = self.topics.get(&number(id)?).ok_or_else(not_found)?;
                if t.deleted && !staff {
                    return Err(not_found());
                }
                Ok(self.topic_json(t))
            }
            ("DELETE", ["t", id]) | ("PUT", ["t", id, "recover"]) => {
                let recover = parts.len() == 3;
                let t = self.topics.get_mut(&number(id)?).ok_or_else(not_found)?;
                if !staff && t.user != user {
                    return Err(invalid_access());
                }
                if recover && !staff {
                    return Err(invalid_access());
                }
                if t.deleted != recover {
                    return Err(not_found());
                }
                t.deleted = !recover;
                let id = t.id;
                for p in self.posts.iter_mut().filter(|p| p.topic_id == id && p.post_number == 1) {
                    p.deleted = !recover;
                }
                Ok(json!({"success": "OK"}))
            }
            ("PUT", ["t", id, "status.json"]) => {
                if !staff {
                    return Err(invalid_access());
                }
                let t = self.topics.get_mut(&number(id)?).ok_or_else(not_found)?;
                if body.get("status").and_then(Value::as_str) == Some("closed") {
                    t.closed = body.get("enabled").is_some_and(|e| e == "true" || e == true);
                }
                Ok(json!({"success": "OK"}))
            }
            ("DELETE", ["posts", id]) | ("PUT", ["posts", id, "recover"]) => {
                let recover = parts.len() == 3;
                let id = number(id)?;
                let p = self.posts.iter_mut().find(|p| p.id == id).ok_or_else(not_found)?;
                if !staff && (recover || p.user != user) {
                    return Err(invalid_access());
                }
                if p.deleted != recover {
                    return Err(not_found());
                }
                p.deleted = !recover;
                Ok(json!({"success": "OK"}))
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

/// The fake forum, serving until dropped.
#[derive(Debug)]
pub struct FakeDiscourse {
    shared: Arc<Shared>,
    base: String,
    task: JoinHandle<()>,
    http: reqwest::Client,
}

impl Drop for FakeDiscourse {
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
    let header = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let (key, user) = (header("api-key"), header("api-username"));
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let answer = {
        let mut s = shared.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.requests.push((method.to_string(), uri.path().to_string(), body.clone()));
        let asked = format!("{method} {}", uri.path());
        let failing = s.failures.keys().find(|k| asked.starts_with(k.as_str())).cloned();
        let wait = failing.and_then(|k| s.failures.get_mut(&k)).and_then(VecDeque::pop_front);
        if let Some(wait) = wait {
            let mut r = (StatusCode::TOO_MANY_REQUESTS, axum::Json(json!({"errors": ["You’ve performed this action too many times. Please wait a few seconds before trying again."], "error_type": "rate_limit", "extras": {"wait_seconds": wait}}))).into_response();
            r.headers_mut().insert("retry-after", wait.to_string().parse().unwrap());
            r
        } else if key != API_KEY || !s.users.contains_key(&user) {
            let (status, v) = invalid_access();
            (status, axum::Json(v)).into_response()
        } else {
            let answer = s.api(&method, uri.path(), &user, &body);
            let lost = s.lost.iter().position(|k| asked.starts_with(k.as_str()));
            match (answer, lost) {
                (_, Some(at)) => {
                    s.lost.remove(at);
                    (StatusCode::BAD_GATEWAY, "<html>502 Bad Gateway</html>").into_response()
                }
                (Ok(v), None) => (StatusCode::OK, axum::Json(v)).into_response(),
                (Err((status, v)), None) => (status, axum::Json(v)).into_response(),
            }
        }
    };
    shared.changed.notify_waiters();
    answer
}

/// `X-Discourse-Event-Signature` of `body` under `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

impl FakeDiscourse {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the fake Discourse");
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Shared { state: Mutex::new(State::new()), changed: Notify::new() });
        let app = axum::Router::new().fallback(route).with_state(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(10)).build().unwrap();
        Self { shared, base, task, http }
    }

    /// The forum's address (the connection's `url`, its `X-Discourse-Instance`).
    pub fn url(&self) -> String {
        self.base.clone()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn with<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        f(&self.lock())
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

    /// The next `METHOD /path...` (a path starting so) is answered 429 with `Retry-After: wait`.
    pub fn fail_next(&self, method: &str, path: &str, wait: u64) {
        self.lock().failures.entry(format!("{method} {path}")).or_default().push_back(wait);
    }

    /// The next `METHOD /path...` is performed, and its answer lost on the way back (502).
    pub fn lose_next(&self, method: &str, path: &str) {
        self.lock().lost.push(format!("{method} {path}"));
    }

    /// Deliveries go to `url`, signed with `secret`.
    pub fn set_hook(&self, url: &str, secret: &str) {
        self.lock().hook = Some((url.into(), secret.into()));
    }

    pub fn topic(&self, id: u64) -> Topic {
        self.with(|s| s.topics.get(&id).cloned().unwrap_or_else(|| panic!("no topic {id}")))
    }

    /// The texts of the private messages to `user`.
    pub fn messages_to(&self, user: &str) -> Vec<String> {
        self.with(|s| s.messages_to(user))
    }

    /// The post holding the poll whose text contains `part`, once posted: its id.
    pub async fn poll_post(&self, part: &str) -> u64 {
        self.until(|s| s.posts.iter().find(|p| p.poll.is_some() && p.raw.contains(part)).map(|p| p.id)).await
    }

    /// `user` votes `option` in the poll of post `post` (one vote a person: a new one
    /// replaces theirs).
    pub fn vote_poll(&self, user: &str, post: u64, option: &str) {
        let mut s = self.lock();
        let poll = s
            .posts
            .iter_mut()
            .find(|p| p.id == post)
            .and_then(|p| p.poll.as_mut())
            .unwrap_or_else(|| panic!("no poll in post {post}"));
        assert!(!poll.closed, "the poll is closed");
        for (_, who) in &mut poll.options {
            who.retain(|u| u != user);
        }
        let (_, who) =
            poll.options.iter_mut().find(|(o, _)| o == option).unwrap_or_else(|| panic!("no option {option}"));
        who.push(user.into());
    }

    /// The poll of post `post` closes (its time came, or its author closed it).
    pub fn close_poll(&self, post: u64) {
        let mut s = self.lock();
        if let Some(poll) = s.posts.iter_mut().find(|p| p.id == post).and_then(|p| p.poll.as_mut()) {
            poll.closed = true;
        }
    }

    /// `user` opens a topic in `category`: `topic_created` and `post_created` delivered, each
    /// answered with its status. The topic's id.
    pub async fn create_topic(&self, user: &str, title: &str, raw: &str, category: u64) -> (u64, u16, u16) {
        let (post, topic) = {
            let mut s = self.lock();
            let (post, topic) = s
                .create(user, &json!({"title": title, "raw": raw, "category": category}))
                .unwrap_or_else(|e| panic!("{e:?}"));
            (s.post_json(&post), s.topic_json(&topic.unwrap()))
        };
        self.shared.changed.notify_waiters();
        let id = topic["id"].as_u64().unwrap();
        let a = self.deliver("topic", "topic_created", &json!({"topic": topic})).await;
        let b = self.deliver("post", "post_created", &json!({"post": post})).await;
        (id, a, b)
    }

    /// Delivers one event (a new id), signed; the answer's status (0: not reached).
    pub async fn deliver(&self, kind: &str, event: &str, payload: &Value) -> u16 {
        let (hook, id) = {
            let mut s = self.lock();
            s.event_id += 1;
            (s.hook.clone(), s.event_id)
        };
        let Some((url, secret)) = hook else { return 0 };
        let body = serde_json::to_vec(payload).unwrap();
        let sent = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("x-discourse-instance", &self.base)
            .header("x-discourse-event-id", id.to_string())
            .header("x-discourse-event-type", kind)
            .header("x-discourse-event", event)
            .header("x-discourse-event-signature", signature(&secret, &body))
            .body(body)
            .send()
            .await;
        sent.map(|r| r.status().as_u16()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keys_staff_titles_and_repeats_as_discourse_answers() {
        let fake = FakeDiscourse::start().await;
        let client = reqwest::Client::new();
        let call = |method: reqwest::Method, path: &str, user: &str, key: &str, body: Value| {
            client
                .request(method, format!("{}{path}", fake.url()))
                .header("api-key", key)
                .header("api-username", user)
                .json(&body)
                .send()
        };
        let topic =
            json!({"title": "A topic long enough", "raw": "A first post long enough to pass", "category": PROPOSALS});
        assert_eq!(
            call(reqwest::Method::POST, "/posts.json", ERIN, "wrong", topic.clone()).await.unwrap().status(),
            403
        );
        let made: Value = call(reqwest::Method::POST, "/posts.json", ERIN, API_KEY, topic.clone())
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let again = call(reqwest::Method::POST, "/posts.json", FRANK, API_KEY, topic.clone()).await.unwrap();
        assert_eq!(again.status(), 422);
        let t = made["topic_id"].as_u64().unwrap();
        assert_eq!(
            call(reqwest::Method::DELETE, &format!("/t/{t}.json"), FRANK, API_KEY, Value::Null).await.unwrap().status(),
            403
        );
        assert_eq!(
            call(reqwest::Method::DELETE, &format!("/t/{t}.json"), MODERATOR, API_KEY, Value::Null)
                .await
                .unwrap()
                .status(),
            200
        );
        assert_eq!(
            call(reqwest::Method::GET, &format!("/t/{t}.json"), ERIN, API_KEY, Value::Null).await.unwrap().status(),
            404
        );
        assert_eq!(
            call(reqwest::Method::PUT, &format!("/t/{t}/recover"), MODERATOR, API_KEY, Value::Null)
                .await
                .unwrap()
                .status(),
            200
        );
        assert!(!fake.topic(t).deleted);
    }
}
