//! A stateful fake of Discord for end-to-end tests: the REST API v10 and the gateway
//! websocket, both on 127.0.0.1, in front of one [`State`].
//!
//! The fake models one bot application ([`BOT_ID`], [`APPLICATION_ID`]) and what it can see:
//! guilds with text channels, roles, members and custom emojis; messages with their reactions;
//! DM channels; each guild's audit log; the registered application commands; interactions
//! and their answers. Snowflakes it creates count up from [`state::FIRST_ID`].
//!
//! A test sets the guilds up before the client connects (a guild the bot is not in yet comes
//! in later, when a user invites the bot: [`FakeDiscord::invite_bot`]), then acts as
//! Discord's users would
//! ([`FakeDiscord::user_reacts`], [`FakeDiscord::slash`], ...): each action changes the
//! state, adds the audit log entry Discord would, and dispatches the gateway event Discord
//! would. The bot's REST calls change the same state and dispatch the same events (the bot's
//! own, which a client ignores). Waiting is done on the state: [`FakeDiscord::until`]
//! rechecks a condition after every change; callers wrap waits in their own timeouts.
//!
//! As strict as Discord where Polity relies on it: a guild the bot is not in is out of reach
//! (403 Missing Access), a non-member is an Unknown Member (404, code 10007), the bot can
//! message a user directly only while they share a guild (403, code 50007), and an
//! interaction carries its member's permissions in its channel as Discord computes them, and
//! the bot's (`app_permissions`).
//!
//! Discord's permission model, for every request of the bot (the REST API's caller is always
//! the bot). In a guild the bot holds its own managed role ([`BOT_ROLE_NAME`],
//! [`FakeDiscord::bot_role`]: a new id, [`permissions::POLITY`], the invite's permissions) at
//! the top of the hierarchy; roles set up later come just below it, and a test moves roles
//! ([`FakeDiscord::set_role_position`]), changes their permissions
//! ([`FakeDiscord::set_role_permissions`]) and sets channel overwrites
//! ([`FakeDiscord::set_channel_overwrite`]) as a server's admin would, each with Discord's
//! gateway event. The bot's permissions in a channel are computed by Discord's algorithm
//! ([`State::channel_permissions`]: `@everyone` and its roles; the owner and an administrator
//! have all; then `@everyone`'s overwrite, the roles' overwrites together, the member's own;
//! nothing without View Channel). A 404 for an unknown resource comes first; then a guild
//! channel the bot cannot see is 403 Missing Access (50001, as Discord answers it); then what
//! it lacks is 403 Missing Permissions (50013), and nothing changes:
//!
//! | request | needs |
//! |---|---|
//! | `POST /channels/{c}/messages` | Send Messages; with files, Attach Files |
//! | `GET /channels/{c}/messages/{m}`, `GET .../reactions/{e}` | Read Message History |
//! | `DELETE /channels/{c}/messages/{m}` of another's message | Manage Messages |
//! | `PUT .../reactions/{e}/@me` | Read Message History; Add Reactions when nobody holds the emoji yet |
//! | `DELETE .../reactions/{e}/{user}` of another's reaction | Manage Messages |
//! | `PATCH /channels/{c}` | Manage Channels |
//! | `PUT`/`DELETE /channels/{c}/pins/{m}` | Pin Messages or Manage Messages |
//! | `PUT`/`DELETE /guilds/{g}/members/{u}/roles/{r}` | Manage Roles (in the guild); the role strictly below the bot's highest, not managed |
//! | `DELETE /guilds/{g}/members/{u}` (kick) | Kick Members (in the guild); the member not the owner, their highest role strictly below the bot's |
//! | `GET /guilds/{g}/audit-logs` | View Audit Log (in the guild) |
//!
//! Every other channel route needs View Channel alone. Users' actions through
//! [`FakeDiscord`] are not checked.
//!
//! Rate limits as Discord has them where Discord's are tight: the bot may rename a channel
//! twice in ten minutes ([`limits`]; per channel, the window opening at the first rename). Such
//! a route's answers carry Discord's headers (`X-RateLimit-Limit`, `-Remaining`, `-Reset`,
//! `-Reset-After`, `-Bucket`), and a request over the limit is answered 429 with
//! `retry_after` and `"global": false` in the body, `X-RateLimit-Scope: user` and
//! `Retry-After`, and changes nothing. Windows run on tokio's clock, so a test on a paused
//! clock moves them with `tokio::time::advance`. Other rate limits are injected with
//! [`FakeDiscord::fail_next`].
//!
//! What it leaves out: users' permissions for what they do through [`FakeDiscord`], the
//! permissions of categories (no channel has a parent), timeouts, intents (every dispatch
//! goes to the client; messages in DM channels are not dispatched), Discord's other rate
//! limits (the global 50 a second among them), threads, embeds.

pub mod gateway;
pub mod multipart;
pub mod payloads;
pub mod rest;
pub mod state;

pub use rest::{codes, limits};
pub use state::{
    APPLICATION_ID, APPLICATION_OWNER, AuditEntry, BOT_ID, BOT_NAME, BOT_ROLE_NAME, Channel, Guild, Interaction,
    Member, Msg, Overwrite, Recorded, Response, Role, State, User, audit, permissions,
};

use payloads::JOINED_AT;
use serde_json::{Value, json};
use state::Failure;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;

/// The state and the signal that it changed, shared by the servers and the test.
#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<State>,
    changed: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the state and wakes every waiter.
    pub(crate) fn change<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let out = f(&mut self.lock());
        self.changed.notify_waiters();
        out
    }

    fn read<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        f(&self.lock())
    }
}

/// The fake Discord: its REST server, its gateway server and its state. Dropping it stops
/// both servers and closes every gateway connection.
#[derive(Debug)]
pub struct FakeDiscord {
    shared: Arc<Shared>,
    rest_url: String,
    gateway_url: String,
    identifies_seen: AtomicUsize,
    resumes_seen: AtomicUsize,
    stop_rest: Option<oneshot::Sender<()>>,
    gateway_task: JoinHandle<()>,
}

impl Drop for FakeDiscord {
    fn drop(&mut self) {
        if let Some(stop) = self.stop_rest.take() {
            let _ = stop.send(());
        }
        self.gateway_task.abort();
    }
}

/// An option value's type for an interaction: 3 string, 4 integer, 5 boolean, 10 number.
fn option_type(v: &Value) -> u64 {
    match v {
        Value::Number(n) if n.is_i64() || n.is_u64() => 4,
        Value::Number(_) => 10,
        Value::Bool(_) => 5,
        _ => 3,
    }
}

impl FakeDiscord {
    /// Starts the REST server and the gateway server on free ports of 127.0.0.1.
    pub async fn start() -> FakeDiscord {
        let rest = TcpListener::bind("127.0.0.1:0").await.expect("bind the fake REST server");
        let ws = TcpListener::bind("127.0.0.1:0").await.expect("bind the fake gateway");
        let rest_url = format!("http://{}", rest.local_addr().expect("the REST server's address"));
        let gateway_url = format!("ws://{}", ws.local_addr().expect("the gateway's address"));
        let shared = Arc::new(Shared { state: Mutex::new(State::new(gateway_url.clone())), changed: Notify::new() });
        let app = axum::Router::new()
            .route("/attachments/{channel}/{message}/{file}", axum::routing::get(cdn))
            .fallback(rest::handle)
            .with_state(Arc::clone(&shared));
        let (stop, stopped) = oneshot::channel::<()>();
        // Stopped gracefully, so that the connections it kept alive are closed too.
        tokio::spawn(async move {
            let _ = axum::serve(rest, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        let gateway_task = tokio::spawn(gateway::serve(Arc::clone(&shared), ws));
        FakeDiscord {
            shared,
            rest_url,
            gateway_url,
            identifies_seen: AtomicUsize::new(0),
            resumes_seen: AtomicUsize::new(0),
            stop_rest: Some(stop),
            gateway_task,
        }
    }

    /// The REST base URL, `http://127.0.0.1:PORT` (serenity's proxy URL; the API is under
    /// `/api/v10`).
    pub fn url(&self) -> String {
        self.rest_url.clone()
    }

    /// The gateway URL, `ws://127.0.0.1:PORT`, which `GET /gateway` answers.
    pub fn gateway_url(&self) -> String {
        self.gateway_url.clone()
    }

    /// Reads the state.
    pub fn with<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        self.shared.read(f)
    }

    // Setup: silent (no dispatch), meant for before the client connects; GUILD_CREATE
    // reflects it.

    /// A guild named `name` owned by `owner`, with its `@everyone` role (whose id is the
    /// guild's, with Discord's usual permissions) and the bot as a member, holding its own
    /// role ([`Self::bot_role`]: [`BOT_ROLE_NAME`], managed, [`permissions::POLITY`], the
    /// highest).
    pub fn add_guild(&self, id: &str, name: &str, owner: &str) {
        self.add_guild_without_bot(id, name, owner);
        self.shared.change(|s| s.join_bot(id, JOINED_AT.into()));
    }

    /// A guild as [`Self::add_guild`] makes it, but one the bot is not in yet: the gateway
    /// does not announce it, and the REST API answers 403 Missing Access about it, until a
    /// user adds the bot ([`Self::invite_bot`]).
    pub fn add_guild_without_bot(&self, id: &str, name: &str, owner: &str) {
        self.shared.change(|s| {
            s.guilds.retain(|g| g.id != id);
            s.guilds.push(Guild {
                id: id.into(),
                name: name.into(),
                owner: owner.into(),
                roles: vec![Role {
                    id: id.into(),
                    name: "@everyone".into(),
                    permissions: permissions::EVERYONE,
                    position: 0,
                    managed: false,
                }],
                members: Vec::new(),
                channels: Vec::new(),
                emojis: Vec::new(),
            });
        });
    }

    /// `user` adds the bot to `guild` (with the bot's invite link): the bot becomes a member
    /// holding its own new role (as [`Self::add_guild`] gives it), an audit log entry (type
    /// 28) by the user names it, and GUILD_CREATE is dispatched. Nothing when the bot is in
    /// the guild already.
    pub fn invite_bot(&self, guild: &str, user: &str) {
        self.shared.change(|s| {
            let joined_at = s.now();
            let g = s.guild(guild).unwrap_or_else(|| panic!("invite_bot: unknown guild {guild}"));
            if g.has_bot() {
                return;
            }
            s.join_bot(guild, joined_at);
            s.record_audit(guild, user, BOT_ID, audit::BOT_ADD, json!([]), Value::Null);
            if let Some(g) = s.guild(guild) {
                let event = s.guild_create(g);
                s.dispatch("GUILD_CREATE", event);
            }
        });
    }

    /// A text channel of `guild`.
    pub fn add_channel(&self, guild: &str, id: &str, name: &str) {
        self.shared.change(|s| {
            let g = s.guild_mut(guild).unwrap_or_else(|| panic!("add_channel: unknown guild {guild}"));
            g.channels.push(id.into());
            let channel = Channel {
                id: id.into(),
                guild: Some(guild.into()),
                name: name.into(),
                kind: 0,
                recipient: None,
                messages: Vec::new(),
                overwrites: Vec::new(),
            };
            s.channels.insert(id.into(), channel);
        });
    }

    /// A role of `guild`, with no permissions of its own, just below the bot's role (as if
    /// the server's admin made it after inviting the bot; at the top while the bot is not in
    /// the guild).
    pub fn add_role(&self, guild: &str, id: &str, name: &str) {
        self.add_role_with_permissions(guild, id, name, 0);
    }

    /// A role of `guild` with `permissions` (Discord's bits, see [`permissions`]), placed as
    /// [`Self::add_role`] places it.
    pub fn add_role_with_permissions(&self, guild: &str, id: &str, name: &str, permissions: u64) {
        self.shared.change(|s| {
            let g = s.guild_mut(guild).unwrap_or_else(|| panic!("add_role: unknown guild {guild}"));
            g.add_role(id, name, permissions);
        });
    }

    /// The id of the bot's own role in `guild` (managed, made when the bot joined).
    pub fn bot_role(&self, guild: &str) -> String {
        self.with(|s| s.guild(guild).and_then(Guild::bot_role).map(|r| r.id.clone()))
            .unwrap_or_else(|| panic!("bot_role: the bot is not in guild {guild}"))
    }

    /// An admin moves `role` to `position` in `guild`'s hierarchy (1 is just above
    /// `@everyone`; past the top is the top): the other roles are numbered around it from 1
    /// up, in their order, so that positions stay distinct, and GUILD_ROLE_UPDATE is
    /// dispatched for each role whose position changed.
    pub fn set_role_position(&self, guild: &str, role: &str, position: u32) {
        self.shared.change(|s| {
            let g = s.guild_mut(guild).unwrap_or_else(|| panic!("set_role_position: unknown guild {guild}"));
            assert!(role != guild, "set_role_position: @everyone stays at 0");
            assert!(g.role(role).is_some(), "set_role_position: no role {role} in guild {guild}");
            for r in g.move_role(role, position) {
                s.dispatch("GUILD_ROLE_UPDATE", json!({ "guild_id": guild, "role": payloads::role_json(&r) }));
            }
        });
    }

    /// An admin sets `role`'s permissions (the bot's role too, or `@everyone`'s, whose id is
    /// the guild's): GUILD_ROLE_UPDATE.
    pub fn set_role_permissions(&self, guild: &str, role: &str, bits: u64) {
        self.shared.change(|s| {
            let g = s.guild_mut(guild).unwrap_or_else(|| panic!("set_role_permissions: unknown guild {guild}"));
            let r = g.roles.iter_mut().find(|r| r.id == role);
            let r = r.unwrap_or_else(|| panic!("set_role_permissions: no role {role} in guild {guild}"));
            r.permissions = bits;
            let event = json!({ "guild_id": guild, "role": payloads::role_json(r) });
            s.dispatch("GUILD_ROLE_UPDATE", event);
        });
    }

    /// An admin sets `channel`'s permission overwrite for `target` (replacing the one it had):
    /// a role's (the guild's id for `@everyone`) when the guild has a role with that id, else
    /// a member's. CHANNEL_UPDATE.
    pub fn set_channel_overwrite(&self, channel: &str, target: &str, allow: u64, deny: u64) {
        self.shared.change(|s| {
            let guild =
                s.guild_of(channel).unwrap_or_else(|| panic!("set_channel_overwrite: no guild channel {channel}"));
            let kind = u8::from(s.guild(&guild).is_none_or(|g| g.role(target).is_none()));
            let Some(c) = s.channel_mut(channel) else { return };
            let overwrite = Overwrite { id: target.into(), kind, allow, deny };
            match c.overwrites.iter_mut().find(|o| o.id == target) {
                Some(o) => *o = overwrite,
                None => c.overwrites.push(overwrite),
            }
            let event = payloads::channel_json(c, None);
            s.dispatch("CHANNEL_UPDATE", event);
        });
    }

    /// A custom emoji of `guild` (its key is `name:id`); the bot can react only with the
    /// custom emojis of the message's guild.
    pub fn add_emoji(&self, guild: &str, id: &str, name: &str) {
        self.shared.change(|s| {
            let g = s.guild_mut(guild).unwrap_or_else(|| panic!("add_emoji: unknown guild {guild}"));
            g.emojis.push((id.into(), name.into()));
        });
    }

    /// A member of `guild` (a human user), with a nickname and roles.
    pub fn add_member(&self, guild: &str, user: &str, username: &str, nick: Option<&str>, roles: &[&str]) {
        self.shared.change(|s| {
            s.users.insert(user.into(), User { id: user.into(), username: username.into(), bot: false });
            let g = s.guild_mut(guild).unwrap_or_else(|| panic!("add_member: unknown guild {guild}"));
            g.members.retain(|m| m.user != user);
            g.members.push(Member {
                user: user.into(),
                nick: nick.map(str::to_string),
                roles: roles.iter().map(|r| (*r).to_string()).collect(),
                joined_at: JOINED_AT.into(),
            });
        });
    }

    /// A message that was in `channel` before the test (no dispatch); answers its id.
    pub fn add_message(&self, channel: &str, author: &str, content: &str) -> String {
        self.shared.change(|s| {
            assert!(s.channels.contains_key(channel), "add_message: unknown channel {channel}");
            s.create_message(channel, author, content, json!([]), Vec::new(), None)
        })
    }

    /// Makes a message `by` older (as if it had been created that long ago): edits of
    /// messages older than an hour spend a budget of their own.
    pub fn age_message(&self, channel: &str, message: &str, by: std::time::Duration) {
        self.shared.change(|s| {
            let m = s.message_mut(channel, message).unwrap_or_else(|| panic!("age_message: no message {message}"));
            m.created = m.created.checked_sub(by).unwrap_or(m.created);
        });
    }

    /// Sets how many edits of old messages a channel takes per window (Discord's figure is
    /// not published; [`limits::OLD_EDITS`] per [`limits::OLD_EDIT_WINDOW`] by default).
    pub fn limit_old_edits(&self, per_window: u32, window: std::time::Duration) {
        self.shared.change(|s| s.old_edits = (per_window, window));
    }

    /// The application's privileged intents are not enabled (in the Developer Portal): an
    /// IDENTIFY asking for one is closed with 4014.
    pub fn disallow_privileged_intents(&self) {
        self.shared.change(|s| s.privileged_intents = false);
    }

    /// Discord requires (and `GET /gateway/bot` recommends) `shards` shards: an IDENTIFY
    /// with fewer is closed with 4011.
    pub fn require_shards(&self, shards: u32) {
        self.shared.change(|s| s.shards = shards.max(1));
    }

    /// From now on only `token` is accepted: REST requests with another get 401 (but for
    /// `GET /gateway`, which needs none), and an IDENTIFY with another is closed with 4004.
    pub fn require_token(&self, token: &str) {
        self.shared.change(|s| s.token = Some(token.to_string()));
    }

    /// The next REST request with `method` whose path (after `/api/v10`; the prefix may be
    /// given with or without it) starts with `path_prefix` is answered with `status`, `body`
    /// and, if given, a `Retry-After` header, and changes nothing. Once.
    pub fn fail_next(
        &self,
        method: &str,
        path_prefix: &str,
        status: u16,
        body: Value,
        retry_after_header: Option<&str>,
    ) {
        let failure = Failure {
            method: method.to_string(),
            prefix: rest::relative(path_prefix).to_string(),
            status,
            body,
            retry_after: retry_after_header.map(str::to_string),
        };
        self.shared.change(|s| s.failures.push(failure));
    }

    /// Closes the live gateway connection with close code 4000, so that serenity reconnects
    /// and RESUMEs; events produced until it does are replayed then. False when no client
    /// was connected.
    pub fn disconnect(&self) -> bool {
        self.shared.change(State::disconnect)
    }

    /// Ends the session and closes the live connection: serenity's RESUME is answered with
    /// INVALID SESSION and it identifies again, as after Discord drops a session.
    pub fn end_session(&self) -> bool {
        self.shared.change(|s| {
            s.gateway.session = None;
            s.disconnect()
        })
    }

    // Users acting on Discord.

    /// `user` adds `emoji` (a unicode emoji, skin tone and all, or `name:id`) to a message:
    /// MESSAGE_REACTION_ADD (with the member, `burst` false, `type` 0, `message_author_id`).
    /// Nothing when they already held it.
    pub fn user_reacts(&self, user: &str, channel: &str, message: &str, emoji: &str) {
        self.reacts(user, channel, message, emoji, false);
    }

    /// `user` adds `emoji` as a super reaction (Nitro's burst reaction): MESSAGE_REACTION_ADD
    /// with `burst` true and `type` 1. A user may hold both kinds of one emoji.
    pub fn user_super_reacts(&self, user: &str, channel: &str, message: &str, emoji: &str) {
        self.reacts(user, channel, message, emoji, true);
    }

    fn reacts(&self, user: &str, channel: &str, message: &str, emoji: &str, burst: bool) {
        self.shared.change(|s| {
            let m = s.message(channel, message).filter(|m| !m.deleted).cloned();
            let m = m.unwrap_or_else(|| panic!("user_reacts: no message {message} in channel {channel}"));
            if s.add_reaction(channel, message, emoji, user, burst) {
                let event = s.reaction_add(&m, user, emoji, burst);
                s.dispatch("MESSAGE_REACTION_ADD", event);
            }
        });
    }

    /// `user` takes their `emoji` off a message: MESSAGE_REACTION_REMOVE (no member).
    /// Nothing when they did not hold it.
    pub fn user_unreacts(&self, user: &str, channel: &str, message: &str, emoji: &str) {
        self.unreacts(user, channel, message, emoji, false);
    }

    /// `user` takes their super reaction `emoji` off a message.
    pub fn user_super_unreacts(&self, user: &str, channel: &str, message: &str, emoji: &str) {
        self.unreacts(user, channel, message, emoji, true);
    }

    fn unreacts(&self, user: &str, channel: &str, message: &str, emoji: &str, burst: bool) {
        self.shared.change(|s| {
            if s.remove_reaction(channel, message, emoji, user, burst) {
                let event = s.reaction_remove(channel, message, user, emoji, burst);
                s.dispatch("MESSAGE_REACTION_REMOVE", event);
            }
        });
    }

    /// `user` posts `text` with `attachments` (URLs) in `channel`: MESSAGE_CREATE with the
    /// author's partial member. Answers the message id.
    pub fn user_says(&self, user: &str, channel: &str, text: &str, attachments: &[&str]) -> String {
        self.shared.change(|s| {
            assert!(s.channels.contains_key(channel), "user_says: unknown channel {channel}");
            let urls = attachments.iter().map(|a| (*a).to_string()).collect();
            let id = s.create_message(channel, user, text, json!([]), urls, None);
            if s.guild_of(channel).is_some()
                && let Some(m) = s.message(channel, &id).cloned()
            {
                let event = s.message_event(&m);
                s.dispatch("MESSAGE_CREATE", event);
            }
            id
        })
    }

    /// `user` posts `text` with files (`(name, content)`) in `channel`: MESSAGE_CREATE whose
    /// attachments are served by the fake's CDN (`{url}/attachments/...`, signed like
    /// Discord's) only while the message exists. Answers the message id.
    pub fn user_says_with_files(&self, user: &str, channel: &str, text: &str, files: &[(&str, &[u8])]) -> String {
        let base = self.url();
        self.shared.change(|s| {
            assert!(s.channels.contains_key(channel), "user_says_with_files: unknown channel {channel}");
            let id = s.create_message(channel, user, text, json!([]), Vec::new(), None);
            let mut urls = Vec::new();
            for (name, content) in files {
                let path = format!("/attachments/{channel}/{id}/{name}");
                urls.push(format!("{base}{path}?ex=6a1b2c3d&is=6a1a0000&hm=5f0c9e"));
                s.cdn.insert(path, content.to_vec());
            }
            if let Some(m) = s.message_mut(channel, &id) {
                m.attachments = urls;
            }
            if s.guild_of(channel).is_some()
                && let Some(m) = s.message(channel, &id).cloned()
            {
                let event = s.message_event(&m);
                s.dispatch("MESSAGE_CREATE", event);
            }
            id
        })
    }

    /// `user` deletes a message: MESSAGE_DELETE, and an audit log entry (type 72) when it was
    /// someone else's.
    pub fn user_deletes_message(&self, user: &str, channel: &str, message: &str) {
        self.shared.change(|s| rest::remove_message(s, channel, message, user));
    }

    /// `user` renames a channel: audit log entry (type 11) by them, CHANNEL_UPDATE.
    pub fn user_renames_channel(&self, user: &str, channel: &str, new_name: &str) {
        self.shared.change(|s| {
            assert!(s.channels.contains_key(channel), "user_renames_channel: unknown channel {channel}");
            rest::rename(s, channel, new_name, user);
        });
    }

    fn role_change(&self, actor: &str, member: &str, role: &str, grant: bool) {
        self.shared.change(|s| {
            let guild = s.guilds.iter().find(|g| g.role(role).is_some()).map(|g| g.id.clone());
            let guild = guild.unwrap_or_else(|| panic!("no guild has role {role}"));
            if let Err(a) = rest::change_role(s, &guild, member, role, grant, actor) {
                panic!("role {role} of {member}: {:?}", a.body);
            }
        });
    }

    /// `actor` gives `member` the role `role` (in the guild that has it): audit log entry
    /// (type 25) by the actor targeting the member, GUILD_MEMBER_UPDATE.
    pub fn user_grants_role(&self, actor: &str, member: &str, role: &str) {
        self.role_change(actor, member, role, true);
    }

    /// `actor` takes the role `role` from `member`, as [`Self::user_grants_role`] gives it.
    pub fn user_revokes_role(&self, actor: &str, member: &str, role: &str) {
        self.role_change(actor, member, role, false);
    }

    /// `user` joins `guild`: GUILD_MEMBER_ADD (a member object with `guild_id`). Nothing when
    /// they are a member already.
    pub fn user_joins(&self, guild: &str, user: &str, username: &str) {
        self.shared.change(|s| {
            s.users.insert(user.into(), User { id: user.into(), username: username.into(), bot: false });
            let joined_at = s.now();
            let g = s.guild_mut(guild).unwrap_or_else(|| panic!("user_joins: unknown guild {guild}"));
            if g.member(user).is_some() {
                return;
            }
            g.members.push(Member { user: user.into(), nick: None, roles: Vec::new(), joined_at });
            let mut event = s.member_json(guild, user);
            event["guild_id"] = json!(guild);
            s.dispatch("GUILD_MEMBER_ADD", event);
        });
    }

    /// `user` leaves `guild`: GUILD_MEMBER_REMOVE.
    pub fn user_leaves(&self, guild: &str, user: &str) {
        self.shared.change(|s| rest::remove_member(s, guild, user, None));
    }

    /// Records a new interaction and dispatches its INTERACTION_CREATE with `data` (and the
    /// `message` of a component).
    fn interact(&self, kind: u8, user: &str, guild: &str, channel: &str, source: Option<&str>, data: Value) -> String {
        self.shared.change(|s| {
            let id = s.new_id();
            let token = format!("fake-interaction-token-{id}");
            let i = Interaction {
                id: id.clone(),
                token: token.clone(),
                kind,
                guild: Some(guild.to_string()),
                channel: channel.to_string(),
                user: user.to_string(),
                source: source.map(str::to_string),
                response: None,
                edits: Vec::new(),
                followups: Vec::new(),
                message: None,
                answer_id: None,
                created: tokio::time::Instant::now(),
            };
            let mut event = s.interaction_base(&i);
            event["data"] = data;
            if let Some(m) = source {
                let m = s.message(channel, m).unwrap_or_else(|| panic!("press: no message {m} in {channel}"));
                event["message"] = s.message_json(m);
            }
            s.tokens.insert(token, id.clone());
            s.interactions.insert(id.clone(), i);
            s.dispatch("INTERACTION_CREATE", event);
            id
        })
    }

    /// `user` runs the slash command `words` (`["propose"]`, `["role", "grant"]`, or a group's
    /// three words) with `options` in `channel`: INTERACTION_CREATE of type 2. The options are
    /// nested in the subcommand (type 1) and group (type 2) as Discord nests them; an option's
    /// type follows its value (3 string, 4 integer, 5 boolean, 10 number). `data.id` is the
    /// registered command's id. Answers the interaction id.
    pub fn slash(&self, user: &str, guild: &str, channel: &str, words: &[&str], options: Vec<(&str, Value)>) -> String {
        let (name, rest) = words.split_first().expect("slash: a command has a name");
        let mut nested: Vec<Value> =
            options.into_iter().map(|(n, v)| json!({ "name": n, "type": option_type(&v), "value": v })).collect();
        for (depth, word) in rest.iter().enumerate().rev() {
            let kind = if depth + 1 == rest.len() { 1 } else { 2 };
            nested = vec![json!({ "name": word, "type": kind, "options": nested })];
        }
        let id = self.with(|s| {
            s.commands.as_array().and_then(|c| c.iter().find(|c| c["name"] == json!(name))).map(|c| c["id"].clone())
        });
        let id = id.unwrap_or_else(|| json!(format!("{}", state::FIRST_ID - 1)));
        let data = json!({ "id": id, "name": name, "type": 1, "options": nested });
        self.interact(2, user, guild, channel, None, data)
    }

    /// `user` presses the button `custom_id` on a message: INTERACTION_CREATE of type 3 with
    /// the message. Answers the interaction id.
    pub fn press(&self, user: &str, guild: &str, channel: &str, message: &str, custom_id: &str) -> String {
        let data = json!({ "custom_id": custom_id, "component_type": 2 });
        self.interact(3, user, guild, channel, Some(message), data)
    }

    /// `user` submits the form (modal) `custom_id` with `value` typed in its text input
    /// `input_custom_id`: INTERACTION_CREATE of type 5. Answers the interaction id.
    pub fn submit_form(
        &self,
        user: &str,
        guild: &str,
        channel: &str,
        custom_id: &str,
        input_custom_id: &str,
        value: &str,
    ) -> String {
        let data = json!({
            "custom_id": custom_id,
            "components": [{ "type": 1, "components": [{ "type": 4, "custom_id": input_custom_id, "value": value }] }]
        });
        self.interact(5, user, guild, channel, None, data)
    }

    // Waiting.

    /// Waits until `f` finds something in the state, rechecking after every change; answers
    /// it. Never returns when nothing comes: wrap it in a timeout.
    pub async fn until<T>(&self, f: impl Fn(&State) -> Option<T>) -> T {
        loop {
            let changed = self.shared.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(found) = self.shared.read(&f) {
                return found;
            }
            changed.await;
        }
    }

    /// Waits until `f` holds.
    pub async fn wait_until(&self, f: impl Fn(&State) -> bool) {
        self.until(|s| f(s).then_some(())).await;
    }

    /// The first answer to interaction `id`, once it came.
    pub async fn response(&self, id: &str) -> Response {
        self.until(|s| s.interaction(id).and_then(|i| i.response.clone())).await
    }

    /// The latest edit of interaction `id`'s original answer, once there is one.
    pub async fn edited_response(&self, id: &str) -> Response {
        self.until(|s| s.interaction(id).and_then(|i| i.edits.last().cloned())).await
    }

    /// A bot message (not deleted) in `channel` whose content satisfies `pred`; answers its id.
    pub async fn wait_for_message(&self, channel: &str, pred: impl Fn(&str) -> bool) -> String {
        self.until(|s| s.bot_messages(channel).into_iter().find(|m| pred(&m.content)).map(|m| m.id.clone())).await
    }

    /// The first REST request received with `method` and a path (after `/api/v10`; the prefix
    /// may be given with or without it) starting with `path_prefix`.
    pub async fn wait_for_request(&self, method: &str, path_prefix: &str) -> Recorded {
        let prefix = rest::relative(path_prefix).to_string();
        self.until(|s| {
            s.requests()
                .iter()
                .find(|r| r.method.eq_ignore_ascii_case(method) && rest::relative(&r.path).starts_with(prefix.as_str()))
                .cloned()
        })
        .await
    }

    /// The `d` of the next IDENTIFY (the first not yet answered by this method).
    pub async fn wait_identify(&self) -> Value {
        let n = self.identifies_seen.fetch_add(1, Ordering::SeqCst);
        self.until(|s| s.identifies().get(n).cloned()).await
    }

    /// The `d` of the next RESUME (the first not yet answered by this method).
    pub async fn wait_resume(&self) -> Value {
        let n = self.resumes_seen.fetch_add(1, Ordering::SeqCst);
        self.until(|s| s.resumes().get(n).cloned()).await
    }

    /// Waits until a client holds a live session.
    pub async fn wait_connected(&self) {
        self.wait_until(State::connected).await;
    }

    // Reading.

    /// Whether a client holds a live session (identified or resumed, not disconnected).
    pub fn connected(&self) -> bool {
        self.with(State::connected)
    }

    /// Every message of `channel`, deleted ones included (flagged), oldest first.
    pub fn messages(&self, channel: &str) -> Vec<Msg> {
        self.with(|s| s.messages(channel).to_vec())
    }

    /// The message `id` of `channel`.
    pub fn message(&self, channel: &str, id: &str) -> Option<Msg> {
        self.with(|s| s.message(channel, id).cloned())
    }

    /// The user ids holding `emoji` on a message, in the order they reacted.
    pub fn reactions(&self, channel: &str, message: &str, emoji: &str) -> Vec<String> {
        self.with(|s| s.reactions(channel, message, emoji))
    }

    /// The user ids holding `emoji` as a super reaction on a message.
    pub fn burst_reactions(&self, channel: &str, message: &str, emoji: &str) -> Vec<String> {
        self.with(|s| s.burst_reactions(channel, message, emoji))
    }

    /// The channel's name now.
    pub fn channel_name(&self, channel: &str) -> Option<String> {
        self.with(|s| s.channel_name(channel).map(str::to_string))
    }

    /// The member's roles now; `None` when they are not a member.
    pub fn member_roles(&self, guild: &str, user: &str) -> Option<Vec<String>> {
        self.with(|s| s.member_roles(guild, user))
    }

    /// What the bot sent `user` in DMs, oldest first.
    pub fn dms(&self, user: &str) -> Vec<String> {
        self.with(|s| s.dms(user))
    }

    /// The guild's audit log, oldest first.
    pub fn audit_log(&self, guild: &str) -> Vec<AuditEntry> {
        self.with(|s| s.audit_log(guild).to_vec())
    }

    /// Every REST request received, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.with(|s| s.requests().to_vec())
    }

    /// The application commands as last registered (ids added); `[]` before.
    pub fn registered_commands(&self) -> Value {
        self.with(|s| s.registered_commands().clone())
    }

    /// The interaction `id`, with its answer, edits and followups.
    pub fn interaction(&self, id: &str) -> Option<Interaction> {
        self.with(|s| s.interaction(id).cloned())
    }

    /// How many IDENTIFYs the gateway received.
    pub fn identify_count(&self) -> usize {
        self.with(|s| s.identifies().len())
    }

    /// Every IDENTIFY's `d` the gateway received, oldest first.
    pub fn identifies(&self) -> Vec<Value> {
        self.with(|s| s.identifies().to_vec())
    }

    /// How many RESUMEs the gateway received.
    pub fn resume_count(&self) -> usize {
        self.with(|s| s.resumes().len())
    }

    /// Every dispatch produced (`t`, `d`), in order, delivered or not.
    pub fn dispatched(&self) -> Vec<(String, Value)> {
        self.with(|s| s.dispatched().to_vec())
    }
}

/// The CDN's `GET /attachments/{channel}/{message}/{file}`: the file while its message
/// exists; once the message is deleted, Discord's CDN drops its files (404).
async fn cdn(
    axum::extract::State(shared): axum::extract::State<Arc<Shared>>,
    axum::extract::Path((channel, message, file)): axum::extract::Path<(String, String, String)>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let path = format!("/attachments/{channel}/{message}/{file}");
    let found = shared.read(|s| {
        let live = s.message(&channel, &message).is_some_and(|m| !m.deleted);
        live.then(|| s.cdn.get(&path).cloned()).flatten()
    });
    match found {
        Some(bytes) => (axum::http::StatusCode::OK, bytes).into_response(),
        None => (axum::http::StatusCode::NOT_FOUND, "This content is no longer available.").into_response(),
    }
}
