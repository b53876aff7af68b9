//! Slack's requests over HTTP, for an app that does not use Socket Mode: its Request URLs are
//! `{public_url}/hooks/slack/events` (Event Subscriptions), `/hooks/slack/commands` (the
//! `/polity` slash command) and `/hooks/slack/interactivity` (buttons and forms).
//!
//! | request | answer |
//! |---|---|
//! | any, with a missing, malformed or wrong `X-Slack-Signature`, or an `X-Slack-Request-Timestamp` more than five minutes off | 401, logged with why; nothing is read or changed |
//! | `events`, `url_verification` | 200 with its `challenge` |
//! | `events`, `event_callback` | 200 once the host has recorded its inputs in the inbox (503 when it could not: Polity shuts down or the store failed, so Slack sends it again); a retry (`X-Slack-Retry-Num`) has the same `event_id`, so the same dedup key, and changes nothing |
//! | `commands` | 200 with no body at once; the answer follows through the command's `response_url` |
//! | `interactivity` | 200 with no body at once; as over Socket Mode |
//! | a body that is not what Slack sends | 400 |
//! | any other path | 404 |
//!
//! With the app's OAuth credentials it also serves the install pages ([`crate::oauth`]):
//! `GET /slack/install` and `GET /slack/oauth`. Without a signing secret, the `POST`s above
//! are all 404: events then come over Socket Mode.

use crate::oauth::Installer;
use crate::signature;
use crate::socket::Listener;
use chrono::{DateTime, Utc};
use http::HeaderMap;
use polity_port::{BoxFuture, Endpoint, EndpointAnswer};
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// Polity's own Slack app's HTTP endpoint.
pub struct SlackEndpoint {
    listener: Arc<Listener>,
    signing_secret: Option<String>,
    installer: Option<Arc<Installer>>,
}

impl SlackEndpoint {
    pub fn new(listener: Arc<Listener>, signing_secret: Option<String>, installer: Option<Arc<Installer>>) -> Self {
        Self { listener, signing_secret, installer }
    }
}

/// A form-encoded body as a JSON object of its fields.
fn form(body: &[u8]) -> Map<String, Value> {
    url::form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), Value::String(v.into_owned()))).collect()
}

impl Endpoint for SlackEndpoint {
    fn handle(
        &self,
        path: &str,
        headers: &HeaderMap,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> BoxFuture<'static, EndpointAnswer> {
        let Some(signing_secret) = &self.signing_secret else {
            return Box::pin(std::future::ready(EndpointAnswer::text(404, "no such Slack endpoint\n")));
        };
        if let Err(e) = signature::verify(headers, body, signing_secret.as_bytes(), now) {
            tracing::warn!(path, "a request claiming to be Slack's refused: {e}");
            return Box::pin(std::future::ready(EndpointAnswer::text(401, "bad or missing signature\n")));
        }
        let listener = Arc::clone(&self.listener);
        let path = path.to_string();
        let body = body.to_vec();
        Box::pin(async move {
            match path.as_str() {
                "events" => {
                    let Ok(payload) = serde_json::from_slice::<Value>(&body) else {
                        return EndpointAnswer::text(400, "not JSON\n");
                    };
                    match payload.get("type").and_then(Value::as_str) {
                        Some("url_verification") => {
                            let challenge = payload.get("challenge").and_then(Value::as_str).unwrap_or_default();
                            EndpointAnswer::json(200, &json!({ "challenge": challenge }))
                        }
                        Some("event_callback") => {
                            if listener.callback(&payload).await {
                                EndpointAnswer::text(200, "")
                            } else {
                                EndpointAnswer::text(503, "not recorded; deliver it again\n")
                            }
                        }
                        _ => EndpointAnswer::text(200, ""),
                    }
                }
                "commands" => {
                    listener.slash(&Value::Object(form(&body))).await;
                    EndpointAnswer::text(200, "")
                }
                "interactivity" => {
                    let fields = form(&body);
                    let Some(payload) = fields
                        .get("payload")
                        .and_then(Value::as_str)
                        .and_then(|p| serde_json::from_str::<Value>(p).ok())
                    else {
                        return EndpointAnswer::text(400, "no payload\n");
                    };
                    listener.interactive(&payload).await;
                    EndpointAnswer::text(200, "")
                }
                _ => EndpointAnswer::text(404, "no such Slack endpoint\n"),
            }
        })
    }

    fn page(
        &self,
        path: &str,
        query: &str,
        headers: &HeaderMap,
        now: DateTime<Utc>,
    ) -> BoxFuture<'static, EndpointAnswer> {
        let Some(installer) = self.installer.clone() else {
            return Box::pin(std::future::ready(EndpointAnswer::text(404, "no such page\n")));
        };
        match path {
            "install" => Box::pin(std::future::ready(installer.install_page(now))),
            "oauth" => {
                let (query, headers) = (query.to_string(), headers.clone());
                Box::pin(async move { installer.redirected(&query, &headers, now).await })
            }
            _ => Box::pin(std::future::ready(EndpointAnswer::text(404, "no such page\n"))),
        }
    }
}
