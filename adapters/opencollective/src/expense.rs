//! The five expense triggers and the events built for them: the same dedup key and the same
//! fields whether a webhook (confirmed over GraphQL) or a poll saw the activity.

use chrono::{DateTime, SecondsFormat, Utc};
use polity_governance::action::{Action, ActionType};
use polity_governance::ids::AccountRef;
use polity_governance::io::Inbound;
use serde_json::{Map, Value};

use crate::config::WEBSITE;

/// An expense activity Polity turns into a trigger event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Trigger {
    Created,
    Approved,
    Rejected,
    Paid,
    Deleted,
}

impl Trigger {
    pub const ALL: [Self; 5] = [Self::Created, Self::Approved, Self::Rejected, Self::Paid, Self::Deleted];

    /// `created`, as in the dedup key and the action name.
    pub fn verb(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Paid => "paid",
            Self::Deleted => "deleted",
        }
    }

    /// `opencollective.expense_created`.
    pub fn action_name(self) -> String {
        format!("opencollective.expense_{}", self.verb())
    }

    /// The activity type a webhook delivery names: `collective.expense.created`.
    pub fn webhook_type(self) -> String {
        format!("collective.expense.{}", self.verb())
    }

    /// The activity type GraphQL names: `COLLECTIVE_EXPENSE_CREATED`.
    pub fn graphql_type(self) -> String {
        format!("COLLECTIVE_EXPENSE_{}", self.verb().to_ascii_uppercase())
    }

    pub fn from_webhook(kind: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.webhook_type() == kind)
    }

    pub fn from_graphql(kind: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.graphql_type() == kind)
    }

    pub fn from_action(kind: &ActionType) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.action_name() == kind.as_str())
    }

    /// The status an expense has right after the activity, for a claim not confirmed yet.
    fn implied_status(self) -> &'static str {
        match self {
            Self::Created => "PENDING",
            Self::Approved => "APPROVED",
            Self::Rejected => "REJECTED",
            Self::Paid => "PAID",
            Self::Deleted => DELETED,
        }
    }
}

/// The `status` of a deleted expense's event (Open Collective has no such status: the
/// expense is gone).
pub const DELETED: &str = "DELETED";

/// The dedup key of an expense activity: `expense:{legacyId}:{verb}:{createdAt in UTC ms}`.
pub fn dedup_key(legacy_id: i64, trigger: Trigger, at: DateTime<Utc>) -> String {
    format!("expense:{legacy_id}:{}:{}", trigger.verb(), at.timestamp_millis())
}

/// An activity time as Open Collective writes it (`2024-05-01T12:34:56.789Z`).
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text).ok().map(|t| t.with_timezone(&Utc))
}

/// A time as Polity writes it: RFC 3339, UTC, milliseconds.
pub fn format_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Whether two activity times are the same to the millisecond (how both channels carry them).
pub fn same_time(a: DateTime<Utc>, b: DateTime<Utc>) -> bool {
    a.timestamp_millis() == b.timestamp_millis()
}

/// What is known of an expense.
#[derive(Clone, Debug, PartialEq)]
pub struct Facts {
    pub legacy_id: i64,
    pub id_v2: Option<String>,
    /// In cents.
    pub amount: Option<i64>,
    pub currency: Option<String>,
    pub description: Option<String>,
    pub status: String,
    /// The payee's slug and name (who the expense is from; `incognito` when hidden).
    pub submitter: (String, String),
    /// The collective's slug (the account the expense was submitted to).
    pub collective: String,
}

/// The submitter of an expense whose payee is hidden (an incognito profile).
const INCOGNITO: &str = "incognito";

fn text(value: &Value, pointer: &str) -> Option<String> {
    value.pointer(pointer).and_then(Value::as_str).map(str::to_string)
}

fn integer(value: &Value, pointer: &str) -> Option<i64> {
    let v = value.pointer(pointer)?;
    // Amounts are whole cents; a float from a lenient serialiser is rounded.
    #[allow(clippy::cast_possible_truncation)]
    v.as_i64().or_else(|| v.as_f64().filter(|f| f.is_finite() && f.fract() == 0.0).map(|f| f as i64))
}

fn account(value: &Value, pointer: &str) -> (String, String) {
    let slug = text(value, &format!("{pointer}/slug")).unwrap_or_else(|| INCOGNITO.to_string());
    let name = text(value, &format!("{pointer}/name")).unwrap_or_else(|| slug.clone());
    (slug, name)
}

impl Facts {
    /// From a GraphQL `Expense` (`legacyId`, `id`, `amount`, `currency`, `description`,
    /// `status`, `account { slug }`, `payee { slug name }`).
    pub fn from_expense(expense: &Value) -> Option<Self> {
        Some(Self {
            legacy_id: integer(expense, "/legacyId")?,
            id_v2: text(expense, "/id"),
            amount: integer(expense, "/amount"),
            currency: text(expense, "/currency"),
            description: text(expense, "/description"),
            status: text(expense, "/status")?,
            submitter: account(expense, "/payee"),
            collective: text(expense, "/account/slug")?,
        })
    }

    /// From an activity's `data` as Open Collective writes it (a webhook delivery's, an
    /// activity's): `expense { id idV2 amount currency description }`, `fromCollective`,
    /// `collective`; `collective` is `fallback` when the data does not name it.
    pub fn from_data(data: &Value, status: &str, fallback: &str) -> Option<Self> {
        Some(Self {
            legacy_id: integer(data, "/expense/id")?,
            id_v2: text(data, "/expense/idV2"),
            amount: integer(data, "/expense/amount"),
            currency: text(data, "/expense/currency"),
            description: text(data, "/expense/description"),
            status: status.to_string(),
            submitter: account(data, "/fromCollective"),
            collective: text(data, "/collective/slug").unwrap_or_else(|| fallback.to_string()),
        })
    }

    /// What a webhook delivery claims, before it is confirmed.
    pub fn claimed(data: &Value, trigger: Trigger) -> Option<Self> {
        Self::from_data(data, trigger.implied_status(), "")
    }

    /// `https://opencollective.com/{collective}/expenses/{legacyId}`.
    pub fn link(&self) -> String {
        format!("{WEBSITE}/{}/expenses/{}", self.collective, self.legacy_id)
    }

    /// The trigger event of `trigger` at `at`, its initiator an account of `platform` (the
    /// connection's name; `opencollective` where it is not known).
    pub fn event(&self, trigger: Trigger, at: DateTime<Utc>, platform: &str) -> Happening {
        let submitter = AccountRef::new(platform, &self.submitter.0);
        let opt = |v: &Option<String>| v.clone().map_or(Value::Null, Value::String);
        let mut data = Map::new();
        data.insert("id".into(), self.legacy_id.into());
        data.insert("expense_id".into(), self.legacy_id.into());
        data.insert("id_v2".into(), opt(&self.id_v2));
        data.insert("amount".into(), self.amount.map_or(Value::Null, Value::from));
        data.insert("currency".into(), opt(&self.currency));
        data.insert("description".into(), opt(&self.description));
        data.insert("status".into(), self.status.clone().into());
        data.insert("submitter".into(), self.submitter.0.clone().into());
        data.insert("submitter_name".into(), self.submitter.1.clone().into());
        data.insert("collective".into(), self.collective.clone().into());
        data.insert("link".into(), self.link().into());
        data.insert("at".into(), format_time(at).into());
        let kind = ActionType::new(&trigger.action_name())
            .unwrap_or_else(|_| unreachable!("the five trigger names are action names"));
        let mut action = Action::new(kind, submitter.clone(), self.legacy_id.to_string()).event();
        action.data = data.into();
        Happening {
            key: dedup_key(self.legacy_id, trigger, at),
            input: Inbound::Action { action },
            from: (submitter, self.submitter.1.clone()),
        }
    }
}

/// One trigger event: its dedup key, the input and who it is from.
#[derive(Clone, Debug, PartialEq)]
pub struct Happening {
    pub key: String,
    pub input: Inbound,
    pub from: (AccountRef, String),
}

/// The expense number, trigger and time of an event this crate built.
pub fn claim_of(input: &Inbound) -> Option<(i64, Trigger, DateTime<Utc>)> {
    let Inbound::Action { action } = input else { return None };
    let trigger = Trigger::from_action(&action.kind)?;
    let id = action.data.get("id").and_then(Value::as_i64)?;
    let at = action.data.get("at").and_then(Value::as_str).and_then(parse_time)?;
    Some((id, trigger, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_in_both_channels() {
        for t in Trigger::ALL {
            assert_eq!(Trigger::from_webhook(&t.webhook_type()), Some(t));
            assert_eq!(Trigger::from_graphql(&t.graphql_type()), Some(t));
            assert_eq!(Trigger::from_action(&ActionType::new(&t.action_name()).unwrap()), Some(t));
        }
        assert_eq!(Trigger::Approved.graphql_type(), "COLLECTIVE_EXPENSE_APPROVED");
        assert_eq!(Trigger::from_webhook("collective.expense.updated"), None);
    }

    #[test]
    fn keys_are_the_same_for_any_spelling_of_the_time() {
        let a = parse_time("2024-05-01T12:34:56.789Z").unwrap();
        let b = parse_time("2024-05-01T14:34:56.789+02:00").unwrap();
        assert_eq!(dedup_key(12, Trigger::Paid, a), dedup_key(12, Trigger::Paid, b));
        assert_eq!(dedup_key(12, Trigger::Paid, a), "expense:12:paid:1714566896789");
        assert_eq!(format_time(a), "2024-05-01T12:34:56.789Z");
    }
}
