//! Reddit's OAuth API over reqwest.
//!
//! - Access tokens from `POST {auth_url}/api/v1/access_token` (HTTP Basic with the app's id
//!   and secret; a refresh token, or a script app's password), kept until a minute before
//!   they expire and fetched again then, or at once when the API answers 401: a call is
//!   tried again once with the new token. A refresh answer's new refresh token (Reddit may
//!   rotate it) is used from then on, and handed to the host to be stored in place of the
//!   old one. Reddit reports some refusals with a 200 and an `error`
//!   field: those are refusals too.
//! - Every call to `{api_url}` carries the bearer token and the User-Agent Reddit requires,
//!   `raw_json=1`, a timeout, and answers bounded to 4 MiB.
//! - Rate limit: Reddit's `X-Ratelimit-Remaining` and `X-Ratelimit-Reset` (seconds) are read
//!   on every answer; when nothing remains, and after a 429 (its `Retry-After`), Polity holds
//!   every call of the connection until the window resets, without sleeping on it.
//! - `api_type=json` answers with `json.errors` are refusals (`RATELIMIT` is a rate limit).

use crate::config::{Grant, RedditConfig};
use polity_governance::platform::PlatformError;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::time::Instant;

/// The most of an answer that is read.
pub const MAX_ANSWER: usize = 4 * 1024 * 1024;

/// The longest hold a rate limit is taken at.
pub const MAX_WAIT: Duration = Duration::from_secs(3600);

/// How long before its expiry a token is replaced.
pub const EARLY: Duration = Duration::from_secs(60);

/// Why a call failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiError {
    /// The app or the account was refused (a bad secret, a revoked refresh token), or the
    /// account may not do this (not a moderator, a missing scope).
    Refused(String),
    NotFound,
    /// Reddit did not accept it (`json.errors`, a 400).
    Invalid(String),
    RateLimited(Option<Duration>),
    Transient(String),
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused(why) => write!(f, "Reddit refused it: {why}"),
            Self::NotFound => {
                f.write_str("Reddit has no such post, comment or subreddit (or the account cannot see it)")
            }
            Self::Invalid(why) => write!(f, "Reddit did not accept it: {why}"),
            Self::RateLimited(_) => f.write_str("Reddit's rate limit"),
            Self::Transient(why) => write!(f, "Reddit did not answer: {why}"),
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

struct Token {
    access: String,
    until: Instant,
}

struct Inner {
    http: reqwest::Client,
    config: RedditConfig,
    token: tokio::sync::Mutex<Option<Token>>,
    /// The refresh token in use: Reddit may hand out a new one with an access token.
    refresh: Mutex<String>,
    held: polity_port::Hold,
    /// Where a rotated refresh token goes, to be stored in place of the old.
    rotations: Option<tokio::sync::mpsc::Sender<polity_port::Incoming>>,
}

/// One account's API. Cloning shares it (its token and its rate budget).
#[derive(Clone)]
pub struct Api(Arc<Inner>);

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("api_url", &self.0.config.api_url)
            .field("username", &self.0.config.username)
            .finish_non_exhaustive()
    }
}

async fn read_bounded(mut response: reqwest::Response) -> Result<Value, ApiError> {
    let mut bytes = Vec::new();
    while let Some(chunk) =
        response.chunk().await.map_err(|_| ApiError::Transient("the answer was cut short".into()))?
    {
        if bytes.len() + chunk.len() > MAX_ANSWER {
            return Err(ApiError::Invalid("an answer over 4 MiB".into()));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// A header's number, if it is a finite one (`nan` and `inf` parse as floats too).
fn header_f64(response: &reqwest::Response, name: &str) -> Option<f64> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|n| n.is_finite())
}

/// The first of `api_type=json`'s `json.errors`, as `CODE: message`.
fn json_error(body: &Value) -> Option<(String, String)> {
    let first = body.pointer("/json/errors")?.as_array()?.first()?.as_array()?.clone();
    let text = |i: usize| first.get(i).and_then(Value::as_str).unwrap_or_default().to_string();
    Some((text(0), text(1)))
}

impl Api {
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(config: &RedditConfig) -> Result<Self, String> {
        Self::build(config, None)
    }

    /// [`Api::new`] for a running connection: a refresh token Reddit rotates is handed to the
    /// host on `events` ([`polity_port::Incoming::SecretRotated`]), so a restart uses it.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn for_connection(
        config: &RedditConfig,
        events: tokio::sync::mpsc::Sender<polity_port::Incoming>,
    ) -> Result<Self, String> {
        Self::build(config, Some(events))
    }

    fn build(
        config: &RedditConfig,
        rotations: Option<tokio::sync::mpsc::Sender<polity_port::Incoming>>,
    ) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout())
            .user_agent(config.user_agent())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self(Arc::new(Inner {
            http,
            refresh: Mutex::new(config.credential.clone()),
            config: config.clone(),
            token: tokio::sync::Mutex::new(None),
            held: polity_port::Hold::default(),
            rotations,
        })))
    }

    pub fn config(&self) -> &RedditConfig {
        &self.0.config
    }

    fn hold(&self, wait: Duration) {
        self.0.held.hold(wait.min(MAX_WAIT));
    }

    fn held(&self) -> Option<Duration> {
        self.0.held.remaining()
    }

    /// A valid access token: the one held, or a new one.
    async fn token(&self, stale: Option<&str>) -> Result<String, ApiError> {
        let mut held = self.0.token.lock().await;
        if let Some(token) = held.as_ref()
            && token.until > Instant::now() + EARLY
            && stale != Some(token.access.as_str())
        {
            return Ok(token.access.clone());
        }
        let config = &self.0.config;
        let credential = self.0.refresh.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let form: Vec<(&str, &str)> = match config.grant {
            Grant::RefreshToken => vec![("grant_type", "refresh_token"), ("refresh_token", credential.as_str())],
            Grant::Password => {
                vec![
                    ("grant_type", "password"),
                    ("username", config.username.as_str()),
                    ("password", credential.as_str()),
                ]
            }
        };
        let response = self
            .0
            .http
            .post(format!("{}/api/v1/access_token", config.auth_url))
            .basic_auth(&config.client_id, Some(&config.client_secret))
            .form(&form)
            .send()
            .await
            .map_err(|e| {
                ApiError::Transient(if e.is_timeout() { "timed out".into() } else { "no connection".into() })
            })?;
        let status = response.status();
        let body = read_bounded(response).await?;
        match status.as_u16() {
            200 => {}
            401 => return Err(ApiError::Refused("the app's id or secret is wrong".into())),
            400 => return Err(ApiError::Refused("the refresh token was refused (revoked, or for another app)".into())),
            429 => {
                let wait = Duration::from_secs(60);
                self.hold(wait);
                return Err(ApiError::RateLimited(Some(wait)));
            }
            500..=599 => return Err(ApiError::Transient(status.to_string())),
            _ => return Err(ApiError::Refused(format!("the token request was answered {status}"))),
        }
        if let Some(error) = body.get("error") {
            // Reddit answers some refusals 200 with an error.
            let why = match error.as_str() {
                Some("invalid_grant") => "the account's refresh token or password was refused".to_string(),
                Some(other) => other.chars().take(100).collect(),
                None => error.to_string(),
            };
            return Err(ApiError::Refused(why));
        }
        let access = body
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::Invalid("Reddit's token answer has no access_token".into()))?
            .to_string();
        let lasts = body.get("expires_in").and_then(Value::as_u64).unwrap_or(3600);
        if let Some(rotated) = body.get("refresh_token").and_then(Value::as_str).filter(|t| !t.is_empty())
            && config.grant == Grant::RefreshToken
            && rotated != credential
        {
            *self.0.refresh.lock().unwrap_or_else(PoisonError::into_inner) = rotated.to_string();
            if let Some(events) = &self.0.rotations {
                // In the form the connection's secret is typed in: the app's secret, a space,
                // the refresh token.
                let app = if config.client_secret.is_empty() { "-" } else { config.client_secret.as_str() };
                let secret = format!("{app} {rotated}");
                if events.send(polity_port::Incoming::SecretRotated(secret)).await.is_err() {
                    tracing::warn!(subreddit = %config.subreddit, "a rotated refresh token could not be handed over to be stored");
                }
            }
        }
        *held = Some(Token { access: access.clone(), until: Instant::now() + Duration::from_secs(lasts) });
        Ok(access)
    }

    /// `GET {api_url}{path}` with `query`.
    ///
    /// # Errors
    /// [`ApiError`].
    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, ApiError> {
        self.call(Method::GET, path, query, &[]).await
    }

    /// `POST {api_url}{path}` with `form` (and `api_type=json`).
    ///
    /// # Errors
    /// [`ApiError`], including what `json.errors` says.
    pub async fn post(&self, path: &str, form: &[(&str, String)]) -> Result<Value, ApiError> {
        let mut form = form.to_vec();
        form.push(("api_type", "json".into()));
        let body = self.call(Method::POST, path, &[], &form).await?;
        match json_error(&body) {
            Some((code, _)) if code == "RATELIMIT" => {
                let wait = Duration::from_secs(60);
                self.hold(wait);
                Err(ApiError::RateLimited(Some(wait)))
            }
            Some((code, message)) => Err(ApiError::Invalid(format!("{code}: {message}"))),
            None => Ok(body),
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        form: &[(&str, String)],
    ) -> Result<Value, ApiError> {
        let mut stale: Option<String> = None;
        for _ in 0..2 {
            if let Some(wait) = self.held() {
                return Err(ApiError::RateLimited(Some(wait)));
            }
            let token = self.token(stale.as_deref()).await?;
            let mut request = self
                .0
                .http
                .request(method.clone(), format!("{}{path}", self.0.config.api_url))
                .bearer_auth(&token)
                .query(&[("raw_json", "1")])
                .query(query);
            if method == Method::POST {
                request = request.form(form);
            }
            let response = request.send().await.map_err(|e| {
                ApiError::Transient(if e.is_timeout() { "timed out".into() } else { "no connection".into() })
            })?;
            let status = response.status();
            let remaining = header_f64(&response, "x-ratelimit-remaining");
            let reset =
                header_f64(&response, "x-ratelimit-reset").map(|s| Duration::from_secs_f64(s.clamp(0.0, 3600.0)));
            let retry_after =
                header_f64(&response, "retry-after").map(|s| Duration::from_secs_f64(s.clamp(0.0, 3600.0)));
            if let (Some(left), Some(reset)) = (remaining, reset)
                && left < 1.0
            {
                self.hold(reset);
            }
            if status == StatusCode::UNAUTHORIZED && stale.is_none() {
                // Expired or revoked early: a new token, and once more.
                stale = Some(token);
                continue;
            }
            let body = read_bounded(response).await?;
            if status.is_success() {
                return Ok(body);
            }
            return Err(match status.as_u16() {
                429 => {
                    let wait = retry_after.or(reset).unwrap_or(Duration::from_secs(60));
                    self.hold(wait);
                    ApiError::RateLimited(Some(wait.min(MAX_WAIT)))
                }
                401 => ApiError::Refused("Reddit refused a fresh access token".into()),
                403 => ApiError::Refused("the account may not do this here (is it a moderator of the subreddit, with the scopes Polity asks for?)".into()),
                404 => ApiError::NotFound,
                408 | 500..=599 => ApiError::Transient(status.to_string()),
                _ => ApiError::Invalid(
                    json_error(&body).map_or_else(|| format!("answered {status}"), |(code, message)| format!("{code}: {message}")),
                ),
            });
        }
        Err(ApiError::Refused("Reddit refused a fresh access token".into()))
    }
}
