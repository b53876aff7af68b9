//! The effect side: Polity's effects as Slack Web API calls, for the one workspace a token
//! serves.
//!
//! | effect | Web API calls |
//! |---|---|
//! | `PostVote` | `chat.postMessage` (`text`, and `blocks`: the text, then a button per option one press can cast), then `reactions.add` per option (`already_reacted` is done), then `chat.getPermalink` for the vote's link |
//! | `EditVote` | `chat.update` of each vote message on this connection (buttons taken away once `closed`) |
//! | `Post` | `chat.postMessage` |
//! | every post, retried | first `conversations.history` (`include_all_metadata`): a message of the bot's carrying the effect's key (metadata `polity_effect`) is the post, not made again |
//! | `Notify` | about what a member did in a channel (an ineligible vote): `chat.postEphemeral` there, only they see it; else, or when they are not in it, `conversations.open` (`users`), then `chat.postMessage` in the direct message |
//! | `RemoveReaction` | nothing: a bot token cannot remove another member's reaction, so the tally counts each voter's latest reaction and the vote message says so |
//! | `Call` `slack.post_message` (`channel`, `text`) | `chat.postMessage` |
//! | `Call` `slack.send_dm` (`user`, `text`) | as `Notify` |
//! | `Call` `slack.ephemeral` (`channel`, `user`, `text`) | `chat.postEphemeral` |
//! | `Call` `slack.rename_channel` (`channel`, `name`) | `conversations.rename` |
//! | `Call` `slack.invite` / `slack.kick` (`channel`, `user`) | `conversations.invite` / `conversations.kick` |
//! | `Revert`/`Execute` `slack.member_joined_channel` | `conversations.kick` / `conversations.invite` with the bot's token, else (a workspace that keeps them to admins) the admin's; a join of the general channel, which nobody can leave, stays while it is voted on |
//! | `Call` `slack.pin` (`channel`, `message`) | `pins.add` (`already_pinned` is done) |
//! | `Call` `slack.api` (`method`, `params`) | that method, checked first (see [`check_passthrough`]) |
//! | reading a vote's reactions | `reactions.get` (`full=true`): every variant of an option (`+1`, `+1::skin-tone-4`) counts as the option, the bot's own seed reactions left out |
//!
//! Text Polity posts is Slack `mrkdwn` with `&`, `<` and `>` escaped, so nothing a member
//! wrote (a proposal's title) can ping `@channel` or a user.
//!
//! Errors: Slack's `ok: false` is `Permanent` with its code (`channel_not_found`,
//! `not_in_channel`, `missing_scope`); `ratelimited`, a 429 and Polity's own budget are
//! `RateLimited`; timeouts and 5xx are `Transient` (see [`crate::api`]).

use crate::api::{Api, Failure};
use crate::config::is_slack_id;
use crate::events::{MEMBER_JOINED_CHANNEL, MESSAGE, PIN, RENAME_CHANNEL, TEAM_JOIN, USER_CHANGE};
use crate::known::Known;
use polity_governance::action::Action;
use polity_governance::ids::{AccountRef, MessageRef, Place};
use polity_governance::io::{Effect, VoteOption};
use polity_governance::platform::{
    ActionInfo, ActionKind, BoxFuture, Capabilities, Performed, Platform, PlatformError, ReactionRead, Request,
};
use polity_governance::vote::emoji::{ABSTAIN, KEYCAPS, NO, YES, normalize};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::Duration;

/// Policies' actions.
pub const POST_MESSAGE: &str = "slack.post_message";
pub const SEND_DM: &str = "slack.send_dm";
pub const EPHEMERAL: &str = "slack.ephemeral";
pub const RENAME: &str = "slack.rename_channel";
pub const INVITE: &str = "slack.invite";
pub const KICK: &str = "slack.kick";
pub const PIN_MESSAGE: &str = "slack.pin";
pub const API: &str = "slack.api";

/// What a vote button's `action_id` starts with: `polity_vote:{proposal}:{press}`.
pub const VOTE_BUTTON: &str = "polity_vote:";

/// Slack's limit on a message's `text`.
const MAX_TEXT: usize = 40_000;
/// Slack's limit on a section block's text.
const MAX_SECTION: usize = 3_000;

/// A workspace's connection, for the community that governs it (or, refused, for one that
/// does not).
/// The `event_type` of the metadata on every message Polity posts: its `event_payload` holds
/// the effect's key (`effect`), so a retried post finds the message an earlier attempt made.
pub const EFFECT_METADATA: &str = "polity_effect";

/// Which effect a post is for, and whether an earlier attempt may have made it.
#[derive(Clone, Copy, Debug)]
struct Once {
    key: i64,
    retried: bool,
}

#[derive(Clone)]
pub struct SlackPlatform {
    connection: String,
    api: Api,
    /// The installing admin's user token, for what a bot token cannot do to members' actions.
    admin: Option<Api>,
    known: Arc<Known>,
    /// Set when the community this platform was handed to does not govern the workspace.
    refused: Option<String>,
}

impl std::fmt::Debug for SlackPlatform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackPlatform").field("connection", &self.connection).finish_non_exhaustive()
    }
}

impl SlackPlatform {
    pub fn new(connection: impl Into<String>, api: Api, known: Arc<Known>) -> Self {
        Self { connection: connection.into(), api, admin: None, known, refused: None }
    }

    /// With the installing admin's user token, for governed actions.
    #[must_use]
    pub fn with_admin(mut self, admin: Option<Api>) -> Self {
        self.admin = admin;
        self
    }

    fn admin(&self, what: &str) -> Result<&Api, PlatformError> {
        self.admin.as_ref().ok_or_else(|| {
            PlatformError::Permanent(format!(
                "{what} needs a workspace admin's user token (user_token in [platforms.slack]); the bot's token cannot"
            ))
        })
    }

    /// Undoes a member's governed action while it is voted on.
    async fn revert(&self, action: &Action) -> Result<Performed, PlatformError> {
        let data = action.data.to_map();
        let text = |key: &str| param(&data, key, action.kind.as_str());
        match action.kind.as_str() {
            MESSAGE => {
                let (channel, ts) =
                    (text("channel")?, text("message").or_else(|_| Ok::<_, PlatformError>(action.source_id.clone()))?);
                let body = json!({ "channel": channel, "ts": ts });
                match self.admin("deleting a member's message")?.post("chat.delete", &body, Some(&channel)).await {
                    Err(Failure { code: Some(code), .. }) if code == "message_not_found" => Ok(Performed::default()),
                    other => other.map(|_| Performed::default()).map_err(|f| f.error),
                }
            }
            RENAME_CHANNEL => self.rename(&text("channel")?, &text("old_name")?).await,
            PIN => {
                let (channel, ts) = (text("channel")?, text("message")?);
                let body = json!({ "channel": channel, "timestamp": ts });
                match self.admin("unpinning a member's pin")?.post("pins.remove", &body, None).await {
                    Err(Failure { code: Some(code), .. }) if code == "no_pin" || code == "message_not_found" => {
                        Ok(Performed::default())
                    }
                    other => other.map(|_| Performed::default()).map_err(|f| f.error),
                }
            }
            MEMBER_JOINED_CHANNEL => {
                let (channel, user) = (text("channel")?, text("user")?);
                let body = json!({ "channel": channel, "user": user });
                match self.bot_then_admin("conversations.kick", &body, None).await {
                    Err(Failure { code: Some(code), .. }) if code == "not_in_channel" => Ok(Performed::default()),
                    // Slack lets nobody leave the workspace's general channel.
                    Err(Failure { code: Some(code), .. }) if code == "cant_kick_from_general" => Ok(Performed {
                        note: Some(
                            "Slack lets nobody leave the general channel, so the member stays while this is voted on."
                                .into(),
                        ),
                        ..Performed::default()
                    }),
                    other => other.map(|_| Performed::default()).map_err(|f| f.error),
                }
            }
            other => Err(PlatformError::Permanent(format!("Polity cannot undo {other} on Slack"))),
        }
    }

    /// Carries out a governed action that passed: the message posted again with its
    /// author's name, the channel renamed, the message pinned.
    async fn execute(&self, action: &Action, once: Once) -> Result<Performed, PlatformError> {
        let data = action.data.to_map();
        let text = |key: &str| param(&data, key, action.kind.as_str());
        match action.kind.as_str() {
            MESSAGE => {
                let channel = text("channel")?;
                let author = data
                    .get("author")
                    .and_then(Value::as_str)
                    .map_or_else(|| action.initiator.account.to_string(), str::to_string);
                let mut repost =
                    format!("{author} wrote: {}", data.get("text").and_then(Value::as_str).unwrap_or_default());
                for file in data.get("files").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str)
                {
                    repost.push('\n');
                    repost.push_str(file);
                }
                let mut body = json!({
                    "channel": channel,
                    "text": clip(&mrkdwn(&repost), MAX_TEXT),
                    "unfurl_links": false,
                });
                if let Some(thread) = data.get("thread_ts").and_then(Value::as_str) {
                    body["thread_ts"] = json!(thread);
                }
                let answer = self.post_once(body, &channel, once).await?;
                let ts = answer.get("ts").and_then(Value::as_str).unwrap_or_default();
                Ok(Performed {
                    message: Some(MessageRef::new(self.connection.as_str(), channel.as_str(), ts)),
                    ..Performed::default()
                })
            }
            RENAME_CHANNEL => self.rename(&text("channel")?, &text("name")?).await,
            PIN => {
                let (channel, ts) = (text("channel")?, text("message")?);
                let admin = self.admin("pinning a member's message")?;
                let body = json!({ "channel": channel, "timestamp": ts });
                match self.as_own(admin, "pins.add", &body, format!("pin:{channel}:{ts}")).await {
                    Err(Failure { code: Some(code), .. }) if code == "already_pinned" => Ok(Performed::default()),
                    other => other.map(|_| Performed::default()).map_err(|f| f.error),
                }
            }
            MEMBER_JOINED_CHANNEL => {
                let (channel, user) = (text("channel")?, text("user")?);
                let body = json!({ "channel": channel, "users": user });
                // Slack names the bot as the inviter of its own invitation, so only the
                // admin's needs a mark.
                let mark = format!("join:{channel}:{user}");
                match self.bot_then_admin("conversations.invite", &body, Some(mark)).await {
                    Err(Failure { code: Some(code), .. }) if code == "already_in_channel" => Ok(Performed::default()),
                    other => other.map(|_| Performed::default()).map_err(|f| f.error),
                }
            }
            other => Err(PlatformError::Permanent(format!("Polity cannot carry out {other} on Slack"))),
        }
    }

    /// Renames a channel with the admin's token (a bot token renames only channels the bot
    /// made); the rename's event is known as Polity's own.
    async fn rename(&self, channel: &str, name: &str) -> Result<Performed, PlatformError> {
        let body = json!({ "channel": channel, "name": name });
        let renamed = match &self.admin {
            Some(admin) => self.as_own(admin, "conversations.rename", &body, format!("rename:{channel}:{name}")).await,
            // Slack reports the bot's own rename as the bot's: never governed.
            None => self.api.post("conversations.rename", &body, None).await,
        };
        match renamed {
            Err(Failure { code: Some(code), .. }) if code == "not_modified" => Ok(Performed::default()),
            other => other.map(|_| Performed::default()).map_err(|f| f.error),
        }
    }

    /// Calls `method` with the admin's token as an action of Polity's own, which Slack reports
    /// as the admin's: `mark` is noted first so that its event is not governed. The mark goes
    /// when Slack certainly did nothing: it refused (`not_modified` and the like among its
    /// refusals: nothing to do, so no event comes), or Polity's budget held the call back.
    /// After a timeout or a server error Slack may have acted, so the mark stays for its
    /// event (or expires).
    async fn as_own(&self, admin: &Api, method: &str, body: &Value, mark: String) -> Result<Value, Failure> {
        self.known.expect_own(mark.clone());
        let answer = admin.post(method, body, None).await;
        if let Err(f) = &answer
            && !matches!(f.error, PlatformError::Transient(_))
        {
            self.known.forget_own(&mark);
        }
        answer
    }

    /// The same connection for a community that does not govern `workspace`: it refuses
    /// everything.
    #[must_use]
    pub fn refusing(&self, workspace: &str) -> Self {
        let mut refused = self.clone();
        refused.refused = Some(format!("this community does not govern the Slack workspace {workspace}"));
        refused
    }

    /// Posts `text` (and `blocks`) in `channel`; the posted message.
    async fn post_message(
        &self,
        channel: &str,
        text: &str,
        blocks: Option<Value>,
        once: Once,
    ) -> Result<MessageRef, PlatformError> {
        let mut body = json!({
            "channel": channel,
            "text": clip(&mrkdwn(text), MAX_TEXT),
            "unfurl_links": false,
            "unfurl_media": false,
        });
        if let Some(blocks) = blocks {
            body["blocks"] = blocks;
        }
        let answer = self.post_once(body, channel, once).await?;
        let ts = answer
            .get("ts")
            .and_then(Value::as_str)
            .ok_or_else(|| PlatformError::Permanent("Slack's answer to chat.postMessage has no ts".into()))?;
        let channel = answer.get("channel").and_then(Value::as_str).unwrap_or(channel);
        Ok(MessageRef::new(self.connection.as_str(), channel, ts))
    }

    /// `method` with the bot's token (a member of every channel it hears joins from), else,
    /// where Slack keeps that to admins, with the admin's. With `mark`, the admin's call
    /// is one of Polity's own that Slack reports as the admin's ([`Self::as_own`]).
    async fn bot_then_admin(&self, method: &str, body: &Value, mark: Option<String>) -> Result<Value, Failure> {
        match (self.api.post(method, body, None).await, &self.admin) {
            (Err(Failure { code: Some(code), .. }), Some(admin)) if falls_to_admin(&code) => match mark {
                Some(mark) => self.as_own(admin, method, body, mark).await,
                None => admin.post(method, body, None).await,
            },
            (outcome, _) => outcome,
        }
    }

    /// `chat.postMessage` of `body` in `channel`, once per effect: the message carries the
    /// effect's key as its metadata, and a retry of an effect that may have been posted
    /// already (its answer lost, Polity stopped mid-call) looks for that message among the
    /// channel's latest before posting. Slack's answer, or what it would have been.
    async fn post_once(&self, mut body: Value, channel: &str, once: Once) -> Result<Value, PlatformError> {
        body["metadata"] = json!({ "event_type": EFFECT_METADATA, "event_payload": { "effect": once.key } });
        let thread = body.get("thread_ts").and_then(Value::as_str).map(str::to_string);
        if once.retried
            && let Some(ts) = self.posted_before(channel, thread.as_deref(), once.key).await?
        {
            tracing::info!(effect = once.key, channel, "a post retried was made before; not posting it again");
            return Ok(json!({ "channel": channel, "ts": ts }));
        }
        self.api.post("chat.postMessage", &body, Some(channel)).await.map_err(|f| f.error)
    }

    /// The `ts` of the bot's message in `channel` posted for effect `key`, among the channel's
    /// latest 100 (`conversations.history` with its metadata). A history Polity cannot read
    /// (a missing scope) is no proof either way: the post goes ahead, logged. A thread's reply
    /// is looked for in its thread (`conversations.replies`).
    async fn posted_before(
        &self,
        channel: &str,
        thread: Option<&str>,
        key: i64,
    ) -> Result<Option<String>, PlatformError> {
        if !(is_slack_id(channel, 'C') || is_slack_id(channel, 'G') || is_slack_id(channel, 'D')) {
            tracing::warn!(effect = key, channel, "a retried post to a channel named, not by id: posted again");
            return Ok(None);
        }
        let mut query = vec![
            ("channel", channel.to_string()),
            ("limit", "100".to_string()),
            ("include_all_metadata", "true".to_string()),
        ];
        // A reply is in its thread, which the channel's history does not list.
        let method = match thread {
            Some(ts) => {
                query.push(("ts", ts.to_string()));
                "conversations.replies"
            }
            None => "conversations.history",
        };
        let history = match self.api.get(method, &query, Some(channel)).await {
            Ok(history) => history,
            Err(Failure { error: PlatformError::Permanent(e), .. }) => {
                tracing::warn!(effect = key, channel, "cannot read whether a retried post was made: {e}");
                return Ok(None);
            }
            Err(f) => return Err(f.error),
        };
        let bot = self.known.bot_user();
        Ok(history.get("messages").and_then(Value::as_array).into_iter().flatten().find_map(|m| {
            let ours = m.pointer("/metadata/event_type").and_then(Value::as_str) == Some(EFFECT_METADATA)
                && m.pointer("/metadata/event_payload/effect").and_then(Value::as_i64) == Some(key)
                && (bot.is_none() || m.get("user").and_then(Value::as_str) == bot.as_deref());
            ours.then(|| m.get("ts").and_then(Value::as_str).map(str::to_string)).flatten()
        }))
    }

    async fn dm(&self, user: &str, text: &str, once: Once) -> Result<MessageRef, PlatformError> {
        let opened = self.api.post("conversations.open", &json!({ "users": user }), None).await.map_err(|f| f.error)?;
        let channel = opened
            .pointer("/channel/id")
            .and_then(Value::as_str)
            .ok_or_else(|| PlatformError::Permanent("Slack's answer to conversations.open has no channel".into()))?
            .to_string();
        self.post_message(&channel, text, None, once).await
    }

    /// Tells one member something: in the channel they acted in, as an ephemeral message only
    /// they see, else (or when they are not in that channel) by direct message.
    async fn notify(
        &self,
        account: &AccountRef,
        text: &str,
        at: Option<&Place>,
        once: Once,
    ) -> Result<Performed, PlatformError> {
        let user = account.account.as_str();
        if let Some(place) = at.filter(|p| p.platform.as_str() == self.connection) {
            let channel = place.channel.as_str();
            let body = json!({ "channel": channel, "user": user, "text": clip(&mrkdwn(text), MAX_TEXT) });
            match self.api.post("chat.postEphemeral", &body, Some(channel)).await {
                Ok(_) => return Ok(Performed::default()),
                Err(Failure { code: Some(code), .. })
                    if matches!(code.as_str(), "user_not_in_channel" | "channel_not_found" | "not_in_channel") => {}
                Err(f) => return Err(f.error),
            }
        }
        self.dm(user, text, once).await.map(|_| Performed::default())
    }

    async fn post_vote(
        &self,
        proposal: i64,
        channel: &str,
        text: &str,
        options: &[VoteOption],
        once: Once,
    ) -> Result<Performed, PlatformError> {
        let buttons = vote_buttons(proposal, options);
        let mut blocks = vec![section(text)];
        blocks.extend(buttons.clone());
        blocks.push(ONE_BALLOT.clone());
        let message = self.post_message(channel, text, Some(Value::Array(blocks)), once).await?;
        self.known.keep_buttons(&message, buttons);
        for option in options {
            let Some(name) = slack_name(&option.emoji) else { continue };
            let body =
                json!({ "channel": message.channel.as_str(), "timestamp": message.message.as_str(), "name": name });
            match self.api.post("reactions.add", &body, None).await {
                Ok(_) => {}
                Err(Failure { code: Some(code), .. }) if code == "already_reacted" => {}
                // The vote stands without its seed reaction: members can still react.
                Err(Failure { error: PlatformError::Permanent(e), .. }) => {
                    tracing::warn!("seeding a vote's reaction: {e}")
                }
                Err(f) => return Err(f.error),
            }
        }
        let link = self
            .api
            .get(
                "chat.getPermalink",
                &[("channel", message.channel.to_string()), ("message_ts", message.message.to_string())],
                None,
            )
            .await
            .ok()
            .and_then(|a| a.get("permalink").and_then(Value::as_str).map(str::to_string));
        Ok(Performed { message: Some(message), link, ..Performed::default() })
    }

    async fn edit_vote(&self, text: &str, closed: bool, messages: &[MessageRef]) -> Result<Performed, PlatformError> {
        for message in messages.iter().filter(|m| m.platform.as_str() == self.connection) {
            // An edit replaces the message's blocks: while the vote is open its buttons are
            // sent again, as posted (kept since, else read back from the message).
            let buttons = if closed { None } else { self.buttons_of(message).await? };
            let mut blocks = vec![section(text)];
            blocks.extend(buttons);
            if !closed {
                blocks.push(ONE_BALLOT.clone());
            }
            let body = json!({
                "channel": message.channel.as_str(),
                "ts": message.message.as_str(),
                "text": clip(&mrkdwn(text), MAX_TEXT),
                "blocks": blocks,
            });
            match self.api.post("chat.update", &body, Some(message.channel.as_str())).await {
                Ok(_) => {}
                Err(Failure { code: Some(code), .. }) if code == "message_not_found" || code == "channel_not_found" => {
                    tracing::info!(channel = %message.channel, "a vote message is gone; its edit is skipped");
                }
                Err(f) => return Err(f.error),
            }
            if closed {
                self.known.forget_buttons(message);
            }
        }
        Ok(Performed::default())
    }

    /// The buttons block of a vote message: as posted by this process, else as Slack shows
    /// the message now (`reactions.get` answers with the whole message).
    async fn buttons_of(&self, message: &MessageRef) -> Result<Option<Value>, PlatformError> {
        if let Some(known) = self.known.buttons(message) {
            return Ok(known);
        }
        let answer = self
            .api
            .get(
                "reactions.get",
                &[("channel", message.channel.to_string()), ("timestamp", message.message.to_string())],
                None,
            )
            .await;
        let buttons = match answer {
            Ok(answer) => answer.pointer("/message/blocks").and_then(Value::as_array).and_then(|blocks| {
                blocks.iter().find(|b| b.get("type").and_then(Value::as_str) == Some("actions")).cloned()
            }),
            Err(Failure { code: Some(code), .. }) if code == "message_not_found" => None,
            Err(f) => return Err(f.error),
        };
        self.known.keep_buttons(message, buttons.clone());
        Ok(buttons)
    }

    async fn call(&self, name: &str, params: &Map<String, Value>, once: Once) -> Result<Performed, PlatformError> {
        let text = |key: &str| param(params, key, name);
        match name {
            POST_MESSAGE => {
                let channel = text("channel")?;
                Ok(Performed {
                    message: Some(self.post_message(&channel, &text("text")?, None, once).await?),
                    ..Performed::default()
                })
            }
            SEND_DM => {
                let message = self.dm(&text("user")?, &text("text")?, once).await?;
                Ok(Performed { message: Some(message), ..Performed::default() })
            }
            EPHEMERAL => {
                let channel = text("channel")?;
                let body = json!({ "channel": channel, "user": text("user")?, "text": clip(&mrkdwn(&text("text")?), MAX_TEXT) });
                self.api.post("chat.postEphemeral", &body, Some(&channel)).await.map_err(|f| f.error)?;
                Ok(Performed::default())
            }
            // With the admin's token when there is one: the bot's renames only the channels
            // it made. Its event is Polity's own, not a member's rename to govern.
            RENAME => self.rename(&text("channel")?, &text("name")?).await,
            INVITE => {
                // The bot's invitation: Slack names the bot as its inviter, never governed.
                let body = json!({ "channel": text("channel")?, "users": text("user")? });
                match self.api.post("conversations.invite", &body, None).await {
                    Err(Failure { code: Some(code), .. }) if code == "already_in_channel" => Ok(Performed::default()),
                    other => other.map(|_| Performed::default()).map_err(|f| f.error),
                }
            }
            KICK => {
                let body = json!({ "channel": text("channel")?, "user": text("user")? });
                match self.api.post("conversations.kick", &body, None).await {
                    Err(Failure { code: Some(code), .. }) if code == "not_in_channel" => Ok(Performed::default()),
                    other => other.map(|_| Performed::default()).map_err(|f| f.error),
                }
            }
            PIN_MESSAGE => {
                let body = json!({ "channel": text("channel")?, "timestamp": text("message")? });
                match self.api.post("pins.add", &body, None).await {
                    Err(Failure { code: Some(code), .. }) if code == "already_pinned" => Ok(Performed::default()),
                    other => other.map(|_| Performed::default()).map_err(|f| f.error),
                }
            }
            API => {
                let method = text("method")?;
                let body = match params.get("params") {
                    None | Some(Value::Null) => Value::Object(Map::new()),
                    Some(Value::Object(p)) => Value::Object(p.clone()),
                    Some(_) => return Err(PlatformError::Permanent("slack.api's params must be a table".into())),
                };
                check_passthrough(&method).map_err(PlatformError::Permanent)?;
                let channel = body.get("channel").and_then(Value::as_str).map(str::to_string);
                if reads(&method) {
                    // Slack takes a read method's arguments as a query, not as JSON.
                    self.api.get(&method, &as_query(&body), channel.as_deref()).await.map_err(|f| f.error)?;
                } else {
                    self.api.post(&method, &body, channel.as_deref()).await.map_err(|f| f.error)?;
                }
                Ok(Performed::default())
            }
            other => Err(PlatformError::Permanent(format!("Slack has no action {other}"))),
        }
    }
}

/// A text parameter of a call.
fn param(params: &Map<String, Value>, key: &str, action: &str) -> Result<String, PlatformError> {
    match params.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        _ => Err(PlatformError::Permanent(format!("{action} needs `{key}`"))),
    }
}

/// Whether the bot's call was refused for what the admin's token may do: a channel the bot
/// is not in, or an action the workspace keeps for admins.
fn falls_to_admin(code: &str) -> bool {
    matches!(code, "restricted_action" | "not_in_channel" | "channel_not_found" | "missing_scope")
}

/// Whether a Web API method only reads (`conversations.history`, `users.info`,
/// `reactions.get`...): Slack takes such a method's arguments as a query string.
fn reads(method: &str) -> bool {
    let (family, verb) = method.split_once('.').unwrap_or((method, ""));
    let verb = verb.rsplit('.').next().unwrap_or_default();
    family == "search"
        || [
            "list",
            "info",
            "history",
            "replies",
            "get",
            "members",
            "lookup",
            "conversations",
            "teamInfo",
            "billableInfo",
            "accessLogs",
            "integrationLogs",
        ]
        .iter()
        .any(|read| verb.starts_with(read))
}

/// A JSON object of arguments as query pairs: text as it is, a list of texts joined with
/// commas (`types=public_channel,private_channel`), anything else as JSON text.
fn as_query(body: &Value) -> Vec<(&str, String)> {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Array(items) if items.iter().all(Value::is_string) => {
            items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(",")
        }
        other => other.to_string(),
    };
    body.as_object()
        .map(|m| m.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.as_str(), text(v))).collect())
        .unwrap_or_default()
}

/// Whether a policy may call `method` through `slack.api`: a Web API method's name
/// (`family.method`), and none that would reach past the workspace's governance: no admin,
/// app, OAuth or token methods, nothing that hands out files or tokens.
///
/// # Errors
/// Why it is refused.
pub fn check_passthrough(method: &str) -> Result<(), String> {
    let well_formed = method.contains('.')
        && method.len() <= 64
        && method
            .split('.')
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    if !well_formed {
        return Err(format!("`{method}` is not a Slack Web API method (family.method)"));
    }
    let family = method.split('.').next().unwrap_or_default();
    if matches!(family, "admin" | "apps" | "oauth" | "openid" | "auth" | "files" | "migration" | "tooling") {
        return Err(format!("slack.api does not call {family}.* methods ({method})"));
    }
    Ok(())
}

/// What an open vote message says of how it counts, under its buttons: a bot cannot take
/// members' reactions away on Slack, so an earlier reaction stays on the message but no
/// longer counts.
static ONE_BALLOT: std::sync::LazyLock<Value> = std::sync::LazyLock::new(|| {
    json!({ "type": "context", "block_id": "polity_one_ballot", "elements": [{ "type": "mrkdwn",
        "text": "One ballot per member, however you cast it: reactions from a choice you have since changed stay on the message, but only your current choice counts." }] })
});

/// A section block of `text`.
fn section(text: &str) -> Value {
    json!({ "type": "section", "text": { "type": "mrkdwn", "text": clip(&mrkdwn(text), MAX_SECTION) } })
}

/// A vote's buttons block: a button per option one press can cast (none: no block).
fn vote_buttons(proposal: i64, options: &[VoteOption]) -> Option<Value> {
    let buttons: Vec<Value> = options
        .iter()
        .filter_map(|o| o.press.as_ref().map(|press| (o, press)))
        .take(25)
        .map(|(o, press)| {
            json!({
                "type": "button",
                "text": { "type": "plain_text", "text": clip(&format!("{} {}", o.emoji, o.label), 75), "emoji": true },
                "action_id": clip(&format!("{VOTE_BUTTON}{proposal}:{press}"), 255),
                "value": clip(press, 2000),
            })
        })
        .collect();
    (!buttons.is_empty())
        .then(|| json!({ "type": "actions", "block_id": format!("polity_vote_{proposal}"), "elements": buttons }))
}

/// Slack's name for a reaction Polity seeds (`+1` for 👍).
pub fn slack_name(emoji: &str) -> Option<String> {
    let emoji = normalize(emoji);
    let known = match emoji.as_str() {
        e if e == YES => Some("+1"),
        e if e == NO => Some("-1"),
        e if e == ABSTAIN => Some("shrug"),
        e => KEYCAPS
            .iter()
            .position(|k| *k == e)
            .map(|i| ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "keycap_ten"][i]),
    };
    known
        .map(str::to_string)
        .or_else(|| emojis::get(&emoji).and_then(emojis::Emoji::shortcode).map(str::to_string))
        .or_else(|| {
            // A custom emoji is named as it is in Slack (`:party-parrot:` or `party-parrot`).
            let name = emoji.trim_matches(':');
            (!name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_+'".contains(&b)))
                .then(|| name.to_string())
        })
}

/// Text as Slack `mrkdwn`: `&`, `<` and `>` escaped (so no `<!channel>` or `<@U1>` is ever
/// formed from a member's words), `**bold**` as Slack's `*bold*`.
pub fn mrkdwn(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace("**", "*")
}

/// `text` cut to at most `max` characters, with an ellipsis when cut.
pub(crate) fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

impl Platform for SlackPlatform {
    fn name(&self) -> &str {
        &self.connection
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            reactions: true,
            buttons: true,
            edits: true,
            ephemeral: true,
            remove_others_reactions: false,
            read_reactions: true,
            serial: false,
            // chat.update is Tier 3: about 50 a minute for the workspace.
            edits_per_channel: Some((10, Duration::from_secs(12))),
            reactions_polled: None,
            process_polled: None,
            request_timeout: None,
        }
    }

    fn actions(&self) -> Vec<ActionInfo> {
        actions()
    }

    fn perform<'a>(&'a self, request: Request<'a>) -> BoxFuture<'a, Result<Performed, PlatformError>> {
        Box::pin(async move {
            if let Some(refused) = &self.refused {
                return Err(PlatformError::Permanent(refused.clone()));
            }
            let once = Once { key: request.key, retried: request.retried };
            match request.effect {
                Effect::PostVote { proposal, place, text, options } => {
                    self.post_vote(proposal.0, place.channel.as_str(), text, options, once).await
                }
                Effect::EditVote { text, closed, .. } => self.edit_vote(text, *closed, request.vote_messages).await,
                Effect::Post { place, text } => Ok(Performed {
                    message: Some(self.post_message(place.channel.as_str(), text, None, once).await?),
                    ..Performed::default()
                }),
                Effect::Notify { account, text, at } => self.notify(account, text, at.as_ref(), once).await,
                Effect::RemoveReaction { .. } => Ok(Performed::default()),
                Effect::Call { name, params, .. } => self.call(name.as_str(), params, once).await,
                Effect::Revert { action, .. } => self.revert(action).await,
                Effect::Execute { action, .. } => self.execute(action, once).await,
                Effect::StartProcess { .. } => Err(PlatformError::Permanent("Slack runs no decision processes".into())),
            }
        })
    }

    fn read_reactions<'a>(
        &'a self,
        message: &'a MessageRef,
        emoji: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<ReactionRead>, PlatformError>> {
        Box::pin(async move {
            if let Some(refused) = &self.refused {
                return Err(PlatformError::Permanent(refused.clone()));
            }
            let answer = self
                .api
                .get(
                    "reactions.get",
                    &[
                        ("channel", message.channel.to_string()),
                        ("timestamp", message.message.to_string()),
                        ("full", "true".to_string()),
                    ],
                    None,
                )
                .await
                .map_err(|f| f.error)?;
            let bot = self.known.bot_user();
            let reactions = answer.pointer("/message/reactions").and_then(Value::as_array).cloned().unwrap_or_default();
            Ok(emoji
                .iter()
                .map(|wanted| {
                    let wanted = normalize(wanted);
                    let mut users: Vec<(AccountRef, String)> = Vec::new();
                    for reaction in reactions
                        .iter()
                        .filter(|r| r.get("name").and_then(Value::as_str).is_some_and(|n| normalize(n) == wanted))
                    {
                        for user in reaction
                            .get("users")
                            .and_then(Value::as_array)
                            .into_iter()
                            .flatten()
                            .filter_map(Value::as_str)
                        {
                            if Some(user) != bot.as_deref() && !users.iter().any(|(a, _)| a.account.as_str() == user) {
                                users.push((AccountRef::new(self.connection.as_str(), user), self.known.name(user)));
                            }
                        }
                    }
                    ReactionRead { emoji: wanted, users }
                })
                .collect())
        })
    }
}

/// What Slack's connections offer policies.
#[must_use]
pub fn actions() -> Vec<ActionInfo> {
    vec![
        ActionInfo::new(
            MESSAGE,
            ActionKind::Governable,
            "a member's message in a governed channel: deleted while voted on (with the admin's user token), posted again with its author's name on pass",
            &[
                ("channel", "the channel id"),
                ("message", "the message's ts"),
                ("author", "who wrote it"),
                ("text", "its text"),
                ("files", "links to its files"),
            ],
        ),
        ActionInfo::new(
            RENAME_CHANNEL,
            ActionKind::Governable,
            "a member renamed a channel: its old name restored while voted on, the new one given on pass; policies can also call it (channel, name)",
            &[("channel", "the channel id"), ("old_name", "its name before"), ("name", "its new name")],
        ),
        ActionInfo::new(
            PIN,
            ActionKind::Governable,
            "a member pinned a message: unpinned while voted on (with the admin's user token), pinned again on pass; policies can also call it (channel, message)",
            &[("channel", "the channel id"), ("message", "the message's ts")],
        ),
        ActionInfo::new(
            MEMBER_JOINED_CHANNEL,
            ActionKind::Governable,
            "a member joined a channel: removed from it while voted on, invited back on pass",
            &[("channel", "the channel id"), ("user", "who joined"), ("inviter", "who invited them, if anyone")],
        ),
        ActionInfo::new(
            TEAM_JOIN,
            ActionKind::Trigger,
            "someone joined the workspace",
            &[("user", "their id"), ("name", "their name")],
        ),
        ActionInfo::new(
            "slack.reaction_added",
            ActionKind::Trigger,
            "a reaction added to a message (skin tones read as their base emoji)",
            &[("channel", "the channel id"), ("message", "the message's ts"), ("emoji", "the emoji")],
        ),
        ActionInfo::new(
            "slack.reaction_removed",
            ActionKind::Trigger,
            "a reaction taken back from a message",
            &[("channel", "the channel id"), ("message", "the message's ts"), ("emoji", "the emoji")],
        ),
        ActionInfo::new(
            USER_CHANGE,
            ActionKind::Trigger,
            "a member's profile or role changed (a new name, made or unmade an admin, deactivated)",
            &[
                ("user", "their id"),
                ("name", "their name now"),
                ("admin", "whether they are an admin or owner now"),
                ("deleted", "whether they were deactivated"),
            ],
        ),
        ActionInfo::new(
            POST_MESSAGE,
            ActionKind::Action,
            "post a message in a channel",
            &[("channel", "the channel id"), ("text", "what to say")],
        ),
        ActionInfo::new(
            SEND_DM,
            ActionKind::Action,
            "send a member a direct message",
            &[("user", "their id"), ("text", "what to say")],
        ),
        ActionInfo::new(
            EPHEMERAL,
            ActionKind::Action,
            "show a member a message in a channel that only they see",
            &[("channel", "the channel id"), ("user", "their id"), ("text", "what to say")],
        ),
        ActionInfo::new(
            INVITE,
            ActionKind::Action,
            "invite a member to a channel",
            &[("channel", "the channel id"), ("user", "their id")],
        ),
        ActionInfo::new(
            KICK,
            ActionKind::Action,
            "remove a member from a channel",
            &[("channel", "the channel id"), ("user", "their id")],
        ),
        ActionInfo::new(
            API,
            ActionKind::Action,
            "call a Slack Web API method with the workspace's bot token (no admin.*, apps.*, auth.*, oauth.* or files.* methods)",
            &[("method", "the method, e.g. bookmarks.add"), ("params", "its arguments, as a table")],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_words_cannot_ping_anyone() {
        assert_eq!(mrkdwn("<!channel> & <@U1> **vote**"), "&lt;!channel&gt; &amp; &lt;@U1&gt; *vote*");
    }

    #[test]
    fn vote_emoji_have_slack_names() {
        assert_eq!(slack_name("👍").as_deref(), Some("+1"));
        assert_eq!(slack_name("👍🏽").as_deref(), Some("+1"));
        assert_eq!(slack_name("👎").as_deref(), Some("-1"));
        assert_eq!(slack_name("🤷").as_deref(), Some("shrug"));
        assert_eq!(slack_name(KEYCAPS[0]).as_deref(), Some("one"));
        assert_eq!(slack_name(KEYCAPS[9]).as_deref(), Some("keycap_ten"));
        assert_eq!(slack_name("🎉").as_deref(), Some("tada"));
        assert_eq!(slack_name(":party-parrot:").as_deref(), Some("party-parrot"));
        assert_eq!(slack_name("<script>"), None);
    }

    #[test]
    fn the_passthrough_refuses_what_reaches_past_the_workspace() {
        assert!(check_passthrough("bookmarks.add").is_ok());
        for read in ["conversations.history", "users.info", "reactions.get", "search.messages", "users.conversations"] {
            assert!(super::reads(read), "{read}");
        }
        assert!(!super::reads("chat.postMessage") && !super::reads("conversations.invite"));
        let arguments =
            json!({"channel": "C1", "limit": 5, "inclusive": true, "cursor": null, "types": ["public_channel", "im"]});
        let query = super::as_query(&arguments);
        let pair = |k: &'static str, v: &str| (k, v.to_string());
        assert_eq!(
            query,
            [pair("channel", "C1"), pair("inclusive", "true"), pair("limit", "5"), pair("types", "public_channel,im")]
        );
        assert!(check_passthrough("chat.scheduleMessage").is_ok());
        for refused in [
            "admin.users.remove",
            "apps.uninstall",
            "auth.revoke",
            "oauth.v2.access",
            "files.sharedPublicURL",
            "chat",
            "../x",
            "a..b",
            "",
        ] {
            assert!(check_passthrough(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn only_options_one_press_casts_have_buttons() {
        let options = vec![
            VoteOption { emoji: YES.into(), label: "yes".into(), press: Some("yes".into()) },
            VoteOption { emoji: KEYCAPS[0].into(), label: "first".into(), press: None },
        ];
        let buttons = vote_buttons(7, &options).unwrap_or_default();
        assert_eq!(buttons["elements"].as_array().map(Vec::len), Some(1));
        assert_eq!(buttons["elements"][0]["action_id"], "polity_vote:7:yes");
        assert_eq!(vote_buttons(7, &options[1..]), None);
    }
}
