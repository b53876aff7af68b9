//! What a community's policies can do on Open Collective: decide its collective's expenses
//! (`opencollective.process_expense`) and comment on them (`opencollective.comment`).
//! Nothing else: Open Collective has no messages or reactions to vote with.
//!
//! Every call first reads the expense and refuses one that is not the connection's
//! collective's, so a community's policy never acts on another collective's expense.

use crate::api::{self, Api, ApiError};
use crate::expense::Trigger;
use polity_governance::io::Effect;
use polity_governance::platform::{
    ActionInfo, ActionKind, BoxFuture, Capabilities, Performed, Platform, PlatformError, Request,
};
use serde_json::{Map, Value, json};

/// `opencollective.process_expense`.
pub const PROCESS_EXPENSE: &str = "opencollective.process_expense";
/// `opencollective.comment`.
pub const COMMENT: &str = "opencollective.comment";

/// What the triggers' events carry, for policy authors.
const TRIGGER_FIELDS: &[(&str, &str)] = &[
    ("id", "the expense's number (as in opencollective.com/SLUG/expenses/NUMBER)"),
    ("expense_id", "the same number"),
    ("id_v2", "the expense's GraphQL id"),
    ("amount", "the amount in cents"),
    ("currency", "its currency (USD)"),
    ("description", "what the expense is for"),
    ("status", "its status now (PENDING, APPROVED, REJECTED, PAID ...; DELETED once deleted)"),
    ("submitter", "the payee's slug"),
    ("submitter_name", "the payee's name"),
    ("collective", "the collective's slug"),
    ("link", "the expense's page"),
    ("at", "when it happened (RFC 3339, UTC)"),
];

/// The actions and triggers Open Collective offers policies.
pub fn actions() -> Vec<ActionInfo> {
    let mut all = vec![
        ActionInfo::new(
            PROCESS_EXPENSE,
            ActionKind::Action,
            "approves, unapproves or rejects an expense of the connection's collective (paying needs pay = true)",
            &[
                ("expense_id", "the expense's number (`id` also works)"),
                ("decision", "APPROVE, UNAPPROVE or REJECT (PAY with pay = true; `action` also works)"),
                ("message", "a comment to go with the decision (optional)"),
                ("pay", "true to allow PAY"),
            ],
        ),
        ActionInfo::new(
            COMMENT,
            ActionKind::Action,
            "comments on an expense of the connection's collective",
            &[
                ("expense_id", "the expense's number (`id` also works)"),
                ("text", "the comment as plain text (links stay text)"),
                ("html", "the comment as HTML, instead of text"),
            ],
        ),
    ];
    for trigger in Trigger::ALL {
        let description = match trigger {
            Trigger::Created => "an expense was submitted to the collective",
            Trigger::Approved => "an expense of the collective was approved",
            Trigger::Rejected => "an expense of the collective was rejected",
            Trigger::Paid => "an expense of the collective was paid",
            Trigger::Deleted => "an expense of the collective was deleted",
        };
        all.push(ActionInfo::new(&trigger.action_name(), ActionKind::Trigger, description, TRIGGER_FIELDS));
    }
    all
}

/// A decision on an expense.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Decision {
    Approve,
    Unapprove,
    Reject,
    Pay,
}

impl Decision {
    fn read(text: &str) -> Option<Self> {
        match text.trim().to_ascii_uppercase().as_str() {
            "APPROVE" => Some(Self::Approve),
            "UNAPPROVE" => Some(Self::Unapprove),
            "REJECT" => Some(Self::Reject),
            "PAY" => Some(Self::Pay),
            _ => None,
        }
    }

    fn action(self) -> &'static str {
        match self {
            Self::Approve => "APPROVE",
            Self::Unapprove => "UNAPPROVE",
            Self::Reject => "REJECT",
            Self::Pay => "PAY",
        }
    }

    fn verb(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::Unapprove => "unapprove",
            Self::Reject => "reject",
            Self::Pay => "pay",
        }
    }

    /// The status the decision leaves the expense in: an expense there already is done.
    fn outcome(self) -> &'static str {
        match self {
            Self::Approve => "APPROVED",
            Self::Unapprove => "PENDING",
            Self::Reject => "REJECTED",
            Self::Pay => "PAID",
        }
    }
}

/// Open Collective for one community: its connection's collective, if the community
/// governs it, and nothing else.
#[derive(Clone, Debug)]
pub struct OcPlatform {
    name: String,
    api: Api,
    collective: String,
    /// Whether the community's spaces include the collective.
    governs: bool,
}

impl OcPlatform {
    /// The connection `name`'s platform for a community whose spaces are `spaces`.
    pub(crate) fn new(name: &str, api: Api, collective: &str, spaces: &[String]) -> Self {
        let governs = spaces.iter().any(|s| s == collective);
        Self { name: name.into(), api, collective: collective.into(), governs }
    }

    async fn call(&self, request: &Request<'_>) -> Result<Performed, PlatformError> {
        let Effect::Call { name, params, .. } = request.effect else {
            return Err(refusal(request.effect));
        };
        if !self.governs {
            return Err(PlatformError::Permanent(format!(
                "the collective {} is not governed by this community",
                self.collective
            )));
        }
        match name.as_str() {
            PROCESS_EXPENSE => self.process(params).await,
            COMMENT => self.comment(params, request.key).await,
            other => Err(PlatformError::Permanent(format!(
                "Open Collective has no action {other}: it offers {PROCESS_EXPENSE} and {COMMENT}"
            ))),
        }
    }

    /// Reads expense `id` with `operation` and checks it is the collective's.
    async fn own_expense(&self, id: i64, operation: api::Operation) -> Result<Value, PlatformError> {
        let data = match self.api.run(operation, json!({ "ref": api::expense_ref(id) })).await {
            Ok(data) => data,
            Err(e) if e.is_not_found() => return Err(no_expense(id)),
            Err(e) => return Err(e.into_platform()),
        };
        let Some(expense) = data.get("expense").filter(|e| !e.is_null()) else { return Err(no_expense(id)) };
        let owner = expense.pointer("/account/slug").and_then(Value::as_str).unwrap_or_default();
        if owner != self.collective {
            return Err(PlatformError::Permanent(format!(
                "expense {id} is not {}'s: a community acts only on its own collective's expenses",
                self.collective
            )));
        }
        Ok(expense.clone())
    }

    async fn process(&self, params: &Map<String, Value>) -> Result<Performed, PlatformError> {
        let id = expense_id(params, PROCESS_EXPENSE)?;
        let typed = params.get("decision").or_else(|| params.get("action")).and_then(Value::as_str).unwrap_or("");
        let Some(decision) = Decision::read(typed) else {
            return Err(PlatformError::Permanent(format!(
                "{PROCESS_EXPENSE} needs decision = APPROVE, UNAPPROVE or REJECT (not `{typed}`)"
            )));
        };
        if decision == Decision::Pay && params.get("pay") != Some(&Value::Bool(true)) {
            return Err(PlatformError::Permanent(
                "paying an expense is not allowed unless the policy says pay = true".into(),
            ));
        }
        let message = params.get("message").and_then(Value::as_str).map(str::trim).filter(|m| !m.is_empty());
        let expense = self.own_expense(id, api::EXPENSE).await?;
        let status = expense.get("status").and_then(Value::as_str).unwrap_or("unknown");
        if status == decision.outcome() {
            // Done already (by someone, or by this effect before a crash): doing it again would
            // post its message twice.
            tracing::debug!(expense = id, status, "an expense decision that is in place already");
            return Ok(Performed::default());
        }
        let variables = json!({ "ref": api::expense_ref(id), "action": decision.action(), "message": message });
        match self.api.run(api::PROCESS_EXPENSE, variables).await {
            Ok(_) => Ok(Performed::default()),
            Err(ApiError::Graphql { code: Some(code), message }) if code == "Forbidden" => {
                Err(PlatformError::Permanent(format!(
                    "Open Collective refused to {} expense {id} (it is {status}): {message}",
                    decision.verb()
                )))
            }
            Err(e) => Err(e.into_platform()),
        }
    }

    async fn comment(&self, params: &Map<String, Value>, key: i64) -> Result<Performed, PlatformError> {
        let id = expense_id(params, COMMENT)?;
        let given = |k: &str| params.get(k).and_then(Value::as_str).map(str::trim).filter(|t| !t.is_empty());
        let body = match (given("html"), given("text")) {
            (Some(html), _) => html.to_string(),
            (None, Some(text)) => text_to_html(text),
            (None, None) => return Err(PlatformError::Permanent(format!("{COMMENT} needs text (or html)"))),
        };
        let expense = self.own_expense(id, api::EXPENSE_COMMENTS).await?;
        let posted = expense
            .pointer("/comments/nodes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|c| c.get("html").and_then(Value::as_str).is_some_and(|html| has_marker(html, key)));
        if posted {
            tracing::debug!(expense = id, key, "a comment posted before a retry");
            return Ok(Performed::default());
        }
        let html = format!("{body}<p><small>{}</small></p>", marker(key));
        self.api
            .run(api::COMMENT, json!({ "ref": api::expense_ref(id), "html": html }))
            .await
            .map_err(ApiError::into_platform)?;
        Ok(Performed::default())
    }
}

impl Platform for OcPlatform {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }

    fn actions(&self) -> Vec<ActionInfo> {
        actions()
    }

    fn perform<'a>(&'a self, request: Request<'a>) -> BoxFuture<'a, Result<Performed, PlatformError>> {
        Box::pin(async move { self.call(&request).await })
    }
}

/// Why an effect other than a call is refused.
fn refusal(effect: &Effect) -> PlatformError {
    let what = match effect {
        Effect::Revert { .. } | Effect::Execute { .. } => {
            "expense events are triggers: Polity cannot undo or redo them on Open Collective"
        }
        Effect::StartProcess { .. } => "Open Collective runs no decision processes",
        _ => {
            "Open Collective holds no votes: it has no messages or reactions; hold the vote on a chat connection and decide expenses with opencollective.process_expense"
        }
    };
    PlatformError::Permanent(what.into())
}

fn no_expense(id: i64) -> PlatformError {
    PlatformError::Permanent(format!("Open Collective has no expense {id}"))
}

/// The expense number of a call: `expense_id` (or `id`), a number or a numeric string.
fn expense_id(params: &Map<String, Value>, action: &str) -> Result<i64, PlatformError> {
    let given = params.get("expense_id").or_else(|| params.get("id"));
    let id = match given {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.trim().trim_start_matches('#').parse().ok(),
        _ => None,
    };
    id.filter(|i| *i > 0).ok_or_else(|| {
        PlatformError::Permanent(format!(
            "{action} needs expense_id: the expense's number (as in opencollective.com/SLUG/expenses/NUMBER)"
        ))
    })
}

/// The text that marks the comment of effect `key`, so a retry finds it.
fn marker(key: i64) -> String {
    format!("polity:{key}")
}

/// Whether `html` holds effect `key`'s marker (and not a longer number's).
fn has_marker(html: &str, key: i64) -> bool {
    let marker = marker(key);
    html.match_indices(&marker).any(|(at, m)| !html[at + m.len()..].starts_with(|c: char| c.is_ascii_digit()))
}

/// Plain text as HTML paragraphs: escaped, a blank line between paragraphs, line breaks
/// kept; a link stays text.
pub fn text_to_html(text: &str) -> String {
    let text = text.replace("\r\n", "\n");
    text.split("\n\n")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| format!("<p>{}</p>", p.lines().map(escape).collect::<Vec<_>>().join("<br>")))
        .collect()
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_becomes_escaped_paragraphs() {
        assert_eq!(
            text_to_html("Approved <b>by</b> vote.\nSee https://x.example/?a=1&b=2\n\n\nThanks"),
            "<p>Approved &lt;b&gt;by&lt;/b&gt; vote.<br>See https://x.example/?a=1&amp;b=2</p><p>Thanks</p>"
        );
    }

    #[test]
    fn a_marker_is_its_key_alone() {
        assert!(has_marker("<p>x</p><p><small>polity:42</small></p>", 42));
        assert!(!has_marker("<p><small>polity:421</small></p>", 42));
        assert!(!has_marker("<p>nothing</p>", 42));
    }

    #[test]
    fn an_expense_id_is_a_number_or_its_text() {
        let params = |v: Value| v.as_object().cloned().unwrap();
        assert_eq!(expense_id(&params(json!({"expense_id": 12})), "x"), Ok(12));
        assert_eq!(expense_id(&params(json!({"id": " 12 "})), "x"), Ok(12));
        assert!(expense_id(&params(json!({"expense_id": "twelve"})), "x").is_err());
        assert!(expense_id(&params(json!({})), "x").is_err());
    }
}
