//! Actions: what happens on a platform (a trigger, a governable action) or what Polity is
//! asked to do (a request such as a role grant, an action a policy calls by name).

use crate::ids::{AccountRef, Place};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;

/// The name of an action or trigger: `PLATFORM.NAME`, e.g. `opencollective.expense_created`,
/// `discord.rename_channel`, `polity.role_grant`. Lowercase letters, digits and `_`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ActionType(String);

impl ActionType {
    /// # Errors
    /// Says what shape is expected when `name` is not `platform.name`.
    pub fn new(name: &str) -> Result<Self, String> {
        let ok_part =
            |p: &str| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        match name.split_once('.') {
            Some((platform, verb)) if ok_part(platform) && ok_part(verb) => Ok(Self(name.to_string())),
            _ => Err(format!(
                "`{name}` is not an action name: write PLATFORM.NAME in lowercase, e.g. discord.rename_channel"
            )),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The platform half, `discord` in `discord.rename_channel`.
    pub fn platform(&self) -> &str {
        self.0.split_once('.').map_or(self.0.as_str(), |(p, _)| p)
    }

    /// Actions that change governance itself (roles, permissions, policies, integrations)
    /// are `polity.*` and are governed by constitution policies.
    pub fn is_constitutional(&self) -> bool {
        self.platform() == "polity" && self.0 != PROPOSE
    }
}

/// The action type of a plain proposal, a decision with no platform action behind it.
pub const PROPOSE: &str = "polity.propose";

/// The trigger event of a reaction added on a platform: `{platform}.reaction_added`, with
/// `message`, `channel` and `emoji`, its initiator the member who reacted.
pub const REACTION_ADDED: &str = "reaction_added";
/// The trigger event of a reaction taken back: `{platform}.reaction_removed`.
pub const REACTION_REMOVED: &str = "reaction_removed";

impl TryFrom<String> for ActionType {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        Self::new(&value)
    }
}

impl From<ActionType> for String {
    fn from(value: ActionType) -> Self {
        value.0
    }
}

impl fmt::Display for ActionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which actions a permission or a policy covers: one action (`discord.rename_channel`),
/// every action of a platform (`discord.*`) or every action (`*`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ActionPattern(String);

impl ActionPattern {
    /// # Errors
    /// Says what shape is expected.
    pub fn new(text: &str) -> Result<Self, String> {
        if text == "*" {
            return Ok(Self(text.into()));
        }
        if let Some(platform) = text.strip_suffix(".*") {
            if ActionType::new(&format!("{platform}.x")).is_err() {
                return Err(format!(
                    "`{text}` is not an action pattern: write PLATFORM.* in lowercase, e.g. discord.*"
                ));
            }
            return Ok(Self(text.into()));
        }
        ActionType::new(text).map(|t| Self(t.0))
    }

    pub fn any() -> Self {
        Self("*".into())
    }

    pub fn matches(&self, action: &ActionType) -> bool {
        self.specificity(action).is_some()
    }

    /// How closely the pattern names the action: 2 exactly, 1 by platform, 0 by `*`;
    /// `None` when it does not match.
    pub fn specificity(&self, action: &ActionType) -> Option<u8> {
        if self.0 == "*" {
            Some(0)
        } else if let Some(platform) = self.0.strip_suffix(".*") {
            (action.platform() == platform).then_some(1)
        } else {
            (self.0 == action.0).then_some(2)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ActionPattern {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        Self::new(&value)
    }
}

impl From<ActionPattern> for String {
    fn from(value: ActionPattern) -> Self {
        value.0
    }
}

impl fmt::Display for ActionPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether the action already happened on the platform (and must be reverted while it is
/// voted on) or is a request that only happens if allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionStatus {
    /// A governable action that already happened: reverted while it is voted on.
    Performed,
    /// A request (a command): carried out only when allowed.
    Requested,
    /// An event that cannot be reverted: it can only trigger policies.
    Event,
}

/// One action, normalized: what, by whom, where, with which data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Action {
    pub kind: ActionType,
    pub initiator: AccountRef,
    pub place: Option<Place>,
    /// The platform's own id for this action (message id, expense id ...), used to revert and
    /// re-execute it and to deduplicate deliveries.
    pub source_id: String,
    pub status: ActionStatus,
    /// Everything else the platform told us: the message text, the old channel name, the amount.
    #[serde(default)]
    pub data: ActionData,
}

impl Action {
    pub fn new(kind: ActionType, initiator: AccountRef, source_id: impl Into<String>) -> Self {
        Self {
            kind,
            initiator,
            place: None,
            source_id: source_id.into(),
            status: ActionStatus::Performed,
            data: ActionData::new(),
        }
    }

    pub fn at(mut self, place: Place) -> Self {
        self.place = Some(place);
        self
    }

    pub fn requested(mut self) -> Self {
        self.status = ActionStatus::Requested;
        self
    }

    pub fn event(mut self) -> Self {
        self.status = ActionStatus::Event;
        self
    }

    /// What scripts and templates see as `action`: the data fields, plus `kind`, `id` (the
    /// platform's id unless the data has its own), `initiator`, `platform` and `channel`.
    pub fn to_json(&self) -> Value {
        let mut m = self.data.to_map();
        m.insert("kind".into(), Value::String(self.kind.to_string()));
        m.entry("id").or_insert_with(|| Value::String(self.source_id.clone()));
        m.insert("source_id".into(), Value::String(self.source_id.clone()));
        m.insert("initiator".into(), Value::String(self.initiator.to_string()));
        if let Some(p) = &self.place {
            m.insert("platform".into(), Value::String(p.platform.to_string()));
            m.insert("channel".into(), Value::String(p.channel.to_string()));
        }
        Value::Object(m)
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.data.insert(key.to_string(), value.into());
        self
    }

    /// A short description for vote messages: the `summary`, `description` or `text` field
    /// if any.
    pub fn summary(&self) -> String {
        for key in ["summary", "description", "text", "title", "name"] {
            if let Some(Value::String(s)) = self.data.get(key) {
                return s.clone();
            }
        }
        self.kind.to_string()
    }
}

/// An action's data fields by name, in name order, serialized as a JSON object.
///
/// A sorted vector rather than `serde_json`'s map: an action holds a handful of fields, and a
/// map's tree node keeps room for eleven (616 bytes): thousands of open proposals each held
/// one, mostly empty.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ActionData(Vec<(String, Value)>);

impl ActionData {
    pub fn new() -> Self {
        Self::default()
    }

    fn find(&self, key: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(key))
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.find(key).ok().map(|i| &self.0[i].1)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        self.find(key).ok().map(|i| &mut self.0[i].1)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.find(key).is_ok()
    }

    /// Sets a field, returning the value it replaced.
    pub fn insert(&mut self, key: String, value: Value) -> Option<Value> {
        match self.find(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, value)),
            Err(i) => {
                self.0.insert(i, (key, value));
                None
            }
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<Value> {
        self.find(key).ok().map(|i| self.0.remove(i).1)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The fields in name order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&String, &Value)> + ExactSizeIterator {
        self.0.iter().map(|(k, v)| (k, v))
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &String> + ExactSizeIterator {
        self.0.iter().map(|(k, _)| k)
    }

    /// The fields as a JSON map.
    pub fn to_map(&self) -> Map<String, Value> {
        self.0.iter().cloned().collect()
    }
}

impl std::ops::Index<&str> for ActionData {
    type Output = Value;
    /// The field's value, as a map's index is.
    ///
    /// # Panics
    /// When there is no such field: use [`ActionData::get`] where there may be none.
    fn index(&self, key: &str) -> &Value {
        self.get(key).unwrap_or_else(|| panic!("no `{key}` in the action's data"))
    }
}

impl From<Map<String, Value>> for ActionData {
    fn from(map: Map<String, Value>) -> Self {
        // A map iterates in key order: already sorted, each key once.
        let mut fields: Vec<(String, Value)> = map.into_iter().collect();
        fields.shrink_to_fit();
        Self(fields)
    }
}

impl From<ActionData> for Map<String, Value> {
    fn from(data: ActionData) -> Self {
        data.0.into_iter().collect()
    }
}

impl FromIterator<(String, Value)> for ActionData {
    /// The last value of a key counts, as with repeated inserts.
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(iter: I) -> Self {
        let mut fields: Vec<(String, Value)> = iter.into_iter().collect();
        // Stable: of a repeated key the last value stays last, and is kept.
        fields.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out: Vec<(String, Value)> = Vec::with_capacity(fields.len());
        for (k, v) in fields {
            match out.last_mut() {
                Some((last, kept)) if *last == k => *kept = v,
                _ => out.push((k, v)),
            }
        }
        Self(out)
    }
}

impl Extend<(String, Value)> for ActionData {
    fn extend<I: IntoIterator<Item = (String, Value)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

impl IntoIterator for ActionData {
    type Item = (String, Value);
    type IntoIter = std::vec::IntoIter<(String, Value)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a ActionData {
    type Item = (&'a String, &'a Value);
    type IntoIter =
        std::iter::Map<std::slice::Iter<'a, (String, Value)>, fn(&'a (String, Value)) -> (&'a String, &'a Value)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

impl Serialize for ActionData {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for ActionData {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = ActionData;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of action data")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut access: A) -> Result<ActionData, A::Error> {
                let mut fields: Vec<(String, Value)> = Vec::with_capacity(access.size_hint().unwrap_or(0).min(64));
                while let Some((k, v)) = access.next_entry::<String, Value>()? {
                    fields.push((k, v));
                }
                Ok(fields.into_iter().collect())
            }
        }
        deserializer.deserialize_map(Fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_a_sorted_map_that_serializes_as_an_object() {
        let mut d = ActionData::new();
        assert_eq!(d.insert("text".into(), "hi".into()), None);
        assert_eq!(d.insert("channel".into(), "#g".into()), None);
        assert_eq!(d.insert("text".into(), "hello".into()), Some(Value::from("hi")));
        assert_eq!(d.keys().map(String::as_str).collect::<Vec<_>>(), ["channel", "text"]);
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, r##"{"channel":"#g","text":"hello"}"##);
        // Read back from a JSON object written in any order, a repeated key's last value wins.
        let read: ActionData = serde_json::from_str(r##"{"text":"a","channel":"#g","text":"b"}"##).unwrap();
        assert_eq!(read.get("text"), Some(&Value::from("b")));
        assert_eq!(read.len(), 2);
        assert!(serde_json::from_str::<ActionData>("[1]").is_err());
        let map: Map<String, Value> = read.clone().into();
        assert_eq!(ActionData::from(map), read);
        assert_eq!(d.remove("channel"), Some(Value::from("#g")));
        assert!(!d.contains_key("channel"));
    }

    #[test]
    fn action_type_validates() {
        assert!(ActionType::new("discord.rename_channel").is_ok());
        assert!(ActionType::new("Discord.rename").is_err());
        assert!(ActionType::new("rename").is_err());
        assert!(ActionType::new("a.").is_err());
        assert_eq!(ActionType::new("opencollective.expense_created").unwrap().platform(), "opencollective");
    }

    #[test]
    fn patterns_rank_specificity() {
        let t = ActionType::new("discord.rename_channel").unwrap();
        assert_eq!(ActionPattern::new("discord.rename_channel").unwrap().specificity(&t), Some(2));
        assert_eq!(ActionPattern::new("discord.*").unwrap().specificity(&t), Some(1));
        assert_eq!(ActionPattern::any().specificity(&t), Some(0));
        assert_eq!(ActionPattern::new("slack.*").unwrap().specificity(&t), None);
        assert!(ActionPattern::new("Slack.*").is_err());
    }

    #[test]
    fn constitutional_actions_are_polity_requests_but_not_plain_proposals() {
        assert!(ActionType::new("polity.role_grant").unwrap().is_constitutional());
        assert!(!ActionType::new(PROPOSE).unwrap().is_constitutional());
        assert!(!ActionType::new("discord.message").unwrap().is_constitutional());
    }
}
