//! Loomio's webhooks: unsigned, and their body is text rendered for a chat (`{"text": ...}`,
//! or Slack's, Discord's, Teams' or Webex's shape of it), different from one version to the
//! next. So a delivery is only a hint: the host checks the token in its URL,
//! [`LoomioWebhooks::verify_and_parse`] takes the poll addresses (`/p/KEY`) its text mentions,
//! and [`LoomioWebhooks::confirm`] reads each of those polls from the API with the
//! connection's key. Only what the API answers is recorded, as the triggers below, each once
//! (its key is the poll's state, not the delivery): a delivery that lies changes nothing.
//!
//! | the API shows | trigger | recorded once per |
//! |---|---|---|
//! | a poll of the group | `loomio.poll_created` | poll |
//! | one with votes | `loomio.stance_created` | poll and number of voters |
//! | one closed | `loomio.poll_closed` | poll |
//!
//! Every one carries `process_hint`: a running `loomio.poll` it names is read at once.

use crate::api::{Api, ApiError};
use crate::config::{LoomioConfig, SPEC};
use crate::platform::hint_of;
use chrono::{DateTime, Utc};
use http::HeaderMap;
use polity_governance::action::{Action, ActionType};
use polity_governance::ids::AccountRef;
use polity_governance::io::Inbound;
use polity_governance::platform::BoxFuture;
use polity_port::webhook::{HookEvent, WebhookError, WebhookPlatform};
use reqwest::Method;
use serde_json::{Map, Value};

pub const POLL_CREATED: &str = "loomio.poll_created";
pub const STANCE_CREATED: &str = "loomio.stance_created";
pub const POLL_CLOSED: &str = "loomio.poll_closed";

/// What a delivery claims before it is confirmed: the polls it mentions.
const MENTIONED: &str = "loomio.mentioned";

/// The most polls one delivery may have read.
pub const MAX_POLLS: usize = 5;

/// Loomio's webhooks.
#[derive(Clone, Copy, Debug, Default)]
pub struct LoomioWebhooks;

/// The poll keys (`/p/KEY`) that the strings of `body` mention, in order, each once.
pub fn poll_keys(body: &Value) -> Vec<String> {
    fn strings<'a>(v: &'a Value, out: &mut Vec<&'a str>, depth: usize) {
        match v {
            Value::String(s) => out.push(s),
            Value::Array(items) if depth < 8 => items.iter().for_each(|i| strings(i, out, depth + 1)),
            Value::Object(fields) if depth < 8 => fields.values().for_each(|f| strings(f, out, depth + 1)),
            _ => {}
        }
    }
    let mut texts = Vec::new();
    strings(body, &mut texts, 0);
    let mut keys: Vec<String> = Vec::new();
    for text in texts {
        for (at, _) in text.match_indices("/p/") {
            let key: String = text[at + 3..].chars().take_while(char::is_ascii_alphanumeric).take(32).collect();
            if key.len() >= 4 && !keys.contains(&key) {
                keys.push(key);
                if keys.len() == MAX_POLLS {
                    return keys;
                }
            }
        }
    }
    keys
}

/// The triggers a poll's state (as the API answered it) is.
pub(crate) fn events_of(poll: &Value, space: &str) -> Vec<HookEvent> {
    let key = poll.get("key").and_then(Value::as_str).unwrap_or_default();
    let voters = poll.get("decided_voters_count").and_then(Value::as_u64).unwrap_or(0);
    let closed = poll.get("closed_at").is_some_and(|c| !c.is_null());
    let author = poll.get("author_id").and_then(Value::as_u64).map_or_else(|| "loomio".to_string(), |a| a.to_string());
    let mut happened = vec![(POLL_CREATED, format!("poll:{key}:created"))];
    if voters > 0 {
        happened.push((STANCE_CREATED, format!("poll:{key}:voters:{voters}")));
    }
    if closed {
        happened.push((POLL_CLOSED, format!("poll:{key}:closed")));
    }
    happened
        .into_iter()
        .filter_map(|(kind, delivery_id)| {
            let kind = ActionType::new(kind).ok()?;
            let mut action =
                Action::new(kind, AccountRef::new("loomio", author.as_str()), format!("poll:{key}")).event();
            for field in ["id", "key", "title", "poll_type", "closing_at", "closed_at", "group_id"] {
                if let Some(v) = poll.get(field) {
                    action = action.with(field, v.clone());
                }
            }
            action = action.with("voters", voters).with("space", space).with("process_hint", hint_of(key));
            Some(HookEvent { delivery_id, input: Inbound::Action { action }, from: None })
        })
        .collect()
}

impl WebhookPlatform for LoomioWebhooks {
    fn name(&self) -> &str {
        SPEC.name
    }

    /// Loomio signs nothing: the host's route has checked the URL's token.
    fn secret_in_url(&self) -> bool {
        true
    }

    fn verify_and_parse(
        &self,
        _headers: &HeaderMap,
        body: &[u8],
        _secret: &[u8],
        _now: DateTime<Utc>,
    ) -> Result<Vec<HookEvent>, WebhookError> {
        let payload: Value =
            serde_json::from_slice(body).map_err(|e| WebhookError::Malformed(format!("not JSON: {e}")))?;
        let keys = poll_keys(&payload);
        if keys.is_empty() {
            return Err(WebhookError::Unsupported("a Loomio event that names no poll".into()));
        }
        let kind = ActionType::new(MENTIONED).map_err(WebhookError::Malformed)?;
        let action = Action::new(kind, AccountRef::new("loomio", "loomio"), "mentioned")
            .event()
            .with("keys", keys.into_iter().take(MAX_POLLS).collect::<Vec<_>>());
        Ok(vec![HookEvent { delivery_id: "unconfirmed".into(), input: Inbound::Action { action }, from: None }])
    }

    /// Reads every poll a delivery mentions from the API, with the connection's key: those of
    /// the connection's group become the triggers they are; the rest is dropped.
    fn confirm(
        &self,
        settings: Map<String, Value>,
        credential: Option<String>,
        events: Vec<HookEvent>,
    ) -> BoxFuture<'static, Result<Vec<HookEvent>, WebhookError>> {
        Box::pin(async move {
            let config = LoomioConfig::for_connection(&settings, credential.as_deref())
                .and_then(|c| LoomioConfig::read(&c))
                .map_err(|e| WebhookError::Unconfirmed(format!("the connection cannot ask Loomio: {e}")))?;
            let api = Api::new(&config.url, &config.api_key, config.api, config.timeout())
                .map_err(WebhookError::Unconfirmed)?;
            let space = config.space();
            let mut confirmed = Vec::new();
            for event in events {
                let Inbound::Action { action } = &event.input else { continue };
                let keys: Vec<String> = action
                    .data
                    .get("keys")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect();
                for key in keys.into_iter().take(MAX_POLLS) {
                    let read = match api.call(Method::GET, &format!("/polls/{key}"), &[], None).await {
                        Ok(read) => read,
                        Err(ApiError::NotFound) => {
                            tracing::info!("a Loomio webhook names a poll Loomio does not show: dropped");
                            continue;
                        }
                        Err(e) => return Err(WebhookError::Unconfirmed(e.to_string())),
                    };
                    let Some(poll) = read.get("polls").and_then(Value::as_array).and_then(|p| p.first()) else {
                        continue;
                    };
                    if poll.get("group_id").and_then(Value::as_u64) != Some(config.group_id)
                        || poll.get("key").and_then(Value::as_str) != Some(key.as_str())
                    {
                        tracing::info!("a Loomio webhook names a poll of another group: dropped");
                        continue;
                    }
                    confirmed.extend(events_of(poll, &space));
                }
            }
            Ok(confirmed)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_polls_a_delivery_mentions_are_read_from_any_shape_it_comes_in() {
        let markdown = json!({"text": "Alice closed [Adopt the code](https://www.loomio.com/p/Ab12Cd34/adopt-the-code) and see /p/Ab12Cd34 again", "username": "Loomio"});
        assert_eq!(poll_keys(&markdown), vec!["Ab12Cd34"]);
        let teams = json!({"@type": "MessageCard", "sections": [{"text": "vote: https://l.example/p/Zz9"}, {"text": "https://l.example/p/Qq88Ww77"}]});
        assert_eq!(poll_keys(&teams), vec!["Qq88Ww77"], "a key under four characters is no key");
        assert!(poll_keys(&json!({"text": "a new discussion at /d/abcd1234"})).is_empty());
        let deep = (0..20).fold(json!("/p/Deep1234"), |v, _| json!([v]));
        assert!(poll_keys(&deep).is_empty(), "nesting is bounded");
    }

    #[test]
    fn a_delivery_naming_no_poll_is_not_used_and_one_naming_polls_claims_at_most_five() {
        let hooks = LoomioWebhooks;
        let headers = HeaderMap::new();
        let none = hooks.verify_and_parse(&headers, br#"{"text":"hello"}"#, b"", Utc::now());
        assert!(matches!(none, Err(WebhookError::Unsupported(_))), "{none:?}");
        assert!(matches!(
            hooks.verify_and_parse(&headers, b"not json", b"", Utc::now()),
            Err(WebhookError::Malformed(_))
        ));
        let many: String = (0..9).map(|i| format!(" /p/poll000{i}")).collect();
        let body = serde_json::to_vec(&json!({ "text": many })).unwrap_or_default();
        let claimed = hooks.verify_and_parse(&headers, &body, b"", Utc::now()).unwrap_or_default();
        let Inbound::Action { action } = &claimed[0].input else { panic!("not an action") };
        assert_eq!(action.data.get("keys").and_then(Value::as_array).map(Vec::len), Some(MAX_POLLS));
    }

    #[test]
    fn a_polls_state_is_the_triggers_it_implies_each_keyed_by_that_state() {
        let open = json!({"id": 7, "key": "Ab12Cd34", "group_id": 42, "decided_voters_count": 0, "closed_at": null});
        let ids: Vec<String> = events_of(&open, "g").into_iter().map(|e| e.delivery_id).collect();
        assert_eq!(ids, vec!["poll:Ab12Cd34:created"]);
        let closed = json!({"id": 7, "key": "Ab12Cd34", "group_id": 42, "decided_voters_count": 3, "closed_at": "2026-12-03T10:00:00Z"});
        let events = events_of(&closed, "g");
        let ids: Vec<&str> = events.iter().map(|e| e.delivery_id.as_str()).collect();
        assert_eq!(ids, vec!["poll:Ab12Cd34:created", "poll:Ab12Cd34:voters:3", "poll:Ab12Cd34:closed"]);
        let Inbound::Action { action } = &events[2].input else { panic!("not an action") };
        assert_eq!(action.kind.as_str(), POLL_CLOSED);
        assert_eq!(action.data.get("process_hint").and_then(Value::as_str), Some("poll:Ab12Cd34"));
    }
}
