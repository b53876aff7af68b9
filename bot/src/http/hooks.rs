//! `POST /hooks/{platform}/{connection}`: a platform's webhook deliveries, written to the
//! inbox before they are answered.
//!
//! A webhook platform is a [`WebhookPlatform`]: a pure `verify_and_parse` that checks the
//! delivery's signature on the raw bytes, in constant time, before it parses anything, and
//! turns the delivery into governance inputs ([`HookEvent`]s). The route around it:
//!
//! | what arrives | answer | stored |
//! |---|---|---|
//! | a body over 1 MiB ([`BODY_LIMIT`]) | 413 | nothing |
//! | `/hooks/{platform}/{path}` with no `.` in `path`, for a platform whose Polity bot takes its app's requests (Slack's `events`, `commands`, `interactivity`) | what that bot's [`Endpoint`](polity_port::Endpoint) answers: it checks the app's signature first | as the endpoint says |
//! | a platform no adapter serves, a connection that does not exist, is not that platform's or is not enabled yet | 404 | nothing |
//! | a bad or missing signature (or a connection with no secret to check it with); for a platform that does not sign, a missing or wrong `?token=` | 401, logged with the connection's name | nothing |
//! | a body the adapter cannot read | 400 | nothing |
//! | an event Polity does not use | 202 | nothing |
//! | a delivery the platform's API could not confirm now (an unsigned platform's: its body is never trusted) | 503, so the platform may deliver it again (its poll reads it anyway) | nothing |
//! | a good delivery | 200 once the serving loop has recorded it in the inbox (a redelivery is a duplicate there and changes nothing; a member's mistake is still received) | each input, in one job of the loop |
//! | a good delivery the store could not record | 500, so the platform delivers it again | nothing |
//! | a good delivery while Polity shuts down | 503, so the platform delivers it again | nothing |
//!
//! `{connection}` is `COMMUNITY.NAME` ([`hook_path`]): connection names are unique within a
//! community only, and naming the community keeps one community's connection from shadowing
//! another's. Inputs are deduplicated under the source `hook:{platform}:{connection}`, so
//! two connections whose platforms reuse delivery ids never shadow each other either.
//!
//! The secret a delivery is checked with is the webhook secret Polity generated for the
//! connection (`/integration add` shows it once), else the connection's own secret. A
//! platform that does not sign its deliveries (Open Collective) has it in the URL instead,
//! compared in constant time; what such a delivery claims is confirmed with the platform's
//! API ([`WebhookPlatform::confirm`], with the connection's settings and token) before it is
//! recorded, and only what the API says is recorded.
//!
//! It must not parse a body before its signature is checked, nor log or answer with a secret.

use super::HttpState;
use crate::serve::{Delivery, Input, deliver_all};
use crate::store::Connection;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use polity_governance::ids::CommunityId;
pub use polity_port::webhook::{
    HookEvent, WebhookError, WebhookPlatform, constant_time_eq, hmac_sha256, hmac_sha256_matches,
};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::oneshot;

/// The largest body a webhook may have: 1 MiB (GitHub's payloads are capped at 25 MB, but
/// the events Polity uses are small).
pub const BODY_LIMIT: usize = 1 << 20;

/// The webhook platforms the server serves, by name.
#[derive(Clone, Default)]
pub struct Webhooks(HashMap<String, Arc<dyn WebhookPlatform>>);

impl Webhooks {
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves `platform`'s webhooks (replacing one of the same name).
    pub fn register(&mut self, platform: Arc<dyn WebhookPlatform>) {
        self.0.insert(platform.name().to_string(), platform);
    }

    fn get(&self, name: &str) -> Option<&Arc<dyn WebhookPlatform>> {
        self.0.get(name)
    }
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&String> = self.0.keys().collect();
        names.sort();
        f.debug_tuple("Webhooks").field(&names).finish()
    }
}

/// The path a platform delivers a community's connection's webhooks to:
/// `/hooks/{platform}/{community}.{name}`.
pub fn hook_path(platform: &str, community: CommunityId, name: &str) -> String {
    format!("/hooks/{platform}/{}.{name}", community.0)
}

/// The inbox source of a connection's webhook deliveries.
pub fn hook_source(platform: &str, community: CommunityId, name: &str) -> String {
    format!("hook:{platform}:{}.{name}", community.0)
}

/// `COMMUNITY.NAME` read back.
fn connection_of(segment: &str) -> Option<(CommunityId, &str)> {
    let (community, name) = segment.split_once('.')?;
    let community = community.parse().ok().filter(|_| community.bytes().all(|b| b.is_ascii_digit()))?;
    (!name.is_empty()).then_some((CommunityId(community), name))
}

/// What the route answers: a status and a short text.
type Answer = (StatusCode, &'static str);

const UNAUTHORIZED: Answer = (StatusCode::UNAUTHORIZED, "bad or missing signature\n");
const UNUSED: Answer = (StatusCode::ACCEPTED, "not an event Polity uses\n");

const NOT_FOUND: Answer = (StatusCode::NOT_FOUND, "no such webhook\n");
const INTERNAL: Answer = (StatusCode::INTERNAL_SERVER_ERROR, "not recorded; deliver it again\n");
const UNAVAILABLE: Answer = (StatusCode::SERVICE_UNAVAILABLE, "shutting down; deliver it again\n");

/// The route. Axum answers 413 before this runs when the body is over [`BODY_LIMIT`].
pub(super) async fn receive(
    State(state): State<HttpState>,
    Path((platform, connection)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    // Polity's own app's requests (`/hooks/slack/events`): the endpoint of the bot that
    // serves the platform. A community's connection is always `COMMUNITY.NAME`.
    if !connection.contains('.')
        && let Some(endpoint) = state.endpoints.get(&platform)
    {
        return answered(endpoint.handle(&connection, &headers, &body, state.clock.now()).await);
    }
    receive_hook(&state, &platform, &connection, &headers, &body, query.as_deref()).await.into_response()
}

/// `GET /{platform}/{page}`: a page of Polity's own app on the platform that a person's
/// browser is sent to (Slack's `install` and `oauth`), answered by that bot's endpoint.
pub(super) async fn page(
    State(state): State<HttpState>,
    Path((platform, page)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match state.endpoints.get(&platform) {
        Some(endpoint) => {
            answered(endpoint.page(&page, query.as_deref().unwrap_or(""), &headers, state.clock.now()).await)
        }
        None => (StatusCode::NOT_FOUND, "no such page\n").into_response(),
    }
}

/// An endpoint's answer as axum's response; a header that cannot be one is left out, logged.
fn answered(answer: polity_port::EndpointAnswer) -> axum::response::Response {
    use axum::response::IntoResponse;
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, [(axum::http::header::CONTENT_TYPE, answer.content_type)], answer.body).into_response();
    for (name, value) in answer.headers {
        match axum::http::HeaderValue::from_str(&value) {
            Ok(value) => {
                response.headers_mut().append(name, value);
            }
            Err(_) => tracing::warn!(header = name, "an endpoint's header value is not one HTTP allows; left out"),
        }
    }
    response
}

async fn receive_hook(
    state: &HttpState,
    platform: &str,
    connection: &str,
    headers: &HeaderMap,
    body: &Bytes,
    query: Option<&str>,
) -> Answer {
    let delivery = Received { headers, body, query };
    let (outcome, answer) = answer(state, platform, connection, delivery).await;
    if state.webhooks.get(platform).is_some() {
        // Only platforms Polity serves are labels, so a stranger cannot make new series.
        crate::metrics::webhook(platform, outcome);
    }
    answer
}

/// One delivery as it came.
#[derive(Clone, Copy)]
struct Received<'a> {
    headers: &'a HeaderMap,
    body: &'a [u8],
    query: Option<&'a str>,
}

/// The `token` of a query string (`?token=...`), as sent.
fn token_of(query: Option<&str>) -> Option<&str> {
    query?.split('&').find_map(|pair| pair.strip_prefix("token="))
}

/// The answer to a delivery, with the outcome the metric counts it as.
async fn answer(state: &HttpState, platform: &str, segment: &str, delivery: Received<'_>) -> (&'static str, Answer) {
    let Received { headers, body, query } = delivery;
    let Some(adapter) = state.webhooks.get(platform) else {
        tracing::debug!(platform, "a webhook for a platform Polity does not serve");
        return ("unknown_platform", NOT_FOUND);
    };
    let Some((community, name)) = connection_of(segment) else {
        tracing::info!(
            platform,
            connection = segment,
            "a webhook for no connection (the path is /hooks/PLATFORM/COMMUNITY.NAME)"
        );
        return ("unknown_connection", NOT_FOUND);
    };
    let connection = match state.store.connections(community).await {
        Ok(all) => all.into_iter().find(|c| c.name == name && c.platform == platform && enabled(c)),
        Err(e) => {
            tracing::error!(platform, connection = segment, "reading the connection of a webhook failed: {e}");
            return ("failed", INTERNAL);
        }
    };
    let Some(connection) = connection else {
        tracing::info!(
            platform,
            connection = segment,
            "a webhook for a connection that does not exist or is not enabled"
        );
        return ("unknown_connection", NOT_FOUND);
    };
    let credential = match state.store.connection_secret(community, name).await {
        Ok(credential) => credential,
        Err(e) => {
            tracing::error!(platform, connection = segment, "reading the secret of a webhook's connection failed: {e}");
            return ("failed", INTERNAL);
        }
    };
    let hook_secret = match state.store.connection_hook_secret(community, name).await {
        Ok(secret) => secret,
        Err(e) => {
            tracing::error!(platform, connection = segment, "reading the webhook secret of a connection failed: {e}");
            return ("failed", INTERNAL);
        }
    };
    let in_url = adapter.secret_in_url();
    // An unsigned platform's secret is only ever the one Polity generated for the URL.
    let secret = if in_url { hook_secret } else { hook_secret.or_else(|| credential.clone()) };
    let secret = match secret {
        Some(secret) => secret,
        None => {
            tracing::warn!(
                platform,
                connection = segment,
                "a webhook refused: the connection has no secret to check its signature with"
            );
            return ("bad_signature", UNAUTHORIZED);
        }
    };
    if in_url && !token_of(query).is_some_and(|t| constant_time_eq(t.as_bytes(), secret.expose().as_bytes())) {
        tracing::warn!(platform, connection = segment, "a webhook refused: the URL's token is missing or wrong");
        return ("bad_signature", UNAUTHORIZED);
    }
    let events = match adapter.verify_and_parse(headers, body, secret.expose().as_bytes(), state.clock.now()) {
        Ok(events) => events,
        Err(WebhookError::BadSignature(why)) => {
            tracing::warn!(platform, connection = segment, "a webhook refused: bad or missing signature ({why})");
            return ("bad_signature", UNAUTHORIZED);
        }
        Err(WebhookError::Unsupported(what)) => {
            tracing::debug!(platform, connection = segment, "a webhook for an event Polity does not use: {what}");
            return ("unsupported", UNUSED);
        }
        Err(WebhookError::Malformed(why)) => {
            tracing::warn!(platform, connection = segment, "a signed webhook Polity cannot read: {why}");
            return ("malformed", (StatusCode::BAD_REQUEST, "a delivery Polity cannot read\n"));
        }
        Err(WebhookError::Unconfirmed(why)) => return unconfirmed(platform, segment, &why),
    };
    if events.is_empty() {
        return ("unsupported", UNUSED);
    }
    let settings = match connection.config {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    let credential = credential.map(|c| c.expose().to_string());
    let events = match adapter.confirm(settings, credential, events).await {
        Ok(events) => events,
        Err(WebhookError::Unconfirmed(why)) => return unconfirmed(platform, segment, &why),
        Err(other) => {
            tracing::warn!(platform, connection = segment, "a webhook the platform did not confirm: {other}");
            return ("unconfirmed", UNUSED);
        }
    };
    if events.is_empty() {
        tracing::info!(
            platform,
            connection = segment,
            "a webhook whose claims the platform did not confirm: nothing recorded"
        );
        return ("unconfirmed", UNUSED);
    }
    record(state, hook_source(platform, community, name), community, events).await
}

/// A delivery whose claims the platform's API could not confirm now: 503, nothing stored.
fn unconfirmed(platform: &str, segment: &str, why: &str) -> (&'static str, Answer) {
    tracing::warn!(
        platform,
        connection = segment,
        "a webhook not recorded: the platform could not confirm it now ({why}); its poll reads it later"
    );
    ("unconfirmed", (StatusCode::SERVICE_UNAVAILABLE, "could not be confirmed now; deliver it again\n"))
}

/// Whether a connection has been enabled by its governance decision (one staged by
/// `/integration add` waits, and takes no deliveries until it is).
fn enabled(c: &Connection) -> bool {
    c.config.get("enabled").and_then(serde_json::Value::as_bool) != Some(false)
}

/// Hands the events to the serving loop as one job, and waits until the loop has recorded
/// them in the inbox, in one transaction.
async fn record(
    state: &HttpState,
    source: String,
    community: CommunityId,
    events: Vec<HookEvent>,
) -> (&'static str, Answer) {
    let (answer, answered) = oneshot::channel::<bool>();
    // Events of one delivery that share its id are told apart by their place in it; an event
    // with an id of its own (one keyed by what it says, not by the delivery) keeps it, so the
    // same event in another delivery is the same input.
    let mut uses: HashMap<String, usize> = HashMap::new();
    for event in &events {
        *uses.entry(event.delivery_id.clone()).or_default() += 1;
    }
    let log_source = source.clone();
    let deliveries: Vec<Delivery> = events
        .into_iter()
        .enumerate()
        .map(|(i, event)| Delivery {
            community,
            source: source.clone(),
            dedup_key: if uses.get(&event.delivery_id).is_some_and(|n| *n > 1) {
                format!("{}#{i}", event.delivery_id)
            } else {
                event.delivery_id
            },
            input: event.input,
            from: event.from,
        })
        .collect();
    let job = Input::job(move |rt, now| {
        Box::pin(async move {
            // A member's mistake is received all the same; an input the store could not
            // write, or the store failing, is not (the platform delivers it again).
            let recorded = deliver_all(rt, deliveries, now).await;
            if answer.send(matches!(recorded, Ok(true))).is_err() {
                tracing::debug!(source, "a webhook's sender stopped waiting for its answer");
            }
            recorded.map(|_| ())
        })
    });
    if state.inputs.send(job).await.is_err() {
        tracing::info!(
            source = log_source,
            "a webhook came while Polity is shutting down; the platform delivers it again"
        );
        return ("unavailable", UNAVAILABLE);
    }
    match answered.await {
        Ok(true) => ("received", (StatusCode::OK, "received\n")),
        Ok(false) => {
            tracing::error!(source = log_source, "a webhook could not be recorded; the platform delivers it again");
            ("failed", INTERNAL)
        }
        // The loop ended before it came to the job.
        Err(_) => ("unavailable", UNAVAILABLE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_is_named_by_its_community_and_name() {
        assert_eq!(connection_of("3.main"), Some((CommunityId(3), "main")));
        assert_eq!(connection_of("12.a.b"), Some((CommunityId(12), "a.b")));
        for bad in ["main", "3.", ".main", "x.main", "+3.main", "-3.main", ""] {
            assert_eq!(connection_of(bad), None, "{bad}");
        }
        assert_eq!(hook_path("github", CommunityId(3), "main"), "/hooks/github/3.main");
        assert_eq!(hook_source("github", CommunityId(3), "main"), "hook:github:3.main");
    }

    #[test]
    fn signatures_are_checked_whole() {
        let sig = hmac_sha256(b"s3cret", &[b"ab", b"c"]);
        assert_eq!(sig, hmac_sha256(b"s3cret", &[b"abc"]));
        assert!(hmac_sha256_matches(b"s3cret", &[b"abc"], &sig));
        assert!(!hmac_sha256_matches(b"other", &[b"abc"], &sig));
        assert!(!hmac_sha256_matches(b"s3cret", &[b"abd"], &sig));
        assert!(!hmac_sha256_matches(b"s3cret", &[b"abc"], &sig[..31]));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd") && !constant_time_eq(b"abc", b"ab") && !constant_time_eq(b"", b"a"));
        // RFC 4231, test case 2.
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", &[b"what do ya want for nothing?"])),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
