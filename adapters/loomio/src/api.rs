//! Loomio's API over reqwest: `/api/b2` with the user's key as `Authorization: Bearer` (the
//! current API reads it there and refuses it in a query string), or an older instance's
//! `/api/b1` with its group key as `api_key`; JSON answers bounded to 4 MiB, a timeout, and
//! Polity's own hold after a 429 (its `Retry-After`, else a minute): nothing is sent until it
//! has passed, and nothing ever sleeps on it.

use crate::config::ApiVersion;
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
    /// 401 or 403: the key is wrong, or its user may not do this in the group.
    Refused(String),
    NotFound,
    /// 400, 422 and other refusals, with Loomio's `errors`.
    Invalid(String),
    RateLimited(Option<Duration>),
    Transient(String),
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused(why) => write!(f, "Loomio refused it: {why}"),
            Self::NotFound => {
                f.write_str("Loomio has no such poll, discussion or group (or the key's user cannot see it)")
            }
            Self::Invalid(why) => write!(f, "Loomio did not accept it: {why}"),
            Self::RateLimited(_) => f.write_str("Loomio's rate limit"),
            Self::Transient(why) => write!(f, "Loomio did not answer: {why}"),
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
    version: ApiVersion,
    held: polity_port::Hold,
}

/// One instance's API with one key. Cloning shares it.
#[derive(Clone)]
pub struct Api(Arc<Inner>);

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api").field("base", &self.0.base).field("version", &self.0.version).finish_non_exhaustive()
    }
}

/// Loomio's `errors` (`{"errors": {"title": ["can't be blank"]}}`) or `error`, as one line.
fn messages(body: &Value) -> String {
    match body.get("errors").or_else(|| body.get("error")).or_else(|| body.get("exception")) {
        Some(Value::Object(fields)) => fields
            .iter()
            .map(|(k, v)| {
                let said: Vec<&str> = v.as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                format!("{k} {}", said.join(", "))
            })
            .collect::<Vec<_>>()
            .join("; "),
        Some(Value::String(s)) => s.chars().take(200).collect(),
        Some(other) => other.to_string().chars().take(200).collect(),
        None => "no reason given".into(),
    }
}

impl Api {
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(base: &str, key: &str, version: ApiVersion, timeout: Duration) -> Result<Self, String> {
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
            version,
            held: polity_port::Hold::default(),
        })))
    }

    /// The instance's address.
    pub fn base(&self) -> &str {
        &self.0.base
    }

    /// Calls `method /api/VERSION/path` with `query` and `body` (JSON); the answer's JSON.
    ///
    /// # Errors
    /// [`ApiError`].
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        if let Some(wait) = self.0.held.remaining() {
            return Err(ApiError::RateLimited(Some(wait)));
        }
        let version = match self.0.version {
            ApiVersion::B2 => "b2",
            ApiVersion::B1 => "b1",
        };
        let mut request = self
            .0
            .http
            .request(method, format!("{}/api/{version}{path}", self.0.base))
            .header("accept", "application/json")
            .query(query);
        request = match self.0.version {
            ApiVersion::B2 => request.bearer_auth(&self.0.key),
            // The older API reads its group key only from the parameters.
            ApiVersion::B1 => request.query(&[("api_key", self.0.key.as_str())]),
        };
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
            // Loomio's limiter answers "Retry later" in plain text, often without Retry-After.
            let wait = retry_after.map_or(Duration::from_secs(60), Duration::from_secs).min(MAX_WAIT);
            self.0.held.hold(wait);
            return Err(ApiError::RateLimited(Some(wait)));
        }
        Err(match status.as_u16() {
            401 | 403 => ApiError::Refused(match body {
                Value::Null => "the API key is not valid, or its user may not do this in the group".into(),
                ref b => messages(b),
            }),
            404 => ApiError::NotFound,
            408 | 500..=599 => ApiError::Transient(status.to_string()),
            _ => ApiError::Invalid(messages(&body)),
        })
    }
}
