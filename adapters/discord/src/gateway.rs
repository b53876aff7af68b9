//! The gateway side: a serenity [`Client`](serenity::Client) whose [`EventHandler`] turns Discord's gateway events
//! into the port's neutral [`Incoming`]s on a channel the caller owns.
//!
//! serenity runs every event handler call on its own task, so handlers cannot keep ordered
//! state of their own. What needs the state before an event (a channel's old name, a member's
//! old roles, the bot's own id) is read from serenity's cache, which the shard updates in
//! gateway order before the handler task is spawned.

use crate::commands::{Bridge, application_commands};
use crate::platform::{
    DiscordPlatform, MEMBER_JOIN, MESSAGE, RENAME_CHANNEL, ROLE_GRANT, ROLE_REVOKED, VOTE_BUTTON, emoji_key,
    http_client,
};
use polity_governance::action::{Action, ActionType};
use polity_governance::ids::{AccountRef, MessageRef, Place};
use polity_governance::io::Inbound;
use polity_port::{Event, Incoming, SpaceInfo};
use serde_json::Value;
use serenity::all::{
    Cache, ChannelId, ChunkGuildFilter, ClientBuilder, ConnectionStage, Context, EventHandler, GatewayIntents, Guild,
    GuildId, GuildMembersChunkEvent, Interaction, Member, Message, Reaction, ReactionTypes, Ready, ResumedEvent,
    RoleId, ShardManager, UserId,
};
use serenity::model::guild::audit_log::{Action as AuditAction, AuditLogEntry, Change, ChannelAction, MemberAction};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The gateway intents Polity asks for, and no more:
/// - `GUILDS`: `GUILD_CREATE` (the channels and their names, so a rename's old name is known)
///   and `CHANNEL_UPDATE` (renames);
/// - `GUILD_MESSAGES`: `MESSAGE_CREATE` in guild channels (governed messages, triggers);
/// - `MESSAGE_CONTENT` (privileged): without it a message's text and attachments arrive empty,
///   and a governed message could not be reposted;
/// - `GUILD_MESSAGE_REACTIONS`: reaction votes (`MESSAGE_REACTION_ADD`/`REMOVE`);
/// - `GUILD_MEMBERS` (privileged): `GUILD_MEMBER_ADD` (joins) and `GUILD_MEMBER_UPDATE` (the
///   cache's members and roles);
/// - `GUILD_MODERATION`: `GUILD_AUDIT_LOG_ENTRY_CREATE` (with View Audit Log), which says
///   exactly who renamed a channel or changed a member's roles.
#[must_use]
pub fn intents() -> GatewayIntents {
    GatewayIntents::GUILDS
        | GatewayIntents::GUILD_MESSAGES
        | GatewayIntents::MESSAGE_CONTENT
        | GatewayIntents::GUILD_MESSAGE_REACTIONS
        | GatewayIntents::GUILD_MEMBERS
        | GatewayIntents::GUILD_MODERATION
}

/// Where the gateway connects and as whom.
pub struct GatewayConfig {
    /// The connection's name: the platform of every ref in the events.
    pub connection: String,
    pub token: String,
    /// [`DISCORD_URL`](crate::DISCORD_URL) in production (with serenity's rate limiter); a fake's URL in tests.
    pub base_url: String,
    /// How long an interaction waits for the bot's answer before it is acknowledged and
    /// answered later (Discord allows three seconds for the first answer).
    pub answer_within: Duration,
    /// Register Polity's application commands when the session starts.
    pub register_commands: bool,
    /// How often the shards are looked at: one without a session at two looks in a row makes
    /// Polity ask Discord whether it wants more shards (see close code 4011).
    pub identify_wait: Duration,
}

impl GatewayConfig {
    /// A connection named `connection` with `token`, at `base_url`, answering within two
    /// seconds, registering its commands, looking at its shards every 30 s.
    pub fn new(connection: impl Into<String>, token: impl Into<String>, base_url: impl Into<String>) -> Self {
        Self {
            connection: connection.into(),
            token: token.into(),
            base_url: base_url.into(),
            answer_within: Duration::from_secs(2),
            register_commands: true,
            identify_wait: Duration::from_secs(30),
        }
    }
}

impl fmt::Debug for GatewayConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayConfig")
            .field("connection", &self.connection)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// A running gateway connection.
pub struct Gateway {
    shards: Arc<ShardManager>,
    cache: Arc<Cache>,
    platform: DiscordPlatform,
    /// The client's task, until it has been waited for.
    task: Option<JoinHandle<Result<(), serenity::Error>>>,
    resharding: Arc<Resharding>,
    /// The shards' watch (see [`Resharding`]), ended with the gateway.
    watch: JoinHandle<()>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.watch.abort();
    }
}

impl fmt::Debug for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gateway").finish_non_exhaustive()
    }
}

impl Gateway {
    /// serenity's cache, which the gateway keeps current: which guild a channel is in.
    pub fn cache(&self) -> Arc<Cache> {
        Arc::clone(&self.cache)
    }

    /// The connection that performs effects, on the gateway's HTTP client and rate limiter.
    pub fn platform(&self) -> DiscordPlatform {
        self.platform.clone()
    }

    /// Resolves when the client stops by itself: serenity reconnects on its own, so that is
    /// a failure it cannot get past (Discord refused the token, or the intents).
    ///
    /// # Errors
    /// Why the client stopped.
    pub async fn stopped(&mut self) -> Result<(), serenity::Error> {
        let Some(task) = self.task.as_mut() else {
            return std::future::pending().await;
        };
        let result = task.await;
        self.task = None;
        self.watch.abort();
        self.overloaded(joined(result))
    }

    /// A stop for want of shards is close code 4011's error.
    #[allow(clippy::result_large_err)]
    fn overloaded(&self, result: Result<(), serenity::Error>) -> Result<(), serenity::Error> {
        match result {
            Ok(()) if self.resharding.overloaded.load(Ordering::SeqCst) => {
                Err(serenity::Error::Gateway(serenity::gateway::GatewayError::OverloadedShard))
            }
            other => other,
        }
    }

    /// Closes the shard and waits for the client to stop.
    ///
    /// # Errors
    /// When the client had stopped with an error of its own.
    pub async fn shutdown(mut self) -> Result<(), serenity::Error> {
        self.watch.abort();
        self.shards.shutdown_all().await;
        match self.task.take() {
            Some(task) => self.overloaded(joined(task.await)),
            None => Ok(()),
        }
    }
}

/// Why Discord ended the gateway for good, as an operator can act on it.
#[must_use]
pub fn explain(error: &serenity::Error) -> String {
    use serenity::gateway::GatewayError;
    match error {
        serenity::Error::Gateway(GatewayError::InvalidAuthentication) => {
            "Discord refused the bot token (close code 4004): reset it in the Developer Portal (Bot → Reset Token) and configure the new one".into()
        }
        serenity::Error::Gateway(GatewayError::DisallowedGatewayIntents) => {
            "Discord refused the privileged intents Polity needs, Server Members and Message Content (close code 4014): turn them on in the Developer Portal (Bot → Privileged Gateway Intents); a bot in 100 or more servers needs Discord's verification for them".into()
        }
        serenity::Error::Gateway(GatewayError::InvalidGatewayIntents) => {
            "Discord refused the gateway intents as invalid (close code 4013)".into()
        }
        serenity::Error::Gateway(GatewayError::OverloadedShard) => {
            "Discord requires more shards than Polity connected (close code 4011): restart Polity, which asks Discord for the shard count it recommends".into()
        }
        other => format!("the Discord gateway stopped: {other}"),
    }
}

/// The client task's outcome as serenity's error (the same type `shutdown` returns).
#[allow(clippy::result_large_err)]
fn joined(result: Result<Result<(), serenity::Error>, tokio::task::JoinError>) -> Result<(), serenity::Error> {
    match result {
        Ok(result) => result,
        Err(e) => Err(serenity::Error::Other(if e.is_panic() { "the gateway panicked" } else { "cancelled" })),
    }
}

/// Connects the shards Discord recommends (serenity reconnects and RESUMEs on its own) and
/// sends every event Polity cares about to `events`. serenity asks `GET /api/v10/gateway/bot`
/// at `base_url` for the websocket URL and the shard count.
///
/// # Errors
/// When the client cannot be built.
pub async fn start(config: GatewayConfig, events: mpsc::Sender<Incoming>) -> Result<Gateway, serenity::Error> {
    let (http, reqwest_client) = http_client(&config.token, &config.base_url)
        .map_err(|e| serenity::Error::Http(serenity::http::HttpError::Request(e)))?;
    let connection = config.connection.clone();
    let bridge = Arc::new(Bridge::new(config.connection.clone(), events.clone(), config.answer_within));
    let session = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let handler = Handler {
        connection: config.connection,
        events,
        bridge: Arc::clone(&bridge),
        session,
        deliveries: AtomicU64::new(0),
        sends: SendPacer::default(),
    };
    let register = config.register_commands;
    // A command's answer quotes members' text (proposals, policies): it pings nobody.
    let options = poise::FrameworkOptions {
        commands: application_commands(),
        allowed_mentions: Some(serenity::builder::CreateAllowedMentions::new()),
        ..Default::default()
    };
    // Polity has no owner-only commands: poise need not ask Discord who owns the bot.
    let framework = poise::Framework::builder()
        .options(options)
        .initialize_owners(false)
        .setup(move |ctx, _ready, framework| {
            Box::pin(async move {
                if register {
                    // One PUT with every command: Discord replaces the whole set.
                    if let Err(e) = poise::builtins::register_globally(&ctx.http, &framework.options().commands).await {
                        tracing::error!("cannot register Polity's commands with Discord: {e}");
                    }
                }
                Ok(bridge)
            })
        })
        .build();
    let mut client = ClientBuilder::new_with_http(http, intents()).event_handler(handler).framework(framework).await?;
    let shards = Arc::clone(&client.shard_manager);
    let resharding = Arc::new(Resharding::default());
    let watch = tokio::spawn(Arc::clone(&resharding).watch(
        Arc::clone(&shards),
        Arc::clone(&client.cache),
        Arc::clone(&client.http),
        config.identify_wait,
    ));
    let cache = Arc::clone(&client.cache);
    // Effects go through the gateway's own HTTP client: one rate limiter for everything.
    let platform = DiscordPlatform::with_http(connection, Arc::clone(&client.http), reqwest_client);
    // As many shards as Discord recommends (`GET /gateway/bot`): one shard serves at most
    // 2,500 servers, and past that Discord closes with 4011.
    let task = tokio::spawn(async move { client.start_autosharded().await });
    Ok(Gateway { shards, cache, platform, task: Some(task), resharding, watch })
}

/// Discord closes a shard that serves too many servers with 4011 when it identifies, and
/// serenity neither says so nor stops: the shard stays without a session and identifies again
/// at each failed heartbeat, until the day's identify budget is spent and Discord resets the
/// token. So a watch looks at the shards every [`GatewayConfig::identify_wait`]: one without
/// a session at two looks in a row makes Polity ask Discord for the shard count it
/// recommends now, and more than are running stops the gateway for good with close code
/// 4011's explanation (a restart connects that many).
#[derive(Default)]
struct Resharding {
    /// Set when the gateway was stopped for want of shards.
    overloaded: std::sync::atomic::AtomicBool,
}

impl Resharding {
    async fn watch(
        self: Arc<Self>,
        manager: Arc<ShardManager>,
        cache: Arc<Cache>,
        http: Arc<serenity::http::Http>,
        wait: Duration,
    ) {
        let mut down_before = std::collections::HashSet::new();
        loop {
            tokio::time::sleep(wait).await;
            let down: std::collections::HashSet<_> = {
                let runners = manager.runners.lock().await;
                runners.iter().filter(|(_, r)| r.stage != ConnectionStage::Connected).map(|(id, _)| *id).collect()
            };
            if down.iter().any(|id| down_before.contains(id)) {
                // The shards this client runs: the total of its last session (a restarting
                // shard has no runner for a while), or the runners before any session.
                let runners = manager.runners.lock().await.len();
                let running = usize::try_from(cache.shard_count()).unwrap_or(usize::MAX).max(runners);
                match http.get_bot_gateway().await {
                    Ok(gateway) if usize::try_from(gateway.shards).unwrap_or(0) > running => {
                        tracing::error!(
                            running,
                            recommended = gateway.shards,
                            "a shard has no session and Discord wants more shards (close code 4011)"
                        );
                        self.overloaded.store(true, Ordering::SeqCst);
                        manager.shutdown_all().await;
                        return;
                    }
                    Ok(_) => tracing::warn!(?down, "a shard has had no session for a while"),
                    Err(e) => tracing::warn!("cannot ask Discord for its recommended shard count: {e}"),
                }
            }
            down_before = down;
        }
    }
}

/// Gateway sends Polity makes itself (member-list requests), paced per shard under Discord's
/// limit of 120 in 60 s, leaving room for serenity's heartbeats and presence.
#[derive(Default)]
pub(crate) struct SendPacer {
    sent: std::sync::Mutex<std::collections::HashMap<u32, std::collections::VecDeque<tokio::time::Instant>>>,
}

impl SendPacer {
    /// How many of Polity's own sends a shard makes in [`Self::WINDOW`].
    pub(crate) const LIMIT: usize = 100;
    pub(crate) const WINDOW: Duration = Duration::from_secs(60);

    /// Waits until shard `shard` may send one more, and counts it.
    pub(crate) async fn wait(&self, shard: u32) {
        loop {
            let wait = {
                let mut all = self.sent.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let sent = all.entry(shard).or_default();
                let now = tokio::time::Instant::now();
                while sent.front().is_some_and(|t| now.duration_since(*t) >= Self::WINDOW) {
                    sent.pop_front();
                }
                match sent.front() {
                    Some(oldest) if sent.len() >= Self::LIMIT => Self::WINDOW - now.duration_since(*oldest),
                    _ => {
                        sent.push_back(now);
                        return;
                    }
                }
            };
            tokio::time::sleep(wait).await;
        }
    }
}

struct Handler {
    /// Polity's own gateway sends, paced.
    sends: SendPacer,
    connection: String,
    events: mpsc::Sender<Incoming>,
    bridge: Arc<Bridge>,
    /// When this process started, and how many reactions it has delivered: a reaction's
    /// dedup key is unique to its delivery.
    session: u128,
    deliveries: AtomicU64,
}

fn bot_id(ctx: &Context) -> UserId {
    ctx.cache.current_user().id
}

fn member_name(member: &Member) -> String {
    member.display_name().to_string()
}

impl Handler {
    fn account(&self, user: UserId) -> AccountRef {
        AccountRef::new(self.connection.clone(), user.to_string())
    }

    fn place(&self, channel: impl ToString) -> Place {
        Place::new(self.connection.clone(), channel.to_string())
    }

    async fn send(
        &self,
        dedup_key: String,
        guild: Option<GuildId>,
        input: Inbound,
        from: Option<(AccountRef, String)>,
    ) {
        let event = Event { dedup_key, space: guild.map(|g| g.to_string()), input, from };
        self.hand(Incoming::Event(event)).await;
    }

    async fn hand(&self, incoming: Incoming) {
        if self.events.send(incoming).await.is_err() {
            tracing::debug!("a gateway event arrived after its receiver was dropped");
        }
    }

    fn members<'a>(&self, members: impl Iterator<Item = &'a Member>) -> Vec<(AccountRef, String)> {
        members.filter(|m| !m.user.bot).map(|m| (self.account(m.user.id), member_name(m))).collect()
    }

    async fn reaction(&self, ctx: &Context, r: Reaction, added: bool) {
        let Some(user) = r.user_id else { return };
        // A super (burst) reaction is decoration a member paid for, not a ballot: it is
        // never counted, and never replaces the member's normal reaction.
        if user == bot_id(ctx) || r.burst || r.reaction_type != ReactionTypes::Normal {
            return;
        }
        let emoji = emoji_key(&r.emoji);
        // A reaction is a state, not an event: applied twice it changes nothing, and the
        // message is read back afterwards. So each delivery is new (an add, remove and add
        // again must count), numbered within this session.
        let n = self.deliveries.fetch_add(1, Ordering::Relaxed);
        let what = if added { "add" } else { "remove" };
        let key = format!("reaction:{}:{user}:{emoji}:{what}:{}:{n}", r.message_id, self.session);
        let voter = self.account(user);
        let from = r.member.as_ref().map(|m| (voter.clone(), member_name(m)));
        let message = MessageRef::new(self.connection.clone(), r.channel_id.to_string(), r.message_id.to_string());
        self.send(key, r.guild_id, Inbound::Reaction { message, voter, emoji, added }, from).await;
    }

    async fn actor_name(ctx: &Context, guild: GuildId, user: UserId) -> String {
        let cached = ctx.cache.guild(guild).and_then(|g| g.members.get(&user).map(member_name));
        cached.unwrap_or_else(|| user.to_string())
    }
}

#[serenity::async_trait]
impl EventHandler for Handler {
    async fn ready(&self, _ctx: Context, ready: Ready) {
        self.hand(Incoming::Connected { resumed: false }).await;
        self.hand(Incoming::Invite(crate::invite_url(ready.application.id.get()))).await;
    }

    async fn resume(&self, _ctx: Context, _: ResumedEvent) {
        self.hand(Incoming::Connected { resumed: true }).await;
    }

    async fn guild_create(&self, ctx: Context, guild: Guild, _is_new: Option<bool>) {
        let members = self.members(guild.members.values());
        let partial = guild.large || u64::try_from(guild.members.len()).unwrap_or(0) < guild.member_count;
        let owner_name = guild.members.get(&guild.owner_id).map_or_else(|| guild.owner_id.to_string(), member_name);
        let info = SpaceInfo {
            space: guild.id.to_string(),
            name: guild.name.clone(),
            owner: (self.account(guild.owner_id), owner_name),
            members,
        };
        self.hand(Incoming::Space(info)).await;
        // A large guild lists only some members at connect: ask for the rest (after the
        // server itself is handed over), paced under Discord's gateway send limit (serenity
        // sends what it is given at once).
        if partial {
            self.sends.wait(ctx.shard_id.0).await;
            ctx.shard.chunk_guild(guild.id, None, false, ChunkGuildFilter::None, None);
        }
    }

    async fn guild_members_chunk(&self, _ctx: Context, chunk: GuildMembersChunkEvent) {
        let members = self.members(chunk.members.values());
        self.hand(Incoming::Members { space: chunk.guild_id.to_string(), members }).await;
    }

    async fn interaction_create(&self, ctx: Context, interaction: Interaction) {
        // Slash commands are poise's; buttons and the secret form are answered here.
        match interaction {
            Interaction::Component(press) if press.data.custom_id.starts_with(VOTE_BUTTON) => {
                self.bridge.button(&ctx.http, &ctx.cache, &press).await;
            }
            Interaction::Modal(form) => self.bridge.secret(&ctx.http, &form).await,
            _ => {}
        }
    }

    async fn message(&self, ctx: Context, m: Message) {
        let Some(guild) = m.guild_id else { return };
        if m.author.id == bot_id(&ctx) || m.webhook_id.is_some() {
            return;
        }
        let Ok(kind) = ActionType::new(MESSAGE) else { return };
        let author = self.account(m.author.id);
        let name =
            m.member.as_ref().and_then(|p| p.nick.clone()).unwrap_or_else(|| m.author.display_name().to_string());
        let mut action = Action::new(kind, author.clone(), m.id.to_string()).at(self.place(m.channel_id));
        action = action
            .with("text", m.content.clone())
            .with("channel", m.channel_id.to_string())
            .with("message", m.id.to_string())
            .with("author", name.clone())
            .with("attachments", m.attachments.iter().map(|a| Value::from(a.url.clone())).collect::<Vec<_>>());
        self.send(format!("message:{}", m.id), Some(guild), Inbound::Action { action }, Some((author, name))).await;
    }

    async fn reaction_add(&self, ctx: Context, r: Reaction) {
        self.reaction(&ctx, r, true).await;
    }

    async fn reaction_remove(&self, ctx: Context, r: Reaction) {
        self.reaction(&ctx, r, false).await;
    }

    /// Who renamed a channel or changed a member's roles, exactly: Discord's audit log entry
    /// as it is written (`GUILD_AUDIT_LOG_ENTRY_CREATE`, with View Audit Log), which names the
    /// actor, the target and the change itself. Governing from the entry, not from the
    /// change's own event, leaves nothing to match or race: the bot's own reverts and
    /// re-applies are its entries, and are not governed again.
    async fn guild_audit_log_entry_create(&self, ctx: Context, entry: AuditLogEntry, guild: GuildId) {
        if entry.user_id == bot_id(&ctx) {
            return;
        }
        let Some(target) = entry.target_id.map(|t| t.get()) else { return };
        let changes = entry.changes.as_deref().unwrap_or_default();
        let initiator = self.account(entry.user_id);
        let name = Self::actor_name(&ctx, guild, entry.user_id).await;
        let from = Some((initiator.clone(), name));
        let id = entry.id.to_string();
        match entry.action {
            AuditAction::Channel(ChannelAction::Update) => {
                let Some((old, new)) = changes.iter().find_map(|c| match c {
                    Change::Name { old: Some(old), new: Some(new) } if old != new => Some((old, new)),
                    _ => None,
                }) else {
                    return;
                };
                let Ok(kind) = ActionType::new(RENAME_CHANNEL) else { return };
                let Some(channel) = std::num::NonZeroU64::new(target).map(ChannelId::from) else { return };
                let action = Action::new(kind, initiator, id.clone())
                    .at(self.place(channel))
                    .with("channel", channel.to_string())
                    .with("old_name", old.clone())
                    .with("name", new.clone());
                let key = format!("rename:{channel}:{id}");
                self.send(key, Some(guild), Inbound::Action { action }, from).await;
            }
            // Roles given to Polity itself (as its advice tells admins to) are not governed.
            AuditAction::Member(MemberAction::RoleUpdate) if target != bot_id(&ctx).get() => {
                let mut roles: Vec<(RoleId, bool)> = Vec::new();
                for change in changes {
                    match change {
                        Change::RolesAdded { new: Some(added), .. } => roles.extend(added.iter().map(|r| (r.id, true))),
                        Change::RolesRemove { new: Some(removed), .. } => {
                            roles.extend(removed.iter().map(|r| (r.id, false)));
                        }
                        _ => {}
                    }
                }
                for (role, granted) in roles {
                    let (kind, key) = if granted {
                        (ROLE_GRANT, format!("role_grant:{guild}:{target}:{role}:{id}"))
                    } else {
                        (ROLE_REVOKED, format!("role_revoked:{guild}:{target}:{role}:{id}"))
                    };
                    let Ok(kind) = ActionType::new(kind) else { continue };
                    let mut action = Action::new(kind, initiator.clone(), format!("{id}:{role}"))
                        .with("guild", guild.to_string())
                        .with("user", target.to_string())
                        .with("role", role.to_string());
                    if !granted {
                        action = action.event();
                    }
                    self.send(key, Some(guild), Inbound::Action { action }, from.clone()).await;
                }
            }
            _ => {}
        }
    }

    async fn guild_member_addition(&self, ctx: Context, member: Member) {
        if member.user.id == bot_id(&ctx) {
            return;
        }
        let Ok(kind) = ActionType::new(MEMBER_JOIN) else { return };
        let user = self.account(member.user.id);
        let joined = member.joined_at.map(|t| t.unix_timestamp()).unwrap_or_default();
        let action = Action::new(kind, user.clone(), member.user.id.to_string())
            .event()
            .with("guild", member.guild_id.to_string())
            .with("user", member.user.id.to_string())
            .with("name", member_name(&member));
        let key = format!("member_join:{}:{}:{joined}", member.guild_id, member.user.id);
        let from = Some((user, member_name(&member)));
        self.send(key, Some(member.guild_id), Inbound::Action { action }, from).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn member_list_requests_are_paced_under_discords_gateway_send_limit() {
        let pacer = SendPacer::default();
        let start = tokio::time::Instant::now();
        for _ in 0..SendPacer::LIMIT {
            pacer.wait(0).await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "the first ones go at once");
        // Another shard has a budget of its own.
        pacer.wait(1).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        pacer.wait(0).await;
        assert_eq!(start.elapsed(), SendPacer::WINDOW, "the next waits for the window");
    }
}
