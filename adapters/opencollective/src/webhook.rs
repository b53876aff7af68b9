//! Open Collective's webhook deliveries: unsigned, so the host checks the token in their URL,
//! [`OcWebhooks::verify_and_parse`] reads what a delivery claims, and
//! [`OcWebhooks::confirm`] keeps only what the GraphQL API itself says happened.
//!
//! Nothing a delivery's body says is recorded: the events [`OcWebhooks::confirm`] returns are
//! built from the API's answers alone.

use crate::api::{self, Api, ApiError};
use crate::config::{API_URL, DEFAULT_TIMEOUT, SPEC, slug_of};
use crate::expense::{Facts, Happening, Trigger, claim_of, format_time, parse_time, same_time};
use chrono::{DateTime, Utc};
use http::HeaderMap;
use polity_governance::platform::BoxFuture;
use polity_port::webhook::{HookEvent, WebhookError, WebhookPlatform};
use serde_json::{Map, Value, json};

/// Open Collective's webhooks.
#[derive(Clone, Copy, Debug, Default)]
pub struct OcWebhooks;

impl WebhookPlatform for OcWebhooks {
    fn name(&self) -> &str {
        SPEC.name
    }

    /// Open Collective signs nothing: the host's route has checked the URL's token.
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
        parse(body).map(|h| vec![hook_event(h)])
    }

    fn confirm(
        &self,
        settings: Map<String, Value>,
        credential: Option<String>,
        events: Vec<HookEvent>,
    ) -> BoxFuture<'static, Result<Vec<HookEvent>, WebhookError>> {
        Box::pin(async move {
            let collective = settings.get("collective").and_then(Value::as_str).map(slug_of).unwrap_or_default();
            if collective.is_empty() {
                return Err(WebhookError::Unconfirmed("the connection names no collective".into()));
            }
            let Some(token) = credential.filter(|t| !t.trim().is_empty()) else {
                return Err(WebhookError::Unconfirmed("the connection has no personal token to ask with".into()));
            };
            let url = settings.get("api").and_then(Value::as_str).unwrap_or(API_URL);
            let api = Api::new(url, &token, DEFAULT_TIMEOUT).map_err(WebhookError::Unconfirmed)?;
            let mut confirmed = Vec::with_capacity(events.len());
            for event in events {
                let Some((id, trigger, at)) = claim_of(&event.input) else {
                    tracing::warn!(delivery = %event.delivery_id, "an Open Collective event Polity did not build is left out");
                    continue;
                };
                let found = confirm_one(&api, &collective, id, trigger, at)
                    .await
                    .map_err(|e| WebhookError::Unconfirmed(e.to_string()))?;
                match found {
                    Ok(happening) => confirmed.push(hook_event(happening)),
                    Err(why) => tracing::warn!(
                        expense = id,
                        claim = trigger.verb(),
                        collective = %collective,
                        "an Open Collective delivery is left out: {why}"
                    ),
                }
            }
            Ok(confirmed)
        })
    }
}

fn hook_event(h: Happening) -> HookEvent {
    HookEvent { delivery_id: h.key, input: h.input, from: Some(h.from) }
}

/// What one delivery claims, as a provisional event (its initiator on `opencollective`).
fn parse(body: &[u8]) -> Result<Happening, WebhookError> {
    let delivery: Value =
        serde_json::from_slice(body).map_err(|e| WebhookError::Malformed(format!("not JSON: {e}")))?;
    let kind = delivery
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| WebhookError::Malformed("a delivery without its activity's type".into()))?;
    let trigger = Trigger::from_webhook(kind).ok_or_else(|| WebhookError::Unsupported(kind.to_string()))?;
    let at = delivery
        .get("createdAt")
        .and_then(Value::as_str)
        .and_then(parse_time)
        .ok_or_else(|| WebhookError::Malformed(format!("{kind} without a readable createdAt")))?;
    let data = delivery.get("data").ok_or_else(|| WebhookError::Malformed(format!("{kind} without data")))?;
    let facts = Facts::claimed(data, trigger)
        .ok_or_else(|| WebhookError::Malformed(format!("{kind} without the expense's number (data.expense.id)")))?;
    Ok(facts.event(trigger, at, SPEC.name))
}

/// What the API says of one claim: the event as it stands there, or why the claim is
/// contradicted. The outer error: the API did not answer.
async fn confirm_one(
    api: &Api,
    collective: &str,
    id: i64,
    trigger: Trigger,
    at: DateTime<Utc>,
) -> Result<Result<Happening, String>, ApiError> {
    if trigger == Trigger::Deleted {
        return confirm_deletion(api, collective, id, at).await;
    }
    let data = match api.run(api::EXPENSE, json!({ "ref": api::expense_ref(id) })).await {
        Ok(data) => data,
        Err(e) if e.is_not_found() => return Ok(Err("Open Collective has no such expense".into())),
        Err(e) => return Err(e),
    };
    let expense = data.get("expense").filter(|e| !e.is_null());
    let Some(expense) = expense else { return Ok(Err("Open Collective has no such expense".into())) };
    let Some(facts) = Facts::from_expense(expense) else {
        return Err(ApiError::Other("Open Collective's expense lacks its number, status or collective".into()));
    };
    if facts.collective != collective {
        return Ok(Err(format!("the expense is {}'s, not this connection's", facts.collective)));
    }
    let happened = expense.get("activities").and_then(Value::as_array).into_iter().flatten().any(|a| {
        a.get("type").and_then(Value::as_str) == Some(trigger.graphql_type().as_str())
            && a.get("createdAt").and_then(Value::as_str).and_then(parse_time).is_some_and(|t| same_time(t, at))
    });
    if !happened {
        return Ok(Err(format!(
            "the expense (now {}) has no {} activity at {}",
            facts.status,
            trigger.verb(),
            format_time(at)
        )));
    }
    Ok(Ok(facts.event(trigger, at, SPEC.name)))
}

/// A deletion stands when the expense is gone (`null`, or a `NotFound` error) and the
/// collective's activities hold its deletion at that time; the event is built from that
/// activity's data.
async fn confirm_deletion(
    api: &Api,
    collective: &str,
    id: i64,
    at: DateTime<Utc>,
) -> Result<Result<Happening, String>, ApiError> {
    let window = chrono::Duration::seconds(1);
    let (from, to) = (format_time(at - window), format_time(at + window));
    let variables = json!({ "ref": api::expense_ref(id), "slug": collective, "from": from, "to": to });
    let data = match api.run(api::DELETED_EXPENSE, variables).await {
        Ok(data) => data,
        // The expense is gone, and the error failed the whole answer: the deletions are
        // asked for alone.
        Err(e) if e.is_not_found() => {
            api.run(api::DELETIONS, json!({ "slug": collective, "from": from, "to": to })).await?
        }
        Err(e) => return Err(e),
    };
    if data.get("expense").is_some_and(|e| !e.is_null()) {
        return Ok(Err("the expense still exists".into()));
    }
    let Some(nodes) = data.pointer("/activities/nodes").and_then(Value::as_array) else {
        return Ok(Err("the token's owner may not read the collective's activities (not an admin)".into()));
    };
    let activity = nodes.iter().find(|a| {
        let when = a.get("createdAt").and_then(Value::as_str).and_then(parse_time);
        let of = a
            .pointer("/expense/legacyId")
            .and_then(Value::as_i64)
            .or_else(|| a.pointer("/data/expense/id").and_then(Value::as_i64));
        when.is_some_and(|t| same_time(t, at)) && of == Some(id)
    });
    let Some(activity) = activity else {
        return Ok(Err(format!("the collective has no deletion of it at {}", format_time(at))));
    };
    let data = activity.get("data").cloned().unwrap_or(Value::Null);
    let facts =
        Facts::from_data(&data, crate::expense::DELETED, collective).unwrap_or_else(|| deleted_facts(id, collective));
    if facts.collective != collective {
        return Ok(Err(format!("the deletion is {}'s, not this connection's", facts.collective)));
    }
    Ok(Ok(facts.event(Trigger::Deleted, at, SPEC.name)))
}

/// What is known of a deleted expense whose deletion carried no data.
pub(crate) fn deleted_facts(id: i64, collective: &str) -> Facts {
    Facts {
        legacy_id: id,
        id_v2: None,
        amount: None,
        currency: None,
        description: None,
        status: crate::expense::DELETED.into(),
        submitter: ("incognito".into(), "incognito".into()),
        collective: collective.to_string(),
    }
}
