//! Slack's Events API events as Polity's inputs: one pure reading of an `event_callback`
//! (the JSON Slack sends over Socket Mode and over HTTP alike), so both ways in give the same
//! events with the same dedup keys.
//!
//! | Slack event | Polity input | `dedup_key` |
//! |---|---|---|
//! | `reaction_added` / `reaction_removed` on a message | `Inbound::Reaction` (the name normalized: `+1::skin-tone-2` is 👍) | `reaction:{event_id}` |
//! | `message` by a member (no subtype, `file_share`, `thread_broadcast`) | performed `slack.message` at its channel, `source_id` = its `ts`; `text`, `channel`, `message` (ts), `author`, `files` (permalinks), `thread_ts` | `message:{channel}:{ts}` |
//! | `message` subtype `channel_name` | performed `slack.rename_channel` by the member who renamed; `channel`, `old_name`, `name` | `rename:{channel}:{ts}` |
//! | `pin_added` of a message | performed `slack.pin`; `channel`, `message` (ts) | `pin:{channel}:{ts}:{event_ts}` |
//! | `member_joined_channel` | performed `slack.member_joined_channel` by the member who joined; `channel`, `user`, `inviter` | `member_joined:{event_id}` |
//! | `team_join` | event `slack.team_join`; `user`, `name` | `team_join:{user}` |
//!
//! What Polity's own bot user does is dropped: the bot never governs its own actions, nor
//! counts its own seed reactions. Events of another app's bots (`bot_id`, subtype
//! `bot_message`) are dropped too. A redelivery (`X-Slack-Retry-Num`, a Socket Mode retry)
//! carries the same `event_id` and message `ts`, so it has the same key and changes nothing.

use polity_governance::action::{Action, ActionType};
use polity_governance::ids::{AccountRef, MessageRef, Place};
use polity_governance::io::Inbound;
use polity_governance::vote::emoji::normalize;
use polity_port::Event;
use serde_json::Value;

/// Governed and trigger action types.
pub const MESSAGE: &str = "slack.message";
pub const RENAME_CHANNEL: &str = "slack.rename_channel";
pub const PIN: &str = "slack.pin";
pub const MEMBER_JOINED_CHANNEL: &str = "slack.member_joined_channel";
pub const TEAM_JOIN: &str = "slack.team_join";
pub const USER_CHANGE: &str = "slack.user_change";

/// Who is who, for reading events: the connection's name (the platform of every ref), and
/// the bot's own user id.
pub struct Reader<'a> {
    pub connection: &'a str,
    pub bot_user: &'a str,
    /// A member's display name by user id (the id when unknown).
    pub name: &'a (dyn Fn(&str) -> String + Sync),
    /// Whether an action is one Polity took itself with the admin's user token
    /// (`rename:{channel}:{name}`, `pin:{channel}:{ts}`, `join:{channel}:{user}`), which
    /// Slack reports as the admin's.
    pub own: &'a (dyn Fn(&str) -> bool + Sync),
}

/// What an `event_callback` is.
#[derive(Debug, PartialEq)]
pub enum Read {
    /// Inputs for the host (none for an event Polity does not use).
    Events(Vec<Event>),
    /// A member joined the workspace: they become a member of its community.
    Joined { team: String, user: String, name: String, event: Box<Event> },
}

fn str_at<'v>(value: &'v Value, pointer: &str) -> Option<&'v str> {
    value.pointer(pointer).and_then(Value::as_str).filter(|s| !s.is_empty())
}

impl Reader<'_> {
    fn account(&self, user: &str) -> AccountRef {
        AccountRef::new(self.connection, user)
    }

    fn from(&self, user: &str) -> Option<(AccountRef, String)> {
        Some((self.account(user), (self.name)(user)))
    }

    /// Reads one `event_callback` (`{team_id, event_id, event: {...}}`).
    pub fn read(&self, callback: &Value) -> Read {
        let none = Read::Events(Vec::new());
        let Some(event) = callback.get("event") else { return none };
        let Some(event_id) = str_at(callback, "/event_id") else { return none };
        let team = str_at(callback, "/team_id").or_else(|| str_at(event, "/team")).map(str::to_string);
        let space = team.clone();
        let event_type = str_at(event, "/type").unwrap_or_default();
        let one = |dedup_key: String, input: Inbound, user: &str| {
            Read::Events(vec![Event { space: space.clone(), dedup_key, input, from: self.from(user) }])
        };
        match event_type {
            "reaction_added" | "reaction_removed" => {
                let (Some(user), Some(name), Some(channel), Some(ts)) = (
                    str_at(event, "/user"),
                    str_at(event, "/reaction"),
                    str_at(event, "/item/channel"),
                    str_at(event, "/item/ts"),
                ) else {
                    return none;
                };
                if user == self.bot_user || str_at(event, "/item/type") != Some("message") {
                    return none;
                }
                let input = Inbound::Reaction {
                    message: MessageRef::new(self.connection, channel, ts),
                    voter: self.account(user),
                    emoji: normalize(name),
                    added: event_type == "reaction_added",
                };
                one(format!("reaction:{event_id}"), input, user)
            }
            "message" => self.message(event, space),
            "pin_added" => {
                let (Some(user), Some(channel)) = (str_at(event, "/user"), str_at(event, "/channel_id")) else {
                    return none;
                };
                let Some(ts) = str_at(event, "/item/message/ts").or_else(|| str_at(event, "/item/message_ts")) else {
                    return none;
                };
                if user == self.bot_user || (self.own)(&format!("pin:{channel}:{ts}")) {
                    return none;
                }
                let Ok(kind) = ActionType::new(PIN) else { return none };
                let action = Action::new(kind, self.account(user), ts)
                    .at(Place::new(self.connection, channel))
                    .with("channel", channel)
                    .with("message", ts);
                let at = str_at(event, "/event_ts").unwrap_or(event_id);
                one(format!("pin:{channel}:{ts}:{at}"), Inbound::Action { action }, user)
            }
            "member_joined_channel" => {
                let (Some(user), Some(channel)) = (str_at(event, "/user"), str_at(event, "/channel")) else {
                    return none;
                };
                // Polity's bot joining, or a join Polity made (its invitation, with the bot's
                // token or the admin's), is never governed.
                let by_polity = str_at(event, "/inviter") == Some(self.bot_user);
                if user == self.bot_user || by_polity || (self.own)(&format!("join:{channel}:{user}")) {
                    return none;
                }
                let Ok(kind) = ActionType::new(MEMBER_JOINED_CHANNEL) else { return none };
                let mut action = Action::new(kind, self.account(user), format!("{channel}:{user}"))
                    .at(Place::new(self.connection, channel))
                    .with("channel", channel)
                    .with("user", user);
                if let Some(inviter) = str_at(event, "/inviter") {
                    action = action.with("inviter", inviter);
                }
                one(format!("member_joined:{event_id}"), Inbound::Action { action }, user)
            }
            // A member's profile or role changed: a trigger event (the connection also
            // keeps who is an admin from it).
            "user_change" => {
                let Some(user) = str_at(event, "/user/id") else { return none };
                let u = event.get("user").unwrap_or(&Value::Null);
                if u.get("is_bot").and_then(Value::as_bool) == Some(true) || user == self.bot_user {
                    return none;
                }
                let flag = |k: &str| u.get(k).and_then(Value::as_bool) == Some(true);
                let name = display_name(u).unwrap_or_else(|| user.to_string());
                let Ok(kind) = ActionType::new(USER_CHANGE) else { return none };
                let action = Action::new(kind, self.account(user), format!("{user}:{event_id}"))
                    .event()
                    .with("user", user)
                    .with("name", name.clone())
                    .with("admin", controls_workspace(u))
                    .with("deleted", flag("deleted"));
                let from = (!flag("deleted")).then(|| (self.account(user), name));
                Read::Events(vec![Event {
                    space: space.clone(),
                    dedup_key: format!("user_change:{event_id}"),
                    input: Inbound::Action { action },
                    from,
                }])
            }
            "team_join" => {
                let Some(user) = str_at(event, "/user/id") else { return none };
                if event.pointer("/user/is_bot").and_then(Value::as_bool) == Some(true) {
                    return none;
                }
                let name = display_name(event.get("user").unwrap_or(&Value::Null)).unwrap_or_else(|| user.to_string());
                let Ok(kind) = ActionType::new(TEAM_JOIN) else { return none };
                let action =
                    Action::new(kind, self.account(user), user).event().with("user", user).with("name", name.clone());
                let event = Event {
                    space: space.clone(),
                    dedup_key: format!("team_join:{user}"),
                    input: Inbound::Action { action },
                    from: Some((self.account(user), name.clone())),
                };
                match team {
                    Some(team) => Read::Joined { team, user: user.to_string(), name, event: Box::new(event) },
                    None => Read::Events(vec![event]),
                }
            }
            _ => none,
        }
    }

    fn message(&self, event: &Value, space: Option<String>) -> Read {
        let none = Read::Events(Vec::new());
        let (Some(channel), Some(ts)) = (str_at(event, "/channel"), str_at(event, "/ts")) else { return none };
        let subtype = str_at(event, "/subtype");
        let Some(user) = str_at(event, "/user") else { return none };
        if user == self.bot_user || event.get("bot_id").is_some_and(|b| !b.is_null()) {
            return none;
        }
        // A direct message to the bot is no space's; its channel type says so.
        if str_at(event, "/channel_type") == Some("im") {
            return none;
        }
        let (dedup_key, action) = match subtype {
            None | Some("file_share" | "thread_broadcast") => {
                let Ok(kind) = ActionType::new(MESSAGE) else { return none };
                let files: Vec<Value> = event
                    .get("files")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|f| str_at(f, "/permalink").or_else(|| str_at(f, "/url_private")))
                    .map(Value::from)
                    .collect();
                let mut action = Action::new(kind, self.account(user), ts)
                    .at(Place::new(self.connection, channel))
                    .with("text", event.get("text").and_then(Value::as_str).unwrap_or_default())
                    .with("channel", channel)
                    .with("message", ts)
                    .with("author", (self.name)(user))
                    .with("files", files);
                if let Some(thread) = str_at(event, "/thread_ts").filter(|t| *t != ts) {
                    action = action.with("thread_ts", thread);
                }
                (format!("message:{channel}:{ts}"), action)
            }
            Some("channel_name") => {
                let (Some(old), Some(new)) = (str_at(event, "/old_name"), str_at(event, "/name")) else { return none };
                if old == new || (self.own)(&format!("rename:{channel}:{new}")) {
                    return none;
                }
                let Ok(kind) = ActionType::new(RENAME_CHANNEL) else { return none };
                let action = Action::new(kind, self.account(user), ts)
                    .at(Place::new(self.connection, channel))
                    .with("channel", channel)
                    .with("old_name", old)
                    .with("name", new);
                (format!("rename:{channel}:{ts}"), action)
            }
            Some(_) => return none,
        };
        Read::Events(vec![Event { space, dedup_key, input: Inbound::Action { action }, from: self.from(user) }])
    }
}

/// Whether a user object is of a workspace admin or owner: they control the workspace.
pub fn controls_workspace(user: &Value) -> bool {
    ["is_admin", "is_owner", "is_primary_owner"].iter().any(|k| user.get(*k).and_then(Value::as_bool) == Some(true))
}

/// A user object's name as Slack shows it: the display name, else the real name, else the
/// handle.
pub fn display_name(user: &Value) -> Option<String> {
    ["/profile/display_name", "/profile/real_name", "/real_name", "/name"]
        .iter()
        .find_map(|p| str_at(user, p).map(str::trim).filter(|s| !s.is_empty()))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names(user: &str) -> String {
        match user {
            "U1" => "Alice".into(),
            other => other.into(),
        }
    }

    fn reader() -> Reader<'static> {
        Reader {
            connection: "slack",
            bot_user: "UBOT",
            name: &names,
            own: &|key: &str| key == "rename:C1:polity-did-this",
        }
    }

    fn callback(event: Value) -> Value {
        json!({"token": "x", "team_id": "T1", "api_app_id": "A1", "type": "event_callback", "event_id": "Ev1", "event_time": 1, "event": event})
    }

    fn events(read: Read) -> Vec<Event> {
        match read {
            Read::Events(events) => events,
            Read::Joined { event, .. } => vec![*event],
        }
    }

    #[test]
    fn a_members_profile_change_is_a_trigger_event_and_the_bots_own_is_dropped() {
        // Slack's user_change: the whole user object as it is now.
        let changed = callback(json!({"type": "user_change", "user": {"id": "U2", "team_id": "T1", "name": "bob",
            "deleted": false, "is_admin": true, "is_owner": false, "is_bot": false,
            "profile": {"display_name": "Bobby", "real_name": "Bob B."}}, "cache_ts": 1, "event_ts": "1.2"}));
        let read = events(reader().read(&changed));
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].dedup_key, "user_change:Ev1");
        let Inbound::Action { action } = &read[0].input else { panic!("{:?}", read[0].input) };
        assert_eq!(action.kind.as_str(), "slack.user_change");
        assert_eq!(action.data["name"], "Bobby");
        assert_eq!(action.data["admin"], true);
        assert_eq!(action.data["deleted"], false);
        let bot = callback(json!({"type": "user_change", "user": {"id": "UBOT", "is_bot": true}}));
        assert!(events(reader().read(&bot)).is_empty());
        assert!(events(reader().read(&callback(json!({"type": "user_change", "user": "U2"})))).is_empty());
    }

    #[test]
    fn a_skin_toned_reaction_is_its_base_emoji_and_the_bots_own_are_dropped() {
        // Slack's documented reaction_added payload.
        let added =
            callback(json!({"type": "reaction_added", "user": "U1", "reaction": "+1::skin-tone-3", "item_user": "U2",
            "item": {"type": "message", "channel": "C1", "ts": "1360782400.498405"}, "event_ts": "1360782804.083113"}));
        let read = events(reader().read(&added));
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].dedup_key, "reaction:Ev1");
        assert_eq!(read[0].space.as_deref(), Some("T1"));
        assert_eq!(read[0].from, Some((AccountRef::new("slack", "U1"), "Alice".into())));
        assert_eq!(
            read[0].input,
            Inbound::Reaction {
                message: MessageRef::new("slack", "C1", "1360782400.498405"),
                voter: AccountRef::new("slack", "U1"),
                emoji: "👍".into(),
                added: true
            }
        );
        let own = callback(
            json!({"type": "reaction_added", "user": "UBOT", "reaction": "+1", "item": {"type": "message", "channel": "C1", "ts": "1.2"}}),
        );
        assert!(events(reader().read(&own)).is_empty());
        let on_a_file = callback(
            json!({"type": "reaction_removed", "user": "U1", "reaction": "+1", "item": {"type": "file", "file": "F1"}}),
        );
        assert!(events(reader().read(&on_a_file)).is_empty());
    }

    #[test]
    fn a_members_message_is_a_performed_action_and_a_bots_is_not() {
        let message =
            callback(json!({"type": "message", "channel": "C1", "user": "U1", "text": "hello", "ts": "1.000200",
            "channel_type": "channel", "files": [{"permalink": "https://files.example/F1"}]}));
        let read = events(reader().read(&message));
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].dedup_key, "message:C1:1.000200");
        let Inbound::Action { action } = &read[0].input else { panic!("{:?}", read[0].input) };
        assert_eq!(action.kind.as_str(), MESSAGE);
        assert_eq!(action.source_id, "1.000200");
        assert_eq!(action.data.get("text"), Some(&json!("hello")));
        assert_eq!(action.data.get("author"), Some(&json!("Alice")));
        assert_eq!(action.data.get("files"), Some(&json!(["https://files.example/F1"])));
        for bot in [
            json!({"type": "message", "channel": "C1", "user": "UBOT", "text": "x", "ts": "1.1"}),
            json!({"type": "message", "subtype": "bot_message", "channel": "C1", "bot_id": "B2", "text": "x", "ts": "1.1"}),
            json!({"type": "message", "channel": "C1", "user": "U3", "bot_id": "B3", "text": "x", "ts": "1.1"}),
            json!({"type": "message", "subtype": "message_changed", "channel": "C1", "user": "U1", "ts": "1.1"}),
            json!({"type": "message", "channel": "D1", "user": "U1", "text": "x", "ts": "1.1", "channel_type": "im"}),
        ] {
            assert!(events(reader().read(&callback(bot.clone()))).is_empty(), "{bot}");
        }
    }

    #[test]
    fn a_rename_is_governed_from_its_channel_name_message() {
        let renamed = callback(json!({"type": "message", "subtype": "channel_name", "channel": "C1", "user": "U1",
            "old_name": "general", "name": "random-talk", "text": "<@U1> renamed the channel", "ts": "2.5"}));
        let read = events(reader().read(&renamed));
        let Inbound::Action { action } = &read[0].input else { panic!() };
        assert_eq!(action.kind.as_str(), RENAME_CHANNEL);
        assert_eq!(action.data.get("old_name"), Some(&json!("general")));
        assert_eq!(action.data.get("name"), Some(&json!("random-talk")));
        assert_eq!(read[0].dedup_key, "rename:C1:2.5");
        // Polity's own rename back, made with the admin's token, is not the admin's to govern.
        let own = callback(json!({"type": "message", "subtype": "channel_name", "channel": "C1", "user": "U1",
            "old_name": "random-talk", "name": "polity-did-this", "ts": "2.6"}));
        assert!(events(reader().read(&own)).is_empty());
    }

    #[test]
    fn a_members_join_is_governed_and_polity_s_own_invitations_are_not() {
        // Slack's documented member_joined_channel payload.
        let joined = callback(json!({"type": "member_joined_channel", "user": "U2", "channel": "C1",
            "channel_type": "C", "team": "T1", "inviter": "U1"}));
        let read = events(reader().read(&joined));
        let Inbound::Action { action } = &read[0].input else { panic!() };
        assert_eq!(action.kind.as_str(), MEMBER_JOINED_CHANNEL);
        assert_ne!(action.status, polity_governance::ActionStatus::Event, "a join is governable");
        assert_eq!(action.data.get("inviter"), Some(&json!("U1")));
        assert_eq!(read[0].dedup_key, "member_joined:Ev1");
        let invited_by_bot = callback(json!({"type": "member_joined_channel", "user": "U2", "channel": "C1",
            "channel_type": "C", "team": "T1", "inviter": "UBOT"}));
        assert!(events(reader().read(&invited_by_bot)).is_empty());
        let bot_joined = callback(json!({"type": "member_joined_channel", "user": "UBOT", "channel": "C1"}));
        assert!(events(reader().read(&bot_joined)).is_empty());
    }

    #[test]
    fn malformed_events_are_nothing() {
        for event in
            [json!({}), json!({"type": "reaction_added"}), json!({"type": "message"}), json!("text"), json!(null)]
        {
            assert!(events(reader().read(&callback(event.clone()))).is_empty(), "{event}");
        }
        assert!(events(reader().read(&json!({"event": {"type": "reaction_added"}}))).is_empty());
        assert!(events(reader().read(&json!([]))).is_empty());
    }

    #[test]
    fn a_team_join_names_the_new_member() {
        let joined = callback(
            json!({"type": "team_join", "user": {"id": "U9", "name": "dee", "profile": {"display_name": "Dee"}}}),
        );
        match reader().read(&joined) {
            Read::Joined { team, user, name, event } => {
                assert_eq!((team.as_str(), user.as_str(), name.as_str()), ("T1", "U9", "Dee"));
                assert_eq!(event.dedup_key, "team_join:U9");
            }
            other => panic!("{other:?}"),
        }
    }
}
