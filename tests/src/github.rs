//! A stateful fake of GitHub's REST API (version 2022-11-28) on 127.0.0.1, and the webhook
//! deliveries GitHub would send, for the GitHub adapter's end-to-end tests.
//!
//! As GitHub answers (docs.github.com/rest):
//! - A request without `User-Agent` is 403 ("Request forbidden by administrative rules").
//!   No `Authorization` or an unknown token is 401 `{"message":"Bad credentials"}`. A
//!   repository the token was not given is 404 `{"message":"Not Found"}` (GitHub hides
//!   private repositories); a write with a read-only token is 403 `Resource not accessible by
//!   personal access token`.
//! - Every answer carries `x-ratelimit-limit`, `-remaining`, `-used`, `-reset` (epoch
//!   seconds) and `-resource: core`; over [`FakeGitHub::set_rate_limit`] requests in the hour
//!   a token gets 403 with `x-ratelimit-remaining: 0` and "API rate limit exceeded".
//!   [`FakeGitHub::fail_next`] injects a secondary limit (403 with `retry-after`), a 5xx,
//!   or an answer lost after GitHub acted.
//! - Issues and pull requests share numbers (a pull request is an issue); comments have ids
//!   of their own; only a comment's author edits it (403). Reactions are `+1 -1 laugh
//!   confused heart hooray rocket eyes` (422 otherwise), one per user and content (a repeat
//!   is 200, a new one 201), listed 30 a page by default, at most 100 (`per_page`), with a
//!   `Link` header to the next page. A title is required (422 `Validation Failed`). A label
//!   not on the issue is 404 `Label does not exist`. Review requests only of collaborators
//!   (422). A merge of a pull request that is not mergeable or merged is 405, of a head that
//!   moved (`sha`) 409, of an issue 404.
//! - Webhooks: users' doings ([`FakeGitHub::open_issue`], [`FakeGitHub::comment`], ...) are
//!   delivered to the hook a test set ([`FakeGitHub::set_hook`]) as GitHub sends them:
//!   `X-GitHub-Event`, `X-GitHub-Delivery` (a GUID), `X-GitHub-Hook-ID`,
//!   `X-Hub-Signature-256` (HMAC-SHA256 of the body under the hook's secret), `User-Agent:
//!   GitHub-Hookshot/...`, JSON in the documented shapes. Each attempt is listed with its
//!   answer's status at `GET /repos/{repo}/hooks/{id}/deliveries` (newest first), a failed
//!   one again by `POST .../deliveries/{id}/attempts` (202; the same GUID,
//!   `redelivery: true`). A reaction sends no webhook, as on GitHub.
//!
//! - A GitHub App ([`APP_ID`], [`APP_PRIVATE_KEY_PEM`]): a JWT (RS256 under the App's key,
//!   `iss` its id, `exp` in the future and at most ten minutes after `iat`) reaches `/app`,
//!   the repository's installation and `POST /app/installations/{id}/access_tokens` (an
//!   installation token for an hour, [`FakeGitHub::expire_installation_tokens`] ends them),
//!   and the App's hook deliveries; the installation token acts as `SLUG[bot]`.
//!
//! Left out: organisations and teams, branches and
//! commits beyond a pull request's head `sha`, and GraphQL.

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

/// The repository the tests govern.
pub const REPO: &str = "tidepool/garden";
/// Its owner, an admin with a token.
pub const OWNER: &str = "alice";
pub const OWNER_TOKEN: &str = "github_pat_alice_0001";
/// Collaborators.
pub const BOB: &str = "bob";
pub const CAROL: &str = "carol";
/// Someone who is no collaborator.
pub const STRANGER: &str = "mallory";
/// A token that may only read [`REPO`].
pub const READ_TOKEN: &str = "github_pat_reader_0002";
/// The webhook's id.
pub const HOOK_ID: u64 = 4_200_001;

/// A GitHub App Polity may act as: its id, its slug (its bot is `SLUG[bot]`), its
/// installation on [`REPO`], and its private key (a key made for these tests only).
pub const APP_ID: u64 = 901_234;
pub const APP_SLUG: &str = "polity-tidepool";
pub const INSTALLATION_ID: u64 = 55_001;
pub const APP_PRIVATE_KEY_PEM: &str = "-----BEGIN RSA PRIVATE KEY-----
MIIEogIBAAKCAQEAvu7S8yd0rZQH5NNZfiXzk82P6Lud03Fx3Y6ec3JJQpWj/aoo
jJoLnv/leBNwyOt1cZZAgFG2P5Iqt1r1yRaud6HgIOsIzJF3bxt3fUUYXm+Dj+X/
yQVu7y+sh7X1niOzd516oj9//ssbyjY5rjCEu+qlhdXV4Kb11/PCWHzdNXNqQgzO
VsVtKd8PVxhEBnu/Z7PUzASuGs69sXbkgataZvbJzIHsqe0cTpwmk+IvH9fnmzJP
5TbFw2Sk0IuO8IIPoLCbfcp+B9ynbWygr6aFfwonshfRpj2yLqlzGAmYrGSIRart
T2P9lqngNjHe3gKHBdGEMg8esNJB0wja9BAtTQIDAQABAoIBAAnAoibIX6XUF1kh
UINohdoJWG3vU17u/v1toPtNnZ9YjGFTFTIlVi2fbYWmHI8us7eDELVdNx1lJmhq
LX7BeVTkAFI+Hxtv3LVgpkhQRK/iK0qo2VlXvTRbb4kZCrwyn6Ke+Robezq0/izk
eyrCEK2WjTDaXMvWS11l9onViukFbxPiSLOm8D6ee0tj+shKSjiX0OHj+aRtaJVT
dC1/PFDisaG3V945qZMKa7dv+8wT4mbd7pqDGv40PKMBSqoWOFw5brMAO7c3n69L
uURbHZB1/EvagcZpryil0RdzYd66EROLtbUZd6mxX/A6xGBl1BfH0kwdx5frDmj3
HdmvcxMCgYEA4J0Xu88DInQfb82HGHtTo5f8rWrF3IR03v69x2yg1cQ5O1oEZKEO
5oyKxsnkoZqsikwYbyQYybsIu47mUL+g4SGAGXe7e14fZN/CyUxU896Zy+MTYTcF
IYUjzBhxzkLHseP3aNSTVng9h1S8Xu5769TDGxvnzdGR9MhLzgDmQEsCgYEA2Zzm
WCppF3eiL9r98UmJHcU8THRWN7BZQd5F08jg7hXfbvwSHacXqHR7/7WEoL+8P3br
RMm0X0YEveozqiUI6hgd9/QEBQmc6yYL/gByCeC2Wg/iF5OgTESnSHRy3fGNQGfV
6XD5gjUYXhx7YVVClRqAskchQiKwzww6St8auccCgYAsuPq1yWUtYgO0Zi7lAAFK
TIPiH6Vf3/vJPt2YrJdlmNlwaN8BDlSCMS+cnyxnxP1f2ADxeDV7TUNS3QQcxdsJ
mHsCFyX8TWRg2HDXVdyAZi0nPIJqU+MwpmrXQ3K9h+xtDh///nuLtwtBO+z51fBU
p5tldWv1PioanBsD3If7+wKBgDqxQr9M0QNvVOMrYYqOltjctaK5Tfe/LJPDa3nv
mBse8yBwBELTKmJY6IjTYG4qyI8ld9cZv/hiXi0K2dxuGLVqw8p4mgzxxsz1eg6L
+DYJ0aUA264YNwfbDHNSVRjfaYWRe/R2cBVaVLQtYmmiIU8t0sBCxwmbaayuU5qW
ChNJAoGAFlNf6981QO0TnI+1WCEHWPLgy+GRD2+jwpRKWxH61h04ANFF8EXpuxzB
3e4xd0ao81t6hRUzmWl429iy9fiP44OF8sAY90QkeZX9VaktoSdoIOjIanFHrZvX
ZhoQHEXodMoPnjCSGsIyasz7P5KaSBsrzK2Zd9tski1eU8+7o3A=
-----END RSA PRIVATE KEY-----\n";

/// GitHub's reaction contents.
pub const REACTIONS: [&str; 8] = ["+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes"];

/// One request as received.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: String,
    pub token: Option<String>,
    pub body: Value,
}

/// A failure to answer with instead of the usual answer.
#[derive(Clone, Debug)]
pub enum Failure {
    /// 403 with `retry-after` of these seconds (a secondary rate limit).
    Secondary(u64),
    /// This status, with a JSON message.
    Status(u16),
    /// GitHub does what was asked and the answer is lost: a 502 instead.
    Lost,
}

#[derive(Clone, Debug)]
struct Token {
    token: String,
    login: String,
    write: bool,
    /// An installation token's end.
    expires: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Clone, Debug, Default)]
pub struct Pull {
    pub head_sha: String,
    pub mergeable: bool,
    pub merged: bool,
    pub requested_reviewers: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct Issue {
    pub number: u64,
    pub title: String,
    pub body: String,
    pub state: String,
    pub state_reason: Option<String>,
    pub labels: Vec<String>,
    pub user: String,
    pub pull: Option<Pull>,
}

#[derive(Clone, Debug)]
pub struct Reaction {
    pub id: u64,
    pub user: String,
    pub content: String,
}

#[derive(Clone, Debug)]
pub struct Comment {
    pub id: u64,
    pub number: u64,
    pub body: String,
    pub user: String,
    pub reactions: Vec<Reaction>,
}

/// One attempt to deliver an event.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub id: u64,
    pub guid: String,
    pub event: String,
    pub action: Option<String>,
    pub body: Vec<u8>,
    pub status_code: u16,
    pub redelivery: bool,
}

#[derive(Clone, Debug)]
struct Hook {
    url: String,
    secret: String,
}

/// Everything the fake knows.
#[derive(Debug)]
pub struct State {
    base: String,
    tokens: Vec<Token>,
    users: BTreeMap<String, u64>,
    pub collaborators: Vec<String>,
    pub issues: BTreeMap<u64, Issue>,
    pub comments: Vec<Comment>,
    pub deliveries: Vec<Delivery>,
    hook: Option<Hook>,
    /// The next delivery is not made (GitHub could not reach the hook).
    drop_next: bool,
    next_id: u64,
    pub requests: Vec<Recorded>,
    failures: HashMap<String, VecDeque<Failure>>,
    limit: u64,
    used: HashMap<String, u64>,
}

fn message(status: StatusCode, text: &str) -> (StatusCode, Value) {
    (status, json!({"message": text, "documentation_url": "https://docs.github.com/rest", "status": status.as_str()}))
}

fn not_found() -> (StatusCode, Value) {
    message(StatusCode::NOT_FOUND, "Not Found")
}

type Answer = Result<(StatusCode, Value, Option<String>), (StatusCode, Value)>;

impl State {
    fn new(base: String) -> Self {
        let mut s = Self {
            base,
            tokens: vec![
                Token { token: OWNER_TOKEN.into(), login: OWNER.into(), write: true, expires: None },
                Token { token: READ_TOKEN.into(), login: BOB.into(), write: false, expires: None },
            ],
            users: BTreeMap::new(),
            collaborators: vec![OWNER.into(), BOB.into(), CAROL.into()],
            issues: BTreeMap::new(),
            comments: Vec::new(),
            deliveries: Vec::new(),
            hook: None,
            drop_next: false,
            next_id: 1_000_000,
            requests: Vec::new(),
            failures: HashMap::new(),
            limit: 5000,
            used: HashMap::new(),
        };
        for (i, login) in [OWNER, BOB, CAROL, STRANGER].iter().enumerate() {
            s.users.insert((*login).to_string(), 583_231 + i as u64);
        }
        s
    }

    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn user_json(&self, login: &str) -> Value {
        let id = self.users.get(login).copied().unwrap_or(1);
        let kind = if login.ends_with("[bot]") { "Bot" } else { "User" };
        json!({"login": login, "id": id, "type": kind, "html_url": format!("https://github.com/{login}")})
    }

    /// Answers a request authenticated as the App (its JWT): `/app`, the repository's
    /// installation, an installation token, the App's hook deliveries.
    fn app_api(&mut self, method: &Method, path: &str, query: &HashMap<String, String>) -> Answer {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        match (method.as_str(), parts.as_slice()) {
            ("GET", ["app"]) => {
                Ok((StatusCode::OK, json!({"id": APP_ID, "slug": APP_SLUG, "name": "Polity (Tidepool)"}), None))
            }
            ("GET", ["repos", owner, name, "installation"]) if format!("{owner}/{name}") == REPO => Ok((
                StatusCode::OK,
                json!({"id": INSTALLATION_ID, "app_id": APP_ID, "target_type": "Organization"}),
                None,
            )),
            ("POST", ["app", "installations", id, "access_tokens"]) if *id == INSTALLATION_ID.to_string() => {
                let n = self.next_id();
                let token = format!("ghs_{n:036}");
                let expires = chrono::Utc::now() + chrono::TimeDelta::hours(1);
                self.tokens.push(Token {
                    token: token.clone(),
                    login: format!("{APP_SLUG}[bot]"),
                    write: true,
                    expires: Some(expires),
                });
                Ok((
                    StatusCode::CREATED,
                    json!({"token": token, "expires_at": expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)}),
                    None,
                ))
            }
            ("GET", ["app", "hook", "deliveries"]) => self.deliveries_page(query, "/app/hook/deliveries"),
            ("POST", ["app", "hook", "deliveries", delivery, "attempts"]) => {
                let delivery: u64 = delivery.parse().map_err(|_| not_found())?;
                if !self.deliveries.iter().any(|d| d.id == delivery) {
                    return Err(not_found());
                }
                Ok((StatusCode::ACCEPTED, json!({}), Some(format!("redeliver {delivery}"))))
            }
            (_, ["app", ..]) | (_, ["repos", _, _, "installation"]) => Err(not_found()),
            _ => Err(message(StatusCode::UNAUTHORIZED, "A JSON web token could not be decoded")),
        }
    }

    fn deliveries_page(&self, query: &HashMap<String, String>, path: &str) -> Answer {
        let all: Vec<Value> = self
            .deliveries
            .iter()
            .rev()
            .map(|d| {
                let status = if (200..300).contains(&d.status_code) {
                    "OK".to_string()
                } else if d.status_code == 0 {
                    "timed out".to_string()
                } else {
                    format!("Invalid HTTP Response: {}", d.status_code)
                };
                json!({"id": d.id, "guid": d.guid, "delivered_at": "2026-12-01T12:00:00Z", "redelivery": d.redelivery,
                    "duration": 0.1, "status": status, "status_code": d.status_code, "event": d.event,
                    "action": d.action, "installation_id": null, "repository_id": 77_001})
            })
            .collect();
        self.paged(all, query, path)
    }

    fn repo_json(&self) -> Value {
        let (owner, name) = REPO.split_once('/').unwrap();
        json!({"id": 77_001, "name": name, "full_name": REPO, "private": false, "owner": self.user_json(owner),
            "html_url": format!("https://github.com/{REPO}"), "default_branch": "main"})
    }

    fn issue_json(&self, issue: &Issue) -> Value {
        let kind = if issue.pull.is_some() { "pull" } else { "issues" };
        let mut v = json!({
            "id": 900_000 + issue.number, "number": issue.number, "title": issue.title, "body": issue.body,
            "state": issue.state, "state_reason": issue.state_reason, "user": self.user_json(&issue.user),
            "labels": issue.labels.iter().map(|l| json!({"name": l})).collect::<Vec<_>>(),
            "html_url": format!("https://github.com/{REPO}/{kind}/{}", issue.number),
        });
        if issue.pull.is_some() {
            v["pull_request"] = json!({"url": format!("{}/repos/{REPO}/pulls/{}", self.base, issue.number)});
        }
        v
    }

    fn pull_json(&self, issue: &Issue) -> Value {
        let pull = issue.pull.clone().unwrap_or_default();
        let mut v = self.issue_json(issue);
        v["merged"] = json!(pull.merged);
        v["mergeable"] = json!(pull.mergeable);
        v["head"] = json!({"sha": pull.head_sha, "ref": "feature"});
        v["base"] = json!({"ref": "main"});
        v["requested_reviewers"] =
            json!(pull.requested_reviewers.iter().map(|r| self.user_json(r)).collect::<Vec<_>>());
        v
    }

    fn comment_json(&self, c: &Comment) -> Value {
        json!({"id": c.id, "body": c.body, "user": self.user_json(&c.user),
            "html_url": format!("https://github.com/{REPO}/issues/{}#issuecomment-{}", c.number, c.id),
            "issue_url": format!("{}/repos/{REPO}/issues/{}", self.base, c.number)})
    }

    fn rate_headers(&self, token: &str) -> Vec<(&'static str, String)> {
        let used = self.used.get(token).copied().unwrap_or(0);
        vec![
            ("x-ratelimit-limit", self.limit.to_string()),
            ("x-ratelimit-remaining", self.limit.saturating_sub(used).to_string()),
            ("x-ratelimit-used", used.to_string()),
            ("x-ratelimit-reset", (chrono::Utc::now().timestamp() + 3600).to_string()),
            ("x-ratelimit-resource", "core".to_string()),
        ]
    }

    /// Answers one API request; its status, body and `Link` header.
    fn api(
        &mut self,
        method: &Method,
        path: &str,
        query: &HashMap<String, String>,
        token: &Token,
        body: &Value,
    ) -> Answer {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let write = *method != Method::GET;
        if write && !token.write && parts.first() == Some(&"repos") {
            return Err(message(StatusCode::FORBIDDEN, "Resource not accessible by personal access token"));
        }
        match (method.as_str(), parts.as_slice()) {
            ("GET", ["user"]) => Ok((StatusCode::OK, self.user_json(&token.login), None)),
            (_, ["repos", owner, name, rest @ ..]) => {
                if format!("{owner}/{name}") != REPO {
                    return Err(not_found());
                }
                self.repo_api(method.as_str(), rest, query, token, body)
            }
            _ => Err(not_found()),
        }
    }

    fn issue_mut(&mut self, number: &str) -> Result<&mut Issue, (StatusCode, Value)> {
        let n: u64 = number.parse().map_err(|_| not_found())?;
        self.issues.get_mut(&n).ok_or_else(not_found)
    }

    fn repo_api(
        &mut self,
        method: &str,
        rest: &[&str],
        query: &HashMap<String, String>,
        token: &Token,
        body: &Value,
    ) -> Answer {
        let ok = |v: Value| Ok((StatusCode::OK, v, None));
        match (method, rest) {
            ("GET", []) => {
                let mut repo = self.repo_json();
                let admin = token.login == OWNER;
                repo["permissions"] = json!({"admin": admin, "maintain": admin, "push": token.write, "triage": token.write, "pull": true});
                ok(repo)
            }
            ("GET", ["collaborators"]) => {
                let all: Vec<Value> = self.collaborators.iter().map(|c| self.user_json(c)).collect();
                self.paged(all, query, &format!("/repos/{REPO}/collaborators"))
            }
            ("POST", ["issues"]) => {
                let Some(title) = body.get("title").and_then(Value::as_str).filter(|t| !t.is_empty()) else {
                    return Err((
                        StatusCode::UNPROCESSABLE_ENTITY,
                        json!({"message": "Validation Failed",
                        "errors": [{"resource": "Issue", "code": "missing_field", "field": "title"}]}),
                    ));
                };
                let number = self.issues.keys().max().copied().unwrap_or(0) + 1;
                let labels = body
                    .get("labels")
                    .and_then(Value::as_array)
                    .map(|l| l.iter().filter_map(Value::as_str).map(str::to_string).collect())
                    .unwrap_or_default();
                let issue = Issue {
                    number,
                    title: title.into(),
                    body: body.get("body").and_then(Value::as_str).unwrap_or_default().into(),
                    state: "open".into(),
                    state_reason: None,
                    labels,
                    user: token.login.clone(),
                    pull: None,
                };
                let v = self.issue_json(&issue);
                self.issues.insert(number, issue);
                Ok((StatusCode::CREATED, v, None))
            }
            ("GET", ["issues"]) => {
                let mut all: Vec<&Issue> = self.issues.values().collect();
                if query.get("direction").map(String::as_str) != Some("asc") {
                    all.reverse();
                }
                let all: Vec<Value> = all.into_iter().map(|i| self.issue_json(i)).collect();
                self.paged(all, query, &format!("/repos/{REPO}/issues"))
            }
            ("GET", ["issues", n]) => {
                let issue = self.issue_mut(n)?.clone();
                ok(self.issue_json(&issue))
            }
            ("PATCH", ["issues", n]) => {
                let issue = self.issue_mut(n)?;
                if let Some(state) = body.get("state").and_then(Value::as_str) {
                    if !["open", "closed"].contains(&state) {
                        return Err((StatusCode::UNPROCESSABLE_ENTITY, json!({"message": "Validation Failed"})));
                    }
                    issue.state = state.into();
                    issue.state_reason = if state == "closed" {
                        Some(body.get("state_reason").and_then(Value::as_str).unwrap_or("completed").into())
                    } else {
                        Some("reopened".into())
                    };
                }
                if let Some(title) = body.get("title").and_then(Value::as_str) {
                    issue.title = title.into();
                }
                let issue = issue.clone();
                ok(self.issue_json(&issue))
            }
            ("GET", ["issues", n, "comments"]) => {
                let n: u64 = n.parse().map_err(|_| not_found())?;
                if !self.issues.contains_key(&n) {
                    return Err(not_found());
                }
                let all: Vec<Value> =
                    self.comments.iter().filter(|c| c.number == n).map(|c| self.comment_json(c)).collect();
                self.paged(all, query, &format!("/repos/{REPO}/issues/{n}/comments"))
            }
            ("POST", ["issues", n, "comments"]) => {
                let n: u64 = n.parse().map_err(|_| not_found())?;
                if !self.issues.contains_key(&n) {
                    return Err(not_found());
                }
                let Some(text) = body.get("body").and_then(Value::as_str).filter(|b| !b.is_empty()) else {
                    return Err((StatusCode::UNPROCESSABLE_ENTITY, json!({"message": "Validation Failed"})));
                };
                if text.chars().count() > 65_536 {
                    return Err((
                        StatusCode::UNPROCESSABLE_ENTITY,
                        json!({"message": "Validation Failed",
                        "errors": [{"resource": "IssueComment", "code": "custom", "field": "body", "message": "body is too long (maximum is 65536 characters)"}]}),
                    ));
                }
                let id = self.next_id();
                let comment =
                    Comment { id, number: n, body: text.into(), user: token.login.clone(), reactions: Vec::new() };
                let v = self.comment_json(&comment);
                self.comments.push(comment);
                Ok((StatusCode::CREATED, v, None))
            }
            ("PATCH", ["issues", "comments", id]) => {
                let id: u64 = id.parse().map_err(|_| not_found())?;
                let c = self.comments.iter_mut().find(|c| c.id == id).ok_or_else(not_found)?;
                if c.user != token.login {
                    return Err(message(StatusCode::FORBIDDEN, "Resource not accessible by personal access token"));
                }
                if let Some(text) = body.get("body").and_then(Value::as_str) {
                    c.body = text.into();
                }
                let c = c.clone();
                ok(self.comment_json(&c))
            }
            ("GET", ["issues", "comments", id, "reactions"]) => {
                let id: u64 = id.parse().map_err(|_| not_found())?;
                let c = self.comments.iter().find(|c| c.id == id).ok_or_else(not_found)?;
                let all: Vec<Value> = c
                    .reactions
                    .iter()
                    .filter(|r| query.get("content").is_none_or(|want| *want == r.content))
                    .map(|r| json!({"id": r.id, "user": self.user_json(&r.user), "content": r.content, "created_at": "2026-12-01T12:00:00Z"}))
                    .collect();
                self.paged(all, query, &format!("/repos/{REPO}/issues/comments/{id}/reactions"))
            }
            ("POST", ["issues", "comments", id, "reactions"]) => {
                let id: u64 = id.parse().map_err(|_| not_found())?;
                let content = body.get("content").and_then(Value::as_str).unwrap_or_default().to_string();
                let login = token.login.clone();
                let (status, reaction) = self.react(id, &login, &content)?;
                Ok((status, json!({"id": reaction.id, "user": self.user_json(&login), "content": content}), None))
            }
            ("POST", ["issues", n, "labels"]) => {
                let labels: Vec<String> = match body.get("labels") {
                    Some(Value::Array(l)) => l.iter().filter_map(Value::as_str).map(str::to_string).collect(),
                    _ => return Err((StatusCode::UNPROCESSABLE_ENTITY, json!({"message": "Invalid request."}))),
                };
                let issue = self.issue_mut(n)?;
                for l in labels {
                    if !issue.labels.contains(&l) {
                        issue.labels.push(l);
                    }
                }
                let labels: Vec<Value> = issue.labels.iter().map(|l| json!({"name": l})).collect();
                ok(json!(labels))
            }
            ("DELETE", ["issues", n, "labels", label]) => {
                let label = percent_decode(label);
                let issue = self.issue_mut(n)?;
                let Some(at) = issue.labels.iter().position(|l| *l == label) else {
                    return Err(message(StatusCode::NOT_FOUND, "Label does not exist"));
                };
                issue.labels.remove(at);
                let labels: Vec<Value> = issue.labels.iter().map(|l| json!({"name": l})).collect();
                ok(json!(labels))
            }
            ("GET", ["pulls", n]) => {
                let issue = self.issue_mut(n)?.clone();
                if issue.pull.is_none() {
                    return Err(not_found());
                }
                ok(self.pull_json(&issue))
            }
            ("POST", ["pulls", n, "requested_reviewers"]) => {
                let wanted: Vec<String> = body
                    .get("reviewers")
                    .and_then(Value::as_array)
                    .map(|l| l.iter().filter_map(Value::as_str).map(str::to_string).collect())
                    .unwrap_or_default();
                if let Some(stranger) = wanted.iter().find(|w| !self.collaborators.contains(w)) {
                    return Err((
                        StatusCode::UNPROCESSABLE_ENTITY,
                        json!({"message": format!("Reviews may only be requested from collaborators. One or more of the users or teams you specified is not a collaborator of the {REPO} repository."), "stranger": stranger}),
                    ));
                }
                let issue = self.issue_mut(n)?;
                let Some(pull) = issue.pull.as_mut() else { return Err(not_found()) };
                for w in wanted {
                    if !pull.requested_reviewers.contains(&w) {
                        pull.requested_reviewers.push(w);
                    }
                }
                let issue = issue.clone();
                Ok((StatusCode::CREATED, self.pull_json(&issue), None))
            }
            ("PUT", ["pulls", n, "merge"]) => {
                let issue = self.issue_mut(n)?;
                let Some(pull) = issue.pull.as_mut() else { return Err(not_found()) };
                if pull.merged || !pull.mergeable {
                    return Err(message(StatusCode::METHOD_NOT_ALLOWED, "Pull Request is not mergeable"));
                }
                if let Some(sha) = body.get("sha").and_then(Value::as_str)
                    && sha != pull.head_sha
                {
                    return Err(message(
                        StatusCode::CONFLICT,
                        "Head branch was modified. Review and try the merge again.",
                    ));
                }
                pull.merged = true;
                let sha = pull.head_sha.clone();
                issue.state = "closed".into();
                ok(json!({"sha": sha, "merged": true, "message": "Pull Request successfully merged"}))
            }
            ("GET", ["hooks", id, "deliveries"]) => {
                if *id != HOOK_ID.to_string() {
                    return Err(not_found());
                }
                self.deliveries_page(query, &format!("/repos/{REPO}/hooks/{HOOK_ID}/deliveries"))
            }
            ("POST", ["hooks", id, "deliveries", delivery, "attempts"]) => {
                if *id != HOOK_ID.to_string() {
                    return Err(not_found());
                }
                let delivery: u64 = delivery.parse().map_err(|_| not_found())?;
                if !self.deliveries.iter().any(|d| d.id == delivery) {
                    return Err(not_found());
                }
                Ok((StatusCode::ACCEPTED, json!({}), Some(format!("redeliver {delivery}"))))
            }
            _ => Err(not_found()),
        }
    }

    fn react(
        &mut self,
        comment: u64,
        login: &str,
        content: &str,
    ) -> Result<(StatusCode, Reaction), (StatusCode, Value)> {
        if !REACTIONS.contains(&content) {
            return Err((
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"message": "Validation Failed",
                "errors": [{"resource": "Reaction", "code": "invalid", "field": "content"}]}),
            ));
        }
        let id = self.next_id();
        let c = self.comments.iter_mut().find(|c| c.id == comment).ok_or_else(not_found)?;
        if let Some(r) = c.reactions.iter().find(|r| r.user == login && r.content == content) {
            return Ok((StatusCode::OK, r.clone()));
        }
        let r = Reaction { id, user: login.into(), content: content.into() };
        c.reactions.push(r.clone());
        Ok((StatusCode::CREATED, r))
    }

    /// A page of `all` by `page` and `per_page` (30 by default, at most 100), with the `Link`
    /// header to the next one.
    fn paged(&self, all: Vec<Value>, query: &HashMap<String, String>, path: &str) -> Answer {
        let per_page = query.get("per_page").and_then(|p| p.parse::<usize>().ok()).unwrap_or(30).clamp(1, 100);
        let page = query.get("page").and_then(|p| p.parse::<usize>().ok()).unwrap_or(1).max(1);
        let start = (page - 1) * per_page;
        let shown: Vec<Value> = all.iter().skip(start).take(per_page).cloned().collect();
        let link = (start + per_page < all.len())
            .then(|| format!("<{}{path}?per_page={per_page}&page={}>; rel=\"next\"", self.base, page + 1));
        Ok((StatusCode::OK, json!(shown), link))
    }
}

fn percent_decode(text: &str) -> String {
    form_urlencoded::parse(format!("x={}", text.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    changed: Notify,
}

/// The fake, serving until dropped.
#[derive(Debug)]
pub struct FakeGitHub {
    shared: Arc<Shared>,
    base: String,
    task: JoinHandle<()>,
    http: reqwest::Client,
}

impl Drop for FakeGitHub {
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
    let query: HashMap<String, String> =
        form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes()).into_owned().collect();
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("token ")))
        .map(str::to_string);
    let json_body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let answer = {
        let mut s = shared.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.requests.push(Recorded {
            method: method.to_string(),
            path: uri.path().to_string(),
            query: uri.query().unwrap_or_default().to_string(),
            token: token.clone(),
            body: json_body.clone(),
        });
        answer(&mut s, &method, uri.path(), &query, &headers, token.as_deref(), &json_body)
    };
    shared.changed.notify_waiters();
    answer
}

fn answer(
    s: &mut State,
    method: &Method,
    path: &str,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    token: Option<&str>,
    body: &Value,
) -> Response {
    if !headers.contains_key("user-agent") {
        return (
            StatusCode::FORBIDDEN,
            "Request forbidden by administrative rules. Please make sure your request has a User-Agent header.",
        )
            .into_response();
    }
    if let Some(jwt) = token.filter(|t| t.starts_with("eyJ")) {
        let result = match check_jwt(jwt, chrono::Utc::now().timestamp()) {
            Ok(()) => s.app_api(method, path, query),
            Err(why) => Err(message(StatusCode::UNAUTHORIZED, why)),
        };
        return match result {
            Ok((status, v, link)) => {
                let mut r = (status, axum::Json(v)).into_response();
                if let Some(id) = link.as_deref().and_then(|l| l.strip_prefix("redeliver ")) {
                    r.extensions_mut().insert(Redeliver(id.parse().unwrap()));
                } else if let Some(link) = link {
                    r.headers_mut().insert("link", link.parse().unwrap());
                }
                r
            }
            Err((status, v)) => (status, axum::Json(v)).into_response(),
        };
    }
    let now = chrono::Utc::now();
    let Some(known) = token
        .and_then(|t| s.tokens.iter().find(|k| k.token == t))
        .filter(|k| k.expires.is_none_or(|at| at > now))
        .cloned()
    else {
        let (status, v) = message(StatusCode::UNAUTHORIZED, "Bad credentials");
        return (status, axum::Json(v)).into_response();
    };
    let used = s.used.entry(known.token.clone()).or_insert(0);
    if *used >= s.limit {
        let mut response = (
            StatusCode::FORBIDDEN,
            axum::Json(json!({"message": format!("API rate limit exceeded for user ID {}.", 1)})),
        )
            .into_response();
        for (k, v) in s.rate_headers(&known.token) {
            response.headers_mut().insert(k, v.parse().unwrap());
        }
        return response;
    }
    *used += 1;
    let key = format!("{method} {path}");
    let failure = s.failures.get_mut(&key).and_then(VecDeque::pop_front);
    let result = match failure {
        Some(Failure::Secondary(secs)) => {
            let mut response = (StatusCode::FORBIDDEN, axum::Json(json!({"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."}))).into_response();
            response.headers_mut().insert("retry-after", secs.to_string().parse().unwrap());
            return response;
        }
        Some(Failure::Status(code)) => {
            let status = StatusCode::from_u16(code).unwrap();
            return (status, axum::Json(json!({"message": "Server Error"}))).into_response();
        }
        Some(Failure::Lost) => {
            let _done = s.api(method, path, query, &known, body);
            return (StatusCode::BAD_GATEWAY, "").into_response();
        }
        None => s.api(method, path, query, &known, body),
    };
    let rate = s.rate_headers(&known.token);
    let mut response = match result {
        Ok((status, v, link)) => {
            let mut r = (status, axum::Json(v)).into_response();
            if let Some(link) = link {
                if let Some(id) = link.strip_prefix("redeliver ") {
                    // Not a header: a redelivery the caller asked for, made after the answer.
                    let id: u64 = id.parse().unwrap();
                    r.extensions_mut().insert(Redeliver(id));
                } else {
                    r.headers_mut().insert("link", link.parse().unwrap());
                }
            }
            r
        }
        Err((status, v)) => (status, axum::Json(v)).into_response(),
    };
    for (k, v) in rate {
        response.headers_mut().insert(k, v.parse().unwrap());
    }
    response
}

/// Checks an App's JWT as GitHub does: RS256 under the App's key, `iss` the App's id, issued
/// no later than a minute from now, expiring in the future and at most ten minutes after it
/// was issued.
fn check_jwt(jwt: &str, now: i64) -> Result<(), &'static str> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    let mut parts = jwt.split('.');
    let (Some(header), Some(claims), Some(sig), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err("A JSON web token could not be decoded");
    };
    let decode = |p: &str| URL_SAFE_NO_PAD.decode(p).map_err(|_| "A JSON web token could not be decoded");
    let header: Value =
        serde_json::from_slice(&decode(header)?).map_err(|_| "A JSON web token could not be decoded")?;
    if header["alg"] != "RS256" {
        return Err("A JSON web token could not be decoded");
    }
    let der: String = APP_PRIVATE_KEY_PEM.lines().filter(|l| !l.starts_with("-----")).collect();
    let key = ring::signature::RsaKeyPair::from_der(&STANDARD.decode(der).unwrap()).unwrap();
    let public =
        ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, key.public().as_ref());
    let signed = &jwt[..jwt.len() - sig.len() - 1];
    public.verify(signed.as_bytes(), &decode(sig)?).map_err(|_| "A JSON web token could not be decoded")?;
    let claims: Value =
        serde_json::from_slice(&decode(claims)?).map_err(|_| "A JSON web token could not be decoded")?;
    let iss = claims["iss"].as_str().map(str::to_string).or_else(|| claims["iss"].as_u64().map(|n| n.to_string()));
    if iss.as_deref() != Some(&APP_ID.to_string()) {
        return Err("Integration not found");
    }
    let (Some(iat), Some(exp)) = (claims["iat"].as_i64(), claims["exp"].as_i64()) else {
        return Err("A JSON web token could not be decoded");
    };
    if iat > now + 60 {
        return Err("'Issued at' claim ('iat') must be an Integer representing a time in the past.");
    }
    if exp <= now || exp - iat > 600 {
        return Err("'Expiration time' claim ('exp') is too far in the future");
    }
    Ok(())
}

/// A redelivery asked for, made once the answer is sent.
#[derive(Clone, Copy, Debug)]
struct Redeliver(u64);

/// GitHub's `X-Hub-Signature-256` of `body` under `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

impl FakeGitHub {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the fake GitHub");
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Shared { state: Mutex::new(State::new(base.clone())), changed: Notify::new() });
        let app = axum::Router::new().fallback(route).with_state(Arc::clone(&shared));
        let serving = Arc::clone(&shared);
        let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(10)).build().unwrap();
        let redeliverer = http.clone();
        let app = app.layer(axum::middleware::map_response(move |response: Response| {
            let shared = Arc::clone(&serving);
            let http = redeliverer.clone();
            async move {
                if let Some(Redeliver(id)) = response.extensions().get::<Redeliver>().copied() {
                    tokio::spawn(async move { redeliver(&shared, &http, id).await });
                }
                response
            }
        }));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { shared, base, task, http }
    }

    /// Where the API is (the adapter's `api_url`).
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

    /// Waits (without sleeping) until `f` says something.
    pub async fn until<T>(&self, f: impl Fn(&State) -> Option<T>) -> T {
        loop {
            let changed = self.shared.changed.notified();
            if let Some(t) = f(&self.lock()) {
                return t;
            }
            changed.await;
        }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.with(|s| s.requests.clone())
    }

    /// The requests of `method` (`POST`) to paths ending in `suffix`.
    pub fn requests_to(&self, method: &str, suffix: &str) -> Vec<Recorded> {
        self.with(|s| s.requests.iter().filter(|r| r.method == method && r.path.ends_with(suffix)).cloned().collect())
    }

    /// The next request `METHOD /path` fails so.
    pub fn fail_next(&self, method: &str, path: &str, failure: Failure) {
        self.change(|s| s.failures.entry(format!("{method} {path}")).or_default().push_back(failure));
    }

    /// Each token may make `limit` requests in the hour.
    pub fn set_rate_limit(&self, limit: u64) {
        self.change(|s| s.limit = limit);
    }

    /// Deliveries go to `url`, signed with `secret`.
    pub fn set_hook(&self, url: &str, secret: &str) {
        self.change(|s| s.hook = Some(Hook { url: url.into(), secret: secret.into() }));
    }

    /// Every installation token expires now (GitHub answers 401 with them from now on).
    pub fn expire_installation_tokens(&self) {
        self.change(|s| {
            for t in s.tokens.iter_mut().filter(|t| t.expires.is_some()) {
                t.expires = Some(chrono::Utc::now() - chrono::TimeDelta::seconds(1));
            }
        });
    }

    /// The next delivery does not reach the hook (GitHub records it as timed out).
    pub fn drop_next_delivery(&self) {
        self.change(|s| s.drop_next = true);
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.with(|s| s.deliveries.clone())
    }

    pub fn issue(&self, number: u64) -> Issue {
        self.with(|s| s.issues.get(&number).cloned().unwrap_or_else(|| panic!("no issue #{number}")))
    }

    pub fn comments_on(&self, number: u64) -> Vec<Comment> {
        self.with(|s| s.comments.iter().filter(|c| c.number == number).cloned().collect())
    }

    /// `login` reacts on a comment: no webhook, as on GitHub.
    pub fn react(&self, login: &str, comment: u64, content: &str) {
        self.change(|s| s.react(comment, login, content)).unwrap_or_else(|e| panic!("react: {e:?}"));
    }

    /// `login` takes a reaction back: no webhook.
    pub fn unreact(&self, login: &str, comment: u64, content: &str) {
        self.change(|s| {
            let c = s.comments.iter_mut().find(|c| c.id == comment).unwrap_or_else(|| panic!("no comment {comment}"));
            c.reactions.retain(|r| !(r.user == login && r.content == content));
        });
    }

    fn payload_base(s: &State, sender: &str) -> serde_json::Map<String, Value> {
        let mut m = serde_json::Map::new();
        m.insert("repository".into(), s.repo_json());
        m.insert("sender".into(), s.user_json(sender));
        m
    }

    /// `user` opens an issue (`issues` `opened` delivered); its number.
    pub async fn open_issue(&self, user: &str, title: &str, body: &str) -> u64 {
        let (number, payload) = self.change(|s| {
            let number = s.issues.keys().max().copied().unwrap_or(0) + 1;
            let issue = Issue {
                number,
                title: title.into(),
                body: body.into(),
                state: "open".into(),
                state_reason: None,
                labels: Vec::new(),
                user: user.into(),
                pull: None,
            };
            let mut p = Self::payload_base(s, user);
            p.insert("action".into(), json!("opened"));
            p.insert("issue".into(), s.issue_json(&issue));
            s.issues.insert(number, issue);
            (number, Value::Object(p))
        });
        self.deliver("issues", Some("opened"), &payload).await;
        number
    }

    /// `user` opens a pull request with head `sha` (`pull_request` `opened`); its number.
    pub async fn open_pull(&self, user: &str, title: &str, sha: &str) -> u64 {
        let (number, payload) = self.change(|s| {
            let number = s.issues.keys().max().copied().unwrap_or(0) + 1;
            let pull = Pull { head_sha: sha.into(), mergeable: true, merged: false, requested_reviewers: Vec::new() };
            let issue = Issue {
                number,
                title: title.into(),
                body: String::new(),
                state: "open".into(),
                state_reason: None,
                labels: Vec::new(),
                user: user.into(),
                pull: Some(pull),
            };
            let mut p = Self::payload_base(s, user);
            p.insert("action".into(), json!("opened"));
            p.insert("number".into(), json!(number));
            p.insert("pull_request".into(), s.pull_json(&issue));
            s.issues.insert(number, issue);
            (number, Value::Object(p))
        });
        self.deliver("pull_request", Some("opened"), &payload).await;
        number
    }

    /// `user` comments (`issue_comment` `created`); the comment's id.
    pub async fn comment(&self, user: &str, number: u64, body: &str) -> u64 {
        let (id, payload) = self.change(|s| {
            let id = s.next_id();
            let comment = Comment { id, number, body: body.into(), user: user.into(), reactions: Vec::new() };
            let issue = s.issues.get(&number).cloned().unwrap_or_else(|| panic!("no issue #{number}"));
            let mut p = Self::payload_base(s, user);
            p.insert("action".into(), json!("created"));
            p.insert("issue".into(), s.issue_json(&issue));
            p.insert("comment".into(), s.comment_json(&comment));
            s.comments.push(comment);
            (id, Value::Object(p))
        });
        self.deliver("issue_comment", Some("created"), &payload).await;
        id
    }

    /// A `ping`, as when the hook is made.
    pub async fn ping(&self) -> u16 {
        let payload = self.with(|s| json!({"zen": "Design for failure.", "hook_id": HOOK_ID, "hook": {"id": HOOK_ID, "type": "Repository", "events": ["*"]}, "repository": s.repo_json(), "sender": s.user_json(OWNER)}));
        self.deliver("ping", None, &payload).await
    }

    /// Delivers `payload` as event `event` to the hook; the status it was answered (0: not
    /// reached).
    async fn deliver(&self, event: &str, action: Option<&str>, payload: &Value) -> u16 {
        let body = serde_json::to_vec(payload).unwrap();
        let guid = self.change(|s| {
            let n = s.next_id();
            format!("{:08x}-{:04x}-11e3-81ab-{:012x}", n, n % 0xffff, n * 7)
        });
        send(&self.shared, &self.http, guid, event, action, body, false).await
    }
}

/// One delivery attempt, recorded in the hook's deliveries.
async fn send(
    shared: &Arc<Shared>,
    http: &reqwest::Client,
    guid: String,
    event: &str,
    action: Option<&str>,
    body: Vec<u8>,
    redelivery: bool,
) -> u16 {
    let (hook, dropped, id) = {
        let mut s = shared.state.lock().unwrap_or_else(PoisonError::into_inner);
        let dropped = std::mem::take(&mut s.drop_next);
        (s.hook.clone(), dropped, s.next_id())
    };
    let status = match (&hook, dropped) {
        (Some(hook), false) => {
            let sent = http
                .post(&hook.url)
                .header("content-type", "application/json")
                .header("user-agent", "GitHub-Hookshot/a1b2c3d")
                .header("x-github-event", event)
                .header("x-github-delivery", &guid)
                .header("x-github-hook-id", HOOK_ID.to_string())
                .header("x-github-hook-installation-target-id", "77001")
                .header("x-github-hook-installation-target-type", "repository")
                .header("x-hub-signature-256", signature(&hook.secret, &body))
                .body(body.clone())
                .send()
                .await;
            sent.map(|r| r.status().as_u16()).unwrap_or(0)
        }
        _ => 0,
    };
    {
        let mut s = shared.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.deliveries.push(Delivery {
            id,
            guid,
            event: event.into(),
            action: action.map(str::to_string),
            body,
            status_code: status,
            redelivery,
        });
    }
    shared.changed.notify_waiters();
    status
}

async fn redeliver(shared: &Arc<Shared>, http: &reqwest::Client, id: u64) {
    let found = {
        let s = shared.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.deliveries.iter().find(|d| d.id == id).cloned()
    };
    if let Some(d) = found {
        send(shared, http, d.guid, &d.event, d.action.as_deref(), d.body, true).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_githubs() {
        // GitHub's "Validating webhook deliveries" test vector.
        assert_eq!(
            signature("It's a Secret to Everybody", b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }

    #[tokio::test]
    async fn tokens_repositories_pages_and_merges_as_github_answers() {
        let fake = FakeGitHub::start().await;
        let client = reqwest::Client::new();
        let get = |path: &str, token: Option<&str>| {
            let mut r = client.get(format!("{}{path}", fake.url())).header("user-agent", "t");
            if let Some(t) = token {
                r = r.bearer_auth(t);
            }
            r.send()
        };
        assert_eq!(get("/user", None).await.unwrap().status(), 401);
        assert_eq!(get("/user", Some("nope")).await.unwrap().status(), 401);
        assert_eq!(
            client.get(format!("{}/user", fake.url())).bearer_auth(OWNER_TOKEN).send().await.unwrap().status(),
            403
        );
        assert_eq!(get("/repos/other/repo", Some(OWNER_TOKEN)).await.unwrap().status(), 404);
        let me = get("/user", Some(OWNER_TOKEN)).await.unwrap();
        assert_eq!(me.headers()["x-ratelimit-resource"], "core");
        assert_eq!(me.json::<Value>().await.unwrap()["login"], OWNER);
        let n = fake.open_pull(BOB, "Add a bench", "abc123").await;
        let c = fake.change(|s| {
            let id = s.next_id();
            s.comments.push(Comment { id, number: n, body: "vote".into(), user: OWNER.into(), reactions: Vec::new() });
            id
        });
        for who in [OWNER, BOB, CAROL] {
            fake.react(who, c, "+1");
        }
        let page =
            get(&format!("/repos/{REPO}/issues/comments/{c}/reactions?per_page=2"), Some(OWNER_TOKEN)).await.unwrap();
        let next = page.headers()["link"].to_str().unwrap().to_string();
        assert!(next.contains("page=2") && next.contains("rel=\"next\""), "{next}");
        assert_eq!(page.json::<Value>().await.unwrap().as_array().unwrap().len(), 2);
        let merge = |sha: &str| {
            client
                .put(format!("{}/repos/{REPO}/pulls/{n}/merge", fake.url()))
                .header("user-agent", "t")
                .bearer_auth(OWNER_TOKEN)
                .json(&json!({"sha": sha}))
                .send()
        };
        assert_eq!(merge("other").await.unwrap().status(), 409);
        assert_eq!(merge("abc123").await.unwrap().status(), 200);
        assert_eq!(merge("abc123").await.unwrap().status(), 405);
        let read_only = client
            .post(format!("{}/repos/{REPO}/issues", fake.url()))
            .header("user-agent", "t")
            .bearer_auth(READ_TOKEN)
            .json(&json!({"title": "x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(read_only.status(), 403);
    }
}
