//! [`DiscordPlatform`]: performs Polity's effects with serenity's HTTP client.

use crate::rest::{DISCORD_URL, Failure, Rest, UNKNOWN_EMOJI, UNKNOWN_MEMBER, UNKNOWN_MESSAGE, UNKNOWN_USER};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use polity_governance::action::Action;
use polity_governance::ids::{AccountRef, MessageRef, ProposalId};
use polity_governance::io::{Effect, VoteOption};
use polity_governance::platform::{
    ActionInfo, ActionKind, BoxFuture, Capabilities, Performed, Platform, PlatformError, ReactionRead, Request,
};
use polity_governance::vote::emoji::normalize;
use serde_json::{Map, Value, json};
use serenity::builder::{CreateActionRow, CreateAllowedMentions, CreateButton, CreateMessage};
use serenity::cache::Cache;
use serenity::http::{HttpBuilder, LightMethod, Route};
use serenity::model::application::ButtonStyle;
use serenity::model::channel::{Nonce, ReactionType};
use serenity::model::id::{ChannelId, GuildId, MessageId, RoleId, UserId};
use std::fmt;
use std::sync::{Arc, OnceLock};

/// A member joined the guild (a trigger event).
pub const MEMBER_JOIN: &str = "discord.member_join";
/// A role was taken from a member (a trigger event).
pub const ROLE_REVOKED: &str = "discord.role_revoked";
/// A member used one of Polity's commands (a trigger event).
pub const COMMAND_USED: &str = "discord.command_used";
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
    /// The guild kicks and role changes are for when a request names none.
    guild: Option<GuildId>,
    rest: Rest,
    /// The guilds whose channels, members and roles alone this connection may touch. `None`:
    /// whatever the token reaches (a token of one community's own).
    scope: Option<Scope>,
    /// The bot's own user id, learnt once, so its seeded reactions are not read as votes.
    me: Arc<OnceLock<UserId>>,
}

/// The guilds of one community, and serenity's cache, which says what is theirs.
#[derive(Clone)]
struct Scope {
    guilds: Vec<GuildId>,
    cache: Arc<Cache>,
}

impl Scope {
    /// "this community's server (1)", or "servers (1, 2)": what a refusal names as its own.
    fn ours(&self) -> String {
        let ids: Vec<String> = self.guilds.iter().map(ToString::to_string).collect();
        let noun = if ids.len() == 1 { "server" } else { "servers" };
        format!("this community's {noun} ({})", ids.join(", "))
    }

    fn has_channel(&self, channel: ChannelId) -> bool {
        self.guild_of(channel).is_some()
    }

    /// The community's server `channel` (or thread) is in.
    fn guild_of(&self, channel: ChannelId) -> Option<GuildId> {
        self.guilds.iter().copied().find(|g| {
            self.cache
                .guild(*g)
                .is_some_and(|g| g.channels.contains_key(&channel) || g.threads.iter().any(|t| t.id == channel))
        })
    }

    fn has_role(&self, guild: GuildId, role: RoleId) -> bool {
        self.cache.guild(guild).is_some_and(|g| g.roles.contains_key(&role))
    }

    /// The guilds whose cached members include `user`.
    fn cached_member_of(&self, user: UserId) -> Vec<GuildId> {
        self.guilds
            .iter()
            .copied()
            .filter(|g| self.cache.guild(*g).is_some_and(|g| g.members.contains_key(&user)))
            .collect()
    }
}

impl fmt::Debug for DiscordPlatform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiscordPlatform")
            .field("name", &self.name)
            .field("guild", &self.guild)
            .field("scope", &self.scope.as_ref().map(|s| &s.guilds))
            .field("base_url", &self.rest.http.proxy.as_deref().unwrap_or(DISCORD_URL))
            .field("rate_limiter", &self.rest.http.ratelimiter.is_some())
            .finish_non_exhaustive()
    }
}

/// One effect as the Discord requests that carry it out, every id parsed, before anything is
/// sent: what [`Targets`] are read from and what [`DiscordPlatform::run`] performs.
enum Op {
    /// A vote message with its buttons, then its reactions seeded.
    PostVote {
        channel: ChannelId,
        vote: Box<CreateMessage>,
        emoji: Vec<String>,
    },
    /// The same edit of each vote message.
    EditVotes {
        messages: Vec<(ChannelId, MessageId)>,
        body: Value,
    },
    /// A message that pings nobody but `mention` (users a policy names): a vote, an outcome
    /// or a repost quoting a member must not lend the bot its mentions.
    Post {
        channel: ChannelId,
        text: String,
        mention: Vec<UserId>,
        /// Files uploaded with it: `(name, content)`.
        files: Vec<(String, Vec<u8>)>,
    },
    Dm {
        user: UserId,
        text: String,
    },
    /// A user's reaction taken off a message: each variant of `emoji` (👍🏽 for 👍) the user
    /// holds there.
    Unreact {
        channel: ChannelId,
        message: MessageId,
        user: UserId,
        emoji: String,
    },
    /// A message deleted; `keep`: its attachments' URLs, downloaded first (a governed
    /// message, whose files Discord's CDN drops once it is gone).
    Delete {
        channel: ChannelId,
        message: MessageId,
        keep: Vec<String>,
    },
    Edit {
        channel: ChannelId,
        message: MessageId,
        text: String,
    },
    Pin {
        channel: ChannelId,
        message: MessageId,
    },
    Rename {
        channel: ChannelId,
        name: String,
    },
    Role {
        guild: GuildId,
        user: UserId,
        role: RoleId,
        grant: bool,
    },
    Kick {
        guild: GuildId,
        user: UserId,
    },
}

/// Everything a request touches on Discord. A connection for a community's guilds refuses
/// the request unless each of them is theirs ([`DiscordPlatform::allow`]).
#[derive(Debug, Default, PartialEq, Eq)]
struct Targets {
    /// The guild a route names (kicks and role changes).
    guild: Option<GuildId>,
    /// Channels acted in; a message is always addressed through its channel, so a message
    /// is the community's when its channel is.
    channels: Vec<ChannelId>,
    /// Users who must be members: of `guild` when there is one, else of one of the
    /// community's guilds.
    members: Vec<UserId>,
    /// Roles that must be `guild`'s.
    roles: Vec<RoleId>,
}

impl Targets {
    fn channels(channels: Vec<ChannelId>) -> Self {
        Self { channels, ..Self::default() }
    }
}

impl Op {
    fn targets(&self) -> Targets {
        match self {
            // Whom a post may ping must be the community's members too.
            Self::Post { channel, mention, .. } => {
                Targets { channels: vec![*channel], members: mention.clone(), ..Targets::default() }
            }
            Self::PostVote { channel, .. }
            | Self::Unreact { channel, .. }
            | Self::Delete { channel, .. }
            | Self::Edit { channel, .. }
            | Self::Pin { channel, .. }
            | Self::Rename { channel, .. } => Targets::channels(vec![*channel]),
            Self::EditVotes { messages, .. } => Targets::channels(messages.iter().map(|(c, _)| *c).collect()),
            Self::Dm { user, .. } => Targets { members: vec![*user], ..Targets::default() },
            Self::Role { guild, user, role, .. } => {
                Targets { guild: Some(*guild), members: vec![*user], roles: vec![*role], ..Targets::default() }
            }
            Self::Kick { guild, user } => Targets { guild: Some(*guild), members: vec![*user], ..Targets::default() },
        }
    }
}

impl DiscordPlatform {
    /// A connection named `name` with a bot token, talking to `base_url`: [`DISCORD_URL`] in
    /// production, a proxy's or a fake server's URL otherwise; either way under a rate budget
    /// of its own (see [`crate::ratelimit`]).
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(name: impl Into<String>, token: &str, base_url: &str) -> Result<Self, PlatformError> {
        let (http, client) = http_client(token, base_url)
            .map_err(|e| PlatformError::Permanent(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self::with_http(name, Arc::new(http), client))
    }

    /// A connection on serenity's client `http` (built by [`http_client`] with `client`): the
    /// gateway's own, for the bot. Its requests go through a rate budget of their own, which
    /// every clone of the connection ([`Self::for_guilds`]) shares.
    pub(crate) fn with_http(name: impl Into<String>, http: Arc<serenity::http::Http>, client: reqwest::Client) -> Self {
        let rest = Rest::new(http, client);
        Self { name: name.into(), guild: None, rest, scope: None, me: Arc::new(OnceLock::new()) }
    }

    /// The REST client every request of this connection goes through.
    pub(crate) fn rest(&self) -> &Rest {
        &self.rest
    }

    /// This connection for one guild's community: [`Self::for_guilds`] with one guild.
    #[must_use]
    pub fn for_guild(&self, guild: u64, cache: Arc<Cache>) -> Self {
        self.for_guilds(&[guild], cache)
    }

    /// This connection for the community that governs `guilds`: every request it makes is
    /// checked first, in one place, against what `cache` (serenity's, which the gateway
    /// keeps) says is theirs, and refused unless every channel it acts in is one of their
    /// channels, every user it names (a DM's recipient, a kicked member, a role's holder) is a
    /// member of one of them (asked of Discord, `GET /guilds/{g}/members/{u}`, when the cache
    /// does not know), every role it names is that guild's, and every guild it names is
    /// one of them. One community can never read or act on another's server, nor reach
    /// another's members. Kicks and role changes default to the guild when there is one.
    /// It shares the HTTP client and its rate limits with `self`.
    #[must_use]
    pub fn for_guilds(&self, guilds: &[u64], cache: Arc<Cache>) -> Self {
        let guilds: Vec<GuildId> =
            guilds.iter().filter_map(|g| std::num::NonZeroU64::new(*g)).map(GuildId::from).collect();
        let mut scoped = self.clone();
        scoped.guild = match guilds.as_slice() {
            [only] => Some(*only),
            _ => None,
        };
        scoped.scope = Some(Scope { guilds, cache });
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

    /// The one check every request passes before anything is sent: each of its targets must
    /// belong to this connection's guilds (see [`Self::for_guilds`]). A refusal is
    /// `Permanent` and says which target is not the community's.
    async fn allow(&self, targets: &Targets) -> Result<(), PlatformError> {
        let Some(scope) = &self.scope else {
            return Ok(());
        };
        let refuse = |what: String| Err(PlatformError::Permanent(what));
        if let Some(g) = targets.guild
            && !scope.guilds.contains(&g)
        {
            return refuse(format!("server {g} is not {}", scope.ours()));
        }
        for channel in &targets.channels {
            if !scope.has_channel(*channel) {
                return refuse(format!("channel {channel} is not a channel of {}", scope.ours()));
            }
        }
        for role in &targets.roles {
            if !targets.guild.is_some_and(|g| scope.has_role(g, *role)) {
                return refuse(format!("role {role} is not a role of {}", scope.ours()));
            }
        }
        let guilds = targets.guild.map_or_else(|| scope.guilds.clone(), |g| vec![g]);
        for user in &targets.members {
            if !self.is_member(scope, &guilds, *user).await? {
                return refuse(format!("user {user} is not a member of {}", scope.ours()));
            }
        }
        Ok(())
    }

    /// Whether `user` is a member of one of `guilds`: serenity's cache first, else Discord
    /// (`GET /guilds/{g}/members/{u}`; Unknown Member or Unknown User: not a member).
    async fn is_member(&self, scope: &Scope, guilds: &[GuildId], user: UserId) -> Result<bool, PlatformError> {
        let cached = scope.cached_member_of(user);
        if guilds.iter().any(|g| cached.contains(g)) {
            return Ok(true);
        }
        for guild_id in guilds {
            match self.send(LightMethod::Get, Route::GuildMember { guild_id: *guild_id, user_id: user }, None).await {
                Ok(_) => return Ok(true),
                Err(Failure { code: Some(UNKNOWN_MEMBER | UNKNOWN_USER), .. }) => {}
                Err(f) => return Err(f.error),
            }
        }
        Ok(false)
    }

    /// The guild a kick or role change is for: the one named (whether it is this
    /// connection's is [`Self::allow`]'s to say), else this connection's one guild, else
    /// (a community with several) the one that has the role, or that the user is a member of.
    fn guild_for(&self, named: Option<&Value>, role: Option<RoleId>, user: UserId) -> Result<GuildId, PlatformError> {
        if let Some(g) = named {
            return snowflake::<GuildId>("guild", &text_of(g));
        }
        if let Some(g) = self.guild {
            return Ok(g);
        }
        let Some(scope) = &self.scope else {
            return Err(PlatformError::Permanent(format!(
                "the Discord connection `{}` has no guild configured",
                self.name
            )));
        };
        let candidates: Vec<GuildId> = match role {
            Some(r) => scope.guilds.iter().copied().filter(|g| scope.has_role(*g, r)).collect(),
            None => scope.cached_member_of(user),
        };
        match (candidates.as_slice(), role) {
            ([only], _) => Ok(*only),
            ([], Some(r)) => Err(PlatformError::Permanent(format!("role {r} is not a role of {}", scope.ours()))),
            _ => Err(PlatformError::Permanent(format!(
                "this community governs several Discord servers ({}): say which with `guild`",
                scope.guilds.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            ))),
        }
    }

    /// Posts `text` in a channel; the request key is the nonce, enforced, so a retry within
    /// Discord's window gets the first message back instead of a second one.
    async fn post(
        &self,
        channel: ChannelId,
        text: &str,
        key: i64,
        mention: &[UserId],
    ) -> Result<MessageRef, PlatformError> {
        self.post_message(channel, CreateMessage::new().content(truncate(text)), key, mention).await
    }

    /// Posts a message that pings nobody but the users in `mention` (Discord parses every
    /// mention in the text unless told otherwise, `@everyone` included).
    async fn post_message(
        &self,
        channel: ChannelId,
        message: CreateMessage,
        key: i64,
        mention: &[UserId],
    ) -> Result<MessageRef, PlatformError> {
        self.post_message_with(channel, message, key, mention, Vec::new()).await
    }

    /// [`Self::post_message`] with files uploaded: `(name, content)`.
    async fn post_message_with(
        &self,
        channel: ChannelId,
        message: CreateMessage,
        key: i64,
        mention: &[UserId],
        files: Vec<(String, Vec<u8>)>,
    ) -> Result<MessageRef, PlatformError> {
        let message = message
            .nonce(Nonce::String(key.to_string()))
            .enforce_nonce(true)
            .allowed_mentions(CreateAllowedMentions::new().users(mention.iter().copied()));
        let body = serde_json::to_value(&message).map_err(|e| PlatformError::Permanent(e.to_string()))?;
        let route = Route::ChannelMessages { channel_id: channel };
        let answer = self.rest.send_files(LightMethod::Post, route, None, Some(&body), files).await?;
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

    /// Checks, then performs: nothing is sent for a request [`Self::allow`] refuses.
    async fn perform_now(&self, request: Request<'_>) -> Result<Performed, PlatformError> {
        let op = self.plan(&request)?;
        self.allow(&op.targets()).await?;
        // What an admin must change should Discord refuse for want of a permission, worked
        // out before the request (which consumes the op).
        let fix = self.fix_for(&op);
        match self.run(op, request.key).await {
            Err(PlatformError::Permanent(e)) if crate::rest::is_missing_permissions(&e) => {
                Err(PlatformError::Permanent(format!("{e}. To fix it: {fix}")))
            }
            other => other,
        }
    }

    /// The exact change in Discord's settings that lets Polity carry out `op`: the
    /// permission it needs where, or the role Polity's role must be moved above.
    fn fix_for(&self, op: &Op) -> String {
        let cache = self.scope.as_ref().map(|s| &s.cache);
        let channel_name = |c: &ChannelId| {
            let named = cache.and_then(|cache| {
                self.scope.as_ref()?.guilds.iter().find_map(|g| {
                    let guild = cache.guild(*g)?;
                    guild.channels.get(c).map(|ch| format!("#{}", ch.name))
                })
            });
            named.unwrap_or_else(|| format!("channel {c}"))
        };
        let in_channel = |perm: &str, c: &ChannelId| {
            format!(
                "allow Polity's role {perm} in {} (Edit Channel → Permissions), or in Server Settings → Roles",
                channel_name(c)
            )
        };
        // The bot's highest role in the guild, as the cache knows it: (name, position).
        let top = |guild: GuildId| -> Option<(String, u16)> {
            let cache = cache?;
            let me = cache.current_user().id;
            let g = cache.guild(guild)?;
            let member = g.members.get(&me)?;
            member
                .roles
                .iter()
                .filter_map(|r| g.roles.get(r))
                .max_by_key(|r| r.position)
                .map(|r| (r.name.clone(), r.position))
        };
        match op {
            Op::Role { guild, role, .. } => {
                let target = cache.and_then(|c| c.guild(*guild)?.roles.get(role).map(|r| (r.name.clone(), r.position)));
                match (target, top(*guild)) {
                    (Some((name, position)), Some((mine, top))) if position >= top => format!(
                        "move Polity's role ({mine}) above *{name}* in Server Settings → Roles (a bot can only grant and revoke roles below its own highest role)"
                    ),
                    (Some((name, _)), _) => format!(
                        "give Polity's role Manage Roles in Server Settings → Roles, and keep it above *{name}*"
                    ),
                    (None, _) => "give Polity's role Manage Roles in Server Settings → Roles, and move it above the role it grants".into(),
                }
            }
            Op::Kick { .. } => "give Polity's role Kick Members in Server Settings → Roles, and move it above the member's highest role".into(),
            Op::Delete { channel, .. } | Op::Unreact { channel, .. } => in_channel("Manage Messages", channel),
            Op::Rename { channel, .. } => in_channel("Manage Channels", channel),
            Op::Pin { channel, .. } => in_channel("Pin Messages", channel),
            Op::PostVote { channel, .. } => in_channel("View Channel, Send Messages and Add Reactions", channel),
            Op::Post { channel, .. } | Op::Edit { channel, .. } => in_channel("View Channel and Send Messages", channel),
            Op::EditVotes { messages, .. } => match messages.first() {
                Some((c, _)) => in_channel("View Channel and Send Messages", c),
                None => "allow Polity's role View Channel and Send Messages where it votes".into(),
            },
            Op::Dm { .. } => "the member must share a server with Polity and accept direct messages from it".into(),
        }
    }

    /// The requests an effect makes, every id parsed; nothing is sent yet.
    fn plan(&self, request: &Request<'_>) -> Result<Op, PlatformError> {
        match request.effect {
            Effect::PostVote { proposal, place, text, options } => {
                self.own(place.platform.as_str(), "the vote's channel")?;
                let buttons = vote_buttons(*proposal, options);
                let mut vote = CreateMessage::new().content(truncate(text));
                if !buttons.is_empty() {
                    vote = vote.components(buttons);
                }
                let emoji = options.iter().map(|o| o.emoji.clone()).collect();
                Ok(Op::PostVote { channel: channel_id(&place.channel)?, vote: Box::new(vote), emoji })
            }
            Effect::EditVote { text, closed, .. } => {
                // A closed vote loses its buttons. Discord parses an edited text's mentions
                // afresh unless told not to.
                let mut body = json!({ "content": truncate(text), "allowed_mentions": no_pings() });
                if *closed {
                    body["components"] = json!([]);
                }
                let messages = request
                    .vote_messages
                    .iter()
                    .filter(|m| m.platform.as_str() == self.name)
                    .map(|m| Ok((channel_id(&m.channel)?, snowflake::<MessageId>("message", &m.message)?)))
                    .collect::<Result<_, PlatformError>>()?;
                Ok(Op::EditVotes { messages, body })
            }
            Effect::Post { place, text } => {
                self.own(place.platform.as_str(), "the channel")?;
                Ok(Op::Post {
                    channel: channel_id(&place.channel)?,
                    text: text.clone(),
                    mention: Vec::new(),
                    files: Vec::new(),
                })
            }
            Effect::Notify { account, text, .. } => {
                self.own(account.platform.as_str(), "the account")?;
                Ok(Op::Dm { user: snowflake("user", &account.account)?, text: text.clone() })
            }
            Effect::RemoveReaction { message, account, emoji } => {
                self.own(message.platform.as_str(), "the message")?;
                Ok(Op::Unreact {
                    channel: channel_id(&message.channel)?,
                    message: snowflake("message", &message.message)?,
                    user: snowflake("user", &account.account)?,
                    emoji: emoji_key(&reaction(emoji)?),
                })
            }
            Effect::Revert { action, .. } => self.plan_revert(action),
            Effect::Execute { action, .. } => self.plan_execute(action),
            Effect::Call { name, params, .. } => self.plan_call(name.as_str(), params),
            Effect::StartProcess { .. } => Err(PlatformError::Permanent("Discord has no decision processes".into())),
        }
    }

    fn plan_revert(&self, action: &Action) -> Result<Op, PlatformError> {
        // The helpers below read a JSON map, as a call's parameters are.
        let data = action.data.to_map();
        match action.kind.as_str() {
            MESSAGE => {
                let (channel, message) = message_of(action)?;
                let keep = match data.get("attachments") {
                    Some(Value::Array(urls)) => urls.iter().map(text_of).collect(),
                    _ => Vec::new(),
                };
                Ok(Op::Delete { channel, message, keep })
            }
            RENAME_CHANNEL => Ok(Op::Rename { channel: channel_of(action)?, name: required(&data, "old_name")? }),
            ROLE_GRANT => self.plan_role(&data, false),
            other => Err(unknown(other, "revert")),
        }
    }

    fn plan_execute(&self, action: &Action) -> Result<Op, PlatformError> {
        // The helpers below read a JSON map, as a call's parameters are.
        let data = action.data.to_map();
        match action.kind.as_str() {
            MESSAGE => {
                let author = match data.get("author") {
                    Some(a) => text_of(a),
                    None => format!("<@{}>", action.initiator.account),
                };
                let mut text = format!("{author} wrote: {}", optional(&data, "text"));
                // The files kept when the message was held go up again; one that could not
                // be kept is named by its link (which Discord may have expired).
                let kept = kept_files(&data);
                let mut files = Vec::new();
                if let Some(Value::Array(urls)) = data.get("attachments") {
                    for url in urls.iter().map(text_of) {
                        match kept.iter().find(|(u, _, _)| *u == url) {
                            Some((_, name, content)) => files.push((name.clone(), content.clone())),
                            None => {
                                text.push('\n');
                                text.push_str(&url);
                            }
                        }
                    }
                }
                // Reposted without pinging anyone: the bot must not lend its mentions.
                Ok(Op::Post { channel: channel_of(action)?, text, mention: Vec::new(), files })
            }
            RENAME_CHANNEL => Ok(Op::Rename { channel: channel_of(action)?, name: required(&data, "name")? }),
            ROLE_GRANT => self.plan_role(&data, true),
            other => Err(unknown(other, "execute")),
        }
    }

    fn plan_call(&self, name: &str, params: &Map<String, Value>) -> Result<Op, PlatformError> {
        let channel = || channel_id(&required(params, "channel")?);
        let message = || snowflake::<MessageId>("message", &required(params, "message")?);
        match name {
            POST_MESSAGE => Ok(Op::Post {
                channel: channel()?,
                text: required(params, "text")?,
                mention: mentioned(params)?,
                files: Vec::new(),
            }),
            PIN_MESSAGE => Ok(Op::Pin { channel: channel()?, message: message()? }),
            SEND_DM => {
                Ok(Op::Dm { user: snowflake("user", &required(params, "user")?)?, text: required(params, "text")? })
            }
            EDIT_MESSAGE => Ok(Op::Edit { channel: channel()?, message: message()?, text: required(params, "text")? }),
            DELETE_MESSAGE => Ok(Op::Delete { channel: channel()?, message: message()?, keep: Vec::new() }),
            RENAME_CHANNEL => Ok(Op::Rename { channel: channel()?, name: required(params, "name")? }),
            GRANT_ROLE => self.plan_role(params, true),
            REVOKE_ROLE => self.plan_role(params, false),
            KICK => {
                let user = snowflake::<UserId>("user", &required(params, "user")?)?;
                Ok(Op::Kick { guild: self.guild_for(params.get("guild"), None, user)?, user })
            }
            other => Err(unknown(other, "call")),
        }
    }

    fn plan_role(&self, data: &Map<String, Value>, grant: bool) -> Result<Op, PlatformError> {
        let user = snowflake::<UserId>("user", &required(data, "user")?)?;
        let role = snowflake::<RoleId>("role", &required(data, "role")?)?;
        Ok(Op::Role { guild: self.guild_for(data.get("guild"), Some(role), user)?, user, role, grant })
    }

    /// Performs an allowed request.
    async fn run(&self, op: Op, key: i64) -> Result<Performed, PlatformError> {
        match op {
            Op::PostVote { channel, vote, emoji } => {
                let message = self.post_message(channel, *vote, key, &[]).await?;
                for e in &emoji {
                    match self.react(&message, e).await {
                        Ok(()) => {}
                        // An emoji Discord does not know must not lose the posted vote.
                        Err(PlatformError::Permanent(error)) => {
                            tracing::warn!(emoji = %e, "cannot seed a vote reaction: {error}");
                        }
                        Err(error) => return Err(error),
                    }
                }
                // The community's server of the channel; for a connection of a community's own
                // token that names one server, that server.
                let link = self
                    .scope
                    .as_ref()
                    .map_or(self.guild, |s| s.guild_of(channel))
                    .map(|guild| format!("https://discord.com/channels/{guild}/{channel}/{}", message.message));
                Ok(Performed { message: Some(message), link, ..Performed::default() })
            }
            Op::EditVotes { messages, body } => {
                let mut refused = None;
                for (channel_id, message_id) in messages {
                    let route = Route::ChannelMessage { channel_id, message_id };
                    match self.send(LightMethod::Patch, route, Some(&body)).await {
                        Ok(_) => {}
                        // One deleted vote message must not keep the others stale.
                        Err(Failure { error: PlatformError::Permanent(e), .. }) => refused = refused.or(Some(e)),
                        Err(f) => return Err(f.error),
                    }
                }
                refused.map_or(Ok(Performed::default()), |e| Err(PlatformError::Permanent(e)))
            }
            Op::Post { channel, text, mention, files } => {
                let message = CreateMessage::new().content(truncate(&text));
                let posted = self.post_message_with(channel, message, key, &mention, files).await?;
                Ok(Performed { message: Some(posted), ..Performed::default() })
            }
            Op::Dm { user, text } => {
                self.dm(user, &text, key).await?;
                Ok(Performed::default())
            }
            Op::Unreact { channel, message, user, emoji } => {
                let listed = match self.listed(channel, message).await {
                    Ok(listed) => listed,
                    // A vote message that is gone holds no reaction to remove.
                    Err(Failure { code: Some(UNKNOWN_MESSAGE), .. }) => Vec::new(),
                    Err(f) => return Err(f.error),
                };
                let variants: Vec<ReactionType> = listed.into_iter().filter(|v| emoji_key(v) == emoji).collect();
                let account = AccountRef::new(self.name.clone(), user.to_string());
                for variant in &variants {
                    // The variant the member used: with one on the message it is that one,
                    // else the one whose users include them.
                    if variants.len() > 1
                        && !self.reacted(channel, message, variant).await?.iter().any(|(a, _)| *a == account)
                    {
                        continue;
                    }
                    let reaction = variant.as_data();
                    let route = Route::ChannelMessageReaction {
                        channel_id: channel,
                        message_id: message,
                        user_id: user,
                        reaction: &reaction,
                    };
                    self.send(LightMethod::Delete, route, None).await?;
                }
                Ok(Performed::default())
            }
            Op::Delete { channel, message, keep } => {
                // Before the delete: Discord's CDN drops a deleted message's files.
                let (kept, missed) = self.download(&keep).await;
                self.delete_message(channel, message).await?;
                let kept = (!kept.is_empty()).then(|| {
                    let files = kept
                        .into_iter()
                        .map(|(url, name, content)| json!({ "url": url, "name": name, "content": BASE64.encode(content) }))
                        .collect();
                    Map::from_iter([("files".to_string(), Value::Array(files))])
                });
                // Voters see what the repost will lack.
                let note =
                    (!missed.is_empty()).then(|| format!("not kept, so a repost lacks it: {}", missed.join("; ")));
                Ok(Performed { message: None, kept, note, link: None, process: None })
            }
            Op::Edit { channel, message, text } => {
                let route = Route::ChannelMessage { channel_id: channel, message_id: message };
                self.send(
                    LightMethod::Patch,
                    route,
                    Some(&json!({ "content": truncate(&text), "allowed_mentions": no_pings() })),
                )
                .await?;
                Ok(Performed::default())
            }
            Op::Pin { channel, message } => {
                self.send(LightMethod::Put, Route::ChannelPin { channel_id: channel, message_id: message }, None)
                    .await?;
                Ok(Performed::default())
            }
            Op::Rename { channel, name } => {
                self.send(LightMethod::Patch, Route::Channel { channel_id: channel }, Some(&json!({ "name": name })))
                    .await?;
                Ok(Performed::default())
            }
            Op::Role { guild, user, role, grant } => {
                let method = if grant { LightMethod::Put } else { LightMethod::Delete };
                self.send(method, Route::GuildMemberRole { guild_id: guild, user_id: user, role_id: role }, None)
                    .await?;
                Ok(Performed::default())
            }
            Op::Kick { guild, user } => {
                self.send(LightMethod::Delete, Route::GuildMember { guild_id: guild, user_id: user }, None).await?;
                Ok(Performed::default())
            }
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

    /// Downloads a held message's attachments from Discord's CDN (only from there, or from
    /// the connection's own base URL's host, as a proxy or test server serves them), each up
    /// to Discord's upload limit for bots and all of them up to a message's: `(url, name,
    /// content)` of each one kept. One that cannot be fetched (gone, too large) is left out,
    /// with why (the second list), and a line in the log; its link stays in the repost.
    async fn download(&self, urls: &[String]) -> (Vec<(String, String, Vec<u8>)>, Vec<String>) {
        let mut kept = Vec::new();
        let mut missed = Vec::new();
        let mut total = 0;
        // Within the effect's own time limit, so the delete always comes: what has not
        // arrived by then is not kept.
        let until = tokio::time::Instant::now() + DOWNLOAD_BUDGET;
        for url in urls {
            let limit = MAX_UPLOAD.min(MAX_MESSAGE_UPLOADS - total);
            let fetched = match tokio::time::timeout_at(until, self.fetch(url, limit)).await {
                Ok(fetched) => fetched,
                Err(_) => {
                    let name = url.split('?').next().and_then(|u| u.rsplit('/').next()).unwrap_or("a file");
                    Err(format!("{name}: the time to keep files ran out"))
                }
            };
            match fetched {
                Ok((name, content)) => {
                    total += content.len();
                    kept.push((url.clone(), name, content));
                }
                Err(why) => {
                    tracing::warn!(connection = %self.name, "a held message's file is not kept: {why}");
                    missed.push(why);
                }
            }
        }
        (kept, missed)
    }

    async fn fetch(&self, url: &str, limit: usize) -> Result<(String, Vec<u8>), String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a link: {e}"))?;
        let own = self.rest.http.proxy.as_deref().and_then(|p| reqwest::Url::parse(p).ok());
        // Discord's CDN over https, or the connection's own host (a proxy, a test server).
        let allowed = |u: &reqwest::Url| {
            let host = u.host_str().unwrap_or_default();
            (u.scheme() == "https" && ["cdn.discordapp.com", "media.discordapp.net"].contains(&host))
                || own.as_ref().is_some_and(|o| o.host_str() == Some(host) && o.port() == u.port())
        };
        if !allowed(&parsed) {
            return Err(format!("{} is not Discord's CDN", parsed.host_str().unwrap_or_default()));
        }
        let name = parsed
            .path_segments()
            .and_then(|mut s| s.next_back().map(str::to_string))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "file".into());
        // A client of its own that follows no redirect: only the allowed host is ever asked
        // (and the bot's token is never sent).
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(DOWNLOAD_BUDGET)
            .build()
            .map_err(|e| format!("{name}: {e}"))?;
        let mut response = client.get(parsed).send().await.map_err(|e| format!("{name}: {}", e.without_url()))?;
        if !allowed(response.url()) {
            return Err(format!("{name}: redirected away from Discord's CDN"));
        }
        if !response.status().is_success() {
            return Err(format!("{name}: the CDN answered {}", response.status()));
        }
        let mut content = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| format!("{name}: {}", e.without_url()))? {
            if content.len() + chunk.len() > limit {
                return Err(format!("{name} is over {} MiB, Discord's upload limit", limit / (1024 * 1024)));
            }
            content.extend_from_slice(&chunk);
        }
        Ok((name, content))
    }

    /// The emoji members hold as normal reactions on a message, every variant apart (👍, 👍🏽
    /// and 👍🏿 are three), as Discord lists the message's reactions.
    async fn listed(&self, channel_id: ChannelId, message_id: MessageId) -> Result<Vec<ReactionType>, Failure> {
        let message = self.send(LightMethod::Get, Route::ChannelMessage { channel_id, message_id }, None).await?;
        let listed = message.get("reactions").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        Ok(listed
            .iter()
            .filter(|r| {
                // Counted apart from super reactions where Discord says so.
                let normal = r.pointer("/count_details/normal").or_else(|| r.get("count"));
                normal.and_then(Value::as_u64).unwrap_or(0) > 0
            })
            .filter_map(|r| serde_json::from_value::<ReactionType>(r.get("emoji")?.clone()).ok())
            .collect())
    }

    /// Every user who holds `emoji` (exactly that variant) as a normal reaction on a message,
    /// page by page; bots left out.
    async fn reacted(
        &self,
        channel_id: ChannelId,
        message_id: MessageId,
        emoji: &ReactionType,
    ) -> Result<Vec<(AccountRef, String)>, PlatformError> {
        let me = self.me().await?;
        let reaction = emoji.as_data();
        let mut users = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let route = Route::ChannelMessageReactionEmoji { channel_id, message_id, reaction: &reaction };
            // Normal reactions only (`type` 0): a super reaction is not a ballot.
            let mut params = vec![("type", "0".to_string()), ("limit", REACTION_PAGE.to_string())];
            if let Some(a) = &after {
                params.push(("after", a.clone()));
            }
            let page = match self.rest.send_with(LightMethod::Get, route, Some(params), None).await {
                Ok(Value::Array(page)) => page,
                Ok(other) => {
                    return Err(PlatformError::Transient(format!("Discord listed a reaction's users as {other}")));
                }
                // Nobody can hold an emoji Discord does not know.
                Err(Failure { code: Some(UNKNOWN_EMOJI), .. }) => return Ok(users),
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
                return Ok(users);
            }
        }
    }

    async fn read_now(&self, message: &MessageRef, emoji: &[String]) -> Result<Vec<ReactionRead>, PlatformError> {
        self.own(message.platform.as_str(), "the message")?;
        let channel_id = channel_id(&message.channel)?;
        let message_id = snowflake::<MessageId>("message", &message.message)?;
        // Reading is acting too: only the community's own messages are read.
        self.allow(&Targets::channels(vec![channel_id])).await?;
        // Every variant of every option on the message, each read whole: a member who holds
        // 👍🏽 holds 👍's option.
        let listed = self.listed(channel_id, message_id).await.map_err(|f| f.error)?;
        let mut read = Vec::new();
        for e in emoji {
            let key = emoji_key(&reaction(e)?);
            let mut users: Vec<(AccountRef, String)> = Vec::new();
            for variant in listed.iter().filter(|v| emoji_key(v) == key) {
                for user in self.reacted(channel_id, message_id, variant).await? {
                    if !users.iter().any(|(a, _)| *a == user.0) {
                        users.push(user);
                    }
                }
            }
            read.push(ReactionRead { emoji: e.clone(), users });
        }
        Ok(read)
    }

    /// Opens (or finds) the DM channel with `user` and posts `text` in it.
    async fn dm(&self, user: UserId, text: &str, key: i64) -> Result<(), PlatformError> {
        let dm = self
            .send(LightMethod::Post, Route::UserMeDmChannels, Some(&json!({ "recipient_id": user.to_string() })))
            .await?;
        let channel = dm
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| PlatformError::Transient("Discord's answer to a new DM channel has no id".into()))?;
        self.post(channel_id(channel)?, text, key, &[]).await?;
        Ok(())
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
            serial: false,
            // Discord lets a bot send or edit about 5 messages per 5 s in one channel.
            edits_per_channel: Some((5, std::time::Duration::from_secs(5))),
            reactions_polled: None,
            process_polled: None,
            request_timeout: None,
        }
    }

    fn actions(&self) -> Vec<ActionInfo> {
        actions()
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

/// serenity's HTTP client for `token` at `base_url`, and the reqwest client under it.
///
/// Polity's own requests ([`Rest`]) never use serenity's rate limiter (they have their own
/// budget). It stays on at [`DISCORD_URL`] for what serenity and poise send by themselves
/// (the gateway's address, command registration, interaction answers, audit log reads),
/// whose routes are not Polity's; any other URL (a proxy, a fake) turns it off, because
/// serenity's limiter builds every request for the real host and would bypass the proxy.
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

/// How long a held message's files are fetched for before it is deleted (under the
/// dispatcher's ten seconds for the whole effect).
const DOWNLOAD_BUDGET: std::time::Duration = std::time::Duration::from_secs(5);
/// The largest file a bot may upload (Discord's limit for bots, webhooks and interactions).
const MAX_UPLOAD: usize = 10 * 1024 * 1024;
/// The largest upload one message may carry.
const MAX_MESSAGE_UPLOADS: usize = 25 * 1024 * 1024;

/// The files kept with a governed message: `(url, name, content)`.
fn kept_files(data: &Map<String, Value>) -> Vec<(String, String, Vec<u8>)> {
    let Some(Value::Array(files)) = data.get("files") else { return Vec::new() };
    files
        .iter()
        .filter_map(|f| {
            let content = BASE64.decode(f.get("content")?.as_str()?).ok()?;
            Some((text_of(f.get("url")?), text_of(f.get("name")?), content))
        })
        .collect()
}

/// `allowed_mentions` that ping nobody.
fn no_pings() -> Value {
    json!({ "parse": [] })
}

/// The users a policy lets a post ping: `mention` as an array of ids or a list separated by
/// commas or spaces (mentions like `<@1>` accepted).
fn mentioned(params: &Map<String, Value>) -> Result<Vec<UserId>, PlatformError> {
    let ids: Vec<String> = match params.get("mention") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list.iter().map(text_of).collect(),
        Some(other) => text_of(other).split([',', ' ']).filter(|s| !s.is_empty()).map(str::to_string).collect(),
    };
    ids.iter().map(|id| snowflake::<UserId>("user", id)).collect()
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

/// A reaction's emoji as the engine compares it: the unicode emoji normalized, a custom
/// emoji as `name:id`.
#[must_use]
pub fn emoji_key(emoji: &ReactionType) -> String {
    match emoji {
        ReactionType::Unicode(e) => normalize(e),
        ReactionType::Custom { id, name, .. } => format!("{}:{id}", name.as_deref().unwrap_or("")),
        // serenity's type is non-exhaustive.
        other => other.to_string(),
    }
}

fn reaction(emoji: &str) -> Result<ReactionType, PlatformError> {
    ReactionType::try_from(emoji)
        .map_err(|_| PlatformError::Permanent(format!("`{emoji}` is not an emoji Discord knows")))
}

/// What Discord's connections offer policies: governed actions, actions and triggers.
#[must_use]
pub fn actions() -> Vec<ActionInfo> {
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
            &[("channel", "the channel id"), ("message", "the message id"), ("emoji", "the emoji (custom: name:id)")],
        ),
        ActionInfo::new(
            "discord.reaction_removed",
            ActionKind::Trigger,
            "a reaction taken back from a message",
            &[("channel", "the channel id"), ("message", "the message id"), ("emoji", "the emoji (custom: name:id)")],
        ),
        ActionInfo::new(
            MEMBER_JOIN,
            ActionKind::Trigger,
            "a member joined the server",
            &[("guild", "the guild id"), ("user", "the user id"), ("name", "their display name")],
        ),
        ActionInfo::new(
            ROLE_REVOKED,
            ActionKind::Trigger,
            "a role taken from a member (not by Polity)",
            &[("guild", "the guild id"), ("user", "the member's user id"), ("role", "the role id")],
        ),
        ActionInfo::new(
            COMMAND_USED,
            ActionKind::Trigger,
            "a member used one of Polity's commands (a vote button counts as /vote)",
            &[("command", "the command's words, e.g. role grant"), ("channel", "the channel id")],
        ),
        ActionInfo::new(
            POST_MESSAGE,
            ActionKind::Action,
            "post a message in a channel",
            &[
                ("channel", "the channel id"),
                ("text", "the message"),
                ("mention", "users it may ping (ids; nobody else is pinged, not even by @everyone)"),
            ],
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
            "send a member of this community's server a direct message",
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
            "give a member of this community's server a role of that server",
            &[
                ("user", "the member's user id"),
                ("role", "the role id"),
                ("guild", "the server's id (optional: the community's server)"),
            ],
        ),
        ActionInfo::new(
            REVOKE_ROLE,
            ActionKind::Action,
            "take a role of this community's server from a member",
            &[
                ("user", "the member's user id"),
                ("role", "the role id"),
                ("guild", "the server's id (optional: the community's server)"),
            ],
        ),
        ActionInfo::new(
            KICK,
            ActionKind::Action,
            "kick a member from this community's server",
            &[("user", "the member's user id"), ("guild", "the server's id (optional: the community's server)")],
        ),
    ]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use polity_governance::action::ActionType;

    const GUILD: u64 = 700_000_000_000_000_001;

    fn id<T: From<std::num::NonZeroU64>>(n: u64) -> T {
        T::from(std::num::NonZeroU64::new(n).unwrap())
    }

    /// The targets of `discord.{name}` called with `params`, on a connection for one guild.
    fn targets(name: &str, params: Value) -> Targets {
        let platform = DiscordPlatform::new("discord", "token", "http://127.0.0.1:9").unwrap().with_guild(GUILD);
        let Value::Object(params) = params else { unreachable!() };
        let effect = Effect::Call { proposal: None, name: ActionType::new(name).unwrap(), params };
        let request = Request { key: 1, retried: false, effect: &effect, vote_messages: &[] };
        platform.plan(&request).unwrap().targets()
    }

    #[test]
    fn every_call_names_every_target_the_check_must_see() {
        let channel = || Targets::channels(vec![id(1)]);
        assert_eq!(targets(POST_MESSAGE, json!({ "channel": "1", "text": "hi" })), channel());
        assert_eq!(targets(PIN_MESSAGE, json!({ "channel": "<#1>", "message": "2" })), channel());
        assert_eq!(targets(EDIT_MESSAGE, json!({ "channel": "1", "message": "2", "text": "hi" })), channel());
        assert_eq!(targets(DELETE_MESSAGE, json!({ "channel": "1", "message": "2" })), channel());
        assert_eq!(targets(RENAME_CHANNEL, json!({ "channel": "1", "name": "x" })), channel());
        let dm = Targets { members: vec![id(3)], ..Targets::default() };
        assert_eq!(targets(SEND_DM, json!({ "user": "<@3>", "text": "hi" })), dm);
        let role =
            |guild| Targets { guild: Some(id(guild)), members: vec![id(3)], roles: vec![id(4)], ..Targets::default() };
        assert_eq!(targets(GRANT_ROLE, json!({ "user": "3", "role": "<@&4>" })), role(GUILD));
        assert_eq!(targets(REVOKE_ROLE, json!({ "user": "3", "role": "4", "guild": "5" })), role(5));
        let kick = |guild| Targets { guild: Some(id(guild)), members: vec![id(3)], ..Targets::default() };
        assert_eq!(targets(KICK, json!({ "user": "3" })), kick(GUILD));
        assert_eq!(targets(KICK, json!({ "user": "3", "guild": 5 })), kick(5));
    }

    #[test]
    fn a_connection_for_several_guilds_has_no_default_guild_and_names_them_all() {
        let base = DiscordPlatform::new("discord", "token", "http://127.0.0.1:9").unwrap();
        let one = base.for_guild(GUILD, Arc::new(Cache::new()));
        assert_eq!(one.guild, Some(id(GUILD)));
        let two = base.for_guilds(&[GUILD, 5], Arc::new(Cache::new()));
        assert_eq!(two.guild, None);
        let scope = two.scope.as_ref().unwrap();
        assert_eq!(scope.ours(), format!("this community's servers ({GUILD}, 5)"));
        // Which guild a kick is for cannot be guessed: the call must say.
        let Err(PlatformError::Permanent(e)) = two.guild_for(None, None, id(3)) else { unreachable!() };
        assert!(e.contains("say which with `guild`"), "{e}");
    }
}
