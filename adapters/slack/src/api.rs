//! Slack's Web API through slack-morphism's client, with what Polity adds around every call:
//! its own rate budget ([`Budget`]) checked before anything is sent, a timeout, and Slack's
//! answers turned into [`PlatformError`]s the dispatcher acts on.
//!
//! Requests are sent with slack-morphism's session calls (`http_post` with a JSON body for
//! methods that change something, `http_get` with query parameters for those that read:
//! Slack reads JSON bodies only on write methods), and answers come back as JSON, so one
//! path serves every method Polity uses and the checked passthrough policies call.

use crate::budget::Budget;
use crate::config::SlackConfig;
use hyper_rustls::HttpsConnector;
use polity_governance::platform::PlatformError;
use serde_json::Value;
use slack_morphism::errors::SlackClientError;
use slack_morphism::hyper_tokio::SlackClientHyperConnector;
use slack_morphism::{SlackApiToken, SlackApiTokenValue, SlackClient};
use std::sync::Arc;
use std::time::Duration;

/// The longest a 429 holds a method.
const MAX_WAIT: Duration = Duration::from_secs(3600);

/// slack-morphism's client over hyper with rustls (https, and http to this machine).
pub type Connector = SlackClientHyperConnector<HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>>;
pub type Client = SlackClient<Connector>;

/// A failed call: what the dispatcher does with it, and Slack's own error code if it gave one
/// (`message_not_found`, `already_reacted`), for callers to whom that is success.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub error: PlatformError,
    pub code: Option<String>,
}

impl Failure {
    fn new(error: PlatformError) -> Self {
        Self { error, code: None }
    }
}

/// slack-morphism's hyper connector for `api_url` (https, and http to this machine, which the
/// configuration allows only for a local test server or proxy).
///
/// # Errors
/// When the machine's root certificates cannot be read.
pub fn connector(api_url: &str) -> Result<Connector, String> {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(|e| format!("cannot read this machine's root certificates: {e}"))?
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .build();
    Ok(SlackClientHyperConnector::with_connector(https).with_slack_api_url(api_url.trim_end_matches('/')))
}

/// slack-morphism's client for `api_url`.
///
/// # Errors
/// As [`connector`].
pub fn client(api_url: &str) -> Result<Arc<Client>, String> {
    Ok(Arc::new(SlackClient::new(connector(api_url)?)))
}

/// One token's Web API: the workspace's bot token, its budget, the client.
#[derive(Clone)]
pub struct Api {
    client: Arc<Client>,
    token: SlackApiToken,
    /// Where the Web API is (scheme, host, port): a `response_url` there is the test
    /// server's or proxy's own.
    origin: String,
    budget: Arc<Budget>,
    timeout: Duration,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api").field("token", &"[redacted]").finish_non_exhaustive()
    }
}

impl Api {
    /// The Web API of `config`'s server as `token`, with a budget of its own.
    ///
    /// # Errors
    /// When the client cannot be built.
    pub fn new(config: &SlackConfig, token: &str) -> Result<Self, String> {
        Ok(Self::with_client(
            client(&config.api_url)?,
            token,
            Duration::from_millis(config.timeout_ms),
            &config.api_url,
        ))
    }

    /// The Web API at `api_url` as `token`, on a client already built.
    pub fn with_client(client: Arc<Client>, token: &str, timeout: Duration, api_url: &str) -> Self {
        let token = SlackApiToken::new(SlackApiTokenValue(token.trim().to_string()));
        let origin = url::Url::parse(api_url).map(|u| u.origin().ascii_serialization()).unwrap_or_default();
        Self { client, token, origin, budget: Arc::new(Budget::default()), timeout }
    }

    /// The client, for Socket Mode and `response_url`s.
    pub fn client(&self) -> Arc<Client> {
        Arc::clone(&self.client)
    }

    /// Calls a method that changes something, with `params` as its JSON body. `channel` is
    /// the conversation it acts in, for the per-channel budget.
    ///
    /// # Errors
    /// [`Failure`]: refused by the budget (`RateLimited` with the time left), Slack's
    /// `ok: false` (`Permanent`, or `RateLimited` for `ratelimited`), a 429, a timeout or a
    /// 5xx (`Transient`).
    pub async fn post(&self, method: &str, params: &Value, channel: Option<&str>) -> Result<Value, Failure> {
        self.budget
            .take(method, channel, tokio::time::Instant::now())
            .map_err(|wait| Failure::new(PlatformError::RateLimited { retry_after: Some(wait) }))?;
        let session = self.client.open_session(&self.token);
        let call = session.http_session_api.http_post::<Value, Value>(method, params, None);
        self.answer(method, channel, tokio::time::timeout(self.timeout, call).await)
    }

    /// Calls a method that reads, with `params` as its query.
    ///
    /// # Errors
    /// As [`Api::post`].
    pub async fn get(&self, method: &str, params: &[(&str, String)], channel: Option<&str>) -> Result<Value, Failure> {
        self.budget
            .take(method, channel, tokio::time::Instant::now())
            .map_err(|wait| Failure::new(PlatformError::RateLimited { retry_after: Some(wait) }))?;
        let session = self.client.open_session(&self.token);
        let query: Vec<(&str, Option<&String>)> = params.iter().map(|(k, v)| (*k, Some(v))).collect();
        let call = session.http_session_api.http_get::<Value, _, &String>(method, &query, None);
        self.answer(method, channel, tokio::time::timeout(self.timeout, call).await)
    }

    /// Posts to a `response_url` (a slash command's or a button press's): the answer of a
    /// command acknowledged before it was answered.
    ///
    /// # Errors
    /// As [`Api::post`].
    pub async fn respond(&self, response_url: &str, body: &Value) -> Result<(), Failure> {
        let url = url::Url::parse(response_url)
            .map_err(|e| Failure::new(PlatformError::Permanent(format!("a response_url that is not a URL: {e}"))))?;
        // Only Slack's own hooks (or the configured API's server) get an answer: a payload
        // cannot make Polity post anywhere else.
        let origin = url.origin().ascii_serialization();
        if origin != "https://hooks.slack.com" && origin != self.origin {
            return Err(Failure::new(PlatformError::Permanent(format!(
                "a response_url that is not Slack's ({origin})"
            ))));
        }
        // A response_url is its own credential: no token goes with it.
        let anonymous = SlackApiToken::new(SlackApiTokenValue(String::new()));
        let session = self.client.open_session(&anonymous);
        let call = session.http_session_api.http_post_uri::<Value, Value>(url, body, None);
        self.answer("response_url", None, tokio::time::timeout(self.timeout, call).await).map(|_| ())
    }

    fn answer(
        &self,
        method: &str,
        channel: Option<&str>,
        outcome: Result<Result<Value, SlackClientError>, tokio::time::error::Elapsed>,
    ) -> Result<Value, Failure> {
        let outcome = outcome.map_err(|_| {
            Failure::new(PlatformError::Transient(format!(
                "Slack did not answer {method} within {} ms",
                self.timeout.as_millis()
            )))
        })?;
        match outcome {
            Ok(answer) => Ok(answer),
            Err(error) => {
                let failure = failure(method, error);
                if let PlatformError::RateLimited { retry_after } = &failure.error {
                    let wait = retry_after.unwrap_or(Duration::from_secs(1));
                    self.budget.hold(method, channel, tokio::time::Instant::now() + wait);
                }
                Err(failure)
            }
        }
    }
}

/// Slack's answer as what the dispatcher does with it.
fn failure(method: &str, error: SlackClientError) -> Failure {
    match error {
        SlackClientError::RateLimitError(limited) => Failure {
            error: PlatformError::RateLimited {
                retry_after: Some(limited.retry_after.unwrap_or(Duration::from_secs(1)).min(MAX_WAIT)),
            },
            code: limited.code,
        },
        SlackClientError::ApiError(refused) if refused.code == "ratelimited" || refused.code == "rate_limited" => {
            Failure {
                error: PlatformError::RateLimited { retry_after: Some(Duration::from_secs(1)) },
                code: Some(refused.code),
            }
        }
        SlackClientError::ApiError(refused) => {
            let transient = matches!(
                refused.code.as_str(),
                "internal_error" | "fatal_error" | "service_unavailable" | "request_timeout"
            );
            let text = format!("Slack refused {method}: {}", refused.code);
            Failure {
                error: if transient { PlatformError::Transient(text) } else { PlatformError::Permanent(text) },
                code: Some(refused.code),
            }
        }
        SlackClientError::HttpError(http) => {
            let status = http.status_code;
            let text = format!("Slack answered {method} with HTTP {}", status.as_u16());
            if status.is_server_error() || status.as_u16() == 408 {
                Failure::new(PlatformError::Transient(text))
            } else if status.as_u16() == 401 || status.as_u16() == 403 {
                Failure { error: PlatformError::Permanent(text), code: Some("invalid_auth".into()) }
            } else {
                Failure::new(PlatformError::Permanent(text))
            }
        }
        SlackClientError::ProtocolError(e) => Failure::new(PlatformError::Permanent(format!(
            "Slack's answer to {method} could not be read: {}",
            e.json_error
        ))),
        other => Failure::new(PlatformError::Transient(format!("Slack could not be reached for {method}: {other}"))),
    }
}
