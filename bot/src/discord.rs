//! Discord in `polity run`: the gateway's inputs become jobs of the serving loop, so they
//! take the one path every input takes, in the order Discord sent them.
//!
//! - Which community governs a guild is recorded in the `discord` connections, and a guild
//!   never leaves the community that governs it but by that community's own decision
//!   (removing its connection to the guild):
//!   - governed: the guild belongs to the community whose enabled connection naming it was
//!     made for it (`made_for_guild`) or was confirmed inside it (`confirmed_by`). Whatever
//!     other communities' connections say, it stays there.
//!   - asked for: a guild new to Polity that communities' enabled connections name
//!     (`/integration add discord NAME guild=ID`, each with its one-time code) waits,
//!     governed by nobody (its events dropped, its commands answered with what to do), until
//!     someone who controls it (its owner, or a member with Administrator or Manage Server,
//!     by Discord's permissions) types `/integration confirm CODE` in it: it joins the
//!     community whose code that is. `/integration confirm` with no code makes it a
//!     community of its own instead, so nobody can keep a server from governing itself.
//!   - new: a community of its own, created with the guild's owner as its first admin.
//! - A community's connection acts in its own guilds only: every channel, member, role and
//!   guild an effect names is checked against them before anything is sent
//!   ([`polity_discord::DiscordPlatform::for_guilds`]). The guild's members become members.
//! - After a (re)connect the open vote messages of the guild's community are read back and
//!   reconciled, so reactions added or removed while the bot was away count.
//! - Slash commands, vote buttons and the secret form run the shared handlers against the
//!   community's ports; their replies go back to the adapter, which answers Discord.

use crate::http::Health;
use crate::ports::CommunityPorts;
use crate::runtime::Runtime;
use crate::serve::{Delivery, Input};
use crate::store::{Connection, StepRecord};
use anyhow::{Context, Result, anyhow};
use chrono::{DateTime, Utc};
use polity_commands::Reply;
use polity_commands::catalogue::Handler;
use polity_commands::integration::JOIN_CODE;
use polity_discord::{
    Cache, CommandCall, DiscordPlatform, Gateway, GatewayConfig, GuildInfo, Incoming, SecretTyped, invite_url,
};
use polity_governance::action::ActionType;
use polity_governance::ids::{AccountRef, CommunityId};
use polity_governance::io::Audit;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The connection name of Polity's Discord bot: the platform of every Discord ref.
pub const CONNECTION: &str = "discord";

/// The source of commands from Discord in the inbox.
const COMMAND_SOURCE: &str = "command:discord";

/// A connection's config key: the bot made the connection with the community it made for
/// the guild. Like [`CONFIRMED_BY`] and [`JOIN_CODE`], never a setting a command can write.
const MADE_FOR_GUILD: &str = "made_for_guild";
/// A connection's config key: the account that confirmed, inside the guild, that the guild
/// joins the connection's community.
const CONFIRMED_BY: &str = "confirmed_by";
/// What joining a community by confirmation is recorded as in its audit log.
const SERVER_JOIN: &str = "discord.server_join";

const SORRY: &str = "Sorry, that failed on our side; it is logged.";
const NOT_YET: &str = "This server is not governed by Polity yet; try again in a moment.";
const WAITING: &str = "This server is not governed yet: a community asked for it. Its owner or an admin makes it join that community with `/integration confirm CODE` (the code that community's `/integration add` showed), or makes it a community of its own with `/integration confirm` and no code.";
const NOT_IN_CONTROL: &str = "Only the server's owner or a member with the Administrator or Manage Server permission can say which community governs it.";
const WRONG_CODE: &str = "That code is not for this server: the community that asked for it has the code, in the reply to its `/integration add`.";

/// What the bot tells whoever runs it (`polity run` prints it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// The link that adds the bot to a server, once Discord has said who the bot is.
    Invite(String),
    /// A server is governed by a community.
    Governing { guild: String, name: String, community: String },
    /// A server new to Polity that a community asked for waits for someone who controls it to
    /// confirm which community governs it.
    Waiting { guild: String, name: String },
}

impl std::fmt::Display for Notice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Invite(link) => write!(f, "Polity is on Discord. Add it to a server with:\n{link}"),
            Self::Governing { guild, name, community } => {
                write!(f, "Governing the Discord server \"{name}\" ({guild}) as the community \"{community}\".")
            }
            Self::Waiting { guild, name } => write!(
                f,
                "The Discord server \"{name}\" ({guild}) waits for its owner or an admin to confirm which community governs it (`/integration confirm` there)."
            ),
        }
    }
}

/// The running Discord bot.
pub struct Discord {
    gateway: Gateway,
    translator: JoinHandle<()>,
}

impl std::fmt::Debug for Discord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discord").finish_non_exhaustive()
    }
}

impl Discord {
    /// Resolves when the gateway stops by itself, with why: a failure it cannot get past
    /// (Discord refused the token).
    pub async fn stopped(&mut self) -> Result<()> {
        self.gateway.stopped().await.map_err(|e| anyhow!("the Discord connection ended: {e}"))
    }

    /// Closes the gateway.
    pub async fn shutdown(self) {
        self.translator.abort();
        if let Err(e) = self.gateway.shutdown().await {
            tracing::warn!("the Discord gateway stopped with an error: {e}");
        }
    }
}

/// What the jobs of one bot share: the guilds' communities, the guilds waiting for one, and
/// what builds each community's connection.
struct Shared {
    platform: DiscordPlatform,
    cache: Arc<Cache>,
    guilds: Mutex<HashMap<String, CommunityId>>,
    /// Guilds new to Polity that a community asked for, until someone who controls them
    /// confirms which community governs them.
    waiting: Mutex<HashMap<String, GuildInfo>>,
    notices: mpsc::UnboundedSender<Notice>,
}

impl Shared {
    fn community_of(&self, guild: &str) -> Option<CommunityId> {
        self.guilds.lock().ok().and_then(|g| g.get(guild).copied())
    }

    fn communities(&self) -> Vec<CommunityId> {
        let mut all: Vec<CommunityId> = self.guilds.lock().map(|g| g.values().copied().collect()).unwrap_or_default();
        all.sort_by_key(|c| c.0);
        all.dedup();
        all
    }

    /// The guilds `community` governs.
    fn guilds_of(&self, community: CommunityId) -> Vec<u64> {
        let guilds = self.guilds.lock().map(|g| {
            g.iter().filter(|(_, c)| **c == community).filter_map(|(id, _)| id.parse().ok()).collect::<Vec<u64>>()
        });
        let mut guilds = guilds.unwrap_or_default();
        guilds.sort_unstable();
        guilds
    }

    fn waiting_info(&self, guild: &str) -> Option<GuildInfo> {
        self.waiting.lock().ok().and_then(|w| w.get(guild).cloned())
    }

    fn notify(&self, notice: Notice) {
        if self.notices.send(notice).is_err() {
            tracing::debug!("a notice came after its receiver was dropped");
        }
    }
}

/// Connects the bot and feeds what it hears to `inputs` as jobs of the serving loop; marks
/// the connection up in `health` once the gateway is connected (whoever runs the bot marks
/// it down when [`Discord::stopped`] resolves).
///
/// # Errors
/// When the HTTP client or the gateway client cannot be built.
pub async fn start(
    config: GatewayConfig,
    inputs: mpsc::Sender<Input>,
    notices: mpsc::UnboundedSender<Notice>,
    health: Health,
) -> Result<Discord> {
    let (tx, mut rx) = mpsc::channel(1024);
    let gateway = polity_discord::start(config, tx).await.context("starting the Discord gateway")?;
    let shared = Arc::new(Shared {
        platform: gateway.platform(),
        cache: gateway.cache(),
        guilds: Mutex::new(HashMap::new()),
        waiting: Mutex::new(HashMap::new()),
        notices,
    });
    let translator = tokio::spawn(async move {
        while let Some(incoming) = rx.recv().await {
            if matches!(incoming, Incoming::Connected { .. }) {
                health.set(CONNECTION, true);
            }
            if inputs.send(job(Arc::clone(&shared), incoming)).await.is_err() {
                break;
            }
        }
    });
    Ok(Discord { gateway, translator })
}

/// The serving loop's input for one input from Discord: an event is a delivery (batched with
/// the events beside it), everything else a job.
fn job(shared: Arc<Shared>, incoming: Incoming) -> Input {
    let incoming = match incoming {
        Incoming::Event(e) => {
            return Input::lazy(move || {
                let Some(community) = e.guild.as_deref().and_then(|g| shared.community_of(g)) else {
                    tracing::debug!(key = %e.dedup_key, "an event from a guild with no community is dropped");
                    return None;
                };
                Some(Delivery { community, source: e.source, dedup_key: e.dedup_key, input: e.input, from: e.from })
            });
        }
        other => other,
    };
    Input::job(move |rt: &mut Runtime, now: DateTime<Utc>| {
        Box::pin(async move {
            match incoming {
                Incoming::Guild(info) => join_guild(rt, &shared, info, now).await,
                Incoming::Members { guild, members } => match shared.community_of(&guild) {
                    Some(c) => admit_all(rt, c, &members, now).await,
                    None => {
                        // A waiting guild's members become members of whichever community it joins.
                        if let Ok(mut waiting) = shared.waiting.lock()
                            && let Some(info) = waiting.get_mut(&guild)
                        {
                            info.members.extend(members);
                        }
                        Ok(())
                    }
                },
                Incoming::Connected { resumed, application_id } => {
                    if let Some(id) = application_id {
                        let link = invite_url(id);
                        rt.set_invite(CONNECTION, link.clone());
                        shared.notify(Notice::Invite(link));
                    }
                    if resumed {
                        // Events may have been lost while the connection was down.
                        for c in shared.communities() {
                            rt.reconcile_open_votes(c, CONNECTION, now);
                        }
                    }
                    Ok(())
                }
                // Made a delivery above.
                Incoming::Event(_) => Ok(()),
                Incoming::Command(call) => command(rt, &shared, call, now).await,
                Incoming::Secret(typed) => secret(rt, &shared, typed, now).await,
            }
        })
    })
}

/// Who governs a guild, as the `discord` connections record it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Governance {
    /// The community whose connection naming the guild was made for it or confirmed inside it.
    By(CommunityId),
    /// New to Polity, and named by communities' enabled connections: it waits until someone
    /// who controls it confirms one of them.
    Asked,
    /// New to Polity, and asked for by nobody.
    New,
}

fn flag<'a>(c: &'a Connection, key: &str) -> Option<&'a Value> {
    c.config.get(key)
}

/// An enabled connection naming `guild`.
fn names(c: &Connection, guild: &str) -> bool {
    flag(c, "guild").and_then(Value::as_str) == Some(guild)
        && flag(c, "enabled").and_then(Value::as_bool) != Some(false)
}

/// Whether a connection naming a guild governs it: made for it, or confirmed inside it.
fn governs(c: &Connection) -> bool {
    flag(c, MADE_FOR_GUILD).and_then(Value::as_bool) == Some(true)
        || flag(c, CONFIRMED_BY).is_some_and(Value::is_string)
}

/// Who governs `guild`. A connection only asked for (however it came to be enabled) never
/// governs a guild: only one made for it by the bot, or one confirmed inside it.
async fn governance(rt: &Runtime, guild: &str) -> Result<Governance> {
    let rows = rt.store().connections_to(CONNECTION).await?;
    let mut naming = rows.iter().filter(|(_, c)| names(c, guild)).peekable();
    if naming.peek().is_none() {
        return Ok(Governance::New);
    }
    // Oldest first: the first community to govern the guild keeps it.
    Ok(naming.find(|(_, c)| governs(c)).map_or(Governance::Asked, |(id, _)| Governance::By(*id)))
}

/// A guild the bot is in: governed by its community (its connection registered, its members
/// admitted, its open votes read back), or made a community of its own, or, when a
/// community asked for it, waiting for someone who controls it to confirm.
async fn join_guild(rt: &mut Runtime, shared: &Shared, info: GuildInfo, now: DateTime<Utc>) -> Result<()> {
    if info.guild.parse::<u64>().is_err() {
        return Err(anyhow!("Discord sent a guild id that is not a number: {}", info.guild));
    }
    let governance = governance(rt, &info.guild).await?;
    if let Some(former) = shared.community_of(&info.guild)
        && governance != Governance::By(former)
    {
        // The community let the guild go (it removed its connection): it acts there no more.
        if let Ok(mut guilds) = shared.guilds.lock() {
            guilds.remove(&info.guild);
        }
        register(rt, shared, former);
    }
    match governance {
        Governance::By(community) => govern(rt, shared, community, info, now).await,
        Governance::New => {
            let community = new_community(rt, &info, now).await?;
            govern(rt, shared, community, info, now).await
        }
        Governance::Asked => {
            tracing::info!(guild = %info.guild, "a community asked for the new Discord server {}: it waits for its owner or an admin to confirm", info.name);
            shared.notify(Notice::Waiting { guild: info.guild.clone(), name: info.name.clone() });
            if let Ok(mut waiting) = shared.waiting.lock() {
                waiting.insert(info.guild.clone(), info);
            }
            Ok(())
        }
    }
}

/// `community` governs the guild from now on: its connection acts in the guild (and in its
/// other guilds), the guild's members become members, its open votes are read back.
async fn govern(
    rt: &mut Runtime,
    shared: &Shared,
    community: CommunityId,
    info: GuildInfo,
    now: DateTime<Utc>,
) -> Result<()> {
    if let Ok(mut waiting) = shared.waiting.lock() {
        waiting.remove(&info.guild);
    }
    if let Ok(mut guilds) = shared.guilds.lock() {
        guilds.insert(info.guild.clone(), community);
    }
    register(rt, shared, community);
    admit_all(rt, community, &info.members, now).await?;
    rt.reconcile_open_votes(community, CONNECTION, now);
    let community_name = rt.engine(community).map(|e| e.community.name.clone()).unwrap_or_default();
    shared.notify(Notice::Governing { guild: info.guild, name: info.name, community: community_name });
    Ok(())
}

/// The community's connection, acting in the guilds it governs and nowhere else.
fn register(rt: &mut Runtime, shared: &Shared, community: CommunityId) {
    let platform = shared.platform.for_guilds(&shared.guilds_of(community), Arc::clone(&shared.cache));
    rt.add_community_platform(community, Arc::new(platform));
}

/// A new community for a guild: named after it (with its id when the name is taken), its
/// owner the first admin, and its connection recorded.
async fn new_community(rt: &mut Runtime, info: &GuildInfo, now: DateTime<Utc>) -> Result<CommunityId> {
    let mut name = info.name.trim().to_string();
    if name.is_empty() || rt.store().community_id(&name).await?.is_some() {
        name = format!("{} ({})", info.name.trim(), info.guild);
    }
    if rt.store().community_id(&name).await?.is_some() {
        return Err(anyhow!(
            "a community named {name} exists already, so the Discord server {} cannot get one",
            info.guild
        ));
    }
    let (owner, owner_name) = &info.owner;
    let community = rt.ensure_community(&name, owner_name, owner.clone()).await?;
    let config = serde_json::json!({ "guild": info.guild, "enabled": true, MADE_FOR_GUILD: true });
    rt.store().put_connection(community, CONNECTION, CONNECTION, &config, None).await?;
    rt.save_community(community, now).await?;
    tracing::info!(community = %community, "community {name} created for the Discord server {}", info.guild);
    Ok(community)
}

/// Makes every listed account a member (a guild's members vote from the start).
async fn admit_all(
    rt: &mut Runtime,
    community: CommunityId,
    members: &[(AccountRef, String)],
    now: DateTime<Utc>,
) -> Result<()> {
    let mut changed = false;
    for (account, name) in members {
        changed |= rt.admit(community, account, name);
    }
    if changed {
        rt.save_community(community, now).await?;
    }
    Ok(())
}

fn answer(call: CommandCall, reply: Reply) {
    if call.answer.send(reply).is_err() {
        tracing::debug!("a command's answer came after Discord stopped waiting for it");
    }
}

async fn command(rt: &mut Runtime, shared: &Shared, call: CommandCall, now: DateTime<Utc>) -> Result<()> {
    if call.parsed.spec.handler == Handler::IntegrationConfirm {
        let reply = confirm(rt, shared, &call, now).await?;
        answer(call, reply);
        return Ok(());
    }
    let Some(community) = shared.community_of(&call.guild) else {
        let text = if shared.waiting_info(&call.guild).is_some() { WAITING } else { NOT_YET };
        answer(call, Reply::private(text));
        return Ok(());
    };
    if rt.admit(community, &call.invocation.invoker, &call.name) {
        rt.save_community(community, now).await?;
    }
    let inv = &call.invocation;
    let mut ports = CommunityPorts::new(rt, community, COMMAND_SOURCE, &inv.id, now);
    let reply = match polity_commands::run(&mut ports, inv, &call.parsed).await {
        Ok(reply) => reply,
        Err(e) => {
            tracing::error!(command = %call.parsed.spec.name(), error = %e, "command failed");
            Reply::private(SORRY)
        }
    };
    answer(call, reply);
    Ok(())
}

/// `/integration confirm [CODE]` in a guild: someone who controls a waiting guild says which
/// community governs it, the one whose code it is, or (no code) one of its own. A governed
/// guild stays where it is.
async fn confirm(rt: &mut Runtime, shared: &Shared, call: &CommandCall, now: DateTime<Utc>) -> Result<Reply> {
    if let Some(c) = shared.community_of(&call.guild) {
        let name = rt.engine(c).map(|e| e.community.name.clone()).unwrap_or_default();
        return Ok(Reply::private(format!(
            "This server is governed by the community \"{name}\". It leaves \"{name}\" only if \"{name}\" decides so, by removing its connection to this server (`/integration remove`)."
        )));
    }
    let Some(info) = shared.waiting_info(&call.guild) else {
        return Ok(Reply::private(NOT_YET));
    };
    if !call.manages_server {
        return Ok(Reply::private(NOT_IN_CONTROL));
    }
    let code = call.parsed.get("code").map(str::trim).filter(|c| !c.is_empty());
    let community = match code {
        Some(code) => {
            let Some((community, connection)) = asked_with(rt, &call.guild, code).await? else {
                return Ok(Reply::private(WRONG_CODE));
            };
            confirmed(rt, community, connection, &call.invocation.invoker).await?;
            community
        }
        None => new_community(rt, &info, now).await?,
    };
    let initiator = call.invocation.invoker.clone();
    let joined = ActionType::new(SERVER_JOIN).map_err(|e| anyhow!(e))?;
    let audit = [Audit::ExecutedByPermission { action: joined, initiator }];
    rt.store().record_step(StepRecord { audit: &audit, ..StepRecord::new(community, now) }).await?;
    tracing::info!(community = %community, guild = %call.guild, by = %call.invocation.invoker, "a Discord server joined a community, confirmed inside it");
    govern(rt, shared, community, info, now).await?;
    let name = rt.engine(community).map(|e| e.community.name.clone()).unwrap_or_default();
    Ok(Reply::private(match code {
        Some(_) => format!("This server now belongs to the community \"{name}\": its members are members there."),
        None => format!("This server is now a community of its own, \"{name}\", with its owner as the first admin."),
    }))
}

/// The community, and its connection, that asked for `guild` with `code`.
async fn asked_with(rt: &Runtime, guild: &str, code: &str) -> Result<Option<(CommunityId, Connection)>> {
    let rows = rt.store().connections_to(CONNECTION).await?;
    Ok(rows
        .into_iter()
        .find(|(_, c)| names(c, guild) && !governs(c) && flag(c, JOIN_CODE).and_then(Value::as_str) == Some(code)))
}

/// Records that the connection's guild was confirmed inside it by `by`: its code is used up
/// and the guild is the connection's community's, across restarts.
async fn confirmed(rt: &Runtime, community: CommunityId, connection: Connection, by: &AccountRef) -> Result<()> {
    let mut config = connection.config;
    if let Some(map) = config.as_object_mut() {
        map.remove(JOIN_CODE);
        map.insert(CONFIRMED_BY.into(), Value::String(by.to_string()));
    }
    let secret =
        if connection.has_secret { rt.store().connection_secret(community, &connection.name).await? } else { None };
    let secret = secret.as_ref().map(crate::store::Secret::expose);
    rt.store().put_connection(community, &connection.name, &connection.platform, &config, secret).await?;
    Ok(())
}

async fn secret(rt: &mut Runtime, shared: &Shared, typed: SecretTyped, now: DateTime<Utc>) -> Result<()> {
    let Some(community) = shared.community_of(&typed.guild) else {
        if typed.answer.send(Reply::private(SORRY)).is_err() {
            tracing::debug!("a form's answer came after Discord stopped waiting for it");
        }
        return Ok(());
    };
    let inv = typed.invocation;
    let mut ports = CommunityPorts::new(rt, community, COMMAND_SOURCE, &inv.id, now);
    let reply = match polity_commands::integration::add_with_secret(&mut ports, &inv, typed.prompt, &typed.secret).await
    {
        Ok(reply) => reply,
        Err(e) => {
            tracing::error!(error = %e, "storing a connection failed");
            Reply::private(SORRY)
        }
    };
    if typed.answer.send(reply).is_err() {
        tracing::debug!("a form's answer came after Discord stopped waiting for it");
    }
    Ok(())
}
