//! GitHub's webhook deliveries: `X-Hub-Signature-256` checked on the raw body in constant
//! time before anything is read, then every event a trigger.
//!
//! | delivery | what Polity does |
//! |---|---|
//! | no or a wrong `X-Hub-Signature-256` | 401, nothing read |
//! | `ping` | 202 (GitHub shows any 2xx as a good ping), nothing stored |
//! | no `X-GitHub-Event` or `X-GitHub-Delivery`, a body that is no JSON object | 400 |
//! | a comment Polity posted itself (its body carries [`MARK`]) | 202, nothing stored: Polity's own comments never trigger a policy |
//! | any other event | the trigger `github.{event}_{action}` (`github.issues_opened`, `github.pull_request_closed`), or `github.{event}` for an event without an action (`github.push`): its data is the payload's fields, plus `repo`, and for an issue or pull request `number`, `title`, `url`, its place the issue (`OWNER/NAME#N`), its initiator the sender; its dedup key the delivery's GUID |

use chrono::{DateTime, Utc};
use http::HeaderMap;
use polity_governance::action::{Action, ActionType};
use polity_governance::ids::{AccountRef, Place};
use polity_governance::io::Inbound;
use polity_port::webhook::{HookEvent, WebhookError, WebhookPlatform, check_prefixed_sha256, header_text};
use serde_json::Value;

/// What marks a comment as Polity's own (an HTML comment GitHub does not show).
pub const MARK: &str = "<!-- polity -->";

/// GitHub's webhooks.
#[derive(Clone, Copy, Debug, Default)]
pub struct GitHubWebhooks;

/// Checks `X-Hub-Signature-256` against `secret` on the raw `body`.
///
/// # Errors
/// [`WebhookError::BadSignature`] saying what is wrong.
pub fn verify(headers: &HeaderMap, body: &[u8], secret: &[u8]) -> Result<(), WebhookError> {
    check_prefixed_sha256(headers.get("x-hub-signature-256").map(|v| v.as_bytes()), "sha256=", secret, body)
}

/// Lowercase letters, digits and `_` only: what an action name's half may hold.
fn name_part(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    (!lower.is_empty()
        && lower.len() <= 64
        && lower.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'))
    .then_some(lower)
}

/// The trigger a delivery of `event` is.
///
/// # Errors
/// [`WebhookError::Malformed`] or [`WebhookError::Unsupported`].
pub fn parse(event: &str, delivery: &str, body: &[u8]) -> Result<HookEvent, WebhookError> {
    let payload: Value = serde_json::from_slice(body).map_err(|e| WebhookError::Malformed(format!("not JSON: {e}")))?;
    let Value::Object(fields) = &payload else {
        return Err(WebhookError::Malformed("the payload is not a JSON object".into()));
    };
    if payload.pointer("/comment/body").and_then(Value::as_str).is_some_and(|b| b.contains(MARK)) {
        return Err(WebhookError::Unsupported(format!("{event} of Polity's own comment")));
    }
    let event_name = name_part(event).ok_or_else(|| WebhookError::Unsupported(format!("the event `{event}`")))?;
    let name = match payload.get("action").and_then(Value::as_str).and_then(name_part) {
        Some(action) => format!("github.{event_name}_{action}"),
        None => format!("github.{event_name}"),
    };
    let kind = ActionType::new(&name).map_err(WebhookError::Unsupported)?;
    let login = payload.pointer("/sender/login").and_then(Value::as_str).unwrap_or("ghost").to_string();
    let initiator = AccountRef::new("github", login.as_str());
    let mut action = Action::new(kind, initiator.clone(), delivery).event();
    for (key, value) in fields {
        action = action.with(key, value.clone());
    }
    let repo = payload.pointer("/repository/full_name").and_then(Value::as_str).unwrap_or_default().to_string();
    action = action.with("repo", repo.as_str()).with("delivery", delivery);
    let item = payload.get("pull_request").or_else(|| payload.get("issue")).filter(|i| i.is_object());
    if let Some(item) = item
        && let Some(number) = item.get("number").and_then(Value::as_u64)
    {
        action = action
            .with("number", number)
            .with("title", item.get("title").cloned().unwrap_or(Value::Null))
            .with("url", item.get("html_url").cloned().unwrap_or(Value::Null));
        if !repo.is_empty() {
            action = action.at(Place::new("github", format!("{repo}#{number}")));
        }
    }
    Ok(HookEvent {
        delivery_id: delivery.to_string(),
        input: Inbound::Action { action },
        from: Some((initiator, login)),
    })
}

impl WebhookPlatform for GitHubWebhooks {
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
        let event = header_text(headers, "x-github-event")
            .ok_or_else(|| WebhookError::Malformed("no X-GitHub-Event".into()))?;
        let delivery = header_text(headers, "x-github-delivery")
            .ok_or_else(|| WebhookError::Malformed("no X-GitHub-Delivery".into()))?;
        if delivery.len() > 100 || !delivery.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(WebhookError::Malformed("X-GitHub-Delivery is not a GUID".into()));
        }
        if event == "ping" {
            return Err(WebhookError::Unsupported("ping".into()));
        }
        parse(event, delivery, body).map(|e| vec![e])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use polity_port::webhook::hmac_sha256;

    fn signed(secret: &str, body: &[u8], event: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let hex: String = hmac_sha256(secret.as_bytes(), &[body]).iter().map(|b| format!("{b:02x}")).collect();
        headers.insert("x-hub-signature-256", format!("sha256={hex}").parse().unwrap_or_else(|_| unreachable!()));
        headers.insert("x-github-event", event.parse().unwrap_or_else(|_| unreachable!()));
        headers.insert(
            "x-github-delivery",
            "72d3162e-cc78-11e3-81ab-4c9367dc0958".parse().unwrap_or_else(|_| unreachable!()),
        );
        headers
    }

    #[test]
    fn githubs_published_test_vector_verifies() {
        // GitHub's "Validating webhook deliveries" example.
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-hub-signature-256",
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
                .parse()
                .unwrap_or_else(|_| unreachable!()),
        );
        assert_eq!(verify(&headers, b"Hello, World!", b"It's a Secret to Everybody"), Ok(()));
        assert!(verify(&headers, b"Hello, World?", b"It's a Secret to Everybody").is_err());
        assert!(verify(&headers, b"Hello, World!", b"another secret").is_err());
        assert!(verify(&HeaderMap::new(), b"Hello, World!", b"It's a Secret to Everybody").is_err());
    }

    #[test]
    fn an_opened_issue_is_a_trigger_at_the_issue() {
        let body = br#"{"action":"opened","issue":{"number":7,"title":"Add a bench","html_url":"https://github.com/tide/pool/issues/7","user":{"login":"bob"}},"repository":{"full_name":"tide/pool"},"sender":{"login":"bob","type":"User"}}"#;
        let events = GitHubWebhooks
            .verify_and_parse(&signed("s", body, "issues"), body, b"s", Utc::now())
            .unwrap_or_else(|e| panic!("{e}"));
        let Inbound::Action { action } = &events[0].input else { panic!() };
        assert_eq!(action.kind.as_str(), "github.issues_opened");
        assert_eq!(action.initiator, AccountRef::new("github", "bob"));
        assert_eq!(action.place.as_ref().map(|p| p.channel.as_str()), Some("tide/pool#7"));
        assert_eq!(action.data.get("number"), Some(&serde_json::json!(7)));
        assert_eq!(events[0].delivery_id, "72d3162e-cc78-11e3-81ab-4c9367dc0958");
    }

    #[test]
    fn pings_own_comments_and_strange_deliveries_are_not_triggers() {
        let ping = br#"{"zen":"Design for failure.","hook_id":1}"#;
        assert!(matches!(
            GitHubWebhooks.verify_and_parse(&signed("s", ping, "ping"), ping, b"s", Utc::now()),
            Err(WebhookError::Unsupported(_))
        ));
        let own =
            format!(r#"{{"action":"created","comment":{{"body":"tally {MARK}"}},"sender":{{"login":"polity"}}}}"#);
        let own = own.as_bytes();
        assert!(matches!(
            GitHubWebhooks.verify_and_parse(&signed("s", own, "issue_comment"), own, b"s", Utc::now()),
            Err(WebhookError::Unsupported(_))
        ));
        for (event, body) in [("issues", &b"[]"[..]), ("issues", b"not json"), ("Weird.Event", b"{}")] {
            assert!(
                GitHubWebhooks.verify_and_parse(&signed("s", body, event), body, b"s", Utc::now()).is_err(),
                "{event}"
            );
        }
        let mut no_delivery = signed("s", b"{}", "push");
        no_delivery.remove("x-github-delivery");
        assert!(matches!(
            GitHubWebhooks.verify_and_parse(&no_delivery, b"{}", b"s", Utc::now()),
            Err(WebhookError::Malformed(_))
        ));
    }
}
