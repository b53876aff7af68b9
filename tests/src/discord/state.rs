//! What the fake Discord holds: guilds with their channels, roles and members, messages and
//! their reactions, DM channels, audit logs, the application's commands, interactions and
//! their answers, every REST request received, and the gateway session. One [`State`] sits
//! behind one mutex; every change to it wakes the waiters.

use serde_json::{Value, json};
use std::collections::BTreeMap;
use tokio::sync::mpsc;

/// The bot's user id.
pub const BOT_ID: &str = "900000000000000001";
/// The bot's application id (the application commands and interactions belong to it).
pub const APPLICATION_ID: &str = "900000000000000002";
/// The user who owns the application (not a member of any guild unless a test adds them).
pub const APPLICATION_OWNER: &str = "900000000000000003";
/// The bot's username.
pub const BOT_NAME: &str = "polity";
/// The first snowflake the fake hands out; later ones count up from it.
pub const FIRST_ID: u64 = 1_000_000_000_000_000_000;

/// Audit log event types the fake records (Discord's numbers).
pub mod audit {
    /// A channel's settings changed (a rename).
    pub const CHANNEL_UPDATE: u64 = 11;
    /// A member was kicked.
    pub const MEMBER_KICK: u64 = 20;
    /// A bot was added to the guild (the target is the bot).
    pub const BOT_ADD: u64 = 28;
    /// Roles were added to or removed from a member.
    pub const MEMBER_ROLE_UPDATE: u64 = 25;
    /// A moderator deleted someone else's message.
    pub const MESSAGE_DELETE: u64 = 72;
    /// A message was pinned.
    pub const MESSAGE_PIN: u64 = 74;
    /// A message was unpinned.
    pub const MESSAGE_UNPIN: u64 = 75;
}

/// A Discord user: the bot, a guild's member, or anyone who joined once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub username: String,
    pub bot: bool,
}

/// Discord's permission bits the fake gives meaning to.
pub mod permissions {
    pub const KICK_MEMBERS: u64 = 1 << 1;
    /// Every permission, and every channel's.
    pub const ADMINISTRATOR: u64 = 1 << 3;
    pub const MANAGE_CHANNELS: u64 = 1 << 4;
    pub const MANAGE_GUILD: u64 = 1 << 5;
    pub const ADD_REACTIONS: u64 = 1 << 6;
    pub const VIEW_AUDIT_LOG: u64 = 1 << 7;
    pub const VIEW_CHANNEL: u64 = 1 << 10;
    pub const SEND_MESSAGES: u64 = 1 << 11;
    pub const SEND_TTS_MESSAGES: u64 = 1 << 12;
    pub const MANAGE_MESSAGES: u64 = 1 << 13;
    pub const EMBED_LINKS: u64 = 1 << 14;
    pub const ATTACH_FILES: u64 = 1 << 15;
    pub const READ_MESSAGE_HISTORY: u64 = 1 << 16;
    pub const MENTION_EVERYONE: u64 = 1 << 17;
    pub const MANAGE_ROLES: u64 = 1 << 28;
    pub const USE_APPLICATION_COMMANDS: u64 = 1 << 31;
    /// Pinning and unpinning messages (split from Manage Messages, which still allows it).
    pub const PIN_MESSAGES: u64 = 1 << 51;
    /// Every permission bit Discord defines (up to Pin Messages, bit 51): the owner's and an
    /// administrator's permissions.
    pub const ALL: u64 = (1 << 52) - 1;
    /// What `@everyone` may do in a new guild (a part of Discord's defaults).
    pub const EVERYONE: u64 =
        VIEW_CHANNEL | SEND_MESSAGES | READ_MESSAGE_HISTORY | ADD_REACTIONS | USE_APPLICATION_COMMANDS;
    /// What Polity's invite link asks for: the permissions of the bot's own role.
    pub const POLITY: u64 = VIEW_CHANNEL
        | SEND_MESSAGES
        | READ_MESSAGE_HISTORY
        | ADD_REACTIONS
        | MANAGE_MESSAGES
        | PIN_MESSAGES
        | MANAGE_CHANNELS
        | MANAGE_ROLES
        | KICK_MEMBERS
        | VIEW_AUDIT_LOG
        | ATTACH_FILES;
    /// What a channel denies implicitly to whoever may not send messages in it.
    pub(crate) const NEED_SENDING: u64 = SEND_TTS_MESSAGES | MENTION_EVERYONE | ATTACH_FILES | EMBED_LINKS;
}

/// The name of the role Discord makes for the bot when it joins a guild.
pub const BOT_ROLE_NAME: &str = "Polity";

/// A role of a guild, with its permission bits and its position in the hierarchy (`@everyone`
/// is 0; a higher role is above). `managed` roles belong to an integration: the bot's own
/// role is the only one here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Role {
    pub id: String,
    pub name: String,
    pub permissions: u64,
    pub position: u32,
    pub managed: bool,
}

/// A channel's permission overwrite for a role (`kind` 0; `@everyone`'s id is the guild's) or
/// a member (`kind` 1): the bits it allows and denies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Overwrite {
    pub id: String,
    pub kind: u8,
    pub allow: u64,
    pub deny: u64,
}

/// A member of a guild: the user, their nickname and roles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub user: String,
    pub nick: Option<String>,
    pub roles: Vec<String>,
    pub joined_at: String,
}

/// A guild: its owner, roles (`@everyone`, whose id is the guild's, first), members, text
/// channels (in the order they were added) and custom emojis (`(id, name)`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Guild {
    pub id: String,
    pub name: String,
    pub owner: String,
    pub roles: Vec<Role>,
    pub members: Vec<Member>,
    pub channels: Vec<String>,
    pub emojis: Vec<(String, String)>,
}

impl Guild {
    /// The member with user id `user`, if they are in the guild.
    pub fn member(&self, user: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.user == user)
    }

    /// Whether the bot is in the guild (added by a test's setup, or invited).
    pub fn has_bot(&self) -> bool {
        self.member(BOT_ID).is_some()
    }

    /// A member's permissions in the guild, as Discord computes them without channel
    /// overwrites: the owner's and an administrator's are all; anyone else's are those of
    /// `@everyone` and of their roles. `None` for a non-member.
    pub fn permissions(&self, user: &str) -> Option<u64> {
        let member = self.member(user)?;
        if self.owner == user {
            return Some(permissions::ALL);
        }
        let everyone = self.role(&self.id).map_or(0, |r| r.permissions);
        let bits =
            member.roles.iter().filter_map(|r| self.role(r)).fold(everyone, |bits, role| bits | role.permissions);
        Some(if bits & permissions::ADMINISTRATOR != 0 { permissions::ALL } else { bits })
    }

    /// The role `id`, if the guild has it.
    pub fn role(&self, id: &str) -> Option<&Role> {
        self.roles.iter().find(|r| r.id == id)
    }

    /// The bot's own role (managed, made when the bot joined), while the bot is in the guild.
    pub fn bot_role(&self) -> Option<&Role> {
        self.member(BOT_ID)?.roles.iter().filter_map(|r| self.role(r)).find(|r| r.managed)
    }

    /// The position of a member's highest role (0, `@everyone`'s, for a member without
    /// roles); `None` for a non-member.
    pub fn highest_position(&self, user: &str) -> Option<u32> {
        let member = self.member(user)?;
        Some(member.roles.iter().filter_map(|r| self.role(r)).map(|r| r.position).max().unwrap_or(0))
    }

    /// Whether `user` is above `position` in the role hierarchy: the owner is above every
    /// role; anyone else when their highest role is strictly higher.
    pub fn outranks(&self, user: &str, position: u32) -> bool {
        self.owner == user || self.highest_position(user).is_some_and(|p| p > position)
    }

    /// A member's permissions in a channel of this guild with `overwrites`, as Discord
    /// computes them: the guild-level ones ([`Self::permissions`]; the owner's and an
    /// administrator's are all, overwrites or not), then `@everyone`'s overwrite, then the
    /// overwrites of the member's roles together (their denials, then their allowances), then
    /// the member's own. Then Discord's implicit denials: nothing without View Channel, and
    /// no attachments, embeds, TTS or `@everyone` mentions without Send Messages. `None` for a
    /// non-member.
    pub fn channel_permissions(&self, overwrites: &[Overwrite], user: &str) -> Option<u64> {
        let base = self.permissions(user)?;
        // The owner's guild-level permissions are all, Administrator among them.
        if base & permissions::ADMINISTRATOR != 0 {
            return Some(permissions::ALL);
        }
        let member = self.member(user)?;
        let apply = |bits: u64, allow: u64, deny: u64| (bits & !deny) | allow;
        let mut bits = base;
        if let Some(o) = overwrites.iter().find(|o| o.kind == 0 && o.id == self.id) {
            bits = apply(bits, o.allow, o.deny);
        }
        let (allow, deny) = overwrites
            .iter()
            .filter(|o| o.kind == 0 && o.id != self.id && member.roles.contains(&o.id))
            .fold((0, 0), |(a, d), o| (a | o.allow, d | o.deny));
        bits = apply(bits, allow, deny);
        if let Some(o) = overwrites.iter().find(|o| o.kind == 1 && o.id == user) {
            bits = apply(bits, o.allow, o.deny);
        }
        if bits & permissions::VIEW_CHANNEL == 0 {
            return Some(0);
        }
        if bits & permissions::SEND_MESSAGES == 0 {
            bits &= !permissions::NEED_SENDING;
        }
        Some(bits)
    }

    /// Adds a role just below the bot's role (at the top while the bot has none), moving up
    /// the roles from there, as when an admin creates a role after inviting the bot.
    pub(crate) fn add_role(&mut self, id: &str, name: &str, permissions: u64) {
        let top = self.roles.iter().map(|r| r.position).max().unwrap_or(0) + 1;
        let position = self.bot_role().map_or(top, |r| r.position);
        for r in &mut self.roles {
            if r.id != self.id && r.position >= position {
                r.position += 1;
            }
        }
        let role = Role { id: id.into(), name: name.into(), permissions, position, managed: false };
        self.roles.push(role);
    }

    /// Moves role `id` to `position` (at least 1, at most the top) and numbers the others
    /// around it from 1 up, keeping their order, as Discord does; answers the roles whose
    /// position changed.
    pub(crate) fn move_role(&mut self, id: &str, position: u32) -> Vec<Role> {
        let mut order: Vec<(u32, String)> =
            self.roles.iter().filter(|r| r.id != self.id && r.id != id).map(|r| (r.position, r.id.clone())).collect();
        order.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| by_snowflake(&a.1, &b.1)));
        let mut order: Vec<String> = order.into_iter().map(|(_, r)| r).collect();
        let at = usize::try_from(position.max(1) - 1).unwrap_or(usize::MAX).min(order.len());
        order.insert(at, id.to_string());
        let mut changed = Vec::new();
        for (i, role) in order.iter().enumerate() {
            let new = u32::try_from(i + 1).unwrap_or(u32::MAX);
            if let Some(r) = self.roles.iter_mut().find(|r| &r.id == role)
                && r.position != new
            {
                r.position = new;
                changed.push(r.clone());
            }
        }
        changed
    }
}

/// A channel: a guild text channel (type 0) or a DM channel with one recipient (type 1).
#[derive(Clone, Debug, PartialEq)]
pub struct Channel {
    pub id: String,
    pub guild: Option<String>,
    pub name: String,
    pub kind: u8,
    pub recipient: Option<String>,
    pub messages: Vec<Msg>,
    /// The channel's permission overwrites (a guild channel's), in the order they were set.
    pub overwrites: Vec<Overwrite>,
}

/// A message: who wrote it, its text and components (the JSON array as the bot sent it),
/// its attachments (URLs), and whether it was deleted (deleted messages are kept, flagged).
/// `reactions` holds, for each emoji key (a unicode emoji itself, skin tone and all; a custom
/// emoji `name:id`), the user ids holding it in the order they reacted; `bursts` the same for
/// super reactions, which Discord keeps apart (a user may hold both of one emoji).
#[derive(Clone, Debug, PartialEq)]
pub struct Msg {
    pub id: String,
    pub channel_id: String,
    pub author: String,
    pub content: String,
    pub components: Value,
    pub attachments: Vec<String>,
    pub deleted: bool,
    pub pinned: bool,
    pub edited: bool,
    pub nonce: Option<String>,
    pub timestamp: String,
    pub reactions: Vec<(String, Vec<String>)>,
    pub bursts: Vec<(String, Vec<String>)>,
    /// Whom the message pinged, by Discord's rules ([`pings`]): user ids, `role:ID`,
    /// `@everyone`.
    pub pinged: Vec<String>,
    /// When it was created, on tokio's clock: edits of a message older than an hour have a
    /// budget of their own ([`super::limits::OLD_EDITS`]).
    pub created: tokio::time::Instant,
}

impl Msg {
    /// The user ids holding `emoji` on this message, in the order they reacted.
    pub fn holders(&self, emoji: &str) -> Vec<String> {
        self.reactions.iter().find(|(e, _)| e == emoji).map(|(_, users)| users.clone()).unwrap_or_default()
    }
}

/// An audit log entry: who (`user_id`) did what (`action_type`, Discord's numbers, see
/// [`audit`]) to what (`target_id`), with Discord's `changes` and `options`.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditEntry {
    pub id: String,
    pub user_id: String,
    pub target_id: String,
    pub action_type: u64,
    pub changes: Value,
    pub options: Value,
}

/// One REST request as the fake received it: the method, the path (still percent-encoded,
/// without the query), the query string, the JSON body (`Null` when empty; for a multipart
/// body its `payload_json` part), the files of a multipart body (`(filename, content)`), the
/// `Authorization` header, and the status the fake answered.
#[derive(Clone, Debug, PartialEq)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: String,
    pub body: Value,
    pub files: Vec<(String, String)>,
    pub authorization: Option<String>,
    pub status: u16,
}

/// An answer to an interaction: the callback `type` (4 a message, 5 deferred, 6 deferred
/// update, 7 update the message, 9 a modal), its `data`, and the files attached. Edits of the
/// original answer and followups are recorded the same way (`kind` 0 for them).
#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    pub kind: u64,
    pub data: Value,
    pub files: Vec<(String, String)>,
}

/// An interaction the fake dispatched: its type (2 command, 3 component, 5 modal), where and
/// by whom, the message a pressed component is on (`source`), the first answer, the edits of
/// that answer and the followups, the channel message the original answer is (`message`:
/// a public answer's new message, or the source message for a type 6 or 7 answer), and the
/// id the original answer has as a message when it is no channel message (`answer_id`: an
/// ephemeral or deferred answer).
#[derive(Clone, Debug, PartialEq)]
pub struct Interaction {
    pub id: String,
    pub token: String,
    pub kind: u8,
    pub guild: Option<String>,
    pub channel: String,
    pub user: String,
    pub source: Option<String>,
    pub response: Option<Response>,
    pub edits: Vec<Response>,
    pub followups: Vec<Response>,
    pub message: Option<String>,
    pub answer_id: Option<String>,
    /// When it arrived, on tokio's clock: the first answer is taken within
    /// [`super::limits::ANSWER_WITHIN`], edits and follow-ups within
    /// [`super::limits::TOKEN_LIFETIME`].
    pub created: tokio::time::Instant,
}

/// A failure to answer instead of the next request that matches.
#[derive(Clone, Debug)]
pub(crate) struct Failure {
    pub method: String,
    pub prefix: String,
    pub status: u16,
    pub body: Value,
    pub retry_after: Option<String>,
}

/// One rate limit window of a bucket for one major parameter: when it refills and how many
/// requests it has taken since it opened.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Window {
    pub reset_at: tokio::time::Instant,
    pub used: u32,
}

/// What a gateway connection task writes to its websocket.
#[derive(Debug)]
pub(crate) enum Outgoing {
    Frame(String),
    Close(u16),
}

/// The connection that receives the session's dispatches.
#[derive(Debug)]
pub(crate) struct Live {
    pub id: u64,
    pub tx: mpsc::UnboundedSender<Outgoing>,
}

/// A gateway session: its id, the last sequence number and every dispatch sent in it (so a
/// RESUME replays what the client missed, like Discord's buffer).
#[derive(Debug)]
pub(crate) struct Session {
    pub id: String,
    pub seq: u64,
    pub log: Vec<Value>,
}

/// The gateway's side of the state.
#[derive(Debug, Default)]
pub(crate) struct GatewayState {
    pub session: Option<Session>,
    pub live: Option<Live>,
    pub sessions: u64,
    pub next_conn: u64,
    pub identifies: Vec<Value>,
    pub resumes: Vec<Value>,
    pub dispatched: Vec<(String, Value)>,
}

/// Everything the fake Discord knows. Tests read it through [`crate::discord::FakeDiscord`]'s
/// accessors or in the closures of its waiters.
#[derive(Debug)]
pub struct State {
    pub(crate) next_id: u64,
    pub(crate) clock: u64,
    pub(crate) gateway_url: String,
    pub(crate) users: BTreeMap<String, User>,
    pub(crate) guilds: Vec<Guild>,
    pub(crate) channels: BTreeMap<String, Channel>,
    pub(crate) dm_channels: BTreeMap<String, String>,
    pub(crate) audit: BTreeMap<String, Vec<AuditEntry>>,
    pub(crate) commands: Value,
    pub(crate) interactions: BTreeMap<String, Interaction>,
    pub(crate) tokens: BTreeMap<String, String>,
    pub(crate) requests: Vec<Recorded>,
    pub(crate) failures: Vec<Failure>,
    /// The open rate limit windows, by `{bucket}:{major parameter}`.
    pub(crate) windows: BTreeMap<String, Window>,
    /// How many edits of messages older than an hour a channel takes, in how long.
    pub(crate) old_edits: (u32, std::time::Duration),
    pub(crate) gateway: GatewayState,
    /// The bot token Discord accepts, once a test sets one: any other is refused.
    pub(crate) token: Option<String>,
    /// The CDN's files, by path (`/attachments/{channel}/{message}/{file}`).
    pub(crate) cdn: BTreeMap<String, Vec<u8>>,
    /// Whether the application may use the privileged intents (enabled in the portal).
    pub(crate) privileged_intents: bool,
    /// How many shards Discord recommends (`GET /gateway/bot`) and requires.
    pub(crate) shards: u32,
}

/// `seconds` after 2026-11-01T00:00:00Z, as Discord writes timestamps (valid for 28 days).
pub(crate) fn timestamp(seconds: u64) -> String {
    let day = 1 + (seconds / 86_400).min(27);
    let (h, m, s) = ((seconds / 3600) % 24, (seconds / 60) % 60, seconds % 60);
    format!("2026-11-{day:02}T{h:02}:{m:02}:{s:02}.000000+00:00")
}

/// Whether `key` is a custom emoji key (`name:id`), and its parts.
pub(crate) fn custom_emoji(key: &str) -> Option<(&str, &str)> {
    let (name, id) = key.rsplit_once(':')?;
    (!id.is_empty() && id.chars().all(|c| c.is_ascii_digit())).then_some((name, id))
}

/// Sorts user ids as Discord does: by snowflake.
pub(crate) fn by_snowflake(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => a.cmp(b),
    }
}

impl State {
    pub(crate) fn new(gateway_url: String) -> Self {
        let mut users = BTreeMap::new();
        users.insert(BOT_ID.to_string(), User { id: BOT_ID.into(), username: BOT_NAME.into(), bot: true });
        Self {
            next_id: FIRST_ID,
            clock: 12 * 3600,
            gateway_url,
            users,
            guilds: Vec::new(),
            channels: BTreeMap::new(),
            dm_channels: BTreeMap::new(),
            audit: BTreeMap::new(),
            commands: json!([]),
            interactions: BTreeMap::new(),
            tokens: BTreeMap::new(),
            requests: Vec::new(),
            failures: Vec::new(),
            windows: BTreeMap::new(),
            old_edits: (super::limits::OLD_EDITS, super::limits::OLD_EDIT_WINDOW),
            gateway: GatewayState::default(),
            token: None,
            cdn: BTreeMap::new(),
            privileged_intents: true,
            shards: 1,
        }
    }

    /// A new snowflake, greater than every one before.
    pub(crate) fn new_id(&mut self) -> String {
        self.next_id += 1;
        self.next_id.to_string()
    }

    /// The time now, one second later than the last time asked.
    pub(crate) fn now(&mut self) -> String {
        self.clock += 1;
        timestamp(self.clock)
    }

    /// The user `id`: known from setup or a join, else a stand-in named after the id.
    pub(crate) fn user(&self, id: &str) -> User {
        self.users.get(id).cloned().unwrap_or_else(|| User { id: id.into(), username: format!("user{id}"), bot: false })
    }

    pub(crate) fn guild_mut(&mut self, id: &str) -> Option<&mut Guild> {
        self.guilds.iter_mut().find(|g| g.id == id)
    }

    pub(crate) fn channel_mut(&mut self, id: &str) -> Option<&mut Channel> {
        self.channels.get_mut(id)
    }

    pub(crate) fn message_mut(&mut self, channel: &str, id: &str) -> Option<&mut Msg> {
        self.channels.get_mut(channel)?.messages.iter_mut().find(|m| m.id == id)
    }

    /// The guild a channel belongs to.
    pub(crate) fn guild_of(&self, channel: &str) -> Option<String> {
        self.channels.get(channel).and_then(|c| c.guild.clone())
    }

    /// Makes the bot a member of `guild` holding its own role: the managed role Discord
    /// makes when the bot joins ([`BOT_ROLE_NAME`], a new id, [`permissions::POLITY`]), at
    /// the top. Nothing when the bot is a member already.
    pub(crate) fn join_bot(&mut self, guild: &str, joined_at: String) {
        if self.guild(guild).is_none_or(Guild::has_bot) {
            return;
        }
        let id = self.new_id();
        let Some(g) = self.guild_mut(guild) else { return };
        let position = g.roles.iter().map(|r| r.position).max().unwrap_or(0) + 1;
        let role = Role {
            id: id.clone(),
            name: BOT_ROLE_NAME.into(),
            permissions: permissions::POLITY,
            position,
            managed: true,
        };
        g.roles.push(role);
        g.members.push(Member { user: BOT_ID.into(), nick: None, roles: vec![id], joined_at });
    }

    /// Whether the bot and `user` are in a guild together (a bot can DM only such users).
    pub(crate) fn shares_guild_with_bot(&self, user: &str) -> bool {
        self.guilds.iter().any(|g| g.has_bot() && g.member(user).is_some())
    }

    /// Adds an audit log entry to `guild`'s log.
    pub(crate) fn record_audit(
        &mut self,
        guild: &str,
        user: &str,
        target: &str,
        action_type: u64,
        changes: Value,
        options: Value,
    ) {
        let id = self.new_id();
        let entry = AuditEntry { id, user_id: user.into(), target_id: target.into(), action_type, changes, options };
        self.audit.entry(guild.to_string()).or_default().push(entry);
    }

    /// GUILD_AUDIT_LOG_ENTRY_CREATE for the guild's newest audit log entry, as Discord sends
    /// it after the change's own event, to a bot with View Audit Log only.
    pub(crate) fn publish_audit(&mut self, guild: &str) {
        let Some(e) = self.audit.get(guild).and_then(|entries| entries.last()).cloned() else { return };
        let may_view =
            self.guild(guild).and_then(|g| g.permissions(BOT_ID)).is_some_and(|p| p & permissions::VIEW_AUDIT_LOG != 0);
        if !may_view {
            return;
        }
        let mut event = json!({
            "id": e.id, "user_id": e.user_id, "target_id": e.target_id, "action_type": e.action_type,
            "changes": e.changes, "reason": null, "guild_id": guild
        });
        if !e.options.is_null() {
            event["options"] = e.options.clone();
        }
        self.dispatch("GUILD_AUDIT_LOG_ENTRY_CREATE", event);
    }

    /// Creates a message by `author` in `channel` and answers its id.
    pub(crate) fn create_message(
        &mut self,
        channel: &str,
        author: &str,
        content: &str,
        components: Value,
        attachments: Vec<String>,
        nonce: Option<String>,
    ) -> String {
        let id = self.new_id();
        let timestamp = self.now();
        let msg = Msg {
            id: id.clone(),
            channel_id: channel.into(),
            author: author.into(),
            content: content.into(),
            components,
            attachments,
            deleted: false,
            pinned: false,
            edited: false,
            nonce,
            timestamp,
            reactions: Vec::new(),
            bursts: Vec::new(),
            pinged: Vec::new(),
            created: tokio::time::Instant::now(),
        };
        if let Some(c) = self.channel_mut(channel) {
            c.messages.push(msg);
        }
        id
    }

    /// Adds `user` to `emoji`'s holders (its super reaction's when `burst`); false when they
    /// already held it.
    pub(crate) fn add_reaction(&mut self, channel: &str, message: &str, emoji: &str, user: &str, burst: bool) -> bool {
        let Some(m) = self.message_mut(channel, message) else { return false };
        let reactions = if burst { &mut m.bursts } else { &mut m.reactions };
        match reactions.iter_mut().find(|(e, _)| e == emoji) {
            Some((_, users)) if users.iter().any(|u| u == user) => false,
            Some((_, users)) => {
                users.push(user.into());
                true
            }
            None => {
                reactions.push((emoji.into(), vec![user.into()]));
                true
            }
        }
    }

    /// Takes `user` out of `emoji`'s holders (its super reaction's when `burst`); false when
    /// they did not hold it.
    pub(crate) fn remove_reaction(
        &mut self,
        channel: &str,
        message: &str,
        emoji: &str,
        user: &str,
        burst: bool,
    ) -> bool {
        let Some(m) = self.message_mut(channel, message) else { return false };
        let reactions = if burst { &mut m.bursts } else { &mut m.reactions };
        let Some(i) = reactions.iter().position(|(e, _)| e == emoji) else { return false };
        let users = &mut reactions[i].1;
        let before = users.len();
        users.retain(|u| u != user);
        let removed = users.len() != before;
        if users.is_empty() {
            reactions.remove(i);
        }
        removed
    }

    // Read accessors, for tests.

    /// The guild `id`.
    pub fn guild(&self, id: &str) -> Option<&Guild> {
        self.guilds.iter().find(|g| g.id == id)
    }

    /// The channel `id` (a guild channel or a DM channel).
    pub fn channel(&self, id: &str) -> Option<&Channel> {
        self.channels.get(id)
    }

    /// A member's permissions in a guild channel, overwrites and all
    /// ([`Guild::channel_permissions`]); `None` for a DM channel, an unknown channel or a
    /// non-member.
    pub fn channel_permissions(&self, channel: &str, user: &str) -> Option<u64> {
        let c = self.channels.get(channel)?;
        self.guild(c.guild.as_deref()?)?.channel_permissions(&c.overwrites, user)
    }

    /// The channel's current name.
    pub fn channel_name(&self, id: &str) -> Option<&str> {
        self.channels.get(id).map(|c| c.name.as_str())
    }

    /// Every message of the channel, deleted ones included (flagged), oldest first.
    pub fn messages(&self, channel: &str) -> &[Msg] {
        self.channels.get(channel).map_or(&[], |c| c.messages.as_slice())
    }

    /// The message `id` of the channel, deleted or not.
    pub fn message(&self, channel: &str, id: &str) -> Option<&Msg> {
        self.messages(channel).iter().find(|m| m.id == id)
    }

    /// The bot's messages in the channel that are not deleted, oldest first.
    pub fn bot_messages(&self, channel: &str) -> Vec<&Msg> {
        self.messages(channel).iter().filter(|m| m.author == BOT_ID && !m.deleted).collect()
    }

    /// The user ids holding `emoji` on a message, in the order they reacted.
    pub fn reactions(&self, channel: &str, message: &str, emoji: &str) -> Vec<String> {
        self.message(channel, message).map(|m| m.holders(emoji)).unwrap_or_default()
    }

    /// The user ids holding `emoji` as a super reaction on a message.
    pub fn burst_reactions(&self, channel: &str, message: &str, emoji: &str) -> Vec<String> {
        let m = self.message(channel, message);
        m.and_then(|m| m.bursts.iter().find(|(e, _)| e == emoji)).map(|(_, users)| users.clone()).unwrap_or_default()
    }

    /// The member's role ids; `None` when `user` is not a member of `guild`.
    pub fn member_roles(&self, guild: &str, user: &str) -> Option<Vec<String>> {
        self.guild(guild)?.member(user).map(|m| m.roles.clone())
    }

    /// The DM channel with `user`, once the bot opened one.
    pub fn dm_channel(&self, user: &str) -> Option<&str> {
        self.dm_channels.get(user).map(String::as_str)
    }

    /// What the bot sent `user` in DMs, oldest first.
    pub fn dms(&self, user: &str) -> Vec<String> {
        self.dm_channel(user)
            .map(|c| self.messages(c).iter().filter(|m| !m.deleted).map(|m| m.content.clone()).collect())
            .unwrap_or_default()
    }

    /// The guild's audit log, oldest first.
    pub fn audit_log(&self, guild: &str) -> &[AuditEntry] {
        self.audit.get(guild).map_or(&[], Vec::as_slice)
    }

    /// Every REST request received, in order.
    pub fn requests(&self) -> &[Recorded] {
        &self.requests
    }

    /// The application's commands as the bot last registered them (with ids added), `[]`
    /// before.
    pub fn registered_commands(&self) -> &Value {
        &self.commands
    }

    /// The interaction `id` and its answers.
    pub fn interaction(&self, id: &str) -> Option<&Interaction> {
        self.interactions.get(id)
    }

    /// The `d` of every IDENTIFY received, in order.
    pub fn identifies(&self) -> &[Value] {
        &self.gateway.identifies
    }

    /// The `d` of every RESUME received, in order.
    pub fn resumes(&self) -> &[Value] {
        &self.gateway.resumes
    }

    /// Whether a client is connected with a live session (identified or resumed).
    pub fn connected(&self) -> bool {
        self.gateway.live.is_some()
    }

    /// Every dispatch the fake produced (`t`, `d`), in order, whether it reached a client or
    /// not.
    pub fn dispatched(&self) -> &[(String, Value)] {
        &self.gateway.dispatched
    }
}

/// Whom a message's text pings, as Discord decides: every user (`<@id>`, `<@!id>`), role
/// (`<@&id>`) and `@everyone`/`@here` in it, unless `allowed_mentions` says otherwise: then
/// only the kinds its `parse` lists (`users`, `roles`, `everyone`), and the ids its `users` and
/// `roles` list. Users as their ids, roles as `role:ID`, everyone as `@everyone`.
pub fn pings(content: &str, allowed: &Value) -> Vec<String> {
    let narrowed = allowed.is_object();
    let parses = |kind: &str| !narrowed || allowed["parse"].as_array().is_some_and(|p| p.iter().any(|k| k == kind));
    let listed = |list: &str, id: &str| allowed[list].as_array().is_some_and(|l| l.iter().any(|v| v == id));
    let mut pinged = Vec::new();
    let mut rest = content;
    while let Some(start) = rest.find("<@") {
        let tail = &rest[start + 2..];
        let Some(end) = tail.find('>') else { break };
        let inner = &tail[..end];
        let (role, id) = match inner.strip_prefix('&') {
            Some(id) => (true, id),
            None => (false, inner.strip_prefix('!').unwrap_or(inner)),
        };
        if !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()) {
            let who = if role { format!("role:{id}") } else { id.to_string() };
            let allowed_here =
                if role { parses("roles") || listed("roles", id) } else { parses("users") || listed("users", id) };
            if allowed_here && !pinged.contains(&who) {
                pinged.push(who);
            }
        }
        rest = &tail[end..];
    }
    if (content.contains("@everyone") || content.contains("@here")) && parses("everyone") {
        pinged.push("@everyone".to_string());
    }
    pinged
}
