//! The GraphQL API v2 client: one named operation per request (`POST {api}` with
//! `Personal-Token`), and what its failures mean.
//!
//! It must never log or pass on a response body as it came: Open Collective's 401 repeats
//! the token it refused (`Invalid Personal Token (Api Key): TOKEN`), so a 401's body is not
//! even read, and every string of an answer has the token blotted out before anything is
//! taken from it.
//!
//! The API's address is a community's setting, so its answers are bounded: at most
//! [`MAX_ANSWER`] is read, and a `Retry-After` is at most [`MAX_RETRY_AFTER`].

use chrono::{DateTime, Utc};
use polity_governance::platform::PlatformError;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue, USER_AGENT};
use serde_json::{Value, json};
use std::time::Duration;

/// The most of an answer that is read: Polity's largest (a page of 100 activities with their
/// expenses) is some hundreds of KiB.
pub const MAX_ANSWER: usize = 4 * 1024 * 1024;

/// What an answer over [`MAX_ANSWER`] fails with.
pub const TOO_LARGE: &str = "Open Collective's answer is over 4 MiB";

/// The longest `Retry-After` taken as it is: a longer one (or one past any `Duration`) is
/// an hour.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// One GraphQL document with the name of its operation (the fake answers by it, and Open
/// Collective's logs show it).
#[derive(Clone, Copy, Debug)]
pub struct Operation {
    pub name: &'static str,
    pub document: &'static str,
}

/// The token owner and the collective, when a connection starts.
pub const START: Operation = Operation {
    name: "PolityStart",
    document: "query PolityStart($slug: String!) {
  me { id slug name }
  account(slug: $slug) { id legacyId slug name }
}",
};

/// The token owner, whether they are an admin of `$slug`, and `$slug`'s host.
pub const ME: Operation = Operation {
    name: "PolityMe",
    document: "query PolityMe($slug: String!) {
  me { id slug name memberOf(role: [ADMIN], account: {slug: $slug}) { totalCount } }
  account(slug: $slug) { id slug name ... on AccountWithHost { host { slug name } } }
}",
};

/// One expense as it is now, with its activities (oldest first).
pub const EXPENSE: Operation = Operation {
    name: "PolityExpense",
    document: "query PolityExpense($ref: ExpenseReferenceInput!) {
  expense(expense: $ref) {
    id legacyId description amount currency status
    account { slug name }
    payee { slug name }
    activities { id type createdAt }
  }
}",
};

/// One expense with its newest comments.
pub const EXPENSE_COMMENTS: Operation = Operation {
    name: "PolityExpenseComments",
    document: "query PolityExpenseComments($ref: ExpenseReferenceInput!) {
  expense(expense: $ref) {
    id legacyId status
    account { slug name }
    comments(limit: 100, orderBy: {field: CREATED_AT, direction: DESC}) { nodes { id html } }
  }
}",
};

/// The collective's deletions around a time.
pub const DELETIONS: Operation = Operation {
    name: "PolityDeletions",
    document: "query PolityDeletions($slug: String!, $from: DateTime!, $to: DateTime!) {
  activities(account: [{slug: $slug}], type: [COLLECTIVE_EXPENSE_DELETED], dateFrom: $from, dateTo: $to, limit: 100) {
    totalCount
    nodes { id type createdAt data expense { legacyId } }
  }
}",
};

/// Whether an expense is gone, and the collective's deletions around a time.
pub const DELETED_EXPENSE: Operation = Operation {
    name: "PolityDeletedExpense",
    document:
        "query PolityDeletedExpense($ref: ExpenseReferenceInput!, $slug: String!, $from: DateTime!, $to: DateTime!) {
  expense(expense: $ref) { id legacyId }
  activities(account: [{slug: $slug}], type: [COLLECTIVE_EXPENSE_DELETED], dateFrom: $from, dateTo: $to, limit: 100) {
    totalCount
    nodes { id type createdAt data expense { legacyId } }
  }
}",
};

/// The collective's expense activities of the five trigger types, newest first.
pub const ACTIVITIES: Operation = Operation {
    name: "PolityActivities",
    document: "query PolityActivities($slug: String!, $from: DateTime, $limit: Int!, $offset: Int!) {
  activities(account: [{slug: $slug}], dateFrom: $from, limit: $limit, offset: $offset,
    type: [COLLECTIVE_EXPENSE_CREATED, COLLECTIVE_EXPENSE_APPROVED, COLLECTIVE_EXPENSE_REJECTED, COLLECTIVE_EXPENSE_PAID, COLLECTIVE_EXPENSE_DELETED]) {
    totalCount
    nodes {
      id type createdAt data
      expense { id legacyId description amount currency status account { slug name } payee { slug name } }
    }
  }
}",
};

/// Approves, unapproves, rejects or pays an expense.
pub const PROCESS_EXPENSE: Operation = Operation {
    name: "PolityProcessExpense",
    document:
        "mutation PolityProcessExpense($ref: ExpenseReferenceInput!, $action: ExpenseProcessAction!, $message: String) {
  processExpense(expense: $ref, action: $action, message: $message) { id legacyId status }
}",
};

/// Comments on an expense.
pub const COMMENT: Operation = Operation {
    name: "PolityComment",
    document: "mutation PolityComment($ref: ExpenseReferenceInput!, $html: String!) {
  createComment(comment: {expense: $ref, html: $html}) { id }
}",
};

/// Why a request got no usable answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiError {
    /// HTTP 401: the token is unknown, expired or revoked.
    BadToken,
    /// HTTP 429 (or a `RateLimitExceeded` error), with `Retry-After` when it came.
    RateLimited(Option<Duration>),
    /// No answer: a refused connection, a timeout, a 5xx, a body cut short.
    Unreachable(String),
    /// The first GraphQL error: its `extensions.code` and its message.
    Graphql { code: Option<String>, message: String },
    /// Any other answer.
    Other(String),
}

/// What the 2FA refusal of a token without advanced privileges needs.
pub const TWO_FA_HINT: &str = "the token's owner has two-factor authentication on (or the collective requires it): make a personal token with Advanced privileges ticked (Open Collective → your profile → For developers → Personal tokens)";

/// What a refused token needs.
pub const BAD_TOKEN: &str = "Open Collective refused the personal token";

impl ApiError {
    /// The failure as an effect's or a poll's error.
    pub fn into_platform(self) -> PlatformError {
        match self {
            Self::BadToken => PlatformError::Permanent(BAD_TOKEN.into()),
            Self::RateLimited(retry_after) => PlatformError::RateLimited { retry_after },
            Self::Unreachable(why) => PlatformError::Transient(why),
            Self::Graphql { message, .. } if mentions_2fa(&message) => {
                PlatformError::Permanent(format!("Open Collective refused: {message} ({TWO_FA_HINT})"))
            }
            Self::Graphql { code: Some(code), .. } if code == "RateLimitExceeded" => {
                PlatformError::RateLimited { retry_after: None }
            }
            Self::Graphql { code: Some(code), message } if code == "INTERNAL_SERVER_ERROR" => {
                PlatformError::Transient(format!("Open Collective failed: {message}"))
            }
            Self::Graphql { message, .. } => PlatformError::Permanent(format!("Open Collective refused: {message}")),
            Self::Other(why) => PlatformError::Permanent(why),
        }
    }

    /// Whether Open Collective said the thing asked for does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Graphql { code: Some(code), .. } if code == "NotFound")
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BadToken => f.write_str(BAD_TOKEN),
            Self::RateLimited(Some(wait)) => write!(f, "Open Collective is rate limiting, retry after {wait:?}"),
            Self::RateLimited(None) => f.write_str("Open Collective is rate limiting"),
            Self::Unreachable(why) | Self::Other(why) => f.write_str(why),
            Self::Graphql { message, .. } => write!(f, "Open Collective refused: {message}"),
        }
    }
}

/// Whether an error's message is about two-factor authentication.
fn mentions_2fa(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    lower.contains("2fa") || lower.contains("two factor") || lower.contains("two-factor")
}

/// The GraphQL API with one personal token.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api").field("url", &self.url).field("token", &"[redacted]").finish()
    }
}

impl Api {
    /// A client of the API at `url` with `token`, each request at most `timeout`.
    ///
    /// # Errors
    /// When the token cannot be a header or the client cannot be built.
    pub fn new(url: &str, token: &str, timeout: Duration) -> Result<Self, String> {
        let mut headers = HeaderMap::new();
        let mut value = HeaderValue::from_str(token.trim())
            .map_err(|_| "the personal token holds characters a header cannot carry".to_string())?;
        value.set_sensitive(true);
        headers.insert("Personal-Token", value);
        headers.insert(USER_AGENT, HeaderValue::from_static("Polity"));
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("building the HTTP client: {}", e.without_url()))?;
        Ok(Self { http, url: url.to_string(), token: token.trim().to_string() })
    }

    /// Runs `operation` with `variables`: its `data`, the token blotted out of every string.
    ///
    /// # Errors
    /// What [`ApiError`] says; a GraphQL error anywhere in the answer fails the whole call.
    pub async fn run(&self, operation: Operation, variables: Value) -> Result<Value, ApiError> {
        let body = json!({ "operationName": operation.name, "query": operation.document, "variables": variables });
        let mut response = self.http.post(&self.url).json(&body).send().await.map_err(|e| {
            let why = if e.is_timeout() { "no answer in time" } else { "no answer" };
            // The address is a setting: it may carry the token (`?personalToken=`).
            ApiError::Unreachable(self.redact(&format!("Open Collective ({}): {why}: {}", self.url, e.without_url())))
        })?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED {
            // Its body repeats the token: it is not read.
            return Err(ApiError::BadToken);
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(ApiError::RateLimited(retry_after(response.headers())));
        }
        if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
            return Err(ApiError::Unreachable(format!("Open Collective answered HTTP {}", status.as_u16())));
        }
        if response.content_length().is_some_and(|n| n > MAX_ANSWER as u64) {
            return Err(ApiError::Other(TOO_LARGE.into()));
        }
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) if body.len() + chunk.len() > MAX_ANSWER => {
                    return Err(ApiError::Other(TOO_LARGE.into()));
                }
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(e) if e.is_timeout() => {
                    return Err(ApiError::Unreachable("Open Collective's answer did not come in time".into()));
                }
                Err(_) => return Err(ApiError::Unreachable("Open Collective's answer was cut short".into())),
            }
        }
        let Ok(mut answer) = serde_json::from_slice::<Value>(&body) else {
            return Err(ApiError::Other(format!(
                "Open Collective answered HTTP {} with something that is not JSON",
                status.as_u16()
            )));
        };
        drop(body);
        self.redact_all(&mut answer);
        if let Some(first) = answer.get("errors").and_then(Value::as_array).and_then(|e| e.first()) {
            let message = first.get("message").and_then(Value::as_str).unwrap_or("an error without a message");
            let code = first.pointer("/extensions/code").and_then(Value::as_str).map(str::to_string);
            return Err(ApiError::Graphql { code, message: message.to_string() });
        }
        if !status.is_success() {
            let message = answer.pointer("/error/message").and_then(Value::as_str).unwrap_or("no message");
            return Err(ApiError::Other(format!("Open Collective answered HTTP {}: {message}", status.as_u16())));
        }
        match answer.get_mut("data").map(Value::take) {
            Some(data) if data.is_object() => Ok(data),
            _ => Err(ApiError::Other("Open Collective answered without data".into())),
        }
    }

    /// `text` with the token blotted out.
    fn redact(&self, text: &str) -> String {
        if self.token.is_empty() { text.to_string() } else { text.replace(&self.token, "[token]") }
    }

    /// Blots the token out of every string (and key) of `value`, so nothing taken from an
    /// answer (an error's message, a name, a status) can carry it.
    fn redact_all(&self, value: &mut Value) {
        if self.token.is_empty() {
            return;
        }
        match value {
            Value::String(text) if text.contains(&self.token) => *text = self.redact(text),
            Value::Array(items) => items.iter_mut().for_each(|v| self.redact_all(v)),
            Value::Object(map) => {
                if map.keys().any(|k| k.contains(&self.token)) {
                    *map = std::mem::take(map).into_iter().map(|(k, v)| (self.redact(&k), v)).collect();
                }
                map.values_mut().for_each(|v| self.redact_all(v));
            }
            _ => {}
        }
    }
}

/// `Retry-After`: seconds (Open Collective's may be fractional) or an HTTP date, at most
/// [`MAX_RETRY_AFTER`]; `None` when it is neither (or negative).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    retry_after_at(headers.get("retry-after")?.to_str().ok()?, Utc::now())
}

fn retry_after_at(text: &str, now: DateTime<Utc>) -> Option<Duration> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        if seconds.is_nan() || seconds < 0.0 {
            return None;
        }
        return Duration::try_from_secs_f64(seconds.min(MAX_RETRY_AFTER.as_secs_f64())).ok();
    }
    let at = DateTime::parse_from_rfc2822(text).ok()?.with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO).min(MAX_RETRY_AFTER))
}

/// An expense reference by its number.
pub fn expense_ref(legacy_id: i64) -> Value {
    json!({ "legacyId": legacy_id })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_may_be_fractional() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("1.5"));
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(1500)));
        headers.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn retry_after_is_bounded_and_may_be_a_date() {
        let now = DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z").unwrap().with_timezone(&Utc);
        let hour = Some(MAX_RETRY_AFTER);
        for (text, expected) in [
            ("1e20", hour),
            ("1e300", hour),
            ("infinity", hour),
            ("3600.5", hour),
            (" 2 ", Some(Duration::from_secs(2))),
            ("-0.5", None),
            ("NaN", None),
            ("Wed, 01 May 2024 12:00:30 GMT", Some(Duration::from_secs(30))),
            ("Wed, 01 May 2024 11:00:00 GMT", Some(Duration::ZERO)),
            ("Thu, 02 May 2024 12:00:00 GMT", hour),
            ("2024-05-01T12:00:30Z", None),
        ] {
            assert_eq!(retry_after_at(text, now), expected, "{text}");
        }
    }

    #[test]
    fn the_token_is_blotted_out_of_every_string_of_an_answer() {
        let api = Api::new("http://127.0.0.1:1/graphql/v2", " tok-9 ", Duration::from_secs(1)).unwrap();
        let mut answer = json!({"data": {"me": {"name": "a tok-9 b", "tok-9": ["tok-9", 1, null]}}});
        api.redact_all(&mut answer);
        assert_eq!(answer, json!({"data": {"me": {"name": "a [token] b", "[token]": ["[token]", 1, null]}}}));
        assert!(!format!("{api:?}").contains("tok-9"));
    }

    #[test]
    fn a_2fa_refusal_says_what_to_do() {
        let e = ApiError::Graphql { code: None, message: "This personal token is not pre-authorized for 2FA".into() };
        let PlatformError::Permanent(text) = e.into_platform() else { panic!("not permanent") };
        assert!(text.contains("Advanced privileges"), "{text}");
    }

    #[test]
    fn every_operation_is_named_as_it_says() {
        for op in
            [START, ME, EXPENSE, EXPENSE_COMMENTS, DELETIONS, DELETED_EXPENSE, ACTIVITIES, PROCESS_EXPENSE, COMMENT]
        {
            let head = op.document.split('(').next().unwrap_or_default();
            assert!(head.ends_with(op.name), "{head}");
        }
    }
}
