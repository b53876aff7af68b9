//! Discourse's REST API over reqwest: `Api-Key` and `Api-Username` on every request, JSON
//! answers bounded to 4 MiB, a timeout, and Polity's own hold after a 429 (its
//! `Retry-After`, or the answer's `extras.wait_seconds`): nothing is sent until it has
//! passed, and nothing ever sleeps on it.

use polity_governance::platform::PlatformError;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// The most of an answer that is read.
pub const MAX_ANSWER: usize = 4 * 1024 * 1024;

/// The longest hold a 429 is taken at.
pub const MAX_WAIT: Duration = Duration::from_secs(3600);

/// Why a call failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiError {
    /// 403 with `invalid_access` or a refused key.
    Refused(String),
    NotFound,
    /// 422 and other refusals, with Discourse's `errors`.
    Invalid(String),
    RateLimited(Option<Duration>),
    Transient(String),
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused(why) => write!(f, "Discourse refused it: {why}"),
            Self::NotFound => f.write_str("Discourse has no such topic or post (or the API user cannot see it)"),
            Self::Invalid(why) => write!(f, "Discourse did not accept it: {why}"),
            Self::RateLimited(_) => f.write_str("Discourse's rate limit"),
            Self::Transient(why) => write!(f, "Discourse did not answer: {why}"),
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

struct Inner {
    http: reqwest::Client,
    base: String,
    key: String,
    username: String,
    held: polity_port::Hold,
}

/// One forum's API. Cloning shares it.
#[derive(Clone)]
pub struct Api(Arc<Inner>);

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api").field("base", &self.0.base).field("username", &self.0.username).finish_non_exhaustive()
    }
}

fn messages(body: &Value) -> String {
    let listed: Vec<&str> =
        body.get("errors").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
    if listed.is_empty() {
        body.get("error_type").and_then(Value::as_str).unwrap_or("no reason given").to_string()
    } else {
        listed.join("; ")
    }
}

impl Api {
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(base: &str, key: &str, username: &str, timeout: Duration) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("Polity/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self(Arc::new(Inner {
            http,
            base: base.trim_end_matches('/').to_string(),
            key: key.trim().to_string(),
            username: username.to_string(),
            held: polity_port::Hold::default(),
        })))
    }

    /// The forum's address.
    pub fn base(&self) -> &str {
        &self.0.base
    }

    /// The user Polity acts as.
    pub fn username(&self) -> &str {
        &self.0.username
    }

    /// Calls `method path` with `body` (JSON); the answer's JSON (`Null` when it had none).
    ///
    /// # Errors
    /// [`ApiError`].
    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value, ApiError> {
        if let Some(wait) = self.0.held.remaining() {
            return Err(ApiError::RateLimited(Some(wait)));
        }
        let mut request = self
            .0
            .http
            .request(method, format!("{}{path}", self.0.base))
            .header("api-key", &self.0.key)
            .header("api-username", &self.0.username)
            .header("accept", "application/json");
        if let Some(body) = body {
            request = request.json(body);
        }
        let mut response = request.send().await.map_err(|e| {
            ApiError::Transient(if e.is_timeout() { "timed out".into() } else { "no connection".into() })
        })?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let mut bytes = Vec::new();
        while let Some(chunk) =
            response.chunk().await.map_err(|_| ApiError::Transient("the answer was cut short".into()))?
        {
            if bytes.len() + chunk.len() > MAX_ANSWER {
                return Err(ApiError::Invalid("an answer over 4 MiB".into()));
            }
            bytes.extend_from_slice(&chunk);
        }
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            let wait = retry_after
                .or_else(|| body.pointer("/extras/wait_seconds").and_then(Value::as_u64))
                .map_or(Duration::from_secs(30), Duration::from_secs)
                .min(MAX_WAIT);
            self.0.held.hold(wait);
            return Err(ApiError::RateLimited(Some(wait)));
        }
        Err(match status.as_u16() {
            401 | 403 => ApiError::Refused(messages(&body)),
            404 => ApiError::NotFound,
            408 | 500..=599 => ApiError::Transient(status.to_string()),
            _ => ApiError::Invalid(messages(&body)),
        })
    }
}
