//! One Discord REST call through serenity's HTTP layer, with the answer mapped to what the
//! dispatcher needs: the JSON body, or a [`PlatformError`] that says whether to retry.
//!
//! serenity's typed methods turn an unsuccessful response into an `ErrorResponse` that keeps
//! neither the `retry_after` of a 429 body nor the `Retry-After` header, so requests are built
//! with serenity's [`Route`] and [`Request`], sent with the reqwest client straight to the
//! configured base URL (Discord, a proxy, a fake), and the raw response is read here.
//!
//! serenity's rate limiter is never in the way: it would sleep out a 429 (a channel rename's
//! ten minutes) inside the task performing the effect, and it ignores a proxy (it would call
//! the real host). Instead every request is first offered to Polity's own [`Budget`], which
//! refuses at once what Discord would refuse (a spent bucket, a global stop, more than 50
//! requests a second) and learns from every answer's rate-limit headers.

use crate::ratelimit::{Budget, RouteKey, retry_after};
use polity_governance::platform::PlatformError;
use serde_json::Value;
use serenity::http::{Http, HttpError, LightMethod, Request, Route};
use std::sync::Arc;

/// Discord's own base URL, which serenity's routes start with.
pub const DISCORD_URL: &str = "https://discord.com";

/// Discord's JSON error code for a user who is not a member of the guild asked about.
pub const UNKNOWN_MEMBER: i64 = 10007;
/// Discord's JSON error code for a message that does not exist (any more).
pub const UNKNOWN_MESSAGE: i64 = 10008;
/// Discord's JSON error code for a user id that names nobody.
pub const UNKNOWN_USER: i64 = 10013;
/// Discord's JSON error code for an emoji it does not know.
pub const UNKNOWN_EMOJI: i64 = 10014;
/// Discord's error code for "Maximum number of edits to messages older than 1 hour reached".
pub const OLD_MESSAGE_EDITS: i64 = 30046;
/// How long an edit of an old message waits when Discord refused it without saying how long.
pub const OLD_EDIT_WAIT: std::time::Duration = std::time::Duration::from_secs(300);

/// Discord's JSON error code for a request the bot lacks a permission for (403).
pub const MISSING_PERMISSIONS: i64 = 50013;

/// Whether a refusal (as [`Rest::send`] words it) is Discord's Missing Permissions.
#[must_use]
pub fn is_missing_permissions(error: &str) -> bool {
    error.ends_with(&format!("(HTTP 403, code {MISSING_PERMISSIONS})"))
}

/// A failed call: the error for the dispatcher and, for refusals, Discord's JSON error code.
#[derive(Debug)]
pub struct Failure {
    pub error: PlatformError,
    pub code: Option<i64>,
}

impl From<Failure> for PlatformError {
    fn from(f: Failure) -> Self {
        f.error
    }
}

fn failure(error: PlatformError) -> Failure {
    Failure { error, code: None }
}

/// serenity's client (for its token and base URL), the reqwest client it was built with (to
/// send without serenity's limiter), and the rate budget every clone shares.
#[derive(Clone)]
pub struct Rest {
    pub http: Arc<Http>,
    pub client: reqwest::Client,
    pub budget: Budget,
}

fn method_name(method: LightMethod) -> &'static str {
    match method {
        LightMethod::Delete => "DELETE",
        LightMethod::Get => "GET",
        LightMethod::Patch => "PATCH",
        LightMethod::Post => "POST",
        LightMethod::Put => "PUT",
    }
}

impl Rest {
    /// Requests through `http`'s token and base URL with `client`, under a budget of their own.
    pub fn new(http: Arc<Http>, client: reqwest::Client) -> Self {
        Self { http, client, budget: Budget::default() }
    }

    /// Sends one request; `Ok` holds the response's JSON (`Null` for an empty body).
    pub async fn send(&self, method: LightMethod, route: Route<'_>, body: Option<&Value>) -> Result<Value, Failure> {
        self.send_with(method, route, None, body).await
    }

    /// [`Self::send`] with query parameters.
    pub async fn send_with(
        &self,
        method: LightMethod,
        route: Route<'_>,
        params: Option<Vec<(&'static str, String)>>,
        body: Option<&Value>,
    ) -> Result<Value, Failure> {
        self.send_files(method, route, params, body, Vec::new()).await
    }

    /// [`Self::send_with`] with files (`(name, content)`): sent as `multipart/form-data`,
    /// part `files[i]` for the i-th, the body as `payload_json` with the matching
    /// `attachments` entries (`{"id": i, "filename": name}`), as Discord takes uploads.
    pub async fn send_files(
        &self,
        method: LightMethod,
        route: Route<'_>,
        params: Option<Vec<(&'static str, String)>>,
        body: Option<&Value>,
        files: Vec<(String, Vec<u8>)>,
    ) -> Result<Value, Failure> {
        let path = route.path();
        let relative = path.strip_prefix(DISCORD_URL).unwrap_or(&path);
        let what = format!("{} {relative}", method_name(method));
        let key = RouteKey::new(method_name(method), relative);
        let mut body = body.cloned();
        if !files.is_empty() {
            let entries: Vec<Value> = files
                .iter()
                .enumerate()
                .map(|(i, (name, _))| serde_json::json!({ "id": i, "filename": name }))
                .collect();
            let payload = body.get_or_insert_with(|| serde_json::json!({}));
            payload["attachments"] = Value::Array(entries);
        }
        let body = match &body {
            Some(b) => {
                Some(serde_json::to_vec(b).map_err(|e| failure(PlatformError::Permanent(format!("{what}: {e}"))))?)
            }
            None => None,
        };
        let (body, form) = if files.is_empty() {
            (body, None)
        } else {
            let payload_json = body.map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
            let mut form = reqwest::multipart::Form::new().text("payload_json", payload_json);
            for (i, (name, content)) in files.into_iter().enumerate() {
                form = form.part(format!("files[{i}]"), reqwest::multipart::Part::bytes(content).file_name(name));
            }
            (None, Some(form))
        };
        let request = Request::new(route, method).body(body).params(params);
        let built = match request.build(&self.client, self.http.token(), self.http.proxy.as_deref()) {
            // The URL may carry a proxy's credentials: it is never part of an error.
            Ok(builder) => {
                let builder = match form {
                    Some(form) => builder.multipart(form),
                    None => builder,
                };
                builder.build().map_err(|e| serenity::Error::Http(HttpError::Request(e.without_url())))
            }
            Err(e) => Err(e),
        }
        .map_err(|e| failure(serenity_error(&what, &e)))?;
        if let Err(wait) = self.budget.take(&key) {
            tracing::debug!(route = key.route(), wait_ms = wait.as_millis(), "held back by the rate budget");
            return Err(failure(PlatformError::RateLimited { retry_after: Some(wait) }));
        }
        let response =
            self.client.execute(built).await.map_err(|e| {
                failure(serenity_error(&what, &serenity::Error::Http(HttpError::Request(e.without_url()))))
            })?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.map_err(|e| {
            failure(PlatformError::Transient(format!("{what}: reading the answer: {}", e.without_url())))
        })?;
        let json: Value =
            if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
        let code = json.get("code").and_then(Value::as_i64);
        if status.as_u16() == 429 && code == Some(OLD_MESSAGE_EDITS) {
            // Edits of messages older than an hour have a budget of their own, per channel:
            // the route's bucket (which recent messages' edits share) is not spent. Discord
            // publishes no figure; without its word, the edit waits a few minutes.
            let wait = retry_after(&headers, &json).unwrap_or(OLD_EDIT_WAIT);
            return Err(Failure { error: PlatformError::RateLimited { retry_after: Some(wait) }, code });
        }
        self.budget.learn(&key, status.as_u16(), &headers, &json);
        if status.is_success() {
            return Ok(json);
        }
        if status.as_u16() == 429 {
            return Err(failure(PlatformError::RateLimited { retry_after: retry_after(&headers, &json) }));
        }
        let message = json.get("message").and_then(Value::as_str).unwrap_or("no message");
        let code_text = code.map(|c| format!(", code {c}")).unwrap_or_default();
        let text = format!("Discord refused {what}: {message} (HTTP {}{code_text})", status.as_u16());
        let error = if status.is_server_error() || status.as_u16() == 408 {
            PlatformError::Transient(text)
        } else {
            PlatformError::Permanent(text)
        };
        Err(Failure { error, code })
    }
}

/// A request that got no HTTP answer: connection trouble passes, a malformed request does not.
fn serenity_error(what: &str, e: &serenity::Error) -> PlatformError {
    match e {
        serenity::Error::Http(HttpError::Request(r)) if r.is_builder() => {
            PlatformError::Permanent(format!("{what}: cannot build the request: {r}"))
        }
        serenity::Error::Http(HttpError::Request(r)) => PlatformError::Transient(format!("{what}: {r}")),
        serenity::Error::Http(HttpError::InvalidHeader(_)) => {
            PlatformError::Permanent(format!("{what}: the bot token is not a valid header value"))
        }
        other => PlatformError::Transient(format!("{what}: {other}")),
    }
}
