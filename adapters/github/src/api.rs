//! GitHub's REST API over reqwest, with what Polity adds around every call: the headers
//! GitHub requires (`User-Agent`, `Accept: application/vnd.github+json`,
//! `X-GitHub-Api-Version`), a timeout, a bounded answer, authentication (a token, or a GitHub
//! App's installation token got with its JWT and kept until five minutes before it expires),
//! and Polity's own budget: a `403`/`429` with `x-ratelimit-remaining: 0` holds every call
//! until `x-ratelimit-reset`, one with `retry-after` (a secondary limit) for that long, and
//! nothing is sent meanwhile, so no call ever sleeps on a limit.

use crate::jwt::AppKey;
use chrono::{DateTime, Utc};
use polity_governance::platform::PlatformError;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// The most of an answer that is read.
pub const MAX_ANSWER: usize = 4 * 1024 * 1024;

/// The longest wait a limit is taken at.
pub const MAX_WAIT: Duration = Duration::from_secs(3600);

/// The REST API version Polity speaks.
pub const API_VERSION: &str = "2022-11-28";

/// Why a call failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiError {
    /// 401: the token (or the App's key) is refused.
    BadCredentials,
    /// 404: no such thing, or not visible to the token.
    NotFound(String),
    /// Another refusal (403 without a limit, 405, 409, 422), with GitHub's message.
    Refused { status: u16, message: String },
    /// A limit: nothing is sent until it has passed.
    RateLimited(Option<Duration>),
    /// No answer, a timeout, a 5xx, an answer cut short.
    Transient(String),
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BadCredentials => f.write_str("GitHub refused the token (401 Bad credentials)"),
            Self::NotFound(what) => write!(f, "GitHub has no {what} (or the token cannot see it)"),
            Self::Refused { status, message } => write!(f, "GitHub refused it ({status}): {message}"),
            Self::RateLimited(Some(wait)) => write!(f, "GitHub's rate limit: {} s to wait", wait.as_secs()),
            Self::RateLimited(None) => f.write_str("GitHub's rate limit"),
            Self::Transient(why) => write!(f, "GitHub did not answer: {why}"),
        }
    }
}

impl From<ApiError> for PlatformError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::RateLimited(retry_after) => PlatformError::RateLimited { retry_after },
            ApiError::Transient(why) => PlatformError::Transient(why),
            other => PlatformError::Permanent(other.to_string()),
        }
    }
}

/// An answer: its status, its JSON (`Null` when it had none) and the next page's address.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub next: Option<String>,
}

enum Auth {
    Token(String),
    App { app_id: u64, key: Box<AppKey>, installation: Mutex<Option<(String, DateTime<Utc>)>> },
}

struct Inner {
    http: reqwest::Client,
    base: String,
    repo: String,
    auth: Auth,
    /// Nothing is sent before this (a limit GitHub announced).
    held: polity_port::Hold,
}

/// One connection's API. Cloning shares it.
#[derive(Clone)]
pub struct Api(Arc<Inner>);

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api").field("base", &self.0.base).field("repo", &self.0.repo).finish_non_exhaustive()
    }
}

/// The `rel="next"` address of a `Link` header.
fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (url, rel) = part.split_once(';')?;
        rel.contains("rel=\"next\"").then(|| url.trim().trim_start_matches('<').trim_end_matches('>').to_string())
    })
}

fn header_secs(headers: &reqwest::header::HeaderMap, name: &str) -> Option<i64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

impl Api {
    /// The API at `base` for `repo`, as a token.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn with_token(base: &str, repo: &str, token: &str, timeout: Duration) -> Result<Self, String> {
        Self::new(base, repo, Auth::Token(token.trim().to_string()), timeout)
    }

    /// The API at `base` for `repo`, as App `app_id` installed on it.
    ///
    /// # Errors
    /// When the key is no key, or the HTTP client cannot be built.
    pub fn with_app(base: &str, repo: &str, app_id: u64, pem: &str, timeout: Duration) -> Result<Self, String> {
        let key = AppKey::from_pem(pem)?;
        Self::new(base, repo, Auth::App { app_id, key: Box::new(key), installation: Mutex::new(None) }, timeout)
    }

    fn new(base: &str, repo: &str, auth: Auth, timeout: Duration) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("Polity/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self(Arc::new(Inner {
            http,
            base: base.trim_end_matches('/').to_string(),
            repo: repo.to_string(),
            auth,
            held: polity_port::Hold::default(),
        })))
    }

    /// `OWNER/NAME`.
    pub fn repo(&self) -> &str {
        &self.0.repo
    }

    /// Whether it acts as a GitHub App.
    pub fn is_app(&self) -> bool {
        matches!(self.0.auth, Auth::App { .. })
    }

    /// `{base}/repos/{repo}{rest}`.
    pub fn repo_path(&self, rest: &str) -> String {
        format!("/repos/{}{rest}", self.0.repo)
    }

    /// Calls `method path` (`path` from the API's root, or a whole address GitHub gave, such
    /// as a next page's) with `body`.
    ///
    /// # Errors
    /// [`ApiError`].
    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Answer, ApiError> {
        let auth = match &self.0.auth {
            Auth::Token(token) => format!("Bearer {token}"),
            Auth::App { .. } => format!("Bearer {}", self.installation_token().await?),
        };
        let answer = self.send(method, path, body, &auth).await;
        if matches!(answer, Err(ApiError::BadCredentials))
            && let Auth::App { installation, .. } = &self.0.auth
        {
            // An installation token revoked or expired early: the next call gets a new one.
            installation.lock().unwrap_or_else(PoisonError::into_inner).take();
            return Err(ApiError::Transient(
                "GitHub refused the App's installation token; a new one is asked for".into(),
            ));
        }
        answer
    }

    /// The App's installation token for the repository, asked for when there is none or it
    /// expires within five minutes.
    async fn installation_token(&self) -> Result<String, ApiError> {
        let Auth::App { app_id, key, installation } = &self.0.auth else {
            return Err(ApiError::Transient("not an App".into()));
        };
        let now = Utc::now();
        if let Some((token, expires)) = installation.lock().unwrap_or_else(PoisonError::into_inner).as_ref()
            && *expires - chrono::TimeDelta::minutes(5) > now
        {
            return Ok(token.clone());
        }
        let jwt = key.jwt(*app_id, now).map_err(ApiError::Transient)?;
        let auth = format!("Bearer {jwt}");
        let found = self.send(Method::GET, &self.repo_path("/installation"), None, &auth).await?;
        let Some(id) = found.body.get("id").and_then(Value::as_u64) else {
            return Err(ApiError::Transient("GitHub's installation has no id".into()));
        };
        let path = format!("/app/installations/{id}/access_tokens");
        let made = self.send(Method::POST, &path, None, &auth).await?;
        let token = made.body.get("token").and_then(Value::as_str).unwrap_or_default().to_string();
        let expires = made
            .body
            .get("expires_at")
            .and_then(Value::as_str)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map_or(now + chrono::TimeDelta::minutes(55), |t| t.with_timezone(&Utc));
        if token.is_empty() {
            return Err(ApiError::Transient("GitHub gave no installation token".into()));
        }
        *installation.lock().unwrap_or_else(PoisonError::into_inner) = Some((token.clone(), expires));
        Ok(token)
    }

    /// Calls as the App itself (its JWT): `/app/...` routes.
    ///
    /// # Errors
    /// [`ApiError`]; `Refused` when this connection is no App.
    pub async fn call_as_app(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Answer, ApiError> {
        let Auth::App { app_id, key, .. } = &self.0.auth else {
            return Err(ApiError::Refused { status: 0, message: "only a GitHub App connection can".into() });
        };
        let jwt = key.jwt(*app_id, Utc::now()).map_err(ApiError::Transient)?;
        self.send(method, path, body, &format!("Bearer {jwt}")).await
    }

    async fn send(&self, method: Method, path: &str, body: Option<&Value>, auth: &str) -> Result<Answer, ApiError> {
        if let Some(wait) = self.0.held.remaining() {
            return Err(ApiError::RateLimited(Some(wait)));
        }
        let url = if path.starts_with("http://") || path.starts_with("https://") {
            // A next page GitHub named: only ever on the API's own server.
            if !path.starts_with(&self.0.base) {
                return Err(ApiError::Refused { status: 0, message: "a page link off GitHub's API".into() });
            }
            path.to_string()
        } else {
            format!("{}{path}", self.0.base)
        };
        let mut request = self
            .0
            .http
            .request(method, &url)
            .header("accept", "application/vnd.github+json")
            .header("x-github-api-version", API_VERSION)
            .header("authorization", auth);
        if let Some(body) = body {
            request = request.json(body);
        }
        let mut response = request.send().await.map_err(|e| ApiError::Transient(without_url(&e)))?;
        let status = response.status();
        let headers = response.headers().clone();
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| ApiError::Transient(without_url(&e)))? {
            if bytes.len() + chunk.len() > MAX_ANSWER {
                return Err(ApiError::Refused { status: status.as_u16(), message: "an answer over 4 MiB".into() });
            }
            bytes.extend_from_slice(&chunk);
        }
        let body: Value =
            if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
        let message = || body.get("message").and_then(Value::as_str).unwrap_or("no message").to_string();
        if status.is_success() {
            let next = headers.get("link").and_then(|l| l.to_str().ok()).and_then(next_link);
            return Ok(Answer { status: status.as_u16(), body, next });
        }
        let limited = status == StatusCode::TOO_MANY_REQUESTS
            || (status == StatusCode::FORBIDDEN
                && (headers.contains_key("retry-after")
                    || header_secs(&headers, "x-ratelimit-remaining") == Some(0)
                    || message().contains("rate limit")));
        if limited {
            let wait = match header_secs(&headers, "retry-after") {
                Some(secs) => Some(Duration::from_secs(secs.max(0).unsigned_abs())),
                None => header_secs(&headers, "x-ratelimit-reset")
                    .map(|reset| Duration::from_secs((reset - Utc::now().timestamp()).max(1).unsigned_abs())),
            }
            .map(|w| w.min(MAX_WAIT));
            let hold = wait.unwrap_or(Duration::from_secs(60));
            self.0.held.hold(hold);
            return Err(ApiError::RateLimited(Some(hold)));
        }
        Err(match status.as_u16() {
            401 => ApiError::BadCredentials,
            404 => ApiError::NotFound(path.rsplit_once("/repos/").map_or(path, |(_, p)| p).to_string()),
            408 | 500..=599 => ApiError::Transient(format!("{status}")),
            code => {
                let mut message = message();
                if let Some(errors) = body.get("errors").and_then(Value::as_array) {
                    let details: Vec<String> = errors
                        .iter()
                        .map(|e| e.get("message").and_then(Value::as_str).map_or_else(|| e.to_string(), str::to_string))
                        .collect();
                    message = format!("{message} ({})", details.join("; "));
                }
                ApiError::Refused { status: code, message }
            }
        })
    }
}

/// A reqwest error without its URL (which may name a private repository's paths).
fn without_url(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "the request timed out".into()
    } else if e.is_connect() {
        "cannot connect".into()
    } else {
        e.without_url_ref()
    }
}

trait WithoutUrl {
    fn without_url_ref(&self) -> String;
}

impl WithoutUrl for reqwest::Error {
    fn without_url_ref(&self) -> String {
        let text = self.to_string();
        match self.url() {
            Some(url) => text.replace(url.as_str(), "GitHub"),
            None => text,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_page_is_read_from_the_link_header() {
        let link = r#"<https://api.github.com/repositories/1/issues/comments/9/reactions?page=2>; rel="next", <https://api.github.com/repositories/1/issues/comments/9/reactions?page=5>; rel="last""#;
        assert_eq!(
            next_link(link).as_deref(),
            Some("https://api.github.com/repositories/1/issues/comments/9/reactions?page=2")
        );
        assert_eq!(next_link(r#"<https://x/?page=1>; rel="prev""#), None);
    }
}
