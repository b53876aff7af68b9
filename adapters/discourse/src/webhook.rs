//! Discourse's webhook deliveries: `X-Discourse-Event-Signature` (`sha256=` and the
//! HMAC-SHA256 of the raw body under the webhook's secret) checked in constant time before
//! anything is read; `X-Discourse-Instance` must be the connection's forum (checked in
//! [`DiscourseWebhooks::confirm`], which knows the connection); each event recorded once by
//! `X-Discourse-Event-Id`.
//!
//! | event | what Polity does |
//! |---|---|
//! | `ping` | 202, nothing stored |
//! | `topic_created`, `post_created` | the governable action `discourse.topic_created` / `discourse.post_created` by its author: a platform policy may hold it (delete it at once, its content kept in the action) while it is voted on |
//! | any other (`topic_edited`, `post_destroyed`, `user_created`, ...) | the trigger `discourse.EVENT` |
//! | one by the user Polity acts as | 202, nothing stored: Polity's own topics and posts are never governed |
//!
//! An action's data: the payload's object (`topic`, `post`, `user`, ...) field by field,
//! plus `instance`, `event_id`, `username` (its author), and for topics and posts
//! `topic_id`, `post_id`, `category_id`, `title`, `raw` (a post's text, kept to post it
//! again).

use crate::config::instance_of;
use chrono::{DateTime, Utc};
use http::HeaderMap;
use polity_governance::action::{Action, ActionType};
use polity_governance::ids::AccountRef;
use polity_governance::io::Inbound;
use polity_governance::platform::BoxFuture;
use polity_port::webhook::{HookEvent, WebhookError, WebhookPlatform, check_prefixed_sha256, header_text};
use serde_json::{Map, Value};

pub const TOPIC_CREATED: &str = "discourse.topic_created";
pub const POST_CREATED: &str = "discourse.post_created";

/// Discourse's webhooks.
#[derive(Clone, Copy, Debug, Default)]
pub struct DiscourseWebhooks;

/// Checks `X-Discourse-Event-Signature` against `secret` on the raw `body`.
///
/// # Errors
/// [`WebhookError::BadSignature`].
pub fn verify(headers: &HeaderMap, body: &[u8], secret: &[u8]) -> Result<(), WebhookError> {
    check_prefixed_sha256(headers.get("x-discourse-event-signature").map(|v| v.as_bytes()), "sha256=", secret, body)
}

/// The input one event is.
///
/// # Errors
/// [`WebhookError::Malformed`] or [`WebhookError::Unsupported`].
pub fn parse(event: &str, event_id: &str, instance: &str, body: &[u8]) -> Result<HookEvent, WebhookError> {
    let payload: Value = serde_json::from_slice(body).map_err(|e| WebhookError::Malformed(format!("not JSON: {e}")))?;
    let Some((_, object)) = payload.as_object().and_then(|o| o.iter().find(|(_, v)| v.is_object())) else {
        return Err(WebhookError::Malformed("the payload holds no object".into()));
    };
    let fields = object.as_object().cloned().unwrap_or_default();
    let lower = event.to_ascii_lowercase();
    if lower.is_empty() || lower.len() > 64 || !lower.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        return Err(WebhookError::Unsupported(format!("the event `{event}`")));
    }
    let kind = ActionType::new(&format!("discourse.{lower}")).map_err(WebhookError::Unsupported)?;
    let text = |k: &str| fields.get(k).and_then(Value::as_str).map(str::to_string);
    let username = text("username")
        .or_else(|| object.pointer("/created_by/username").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| "system".into());
    let is_topic = payload.get("topic").is_some_and(Value::is_object);
    let is_post = payload.get("post").is_some_and(Value::is_object);
    let id = fields.get("id").and_then(Value::as_u64).unwrap_or(0);
    let source = match (is_topic, is_post) {
        (true, _) => format!("t{id}"),
        (_, true) => format!("p{id}"),
        _ => format!("{lower}:{event_id}"),
    };
    let initiator = AccountRef::new("discourse", username.as_str());
    let mut action = Action::new(kind.clone(), initiator.clone(), source);
    if ![TOPIC_CREATED, POST_CREATED].contains(&kind.as_str()) {
        action = action.event();
    }
    for (k, v) in &fields {
        action = action.with(k, v.clone());
    }
    action = action.with("instance", instance).with("event_id", event_id).with("username", username.as_str());
    if is_topic {
        action = action.with("topic_id", id).with("title", text("title").unwrap_or_default());
    }
    if is_post {
        action = action.with("post_id", id);
        if let Some(topic) = fields.get("topic_id") {
            action = action.with("topic_id", topic.clone());
        }
        if let Some(title) = text("topic_title") {
            action = action.with("title", title);
        }
        // A post's text, kept with the action: what a recovery brings back.
        if let Some(raw) = text("raw").or_else(|| text("cooked")) {
            action = action.with("text", raw);
        }
    }
    Ok(HookEvent {
        delivery_id: event_id.to_string(),
        input: Inbound::Action { action },
        from: Some((initiator, username)),
    })
}

impl WebhookPlatform for DiscourseWebhooks {
    fn name(&self) -> &str {
        crate::config::SPEC.name
    }

    fn verify_and_parse(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        secret: &[u8],
        _now: DateTime<Utc>,
    ) -> Result<Vec<HookEvent>, WebhookError> {
        verify(headers, body, secret)?;
        let event = header_text(headers, "x-discourse-event")
            .ok_or_else(|| WebhookError::Malformed("no X-Discourse-Event".into()))?;
        let event_id = header_text(headers, "x-discourse-event-id")
            .filter(|id| id.len() <= 40 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
            .ok_or_else(|| WebhookError::Malformed("no X-Discourse-Event-Id".into()))?;
        let instance = header_text(headers, "x-discourse-instance")
            .ok_or_else(|| WebhookError::Malformed("no X-Discourse-Instance".into()))?;
        if event == "ping" {
            return Err(WebhookError::Unsupported("ping".into()));
        }
        parse(event, event_id, &instance_of(instance), body).map(|e| vec![e])
    }

    /// Keeps the events of the connection's own forum, and none of what Polity itself did.
    fn confirm(
        &self,
        settings: Map<String, Value>,
        _credential: Option<String>,
        events: Vec<HookEvent>,
    ) -> BoxFuture<'static, Result<Vec<HookEvent>, WebhookError>> {
        Box::pin(async move {
            let forum = settings.get("url").and_then(Value::as_str).map(instance_of).unwrap_or_default();
            let polity = settings.get("username").and_then(Value::as_str).unwrap_or("system").to_string();
            Ok(events
                .into_iter()
                .filter(|e| {
                    let Inbound::Action { action } = &e.input else { return false };
                    let instance = action.data.get("instance").and_then(Value::as_str).unwrap_or_default();
                    if instance != forum {
                        tracing::warn!(instance, forum, "a Discourse delivery from another forum is dropped");
                        return false;
                    }
                    action.initiator.account.as_str() != polity
                })
                .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use polity_governance::action::ActionStatus;
    use polity_port::webhook::hmac_sha256;

    fn signed(body: &[u8], event: &str) -> HeaderMap {
        let hex: String = hmac_sha256(b"s3cret", &[body]).iter().map(|b| format!("{b:02x}")).collect();
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("x-discourse-event-signature", format!("sha256={hex}")),
            ("x-discourse-event", event.to_string()),
            ("x-discourse-event-type", "topic".to_string()),
            ("x-discourse-event-id", "41".to_string()),
            ("x-discourse-instance", "https://forum.example.org".to_string()),
        ] {
            h.insert(k, v.parse().unwrap_or_else(|_| unreachable!()));
        }
        h
    }

    #[test]
    fn a_new_topic_is_governable_and_signed_deliveries_only() {
        let body = br#"{"topic":{"id":7,"title":"Sell the boat","category_id":5,"created_by":{"username":"bob"}}}"#;
        let events = DiscourseWebhooks
            .verify_and_parse(&signed(body, "topic_created"), body, b"s3cret", Utc::now())
            .unwrap_or_else(|e| panic!("{e}"));
        let Inbound::Action { action } = &events[0].input else { panic!() };
        assert_eq!(action.kind.as_str(), TOPIC_CREATED);
        assert_ne!(action.status, ActionStatus::Event);
        assert_eq!(action.initiator, AccountRef::new("discourse", "bob"));
        assert_eq!(action.data.get("category_id"), Some(&serde_json::json!(5)));
        assert_eq!(events[0].delivery_id, "41");
        assert!(matches!(
            DiscourseWebhooks.verify_and_parse(&signed(body, "topic_created"), body, b"other", Utc::now()),
            Err(WebhookError::BadSignature(_))
        ));
        let ping = br#"{"ping":"OK"}"#;
        assert!(matches!(
            DiscourseWebhooks.verify_and_parse(&signed(ping, "ping"), ping, b"s3cret", Utc::now()),
            Err(WebhookError::Unsupported(_))
        ));
        let edited = br#"{"post":{"id":9,"topic_id":7,"username":"carol","raw":"hi"}}"#;
        let events = DiscourseWebhooks
            .verify_and_parse(&signed(edited, "post_edited"), edited, b"s3cret", Utc::now())
            .unwrap_or_else(|e| panic!("{e}"));
        let Inbound::Action { action } = &events[0].input else { panic!() };
        assert_eq!((action.kind.as_str(), action.status), ("discourse.post_edited", ActionStatus::Event));
        for bad in [&b"[]"[..], b"{}", b"nope"] {
            assert!(
                DiscourseWebhooks.verify_and_parse(&signed(bad, "topic_created"), bad, b"s3cret", Utc::now()).is_err()
            );
        }
    }
}
