//! [`DiscordPlatform`]: performs Polity's effects with serenity's HTTP client.

use crate::rest::{DISCORD_URL, Failure, Rest, UNKNOWN_EMOJI, UNKNOWN_MESSAGE};
use polity_governance::action::Action;
use polity_governance::ids::{AccountRef, MessageRef, ProposalId};
use polity_governance::io::{Effect, VoteOption};
use polity_governance::platform::{
    ActionInfo, ActionKind, BoxFuture, Capabilities, Performed, Platform, PlatformError, ReactionRead, Request,
};
use serde_json::{Map, Value, json};
use serenity::builder::{CreateActionRow, CreateAllowedMentions, CreateButton, CreateMessage};
use serenity::cache::Cache;
use serenity::http::{HttpBuilder, LightMethod, Route};
use serenity::model::application::ButtonStyle;
use serenity::model::channel::{Nonce, ReactionType};
use serenity::model::id::{ChannelId, GuildId, MessageId, RoleId, UserId};
use std::fmt;
use std::sync::{Arc, OnceLock};

/// A member's message in a governed channel (governable).
pub const MESSAGE: &str = "discord.message";
/// A channel rename (governable).
pub const RENAME_CHANNEL: &str = "discord.rename_channel";
/// A role granted to a member (governable).
pub const ROLE_GRANT: &str = "discord.role_grant";
/// Post a message (callable).
pub const POST_MESSAGE: &str = "discord.post_message";
/// Pin a message (callable).
pub const PIN_MESSAGE: &str = "discord.pin_message";
/// Kick a member from the connection's guild (callable).
pub const KICK: &str = "discord.kick";
/// Send a member a direct message (callable).
pub const SEND_DM: &str = "discord.send_dm";
/// Edit a message the bot posted (callable).
pub const EDIT_MESSAGE: &str = "discord.edit_message";
/// Delete a message (callable).
pub const DELETE_MESSAGE: &str = "discord.delete_message";
/// Give a member a role (callable).
pub const GRANT_ROLE: &str = "discord.grant_role";
/// Take a role from a member (callable).
pub const REVOKE_ROLE: &str = "discord.revoke_role";

/// Discord's limit on a message's content, in characters.
const MAX_CONTENT: usize = 2000;
/// Discord's limit on a button's label, in characters.
const MAX_LABEL: usize = 80;
/// How many users one page of a reaction's users holds (Discord's maximum).
const REACTION_PAGE: usize = 100;

/// The `custom_id` of a vote button: `polity:vote:{proposal}:{what it casts}`.
pub const VOTE_BUTTON: &str = "polity:vote:";

/// A Discord connection that performs effects. Its `Debug` never shows the token.
#[derive(Clone)]
pub struct DiscordPlatform {
    name: String,
    guild: Option<GuildId>,
    rest: Rest,
    /// The guild whose channels alone this connection may act in, and serenity's cache that
    /// says which guild a channel belongs to. `None`: any channel (one guild per token).
    scope: Option<(GuildId, Arc<Cache>)>,
    /// The bot's own user id, learnt once, so its seeded reactions are not read as votes.
    me: Arc<OnceLock<UserId>>,
}

impl fmt::Debug for DiscordPlatform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiscordPlatform")
            .field("name", &self.name)
            .field("guild", &self.guild)
            .field("base_url", &self.rest.http.proxy.as_deref().unwrap_or(DISCORD_URL))
            .field("rate_limiter", &self.rest.http.ratelimiter.is_some())
            .finish_non_exhaustive()
    }
}

impl DiscordPlatform {
    /// A connection named `name` with a bot token, talking to `base_url`: [`DISCORD_URL`] in
    /// production (with serenity's rate limiter), a fake server's URL in tests (rate limiter
    /// disabled, since it would call the real host).
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(name: impl Into<String>, token: &str, base_url: &str) -> Result<Self, PlatformError> {
        let (http, client) = http_client(token, base_url)
            .map_err(|e| PlatformError::Permanent(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self::with_http(name, Arc::new(http), client))
    }

    /// A connection on serenity's client `http` (built by [`http_client`] with `client`), so
    /// it shares that client's rate limiter: the gateway's own, for the bot.
    pub(crate) fn with_http(name: impl Into<String>, http: Arc<serenity::http::Http>, client: reqwest::Client) -> Self {
        Self { name: name.into(), guild: None, rest: Rest { http, client }, scope: None, me: Arc::new(OnceLock::new()) }
    }

    /// This connection for one guild's community: it acts only in that guild's channels
    /// (`cache` says which guild a channel is in), and kicks and role grants default to it.
    /// It shares the HTTP client and its rate limits with `self`.
    #[must_use]
    pub fn for_guild(&self, guild: u64, cache: Arc<Cache>) -> Self {
        let mut scoped = self.clone().with_guild(guild);
        scoped.scope = scoped.guild.map(|g| (g, cache));
        scoped
    }

    /// The guild this connection governs (for kicks and role grants without a `guild` key);
    /// 0 means none.
    #[must_use]
    pub fn with_guild(mut self, guild: u64) -> Self {
        self.guild = std::num::NonZeroU64::new(guild).map(GuildId::from);
        self
    }

    async fn send(&self, method: LightMethod, route: Route<'_>, body: Option<&Value>) -> Result<Value, Failure> {
        self.rest.send(method, route, body).await
    }

    /// Refuses a channel outside this connection's guild (one community can never act in
    /// another's server).
    fn check_channel(&self, channel: ChannelId) -> Result<ChannelId, PlatformError> {
        let Some((guild, cache)) = &self.scope else {
            return Ok(channel);
        };
        let ours = cache
            .guild(*guild)
            .is_some_and(|g| g.channels.contains_key(&channel) || g.threads.iter().any(|t| t.id == channel));
        if ours {
            Ok(channel)
        } else {
            Err(PlatformError::Permanent(format!(
                "channel {channel} is not a channel of this community's server ({guild})"
            )))
        }
    }

    /// The guild a kick or role change is for: the one named (which must be this
    /// connection's, when it has one) or this connection's.
    fn guild_for(&self, named: Option<&Value>) -> Result<GuildId, PlatformError> {
        match named {
            Some(g) => {
                let g = snowflake::<GuildId>("guild", &text_of(g))?;
                match &self.scope {
                    Some((own, _)) if *own != g => {
                        Err(PlatformError::Permanent(format!("guild {g} is not this community's server ({own})")))
                    }
                    _ => Ok(g),
                }
            }
            None => self.guild(),
        }
    }

    /// Posts `text` in a channel; the request key is the nonce, enforced, so a retry within
    /// Discord's window gets the first message back instead of a second one.
    async fn post(&self, channel: ChannelId, text: &str, key: i64, quiet: bool) -> Result<MessageRef, PlatformError> {
        self.post_message(channel, CreateMessage::new().content(truncate(text)), key, quiet).await
    }

    async fn post_message(
        &self,
        channel: ChannelId,
        message: CreateMessage,
        key: i64,
        quiet: bool,
    ) -> Result<MessageRef, PlatformError> {
        let mut message = message.nonce(Nonce::String(key.to_string())).enforce_nonce(true);
        if quiet {
            message = message.allowed_mentions(CreateAllowedMentions::new());
        }
        let body = serde_json::to_value(&message).map_err(|e| PlatformError::Permanent(e.to_string()))?;
        let answer = self.send(LightMethod::Post, Route::ChannelMessages { channel_id: channel }, Some(&body)).await?;
        let id = answer
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| PlatformError::Transient("Discord's answer to a new message has no id".into()))?;
        Ok(MessageRef::new(self.name.clone(), channel.to_string(), id))
    }

    async fn react(&self, message: &MessageRef, emoji: &str) -> Result<(), PlatformError> {
        let channel_id = channel_id(&message.channel)?;
        let message_id = snowflake::<MessageId>("message", &message.message)?;
        let reaction = reaction(emoji)?.as_data();
        let route = Route::ChannelMessageReactionMe { channel_id, message_id, reaction: &reaction };
        self.send(LightMethod::Put, route, None).await?;
        Ok(())
    }

    async fn delete_message(&self, channel_id: ChannelId, message_id: MessageId) -> Result<(), PlatformError> {
        match self.send(LightMethod::Delete, Route::ChannelMessage { channel_id, message_id }, None).await {
            // Already gone (a retry after a crash, or someone else deleted it): done.
            Err(Failure { code: Some(UNKNOWN_MESSAGE), .. }) | Ok(_) => Ok(()),
            Err(f) => Err(f.error),
        }
    }

    async fn rename(&self, channel_id: ChannelId, name: &str) -> Result<(), PlatformError> {
        self.send(LightMethod::Patch, Route::Channel { channel_id }, Some(&json!({ "name": name }))).await?;
        Ok(())
    }

    async fn role(&self, method: LightMethod, data: &Map<String, Value>) -> Result<(), PlatformError> {
        let guild_id = self.guild_for(data.get("guild"))?;
        let user_id = snowflake::<UserId>("user", &required(data, "user")?)?;
        let role_id = snowflake::<RoleId>("role", &required(data, "role")?)?;
        self.send(method, Route::GuildMemberRole { guild_id, user_id, role_id }, None).await?;
        Ok(())
    }

    fn guild(&self) -> Result<GuildId, PlatformError> {
        self.guild.ok_or_else(|| {
            PlatformError::Permanent(format!("the Discord connection `{}` has no guild configured", self.name))
        })
    }

    fn own(&self, platform: &str, what: &str) -> Result<(), PlatformError> {
        if platform == self.name {
            Ok(())
        } else {
            Err(PlatformError::Permanent(format!(
                "{what} is on `{platform}`, not on the Discord connection `{}`",
                self.name
            )))
        }
    }

    async fn perform_now(&self, request: Request<'_>) -> Result<Performed, PlatformError> {
        let key = request.key;
        match request.effect {
            Effect::PostVote { proposal, place, text, options } => {
                self.own(place.platform.as_str(), "the vote's channel")?;
                let channel = self.check_channel(channel_id(&place.channel)?)?;
                let buttons = vote_buttons(*proposal, options);
                let mut vote = CreateMessage::new().content(truncate(text));
                if !buttons.is_empty() {
                    vote = vote.components(buttons);
                }
                let message = self.post_message(channel, vote, key, false).await?;
                for option in options {
                    match self.react(&message, &option.emoji).await {
                        Ok(()) => {}
                        // An emoji Discord does not know must not lose the posted vote.
                        Err(PlatformError::Permanent(e)) => {
                            tracing::warn!(emoji = %option.emoji, "cannot seed a vote reaction: {e}");
                        }
                        Err(e) => return Err(e),
                    }
                }
                Ok(Performed { message: Some(message) })
            }
            Effect::EditVote { text, closed, .. } => {
                let mut refused = None;
                // A closed vote loses its buttons.
                let body = if *closed {
                    json!({ "content": truncate(text), "components": [] })
                } else {
                    json!({ "content": truncate(text) })
                };
                for m in request.vote_messages.iter().filter(|m| m.platform.as_str() == self.name) {
                    let route = Route::ChannelMessage {
                        channel_id: channel_id(&m.channel)?,
                        message_id: snowflake::<MessageId>("message", &m.message)?,
                    };
                    match self.send(LightMethod::Patch, route, Some(&body)).await {
                        Ok(_) => {}
                        // One deleted vote message must not keep the others stale.
                        Err(Failure { error: PlatformError::Permanent(e), .. }) => refused = refused.or(Some(e)),
                        Err(f) => return Err(f.error),
                    }
                }
                refused.map_or(Ok(Performed::default()), |e| Err(PlatformError::Permanent(e)))
            }
            Effect::Post { place, text } => {
                self.own(place.platform.as_str(), "the channel")?;
                let message = self.post(self.check_channel(channel_id(&place.channel)?)?, text, key, false).await?;
                Ok(Performed { message: Some(message) })
            }
            Effect::Notify { account, text } => {
                self.own(account.platform.as_str(), "the account")?;
                self.dm(&account.account, text, key).await?;
                Ok(Performed::default())
            }
            Effect::RemoveReaction { message, account, emoji } => {
                self.own(message.platform.as_str(), "the message")?;
                let route = Route::ChannelMessageReaction {
                    channel_id: self.check_channel(channel_id(&message.channel)?)?,
                    message_id: snowflake::<MessageId>("message", &message.message)?,
                    user_id: snowflake::<UserId>("user", &account.account)?,
                    reaction: &reaction(emoji)?.as_data(),
                };
                self.send(LightMethod::Delete, route, None).await?;
                Ok(Performed::default())
            }
            Effect::Revert { action, .. } => self.revert(action).await,
            Effect::Execute { action, .. } => self.execute(action, key).await,
            Effect::Call { name, params, .. } => self.call(name.as_str(), params, key).await,
            Effect::StartProcess { .. } => Err(PlatformError::Permanent("Discord has no decision processes".into())),
        }
    }

    /// The bot's own user id (`GET /users/@me`, once).
    async fn me(&self) -> Result<UserId, PlatformError> {
        if let Some(me) = self.me.get() {
            return Ok(*me);
        }
        let answer = self.send(LightMethod::Get, Route::UserMe, None).await?;
        let id = answer.get("id").and_then(Value::as_str).unwrap_or_default();
        let me = snowflake::<UserId>("user", id)?;
        Ok(*self.me.get_or_init(|| me))
    }

    /// Every user who reacted with `emoji` on a message, page by page; bots left out.
    async fn reacted(
        &self,
        channel_id: ChannelId,
        message_id: MessageId,
        emoji: &str,
    ) -> Result<Option<Vec<(AccountRef, String)>>, PlatformError> {
        let me = self.me().await?;
        let reaction = reaction(emoji)?.as_data();
        let mut users = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let route = Route::ChannelMessageReactionEmoji { channel_id, message_id, reaction: &reaction };
            let mut params = vec![("limit", REACTION_PAGE.to_string())];
            if let Some(a) = &after {
                params.push(("after", a.clone()));
            }
            let page = match self.rest.send_with(LightMethod::Get, route, Some(params), None).await {
                Ok(Value::Array(page)) => page,
                Ok(other) => {
                    return Err(PlatformError::Transient(format!("Discord listed a reaction's users as {other}")));
                }
                // Nobody can hold an emoji Discord does not know.
                Err(Failure { code: Some(UNKNOWN_EMOJI), .. }) => return Ok(Some(users)),
                Err(f) => return Err(f.error),
            };
            for u in &page {
                let Some(id) = u.get("id").and_then(Value::as_str) else { continue };
                after = Some(id.to_string());
                if id == me.to_string() || u.get("bot").and_then(Value::as_bool) == Some(true) {
                    continue;
                }
                let name = u
                    .get("global_name")
                    .and_then(Value::as_str)
                    .or_else(|| u.get("username").and_then(Value::as_str))
                    .unwrap_or(id);
                users.push((AccountRef::new(self.name.clone(), id), name.to_string()));
            }
            if page.len() < REACTION_PAGE {
                return Ok(Some(users));
            }
        }
    }

    async fn read_now(&self, message: &MessageRef, emoji: &[String]) -> Result<Vec<ReactionRead>, PlatformError> {
        self.own(message.platform.as_str(), "the message")?;
        let channel_id = self.check_channel(channel_id(&message.channel)?)?;
        let message_id = snowflake::<MessageId>("message", &message.message)?;
        let mut read = Vec::new();
        for e in emoji {
            if let Some(users) = self.reacted(channel_id, message_id, e).await? {
                read.push(ReactionRead { emoji: e.clone(), users });
            }
        }
        Ok(read)
    }

    /// Opens (or finds) the DM channel with `user` and posts `text` in it.
    async fn dm(&self, user: &str, text: &str, key: i64) -> Result<(), PlatformError> {
        let user = snowflake::<UserId>("user", user)?;
        let dm = self
            .send(LightMethod::Post, Route::UserMeDmChannels, Some(&json!({ "recipient_id": user.to_string() })))
            .await?;
        let channel = dm
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| PlatformError::Transient("Discord's answer to a new DM channel has no id".into()))?;
        self.post(channel_id(channel)?, text, key, false).await?;
        Ok(())
    }

    async fn revert(&self, action: &Action) -> Result<Performed, PlatformError> {
        match action.kind.as_str() {
            MESSAGE => {
                let (channel, message) = message_of(action)?;
                self.delete_message(self.check_channel(channel)?, message).await?;
            }
            RENAME_CHANNEL => {
                self.rename(self.check_channel(channel_of(action)?)?, &required(&action.data, "old_name")?).await?;
            }
            ROLE_GRANT => self.role(LightMethod::Delete, &action.data).await?,
            other => return Err(unknown(other, "revert")),
        }
        Ok(Performed::default())
    }

    async fn execute(&self, action: &Action, key: i64) -> Result<Performed, PlatformError> {
        match action.kind.as_str() {
            MESSAGE => {
                let channel = self.check_channel(channel_of(action)?)?;
                let author = match action.data.get("author") {
                    Some(a) => text_of(a),
                    None => format!("<@{}>", action.initiator.account),
                };
                let mut text = format!("{author} wrote: {}", optional(&action.data, "text"));
                if let Some(Value::Array(urls)) = action.data.get("attachments") {
                    for url in urls.iter().map(text_of) {
                        text.push('\n');
                        text.push_str(&url);
                    }
                }
                // Reposted without pinging anyone: the bot must not lend its mentions.
                let message = self.post(channel, &text, key, true).await?;
                return Ok(Performed { message: Some(message) });
            }
            RENAME_CHANNEL => {
                self.rename(self.check_channel(channel_of(action)?)?, &required(&action.data, "name")?).await?;
            }
            ROLE_GRANT => self.role(LightMethod::Put, &action.data).await?,
            other => return Err(unknown(other, "execute")),
        }
        Ok(Performed::default())
    }

    async fn call(&self, name: &str, params: &Map<String, Value>, key: i64) -> Result<Performed, PlatformError> {
        match name {
            POST_MESSAGE => {
                let channel = self.check_channel(channel_id(&required(params, "channel")?)?)?;
                let message = self.post(channel, &required(params, "text")?, key, false).await?;
                Ok(Performed { message: Some(message) })
            }
            PIN_MESSAGE => {
                let route = Route::ChannelPin {
                    channel_id: self.check_channel(channel_id(&required(params, "channel")?)?)?,
                    message_id: snowflake::<MessageId>("message", &required(params, "message")?)?,
                };
                self.send(LightMethod::Put, route, None).await?;
                Ok(Performed::default())
            }
            SEND_DM => {
                self.dm(&required(params, "user")?, &required(params, "text")?, key).await?;
                Ok(Performed::default())
            }
            EDIT_MESSAGE => {
                let route = Route::ChannelMessage {
                    channel_id: self.check_channel(channel_id(&required(params, "channel")?)?)?,
                    message_id: snowflake::<MessageId>("message", &required(params, "message")?)?,
                };
                let body = json!({ "content": truncate(&required(params, "text")?) });
                self.send(LightMethod::Patch, route, Some(&body)).await?;
                Ok(Performed::default())
            }
            DELETE_MESSAGE => {
                let channel = self.check_channel(channel_id(&required(params, "channel")?)?)?;
                self.delete_message(channel, snowflake::<MessageId>("message", &required(params, "message")?)?).await?;
                Ok(Performed::default())
            }
            RENAME_CHANNEL => {
                self.rename(
                    self.check_channel(channel_id(&required(params, "channel")?)?)?,
                    &required(params, "name")?,
                )
                .await?;
                Ok(Performed::default())
            }
            GRANT_ROLE => {
                self.role(LightMethod::Put, params).await?;
                Ok(Performed::default())
            }
            REVOKE_ROLE => {
                self.role(LightMethod::Delete, params).await?;
                Ok(Performed::default())
            }
            KICK => {
                let route = Route::GuildMember {
                    guild_id: self.guild_for(params.get("guild"))?,
                    user_id: snowflake::<UserId>("user", &required(params, "user")?)?,
                };
                self.send(LightMethod::Delete, route, None).await?;
                Ok(Performed::default())
            }
            other => Err(unknown(other, "call")),
        }
    }
}

impl Platform for DiscordPlatform {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        // Buttons and ephemeral replies come with the gateway side (interactions).
        Capabilities {
            reactions: true,
            buttons: true,
            edits: true,
            ephemeral: true,
            remove_others_reactions: true,
            read_reactions: true,
        }
    }

    fn actions(&self) -> Vec<ActionInfo> {
        vec![
            ActionInfo::new(
                MESSAGE,
                ActionKind::Governable,
                "a member's message in a governed channel: deleted while voted on, reposted with attribution on pass",
                &[
                    ("channel", "the channel id"),
                    ("message", "the message id"),
                    ("author", "who wrote it, as shown in the repost"),
                    ("text", "the message's text"),
                    ("attachments", "the URLs of its attachments"),
                ],
            ),
            ActionInfo::new(
                RENAME_CHANNEL,
                ActionKind::Governable,
                "a channel renamed: the old name restored while voted on, the new one applied on pass; policies can also call it (channel, name)",
                &[("channel", "the channel id"), ("old_name", "the name before"), ("name", "the new name")],
            ),
            ActionInfo::new(
                ROLE_GRANT,
                ActionKind::Governable,
                "a role granted to a member: revoked while voted on, granted again on pass",
                &[("user", "the member's user id"), ("role", "the role id"), ("guild", "the guild id (optional)")],
            ),
            ActionInfo::new(
                "discord.reaction_added",
                ActionKind::Trigger,
                "a reaction added to a message",
                &[
                    ("channel", "the channel id"),
                    ("message", "the message id"),
                    ("emoji", "the emoji (custom: name:id)"),
                ],
            ),
            ActionInfo::new(
                crate::gateway::MEMBER_JOIN,
                ActionKind::Trigger,
                "a member joined the server",
                &[("guild", "the guild id"), ("user", "the user id"), ("name", "their display name")],
            ),
            ActionInfo::new(
                crate::gateway::ROLE_REVOKED,
                ActionKind::Trigger,
                "a role taken from a member (not by Polity)",
                &[("guild", "the guild id"), ("user", "the member's user id"), ("role", "the role id")],
            ),
            ActionInfo::new(
                crate::gateway::COMMAND_USED,
                ActionKind::Trigger,
                "a member used one of Polity's commands (a vote button counts as /vote)",
                &[("command", "the command's words, e.g. role grant"), ("channel", "the channel id")],
            ),
            ActionInfo::new(
                POST_MESSAGE,
                ActionKind::Action,
                "post a message in a channel",
                &[("channel", "the channel id"), ("text", "the message")],
            ),
            ActionInfo::new(
                PIN_MESSAGE,
                ActionKind::Action,
                "pin a message",
                &[("channel", "the channel id"), ("message", "the message id")],
            ),
            ActionInfo::new(
                SEND_DM,
                ActionKind::Action,
                "send a member a direct message",
                &[("user", "the member's user id"), ("text", "the message")],
            ),
            ActionInfo::new(
                EDIT_MESSAGE,
                ActionKind::Action,
                "edit a message the bot posted",
                &[("channel", "the channel id"), ("message", "the message id"), ("text", "the new text")],
            ),
            ActionInfo::new(
                DELETE_MESSAGE,
                ActionKind::Action,
                "delete a message",
                &[("channel", "the channel id"), ("message", "the message id")],
            ),
            ActionInfo::new(
                GRANT_ROLE,
                ActionKind::Action,
                "give a member a role",
                &[("user", "the member's user id"), ("role", "the role id")],
            ),
            ActionInfo::new(
                REVOKE_ROLE,
                ActionKind::Action,
                "take a role from a member",
                &[("user", "the member's user id"), ("role", "the role id")],
            ),
            ActionInfo::new(
                KICK,
                ActionKind::Action,
                "kick a member from the server",
                &[("user", "the member's user id")],
            ),
        ]
    }

    fn perform<'a>(&'a self, request: Request<'a>) -> BoxFuture<'a, Result<Performed, PlatformError>> {
        Box::pin(self.perform_now(request))
    }

    fn read_reactions<'a>(
        &'a self,
        message: &'a MessageRef,
        emoji: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<ReactionRead>, PlatformError>> {
        Box::pin(self.read_now(message, emoji))
    }
}

/// serenity's HTTP client for `token` at `base_url`, and the reqwest client under it:
/// [`DISCORD_URL`] with serenity's rate limiter, a fake's URL without (it would call the real
/// host).
pub(crate) fn http_client(
    token: &str,
    base_url: &str,
) -> Result<(serenity::http::Http, reqwest::Client), reqwest::Error> {
    let client = reqwest::Client::builder().use_rustls_tls().build()?;
    let base = base_url.trim_end_matches('/');
    let builder = HttpBuilder::new(token).client(client.clone());
    let http = if base == DISCORD_URL { builder } else { builder.proxy(base).ratelimiter_disabled(true) }.build();
    Ok((http, client))
}

/// The buttons of a vote message: one per option a press can cast, five to a row.
fn vote_buttons(proposal: ProposalId, options: &[VoteOption]) -> Vec<CreateActionRow> {
    let buttons: Vec<CreateButton> = options
        .iter()
        .filter_map(|o| {
            let press = o.press.as_deref()?;
            let style = match press {
                "yes" => ButtonStyle::Success,
                "no" => ButtonStyle::Danger,
                _ => ButtonStyle::Secondary,
            };
            let mut b = CreateButton::new(format!("{VOTE_BUTTON}{}:{press}", proposal.0))
                .label(o.label.chars().take(MAX_LABEL).collect::<String>())
                .style(style);
            if let Ok(emoji) = reaction(&o.emoji) {
                b = b.emoji(emoji);
            }
            Some(b)
        })
        .collect();
    buttons.chunks(5).map(|row| CreateActionRow::Buttons(row.to_vec())).collect()
}

fn unknown(name: &str, verb: &str) -> PlatformError {
    PlatformError::Permanent(format!("Discord cannot {verb} `{name}`: not a Discord action it knows"))
}

/// Cuts text to Discord's limit, on a character boundary.
fn truncate(text: &str) -> String {
    if text.chars().count() <= MAX_CONTENT {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(MAX_CONTENT - 1).collect();
    cut.push('…');
    cut
}

/// A string or number value as text.
fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn required(data: &Map<String, Value>, key: &str) -> Result<String, PlatformError> {
    data.get(key).map(text_of).ok_or_else(|| PlatformError::Permanent(format!("missing `{key}`")))
}

fn optional(data: &Map<String, Value>, key: &str) -> String {
    data.get(key).map(text_of).unwrap_or_default()
}

/// A snowflake from its digits or a mention (`<#1>`, `<@1>`, `<@!1>`, `<@&1>`).
fn snowflake<T: From<std::num::NonZeroU64>>(what: &str, text: &str) -> Result<T, PlatformError> {
    let t = text.trim();
    let digits = t
        .strip_prefix('<')
        .and_then(|t| t.strip_suffix('>'))
        .map(|t| t.trim_start_matches(['#', '@', '!', '&']))
        .unwrap_or(t);
    digits
        .parse::<std::num::NonZeroU64>()
        .map(T::from)
        .map_err(|_| PlatformError::Permanent(format!("`{text}` is not a Discord {what} id")))
}

fn channel_id(text: &str) -> Result<ChannelId, PlatformError> {
    snowflake("channel", text)
}

fn channel_of(action: &Action) -> Result<ChannelId, PlatformError> {
    match action.data.get("channel") {
        Some(c) => channel_id(&text_of(c)),
        None => match &action.place {
            Some(p) => channel_id(&p.channel),
            None => Err(PlatformError::Permanent(format!("`{}` has no channel", action.kind))),
        },
    }
}

fn message_of(action: &Action) -> Result<(ChannelId, MessageId), PlatformError> {
    let message = action.data.get("message").map_or_else(|| action.source_id.clone(), text_of);
    Ok((channel_of(action)?, snowflake("message", &message)?))
}

fn reaction(emoji: &str) -> Result<ReactionType, PlatformError> {
    ReactionType::try_from(emoji)
        .map_err(|_| PlatformError::Permanent(format!("`{emoji}` is not an emoji Discord knows")))
}
